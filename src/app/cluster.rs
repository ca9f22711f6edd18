//! `framegate cluster ...`: the cameras written to etcd, the nodes read from it; and a running
//! node's membership.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::cluster::etcd::{Etcd, MAX_TXN_OPS};
use crate::cluster::node::{Membership, NodeInfo};
use crate::cluster::{CAMERAS, NODES};
use crate::config::{Config, ProcessorConfig};

/// How long one call to etcd may take from the command line.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The most cameras (and nodes) read or written at once.
pub const MAX_CAMERAS: usize = 10_000;

/// Writes the streams of the config file at `file` to etcd as the cluster's cameras (each
/// stream's table as TOML under `/framegate/cameras/<id>`), replacing those of the same id.
/// The whole file is checked first: nothing is written unless every stream is valid. Returns
/// how many were written.
pub fn import(etcd: &[String], file: &Path) -> Result<usize> {
    let config = crate::config::load_file(file)?;
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
    let cameras = camera_ids(etcd)?;
    if json {
        let nodes: Vec<_> = nodes
            .iter()
            .map(|(n, i, lease)| {
                serde_json::json!({"node": n, "advertise": i.advertise,
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
            Ok((kv.key[NODES.len()..].to_string(), info, kv.lease))
        })
        .collect()
}

/// The ids of the cameras in etcd.
fn camera_ids(etcd: &[String]) -> Result<Vec<String>> {
    let etcd = Etcd::connect(etcd, CALL_TIMEOUT)?;
    let kvs = block_on(etcd.prefix(CAMERAS, MAX_CAMERAS))?;
    Ok(kvs
        .into_iter()
        .map(|kv| kv.key[CAMERAS.len()..].to_string())
        .collect())
}

/// Starts the node's membership when the config has a `[cluster]` (on the current runtime).
pub fn join(config: &Config) -> Result<Option<Membership>> {
    let Some(c) = &config.cluster else {
        return Ok(None);
    };
    let advertise = c
        .advertise
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.server.http));
    tracing::info!(node = %c.node, capacity = c.capacity, ttl_s = c.ttl_s, "cluster: joining through etcd");
    Membership::start(c, advertise).map(Some)
}

fn block_on<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(f)
}
