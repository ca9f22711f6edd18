//! Real servers for the event tests, each on 127.0.0.1 and a free port, in a temporary folder,
//! stopped on drop: PostgreSQL (a throwaway cluster), Redis, Mosquitto, and a webhook receiver.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Proc, free_port, wait_for_port};

const START: Duration = Duration::from_secs(30);

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A PostgreSQL cluster of its own (Debian's `postgresql`), trust auth, on a free port.
pub struct Postgres {
    pub port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
}

impl Postgres {
    pub fn start() -> Self {
        let bin = [
            "/usr/lib/postgresql/17/bin",
            "/usr/lib/postgresql/16/bin",
            "/usr/lib/postgresql/15/bin",
        ]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("initdb").exists())
        .expect("PostgreSQL is not installed (apt-get install postgresql)");
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            // PostgreSQL refuses to run as root: the cluster belongs to `postgres`.
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let pg = Self {
            port: free_port(),
            bin,
            dir,
        };
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        pg.up();
        pg
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd.args(args).stdin(Stdio::null()).output().unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn up(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "start"],
        );
        wait_for_port(self.port, START);
    }

    /// Stops the server (fast shutdown: connections are cut).
    pub fn down(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let exe = self.bin.join("pg_ctl");
        let data = self.data();
        let args = ["-D", data.as_str(), "-m", "immediate", "stop"];
        let _ = if is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&exe)
                .args(args)
                .output()
        } else {
            Command::new(&exe).args(args).output()
        };
    }
}

/// A `redis-server` without persistence.
pub struct Redis {
    pub port: u16,
    proc: Option<Proc>,
}

impl Redis {
    pub fn start() -> Self {
        let mut r = Self {
            port: free_port(),
            proc: None,
        };
        r.up();
        r
    }

    pub fn up(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is not installed (apt-get install redis-server)");
        self.proc = Some(Proc(child));
        wait_for_port(self.port, START);
    }

