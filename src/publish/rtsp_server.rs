//! framegate's own RTSP server (gst-rtsp-server): one mount per stream, fed from the stream's
//! fan-out. The media is shared by all clients of a mount, so a hundred viewers cost one
//! payloader, not a hundred encoders.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use gst::glib;
use gst::prelude::*;
use gst_rtsp::{RTSPHeaderField, RTSPStatusCode};
use gst_rtsp_server::prelude::*;

use super::audio::AudioInput;
use super::fanout::Fanout;
use super::feed::{AppSrcFeed, Retimer};
use super::media_factory::{MediaBuilder, MediaFactory};
use crate::audio::{AudioCodec, AudioTrack};

/// The role given to authenticated viewers.
const VIEWER_ROLE: &str = "viewer";

/// Access units an RTSP mount may hold before it drops and waits for a key frame (1 s at 25 fps).
const MOUNT_QUEUE_FRAMES: u64 = 25;

/// RTSP client connections open now (every server of the process).
static CLIENTS_OPEN: AtomicUsize = AtomicUsize::new(0);
/// Connections closed at once because as many were open as may be.
static CLIENTS_REFUSED: AtomicU64 = AtomicU64::new(0);
/// Connections closed because they set up no session in time.
static CLIENTS_IDLE_CLOSED: AtomicU64 = AtomicU64::new(0);

/// (RTSP connections open now, closed for the cap, closed for setting up no session in time).
pub fn rtsp_client_counts() -> (usize, u64, u64) {
    (
        CLIENTS_OPEN.load(Ordering::Relaxed),
        CLIENTS_REFUSED.load(Ordering::Relaxed),
        CLIENTS_IDLE_CLOSED.load(Ordering::Relaxed),
    )
}

/// How many connections an RTSP server keeps, and how long one may stay without a session.
#[derive(Debug, Clone, Copy)]
pub struct ClientLimits {
    /// Most connections open at once, all clients together.
    pub connections: usize,
    /// Time a connection has to set up a session.
    pub setup_timeout: Duration,
}

/// A running RTSP server with its own GLib main loop thread.
pub struct RtspServer {
    server: gst_rtsp_server::RTSPServer,
    /// The credentials clients may give (`user:password` in base64, as in the header); when
    /// there are any, clients must authenticate (HTTP Basic).
    basic: Arc<std::sync::Mutex<Vec<String>>>,
    /// The paths served now.
    mounted: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
    main_loop: glib::MainLoop,
    thread: Option<JoinHandle<()>>,
    host: String,
    port: u16,
}

