//! Boxes for a WebRTC viewer: each detector result with the RTP time its frame went out with
//! in the viewer's session, as Server-Sent Events. The page draws them over the video frame
//! whose `rtpTimestamp` matches (`requestVideoFrameCallback`): boxes aligned by timestamp,
//! not burned into the pixels.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::sync::{broadcast, mpsc};

use crate::process::detect::Found;
use crate::publish::{BoxReader, RtpClock};

use super::AppState;
use super::error::ApiError;
use super::streams::{blocking, stream_id};

/// How long a result waits for its frame to go out in the session.
const WAIT_FOR_FRAME: Duration = Duration::from_secs(1);
/// Results waiting for their frame, at most.
const PENDING: usize = 16;
/// How often a quiet stream says it is there (which is also when a reader that left is
/// noticed, and its place given back).
const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// How often waiting results are looked at again (and whether the session still is).
const TICK: Duration = Duration::from_millis(40);

/// `GET /streams/{id}/whep/{session}/boxes`: what the stream's detectors find, as Server-Sent
/// Events, each result with the RTP time of its frame in this session (`rtp`), so that the
/// viewer draws the boxes over the frame they were found in. A result whose frame has not
/// gone out in this session yet waits for it (up to a second); one whose frame never did (a
/// frame this viewer skipped) is not sent.
pub async fn boxes(
    State(state): State<AppState>,
    Path((id, session)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let sid = stream_id(&id)?;
    let (hub, live) = blocking(&state, move |m| {
        m.with_running(&sid, |s| {
            // A tracker's results carry its tracks (ids, trails) and replace the detectors'.
            let live: Vec<_> = match s.tracker() {
                Some(t) => vec![t.live.subscribe()],
                None => s.detectors().iter().map(|d| d.live.subscribe()).collect(),
            };
            (s.whep().clone(), live)
        })
    })
    .await??;
    let clock = hub.rtp_clock(&session).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no such session",
            "no WebRTC session there (it ended, or its peer vanished)",
        )
    })?;
    if live.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no detector",
            "this stream has no `detect` processor: there are no boxes to draw",
        ));
    }
    let reader = clock.upgrade().and_then(|c| c.reader()).ok_or_else(|| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many box readers",
            format!(
                "this session's boxes are read {} times already",
                crate::publish::MAX_BOX_READERS
            ),
        )
    })?;
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(8);
    tokio::spawn(forward(clock, live, tx, reader));
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        let data = rx.recv().await?;
        Some((
            Ok::<_, std::convert::Infallible>(axum::response::sse::Event::default().data(data)),
            rx,
        ))
    });
    Ok(axum::response::sse::Sse::new(events)
        .keep_alive(axum::response::sse::KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

/// Sends each result once its frame's RTP time is known, until the reader or the session goes.
async fn forward(
    clock: Weak<RtpClock>,
    mut live: Vec<broadcast::Receiver<Arc<Found>>>,
    tx: mpsc::Sender<String>,
    _reader: BoxReader,
) {
    let mut pending: VecDeque<(Instant, Arc<Found>)> = VecDeque::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let next = futures_util::future::select_all(live.iter_mut().map(|r| Box::pin(r.recv())));
        tokio::select! {
            () = tx.closed() => return,
            (got, _, _) = next => match got {
                Ok(found) => {
                    if pending.len() == PENDING {
                        pending.pop_front();
                    }
                    pending.push_back((Instant::now(), found));
                }
                // A late reader skips results; the detector never waits.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick() => {}
        }
        let Some(clock) = clock.upgrade() else {
            return;
        };
        let mut ready = Vec::new();
        pending.retain(|(since, found)| match clock.rtp_of(found.source_pts) {
            Some(rtp) => {
                ready.push(message(rtp, found));
                false
            }
            None => since.elapsed() < WAIT_FOR_FRAME,
        });
        drop(clock);
        for m in ready {
            if tx.send(m).await.is_err() {
                return;
            }
        }
    }
}

/// One event's data: `{"rtp", "width", "height", "boxes": [{"rect", "label", "score"}]}`,
/// with a tracker `"tracks": [{"id", "rect", "label", "score", "velocity", "age_s", "trail"}]`
/// and no boxes.
fn message(rtp: u32, found: &Found) -> String {
    let mut m = serde_json::json!({
        "rtp": rtp,
        "width": found.width,
        "height": found.height,
        "boxes": found.boxes,
    });
    if !found.tracks.is_empty() {
        m["tracks"] = serde_json::json!(found.tracks);
    }
    m.to_string()
}
