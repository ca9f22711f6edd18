//! The stream manager: the one owner of the running streams. Everything that adds, changes,
//! stops or removes a stream goes through it (the API, a config reload, shutdown), so the
//! running set, the config and the persisted API changes never disagree.
//!
//! Its methods block (starting and stopping GStreamer pipelines); async callers run them on a
//! blocking thread. Two locks, one rule each:
//! - `changes` is held for the whole of every change (add, replace, start, stop, remove,
//!   reload, shutdown): changes happen one after another, start to end, so none is lost and the
//!   stream a change replaces or removes is always the one it stops and joins.
//! - `inner` is held only to look or to swap entries, never while a stream starts or stops or a
//!   model loads: reads (status, metrics, health, viewers) never wait on a change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Result;
use schemars::JsonSchema;
use serde::Serialize;

use crate::alert::AlertRules;
use crate::cluster::fence::Fence;
use crate::config::{self, ServerConfig, StreamConfig, StreamId};
use crate::process::{Hooks, Models};
use crate::publish::LazyRtspServer;
use crate::store::{Event, Store, kind};
use crate::stream::Stream;

use super::overlay::Overlay;
use super::status::{StreamStatus, status};

/// Why a request to the manager failed.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// No stream has this id.
    #[error("no stream `{0}`")]
    NotFound(StreamId),
    /// A stream with this id exists already.
    #[error("a stream `{0}` exists already")]
    Duplicate(StreamId),
    /// The stream's config is invalid; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// The change could not be saved; nothing was changed.
    #[error("cannot save the change: {0}")]
    Persist(String),
    /// The config file could not be read again.
    #[error("{0}")]
    Reload(String),
    /// The stream exists but does not run.
    #[error("stream `{0}` is stopped")]
    NotRunning(StreamId),
    /// framegate is shutting down: no more changes.
    #[error("framegate is shutting down")]
    ShuttingDown,
}

/// What a reload changed.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct ReloadReport {
    /// Streams started because they are new.
    pub added: Vec<String>,
    /// Streams restarted because their config changed.
    pub restarted: Vec<String>,
    /// Streams stopped and removed because they are gone.
    pub removed: Vec<String>,
    /// Streams left running untouched.
    pub unchanged: Vec<String>,
}

struct Entry {
    config: StreamConfig,
    running: Option<Stream>,
    start_error: Option<String>,
    /// Held for the cluster: this node's name and the fencing token (`None`: the node's own).
    held: Option<(String, i64)>,
}

impl Entry {
    fn status(&self) -> StreamStatus {
        let mut st = status(
            &self.config,
            self.running.as_ref(),
            self.start_error.as_deref(),
        );
        if let Some((node, token)) = &self.held {
            st.owner = Some(node.clone());
            st.fencing_token = Some(*token);
        }
        st
    }
}

struct Inner {
    /// The config file's streams, as last read.
    base: Vec<StreamConfig>,
    overlay: Overlay,
    entries: BTreeMap<StreamId, Entry>,
}

/// Owns the running streams.
pub struct Manager {
    server: ServerConfig,
    database: config::DatabaseConfig,
    /// The embedded interpreter's settings (for `python` processors).
    python: config::PythonSection,
    rtsp: Arc<LazyRtspServer>,
    models: Models,
    store: Arc<Store>,
    alerts: Arc<AlertRules>,
    config_path: Option<PathBuf>,
    state_path: Option<PathBuf>,
    /// Held for the whole of each change (see the module's notes).
    changes: Mutex<()>,
    /// Set by [`Manager::shutdown`]: later changes are refused.
    closed: std::sync::atomic::AtomicBool,
    inner: Mutex<Inner>,
}

