//! framegate nodes on a real etcd cluster (three members on loopback): cameras written to etcd
//! all or none, nodes registered under leases that a killed node loses and a stopped etcd
//! fences, an etcd member's death harming nothing; cameras spread over nodes, moved off a
//! killed node and rebalanced onto a new one; a node stopped past its lease never publishing
//! beside its camera's new owner (nginx-rtmp's `/stat` sampled); alerts of a camera raised
//! before and after its owner's kill -9 delivered once each from a shared PostgreSQL, with
//! their owners' fencing tokens; RTSP clients of either node sent to each camera's owner (302),
//! and only once logged in where the node asks for it.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;

use common::http::{all_events, get_json};
use common::servers::{Etcd, Postgres, WebhookReceiver};
use common::{Framegate, shared, succeeded, wait_for, wait_for_port};

const TTL_S: u64 = 3;

fn framegate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_framegate"))
}

/// `framegate cluster status --json`.
fn status(etcd: &Etcd) -> serde_json::Value {
    let mut cmd = framegate();
    cmd.args(["cluster", "status", "--json"]);
    for e in etcd.endpoints() {
        cmd.args(["--etcd", &e]);
    }
    serde_json::from_slice(&succeeded(&mut cmd).stdout).unwrap()
}

fn camera_ids(etcd: &Etcd) -> Vec<String> {
    status(etcd)["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

/// Each camera's owner (none while nobody holds it) and fencing token.
type Placed = BTreeMap<String, (Option<String>, Option<i64>)>;

/// The cameras as `cluster status` shows them now.
fn tokens(etcd: &Etcd) -> Placed {
    status(etcd)["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                (c["owner"].as_str().map(str::to_string), c["token"].as_i64()),
            )
        })
        .collect()
}

/// Each camera's owner (none while nobody holds it).
fn owners(etcd: &Etcd) -> BTreeMap<String, Option<String>> {
    tokens(etcd).into_iter().map(|(c, (o, _))| (c, o)).collect()
}

fn nodes(etcd: &Etcd) -> Vec<String> {
    let mut n: Vec<String> = status(etcd)["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap().to_string())
        .collect();
    n.sort();
    n
}

fn import(etcd: &Etcd, file: &Path) -> std::process::Output {
    let mut cmd = framegate();
    cmd.args(["cluster", "import"]);
    for e in etcd.endpoints() {
        cmd.args(["--etcd", &e]);
    }
    cmd.arg(file).output().unwrap()
}

fn node(etcd: &Etcd, name: &str) -> Framegate {
    node_on(etcd, name).0
}

/// A node and the port its API listens on.
fn node_on(etcd: &Etcd, name: &str) -> (Framegate, u16) {
    node_with(etcd, name, "", "")
}

/// A node with more of its own config: `server`, keys of its `[server]` table, and `extra`,
/// TOML tables; and the port its API listens on.
fn node_with(etcd: &Etcd, name: &str, server: &str, extra: &str) -> (Framegate, u16) {
    node_of(&etcd.endpoints(), name, server, extra)
}

/// A node that knows only these etcd `endpoints`. Its API listens on a port the system gives
/// it (advertised as such): a port picked by the test could be taken, before the node binds
/// it, by one of the many servers the tests beside it start on port 0.
fn node_of(endpoints: &[String], name: &str, server: &str, extra: &str) -> (Framegate, u16) {
    let endpoints: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    let fg = Framegate::run(&format!(
        "[server]\nhttp = \"127.0.0.1:0\"\nrtsp_port = 0\n{server}\n[cluster]\netcd = [{}]\nnode = \"{name}\"\ncapacity = 32\nttl_s = {TTL_S}\n\n{extra}",
        endpoints.join(", ")
    ));
    let http = fg.http_port(Duration::from_secs(30));
    (fg, http)
}

/// The cameras a node's API lists as running for the cluster, live, with it as their owner.
fn live_on(http: u16, name: &str) -> BTreeSet<String> {
    if std::net::TcpStream::connect(("127.0.0.1", http)).is_err() {
        return BTreeSet::new(); // not listening yet
    }
    let list = get_json(&format!("127.0.0.1:{http}"), "/api/streams");
    list.as_array()
        .into_iter()
        .flatten()
        .filter(|s| {
            s["owner"] == name && s["state"] == "live" && s["fencing_token"].as_i64().is_some()
        })
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn cameras_are_imported_all_or_none() {
    let etcd = Etcd::start(3);
    let dir = tempfile::tempdir().unwrap();
    let stream = |id: &str, extra: &str| {
        format!(
            "[[streams]]\nid = \"{id}\"\nsource = \"test://smpte?width=320&height=180&fps=25\"\n{extra}\n"
        )
    };
    // The third stream is wrong: nothing is written, and the error names the file and line.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        [
            stream("a", ""),
            stream("b", ""),
            stream("c", "stall_timeout_s = 1e300"),
        ]
        .concat(),
    )
    .unwrap();
    let out = import(&etcd, &bad);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("bad.toml:") && err.contains("stall_timeout_s"),
        "{err}"
    );
    assert_eq!(camera_ids(&etcd), Vec::<String>::new());
    // A stream running the user's Python code is the node's own config's to name.
    let py = dir.path().join("py.toml");
    std::fs::write(&py, "def process(frame, meta):\n    return None\n").unwrap();
    let with_py = dir.path().join("with_py.toml");
    std::fs::write(
        &with_py,
        stream(
            "p",
            &format!(
                "processors = [ {{ kind = \"python\", file = \"{}\" }} ]",
                py.display()
            ),
        ),
    )
    .unwrap();
    let out = import(&etcd, &with_py);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("python"), "{err}");
    assert_eq!(camera_ids(&etcd), Vec::<String>::new());

    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        [stream("a", ""), stream("b", ""), stream("c", "")].concat(),
    )
    .unwrap();
    let out = import(&etcd, &good);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "3 cameras written to etcd"
    );
    assert_eq!(camera_ids(&etcd), ["a", "b", "c"]);
}

