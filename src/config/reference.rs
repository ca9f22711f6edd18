//! The config reference (`docs/config-reference.md`), generated from the config types' JSON
//! schema, so the doc cannot drift from the code: a test fails when the file is stale.

use std::fmt::Write;

use serde_json::{Map, Value};

use super::Config;

/// The JSON schema of the config file (also printed by `framegate config-schema`, for editors).
pub fn json_schema() -> Value {
    schemars::schema_for!(Config).to_value()
}

/// Renders the config reference as Markdown.
pub fn markdown() -> String {
    let schema = json_schema();
    let empty = Map::new();
    let defs = schema
        .get("$defs")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut out = String::from(
        "# Config reference\n\n\
         <!-- Generated from the config types by `framegate config-reference`; do not edit. \
         A test fails when this file is stale: regenerate it with \
         `cargo run -- config-reference > docs/config-reference.md`. -->\n\n\
         framegate reads one TOML file (`framegate run --config FILE`; `framegate check --config \
         FILE` validates it). Unknown keys are errors. Each table below is one section of the \
         file; `[[streams]]` may appear many times.\n",
    );
    section(&mut out, "The file", &schema, defs);
    let order = [
        ("ServerConfig", "`[server]`"),
        ("WebRtcConfig", "`[server.webrtc]`"),
        ("OnnxRuntimeConfig", "`[onnxruntime]`"),
        ("ModelConfig", "`[[models]]`"),
        ("DatabaseConfig", "`[database]`"),
        ("PythonSection", "`[python]`"),
        ("ClusterConfig", "`[cluster]`"),
        ("AlertConfig", "`[[alerts]]`"),
        ("WebhookTarget", "`alerts.webhook`"),
        ("MqttTarget", "`alerts.mqtt`"),
        ("StreamConfig", "`[[streams]]`"),
        ("DecoderConfig", "`[streams.decoder]`"),
        ("EncoderConfig", "`[streams.encoder]`"),
        ("ProcessorConfig", "`streams.processors[]`"),
        ("LineConfig", "`streams.lines[]`"),
        ("ZoneConfig", "`streams.zones[]`"),
        ("OutputConfig", "`streams.outputs[]`"),
        ("MediaServerCheck", "`streams.media_server`"),
    ];
    for (name, title) in order {
        if let Some(def) = defs.get(name) {
            section(&mut out, title, def, defs);
        }
    }
    out
}

fn section(out: &mut String, title: &str, def: &Value, defs: &Map<String, Value>) {
    let _ = write!(out, "\n## {title}\n\n");
    if let Some(d) = def.get("description").and_then(Value::as_str) {
        let _ = write!(out, "{}\n\n", one_line(d));
    }
    if let Some(variants) = def.get("oneOf").and_then(Value::as_array) {
        for v in variants {
            let kind = v
                .pointer("/properties/kind/const")
                .and_then(Value::as_str)
                .unwrap_or("?");
            let _ = write!(out, "### `kind = \"{kind}\"`\n\n");
            if let Some(d) = v.get("description").and_then(Value::as_str) {
                let _ = write!(out, "{}\n\n", one_line(d));
            }
            table(out, v, defs, &["kind"]);
        }
        return;
    }
    table(out, def, defs, &[]);
}

fn table(out: &mut String, def: &Value, defs: &Map<String, Value>, skip: &[&str]) {
    let Some(props) = def.get("properties").and_then(Value::as_object) else {
        out.push_str("(no settings)\n\n");
        return;
    };
    let required: Vec<&str> = def
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let rows: Vec<_> = props
        .iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .collect();
    if rows.is_empty() {
        out.push_str("(no settings)\n\n");
        return;
    }
    out.push_str("| key | type | default | description |\n|---|---|---|---|\n");
    for (key, prop) in rows {
        let default = if required.contains(&key.as_str()) {
            "required".to_string()
        } else {
            prop.get("default")
                .map(|d| format!("`{}`", toml_value(d)))
                .unwrap_or_else(|| "none".into())
        };
        let desc = prop
            .get("description")
            .and_then(Value::as_str)
            .map(one_line)
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| `{key}` | {} | {default} | {} |",
            type_name(prop, defs),
            desc.replace('|', "\\|")
        );
    }
    out.push('\n');
}

