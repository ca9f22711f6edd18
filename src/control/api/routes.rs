//! The API's routes with their OpenAPI descriptions, one function per area, in the order the
//! document lists them.

use super::*;

/// The streams themselves: list, add, get, replace, remove, start, stop, and reloading the config
/// file.
pub(super) fn streams(api: Api) -> Api {
    api.route(
        "get",
        "/api/streams",
        streams::list,
        Op {
            summary: "List streams",
            description: "Every configured stream with its config (passwords masked) and live status.",
            request: None,
            response: (200, "The streams.", Some(schema::<Vec<StreamStatus>>)),
            text: None,
            errors: &[],
            secured: true,
            query: &[],
        },
    )    .route(
        "post",
        "/api/streams",
        streams::create,
        Op {
            summary: "Add a stream",
            description: "Adds a stream (the same fields as a `[[streams]]` table of the config file) and starts it. Kept across restarts.",
            request: Some(schema::<crate::config::StreamConfig>),
            response: (201, "Added; `Location` names it.", Some(schema::<StreamStatus>)),
            text: None,
            errors: &[400, 409],
            secured: true,
            query: &[],
        },
    )    .route(
        "get",
        "/api/streams/{id}",
        streams::get,
        Op {
            summary: "Get a stream",
            description: "A stream's config (passwords masked) and live status: state, source, rates, drops, latencies, reconnects, last error, outputs.",
            request: None,
            response: (200, "The stream.", Some(schema::<StreamStatus>)),
            text: None,
            errors: STREAM_ERRORS,
            secured: true,
            query: &[],
        },
    )    .route(
        "put",
        "/api/streams/{id}",
        streams::replace,
        Op {
            summary: "Replace a stream",
            description: "Replaces a stream's config; the stream restarts only if something changed. A password given as `***` keeps the current one. Kept across restarts.",
            request: Some(schema::<crate::config::StreamConfig>),
            response: (200, "The stream as it is now.", Some(schema::<StreamStatus>)),
            text: None,
            errors: &[400, 404],
            secured: true,
            query: &[],
        },
    )    .route(
        "delete",
        "/api/streams/{id}",
        streams::delete,
        Op {
            summary: "Remove a stream",
            description: "Stops the stream (outputs get end-of-stream) and removes it. Kept across restarts.",
            request: None,
            response: (204, "Removed.", None),
            text: None,
            errors: STREAM_ERRORS,
            secured: true,
            query: &[],
        },
    )    .route(
        "post",
        "/api/streams/{id}/start",
        streams::start,
        Op {
            summary: "Start a stream",
            description: "Starts a stopped stream (sets `enabled = true`).",
            request: None,
            response: (200, "The stream.", Some(schema::<StreamStatus>)),
            text: None,
            errors: STREAM_ERRORS,
            secured: true,
            query: &[],
        },
    )    .route(
        "post",
        "/api/streams/{id}/stop",
        streams::stop,
        Op {
            summary: "Stop a stream",
            description: "Stops a stream but keeps its config (sets `enabled = false`).",
            request: None,
            response: (200, "The stream.", Some(schema::<StreamStatus>)),
            text: None,
            errors: STREAM_ERRORS,
            secured: true,
            query: &[],
        },
    )    .route(
        "post",
        "/api/reload",
        streams::reload,
        Op {
            summary: "Reload the config file",
            description: "Re-reads the config file (as SIGHUP does) and restarts only the streams whose config changed.",
            request: None,
            response: (200, "What changed.", Some(schema::<ReloadReport>)),
            text: None,
            errors: &[422],
            secured: true,
            query: &[],
        },
    )
}