impl Manager {
    /// Starts every enabled stream of `config` (with the persisted API changes applied),
    /// recording their events in `store`. A stream that cannot start is reported in its
    /// status; the others run.
    pub fn start(
        config: &config::Config,
        config_path: Option<&Path>,
        rtsp: Arc<LazyRtspServer>,
        store: Arc<Store>,
        alerts: Arc<AlertRules>,
    ) -> Result<Arc<Self>> {
        let state_path = config
            .server
            .state_file
            .clone()
            .or_else(|| config_path.map(default_state_path));
        let overlay = match &state_path {
            Some(p) => Overlay::load(p)?,
            None => Overlay::default(),
        };
        if let Some(p) = &state_path {
            tracing::info!("API changes are kept in {}", p.display());
        }
        let manager = Arc::new(Self {
            server: config.server.clone(),
            database: config.database.clone(),
            python: config.python.clone(),
            rtsp,
            models: Models::new(config),
            store,
            alerts,
            config_path: config_path.map(Path::to_path_buf),
            state_path,
            changes: Mutex::new(()),
            closed: std::sync::atomic::AtomicBool::new(false),
            inner: Mutex::new(Inner {
                base: config.streams.clone(),
                overlay,
                entries: BTreeMap::new(),
            }),
        });
        {
            let _change = manager.change()?;
            let effective = {
                let inner = manager.lock();
                inner.overlay.apply(&inner.base)
            };
            if let Err((i, m)) = config::check_mounts(&effective) {
                anyhow::bail!("stream `{}`: {m}", effective[i].id());
            }
            for c in effective {
                let entry = manager.launch(c, None);
                manager
                    .lock()
                    .entries
                    .insert(entry.config.id().clone(), entry);
            }
        }
        Ok(manager)
    }

    /// The RTSP server streams are served on (started by the first stream with an `rtsp`
    /// output).
    pub fn rtsp(&self) -> &LazyRtspServer {
        &self.rtsp
    }

    /// Every stream's status, by id.
    pub fn list(&self) -> Vec<StreamStatus> {
        self.lock().entries.values().map(|e| e.status()).collect()
    }

    /// The ids of the enabled streams.
    pub fn ids(&self) -> Vec<String> {
        self.lock()
            .entries
            .values()
            .filter(|e| e.config.enabled)
            .map(|e| e.config.id().to_string())
            .collect()
    }

    /// One stream's status.
    pub fn get(&self, id: &StreamId) -> Result<StreamStatus, ManagerError> {
        let inner = self.lock();
        let e = inner
            .entries
            .get(id)
            .ok_or_else(|| ManagerError::NotFound(id.clone()))?;
        Ok(e.status())
    }

    /// The event store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Records a change made through the API (or a reload) as an event.
    fn changed(&self, action: &str, stream: Option<&StreamId>, detail: serde_json::Value) {
        self.store.sink().record(Event::new(
            kind::CONFIG_CHANGED,
            stream.map(StreamId::as_str),
            serde_json::json!({ "action": action, "detail": detail }),
        ));
    }

    /// The detection models loaded so far.
    pub fn models(&self) -> Vec<crate::process::detect::ModelStatus> {
        self.models.statuses()
    }

    /// Calls `f` with a running stream (briefly: the manager is locked meanwhile).
    pub fn with_running<T>(
        &self,
        id: &StreamId,
        f: impl FnOnce(&Stream) -> T,
    ) -> Result<T, ManagerError> {
        let inner = self.lock();
        let e = inner
            .entries
            .get(id)
            .ok_or_else(|| ManagerError::NotFound(id.clone()))?;
        e.running
            .as_ref()
            .map(f)
            .ok_or_else(|| ManagerError::NotRunning(id.clone()))
    }

    /// Calls `f` with every stream (config and, while running, the stream), for metrics.
    pub fn for_each(&self, mut f: impl FnMut(&StreamConfig, Option<&Stream>)) {
        for e in self.lock().entries.values() {
            f(&e.config, e.running.as_ref());
        }
    }

    /// Checks that a new stream may be added (its id unused, its config valid here); the API
    /// changes as they stand, for the caller that saves it.
    fn admit(&self, config: &StreamConfig) -> Result<Overlay, ManagerError> {
        let inner = self.lock();
        if inner.entries.contains_key(config.id()) {
            return Err(ManagerError::Duplicate(config.id().clone()));
        }
        self.validate(&inner, config)?;
        Ok(inner.overlay.clone())
    }

    /// Adds a stream and starts it (if enabled).
    pub fn add(&self, config: StreamConfig) -> Result<StreamStatus, ManagerError> {
        let _change = self.change()?;
        let id = config.id().clone();
        let mut overlay = self.admit(&config)?;
        // Saved only once it has started (or failed to, which its status then says): a config
        // that cannot start is never left behind for the next start of framegate to trip on.
        overlay.upsert(config.clone());
        let mut entry = self.launch(config.clone(), None);
        if let Err(e) = self.persist(&overlay) {
            if let Some(s) = self.detach(&mut entry) {
                s.stop();
            }
            return Err(e);
        }
        tracing::info!(stream = %id, "added through the API");
        self.changed(
            "add",
            Some(&id),
            serde_json::to_value(config.masked()).unwrap_or_default(),
        );
        let st = entry.status();
        let mut inner = self.lock();
        inner.overlay = overlay;
        inner.entries.insert(id, entry);
        Ok(st)
    }

