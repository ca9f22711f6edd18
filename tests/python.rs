//! The `python` processor with the real interpreter, numpy and OpenCV (the venv of
//! `scripts/setup-debian.sh`): frames as numpy views of framegate's own memory (the address
//! is the plane's), drawing in place (numpy and cv2), boxes and events into the detection path,
//! a slow function that does not slow the stream, one that raises, config errors with the file
//! and line, and no Python through the API.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use common::http::{get_json, request};
use common::{Framegate, free_port, grab_frames, wait_for, wait_for_port};
use gst_video::prelude::*;
use serde_json::Value;

use framegate::frame::{Frame, FrameMeta};
use framegate::process::{Chain, Hooks, Models};

const LONG: Duration = Duration::from_secs(60);

fn file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

fn venv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pytools")
}

/// A chain of the given processors (TOML inline tables), as a stream of the config runs it.
fn chain(processors: &str) -> Chain {
    let config = framegate::config::parse_str(
        &format!(
            "[python]\nvenv = \"{}\"\n[[streams]]\nid = \"cam\"\nsource = \"test://smpte\"\nprocessors = [ {processors} ]\n",
            venv().display()
        ),
        Path::new("/test.toml"),
    )
    .unwrap();
    let hooks = Hooks {
        python: config.python.clone(),
        ..Default::default()
    };
    Chain::from_config(
        &config.streams[0].processors,
        Default::default(),
        &Models::new(&config),
        &hooks,
    )
}

/// A grey frame of framegate's own (nothing else holds it), `format` I420 or NV12.
fn frame(format: gst_video::VideoFormat, pts_ms: u64) -> Frame {
    gst::init().unwrap();
    let info = gst_video::VideoInfo::builder(format, 320, 240)
        .fps(gst::Fraction::new(25, 1))
        .build()
        .unwrap();
    let mut buffer = gst::Buffer::with_size(info.size()).unwrap();
    {
        let b = buffer.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_mseconds(pts_ms));
        b.map_writable().unwrap().as_mut_slice().fill(128);
    }
    Frame::new(
        buffer,
        info,
        FrameMeta::new("cam".to_string().try_into().unwrap(), 0, SystemTime::now()),
    )
}

/// The luma of a frame at (x, y), and the address of its luma plane.
fn luma(f: &Frame, x: usize, y: usize) -> (u8, usize) {
    let v =
        gst_video::VideoFrameRef::from_buffer_ref_readable(f.buffer().as_ref(), f.info()).unwrap();
    let stride = v.plane_stride()[0] as usize;
    let data = v.plane_data(0).unwrap();
    (data[y * stride + x], data.as_ptr() as usize)
}

#[test]
fn the_function_sees_framegate_memory_and_draws_on_it_in_place() {
    for format in [gst_video::VideoFormat::I420, gst_video::VideoFormat::Nv12] {
        let mut c = chain(&format!(
            "{{ kind = \"python\", file = \"{}\", args = {{ size = 32 }}, budget_ms = 1000 }}, {{ kind = \"python\", file = \"{}\", budget_ms = 1000 }}",
            file("white_square.py").display(),
            file("address.py").display()
        ));
        let mut f = frame(format, 40);
        let report = c.run(&mut f);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert!(!report.withheld);
        let (inside, address) = luma(&f, 5, 5);
        let (outside, _) = luma(&f, 100, 100);
        assert_eq!((inside, outside), (235, 128), "{format:?}");
        // The array Python wrote through is the plane that goes on to the encoder: no copy.
        let seen = &f.meta.detections[0];
        assert_eq!(
            usize::from_str_radix(&seen.label, 16).unwrap(),
            address,
            "{format:?}: Python's plane is not the frame's"
        );
        assert_eq!(seen.score, 1.0, "the plane is writable");
        let st = c.detectors()[0].status().python.unwrap();
        assert_eq!((st.calls, st.errors, st.copied), (1, 0, 0), "{st:?}");
        assert!(
            !report.copied,
            "{format:?}: the frame's only reference was copied"
        );

        // Pixels a decoder still holds as a reference: drawn on a copy, and counted as such.
        let mut f = frame(format, 80);
        let held = f.buffer().clone();
        let report = c.run(&mut f);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert!(
            report.copied,
            "{format:?}: a held frame drawn without a copy"
        );
        assert_eq!(luma(&f, 5, 5).0, 235, "{format:?}");
        let (kept, _) = luma(&Frame::new(held, f.info().clone(), f.meta.clone()), 5, 5);
        assert_eq!(kept, 128, "{format:?}: the held pixels were drawn on");
    }
}

