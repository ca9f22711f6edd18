//! The `track` processor in a running gateway with the real model on real street footage:
//! tracks with ids in the API, line and zone counts in the API and the metrics, object and line
//! events in the event store, and configs that cannot work refused by `check` with the field.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::http::{get_json, request};
use common::servers::WebhookReceiver;
use common::{Framegate, free_port, shared, wait_for, wait_for_port};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(90);

#[test]
fn people_on_a_street_get_track_ids_cross_a_line_and_visit_a_zone() {
    let http = free_port();
    let mut hooks = WebhookReceiver::down();
    hooks.up();
    let fg = Framegate::run(&format!(
        r#"
[server]
http = "127.0.0.1:{http}"
rtsp_port = 0

[database]
snapshots = true

# Every crossing of the middle line by a person, and anyone a second in the left half.
[[alerts]]
id = "crossing"
class = "person"
on_line = "middle"
cooldown_s = 0
webhook = {{ url = "{hook}" }}

[[alerts]]
id = "loiter"
class = "person"
in_zone = "left"
dwell_s = 1
cooldown_s = 0
webhook = {{ url = "{hook}" }}

[[models]]
id = "coco"
path = "{model}"
format = "centernet"
threads = 1

[[streams]]
id = "street"
source = "file://{vtest}"
processors = [
  {{ kind = "detect", model = "coco", min_score = 0.2, classes = ["person"] }},
  {{ kind = "track" }},
  {{ kind = "overlay" }},
]
# vtest.avi is 768x576: a line down the middle, and the left half as a zone.
lines = [ {{ id = "middle", points = [[384, 0], [384, 576]] }} ]
zones = [ {{ id = "left", points = [[0, 0], [384, 0], [384, 576], [0, 576]] }} ]

[[streams]]
id = "plain"
source = "test://ball?width=320&height=240&fps=25"
"#,
        model = shared("models/centernet.onnx").display(),
        vtest = shared("testdata/vtest.avi").display(),
        hook = hooks.url(),
    ));
    let addr = format!("127.0.0.1:{http}");
    wait_for_port(http, LONG);

    // Tracks with ids, classes, boxes and velocities.
    let tracks = wait_for("people tracked", LONG, || {
        let t = get_json(&addr, "/api/streams/street/tracks");
        let live = t["tracks"].as_array().unwrap().clone();
        (!live.is_empty()).then_some(live)
    });
    let first = &tracks[0];
    assert!(first["id"].as_u64().unwrap() >= 1, "{first}");
    assert_eq!(first["label"], "person");
    assert!(first["rect"]["w"].as_f64().unwrap() > 0.0);
    assert_eq!(first["velocity"].as_array().unwrap().len(), 2);

    // People walk across the middle of the street and through its left half.
    let counts = wait_for("a crossing of the middle line", LONG, || {
        let c = get_json(&addr, "/api/streams/street/counts");
        let p = &c["lines"]["middle"]["person"];
        let crossed = p["forward"].as_u64().unwrap_or(0) + p["backward"].as_u64().unwrap_or(0);
        (crossed > 0).then_some(c)
    });
    assert!(
        counts["zones"]["left"]["person"]["entered"]
            .as_u64()
            .unwrap()
            > 0,
        "{counts}"
    );

    // The events of the store agree: objects started (with a snapshot), lines crossed.
    let events = |kind: &str| {
        get_json(
            &addr,
            &format!("/api/events?stream=street&kind={kind}&limit=500"),
        )["events"]
            .as_array()
            .unwrap()
            .clone()
    };
    let crossed = wait_for("line.crossed events stored", LONG, || {
        let e = events("line.crossed");
        (!e.is_empty()).then_some(e)
    });
    assert_eq!(crossed[0]["data"]["line"], "middle");
    assert!(["forward", "backward"].contains(&crossed[0]["data"]["direction"].as_str().unwrap()));
    assert!(crossed[0]["data"]["track"].as_u64().is_some());
    let started = events("object.started");
    assert!(!started.is_empty());
    assert!(
        started.iter().any(|e| e["snapshot"].is_string()),
        "{started:?}"
    );
    assert!(!events("zone.entered").is_empty());

    // The rules on the line and the zone sent their alerts.
    let rules = || -> Vec<Value> {
        hooks
            .hooks()
            .iter()
            .map(|h| serde_json::from_str::<Value>(&h.body).unwrap())
            .collect()
    };
    let alerts = wait_for("alerts of both rules", LONG, || {
        let a = rules();
        let has = |r: &str| a.iter().any(|e| e["rule"] == r);
        (has("crossing") && has("loiter")).then_some(a)
    });
    let crossing = alerts.iter().find(|e| e["rule"] == "crossing").unwrap();
    assert_eq!(crossing["line"], "middle", "{crossing}");
    assert!(crossing["track"].as_u64().is_some(), "{crossing}");
    let loiter = alerts.iter().find(|e| e["rule"] == "loiter").unwrap();
    assert!(loiter["dwell_s"].as_f64().unwrap() >= 1.0, "{loiter}");
    assert_eq!(loiter["zone"], "left");

    // The metrics carry the counts.
    let metrics = request(&addr, "GET", "/metrics", None, None).body;
    assert!(metrics.contains("framegate_line_crossings_total{stream=\"street\",line=\"middle\",class=\"person\",direction=\"forward\"}"), "{metrics}");
    assert!(metrics.contains("framegate_tracks_total{stream=\"street\",event=\"started\"}"));
    assert!(
        metrics.contains("framegate_zone_inside{stream=\"street\",zone=\"left\",class=\"person\"}")
    );

    // A stream without a tracker says so.
    for path in ["/api/streams/plain/tracks", "/api/streams/plain/counts"] {
        let r = request(&addr, "GET", path, None, None);
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        assert!(r.body.contains("no `track` processor"), "{}", r.body);
    }
    drop(fg);
}

