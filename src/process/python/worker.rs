//! The thread of one `python` processor: takes a frame, maps it, calls the user's function with
//! the GIL held only for the call, and hands the frame back: the same memory when Python kept no
//! view of it, a copy when it did (its views stay valid, on memory no one else uses).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

use gst_video::VideoInfo;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::memory::{Converters, FrameMemory, Mapped};
use crate::frame::{Detection, TrackBox};

/// A frame for the function.
pub(super) struct Job {
    pub buffer: gst::Buffer,
    pub info: VideoInfo,
    pub meta: CallMeta,
    /// Whether the frame comes back to the stream (else Python reads a reference in the
    /// background and the pixels it draws are not shown).
    pub in_place: bool,
}

/// What the function learns of a frame besides its pixels.
pub(super) struct CallMeta {
    pub stream: String,
    pub pts_ns: Option<u64>,
    pub capture_ms: u64,
    pub detections: Vec<Detection>,
    pub tracks: Option<Vec<TrackBox>>,
}

/// What a call gave.
pub(super) enum Outcome {
    /// The function returned: its results as JSON (none for `None`).
    Returned(Option<String>),
    /// It raised: a key naming the mistake and its place, and the traceback.
    Raised { key: String, traceback: String },
    /// framegate could not make the call (the frame could not be mapped...).
    Failed(String),
}

/// A finished call.
pub(super) struct Done {
    /// The frame (for an in-place job).
    pub buffer: Option<gst::Buffer>,
    pub outcome: Outcome,
    /// How long the call took.
    pub took: Duration,
    /// The source PTS of the frame, for the results.
    pub pts_ns: Option<u64>,
    /// Python kept a view of the frame's memory: the frame is a copy.
    pub retained: bool,
    /// The function drew on a copy of the frame's pixels (an in-place job whose pixels were
    /// also held elsewhere).
    pub copied: bool,
}

/// The user's function and how it is called.
pub(super) struct Callee {
    pub function: Arc<Py<PyAny>>,
    pub args: Option<serde_json::Map<String, serde_json::Value>>,
    pub draws: bool,
}

/// Takes frames until the processor goes (its sender is dropped). The thread keeps its Python
/// thread state for its life and lets go of the GIL while it waits, maps or hands back.
pub(super) fn run(callee: Callee, jobs: Receiver<Job>, done: Sender<Done>) {
    let served = super::interp::with_shim(|py, shim| serve(py, shim, &callee, jobs, &done));
    if served.is_none() {
        tracing::error!("python processor: the interpreter is not usable; frames pass untouched");
    }
}

fn serve(
    py: Python<'_>,
    shim: &Bound<'_, pyo3::types::PyModule>,
    callee: &Callee,
    jobs: Receiver<Job>,
    done: &Sender<Done>,
) {
    let converters = Arc::new(Converters::default());
    // Looked up once: the shim's `call` and `sys.getrefcount`.
    let looked_up = (|| -> PyResult<Tools> {
        Ok(Tools {
            call: shim.getattr("call")?.unbind(),
            getrefcount: py.import("sys")?.getattr("getrefcount")?.unbind(),
        })
    })();
    let Ok(tools) = looked_up else {
        tracing::error!("python processor: the interpreter is not usable; frames pass untouched");
        return;
    };
    let args = callee.args.as_ref().and_then(|a| {
        pythonize(py, &serde_json::Value::Object(a.clone()))
            .ok()
            .map(Bound::unbind)
    });
    // A receiver is not shared between threads: the lock lets the wait run without the GIL.
    let jobs = std::sync::Mutex::new(jobs);
    while let Ok(job) = py.detach(|| crate::supervise::lock(&jobs).recv()) {
        let started = Instant::now();
        let pts_ns = job.meta.pts_ns;
        let in_place = job.in_place;
        let copied = callee.draws && in_place && crate::frame::held_elsewhere(&job.buffer);
        let (buffer, outcome, retained) = call(py, callee, &tools, args.as_ref(), job, &converters);
        let out = Done {
            buffer: buffer.filter(|_| in_place),
            outcome,
            took: started.elapsed(),
            pts_ns,
            retained,
            copied,
        };
        if py.detach(|| done.send(out)).is_err() {
            break;
        }
    }
}

/// What every call uses, looked up once.
struct Tools {
    call: Py<PyAny>,
    getrefcount: Py<PyAny>,
}

