//! A node's membership: registered under a lease it keeps alive, and fenced (out of the
//! cluster, by its own decision) as soon as it cannot be sure the lease still holds.
//!
//! The node's key (`/framegate/nodes/<node>`) is created under a lease of `ttl_s` and renewed
//! every third of it. etcd drops the key when the lease expires; the node cannot know when that
//! happens on etcd's clock, so it counts from the moment it *sent* its last successful renewal
//! and takes itself out [`margin`] before the TTL is over: from then on it is
//! [`Standing::Fenced`] (what it owns must stop: pushes, event writes) until it has registered
//! again under a new lease.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use super::etcd::Etcd;
use super::fence::Fence;
use crate::config::ClusterConfig;

/// Where the node stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "standing", rename_all = "snake_case")]
pub enum Standing {
    /// Not registered yet (etcd not reached, or the name held by another node's lease).
    Joining {
        /// Why not yet.
        why: String,
    },
    /// Registered under a live lease.
    Member {
        /// The lease.
        lease: i64,
    },
    /// The lease could not be renewed in time: out until registered again.
    Fenced {
        /// Why.
        why: String,
    },
}

/// What a node writes about itself under its key.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct NodeInfo {
    /// Where its API is reached.
    pub advertise: String,
    /// How many cameras it takes.
    pub capacity: u32,
    /// Where its RTSP server is reached (`rtsp://host:port`): other nodes redirect RTSP clients
    /// of its cameras there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtsp: Option<String>,
}

/// How long before the TTL is over a node takes itself out: a fifth of the TTL, at least a
/// second (a clock that runs a little slow, a renewal's own time on the way).
pub fn margin(ttl: Duration) -> Duration {
    (ttl / 5).max(Duration::from_secs(1))
}

/// Whether a lease last renewed by a request sent at `renewed` still holds at `now`, for this
/// node's purposes.
pub fn holds(renewed: Instant, now: Instant, ttl: Duration) -> bool {
    now.saturating_duration_since(renewed) + margin(ttl) < ttl
}

/// The node's membership, kept by a task of its own.
pub struct Membership {
    standing: watch::Receiver<Standing>,
    etcd: Arc<Etcd>,
    fence: Fence,
}

impl Membership {
    /// Starts keeping the node registered (on the current tokio runtime).
    pub fn start(config: &ClusterConfig, info: &NodeInfo) -> anyhow::Result<Self> {
        let ttl = Duration::from_secs(u64::from(config.ttl_s));
        // A call may not take longer than a renewal interval.
        let etcd = Arc::new(Etcd::connect(&config.etcd, ttl / 3)?);
        let key = format!("{}{}", super::NODES, config.node);
        let info = serde_json::to_vec(info)?;
        let (tx, rx) = watch::channel(Standing::Joining {
            why: "starting".into(),
        });
        let fence = Fence::closed();
        tokio::spawn(keep(etcd.clone(), key, info, ttl, tx, fence.clone()));
        Ok(Self {
            standing: rx,
            etcd,
            fence,
        })
    }

    /// Leaves the cluster at once (a clean shutdown): the lease is revoked, so the node's key
    /// and whatever it held go now, not a TTL later.
    pub async fn leave(self) {
        if let Standing::Member { lease } = self.standing() {
            drop(self.standing);
            if let Err(e) = self.etcd.revoke(lease).await {
                tracing::warn!("cluster: leaving: {e:#}");
            }
        }
    }

    /// Where the node stands now.
    pub fn standing(&self) -> Standing {
        self.standing.borrow().clone()
    }

    /// The fence of the cameras the node holds: open while its lease surely holds.
    pub fn fence(&self) -> Fence {
        self.fence.clone()
    }

    /// The etcd client the node uses.
    pub fn etcd(&self) -> Arc<Etcd> {
        self.etcd.clone()
    }

    /// Changes of standing, for whoever must act on them.
    pub fn watch(&self) -> watch::Receiver<Standing> {
        self.standing.clone()
    }
}

/// Registers the node and keeps it registered, for as long as the receivers live.
async fn keep(
    etcd: Arc<Etcd>,
    key: String,
    info: Vec<u8>,
    ttl: Duration,
    tx: watch::Sender<Standing>,
    fence: Fence,
) {
    let every = ttl / 3;
    let set = |s: Standing| {
        if !matches!(s, Standing::Member { .. }) {
            fence.close();
        }
        tx.send_if_modified(|cur| {
            if *cur == s {
                return false;
            }
            match &s {
                Standing::Member { lease } => tracing::info!(lease, "cluster: registered as {key}"),
                Standing::Fenced { why } => tracing::warn!("cluster: fenced: {why}"),
                Standing::Joining { why } => tracing::warn!("cluster: not registered: {why}"),
            }
            *cur = s;
            true
        })
    };
    loop {
        if tx.is_closed() {
            return;
        }
        let sent = Instant::now();
        let lease = match register(&etcd, &key, &info, ttl).await {
            Ok(lease) => lease,
            Err(why) => {
                set(Standing::Joining { why });
                tokio::time::sleep(every).await;
                continue;
            }
        };
        let mut renewed = sent;
        fence.until(sent + ttl - margin(ttl));
        set(Standing::Member { lease });
        loop {
            tokio::time::sleep(every).await;
            if tx.is_closed() {
                let _ = etcd.revoke(lease).await;
                return;
            }
            let sent = Instant::now();
            match etcd.keep_alive(lease).await {
                Ok(Some(_)) => {
                    renewed = sent;
                    fence.until(sent + ttl - margin(ttl));
                }
                Ok(None) => {
                    set(Standing::Fenced {
                        why: "the lease expired".into(),
                    });
                    break;
                }
                Err(e) if holds(renewed, Instant::now(), ttl) => {
                    tracing::warn!("cluster: renewing the lease failed (retrying): {e:#}");
                }
                Err(e) => {
                    set(Standing::Fenced {
                        why: format!("the lease could not be renewed in time: {e:#}"),
                    });
                    break;
                }
            }
            if !holds(renewed, Instant::now(), ttl) {
                set(Standing::Fenced {
                    why: "the lease could not be renewed in time".into(),
                });
                break;
            }
        }
    }
}

/// Creates the node's key under a new lease; an error says why not (etcd unreachable, the name
/// held by another node).
async fn register(etcd: &Etcd, key: &str, info: &[u8], ttl: Duration) -> Result<i64, String> {
    let lease = etcd
        .grant(ttl.as_secs() as u32)
        .await
        .map_err(|e| format!("{e:#}"))?;
    match etcd.create(key, info, lease).await {
        Ok(Some(_)) => Ok(lease),
        Ok(None) => {
            let _ = etcd.revoke(lease).await;
            Err(format!(
                "{key} is held by another node's lease (a node of the same name is running)"
            ))
        }
        Err(e) => {
            let _ = etcd.revoke(lease).await;
            Err(format!("{e:#}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_takes_itself_out_a_margin_before_its_lease_may_expire() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(5);
        assert_eq!(margin(ttl), Duration::from_secs(1));
        assert_eq!(margin(Duration::from_secs(30)), Duration::from_secs(6));
        assert!(holds(t0, t0 + Duration::from_millis(3900), ttl));
        assert!(!holds(t0, t0 + Duration::from_millis(4000), ttl));
        // A renewal sent later than now (a clock read out of order) still counts from now.
        assert!(holds(t0 + Duration::from_secs(1), t0, ttl));
    }
}
