//! A detection model: one ONNX Runtime session per model per process, run on its own thread
//! through the batcher, shared by every stream whose `detect` processor names it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use ort::environment::Environment;
use ort::ep::ExecutionProvider;
use ort::session::Session;
use ort::value::TensorRef;
use schemars::JsonSchema;
use serde::Serialize;

use crate::config::{Config, ModelConfig, ModelFormat, ModelProvider};
use crate::supervise::lock;

use super::batcher::{Backend, Batcher, Output, Prepare, Reply};
use super::preprocess::InputSpec;

/// Sessions created in this process (a model loaded twice would show here).
static SESSIONS: AtomicU64 = AtomicU64::new(0);

/// A loaded model.
pub struct Model {
    config: ModelConfig,
    labels: Arc<Vec<String>>,
    spec: InputSpec,
    provider: &'static str,
    dynamic_batch: bool,
    threads: usize,
    library: PathBuf,
    batcher: Batcher,
}

/// What the API and metrics show of a model.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ModelStatus {
    /// Its `[[models]]` id.
    pub id: String,
    /// `centernet` or `yolo`.
    pub format: ModelFormat,
    /// Where it runs: `cpu` or `cuda`.
    pub provider: String,
    /// Input width and height.
    pub input: [usize; 2],
    /// Whether inputs of a batch run as one (a model with a dynamic batch size) or one after
    /// another (batch size fixed at 1 in the file).
    pub batched: bool,
    /// CPU threads of the session.
    pub threads: usize,
    /// Batches run.
    pub batches: u64,
    /// Frames run.
    pub inputs: u64,
    /// Frames whose run failed.
    pub failures: u64,
    /// Panics caught in pre-processing or a run (the model's thread goes on after each).
    pub panics: u64,
    /// Times the model's loop was started again after a panic elsewhere in it (its inputs
    /// then were answered with an error).
    pub restarts: u64,
    /// Largest batch so far.
    pub largest_batch: u64,
    /// Mean time of one batch's run, milliseconds.
    pub mean_batch_ms: f64,
    /// Mean time one input's pre-processing took (on the preparing thread, while the batch
    /// before runs), milliseconds.
    pub mean_prepare_ms: f64,
    /// Mean time a frame waited for its batch, milliseconds.
    pub mean_wait_ms: f64,
    /// Frames waiting now.
    pub queued: usize,
    /// ONNX Runtime sessions created in this process, for all models.
    pub sessions_in_process: u64,
    /// The ONNX Runtime library in use.
    pub library: String,
}

