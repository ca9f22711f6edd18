//! What the fault-matrix tests measure and report: a process sample (open files, threads,
//! memory) for leak checks, recovery-time percentiles, the share of the frame rate an output
//! kept, and one JSON row per fault under `target/tmp/fault-matrix/` for docs/reliability.md.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::watch::Watcher;
use super::{Framegate, Proc, wait_for};

/// How much of the machine a fault test takes while it runs (a test binary runs its tests in
/// parallel otherwise, as many as the machine has cores).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    /// Half: one small camera, framegate and a watching client, about a tenth of a core in
    /// all; two such tests at once keep their frame rates and their timings.
    Half,
    /// All of it: a test whose load (hundreds of viewers, a database starting, a process
    /// killed and restarted) would move another test's frame rate or recovery time.
    Whole,
}

/// Halves of the machine taken, and the signal that some were given back.
static TAKEN: Mutex<u8> = Mutex::new(0);
static GIVEN_BACK: Condvar = Condvar::new();

/// A fault test's hold on the machine; gives its share back when dropped.
pub struct Turn(u8);

impl Drop for Turn {
    fn drop(&mut self) {
        *TAKEN.lock().unwrap_or_else(|e| e.into_inner()) -= self.0;
        GIVEN_BACK.notify_all();
    }
}

/// Waits until `share` of the machine is free and takes it: at most two `Half` tests run
/// together, and a `Whole` one alone. Frame rates and leak checks mean something only when
/// what runs beside a test is known and small.
pub fn turn(share: Share) -> Turn {
    let halves = match share {
        Share::Half => 1,
        Share::Whole => 2,
    };
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    while *taken + halves > 2 {
        taken = GIVEN_BACK.wait(taken).unwrap_or_else(|e| e.into_inner());
    }
    *taken += halves;
    Turn(halves)
}

/// How many times a repeated fault is injected: `default` unless `FRAMEGATE_FAULT_CYCLES` says.
pub fn cycles(default: usize) -> usize {
    std::env::var("FRAMEGATE_FAULT_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Open files, threads and resident memory of a framegate process.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub fds: u64,
    pub threads: u64,
    pub rss_kib: u64,
}

impl Sample {
    pub fn of(fg: &Framegate) -> Self {
        let (rss_kib, threads) = fg.rss_and_threads();
        Self {
            fds: fg.open_fds(),
            threads,
            rss_kib,
        }
    }
}

/// What a process's open files point at (sockets, pipes, files), counted, for messages.
pub fn fd_targets(pid: u32) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let t = std::fs::read_link(e.path())
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        // socket:[123] and pipe:[456] by kind; files by name.
        let key = t.split(":[").next().unwrap_or_default().to_string();
        *m.entry(key).or_default() += 1;
    }
    m
}

/// Waits until open files and threads are back within a small margin of `before` (sockets and
/// pipelines of the fault are closed asynchronously), then checks memory: a leak is growth that
/// does not go back, not the first use of a pool.
pub fn assert_no_leak(fg: &Framegate, before: Sample, what: &str) -> Sample {
    eprintln!("{what}: open files now {:?}", fd_targets(fg.pid()));
    let after = wait_for(
        &format!("open files and threads back to where they were before {what} ({before:?})"),
        Duration::from_secs(30),
        || {
            let s = Sample::of(fg);
            (s.fds <= before.fds + 6 && s.threads <= before.threads + 6).then_some(s)
        },
    );
    let allowed = before.rss_kib + (before.rss_kib / 4).max(24 * 1024);
    assert!(
        after.rss_kib <= allowed,
        "{what}: memory grew from {} KiB to {} KiB",
        before.rss_kib,
        after.rss_kib
    );
    after
}

/// The p-th percentile (0-100, nearest rank) of durations, in milliseconds.
pub fn percentile_ms(values: &[Duration], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v: Vec<f64> = values.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    (v[rank.min(v.len()) - 1] * 10.0).round() / 10.0
}

/// The share of `fps` the watcher received between `from` and `to`.
pub fn frame_rate_kept(watcher: &Watcher, from: Instant, to: Instant, fps: f64) -> f64 {
    let n = watcher.frames_between(from, to) as f64;
    n / ((to - from).as_secs_f64() * fps)
}

/// The gaps between frames longer than three frame intervals in the window: (seconds into the
/// window, gap in milliseconds), to say where frames went missing.
pub fn gaps(watcher: &Watcher, from: Instant, to: Instant, fps: f64) -> Vec<(f64, f64)> {
    let frames = watcher.frames.lock().unwrap();
    let times: Vec<Instant> = frames
        .iter()
        .map(|f| f.0)
        .filter(|t| *t >= from && *t < to)
        .collect();
    times
        .windows(2)
        .filter(|w| (w[1] - w[0]).as_secs_f64() > 3.0 / fps)
        .map(|w| {
            (
                ((w[0] - from).as_secs_f64() * 10.0).round() / 10.0,
                ((w[1] - w[0]).as_secs_f64() * 1000.0).round(),
            )
        })
        .collect()
}