impl RtspServer {
    /// Listens on `bind:port` (`port` 0 picks a free one).
    pub fn start(bind: IpAddr, port: u16) -> Result<Self> {
        let server = gst_rtsp_server::RTSPServer::new();
        server.set_address(&bind.to_string());
        server.set_service(&port.to_string());
        let context = glib::MainContext::new();
        server.attach(Some(&context)).with_context(|| {
            format!("RTSP server: cannot listen on {bind}:{port} (port in use?)")
        })?;
        let port = u16::try_from(server.bound_port()).context("RTSP server: no bound port")?;
        let main_loop = glib::MainLoop::new(Some(&context), false);
        let thread = {
            let main_loop = main_loop.clone();
            std::thread::Builder::new()
                .name("rtsp-server".into())
                .spawn(move || {
                    let _ = context.with_thread_default(|| main_loop.run());
                })
                .context("starting the RTSP server thread")?
        };
        let host = if bind.is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            match bind {
                IpAddr::V6(v6) => format!("[{v6}]"),
                IpAddr::V4(v4) => v4.to_string(),
            }
        };
        tracing::info!("RTSP server listening on {bind}:{port}");
        Ok(Self {
            server,
            basic: Arc::default(),
            mounted: Arc::default(),
            main_loop,
            thread: Some(thread),
            host,
            port,
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL a client opens for `path`.
    pub fn url(&self, path: &str) -> String {
        format!("rtsp://{}:{}{}", self.host, self.port, path)
    }

    /// Serves a stream's fan-out, and its audio, at `path`.
    pub fn mount(&self, path: &str, fanout: Arc<Fanout>, audio: Arc<AudioTrack>) -> Result<()> {
        let p = path.to_string();
        let build: MediaBuilder = Box::new(move || media_bin(&fanout, &audio, &p));
        self.mount_media(path, build)
    }

    /// Serves, at `path`, a media built by `build` (a bin whose payloader is named `pay0`).
    pub fn mount_media(&self, path: &str, build: MediaBuilder) -> Result<()> {
        let factory = MediaFactory::new(format!("RTSP mount {path}"), build);
        let mounts = self
            .server
            .mount_points()
            .context("RTSP server has no mount points")?;
        if !crate::supervise::lock(&self.basic).is_empty() {
            factory.add_role_from_structure(
                &gst::Structure::builder(VIEWER_ROLE)
                    .field(gst_rtsp_server::RTSP_PERM_MEDIA_FACTORY_ACCESS, true)
                    .field(gst_rtsp_server::RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, true)
                    .build(),
            );
        }
        mounts.add_factory(path, factory);
        crate::supervise::lock(&self.mounted).insert(path.to_string());
        Ok(())
    }

    /// Makes every mount added from now on require HTTP Basic credentials; others get 401.
    pub fn require_basic_auth(&self, user: &str, password: &str) {
        self.require_users(&[(user, password)]);
    }

    /// Makes every mount added from now on require one of these `(user, password)` pairs
    /// (HTTP Basic); clients without them get 401. Call before mounting.
    pub fn require_users(&self, users: &[(&str, &str)]) {
        let auth = gst_rtsp_server::RTSPAuth::new();
        let token = gst_rtsp_server::RTSPToken::builder()
            .field(gst_rtsp_server::RTSP_TOKEN_MEDIA_FACTORY_ROLE, VIEWER_ROLE)
            .build();
        let mut basic = crate::supervise::lock(&self.basic);
        for (user, password) in users {
            let b = gst_rtsp_server::RTSPAuth::make_basic(user, password).to_string();
            auth.add_basic(&b, &token);
            basic.push(b);
        }
        self.server.set_auth(Some(&auth));
    }

    /// Closes every client connection (clients see the server go away, as when a camera
    /// reboots).
    pub fn disconnect_all(&self) {
        self.server
            .client_filter(Some(&mut |_, _| gst_rtsp_server::RTSPFilterResult::Remove));
    }

    /// Answers a DESCRIBE of a path served elsewhere with `302 Moved Temporarily` and a
    /// `Location`: `elsewhere` maps a path this server does not serve to the base URL
    /// (`rtsp://host:port`) of the server that does, if any; the path and query are kept. When
    /// clients must log in, only a request with valid credentials is redirected (others get the
    /// 401 challenge), so the redirect tells nothing to those who may not watch.
    pub fn redirect(&self, elsewhere: impl Fn(&str) -> Option<String> + Send + Sync + 'static) {
        let elsewhere = Arc::new(elsewhere);
        let (basic, mounted) = (self.basic.clone(), self.mounted.clone());
        self.server.connect_client_connected(move |_, client| {
            // Headers for the answer about to be sent: the server builds that answer itself
            // from the status a `pre-*` handler returns.
            let headers: Arc<std::sync::Mutex<Vec<(RTSPHeaderField, String)>>> = Arc::default();
            let (elsewhere, basic, mounted) = (elsewhere.clone(), basic.clone(), mounted.clone());
            let to_add = headers.clone();
            client.connect_pre_describe_request(move |_, ctx| {
                let Some(url) = ctx
                    .uri()
                    .and_then(|u| url::Url::parse(u.request_uri().as_str()).ok())
                else {
                    return RTSPStatusCode::Ok;
                };
                let path = url.path();
                if crate::supervise::lock(&mounted).contains(path) {
                    return RTSPStatusCode::Ok;
                }
                let Some(base) = elsewhere(path) else {
                    return RTSPStatusCode::Ok;
                };
                let allowed = crate::supervise::lock(&basic);
                let mut add = crate::supervise::lock(&to_add);
                if !allowed.is_empty() && !logged_in(ctx.request(), &allowed) {
                    add.push((
                        RTSPHeaderField::WwwAuthenticate,
                        "Basic realm=\"framegate\"".into(),
                    ));
                    return RTSPStatusCode::Unauthorized;
                }
                let location = match url.query() {
                    Some(q) => format!("{base}{path}?{q}"),
                    None => format!("{base}{path}"),
                };
                add.push((RTSPHeaderField::Location, location));
                RTSPStatusCode::MoveTemporarily
            });
            client.connect("send-message", false, move |_| {
                let add = std::mem::take(&mut *crate::supervise::lock(&headers));
                if !add.is_empty() {
                    // The answer to a refused request is the context's response.
                    gst_rtsp_server::RTSPContext::with_current_context(|ctx| {
                        if let Some(response) = ctx.response() {
                            for (field, value) in &add {
                                response.add_header(*field, value);
                            }
                        }
                    });
                }
                None
            });
        });
    }

    /// Bounds the connections: one more than `limits.connections` is closed as soon as it is
    /// open, and one that has set up no session within `limits.setup_timeout` is closed then
    /// (gst-rtsp-server alone keeps any number of them, each for a minute, and one that asked
    /// in HTTP for ever). Call once, before clients come.
    pub fn limit_clients(&self, limits: ClientLimits) {
        let context = self.main_loop.context();
        self.server.connect_client_connected(move |_, client| {
            let open = CLIENTS_OPEN.fetch_add(1, Ordering::SeqCst) + 1;
            // Counted until the server lets go of the client, whoever closed it.
            let _ = client.add_weak_ref_notify(|| {
                CLIENTS_OPEN.fetch_sub(1, Ordering::SeqCst);
            });
            let over = open > limits.connections;
            let session = Arc::new(AtomicBool::new(false));
            if !over {
                let s = session.clone();
                client.connect_new_session(move |_, _| s.store(true, Ordering::SeqCst));
            }
            // Closed from the server's own loop, once the client is attached to it.
            let weak = client.downgrade();
            let delay = if over {
                Duration::ZERO
            } else {
                limits.setup_timeout
            };
            let close = glib::timeout_source_new(delay, None, glib::Priority::DEFAULT, move || {
                if let Some(c) = weak.upgrade() {
                    if over {
                        CLIENTS_REFUSED.fetch_add(1, Ordering::Relaxed);
                        c.close();
                    } else if !session.load(Ordering::SeqCst) {
                        CLIENTS_IDLE_CLOSED.fetch_add(1, Ordering::Relaxed);
                        c.close();
                    }
                }
                glib::ControlFlow::Break
            });
            close.attach(Some(&context));
        });
    }

    /// Whether something is served at exactly `path`.
    pub fn is_mounted(&self, path: &str) -> bool {
        crate::supervise::lock(&self.mounted).contains(path)
    }

    /// Stops serving `path`; its clients are disconnected.
    pub fn unmount(&self, path: &str) {
        if let Some(mounts) = self.server.mount_points() {
            mounts.remove_factory(path);
        }
        crate::supervise::lock(&self.mounted).remove(path);
    }
}

/// Whether `request` carries one of the `allowed` HTTP Basic credentials.
fn logged_in(request: Option<&gst_rtsp::rtsp_message::RTSPMessage>, allowed: &[String]) -> bool {
    request.is_some_and(|r| {
        r.parse_auth_credentials().iter().any(|c| {
            c.scheme() == gst_rtsp::RTSPAuthMethod::Basic
                && c.authorization().is_some_and(|given| {
                    allowed
                        .iter()
                        .any(|a| crate::redact::same_secret(given.as_bytes(), a.as_bytes()))
                })
        })
    })
}

/// framegate's RTSP server, started when the first stream with an `rtsp` output needs it: a
/// gateway with no RTSP output binds no RTSP port (and cannot collide with a media server on the
/// same host).
pub struct LazyRtspServer {
    bind: IpAddr,
    port: u16,
    users: Vec<(String, String)>,
    limits: ClientLimits,
    started: std::sync::Mutex<Option<Arc<RtspServer>>>,
}

impl LazyRtspServer {
    /// A server for `bind:port` (`port` 0 picks a free one when it starts), asking these
    /// `(user, password)` pairs to log in when there are any, its connections bounded by
    /// `limits`.
    pub fn new(
        bind: IpAddr,
        port: u16,
        users: Vec<(String, String)>,
        limits: ClientLimits,
    ) -> Self {
        Self {
            bind,
            port,
            users,
            limits,
            started: std::sync::Mutex::new(None),
        }
    }

    /// The server, started now if it was not yet.
    pub fn get(&self) -> Result<Arc<RtspServer>> {
        let mut started = crate::supervise::lock(&self.started);
        if let Some(s) = started.as_ref() {
            return Ok(s.clone());
        }
        let server = RtspServer::start(self.bind, self.port)?;
        server.limit_clients(self.limits);
        if !self.users.is_empty() {
            let pairs: Vec<(&str, &str)> = self
                .users
                .iter()
                .map(|(u, p)| (u.as_str(), p.as_str()))
                .collect();
            server.require_users(&pairs);
        }
        let server = Arc::new(server);
        *started = Some(server.clone());
        Ok(server)
    }

    /// The server if it runs.
    pub fn running(&self) -> Option<Arc<RtspServer>> {
        crate::supervise::lock(&self.started).clone()
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        quit_on_its_thread(&self.main_loop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Ends a main loop from another thread. A plain `quit` before the loop's thread has entered
/// `run` is lost (`run` starts by marking the loop running) and the join then waits for ever;
/// a source on the loop's own context quits it once it runs, whenever that is.
fn quit_on_its_thread(main_loop: &glib::MainLoop) {
    let ml = main_loop.clone();
    let quit = glib::idle_source_new(None, glib::Priority::HIGH, move || {
        ml.quit();
        glib::ControlFlow::Break
    });
    quit.attach(Some(&main_loop.context()));
}

/// `appsrc → h264parse → rtph264pay name=pay0`, the appsrc fed by the fan-out.
/// The media of a mount: the stream's H.264 as `pay0`; its audio, in the source's own codec
/// (RTP carries them all), as `pay1` when the stream has audio when the media is made.
fn media_bin(fanout: &Arc<Fanout>, audio: &AudioTrack, path: &str) -> Result<gst::Element> {
    let bin = gst::Bin::new();
    let retimer = Retimer::new();
    let appsrc = AppSrcFeed::appsrc(fanout.caps().as_ref());
    let parse = crate::elements::make("h264parse")?;
    // No `config-interval` here: every key-frame access unit already starts with SPS/PPS
    // (the encoder's h264parse puts them there), and rtph264pay 1.22 would insert them again
    // before *each* IDR slice, in the middle of multi-slice frames, which breaks decoders.
    let pay = gst::ElementFactory::make("rtph264pay")
        .name("pay0")
        .property("pt", 96u32)
        .build()
        .context("GStreamer element `rtph264pay` is missing")?;
    bin.add_many([appsrc.upcast_ref(), &parse, &pay])?;
    gst::Element::link_many([appsrc.upcast_ref(), &parse, &pay])?;
    let name = format!("rtsp {path}");
    if let Some(input) = AudioInput::new(&name, audio, |_| true, AudioCodec::Aac, &retimer) {
        let pay = gst::ElementFactory::make(input.codec.payloader())
            .name("pay1")
            .property("pt", 97u32)
            .build()
            .with_context(|| {
                format!("GStreamer element `{}` is missing", input.codec.payloader())
            })?;
        if matches!(
            input.codec,
            AudioCodec::Pcma | AudioCodec::Pcmu | AudioCodec::L16
        ) {
            // RTP times from the packets' times, not from counted samples (which drift from
            // them at every hole), in 20 ms packets as cameras send.
            pay.set_property("perfect-rtptime", false);
            pay.set_property("max-ptime", 20_000_000i64);
        }
        bin.add_many([input.appsrc.upcast_ref(), &pay])?;
        input.appsrc.link(&pay)?;
        input.attach();
    }
    fanout.add(Arc::new(AppSrcFeed::sharing(
        name,
        &appsrc,
        MOUNT_QUEUE_FRAMES,
        &retimer,
        true,
    )));
    Ok(bin.upcast())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_dropped_as_soon_as_it_started_shuts_down() {
        gst::init().expect("gst");
        // Dropped before its thread may even have entered the main loop: the quit must not be
        // lost (it was, now and then, and the drop waited for ever). Watched from outside.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for _ in 0..50 {
                let server =
                    RtspServer::start("127.0.0.1".parse().expect("ip"), 0).expect("server");
                drop(server);
            }
            let _ = tx.send(());
        });
        rx.recv_timeout(std::time::Duration::from_secs(30))
            .expect("50 servers started and dropped");
    }
}
