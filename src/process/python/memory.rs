//! A frame's memory as Python sees it: the mapped GStreamer buffer, owned by a Python object so
//! that a numpy array over a plane keeps the plane alive however long the user's code keeps it.
//! The planes are described to numpy by address, shape and strides (`__array_interface__`): no
//! copy. `to_bgr` and `from_bgr` convert with GStreamer's video converter.

use std::sync::{Arc, Mutex};

use gst_video::prelude::*;
use gst_video::video_frame::{Readable, Writable};
use gst_video::{VideoConverter, VideoFormat, VideoFrame, VideoInfo};
use pyo3::exceptions::{PyIndexError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::supervise::lock;

/// The mapped frame: writable when the processor draws, read-only otherwise.
pub(super) enum Mapped {
    Writable(VideoFrame<Writable>),
    Readable(VideoFrame<Readable>),
}

impl Mapped {
    /// Plane `i` and its stride.
    fn plane(&self, i: u32) -> Option<(&[u8], i32)> {
        match self {
            Self::Writable(f) => f
                .plane_data(i)
                .ok()
                .map(|d| (d, f.plane_stride()[i as usize])),
            Self::Readable(f) => f
                .plane_data(i)
                .ok()
                .map(|d| (d, f.plane_stride()[i as usize])),
        }
    }

    /// The pixels back as a buffer (no copy).
    pub(super) fn into_buffer(self) -> gst::Buffer {
        match self {
            Self::Writable(f) => f.into_buffer(),
            Self::Readable(f) => f.into_buffer(),
        }
    }

    fn buffer(&self) -> &gst::BufferRef {
        match self {
            Self::Writable(f) => f.buffer(),
            Self::Readable(f) => f.buffer(),
        }
    }
}

/// Converters between the frames' layout and BGR, made once per layout (on the processor's
/// thread, they are reused frame after frame).
#[derive(Default)]
pub(super) struct Converters {
    to_bgr: Mutex<Option<Converter>>,
    from_bgr: Mutex<Option<Converter>>,
}

/// A converter and the layouts it converts between.
type Converter = (VideoInfo, VideoInfo, VideoConverter);

/// A frame converted to BGR, in memory of its own that numpy arrays view (`frame.bgr()`).
#[pyclass(module = "_framegate", name = "BgrPicture", frozen)]
pub struct BgrPicture {
    frame: Mutex<VideoFrame<Writable>>,
}

#[pymethods]
impl BgrPicture {
    /// numpy's description of the picture: HxWx3, C-contiguous, writable.
    fn interface<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let mut f = lock(&self.frame);
        let (w, h) = (f.width() as usize, f.height() as usize);
        let data = f
            .plane_data_mut(0)
            .map_err(|_| PyRuntimeError::new_err("cannot map the picture"))?;
        if data.len() < w * h * 3 {
            return Err(PyRuntimeError::new_err(
                "the picture is smaller than its layout",
            ));
        }
        let d = PyDict::new(py);
        d.set_item("shape", (h, w, 3))?;
        d.set_item("strides", (w * 3, 3, 1))?;
        d.set_item("typestr", "|u1")?;
        d.set_item("data", (data.as_mut_ptr() as usize, false))?;
        d.set_item("version", 3)?;
        Ok(d)
    }
}

/// A frame's memory, shared with Python.
#[pyclass(module = "_framegate", name = "FrameMemory", frozen)]
pub struct FrameMemory {
    mapped: Mutex<Option<Mapped>>,
    info: VideoInfo,
    converters: Arc<Converters>,
    /// Width in pixels.
    #[pyo3(get)]
    width: u32,
    /// Height in pixels.
    #[pyo3(get)]
    height: u32,
    /// `I420` or `NV12`.
    #[pyo3(get)]
    format: &'static str,
    /// Whether the planes may be written.
    #[pyo3(get)]
    writable: bool,
}