fn call(
    py: Python<'_>,
    callee: &Callee,
    tools: &Tools,
    args: Option<&Py<PyAny>>,
    job: Job,
    converters: &Arc<Converters>,
) -> (Option<gst::Buffer>, Outcome, bool) {
    let Job {
        mut buffer,
        info,
        meta,
        in_place,
    } = job;
    let draws = callee.draws;
    let mapped = py.detach(|| {
        if draws {
            // Copy-on-write: only when another part of framegate still holds the pixels.
            buffer.make_mut();
            gst_video::VideoFrame::from_buffer_writable(buffer, &info).map(Mapped::Writable)
        } else {
            gst_video::VideoFrame::from_buffer_readable(buffer, &info).map(Mapped::Readable)
        }
    });
    let mapped = match mapped {
        Ok(m) => m,
        Err(b) => {
            return (
                Some(b),
                Outcome::Failed("cannot map the frame's memory".into()),
                false,
            );
        }
    };
    let memory = FrameMemory::new(mapped, &info, converters.clone());
    let result = (|| -> PyResult<_> {
        let memory = Py::new(py, memory)?;
        let getrefcount = tools.getrefcount.bind(py);
        let refs = || -> PyResult<isize> { getrefcount.call1((memory.bind(py),))?.extract() };
        // The references before the call: ours alone (however the count counts its argument).
        let alone = refs()?;
        let meta = meta_dict(py, &meta, &info)?;
        let r = tools.call.bind(py).call1((
            callee.function.bind(py),
            memory.bind(py),
            meta,
            args.map(|a| a.bind(py)),
        ));
        // Whatever happened, the frame goes back: the same memory when nothing in Python refers
        // to it any more, else a copy (Python's views stay valid).
        let retained = refs()? > alone;
        let m = memory.get();
        let buffer = match (retained, in_place) {
            (false, _) => m.take().map(Mapped::into_buffer),
            (true, true) => m.copy(),
            // Read in the background: the stream has its own reference, Python keeps this one.
            (true, false) => None,
        };
        let outcome =
            match r.and_then(|r| r.extract::<(Option<String>, Option<(String, String)>)>()) {
                Ok((_, Some((key, traceback)))) => Outcome::Raised { key, traceback },
                Ok((json, None)) => Outcome::Returned(json),
                Err(e) => Outcome::Failed(e.to_string()),
            };
        Ok((buffer, outcome, retained))
    })();
    match result {
        Ok((buffer, outcome, retained)) => (buffer, outcome, retained),
        Err(e) => (None, Outcome::Failed(e.to_string()), false),
    }
}

fn rect_list<'py>(py: Python<'py>, r: &crate::frame::Rect) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, [r.x, r.y, r.w, r.h])
}

/// The `meta` dict: stream, pts_ns, capture_ms, width, height, detections, tracks.
fn meta_dict<'py>(py: Python<'py>, m: &CallMeta, info: &VideoInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("stream", &m.stream)?;
    d.set_item("pts_ns", m.pts_ns)?;
    d.set_item("capture_ms", m.capture_ms)?;
    d.set_item("width", info.width())?;
    d.set_item("height", info.height())?;
    let dets = PyList::empty(py);
    for det in &m.detections {
        let x = PyDict::new(py);
        x.set_item("box", rect_list(py, &det.rect)?)?;
        x.set_item("label", &det.label)?;
        x.set_item("score", det.score)?;
        dets.append(x)?;
    }
    d.set_item("detections", dets)?;
    match &m.tracks {
        None => d.set_item("tracks", py.None())?,
        Some(tracks) => {
            let list = PyList::empty(py);
            for t in tracks {
                let x = PyDict::new(py);
                x.set_item("id", t.id)?;
                x.set_item("box", rect_list(py, &t.rect)?)?;
                x.set_item("label", &t.label)?;
                x.set_item("score", t.score)?;
                x.set_item("velocity", t.velocity.to_vec())?;
                x.set_item("age_s", t.age_s)?;
                list.append(x)?;
            }
            d.set_item("tracks", list)?;
        }
    }
    Ok(d)
}

/// A JSON value as Python objects (for `args`).
fn pythonize<'py>(py: Python<'py>, v: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    use pyo3::IntoPyObjectExt;
    use serde_json::Value;
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => b.into_bound_py_any(py)?,
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into_bound_py_any(py)?,
            None => n.as_f64().unwrap_or(0.0).into_bound_py_any(py)?,
        },
        Value::String(s) => s.into_bound_py_any(py)?,
        Value::Array(a) => {
            let l = PyList::empty(py);
            for x in a {
                l.append(pythonize(py, x)?)?;
            }
            l.into_any()
        }
        Value::Object(o) => {
            let d = PyDict::new(py);
            for (k, x) in o {
                d.set_item(k, pythonize(py, x)?)?;
            }
            d.into_any()
        }
    })
}