fn type_name(prop: &Value, defs: &Map<String, Value>) -> String {
    if let Some(r) = prop.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return match defs.get(name) {
            Some(def) if def.pointer("/oneOf/0/properties/kind").is_some() => {
                "table chosen by `kind`".to_string()
            }
            Some(def) if def.get("oneOf").is_some() || def.get("enum").is_some() => {
                enum_values(def).unwrap_or_else(|| name.to_string())
            }
            _ => "table".to_string(),
        };
    }
    if let Some(all) = prop.get("allOf").and_then(Value::as_array)
        && let Some(first) = all.first()
    {
        return type_name(first, defs);
    }
    if let Some(values) = enum_values(prop) {
        return values;
    }
    match prop.get("type") {
        Some(Value::String(t)) if t == "array" => match prop.get("items") {
            Some(items) => format!("array of {}", type_name(items, defs)),
            None => "array".into(),
        },
        Some(Value::String(t)) => match (t.as_str(), prop.get("format").and_then(Value::as_str)) {
            ("integer", _) => "integer".into(),
            ("string", Some("ip")) => "IP address".into(),
            (t, _) => t.to_string(),
        },
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" or "),
        _ => prop
            .get("anyOf")
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .find(|v| v.get("type") != Some(&Value::from("null")))
            })
            .map(|v| type_name(v, defs))
            .unwrap_or_else(|| "value".into()),
    }
}

fn enum_values(def: &Value) -> Option<String> {
    let consts: Vec<String> = if let Some(e) = def.get("enum").and_then(Value::as_array) {
        e.iter()
            .filter_map(Value::as_str)
            .map(|s| format!("`{s}`"))
            .collect()
    } else {
        def.get("oneOf")?
            .as_array()?
            .iter()
            .filter_map(|v| {
                v.get("const")
                    .or_else(|| v.pointer("/enum/0"))
                    .and_then(Value::as_str)
            })
            .map(|s| format!("`{s}`"))
            .collect()
    };
    (!consts.is_empty()).then(|| consts.join(" \\| "))
}

fn toml_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{s}\""),
        Value::Array(a) if a.is_empty() => "[]".into(),
        Value::Object(o) if o.is_empty() => "{}".into(),
        Value::Object(_) => "{ … }".into(),
        Value::Null => "none".into(),
        // A 32-bit setting (a score) widened to 64 bits prints as 0.3499999940395355: shown
        // as the number written in the code, shortest form at f32's precision.
        Value::Number(n) if n.is_f64() => {
            let v = n.as_f64().unwrap_or_default();
            let short = (v as f32).to_string();
            if short.parse::<f64>().is_ok_and(|s| (s - v).abs() > 0.0) && f64::from(v as f32) == v {
                short
            } else {
                n.to_string()
            }
        }
        other => other.to_string(),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn reference_doc_is_up_to_date() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/config-reference.md");
        let want = super::markdown();
        if std::env::var_os("FRAMEGATE_UPDATE_DOCS").is_some() {
            std::fs::write(&path, &want).expect("write the reference");
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "docs/config-reference.md is stale: run `cargo run -- config-reference > \
             docs/config-reference.md` (or FRAMEGATE_UPDATE_DOCS=1 cargo test reference)"
        );
    }

    #[test]
    fn every_section_and_key_is_documented() {
        let md = super::markdown();
        for key in [
            "`rtsp_port`",
            "`bind`",
            "`source`",
            "`bitrate_kbps`",
            "`keyframe_interval`",
            "`kind = \"overlay\"`",
            "`kind = \"rtsp-push\"`",
            "`url`",
        ] {
            assert!(md.contains(key), "{key} missing from the reference");
        }
        assert!(!md.contains("| |"), "a key has no description:\n{md}");
    }
}