    /// Starts a camera this node holds for the cluster (`node`'s, with fencing token `token`):
    /// like [`Manager::add`], but not kept across restarts (etcd keeps it) and not an API change;
    /// its pushes send only while `fence` allows.
    pub fn adopt(
        &self,
        config: StreamConfig,
        node: &str,
        token: i64,
        fence: Fence,
    ) -> Result<StreamStatus, ManagerError> {
        let _change = self.change()?;
        let id = config.id().clone();
        self.admit(&config)?;
        let mut entry = self.launch(config, Some((token, fence)));
        entry.held = Some((node.to_string(), token));
        let st = entry.status();
        self.lock().entries.insert(id, entry);
        Ok(st)
    }

    /// Stops a camera started by [`Manager::adopt`] (not a stream of the node's own config).
    pub fn release(&self, id: &StreamId) -> Result<(), ManagerError> {
        let _change = self.change()?;
        let old = {
            let mut inner = self.lock();
            match inner.entries.get(id) {
                Some(e) if e.held.is_some() => {}
                Some(_) => {
                    return Err(ManagerError::Invalid(format!(
                        "stream `{id}` is not held for the cluster"
                    )));
                }
                None => return Err(ManagerError::NotFound(id.clone())),
            }
            inner
                .entries
                .remove(id)
                .and_then(|mut e| self.detach(&mut e))
        };
        if let Some(s) = old {
            s.stop();
        }
        Ok(())
    }

    /// Refuses an API change to a camera held for the cluster: etcd is where it changes.
    fn not_held(&self, id: &StreamId) -> Result<(), ManagerError> {
        match self.lock().entries.get(id) {
            Some(e) if e.held.is_some() => Err(ManagerError::Invalid(format!(
                "stream `{id}` is a cluster camera: change it in etcd (framegate cluster import)"
            ))),
            _ => Ok(()),
        }
    }

    /// Replaces a stream's config; restarts it only if something changed.
    pub fn replace(
        &self,
        id: &StreamId,
        mut config: StreamConfig,
    ) -> Result<StreamStatus, ManagerError> {
        if config.id() != id {
            return Err(ManagerError::Invalid(format!(
                "id: the body says `{}` but the URL says `{id}`",
                config.id()
            )));
        }
        let _change = self.change()?;
        self.not_held(id)?;
        {
            let inner = self.lock();
            let current = inner
                .entries
                .get(id)
                .ok_or_else(|| ManagerError::NotFound(id.clone()))?;
            config.unmask_from(&current.config);
            if current.config == config {
                return Ok(current.status());
            }
            self.validate(&inner, &config)?;
        }
        let masked = serde_json::to_value(config.masked()).unwrap_or_default();
        let stored = config.clone();
        let st = self.swap(id, config, |o| o.upsert(stored))?;
        tracing::info!(stream = %id, "replaced through the API");
        self.changed("replace", Some(id), masked);
        Ok(st)
    }

    /// Changes the ID a stream's watermark embeds, from its next frame on, without a restart;
    /// kept across restarts like other API changes.
    pub fn set_watermark_id(
        &self,
        id: &StreamId,
        wm_id: &str,
    ) -> Result<StreamStatus, ManagerError> {
        if let Some(e) = config::watermark_id_error(wm_id) {
            return Err(ManagerError::Invalid(e));
        }
        let _change = self.change()?;
        self.not_held(id)?;
        let mut inner = self.lock();
        let entry = inner
            .entries
            .get_mut(id)
            .ok_or_else(|| ManagerError::NotFound(id.clone()))?;
        let mut changed = entry.config.clone();
        let Some(wm) = changed.processors.iter_mut().find_map(|p| match p {
            config::ProcessorConfig::Watermark(w) => Some(w),
            _ => None,
        }) else {
            return Err(ManagerError::Invalid(format!(
                "stream `{id}` has no watermark processor"
            )));
        };
        wm.id = wm_id.to_string();
        let mut overlay = inner.overlay.clone();
        overlay.upsert(changed.clone());
        self.persist(&overlay)?;
        inner.overlay = overlay;
        let entry = inner
            .entries
            .get_mut(id)
            .ok_or_else(|| ManagerError::NotFound(id.clone()))?;
        if let Some(s) = &entry.running {
            for h in s.watermarks() {
                h.set_id(wm_id).map_err(ManagerError::Invalid)?;
            }
        }
        entry.config = changed;
        tracing::info!(stream = %id, "watermark ID changed through the API");
        self.changed("watermark", Some(id), serde_json::json!({ "id": wm_id }));
        Ok(entry.status())
    }

