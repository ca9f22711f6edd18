//! Keeping cameras through a loss of etcd's quorum, when every other node vouches for it.
//!
//! A node that cannot renew its lease fences itself before the lease may expire: another node
//! may be about to take its cameras. But when etcd has lost its quorum, nobody can renew,
//! claim or reassign anything, and leases do not expire either (a new etcd leader extends them
//! all when it takes over), so stopping every camera of the cluster would only turn an etcd
//! outage into a video outage. From inside one node the two cases look alike: a member that
//! answers "no leader" does not prove that no majority works elsewhere.
//!
//! So a node whose renewal is late asks every other node it last saw registered (their API,
//! `GET /api/cluster/failsafe`) when they last renewed theirs. If all of them answer, and none
//! has renewed since this node's first failed (or late) renewal was sent, no node that this one
//! knows of reaches a working etcd: the node keeps its fence open a while longer, as from the
//! moment it asked, and asks again at the next renewal. One answer showing a renewal after
//! that moment proves that etcd works for others: no more vouching, the node keeps trying to
//! renew and fences itself when the deadline passes (it may be cut off, or only unlucky while
//! etcd recovers; either way the deadline comes before its lease can expire). A node that does
//! not answer, or no other node at all, proves nothing: the same (the idea is Patroni's
//! failsafe mode; docs/cluster.md).

use std::time::{Duration, Instant};

use schemars::JsonSchema;

use crate::http_client::{Unread, read_capped};
use serde::{Deserialize, Serialize};

/// The largest answer read from another node.
const MAX_ANSWER: usize = 4096;

/// What a node answers to `GET /api/cluster/failsafe`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct PeerAnswer {
    /// The node that answers.
    pub node: String,
    /// How long ago it sent the last renewal of its lease that succeeded (none: not since it
    /// started).
    pub renewed_ago_ms: Option<u64>,
}

/// A node's answer and when it arrived, or why there is none.
pub type Answered = Result<(Instant, PeerAnswer), String>;

/// What the other nodes say, together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vouch {
    /// Every other node answered, and none has renewed since the asking node's first failure,
    /// for long enough that a node for which etcd works would have (see [`together`]).
    All,
    /// Every other node answered and none has renewed since, but too soon after the first
    /// failure to tell: the node neither keeps nor lets go yet.
    Pending,
    /// A node renewed since: etcd works for others.
    Denied(String),
    /// A node did not answer, or there is none: nothing is proven either way.
    Unsure(String),
}

/// Whether `answer`, received by `answered`, shows that its node has not renewed since `since`.
/// Its renewal happened at the latest at `answered - renewed_ago` (the answer may have been
/// made any time before it arrived), so that is what is compared.
pub fn vouches(since: Instant, answered: Instant, answer: &PeerAnswer) -> bool {
    match answer.renewed_ago_ms {
        None => true,
        Some(ms) => answered
            .checked_sub(Duration::from_millis(ms))
            .is_some_and(|renewed| renewed < since),
    }
}

/// The other nodes' answers together: all must vouch, and only once `wait` has passed since
/// `since` (a node for which etcd works sends a renewal every round, and each takes up to a
/// round: two rounds without one from any node is what shows that etcd answers none).
pub fn together(answers: Vec<(String, Answered)>, since: Instant, wait: Duration) -> Vouch {
    if answers.is_empty() {
        return Vouch::Unsure("no other node to vouch for it".into());
    }
    let mut unsure = None;
    let mut early = false;
    for (node, answer) in answers {
        match answer {
            Ok((_, a)) if a.node != node => {
                unsure.get_or_insert(format!("`{node}` answered as `{}`", a.node));
            }
            Ok((at, a)) if !vouches(since, at, &a) => {
                return Vouch::Denied(format!(
                    "`{node}` renewed its lease {} ms ago: etcd works for it",
                    a.renewed_ago_ms.unwrap_or(0)
                ));
            }
            Ok((at, _)) => early |= at.saturating_duration_since(since) < wait,
            Err(why) => {
                unsure.get_or_insert(format!("`{node}` did not answer: {why}"));
            }
        }
    }
    match unsure {
        Some(why) => Vouch::Unsure(why),
        None if early => Vouch::Pending,
        None => Vouch::All,
    }
}

