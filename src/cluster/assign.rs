//! Which node runs which camera: the cluster assigner's plan, a pure function of the cameras
//! wanted, the nodes alive with their capacities, and who runs what now.
//!
//! Each live node is given a *quota*: the cameras shared in proportion to the nodes' capacities
//! (largest remainders, ties to the node named first), never above a node's capacity. Then:
//!
//! 1. a camera stays where it is while its owner is alive and under its quota (the cameras a
//!    node keeps are the ones it has held longest: the lowest fencing tokens, then names);
//! 2. the others (their owner died, they are new, or their owner is over its quota) go to the
//!    node furthest below its quota: those that were running somewhere first (when room is
//!    short, a running camera is not stopped for a new one), then in the order of their names.
//!
//! So a node lost moves only its own cameras, a node joining takes its quota from the nodes
//! above theirs and nothing else moves, and a plan given back to itself moves nothing. When
//! the cameras outnumber the capacities, the ones left over are listed, not forced onto a node.
//! No I/O here: the etcd side reads the keys, calls [`plan`] and writes what changed.

use std::collections::{BTreeMap, BTreeSet};

/// A camera's current owner, as the `/owner/<camera>` key says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The node.
    pub node: String,
    /// The key's revision: older claims have lower tokens.
    pub token: i64,
}

/// What the assigner decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Every camera placed, with its node.
    pub owner: BTreeMap<String, String>,
    /// Cameras that had a live owner and were given to another node.
    pub moved: Vec<String>,
    /// Cameras that had no live owner and were placed.
    pub placed: Vec<String>,
    /// Cameras no node has room for.
    pub unplaced: Vec<String>,
}

impl Plan {
    /// The plan as the owner keys it becomes once every node has claimed its cameras, in the
    /// order of the cameras' names (what the next plan is given, in tests and the simulation).
    pub fn claims(&self) -> BTreeMap<String, Held> {
        self.owner
            .iter()
            .zip(0..)
            .map(|((camera, node), token)| {
                (
                    camera.clone(),
                    Held {
                        node: node.clone(),
                        token,
                    },
                )
            })
            .collect()
    }
}

/// Each node's share of `cameras`, in proportion to its capacity and at most its capacity.
pub fn quotas(nodes: &BTreeMap<String, u32>, cameras: usize) -> BTreeMap<String, usize> {
    let total: u64 = nodes.values().map(|&c| u64::from(c)).sum();
    let mut out: BTreeMap<String, usize> = nodes.keys().map(|n| (n.clone(), 0)).collect();
    if total == 0 || cameras == 0 {
        return out;
    }
    let wanted = (cameras as u64).min(total);
    // Whole shares first, then the remainders, largest first.
    let mut left = wanted;
    let mut rest: Vec<(u64, &String)> = Vec::with_capacity(nodes.len());
    for (n, &c) in nodes {
        let exact = wanted * u64::from(c);
        let whole = exact / total;
        out.insert(n.clone(), whole as usize);
        left -= whole;
        rest.push((exact % total, n));
    }
    rest.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    while left > 0 {
        let mut gave = false;
        for (_, n) in &rest {
            if left == 0 {
                break;
            }
            if let (Some(q), Some(&cap)) = (out.get_mut(*n), nodes.get(*n))
                && (*q as u64) < u64::from(cap)
            {
                *q += 1;
                left -= 1;
                gave = true;
            }
        }
        if !gave {
            break;
        }
    }
    out
}

/// The plan for `cameras` on the live `nodes` (name → capacity), given who holds what now.
pub fn plan(
    cameras: &BTreeSet<String>,
    nodes: &BTreeMap<String, u32>,
    held: &BTreeMap<String, Held>,
) -> Plan {
    plan_excluding(cameras, nodes, held, &BTreeMap::new())
}