#[test]
fn a_function_that_does_not_draw_reads_the_frame_read_only() {
    let mut c = chain(&format!(
        "{{ kind = \"python\", file = \"{}\", draws = false, budget_ms = 1000 }}",
        file("address.py").display()
    ));
    let mut f = frame(gst_video::VideoFormat::I420, 0);
    c.run(&mut f);
    let (_, address) = luma(&f, 0, 0);
    let seen = &f.meta.detections[0];
    assert_eq!(usize::from_str_radix(&seen.label, 16).unwrap(), address);
    assert_eq!(seen.score, 0.0, "the plane must be read-only");
}

#[test]
fn opencv_draws_on_bgr_and_set_bgr_writes_it_back() {
    let mut c = chain(&format!(
        "{{ kind = \"python\", file = \"{}\", budget_ms = 1000 }}",
        file("bgr_draw.py").display()
    ));
    for format in [gst_video::VideoFormat::I420, gst_video::VideoFormat::Nv12] {
        let mut f = frame(format, 0);
        let report = c.run(&mut f);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let st = c.detectors()[0].status().python.unwrap();
        assert_eq!(st.errors, 0, "{st:?}");
        let (inside, _) = luma(&f, 30, 30);
        let (outside, _) = luma(&f, 200, 200);
        assert!(
            inside >= 230,
            "white drawn with cv2: luma {inside} ({format:?})"
        );
        assert!(outside.abs_diff(128) <= 3, "the rest unchanged: {outside}");
    }
}

#[test]
fn views_kept_after_the_call_make_framegate_copy_the_frame() {
    let mut c = chain(&format!(
        "{{ kind = \"python\", file = \"{}\", budget_ms = 1000 }}",
        file("keeps_views.py").display()
    ));
    for i in 0..3 {
        let mut f = frame(gst_video::VideoFormat::I420, i * 40);
        c.run(&mut f);
        // The frame that goes on is drawn, and is not the memory Python still holds.
        assert_eq!(luma(&f, 1, 1).0, 255);
    }
    let st = c.detectors()[0].status().python.unwrap();
    assert_eq!((st.calls, st.copied, st.errors), (3, 3, 0), "{st:?}");
}

#[test]
fn a_slow_function_falls_behind_without_holding_frames_back() {
    let mut c = chain(&format!(
        "{{ kind = \"python\", file = \"{}\", budget_ms = 50 }}",
        file("slow.py").display()
    ));
    // The first call overruns the budget: its frame is withheld, the processor falls behind.
    let started = Instant::now();
    let first = c.run(&mut frame(gst_video::VideoFormat::I420, 0));
    assert!(first.withheld);
    assert!(started.elapsed() < Duration::from_millis(400));
    // From then on frames pass at once, while the function works on the newest it can get.
    let mut slowest = Duration::ZERO;
    let boxes = wait_for("three calls and the slow function's box", LONG, || {
        let t = Instant::now();
        let mut f = frame(gst_video::VideoFormat::I420, 40);
        let r = c.run(&mut f);
        slowest = slowest.max(t.elapsed());
        assert!(!r.withheld);
        std::thread::sleep(Duration::from_millis(40)); // the frame interval of a 25 fps camera
        let calls = c.detectors()[0].status().python.unwrap().calls;
        (calls >= 3 && !f.meta.detections.is_empty()).then_some(f.meta.detections)
    });
    assert_eq!(boxes[0].label, "slowpoke");
    assert!(
        slowest < Duration::from_millis(100),
        "a frame waited {slowest:?}"
    );
    let st = c.detectors()[0].status().python.unwrap();
    // A call each half second at most: the frames between went by.
    assert!(
        st.behind && st.late == 1 && st.skipped >= 2 * st.calls,
        "{st:?}"
    );
}

#[test]
fn an_exception_is_counted_logged_once_and_the_frame_goes_on() {
    let mut c = chain(&format!(
        "{{ kind = \"python\", file = \"{}\", budget_ms = 1000 }}",
        file("raises.py").display()
    ));
    for i in 0..6 {
        let mut f = frame(gst_video::VideoFormat::I420, i * 40);
        let r = c.run(&mut f);
        assert!(!r.withheld);
        assert_eq!(luma(&f, 0, 0).0, 128);
    }
    let st = c.detectors()[0].status().python.unwrap();
    assert_eq!((st.calls, st.errors), (6, 3), "{st:?}");
    let last = st.last_error.unwrap();
    assert!(
        last.contains("ValueError") && last.contains("raises.py:"),
        "{last}"
    );
}

