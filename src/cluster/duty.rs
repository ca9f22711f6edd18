//! What a registered node does every round (a third of the TTL, and at once when its standing
//! changes): the assigner's work when it holds the assigner key, then its own cameras.
//!
//! - **Election**: the first node to create [`ASSIGNER`] under its lease assigns, for as long
//!   as that lease lives; when it goes, the next round of another node takes the key.
//! - **Assigning**: the plan of [`super::assign::plan`] over the live nodes, the cameras and who
//!   holds them (owner keys; a camera assigned but not claimed yet counts as held by its node,
//!   newest of all, so that a node starting up does not see its cameras moved on), written as
//!   `assign/<camera>` = node, only where it changed.
//! - **Owning**: a camera assigned to this node is claimed by creating `owner/<camera>` under
//!   the node's lease (it fails while the previous owner's key lives: that node lets go of it
//!   first, or its lease expires), and its revision is the fencing token; then the stream is
//!   started from `cameras/<camera>`. A camera no longer assigned to it is stopped, then its
//!   owner key deleted (only if it is still the one this node wrote).
//! - **Refusing**: a camera the node cannot run is said so in `refused/<camera>/<node>`
//!   ([`super::refusal`]); the assigner gives it to a node that did not refuse it.
//! - **Fenced** (or not registered): every camera the node holds is stopped at once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::sync::watch;

use super::assign::{self, Held};
use super::etcd::{Etcd, Kv, MAX_TXN_OPS};
use super::node::{NodeInfo, Standing};
use super::refusal::{self, Refusal, Refusals};
use super::{ASSIGN, ASSIGNER, CAMERAS, MAX_CAMERA_BYTES, NODES, OWNER, REFUSED};
use crate::config::{ProcessorConfig, StreamConfig};

/// The most cameras and nodes read in one round.
pub const MAX_KEYS: usize = 20_000;

/// Where the node's cameras run.
pub trait Host: Send + Sync + 'static {
    /// Starts `config` for the cluster, held with fencing token `token`.
    fn start(&self, config: StreamConfig, token: i64) -> Result<(), String>;
    /// Stops a camera started by [`Host::start`].
    fn stop(&self, id: &str);
}

/// Runs the node's rounds until `standing`'s sender goes.
pub async fn run(
    etcd: Arc<Etcd>,
    node: String,
    mut standing: watch::Receiver<Standing>,
    every: Duration,
    host: Arc<dyn Host>,
    view: Arc<super::view::ClusterView>,
) {
    let mut owned: BTreeMap<String, i64> = BTreeMap::new();
    let mut refusals = Refusals::default();
    let mut settling = Settling::new(every * 6);
    // The lease the cameras in `owned` were claimed under.
    let mut claimed_under = None;
    loop {
        let now = standing.borrow_and_update().clone();
        let lease = match now {
            Standing::Member { lease } => Some(lease),
            _ => None,
        };
        // Not a member, or a member under another lease (fenced and registered again before
        // this loop looked): the cameras held are no longer the node's.
        if claimed_under != lease && !owned.is_empty() {
            tracing::warn!(
                cameras = owned.len(),
                "cluster: the lease they were claimed under is gone: stopping every camera held"
            );
            stop_all(&mut owned, &host).await;
        }
        claimed_under = lease;
        view.set_member(lease.is_some());
        if let Some(lease) = lease
            && let Err(e) = round(
                &etcd,
                &node,
                lease,
                (&mut owned, &mut refusals),
                &host,
                &mut settling,
            )
            .await
        {
            tracing::warn!("cluster: round failed (next in {every:?}): {e:#}");
        }
        if lease.is_some()
            && let Err(e) = view.refresh(&etcd).await
        {
            tracing::warn!("cluster: reading the cluster failed: {e:#}");
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            changed = standing.changed() => if changed.is_err() { break },
        }
    }
    stop_all(&mut owned, &host).await;
}

/// Stops every camera in `owned`.
async fn stop_all(owned: &mut BTreeMap<String, i64>, host: &Arc<dyn Host>) {
    for cam in std::mem::take(owned).into_keys() {
        let h = host.clone();
        let _ = tokio::task::spawn_blocking(move || h.stop(&cam)).await;
    }
}

async fn round(
    etcd: &Etcd,
    node: &str,
    lease: i64,
    held: (&mut BTreeMap<String, i64>, &mut Refusals),
    host: &Arc<dyn Host>,
    settling: &mut Settling,
) -> Result<()> {
    let leader = match etcd.create(ASSIGNER, node.as_bytes(), lease).await? {
        Some(_) => {
            tracing::info!("cluster: this node assigns");
            true
        }
        None => etcd
            .get(ASSIGNER)
            .await?
            .is_some_and(|k| k.lease == lease && k.value == node.as_bytes()),
    };
    if leader {
        assign_round(etcd, settling).await?;
    } else {
        settling.term_over();
    }
    own_round(etcd, node, lease, held, host).await
}