    /// Kills the server.
    pub fn kill(&mut self) {
        self.proc = None;
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// A `mosquitto` broker allowing anonymous clients.
pub struct Mosquitto {
    pub port: u16,
    _proc: Proc,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
        .unwrap();
        let exe = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("mosquitto is not installed (apt-get install mosquitto)");
        let mut cmd = Command::new(exe);
        cmd.arg("-c").arg(&conf);
        Self {
            port,
            _proc: listening(cmd, port, "mosquitto"),
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

/// Starts a server quietly and waits until it listens on `port`.
fn listening(mut cmd: Command, port: u16, what: &str) -> Proc {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{what} did not start ({e}): run scripts/setup-debian.sh"));
    let proc = Proc(child);
    wait_for_port(port, START);
    proc
}

/// A coturn TURN server (long-term credentials `user:secret`, relaying on loopback).
pub struct Turn {
    pub port: u16,
    _proc: Proc,
    _dir: tempfile::TempDir,
}

impl Turn {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut cmd = Command::new("turnserver");
        cmd.args(["-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1"])
            .arg(format!("--listening-port={port}"))
            .args(["--user=user:secret", "--realm=framegate", "--lt-cred-mech"])
            .args([
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--allow-loopback-peers",
            ])
            .arg(format!("--userdb={}", dir.path().join("turndb").display()))
            .arg(format!(
                "--pidfile={}",
                dir.path().join("turn.pid").display()
            ));
        Self {
            port,
            _proc: listening(cmd, port, "turnserver (coturn)"),
            _dir: dir,
        }
    }

    /// framegate's form: `turn://user:secret@127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("turn://user:secret@127.0.0.1:{}", self.port)
    }

    /// A browser's `RTCPeerConnection` configuration that relays everything through it.
    pub fn browser_relay_only(&self) -> String {
        format!(
            r#"{{"iceServers":[{{"urls":"turn:127.0.0.1:{}","username":"user","credential":"secret"}}],"iceTransportPolicy":"relay"}}"#,
            self.port
        )
    }
}

/// One request the webhook receiver got.
#[derive(Debug, Clone)]
pub struct Hook {
    pub id: String,
    pub signature: Option<String>,
    pub body: String,
}

/// An HTTP server that records webhook POSTs (answers 200), on a port chosen in advance so
/// that it can be down first and come up later at the address framegate was given.
pub struct WebhookReceiver {
    pub port: u16,
    /// How long it takes to answer each request (a slow receiver), from the next `up`.
    pub answer_after: Duration,
    pub received: Arc<Mutex<Vec<Hook>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WebhookReceiver {
    /// A receiver that is not listening yet.
    pub fn down() -> Self {
        Self {
            port: free_port(),
            answer_after: Duration::ZERO,
            received: Arc::default(),
            stop: None,
            thread: None,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    pub fn up(&mut self) {
        use axum::http::HeaderMap;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let received = self.received.clone();
        let port = self.port;
        let answer_after = self.answer_after;
        self.thread = Some(std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let app = axum::Router::new().route(
                    "/hook",
                    axum::routing::post(move |headers: HeaderMap, body: String| {
                        let received = received.clone();
                        async move {
                            let h = |n: &str| {
                                headers
                                    .get(n)
                                    .and_then(|v| v.to_str().ok())
                                    .map(String::from)
                            };
                            received.lock().unwrap().push(Hook {
                                id: h("x-framegate-alert-id").unwrap_or_default(),
                                signature: h("x-framegate-signature"),
                                body,
                            });
                            tokio::time::sleep(answer_after).await;
                            "ok"
                        }
                    }),
                );
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                    .await
                    .unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
        }));
        self.stop = Some(tx);
        wait_for_port(self.port, START);
    }

    pub fn hooks(&self) -> Vec<Hook> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An etcd cluster (Debian's `etcd-server`) of `n` members on loopback, each with its data in a
/// temporary folder; members can be killed and started again.
pub struct Etcd {
    /// Each member's client port.
    pub clients: Vec<u16>,
    peers: Vec<u16>,
    members: Vec<Option<Proc>>,
    dir: tempfile::TempDir,
}

impl Etcd {
    /// Starts `n` members and waits until the cluster answers.
    pub fn start(n: usize) -> Self {
        let mut e = Self {
            clients: (0..n).map(|_| free_port()).collect(),
            peers: (0..n).map(|_| free_port()).collect(),
            members: (0..n).map(|_| None).collect(),
            dir: tempfile::tempdir().unwrap(),
        };
        for i in 0..n {
            e.up(i);
        }
        e.wait_healthy();
        e
    }

    /// Starts member `i` (again).
    pub fn up(&mut self, i: usize) {
        let cluster: Vec<String> = self
            .peers
            .iter()
            .enumerate()
            .map(|(k, p)| format!("m{k}=http://127.0.0.1:{p}"))
            .collect();
        let client = format!("http://127.0.0.1:{}", self.clients[i]);
        let peer = format!("http://127.0.0.1:{}", self.peers[i]);
        let child = Command::new("etcd")
            .args(["--name", &format!("m{i}")])
            .arg("--data-dir")
            .arg(self.dir.path().join(format!("m{i}")))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &cluster.join(",")])
            .args(["--initial-cluster-token", "framegate-test"])
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd is not installed (apt-get install etcd-server)");
        self.members[i] = Some(Proc(child));
    }

    /// Kills member `i` (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        self.members[i] = None;
    }

    /// Waits until a member that runs says the cluster is healthy (it has a leader).
    pub fn wait_healthy(&self) {
        super::wait_for("etcd to be healthy", START, || {
            self.members
                .iter()
                .zip(&self.clients)
                .filter(|(m, _)| m.is_some())
                .find(|(_, port)| {
                    std::net::TcpStream::connect(("127.0.0.1", **port)).is_ok()
                        && super::http::request(
                            &format!("127.0.0.1:{port}"),
                            "GET",
                            "/health",
                            None,
                            None,
                        )
                        .body
                        .contains("\"health\":\"true\"")
                })
                .map(|_| ())
        });
    }

    /// The index of the member that leads now (asked of every running member).
    pub fn leader(&self) -> Option<usize> {
        self.clients.iter().enumerate().find_map(|(i, port)| {
            self.members[i].as_ref()?;
            let r = super::http::request(
                &format!("127.0.0.1:{port}"),
                "POST",
                "/v3/maintenance/status",
                Some("{}"),
                None,
            );
            let v = r.json();
            let me = v["header"]["member_id"].as_str()?;
            (v["leader"].as_str() == Some(me)).then_some(i)
        })
    }

    /// The client URLs, as `--etcd` arguments and `[cluster] etcd` take them.
    pub fn endpoints(&self) -> Vec<String> {
        self.clients
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect()
    }
}
