//! A small client of etcd's v3 API through its JSON gateway (etcd 3.4 and later: `POST /v3/...`,
//! keys and values in base64, 64-bit numbers as strings), over the HTTP client framegate already
//! has (decision 0025). Each call tries the endpoints in turn, starting with the last one that
//! answered, within a deadline; answers are read up to [`MAX_ANSWER`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use crate::http_client::{Unread, read_capped};

/// The largest answer read from etcd.
pub const MAX_ANSWER: usize = 8 * 1024 * 1024;
/// The most operations in one transaction (etcd's default `--max-txn-ops`).
pub const MAX_TXN_OPS: usize = 128;

/// A key and its value, with the revisions etcd keeps for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    /// The key (as text: framegate's keys are).
    pub key: String,
    /// The value.
    pub value: Vec<u8>,
    /// The revision that created it.
    pub create_revision: i64,
    /// The revision that last changed it.
    pub mod_revision: i64,
    /// The lease it lives under (0: none).
    pub lease: i64,
}

impl Kv {
    /// The key's part after `prefix` (a camera's or a node's name under its folder).
    pub fn name(&self, prefix: &str) -> &str {
        self.key.strip_prefix(prefix).unwrap_or(&self.key)
    }
}

/// A connection to an etcd cluster.
pub struct Etcd {
    endpoints: Vec<url::Url>,
    http: reqwest::Client,
    /// The endpoint that answered last.
    preferred: AtomicUsize,
}

impl Etcd {
    /// A client of `endpoints` (checked URLs), each call within `timeout`.
    pub fn new(endpoints: Vec<url::Url>, timeout: Duration) -> Result<Self> {
        if endpoints.is_empty() {
            bail!("no etcd endpoint");
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .context("making the etcd client")?;
        Ok(Self {
            endpoints,
            http,
            preferred: AtomicUsize::new(0),
        })
    }

    /// A client of endpoint URLs as written (`http://host:port`).
    pub fn connect(urls: &[String], timeout: Duration) -> Result<Self> {
        let endpoints = urls
            .iter()
            .map(|u| crate::config::cluster_endpoint(u).map_err(|m| anyhow!("etcd: {m}")))
            .collect::<Result<Vec<_>>>()?;
        Self::new(endpoints, timeout)
    }

    /// Calls `path` with `body` on the first endpoint that answers.
    async fn call(&self, path: &str, body: &Value) -> Result<Value> {
        let n = self.endpoints.len();
        let first = self.preferred.load(Ordering::Relaxed) % n;
        let mut errors = Vec::new();
        for i in (0..n).map(|k| (first + k) % n) {
            let ep = &self.endpoints[i];
            match self.call_one(ep, path, body).await {
                Ok(v) => {
                    self.preferred.store(i, Ordering::Relaxed);
                    return Ok(v);
                }
                Err(Failure::Refused(e)) => return Err(e),
                Err(Failure::Unreachable(e)) => errors.push(format!("{ep}: {e:#}")),
            }
        }
        Err(anyhow!("no etcd endpoint answered: {}", errors.join("; ")))
    }

    async fn call_one(&self, ep: &url::Url, path: &str, body: &Value) -> Result<Value, Failure> {
        let url = ep.join(path).map_err(|e| Failure::Refused(e.into()))?;
        let res = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| Failure::Unreachable(e.into()))?;
        let status = res.status();
        let bytes = read_capped(res, MAX_ANSWER).await.map_err(|e| match e {
            Unread::TooLong => {
                Failure::Refused(anyhow!("etcd answered more than {MAX_ANSWER} bytes"))
            }
            Unread::Failed(e) => Failure::Unreachable(e.into()),
        })?;
        let v: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Failure::Unreachable(anyhow!("{status}: not JSON ({e})")))?;
        if !status.is_success() {
            let msg = v["message"].as_str().or(v["error"].as_str()).unwrap_or("");
            // A member without a leader (quorum lost) is worth trying the next one.
            return Err(if status.is_server_error() {
                Failure::Unreachable(anyhow!("{status}: {msg}"))
            } else {
                Failure::Refused(anyhow!("etcd refused {path}: {status}: {msg}"))
            });
        }
        Ok(v)
    }

    /// A new lease of `ttl` seconds.
    pub async fn grant(&self, ttl: u32) -> Result<i64> {
        let v = self.call("v3/lease/grant", &json!({ "TTL": ttl })).await?;
        let id = int(&v["ID"]);
        if id == 0 {
            bail!("etcd granted no lease: {}", v["error"]);
        }
        Ok(id)
    }

    /// Renews `lease`: its time to live now, none when it has expired.
    pub async fn keep_alive(&self, lease: i64) -> Result<Option<i64>> {
        let v = self
            .call("v3/lease/keepalive", &json!({ "ID": lease.to_string() }))
            .await?;
        let ttl = int(&v["result"]["TTL"]);
        Ok((ttl > 0).then_some(ttl))
    }

    /// Ends `lease`: its keys go at once.
    pub async fn revoke(&self, lease: i64) -> Result<()> {
        self.call("v3/lease/revoke", &json!({ "ID": lease.to_string() }))
            .await
            .map(drop)
    }

    /// Creates `key` under `lease` (0: none) unless it exists: the revision it was created at,
    /// or none when it was there.
    pub async fn create(&self, key: &str, value: &[u8], lease: i64) -> Result<Option<i64>> {
        let v = self
            .call(
                "v3/kv/txn",
                &json!({
                    "compare": [{ "key": B64.encode(key), "target": "CREATE", "create_revision": "0" }],
                    "success": [{ "request_put": put(key, value, lease) }],
                }),
            )
            .await?;
        Ok((v["succeeded"] == true).then(|| int(&v["header"]["revision"])))
    }

    /// Writes `key` under `lease` (0: none), whether or not it exists: the revision after.
    pub async fn put(&self, key: &str, value: &[u8], lease: i64) -> Result<i64> {
        self.all_of(vec![json!({ "request_put": put(key, value, lease) })])
            .await
    }

    /// Writes every pair in one transaction (at most [`MAX_TXN_OPS`]): all or none.
    pub async fn put_all(&self, pairs: &[(String, Vec<u8>)]) -> Result<i64> {
        let ops = pairs
            .iter()
            .map(|(k, v)| json!({ "request_put": put(k, v, 0) }))
            .collect();
        self.all_of(ops).await
    }

    /// Runs every operation of `ops` in one transaction without conditions: the revision after.
    async fn all_of(&self, ops: Vec<Value>) -> Result<i64> {
        if ops.len() > MAX_TXN_OPS {
            bail!(
                "{} keys in one transaction (at most {MAX_TXN_OPS})",
                ops.len()
            );
        }
        let v = self
            .call("v3/kv/txn", &json!({ "compare": [], "success": ops }))
            .await?;
        Ok(int(&v["header"]["revision"]))
    }

    /// The value of `key`, if it exists.
    pub async fn get(&self, key: &str) -> Result<Option<Kv>> {
        let v = self
            .call("v3/kv/range", &json!({ "key": B64.encode(key) }))
            .await?;
        match v["kvs"].as_array().and_then(|a| a.first()) {
            Some(k) => kv(k).map(Some),
            None => Ok(None),
        }
    }

    /// Deletes `key` if it was last changed at `revision` (it is still the one written then):
    /// whether it was deleted.
    pub async fn delete_if(&self, key: &str, revision: i64) -> Result<bool> {
        let v = self
            .call(
                "v3/kv/txn",
                &json!({
                    "compare": [{ "key": B64.encode(key), "target": "MOD", "mod_revision": revision.to_string() }],
                    "success": [{ "request_delete_range": { "key": B64.encode(key) } }],
                }),
            )
            .await?;
        Ok(v["succeeded"] == true)
    }

    /// Deletes every key of `keys` in one transaction (at most [`MAX_TXN_OPS`]).
    pub async fn delete_all(&self, keys: &[String]) -> Result<()> {
        let ops = keys
            .iter()
            .map(|k| json!({ "request_delete_range": { "key": B64.encode(k) } }))
            .collect();
        self.all_of(ops).await.map(drop)
    }

    /// The keys under `prefix` with their revisions but no values, at most `limit`.
    pub async fn prefix_keys(&self, prefix: &str, limit: usize) -> Result<Vec<Kv>> {
        self.range(prefix, limit, true).await
    }

    /// The keys under `prefix`, at most `limit` (an error when there are more).
    pub async fn prefix(&self, prefix: &str, limit: usize) -> Result<Vec<Kv>> {
        self.range(prefix, limit, false).await
    }

    async fn range(&self, prefix: &str, limit: usize, keys_only: bool) -> Result<Vec<Kv>> {
        let v = self
            .call(
                "v3/kv/range",
                &json!({
                    "key": B64.encode(prefix),
                    "range_end": B64.encode(prefix_end(prefix)),
                    "limit": (limit + 1).to_string(),
                    "keys_only": keys_only,
                }),
            )
            .await?;
        let kvs = v["kvs"].as_array().cloned().unwrap_or_default();
        if kvs.len() > limit {
            bail!("more than {limit} keys under {prefix}");
        }
        kvs.iter().map(kv).collect()
    }
}

