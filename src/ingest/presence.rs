//! The media-server check of a source: ask the server's HTTP API whether the stream exists
//! before pulling it (MediaMTX `/v3/paths/get/{path}`, an nginx-rtmp stat page behind a JSON
//! proxy, SRS `/api/v1/streams`...). While the answer is "absent", the ingest worker polls the
//! API instead of knocking on the RTSP/RTMP port.

use std::time::Duration;

use serde_json::Value;

use crate::config::{MediaServerCheck, SourceUrl};

/// What the media server said.
#[derive(Debug, Clone, PartialEq)]
pub enum Presence {
    /// The stream exists: pull it.
    Present,
    /// The stream does not exist (404, or the JSON value is empty): wait and ask again.
    Absent(String),
    /// No usable answer (API down, 5xx, not JSON): pull the source anyway, so that a broken API
    /// never keeps a working camera dark.
    Unknown(String),
}

/// The URL to ask, with `{path}` and `{stream}` filled in.
pub fn check_url(check: &MediaServerCheck, source: &SourceUrl, stream: &str) -> String {
    let path = match source {
        SourceUrl::Rtsp(u) | SourceUrl::Rtmp(u) => u.path().trim_start_matches('/').to_string(),
        _ => String::new(),
    };
    check
        .url
        .replace("{path}", &path)
        .replace("{stream}", stream)
}

/// The value at a dotted path (`items.0.name`) of a JSON document.
pub fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .filter(|p| !p.is_empty())
        .try_fold(v, |v, key| match v {
            Value::Array(a) => a.get(key.parse::<usize>().ok()?),
            Value::Object(o) => o.get(key),
            _ => None,
        })
}

/// Whether a JSON value says "there is something": not null, false, 0, "" or empty.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// The largest answer read from a media server's API.
const MAX_ANSWER: usize = 1024 * 1024;

/// The HTTP client of the checks: it follows no redirects (a media server's API that answers
/// with one is not what the config names) and reads at most [`MAX_ANSWER`] bytes of an answer.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

/// Asks the media server.
pub async fn ask(client: &reqwest::Client, check: &MediaServerCheck, url: &str) -> Presence {
    let answer = match client.get(url).timeout(Duration::from_secs(3)).send().await {
        Ok(a) => a,
        Err(e) => return Presence::Unknown(format!("media server API {url}: {e}")),
    };
    let status = answer.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Presence::Absent(format!("media server: {url} answered 404"));
    }
    if !status.is_success() {
        return Presence::Unknown(format!("media server API {url} answered {status}"));
    }
    if check.json_path.is_empty() {
        return Presence::Present;
    }
    let raw = match crate::http_client::read_capped(answer, MAX_ANSWER).await {
        Ok(raw) => raw,
        Err(crate::http_client::Unread::TooLong) => {
            return Presence::Unknown(format!(
                "media server API {url}: the answer is larger than {MAX_ANSWER} bytes"
            ));
        }
        Err(crate::http_client::Unread::Failed(e)) => {
            return Presence::Unknown(format!("media server API {url}: {e}"));
        }
    };
    let body: Value = match serde_json::from_slice(&raw) {
        Ok(v) => v,
        Err(e) => return Presence::Unknown(format!("media server API {url}: not JSON: {e}")),
    };
    match lookup(&body, &check.json_path) {
        Some(v) if truthy(v) => Presence::Present,
        _ => Presence::Absent(format!(
            "media server: `{}` is empty in the answer of {url}",
            check.json_path
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn looks_up_dotted_paths() {
        let v = json!({ "ready": true, "items": [{ "name": "cam" }], "n": 0 });
        assert_eq!(lookup(&v, "ready"), Some(&json!(true)));
        assert_eq!(lookup(&v, "items.0.name"), Some(&json!("cam")));
        assert_eq!(lookup(&v, "items.1.name"), None);
        assert_eq!(lookup(&v, "missing"), None);
        assert!(!truthy(&v["n"]) && truthy(&v["ready"]) && !truthy(&json!([])));
    }

    #[test]
    fn fills_the_url_template() {
        let check: MediaServerCheck =
            toml::from_str(r#"url = "http://127.0.0.1:9997/v3/paths/get/{path}?s={stream}""#)
                .expect("check");
        let source = SourceUrl::parse("rtsp://127.0.0.1:8554/live/cam1").expect("url");
        assert_eq!(
            check_url(&check, &source, "cam1"),
            "http://127.0.0.1:9997/v3/paths/get/live/cam1?s=cam1"
        );
    }
}
