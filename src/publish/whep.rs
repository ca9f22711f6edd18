//! WebRTC viewers (WHEP, the IETF WebRTC-HTTP egress protocol) fed from the stream's one H.264
//! encode: no encode per viewer.
//!
//! ```text
//! fan-out ─▶ AppSrcFeed ─▶ appsrc → h264parse → rtph264pay (the offer's H.264 payload type)
//!                              → webrtcbin (DTLS-SRTP, ICE host candidates) ─▶ the browser
//! audio (Opus: the source's, or the stream's one transcode) ─▶ appsrc → opusparse
//!        → rtpopuspay (the offer's Opus payload type) ↗     (when the offer has audio)
//! ```
//! A viewer `POST`s an SDP offer; framegate answers once its ICE candidates are gathered (no
//! trickle), so the answer is complete. A new viewer starts at the next key frame, which the
//! fan-out asks the encoder for (the encoder rate-limits those requests). A session ends on
//! `DELETE`, or by itself when its peer has been unreachable for a few seconds.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use gst::prelude::*;
use gst_webrtc::{WebRTCICEGatheringState, WebRTCPeerConnectionState, WebRTCSDPType};
use schemars::JsonSchema;
use serde::Serialize;

use crate::config::StreamId;
use crate::elements::make;
use crate::supervise::lock;

use super::audio::AudioInput;
use super::fanout::{EncodedSink, Fanout, FeedStats};
use super::feed::{AppSrcFeed, Retimer};
use crate::audio::{AudioCodec, AudioFormat, AudioTrack};

/// Access units a viewer's feed holds before it drops (and restarts at a key frame).
const QUEUE_FRAMES: u64 = 8;
/// Longest the answer waits for ICE candidates.
const GATHERING: Duration = Duration::from_secs(3);
/// Longest any webrtcbin action (remote description, answer, local description) may take.
const PROMISE: Duration = Duration::from_secs(5);
/// Largest SDP offer taken, and most media sections in it.
pub const MAX_OFFER_BYTES: usize = 64 * 1024;
const MAX_MEDIA: u32 = 16;

/// WHEP sessions in the process, including offers being answered.
static TOTAL: std::sync::LazyLock<Arc<AtomicUsize>> =
    std::sync::LazyLock::new(|| Arc::new(AtomicUsize::new(0)));

/// A place taken in a count (a hub's, the process's), given back when dropped.
struct Seat(Arc<AtomicUsize>);

