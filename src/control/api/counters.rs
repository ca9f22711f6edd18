//! What the edge refused and what it holds, process-wide, for `/metrics` and `GET /api/limits`:
//! connections, authentications, origins, viewers, waiting requests.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use schemars::JsonSchema;
use serde::Serialize;

/// The counters (one set per process).
pub struct EdgeCounters {
    /// HTTP connections open now.
    pub connections_open: AtomicUsize,
    /// HTTP connections accepted.
    pub connections_accepted: AtomicU64,
    /// Connections closed to make room (they had sent no complete request in time).
    pub connections_evicted: AtomicU64,
    /// Connections refused because every open one was serving a request.
    pub connections_refused: AtomicU64,
    /// TLS handshakes that failed or timed out.
    pub tls_failed: AtomicU64,
    /// Requests without a valid token where one was needed.
    pub auth_failed: AtomicU64,
    /// Requests refused because their address failed to authenticate too often.
    pub auth_blocked: AtomicU64,
    /// Requests refused for their `Host`.
    pub host_refused: AtomicU64,
    /// Requests refused for their `Origin`.
    pub origin_refused: AtomicU64,
    /// Requests refused for their content type.
    pub content_type_refused: AtomicU64,
    /// MJPEG and WebSocket viewers refused for a cap.
    pub viewers_refused: AtomicU64,
    /// WebRTC offers refused for a cap.
    pub whep_refused: AtomicU64,
    /// LL-HLS requests refused because as many wait as may.
    pub held_refused: AtomicU64,
}

/// The process's counters.
pub static EDGE: EdgeCounters = EdgeCounters {
    connections_open: AtomicUsize::new(0),
    connections_accepted: AtomicU64::new(0),
    connections_evicted: AtomicU64::new(0),
    connections_refused: AtomicU64::new(0),
    tls_failed: AtomicU64::new(0),
    auth_failed: AtomicU64::new(0),
    auth_blocked: AtomicU64::new(0),
    host_refused: AtomicU64::new(0),
    origin_refused: AtomicU64::new(0),
    content_type_refused: AtomicU64::new(0),
    viewers_refused: AtomicU64::new(0),
    whep_refused: AtomicU64::new(0),
    held_refused: AtomicU64::new(0),
};

/// Adds one to a counter.
pub fn count(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A snapshot of the counters and of what is held now.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EdgeReport {
    /// HTTP connections open now.
    pub connections_open: usize,
    /// HTTP connections accepted since the start.
    pub connections_accepted: u64,
    /// Connections closed to make room for others (no complete request sent in time).
    pub connections_evicted: u64,
    /// Connections refused because every open one was serving a request.
    pub connections_refused: u64,
    /// TLS handshakes that failed or timed out.
    pub tls_failed: u64,
    /// Requests without a valid token where one was needed.
    pub auth_failed: u64,
    /// Requests refused because their address failed to authenticate too often.
    pub auth_blocked: u64,
    /// Requests refused for their `Host` header.
    pub host_refused: u64,
    /// Requests refused for their `Origin` header.
    pub origin_refused: u64,
    /// Requests refused for their content type.
    pub content_type_refused: u64,
    /// MJPEG and WebSocket viewers watching now.
    pub viewers: usize,
    /// MJPEG and WebSocket viewers refused for a cap.
    pub viewers_refused: u64,
    /// WebRTC sessions now, including offers being answered.
    pub whep_sessions: usize,
    /// WebRTC offers refused for a cap.
    pub whep_refused: u64,
    /// JPEG encoders running now.
    pub jpeg_encoders: usize,
    /// JPEG encoders refused for a cap.
    pub jpeg_refused: u64,
    /// LL-HLS requests waiting now (blocking reloads, hinted parts).
    pub held: usize,
    /// LL-HLS requests refused because as many waited as may.
    pub held_refused: u64,
    /// Connections to the RTSP server open now.
    pub rtsp_clients: usize,
    /// RTSP connections closed at once because as many were open as may be.
    pub rtsp_refused: u64,
    /// RTSP connections closed because they set up no session in time.
    pub rtsp_idle_closed: u64,
}

/// The counters now; `viewers` is the number of MJPEG and WebSocket viewers, `held` the number
/// of LL-HLS requests waiting.
pub fn report(viewers: usize, held: usize) -> EdgeReport {
    let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let (jpeg_encoders, jpeg_refused) = crate::publish::jpeg_encoder_counts();
    let (rtsp_clients, rtsp_refused, rtsp_idle_closed) = crate::publish::rtsp_client_counts();
    EdgeReport {
        connections_open: EDGE.connections_open.load(Ordering::Relaxed),
        connections_accepted: l(&EDGE.connections_accepted),
        connections_evicted: l(&EDGE.connections_evicted),
        connections_refused: l(&EDGE.connections_refused),
        tls_failed: l(&EDGE.tls_failed),
        auth_failed: l(&EDGE.auth_failed),
        auth_blocked: l(&EDGE.auth_blocked),
        host_refused: l(&EDGE.host_refused),
        origin_refused: l(&EDGE.origin_refused),
        content_type_refused: l(&EDGE.content_type_refused),
        viewers,
        viewers_refused: l(&EDGE.viewers_refused),
        whep_sessions: crate::publish::whep_sessions_total(),
        whep_refused: l(&EDGE.whep_refused),
        jpeg_encoders,
        jpeg_refused,
        held,
        held_refused: l(&EDGE.held_refused),
        rtsp_clients,
        rtsp_refused,
        rtsp_idle_closed,
    }
}

/// The report as Prometheus text (`framegate_edge_*`).
pub fn prometheus(r: &EdgeReport) -> String {
    let v = serde_json::to_value(r).unwrap_or_default();
    let mut out = String::new();
    if let Some(map) = v.as_object() {
        for (k, val) in map {
            let gauge = matches!(
                k.as_str(),
                "connections_open"
                    | "viewers"
                    | "whep_sessions"
                    | "jpeg_encoders"
                    | "held"
                    | "rtsp_clients"
            );
            let name = if gauge {
                format!("framegate_edge_{k}")
            } else {
                format!("framegate_edge_{k}_total")
            };
            let kind = if gauge { "gauge" } else { "counter" };
            out.push_str(&format!("# TYPE {name} {kind}\n{name} {val}\n"));
        }
    }
    out
}
