//! Reading and validating a config file. Errors carry the file, line and column and name the
//! field, e.g. `streams.toml:7:1: duplicate stream id `cam0` (first at line 3)`.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::{
    Config, DecodeFrames, ModelConfig, OutputConfig, ProcessorConfig, StreamConfig, VideoMode,
};

/// A config that could not be read or is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `<built-in>`).
    pub file: PathBuf,
    /// 1-based line and column, when known.
    pub position: Option<(usize, usize)>,
    /// What is wrong, naming the field.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, col)) => {
                write!(f, "{}:{line}:{col}: {}", self.file.display(), self.message)
            }
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Reads and validates a config file.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    parse_with(&read(path)?, path, Models::Checked)
}

/// Reads and validates a file of cameras for `framegate cluster import`: as [`load_file`],
/// but a `detect` processor's model is checked only when the file has `[[models]]` tables.
/// Models are each node's own config: the node that takes a camera checks its model then.
pub fn load_cameras_file(path: &Path) -> Result<Config, ConfigError> {
    parse_with(&read(path)?, path, Models::CheckedIfAny)
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        position: None,
        message: format!("cannot read the config file: {e}"),
    })
}

/// Whether streams' `detect` models must be among the config's `[[models]]`.
#[derive(Clone, Copy, PartialEq)]
enum Models {
    Checked,
    CheckedIfAny,
}

/// Parses and validates config text; `file` is only used in error messages.
pub fn parse_str(text: &str, file: &Path) -> Result<Config, ConfigError> {
    parse_with(text, file, Models::Checked)
}

fn parse_with(text: &str, file: &Path, models: Models) -> Result<Config, ConfigError> {
    let err = |span: Option<Range<usize>>, message: String| ConfigError {
        file: file.to_path_buf(),
        position: span.map(|s| line_col(text, s.start)),
        message,
    };
    let config: Config = toml::from_str(text).map_err(|e| {
        let message = e.message().trim_end().to_string();
        err(e.span(), with_section(text, e.span(), message))
    })?;
    let mut config = config;
    resolve_paths(&mut config, file.parent().unwrap_or(Path::new("")));
    validate(&config, text, models).map_err(|(span, message)| err(span, message))?;
    Ok(config)
}

/// Makes the paths written relative to the config file relative to where framegate runs.
fn resolve_paths(config: &mut Config, dir: &Path) {
    let db = &mut config.database;
    if let Some(file) = db.url.strip_prefix("sqlite://")
        && !file.starts_with('/')
        && !file.starts_with(':')
    {
        db.url = format!("sqlite://{}", dir.join(file).display());
    }
    if let Some(d) = db.dir.as_mut() {
        *d = dir.join(&*d);
    }
    if let Some(tls) = config.server.tls.as_mut() {
        tls.cert = dir.join(&tls.cert);
        tls.key = dir.join(&tls.key);
    }
    if let Some(lib) = config.onnxruntime.library.as_mut() {
        *lib = dir.join(&*lib);
    }
    if let Some(v) = config.python.venv.as_mut() {
        *v = dir.join(&*v);
    }
    for s in &mut config.streams {
        for p in &mut s.processors {
            match p {
                super::ProcessorConfig::Watermark(w) => {
                    if let Some(f) = w.key_file.as_mut() {
                        *f = dir.join(&*f);
                    }
                }
                super::ProcessorConfig::Python(py) => py.file = dir.join(&py.file),
                _ => {}
            }
        }
    }
    for m in &mut config.models {
        m.path = dir.join(&m.path);
        if m.labels != "coco80" {
            m.labels = dir.join(&m.labels).to_string_lossy().into_owned();
        }
    }
}

type Invalid = (Option<Range<usize>>, String);

