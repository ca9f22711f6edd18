//! What every node knows of the whole cluster, for its API: each camera, its config and the
//! node that runs it, with that node's address. Refreshed every round (a camera's table is read
//! again only when its revision changed).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use anyhow::Result;

use super::etcd::Etcd;
use super::node::NodeInfo;
use super::{CAMERAS, NODES, OWNER};
use crate::config::StreamConfig;

/// The most cameras the view keeps.
const MAX_CAMERAS: usize = 20_000;

/// A camera as the cluster has it.
#[derive(Debug, Clone)]
pub struct Camera {
    /// Its table's revision in etcd.
    pub revision: i64,
    /// Its config (none when the table in etcd is not valid); shared, as each refresh carries
    /// the unchanged ones over.
    pub config: Option<Arc<StreamConfig>>,
    /// The node that runs it, if any.
    pub owner: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    cameras: BTreeMap<String, Camera>,
    /// What each live node says of itself.
    nodes: BTreeMap<String, NodeInfo>,
}

/// The cluster as this node last read it.
#[derive(Debug)]
pub struct ClusterView {
    /// This node's name.
    pub node: String,
    inner: RwLock<Inner>,
    /// Whether this node is registered under a live lease now.
    member: AtomicBool,
    /// When the last renewal of this node's lease that succeeded was sent.
    renewed: std::sync::Mutex<Option<std::time::Instant>>,
    /// Whether the node keeps its cameras because every other node vouched that etcd has
    /// lost its quorum (see [`super::failsafe`]).
    failsafe: AtomicBool,
}

impl ClusterView {
    /// An empty view for `node`.
    pub fn new(node: &str) -> Self {
        Self {
            node: node.to_string(),
            inner: RwLock::default(),
            member: AtomicBool::new(false),
            renewed: std::sync::Mutex::new(None),
            failsafe: AtomicBool::new(false),
        }
    }

    /// Records that a renewal sent at `sent` succeeded.
    pub fn renewed(&self, sent: std::time::Instant) {
        *crate::supervise::lock(&self.renewed) = Some(sent);
    }

    /// Records whether the node keeps its cameras through a failsafe.
    pub fn set_failsafe(&self, on: bool) {
        self.failsafe.store(on, Ordering::Relaxed);
    }

    /// Whether the node keeps its cameras through a failsafe now.
    pub fn failsafe_on(&self) -> bool {
        self.failsafe.load(Ordering::Relaxed)
    }

    /// Records whether the node keeps its cameras through a failsafe; returns what it was.
    pub fn swap_failsafe(&self, on: bool) -> bool {
        self.failsafe.swap(on, Ordering::Relaxed)
    }

    /// What this node answers to another that asks whether etcd works for it.
    pub fn failsafe_answer(&self) -> super::failsafe::PeerAnswer {
        let renewed = *crate::supervise::lock(&self.renewed);
        super::failsafe::PeerAnswer {
            node: self.node.clone(),
            renewed_ago_ms: renewed.map(|t| t.elapsed().as_millis() as u64),
        }
    }

    /// The other nodes registered when the cluster was last read: name and API address.
    pub fn peers(&self) -> Vec<(String, String)> {
        self.read(|i| {
            i.nodes
                .iter()
                .filter(|(n, _)| **n != self.node)
                .map(|(n, info)| (n.clone(), info.advertise.clone()))
                .collect()
        })
    }

