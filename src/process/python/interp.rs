//! The embedded interpreter: started once per process (the system's libpython, with the venv of
//! `[python]` first on `sys.path`), and the users' files imported into it. A file is imported
//! again only when its content changed; the same content gives the same module, so that
//! checking a config and then running it executes a file's top level once.

use std::collections::HashMap;
use std::ffi::CString;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use pyo3::prelude::*;
use pyo3::types::PyModule;

use crate::supervise::lock;

const SHIM: &str = include_str!("shim.py");

/// framegate's side of the processors in Python (`shim.py`), once the interpreter runs.
struct Interpreter {
    shim: Py<PyModule>,
    /// The venv given at the start (a later one needs a restart).
    venv: Option<PathBuf>,
}

static INTERPRETER: OnceLock<Result<Interpreter, String>> = OnceLock::new();

/// The users' functions imported so far: by file and function, with the content they came from.
static LOADED: Mutex<Option<HashMap<(PathBuf, String), Loaded>>> = Mutex::new(None);

/// The content (hash) each file's running processors were started with.
static RUNNING: Mutex<Option<HashMap<PathBuf, u64>>> = Mutex::new(None);

/// Notes that processors now run `file` as of `hash` (see [`changed`]).
pub fn running(file: &Path, hash: u64) {
    lock(&RUNNING)
        .get_or_insert_with(HashMap::new)
        .insert(file.to_path_buf(), hash);
}

/// A user's function, imported.
#[derive(Clone)]
pub struct Loaded {
    /// The function.
    pub function: std::sync::Arc<Py<PyAny>>,
    /// A hash of the file's content when it was imported.
    pub hash: u64,
}

fn start(venv: Option<&Path>) -> Result<Interpreter, String> {
    Python::initialize();
    Python::attach(|py| {
        let code = CString::new(SHIM).map_err(|e| e.to_string())?;
        let shim = PyModule::from_code(py, &code, c"framegate_shim.py", c"_framegate_shim")
            .map_err(|e| format!("python: {e}"))?;
        if let Some(v) = venv {
            shim.getattr("setup")
                .and_then(|f| f.call1((v.to_string_lossy().into_owned(),)))
                .map_err(|e| e.value(py).to_string())?;
        }
        shim.getattr("start")
            .and_then(|f| f.call0())
            .map_err(|e| format!("python: numpy cannot be imported ({}): install python3-numpy, or numpy in python.venv", e.value(py)))?;
        Ok(Interpreter {
            shim: shim.unbind(),
            venv: venv.map(Path::to_path_buf),
        })
    })
}

/// Starts the interpreter (the first call decides the venv); an error says why it cannot run.
pub fn interpreter(venv: Option<&Path>) -> Result<(), String> {
    let i = INTERPRETER
        .get_or_init(|| start(venv))
        .as_ref()
        .map_err(Clone::clone)?;
    if i.venv.as_deref() != venv {
        tracing::warn!(
            "python.venv changed to {:?}: it takes effect at the next start",
            venv.map(Path::display)
        );
    }
    Ok(())
}

/// Calls `f` with the shim module (the interpreter must have been started).
pub fn with_shim<R>(f: impl FnOnce(Python<'_>, &Bound<'_, PyModule>) -> R) -> Option<R> {
    let i = INTERPRETER.get()?.as_ref().ok()?;
    Some(Python::attach(|py| f(py, i.shim.bind(py))))
}

fn content_hash(text: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// Imports `function` from `file` (again only if the file changed since it was last imported);
/// the error starts with `file:line:` where the file went wrong.
pub fn load(venv: Option<&Path>, file: &Path, function: &str) -> Result<Loaded, String> {
    interpreter(venv)?;
    let text = std::fs::read(file).map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
    let hash = content_hash(&text);
    let key = (file.to_path_buf(), function.to_string());
    let mut loaded = lock(&LOADED);
    let loaded = loaded.get_or_insert_with(HashMap::new);
    if let Some(l) = loaded.get(&key).filter(|l| l.hash == hash) {
        return Ok(l.clone());
    }
    let name = format!(
        "framegate_user_{:016x}",
        hash ^ content_hash(function.as_bytes())
    );
    let path = file.to_string_lossy().into_owned();
    let function_obj = with_shim(|py, shim| {
        shim.getattr("load")
            .and_then(|f| f.call1((path, name, function)))
            .map(Bound::unbind)
            .map_err(|e| e.value(py).to_string())
    })
    .ok_or("python: the interpreter is not running")??;
    let l = Loaded {
        function: std::sync::Arc::new(function_obj),
        hash,
    };
    loaded.insert(key, l.clone());
    Ok(l)
}

/// Whether `file` now differs from what its running processors were started with (false when
/// none runs it, or it is unreadable: a reload says why).
pub fn changed(file: &Path) -> bool {
    let Ok(text) = std::fs::read(file) else {
        return false;
    };
    let hash = content_hash(&text);
    lock(&RUNNING)
        .as_ref()
        .and_then(|m| m.get(file))
        .is_some_and(|&h| h != hash)
}
