//! Browser outputs of a stream: a JPEG snapshot, an MJPEG stream and a WebSocket of JPEG
//! pictures, with `?width=`, `?fps=` and `?quality=`. The JPEG work is shared per (stream, width, quality) and runs only while
//! someone watches ([`crate::publish::JpegHub`]); each viewer takes the newest picture when it
//! is ready for one, so a slow viewer skips frames and slows nobody.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::Extension;
use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use tokio::time::Instant;

use std::net::{IpAddr, SocketAddr};

use crate::config::StreamId;
use crate::control::sessions::{Session, Viewer};
use crate::publish::{JpegEncoder, JpegFrame, JpegFrames, JpegHub, JpegKey, JpegRefusal};

use super::AppState;
use super::error::ApiError;
use super::params::Params;
use super::streams::blocking;

/// How long a snapshot waits for its first picture.
const FIRST_PICTURE: Duration = Duration::from_secs(3);
/// How long an encoder started for a snapshot stays up for the next one.
const SNAPSHOT_WARM: Duration = Duration::from_secs(2);
/// Largest message a WebSocket viewer may send (it needs none).
const MAX_INBOUND: usize = 1024;
/// The MJPEG part boundary.
const BOUNDARY: &str = "framegate";

/// `?width=&fps=&quality=`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewParams {
    width: Option<u32>,
    fps: Option<f64>,
    quality: Option<u8>,
    /// A name for the viewer (a user id), recorded with the session.
    viewer: Option<String>,
    /// A viewer token, for viewers that cannot send headers (checked by the auth layer).
    #[allow(dead_code)]
    vt: Option<String>,
}

impl ViewParams {
    fn key(&self) -> Result<JpegKey, ApiError> {
        if let Some(w) = self.width
            && !(16..=7680).contains(&w)
        {
            return Err(ApiError::bad_query(format!("width={w}: from 16 to 7680")));
        }
        let quality = self.quality.unwrap_or(75);
        if !(1..=100).contains(&quality) {
            return Err(ApiError::bad_query(format!(
                "quality={quality}: from 1 to 100"
            )));
        }
        if let Some(f) = self.fps
            && !(f.is_finite() && (0.1..=120.0).contains(&f))
        {
            return Err(ApiError::bad_query(format!("fps={f}: from 0.1 to 120")));
        }
        if let Some(v) = &self.viewer
            && (v.is_empty() || v.len() > 128)
        {
            return Err(ApiError::bad_query("viewer: from 1 to 128 characters"));
        }
        Ok(JpegKey {
            width: self.width,
            quality,
            raw: false,
        })
    }
}

/// Checks the parameters and the stream; returns the stream's JPEG encoders, the encoder these
/// parameters want, and the stream's watermark ID, if it has one.
async fn hub(
    state: &AppState,
    id: &str,
    params: &ViewParams,
) -> Result<(Arc<JpegHub>, JpegKey, Option<String>), ApiError> {
    let key = params.key()?;
    let id = StreamId::try_from(id.to_string()).map_err(|_| ApiError::no_stream(id))?;
    let (hub, watermark) = blocking(state, move |m| {
        m.with_running(&id, |s| {
            (s.jpeg().clone(), s.watermarks().first().map(|w| w.id()))
        })
    })
    .await??;
    Ok((hub, key, watermark))
}

/// Starts (or joins) an encoder, within the caps of `limits` (503 beyond them). Starting one
/// builds a GStreamer pipeline: blocking work, on a blocking thread (the runtime is still
/// reachable there for the encoder's feeder task).
pub(super) async fn start_encoder(
    hub: Arc<JpegHub>,
    key: JpegKey,
    limits: &crate::config::LimitsConfig,
) -> Result<Arc<JpegEncoder>, ApiError> {
    let failed = |e: String| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot start the JPEG encoder",
            e,
        )
    };
    let (per_stream, total) = (
        limits.jpeg_encoders_per_stream as usize,
        limits.jpeg_encoders_total as usize,
    );
    tokio::task::spawn_blocking(move || hub.subscribe_within(key, per_stream, total))
        .await
        .map_err(|e| failed(e.to_string()))?
        .map_err(|e| match e {
            JpegRefusal::Failed(e) => failed(format!("{e:#}")),
            full => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many JPEG encoders",
                full.to_string(),
            ),
        })
}

/// Starts (or joins) the stream's encoder for these parameters; also returns the stream's
/// watermark ID, if it has one.
async fn encoder(
    state: &AppState,
    id: &str,
    params: &ViewParams,
) -> Result<(Arc<JpegEncoder>, Option<String>), ApiError> {
    let (hub, key, watermark) = hub(state, id, params).await?;
    Ok((start_encoder(hub, key, &state.limits).await?, watermark))
}