impl Model {
    /// Loads a model (and ONNX Runtime, the first time).
    pub fn load(config: &ModelConfig, library: Option<&Path>) -> Result<Arc<Self>> {
        let runtime = super::runtime::get(library).map_err(anyhow::Error::msg)?;
        let labels = Arc::new(super::labels::load(&config.labels)?);
        let threads = config.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, |n| (n.get() / 4).max(1))
        });
        let (session, provider) = open(&runtime.env, config, threads)?;
        SESSIONS.fetch_add(1, Ordering::Relaxed);
        let (input_name, dims) = first_input(&session)?;
        let (spec, dynamic_batch) = input_spec(config, &dims)?;
        let output_name = pick_output(&session, config.format);
        tracing::info!(
            model = %config.id,
            provider,
            threads,
            input = ?dims,
            output = %output_name,
            batch = if dynamic_batch { "dynamic" } else { "fixed at 1: gathered frames run one after another" },
            "model loaded from {}",
            config.path.display()
        );
        let backend = OrtBackend {
            session,
            input_name,
            output_name,
            spec,
            dynamic_batch,
        };
        let batcher = Batcher::start(
            &config.id,
            Box::new(backend),
            config.max_batch,
            Duration::from_millis(config.max_wait_ms),
        );
        Ok(Arc::new(Self {
            config: config.clone(),
            labels,
            spec,
            provider,
            dynamic_batch,
            threads,
            library: runtime.library.clone(),
            batcher,
        }))
    }

    /// Its config.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Its class names.
    pub fn labels(&self) -> &Arc<Vec<String>> {
        &self.labels
    }

    /// What its input looks like.
    pub fn spec(&self) -> &InputSpec {
        &self.spec
    }

    /// `cpu` or `cuda`.
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// Queues one frame's input (made by `prepare` on the model's thread); `reply` gets the
    /// output there too.
    pub fn submit(&self, prepare: Prepare, reply: Reply) {
        self.batcher.submit(prepare, reply);
    }

    /// (panics caught, loop restarts): what a stream using the model shows of its health.
    pub fn health(&self) -> (u64, u64) {
        let s = self.batcher.stats();
        (
            s.panics.load(Ordering::Relaxed),
            s.restarts.load(Ordering::Relaxed),
        )
    }

    /// Counters and settings.
    pub fn status(&self) -> ModelStatus {
        let s = self.batcher.stats();
        let batches = s.batches.load(Ordering::Relaxed);
        let inputs = s.inputs.load(Ordering::Relaxed);
        let ms = |ns: &AtomicU64, n: u64| ns.load(Ordering::Relaxed) as f64 / 1e6 / n.max(1) as f64;
        ModelStatus {
            id: self.config.id.clone(),
            format: self.config.format,
            provider: self.provider.to_string(),
            input: [self.spec.width, self.spec.height],
            batched: self.dynamic_batch,
            threads: self.threads,
            batches,
            inputs,
            failures: s.failures.load(Ordering::Relaxed),
            panics: s.panics.load(Ordering::Relaxed),
            restarts: s.restarts.load(Ordering::Relaxed),
            largest_batch: s.largest.load(Ordering::Relaxed),
            mean_batch_ms: ms(&s.busy_ns, batches),
            mean_prepare_ms: ms(&s.prepare_ns, inputs),
            mean_wait_ms: ms(&s.wait_ns, inputs),
            queued: self.batcher.queued(),
            sessions_in_process: SESSIONS.load(Ordering::Relaxed),
            library: self.library.display().to_string(),
        }
    }
}

/// Opens the session on the provider the config asks for.
fn open(
    env: &Environment,
    config: &ModelConfig,
    threads: usize,
) -> Result<(Session, &'static str)> {
    let cpu = || {
        cpu_session(env, &config.path, threads).with_context(|| {
            format!(
                "model `{}`: cannot load `{}`",
                config.id,
                config.path.display()
            )
        })
    };
    if config.provider == ModelProvider::Cpu {
        return Ok((cpu()?, "cpu"));
    }
    if ort::ep::CUDA::is_available().unwrap_or(false) {
        match cuda_session(env, &config.path, threads, config.device) {
            Ok(s) => return Ok((s, "cuda")),
            Err(e) if config.provider == ModelProvider::Cuda => match super::cuda_libs::why_not() {
                Some(why) => {
                    anyhow::bail!("model `{}`: the CUDA provider failed: {why}", config.id)
                }
                None => anyhow::bail!("model `{}`: the CUDA provider failed: {e}", config.id),
            },
            Err(e) => {
                tracing::warn!(model = %config.id, "CUDA provider unusable, running on the CPU: {e}")
            }
        }
    } else if config.provider == ModelProvider::Cuda {
        anyhow::bail!(
            "model `{}`: provider = \"cuda\", but this ONNX Runtime has no CUDA provider \
             (install the onnxruntime-gpu package)",
            config.id
        );
    }
    Ok((cpu()?, "cpu"))
}

fn cpu_session(env: &Environment, path: &Path, threads: usize) -> ort::Result<Session> {
    Session::builder(env)?
        .with_intra_threads(threads)?
        .with_inter_threads(1)?
        // Idle model threads sleep instead of spinning, leaving the cores to the video.
        .with_intra_op_spinning(false)?
        .commit_from_file(path)
}

