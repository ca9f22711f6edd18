//! Config of the analytics: the shared models (`[[models]]`), the ONNX Runtime library
//! (`[onnxruntime]`), and the `detect`, `skip_similar` and `watermark` processors.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where ONNX Runtime comes from (one library for the whole process).
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OnnxRuntimeConfig {
    /// Path of `libonnxruntime.so` (relative to the config file). Unset: framegate looks for it
    /// by itself: `$ORT_DYLIB_PATH`, then `assets/onnxruntime/` beside or above the executable
    /// (where `scripts/setup-debian.sh` puts it), then the Python `onnxruntime` packages it can
    /// find.
    #[serde(default)]
    pub library: Option<PathBuf>,
}

/// An object-detection model, loaded once and shared by every stream whose `detect` processor
/// names it. Frames from all those streams are gathered into batches.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Name the `detect` processors refer to.
    pub id: String,
    /// The ONNX file, relative to the config file.
    pub path: PathBuf,
    /// Output layout: `centernet` (`[1, N, 6]` boxes x1 y1 x2 y2 score class, input NHWC RGB
    /// 0..255, plain resize) or `yolo` (v5/v8/11 exports: `[1, 4 + classes, N]` or
    /// `[1, N, 5 + classes]`, input NCHW RGB 0..1 letterboxed; NMS applied).
    pub format: ModelFormat,
    /// Class names: `coco80` (the built-in COCO list) or a file with one name a line (relative
    /// to the config file).
    #[serde(default = "default_labels")]
    pub labels: String,
    /// Most frames run together in one batch. Models whose batch size is fixed at 1 run the
    /// gathered frames one after another.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Longest time the first frame of a batch waits for others, in milliseconds.
    #[serde(default = "default_max_wait_ms")]
    pub max_wait_ms: u64,
    /// Where the model runs: `auto` (CUDA when ONNX Runtime has it and a GPU answers, else the
    /// CPU), `cpu` or `cuda` (an error when CUDA cannot be used).
    #[serde(default)]
    pub provider: ModelProvider,
    /// The GPU the model runs on with CUDA (`nvidia-smi`'s index), 0 to 63.
    #[serde(default)]
    pub device: u32,
    /// CPU threads of the model (intra-op). Unset: a quarter of the cores, at least 1, so that
    /// decoding and encoding keep their share.
    #[serde(default)]
    pub threads: Option<usize>,
    /// Input size (square) for models whose input size is not fixed in the file.
    #[serde(default = "default_input_size")]
    pub input_size: u32,
    /// Overlap (IoU) above which NMS drops the weaker of two boxes of the same class (`yolo`).
    #[serde(default = "default_iou")]
    pub iou_threshold: f32,
}

fn default_labels() -> String {
    "coco80".into()
}

fn default_max_batch() -> usize {
    8
}

fn default_max_wait_ms() -> u64 {
    10
}

fn default_input_size() -> u32 {
    640
}

fn default_iou() -> f32 {
    0.45
}

/// The output layout of a detection model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelFormat {
    /// `[1, N, 6]`: x1, y1, x2, y2, score, class (CenterNet-style, NMS done).
    Centernet,
    /// YOLO v5/v8/11 exports (boxes as centre and size, per-class scores; NMS needed).
    Yolo,
}

/// Where a model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModelProvider {
    /// CUDA when available, else the CPU.
    #[default]
    Auto,
    /// The CPU only.
    Cpu,
    /// CUDA only.
    Cuda,
}

/// Settings of the `detect` processor.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetectConfig {
    /// The `[[models]]` id to use.
    pub model: String,
    /// Run the model on every Nth frame; the frames in between carry the last boxes.
    #[serde(default = "default_every")]
    pub every: u32,
    /// At most this many runs per second (on top of `every`).
    #[serde(default)]
    pub max_fps: Option<f64>,
    /// Lowest score kept, 0 to 1.
    #[serde(default = "default_min_score")]
    pub min_score: f32,
    /// Class names to keep (empty: all).
    #[serde(default)]
    pub classes: Vec<String>,
    /// Seconds a class must be gone before its detection event is closed.
    #[serde(default = "default_clear_after")]
    pub clear_after: f64,
}

