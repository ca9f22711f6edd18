//! NVIDIA's CUDA and cuDNN libraries from their PyPI wheels (`onnxruntime-gpu[cuda,cudnn]`),
//! loaded before ONNX Runtime's CUDA provider asks for them, so that it finds them without
//! `LD_LIBRARY_PATH` (as the Python package's `preload_dlls` does): a library already loaded is
//! found by its soname. They are looked for in `nvidia/*/lib/` beside the ONNX Runtime library
//! (where the set-up script links them) or in its Python package's `site-packages/`.

use std::path::{Path, PathBuf};

/// What was loaded and what could not be.
#[derive(Debug, Default, PartialEq)]
pub struct Preloaded {
    /// Libraries loaded, in the order they were.
    pub loaded: Vec<PathBuf>,
    /// Libraries that would not load, with the last reason.
    pub failed: Vec<(PathBuf, String)>,
}

/// Why the CUDA libraries were not loaded, when the reason is the driver's absence.
static NO_DRIVER: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// What a CUDA provider failure should add: the driver's absence, if that was seen.
pub fn why_not() -> Option<&'static str> {
    NO_DRIVER.get().map(String::as_str)
}

/// Loads the CUDA and cuDNN libraries found for the ONNX Runtime at `library`, when it is a GPU
/// build and the machine has NVIDIA's driver; nothing otherwise.
pub fn preload(library: &Path) -> Preloaded {
    let Some(dir) = library.parent() else {
        return Preloaded::default();
    };
    if !dir.join("libonnxruntime_providers_cuda.so").exists() {
        return Preloaded::default();
    }
    // Without the driver there is no GPU to use: the CPU provider runs, nothing to load.
    if let Err(e) = open("libcuda.so.1".as_ref()) {
        tracing::info!("ONNX Runtime has a CUDA provider, but NVIDIA's driver is not here");
        let _ = NO_DRIVER.set(format!("NVIDIA's driver is not on this machine ({e})"));
        return Preloaded::default();
    }
    let files = wheel_libraries(dir);
    let done = load_all(files, open);
    for (file, why) in &done.failed {
        tracing::warn!(library = %file.display(), "a CUDA library would not load: {why}");
    }
    tracing::info!(
        loaded = done.loaded.len(),
        "CUDA and cuDNN libraries of the PyPI wheels loaded"
    );
    done
}

/// Opens a library for the rest of the process (never closed).
fn open(path: &Path) -> Result<(), String> {
    ort::util::preload_dylib(path).map_err(|e| e.to_string())
}

/// The library names worth loading: CUDA's runtime, cuBLAS, cuFFT, cuRAND, NVRTC, nvJitLink and
/// cuDNN (with its engine libraries, which it opens by name).
fn wanted(name: &str) -> bool {
    const STEMS: [&str; 9] = [
        "libcudart.so",
        "libcublasLt.so",
        "libcublas.so",
        "libcufft.so",
        "libcurand.so",
        "libnvrtc.so",
        "libnvrtc-builtins.so",
        "libnvJitLink.so",
        "libcudnn",
    ];
    name.contains(".so") && STEMS.iter().any(|s| name.starts_with(s))
}

/// The wanted libraries in `nvidia/*/lib/` beside `dir` or two levels up (the `site-packages`
/// of a Python `onnxruntime/capi/`), sorted by path so that loading is repeatable.
fn wheel_libraries(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for root in [dir.join("nvidia"), dir.join("../../nvidia")] {
        let Ok(packages) = std::fs::read_dir(&root) else {
            continue;
        };
        for package in packages.flatten() {
            let Ok(entries) = std::fs::read_dir(package.path().join("lib")) else {
                continue;
            };
            files.extend(
                entries
                    .flatten()
                    .filter(|e| wanted(&e.file_name().to_string_lossy()))
                    .map(|e| e.path()),
            );
        }
        if !files.is_empty() {
            break;
        }
    }
    files.sort();
    files
}

