//! Test harness: real servers and clients on 127.0.0.1 and free ports, cleaned up on drop.
//! No sleeps as synchronisation: everything waits for a condition with a deadline.
#![allow(dead_code, clippy::unwrap_used)]

pub mod av;
pub mod fault;
pub mod http;
pub mod rtsp;
pub mod servers;
pub mod watch;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_video::prelude::*;

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until something accepts TCP connections on the port.
pub fn wait_for_port(port: u16, timeout: Duration) {
    wait_for(
        &format!("port {port} to accept connections"),
        timeout,
        || TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ()),
    );
}

/// A framegate process with its config in a temporary directory; terminated on drop.
pub struct Framegate {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    log: PathBuf,
    args: Vec<String>,
    runs: u32,
}

impl Framegate {
    /// Starts `framegate run --config <config>`.
    pub fn run(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("framegate.toml");
        std::fs::write(&path, config).unwrap();
        let mut args = vec![
            "run".to_string(),
            "--config".into(),
            path.display().to_string(),
        ];
        if !config.contains("http =") {
            // Tests run side by side: never the default API port.
            args.extend(["--http".into(), "127.0.0.1:0".into()]);
        }
        let mut fg = Self {
            child: None,
            log: dir.path().join("framegate.log"),
            dir,
            args,
            runs: 0,
        };
        fg.spawn();
        fg
    }

    fn spawn(&mut self) {
        self.runs += 1;
        self.log = self.dir.path().join(format!("framegate-{}.log", self.runs));
        let child = Command::new(env!("CARGO_BIN_EXE_framegate"))
            .args(&self.args)
            .env("FRAMEGATE_LOG", "info")
            .env_remove("FRAMEGATE_API_TOKEN")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&self.log).unwrap())
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// Stops it (SIGTERM) and starts it again on the same config and directory.
    pub fn restart(&mut self) {
        let status = self.terminate(Duration::from_secs(10));
        assert!(
            status.is_some_and(|s| s.success()),
            "exit status {status:?}"
        );
        self.spawn();
    }

    /// Kills it (SIGKILL: no shutdown at all) and starts it again on the same config and
    /// directory.
    pub fn kill_and_restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.spawn();
    }

    /// Kills it (SIGKILL: no shutdown at all).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends it a signal (`-STOP`, `-CONT`).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success(), "kill {sig} failed");
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// (resident memory in KiB, thread count) from /proc.
    pub fn rss_and_threads(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap()
        };
        (field("VmRSS:"), field("Threads:"))
    }

    /// Its open file descriptors (sockets, pipes and files), from /proc.
    pub fn open_fds(&self) -> u64 {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count() as u64)
            .unwrap_or(0)
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The port its API listens on (from its log, once it listens): for an API on port 0.
    pub fn http_port(&self, timeout: Duration) -> u16 {
        self.port_after("HTTP API listening on http://", timeout)
    }

    /// The port its RTSP server listens on (from its log, once it listens): for `rtsp_port = 0`.
    pub fn rtsp_port(&self, timeout: Duration) -> u16 {
        self.port_after("RTSP server listening on ", timeout)
    }

    /// The port of the `host:port` its log writes after `said`, once it does.
    fn port_after(&self, said: &str, timeout: Duration) -> u16 {
        wait_for(&format!("`{said}` in the log"), timeout, || {
            let log = self.log();
            let at = log.find(said)? + said.len();
            let addr = log[at..].split_whitespace().next()?;
            addr.rsplit_once(':')?.1.parse().ok()
        })
    }

    /// Waits until its log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) {
        wait_for(&format!("`{needle}` in the log"), timeout, || {
            self.log().contains(needle).then_some(())
        });
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let status = wait_for("framegate to exit", timeout, || {
            child.try_wait().ok().flatten()
        });
        Some(status)
    }
}

impl Drop for Framegate {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- framegate log ----\n{}", self.log());
        }
    }
}

/// What this machine's capabilities predict framegate chooses: tests assert these, never a CPU
/// element by name, so that they hold on a machine with an NVIDIA GPU too (NVDEC and NVENC
/// where NVIDIA's GStreamer elements register, the CUDA provider where ONNX Runtime has it and
/// a GPU is present).
pub mod expect {
    fn has(element: &str) -> bool {
        gst::init().unwrap();
        gst::ElementFactory::find(element).is_some()
    }

