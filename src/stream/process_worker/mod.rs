//! The processing worker of one stream: takes the newest decoded frame, runs the processors,
//! and hands the frame to the encoder (`process`), or, while the camera's own video passes
//! through, only to the processors and the browsers' pictures. Around it: the gap filler keeps the output's
//! frame rate while no frame comes (`gap`: the last frame, then the NO SIGNAL slate) and follows
//! the encoder through its restarts; the meters keep the rates and the periodic summary
//! (`meters`). Output housekeeping (idle HLS, vanished WebRTC peers) runs on the stream's own
//! housekeeping thread, never here.

mod gap;
mod meters;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use crate::audio::AudioTrack;
use crate::config::StreamId;
use crate::encode::Supervised;
use crate::frame::{Frame, FrameTap, LatestSlot, SlotRecv, TappedFrame};
use crate::process::Chain;
use crate::publish::{Fanout, VideoSwitch};

use super::{StateCell, StreamStats};
use gap::GapFiller;
use meters::Meters;

/// How long the worker waits for a frame before it looks at its other duties.
const POLL: Duration = Duration::from_millis(200);
/// How long the encoder gets to flush at the end.
const FINISH_TIMEOUT: Duration = Duration::from_secs(1);

pub(super) struct Context {
    pub id: StreamId,
    pub chain: Chain,
    pub slot: Arc<LatestSlot<Frame>>,
    /// The stream's encoder, restarted when it fails.
    pub encoder: Supervised,
    /// The video switch, when the stream may pass its camera's video through.
    pub video: Option<Arc<VideoSwitch>>,
    pub fanout: Arc<Fanout>,
    /// The stream's audio: placed on the video's timeline, silence while none comes.
    pub audio: Arc<AudioTrack>,
    pub stats: Arc<StreamStats>,
    pub state: Arc<StateCell>,
    pub summary_interval: Option<Duration>,
    pub stall_timeout: Duration,
    /// Frame rate of the slate when the source announces none.
    pub default_fps: u32,
    /// Where every frame sent to the encoder is also offered (browser viewers).
    pub tap: FrameTap,
}

impl Context {
    /// Whether the camera's own video goes to the outputs now (the encoder only makes the
    /// slate).
    fn passing_through(&self) -> bool {
        self.video.as_ref().is_some_and(|v| v.refused().is_none())
    }

    /// The output timeline's clock now (ns): the video switch's when there is one (camera and
    /// encoder share it), else the encoder's running time.
    fn clock(&self) -> u64 {
        match &self.video {
            Some(v) => v.now(),
            None => self.encoder.running_time().nseconds(),
        }
    }

    /// Offers a frame sent to the encoder to the tap (a reference, no copy).
    fn tap(&self, buffer: &gst::Buffer, info: &gst_video::VideoInfo, capture_time: SystemTime) {
        let seq = self.tap.borrow().as_ref().map_or(0, |f| f.seq + 1);
        self.tap.send_replace(Some(TappedFrame {
            buffer: buffer.clone(),
            info: info.clone(),
            seq,
            capture_time,
        }));
    }
}

pub(super) fn run(mut ctx: Context) {
    let mut gap = GapFiller::new(&ctx);
    let mut meters = Meters::new();
    let mut last_error_log: Option<Instant> = None;
    loop {
        match ctx.slot.recv_timeout(gap.wait(POLL)) {
            SlotRecv::Item(frame) => {
                gap.live(&ctx, &frame);
                // A withheld frame's slot is filled with the previous frame when the next comes.
                if let Some((buffer, info)) = process(&mut ctx, frame, &mut last_error_log) {
                    gap.send_live(&mut ctx, buffer, info);
                }
            }
            SlotRecv::Timeout => {}
            SlotRecv::Closed => break,
        }
        gap.follow_encoder(&mut ctx);
        gap.fill(&mut ctx);
        meters.tick(&ctx);
    }
    if let Err(e) = ctx.encoder.finish(FINISH_TIMEOUT) {
        tracing::debug!(stream = %ctx.id, "encoder flush: {e:#}");
    }
}

/// Runs the processors over the frame and offers it to the tap; returns it for the encoder
/// (none when a processor withheld it).
fn process(
    ctx: &mut Context,
    mut frame: Frame,
    last_error_log: &mut Option<Instant>,
) -> Option<(gst::Buffer, gst_video::VideoInfo)> {
    if let Ok(waited) = frame.meta.capture_time.elapsed() {
        ctx.stats.queue_latency.record(waited);
    }
    let report = ctx.chain.run(&mut frame);
    ctx.stats.record_processed(report.elapsed);
    if report.similar {
        ctx.stats.frames_similar.fetch_add(1, Ordering::Relaxed);
    }
    if report.copied {
        ctx.stats.frames_copied.fetch_add(1, Ordering::Relaxed);
    }
    for (name, e) in report.errors {
        ctx.stats.processor_errors.fetch_add(1, Ordering::Relaxed);
        // At most one line per second, whatever the frame rate.
        if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
            *last_error_log = Some(Instant::now());
            tracing::warn!(stream = %ctx.id, processor = name, "processor failed: {e:#}");
        }
    }
    if report.withheld {
        ctx.stats.frames_withheld.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    let (buffer, info, meta) = frame.into_parts();
    ctx.tap(&buffer, &info, meta.capture_time);
    Some((buffer, info))
}
