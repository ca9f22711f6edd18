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
        let mut v = Vouching {
            confirmed: sent,
            failing: None,
            doubt: None,
            pending: false,
        };
        let mut last = sent;
        loop {
            // A renewal goes a round after the last was sent (at once if that one took longer),
            // so that one that answers late does not push the next past the deadline; while
            // they fail, half a round after.
            let next = if v.failing.is_none() {
                every
            } else {
                every / 2
            };
            tokio::time::sleep_until((last + next).into()).await;
            if self.tx.is_closed() {
                let _ = self.etcd.revoke(lease).await;
                return true;
            }
            let sent = Instant::now();
            last = sent;
            let renewal = self.etcd.keep_alive(lease);
            tokio::pin!(renewal);
            // While the renewal is out (it may hang: every member without a leader), the other
            // nodes are asked every half round once it is late, so that the fence moves on
            // before its deadline if they all vouch.
            let mut asked = false;
            let result = loop {
                let ask_at = tokio::time::Instant::from(sent + every / 2);
                tokio::select! {
                    r = &mut renewal => break r,
                    _ = tokio::time::sleep_until(ask_at), if !asked => {
                        self.ask(&mut v, sent).await;
                        asked = true;
                    }
                    _ = tokio::time::sleep(every / 2), if asked => self.ask(&mut v, sent).await,
                }
            };
            match result {
                Ok(Some(_)) => {
                    v.confirmed = v.confirmed.max(sent);
                    v.doubt = None;
                    v.pending = false;
                    self.renewed(sent);
                    if v.failing.take().is_some() {
                        let ends = if self.view.swap_failsafe(false) {
                            " (the failsafe ends)"
                        } else {
                            ""
                        };
                        tracing::info!("cluster: etcd answers again: the lease is renewed{ends}");
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
                    if !asked {
                        // It failed at once (every member refused): ask now.
                        self.ask(&mut v, sent).await;
                    }
                    if !self.view.failsafe_on() {
                        let why = match &v.doubt {
                            Some(d) => format!("{d}; {e:#}"),
                            None => format!("{e:#}"),
                        };
                        tracing::warn!("cluster: renewing the lease failed (retrying): {why}");
                    }
                }
            }
            if !holds(v.confirmed, Instant::now(), ttl) && !v.pending {
                let why = v
                    .doubt
                    .take()
                    .map_or(String::new(), |w| format!(" (no failsafe: {w})"));
                self.set(Standing::Fenced {
                    why: format!("the lease could not be renewed in time{why}"),
                });
                return false;
            }
        }
    }

    /// Asks the other nodes whether etcd answers them, the renewal sent at `sent` being late
    /// or failed, and moves the fence on when they all vouch.
    async fn ask(&self, v: &mut Vouching, sent: Instant) {
        let since = *v.failing.get_or_insert(sent);
        let asked = Instant::now();
        let peers = self.view.peers();
        v.pending = false;
        match self.failsafe.ask(&peers, since).await {
            Vouch::All => {
                v.doubt = None;
                v.confirmed = v.confirmed.max(asked);
                self.fence.extend(asked + self.ttl - margin(self.ttl));
                if !self.view.swap_failsafe(true) {
                    tracing::warn!(
                        "cluster: etcd answers no node (every other node vouched): keeping the cameras, nothing can move meanwhile"
                    );
                }
            }
            // Nobody renewed, but too soon to tell: the fence closes at its deadline (nothing
            // leaves the node meanwhile), the cameras stay.
            Vouch::Pending => v.pending = true,
            // etcd works for another node (this one may be cut off, or only unlucky while etcd
            // recovers), or nothing is known: no failsafe; the renewals go on until the
            // deadline decides.
            Vouch::Denied(why) | Vouch::Unsure(why) => {
                self.view.set_failsafe(false);
                v.doubt = Some(why);
            }
        }
    }
}

/// Where the renewals stand while they fail.
struct Vouching {
    /// The fence is open until this plus the TTL minus the margin: the last renewal sent that
    /// succeeded, or the last time every other node vouched.
    confirmed: Instant,
    /// When the first renewal that failed (or was late) since the last success was sent.
    failing: Option<Instant>,
    /// Why the other nodes did not vouch, last time they were asked.
    doubt: Option<String>,
    /// Whether they last answered that it is too soon to tell.
    pending: bool,
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