    /// Stops and removes a stream.
    pub fn remove(&self, id: &StreamId) -> Result<(), ManagerError> {
        let _change = self.change()?;
        self.not_held(id)?;
        let old = {
            let mut inner = self.lock();
            if !inner.entries.contains_key(id) {
                return Err(ManagerError::NotFound(id.clone()));
            }
            let in_base = inner.base.iter().any(|s| s.id() == id);
            let mut overlay = inner.overlay.clone();
            overlay.delete(id, in_base);
            self.persist(&overlay)?;
            inner.overlay = overlay;
            inner
                .entries
                .remove(id)
                .and_then(|mut e| self.detach(&mut e))
        };
        if let Some(s) = old {
            s.stop();
        }
        tracing::info!(stream = %id, "removed through the API");
        self.changed("remove", Some(id), serde_json::Value::Null);
        Ok(())
    }

    /// Starts (`true`) or stops (`false`) a stream; the choice is kept across restarts.
    pub fn set_enabled(&self, id: &StreamId, enabled: bool) -> Result<StreamStatus, ManagerError> {
        let _change = self.change()?;
        self.not_held(id)?;
        let config = {
            let inner = self.lock();
            let e = inner
                .entries
                .get(id)
                .ok_or_else(|| ManagerError::NotFound(id.clone()))?;
            if e.config.enabled == enabled && e.running.is_some() == enabled {
                return Ok(e.status());
            }
            let mut c = e.config.clone();
            c.enabled = enabled;
            c
        };
        let st = self.swap(id, config, |o| o.set_enabled(id, enabled))?;
        self.changed(
            if enabled { "start" } else { "stop" },
            Some(id),
            serde_json::Value::Null,
        );
        Ok(st)
    }

    /// Re-reads the config file and restarts only the streams whose config changed.
    pub fn reload(&self) -> Result<ReloadReport, ManagerError> {
        let Some(path) = &self.config_path else {
            return Err(ManagerError::Reload(
                "framegate runs without a config file (the built-in demo): nothing to reload"
                    .into(),
            ));
        };
        let _change = self.change()?;
        let fresh = config::load_file(path).map_err(|e| ManagerError::Reload(e.to_string()))?;
        if fresh.server != self.server {
            tracing::warn!("reload: [server] settings changed; they take effect at the next start");
        }
        if fresh.database != self.database {
            tracing::warn!(
                "reload: [database] settings changed; they take effect at the next start"
            );
        }
        let mut report = ReloadReport::default();
        let mut to_stop = Vec::new();
        let mut inner = self.lock();
        let effective = inner.overlay.apply(&fresh.streams);
        if let Err((i, m)) = config::check_mounts(&effective) {
            return Err(ManagerError::Reload(format!(
                "stream `{}`: {m}",
                effective[i].id()
            )));
        }
        let changed_models = self.models.update(&fresh);
        self.alerts.set(fresh.alerts.clone());
        // A stream restarts when a model it uses changed, or the file of one of its Python
        // processors (imported again when the stream starts).
        let uses_changed = |c: &StreamConfig| {
            c.processors.iter().any(|p| match p {
                config::ProcessorConfig::Detect(d) => changed_models.contains(&d.model),
                config::ProcessorConfig::Python(py) => crate::process::python::changed(&py.file),
                _ => false,
            })
        };
        inner.base = fresh.streams;
        let keep: Vec<StreamId> = effective.iter().map(|c| c.id().clone()).collect();
        // Cameras held for the cluster are etcd's, not the file's.
        let gone: Vec<StreamId> = inner
            .entries
            .iter()
            .filter(|(id, e)| !keep.contains(id) && e.held.is_none())
            .map(|(id, _)| id)
            .cloned()
            .collect();
        for id in gone {
            if let Some(mut e) = inner.entries.remove(&id) {
                to_stop.extend(self.detach(&mut e));
            }
            report.removed.push(id.to_string());
        }
        let mut to_start = Vec::new();
        for c in effective {
            let id = c.id().clone();
            match inner.entries.get_mut(&id) {
                Some(e) if e.held.is_some() => {
                    tracing::warn!(stream = %id, "reload: a cluster camera has this id: the file's stream is not started");
                    report.unchanged.push(id.to_string())
                }
                Some(e) if e.config == c && !uses_changed(&c) => {
                    report.unchanged.push(id.to_string())
                }
                Some(e) => {
                    to_stop.extend(self.detach(e));
                    report.restarted.push(id.to_string());
                    to_start.push(c);
                }
                None => {
                    report.added.push(id.to_string());
                    to_start.push(c);
                }
            }
        }
        drop(inner);
        for s in to_stop {
            s.stop();
        }
        for c in to_start {
            let entry = self.launch(c, None);
            self.lock().entries.insert(entry.config.id().clone(), entry);
        }
        self.changed(
            "reload",
            None,
            serde_json::to_value(&report).unwrap_or_default(),
        );
        tracing::info!(
            added = report.added.len(),
            restarted = report.restarted.len(),
            removed = report.removed.len(),
            unchanged = report.unchanged.len(),
            "config reloaded"
        );
        Ok(report)
    }