fn validate(config: &Config, text: &str, models: Models) -> Result<(), Invalid> {
    let server = &config.server;
    let at = |key: &str| key_span(text, "server", key);
    super::bounds::seconds("server.summary_interval_s", server.summary_interval_s, 0.0)
        .map_err(|m| (at("summary_interval_s"), m))?;
    if let Some(t) = &server.api_token
        && (t.trim() != t || t.len() < 16 || t.len() > 512 || t.chars().any(char::is_control))
    {
        return Err((
            at("api_token"),
            "server.api_token must be 16 to 512 characters without spaces around it (or unset for an open API)".into(),
        ));
    }
    if let Some(e) = server
        .allowed_origins
        .iter()
        .find_map(|o| super::security::origin_error(o))
    {
        return Err((at("allowed_origins"), e));
    }
    if let Some(h) = server
        .allowed_hosts
        .iter()
        .find(|h| h.is_empty() || h.contains([':', '/', ' ']))
    {
        return Err((
            at("allowed_hosts"),
            format!("server.allowed_hosts: `{h}` is not a host name (no port, no scheme)"),
        ));
    }
    if let Some(e) = super::security::media_dirs_error(&server.media_dirs) {
        return Err((at("media_dirs"), e));
    }
    super::bounds::within(
        "server.view_token_ttl_s",
        server.view_token_ttl_s,
        10.0,
        86_400.0,
    )
    .map_err(|m| (at("view_token_ttl_s"), m))?;
    server
        .limits
        .validate()
        .map_err(|m| (key_span(text, "server", "limits"), m))?;
    server
        .rtsp_auth
        .validate()
        .map_err(|m| (key_span(text, "server", "rtsp_auth"), m))?;
    config
        .server
        .webrtc
        .validate()
        .map_err(|m| (key_span(text, "server", "webrtc"), m))?;
    if let Some(c) = &config.cluster {
        c.validate().map_err(|m| {
            let field = m
                .strip_prefix("cluster.")
                .and_then(|r| r.split([':', ' ']).next())
                .unwrap_or("");
            (key_span(text, "cluster", field), m)
        })?;
    }
    let mut model_ids: HashMap<&str, usize> = HashMap::new();
    for (i, m) in config.models.iter().enumerate() {
        let at = || table_key_span(text, "models", i, "id");
        if model_ids.insert(m.id.as_str(), i).is_some() {
            return Err((at(), format!("models.id: duplicate model id `{}`", m.id)));
        }
        m.validate()
            .map_err(|e| (at(), format!("model `{}`: {e}", m.id)))?;
    }
    let check_models_of = models == Models::Checked || !config.models.is_empty();
    let at = |i: usize| stream_id_span(text, i);
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, stream) in config.streams.iter().enumerate() {
        let id = stream.id.as_str();
        if let Some(first) = seen.insert(id, i) {
            let first_line = at(first).map_or(0, |s| line_col(text, s.start).0);
            return Err((
                at(i),
                format!(
                    "streams.id: duplicate stream id `{id}` (first defined at line {first_line})"
                ),
            ));
        }
        validate_stream(stream)
            .and_then(|()| {
                if check_models_of {
                    check_models(stream, &config.models)
                } else {
                    Ok(())
                }
            })
            .map_err(|m| (at(i), format!("stream `{id}`: {m}")))?;
    }
    check_mounts(&config.streams).map_err(|(i, m)| (at(i), m))?;
    // The Python files are imported now: a mistake in one is the config's error, with the
    // file and line.
    for (i, stream) in config.streams.iter().enumerate() {
        for p in &stream.processors {
            if let ProcessorConfig::Python(py) = p {
                crate::process::python::check(py, &config.python).map_err(|m| {
                    (
                        at(i),
                        format!("stream `{}`: python: {m}", stream.id.as_str()),
                    )
                })?;
            }
        }
    }
    config
        .database
        .validate()
        .map_err(|m| (key_span(text, "database", "url"), m))?;
    let mut alert_ids: HashMap<&str, usize> = HashMap::new();
    for (i, a) in config.alerts.iter().enumerate() {
        let at = || table_key_span(text, "alerts", i, "id");
        if alert_ids.insert(a.id.as_str(), i).is_some() {
            return Err((at(), format!("alerts.id: duplicate alert id `{}`", a.id)));
        }
        a.validate()
            .map_err(|e| (at(), format!("alert `{}`: {e}", a.id)))?;
        // A node of a cluster also runs the cluster's cameras, which its file does not list.
        if config.cluster.is_none()
            && let Some(missing) = a.streams.iter().find(|s| !seen.contains_key(s.as_str()))
        {
            return Err((
                at(),
                format!(
                    "alert `{}`: streams: no stream `{missing}` in this config",
                    a.id
                ),
            ));
        }
        tracked_rule_fits(a, &config.streams)
            .map_err(|e| (at(), format!("alert `{}`: {e}", a.id)))?;
    }
    Ok(())
}

