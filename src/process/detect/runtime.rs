//! Finding and loading ONNX Runtime (`libonnxruntime.so`, loaded at run time, once per process)
//! so that a user never has to set an environment variable: the configured path, then
//! `$ORT_DYLIB_PATH`, then `assets/onnxruntime/` beside or above the executable (where the set-up
//! script puts it), then the Python `onnxruntime` packages found on the machine. A GPU build
//! (`onnxruntime-gpu`) gets the CUDA and cuDNN libraries of NVIDIA's wheels loaded first
//! (`cuda_libs`), so that its CUDA provider needs no `LD_LIBRARY_PATH` either.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The loaded runtime.
#[derive(Debug)]
pub struct Runtime {
    /// The library file in use.
    pub library: PathBuf,
    /// The environment sessions are made in.
    pub env: ort::environment::Environment,
}

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// Loads ONNX Runtime the first time it is asked for; later calls return the same result (the
/// library cannot be changed without a restart).
pub fn get(configured: Option<&Path>) -> Result<&'static Runtime, String> {
    RUNTIME
        .get_or_init(|| {
            let library = find(configured)?;
            // A GPU build's CUDA provider finds the wheels' CUDA and cuDNN once they are loaded.
            super::cuda_libs::preload(&library);
            let env = ort::init_from(&library)
                .map_err(|e| format!("cannot load ONNX Runtime from `{}`: {e}", library.display()))?
                .with_name("framegate")
                .build()
                .map_err(|e| format!("ONNX Runtime from `{}`: {e}", library.display()))?;
            tracing::info!(library = %library.display(), "ONNX Runtime loaded");
            Ok(Runtime { library, env })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The library to load.
fn find(configured: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = configured {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(format!(
                "onnxruntime.library `{}` does not exist",
                p.display()
            ))
        };
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from) {
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("ORT_DYLIB_PATH `{}` does not exist", p.display()))
        };
    }
    let dirs = candidate_dirs();
    dirs.iter().find_map(|d| library_in(d)).ok_or_else(|| {
        format!(
            "ONNX Runtime not found: run scripts/setup-debian.sh (it puts the library in \
             target/assets/onnxruntime/), `pip install onnxruntime`, or set \
             [onnxruntime] library in the config (looked in: {})",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// Where to look, in order.
fn candidate_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = crate::assets::dirs()
        .into_iter()
        .map(|d| d.join("onnxruntime"))
        .collect();
    dirs.push(PathBuf::from("/usr/local/lib/framegate"));
    let mut prefixes: Vec<PathBuf> = Vec::new();
    if let Some(v) = std::env::var_os("VIRTUAL_ENV") {
        prefixes.push(PathBuf::from(v).join("lib"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        prefixes.push(PathBuf::from(home).join(".local/lib"));
    }
    prefixes.extend(["/usr/local/lib", "/usr/lib"].map(PathBuf::from));
    for prefix in prefixes {
        let Ok(entries) = std::fs::read_dir(&prefix) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with("python3") {
                for pkgs in ["site-packages", "dist-packages"] {
                    dirs.push(e.path().join(pkgs).join("onnxruntime/capi"));
                }
            }
        }
    }
    dirs
}

/// `libonnxruntime.so*` in a directory (the most specific name when there are several).
fn library_in(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("libonnxruntime.so"))
                && p.is_file()
        })
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    found.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_library_in_a_directory() {
        let dir = tempfile::tempdir().expect("dir");
        assert_eq!(library_in(dir.path()), None);
        std::fs::write(dir.path().join("libonnxruntime_providers_shared.so"), b"").expect("write");
        std::fs::write(dir.path().join("libonnxruntime.so.1.31.1"), b"").expect("write");
        assert_eq!(
            library_in(dir.path()),
            Some(dir.path().join("libonnxruntime.so.1.31.1"))
        );
    }

    #[test]
    fn a_configured_path_must_exist() {
        let e = find(Some(Path::new("/nonexistent/libonnxruntime.so"))).unwrap_err();
        assert!(e.contains("/nonexistent/libonnxruntime.so"), "{e}");
    }
}
