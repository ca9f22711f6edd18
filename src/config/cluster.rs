//! `[cluster]`: this node's place in a cluster of framegate nodes on etcd (docs/cluster.md).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most etcd endpoints.
pub const MAX_ENDPOINTS: usize = 7;

/// Several framegate nodes as one cluster, coordinated through etcd: each node registers under
/// a lease it keeps alive, an elected node assigns the cameras (written to etcd by
/// `framegate cluster import`) to the live nodes, and a node runs a camera only while it holds
/// its owner key (docs/cluster.md).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// etcd's client URLs (`http://host:2379`, 1 to 7), tried in turn when one does not answer.
    /// Without credentials in the URL.
    pub etcd: Vec<String>,
    /// This node's name, unique in the cluster: 1 to 64 of `a-z`, `A-Z`, `0-9`, `-`, `_`, `.`.
    pub node: String,
    /// Where other nodes and clients reach this node's API (`http://host:port`); by default
    /// `http://` and the address the API listens on (`[server] http`, with the port it got
    /// when that asks for port 0).
    #[serde(default)]
    pub advertise: Option<String>,
    /// How many cameras this node takes (1 to 10000): the assigner spreads cameras over the live
    /// nodes in proportion.
    #[serde(default = "default_capacity")]
    pub capacity: u32,
    /// The time to live of the node's lease, seconds (2 to 60). A node that could not renew it
    /// for `ttl_s` minus a margin (a fifth of it, at least one second) takes itself out: it is
    /// fenced until it holds a lease again.
    #[serde(default = "default_ttl")]
    pub ttl_s: u32,
}

fn default_capacity() -> u32 {
    16
}

fn default_ttl() -> u32 {
    5
}

impl ClusterConfig {
    /// Checks every field; the error names it.
    pub fn validate(&self) -> Result<(), String> {
        if self.etcd.is_empty() || self.etcd.len() > MAX_ENDPOINTS {
            return Err(format!(
                "cluster.etcd: 1 to {MAX_ENDPOINTS} endpoints, not {}",
                self.etcd.len()
            ));
        }
        for e in &self.etcd {
            endpoint(e).map_err(|m| format!("cluster.etcd: {m}"))?;
        }
        node_name(&self.node).map_err(|m| format!("cluster.node: {m}"))?;
        if let Some(a) = &self.advertise {
            endpoint(a).map_err(|m| format!("cluster.advertise: {m}"))?;
        }
        super::bounds::within("cluster.capacity", f64::from(self.capacity), 1.0, 10_000.0)?;
        super::bounds::within("cluster.ttl_s", f64::from(self.ttl_s), 2.0, 60.0)
    }
}

/// An `http://host:port` or `https://host:port` URL without credentials, path or query.
pub fn endpoint(s: &str) -> Result<url::Url, String> {
    let shown = if s.len() > 80 { &s[..80] } else { s };
    let u = url::Url::parse(s).map_err(|e| format!("`{shown}` is not a URL ({e})"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(format!("`{shown}` is not an http:// or https:// URL"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("credentials in the URL are not supported".into());
    }
    if u.path() != "/" || u.query().is_some() || u.fragment().is_some() {
        return Err(format!("`{shown}`: only a scheme, a host and a port"));
    }
    Ok(u)
}

/// A node's name: 1 to 64 of `a-z`, `A-Z`, `0-9`, `-`, `_`, `.` (it is an etcd key's last part).
pub fn node_name(s: &str) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if s.is_empty() || s.len() > 64 || !s.chars().all(ok) || s.starts_with('.') {
        return Err(format!(
            "`{}` is not a node name (1 to 64 of a-z A-Z 0-9 - _ ., not starting with a dot)",
            s.chars().take(64).collect::<String>().escape_debug()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(etcd: &[&str], node: &str) -> ClusterConfig {
        ClusterConfig {
            etcd: etcd.iter().map(|s| s.to_string()).collect(),
            node: node.into(),
            advertise: None,
            capacity: 16,
            ttl_s: 5,
        }
    }

    #[test]
    fn endpoints_names_and_numbers_are_checked() {
        assert!(
            cluster(&["http://127.0.0.1:2379"], "a-1.b_c")
                .validate()
                .is_ok()
        );
        for (etcd, node, want) in [
            (vec![], "a", "1 to 7 endpoints"),
            (vec!["http://u:pw@h:2379"], "a", "credentials"),
            (vec!["ftp://h:2379"], "a", "http://"),
            (vec!["http://h:2379/v3"], "a", "only a scheme"),
            (vec!["h:2379"], "a", "not an http"),
            (vec!["http://h:2379"], "", "not a node name"),
            (vec!["http://h:2379"], "a/b", "not a node name"),
            (vec!["http://h:2379"], "..", "not a node name"),
        ] {
            let e = cluster(&etcd, node).validate().unwrap_err();
            assert!(e.contains(want), "{etcd:?} {node}: {e}");
            assert!(!e.contains("pw"), "{e}");
        }
        let mut c = cluster(&["http://h:2379"], "a");
        c.ttl_s = 1;
        assert!(c.validate().unwrap_err().contains("cluster.ttl_s"));
        c.ttl_s = 5;
        c.capacity = 0;
        assert!(c.validate().unwrap_err().contains("cluster.capacity"));
    }
}
