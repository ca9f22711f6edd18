//! Analytics with the real model (`../shared/models/centernet.onnx`) and the real ONNX Runtime
//! (the library `scripts/setup-debian.sh` installs): detections against a Python ONNX Runtime
//! reference run, one model shared by several live streams, `skip_similar` in a running stream.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use common::http::{get_json, request};
use common::{Framegate, free_port, pytools, shared, wait_for, wait_for_port};
use gst::prelude::*;
use serde_json::Value;

use framegate::frame::{Frame, FrameMeta};
use framegate::process::{Chain, Models};

const LONG: Duration = Duration::from_secs(60);

/// A photo decoded by GStreamer into the decoder's native layout (I420).
fn decode_photo(path: &Path) -> (gst::Buffer, gst_video::VideoInfo) {
    gst::init().unwrap();
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! jpegdec ! videoconvert ! video/x-raw,format=I420 ! appsink name=sink",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline
        .by_name("sink")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let sample = sink.pull_sample().unwrap();
    pipeline.set_state(gst::State::Null).unwrap();
    let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
    (sample.buffer_owned().unwrap(), info)
}

/// `[x1, y1, x2, y2]`, class id and score.
type Found = (usize, f32, [f32; 4]);

/// The Python ONNX Runtime reference (tests/tools/detect_reference.py).
fn reference(photo: &Path, min_score: f32) -> Vec<Found> {
    let out = common::succeeded(
        Command::new(pytools())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/detect_reference.py"))
            .arg(shared("models/centernet.onnx"))
            .arg(photo)
            .arg(min_score.to_string()),
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let b: Vec<f32> = d["box"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            (
                d["class"].as_u64().unwrap() as usize,
                d["score"].as_f64().unwrap() as f32,
                [b[0], b[1], b[2], b[3]],
            )
        })
        .collect()
}

/// framegate's detector on the photo, through the `detect` processor and the shared model.
fn framegate_detect(models: &Models, photo: &Path, min_score: f32) -> Vec<Found> {
    let config = framegate::config::parse_str(
        &format!(
            "[[models]]\nid = \"coco\"\npath = \"{}\"\nformat = \"centernet\"\n\
             [[streams]]\nid = \"photo\"\nsource = \"test://smpte\"\n\
             processors = [ {{ kind = \"detect\", model = \"coco\", min_score = {min_score} }} ]\n",
            shared("models/centernet.onnx").display()
        ),
        Path::new("test.toml"),
    )
    .unwrap();
    let mut chain = Chain::from_config(
        &config.streams[0].processors,
        Default::default(),
        models,
        &Default::default(),
    );
    let (buffer, info) = decode_photo(photo);
    let frame = || {
        Frame::new(
            buffer.clone(),
            info.clone(),
            FrameMeta::new(
                "photo".to_string().try_into().unwrap(),
                0,
                SystemTime::now(),
            ),
        )
    };
    // The first frame goes to the model; later ones carry its result once it is back.
    let mut f = frame();
    chain.run(&mut f);
    let found = wait_for("the model's result", LONG, || {
        let mut f = frame();
        chain.run(&mut f);
        (chain.detectors()[0].status().completed > 0).then_some(f.meta.detections)
    });
    let labels = framegate::process::detect::COCO80;
    found
        .iter()
        .map(|d| {
            let class = labels.iter().position(|l| *l == d.label).unwrap();
            let r = d.rect;
            (class, d.score, [r.x, r.y, r.x + r.w, r.y + r.h])
        })
        .collect()
}

/// The models of a config with the shared CenterNet under `id` (and `extra` keys).
fn centernet(id: &str, extra: &str) -> Models {
    let text = format!(
        "[[models]]\nid = \"{id}\"\npath = \"{}\"\nformat = \"centernet\"\n{extra}",
        shared("models/centernet.onnx").display()
    );
    Models::new(&framegate::config::parse_str(&text, Path::new("test.toml")).unwrap())
}