impl Seat {
    /// A place in `count` if it has fewer than `cap`.
    fn take(count: &Arc<AtomicUsize>, cap: usize) -> Option<Self> {
        if count.fetch_add(1, Ordering::SeqCst) >= cap {
            count.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Self(count.clone()))
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An offer refused because the stream or the process has as many sessions as it takes.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WhepFull(pub String);

/// WHEP sessions in the process, including offers being answered.
pub fn whep_sessions_total() -> usize {
    TOTAL.load(Ordering::Relaxed)
}
/// How long a peer may stay failed or disconnected, or send no RTCP, before its session is
/// removed.
const VANISHED: Duration = Duration::from_secs(5);

/// A WHEP session as the API shows it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct WhepStatus {
    /// The first 8 characters of the session id: enough to tell sessions apart; the whole id
    /// (the last part of its `Location`, 128 random bits) is what ends the session, and only
    /// its viewer has it.
    pub session: String,
    /// `new`, `connecting`, `connected`, `disconnected`, `failed` or `closed`.
    pub state: String,
    /// Seconds since the offer.
    pub age_s: f64,
    /// Access units handed to the session.
    pub frames_sent: u64,
    /// Access units dropped because the session fell behind.
    pub frames_dropped: u64,
    /// RTP bytes sent (webrtcbin's statistics).
    pub bytes_sent: Option<u64>,
    /// RTP packets sent.
    pub packets_sent: Option<u64>,
    /// Packets the viewer reported lost (its RTCP receiver reports).
    pub packets_lost: Option<i64>,
    /// Round-trip time from the viewer's receiver reports, milliseconds.
    pub rtt_ms: Option<f64>,
}

/// What webrtcbin's `get-stats` says about a session.
#[derive(Debug, Default)]
struct RtpStats {
    bytes_sent: Option<u64>,
    packets_sent: Option<u64>,
    packets_lost: Option<i64>,
    rtt_ms: Option<f64>,
}

impl RtpStats {
    /// Reads the outbound RTP and remote-inbound (receiver report) entries of `get-stats`.
    fn read(webrtc: &gst::Element) -> Self {
        let mut out = Self::default();
        let Ok(Some(reply)) = promise(|p| {
            webrtc.emit_by_name::<()>("get-stats", &[&None::<gst::Pad>, p]);
        }) else {
            return out;
        };
        for (_, value) in reply.iter() {
            let Ok(st) = value.get::<gst::Structure>() else {
                continue;
            };
            match st.name().as_str() {
                "outbound-rtp" => {
                    out.bytes_sent = st.get::<u64>("bytes-sent").ok().or(out.bytes_sent);
                    out.packets_sent = st.get::<u64>("packets-sent").ok().or(out.packets_sent);
                }
                "remote-inbound-rtp" => {
                    out.packets_lost = st.get::<i64>("packets-lost").ok().or(out.packets_lost);
                    out.rtt_ms = st
                        .get::<f64>("round-trip-time")
                        .ok()
                        .map(|s| s * 1000.0)
                        .or(out.rtt_ms);
                }
                _ => {}
            }
        }
        out
    }
}

/// How sessions' ICE is set up (from `[server.webrtc]`).
#[derive(Debug, Clone, Default)]
pub struct IceSettings {
    /// Addresses to gather host candidates on; empty: every interface.
    pub addresses: Vec<std::net::IpAddr>,
    /// `stun://host:port`.
    pub stun_server: Option<String>,
    /// `turn(s)://user:password@host:port`.
    pub turn_servers: Vec<String>,
    /// UDP port range for media.
    pub udp_ports: Option<[u16; 2]>,
}

impl IceSettings {
    /// Applies the settings to a new webrtcbin and its ICE agent.
    fn apply(&self, webrtc: &gst::Element) -> Result<()> {
        if let Some(stun) = &self.stun_server {
            webrtc.set_property("stun-server", stun);
        }
        for turn in &self.turn_servers {
            if !webrtc.emit_by_name::<bool>("add-turn-server", &[turn]) {
                bail!(
                    "webrtcbin refused the TURN server {}",
                    crate::config::masked_text_url(turn)
                );
            }
        }
        let agent = webrtc.property::<gst::glib::Object>("ice-agent");
        for address in &self.addresses {
            if !agent.emit_by_name::<bool>("add-local-ip-address", &[&address.to_string()]) {
                bail!("the ICE agent refused the address {address}");
            }
        }
        if let Some([first, last]) = self.udp_ports {
            agent.set_property("min-rtp-port", u32::from(first));
            agent.set_property("max-rtp-port", u32::from(last));
        }
        Ok(())
    }
}

/// The WebRTC sessions of a stream.
pub struct WhepHub {
    stream: StreamId,
    fanout: Arc<Fanout>,
    audio: Arc<AudioTrack>,
    ice: IceSettings,
    sessions: Mutex<BTreeMap<String, WhepSession>>,
    /// Sessions of this stream, including offers being answered.
    seats: Arc<AtomicUsize>,
}

struct WhepSession {
    pipeline: gst::Pipeline,
    webrtc: gst::Element,
    sink: Arc<dyn EncodedSink>,
    /// Its sound (Opus), when the offer asked for audio and the stream has some.
    audio: Option<AudioInput>,
    stats: Arc<FeedStats>,
    created: Instant,
    /// Since when the peer has been failed or disconnected.
    lost_since: Option<Instant>,
    /// Its places in the stream's and the process's counts.
    _seats: (Seat, Seat),
    /// The peer's RTCP: when it last came (ms after `created`), and whether it said BYE.
    rtcp: Arc<PeerRtcp>,
    /// The RTP time each source frame went out with (for the viewer's boxes).
    rtp_clock: Arc<super::RtpClock>,
}

/// What the peer's RTCP says about it: a browser sends receiver reports every second or so
/// while it plays, and a BYE when its connection is closed. ICE in this GStreamer generation
/// checks no consent, so this is how a vanished peer is noticed.
#[derive(Default)]
struct PeerRtcp {
    last_ms: std::sync::atomic::AtomicU64,
    bye: std::sync::atomic::AtomicBool,
}

impl WhepHub {
    /// A hub with no session.
    pub fn new(
        stream: StreamId,
        fanout: Arc<Fanout>,
        audio: Arc<AudioTrack>,
        ice: IceSettings,
    ) -> Self {
        Self {
            stream,
            fanout,
            audio,
            ice,
            sessions: Mutex::new(BTreeMap::new()),
            seats: Arc::default(),
        }
    }

