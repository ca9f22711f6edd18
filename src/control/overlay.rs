//! Changes made through the API, kept in a small TOML file so that they survive a restart.
//!
//! The streams that run are the config file's, with this overlay applied: streams added or
//! replaced through the API (stored whole), streams deleted through the API (by id), and streams
//! started or stopped through the API (by id: only `enabled`, so that later edits of the config
//! file still reach a stream that was only stopped and started). A replacement through the API
//! wins over later edits of the same stream in the config file; deleting it through the API, or
//! removing the file, gives the config file the last word again.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::config::{StreamConfig, StreamId};

/// The persisted API changes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overlay {
    /// Streams added or replaced through the API, whole.
    #[serde(default, rename = "streams")]
    pub upserts: Vec<StreamConfig>,
    /// Streams of the config file deleted through the API.
    #[serde(default)]
    pub deleted: Vec<StreamId>,
    /// Streams started (`true`) or stopped (`false`) through the API, over what the config file
    /// or a replacement says.
    #[serde(default)]
    pub enabled: std::collections::BTreeMap<StreamId, bool>,
}

impl Overlay {
    /// Reads the overlay; a missing file is an empty overlay.
    pub fn load(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text)
                .with_context(|| format!("{}: not a valid API state file", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes the overlay atomically (a temporary file renamed over the old one), readable by
    /// its owner only: it holds camera credentials.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = toml::to_string(self).context("serialising the API state")?;
        // A fresh file (never one that exists, never through a link: `create_new` is O_EXCL),
        // private to framegate's user, renamed over the state file (which replaces a link
        // there rather than writing through it).
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "state".into());
        let tmp = path.with_file_name(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .with_context(|| format!("writing {}", tmp.display()))?;
            let written = f
                .write_all(b"# Changes made through framegate's API. Written by framegate.\n")
                .and_then(|()| f.write_all(text.as_bytes()))
                .and_then(|()| f.sync_all());
            if let Err(e) = written {
                let _ = std::fs::remove_file(&tmp);
                return Err(e).with_context(|| format!("writing {}", tmp.display()));
            }
        }
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
    }

    /// The streams to run: `base` (the config file's) with the overlay applied.
    pub fn apply(&self, base: &[StreamConfig]) -> Vec<StreamConfig> {
        let mut out: Vec<StreamConfig> = base
            .iter()
            .filter(|s| !self.deleted.contains(s.id()))
            .map(|s| {
                self.upserts
                    .iter()
                    .find(|u| u.id() == s.id())
                    .unwrap_or(s)
                    .clone()
            })
            .collect();
        for u in &self.upserts {
            if !out.iter().any(|s| s.id() == u.id()) {
                out.push(u.clone());
            }
        }
        for s in &mut out {
            if let Some(on) = self.enabled.get(s.id()) {
                s.enabled = *on;
            }
        }
        out
    }

    /// Records a stream started or stopped.
    pub fn set_enabled(&mut self, id: &StreamId, enabled: bool) {
        self.enabled.insert(id.clone(), enabled);
    }

    /// Records a stream added or replaced.
    pub fn upsert(&mut self, config: StreamConfig) {
        self.deleted.retain(|d| d != config.id());
        // The replacement says whether it runs.
        self.enabled.remove(config.id());
        match self.upserts.iter_mut().find(|u| u.id() == config.id()) {
            Some(u) => *u = config,
            None => self.upserts.push(config),
        }
    }

    /// Records a stream deleted; `in_base`: whether the config file has it.
    pub fn delete(&mut self, id: &StreamId, in_base: bool) {
        self.upserts.retain(|u| u.id() != id);
        self.enabled.remove(id);
        if in_base && !self.deleted.contains(id) {
            self.deleted.push(id.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(id: &str, source: &str) -> StreamConfig {
        let c = crate::config::parse_str(
            &format!("[[streams]]\nid = \"{id}\"\nsource = \"{source}\"\n"),
            Path::new("t"),
        )
        .unwrap();
        c.streams.into_iter().next().unwrap()
    }

    #[test]
    fn applies_adds_replacements_and_deletions_and_round_trips() {
        let base = vec![stream("a", "test://ball"), stream("b", "test://smpte")];
        let mut o = Overlay::default();
        o.upsert(stream("c", "rtsp://u:secret@cam/x"));
        o.upsert(stream("a", "test://snow"));
        o.delete(&"b".to_string().try_into().unwrap(), true);
        let ids: Vec<_> = o.apply(&base).iter().map(|s| s.id().to_string()).collect();
        assert_eq!(ids, ["a", "c"]);
        assert_eq!(
            o.apply(&base)[0].source.to_string(),
            "test://snow?width=1280&height=720&fps=25"
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.toml");
        o.save(&path).unwrap();
        let back = Overlay::load(&path).unwrap();
        assert_eq!(back, o);
        // Stopping keeps only `enabled`: a later edit of the config file still applies.
        let a: StreamId = "a".to_string().try_into().unwrap();
        let mut o = Overlay::default();
        o.set_enabled(&a, false);
        let edited = vec![stream("a", "test://pinwheel")];
        let run = o.apply(&edited);
        assert!(!run[0].enabled);
        assert!(run[0].source.to_string().starts_with("test://pinwheel"));
        assert!(o.upserts.is_empty());
        // The password is kept (the file is private), not masked.
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("u:secret@")
        );
        assert_eq!(
            Overlay::load(&dir.path().join("none.toml")).unwrap(),
            Overlay::default()
        );
    }
}