fn check(config: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_framegate"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn configs_that_cannot_track_are_refused_with_the_field() {
    let model = shared("models/centernet.onnx");
    let stream = |processors: &str, shapes: &str| {
        format!(
            "[[models]]\nid = \"coco\"\npath = \"{}\"\nformat = \"centernet\"\n\n[[streams]]\nid = \"s\"\nsource = \"test://ball\"\nprocessors = [ {processors} ]\n{shapes}\n",
            model.display()
        )
    };
    let detect = "{ kind = \"detect\", model = \"coco\" }";
    let ok = check(&stream(
        &format!("{detect}, {{ kind = \"track\" }}"),
        "lines = [ { id = \"door\", points = [[640, 0], [640, 720]] } ]",
    ));
    assert!(ok.0, "{}", ok.1);
    for (processors, shapes, says) in [
        (
            "{ kind = \"track\" }".to_string(),
            "",
            "`detect` processor placed before it",
        ),
        (
            detect.to_string(),
            "lines = [ { id = \"door\", points = [[640, 0], [640, 720]] } ]",
            "counted by a `track` processor",
        ),
        (
            format!("{detect}, {{ kind = \"track\" }}"),
            "zones = [ { id = \"z\", points = [[0, 0], [1e300, 0], [0, 5]] } ]",
            "out of range",
        ),
        (
            format!("{detect}, {{ kind = \"track\", max_lost_s = -1 }}"),
            "",
            "track.max_lost_s",
        ),
        (
            format!("{detect}, {{ kind = \"track\" }}"),
            "lines = [ { id = \"door\", points = [[0, 0], [1, 1], [2, 2]] } ]",
            "2 points, not 3",
        ),
        (
            format!(
                "{detect}, {{ kind = \"track\", class_groups = [[\"car\", \"van\"], [\"van\", \"bus\"]] }}"
            ),
            "",
            "track.class_groups[1]: \"van\" is already in another group",
        ),
    ] {
        let (ok, text) = check(&stream(&processors, shapes));
        assert!(!ok, "accepted: {processors} {shapes}");
        assert!(text.contains(says), "{text}");
        assert!(text.contains("t.toml"), "names the file: {text}");
    }
    // An alert on a line or a zone names one the stream has.
    let tracked = stream(
        &format!("{detect}, {{ kind = \"track\" }}"),
        "lines = [ { id = \"door\", points = [[640, 0], [640, 720]] } ]",
    );
    let rule = |extra: &str| {
        format!(
            "{tracked}\n[[alerts]]\nid = \"in\"\nclass = \"person\"\nstreams = [\"s\"]\n{extra}\nwebhook = {{ url = \"http://127.0.0.1:9/\" }}\n"
        )
    };
    let (ok, text) = check(&rule("on_line = \"door\"\ndirection = \"forward\""));
    assert!(ok, "{text}");
    let (ok, text) = check(&rule("on_line = \"gate\""));
    assert!(
        !ok && text.contains("on_line: stream `s` has no `gate`"),
        "{text}"
    );
    let (ok, text) = check(&rule("in_zone = \"lobby\"\ndwell_s = 5"));
    assert!(
        !ok && text.contains("in_zone: stream `s` has no `lobby`"),
        "{text}"
    );
}