/// Which live nodes the assigner gives cameras to: those seen for a while. A node that just
/// registered (started, or came back after its lease expired: a flapping node) gets cameras
/// only after `settle`, so that a node that comes and goes does not pull cameras back and forth
/// (it gets at once only what the settled nodes have no room for).
/// An assigner knows nothing of the nodes' past when its term begins: the nodes live at its
/// first round count as settled (an assigner taking over); when no node is settled, every live
/// node is eligible (a cluster starting: the first node takes the cameras, the others their
/// share once settled).
#[derive(Debug)]
pub struct Settling {
    settle: Duration,
    first_seen: BTreeMap<String, Instant>,
    /// Whether this node's term as the assigner has had its first round.
    in_term: bool,
}

impl Settling {
    /// Nodes settle after `settle`.
    pub fn new(settle: Duration) -> Self {
        Self {
            settle,
            first_seen: BTreeMap::new(),
            in_term: false,
        }
    }

    /// This node no longer assigns: the next term starts afresh.
    pub fn term_over(&mut self) {
        self.in_term = false;
        self.first_seen.clear();
    }

    /// The eligible nodes of `live` (name → capacity) at `now`.
    pub fn eligible(
        &mut self,
        live: &BTreeMap<String, u32>,
        now: Instant,
    ) -> BTreeMap<String, u32> {
        let first_round = !std::mem::replace(&mut self.in_term, true);
        self.first_seen.retain(|n, _| live.contains_key(n));
        let seen = if first_round {
            now.checked_sub(self.settle).unwrap_or(now)
        } else {
            now
        };
        for n in live.keys() {
            self.first_seen.entry(n.clone()).or_insert(seen);
        }
        let settled: BTreeMap<String, u32> = live
            .iter()
            .filter(|(n, _)| {
                first_round || now.saturating_duration_since(self.first_seen[*n]) >= self.settle
            })
            .map(|(n, c)| (n.clone(), *c))
            .collect();
        if settled.is_empty() {
            live.clone()
        } else {
            settled
        }
    }
}

/// Key names under `prefix`, without it.
fn names(kvs: Vec<Kv>, prefix: &str) -> impl Iterator<Item = (String, Kv)> + '_ {
    kvs.into_iter()
        .map(move |k| (k.name(prefix).to_string(), k))
}

/// The assigner's work: the plan written where it changed.
async fn assign_round(etcd: &Etcd, settling: &mut Settling) -> Result<()> {
    let live: BTreeMap<String, u32> = names(etcd.prefix(NODES, MAX_KEYS).await?, NODES)
        .filter_map(|(n, k)| {
            serde_json::from_slice::<NodeInfo>(&k.value)
                .ok()
                .map(|i| (n, i.capacity))
        })
        .collect();
    let nodes = settling.eligible(&live, Instant::now());
    let revisions: BTreeMap<String, i64> =
        names(etcd.prefix_keys(CAMERAS, MAX_KEYS).await?, CAMERAS)
            .map(|(c, k)| (c, k.mod_revision))
            .collect();
    let cameras: BTreeSet<String> = revisions.keys().cloned().collect();
    // The nodes that could not run a camera's current table are left out for it.
    let refused: BTreeMap<String, BTreeSet<String>> =
        refusal::standing(etcd.prefix(REFUSED, MAX_KEYS).await?, &revisions)
            .into_iter()
            .map(|(c, by)| (c, by.into_keys().collect()))
            .collect();
    let assigned: BTreeMap<String, String> = names(etcd.prefix(ASSIGN, MAX_KEYS).await?, ASSIGN)
        .map(|(c, k)| (c, String::from_utf8_lossy(&k.value).into_owned()))
        .collect();
    let mut held: BTreeMap<String, Held> = assigned
        .iter()
        .map(|(c, n)| {
            (
                c.clone(),
                Held {
                    node: n.clone(),
                    token: i64::MAX,
                },
            )
        })
        .collect();
    for (c, k) in names(etcd.prefix(OWNER, MAX_KEYS).await?, OWNER) {
        held.insert(
            c,
            Held {
                node: String::from_utf8_lossy(&k.value).into_owned(),
                token: k.mod_revision,
            },
        );
    }
    let mut plan = assign::plan_excluding(&cameras, &nodes, &held, &refused);
    // What the settled nodes have no room for goes to the others at once: a camera running is
    // worth more than a node that may not stay.
    let unsettled: BTreeMap<String, u32> = live
        .iter()
        .filter(|(n, _)| !nodes.contains_key(*n))
        .map(|(n, c)| (n.clone(), *c))
        .collect();
    if !plan.unplaced.is_empty() && !unsettled.is_empty() {
        let homeless: BTreeSet<String> = plan.unplaced.drain(..).collect();
        let rest = assign::plan_excluding(&homeless, &unsettled, &held, &refused);
        plan.owner.extend(rest.owner);
        plan.placed.extend(rest.placed);
        plan.moved.extend(rest.moved);
        plan.unplaced = rest.unplaced;
    }
    let puts: Vec<(String, Vec<u8>)> = plan
        .owner
        .iter()
        .filter(|(c, n)| assigned.get(*c) != Some(*n))
        .map(|(c, n)| (format!("{ASSIGN}{c}"), n.clone().into_bytes()))
        .collect();
    let deletes: Vec<String> = assigned
        .keys()
        .filter(|c| !plan.owner.contains_key(*c))
        .map(|c| format!("{ASSIGN}{c}"))
        .collect();
    for batch in puts.chunks(MAX_TXN_OPS) {
        etcd.put_all(batch).await?;
    }
    for batch in deletes.chunks(MAX_TXN_OPS) {
        etcd.delete_all(batch).await?;
    }
    if !puts.is_empty() || !deletes.is_empty() {
        tracing::info!(
            assigned = puts.len(),
            unassigned = deletes.len(),
            moved = plan.moved.len(),
            unplaced = plan.unplaced.len(),
            nodes = nodes.len(),
            "cluster: cameras assigned"
        );
    }
    Ok(())
}