    /// The H.264 decoder decodebin takes here.
    pub fn h264_decoder() -> &'static str {
        if has("nvh264dec") {
            "nvh264dec"
        } else {
            "avdec_h264"
        }
    }

    /// The H.265 decoder decodebin takes here.
    pub fn h265_decoder() -> &'static str {
        if has("nvh265dec") {
            "nvh265dec"
        } else {
            "avdec_h265"
        }
    }

    /// The H.264 encoder framegate takes here (`hardware = "auto"`; H100/H200 have no NVENC).
    pub fn h264_encoder() -> &'static str {
        if has("nvh264enc") {
            "nvh264enc"
        } else {
            "x264enc"
        }
    }

    /// The ONNX Runtime provider a model with `provider = "auto"` gets: CUDA only with the
    /// GPU build of the library (its CUDA provider beside it) and a GPU.
    pub fn model_provider() -> &'static str {
        let assets =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/assets/onnxruntime");
        let cuda_build = assets.join("libonnxruntime_providers_cuda.so").exists();
        let gpu = std::path::Path::new("/dev/nvidia0").exists();
        if cuda_build && gpu { "cuda" } else { "cpu" }
    }
}

/// A file of `../shared/` (the models and footage every developer and CI has).
pub fn shared(path: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(path);
    assert!(p.exists(), "{} is missing", p.display());
    p
}

/// Fails with what to do when Debian's Chromium or playwright-core is missing.
pub fn require_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        root.join("tests/browser/node_modules/playwright-core")
            .exists()
            && Path::new("/usr/bin/chromium").exists(),
        "chromium or playwright-core is missing: run scripts/setup-debian.sh"
    );
}

/// Runs a browser script of `tests/browser/` with node (and the given environment); returns
/// the JSON line it printed last. Panics with its output when it fails.
pub fn run_browser_script(script: &str, args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/browser")
        .join(script);
    let out = Command::new("node")
        .arg(&path)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("node is not installed");
    assert!(
        out.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.trim().lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{script} printed no JSON ({e}): {text}"))
}

/// The Python interpreter of the test tools venv (`scripts/setup-debian.sh` makes it).
pub fn pytools() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pytools/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup-debian.sh",
        p.display()
    );
    p
}

/// A child process killed on drop (servers and clients the tests start).
pub struct Proc(pub Child);