/// `framegate process --tracks-out` writes every frame's tracks and the tracker's events, and
/// each result of the detector once, with the time of the frame it was found in (what `scripts/eval-track.py` scores the
/// detector by). At the video's pace: a result comes a model run after its frame.
#[test]
fn process_writes_each_frames_tracks_and_each_detector_result() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("still.mp4");
    let made = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-loop", "1", "-i"])
        .arg(shared("testdata/person.jpg"))
        .args([
            "-t",
            "2",
            "-r",
            "10",
            "-vf",
            "scale=640:-2",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:v", "libx264", "-preset", "ultrafast"])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(made.success());
    let cfg = dir.path().join("t.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[models]]\nid = \"coco\"\npath = \"{}\"\nformat = \"centernet\"\n\n\
             [[streams]]\nid = \"s\"\nsource = \"test://ball\"\n\
             processors = [ {{ kind = \"detect\", model = \"coco\", min_score = 0.1 }}, \
             {{ kind = \"track\", high_score = 0.3, new_track_score = 0.3 }} ]\n",
            shared("models/centernet.onnx").display()
        ),
    )
    .unwrap();
    let tracks = dir.path().join("tracks.jsonl");
    common::succeeded(
        Command::new(env!("CARGO_BIN_EXE_framegate"))
            .args(["process", "--input"])
            .arg(&clip)
            .arg("--output")
            .arg(dir.path().join("out.mp4"))
            .arg("--config")
            .arg(&cfg)
            .args(["--stream", "s", "--realtime", "--tracks-out"])
            .arg(&tracks),
    );
    let lines: Vec<Value> = std::fs::read_to_string(&tracks)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let frames: Vec<&Value> = lines.iter().filter(|l| l.get("tracks").is_some()).collect();
    assert!(frames.len() >= 15, "{} frames", frames.len());
    let results: Vec<&Value> = frames.iter().filter_map(|l| l.get("detections")).collect();
    assert!(!results.is_empty(), "no detector result written");
    let mut result_times = Vec::new();
    for l in &frames {
        if let Some(d) = l.get("detections") {
            let (found, shown) = (d["pts"].as_f64().unwrap(), l["pts"].as_f64().unwrap());
            assert!(found <= shown + 1e-6, "a result from the future: {l}");
            result_times.push(found);
        }
    }
    let mut unique = result_times.clone();
    unique.dedup();
    assert_eq!(unique, result_times, "each result once");
    let person = |v: &Value, key: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .any(|b| b["label"] == "person" && b[key].as_f64().unwrap_or(0.0) > 0.3)
    };
    assert!(
        results.iter().any(|d| person(&d["boxes"], "score")),
        "{results:?}"
    );
    assert!(
        frames.iter().any(|l| l["tracks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["label"] == "person")),
        "the person still is never tracked"
    );
    // The tracker's events go with the frame they happened in.
    assert!(
        frames
            .iter()
            .filter_map(|l| l.get("events").and_then(Value::as_array))
            .flatten()
            .any(|e| e["kind"] == "object.started" && e["class"] == "person"),
        "the person's track never started in the written events"
    );
    // The input's end ends the tracks still open: every track that started ends once, the
    // still person's on the last line, with the counts.
    let tracks_of = |kind: &str, lines: &[Value]| -> Vec<u64> {
        let mut ids: Vec<u64> = lines
            .iter()
            .filter_map(|l| l.get("events").and_then(Value::as_array))
            .flatten()
            .filter(|e| e["kind"] == kind)
            .map(|e| e["data"]["track"].as_u64().unwrap())
            .collect();
        ids.sort_unstable();
        ids
    };
    assert_eq!(
        tracks_of("object.started", &lines),
        tracks_of("object.ended", &lines),
        "a track never ended"
    );
    let last = lines.last().unwrap();
    assert!(last.get("counts").is_some(), "{last}");
    let ended_at_the_end = tracks_of("object.ended", std::slice::from_ref(last));
    assert!(
        !ended_at_the_end.is_empty(),
        "nothing ended at the end: {last}"
    );
}

/// The evaluation against ground truth (`scripts/eval-track.py`, motmetrics as the judge) in
/// its short form: two synthetic scenes of a minute. With ground truth plus noise, the issue's
/// goal (IDF1 0.95, exact counts; 0.964 and 0.989 today); with the occlusion model, what the
/// tracker holds today less a margin (0.963 and 0.966). docs/benchmarks.md has the full run.
#[test]
fn the_tracker_holds_its_measured_accuracy_against_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("eval.json");
    common::succeeded(
        Command::new(common::pytools())
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/eval-track.py"
            ))
            .args(["--seeds", "2", "--seconds", "60", "--json"])
            .arg(&json),
    );
    let rows: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(rows.len(), 4);
    for r in &rows {
        let crossings = r["crossings"].as_u64().unwrap();
        let (floor, count_errors) = if r["detector"] == "noise+dropouts" {
            (0.95, 0)
        } else {
            // Within one per 50 crossings.
            (0.93, crossings.div_ceil(50))
        };
        assert!(r["idf1"].as_f64().unwrap() >= floor, "{r}");
        assert!(r["count_error"].as_u64().unwrap() <= count_errors, "{r}");
    }
}