/// This node's cameras: claimed when assigned to it, let go when not.
async fn own_round(
    etcd: &Etcd,
    node: &str,
    lease: i64,
    (owned, refusals): (&mut BTreeMap<String, i64>, &mut Refusals),
    host: &Arc<dyn Host>,
) -> Result<()> {
    let mine: BTreeSet<String> = names(etcd.prefix(ASSIGN, MAX_KEYS).await?, ASSIGN)
        .filter(|(_, k)| k.value == node.as_bytes())
        .map(|(c, _)| c)
        .collect();
    refusals.keep(&mine);
    // A refusal that has stood a while goes: the node may be given the camera again (a model
    // installed, a folder mounted meanwhile).
    for cam in refusals.due(Instant::now()) {
        etcd.delete_all(&[refusal::key(&cam, node)]).await?;
    }
    let gone: Vec<String> = owned
        .keys()
        .filter(|c| !mine.contains(*c))
        .cloned()
        .collect();
    for cam in gone {
        let token = owned.get(&cam).copied().unwrap_or(0);
        let h = host.clone();
        let id = cam.clone();
        tokio::task::spawn_blocking(move || h.stop(&id)).await?;
        // Kept as held until its key is gone: a failed delete is tried again next round (the
        // stop again is harmless), or the next owner could never claim it.
        etcd.delete_if(&format!("{OWNER}{cam}"), token).await?;
        owned.remove(&cam);
        tracing::info!(camera = %cam, "cluster: camera let go (assigned elsewhere)");
    }
    let wanted: Vec<&String> = mine.iter().filter(|c| !owned.contains_key(*c)).collect();
    for cam in wanted {
        let key = format!("{OWNER}{cam}");
        let token = match etcd.create(&key, node.as_bytes(), lease).await? {
            Some(token) => token,
            // Already this node's, under this lease (a claim whose start or release failed
            // half-way): taken up again rather than left stuck.
            None => match etcd.get(&key).await? {
                Some(k) if k.lease == lease && k.value == node.as_bytes() => k.mod_revision,
                _ => continue, // its previous owner still holds it
            },
        };
        let (started, revision) = match camera(etcd, cam).await {
            Ok((config, revision)) => {
                let h = host.clone();
                let started = tokio::task::spawn_blocking(move || h.start(config, token))
                    .await?
                    .map_err(anyhow::Error::msg);
                (started, revision)
            }
            Err(e) => (Err(e), 0),
        };
        match started {
            Ok(()) => {
                if refusals.clear(cam) {
                    tracing::info!(camera = %cam, "cluster: camera runs here now");
                    etcd.delete_all(&[refusal::key(cam, node)]).await?;
                }
                tracing::info!(camera = %cam, token, "cluster: camera claimed");
                owned.insert(cam.clone(), token);
            }
            Err(e) => {
                let why = format!("{e:#}");
                if refusals.note(cam, &why, Instant::now()) {
                    tracing::warn!(camera = %cam, "cluster: cannot run this camera (the assigner gives it to another node; logged again when the reason changes): {why}");
                } else {
                    tracing::debug!(camera = %cam, "cluster: cannot run this camera: {why}");
                }
                // Said in etcd first, so that the assigner does not give it back at once.
                let said = serde_json::to_vec(&Refusal::new(revision, &why))?;
                etcd.put(&refusal::key(cam, node), &said, lease).await?;
                etcd.delete_if(&key, token).await?;
            }
        }
    }
    Ok(())
}

