//! A node's membership: registered under a lease it keeps alive, and fenced (out of the
//! cluster, by its own decision) as soon as it cannot be sure the lease still holds.
//!
//! The node's key (`/framegate/nodes/<node>`) is created under a lease of `ttl_s` and renewed
//! every third of it. etcd drops the key when the lease expires; the node cannot know when that
//! happens on etcd's clock, so it counts from the moment it *sent* its last successful renewal
//! and takes itself out [`margin`] before the TTL is over: from then on it is
//! [`Standing::Fenced`] (what it owns must stop: pushes, event writes) until it has registered
//! again under a new lease. Unless every other node vouches that etcd answers none of them
//! either (etcd has lost its quorum: nothing can move): then it keeps its cameras
//! ([`super::failsafe`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use super::etcd::Etcd;
use super::failsafe::{Failsafe, Vouch};
use super::fence::Fence;
use super::view::ClusterView;
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
    /// `view` is where it records its renewals and finds the other nodes; `failsafe` asks them
    /// when etcd does not answer.
    pub fn start(
        config: &ClusterConfig,
        info: &NodeInfo,
        view: Arc<ClusterView>,
        failsafe: Failsafe,
    ) -> anyhow::Result<Self> {
        let ttl = Duration::from_secs(u64::from(config.ttl_s));
        // A call may not take longer than a renewal interval.
        let etcd = Arc::new(Etcd::connect(&config.etcd, ttl / 3)?);
        let key = format!("{}{}", super::NODES, config.node);
        let info = serde_json::to_vec(info)?;
        let (tx, rx) = watch::channel(Standing::Joining {
            why: "starting".into(),
        });
        let fence = Fence::closed();
        tokio::spawn(
            Keeper {
                etcd: etcd.clone(),
                key,
                info,
                ttl,
                tx,
                fence: fence.clone(),
                view,
                failsafe,
            }
            .run(),
        );
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

/// What keeps the node registered.
struct Keeper {
    etcd: Arc<Etcd>,
    key: String,
    info: Vec<u8>,
    ttl: Duration,
    tx: watch::Sender<Standing>,
    fence: Fence,
    view: Arc<ClusterView>,
    failsafe: Failsafe,
}

impl Keeper {
    /// Moves the standing on (the fence closes unless the node is a member).
    fn set(&self, s: Standing) {
        if !matches!(s, Standing::Member { .. }) {
            self.fence.close();
            self.view.set_failsafe(false);
        }
        let key = &self.key;
        self.tx.send_if_modified(|cur| {
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
        });
    }

    /// Registers the node and keeps it registered, for as long as the receivers live.
    async fn run(self) {
        let every = self.ttl / 3;
        loop {
            if self.tx.is_closed() {
                return;
            }
            let sent = Instant::now();
            match register(&self.etcd, &self.key, &self.info, self.ttl).await {
                Ok(lease) => {
                    self.renewed(sent);
                    self.set(Standing::Member { lease });
                    if self.hold(lease, sent).await {
                        return;
                    }
                }
                Err(why) => {
                    self.set(Standing::Joining { why });
                    tokio::time::sleep(every).await;
                }
            }
        }
    }

    fn renewed(&self, sent: Instant) {
        self.fence.extend(sent + self.ttl - margin(self.ttl));
        self.view.renewed(sent);
    }

    /// Renews `lease` (registered by a request sent at `sent`) until it is lost; true when
    /// the node is leaving.
    async fn hold(&self, lease: i64, sent: Instant) -> bool {
        let (ttl, every) = (self.ttl, self.ttl / 3);
        // The fence is open until this plus the TTL minus the margin: the last renewal sent
        // that succeeded, or the last time every other node vouched (see `failsafe`).
        let mut confirmed = sent;
        // When the first renewal that failed (or was late) since the last success was sent.
        let mut failing: Option<Instant> = None;
        let mut last = sent;
        loop {
            // A renewal goes a round after the last was sent (at once if that one took longer),
            // so that one that answers late does not push the next past the deadline; while
            // they fail, half a round after (the other nodes are asked with each, and the fence
            // moves on from each answer).
            let next = if failing.is_none() { every } else { every / 2 };
            tokio::time::sleep_until((last + next).into()).await;
            if self.tx.is_closed() {
                let _ = self.etcd.revoke(lease).await;
                return true;
            }
            let sent = Instant::now();
            last = sent;
            let renewal = self.etcd.keep_alive(lease);
            tokio::pin!(renewal);
            // A renewal that takes more than half a round is late: the other nodes are asked
            // meanwhile, and the fence moves on as soon as they all vouch, before its deadline.
            let (result, vouch) = match tokio::time::timeout(every / 2, &mut renewal).await {
                Ok(r) => (r, None),
                Err(_) => {
                    let since = *failing.get_or_insert(sent);
                    let (asked, peers) = (Instant::now(), self.view.peers());
                    let v = self.failsafe.ask(&peers, since).await;
                    if v == Vouch::All {
                        confirmed = confirmed.max(asked);
                        self.fence.extend(asked + ttl - margin(ttl));
                    }
                    (renewal.await, Some((asked, v)))
                }
            };
            match result {
                Ok(Some(_)) => {
                    confirmed = confirmed.max(sent);
                    self.renewed(sent);
                    if failing.take().is_some() && self.view.swap_failsafe(false) {
                        tracing::info!("cluster: etcd answers again: the lease is renewed");
                    }
                    continue;
                }
                Ok(None) => {
                    self.set(Standing::Fenced {
                        why: "the lease expired".into(),
                    });
                    return false;
                }
                Err(e) => {
                    let since = *failing.get_or_insert(sent);
                    let (asked, vouch) = match vouch {
                        Some(v) => v,
                        None => {
                            let (asked, peers) = (Instant::now(), self.view.peers());
                            (asked, self.failsafe.ask(&peers, since).await)
                        }
                    };
                    match vouch {
                        Vouch::All => {
                            confirmed = confirmed.max(asked);
                            self.fence.extend(asked + ttl - margin(ttl));
                            if !self.view.swap_failsafe(true) {
                                tracing::warn!(
                                    "cluster: etcd answers no node (every other node vouched): keeping the cameras, nothing can move meanwhile: {e:#}"
                                );
                            }
                        }
                        Vouch::Denied(why) => {
                            self.set(Standing::Fenced {
                                why: format!("the lease could not be renewed, and {why}: {e:#}"),
                            });
                            return false;
                        }
                        Vouch::Unsure(why) if holds(confirmed, Instant::now(), ttl) => {
                            tracing::warn!(
                                "cluster: renewing the lease failed (retrying; no failsafe: {why}): {e:#}"
                            );
                        }
                        Vouch::Unsure(why) => {
                            self.set(Standing::Fenced {
                                why: format!(
                                    "the lease could not be renewed in time (no failsafe: {why}): {e:#}"
                                ),
                            });
                            return false;
                        }
                    }
                }
            }
            if !holds(confirmed, Instant::now(), ttl) {
                self.set(Standing::Fenced {
                    why: "the lease could not be renewed in time".into(),
                });
                return false;
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