    /// Answers a viewer's SDP offer: returns the session id and the SDP answer. Blocks while
    /// the ICE candidates are gathered (well under a second on a LAN; every wait is bounded).
    /// Refused ([`WhepFull`]) when the stream has `per_stream` sessions or the process `total`.
    pub fn answer(&self, offer: &str, per_stream: usize, total: usize) -> Result<(String, String)> {
        let sdp = parse_offer(offer)?;
        let Some(stream_seat) = Seat::take(&self.seats, per_stream) else {
            return Err(WhepFull(format!(
                "stream `{}` has {per_stream} WebRTC viewers, as many as it takes (server.limits.whep_sessions_per_stream)",
                self.stream
            ))
            .into());
        };
        let Some(total_seat) = Seat::take(&TOTAL, total) else {
            return Err(WhepFull(format!(
                "framegate has {total} WebRTC viewers, as many as it takes (server.limits.whep_sessions_total)"
            ))
            .into());
        };
        let pt = h264_payload_type(&sdp).context(
            "the offer has no H.264 video with packetization-mode=1 (the stream is H.264)",
        )?;
        let id = crate::store::new_uid();
        let pipeline = gst::Pipeline::new();
        let appsrc = AppSrcFeed::appsrc(self.fanout.caps().as_ref());
        let parse = make("h264parse")?;
        parse.set_property("config-interval", -1i32);
        let pay = make("rtph264pay")?;
        pay.set_property("config-interval", -1i32);
        pay.set_property("pt", pt);
        pay.set_property_from_str("aggregate-mode", "zero-latency");
        let rtp_clock = super::RtpClock::watch(&pay)?;
        let webrtc = make("webrtcbin")?;
        webrtc.set_property_from_str("bundle-policy", "max-bundle");
        self.ice.apply(&webrtc)?;
        pipeline.add_many([appsrc.upcast_ref(), &parse, &pay, &webrtc])?;
        gst::Element::link_many([appsrc.upcast_ref(), &parse, &pay])?;
        pay.link_filtered(&webrtc, &rtp_caps("video", "H264", 90_000, pt))
            .context("linking the payloader to webrtcbin")?;
        let retimer = Retimer::new();
        let name = format!("whep {} {}", self.stream, &id[..8]);
        let audio = match opus_payload_type(&sdp) {
            Some(pt) => self.audio_branch(&pipeline, &webrtc, &name, &retimer, pt)?,
            None => None,
        };
        let (gathered_tx, gathered) = mpsc::channel();
        webrtc.connect_notify(Some("ice-gathering-state"), move |w, _| {
            if w.property::<WebRTCICEGatheringState>("ice-gathering-state")
                == WebRTCICEGatheringState::Complete
            {
                let _ = gathered_tx.send(());
            }
        });
        pipeline
            .set_state(gst::State::Playing)
            .context("starting the WebRTC session")?;
        let negotiated = negotiate(&webrtc, sdp, &gathered);
        let answer = match negotiated {
            Ok(a) => a,
            Err(e) => {
                let _ = pipeline.set_state(gst::State::Null);
                return Err(e);
            }
        };
        let created = Instant::now();
        let rtcp = watch_rtcp(&webrtc, created);
        let sink: Arc<dyn EncodedSink> = Arc::new(AppSrcFeed::sharing(
            name,
            &appsrc,
            QUEUE_FRAMES,
            &retimer,
            true,
        ));
        forward_keyframe_requests(&appsrc, &self.fanout);
        let stats = self.fanout.add(sink.clone());
        if let Some(a) = &audio {
            a.attach();
        }
        tracing::info!(stream = %self.stream, session = %id, "WebRTC viewer joined");
        lock(&self.sessions).insert(
            id.clone(),
            WhepSession {
                pipeline,
                webrtc,
                sink,
                audio,
                stats,
                created,
                lost_since: None,
                _seats: (stream_seat, total_seat),
                rtcp,
                rtp_clock,
            },
        );
        Ok((id, answer))
    }