fn default_every() -> u32 {
    1
}

fn default_min_score() -> f32 {
    0.35
}

fn default_clear_after() -> f64 {
    2.0
}

/// Settings of the `skip_similar` processor.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SkipSimilarConfig {
    /// Mean absolute luma difference (0 to 1, on a small thumbnail) under which a frame counts
    /// as the same as the last processed one: the processors after this one reuse their last
    /// result instead of running (frames still reach the outputs at full rate).
    #[serde(default = "default_threshold")]
    pub threshold: f32,
}

fn default_threshold() -> f32 {
    0.02
}

impl ModelConfig {
    /// Checks the settings beyond their types; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.id.is_empty() || self.id.len() > 64 {
            return Err("id must be 1 to 64 characters".into());
        }
        if !(1..=64).contains(&self.max_batch) {
            return Err(format!("max_batch = {} must be 1 to 64", self.max_batch));
        }
        if self.max_wait_ms > 1000 {
            return Err(format!(
                "max_wait_ms = {} must be at most 1000",
                self.max_wait_ms
            ));
        }
        if self.threads == Some(0) {
            return Err("threads must be at least 1".into());
        }
        if self.device > 63 {
            return Err(format!("device = {} must be 0 to 63", self.device));
        }
        if !(32..=4096).contains(&self.input_size) {
            return Err(format!(
                "input_size = {} must be 32 to 4096",
                self.input_size
            ));
        }
        if !(self.iou_threshold > 0.0 && self.iou_threshold <= 1.0) {
            return Err("iou_threshold must be more than 0 and at most 1".into());
        }
        if !self.path.is_file() {
            return Err(format!(
                "path `{}`: no such model file",
                self.path.display()
            ));
        }
        if self.labels != "coco80" && !PathBuf::from(&self.labels).is_file() {
            return Err(format!(
                "labels `{}`: neither `coco80` nor a readable file",
                self.labels
            ));
        }
        Ok(())
    }
}

impl DetectConfig {
    /// Checks the settings beyond their types.
    pub fn validate(&self) -> Result<(), String> {
        if self.every == 0 {
            return Err("detect.every must be at least 1".into());
        }
        if let Some(f) = self.max_fps {
            super::bounds::within("detect.max_fps", f, 0.01, 240.0)?;
        }
        if !(0.0..=1.0).contains(&self.min_score) {
            return Err(format!(
                "detect.min_score = {} must be from 0 to 1",
                self.min_score
            ));
        }
        super::bounds::seconds("detect.clear_after", self.clear_after, 0.0)?;
        Ok(())
    }
}

impl SkipSimilarConfig {
    /// Checks the settings beyond their types.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(format!(
                "skip_similar.threshold = {} must be from 0 to 1",
                self.threshold
            ));
        }
        Ok(())
    }
}

/// Settings of the `watermark` processor.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WatermarkConfig {
    /// The 7-character ID carried invisibly by every frame (printable ASCII). Changed at run
    /// time with `PUT /api/streams/{id}/watermark`.
    pub id: String,
    /// The secret that decides where and how the ID is embedded; the reader needs the same one.
    /// Never logged; the API shows `***`. Or, kept out of the config: `key_file` or `key_env`.
    #[serde(default)]
    pub key: String,
    /// A file whose first line is the key (relative to the config file).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// An environment variable that holds the key.
    #[serde(default)]
    pub key_env: Option<String>,
    /// `auto` (as strong as stays under the quality limit: luma PSNR 43.5 dB) or a number (1.0 to
    /// 4.0; 2.4 is what `auto` starts from).
    #[serde(default)]
    #[schemars(with = "String")]
    pub strength: WatermarkStrength,
}

/// How strongly the watermark is embedded.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum WatermarkStrength {
    /// The default strength, reduced where needed to keep luma PSNR at 43.5 dB or more.
    #[default]
    Auto,
    /// A fixed strength.
    Fixed(f32),
}

