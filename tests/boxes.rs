//! Detection boxes drawn by the dashboard over WebRTC video, each on the frame it was found in:
//! Debian's Chromium, headless, driven by playwright-core (`tests/browser/boxes.mjs`), against a
//! framegate running the shared CenterNet on the street scene, once encoded by framegate and
//! once passed through as an H.264 camera sends it (with a tracker: ids and trails). A file of its own: the detector's delay
//! must stay under the page's one-second hold, which other browser tests beside it would
//! stretch on a 2-core machine.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Framegate, free_port, require_chromium, run_browser_script, wait_for_port};

#[test]
fn detections_are_drawn_over_webrtc_video_on_the_frames_they_were_found_in() {
    require_chromium();
    // The street scene twice: as it is (MPEG-4 part 2: encoded by framegate) and as an H.264
    // camera would send it (passed through as it is). Each runs the shared CenterNet.
    let dir = tempfile::tempdir().unwrap();
    let camera = dir.path().join("street.mp4");
    let made = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-t", "30", "-i"])
        .arg(common::shared("testdata/vtest.avi"))
        .args(["-vf", "scale=640:360,fps=25", "-c:v", "libx264", "-preset"])
        .args(["veryfast", "-g", "25", "-bf", "0", "-pix_fmt", "yuv420p"])
        .arg(&camera)
        .status()
        .unwrap();
    assert!(made.success());
    let http = free_port();
    let source = |p: &Path| format!("file://{}", p.display());
    let _fg = Framegate::run(&format!(
        "[server]\nhttp = \"127.0.0.1:{http}\"\nrtsp_port = 0\n\n\
         [[models]]\nid = \"coco\"\npath = \"{}\"\nformat = \"centernet\"\n\n\
         [[streams]]\nid = \"encoded\"\nsource = \"{}\"\nvideo = \"encode\"\n\
         processors = [ {{ kind = \"detect\", model = \"coco\", min_score = 0.3, max_fps = 4 }} ]\n\n\
         [[streams]]\nid = \"passed\"\nsource = \"{}\"\nvideo = \"passthrough\"\n\
         processors = [ {{ kind = \"detect\", model = \"coco\", min_score = 0.3, max_fps = 4 }}, \
         {{ kind = \"track\", confirm_hits = 1 }} ]\n",
        common::shared("models/centernet.onnx").display(),
        source(&common::shared("testdata/vtest.avi")),
        source(&camera),
    ));
    wait_for_port(http, Duration::from_secs(30));
    let url = format!("http://127.0.0.1:{http}/");
    let r = run_browser_script("boxes.mjs", &[&url, "8", "encoded", "passed"], &[]);
    println!("{r}");
    assert_eq!(r["errors"], serde_json::json!([]), "{r}");
    for id in ["encoded", "passed"] {
        let w = &r[id]["window"];
        let n = |k: &str| w[k].as_f64().unwrap_or(0.0);
        // Results came, each for a frame the browser showed (its RTP time is one of theirs).
        assert!(n("results") >= 4.0, "{id}: {r}");
        assert!(n("unmatched") <= 1.0, "{id}: {r}");
        // Held back by the detector's delay, the video shows each result's frame after the
        // result came: the boxes are drawn on the frame they were found in.
        assert!(
            3.0 * n("onTime") >= 2.0 * (n("onTime") + n("late")),
            "{id}: most results must come before their frame is shown: {r}"
        );
        assert!(n("exact") >= 3.0, "{id}: {r}");
        // The street has people: boxes were on the overlay (the passed-through camera's are
        // its tracker's: ids and trails in place of the detector's boxes).
        assert!(r[id]["inkedChecks"].as_u64() > Some(5), "{id}: {r}");
        let drawn = if id == "passed" {
            "withTracks"
        } else {
            "withBoxes"
        };
        assert!(n(drawn) > 0.5 * n("framesDrawn"), "{id}: {r}");
    }
}