/// Asserts that an output kept at least 95% of its frame rate over the window.
pub fn assert_frame_rate(
    watcher: &Watcher,
    from: Instant,
    to: Instant,
    fps: f64,
    what: &str,
) -> f64 {
    let kept = frame_rate_kept(watcher, from, to, fps);
    assert!(
        kept >= 0.95,
        "{what}: the output got {:.1}% of its frame rate over {:.1} s; gaps (s, ms): {:?}",
        kept * 100.0,
        (to - from).as_secs_f64(),
        gaps(watcher, from, to, fps)
    );
    kept
}

/// One row of the fault matrix: written as JSON for the docs and printed.
pub struct Row {
    pub fault: &'static str,
    pub cycles: usize,
    pub recoveries: Vec<Duration>,
    /// Time from the fault to the slate (or the first sign of it) at the client.
    pub detections: Vec<Duration>,
    pub frame_rate_kept: f64,
    pub before: Sample,
    pub after: Sample,
    pub notes: String,
}

impl Row {
    pub fn report(&self) {
        let row = serde_json::json!({
            "fault": self.fault,
            "cycles": self.cycles,
            "recovery_ms": { "p50": percentile_ms(&self.recoveries, 50.0),
                             "p99": percentile_ms(&self.recoveries, 99.0),
                             "max": percentile_ms(&self.recoveries, 100.0) },
            "detection_ms": { "p50": percentile_ms(&self.detections, 50.0),
                              "p99": percentile_ms(&self.detections, 99.0) },
            "frame_rate_kept": (self.frame_rate_kept * 1000.0).round() / 1000.0,
            "fds": [self.before.fds, self.after.fds],
            "threads": [self.before.threads, self.after.threads],
            "rss_mib": [self.before.rss_kib / 1024, self.after.rss_kib / 1024],
            "notes": self.notes,
        });
        eprintln!("fault-matrix: {row}");
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fault-matrix");
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join(format!("{}.json", self.fault)), row.to_string());
    }
}

/// Whether this process may make network namespaces and mount file systems (root in CI).
pub fn can_admin() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    root && Command::new("ip")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace made by the test, joined to this one by a veth pair: the "camera's
/// network". Its address is the test's own host; `cut` takes the link down on the camera's side
/// (packets vanish, no reset: a cable pulled), `mend` brings it back. Removed on drop.
pub struct Netns {
    pub name: String,
    host_if: String,
    ns_if: String,
    pub host_ip: Ipv4Addr,
    pub ns_ip: Ipv4Addr,
}

impl Netns {
    pub fn create(tag: &str) -> Self {
        let n = std::process::id() % 200 + 20;
        let sub = match tag {
            "tcp" => 1,
            "udp" => 2,
            _ => 3,
        };
        let name = format!("fg-{tag}-{}", std::process::id());
        let (host_if, ns_if) = (format!("fgh{sub}{n}"), format!("fgn{sub}{n}"));
        let (host_ip, ns_ip) = (
            Ipv4Addr::new(10, 213, n as u8, sub * 4 + 1),
            Ipv4Addr::new(10, 213, n as u8, sub * 4 + 2),
        );
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        ip(&["netns", "add", &name]);
        let ns = Self {
            name,
            host_if,
            ns_if,
            host_ip,
            ns_ip,
        };
        ip(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns.ns_if,
        ]);
        ip(&["link", "set", &ns.ns_if, "netns", &ns.name]);
        ip(&[
            "addr",
            "add",
            &format!("{}/30", ns.host_ip),
            "dev",
            &ns.host_if,
        ]);
        ip(&["link", "set", &ns.host_if, "up"]);
        ns.ns_ip(&["addr", "add", &format!("{}/30", ns.ns_ip), "dev", &ns.ns_if]);
        ns.ns_ip(&["link", "set", &ns.ns_if, "up"]);
        ns.ns_ip(&["link", "set", "lo", "up"]);
        ns
    }

    fn ns_ip(&self, args: &[&str]) {
        let mut a = vec!["netns", "exec", &self.name, "ip"];
        a.extend_from_slice(args);
        ip(&a);
    }

    /// `framegate testsrc` inside the namespace, listening on its address.
    pub fn camera(&self, port: u16, args: &[&str]) -> Proc {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .arg(env!("CARGO_BIN_EXE_framegate"))
            .args(["testsrc", "--bind", &self.ns_ip.to_string()])
            .args(["--rtsp-port", &port.to_string()])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr = SocketAddr::from((self.ns_ip, port));
        wait_for(
            "the camera in the namespace",
            Duration::from_secs(30),
            || {
                TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                    .ok()
                    .map(|_| ())
            },
        );
        Proc(child)
    }

    /// Pulls the cable: the camera's side of the link goes down.
    pub fn cut(&self) {
        self.ns_ip(&["link", "set", &self.ns_if, "down"]);
    }

    /// Plugs it back in.
    pub fn mend(&self) {
        self.ns_ip(&["link", "set", &self.ns_if, "up"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// A small tmpfs the test mounts (and unmounts on drop): a disk that fills up.
pub struct SmallDisk {
    pub dir: tempfile::TempDir,
}

impl SmallDisk {
    pub fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount tmpfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    /// Fills what is left with one file; returns its path (delete it to free the space).
    pub fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.dir.path().join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        // Also the last few bytes.
        while f.write_all(&block[..512]).is_ok() {}
        let _ = f.flush();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
