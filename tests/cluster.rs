//! framegate nodes on a real etcd cluster (three members on loopback): cameras written to etcd
//! all or none, nodes registered under leases that a killed node loses and a stopped etcd
//! fences, an etcd member's death harming nothing.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::servers::Etcd;
use common::{Framegate, succeeded, wait_for};

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
    let endpoints: Vec<String> = etcd
        .endpoints()
        .iter()
        .map(|e| format!("\"{e}\""))
        .collect();
    Framegate::run(&format!(
        "[cluster]\netcd = [{}]\nnode = \"{name}\"\ncapacity = 8\nttl_s = {TTL_S}\n",
        endpoints.join(", ")
    ))
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
    assert_eq!(status(&etcd)["cameras"], serde_json::json!([]));
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
    assert_eq!(status(&etcd)["cameras"], serde_json::json!([]));

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
    assert_eq!(status(&etcd)["cameras"], serde_json::json!(["a", "b", "c"]));
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
    let dir = tempfile::tempdir().unwrap();
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
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            format!("[server]\nsummary_interval_s = 1\n\n[cluster]\n{table}\n"),
        )
        .unwrap();
        let out = framegate()
            .arg("check")
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{table}: accepted");
        assert!(
            text.contains(want) && text.contains("node.toml:"),
            "{table}: {text}"
        );
        assert!(
            !text.contains("hunter2"),
            "the etcd password leaked: {text}"
        );
    }
}