/// The API about itself and the process: its OpenAPI document, metrics, caps, liveness and
/// readiness.
pub(super) fn service(api: Api) -> Api {
    api.route(
        "get",
        "/api/openapi.json",
        streams::openapi,
        Op {
            summary: "This document",
            description: "The OpenAPI 3.0 description of the API.",
            request: None,
            response: (200, "OpenAPI document.", None),
            text: Some("application/json"),
            errors: &[],
            secured: true,
            query: &[],
        },
    )    .route(
        "get",
        "/metrics",
        streams::prometheus,
        Op {
            summary: "Prometheus metrics",
            description: "Per stream: frames and drops per stage, fps, state, reconnects, latency histograms per stage; process CPU, memory and threads.",
            request: None,
            response: (200, "Prometheus text format 0.0.4.", None),
            text: Some("text/plain"),
            errors: &[],
            secured: true,
            query: &[],
        },
    )    .route(
        "get",
        "/api/limits",
        streams::limits,
        Op {
            summary: "Caps and what they hold",
            description: "The caps on clients (`[server.limits]`) and, since the start, connections open, accepted, closed to make room and refused; failed and blocked authentications; requests refused for their host, origin or content type; viewers, WebRTC sessions and JPEG encoders now and refused.",
            request: None,
            response: (200, "The caps and counters.", Some(schema::<streams::Limits>)),
            text: None,
            errors: &[],
            secured: true,
            query: &[],
        },
    )    .route(
        "get",
        "/healthz",
        streams::healthz,
        Op {
            summary: "Liveness",
            description: "200 while the process runs.",
            request: None,
            response: (200, "Up.", None),
            text: Some("text/plain"),
            errors: &[],
            secured: false,
            query: &[],
        },
    )    .route(
        "get",
        "/readyz",
        streams::readyz,
        Op {
            summary: "Readiness",
            description: "200 when every enabled stream is live, 503 with the others listed otherwise.",
            request: None,
            response: (200, "Ready.", Some(schema::<streams::Readiness>)),
            text: None,
            errors: &[503],
            secured: false,
            query: &[],
        },
    )    .route(
        "get",
        "/api/cluster/failsafe",
        cluster::failsafe,
        Op {
            summary: "When this node last renewed its lease",
            description: "Asked by another node of the cluster whose renewal failed: if no node has renewed since, etcd answers none of them (it lost its quorum) and they keep their cameras (docs/cluster.md). 404 outside a cluster.",
            request: None,
            response: (200, "This node's name and how long ago its last renewal that succeeded was sent.", Some(schema::<crate::cluster::failsafe::PeerAnswer>)),
            text: None,
            errors: &[404],
            secured: true,
            query: &[],
        },
    )
}

/// Watching a stream: snapshots, MJPEG, WebSocket, HLS, LL-HLS and WebRTC (WHEP), and the WebRTC
/// sessions.
pub(super) fn viewing(api: Api) -> Api {
    api.route(
        "get",
        "/streams/{id}/snapshot.jpg",
        viewers::snapshot,
        Op {
            summary: "Snapshot",
            description: "The stream's newest processed picture as a JPEG, at once (no wait for a key frame). `X-Frame-Seq` and `X-Capture-Time` (Unix ms) say which frame it is.",
            request: None,
            response: (200, "A JPEG picture.", None),
            text: Some("image/jpeg"),
            errors: &[400, 404, 409, 503],
            secured: true,
            query: VIEW_QUERY,
        },
    )    .route(
        "get",
        "/streams/{id}/mjpeg",
        viewers::mjpeg,
        Op {
            summary: "MJPEG stream",
            description: "`multipart/x-mixed-replace` JPEG pictures for `<img>` tags; each part has `X-Frame-Seq` and `X-Capture-Time`. A slow viewer skips pictures; it never slows the stream.",
            request: None,
            response: (200, "An endless multipart stream of JPEG pictures.", None),
            text: Some("multipart/x-mixed-replace"),
            errors: &[400, 404, 409, 503],
            secured: true,
            query: VIEW_QUERY,
        },
    )    .route(
        "get",
        "/streams/{id}/ws",
        viewers::websocket,
        Op {
            summary: "WebSocket of pictures",
            description: "A WebSocket (upgrade this GET) pushing one binary message per picture: a 4-byte big-endian length, a JSON header of that length (`seq`, `capture_ms`, `width`, `height`), then the JPEG. A slow viewer gets fewer pictures; it never slows the stream.",
            request: None,
            response: (101, "Switching to the WebSocket protocol.", None),
            text: None,
            errors: &[400, 404, 409, 503],
            secured: true,
            query: VIEW_QUERY,
        },
    )    .route(
        "get",
        "/streams/{id}/hls/{file}",
        viewers::hls,
        Op {
            summary: "HLS",
            description: "`index.m3u8` (the playlist; the first request starts the HLS output and waits for its first segment) and the MPEG-TS segments it names, cut at the key frames of the stream's one H.264 encode (no second encode): one segment per `encoder.keyframe_interval` frames. The output stops after 30 s without requests.",
            request: None,
            response: (200, "The playlist or a segment.", None),
            text: Some("application/vnd.apple.mpegurl"),
            errors: &[404, 409, 503],
            secured: true,
            query: &[],
        },
    )    .route(
        "get",
        "/streams/{id}/llhls/{file}",
        llhls::llhls,
        Op {
            summary: "Low-latency HLS",
            description: "`index.m3u8` (LL-HLS: `EXT-X-PART` ~200 ms parts, `EXT-X-PRELOAD-HINT`, blocking reload with `_HLS_msn`/`_HLS_part`), `init.mp4`, `seg{N}.m4s` (CMAF segments of at least 1 s, each starting at a key frame of the stream's one H.264 encode) and `part{N}.{i}.m4s`, all served from memory. The first request starts the output and waits for its first part; a request for the hinted part is held until it is complete. CORS is open. The output stops after 30 s without requests.",
            request: None,
            response: (200, "The playlist, the initialisation segment, a segment or a part.", None),
            text: Some("application/vnd.apple.mpegurl"),
            errors: &[400, 404, 409, 503],
            secured: true,
            query: llhls::QUERY,
        },
    )    .route(
        "post",
        "/streams/{id}/whep",
        webrtc::offer,
        Op {
            summary: "WebRTC viewer (WHEP)",
            description: "Send an SDP offer (`Content-Type: application/sdp`, recvonly video with H.264 packetization-mode 1); the answer comes back complete (ICE candidates gathered, no trickle) with `201 Created` and the session's `Location`. The session is fed from the stream's one H.264 encode, starting at a key frame. CORS is open for players on other origins.",
            request: None,
            response: (201, "The SDP answer.", None),
            text: Some("application/sdp"),
            errors: &[400, 404, 409, 415, 503],
            secured: true,
            query: &[],
        },
    )    .route(
        "delete",
        "/streams/{id}/whep/{session}",
        webrtc::end,
        Op {
            summary: "End a WebRTC session",
            description: "Ends the session at a `Location` given by `POST /streams/{id}/whep`. A session whose peer vanished ends by itself within seconds.",
            request: None,
            response: (204, "Ended.", None),
            text: None,
            errors: &[404, 409, 503],
            secured: true,
            query: &[],
        },
    )    .route(
        "get",
        "/streams/{id}/whep/{session}/boxes",
        boxes::boxes,
        Op {
            summary: "Boxes for a WebRTC viewer",
            description: "What the stream's detectors find, as Server-Sent Events (`text/event-stream`): each event's data is `{\"rtp\", \"width\", \"height\", \"boxes\": [{\"rect\": {\"x\", \"y\", \"w\", \"h\"}, \"label\", \"score\"}]}`, where `rtp` is the RTP timestamp the frame the boxes were found in went out with in this session (the `rtpTimestamp` of `requestVideoFrameCallback`) and the rectangles are in that frame's pixels (`width` x `height`). An empty `boxes` clears them. A result waits up to a second for its frame to go out; one whose frame this session skipped is not sent. Two readers per session at most (429).",
            request: None,
            response: (200, "The event stream.", None),
            text: Some("text/event-stream"),
            errors: &[404, 409, 429, 503],
            secured: true,
            query: &[],
        },
    )    .route(
        "get",
        "/api/streams/{id}/whep",
        webrtc::sessions,
        Op {
            summary: "A stream's WebRTC sessions",
            description: "Each WHEP session: connection state, age, access units sent and dropped.",
            request: None,
            response: (200, "The sessions.", Some(schema::<Vec<crate::publish::WhepStatus>>)),
            text: None,
            errors: &[404, 409, 503],
            secured: true,
            query: &[],
        },
    )
}

