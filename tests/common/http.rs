//! A minimal HTTP/1.1 client over a plain TCP socket: enough to test the API as any client
//! would see it, with no client library in between.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub raw_body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    pub fn body_bytes(&self) -> &[u8] {
        &self.raw_body
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request to `addr` (`127.0.0.1:port`); a body goes as JSON.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> Response {
    request_typed(addr, method, path, body, "application/json", token)
}

/// Sends one request whose body has the given content type.
pub fn request_typed(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    content_type: &str,
    token: Option<&str>,
) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Host", addr)];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method == "POST" || method == "PUT" {
        headers.push(("Content-Type", content_type));
    }
    request_raw(addr, method, path, &headers, body)
}

/// Sends one request with exactly these headers (no `Host` unless given; `Connection: close`
/// unless a `Connection` is given; `Content-Length` when there is a body or the method is POST
/// or PUT).
pub fn request_raw(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("connection"))
    {
        req.push_str("Connection: close\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(raw.len());
    let raw_body = raw.get(split + 4..).unwrap_or_default().to_vec();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Response {
        status,
        headers,
        body,
        raw_body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// `GET /api/streams/{id}` of the framegate whose API listens on `http` (127.0.0.1).
pub fn stream_status(http: u16, id: &str) -> serde_json::Value {
    request(
        &format!("127.0.0.1:{http}"),
        "GET",
        &format!("/api/streams/{id}"),
        None,
        None,
    )
    .json()
}

/// `GET path` that must answer 200; its JSON body.
pub fn get_json(addr: &str, path: &str) -> serde_json::Value {
    let r = request(addr, "GET", path, None, None);
    assert_eq!(r.status, 200, "GET {path}: {}", r.body);
    r.json()
}

/// Every event of a kind in the store (all pages).
pub fn all_events(addr: &str, query: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = get_json(addr, &format!("/api/events?limit=200{query}{cursor}"));
        out.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return out,
        }
    }
}