/// Why a call to one endpoint failed: worth trying another, or not.
enum Failure {
    Unreachable(anyhow::Error),
    Refused(anyhow::Error),
}

fn put(key: &str, value: &[u8], lease: i64) -> Value {
    json!({ "key": B64.encode(key), "value": B64.encode(value), "lease": lease.to_string() })
}

/// The end of the range of keys starting with `prefix`: the prefix with its last byte plus one.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// A 64-bit number as the gateway writes it (a string; absent when 0).
fn int(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn kv(v: &Value) -> Result<Kv> {
    let bytes = |f: &str| {
        v[f].as_str()
            .map_or(Ok(Vec::new()), |s| B64.decode(s))
            .with_context(|| format!("etcd: {f} is not base64"))
    };
    Ok(Kv {
        key: String::from_utf8(bytes("key")?).context("etcd: a key is not UTF-8")?,
        value: bytes("value")?,
        create_revision: int(&v["create_revision"]),
        mod_revision: int(&v["mod_revision"]),
        lease: int(&v["lease"]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_numbers_and_pairs_read_as_the_gateway_writes_them() {
        assert_eq!(
            prefix_end("/framegate/nodes/"),
            b"/framegate/nodes0".to_vec()
        );
        assert_eq!(
            int(&json!("4111120472520699398")),
            4_111_120_472_520_699_398
        );
        assert_eq!(int(&Value::Null), 0);
        let k = kv(
            &json!({"key": "L2E=", "value": "dg==", "create_revision": "2",
                           "mod_revision": "3", "lease": "7"}),
        )
        .unwrap();
        assert_eq!(
            (k.key.as_str(), k.value.as_slice()),
            ("/a", b"v".as_slice())
        );
        assert_eq!((k.create_revision, k.mod_revision, k.lease), (2, 3, 7));
        assert!(kv(&json!({"key": "%%%"})).is_err());
    }
}