#[test]
fn nodes_register_under_leases_a_killed_node_loses_and_a_lost_etcd_fences() {
    let mut etcd = Etcd::start(3);
    let mut a = node(&etcd, "node-a");
    let mut b = node(&etcd, "node-b");
    let both = vec!["node-a".to_string(), "node-b".to_string()];
    wait_for("both nodes registered", Duration::from_secs(20), || {
        (nodes(&etcd) == both).then_some(())
    });
    // A second node of the same name is refused while the first holds its lease.
    let twin = node(&etcd, "node-a");
    twin.wait_log("held by another node's lease", Duration::from_secs(20));
    assert_eq!(nodes(&etcd), both);
    drop(twin);

    // An etcd member dies (the first endpoint each node tries): nobody is fenced, nobody leaves.
    etcd.kill(0);
    let until = Instant::now() + Duration::from_secs(2 * TTL_S);
    while Instant::now() < until {
        assert_eq!(
            nodes(&etcd),
            both,
            "a node left while one etcd member was down"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for n in [&a, &b] {
        assert!(!n.log().contains("fenced"), "{}", n.log());
    }
    etcd.up(0);

    // kill -9: the node's key goes with its lease, within the TTL (and a renewal's slack).
    b.kill();
    let killed = Instant::now();
    wait_for(
        "the killed node's lease to expire",
        Duration::from_secs(TTL_S + 3),
        || (nodes(&etcd) == ["node-a"]).then_some(()),
    );
    let gone = killed.elapsed();
    assert!(gone <= Duration::from_secs(TTL_S + 2), "{gone:?}");

    // etcd entirely gone: the node fences itself before its lease could have expired...
    for i in 0..3 {
        etcd.kill(i);
    }
    let lost = Instant::now();
    a.wait_log("cluster: fenced", Duration::from_secs(TTL_S + 2));
    assert!(
        lost.elapsed() < Duration::from_secs(TTL_S),
        "{:?}",
        lost.elapsed()
    );
    // ...and registers again under a new lease when etcd is back.
    for i in 0..3 {
        etcd.up(i);
    }
    etcd.wait_healthy();
    wait_for("node-a registered again", Duration::from_secs(30), || {
        (a.log().matches("cluster: registered").count() >= 2 && nodes(&etcd) == ["node-a"])
            .then_some(())
    });
    // A clean stop leaves at once: its key goes now, not a TTL later.
    let status = a.terminate(Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()));
    assert_eq!(nodes(&etcd), Vec::<String>::new());
}

#[test]
fn a_wrong_cluster_table_is_a_config_error_with_its_line() {
    for (table, want) in [
        (
            "etcd = [\"http://root:hunter2@10.0.0.5:2379\"]\nnode = \"a\"",
            "cluster.etcd",
        ),
        (
            "etcd = [\"http://10.0.0.5:2379\"]\nnode = \"../a\"",
            "cluster.node",
        ),
        (
            "etcd = [\"http://10.0.0.5:2379\"]\nnode = \"a\"\nttl_s = 100000",
            "cluster.ttl_s",
        ),
    ] {
        let (ok, text) = common::check_config(&format!(
            "[server]\nsummary_interval_s = 1\n\n[cluster]\n{table}\n"
        ));
        assert!(!ok, "{table}: accepted");
        assert!(
            text.contains(want) && text.contains("streams.toml:"),
            "{table}: {text}"
        );
        assert!(
            !text.contains("hunter2"),
            "the etcd password leaked: {text}"
        );
    }
}

#[test]
fn cameras_spread_over_the_nodes_move_off_a_killed_one_and_rebalance_when_one_joins() {
    let etcd = Etcd::start(3);
    let cams: Vec<String> = (0..6).map(|i| format!("cam{i}")).collect();
    let _dir = import_patterns(&etcd, &cams, "160x90@10", |_| String::new());
    let names = ["node-a", "node-b", "node-c"];
    let mut running: Vec<(Framegate, u16)> = names.iter().map(|n| node_on(&etcd, n)).collect();

    // Cameras spread `per` to a node, each live on its owner and on no other node.
    let spread = |running: &[(Framegate, u16)], names: &[&str], per: usize| {
        let o = owners(&etcd);
        let mut count: BTreeMap<String, usize> = BTreeMap::new();
        for owner in o.values() {
            *count.entry(owner.clone()?).or_default() += 1;
        }
        let even = count.len() == names.len() && names.iter().all(|n| count.get(*n) == Some(&per));
        let agree = running.iter().zip(names).all(|((_, http), n)| {
            let held: BTreeSet<String> = o
                .iter()
                .filter(|(_, w)| w.as_deref() == Some(*n))
                .map(|(c, _)| c.clone())
                .collect();
            live_on(*http, n) == held
        });
        (even && agree).then_some(o)
    };
    let placed = wait_for(
        "six cameras spread two by two",
        Duration::from_secs(40),
        || spread(&running, &names, 2),
    );

    // Any node answers for every camera: its list holds all six with their owners, and a call
    // about a camera another node runs is redirected there, path and query kept.
    let a = format!("127.0.0.1:{}", running[0].1);
    // (Each node reads the cluster once a round: its list catches up within one.)
    let list = wait_for(
        "node-a's list of the whole cluster",
        Duration::from_secs(10),
        || {
            let l = get_json(&a, "/api/streams");
            let all = l.as_array().unwrap();
            let owned = all
                .iter()
                .all(|s| s["owner"].as_str() == placed[s["id"].as_str().unwrap()].as_deref());
            (all.len() == 6 && owned).then_some(l)
        },
    );
    for s in list.as_array().unwrap() {
        let here = s["owner"] == "node-a";
        assert_eq!(s["state"] == "elsewhere", !here, "{s}");
    }
    // Its metrics say who runs how many, and that it is a member.
    wait_for("node-a's cluster metrics", Duration::from_secs(10), || {
        let m = common::http::request(&a, "GET", "/metrics", None, None).body;
        ["node-a", "node-b", "node-c"]
            .iter()
            .all(|n| m.contains(&format!("framegate_cluster_cameras{{node=\"{n}\"}} 2\n")))
            .then_some(())
            .filter(|()| m.contains("framegate_cluster_member{node=\"node-a\"} 1\n"))
    });
    // A camera this node holds for the cluster changes in etcd, not through its API.
    let mine = placed
        .iter()
        .find(|(_, o)| o.as_deref() == Some("node-a"))
        .map(|(c, _)| c.clone())
        .unwrap();
    for (method, path) in [
        ("POST", format!("/api/streams/{mine}/stop")),
        ("DELETE", format!("/api/streams/{mine}")),
    ] {
        let r = common::http::request(&a, method, &path, None, None);
        assert_eq!(r.status, 400, "{method} {path}: {}", r.body);
        assert!(r.body.contains("cluster camera"), "{}", r.body);
    }
    assert!(live_on(running[0].1, "node-a").contains(&mine));
    let cam = placed
        .iter()
        .find(|(_, o)| o.as_deref() == Some("node-b"))
        .map(|(c, _)| c.clone())
        .unwrap();
    let b_http = running[1].1;
    for path in [
        format!("/api/streams/{cam}"),
        format!("/streams/{cam}/hls/index.m3u8?vt=x"),
    ] {
        let r = common::http::request(&a, "GET", &path, None, None);
        assert_eq!(r.status, 307, "{path}: {}", r.body);
        assert_eq!(
            r.header("location"),
            Some(format!("http://127.0.0.1:{b_http}{path}").as_str()),
            "{path}"
        );
    }

    // kill -9 of a node: its cameras are held and live on the others within TTL + start-up.
    let before = owners(&etcd);
    let (mut b, _) = running.remove(1);
    b.kill();
    let killed = Instant::now();
    let left = ["node-a", "node-c"];
    let after = wait_for(
        "node-b's cameras live elsewhere",
        Duration::from_secs(TTL_S + 20),
        || spread(&running, &left, 3),
    );
    let took = killed.elapsed();
    for (cam, owner) in &before {
        if owner.as_deref() != Some("node-b") {
            assert_eq!(&after[cam], owner, "{cam} moved though its node lived");
        }
    }
    eprintln!("failover after kill -9: {took:?}");
    assert!(took < Duration::from_secs(TTL_S + 10), "{took:?}");

    // A node joins: it takes its share (two), and only those two move.
    let before = after;
    running.insert(1, node_on(&etcd, "node-d"));
    let now = ["node-a", "node-d", "node-c"];
    let after = wait_for("the new node's share", Duration::from_secs(40), || {
        spread(&running, &now, 2)
    });
    let moved = cams.iter().filter(|c| before[*c] != after[*c]).count();
    assert_eq!(moved, 2, "{before:?} -> {after:?}");
}

/// The publishing clients of each stream in nginx-rtmp's `/stat` (their client ids).
fn publishers(stat_port: u16) -> BTreeMap<String, Vec<String>> {
    let page = common::http::request(
        &format!("127.0.0.1:{stat_port}"),
        "GET",
        "/stat",
        None,
        None,
    )
    .body;
    let between = |s: &str, a: &str, b: &str| -> Option<String> {
        let i = s.find(a)? + a.len();
        Some(s[i..i + s[i..].find(b)?].to_string())
    };
    page.split("<stream>")
        .skip(1)
        .filter_map(|st| {
            let name = between(st, "<name>", "</name>")?;
            let ids = st
                .split("<client>")
                .skip(1)
                .filter(|c| c.contains("<publishing/>"))
                .filter_map(|c| between(c, "<id>", "</id>"))
                .collect();
            Some((name, ids))
        })
        .collect()
}

/// Imports two cameras, `cam0` and `cam1`, test patterns of `size` (`WxH@fps`) pushing to
/// `nginx`; the folder of the imported file.
fn import_pushed(etcd: &Etcd, nginx: &common::Nginx, size: &str) -> tempfile::TempDir {
    let ids = ["cam0".to_string(), "cam1".to_string()];
    import_patterns(etcd, &ids, size, |c| {
        format!(
            "outputs = [ {{ kind = \"rtmp\", url = \"{}\" }} ]",
            nginx.url(c)
        )
    })
}

/// Imports test-pattern cameras `ids` of `size` (`WxH@fps`), each table ending with the lines
/// `extra` gives for its id; the folder of the imported file.
fn import_patterns(
    etcd: &Etcd,
    ids: &[String],
    size: &str,
    extra: impl Fn(&str) -> String,
) -> tempfile::TempDir {
    let (wh, fps) = size.split_once('@').unwrap();
    let (w, h) = wh.split_once('x').unwrap();
    let tables: String = ids
        .iter()
        .map(|c| {
            format!(
                "[[streams]]\nid = \"{c}\"\nsource = \"test://smpte?width={w}&height={h}&fps={fps}\"\n{}\n\n",
                extra(c)
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cameras.toml");
    std::fs::write(&file, tables).unwrap();
    assert!(import(etcd, &file).status.success());
    dir
}

/// Waits until `cam0` and `cam1` are held by two different nodes and each published once:
/// their owners and tokens, and the publishers.
fn one_each_published(etcd: &Etcd, stat: u16) -> (Placed, BTreeMap<String, Vec<String>>) {
    wait_for(
        "one camera a node, both published",
        Duration::from_secs(40),
        || {
            let t = tokens(etcd);
            let p = publishers(stat);
            let one_each =
                t["cam0"].0.is_some() && t["cam1"].0.is_some() && t["cam0"].0 != t["cam1"].0;
            let published = ["cam0", "cam1"]
                .iter()
                .all(|c| p.get(*c).is_some_and(|v| v.len() == 1));
            (one_each && published).then_some((t, p))
        },
    )
}

/// Samples nginx-rtmp's `/stat` every 100 ms until finished: the most publishers of one
/// stream seen at once, and how many samples.
struct Sampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(usize, usize)>,
}

impl Sampler {
    fn start(stat: u16) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut worst, mut samples) = (0, 0);
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                for ids in publishers(stat).values() {
                    worst = worst.max(ids.len());
                }
                samples += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            (worst, samples)
        });
        Self { stop, thread }
    }

    fn finish(self) -> (usize, usize) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