#[test]
fn check_names_the_python_file_and_line_of_a_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, processors: &str| {
        let p = dir.path().join(name);
        std::fs::write(
            &p,
            format!(
                "[[streams]]\nid = \"cam\"\nsource = \"test://smpte\"\nprocessors = [ {processors} ]\n"
            ),
        )
        .unwrap();
        p
    };
    let check = |config: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_framegate"))
            .args(["check", "--config"])
            .arg(config)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let broken = file("broken.py");
    let (ok, err) = check(&write(
        "a.toml",
        &format!("{{ kind = \"python\", file = \"{}\" }}", broken.display()),
    ));
    assert!(!ok);
    assert!(
        err.contains(&format!("{}:5", broken.display())) && err.contains("SyntaxError"),
        "{err}"
    );
    let (ok, err) = check(&write(
        "b.toml",
        &format!(
            "{{ kind = \"python\", file = \"{}\", function = \"nope\" }}",
            file("raises.py").display()
        ),
    ));
    assert!(!ok);
    assert!(err.contains("no function `nope`"), "{err}");
    let (ok, err) = check(&write(
        "c.toml",
        "{ kind = \"python\", file = \"missing.py\" }",
    ));
    assert!(!ok);
    assert!(
        err.contains("missing.py") && err.contains("cannot read"),
        "{err}"
    );
    let (ok, err) = check(&write(
        "d.toml",
        &format!(
            "{{ kind = \"python\", file = \"{}\", budget_ms = 0 }}",
            file("raises.py").display()
        ),
    ));
    assert!(!ok);
    assert!(err.contains("budget_ms"), "{err}");
    // A venv that is not one: named, with what is missing.
    let bad_venv = dir.path().join("not-a-venv");
    std::fs::create_dir(&bad_venv).unwrap();
    let config = dir.path().join("e.toml");
    std::fs::write(
        &config,
        format!(
            "[python]\nvenv = \"{}\"\n[[streams]]\nid = \"cam\"\nsource = \"test://smpte\"\nprocessors = [ {{ kind = \"python\", file = \"{}\" }} ]\n",
            bad_venv.display(),
            file("raises.py").display()
        ),
    )
    .unwrap();
    let (ok, err) = check(&config);
    assert!(!ok);
    assert!(
        err.contains("python.venv") && err.contains("site-packages"),
        "{err}"
    );
}

fn python_status(addr: &str, stream: &str) -> Value {
    let d = get_json(addr, &format!("/api/streams/{stream}/detections"));
    d["detectors"][0]["python"].clone()
}