/// Starts a viewer session (ended when the returned guard drops); 503 when the stream or the
/// process has as many viewers as it takes.
fn session(
    state: &AppState,
    id: &str,
    transport: &'static str,
    ip: Option<IpAddr>,
    params: &ViewParams,
    watermark: Option<String>,
) -> Result<Session, ApiError> {
    state
        .sessions
        .start(
            Viewer {
                stream: id.to_string(),
                transport,
                ip,
                viewer: params.viewer.clone(),
                watermark,
            },
            state.manager.store().sink(),
        )
        .map_err(|full| {
            super::counters::count(&super::counters::EDGE.viewers_refused);
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "too many viewers", full.0)
        })
}

/// The next picture newer than `after` (any, if none yet); `None` when the encoder stopped.
async fn next_picture(rx: &mut JpegFrames, after: Option<u64>) -> Option<Arc<JpegFrame>> {
    loop {
        if let Some(f) = rx.borrow_and_update().clone()
            && after.is_none_or(|a| f.seq > a)
        {
            return Some(f);
        }
        rx.changed().await.ok()?;
    }
}

fn capture_ms(f: &JpegFrame) -> u128 {
    f.capture_time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}

/// The encoder's newest picture, waiting up to `wait` for a first one; the encoder then stays
/// up for `SNAPSHOT_WARM`, for the requests that follow (dashboards poll snapshots; a page's
/// tiles open their sockets).
pub(super) async fn newest_kept_warm(
    enc: Arc<JpegEncoder>,
    wait: Duration,
) -> Option<Arc<JpegFrame>> {
    let mut rx = enc.frames();
    let picture = tokio::time::timeout(wait, next_picture(&mut rx, None))
        .await
        .ok()
        .flatten();
    tokio::spawn(async move {
        tokio::time::sleep(SNAPSHOT_WARM).await;
        drop(enc);
    });
    picture
}

/// `GET /streams/{id}/snapshot.jpg`: the newest picture, at once.
pub async fn snapshot(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Params(params): Params<ViewParams>,
) -> Result<Response, ApiError> {
    let (enc, _) = encoder(&state, &id, &params).await?;
    let picture = newest_kept_warm(enc, FIRST_PICTURE).await.ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no picture yet",
            "the stream has not produced a frame",
        )
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg".to_string()),
            (header::CACHE_CONTROL, "no-store".to_string()),
            (
                header::HeaderName::from_static("x-frame-seq"),
                picture.seq.to_string(),
            ),
            (
                header::HeaderName::from_static("x-capture-time"),
                capture_ms(&picture).to_string(),
            ),
        ],
        picture.data.clone(),
    )
        .into_response())
}