/// What framegate sees and marks: detections, the watermark ID, viewer tokens, the models.
pub(super) fn analytics(api: Api) -> Api {
    api.route(
        "get",
        "/api/streams/{id}/detections",
        analytics::detections,
        Op {
            summary: "A stream's detections",
            description: "The classes present now, the newest detection events (one when a class appears, one when it has been gone for `clear_after` seconds) and the stream's detectors (model, provider, counters, current boxes).",
            request: None,
            response: (200, "The detections.", Some(schema::<analytics::Detections>)),
            text: None,
            errors: &[404, 409, 503],
            secured: true,
            query: &[("limit", "integer", "Most events returned, newest kept. Default 100.")],
        },
    )
    .route(
        "get",
        "/api/streams/{id}/tracks",
        analytics::tracks,
        Op {
            summary: "A stream's tracked objects",
            description: "The live tracks of the stream's `track` processor as in its newest frame (id, class, box, score, velocity in pixels per second, age, trail) and its counters. 404 when the stream has no `track` processor.",
            request: None,
            response: (200, "The tracks.", Some(schema::<crate::process::track::TrackStatus>)),
            text: None,
            errors: &[404, 409, 503],
            secured: true,
            query: &[],
        },
    )
    .route(
        "get",
        "/api/streams/{id}/counts",
        analytics::counts,
        Op {
            summary: "Line and zone counts",
            description: "Per line, per class: crossings `forward` and `backward`; per zone, per class: objects that `entered` and are `inside` now. Counted since the stream started. 404 when the stream has no `track` processor.",
            request: None,
            response: (200, "The counts.", Some(schema::<crate::process::track::Counts>)),
            text: None,
            errors: &[404, 409, 503],
            secured: true,
            query: &[],
        },
    )
    .route(
        "put",
        "/api/streams/{id}/watermark",
        analytics::set_watermark,
        Op {
            summary: "Change the watermark ID",
            description: "The stream's `watermark` processor embeds this 7-character ID from the next frame on, without a restart. Kept across restarts.",
            request: Some(schema::<analytics::WatermarkId>),
            response: (200, "The stream as it is now.", Some(schema::<StreamStatus>)),
            text: None,
            errors: &[400, 404],
            secured: true,
            query: &[],
        },
    )    .route(
        "get",
        "/api/streams/{id}/view-token",
        tokens::stream,
        Op {
            summary: "A viewer token for a stream",
            description: "A short-lived signed token (`server.view_token_ttl_s`, 5 minutes by default) that opens this stream's viewing URLs (snapshot, MJPEG, WebSocket, HLS, LL-HLS, WHEP) as `?vt=<token>`, for players that cannot send the API token in a header. Playlists fetched with it name their files with it.",
            request: None,
            response: (200, "The token.", Some(schema::<tokens::ViewToken>)),
            text: None,
            errors: STREAM_ERRORS,
            secured: true,
            query: &[],
        },
    )    .route(
        "get",
        "/api/view-token",
        tokens::all,
        Op {
            summary: "A viewer token for every stream",
            description: "As `/api/streams/{id}/view-token`, for every stream's viewing URLs and the events' snapshots (the dashboard's wall).",
            request: None,
            response: (200, "The token.", Some(schema::<tokens::ViewToken>)),
            text: None,
            errors: &[],
            secured: true,
            query: &[],
        },
    )    .route(
        "get",
        "/api/models",
        analytics::models,
        Op {
            summary: "Detection models",
            description: "The models loaded so far (each once per process, shared by the streams that use it): provider, input, batching and counters.",
            request: None,
            response: (200, "The models.", Some(schema::<Vec<crate::process::detect::ModelStatus>>)),
            text: None,
            errors: &[],
            secured: true,
            query: &[],
        },
    )
}

