//! `framegate track`: the tracker run over boxes read from a file instead of a detector, with
//! no video: what the evaluation against ground truth (`scripts/eval-track.py`) and the
//! tracker's benchmark feed it.
//!
//! Input, one JSON object per line, in time order:
//! `{"t": 0.04, "boxes": [{"box": [x, y, w, h], "label": "person", "score": 0.9}]}` is a
//! detector result found in the frame of time `t` (seconds); `"boxes": null` (or no `boxes`)
//! is a frame without a result (the tracks are predicted to it). Output, one line per input
//! line: `{"t": ..., "tracks": [{"id": 1, "box": [x, y, w, h], "label": ..., "score": ...}]}`,
//! with `"events": [{"kind": "line.crossed", "class": ..., "data": {...}}]` when the tracker
//! made some at that frame (objects started and ended, lines crossed, zones entered and left),
//! then a last line `{"counts": {...}, "updates": N, "mean_update_ms": ..., "events": [...]}`:
//! the input's end ends every track still open (at the last frame's `t`), and the events that
//! makes (`object.ended`, `zone.left` with the dwell so far, a crossing held on a predicted
//! path) go there, counted in `counts`.

use std::io::{BufRead, Write};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::config::{StreamConfig, StreamId};
use crate::frame::{Detection, Frame, FrameMeta, Rect};
use crate::process::{Hooks, Processor, Track};

