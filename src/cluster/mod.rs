//! Several framegate nodes as one cluster (issue 23): which node runs which camera.
//!
//! A client of etcd ([`etcd`]); a node's membership under a lease with self-fencing ([`node`],
//! [`fence`]) and its failsafe through a loss of etcd's quorum ([`failsafe`]); the assigner's
//! election, its plan ([`assign`], a pure function simulated for 10,000 cameras on 100 nodes by
//! `examples/assigner_sim.rs`), the owner keys and their fencing tokens, and running the
//! cameras a node owns ([`duty`]); what a node knows of the whole cluster for its API
//! ([`view`]). The design: docs/cluster.md.

pub mod assign;
pub mod duty;
pub mod etcd;
pub mod failsafe;
pub mod fence;
pub mod node;
pub mod refusal;
pub mod view;

/// Where framegate's keys live in etcd.
pub const ROOT: &str = "/framegate/";
/// A node's registration: `nodes/<node>` under its lease.
pub const NODES: &str = "/framegate/nodes/";
/// The desired cameras: `cameras/<stream id>`, the stream's table as TOML.
pub const CAMERAS: &str = "/framegate/cameras/";
/// The assigner's plan: `assign/<stream id>` = the node that should run it.
pub const ASSIGN: &str = "/framegate/assign/";
/// Who runs a camera: `owner/<stream id>` = the node, under its lease; the key's revision is
/// the fencing token.
pub const OWNER: &str = "/framegate/owner/";
/// A node that cannot run a camera: `refused/<stream id>/<node>`, under the node's lease.
pub const REFUSED: &str = "/framegate/refused/";
/// The node that assigns: created under its lease by the first node to try.
pub const ASSIGNER: &str = "/framegate/assigner";
/// The largest camera table read from etcd.
pub const MAX_CAMERA_BYTES: usize = 64 * 1024;
