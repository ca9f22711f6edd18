//! `framegate cluster ...`: the cameras written to etcd, the nodes read from it; and a running
//! node's membership.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::cluster::duty::Host;
use crate::cluster::etcd::{Etcd, MAX_TXN_OPS};
use crate::cluster::failsafe::Failsafe;
use crate::cluster::node::{Membership, NodeInfo};
use crate::cluster::view::ClusterView;
use crate::cluster::{ASSIGN, CAMERAS, NODES, OWNER, REFUSED};
use crate::config::{Config, ProcessorConfig, StreamConfig, StreamId};
use crate::control::Manager;
use crate::publish::LazyRtspServer;

/// How long one call to etcd may take from the command line.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The most cameras (and nodes) read or written at once.
pub const MAX_CAMERAS: usize = 10_000;

/// Writes the streams of the config file at `file` to etcd as the cluster's cameras (each
/// stream's table as TOML under `/framegate/cameras/<id>`), replacing those of the same id.
/// The whole file is checked first: nothing is written unless every stream is valid. Returns
/// how many were written.
pub fn import(etcd: &[String], file: &Path) -> Result<usize> {
    let config = crate::config::load_cameras_file(file)?;
    let pairs = cameras(&config)?;
    let etcd = Etcd::connect(etcd, CALL_TIMEOUT)?;
    block_on(async {
        for (i, batch) in pairs.chunks(MAX_TXN_OPS).enumerate() {
            etcd.put_all(batch).await.with_context(|| {
                format!(
                    "writing cameras to etcd: {} of {} written",
                    i * MAX_TXN_OPS,
                    pairs.len()
                )
            })?;
        }
        Ok(pairs.len())
    })
}

/// The keys and values of a config's streams as cameras; refused when one runs the user's
/// Python code (a node runs what etcd holds: only its own config file may name code to run).
fn cameras(config: &Config) -> Result<Vec<(String, Vec<u8>)>> {
    if config.streams.is_empty() {
        bail!("the file has no [[streams]] to import");
    }
    if config.streams.len() > MAX_CAMERAS {
        bail!("{} streams (at most {MAX_CAMERAS})", config.streams.len());
    }
    config
        .streams
        .iter()
        .map(|s| {
            if s.processors
                .iter()
                .any(|p| matches!(p, ProcessorConfig::Python(_)))
            {
                bail!(
                    "stream `{}`: a `python` processor cannot be imported into a cluster (only a node's own config file may name code to run)",
                    s.id.as_str()
                );
            }
            let toml = toml::to_string(s).with_context(|| format!("stream `{}`", s.id.as_str()))?;
            Ok((format!("{CAMERAS}{}", s.id.as_str()), toml.into_bytes()))
        })
        .collect()
}