/// Longest input line, bytes.
const MAX_LINE: usize = 1 << 20;
/// Most boxes in one result.
const MAX_BOXES: usize = 10_000;
/// Most events kept between two frames (more are dropped).
pub(crate) const MAX_EVENTS: usize = 65_536;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Result_ {
    t: f64,
    #[serde(default)]
    boxes: Option<Vec<InBox>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InBox {
    #[serde(rename = "box")]
    rect: [f32; 4],
    label: String,
    #[serde(default = "one")]
    score: f32,
}

fn one() -> f32 {
    1.0
}

/// What a replay did.
#[derive(Debug)]
pub struct ReplayReport {
    /// Input lines read.
    pub frames: u64,
    /// Mean time per result, milliseconds.
    pub mean_update_ms: f64,
}

/// Runs the tracker of `stream` (its `track` settings, lines and zones; default settings
/// without one) over the results of `input` for frames of `size` (width, height), writing the
/// tracks of every frame to `out`.
pub fn replay(
    input: impl BufRead,
    mut out: impl Write,
    stream: Option<&StreamConfig>,
    size: [u32; 2],
) -> Result<ReplayReport> {
    if !(16..=16384).contains(&size[0]) || !(16..=16384).contains(&size[1]) {
        bail!(
            "frame size {}x{} must be 16 to 16384 on each side",
            size[0],
            size[1]
        );
    }
    gst::init().context("initialising GStreamer")?;
    let settings = stream
        .and_then(|s| {
            s.processors.iter().find_map(|p| match p {
                crate::config::ProcessorConfig::Track(t) => Some(t.clone()),
                _ => None,
            })
        })
        .unwrap_or_default();
    let (lines, zones) = stream.map_or((&[][..], &[][..]), |s| (&s.lines[..], &s.zones[..]));
    let (events, mut happened) = crate::store::EventSink::channel(MAX_EVENTS);
    let hooks = Hooks {
        events,
        ..Hooks::default()
    };
    let mut track = Track::new(&settings, lines, zones, &hooks);
    let handle = track.handle();
    let id = StreamId::try_from("replay".to_string()).map_err(anyhow::Error::msg)?;
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, size[0], size[1])
        .build()
        .context("frame layout")?;
    // One picture for every frame (the tracker only reads the boxes): each frame is a new
    // buffer over the same memory, with its own PTS.
    let picture = gst::Buffer::with_size(info.size()).context("a frame")?;
    let mut frames = 0u64;
    let mut last_t = f64::NEG_INFINITY;
    for (n, line) in input.split(b'\n').enumerate() {
        let line = line.context("reading the boxes")?;
        let at = n + 1;
        if line.len() > MAX_LINE {
            bail!("line {at}: longer than {MAX_LINE} bytes");
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let r: Result_ =
            serde_json::from_slice(&line).with_context(|| format!("line {at}: not a result"))?;
        if !r.t.is_finite() || !(0.0..=1e7).contains(&r.t) || r.t < last_t {
            bail!(
                "line {at}: t = {} must be from 0 to 1e7 seconds, in order",
                r.t
            );
        }
        last_t = r.t;
        let pts = (r.t * 1e9).round() as u64;
        let mut buffer = picture.copy();
        buffer
            .get_mut()
            .context("a new frame is writable")?
            .set_pts(gst::ClockTime::from_nseconds(pts));
        let mut meta = FrameMeta::new(id.clone(), frames, std::time::SystemTime::now());
        if let Some(boxes) = r.boxes {
            if boxes.len() > MAX_BOXES {
                bail!("line {at}: more than {MAX_BOXES} boxes");
            }
            meta.detections = boxes
                .into_iter()
                .map(|b| Detection {
                    rect: Rect {
                        x: b.rect[0],
                        y: b.rect[1],
                        w: b.rect[2],
                        h: b.rect[3],
                    },
                    label: b.label.chars().take(64).collect(),
                    score: b.score,
                })
                .collect();
            meta.detections_pts = Some(pts);
        }
        let mut frame = Frame::new(buffer, info.clone(), meta);
        track.process(&mut frame)?;
        let tracks: Vec<_> = frame
            .meta
            .tracks
            .unwrap_or_default()
            .into_iter()
            .map(|t| {
                serde_json::json!({
                    "id": t.id,
                    "box": [t.rect.x, t.rect.y, t.rect.w, t.rect.h],
                    "label": t.label,
                    "score": t.score,
                })
            })
            .collect();
        let mut line = serde_json::json!({ "t": r.t, "tracks": tracks });
        attach_events(&mut line, &mut happened);
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
        frames += 1;
    }
    // The input ended: the tracks still open end at the last frame's time, and what that made
    // (zone visits ended, held crossings counted) goes on the last line with the counts.
    track.finish();
    let status = handle.status();
    let mut last = serde_json::json!({
        "counts": handle.counts(),
        "started": status.started,
        "ended": status.ended,
        "updates": status.updates,
        "mean_update_ms": status.mean_update_ms,
    });
    attach_events(&mut last, &mut happened);
    serde_json::to_writer(&mut out, &last)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(ReplayReport {
        frames,
        mean_update_ms: status.mean_update_ms,
    })
}

/// Puts the events waiting in `happened` on `line` as `"events": [{"kind", "class", "data"}]`
/// (nothing when none are waiting): how `track` and `process --tracks-out` write them.
pub(crate) fn attach_events(
    line: &mut serde_json::Value,
    happened: &mut tokio::sync::mpsc::Receiver<crate::store::Event>,
) {
    let made: Vec<_> = std::iter::from_fn(|| happened.try_recv().ok())
        .map(|e| serde_json::json!({ "kind": e.kind, "class": e.class, "data": e.data }))
        .collect();
    if !made.is_empty() {
        line["events"] = made.into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config whose one stream, `door`, detects and tracks, with `shapes` (TOML lines/zones).
    fn tracking(shapes: &str) -> crate::config::Config {
        crate::config::parse_str(
            &format!(
                r#"
[[models]]
id = "m"
path = "Cargo.toml"
format = "centernet"
[[streams]]
id = "door"
source = "test://ball"
processors = [ {{ kind = "detect", model = "m" }}, {{ kind = "track" }} ]
{shapes}
"#
            ),
            std::path::Path::new("door.toml"),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_walk_across_a_line_is_one_track_and_one_count() {
        let config = tracking(DOOR);
        let mut input = String::new();
        for i in 0..50 {
            let t = i as f64 * 0.04;
            let x = 500.0 + 200.0 * t;
            if i % 3 == 0 {
                input.push_str(&format!(
                    "{{\"t\": {t}, \"boxes\": [{{\"box\": [{x}, 300, 40, 80], \"label\": \"person\", \"score\": 0.9}}]}}\n"
                ));
            } else {
                input.push_str(&format!("{{\"t\": {t}}}\n"));
            }
        }
        let mut out = Vec::new();
        let report = replay(
            input.as_bytes(),
            &mut out,
            Some(&config.streams[0]),
            [1280, 720],
        )
        .unwrap();
        assert_eq!(report.frames, 50);
        let text = String::from_utf8(out).unwrap();
        let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(
            last["counts"]["lines"]["door"]["person"]["forward"], 1,
            "{last}"
        );
        assert_eq!(last["started"], 1);
        // Every frame after the confirmation has the track, with one id.
        let ids: std::collections::BTreeSet<u64> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["tracks"].as_array().cloned())
            .flatten()
            .map(|t| t["id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids.into_iter().collect::<Vec<_>>(), vec![1]);
        // The crossing is an event of the frame it happened in.
        let crossed: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["events"].as_array().cloned())
            .flatten()
            .filter(|e| e["kind"] == "line.crossed")
            .collect();
        assert_eq!(crossed.len(), 1, "{crossed:?}");
        assert_eq!(crossed[0]["class"], "person", "{crossed:?}");
        assert!(
            crossed[0]["data"].to_string().contains("forward"),
            "{crossed:?}"
        );
    }

    /// Replays a person walking right at 200 px/s from x = 500 (a detector's result every
    /// third frame at 25 fps: the box `rect(x)`, or none where it gives `None`) for `frames` frames through a
    /// stream with `shapes` (TOML lines/zones); returns the events, in order, with their time.
    fn walk(
        shapes: &str,
        frames: usize,
        rect: impl Fn(f64) -> Option<[f64; 4]>,
    ) -> Vec<(f64, serde_json::Value)> {
        walked(shapes, frames, rect)
            .into_iter()
            .filter_map(|v| Some((v["t"].as_f64()?, v["events"].as_array()?.clone())))
            .flat_map(|(t, events)| events.into_iter().map(move |e| (t, e)))
            .collect()
    }

    /// The replay's output lines of that walk (the frames', then the last one).
    fn walked(
        shapes: &str,
        frames: usize,
        rect: impl Fn(f64) -> Option<[f64; 4]>,
    ) -> Vec<serde_json::Value> {
        let config = tracking(shapes);
        let mut input = String::new();
        for i in 0..frames {
            let t = i as f64 * 0.04;
            if i % 3 != 0 {
                input.push_str(&format!("{{\"t\": {t}}}\n"));
                continue;
            }
            let boxes = rect(500.0 + 200.0 * t).map_or(String::new(), |r| {
                format!("{{\"box\": {r:?}, \"label\": \"person\", \"score\": 0.9}}")
            });
            input.push_str(&format!("{{\"t\": {t}, \"boxes\": [{boxes}]}}\n"));
        }
        let mut out = Vec::new();
        replay(
            input.as_bytes(),
            &mut out,
            Some(&config.streams[0]),
            [1280, 720],
        )
        .unwrap();
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn the_end_of_the_input_ends_the_tracks_still_open() {
        // Seen up to x = 610, then hidden: the input ends 1.56 s in, before the lost track
        // would end (2 s after it was last seen). Its crossing, held on the predicted path,
        // counts at the end; the lobby visit ends with its dwell; the track ends.
        let shapes = r#"lines = [ { id = "door", points = [[640, 0], [640, 720]] } ]
zones = [ { id = "lobby", points = [[400, 200], [700, 200], [700, 500], [400, 500]] } ]"#;
        let hidden = |x: f64| (x < 610.0).then_some([x, 300.0, 40.0, 80.0]);
        let lines = walked(shapes, 40, hidden);
        let (frames, last) = lines.split_at(lines.len() - 1);
        let kinds = |v: &serde_json::Value| -> Vec<String> {
            v["events"]
                .as_array()
                .map(|e| e.iter().map(|e| e["kind"].to_string()).collect())
                .unwrap_or_default()
        };
        assert!(
            frames
                .iter()
                .all(|f| !kinds(f).contains(&"\"line.crossed\"".into())),
            "counted before the end: {frames:?}"
        );
        let last = &last[0];
        assert_eq!(
            kinds(last),
            ["\"line.crossed\"", "\"zone.left\"", "\"object.ended\""],
            "{last}"
        );
        assert_eq!(
            last["counts"]["lines"]["door"]["person"]["forward"], 1,
            "{last}"
        );
        assert_eq!(
            last["counts"]["zones"]["lobby"]["person"]["inside"], 0,
            "{last}"
        );
        assert_eq!(last["ended"], 1, "{last}");
        // In the lobby from the first result (the track confirmed a few results in) to the
        // input's last frame (1.56 s).
        let dwell = last["events"][1]["data"]["dwell_s"].as_f64().unwrap();
        assert!((1.0..=1.56).contains(&dwell), "{last}");
        // Nothing open, nothing to end: the last line has no events.
        let none = walked(shapes, 40, |_| None);
        assert!(none.last().unwrap().get("events").is_none(), "{none:?}");
    }

    fn crossings(events: &[(f64, serde_json::Value)]) -> Vec<String> {
        events
            .iter()
            .filter(|(_, e)| e["kind"] == "line.crossed")
            .map(|(_, e)| format!("{} {}", e["class"], e["data"]["direction"]))
            .collect()
    }

    const DOOR: &str = r#"lines = [ { id = "door", points = [[640, 0], [640, 720]] } ]"#;

    #[test]
    fn someone_hidden_as_they_cross_is_counted_on_their_tracks_predicted_path() {
        // Seen up to x = 610, then hidden for good: the track, lost, goes on along its
        // predicted path, which crosses the line; the crossing counts when the track ends
        // (`max_lost_s`, 2 s after it was last seen, about 0.5 s in), not before.
        let hidden = |x: f64| (x < 610.0).then_some([x, 300.0, 40.0, 80.0]);
        let events = walk(DOOR, 80, hidden);
        assert_eq!(crossings(&events), ["\"person\" \"forward\""], "{events:?}");
        let t = events
            .iter()
            .find(|(_, e)| e["kind"] == "line.crossed")
            .map(|(t, _)| *t);
        assert!(
            t.is_some_and(|t| t >= 2.4),
            "counted at the end: {events:?}"
        );
        assert!(
            crossings(&walk(DOOR, 40, hidden)).is_empty(),
            "held until then"
        );
        // Hidden for longer than a lost track is shown (0.5 s), not than it is kept (2 s):
        // last seen about 0.5 s in, at x = 604; the line at x = 800 is reached 0.9 s later.
        let far = r#"lines = [ { id = "far", points = [[800, 0], [800, 720]] } ]"#;
        let events = walk(far, 80, hidden);
        assert_eq!(crossings(&events), ["\"person\" \"forward\""], "{events:?}");
    }

    #[test]
    fn a_guessed_position_never_ends_a_zone_visit() {
        // In the zone until x = 600 (seen), then hidden: the prediction leaves the zone at
        // x = 640, but only the track's end (after `max_lost_s`) ends the visit.
        let zone = r#"zones = [ { id = "lobby", points = [[400, 200], [640, 200], [640, 500], [400, 500]] } ]"#;
        let events = walk(zone, 100, |x| (x < 600.0).then_some([x, 300.0, 40.0, 80.0]));
        let left: Vec<f64> = events
            .iter()
            .filter(|(_, e)| e["kind"] == "zone.left")
            .map(|(t, _)| *t)
            .collect();
        let last_seen = 0.48; // x = 596 at frame 12
        assert_eq!(left.len(), 1, "{events:?}");
        assert!(left[0] >= last_seen + 2.0, "left at {} {events:?}", left[0]);
    }

    #[test]
    fn a_line_drawn_to_the_pictures_edge_counts_someone_whose_feet_are_below_it() {
        // Boxes reaching 40 px below the 720-px picture: what is tested is the box's part in
        // the picture, whose bottom lies on the line's end.
        let events = walk(DOOR, 50, |x| Some([x, 640.0, 40.0, 120.0]));
        assert_eq!(crossings(&events), ["\"person\" \"forward\""], "{events:?}");
    }

    #[test]
    fn hostile_input_is_refused_with_its_line() {
        let run = |text: &str| {
            replay(text.as_bytes(), Vec::new(), None, [1280, 720])
                .unwrap_err()
                .to_string()
        };
        assert!(run("{\"t\": 1}\n{\"t\": 0.5}\n").starts_with("line 2: t = 0.5"));
        assert!(run("{\"t\": 1e300}\n").starts_with("line 1"));
        assert!(run("nonsense\n").starts_with("line 1: not a result"));
        assert!(run("{\"t\": 0, \"extra\": 1}\n").starts_with("line 1"));
        // A box too large for f32 is no box: no track, no error.
        let huge = "{\"t\": 0, \"boxes\": [{\"box\": [1e39, 0, 1, 1], \"label\": \"x\"}]}\n";
        let mut out = Vec::new();
        replay(huge.repeat(3).as_bytes(), &mut out, None, [1280, 720]).unwrap();
        assert!(!String::from_utf8(out).unwrap().contains("\"id\""));
    }
}