    /// Ends a session; false when there is no such session.
    pub fn end(&self, id: &str) -> bool {
        let session = lock(&self.sessions).remove(id);
        match session {
            Some(s) => {
                self.close(s);
                tracing::info!(stream = %self.stream, session = %id, "WebRTC viewer left");
                true
            }
            None => false,
        }
    }

    /// The RTP clock of a session (gone with the session: keep it weakly).
    pub fn rtp_clock(&self, id: &str) -> Option<std::sync::Weak<super::RtpClock>> {
        lock(&self.sessions)
            .get(id)
            .map(|s| Arc::downgrade(&s.rtp_clock))
    }

    /// How many sessions there are (cheap, for metrics).
    pub fn count(&self) -> usize {
        lock(&self.sessions).len()
    }

    /// The sessions now, with webrtcbin's statistics (a blocking call per session).
    pub fn sessions(&self) -> Vec<WhepStatus> {
        let list: Vec<(String, gst::Element, WhepStatus)> = lock(&self.sessions)
            .iter()
            .map(|(id, s)| {
                let status = WhepStatus {
                    session: id.chars().take(8).collect(),
                    state: state_name(s.state()).into(),
                    age_s: s.created.elapsed().as_secs_f64(),
                    frames_sent: s.stats.sent.load(Ordering::Relaxed),
                    frames_dropped: s.stats.dropped.load(Ordering::Relaxed),
                    bytes_sent: None,
                    packets_sent: None,
                    packets_lost: None,
                    rtt_ms: None,
                };
                (id.clone(), s.webrtc.clone(), status)
            })
            .collect();
        // Statistics are asked for outside the lock: each waits for webrtcbin's answer.
        list.into_iter()
            .map(|(_, webrtc, mut status)| {
                let rtp = RtpStats::read(&webrtc);
                status.bytes_sent = rtp.bytes_sent;
                status.packets_sent = rtp.packets_sent;
                status.packets_lost = rtp.packets_lost;
                status.rtt_ms = rtp.rtt_ms;
                status
            })
            .collect()
    }

    /// Removes the sessions whose peer vanished (called periodically).
    pub fn reap(&self) {
        let gone: Vec<(String, WhepSession)> = {
            let mut sessions = lock(&self.sessions);
            let mut gone_ids = Vec::new();
            for (id, s) in sessions.iter_mut() {
                let silent = Duration::from_millis(
                    (s.created.elapsed().as_millis() as u64)
                        .saturating_sub(s.rtcp.last_ms.load(Ordering::Relaxed)),
                );
                if s.rtcp.bye.load(Ordering::Relaxed) || silent > VANISHED {
                    gone_ids.push(id.clone());
                    continue;
                }
                let lost = matches!(
                    s.state(),
                    WebRTCPeerConnectionState::Failed
                        | WebRTCPeerConnectionState::Disconnected
                        | WebRTCPeerConnectionState::Closed
                );
                if !lost {
                    s.lost_since = None;
                } else if s.lost_since.get_or_insert_with(Instant::now).elapsed() > VANISHED {
                    gone_ids.push(id.clone());
                }
            }
            gone_ids
                .into_iter()
                .filter_map(|id| sessions.remove(&id).map(|s| (id, s)))
                .collect()
        };
        for (id, s) in gone {
            tracing::info!(stream = %self.stream, session = %id, "WebRTC viewer vanished; session removed");
            self.close(s);
        }
    }

    /// The session's sound: the stream's Opus (its own, or the one shared transcode) →
    /// rtpopuspay (the offer's Opus payload type) → webrtcbin. `None` when the stream has no
    /// audio (the answer then sends none).
    fn audio_branch(
        &self,
        pipeline: &gst::Pipeline,
        webrtc: &gst::Element,
        name: &str,
        retimer: &Arc<Retimer>,
        pt: u32,
    ) -> Result<Option<AudioInput>> {
        let carries = |f: &AudioFormat| f.codec == AudioCodec::Opus && f.rate == 48_000;
        let Some(input) = AudioInput::new(name, &self.audio, carries, AudioCodec::Opus, retimer)
        else {
            return Ok(None);
        };
        let parse = make("opusparse")?;
        let pay = make("rtpopuspay")?;
        pay.set_property("pt", pt);
        pipeline.add_many([input.appsrc.upcast_ref(), &parse, &pay])?;
        gst::Element::link_many([input.appsrc.upcast_ref(), &parse, &pay])?;
        pay.link_filtered(webrtc, &rtp_caps("audio", "OPUS", 48_000, pt))
            .context("linking the audio payloader to webrtcbin")?;
        Ok(Some(input))
    }