/// `GET /streams/{id}/mjpeg`: `multipart/x-mixed-replace` JPEG, as fast as the viewer reads
/// (or `?fps=`).
pub async fn mjpeg(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Params(params): Params<ViewParams>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Result<Response, ApiError> {
    let (enc, watermark) = encoder(&state, &id, &params).await?;
    let session = session(
        &state,
        &id,
        "mjpeg",
        peer.map(|p| p.0.0.ip()),
        &params,
        watermark,
    )?;
    let interval = params.fps.map(|f| Duration::from_secs_f64(1.0 / f));
    let rx = enc.frames();
    let parts = futures_util::stream::unfold(
        (enc, rx, None::<u64>, Instant::now(), session),
        move |(enc, mut rx, last, due, session)| async move {
            if interval.is_some() {
                tokio::time::sleep_until(due).await;
            }
            let picture = next_picture(&mut rx, last).await?;
            let next_due = interval.map_or(due, |i| (due + i).max(Instant::now()));
            let head = format!(
                "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nX-Frame-Seq: {}\r\nX-Capture-Time: {}\r\n\r\n",
                picture.data.len(),
                picture.seq,
                capture_ms(&picture)
            );
            let mut part = Vec::with_capacity(head.len() + picture.data.len() + 2);
            part.extend_from_slice(head.as_bytes());
            part.extend_from_slice(&picture.data);
            part.extend_from_slice(b"\r\n");
            session.sent(part.len());
            Some((
                Ok::<Bytes, Infallible>(Bytes::from(part)),
                (enc, rx, Some(picture.seq), next_due, session),
            ))
        },
    );
    Ok((
        [
            (
                header::CONTENT_TYPE,
                format!("multipart/x-mixed-replace; boundary={BOUNDARY}"),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        Body::from_stream(parts),
    )
        .into_response())
}

/// `GET /streams/{id}/ws`: a WebSocket pushing one binary message per picture: a 4-byte
/// big-endian length, a JSON header of that length (`seq`, `capture_ms`, `width`, `height`),
/// then the JPEG. The viewer's own pace (or `?fps=`) decides how many it gets.
pub async fn websocket(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Params(params): Params<ViewParams>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let (hub, key, watermark) = hub(&state, &id, &params).await?;
    let interval = params.fps.map(|f| Duration::from_secs_f64(1.0 / f));
    let ip = peer.map(|p| p.0.0.ip());
    // The viewer's place is taken before the handshake, so that a full stream says 503.
    let session = session(&state, &id, "websocket", ip, &params, watermark)?;
    // The handshake is answered before the encoder starts: browsers open one WebSocket to a
    // host at a time, so a page's sockets would otherwise wait for each other's encoders.
    // A viewer only ever sends small control messages: anything bigger closes the socket.
    let ws = ws.max_message_size(MAX_INBOUND).max_frame_size(MAX_INBOUND);
    Ok(ws.on_upgrade(move |mut socket| async move {
        match start_encoder(hub, key, &state.limits).await {
            Ok(enc) => {
                push_pictures(socket, enc, interval, session).await;
            }
            Err(e) => {
                tracing::warn!(stream = %id, "WebSocket viewer: {}", e.detail());
                let _ = socket
                    .send(Message::Close(Some(CloseFrame {
                        code: close_code::ERROR,
                        reason: "cannot start the JPEG encoder".into(),
                    })))
                    .await;
            }
        }
    }))
}

async fn push_pictures(
    mut socket: WebSocket,
    enc: Arc<JpegEncoder>,
    interval: Option<Duration>,
    session: Session,
) {
    let mut rx = enc.frames();
    let mut last = None;
    let mut due = Instant::now();
    loop {
        if interval.is_some() {
            tokio::time::sleep_until(due).await;
        }
        let picture = tokio::select! {
            p = next_picture(&mut rx, last) => p,
            // A closed socket ends the loop even while no picture comes.
            msg = socket.recv() => match msg {
                Some(Ok(_)) => continue,
                _ => return,
            },
        };
        let Some(picture) = picture else { return };
        last = Some(picture.seq);
        if let Some(i) = interval {
            due = (due + i).max(Instant::now());
        }
        let header = serde_json::json!({
            "seq": picture.seq,
            "capture_ms": capture_ms(&picture) as u64,
            "width": picture.width,
            "height": picture.height,
        })
        .to_string();
        let mut msg = Vec::with_capacity(4 + header.len() + picture.data.len());
        msg.extend_from_slice(&(header.len() as u32).to_be_bytes());
        msg.extend_from_slice(header.as_bytes());
        msg.extend_from_slice(&picture.data);
        session.sent(msg.len());
        if socket
            .send(Message::Binary(Bytes::from(msg)))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// `?vt=` on HLS files.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HlsQuery {
    /// A viewer token: the playlist then names its segments with it.
    vt: Option<String>,
}

/// How long the first playlist request waits for the first segment.
const FIRST_SEGMENT: Duration = Duration::from_secs(10);

/// `GET /streams/{id}/hls/{file}`: the HLS playlist (`index.m3u8`, which starts the HLS output
/// if needed) and its segments.
pub async fn hls(
    State(state): State<AppState>,
    Path((id, file)): Path<(String, String)>,
    Params(query): Params<HlsQuery>,
) -> Result<Response, ApiError> {
    if !crate::publish::is_hls_file(&file) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not found",
            format!("no HLS file `{file}`"),
        ));
    }
    let sid = StreamId::try_from(id.clone()).map_err(|_| ApiError::no_stream(&id))?;
    let dir = blocking(&state, move |m| m.with_running(&sid, |s| s.hls().dir()))
        .await??
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot start HLS",
                format!("{e:#}"),
            )
        })?;
    let path = dir.join(&file);
    let playlist = file == "index.m3u8";
    let deadline = Instant::now() + FIRST_SEGMENT;
    let data = loop {
        match tokio::fs::read(&path).await {
            Ok(d) if !d.is_empty() => break d,
            _ if playlist && Instant::now() < deadline => {
                // The first segment is being written: the playlist appears when it is complete.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => {
                return Err(ApiError::new(
                    if playlist {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::NOT_FOUND
                    },
                    if playlist {
                        "no HLS segment yet"
                    } else {
                        "not found"
                    },
                    format!("`{file}` is not (or no longer) there"),
                ));
            }
        }
    };
    let data = match (&query.vt, playlist) {
        (Some(vt), true) => crate::publish::playlist_with_query(
            &String::from_utf8_lossy(&data),
            &super::llhls::view_query(vt),
        )
        .into_bytes(),
        _ => data,
    };
    let content_type = if playlist {
        "application/vnd.apple.mpegurl"
    } else {
        "video/mp2t"
    };
    let cache = if playlist { "no-cache" } else { "max-age=60" };
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, cache),
        ],
        data,
    )
        .into_response())
}