impl FrameMemory {
    pub(super) fn new(mapped: Mapped, info: &VideoInfo, converters: Arc<Converters>) -> Self {
        let writable = matches!(mapped, Mapped::Writable(_));
        Self {
            mapped: Mutex::new(Some(mapped)),
            info: info.clone(),
            converters,
            width: info.width(),
            height: info.height(),
            format: if info.format() == VideoFormat::Nv12 {
                "NV12"
            } else {
                "I420"
            },
            writable,
        }
    }

    /// Takes the mapping back (when no Python object refers to the memory any more).
    pub(super) fn take(&self) -> Option<Mapped> {
        lock(&self.mapped).take()
    }

    /// A copy of the pixels in a new buffer of the frame's layout, with its timestamps (for when
    /// Python keeps views of the memory after its call).
    pub(super) fn copy(&self) -> Option<gst::Buffer> {
        let guard = lock(&self.mapped);
        let mapped = guard.as_ref()?;
        let info = &self.info;
        let mut out = gst::Buffer::with_size(info.size()).ok()?;
        {
            let dst = out.get_mut()?;
            let src = mapped.buffer();
            dst.set_pts(src.pts());
            dst.set_dts(src.dts());
            dst.set_duration(src.duration());
            let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(dst, info).ok()?;
            for p in 0..info.n_planes() {
                let (src, src_stride) = mapped.plane(p)?;
                let dst_stride = frame.plane_stride()[p as usize] as usize;
                let rows = plane_rows(info, p);
                let row = (info.comp_width(p.min(2) as u8) as usize)
                    * if p == 1 && info.format() == VideoFormat::Nv12 {
                        2
                    } else {
                        1
                    };
                let dst = frame.plane_data_mut(p).ok()?;
                for r in 0..rows {
                    let (s, d) = (r * src_stride as usize, r * dst_stride);
                    dst.get_mut(d..d + row)?
                        .copy_from_slice(src.get(s..s + row)?);
                }
            }
        }
        Some(out)
    }

    fn converter(
        &self,
        slot: &Mutex<Option<Converter>>,
        from: &VideoInfo,
        to: &VideoInfo,
        f: impl FnOnce(&VideoConverter),
    ) -> PyResult<()> {
        let mut slot = lock(slot);
        if slot.as_ref().is_none_or(|(a, b, _)| a != from || b != to) {
            let c = VideoConverter::new(from, to, None)
                .map_err(|e| PyRuntimeError::new_err(format!("no converter: {e}")))?;
            *slot = Some((from.clone(), to.clone(), c));
        }
        let (_, _, c) = slot.as_ref().expect("made above");
        f(c);
        Ok(())
    }

    /// The layout of an HxWx3 C-contiguous BGR numpy array.
    fn bgr_info(&self) -> PyResult<VideoInfo> {
        let stride = [(self.width * 3) as i32];
        VideoInfo::builder(VideoFormat::Bgr, self.width, self.height)
            .fps(self.info.fps())
            .stride(&stride)
            .offset(&[0])
            .build()
            .map_err(|e| PyRuntimeError::new_err(format!("BGR layout: {e}")))
    }
}

/// Rows of plane `p`.
fn plane_rows(info: &VideoInfo, p: u32) -> usize {
    info.comp_height(p.min(2) as u8) as usize
}

