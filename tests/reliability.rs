//! Changes that race: concurrent API calls and reloads against a running framegate. Nothing
//! the API acknowledged is lost, no stream is left running behind the manager's back, and reads
//! answer while changes are under way.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::http::request;
use common::{Framegate, free_port, wait_for, wait_for_port};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(60);

/// The value of an unlabelled Prometheus gauge.
fn gauge(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn concurrent_changes_and_reloads_lose_nothing_and_leak_no_stream() {
    let http = free_port();
    let fg = Framegate::run(&format!(
        "[server]\nhttp = \"127.0.0.1:{http}\"\nrtsp_port = 0\n\n\
         [[streams]]\nid = \"cam\"\nsource = \"test://ball?width=160&height=120&fps=25\"\n\
         outputs = [ {{ kind = \"rtsp\" }} ]\n"
    ));
    wait_for_port(http, LONG);
    let addr = format!("127.0.0.1:{http}");
    let state = |id: &str| request(&addr, "GET", &format!("/api/streams/{id}"), None, None).json();
    wait_for("cam live", LONG, || {
        (state("cam")["state"] == "live").then_some(())
    });
    let threads_before = fg.rss_and_threads().1;
    let base = state("cam")["config"].clone();

    // Eight writers replace the stream with their own text, two reload the file, one adds and
    // removes another stream; a reader measures how long reads take meanwhile.
    let mut written = BTreeSet::new();
    let mut workers = Vec::new();
    for w in 0..8 {
        for n in 0..3 {
            let text = format!("writer {w} change {n}");
            written.insert(text.clone());
        }
        let (addr, base) = (addr.clone(), base.clone());
        workers.push(std::thread::spawn(move || {
            for n in 0..3 {
                let mut c: Value = base.clone();
                c["processors"] =
                    json!([{ "kind": "overlay", "text": format!("writer {w} change {n}") }]);
                let r = request(&addr, "PUT", "/api/streams/cam", Some(&c.to_string()), None);
                assert_eq!(r.status, 200, "{}", r.body);
            }
        }));
    }
    for _ in 0..2 {
        let addr = addr.clone();
        workers.push(std::thread::spawn(move || {
            for _ in 0..3 {
                let r = request(&addr, "POST", "/api/reload", None, None);
                assert_eq!(r.status, 200, "{}", r.body);
            }
        }));
    }
    {
        let addr = addr.clone();
        workers.push(std::thread::spawn(move || {
            for _ in 0..3 {
                let extra = json!({ "id": "extra", "source": "test://smpte?width=160&height=120" });
                let r = request(
                    &addr,
                    "POST",
                    "/api/streams",
                    Some(&extra.to_string()),
                    None,
                );
                assert_eq!(r.status, 201, "{}", r.body);
                assert_eq!(
                    request(&addr, "DELETE", "/api/streams/extra", None, None).status,
                    204
                );
            }
        }));
    }
    let mut slowest = Duration::ZERO;
    while !workers.iter().all(|w| w.is_finished()) {
        let t = Instant::now();
        assert_eq!(
            request(&addr, "GET", "/api/streams", None, None).status,
            200
        );
        let ready = request(&addr, "GET", "/readyz", None, None).status;
        assert!(ready == 200 || ready == 503, "/readyz answered {ready}");
        slowest = slowest.max(t.elapsed());
    }
    for w in workers {
        w.join().unwrap();
    }
    // The last change is the stream's config, running; nothing else runs.
    let text = state("cam")["config"]["processors"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(written.contains(&text), "`{text}` was never written");
    wait_for("cam live again", LONG, || {
        (state("cam")["state"] == "live").then_some(())
    });
    assert_eq!(
        request(&addr, "GET", "/api/streams/extra", None, None).status,
        404
    );
    wait_for("one encoder, for the one stream", LONG, || {
        let m = request(&addr, "GET", "/metrics", None, None).body;
        (gauge(&m, "framegate_h264_encoders") == 1.0).then_some(())
    });
    // The stopped streams' threads are gone (a few GStreamer pool threads may linger).
    let threads_after = wait_for("threads back", LONG, || {
        let t = fg.rss_and_threads().1;
        (t <= threads_before + 8).then_some(t)
    });
    // The state file has that same last change.
    let saved = std::fs::read_to_string(fg.dir.path().join("framegate.api-state.toml")).unwrap();
    assert!(saved.contains(&text), "the state file lost the last change");
    eprintln!(
        "races: 24 replacements, 6 reloads, 3 add/remove pairs; slowest read {slowest:?}; threads {threads_before} -> {threads_after}"
    );
    assert!(slowest < Duration::from_secs(2), "a read took {slowest:?}");
}

#[test]
fn stopping_and_starting_keeps_later_edits_of_the_config_file() {
    let http = free_port();
    let config = |pattern: &str| {
        format!(
            "[server]\nhttp = \"127.0.0.1:{http}\"\nrtsp_port = 0\n\n\
             [[streams]]\nid = \"cam\"\nsource = \"test://{pattern}?width=160&height=120&fps=25\"\n"
        )
    };
    let fg = Framegate::run(&config("ball"));
    wait_for_port(http, LONG);
    let addr = format!("127.0.0.1:{http}");
    let get = || request(&addr, "GET", "/api/streams/cam", None, None).json();
    wait_for("cam live", LONG, || {
        (get()["state"] == "live").then_some(())
    });
    assert_eq!(
        request(&addr, "POST", "/api/streams/cam/stop", None, None).status,
        200
    );
    // The file is edited while the stream is stopped; a reload takes the edit.
    std::fs::write(fg.dir.path().join("framegate.toml"), config("smpte")).unwrap();
    let r = request(&addr, "POST", "/api/reload", None, None).json();
    assert_eq!(r["restarted"], json!(["cam"]), "{r}");
    let s = get();
    assert_eq!(s["state"], "stopped");
    assert!(
        s["config"]["source"]
            .as_str()
            .unwrap()
            .starts_with("test://smpte"),
        "{s}"
    );
    // Started again: the edited source, still; the state file holds only that it runs.
    assert_eq!(
        request(&addr, "POST", "/api/streams/cam/start", None, None).status,
        200
    );
    wait_for("cam live", LONG, || {
        (get()["state"] == "live").then_some(())
    });
    assert!(
        get()["config"]["source"]
            .as_str()
            .unwrap()
            .starts_with("test://smpte")
    );
    let saved = std::fs::read_to_string(fg.dir.path().join("framegate.api-state.toml")).unwrap();
    assert!(
        !saved.contains("source"),
        "a whole copy was saved:\n{saved}"
    );
    assert!(saved.contains("cam = true"), "{saved}");
}

#[test]
fn the_rtsp_port_is_bound_only_once_a_stream_serves_rtsp() {
    let (http, rtsp) = (free_port(), free_port());
    let _fg = Framegate::run(&format!(
        "[server]\nhttp = \"127.0.0.1:{http}\"\nrtsp_port = {rtsp}\n\n\
         [[streams]]\nid = \"cam\"\nsource = \"test://ball?width=160&height=120&fps=25\"\n"
    ));
    wait_for_port(http, LONG);
    let addr = format!("127.0.0.1:{http}");
    wait_for("cam live", LONG, || {
        (request(&addr, "GET", "/api/streams/cam", None, None).json()["state"] == "live")
            .then_some(())
    });
    // Nothing serves RTSP: the port stays free (a media server on this host may use it).
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", rtsp)).is_ok(),
        "port {rtsp} is taken"
    );
    let served = json!({ "id": "served", "source": "test://smpte?width=160&height=120&fps=25",
                         "outputs": [{ "kind": "rtsp" }] });
    let r = request(
        &addr,
        "POST",
        "/api/streams",
        Some(&served.to_string()),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    wait_for_port(rtsp, LONG);
    let (codec, w, _, _) = common::ffprobe(&format!("rtsp://127.0.0.1:{rtsp}/served")).unwrap();
    assert_eq!((codec.as_str(), w), ("h264", 160));
}

#[test]
fn after_sigkill_every_change_the_api_acknowledged_is_there() {
    let http = free_port();
    let mut fg = Framegate::run(&format!(
        "[server]\nhttp = \"127.0.0.1:{http}\"\nrtsp_port = 0\n\n\
         [[streams]]\nid = \"base\"\nsource = \"test://ball?width=160&height=120&fps=25\"\n"
    ));
    wait_for_port(http, LONG);
    let addr = format!("127.0.0.1:{http}");
    // Acknowledged changes: an add, a replacement, a stop, a delete.
    let added = json!({ "id": "added", "source": "test://smpte?width=160&height=120&fps=25" });
    assert_eq!(
        request(
            &addr,
            "POST",
            "/api/streams",
            Some(&added.to_string()),
            None
        )
        .status,
        201
    );
    let mut changed = added.clone();
    changed["processors"] = json!([{ "kind": "overlay", "text": "acknowledged" }]);
    assert_eq!(
        request(
            &addr,
            "PUT",
            "/api/streams/added",
            Some(&changed.to_string()),
            None
        )
        .status,
        200
    );
    assert_eq!(
        request(&addr, "POST", "/api/streams/base/stop", None, None).status,
        200
    );
    let temp = json!({ "id": "temp", "source": "test://snow?width=160&height=120&fps=25" });
    assert_eq!(
        request(&addr, "POST", "/api/streams", Some(&temp.to_string()), None).status,
        201
    );
    assert_eq!(
        request(&addr, "DELETE", "/api/streams/temp", None, None).status,
        204
    );
    // No shutdown at all.
    fg.kill_and_restart();
    wait_for_port(http, LONG);
    let get = |id: &str| request(&addr, "GET", &format!("/api/streams/{id}"), None, None);
    wait_for("added live after the restart", LONG, || {
        let r = get("added");
        (r.status == 200 && r.json()["state"] == "live").then_some(())
    });
    assert_eq!(
        get("added").json()["config"]["processors"][0]["text"],
        "acknowledged"
    );
    assert_eq!(get("base").json()["state"], "stopped");
    assert_eq!(get("temp").status, 404);
}

#[test]
fn the_gateway_runs_with_bounded_malloc_arenas_unless_told_otherwise() {
    // (what the variable is set to, what the gateway must run with)
    for (given, expected) in [(None, "2"), (Some("4"), "4")] {
        let http = free_port();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("framegate.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nhttp = \"127.0.0.1:{http}\"\nrtsp_port = 0\n\n\
                 [[streams]]\nid = \"cam\"\nsource = \"test://ball?width=64&height=48\"\n"
            ),
        )
        .unwrap();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_framegate"));
        cmd.arg("run")
            .arg("--config")
            .arg(&config)
            .env_remove("MALLOC_ARENA_MAX")
            .env_remove("FRAMEGATE_API_TOKEN")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some(v) = given {
            cmd.env("MALLOC_ARENA_MAX", v);
        }
        let child = common::Proc(cmd.spawn().unwrap());
        // The same process (exec keeps its id) serves the API with the variable set.
        wait_for_port(http, LONG);
        let environ = std::fs::read(format!("/proc/{}/environ", child.0.id())).unwrap();
        let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
        let want = format!("MALLOC_ARENA_MAX={expected}");
        assert!(
            vars.contains(&want.as_bytes()),
            "{want} not in the gateway's environment (given {given:?})"
        );
    }
}