    fn close(&self, s: WhepSession) {
        self.fanout.remove(&s.sink);
        if let Some(a) = &s.audio {
            a.detach();
        }
        let _ = s.pipeline.set_state(gst::State::Null);
    }
}

impl Drop for WhepHub {
    fn drop(&mut self) {
        let sessions = std::mem::take(&mut *lock(&self.sessions));
        for (_, s) in sessions {
            self.close(s);
        }
    }
}

/// Follows the peer's RTCP on webrtcbin's RTP session.
fn watch_rtcp(webrtc: &gst::Element, created: Instant) -> Arc<PeerRtcp> {
    let rtcp = Arc::new(PeerRtcp::default());
    let session = webrtc
        .downcast_ref::<gst::Bin>()
        .and_then(|b| b.by_name("rtpbin"))
        .map(|rtpbin| rtpbin.emit_by_name::<gst::glib::Object>("get-session", &[&0u32]));
    let Some(session) = session else {
        tracing::warn!("webrtcbin has no rtpbin: vanished WebRTC peers are noticed by ICE only");
        return rtcp;
    };
    {
        let rtcp = rtcp.clone();
        session.connect("on-ssrc-active", false, move |_| {
            rtcp.last_ms
                .store(created.elapsed().as_millis() as u64, Ordering::Relaxed);
            None
        });
    }
    {
        let rtcp = rtcp.clone();
        session.connect("on-bye-ssrc", false, move |_| {
            rtcp.bye.store(true, Ordering::Relaxed);
            None
        });
    }
    rtcp
}

impl WhepSession {
    fn state(&self) -> WebRTCPeerConnectionState {
        self.webrtc
            .property::<WebRTCPeerConnectionState>("connection-state")
    }
}

fn state_name(s: WebRTCPeerConnectionState) -> &'static str {
    match s {
        WebRTCPeerConnectionState::New => "new",
        WebRTCPeerConnectionState::Connecting => "connecting",
        WebRTCPeerConnectionState::Connected => "connected",
        WebRTCPeerConnectionState::Disconnected => "disconnected",
        WebRTCPeerConnectionState::Failed => "failed",
        WebRTCPeerConnectionState::Closed => "closed",
        _ => "unknown",
    }
}

/// Remote offer, answer, local answer, then the complete local description once the ICE
/// candidates are gathered.
fn negotiate(
    webrtc: &gst::Element,
    offer: gst_sdp::SDPMessage,
    gathered: &mpsc::Receiver<()>,
) -> Result<String> {
    let offer = gst_webrtc::WebRTCSessionDescription::new(WebRTCSDPType::Offer, offer);
    promise(|p| webrtc.emit_by_name::<()>("set-remote-description", &[&offer, p]))
        .context("the offer was refused")?;
    let reply = promise(|p| {
        webrtc.emit_by_name::<()>("create-answer", &[&None::<gst::Structure>, p]);
    })
    .context("no answer could be made")?
    .context("no answer could be made")?;
    let answer = reply
        .value("answer")
        .ok()
        .and_then(|v| v.get::<gst_webrtc::WebRTCSessionDescription>().ok())
        .context("no answer could be made for this offer")?;
    promise(|p| webrtc.emit_by_name::<()>("set-local-description", &[&answer, p]))
        .context("the answer could not be applied")?;
    if webrtc.property::<WebRTCICEGatheringState>("ice-gathering-state")
        != WebRTCICEGatheringState::Complete
        && gathered.recv_timeout(GATHERING).is_err()
    {
        tracing::debug!(
            "ICE gathering not complete after {GATHERING:?}; answering with what there is"
        );
    }
    let local = webrtc
        .property::<Option<gst_webrtc::WebRTCSessionDescription>>("local-description")
        .context("no local description")?;
    local
        .sdp()
        .as_text()
        .map_err(|_| anyhow::anyhow!("the answer could not be written"))
}