/// [`plan`], where no camera goes to a node that `refused` it (camera → nodes). A camera kept
/// from the node its quota would give it goes to another node with room under its capacity,
/// even above its quota.
pub fn plan_excluding(
    cameras: &BTreeSet<String>,
    nodes: &BTreeMap<String, u32>,
    held: &BTreeMap<String, Held>,
    refused: &BTreeMap<String, BTreeSet<String>>,
) -> Plan {
    let refuses = |cam: &str, node: &str| refused.get(cam).is_some_and(|n| n.contains(node));
    let quota = quotas(nodes, cameras.len());
    let mut load: BTreeMap<&str, usize> = nodes.keys().map(|n| (n.as_str(), 0)).collect();
    let mut out = Plan::default();
    // 1. Who keeps what: per live node, its cameras oldest claim first, up to its quota.
    let mut by_node: BTreeMap<&str, Vec<(&Held, &String)>> = BTreeMap::new();
    for cam in cameras {
        if let Some(h) = held.get(cam)
            && nodes.contains_key(&h.node)
            && !refuses(cam, &h.node)
        {
            by_node.entry(h.node.as_str()).or_default().push((h, cam));
        }
    }
    let mut homeless: Vec<(&String, bool)> = Vec::new();
    for (node, mut cams) in by_node {
        cams.sort_by(|a, b| a.0.token.cmp(&b.0.token).then(a.1.cmp(b.1)));
        let keep = quota.get(node).copied().unwrap_or(0);
        for (i, (_, cam)) in cams.into_iter().enumerate() {
            if i < keep {
                out.owner.insert(cam.clone(), node.to_string());
                *load.entry(node).or_default() += 1;
            } else {
                homeless.push((cam, true));
            }
        }
    }
    for cam in cameras {
        let alive = held
            .get(cam)
            .is_some_and(|h| nodes.contains_key(&h.node) && !refuses(cam, &h.node));
        if !alive {
            homeless.push((cam, false));
        }
    }
    // Cameras that were running first (when room is short they keep running), then by name.
    homeless.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    // 2. The rest, each to the node furthest below its quota (then the one named first).
    // 3. Where refusals leave a camera without a node under its quota: the node with the most
    //    room under its capacity.
    for (cam, had_owner) in homeless {
        let room = |under: &dyn Fn(&str) -> usize| {
            load.iter()
                .filter(|(n, _)| !refuses(cam, n))
                .map(|(n, &l)| (under(n).saturating_sub(l), *n))
                .filter(|(room, _)| *room > 0)
                .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(a.1)))
                .map(|(_, n)| n)
        };
        let target = room(&|n| quota.get(n).copied().unwrap_or(0)).or_else(|| {
            refused
                .contains_key(cam.as_str())
                .then(|| room(&|n| nodes.get(n).map_or(0, |&c| c as usize)))
                .flatten()
        });
        match target {
            Some(n) => {
                out.owner.insert(cam.clone(), n.to_string());
                *load.entry(n).or_default() += 1;
                if had_owner {
                    out.moved.push(cam.clone());
                } else {
                    out.placed.push(cam.clone());
                }
            }
            None => out.unplaced.push(cam.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(list: &[(&str, u32)]) -> BTreeMap<String, u32> {
        list.iter().map(|(n, c)| (n.to_string(), *c)).collect()
    }

    fn cams(n: usize) -> BTreeSet<String> {
        (0..n).map(|i| format!("cam{i:05}")).collect()
    }

    fn counts(p: &Plan) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for n in p.owner.values() {
            *out.entry(n.clone()).or_default() += 1;
        }
        out
    }

    #[test]
    fn a_camera_goes_to_a_node_that_did_not_refuse_it() {
        let ns = nodes(&[("a", 4), ("b", 4)]);
        let one: BTreeSet<String> = cams(1);
        let cam = one.first().unwrap().clone();
        // Its quota would give it to `a`; `a` refused it: `b` takes it, above its quota.
        assert_eq!(plan(&one, &ns, &BTreeMap::new()).owner[&cam], "a");
        let refused = BTreeMap::from([(cam.clone(), BTreeSet::from(["a".to_string()]))]);
        let p = plan_excluding(&one, &ns, &BTreeMap::new(), &refused);
        assert_eq!(p.owner[&cam], "b");
        // Assigned to `a` (not claimed: it refused), it moves.
        let held = BTreeMap::from([(
            cam.clone(),
            Held {
                node: "a".into(),
                token: i64::MAX,
            },
        )]);
        let p = plan_excluding(&one, &ns, &held, &refused);
        assert_eq!((p.owner[&cam].as_str(), p.placed.len()), ("b", 1));
        // Refused by every node: listed, not forced.
        let all = BTreeMap::from([(cam.clone(), BTreeSet::from(["a".into(), "b".into()]))]);
        let p = plan_excluding(&one, &ns, &held, &all);
        assert_eq!(p.unplaced, std::slice::from_ref(&cam));
        // Other cameras are not disturbed: eight on two nodes, one refused by `a`.
        let eight = cams(8);
        let p = plan_excluding(&eight, &ns, &BTreeMap::new(), &refused);
        assert_eq!(p.owner[&cam], "b");
        assert_eq!(counts(&p).values().sum::<usize>(), 8);
        assert!(p.unplaced.is_empty());
    }

    #[test]
    fn quotas_follow_capacity_and_never_pass_it() {
        let q = quotas(&nodes(&[("a", 10), ("b", 20), ("c", 30)]), 60);
        assert_eq!(q.values().copied().collect::<Vec<_>>(), [10, 20, 30]);
        let q = quotas(&nodes(&[("a", 10), ("b", 20), ("c", 30)]), 7);
        assert_eq!(q.values().sum::<usize>(), 7);
        assert!(q["c"] >= q["b"] && q["b"] >= q["a"], "{q:?}");
        // More cameras than room: every node full, no more.
        let q = quotas(&nodes(&[("a", 2), ("b", 3)]), 100);
        assert_eq!((q["a"], q["b"]), (2, 3));
        // Equal nodes, remainders to the first named.
        let q = quotas(&nodes(&[("a", 5), ("b", 5), ("c", 5)]), 4);
        assert_eq!((q["a"], q["b"], q["c"]), (2, 1, 1));
        assert!(quotas(&nodes(&[]), 10).is_empty());
        assert_eq!(quotas(&nodes(&[("a", 0)]), 10)["a"], 0);
    }

    #[test]
    fn sixty_cameras_on_three_nodes_have_one_owner_each_and_a_replan_moves_nothing() {
        let ns = nodes(&[("n1", 30), ("n2", 30), ("n3", 30)]);
        let first = plan(&cams(60), &ns, &BTreeMap::new());
        assert_eq!(first.owner.len(), 60);
        assert_eq!(first.placed.len(), 60);
        assert!(first.moved.is_empty() && first.unplaced.is_empty());
        assert!(
            counts(&first).values().all(|&c| c == 20),
            "{:?}",
            counts(&first)
        );
        let again = plan(&cams(60), &ns, &first.claims());
        assert_eq!(again.owner, first.owner);
        assert!(again.moved.is_empty() && again.placed.is_empty());
    }

    #[test]
    fn a_lost_node_moves_only_its_cameras_and_a_joining_one_takes_only_its_share() {
        let three = nodes(&[("n1", 50), ("n2", 50), ("n3", 50)]);
        let before = plan(&cams(60), &three, &BTreeMap::new());
        // n2 dies: its 20 cameras are placed on n1 and n3; nothing else changes hands.
        let two = nodes(&[("n1", 50), ("n3", 50)]);
        let after = plan(&cams(60), &two, &before.claims());
        assert_eq!(after.placed.len(), 20);
        assert!(after.moved.is_empty());
        for (cam, node) in &before.owner {
            if node != "n2" {
                assert_eq!(&after.owner[cam], node, "{cam} moved");
            }
        }
        assert!(counts(&after).values().all(|&c| c == 30));
        // n4 joins: it takes 15, the exact minimum for an even spread, from the others.
        let four = nodes(&[("n1", 50), ("n3", 50), ("n4", 50), ("n5", 50)]);
        let joined = plan(&cams(60), &four, &after.claims());
        assert_eq!(joined.moved.len(), 30, "two joined: 15 each");
        assert!(counts(&joined).values().all(|&c| c == 15));
    }

    #[test]
    fn a_node_keeps_its_oldest_claims_and_the_overflow_is_listed() {
        let ns = nodes(&[("a", 2), ("b", 1)]);
        let mut h = BTreeMap::new();
        for (cam, token) in [("x", 5), ("y", 1), ("z", 3)] {
            h.insert(
                cam.to_string(),
                Held {
                    node: "a".into(),
                    token,
                },
            );
        }
        let set: BTreeSet<String> = ["w", "x", "y", "z"].map(String::from).into();
        let p = plan(&set, &ns, &h);
        // a's quota is 2: it keeps y and z (the oldest claims); x moves to b; w has no room.
        assert_eq!(p.owner["y"], "a");
        assert_eq!(p.owner["z"], "a");
        assert_eq!(p.owner["x"], "b");
        assert_eq!(p.moved, ["x"]);
        assert_eq!(p.unplaced, ["w"]);
        // An owner that is not a live node counts as none; an unwanted camera is dropped.
        let mut h2 = h.clone();
        h2.insert(
            "w".into(),
            Held {
                node: "gone".into(),
                token: 0,
            },
        );
        let p = plan(&["w".to_string()].into(), &ns, &h2);
        assert_eq!(p.placed, ["w"]);
        assert_eq!(p.owner.len(), 1);
    }
}