/// A camera's config from etcd and its table's revision, checked as the API checks a stream:
/// bounded, valid, and not naming code to run.
async fn camera(etcd: &Etcd, id: &str) -> Result<(StreamConfig, i64)> {
    let kv = etcd
        .get(&format!("{CAMERAS}{id}"))
        .await?
        .context("the camera is no longer in etcd")?;
    Ok((parse_camera(id, &kv.value)?, kv.mod_revision))
}

/// Parses and checks a camera's table.
pub fn parse_camera(id: &str, value: &[u8]) -> Result<StreamConfig> {
    if value.len() > MAX_CAMERA_BYTES {
        bail!(
            "its table is {} bytes (at most {MAX_CAMERA_BYTES})",
            value.len()
        );
    }
    let text = std::str::from_utf8(value).context("its table is not UTF-8")?;
    let config: StreamConfig = toml::from_str(text).context("its table")?;
    if config.id.as_str() != id {
        bail!("its table says id `{}`", config.id.as_str());
    }
    if config
        .processors
        .iter()
        .any(|p| matches!(p, ProcessorConfig::Python(_)))
    {
        bail!("a `python` processor cannot come from etcd");
    }
    crate::config::validate_stream(&config).map_err(anyhow::Error::msg)?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_gets_cameras_once_it_has_stayed_a_while() {
        let t0 = Instant::now();
        let s10 = Duration::from_secs(10);
        let mut s = Settling::new(s10);
        let nodes = |names: &[&str]| -> BTreeMap<String, u32> {
            names.iter().map(|n| (n.to_string(), 8)).collect()
        };
        // The nodes there when the term begins are settled at once.
        assert_eq!(s.eligible(&nodes(&["a", "b"]), t0), nodes(&["a", "b"]));
        // A node that joins (or comes back) waits.
        let later = t0 + Duration::from_secs(1);
        assert_eq!(
            s.eligible(&nodes(&["a", "b", "c"]), later),
            nodes(&["a", "b"])
        );
        assert_eq!(
            s.eligible(&nodes(&["a", "b", "c"]), later + s10),
            nodes(&["a", "b", "c"])
        );
        // Gone and back: it waits again.
        s.eligible(&nodes(&["a", "b"]), later + s10);
        let back = later + s10 + Duration::from_secs(1);
        assert_eq!(
            s.eligible(&nodes(&["a", "b", "c"]), back),
            nodes(&["a", "b"])
        );
        // Nobody settled (every settled node gone): every live node is eligible.
        assert_eq!(s.eligible(&nodes(&["c"]), back), nodes(&["c"]));
        // A new term: everyone live is settled.
        s.term_over();
        assert_eq!(s.eligible(&nodes(&["c", "d"]), back), nodes(&["c", "d"]));
    }

    #[test]
    fn a_camera_from_etcd_is_checked_like_a_config_stream() {
        let ok = b"id = \"a\"\nsource = \"test://smpte\"\n";
        assert_eq!(parse_camera("a", ok).unwrap().id.as_str(), "a");
        for (id, value, want) in [
            ("b", ok.as_slice(), "says id"),
            ("a", b"id = \"a\"\nsource = 5\n".as_slice(), "its table"),
            ("a", b"\xff\xfe".as_slice(), "UTF-8"),
            ("a", b"id = \"a\"\nsource = \"test://smpte\"\nstall_timeout_s = 1e300\n".as_slice(), "stall_timeout_s"),
            ("a", b"id = \"a\"\nsource = \"test://smpte\"\nprocessors = [{ kind = \"python\", file = \"x.py\" }]\n".as_slice(), "python"),
        ] {
            let e = format!("{:#}", parse_camera(id, value).unwrap_err());
            assert!(e.contains(want), "{e}");
        }
        assert!(parse_camera("a", &vec![b' '; MAX_CAMERA_BYTES + 1]).is_err());
    }
}