#[pymethods]
impl FrameMemory {
    /// numpy's description of plane `i`: address, shape, strides, read-only flag.
    fn interface<'py>(&self, py: Python<'py>, i: u32) -> PyResult<Bound<'py, PyDict>> {
        if i >= self.info.n_planes() {
            return Err(PyIndexError::new_err(format!("no plane {i}")));
        }
        let guard = lock(&self.mapped);
        let mapped = guard
            .as_ref()
            .ok_or_else(|| PyValueError::new_err("this frame has gone on to the outputs"))?;
        let (data, stride) = mapped
            .plane(i)
            .ok_or_else(|| PyRuntimeError::new_err("cannot map the plane"))?;
        let (ptr, len) = (data.as_ptr(), data.len());
        let rows = plane_rows(&self.info, i);
        let cols = self.info.comp_width(i.min(2) as u8) as usize;
        let nv12_uv = i == 1 && self.info.format() == VideoFormat::Nv12;
        let step = if nv12_uv { 2 } else { 1 };
        // The array must lie inside the plane.
        if stride <= 0 || rows == 0 || (rows - 1) * stride as usize + cols * step > len {
            return Err(PyRuntimeError::new_err(
                "the plane is smaller than its layout",
            ));
        }
        let d = PyDict::new(py);
        if nv12_uv {
            d.set_item("shape", (rows, cols, 2))?;
            d.set_item("strides", (stride as isize, 2isize, 1isize))?;
        } else {
            d.set_item("shape", (rows, cols))?;
            d.set_item("strides", (stride as isize, 1isize))?;
        }
        d.set_item("typestr", "|u1")?;
        d.set_item("data", (ptr as usize, !self.writable))?;
        d.set_item("version", 3)?;
        Ok(d)
    }

    /// The frame converted to BGR, in a picture of its own.
    fn to_bgr(&self, py: Python<'_>) -> PyResult<BgrPicture> {
        let bgr = self.bgr_info()?;
        let buffer = gst::Buffer::with_size(bgr.size())
            .map_err(|e| PyRuntimeError::new_err(format!("BGR picture: {e}")))?;
        let mut dst = VideoFrame::from_buffer_writable(buffer, &bgr)
            .map_err(|_| PyRuntimeError::new_err("cannot map the BGR picture"))?;
        let guard = lock(&self.mapped);
        let src = guard
            .as_ref()
            .ok_or_else(|| PyValueError::new_err("this frame has gone on to the outputs"))?;
        // The pixel work runs without the GIL.
        py.detach(|| {
            self.converter(&self.converters.to_bgr, &self.info, &bgr, |c| match src {
                Mapped::Writable(s) => c.frame(s, &mut dst),
                Mapped::Readable(s) => c.frame(s, &mut dst),
            })
        })?;
        Ok(BgrPicture {
            frame: Mutex::new(dst),
        })
    }

    /// Writes a BGR picture into the frame: `picture` (what `to_bgr` made, no copy) or, when
    /// it is None, `array` (any object with an HxWx3 uint8 buffer, read once).
    fn write_bgr(
        &self,
        py: Python<'_>,
        picture: Option<&Bound<'_, BgrPicture>>,
        array: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let bgr = self.bgr_info()?;
        let mut guard = lock(&self.mapped);
        let Some(Mapped::Writable(dst)) = guard.as_mut() else {
            return Err(PyValueError::new_err(
                "this frame is read-only (draws = false)",
            ));
        };
        let info = self.info.clone();
        match (picture, array) {
            (Some(p), _) => {
                let src = lock(&p.get().frame);
                if src.info() != &bgr {
                    return Err(PyValueError::new_err(
                        "the picture is of another frame size",
                    ));
                }
                py.detach(|| {
                    self.converter(&self.converters.from_bgr, &bgr, &info, |c| {
                        c.frame(&*src, dst)
                    })
                })
            }
            (None, Some(a)) => {
                let view = pyo3::buffer::PyBuffer::<u8>::get(a)?;
                if view.item_count() != bgr.size() {
                    return Err(PyValueError::new_err(
                        "not an HxWx3 uint8 array of the frame's size",
                    ));
                }
                let mut buffer = gst::Buffer::with_size(bgr.size())
                    .map_err(|e| PyRuntimeError::new_err(format!("BGR picture: {e}")))?;
                {
                    let b = buffer.get_mut().expect("a new buffer is writable");
                    let mut map = b
                        .map_writable()
                        .map_err(|_| PyRuntimeError::new_err("cannot map the BGR picture"))?;
                    view.copy_to_slice(py, map.as_mut_slice())?;
                }
                let src = VideoFrame::from_buffer_readable(buffer, &bgr)
                    .map_err(|_| PyRuntimeError::new_err("cannot map the BGR picture"))?;
                py.detach(|| {
                    self.converter(&self.converters.from_bgr, &bgr, &info, |c| {
                        c.frame(&src, dst)
                    })
                })
            }
            (None, None) => Err(PyValueError::new_err("nothing to write")),
        }
    }
}