#[test]
fn detector_finds_what_python_onnx_runtime_finds_on_photos() {
    let models = centernet("coco", "");
    // person.jpg: a person and a dog; dog.jpg: a bicycle, a dog and a car.
    for (photo, expected) in [
        ("person.jpg", &[0usize, 16][..]),
        ("dog.jpg", &[1, 16, 2][..]),
    ] {
        let photo = shared(&format!("testdata/{photo}"));
        let ours = framegate_detect(&models, &photo, 0.3);
        let theirs = reference(&photo, 0.3);
        eprintln!(
            "{}:\n  framegate {ours:?}\n  python    {theirs:?}",
            photo.display()
        );
        for class in expected {
            assert!(
                ours.iter().any(|d| d.0 == *class),
                "class {class} not found in {ours:?}"
            );
        }
        // Every clear reference detection is found with the same class, a close score and
        // corners within a few pixels.
        for (class, score, b) in theirs.iter().filter(|d| d.1 >= 0.4) {
            let best = ours
                .iter()
                .filter(|d| d.0 == *class)
                .map(|d| {
                    (
                        d,
                        (0..4).map(|i| (d.2[i] - b[i]).abs()).fold(0.0f32, f32::max),
                    )
                })
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap_or_else(|| panic!("reference class {class} missing from {ours:?}"));
            assert!(
                best.1 <= 6.0,
                "class {class}: corners {:.1} px apart: {:?} vs {b:?}",
                best.1,
                best.0
            );
            assert!(
                (best.0.1 - score).abs() <= 0.05,
                "class {class}: score {} vs {score}",
                best.0.1
            );
        }
    }
    // Both photos ran on the one model.
    let status = models.statuses();
    assert_eq!(status.len(), 1);
    assert!(status[0].inputs >= 2);
    assert_eq!(status[0].provider, common::expect::model_provider());
}