fn cuda_session(
    env: &Environment,
    path: &Path,
    threads: usize,
    device: u32,
) -> ort::Result<Session> {
    // cuDNN's heuristic choice of convolution algorithms: the default exhaustive search
    // benchmarks every algorithm on the first run of each shape (seconds, and memory) while
    // streams wait for their first detections.
    let cuda = ort::ep::CUDA::default()
        .with_device_id(device as i32)
        .with_conv_algorithm_search(ort::ep::cuda::ConvAlgorithmSearch::Heuristic);
    Session::builder(env)?
        .with_intra_threads(threads)?
        .with_intra_op_spinning(false)?
        .with_execution_providers([cuda.build().error_on_failure()])?
        .commit_from_file(path)
}

/// Name and dimensions (-1 where dynamic) of the model's first input.
fn first_input(session: &Session) -> Result<(String, Vec<i64>)> {
    let input = session.inputs().first().context("the model has no input")?;
    let dims = input
        .dtype()
        .tensor_shape()
        .map(|s| s.iter().copied().collect::<Vec<i64>>())
        .context("the model's input is not a tensor")?;
    Ok((input.name().to_string(), dims))
}

/// The input layout from its dimensions: `[B, H, W, 3]` or `[B, 3, H, W]`.
fn input_spec(config: &ModelConfig, dims: &[i64]) -> Result<(InputSpec, bool)> {
    anyhow::ensure!(
        dims.len() == 4,
        "model `{}`: input {dims:?} is not 4-D",
        config.id
    );
    let size = |d: i64| {
        if d > 0 {
            d as usize
        } else {
            config.input_size as usize
        }
    };
    let (nhwc, h, w) = if dims[3] == 3 {
        (true, size(dims[1]), size(dims[2]))
    } else if dims[1] == 3 {
        (false, size(dims[2]), size(dims[3]))
    } else {
        anyhow::bail!(
            "model `{}`: input {dims:?} has no 3-channel axis",
            config.id
        );
    };
    let yolo = config.format == ModelFormat::Yolo;
    Ok((
        InputSpec {
            width: w,
            height: h,
            nhwc,
            scale: if yolo { 1.0 / 255.0 } else { 1.0 },
            letterbox: yolo,
        },
        dims[0] < 0,
    ))
}

/// The output holding the boxes: for CenterNet the one whose last axis is 6, else the first.
fn pick_output(session: &Session, format: ModelFormat) -> String {
    let outputs = session.outputs();
    let six = |o: &&ort::value::Outlet| {
        o.dtype()
            .tensor_shape()
            .is_some_and(|s| s.last() == Some(&6))
    };
    let chosen = match format {
        ModelFormat::Centernet => outputs.iter().find(six).or(outputs.first()),
        ModelFormat::Yolo => outputs.first(),
    };
    chosen.map(|o| o.name().to_string()).unwrap_or_default()
}

/// Runs batches on an ONNX Runtime session.
struct OrtBackend {
    session: Session,
    input_name: String,
    output_name: String,
    spec: InputSpec,
    dynamic_batch: bool,
}

impl OrtBackend {
    fn shape(&self, batch: usize) -> [i64; 4] {
        let (h, w) = (self.spec.height as i64, self.spec.width as i64);
        if self.spec.nhwc {
            [batch as i64, h, w, 3]
        } else {
            [batch as i64, 3, h, w]
        }
    }

    /// Runs one tensor of `batch` inputs; returns the output split per input.
    fn run_tensor(&mut self, batch: usize, data: &[f32]) -> Result<Vec<Output>> {
        let shape = self.shape(batch);
        let tensor = TensorRef::from_array_view((shape, data))?;
        let outputs = self
            .session
            .run(ort::inputs![self.input_name.as_str() => tensor])?;
        let value = outputs
            .get(self.output_name.as_str())
            .with_context(|| format!("no output `{}`", self.output_name))?;
        let (dims, values) = value.try_extract_tensor::<f32>()?;
        let dims: Vec<i64> = dims.iter().copied().collect();
        let per = values.len() / batch.max(1);
        let mut one = dims.clone();
        if let Some(b) = one.first_mut() {
            *b = 1;
        }
        Ok(values
            .chunks_exact(per.max(1))
            .take(batch)
            .map(|c| Output {
                dims: one.clone(),
                data: c.to_vec(),
            })
            .collect())
    }
}

