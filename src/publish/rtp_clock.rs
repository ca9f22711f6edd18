//! Which RTP timestamp each source frame got in one WebRTC session, so that boxes found in a
//! frame can be drawn by the viewer over that very frame.
//!
//! A browser tells which RTP timestamp the frame it shows had (`requestVideoFrameCallback`'s
//! `rtpTimestamp`); a detector knows the source PTS of the frame it looked at. The access
//! units carry the source PTS ([`crate::frame::source_pts`]) through the session's parser and
//! payloader; a probe after the payloader reads both from each picture's first packet.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use gst::prelude::*;

use crate::supervise::lock;

/// Pictures remembered: 20 s at 25 fps, longer than any detector's delay worth drawing.
const REMEMBERED: usize = 500;
/// Readers of one session's boxes at a time (the page, and a second one while it reconnects).
pub const MAX_BOX_READERS: usize = 2;

/// Source PTS → RTP timestamp for the recent pictures of one session.
#[derive(Default)]
pub struct RtpClock {
    seen: std::sync::Mutex<VecDeque<(u64, u32)>>,
    readers: Arc<AtomicUsize>,
}

/// A place among a session's box readers; given back when dropped.
pub struct BoxReader(Arc<AtomicUsize>);

impl Drop for BoxReader {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl RtpClock {
    /// Watches what `payloader` sends.
    pub fn watch(payloader: &gst::Element) -> Result<Arc<Self>> {
        let clock = Arc::new(Self::default());
        let pad = payloader
            .static_pad("src")
            .context("the payloader has no src pad")?;
        let weak = Arc::downgrade(&clock);
        pad.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
            move |_, info| {
                let Some(clock) = weak.upgrade() else {
                    return gst::PadProbeReturn::Remove;
                };
                match &info.data {
                    Some(gst::PadProbeData::Buffer(b)) => clock.packet(b.as_ref()),
                    Some(gst::PadProbeData::BufferList(list)) => {
                        list.iter().for_each(|b| clock.packet(b));
                    }
                    _ => {}
                }
                gst::PadProbeReturn::Ok
            },
        );
        Ok(clock)
    }

    /// One RTP packet: remembered when it starts a marked picture.
    fn packet(&self, buffer: &gst::BufferRef) {
        let Some(source) = crate::frame::source_pts::read(buffer) else {
            return;
        };
        let source = source.nseconds();
        let mut seen = lock(&self.seen);
        // A picture's later packets: nothing new (the header is read once a picture).
        if seen.back().is_some_and(|&(s, _)| s == source) {
            return;
        }
        if let Some(rtp) = rtp_timestamp(buffer) {
            remember(&mut seen, source, rtp);
        }
    }

    /// Remembers that the picture of source PTS `source` went out with RTP time `rtp`.
    pub fn record(&self, source: u64, rtp: u32) {
        remember(&mut lock(&self.seen), source, rtp);
    }

    /// The RTP timestamp the picture of source PTS `source` went out with, if it went out
    /// recently in this session.
    pub fn rtp_of(&self, source: u64) -> Option<u32> {
        lock(&self.seen)
            .iter()
            .rev()
            .find(|&&(s, _)| s == source)
            .map(|&(_, r)| r)
    }

    /// A place among the session's box readers, if one is free.
    pub fn reader(&self) -> Option<BoxReader> {
        let taken = self
            .readers
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_BOX_READERS).then_some(n + 1)
            });
        taken.ok().map(|_| BoxReader(self.readers.clone()))
    }
}

/// Adds a picture to `seen` unless it is there (its first packet counts), forgetting the
/// oldest beyond [`REMEMBERED`].
fn remember(seen: &mut VecDeque<(u64, u32)>, source: u64, rtp: u32) {
    if seen.iter().rev().any(|&(s, _)| s == source) {
        return;
    }
    if seen.len() == REMEMBERED {
        seen.pop_front();
    }
    seen.push_back((source, rtp));
}

/// The timestamp of an RTP packet (its header is in the buffer's first memory).
fn rtp_timestamp(buffer: &gst::BufferRef) -> Option<u32> {
    if buffer.n_memory() == 0 {
        return None;
    }
    let memory = buffer.peek_memory(0);
    let map = memory.map_readable().ok()?;
    let header = map.as_slice().get(..8)?;
    (header[0] >> 6 == 2).then(|| u32::from_be_bytes([header[4], header[5], header[6], header[7]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_recent_pictures_once_each() {
        let c = RtpClock::default();
        assert_eq!(c.rtp_of(40), None);
        c.record(40, 1000);
        c.record(40, 5000); // the same picture's later packets
        c.record(0, 3000); // a B-frame sent after a later picture
        assert_eq!(c.rtp_of(40), Some(1000));
        assert_eq!(c.rtp_of(0), Some(3000));
        for i in 0..REMEMBERED as u64 {
            c.record(1_000_000 + i, i as u32);
        }
        assert_eq!(c.rtp_of(40), None, "forgotten");
        assert_eq!(
            c.rtp_of(1_000_000 + REMEMBERED as u64 - 1),
            Some(REMEMBERED as u32 - 1)
        );
    }

    #[test]
    fn readers_are_capped_and_given_back() {
        let c = RtpClock::default();
        let a = c.reader().unwrap();
        let _b = c.reader().unwrap();
        assert!(c.reader().is_none());
        drop(a);
        assert!(c.reader().is_some());
    }

    #[test]
    fn a_payloaders_packets_give_the_mark_and_the_rtp_time() {
        gst::init().unwrap();
        let pipeline = gst::parse::launch(
            "appsrc name=src format=time caps=video/x-h264,stream-format=byte-stream,alignment=au \
             ! rtph264pay name=pay timestamp-offset=1000 mtu=200 ! fakesink",
        )
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let clock = RtpClock::watch(&pipeline.by_name("pay").unwrap()).unwrap();
        let src = pipeline
            .by_name("src")
            .unwrap()
            .downcast::<gst_app::AppSrc>()
            .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        // An IDR slice of 600 bytes (fragmented over several packets), 40 ms apart.
        for i in 0..3u64 {
            let mut data = vec![0, 0, 0, 1, 0x65];
            data.extend(std::iter::repeat_n(0x55u8, 600));
            let mut b = gst::Buffer::from_mut_slice(data);
            let t = gst::ClockTime::from_mseconds(40 * i);
            {
                let b = b.get_mut().unwrap();
                b.set_pts(t);
                crate::frame::source_pts::tag(b, t + gst::ClockTime::from_seconds(7));
            }
            src.push_buffer(b).unwrap();
        }
        src.end_of_stream().unwrap();
        let bus = pipeline.bus().unwrap();
        bus.timed_pop_filtered(gst::ClockTime::from_seconds(5), &[gst::MessageType::Eos]);
        pipeline.set_state(gst::State::Null).unwrap();
        for i in 0..3u64 {
            let source = 7_000_000_000 + 40_000_000 * i;
            // 90 kHz from the offset: 40 ms is 3600 ticks.
            assert_eq!(
                clock.rtp_of(source),
                Some(1000 + 3600 * i as u32),
                "picture {i}"
            );
        }
    }
}