#[test]
fn a_node_stopped_past_its_lease_never_publishes_beside_the_new_owner() {
    let etcd = Etcd::start(3);
    let nginx = common::Nginx::start_with_stat();
    let stat = nginx.stat_port.unwrap();
    let _dir = import_pushed(&etcd, &nginx, "320x180@25");
    let mut a = node(&etcd, "node-a");
    let mut b = node(&etcd, "node-b");
    let first = one_each_published(&etcd, stat);
    let (owners0, pubs0) = first;
    let victim_name = owners0["cam0"].0.clone().unwrap();
    let (victim, survivor) = if victim_name == "node-a" {
        (&mut a, "node-b")
    } else {
        (&mut b, "node-a")
    };
    let old_publisher = pubs0["cam0"][0].clone();

    // Sample nginx every 100 ms from here on: never two publishers of one stream.
    let sampler = Sampler::start(stat);
    victim.signal("-STOP");
    let stopped = Instant::now();
    wait_for(
        "cam0 published by its new owner",
        Duration::from_secs(30),
        || {
            let p = publishers(stat);
            let new = p
                .get("cam0")
                .is_some_and(|v| v.len() == 1 && v[0] != old_publisher);
            (new && owners(&etcd)["cam0"].as_deref() == Some(survivor)).then_some(())
        },
    );
    let took = stopped.elapsed();
    eprintln!("cam0 published again by {survivor} {took:?} after SIGSTOP of {victim_name}");
    assert!(took < Duration::from_secs(TTL_S + 8), "{took:?}");

    // Resumed: the node finds its lease gone, is fenced, and publishes nothing it was not
    // given again through etcd.
    victim.signal("-CONT");
    victim.wait_log("cluster: fenced", Duration::from_secs(10));
    // It does not take its camera back: the assigner gives a node that came back cameras
    // only once it has stayed for two TTLs (counted from its new registration).
    let until = Instant::now() + Duration::from_secs(TTL_S);
    while Instant::now() < until {
        assert!(publishers(stat).get("cam0").is_none_or(|v| v.len() <= 1));
        assert_eq!(owners(&etcd)["cam0"].as_deref(), Some(survivor));
        std::thread::sleep(Duration::from_millis(200));
    }
    let (worst, samples) = sampler.finish();
    assert!(samples > 20, "{samples} samples");
    assert_eq!(worst, 1, "two publishers of one stream at once");
    let log = victim.log();
    let after = &log[log.find("cluster: fenced").unwrap()..];
    if let Some(p) = after.find("output publishing") {
        let claimed = after.find("cluster: camera claimed");
        assert!(
            claimed.is_some_and(|c| c < p),
            "published again without a claim: {after}"
        );
    }
}

