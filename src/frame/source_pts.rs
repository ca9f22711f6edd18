//! The source time of a picture, carried on the encoded access units that show it.
//!
//! A frame is known by its source PTS (the ingest pipeline's timestamp) from the decoder to
//! the detector; the access units that go out carry other times (the encoder's timeline, the
//! outputs' timeline, each WebRTC session's RTP clock). So that a viewer can draw the boxes
//! found in a frame over that very frame, every access unit that shows a source frame carries
//! its source PTS as a `GstReferenceTimestampMeta` (caps `timestamp/x-framegate-source`):
//! the camera's own access units get it where they go out, the encoder's input frames get it
//! before they go in (`GstVideoEncoder` copies untagged metas to its output, so do `h264parse`
//! and the RTP payloaders). The NO SIGNAL slate and repeated frames carry none.

use std::sync::OnceLock;

fn reference() -> &'static gst::Caps {
    static CAPS: OnceLock<gst::Caps> = OnceLock::new();
    CAPS.get_or_init(|| gst::Caps::new_empty_simple("timestamp/x-framegate-source"))
}

/// Marks `buffer` as showing the source frame of PTS `pts` (replacing an earlier mark).
pub fn tag(buffer: &mut gst::BufferRef, pts: gst::ClockTime) {
    if read(buffer) == Some(pts) {
        return;
    }
    clear(buffer);
    gst::ReferenceTimestampMeta::add(buffer, reference(), pts, gst::ClockTime::NONE);
}

/// The source PTS `buffer` shows, if it carries one.
pub fn read(buffer: &gst::BufferRef) -> Option<gst::ClockTime> {
    buffer
        .iter_meta::<gst::ReferenceTimestampMeta>()
        .find(|m| m.reference() == reference().as_ref())
        .map(|m| m.timestamp())
}

/// Removes the mark (a buffer that no longer shows its source frame).
pub fn clear(buffer: &mut gst::BufferRef) {
    buffer.foreach_meta_mut(|mut meta| {
        let ours = meta
            .downcast_ref::<gst::ReferenceTimestampMeta>()
            .is_some_and(|m| m.reference() == reference().as_ref());
        if ours {
            std::ops::ControlFlow::Continue(gst::buffer::BufferMetaForeachAction::Remove)
        } else {
            std::ops::ControlFlow::Continue(gst::buffer::BufferMetaForeachAction::Keep)
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use gst::prelude::*;

    #[test]
    fn a_mark_is_read_back_replaced_and_removed() {
        gst::init().unwrap();
        let mut b = gst::Buffer::with_size(16).unwrap();
        let b = b.get_mut().unwrap();
        assert_eq!(read(b), None);
        tag(b, gst::ClockTime::from_mseconds(40));
        assert_eq!(read(b), Some(gst::ClockTime::from_mseconds(40)));
        tag(b, gst::ClockTime::from_mseconds(80));
        assert_eq!(read(b), Some(gst::ClockTime::from_mseconds(80)));
        assert_eq!(b.iter_meta::<gst::ReferenceTimestampMeta>().count(), 1);
        // Another reference timestamp (a camera's NTP time) is left alone.
        let ntp = gst::Caps::new_empty_simple("timestamp/x-ntp");
        gst::ReferenceTimestampMeta::add(b, &ntp, gst::ClockTime::SECOND, gst::ClockTime::NONE);
        assert_eq!(read(b), Some(gst::ClockTime::from_mseconds(80)));
        clear(b);
        assert_eq!(read(b), None);
        assert_eq!(b.iter_meta::<gst::ReferenceTimestampMeta>().count(), 1);
    }

    #[test]
    fn an_encoder_and_a_parser_carry_the_mark_to_their_output() {
        gst::init().unwrap();
        let Ok(enc) = gst::ElementFactory::make("x264enc").build() else {
            eprintln!("skipped: no x264enc");
            return;
        };
        enc.set_property_from_str("tune", "zerolatency");
        let pipeline = gst::parse::launch(
            "appsrc name=src format=time caps=video/x-raw,format=I420,width=64,height=64,framerate=25/1 \
             ! queue name=q ! h264parse config-interval=-1 ! appsink name=sink sync=false",
        )
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let q = pipeline.by_name("q").unwrap();
        let parse = q
            .static_pad("src")
            .unwrap()
            .peer()
            .unwrap()
            .parent_element()
            .unwrap();
        q.unlink(&parse);
        pipeline.add(&enc).unwrap();
        gst::Element::link_many([&q, &enc, &parse]).unwrap();
        let src = pipeline
            .by_name("src")
            .unwrap()
            .downcast::<gst_app::AppSrc>()
            .unwrap();
        let sink = pipeline
            .by_name("sink")
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        for i in 0..10u64 {
            let mut b = gst::Buffer::with_size(64 * 64 * 3 / 2).unwrap();
            let t = gst::ClockTime::from_mseconds(40 * i);
            {
                let b = b.get_mut().unwrap();
                b.set_pts(t);
                tag(b, t + gst::ClockTime::SECOND);
            }
            src.push_buffer(b).unwrap();
        }
        src.end_of_stream().unwrap();
        let mut marks = Vec::new();
        while let Ok(s) = sink.pull_sample() {
            let b = s.buffer().unwrap();
            marks.push(read(b));
        }
        pipeline.set_state(gst::State::Null).unwrap();
        // x264enc moves its output times (by 1000 h): the marks keep the frames' own.
        let want: Vec<_> = (0..10u64)
            .map(|i| Some(gst::ClockTime::from_mseconds(1000 + 40 * i)))
            .collect();
        assert_eq!(marks, want);
    }
}