/// A viewer that lost packets asks for a key frame (RTCP PLI or FIR), which webrtcbin turns
/// into an upstream force-key-unit event: it reaches the appsrc, and goes on to the stream's
/// encoder from there (which rate-limits them), so the picture repairs at once instead of at
/// the next periodic key frame.
fn forward_keyframe_requests(appsrc: &gst_app::AppSrc, fanout: &Arc<Fanout>) {
    let Some(pad) = appsrc.static_pad("src") else {
        return;
    };
    let fanout = Arc::downgrade(fanout);
    pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
        if let Some(gst::PadProbeData::Event(ev)) = &info.data
            && gst_video::UpstreamForceKeyUnitEvent::parse(ev).is_ok()
            && let Some(f) = fanout.upgrade()
        {
            tracing::debug!("a WebRTC viewer asked for a key frame");
            f.request_keyframe();
        }
        gst::PadProbeReturn::Ok
    });
}

/// Runs a webrtcbin action with a promise and waits for its reply, at most [`PROMISE`].
fn promise(action: impl FnOnce(&gst::Promise)) -> Result<Option<gst::Structure>> {
    let (tx, rx) = mpsc::sync_channel(1);
    let p = gst::Promise::with_change_func(move |reply| {
        let _ = tx.send(reply.map(|r| r.map(|s| s.to_owned())));
    });
    action(&p);
    match rx.recv_timeout(PROMISE) {
        Ok(Ok(reply)) => {
            if let Some(r) = &reply
                && let Ok(err) = r.get::<gst::glib::Error>("error")
            {
                bail!("{}", err.message());
            }
            Ok(reply)
        }
        Ok(Err(e)) => bail!("webrtcbin did not answer ({e:?})"),
        Err(_) => {
            p.interrupt();
            bail!("webrtcbin did not answer within {PROMISE:?}")
        }
    }
}

/// Parses an offer and checks what webrtcbin would otherwise choke on: its size, its number of
/// media sections, payload types outside 0-127 (in `m=` lines and in `rtpmap`, `fmtp`,
/// `rtcp-fb` attributes).
pub fn parse_offer(offer: &str) -> Result<gst_sdp::SDPMessage> {
    if offer.len() > MAX_OFFER_BYTES {
        bail!("the offer is larger than {MAX_OFFER_BYTES} bytes");
    }
    let sdp = Some(offer)
        .filter(|o| o.starts_with("v=0") && o.contains("\nm="))
        .and_then(|o| gst_sdp::SDPMessage::parse_buffer(o.as_bytes()).ok())
        .context("the body is not an SDP offer (`v=0` ... with an `m=` line)")?;
    if sdp.medias_len() > MAX_MEDIA {
        bail!(
            "the offer has {} media sections; at most {MAX_MEDIA} are taken",
            sdp.medias_len()
        );
    }
    let payload_type = |t: &str| t.parse::<u32>().ok().filter(|pt| *pt <= 127);
    for (i, media) in sdp.medias().enumerate() {
        for f in media.formats() {
            if media.proto().is_some_and(|p| p.contains("RTP")) && payload_type(f).is_none() {
                bail!("media section {i}: `{f}` is not an RTP payload type (0 to 127)");
            }
        }
        for attr in media.attributes() {
            if !matches!(attr.key(), "rtpmap" | "fmtp" | "rtcp-fb") {
                continue;
            }
            let first = attr.value().unwrap_or("").split(' ').next().unwrap_or("");
            if !(first == "*" && attr.key() == "rtcp-fb") && payload_type(first).is_none() {
                bail!(
                    "media section {i}: a={}:{first} is not an RTP payload type (0 to 127)",
                    attr.key()
                );
            }
        }
    }
    Ok(sdp)
}