    /// Whether every enabled stream is live (and not degraded), with the ids of those that are
    /// not.
    pub fn readiness(&self) -> (bool, Vec<String>) {
        let not_ready: Vec<String> = self
            .lock()
            .entries
            .values()
            .filter(|e| e.config.enabled)
            .filter(|e| {
                e.running.as_ref().is_none_or(|s| {
                    s.state() != crate::stream::StreamState::Live
                        || s.encoder_health().degraded().is_some()
                })
            })
            .map(|e| e.config.id().to_string())
            .collect();
        (not_ready.is_empty(), not_ready)
    }

    /// Stops every stream (in parallel) and waits for them.
    pub fn shutdown(&self) {
        // After the change under way, if any; no change after this one.
        let _change = crate::supervise::lock(&self.changes);
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        let streams: Vec<Stream> = {
            let mut inner = self.lock();
            inner
                .entries
                .values_mut()
                .filter_map(|e| self.detach(e))
                .collect()
        };
        for s in streams {
            s.stop();
        }
    }

    /// Stops the running stream, starts `config` in its place, and then saves it as the
    /// stream's. When it cannot be saved, the old config is started again and nothing changed.
    /// The caller holds the change lock.
    fn swap(
        &self,
        id: &StreamId,
        config: StreamConfig,
        record: impl FnOnce(&mut Overlay),
    ) -> Result<StreamStatus, ManagerError> {
        let (old, previous, mut overlay) = {
            let mut inner = self.lock();
            let previous = inner.entries.get(id).map(|e| e.config.clone());
            let old = inner.entries.get_mut(id).and_then(|e| self.detach(e));
            (old, previous, inner.overlay.clone())
        };
        if let Some(s) = old {
            s.stop();
        }
        let mut entry = self.launch(config, None);
        record(&mut overlay);
        if let Err(e) = self.persist(&overlay) {
            if let Some(s) = self.detach(&mut entry) {
                s.stop();
            }
            if let Some(prev) = previous {
                let back = self.launch(prev, None);
                self.lock().entries.insert(id.clone(), back);
            }
            return Err(e);
        }
        let st = entry.status();
        let mut inner = self.lock();
        inner.overlay = overlay;
        inner.entries.insert(id.clone(), entry);
        Ok(st)
    }

    /// Starts a stream if it is enabled; a failure is kept in the entry, not returned. A camera
    /// run for the cluster comes with its owner key's fencing token and the node's fence.
    fn launch(&self, config: StreamConfig, cluster: Option<(i64, Fence)>) -> Entry {
        config.register_secrets();
        if !config.enabled {
            return Entry {
                config,
                running: None,
                start_error: None,
                held: None,
            };
        }
        let (events, fence) = match cluster {
            Some((token, fence)) => (self.store.sink().for_camera(token, fence.clone()), fence),
            None => (self.store.sink(), Fence::open()),
        };
        let hooks = Hooks {
            stream: Some(config.id().clone()),
            events,
            alerts: Some(self.alerts.clone()),
            python: self.python.clone(),
            fence,
        };
        // A panic while starting (a bug, or a value no check foresaw) fails this stream only.
        let started = crate::supervise::caught(|| {
            let rtsp = if config::rtsp_mounts(&config).is_empty() {
                None
            } else {
                Some(self.rtsp.get()?)
            };
            Stream::start(&config, &self.server, rtsp.as_deref(), &self.models, &hooks)
        })
        .unwrap_or_else(|why| Err(anyhow::anyhow!("internal error while starting: {why}")));
        match started {
            Ok(s) => Entry {
                config,
                running: Some(s),
                start_error: None,
                held: None,
            },
            Err(e) => {
                tracing::error!(stream = %config.id(), "not started: {e:#}");
                Entry {
                    config,
                    running: None,
                    start_error: Some(format!("{e:#}")),
                    held: None,
                }
            }
        }
    }