impl Proc {
    /// Sends it a signal (`-STOP`, `-CONT`, ...) with `kill`.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success(), "kill {sig} failed");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `framegate testsrc` serving `/cam0` on `port` with more arguments (`--size`, `--pattern`),
/// listening when this returns: a camera that can be killed and started again on its port.
pub fn camera_on(port: u16, args: &[&str]) -> Proc {
    let proc = Proc(
        Command::new(env!("CARGO_BIN_EXE_framegate"))
            .args(["testsrc", "--rtsp-port", &port.to_string()])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port, Duration::from_secs(30));
    proc
}

/// `framegate testsrc` on a free port: one stamped 25 fps RTSP camera at
/// `rtsp://127.0.0.1:{port}/cam0` of the given size (`640x360`), listening when this returns.
pub fn testsrc(size: &str) -> (Proc, u16) {
    let port = free_port();
    let proc = Proc(
        Command::new(env!("CARGO_BIN_EXE_framegate"))
            .args(["testsrc", "--rtsp-port", &port.to_string(), "--size", size])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port, Duration::from_secs(30));
    (proc, port)
}

/// An ffprobe (or ffmpeg, `tool`) command for `url`, quiet but for errors, reading RTSP over
/// TCP as a player would.
pub fn av_tool(tool: &str, url: &str) -> Command {
    let mut cmd = Command::new(tool);
    cmd.args(["-v", "error"]);
    if url.starts_with("rtsp://") {
        // A server that answers and then sends nothing ends the tool after 10 s of silence
        // (socket I/O timeout, microseconds) instead of holding the test for ever.
        cmd.args(["-rtsp_transport", "tcp", "-timeout", "10000000"]);
    }
    cmd
}

/// ffprobe's view of the first video stream at `url`: (codec, width, height, r_frame_rate).
pub fn ffprobe(url: &str) -> Option<(String, u32, u32, String)> {
    let mut cmd = av_tool("ffprobe", url);
    cmd.args(["-analyzeduration", "1000000", "-probesize", "500000"]);
    let out = cmd
        .args([
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,width,height,r_frame_rate",
            "-of",
            "csv=p=0",
            url,
        ])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut f = text.trim().split(',');
    Some((
        f.next()?.to_string(),
        f.next()?.parse().ok()?,
        f.next()?.parse().ok()?,
        f.next()?.to_string(),
    ))
}

/// Runs `framegate check` on `text`; returns (success, stdout + stderr).
pub fn check_config(text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("streams.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_framegate"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Runs `cmd` to its end and returns what it printed; fails the test with its stderr when it
/// did not succeed.
#[track_caller]
pub fn succeeded(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Writes an H.264 MP4 of a moving test pattern: `frames` frames of `width`x`height` at 25 fps.
pub fn make_clip(path: &Path, frames: u32, width: u32, height: u32) {
    let status = Command::new("gst-launch-1.0")
        .args([
            "-q",
            "videotestsrc",
            &format!("num-buffers={frames}"),
            "pattern=ball",
            "!",
        ])
        .arg(format!(
            "video/x-raw,width={width},height={height},framerate=25/1"
        ))
        .args([
            "!",
            "x264enc",
            "speed-preset=ultrafast",
            "!",
            "mp4mux",
            "!",
            "filesink",
        ])
        .arg(format!("location={}", path.display()))
        .status()
        .expect("gst-launch-1.0 is not installed");
    assert!(status.success(), "could not make {}", path.display());
}

/// The number of video frames ffprobe decodes from a file (asserting it is H.264).
pub fn count_frames(path: &Path) -> u64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut f = text.trim().split(',');
    assert_eq!(f.next(), Some("h264"), "not an H.264 file: {text}");
    f.next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// A decoded frame's luma plane.
#[derive(Clone)]
pub struct Gray {
    pub width: usize,
    pub height: usize,
    pub luma: Vec<u8>,
}

impl Gray {
    /// Writes the frame as a PGM picture (for looking at a failure).
    pub fn save_pgm(&self, path: &str) {
        let mut data = format!("P5\n{} {}\n255\n", self.width, self.height).into_bytes();
        data.extend_from_slice(&self.luma);
        let _ = std::fs::write(path, data);
    }

    /// Mean absolute difference against `other` over a rectangle.
    pub fn diff(&self, other: &Gray, x: usize, y: usize, w: usize, h: usize) -> f64 {
        let mut sum = 0u64;
        for row in y..y + h {
            for col in x..x + w {
                let a = self.luma[row * self.width + col] as i64;
                let b = other.luma[row * other.width + col] as i64;
                sum += (a - b).unsigned_abs();
            }
        }
        sum as f64 / (w * h) as f64
    }
}

/// Reads `count` decoded frames from a URL GStreamer can open (RTSP over TCP, RTMP, a file).
pub fn grab_frames(url: &str, count: usize, timeout: Duration) -> Vec<Gray> {
    gst::init().unwrap();
    let pipeline = gst::Pipeline::new();
    // A small jitter buffer, as real players have: with none, a loaded test machine makes the
    // client drop late packets of key frames and decode nothing for seconds.
    let src = framegate::elements::uri_decoder(url, Some(200)).unwrap();
    let convert = gst::ElementFactory::make("videoconvert").build().unwrap();
    let sink = framegate::elements::gray8_sink();
    pipeline
        .add_many([&src, &convert, sink.upcast_ref()])
        .unwrap();
    convert.link(&sink).unwrap();
    framegate::elements::link_new_pads(&src, &convert, framegate::elements::PadFilter::Video);
    pipeline.set_state(gst::State::Playing).unwrap();
    let deadline = Instant::now() + timeout;
    let mut frames = Vec::new();
    while frames.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "got {} of {count} frames from {url}",
            frames.len()
        );
        let Some(sample) =
            sink.try_pull_sample(gst::ClockTime::from_mseconds(left.as_millis() as u64))
        else {
            continue;
        };
        let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
        let buffer = sample.buffer_owned().unwrap();
        let frame = gst_video::VideoFrame::from_buffer_readable(buffer, &info).unwrap();
        let (w, h) = (info.width() as usize, info.height() as usize);
        let stride = frame.plane_stride()[0] as usize;
        let data = frame.plane_data(0).unwrap();
        let mut luma = Vec::with_capacity(w * h);
        for row in 0..h {
            luma.extend_from_slice(&data[row * stride..row * stride + w]);
        }
        frames.push(Gray {
            width: w,
            height: h,
            luma,
        });
    }
    pipeline.set_state(gst::State::Null).unwrap();
    frames
}

/// An nginx with the RTMP module, on its own config and a free port.
pub struct Nginx {
    _proc: Proc,
    pub port: u16,
    /// The HTTP port of its `/stat` page, when started with one.
    pub stat_port: Option<u16>,
    _dir: tempfile::TempDir,
}

impl Nginx {
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Self {
        Self::start_with(port, None)
    }

    /// With its RTMP statistics at `http://127.0.0.1:<stat_port>/stat`, and a publisher that
    /// sent nothing for two seconds dropped (so that another may take its stream).
    pub fn start_with_stat() -> Self {
        Self::start_with(free_port(), Some(free_port()))
    }

    fn start_with(port: u16, stat_port: Option<u16>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let module = ["/usr/lib/nginx/modules/ngx_rtmp_module.so"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("the nginx RTMP module (libnginx-mod-rtmp) is not installed");
        let conf = format!(
            "load_module {module};\n\
             daemon off;\nmaster_process off;\nworker_processes 1;\n\
             error_log {d}/error.log info;\npid {d}/nginx.pid;\n\
             events {{ worker_connections 256; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n\
               application live {{ live on; record off;{idle} }} }} }}\n{http}",
            d = dir.path().display(),
            idle = if stat_port.is_some() { " drop_idle_publisher 2s;" } else { "" },
            http = stat_port.map_or(String::new(), |s| format!(
                "http {{ access_log off; server {{ listen 127.0.0.1:{s}; location /stat {{ rtmp_stat all; }} }} }}\n"
            )),
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nginx is not installed");
        let mut proc = Proc(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(_)) = proc.0.try_wait() {
                let mut err = String::new();
                let _ = proc.0.stderr.take().unwrap().read_to_string(&mut err);
                panic!("nginx exited: {err}");
            }
            assert!(Instant::now() < deadline, "nginx did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            _proc: proc,
            port,
            stat_port,
            _dir: dir,
        }
    }

    pub fn url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{key}", self.port)
    }
}

/// Publishes a moving test pattern to an RTMP URL with ffmpeg (as OBS would), in real time.
pub fn ffmpeg_publish_rtmp(url: &str, size: &str) -> Proc {
    ffmpeg_publish_rtmp_from(url, &format!("testsrc2=size={size}:rate=25"), &[])
}

/// Publishes a clip to an RTMP URL in real time as OBS would: its H.264 and AAC copied.
pub fn ffmpeg_publish_rtmp_file(clip: &Path, url: &str) -> Proc {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-re", "-i"])
        .arg(clip)
        .args(["-c", "copy", "-f", "flv", url]);
    ffmpeg_quiet(cmd)
}

/// Starts an ffmpeg command with no input and its output thrown away.
fn ffmpeg_quiet(mut cmd: Command) -> Proc {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg is not installed");
    Proc(child)
}

/// Publishes an ffmpeg `lavfi` input to an RTMP URL in real time, H.264 as OBS sends it, with
/// `extra` output arguments (a bitstream filter, say).
pub fn ffmpeg_publish_rtmp_from(url: &str, input: &str, extra: &[&str]) -> Proc {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-re", "-f", "lavfi", "-i", input])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(extra)
        .args(["-f", "flv", url]);
    ffmpeg_quiet(cmd)
}