/// Prints the nodes registered now and the cameras' ids (text, or one JSON object).
pub fn print_status(etcd: &[String], json: bool) -> Result<()> {
    let nodes = nodes(etcd)?;
    let cameras = cameras_placed(etcd)?;
    if json {
        let nodes: Vec<_> = nodes
            .iter()
            .map(|(n, i, lease)| {
                serde_json::json!({"node": n, "advertise": i.advertise, "rtsp": i.rtsp,
                                   "capacity": i.capacity, "lease": lease.to_string()})
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({ "nodes": nodes, "cameras": cameras })
        );
    } else {
        for (n, i, _) in &nodes {
            println!("node {n}: {} (capacity {})", i.advertise, i.capacity);
        }
        for c in &cameras {
            println!(
                "camera {}: assigned to {}, held by {}",
                c.id,
                c.assigned.as_deref().unwrap_or("-"),
                c.owner.as_deref().unwrap_or("-")
            );
            for (node, why) in &c.refused_by {
                println!("  refused by {node}: {why}");
            }
        }
        println!("{} nodes, {} cameras", nodes.len(), cameras.len());
    }
    Ok(())
}

/// The nodes registered now: name, what they say of themselves, their lease.
fn nodes(etcd: &[String]) -> Result<Vec<(String, NodeInfo, i64)>> {
    let etcd = Etcd::connect(etcd, CALL_TIMEOUT)?;
    let kvs = block_on(etcd.prefix(NODES, MAX_CAMERAS))?;
    kvs.into_iter()
        .map(|kv| {
            let info: NodeInfo = serde_json::from_slice(&kv.value)
                .with_context(|| format!("{}: not a node's record", kv.key))?;
            Ok((kv.name(NODES).to_string(), info, kv.lease))
        })
        .collect()
}

/// A camera in etcd: the node it is assigned to, and the node that holds it with its token.
#[derive(Debug, serde::Serialize)]
struct CameraPlace {
    id: String,
    assigned: Option<String>,
    owner: Option<String>,
    token: Option<i64>,
    /// The nodes that could not run its current table, and why.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    refused_by: std::collections::BTreeMap<String, String>,
}

/// The cameras in etcd, where they are assigned and who holds them.
fn cameras_placed(etcd: &[String]) -> Result<Vec<CameraPlace>> {
    let etcd = Etcd::connect(etcd, CALL_TIMEOUT)?;
    block_on(async {
        let under = |kvs: Vec<crate::cluster::etcd::Kv>, prefix: &str| {
            kvs.into_iter()
                .map(|kv| (kv.name(prefix).to_string(), kv))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        let cameras = under(etcd.prefix_keys(CAMERAS, MAX_CAMERAS).await?, CAMERAS);
        let assigned = under(etcd.prefix(ASSIGN, MAX_CAMERAS).await?, ASSIGN);
        let owners = under(etcd.prefix(OWNER, MAX_CAMERAS).await?, OWNER);
        let revisions = cameras
            .iter()
            .map(|(id, kv)| (id.clone(), kv.mod_revision))
            .collect();
        let mut refused =
            crate::cluster::refusal::standing(etcd.prefix(REFUSED, MAX_CAMERAS).await?, &revisions);
        let text = |kv: &crate::cluster::etcd::Kv| String::from_utf8_lossy(&kv.value).into_owned();
        Ok(cameras
            .into_keys()
            .map(|id| CameraPlace {
                assigned: assigned.get(&id).map(text),
                owner: owners.get(&id).map(text),
                token: owners.get(&id).map(|k| k.mod_revision),
                refused_by: refused.remove(&id).unwrap_or_default(),
                id,
            })
            .collect())
    })
}

/// Starts the node's membership and its rounds (assigning, running the cameras it holds)
/// when the config has a `[cluster]`, on the current runtime. `http` is where the node's API
/// listens: what it advertises unless `advertise` says otherwise.
pub fn join(
    config: &Config,
    manager: Arc<Manager>,
    rtsp: &LazyRtspServer,
    token: Option<&str>,
    http: std::net::SocketAddr,
) -> Result<Option<(Membership, Arc<ClusterView>)>> {
    let Some(c) = &config.cluster else {
        return Ok(None);
    };
    let advertise = c
        .advertise
        .clone()
        .unwrap_or_else(|| format!("http://{http}"));
    // The RTSP server runs from the start on a node: it redirects the clients of cameras that
    // other nodes run, and the others redirect here.
    let server = rtsp.get()?;
    let info = NodeInfo {
        rtsp: rtsp_base(&advertise, server.port()),
        advertise,
        capacity: c.capacity,
    };
    tracing::info!(node = %c.node, capacity = c.capacity, ttl_s = c.ttl_s, "cluster: joining through etcd");
    let ttl = Duration::from_secs(u64::from(c.ttl_s));
    let view = Arc::new(ClusterView::new(&c.node));
    // Another node's answer must come within half a round (see `node::Keeper::hold`).
    let failsafe = Failsafe::new(token.map(str::to_string), ttl / 6, ttl / 3)?;
    let membership = Membership::start(c, &info, view.clone(), failsafe)?;
    let host = Arc::new(ManagerHost {
        manager,
        node: c.node.clone(),
        fence: membership.fence(),
    });
    {
        let view = view.clone();
        server.redirect(move |path| view.rtsp_elsewhere(path));
    }
    tokio::spawn(crate::cluster::duty::run(
        membership.etcd(),
        c.node.clone(),
        membership.watch(),
        ttl / 3,
        host,
        view.clone(),
    ));
    Ok(Some((membership, view)))
}

/// The RTSP server's address as other nodes' clients reach it: the advertised API's host, the
/// server's port.
fn rtsp_base(advertise: &str, port: u16) -> Option<String> {
    let url = url::Url::parse(advertise).ok()?;
    Some(format!("rtsp://{}:{port}", url.host_str()?))
}

/// The stream manager, running the cameras the node holds for the cluster.
struct ManagerHost {
    manager: Arc<Manager>,
    node: String,
    fence: crate::cluster::fence::Fence,
}

impl Host for ManagerHost {
    fn start(&self, config: StreamConfig, token: i64) -> Result<(), String> {
        self.manager
            .adopt(config, &self.node, token, self.fence.clone())
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn stop(&self, id: &str) {
        let Ok(id) = StreamId::try_from(id.to_string()) else {
            return;
        };
        match self.manager.release(&id) {
            // Stopped already (a release tried again).
            Ok(()) | Err(crate::control::ManagerError::NotFound(_)) => {}
            Err(e) => tracing::warn!(stream = %id, "cluster: stopping: {e}"),
        }
    }
}

fn block_on<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(f)
}