    /// Takes a running stream out of its entry and unmounts it; the caller stops it after
    /// releasing the lock.
    fn detach(&self, e: &mut Entry) -> Option<Stream> {
        let mut s = e.running.take()?;
        s.begin_stop();
        s.unmount(self.rtsp.running().as_deref());
        Some(s)
    }

    fn validate(&self, inner: &Inner, config: &StreamConfig) -> Result<(), ManagerError> {
        let unchanged_source = inner
            .entries
            .get(config.id())
            .is_some_and(|e| e.config.source == config.source);
        if let config::SourceUrl::File(path) = &config.source
            && !unchanged_source
        {
            media_file_allowed(path, &self.server.media_dirs).map_err(ManagerError::Invalid)?;
        }
        config::validate_stream(config)
            .and_then(|()| config::check_models(config, &self.models.configs()))
            .map_err(ManagerError::Invalid)?;
        // Python processors run code with framegate's rights: only the config file names them.
        let before: Vec<&config::ProcessorConfig> = inner
            .entries
            .get(config.id())
            .map(|e| e.config.processors.iter().collect())
            .unwrap_or_default();
        if config
            .processors
            .iter()
            .any(|p| matches!(p, config::ProcessorConfig::Python(_)) && !before.contains(&p))
        {
            return Err(ManagerError::Invalid(
                "processors: a `python` processor runs code with framegate's rights: it may be added or changed in the config file only, not through the API".into(),
            ));
        }
        let mut all: Vec<StreamConfig> = inner
            .entries
            .values()
            .filter(|e| e.config.id() != config.id())
            .map(|e| e.config.clone())
            .collect();
        all.push(config.clone());
        config::check_mounts(&all).map_err(|(_, m)| ManagerError::Invalid(m))
    }

    fn persist(&self, overlay: &Overlay) -> Result<(), ManagerError> {
        match &self.state_path {
            Some(p) => overlay
                .save(p)
                .map_err(|e| ManagerError::Persist(format!("{e:#}"))),
            None => Ok(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        crate::supervise::lock(&self.inner)
    }

    /// The change lock, for the whole of one change; refused once shutdown began.
    fn change(&self) -> Result<MutexGuard<'_, ()>, ManagerError> {
        let guard = crate::supervise::lock(&self.changes);
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ManagerError::ShuttingDown);
        }
        Ok(guard)
    }
}

/// Whether an API caller may use `path` as a `file://` source: only inside one of
/// `server.media_dirs` (after following links), and the error says nothing about whether the
/// file exists outside them.
fn media_file_allowed(path: &Path, dirs: &[PathBuf]) -> Result<(), String> {
    let refused = || {
        format!(
            "source: `file://` sources through the API must be inside server.media_dirs ({})",
            if dirs.is_empty() {
                "none configured".to_string()
            } else {
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )
    };
    let lexical = path.is_absolute()
        && !path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        && dirs.iter().any(|d| path.starts_with(d));
    if !lexical {
        return Err(refused());
    }
    // Links inside a media folder must not lead out of it.
    let real = path
        .canonicalize()
        .map_err(|_| format!("source: `{}` cannot be read", path.display()))?;
    let inside = dirs
        .iter()
        .filter_map(|d| d.canonicalize().ok())
        .any(|d| real.starts_with(d));
    if inside { Ok(()) } else { Err(refused()) }
}

/// `streams.toml` → `streams.api-state.toml`, next to it.
fn default_state_path(config: &Path) -> PathBuf {
    let stem = config
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "framegate".into());
    config.with_file_name(format!("{stem}.api-state.toml"))
}