/// An end-to-end run kept with `--keep` replays (`scripts/eval-track.py --replay`): its
/// detector's results given again to the tracker score as the live run did, within what the
/// results' late arrival moves (live, a result reaches the tracker frames after the frame it was
/// found in), and the same on every replay.
#[test]
fn a_kept_end_to_end_run_replays_to_its_score_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let eval = |args: &[&str], json: &str| -> Value {
        let out = dir.path().join(json);
        common::succeeded(
            Command::new(common::pytools())
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/scripts/eval-track.py"
                ))
                .args(["--exe", env!("CARGO_BIN_EXE_framegate")])
                .args(args)
                .arg("--json")
                .arg(&out),
        );
        let rows: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        rows[0].clone()
    };
    let keep = dir.path().join("kept");
    let keep = keep.to_str().unwrap();
    let live = eval(
        &[
            "--end-to-end",
            "--seed",
            "1",
            "--seconds",
            "20",
            "--keep",
            keep,
        ],
        "live.json",
    );
    let first = eval(&["--replay", keep], "replay1.json");
    let second = eval(&["--replay", keep], "replay2.json");
    assert!(live["tracks"].as_u64().unwrap() > 0, "{live}");
    assert_eq!(first, second, "two replays of one run differ");
    let (a, b) = (
        live["idf1"].as_f64().unwrap(),
        first["idf1"].as_f64().unwrap(),
    );
    assert!((a - b).abs() <= 0.1, "live IDF1 {a}, replayed {b}");
    assert_eq!(live["frames"], first["frames"]);
    assert_eq!(
        live["detector"], first["detector"],
        "the replay saw other detections"
    );
}