#[test]
fn sixty_cameras_converge_to_one_owner_each_and_the_etcd_leader_s_death_moves_none() {
    let mut etcd = Etcd::start(3);
    // Small cameras: what is measured is who holds them.
    let ids: Vec<String> = (0..60).map(|i| format!("c{i:02}")).collect();
    let _dir = import_patterns(&etcd, &ids, "64x36@5", |_| String::new());
    let names = ["node-a", "node-b", "node-c"];
    let running: Vec<(Framegate, u16)> = names.iter().map(|n| node_on(&etcd, n)).collect();
    let converged = || {
        let o = owners(&etcd);
        let mut count: BTreeMap<String, usize> = BTreeMap::new();
        for owner in o.values() {
            *count.entry(owner.clone()?).or_default() += 1;
        }
        // Exactly one owner each (etcd's keys), 20 a node, and each node runs exactly its own.
        let even = names.iter().all(|n| count.get(*n) == Some(&20));
        let runs = running.iter().zip(names).all(|((_, http), n)| {
            let held: BTreeSet<String> = o
                .iter()
                .filter(|(_, w)| w.as_deref() == Some(n))
                .map(|(c, _)| c.clone())
                .collect();
            live_on(*http, n) == held
        });
        (even && runs).then_some(o)
    };
    let settled = wait_for("60 cameras, 20 a node", Duration::from_secs(90), converged);

    // The etcd leader dies: a new one is elected, every lease holds, no camera moves.
    let leader = etcd.leader().expect("no etcd leader");
    etcd.kill(leader);
    let until = Instant::now() + Duration::from_secs(2 * TTL_S);
    while Instant::now() < until {
        assert_eq!(
            owners(&etcd),
            settled,
            "a camera moved when the etcd leader died"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    for (fg, _) in &running {
        assert!(!fg.log().contains("cluster: fenced"), "{}", fg.log());
    }
}

#[test]
fn alerts_raised_before_a_failover_are_delivered_once_each_and_carry_their_owner_s_token() {
    let etcd = Etcd::start(3);
    let pg = Postgres::start();
    let mut hooks = WebhookReceiver::down();
    let long = Duration::from_secs(90);
    // Models and alert rules are each node's own config; the database is shared.
    let extra = format!(
        r#"[database]
url = "{url}"

[[models]]
id = "coco"
path = "{model}"
format = "centernet"
threads = 1

[[alerts]]
id = "person-seen"
class = "person"
streams = ["people"]
min_frames = 2
cooldown_s = 2
webhook = {{ url = "{hook}", timeout_s = 2 }}
"#,
        url = pg.url(),
        model = shared("models/centernet.onnx").display(),
        hook = hooks.url(),
    );
    // A node plays files only from its media folders, whoever names them.
    let media = shared("testdata").canonicalize().unwrap();
    let server = format!("media_dirs = [\"{}\"]\n", media.display());
    // The imported file leaves models to the nodes: each loads its own, and checks a camera's
    // model when it takes the camera.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cameras.toml");
    std::fs::write(
        &file,
        format!(
            "[[streams]]\nid = \"people\"\nsource = \"file://{}\"\nprocessors = [ {{ kind = \"detect\", model = \"coco\", min_score = 0.3 }} ]\n",
            media.join("vtest.avi").display()
        ),
    )
    .unwrap();
    assert!(import(&etcd, &file).status.success());
    let names = ["node-a", "node-b", "node-c"];
    let mut running: BTreeMap<&str, (Framegate, u16)> = names
        .iter()
        .map(|n| (*n, node_with(&etcd, n, &server, &extra)))
        .collect();
    for (_, http) in running.values() {
        wait_for_port(*http, long);
    }

    // Alerts of the first owner wait in the outbox while the receiver is down.
    let first = wait_for("an owner for the camera", long, || {
        owners(&etcd)["people"].clone()
    });
    let survivor = names.iter().find(|n| **n != first).unwrap().to_string();
    // A survivor answers for the shared database throughout.
    let addr = format!("127.0.0.1:{}", running[survivor.as_str()].1);
    let alerts = || all_events(&addr, "&kind=alert&stream=people");
    let tokens = |events: &[serde_json::Value]| -> BTreeSet<i64> {
        events
            .iter()
            .map(|e| {
                e["fencing_token"]
                    .as_i64()
                    .expect("an alert's fencing token")
            })
            .collect()
    };
    wait_for("two alerts of the first owner", long, || {
        (alerts().len() >= 2).then_some(())
    });
    wait_for("failed webhook attempts", long, || {
        let s = get_json(&addr, "/api/store");
        (s["outbox"]["pending"].as_i64().unwrap() >= 2).then_some(())
    });
    let before = tokens(&alerts());
    assert_eq!(before.len(), 1, "one owner so far: {before:?}");

    // kill -9 of the owner (its claims on outbox rows lapse unfinished): another node takes
    // the camera under a newer token and raises alerts of its own.
    running.get_mut(first.as_str()).unwrap().0.kill();
    wait_for("alerts under the new owner's token", long, || {
        let t = tokens(&alerts());
        (t.len() == 2 && t.iter().max() > before.iter().max()).then_some(())
    });
    let second = owners(&etcd)["people"].clone();
    assert!(second.is_some() && second != Some(first), "{second:?}");

    // The receiver comes up, slow to answer: each stored alert, of either owner, arrives once
    // (two nodes deliver from the one outbox, a pass of one overlapping the other's), with its
    // token and its place in its owner's sequence.
    hooks.answer_after = Duration::from_millis(300);
    hooks.up();
    let stored: BTreeMap<String, serde_json::Value> = alerts()
        .into_iter()
        .map(|e| (e["uid"].as_str().unwrap().to_string(), e))
        .collect();
    wait_for("every stored alert at the webhook", long, || {
        let got: BTreeSet<String> = hooks.hooks().into_iter().map(|h| h.id).collect();
        stored.keys().all(|id| got.contains(id)).then_some(())
    });
    let mut seen = BTreeSet::new();
    for h in hooks.hooks() {
        assert!(seen.insert(h.id.clone()), "alert {} delivered twice", h.id);
        let body: serde_json::Value = serde_json::from_str(&h.body).unwrap();
        let Some(event) = stored.get(&h.id) else {
            continue; // raised after the list above was read
        };
        assert_eq!(body["fencing_token"], event["fencing_token"]);
        assert!(body["seq"].as_i64().is_some_and(|s| s > 0), "{body}");
    }
    let delivered = tokens(&stored.values().cloned().collect::<Vec<_>>());
    assert_eq!(delivered.len(), 2, "alerts of both owners: {delivered:?}");
    eprintln!(
        "{} alerts delivered once each across a kill -9 failover",
        stored.len()
    );
}

#[test]
fn an_rtsp_client_of_any_node_is_redirected_to_the_camera_s_owner() {
    let etcd = Etcd::start(1);
    let ids = ["cam0".to_string(), "cam1".to_string()];
    let _dir = import_patterns(&etcd, &ids, "160x90@10", |_| {
        "outputs = [ { kind = \"rtsp\" } ]".into()
    });
    // node-a asks RTSP clients to log in, node-b does not.
    const USER: &str = "viewer:a-long-rtsp-password";
    let (_a, a_http) = node_with(
        &etcd,
        "node-a",
        &format!("[server.rtsp_auth]\nusers = [\"{USER}\"]"),
        "",
    );
    let (_b, b_http) = node_with(&etcd, "node-b", "", "");
    let placed = wait_for(
        "one camera live on each node",
        Duration::from_secs(40),
        || {
            let o = owners(&etcd);
            let on_a = live_on(a_http, "node-a");
            let on_b = live_on(b_http, "node-b");
            (on_a.len() == 1 && on_b.len() == 1 && o.values().all(Option::is_some)).then_some(o)
        },
    );
    let cam_of = |node: &str| {
        placed
            .iter()
            .find(|(_, o)| o.as_deref() == Some(node))
            .map(|(c, _)| c.clone())
            .unwrap()
    };
    let (cam_a, cam_b) = (cam_of("node-a"), cam_of("node-b"));
    // Each node says where its RTSP server is.
    let rtsp_of = |node: &str| {
        status(&etcd)["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == node)
            .and_then(|n| n["rtsp"].as_str().map(str::to_string))
            .unwrap()
    };
    let (a_rtsp, b_rtsp) = (rtsp_of("node-a"), rtsp_of("node-b"));
    let hostport = |u: &str| u.trim_start_matches("rtsp://").to_string();
    // Each node's view of the other's cameras catches up within a round.
    let asked_b = format!("{b_rtsp}/{cam_a}?latency=low");
    let (code, location, _) = wait_for(
        "node-b redirecting the camera node-a runs",
        Duration::from_secs(10),
        || Some(common::rtsp::describe(&hostport(&b_rtsp), &asked_b, None)).filter(|r| r.0 == 302),
    );
    assert_eq!(code, 302);
    assert_eq!(
        location.as_deref(),
        Some(format!("{a_rtsp}/{cam_a}?latency=low").as_str()),
        "path and query kept"
    );
    // node-a tells nothing to a client that has not logged in: the challenge, no location
    // (once its view has node-b's camera: 404 before).
    let asked_a = format!("{a_rtsp}/{cam_b}");
    let (code, location, challenge) = wait_for(
        "node-a knowing the camera node-b runs",
        Duration::from_secs(10),
        || Some(common::rtsp::describe(&hostport(&a_rtsp), &asked_a, None)).filter(|r| r.0 != 404),
    );
    assert_eq!((code, location), (401, None));
    assert!(challenge.is_some_and(|c| c.starts_with("Basic")));
    let wrong = common::rtsp::describe(
        &hostport(&a_rtsp),
        &asked_a,
        Some("Basic dmlld2VyOndyb25nLXBhc3N3b3Jk"), // viewer:wrong-password
    );
    assert_eq!((wrong.0, wrong.1), (401, None));
    // With the right credentials it is redirected.
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(USER)
    );
    let wanted = format!("{b_rtsp}/{cam_b}");
    wait_for(
        "node-a redirecting the camera node-b runs",
        Duration::from_secs(10),
        || {
            let r = common::rtsp::describe(&hostport(&a_rtsp), &asked_a, Some(&basic));
            (r.0 == 302 && r.1.as_deref() == Some(wanted.as_str())).then_some(())
        },
    );
    // A path nobody serves is not found, as before; a camera a node runs is served there.
    assert_eq!(
        common::rtsp::describe(&hostport(&b_rtsp), &format!("{b_rtsp}/nobody"), None).0,
        404
    );
    assert_eq!(
        common::rtsp::describe(&hostport(&b_rtsp), &wanted, None).0,
        200
    );
    // A real client follows: ffprobe asking either node gets each camera's video, logging
    // in where the owner asks for it.
    let with_user = |u: &str| u.replacen("rtsp://", &format!("rtsp://{USER}@"), 1);
    for url in [with_user(&asked_b), with_user(&asked_a)] {
        let probe = common::ffprobe(&url);
        assert_eq!(
            probe.as_ref().map(|p| (p.0.as_str(), p.1, p.2)),
            Some(("h264", 160, 90)),
            "{url}"
        );
    }
}

/// Whether a node's metrics say it keeps its cameras through a failsafe.
fn in_failsafe(http: u16, name: &str) -> bool {
    let m = common::http::request(&format!("127.0.0.1:{http}"), "GET", "/metrics", None, None).body;
    m.contains(&format!(
        "framegate_cluster_failsafe{{node=\"{name}\"}} 1\n"
    ))
}

#[test]
fn quorum_lost_nodes_keep_cameras_and_pushes_but_a_node_cut_off_alone_fences_itself() {
    let mut etcd = Etcd::start(3);
    let nginx = common::Nginx::start_with_stat();
    let stat = nginx.stat_port.unwrap();
    let _dir = import_pushed(&etcd, &nginx, "160x90@10");
    // node-a knows only the first etcd member; node-b knows all three.
    let all = etcd.endpoints();
    let (a, a_http) = node_of(&all[..1], "node-a", "", "");
    let (b, b_http) = node_of(&all, "node-b", "", "");
    let (placed, _) = one_each_published(&etcd, stat);

    // Quorum lost: two of the three members die. Nobody can renew, claim or assign; each node
    // asks the other and, once two rounds have passed without a renewal anywhere, both vouch:
    // they keep their cameras. Their pushes pause from the fence's deadline until then (no
    // node can be sure of anything in between), and resume.
    etcd.kill(1);
    etcd.kill(2);
    let lost = Instant::now();
    wait_for(
        "both nodes in failsafe",
        Duration::from_secs(3 * TTL_S),
        || (in_failsafe(a_http, "node-a") && in_failsafe(b_http, "node-b")).then_some(()),
    );
    let failsafe = lost.elapsed();
    let resumed_pubs = wait_for(
        "both cameras published again",
        Duration::from_secs(3 * TTL_S),
        || {
            let p = publishers(stat);
            ["cam0", "cam1"]
                .iter()
                .all(|c| p.get(*c).is_some_and(|v| v.len() == 1))
                .then_some(p)
        },
    );
    eprintln!(
        "quorum lost: failsafe on both nodes after {failsafe:?}, both pushes published again after {:?}",
        lost.elapsed()
    );
    let until = Instant::now() + Duration::from_secs(2 * TTL_S);
    let mut samples = 0;
    while Instant::now() < until {
        // The same publishing connections from here on, the same cameras on the same nodes.
        assert_eq!(
            publishers(stat),
            resumed_pubs,
            "a push changed while etcd had no quorum"
        );
        for (http, name) in [(a_http, "node-a"), (b_http, "node-b")] {
            let mine: BTreeSet<String> = placed
                .iter()
                .filter(|(_, (o, _))| o.as_deref() == Some(name))
                .map(|(c, _)| c.clone())
                .collect();
            assert_eq!(live_on(http, name), mine, "{name} lost a camera");
        }
        samples += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(samples > 10, "{samples} samples");
    for n in [&a, &b] {
        assert!(!n.log().contains("cluster: fenced"), "{}", n.log());
    }

    // The quorum is back: the leases had not expired (no leader expires them), the nodes renew
    // them, and no camera moved: same owners, same fencing tokens, same pushes.
    etcd.up(1);
    etcd.up(2);
    etcd.wait_healthy();
    wait_for("both nodes renewing again", Duration::from_secs(20), || {
        (!in_failsafe(a_http, "node-a") && !in_failsafe(b_http, "node-b")).then_some(())
    });
    assert_eq!(tokens(&etcd), placed, "a camera moved");
    assert_eq!(publishers(stat), resumed_pubs);
    for n in [&a, &b] {
        assert!(!n.log().contains("cluster: fenced"), "{}", n.log());
        n.wait_log("etcd answers again", Duration::from_secs(5));
    }

    // node-a alone is cut off (its only etcd member dies) while node-b renews through the
    // others: node-b's answer shows etcd works, so node-a does not keep its camera past its
    // deadline (within the TTL), and the camera moves to node-b. Never two publishers of one
    // stream.
    let a_cam = placed
        .iter()
        .find(|(_, (o, _))| o.as_deref() == Some("node-a"))
        .map(|(c, _)| c.clone())
        .unwrap();
    let sampler = Sampler::start(stat);
    etcd.kill(0);
    let cut = Instant::now();
    a.wait_log("cluster: fenced", Duration::from_secs(TTL_S + 2));
    let fenced = cut.elapsed();
    let log = a.log();
    let reason = &log[log.rfind("cluster: fenced").unwrap()..];
    assert!(
        reason.lines().next().unwrap().contains("etcd works for it"),
        "fenced for another reason: {reason}"
    );
    // Two rounds to tell a cut-off node from a quorum loss, then the deadline: within two TTLs
    // (what leaves the node stops at the deadline itself: the sampler sees to that).
    assert!(fenced < Duration::from_secs(2 * TTL_S), "{fenced:?}");
    wait_for(
        "node-a's camera published by node-b",
        Duration::from_secs(30),
        || {
            let moved = tokens(&etcd)[&a_cam].0.as_deref() == Some("node-b");
            let p = publishers(stat);
            let new = p
                .get(&a_cam)
                .is_some_and(|v| v.len() == 1 && v != &resumed_pubs[&a_cam]);
            (moved && new).then_some(())
        },
    );
    let (worst, _) = sampler.finish();
    assert_eq!(worst, 1, "two publishers of one stream at once");
    eprintln!(
        "node-a cut off alone: fenced after {fenced:?}, its camera pushed by node-b {:?} after the cut",
        cut.elapsed()
    );
}

#[test]
fn a_camera_a_node_cannot_run_goes_to_a_node_that_can() {
    let etcd = Etcd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().canonicalize().unwrap();
    let clip = media.join("ball.mp4");
    common::make_clip(&clip, 500, 160, 90);
    let file = dir.path().join("cameras.toml");
    std::fs::write(
        &file,
        format!(
            "[[streams]]\nid = \"clip\"\nsource = \"file://{}\"\n",
            clip.display()
        ),
    )
    .unwrap();
    assert!(import(&etcd, &file).status.success());
    let clip_status = || {
        status(&etcd)["cameras"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == "clip")
            .cloned()
            .unwrap()
    };
    // node-a plays no files (no media folder): given the camera, it says so in etcd, and the
    // assigner, with no other node, leaves the camera unassigned rather than giving it back.
    let (a, a_http) = node_with(&etcd, "node-a", "", "");
    let refused = wait_for("node-a's refusal in etcd", Duration::from_secs(20), || {
        let c = clip_status();
        (c["refused_by"]["node-a"].is_string() && c["assigned"].is_null()).then_some(c)
    });
    let why = refused["refused_by"]["node-a"].as_str().unwrap();
    assert!(why.contains("media_dirs"), "{why}");
    // node-b may: the camera goes there at once (a node that just joined gets at once what the
    // settled ones cannot take).
    let (_b, b_http) = node_with(
        &etcd,
        "node-b",
        &format!("media_dirs = [\"{}\"]", media.display()),
        "",
    );
    wait_for("the clip live on node-b", Duration::from_secs(30), || {
        (live_on(b_http, "node-b").contains("clip")
            && owners(&etcd)["clip"].as_deref() == Some("node-b"))
        .then_some(())
    });
    assert!(live_on(a_http, "node-a").is_empty());
    // Said once, not every round.
    assert_eq!(
        a.log().matches("cluster: cannot run this camera").count(),
        1,
        "{}",
        a.log()
    );
}

#[test]
fn the_wall_of_any_node_plays_every_camera_of_the_cluster() {
    common::require_chromium();
    let etcd = Etcd::start(1);
    let ids = ["cam0".to_string(), "cam1".to_string()];
    let _dir = import_patterns(&etcd, &ids, "320x180@10", |_| String::new());
    let (_a, a_http) = node_on(&etcd, "node-a");
    let (_b, b_http) = node_on(&etcd, "node-b");
    let placed = wait_for(
        "one camera live on each node",
        Duration::from_secs(40),
        || {
            let o = owners(&etcd);
            (live_on(a_http, "node-a").len() == 1 && live_on(b_http, "node-b").len() == 1)
                .then_some(o)
        },
    );
    let remote = placed
        .iter()
        .find(|(_, o)| o.as_deref() == Some("node-b"))
        .map(|(c, _)| c.clone())
        .unwrap();
    // node-a's list says where node-b serves it.
    wait_for(
        "node-a's list with the owner's address",
        Duration::from_secs(10),
        || {
            let list = get_json(&format!("127.0.0.1:{a_http}"), "/api/streams");
            list.as_array()
                .unwrap()
                .iter()
                .any(|s| {
                    s["id"] == remote.as_str()
                        && s["owner_url"] == format!("http://127.0.0.1:{b_http}").as_str()
                })
                .then_some(())
        },
    );
    let r = common::run_browser_script(
        "cluster-wall.mjs",
        &[&format!("http://127.0.0.1:{a_http}/"), "2", &remote],
        &[],
    );
    assert_eq!(r["tiles"], serde_json::json!(["cam0", "cam1"]), "{r}");
    assert_eq!(r["transport"], "webrtc", "{r}");
    assert_eq!(r["errors"], serde_json::json!([]), "{r}");
}

/// Kill -9 of a camera's owner, `FRAMEGATE_FAILOVER_CYCLES` times (1 by default; the figures of
/// docs/cluster.md come from 30): the time from the kill to the camera pushed to nginx-rtmp
/// again by another node, a new publisher, one at a time.
#[test]
fn a_killed_owner_s_pushes_resume_on_another_node_within_the_goal() {
    let cycles: usize = std::env::var("FRAMEGATE_FAILOVER_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let etcd = Etcd::start(3);
    let nginx = common::Nginx::start_with_stat();
    let stat = nginx.stat_port.unwrap();
    let _dir = import_pushed(&etcd, &nginx, "160x90@10");
    let names = ["node-a", "node-b", "node-c"];
    let mut running: Vec<Framegate> = names.iter().map(|n| node(&etcd, n)).collect();
    // With equal capacities the plan puts the two cameras on node-a and node-b (quotas go to
    // the nodes named first): each cycle starts from there, after the killed node came back
    // and its camera moved back to it.
    let settled = || {
        wait_for(
            "the cameras on node-a and node-b, published",
            Duration::from_secs(40),
            || {
                let t = tokens(&etcd);
                let p = publishers(stat);
                let mut on: Vec<String> = t.values().filter_map(|(o, _)| o.clone()).collect();
                on.sort();
                let published = ["cam0", "cam1"]
                    .iter()
                    .all(|c| p.get(*c).is_some_and(|v| v.len() == 1));
                (on == ["node-a", "node-b"] && published).then_some((t, p))
            },
        )
    };
    let (mut placed, mut pubs) = settled();
    let sampler = Sampler::start(stat);
    let mut took = Vec::new();
    for _ in 0..cycles {
        let owner = placed["cam0"].0.clone().unwrap();
        let before = pubs["cam0"].clone();
        let victim = names.iter().position(|n| *n == owner).unwrap();
        running[victim].kill();
        let killed = Instant::now();
        wait_for(
            "cam0 pushed again by another node",
            Duration::from_secs(30),
            || {
                let t = tokens(&etcd);
                let p = publishers(stat);
                let moved = t["cam0"].0.as_deref().is_some_and(|o| o != owner);
                let new = p.get("cam0").is_some_and(|v| v.len() == 1 && *v != before);
                (moved && new).then_some(())
            },
        );
        took.push(killed.elapsed());
        running[victim].kill_and_restart(); // started again
        // The killed node is back (registered again once its old lease expired, given its
        // camera back once settled) before the next cycle.
        (placed, pubs) = settled();
    }
    let (worst, samples) = sampler.finish();
    assert_eq!(worst, 1, "two publishers of one stream at once");
    assert!(samples > 10, "{samples} samples");
    took.sort();
    let at = |q: f64| took[((took.len() - 1) as f64 * q).round() as usize];
    eprintln!(
        "kill -9 to pushed again by another node, {} cycles, TTL {TTL_S} s: p50 {:?}, p99 {:?}, max {:?}",
        took.len(),
        at(0.5),
        at(0.99),
        took[took.len() - 1]
    );
    // The issue's goal is 8 s at p99; a slow CI machine gets some room, the docs the figures.
    assert!(at(0.99) < Duration::from_secs(12), "{took:?}");
}