impl Serialize for WatermarkStrength {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Auto => s.serialize_str("auto"),
            Self::Fixed(v) => s.serialize_f32(*v),
        }
    }
}

impl<'de> Deserialize<'de> for WatermarkStrength {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(f64),
        }
        match Raw::deserialize(d)? {
            Raw::Text(t) if t == "auto" => Ok(Self::Auto),
            Raw::Text(t) => Err(serde::de::Error::custom(format!(
                "strength `{t}`: expected \"auto\" or a number"
            ))),
            Raw::Number(v) => Ok(Self::Fixed(v as f32)),
        }
    }
}

/// Why a watermark ID is not usable, or `None` when it is.
pub fn watermark_id_error(id: &str) -> Option<String> {
    let ok = id.len() == 7 && id.bytes().all(|b| (0x20..0x7f).contains(&b));
    (!ok).then(|| format!("watermark id `{id}` must be exactly 7 printable ASCII characters"))
}

impl WatermarkConfig {
    /// The key: `key`, or the first line of `key_file`, or the value of `key_env`.
    pub fn resolved_key(&self) -> Result<String, String> {
        let given = [
            !self.key.is_empty(),
            self.key_file.is_some(),
            self.key_env.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err("watermark: give exactly one of key, key_file and key_env".into());
        }
        if let Some(f) = &self.key_file {
            let text = std::fs::read_to_string(f)
                .map_err(|e| format!("watermark.key_file: cannot read `{}`: {e}", f.display()))?;
            return Ok(text.lines().next().unwrap_or("").trim_end().to_string());
        }
        if let Some(name) = &self.key_env {
            return std::env::var(name)
                .map_err(|_| format!("watermark.key_env: `{name}` is not set"));
        }
        Ok(self.key.clone())
    }

    /// Checks the settings beyond their types.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(e) = watermark_id_error(&self.id) {
            return Err(e);
        }
        if self.resolved_key()?.len() < 8 {
            return Err("watermark.key must be at least 8 characters".into());
        }
        if let WatermarkStrength::Fixed(v) = self.strength
            && !(1.0..=4.0).contains(&v)
        {
            return Err(format!(
                "watermark.strength = {v} must be `auto` or 1.0 to 4.0"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wm(key: &str, file: Option<PathBuf>, env: Option<&str>) -> WatermarkConfig {
        WatermarkConfig {
            id: "CAM0042".into(),
            key: key.into(),
            key_file: file,
            key_env: env.map(str::to_string),
            strength: WatermarkStrength::Auto,
        }
    }

    #[test]
    fn a_model_names_its_gpu_within_bounds() {
        let file = std::env::temp_dir().join(format!("fg-model-{}.onnx", std::process::id()));
        std::fs::write(&file, b"not checked here").expect("write");
        let mut m: ModelConfig = toml::from_str(&format!(
            "id = \"m\"\npath = \"{}\"\nformat = \"yolo\"\n",
            file.display()
        ))
        .expect("parse");
        assert_eq!(m.device, 0);
        assert!(m.validate().is_ok());
        m.device = 63;
        assert!(m.validate().is_ok());
        m.device = 64;
        assert_eq!(m.validate(), Err("device = 64 must be 0 to 63".into()));
        let _ = std::fs::remove_file(&file);
    }

    #[test]
    fn the_watermark_key_comes_from_exactly_one_place() {
        let dir = std::env::temp_dir().join(format!("fg-wm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("key");
        std::fs::write(&file, "from a file, not the config\nsecond line").expect("write");
        let c = wm("", Some(file.clone()), None);
        assert_eq!(
            c.resolved_key().as_deref(),
            Ok("from a file, not the config")
        );
        assert!(c.validate().is_ok());
        assert!(wm("inline key", Some(file), None).validate().is_err());
        assert!(wm("", None, None).validate().is_err());
        assert!(
            wm("", None, Some("FRAMEGATE_TEST_UNSET_WATERMARK_KEY"))
                .validate()
                .is_err()
        );
        assert!(wm("", Some(dir.join("missing")), None).validate().is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