#[test]
fn streams_share_one_model_get_their_own_results_and_keep_their_frame_rate() {
    let http = free_port();
    let vtest = shared("testdata/vtest.avi");
    let model = shared("models/centernet.onnx");
    // A model file that exists (the config requires it) but is not ONNX.
    let scratch = tempfile::tempdir().unwrap();
    let broken = scratch.path().join("broken.onnx");
    std::fs::write(&broken, b"not a model").unwrap();
    let fg = Framegate::run(&format!(
        r#"
[server]
http = "127.0.0.1:{http}"
rtsp_port = 0

[[models]]
id = "coco"
path = "{model}"
format = "centernet"
threads = 1

[[models]]
id = "broken"
path = "{broken}"
format = "yolo"

[[streams]]
id = "people-a"
source = "file://{vtest}"
processors = [ {{ kind = "detect", model = "coco", min_score = 0.3 }}, {{ kind = "overlay" }} ]

[[streams]]
id = "people-b"
source = "file://{vtest}"
processors = [ {{ kind = "detect", model = "coco", min_score = 0.3 }} ]

[[streams]]
id = "bars"
source = "test://smpte?width=320&height=240&fps=25&speed=4"
processors = [ {{ kind = "detect", model = "coco", min_score = 0.3, classes = ["person"] }} ]

[[streams]]
id = "still"
source = "test://smpte?width=320&height=240&fps=25"
processors = [ {{ kind = "skip_similar" }}, {{ kind = "detect", model = "coco" }} ]

[[streams]]
id = "no-model"
source = "test://ball?width=320&height=240&fps=25"
processors = [ {{ kind = "detect", model = "broken" }} ]
"#,
        model = model.display(),
        vtest = vtest.display(),
        broken = broken.display(),
    ));
    let addr = format!("127.0.0.1:{http}");
    wait_for_port(http, LONG);

    // Every detecting stream gets results back, and the people streams find people.
    let people = |s: &Value| {
        s["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["class"] == "person" && e["kind"] == "appeared")
    };
    for id in ["people-a", "people-b"] {
        wait_for(&format!("{id} to see a person"), LONG, || {
            let d = get_json(&addr, &format!("/api/streams/{id}/detections"));
            people(&d).then_some(())
        });
    }
    wait_for("bars to get results", LONG, || {
        let d = get_json(&addr, "/api/streams/bars/detections");
        (d["detectors"][0]["completed"].as_u64().unwrap() > 3).then_some(())
    });
    // A scene of colour bars has no people: its results are its own.
    assert!(!people(&get_json(&addr, "/api/streams/bars/detections")));

    // One model, one session, for the three streams.
    let models = get_json(&addr, "/api/models");
    let models = models.as_array().unwrap();
    assert_eq!(models.len(), 1, "{models:?}");
    assert_eq!(models[0]["id"], "coco");
    assert_eq!(models[0]["sessions_in_process"], 1);
    assert_eq!(models[0]["provider"], common::expect::model_provider());

    // The model is slower than the streams together (they drop due frames) yet every stream
    // keeps its source's frame rate.
    let encoded = |id: &str| {
        get_json(&addr, &format!("/api/streams/{id}"))["frames"]["encoded"]
            .as_u64()
            .unwrap()
    };
    let ids = ["people-a", "people-b", "bars", "still", "no-model"];
    let before: Vec<u64> = ids.iter().map(|id| encoded(id)).collect();
    let t0 = Instant::now();
    wait_for("4 s of video", Duration::from_secs(10), || {
        (t0.elapsed() >= Duration::from_secs(4)).then_some(())
    });
    let secs = t0.elapsed().as_secs_f64();
    for (i, id) in ids.iter().enumerate() {
        let fps = (encoded(id) - before[i]) as f64 / secs;
        let source_fps = if id.starts_with("people") { 10.0 } else { 25.0 };
        let st = get_json(&addr, &format!("/api/streams/{id}"));
        eprintln!(
            "{id}: {fps:.1} fps out, detect {}, process {}, dropped {}",
            st["detect"][0], st["latency_ms"]["process"], st["dropped"]
        );
        assert!(
            fps >= 0.85 * source_fps,
            "{id}: {fps:.1} fps out of {source_fps}"
        );
    }
    let dropped: u64 = ["people-a", "people-b", "bars"]
        .iter()
        .map(|id| {
            get_json(&addr, &format!("/api/streams/{id}"))["detect"][0]["dropped"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert!(
        dropped > 0,
        "the model kept up with every frame: the test shows nothing"
    );

    // The same, in the metrics.
    let metrics = request(&addr, "GET", "/metrics", None, None).body;
    assert!(metrics.contains("framegate_model_sessions 1"), "{metrics}");
    assert!(metrics.contains(
        "framegate_detect_frames_total{stream=\"bars\",model=\"coco\",result=\"dropped\"}"
    ));

    // skip_similar: a still picture goes to the model once; its frames count as similar.
    let still = get_json(&addr, "/api/streams/still");
    let (processed, similar) = (
        still["frames"]["processed"].as_u64().unwrap(),
        still["frames"]["similar"].as_u64().unwrap(),
    );
    assert!(
        processed > 50 && similar + 1 >= processed,
        "{processed} processed, {similar} similar"
    );
    assert_eq!(still["detect"][0]["submitted"], 1);

    // A model that cannot load: the stream runs without detections and says why.
    let broken = get_json(&addr, "/api/streams/no-model");
    assert_eq!(broken["state"], "live");
    let error = broken["detect"][0]["error"].as_str().unwrap();
    assert!(error.contains("broken.onnx"), "{error}");
    drop(fg);
}

#[test]
fn a_detect_processor_must_name_a_configured_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[streams]]\nid = \"cam\"\nsource = \"test://ball\"\n\
         processors = [ { kind = \"detect\", model = \"nope\" } ]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_framegate"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("bad.toml:2:") && err.contains("detect.model `nope`"),
        "{err}"
    );

    std::fs::write(
        &path,
        "[[models]]\nid = \"m\"\npath = \"missing.onnx\"\nformat = \"yolo\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_framegate"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("model `m`: path") && err.contains("missing.onnx"),
        "{err}"
    );
}

#[test]
fn provider_cuda_runs_on_the_gpu_or_says_why_not() {
    let models = centernet("gpu", "provider = \"cuda\"\n");
    match models.get("gpu") {
        Ok(model) => {
            assert_eq!(model.provider(), "cuda");
            eprintln!("the model runs on the GPU");
        }
        Err(e) => {
            // CPU-only machines (CI): the GPU path cannot run here; the error must say why.
            eprintln!("skipping the GPU run: {e}");
            assert!(e.contains("CUDA"), "{e}");
        }
    }
}
