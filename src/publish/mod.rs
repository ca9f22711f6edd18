//! Publish: the stream's one encode fanned out to every output.
//!
//! ```text
//! encoder appsink ─→ Fanout ─┬→ AppSrcFeed → RTSP server mount (rtph264pay) → RTSP clients
//!                            ├→ AppSrcFeed → h264parse → flvmux → rtmp2sink        (rtmp push)
//!                            └→ AppSrcFeed → h264parse → rtspclientsink            (rtsp push)
//!                            ├→ AppSrcFeed → rtph264pay → webrtcbin (one per WHEP viewer;
//!                            │    RtpClock: which RTP time each source frame went out with)
//!                            ├→ AppSrcFeed → h264parse → hlssink2                  (HLS)
//!                            └→ LlHlsSink → fMP4 parts and segments in memory      (LL-HLS)
//! frame tap ─→ JpegHub (JPEG or raw I420, per size) ─→ snapshot, MJPEG, WebSocket, redis
//! ```
//! Each feed has its own small buffer (its appsrc queue). A feed that fills up drops frames
//! and starts again at the next key frame (asking the encoder for one); the encoder and the
//! other feeds never wait for it.

mod audio;
mod fanout;
mod feed;
mod hls;
mod jpeg;
mod llhls;
mod media_factory;
mod push;
mod redis;
mod rtp_clock;
mod rtsp_server;
mod switch;
mod whep;

pub use audio::{AUDIO_QUEUE_PACKETS, AudioInput};
pub use fanout::{EncodedSink, Fanout, FeedStats};
pub use feed::{AppSrcFeed, Retimer};
pub use hls::{HlsHub, is_hls_file};
pub use jpeg::{
    JpegEncoder, JpegFrame, JpegFrames, JpegHub, JpegKey, JpegRefusal, jpeg_encoder_counts,
    output_size,
};
pub use llhls::{LlHls, LlHlsError, LlHlsFile, LlHlsHub, with_query as playlist_with_query};
pub use media_factory::{MediaBuilder, MediaFactory};
pub use push::{OutputState, PushOutput, PushStatus};
pub use redis::{RedisCounters, RedisPublisher};
pub use rtp_clock::{BoxReader, MAX_BOX_READERS, RtpClock};
pub use rtsp_server::{
    ClientLimits as RtspClientLimits, LazyRtspServer, RtspServer, rtsp_client_counts,
};
pub use switch::{On as VideoOn, Switch, SwitchStats, Verdict, VideoSwitch};
pub use whep::{
    IceSettings, WhepFull, WhepHub, WhepStatus, h264_payload_type, parse_offer, whep_sessions_total,
};
