//! Cameras a node cannot run (a `detect` model it lacks, a `file://` source outside its
//! `media_dirs`, a source it cannot open): the node says so in etcd, and the assigner gives the
//! camera to another node.
//!
//! The node writes `refused/<camera>/<node>` under its own lease, with the revision of the
//! camera's table it tried and why. The assigner leaves out, for that camera, every node whose
//! refusal names the table's current revision: a changed table is tried again everywhere. A
//! node deletes its refusal when the camera runs there after all, and after
//! [`RETRY_AFTER`] (a model installed meanwhile, a folder mounted); its lease takes them all
//! when it goes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::REFUSED;
use super::etcd::Kv;

/// How long a node's refusal stands before the node may be given the camera again.
pub const RETRY_AFTER: Duration = Duration::from_secs(300);
/// The longest reason kept in etcd.
const MAX_WHY: usize = 512;

/// What a node writes when it cannot run a camera.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The revision of the camera's table it tried.
    pub revision: i64,
    /// Why it could not run it.
    pub why: String,
}

impl Refusal {
    /// A refusal of the table at `revision`, its reason cut to a bounded length.
    pub fn new(revision: i64, why: &str) -> Self {
        let mut end = why.len().min(MAX_WHY);
        while !why.is_char_boundary(end) {
            end -= 1;
        }
        Self {
            revision,
            why: why[..end].to_string(),
        }
    }
}

/// The key of `node`'s refusal of `camera`.
pub fn key(camera: &str, node: &str) -> String {
    format!("{REFUSED}{camera}/{node}")
}

/// The refusals that stand: camera → node → why, for the tables' current `revisions` (a
/// refusal of an older table, or of a camera no longer there, does not count).
pub fn standing(
    kvs: Vec<Kv>,
    revisions: &BTreeMap<String, i64>,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for kv in kvs {
        let Some((camera, node)) = kv.name(REFUSED).rsplit_once('/') else {
            continue;
        };
        let Ok(r) = serde_json::from_slice::<Refusal>(&kv.value) else {
            continue;
        };
        if revisions.get(camera) == Some(&r.revision) && !node.is_empty() {
            out.entry(camera.to_string())
                .or_default()
                .insert(node.to_string(), r.why);
        }
    }
    out
}

/// What a node remembers of its own refusals: the reason last logged for each camera assigned
/// to it (a refusal repeated every round is a warning once, and again only when its reason
/// changes), and when it wrote each refusal key.
#[derive(Debug, Default)]
pub struct Refusals {
    logged: BTreeMap<String, String>,
    written: BTreeMap<String, Instant>,
}

impl Refusals {
    /// Records that `cam` could not run, at `now`; true when the reason is news.
    pub fn note(&mut self, cam: &str, why: &str, now: Instant) -> bool {
        self.written.insert(cam.to_string(), now);
        self.logged
            .insert(cam.to_string(), why.to_string())
            .as_deref()
            != Some(why)
    }

    /// Records that `cam` runs; true when it had been refused (its key is to be deleted).
    pub fn clear(&mut self, cam: &str) -> bool {
        self.logged.remove(cam);
        self.written.remove(cam).is_some()
    }

    /// Forgets the reasons of cameras no longer assigned to this node (their keys stay until
    /// they are due).
    pub fn keep(&mut self, mine: &BTreeSet<String>) {
        self.logged.retain(|c, _| mine.contains(c));
    }

    /// The cameras whose refusal has stood for [`RETRY_AFTER`] at `now`, forgotten: their keys
    /// are to be deleted.
    pub fn due(&mut self, now: Instant) -> Vec<String> {
        let due: Vec<String> = self
            .written
            .iter()
            .filter(|(_, at)| now.saturating_duration_since(**at) >= RETRY_AFTER)
            .map(|(c, _)| c.clone())
            .collect();
        for c in &due {
            self.written.remove(c);
            self.logged.remove(c);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &Refusal) -> Kv {
        Kv {
            key: key.into(),
            value: serde_json::to_vec(value).unwrap(),
            create_revision: 1,
            mod_revision: 1,
            lease: 7,
        }
    }

    #[test]
    fn a_refusal_stands_for_the_table_it_tried_only() {
        let revisions = BTreeMap::from([("cam0".to_string(), 10), ("cam1".to_string(), 20)]);
        let kvs = vec![
            kv(&key("cam0", "node-a"), &Refusal::new(10, "no model `coco`")),
            kv(&key("cam0", "node-b"), &Refusal::new(9, "an older table")),
            kv(
                &key("cam1", "node-a"),
                &Refusal::new(20, "outside media_dirs"),
            ),
            kv(
                &key("gone", "node-a"),
                &Refusal::new(5, "no such camera now"),
            ),
            Kv {
                value: b"not json".to_vec(),
                ..kv(&key("cam1", "node-c"), &Refusal::new(20, ""))
            },
            kv(
                &format!("{REFUSED}cam1"),
                &Refusal::new(20, "no node in the key"),
            ),
        ];
        let s = standing(kvs, &revisions);
        assert_eq!(s["cam0"].keys().collect::<Vec<_>>(), ["node-a"]);
        assert_eq!(s["cam1"]["node-a"], "outside media_dirs");
        assert_eq!(s["cam1"].len(), 1);
        assert!(!s.contains_key("gone"));
    }

    #[test]
    fn a_reason_is_bounded_on_a_character_boundary() {
        let long = "é".repeat(400); // 800 bytes
        let r = Refusal::new(1, &long);
        assert!(r.why.len() <= MAX_WHY && r.why.chars().all(|c| c == 'é'));
    }

    #[test]
    fn a_refusal_is_news_once_per_reason_and_due_after_a_while() {
        let t0 = Instant::now();
        let mut r = Refusals::default();
        assert!(r.note("cam0", "no model `coco`", t0));
        assert!(
            !r.note("cam0", "no model `coco`", t0),
            "the same reason again"
        );
        assert!(
            r.note("cam0", "source: cannot be read", t0),
            "another reason"
        );
        assert!(r.note("cam1", "no model `coco`", t0), "another camera");
        assert!(r.clear("cam0"));
        assert!(!r.clear("cam0"), "it runs: nothing to clear");
        assert!(
            r.note("cam0", "no model `coco`", t0),
            "refused again after running"
        );
        // A camera assigned elsewhere: its reason is forgotten (news again if refused again
        // here), its key is kept until due.
        r.keep(&BTreeSet::from(["cam0".to_string()]));
        assert!(r.due(t0 + RETRY_AFTER / 2).is_empty());
        let mut due = r.due(t0 + RETRY_AFTER);
        due.sort();
        assert_eq!(due, ["cam0", "cam1"]);
        assert!(r.due(t0 + RETRY_AFTER * 2).is_empty(), "due once");
        assert!(r.note("cam1", "no model `coco`", t0), "news again");
    }
}