impl Backend for OrtBackend {
    fn run(&mut self, inputs: &[&[f32]]) -> Result<Vec<Output>> {
        if self.dynamic_batch && inputs.len() > 1 {
            let data: Vec<f32> = inputs.concat();
            return self.run_tensor(inputs.len(), &data);
        }
        let mut out = Vec::with_capacity(inputs.len());
        for i in inputs {
            out.extend(self.run_tensor(1, i)?);
        }
        Ok(out)
    }
}

/// The models of the config, each loaded once on first use and shared.
#[derive(Default)]
pub struct Models {
    library: Mutex<Option<PathBuf>>,
    configs: Mutex<Vec<ModelConfig>>,
    loaded: Mutex<HashMap<String, Arc<Model>>>,
}

impl Models {
    /// The models a config declares (none loaded yet).
    pub fn new(config: &Config) -> Self {
        Self {
            library: Mutex::new(config.onnxruntime.library.clone()),
            configs: Mutex::new(config.models.clone()),
            loaded: Mutex::default(),
        }
    }

    /// The model with this id, loading it the first time.
    pub fn get(&self, id: &str) -> Result<Arc<Model>, String> {
        let mut loaded = lock(&self.loaded);
        if let Some(m) = loaded.get(id) {
            return Ok(m.clone());
        }
        let config = lock(&self.configs)
            .iter()
            .find(|m| m.id == id)
            .cloned()
            .ok_or_else(|| format!("no model `{id}` in the config"))?;
        let library = lock(&self.library).clone();
        let model = Model::load(&config, library.as_deref()).map_err(|e| format!("{e:#}"))?;
        loaded.insert(id.to_string(), model.clone());
        Ok(model)
    }

    /// Takes a new config; returns the ids of models whose settings changed (the streams using
    /// them must restart to pick up the new one).
    pub fn update(&self, config: &Config) -> Vec<String> {
        let mut configs = lock(&self.configs);
        let changed: Vec<String> = configs
            .iter()
            .filter(|old| !config.models.contains(old))
            .map(|m| m.id.clone())
            .collect();
        let mut loaded = lock(&self.loaded);
        for id in &changed {
            loaded.remove(id);
        }
        *configs = config.models.clone();
        *lock(&self.library) = config.onnxruntime.library.clone();
        changed
    }

    /// The models of the config (loaded or not).
    pub fn configs(&self) -> Vec<ModelConfig> {
        lock(&self.configs).clone()
    }

    /// The loaded models' status, by id.
    pub fn statuses(&self) -> Vec<ModelStatus> {
        let mut all: Vec<ModelStatus> = lock(&self.loaded).values().map(|m| m.status()).collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_batch: usize) -> Config {
        toml::from_str(&format!(
            "[[models]]\nid = \"coco\"\npath = \"m.onnx\"\nformat = \"centernet\"\nmax_batch = {max_batch}\n\
             [[models]]\nid = \"other\"\npath = \"o.onnx\"\nformat = \"yolo\"\n"
        ))
        .expect("config")
    }

    #[test]
    fn a_reload_names_the_models_that_changed() {
        let models = Models::new(&config(8));
        assert!(models.update(&config(8)).is_empty());
        assert_eq!(models.update(&config(4)), ["coco"]);
        assert_eq!(models.configs()[0].max_batch, 4);
        let Err(e) = models.get("missing") else {
            panic!("a model that is not configured loaded")
        };
        assert!(e.contains("no model `missing`"), "{e}");
    }
}