/// A rule on a line or a zone names one that a stream it watches has (all of them when it names
/// streams; at least one when it watches every stream).
fn tracked_rule_fits(a: &super::AlertConfig, streams: &[StreamConfig]) -> Result<(), String> {
    let (what, id, has): (&str, &String, fn(&StreamConfig, &str) -> bool) =
        match (&a.on_line, &a.in_zone) {
            (Some(l), _) => ("on_line", l, |s, id| s.lines.iter().any(|l| l.id == id)),
            (None, Some(z)) => ("in_zone", z, |s, id| s.zones.iter().any(|z| z.id == id)),
            (None, None) => return Ok(()),
        };
    let watched: Vec<&StreamConfig> = streams
        .iter()
        .filter(|s| a.streams.is_empty() || a.streams.contains(s.id()))
        .collect();
    if !a.streams.is_empty() {
        if let Some(s) = watched.iter().find(|s| !has(s, id)) {
            return Err(format!("{what}: stream `{}` has no `{id}`", s.id()));
        }
    } else if !watched.iter().any(|s| has(s, id)) {
        return Err(format!("{what}: no stream has `{id}`"));
    }
    Ok(())
}

/// The span of `table.key` in the TOML text (or of the table), when written.
fn key_span(text: &str, table: &str, key: &str) -> Option<Range<usize>> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let (_, t) = root
        .get_ref()
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == table)?;
    let DeValue::Table(fields) = t.get_ref() else {
        return Some(t.span());
    };
    fields
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == key)
        .map(|(_, v)| v.span())
        .or_else(|| Some(t.span()))
}