/// What was recorded: events, their snapshots, the viewers now, the event store.
pub(super) fn records(api: Api) -> Api {
    api.route(
        "get",
        "/api/events",
        events::list,
        Op {
            summary: "Stored events",
            description: "Events from the event store, newest first: detections appearing and clearing, stream state changes, viewer sessions, API changes, alerts. Filter by stream, kind, class and time; page with `cursor`.",
            request: None,
            response: (200, "A page of events.", Some(schema::<events::EventPage>)),
            text: None,
            errors: &[400, 503],
            secured: true,
            query: &[
                ("stream", "string", "Only this stream."),
                ("kind", "string", "Only this kind: detection.appeared, detection.cleared, stream.state, viewer.started, viewer.ended, config.changed, alert."),
                ("class", "string", "Only this object class."),
                ("since", "string", "At or after: milliseconds since 1970, or an RFC 3339 time."),
                ("until", "string", "Before: milliseconds since 1970, or an RFC 3339 time."),
                ("limit", "integer", "Most events returned, 1 to 1000. Default 100."),
                ("cursor", "string", "The `next_cursor` of the previous page."),
            ],
        },
    )    .route(
        "get",
        "/api/events/{id}",
        events::get,
        Op {
            summary: "One event",
            description: "An event by its id.",
            request: None,
            response: (200, "The event.", Some(schema::<crate::store::Event>)),
            text: None,
            errors: &[404, 503],
            secured: true,
            query: &[],
        },
    )    .route(
        "get",
        "/api/events/{id}/snapshot.jpg",
        events::snapshot,
        Op {
            summary: "An event's snapshot",
            description: "The frame saved with a detection or alert event, when `database.snapshots` is on.",
            request: None,
            response: (200, "A JPEG picture.", None),
            text: Some("image/jpeg"),
            errors: &[404, 503],
            secured: true,
            query: &[],
        },
    )    .route(
        "get",
        "/api/streams/{id}/viewers",
        events::viewers,
        Op {
            summary: "A stream's viewers",
            description: "The MJPEG and WebSocket viewers watching the stream now: address, name given with `?viewer=`, watermark ID, start, pictures and bytes sent.",
            request: None,
            response: (200, "The sessions, oldest first.", Some(schema::<Vec<crate::control::sessions::ViewerStatus>>)),
            text: None,
            errors: &[404],
            secured: true,
            query: &[],
        },
    )    .route(
        "get",
        "/api/store",
        events::store,
        Op {
            summary: "Event store state",
            description: "Whether events are being written, how many wait in the on-disk queue, how many were dropped, the schema version, and the alert outbox (pending, delivered).",
            request: None,
            response: (200, "The store.", Some(schema::<events::StoreReport>)),
            text: None,
            errors: &[],
            secured: true,
            query: &[],
        },
    )
}