#[test]
fn python_processors_in_a_running_gateway() {
    let (http, rtsp) = (free_port(), free_port());
    let fg = Framegate::run(&format!(
        r#"
[server]
http = "127.0.0.1:{http}"
rtsp_port = {rtsp}

[python]
venv = "{venv}"

[[streams]]
id = "square"
source = "test://smpte?width=320&height=240&fps=25"
processors = [ {{ kind = "python", file = "{square}", args = {{ size = 48 }} }} ]
outputs = [ {{ kind = "rtsp" }} ]

[[streams]]
id = "boxes"
source = "test://ball?width=320&height=240&fps=25"
processors = [ {{ kind = "python", file = "{one_box}" }} ]

[[streams]]
id = "slow"
source = "test://ball?width=320&height=240&fps=25"
processors = [ {{ kind = "python", file = "{slow}" }} ]

[[streams]]
id = "raises"
source = "test://ball?width=320&height=240&fps=25"
processors = [ {{ kind = "python", file = "{raises}" }} ]
"#,
        venv = venv().display(),
        square = file("white_square.py").display(),
        one_box = file("one_box.py").display(),
        slow = file("slow.py").display(),
        raises = file("raises.py").display(),
    ));
    let addr = format!("127.0.0.1:{http}");
    wait_for_port(http, LONG);

    // The square is in the pixels at framegate's RTSP output.
    wait_for_port(rtsp, LONG);
    let frames = grab_frames(&format!("rtsp://127.0.0.1:{rtsp}/square"), 5, LONG);
    let f = frames.last().unwrap();
    let corner: u64 = (8..40)
        .flat_map(|y| (8..40).map(move |x| (x, y)))
        .map(|(x, y)| u64::from(f.luma[y * f.width + x]))
        .sum::<u64>()
        / (32 * 32);
    assert!(
        corner >= 220,
        "the square's mean luma at the output is {corner}"
    );

    // The returned box is a detection of the stream, and an event of the store; the returned
    // event is stored as `python.event`.
    let present = wait_for("the returned box among the detections", LONG, || {
        let d = get_json(&addr, "/api/streams/boxes/detections");
        let p = d["present"].as_array().unwrap().clone();
        (!p.is_empty()).then_some(p)
    });
    assert_eq!(present[0]["class"], "gadget");
    let events = wait_for("the events in the store", LONG, || {
        let e = get_json(&addr, "/api/events?stream=boxes&limit=50");
        let list = e["events"].as_array().unwrap().clone();
        let appeared = list
            .iter()
            .any(|e| e["kind"] == "detection.appeared" && e["class"] == "gadget");
        let python = list
            .iter()
            .any(|e| e["kind"] == "python.event" && e["data"]["name"] == "address");
        (appeared && python).then_some(list)
    });
    assert!(!events.is_empty());

    // Half a second per call: the stream keeps its rate, the function its own.
    let before = get_json(&addr, "/api/streams/slow");
    let t0 = Instant::now();
    let st = wait_for("the slow function's calls", LONG, || {
        let st = python_status(&addr, "slow");
        (st["calls"].as_u64().unwrap_or(0) >= 6).then_some(st)
    });
    let after = get_json(&addr, "/api/streams/slow");
    let encoded = |s: &Value| s["frames"]["encoded"].as_u64().unwrap();
    let rate = (encoded(&after) - encoded(&before)) as f64 / t0.elapsed().as_secs_f64();
    assert!(
        rate >= 22.0,
        "the slow stream's output ran at {rate:.1} fps: {after}"
    );
    assert_eq!(st["behind"], true, "{st}");
    let mean = st["mean_call_ms"].as_f64().unwrap();
    assert!((450.0..1500.0).contains(&mean), "{st}");

    // An exception: counted, logged once with its traceback, and the stream stays live.
    let st = wait_for("errors counted", LONG, || {
        let st = python_status(&addr, "raises");
        (st["errors"].as_u64().unwrap_or(0) >= 5).then_some(st)
    });
    assert!(
        st["last_error"].as_str().unwrap().contains("ValueError"),
        "{st}"
    );
    assert_eq!(get_json(&addr, "/api/streams/raises")["state"], "live");
    let log = fg.log();
    assert_eq!(log.matches("ValueError: odd call").count(), 1, "{log}");
    assert!(log.contains("Traceback"), "{log}");

    // Nobody adds Python code through the API.
    let body = format!(
        r#"{{"id": "evil", "source": "test://smpte", "processors": [{{"kind": "python", "file": "{}"}}]}}"#,
        file("white_square.py").display()
    );
    let r = request(&addr, "POST", "/api/streams", Some(&body), None);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("config file only"), "{}", r.body);
}

#[test]
fn a_changed_file_is_imported_again_at_a_reload() {
    let http = free_port();
    let dir = tempfile::tempdir().unwrap();
    let code = |label: &str| {
        format!(
            "def process(frame, meta):\n    return [{{\"box\": [1, 1, 8, 8], \"label\": \"{label}\"}}]\n"
        )
    };
    let py = dir.path().join("labeller.py");
    std::fs::write(&py, code("before")).unwrap();
    let fg = Framegate::run(&format!(
        r#"
[server]
http = "127.0.0.1:{http}"
rtsp_port = 0

[python]
venv = "{venv}"

[[streams]]
id = "cam"
source = "test://ball?width=320&height=240&fps=25"
processors = [ {{ kind = "python", file = "{py}", budget_ms = 200 }} ]

[[streams]]
id = "other"
source = "test://ball?width=320&height=240&fps=25"
"#,
        venv = venv().display(),
        py = py.display(),
    ));
    let addr = format!("127.0.0.1:{http}");
    wait_for_port(http, LONG);
    let label = |addr: &str| {
        let d = get_json(addr, "/api/streams/cam/detections");
        d["detectors"][0]["current"][0]["label"]
            .as_str()
            .map(str::to_string)
    };
    wait_for("the first label", LONG, || {
        (label(&addr).as_deref() == Some("before")).then_some(())
    });

    // Unchanged: a reload restarts nothing. Changed: the stream with the file restarts with
    // the new code, and only that one.
    let r = request(&addr, "POST", "/api/reload", None, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.json()["restarted"].as_array().unwrap().is_empty(),
        "{}",
        r.body
    );
    std::fs::write(&py, code("after")).unwrap();
    let r = request(&addr, "POST", "/api/reload", None, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["restarted"],
        serde_json::json!(["cam"]),
        "{}",
        r.body
    );
    wait_for("the new label", LONG, || {
        (label(&addr).as_deref() == Some("after")).then_some(())
    });

    // A mistake in the file: the reload is refused with the file and line, the stream runs on.
    std::fs::write(&py, "def process(frame, meta):\n    return [\n").unwrap();
    let r = request(&addr, "POST", "/api/reload", None, None);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("labeller.py:2"), "{}", r.body);
    assert_eq!(label(&addr).as_deref(), Some("after"));
    let metrics = request(&addr, "GET", "/metrics", None, None).body;
    assert!(
        metrics.contains("framegate_python_frames_total{stream=\"cam\"")
            && metrics.contains("result=\"returned\"}"),
        "{metrics}"
    );
    drop(fg);
}

