//! Files framegate ships beside its executable rather than inside it (the ONNX Runtime
//! library, the demo's model and footage): `assets/` next to the executable or one or two
//! levels up, which is where `scripts/setup-debian.sh` puts them for `target/release/framegate`.

use std::path::{Path, PathBuf};

/// The asset directories that exist, nearest first.
pub fn dirs() -> Vec<PathBuf> {
    let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    else {
        return Vec::new();
    };
    // target/release/framegate and target/debug/deps/<test binary> both reach target/assets.
    [exe_dir.clone(), exe_dir.join(".."), exe_dir.join("../..")]
        .into_iter()
        .filter_map(|d| d.join("assets").canonicalize().ok())
        .filter(|d| d.is_dir())
        .collect()
}

/// The first asset with this relative path (`models/centernet.onnx`).
pub fn find(relative: &str) -> Option<PathBuf> {
    dirs()
        .into_iter()
        .map(|d| d.join(relative))
        .find(|p| p.exists())
}

/// The demo config: the built-in test patterns, and, when the set-up script has put the model
/// and the footage in place, a stream of people with the shared detector on it.
pub fn demo_config() -> String {
    let mut text = crate::config::DEMO_CONFIG.to_string();
    if let (Some(model), Some(footage)) = (find("models/centernet.onnx"), find("media/people.mp4"))
    {
        let quote = |p: &Path| toml::Value::String(p.display().to_string()).to_string();
        text.push_str(&format!(
            r#"
[[models]]
id = "coco"
path = {model}
format = "centernet"
max_batch = 4

[[streams]]
id = "demo-people"
source = "file://{footage}"
processors = [
  {{ kind = "skip_similar", threshold = 0.004 }},
  {{ kind = "detect", model = "coco", every = 2, min_score = 0.35, classes = ["person", "car", "bicycle"] }},
  {{ kind = "overlay", text = "framegate demo: shared detector" }},
]
outputs = [ {{ kind = "rtsp" }} ]
"#,
            model = quote(&model),
            footage = footage.display(),
        ));
    } else {
        tracing::info!(
            "the detector demo needs target/assets/ (run scripts/setup-debian.sh): showing test patterns only"
        );
    }
    text
}