/// The payload type of the offer's H.264 video (packetization-mode 1), preferring constrained
/// baseline (which every browser decodes).
pub fn h264_payload_type(sdp: &gst_sdp::SDPMessageRef) -> Option<u32> {
    let mut found: Vec<(u32, String)> = Vec::new();
    for media in sdp.medias().filter(|m| m.media() == Some("video")) {
        for attr in media.attributes() {
            if attr.key() != "rtpmap" {
                continue;
            }
            let Some((pt, codec)) = attr.value().and_then(|v| v.split_once(' ')) else {
                continue;
            };
            if !codec.to_ascii_uppercase().starts_with("H264/") {
                continue;
            }
            // H.264 always has a dynamic payload type.
            let Some(pt) = pt.parse::<u32>().ok().filter(|p| (96..=127).contains(p)) else {
                continue;
            };
            let fmtp = media
                .attributes()
                .filter(|a| a.key() == "fmtp")
                .filter_map(|a| a.value())
                .find_map(|v| {
                    v.split_once(' ')
                        .filter(|(p, _)| *p == pt.to_string())
                        .map(|(_, f)| f.to_string())
                })
                .unwrap_or_default();
            if fmtp.contains("packetization-mode=1") {
                found.push((pt, fmtp));
            }
        }
    }
    found
        .iter()
        .find(|(_, f)| f.contains("profile-level-id=42e0"))
        .or_else(|| found.first())
        .map(|(pt, _)| *pt)
}

/// The RTP caps a payloader gives webrtcbin for one of the offer's payload types.
fn rtp_caps(media: &str, encoding: &str, clock_rate: i32, pt: u32) -> gst::Caps {
    gst::Caps::builder("application/x-rtp")
        .field("media", media)
        .field("encoding-name", encoding)
        .field("clock-rate", clock_rate)
        .field("payload", pt as i32)
        .build()
}

/// The payload type of the offer's Opus audio, if it has some.
pub fn opus_payload_type(sdp: &gst_sdp::SDPMessageRef) -> Option<u32> {
    sdp.medias()
        .filter(|m| m.media() == Some("audio"))
        .flat_map(|m| m.attributes())
        .filter(|a| a.key() == "rtpmap")
        .filter_map(|a| a.value()?.split_once(' '))
        .find(|(_, codec)| codec.to_ascii_lowercase().starts_with("opus/48000"))
        .and_then(|(pt, _)| pt.parse::<u32>().ok())
        .filter(|p| (96..=127).contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 102 106\r\nc=IN IP4 0.0.0.0\r\n\
        a=rtpmap:96 VP8/90000\r\n\
        a=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f\r\n\
        a=rtpmap:106 H264/90000\r\na=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n";

    #[test]
    fn picks_h264_with_packetization_mode_1() {
        gst::init().expect("gst");
        let sdp = gst_sdp::SDPMessage::parse_buffer(OFFER.as_bytes()).expect("sdp");
        assert_eq!(h264_payload_type(&sdp), Some(106));
        let vp8_only = OFFER.split("a=rtpmap:102").next().expect("prefix");
        let sdp = gst_sdp::SDPMessage::parse_buffer(vp8_only.as_bytes()).expect("sdp");
        assert_eq!(h264_payload_type(&sdp), None);
    }

    #[test]
    fn picks_the_offers_opus() {
        gst::init().expect("gst");
        let sdp = gst_sdp::SDPMessage::parse_buffer(OFFER.as_bytes()).expect("sdp");
        assert_eq!(opus_payload_type(&sdp), None);
        let with_audio = format!(
            "{OFFER}m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\n\
             a=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n"
        );
        let sdp = gst_sdp::SDPMessage::parse_buffer(with_audio.as_bytes()).expect("sdp");
        assert_eq!(opus_payload_type(&sdp), Some(111));
        assert_eq!(h264_payload_type(&sdp), Some(106));
    }

    #[test]
    fn offers_with_impossible_payload_types_are_refused() {
        gst::init().expect("gst");
        assert!(parse_offer(OFFER).is_ok());
        let pt200 = OFFER
            .replace("96 102 106", "96 102 200")
            .replace("rtpmap:106", "rtpmap:200");
        let e = parse_offer(&pt200).expect_err("pt 200");
        assert!(format!("{e}").contains("200"), "{e}");
        let fmtp = OFFER.replace("a=fmtp:106", "a=fmtp:4000000000");
        assert!(parse_offer(&fmtp).is_err());
        assert!(parse_offer(&"v=0\r\n".repeat(20_000)).is_err());
        assert!(parse_offer("hello").is_err());
    }
}
