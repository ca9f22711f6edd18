//! Several framegate nodes as one cluster (issue 23): which node runs which camera.
//!
//! Only the assigner's plan is here so far ([`assign`]): a pure function, simulated for
//! 10,000 cameras on 100 nodes by `examples/assigner_sim.rs` (docs/cluster.md). The etcd side
//! (registration under a lease, the owner keys and their fencing tokens, the election of the
//! node that assigns) is still to come.

pub mod assign;
