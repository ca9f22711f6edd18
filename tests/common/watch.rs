//! A client that watches one RTSP output frame by frame (arrival time, brightness, width),
//! for tests that check what a viewer saw through a fault.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use gst::prelude::*;
use gst_video::prelude::*;

/// What a client watching one output saw, frame by frame: arrival time and mean luma.
pub struct Watcher {
    pub frames: Arc<Mutex<Vec<(Instant, f64)>>>,
    pub widths: Arc<Mutex<Vec<(Instant, u32)>>>,
    pub errors: Arc<AtomicU64>,
    pub eos: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    /// Opens `url` once and keeps reading it; never reconnects.
    pub fn open(url: &str) -> Self {
        gst::init().unwrap();
        let frames: Arc<Mutex<Vec<(Instant, f64)>>> = Arc::default();
        let widths: Arc<Mutex<Vec<(Instant, u32)>>> = Arc::default();
        let errors = Arc::new(AtomicU64::new(0));
        let eos = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let pipeline = gst::parse::launch(&format!(
            "rtspsrc location={url} protocols=tcp latency=200 ! decodebin ! videoconvert ! \
             video/x-raw,format=GRAY8 ! appsink name=sink sync=false"
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let sink = pipeline
            .by_name("sink")
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        let (f, wd) = (frames.clone(), widths.clone());
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
                    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(
                        sample.buffer().unwrap(),
                        &info,
                    )
                    .unwrap();
                    let (w, h, stride) = (
                        info.width() as usize,
                        info.height() as usize,
                        frame.plane_stride()[0] as usize,
                    );
                    let data = frame.plane_data(0).unwrap();
                    // Mean luma of the lower third, away from the slate's text.
                    let (mut sum, mut n) = (0u64, 0u64);
                    for row in (2 * h / 3)..h {
                        for v in &data[row * stride..row * stride + w] {
                            sum += *v as u64;
                            n += 1;
                        }
                    }
                    let now = Instant::now();
                    f.lock().unwrap().push((now, sum as f64 / n as f64));
                    wd.lock().unwrap().push((now, w as u32));
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        let (e, eo, st) = (errors.clone(), eos.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            pipeline.set_state(gst::State::Playing).unwrap();
            let bus = pipeline.bus().unwrap();
            while !st.load(Ordering::Relaxed) {
                match bus
                    .timed_pop(gst::ClockTime::from_mseconds(100))
                    .as_ref()
                    .map(|m| m.view())
                {
                    Some(gst::MessageView::Error(_)) => {
                        e.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(gst::MessageView::Eos(_)) => eo.store(true, Ordering::Relaxed),
                    _ => {}
                }
            }
            pipeline.set_state(gst::State::Null).unwrap();
        });
        Self {
            frames,
            widths,
            errors,
            eos,
            stop,
            thread: Some(thread),
        }
    }

    /// The first frame after `after` whose brightness satisfies `pred`.
    pub fn first_after(&self, after: Instant, pred: impl Fn(f64) -> bool) -> Option<Instant> {
        self.frames
            .lock()
            .unwrap()
            .iter()
            .find(|(t, l)| *t > after && pred(*l))
            .map(|(t, _)| *t)
    }

    /// Whether the session failed (an error or the end of the stream): it gets no more frames.
    pub fn failed(&self) -> bool {
        self.errors.load(Ordering::Relaxed) > 0 || self.eos.load(Ordering::Relaxed)
    }

    /// How many frames it has received.
    pub fn frame_count(&self) -> usize {
        self.frames.lock().unwrap().len()
    }

    /// Asserts that the client saw no error and no end of stream (`what` names the run).
    pub fn assert_clean(&self, what: &str) {
        assert_eq!(
            self.errors.load(Ordering::Relaxed),
            0,
            "{what}: the client saw an error"
        );
        assert!(
            !self.eos.load(Ordering::Relaxed),
            "{what}: the client saw the end of the stream"
        );
    }

    /// Frames received in the window [from, to).
    pub fn frames_between(&self, from: Instant, to: Instant) -> usize {
        self.frames
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .count()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The white test pattern is bright; the slate is dark grey.
pub fn is_live(luma: f64) -> bool {
    luma > 150.0
}
pub fn is_slate(luma: f64) -> bool {
    luma < 80.0
}