    /// The origins (`scheme://host[:port]`) of the other nodes' advertised addresses, as
    /// browsers write them in `Origin` (rebuilt from the parsed URLs: etcd's text never
    /// reaches a header as it is).
    pub fn peer_origins(&self) -> Vec<String> {
        self.peers()
            .iter()
            .filter_map(|(_, at)| url::Url::parse(at).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .map(|u| u.origin().ascii_serialization())
            .collect()
    }

    /// Whether this node is registered under a live lease now.
    pub fn set_member(&self, member: bool) {
        self.member.store(member, Ordering::Relaxed);
    }

    /// The cluster's metrics in Prometheus text: cameras per node, this node's membership.
    pub fn prometheus(&self) -> String {
        let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
        self.read(|i| {
            for n in i.nodes.keys() {
                per_node.entry(n.clone()).or_default();
            }
            for c in i.cameras.values() {
                // Names from etcd become label values only when they are node names.
                let n = c.owner.as_deref().unwrap_or("");
                let n = if n.is_empty() || crate::config::node_name(n).is_ok() {
                    n
                } else {
                    "?"
                };
                *per_node.entry(n.to_string()).or_default() += 1;
            }
        });
        let mut out = String::from(
            "# HELP framegate_cluster_cameras Cameras of the cluster each node runs, as this node last read etcd (node=\"\": run by none yet).\n# TYPE framegate_cluster_cameras gauge\n",
        );
        for (n, count) in per_node {
            out.push_str(&format!(
                "framegate_cluster_cameras{{node=\"{n}\"}} {count}\n"
            ));
        }
        out.push_str(&format!(
            "# HELP framegate_cluster_member Whether this node is registered under a live lease (0: joining or fenced).\n# TYPE framegate_cluster_member gauge\nframegate_cluster_member{{node=\"{}\"}} {}\n",
            self.node,
            u8::from(self.member.load(Ordering::Relaxed))
        ));
        out.push_str(&format!(
            "# HELP framegate_cluster_failsafe Whether this node keeps its cameras while etcd answers nobody, every other node vouching for it (docs/cluster.md).\n# TYPE framegate_cluster_failsafe gauge\nframegate_cluster_failsafe{{node=\"{}\"}} {}\n",
            self.node,
            u8::from(self.failsafe.load(Ordering::Relaxed))
        ));
        out
    }

    /// Reads the cluster again.
    pub async fn refresh(&self, etcd: &Etcd) -> Result<()> {
        let nodes = etcd.prefix(NODES, MAX_CAMERAS).await?;
        let owners = etcd.prefix(OWNER, MAX_CAMERAS).await?;
        let keys = etcd.prefix_keys(CAMERAS, MAX_CAMERAS).await?;
        let nodes: BTreeMap<String, NodeInfo> = nodes
            .into_iter()
            .filter_map(|k| {
                let info: NodeInfo = serde_json::from_slice(&k.value).ok()?;
                Some((k.name(NODES).to_string(), info))
            })
            .collect();
        let owner: BTreeMap<String, String> = owners
            .into_iter()
            .map(|k| {
                (
                    k.name(OWNER).to_string(),
                    String::from_utf8_lossy(&k.value).into_owned(),
                )
            })
            .collect();
        let known: BTreeMap<String, Camera> = self.read(|i| i.cameras.clone());
        let mut cameras = BTreeMap::new();
        for k in keys {
            let id = k.name(CAMERAS).to_string();
            let config = match known.get(&id) {
                Some(c) if c.revision == k.mod_revision => c.config.clone(),
                _ => match etcd.get(&k.key).await? {
                    Some(v) => super::duty::parse_camera(&id, &v.value).ok().map(Arc::new),
                    None => continue,
                },
            };
            cameras.insert(
                id.clone(),
                Camera {
                    revision: k.mod_revision,
                    config,
                    owner: owner.get(&id).cloned(),
                },
            );
        }
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        *inner = Inner { cameras, nodes };
        Ok(())
    }

    fn read<T>(&self, f: impl FnOnce(&Inner) -> T) -> T {
        f(&self.inner.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Where the camera `id` runs when another node runs it: that node's name and API address.
    pub fn elsewhere(&self, id: &str) -> Option<(String, String)> {
        self.read(|i| {
            let owner = i.cameras.get(id)?.owner.clone()?;
            if owner == self.node {
                return None;
            }
            let at = i.nodes.get(&owner)?.advertise.clone();
            Some((owner, at))
        })
    }

    /// The RTSP server (`rtsp://host:port`) of the node that runs the camera served at `path`
    /// (a stream's `rtsp` output), when another node runs it.
    pub fn rtsp_elsewhere(&self, path: &str) -> Option<String> {
        self.read(|i| {
            let owner = i.cameras.values().find_map(|c| {
                let serves = c
                    .config
                    .as_ref()
                    .is_some_and(|s| crate::config::rtsp_mounts(s).iter().any(|m| m == path));
                serves.then_some(c.owner.as_deref()).flatten()
            })?;
            if owner == self.node {
                return None;
            }
            rtsp_base(i.nodes.get(owner)?.rtsp.as_deref()?)
        })
    }

    /// Every camera with its config and owner.
    pub fn cameras(&self) -> Vec<(String, Camera)> {
        self.read(|i| {
            i.cameras
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
    }
}

/// A node's RTSP address as it goes into a `Location` header: `rtsp://host:port` rebuilt from
/// the parsed URL (etcd's text never reaches a header as it is), none when it is not one.
fn rtsp_base(text: &str) -> Option<String> {
    let url = url::Url::parse(text).ok()?;
    if url.scheme() != "rtsp" {
        return None;
    }
    Some(format!(
        "rtsp://{}:{}",
        url.host_str()?,
        url.port().unwrap_or(554)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rtsp_address_from_etcd_is_rebuilt_or_refused() {
        assert_eq!(
            rtsp_base("rtsp://10.0.1.11:8554").as_deref(),
            Some("rtsp://10.0.1.11:8554")
        );
        assert_eq!(
            rtsp_base("rtsp://[::1]:8554/").as_deref(),
            Some("rtsp://[::1]:8554")
        );
        assert_eq!(rtsp_base("rtsp://cams").as_deref(), Some("rtsp://cams:554"));
        for hostile in [
            "rtsp://h:1\r\nX-Injected: 1",
            "http://h:8554",
            "not a url",
            "rtsp://u:pw@h:1/../x",
        ] {
            let got = rtsp_base(hostile);
            assert!(
                got.as_deref()
                    .is_none_or(|g| !g.contains(['\r', '\n', '@'])),
                "{hostile}: {got:?}"
            );
        }
        assert!(rtsp_base("http://h:8554").is_none());
    }
}