/// Checks that no two streams are served at the same RTSP path; on a clash, the index of the
/// second stream and the message.
pub fn check_mounts(streams: &[StreamConfig]) -> Result<(), (usize, String)> {
    let mut mounts: HashMap<String, &str> = HashMap::new();
    for (i, stream) in streams.iter().enumerate() {
        for path in rtsp_mounts(stream) {
            if let Some(other) = mounts.insert(path.clone(), stream.id.as_str()) {
                return Err((
                    i,
                    format!(
                        "stream `{}`: outputs.path `{path}` is already served by stream `{other}`",
                        stream.id
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Checks that every `detect` processor of a stream names a configured model.
pub fn check_models(stream: &StreamConfig, models: &[ModelConfig]) -> Result<(), String> {
    for p in &stream.processors {
        if let ProcessorConfig::Detect(d) = p
            && !models.iter().any(|m| m.id == d.model)
        {
            let known: Vec<&str> = models.iter().map(|m| m.id.as_str()).collect();
            return Err(format!(
                "detect.model `{}` is not a [[models]] id (known: {})",
                d.model,
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
        }
    }
    Ok(())
}

/// The span of `streams[index].id` in the TOML text (or of the whole table), for messages.
fn stream_id_span(text: &str, index: usize) -> Option<Range<usize>> {
    table_key_span(text, "streams", index, "id")
}

/// The span of `array[index].key` in the TOML text (or of the whole table).
fn table_key_span(text: &str, array: &str, index: usize, key: &str) -> Option<Range<usize>> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let (_, items) = root
        .get_ref()
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == array)?;
    let DeValue::Array(items) = items.get_ref() else {
        return None;
    };
    let item = items.get(index)?;
    let DeValue::Table(table) = item.get_ref() else {
        return Some(item.span());
    };
    table
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == key)
        .map(|(_, v)| v.span())
        .or_else(|| Some(item.span()))
}

/// The RTSP mount paths a stream is served at.
pub fn rtsp_mounts(stream: &StreamConfig) -> Vec<String> {
    stream
        .outputs
        .iter()
        .filter_map(|o| match o {
            OutputConfig::Rtsp(r) => Some(match &r.path {
                Some(p) if p.starts_with('/') => p.clone(),
                Some(p) => format!("/{p}"),
                None => format!("/{}", stream.id()),
            }),
            _ => None,
        })
        .collect()
}

/// Checks one stream's settings beyond their types (ranges, URL schemes); the message names
/// the field.
pub fn validate_stream(s: &StreamConfig) -> Result<(), String> {
    use super::bounds::{seconds, within};
    let r = &s.reconnect;
    within("stall_timeout_s", s.stall_timeout_s, 0.1, 3600.0)?;
    seconds("reconnect.initial_s", r.initial_s, 0.01)?;
    seconds("reconnect.max_s", r.max_s, 0.01)?;
    if r.max_s < r.initial_s {
        return Err("reconnect: max_s must be at least initial_s".into());
    }
    if !(0.0..1.0).contains(&r.jitter) {
        return Err(format!(
            "reconnect.jitter = {} must be from 0 to below 1",
            r.jitter
        ));
    }
    within(
        "reconnect.connect_timeout_s",
        r.connect_timeout_s,
        0.1,
        3600.0,
    )?;
    seconds("reconnect.reset_after_s", r.reset_after_s, 0.1)?;
    if s.video == VideoMode::Passthrough
        && let Err(why) = s.passthrough_allowed()
    {
        return Err(format!("video = \"passthrough\" is not possible: {why}"));
    }
    if let Some(fps) = s.analyze_fps {
        within("analyze_fps", fps, 0.1, 240.0)?;
    }
    if s.video == VideoMode::Encode && (s.decode != DecodeFrames::All || s.analyze_fps.is_some()) {
        return Err(
            "decode and analyze_fps apply to a stream that passes its video through (video = \"auto\" or \"passthrough\"), not to video = \"encode\" (every frame is encoded)".into(),
        );
    }
    let e = &s.encoder;
    if let Some([w, h]) = e.size
        && (w < 16 || h < 16 || w > 7680 || h > 4320 || w % 2 != 0 || h % 2 != 0)
    {
        return Err(format!(
            "encoder.size = [{w}, {h}] must be even, from 16x16 to 7680x4320"
        ));
    }
    if !(1..=240).contains(&e.fps) {
        return Err(format!(
            "encoder.fps = {} is out of range (1 to 240)",
            e.fps
        ));
    }
    if !(50..=100_000).contains(&e.bitrate_kbps) {
        return Err(format!(
            "encoder.bitrate_kbps = {} is out of range (50 to 100000)",
            e.bitrate_kbps
        ));
    }
    if e.threads > 16 {
        return Err(format!(
            "encoder.threads = {} is out of range (0 for automatic, 1 to 16)",
            e.threads
        ));
    }
    if !(1..=1000).contains(&e.keyframe_interval) {
        return Err(format!(
            "encoder.keyframe_interval = {} is out of range (1 to 1000)",
            e.keyframe_interval
        ));
    }
    for p in &s.processors {
        match p {
            ProcessorConfig::Overlay(_) => Ok(()),
            ProcessorConfig::Detect(d) => d.validate(),
            ProcessorConfig::SkipSimilar(k) => k.validate(),
            ProcessorConfig::Watermark(w) => w.validate(),
            ProcessorConfig::Track(t) => t.validate(),
            ProcessorConfig::Python(p) => p.validate(),
        }?;
    }
    validate_tracking(s)?;
    for o in &s.outputs {
        match o {
            OutputConfig::Rtsp(r) => {
                if let Some(p) = &r.path
                    && (p.trim_matches('/').is_empty() || p.contains(char::is_whitespace))
                {
                    return Err(format!(
                        "outputs.path `{p}` is not a usable RTSP mount path"
                    ));
                }
            }
            OutputConfig::Rtmp(p) | OutputConfig::RtspPush(p) => {
                let want: &[&str] = match o {
                    OutputConfig::Rtmp(_) => &["rtmp", "rtmps"],
                    _ => &["rtsp", "rtsps"],
                };
                if !want.contains(&p.url.scheme()) {
                    return Err(format!(
                        "outputs.url: a `{}` output needs a {}:// URL, not `{}://`",
                        o.kind(),
                        want[0],
                        p.url.scheme()
                    ));
                }
                if p.url.host_str().is_none_or(str::is_empty) {
                    return Err(format!("outputs.url: `{}` has no host", o.kind()));
                }
                seconds("outputs.retry_initial_s", p.retry_initial_s, 0.01)?;
                seconds("outputs.retry_max_s", p.retry_max_s, 0.01)?;
                if p.retry_max_s < p.retry_initial_s {
                    return Err("outputs: retry_max_s must be at least retry_initial_s".into());
                }
            }
            OutputConfig::Redis(r) => {
                if !matches!(r.url.scheme(), "redis") || r.url.host_str().is_none_or(str::is_empty)
                {
                    return Err(format!(
                        "outputs.url: a `redis` output needs redis://host[:port], not `{}`",
                        crate::config::masked_url(&r.url)
                    ));
                }
                if r.channel.as_deref().is_some_and(str::is_empty) {
                    return Err("outputs.channel must not be empty".into());
                }
                if r.width
                    .is_some_and(|w| !(16..=7680).contains(&w) || w % 2 != 0)
                {
                    return Err("outputs.width must be even, from 16 to 7680".into());
                }
                if !(1..=100).contains(&r.quality) {
                    return Err("outputs.quality must be from 1 to 100".into());
                }
                within("outputs.max_fps", r.max_fps, 0.01, 120.0)?;
            }
        }
    }
    if let Some(m) = &s.media_server {
        m.validate()?;
    }
    Ok(())
}

/// A `track` processor needs a `detect` before it; lines and zones need a `track`.
fn validate_tracking(s: &StreamConfig) -> Result<(), String> {
    super::validate_shapes(&s.lines, &s.zones)?;
    let track = s
        .processors
        .iter()
        .position(|p| matches!(p, ProcessorConfig::Track(_)));
    if s.processors
        .iter()
        .filter(|p| matches!(p, ProcessorConfig::Track(_)))
        .count()
        > 1
    {
        return Err("processors: one `track` processor per stream".into());
    }
    let is_detect = |p: &ProcessorConfig| matches!(p, ProcessorConfig::Detect(_));
    match track {
        Some(i) if !s.processors[..i].iter().any(is_detect) => {
            return Err(
                "processors: `track` follows the boxes of a `detect` processor placed before it"
                    .into(),
            );
        }
        None if !s.lines.is_empty() || !s.zones.is_empty() => {
            return Err(
                "lines and zones are counted by a `track` processor: add { kind = \"track\" } after `detect`"
                    .into(),
            );
        }
        _ => {}
    }
    Ok(())
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
    (line, col)
}

/// Adds the table the error is in (`in [[streams]] #2`), which toml's messages leave out.
fn with_section(text: &str, span: Option<Range<usize>>, message: String) -> String {
    let Some(span) = span else { return message };
    let mut section = None;
    let mut counts: HashMap<&str, usize> = HashMap::new();
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        if pos > span.start {
            break;
        }
        let t = line.trim();
        if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let n = counts.entry(name.trim()).or_default();
            *n += 1;
            section = Some(format!("[[{}]] #{}", name.trim(), n));
        } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            section = Some(format!("[{}]", name.trim()));
        }
        pos += line.len();
    }
    match section {
        Some(s) => format!("{message} (in {s})"),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        parse_str(text, Path::new("t.toml"))
    }

    #[test]
    fn a_cluster_node_s_alerts_may_watch_cameras_its_file_does_not_list() {
        let alert = "[[alerts]]\nid = \"seen\"\nclass = \"person\"\nstreams = [\"lobby\"]\nwebhook = { url = \"http://127.0.0.1:9/\" }\n";
        let e = parse(alert).unwrap_err().to_string();
        assert!(
            e.contains("t.toml:2:6") && e.contains("no stream `lobby`"),
            "{e}"
        );
        let node =
            format!("[cluster]\netcd = [\"http://127.0.0.1:2379\"]\nnode = \"a\"\n\n{alert}");
        assert_eq!(parse(&node).expect("a node's alerts").alerts.len(), 1);
    }

    #[test]
    fn an_imported_camera_s_model_is_checked_only_against_models_the_file_names() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cameras.toml");
        let cam = "[[streams]]\nid = \"lobby\"\nsource = \"test://smpte\"\nprocessors = [ { kind = \"detect\", model = \"coco\" } ]\n";
        std::fs::write(&file, cam).unwrap();
        // The nodes' models: checked by the node that takes the camera.
        assert_eq!(load_cameras_file(&file).expect("cameras").streams.len(), 1);
        let e = load_file(&file).unwrap_err().to_string();
        assert!(e.contains("detect.model `coco`"), "{e}");
        // Models named in the file: a camera's model must be one of them.
        let model = dir.path().join("other.onnx");
        std::fs::write(&model, b"onnx").unwrap();
        let with = format!(
            "[[models]]\nid = \"other\"\npath = \"{}\"\nformat = \"centernet\"\n\n{cam}",
            model.display()
        );
        std::fs::write(&file, with).unwrap();
        let e = load_cameras_file(&file).unwrap_err().to_string();
        assert!(
            e.contains("detect.model `coco` is not a [[models]] id (known: other)"),
            "{e}"
        );
    }

    #[test]
    fn demo_config_is_valid() {
        let c = parse(super::super::DEMO_CONFIG).expect("demo config");
        assert_eq!(c.streams.len(), 2);
    }

    #[test]
    fn issue_example_parses_with_defaults() {
        let c = parse(
            r#"
[server]
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
"#,
        )
        .expect("valid");
        let s = &c.streams[0];
        assert_eq!(s.outputs.len(), 3);
        assert_eq!(s.encoder.keyframe_interval, 50);
        assert_eq!(rtsp_mounts(s), vec!["/cam0".to_string()]);
    }

    #[test]
    fn issue_9_example_parses_and_sqlite_is_next_to_the_config() {
        let c = parse_str(
            r#"
[database]
url = "sqlite://framegate.db"
retention_days = 30

[[alerts]]
id = "person-at-door"
class = "person"
streams = ["cam0"]
zone = [[0, 0], [640, 0], [640, 360], [0, 360]]
min_frames = 3
cooldown_s = 30
webhook = { url = "http://127.0.0.1:9000/hook", secret = "hmac-secret" }
mqtt = { url = "mqtt://127.0.0.1:1883", topic = "framegate/alerts" }

[[streams]]
id = "cam0"
source = "rtsp://127.0.0.1/cam0"
outputs = [ { kind = "redis", url = "redis://127.0.0.1:6379", channel = "frames.cam0", format = "jpeg", max_fps = 5 } ]
"#,
            Path::new("/etc/framegate/streams.toml"),
        )
        .expect("valid");
        assert_eq!(c.database.url, "sqlite:///etc/framegate/framegate.db");
        assert_eq!(c.alerts[0].zone.as_ref().map(Vec::len), Some(4));
        assert_eq!(c.streams[0].outputs[0].kind(), "redis");
        let masked = c.alerts[0].masked();
        assert_eq!(
            masked.webhook.and_then(|w| w.secret).as_deref(),
            Some("***")
        );
    }

    #[test]
    fn event_config_errors_name_the_place() {
        let base = "[[streams]]\nid = \"cam0\"\nsource = \"test://ball\"\n";
        let cases = [
            (
                "[database]\nurl = \"mysql://x\"\n",
                "6:7: database.url `mysql://x`: expected sqlite",
            ),
            (
                "[[alerts]]\nid = \"a\"\nclass = \"person\"\nstreams = [\"nope\"]\nwebhook = { url = \"http://h/\" }\n",
                "6:6: alert `a`: streams: no stream `nope`",
            ),
            (
                "[[alerts]]\nid = \"a\"\nclass = \"person\"\n",
                "6:6: alert `a`: needs a `webhook` or an `mqtt` target",
            ),
            (
                "[[alerts]]\nid = \"a\"\nclass = \"person\"\nzone = [[0, 0], [1, 1]]\nmqtt = { url = \"mqtt://h\", topic = \"t/#\" }\n",
                "alert `a`: zone has 2 points",
            ),
        ];
        for (extra, want) in cases {
            let e = parse(&format!("{base}\n{extra}"))
                .expect_err(extra)
                .to_string();
            assert!(e.contains(want), "{e}\n  should contain: {want}");
        }
        let redis = parse(&format!(
            "{base}outputs = [ {{ kind = \"redis\", url = \"http://h\" }} ]\n"
        ))
        .expect_err("redis url")
        .to_string();
        assert!(redis.contains("needs redis://host"), "{redis}");
        let check = parse(&format!(
            "{base}media_server = {{ url = \"ftp://x/{{path}}\" }}\n"
        ))
        .expect_err("media server url")
        .to_string();
        assert!(check.contains("expected an http:// URL"), "{check}");
    }

    #[test]
    fn encoder_threads_are_bounded() {
        let base = "[[streams]]\nid = \"cam0\"\nsource = \"test://ball\"\n";
        let e = parse(&format!("{base}encoder = {{ threads = 17 }}\n"))
            .expect_err("17 threads")
            .to_string();
        assert!(e.contains("encoder.threads = 17 is out of range"), "{e}");
        let ok = parse(&format!("{base}encoder = {{ threads = 4 }}\n")).unwrap();
        assert_eq!(ok.streams[0].encoder.threads, 4);
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}