/// Loads every file, in passes: one that fails because a library it needs is not loaded yet is
/// tried again after the others, until a pass loads nothing more.
fn load_all(
    mut pending: Vec<PathBuf>,
    mut open: impl FnMut(&Path) -> Result<(), String>,
) -> Preloaded {
    let mut done = Preloaded::default();
    loop {
        let before = done.loaded.len();
        let mut failed = Vec::new();
        for file in std::mem::take(&mut pending) {
            match open(&file) {
                Ok(()) => done.loaded.push(file),
                Err(why) => failed.push((file, why)),
            }
        }
        if failed.is_empty() || done.loaded.len() == before {
            done.failed = failed;
            return done;
        }
        pending = failed.into_iter().map(|(f, _)| f).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_wheels_libraries_beside_the_library_or_in_its_site_packages() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let site = tmp.path().join("site-packages");
        let capi = site.join("onnxruntime/capi");
        std::fs::create_dir_all(&capi).expect("mkdir");
        for (dir, name) in [
            ("nvidia/cu13/lib", "libcudart.so.13"),
            ("nvidia/cu13/lib", "libcublas.so.13"),
            ("nvidia/cu13/lib", "libcublasLt.so.13"),
            ("nvidia/cu13/lib", "libnvblas.so.13"),
            ("nvidia/cudnn/lib", "libcudnn.so.9"),
            ("nvidia/cudnn/lib", "libcudnn_graph.so.9"),
            ("nvidia/cudnn/include", "cudnn.h"),
        ] {
            std::fs::create_dir_all(site.join(dir)).expect("mkdir");
            std::fs::write(site.join(dir).join(name), b"").expect("write");
        }
        let names = |files: Vec<PathBuf>| -> Vec<String> {
            files
                .iter()
                .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        let expected = [
            "libcublas.so.13",
            "libcublasLt.so.13",
            "libcudart.so.13",
            "libcudnn.so.9",
            "libcudnn_graph.so.9",
        ];
        assert_eq!(names(wheel_libraries(&capi)), expected);
        // The set-up script's layout: `nvidia` linked beside the copied library.
        let assets = tmp.path().join("assets/onnxruntime");
        std::fs::create_dir_all(&assets).expect("mkdir");
        std::os::unix::fs::symlink(site.join("nvidia"), assets.join("nvidia")).expect("link");
        assert_eq!(names(wheel_libraries(&assets)), expected);
        assert!(wheel_libraries(tmp.path()).is_empty());
    }

    #[test]
    fn a_library_whose_dependency_comes_later_loads_in_a_second_pass() {
        // cublas needs cublasLt, which sorts after it; a library that never loads is reported.
        let files: Vec<PathBuf> = ["a/libcublas.so.13", "a/libcublasLt.so.13", "a/libbroken.so"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let mut loaded: Vec<String> = Vec::new();
        let done = load_all(files, |p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let ok = match name.as_str() {
                "libcublas.so.13" => loaded.iter().any(|l| l == "libcublasLt.so.13"),
                "libcublasLt.so.13" => true,
                _ => false,
            };
            if ok {
                loaded.push(name);
                Ok(())
            } else {
                Err(format!("{name}: cannot open"))
            }
        });
        assert_eq!(
            done.loaded,
            [
                PathBuf::from("a/libcublasLt.so.13"),
                PathBuf::from("a/libcublas.so.13")
            ]
        );
        assert_eq!(done.failed.len(), 1);
        assert_eq!(done.failed[0].0, PathBuf::from("a/libbroken.so"));
    }

    #[test]
    fn nothing_is_loaded_for_a_cpu_build() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let lib = tmp.path().join("libonnxruntime.so.1.31.1");
        std::fs::write(&lib, b"").expect("write");
        assert_eq!(preload(&lib), Preloaded::default());
    }
}