/// Asks the other nodes.
pub struct Failsafe {
    http: reqwest::Client,
    /// The API token, sent to the other nodes (the nodes of a cluster share it).
    token: Option<String>,
    /// How long after the first failure the other nodes' silence counts.
    wait: Duration,
}

impl Failsafe {
    /// A client whose calls take at most `timeout`, for nodes that renew every `round`.
    pub fn new(token: Option<String>, timeout: Duration, round: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            token,
            wait: round * 2,
        })
    }

    /// Asks `peers` (name, API address) at once; `since` is this node's first failed renewal.
    pub async fn ask(&self, peers: &[(String, String)], since: Instant) -> Vouch {
        let calls = peers.iter().map(|(node, at)| async move {
            (
                node.clone(),
                self.ask_one(at).await.map(|a| (Instant::now(), a)),
            )
        });
        together(
            futures_util::future::join_all(calls).await,
            since,
            self.wait,
        )
    }

    async fn ask_one(&self, at: &str) -> Result<PeerAnswer, String> {
        let url = format!("{}/api/cluster/failsafe", at.trim_end_matches('/'));
        let mut req = self.http.get(&url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| e.without_url().to_string())?;
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status().as_u16()));
        }
        let body = match read_capped(resp, MAX_ANSWER).await {
            Ok(body) => body,
            Err(Unread::TooLong) => return Err("answer too long".into()),
            Err(Unread::Failed(e)) => return Err(e.without_url().to_string()),
        };
        serde_json::from_slice(&body).map_err(|e| format!("not an answer: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(node: &str, ago: Option<u64>) -> PeerAnswer {
        PeerAnswer {
            node: node.into(),
            renewed_ago_ms: ago,
        }
    }

    #[test]
    fn a_node_vouches_when_it_has_not_renewed_since() {
        let t0 = Instant::now();
        let since = t0 + Duration::from_secs(10);
        let at = since + Duration::from_millis(1500);
        // Renewed 2 s before the answer came: before `since`.
        assert!(vouches(since, at, &answer("b", Some(2000))));
        // Renewed 1 s before: after `since`.
        assert!(!vouches(since, at, &answer("b", Some(1000))));
        // Exactly at `since`: not before it, so no.
        assert!(!vouches(since, at, &answer("b", Some(1500))));
        assert!(vouches(since, at, &answer("b", None)), "never renewed");
    }

    #[test]
    fn all_must_vouch_one_renewal_denies_silence_proves_nothing() {
        let since = Instant::now();
        let wait = Duration::from_secs(2);
        let together = |a, s| together(a, s, wait);
        let at = since + Duration::from_secs(2);
        let ok = |n: &str| (n.to_string(), Ok((at, answer(n, Some(3000)))));
        assert_eq!(together(vec![ok("b"), ok("c")], since), Vouch::All);
        // Too soon after the first failure to tell.
        let soon = |n: &str| {
            let at = since + Duration::from_millis(1500);
            (n.to_string(), Ok((at, answer(n, Some(3000)))))
        };
        assert_eq!(together(vec![ok("b"), soon("c")], since), Vouch::Pending);
        let fresh = ("c".to_string(), Ok((at, answer("c", Some(100)))));
        assert!(matches!(
            together(vec![ok("b"), fresh.clone()], since),
            Vouch::Denied(w) if w.contains("`c`")
        ));
        let silent = ("c".to_string(), Err("connection refused".to_string()));
        assert!(matches!(
            together(vec![ok("b"), silent.clone()], since),
            Vouch::Unsure(w) if w.contains("connection refused")
        ));
        // A denial outweighs a silence, whatever the order.
        assert!(matches!(
            together(vec![silent, fresh], since),
            Vouch::Denied(_)
        ));
        assert!(matches!(together(vec![], since), Vouch::Unsure(_)));
        let other = ("b".to_string(), Ok((at, answer("x", Some(3000)))));
        assert!(matches!(together(vec![other], since), Vouch::Unsure(w) if w.contains("as `x`")));
    }
}