#[test]
fn a_call_that_does_not_return_is_reported_as_hung() {
    let mut c = chain(&format!(
        "{{ kind = \"python\", file = \"{}\", hang_s = 1 }}",
        file("hangs.py").display()
    ));
    c.run(&mut frame(gst_video::VideoFormat::I420, 0));
    let st = wait_for("the hung call reported", LONG, || {
        let r = c.run(&mut frame(gst_video::VideoFormat::I420, 40));
        assert!(!r.withheld, "frames go on");
        std::thread::sleep(Duration::from_millis(40));
        let st = c.detectors()[0].status().python.unwrap();
        st.hung.then_some(st)
    });
    assert_eq!(st.calls, 0, "{st:?}");
    // It returns in the end: no longer hung.
    let st = wait_for("the call's end", LONG, || {
        c.run(&mut frame(gst_video::VideoFormat::I420, 80));
        std::thread::sleep(Duration::from_millis(40));
        let st = c.detectors()[0].status().python.unwrap();
        (st.calls >= 1).then_some(st)
    });
    assert!(!st.hung, "{st:?}");
}

#[test]
fn the_examples_run_on_frames_of_both_layouts() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python");
    for (name, args) in [
        ("heatmap.py", "{ decay = 0.5, gain = 8.0 }"),
        ("opencv_text.py", "{ text = \"Gate 3\" }"),
        ("bright_spots.py", "{ threshold = 200, min_pixels = 16 }"),
    ] {
        let mut c = chain(&format!(
            "{{ kind = \"python\", file = \"{}\", args = {args}, budget_ms = 1000 }}",
            examples.join(name).display()
        ));
        for format in [gst_video::VideoFormat::I420, gst_video::VideoFormat::Nv12] {
            for i in 0..3 {
                let mut f = frame(format, i * 40);
                if i == 2 {
                    // Something bright and moving in the last frame.
                    let v = f.info().clone();
                    let mut b = f.take_buffer();
                    {
                        let mut vf =
                            gst_video::VideoFrameRef::from_buffer_ref_writable(b.make_mut(), &v)
                                .unwrap();
                        let stride = vf.plane_stride()[0] as usize;
                        let y = vf.plane_data_mut(0).unwrap();
                        for row in 100..140 {
                            y[row * stride + 100..row * stride + 140].fill(250);
                        }
                    }
                    f.put_buffer(b);
                }
                let r = c.run(&mut f);
                assert!(r.errors.is_empty() && !r.withheld, "{name}: {:?}", r.errors);
                if i == 2 {
                    let changed = match name {
                        // The heat map tints the moving square's chroma.
                        "heatmap.py" => {
                            let vf = gst_video::VideoFrameRef::from_buffer_ref_readable(
                                f.buffer().as_ref(),
                                f.info(),
                            )
                            .unwrap();
                            let plane = if format == gst_video::VideoFormat::I420 {
                                2
                            } else {
                                1
                            };
                            let stride = vf.plane_stride()[plane] as usize;
                            let d = vf.plane_data(plane as u32).unwrap();
                            let at = if plane == 2 {
                                60 * stride + 60
                            } else {
                                60 * stride + 121
                            };
                            d[at] > 140
                        }
                        "opencv_text.py" => luma(&f, 30, 30).0 < 100,
                        _ => f.meta.detections.iter().any(|d| d.label == "bright_spot"),
                    };
                    assert!(changed, "{name} ({format:?}) did nothing visible");
                }
            }
        }
        let st = c.detectors()[0].status().python.unwrap();
        assert_eq!(st.errors, 0, "{name}: {st:?}");
    }
}
