//! The command line: `check` on broken configs, `process` on a real clip.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::{check_config as check, count_frames, make_clip};

fn framegate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_framegate"))
}

const GOOD: &str = r#"[server]
rtsp_port = 8554

[[streams]]
id = "cam0"
source = "rtsp://user:pass@127.0.0.1:8554/cam0"
processors = [ { kind = "overlay" } ]
outputs = [
  { kind = "rtsp" },
  { kind = "rtmp", url = "rtmp://127.0.0.1/live/cam0" },
  { kind = "rtsp-push", url = "rtsp://127.0.0.1:8555/cam0" },
]
[streams.encoder]
bitrate_kbps = 2000
keyframe_interval = 50
preset = "ultrafast"
hardware = "auto"
"#;

#[test]
fn check_accepts_the_documented_config() {
    let (ok, out) = check(GOOD);
    assert!(ok, "{out}");
    assert!(out.contains("ok (1 streams)"), "{out}");
}

/// Each broken config gives one message with the file, the line and the field.
#[test]
fn check_names_line_and_field_of_each_mistake() {
    let cases = [
        (
            GOOD.replace("keyframe_interval = 50", "keyframe_intervall = 50"),
            ":15:",
            "unknown field `keyframe_intervall`",
        ),
        (
            GOOD.replace(
                "rtsp://user:pass@127.0.0.1:8554/cam0",
                "htp://127.0.0.1/cam0",
            ),
            ":6:",
            "unsupported scheme `htp`",
        ),
        (
            format!("{GOOD}\n[[streams]]\nid = \"cam0\"\nsource = \"test://ball\"\n"),
            ":20:",
            "duplicate stream id `cam0` (first defined at line 5)",
        ),
        (
            "[[streams]]\nid = \"cam1\"\noutputs = []\n".to_string(),
            ":1:",
            "missing field `source`",
        ),
        (
            GOOD.replace("id = \"cam0\"", "id = \"cam0\"\naudio = \"loud\""),
            ":6:",
            "unknown variant `loud`, expected `auto` or `off`",
        ),
        (
            GOOD.replace("id = \"cam0\"", "id = \"cam0\"\nvideo = \"passthrough\""),
            ":5:",
            "video = \"passthrough\" is not possible: the `overlay` processor changes pixels",
        ),
        (
            GOOD.replace(
                "id = \"cam0\"",
                "id = \"cam0\"\nvideo = \"encode\"\ndecode = \"keyframes\"",
            ),
            ":5:",
            "decode and analyze_fps apply to a stream that passes its video through",
        ),
        (
            GOOD.replace("processors = [ { kind = \"overlay\" } ]", "analyze_fps = 0"),
            ":5:",
            "analyze_fps",
        ),
        (
            GOOD.replace("bitrate_kbps = 2000", "bitrate_kbps = 5"),
            ":5:",
            "encoder.bitrate_kbps = 5 is out of range",
        ),
    ];
    for (text, line, message) in cases {
        let (ok, out) = check(&text);
        assert!(!ok, "accepted a broken config:\n{text}");
        assert!(
            out.contains("streams.toml") && out.contains(line),
            "no `{line}` in: {out}"
        );
        assert!(out.contains(message), "no `{message}` in: {out}");
        assert_eq!(out.trim().lines().count(), 1, "not one clear line: {out}");
        assert!(!out.contains("pass@"), "a password was echoed: {out}");
    }
}

#[test]
fn process_writes_a_playable_mp4_with_every_frame() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mp4");
    let output = dir.path().join("out.mp4");
    make_clip(&input, 60, 640, 360);
    common::succeeded(
        framegate()
            .args(["process", "--processor", "overlay", "--input"])
            .arg(&input)
            .arg("--output")
            .arg(&output),
    );
    assert_eq!(count_frames(&output), 60);
    assert_eq!(count_frames(&input), 60);
}

#[test]
fn process_rejects_a_missing_input_and_an_unknown_processor() {
    let out = framegate()
        .args([
            "process",
            "--input",
            "/nonexistent.mp4",
            "--output",
            "/tmp/x.mp4",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.mp4"));
    let out = framegate()
        .args([
            "process",
            "--input",
            "Cargo.toml",
            "--output",
            "/tmp/x.mp4",
            "--processor",
            "blur",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--processor blur"));
}

/// The config shown in the README is valid: docs that cannot rot.
#[test]
fn readme_config_example_is_valid() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("```toml\n")
        .expect("a toml block in the README")
        + 8;
    let end = start + readme[start..].find("```").unwrap();
    // The model it names, where it says (relative to the config file).
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("models")).unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/models/centernet.onnx"
        ),
        dir.path().join("models/centernet.onnx"),
    )
    .unwrap();
    // The Python example it runs (imported by `check`, with the machine's numpy).
    std::fs::create_dir_all(dir.path().join("examples/python")).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/examples/python/heatmap.py"),
        dir.path().join("examples/python/heatmap.py"),
    )
    .unwrap();
    let path = dir.path().join("streams.toml");
    std::fs::write(&path, &readme[start..end]).unwrap();
    common::succeeded(framegate().args(["check", "--config"]).arg(&path));
}

/// Whether GStreamer on this machine has the element (as framegate's capability probe sees it).
fn has_element(name: &str) -> bool {
    Command::new("gst-inspect-1.0")
        .arg(name)
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn check_says_when_this_machine_cannot_meet_a_hardware_setting() {
    let nvdec = has_element("nvh264dec") || has_element("nvh265dec");
    let (ok, text) = check(
        "[[streams]]\nid = \"gpu\"\nsource = \"test://ball\"\ndecoder = { hardware = \"on\" }\n",
    );
    // What the machine's capabilities predict: accepted with NVDEC, refused without.
    assert_eq!(ok, nvdec, "{text}");
    if !nvdec {
        assert!(
            text.contains("stream `gpu`") && text.contains("decoder.hardware"),
            "{text}"
        );
    }
    let nvenc = has_element("nvh264enc");
    let (ok, text) = check(
        "[[streams]]\nid = \"gpu\"\nsource = \"test://ball\"\nencoder = { hardware = \"on\" }\n",
    );
    assert_eq!(ok, nvenc, "{text}");
}
