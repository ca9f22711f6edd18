//! Events that are never lost, against real servers started here: the event store on SQLite and
//! PostgreSQL (same tests), a database outage during detections, alerts through a webhook that
//! is down and a framegate restart, MQTT through mosquitto, Redis frames, and the media-server
//! check of a source.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::http::{all_events, get_json, request};
use common::servers::{Mosquitto, Postgres, Redis, WebhookReceiver};
use common::{Framegate, free_port, shared, wait_for, wait_for_port};
use serde_json::{Value, json};

use framegate::store::{Db, Event, EventQuery, kind};

const LONG: Duration = Duration::from_secs(60);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

// ---------------------------------------------------------------------------------------------
// The store itself: the same contract on both databases.

fn event(kind: &str, stream: &str, at_ms: i64) -> Event {
    let mut e = Event::new(kind, Some(stream), json!({ "n": at_ms }));
    e.at_ms = at_ms;
    e
}

fn store_contract(url: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // From an empty database: every migration applied, once. Nodes of a cluster sharing
        // one PostgreSQL start together: four connect at once and none fails.
        let starts = if url.starts_with("postgres") { 4 } else { 1 };
        let connects = (0..starts).map(|_| Db::connect(url));
        for db in futures_util::future::join_all(connects).await {
            assert_eq!(db.unwrap().schema_version().await.unwrap(), 2);
        }
        let db = Db::connect(url).await.unwrap();
        assert_eq!(db.schema_version().await.unwrap(), 2);
        assert_eq!(db.count().await.unwrap(), 0);

        let t = now_ms();
        let mut events = vec![
            event(kind::STREAM_STATE, "cam0", t - 5000),
            event(kind::DETECTION_APPEARED, "cam0", t - 4000)
                .with_object("person", 0.9, [1.0, 2.0, 3.0, 4.0]),
            event(kind::DETECTION_APPEARED, "cam1", t - 3000)
                .with_object("car", 0.7, [5.0, 6.0, 7.0, 8.0]),
            event(kind::DETECTION_CLEARED, "cam0", t - 2000)
                .with_object("person", 0.9, [1.0, 2.0, 3.0, 4.0]),
            event(kind::CONFIG_CHANGED, "cam1", t - 1000),
            event(kind::STREAM_STATE, "cam0", t - 40 * 86_400_000),
        ];
        let mut alert = event(kind::ALERT, "cam0", t - 500).with_object("person", 0.8, [0.0; 4]);
        alert.data = json!({ "rule": "door", "frames": 3 });
        alert.deliver = vec!["webhook".into(), "mqtt".into()];
        events.push(alert.clone());
        let mut minute = event(kind::VIEWER_MINUTE, "cam0", t - t % 60_000);
        minute.data = json!({ "session": "s1", "ip": "127.0.0.1", "viewer": "alice", "watermark": "CAM0042" });
        events.push(minute.clone());

        // Written twice (a retry after a crash): stored once.
        db.insert(&events).await.unwrap();
        db.insert(&events).await.unwrap();
        assert_eq!(db.count().await.unwrap(), 7);

        // Filters, newest first.
        let q = |f: fn(&mut EventQuery)| {
            let mut q = EventQuery {
                limit: 100,
                ..EventQuery::default()
            };
            f(&mut q);
            q
        };
        let kinds = |v: &[Event]| v.iter().map(|e| e.kind.clone()).collect::<Vec<_>>();
        let cam0 = db.query(&q(|q| q.stream = Some("cam0".into()))).await.unwrap();
        assert_eq!(cam0.len(), 5);
        assert!(cam0.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        let people = db.query(&q(|q| q.class = Some("person".into()))).await.unwrap();
        assert_eq!(
            kinds(&people),
            [kind::ALERT, kind::DETECTION_CLEARED, kind::DETECTION_APPEARED]
        );
        let recent = db
            .query(&q(|q| {
                q.since_ms = Some(now_ms() - 3500);
                q.kind = Some(kind::DETECTION_APPEARED.into());
            }))
            .await
            .unwrap();
        assert_eq!(recent.len(), 1);
        assert_eq!(recent[0].class.as_deref(), Some("car"));
        assert_eq!(recent[0].rect, Some([5.0, 6.0, 7.0, 8.0]));
        assert_eq!(recent[0].score, Some(0.7));
        let old = db.query(&q(|q| q.until_ms = Some(now_ms() - 86_400_000))).await.unwrap();
        assert_eq!(old.len(), 1);

        // Pages of 3 with the cursor give everything, once.
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = db
                .query(&EventQuery {
                    limit: 3,
                    cursor,
                    ..EventQuery::default()
                })
                .await
                .unwrap();
            seen.extend(page.iter().map(|e| e.uid.clone()));
            if page.len() < 3 {
                break;
            }
            cursor = page.last().unwrap().id;
        }
        assert_eq!(seen.len(), 7);
        assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 7);

        // One event by id, as written.
        let stored = db.get(cam0[0].id.unwrap()).await.unwrap().unwrap();
        assert_eq!(stored.uid, alert.uid);
        assert_eq!(stored.data["rule"], "door");
        assert!(db.get(999_999).await.unwrap().is_none());

        // The alert's outbox rows, due at once; a failed attempt waits; a delivery is kept.
        let due = db.due(now_ms(), 10).await.unwrap();
        assert_eq!(due.len(), 2);
        assert!(due.iter().all(|d| d.event_uid == alert.uid && d.rule == "door"));
        let payload: Value = serde_json::from_str(&due[0].payload).unwrap();
        assert_eq!(payload["id"], alert.uid.as_str());
        // One process at a time holds a row: a second cannot claim it until the claim lapses.
        let t = now_ms();
        assert!(db.claim(due[0].id, "node-a", t, t + 30_000).await.unwrap());
        assert!(!db.claim(due[0].id, "node-b", t, t + 30_000).await.unwrap());
        assert_eq!(db.due(t, 10).await.unwrap().len(), 1, "a claimed row is not due");
        assert!(db.claim(due[0].id, "node-b", t + 30_000, t + 60_000).await.unwrap());
        db.retry_at(due[0].id, now_ms() + 60_000, "down").await.unwrap();
        assert!(db.claim(due[1].id, "node-b", t, t + 30_000).await.unwrap());
        db.delivered(due[1].id, now_ms()).await.unwrap();
        assert!(db.due(now_ms(), 10).await.unwrap().is_empty());
        assert!(
            !db.claim(due[1].id, "node-a", now_ms() + 90_000, now_ms() + 99_000)
                .await
                .unwrap(),
            "a delivered row is never claimed again"
        );
        let counts = db.outbox_counts().await.unwrap();
        assert_eq!((counts.pending, counts.delivered), (1, 1));

        // Cluster cameras: events carry the owner's fencing token and sequence; once a newer
        // owner has written, an older owner's alert is stored but never delivered.
        let fenced = |token: i64, seq: i64, alert: bool| {
            let mut e = event(if alert { kind::ALERT } else { kind::STREAM_STATE }, "held", now_ms());
            e.fencing_token = Some(token);
            e.seq = Some(seq);
            if alert {
                e.data = json!({ "rule": "door" });
                e.deliver = vec!["webhook".into()];
            }
            e
        };
        let first = fenced(10, 1, true);
        db.insert(std::slice::from_ref(&first)).await.unwrap();
        let due = db.due(now_ms(), 10).await.unwrap();
        let payload: Value = serde_json::from_str(&due[0].payload).unwrap();
        assert_eq!((payload["fencing_token"].as_i64(), payload["seq"].as_i64()), (Some(10), Some(1)));
        db.delivered(due[0].id, now_ms()).await.unwrap();
        db.insert(&[fenced(12, 1, false)]).await.unwrap();
        let late = fenced(10, 2, true);
        let current = fenced(12, 2, true);
        db.insert(&[late.clone(), current.clone()]).await.unwrap();
        let due: Vec<String> = db.due(now_ms(), 10).await.unwrap().into_iter().map(|d| d.event_uid).collect();
        assert_eq!(due, std::slice::from_ref(&current.uid));
        let held = db.query(&q(|q| q.stream = Some("held".into()))).await.unwrap();
        assert_eq!(held.len(), 4, "the late alert is kept as an event");
        let stored = held.iter().find(|e| e.uid == late.uid).unwrap();
        assert_eq!((stored.fencing_token, stored.seq), (Some(10), Some(2)));

        // Viewer minutes are kept apart from the events.
        let minutes = db.viewer_minutes("cam0", 0).await.unwrap();
        assert_eq!(minutes.len(), 1);
        assert_eq!(minutes[0].3.as_deref(), Some("alice"));

        // Retention removes what is older than the limit.
        let (deleted, _) = db.delete_before(now_ms() - 30 * 86_400_000).await.unwrap();
        assert_eq!(deleted, 1);
        assert_eq!(db.count().await.unwrap(), 10);
        db.close().await;
    });
}

#[test]
fn event_store_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    store_contract(&format!("sqlite://{}/events.db", dir.path().display()));
}

#[test]
fn event_store_on_postgres() {
    let pg = Postgres::start();
    store_contract(&pg.url());
}

// ---------------------------------------------------------------------------------------------
// A running framegate.

/// Opens an MJPEG viewer session, reads two pictures, and closes it.
fn watch_briefly(addr: &str, stream: &str, viewer: &str) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /streams/{stream}/mjpeg?width=160&viewer={viewer} HTTP/1.1\r\nHost: {addr}\r\n\r\n"
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while got.windows(11).filter(|w| w == b"--framegate").count() < 2 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "MJPEG closed early");
        got.extend_from_slice(&buf[..n]);
    }
}

/// Frames the stream encoded so far.
fn encoded(addr: &str, id: &str) -> u64 {
    get_json(addr, &format!("/api/streams/{id}"))["frames"]["encoded"]
        .as_u64()
        .unwrap()
}

#[test]
fn no_event_is_lost_while_the_database_is_down_and_video_goes_on() {
    let pg = Postgres::start();
    let http = free_port();
    let fg = Framegate::run(&format!(
        r#"
[server]
http = "127.0.0.1:{http}"
rtsp_port = 0

[database]
url = "{url}"

[[models]]
id = "coco"
path = "{model}"
format = "centernet"
threads = 1

[[streams]]
id = "people"
source = "file://{vtest}"
processors = [ {{ kind = "detect", model = "coco", min_score = 0.3, clear_after = 0.3 }} ]
"#,
        url = pg.url(),
        model = shared("models/centernet.onnx").display(),
        vtest = shared("testdata/vtest.avi").display(),
    ));
    let addr = format!("127.0.0.1:{http}");
    wait_for_port(http, LONG);
    wait_for("the store to connect", LONG, || {
        (get_json(&addr, "/api/store")["backend"] == "postgres").then_some(())
    });
    wait_for("the first detections", LONG, || {
        let d = get_json(&addr, "/api/streams/people/detections");
        (!d["events"].as_array().unwrap().is_empty()).then_some(())
    });

    // Frame rate with the database up.
    let rate = |secs: f64| {
        let (f0, t0) = (encoded(&addr, "people"), Instant::now());
        let mut sessions = 0;
        while t0.elapsed().as_secs_f64() < secs {
            watch_briefly(&addr, "people", &format!("v{}", t0.elapsed().as_millis()));
            sessions += 1;
        }
        (
            (encoded(&addr, "people") - f0) as f64 / t0.elapsed().as_secs_f64(),
            sessions,
        )
    };
    let (fps_up, mut sessions) = rate(3.0);

    // 10 s without the database, while detections and viewers keep making events.
    pg.down();
    let (fps_down, n) = rate(10.0);
    sessions += n;
    let store = get_json(&addr, "/api/store");
    assert!(
        store["queued"].as_u64().unwrap() > 0 && store["error"].is_string(),
        "events should wait on disk while the database is down: {store}"
    );
    assert!(
        fps_down > 0.85 * fps_up,
        "video slowed while the database was down: {fps_down:.1} fps vs {fps_up:.1} fps"
    );
    pg.up();
    let (_, n) = rate(1.0);
    sessions += n;
    wait_for("the queue to drain into the database", LONG, || {
        let s = get_json(&addr, "/api/store");
        (s["queued"] == 0 && s["writing"] == true).then_some(())
    });
    let store = get_json(&addr, "/api/store");
    assert_eq!(store["dropped_channel_full"], 0, "{store}");
    assert_eq!(store["dropped_queue_full"], 0, "{store}");

    // Every viewer session the test made is there, started and ended ...
    let started = all_events(&addr, "&kind=viewer.started&stream=people");
    let ended = all_events(&addr, "&kind=viewer.ended&stream=people");
    wait_for("the last session's end", Duration::from_secs(10), || {
        (all_events(&addr, "&kind=viewer.ended&stream=people").len() == sessions).then_some(())
    });
    assert_eq!(started.len(), sessions, "viewer.started events");
    assert!(ended.len() + 1 >= sessions);
    // ... and every detection event the stream logged (its in-memory log) is stored.
    let log = get_json(&addr, "/api/streams/people/detections?limit=1000");
    let stored = || -> BTreeSet<(i64, String, String)> {
        all_events(&addr, "&stream=people")
            .iter()
            .filter(|e| e["kind"].as_str().unwrap().starts_with("detection."))
            .map(|e| {
                (
                    e["at_ms"].as_i64().unwrap(),
                    e["kind"].as_str().unwrap().to_string(),
                    e["class"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let logged: Vec<(i64, String, String)> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["at_ms"].as_i64().unwrap(),
                format!("detection.{}", e["kind"].as_str().unwrap()),
                e["class"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        logged.len() >= 2,
        "too few detection events to judge: {logged:?}"
    );
    // The detector goes on meanwhile: the newest logged events may still be on their way to the
    // database (written in batches, off the video path). Each must be there within a few seconds.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let missing = loop {
        let now_stored = stored();
        let missing: Vec<_> = logged.iter().filter(|e| !now_stored.contains(e)).collect();
        if missing.is_empty() || std::time::Instant::now() > deadline {
            break missing;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(missing.is_empty(), "detection events lost: {missing:?}");
    eprintln!(
        "outage: {sessions} viewer sessions and {} detection events kept; {fps_up:.1} fps before, {fps_down:.1} fps during",
        logged.len()
    );
    drop(fg);
}

/// Subscribes to an MQTT topic; returns the payloads received so far.
fn mqtt_subscriber(url: &str, topic: &str) -> Arc<Mutex<Vec<String>>> {
    let u = url::Url::parse(url).unwrap();
    let mut opts =
        rumqttc::MqttOptions::new("framegate-test", u.host_str().unwrap(), u.port().unwrap());
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut connection) = rumqttc::Client::new(opts, 100);
    client.subscribe(topic, rumqttc::QoS::AtLeastOnce).unwrap();
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let subscribed = Arc::new(AtomicU64::new(0));
    {
        let (got, subscribed) = (got.clone(), subscribed.clone());
        std::thread::spawn(move || {
            let _client = client;
            for n in connection.iter() {
                match n {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                        subscribed.store(1, Ordering::Relaxed);
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        got.lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&p.payload).into_owned());
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
    }
    wait_for("the MQTT subscription", Duration::from_secs(10), || {
        (subscribed.load(Ordering::Relaxed) == 1).then_some(())
    });
    got
}

#[test]
fn alerts_arrive_at_least_once_through_a_receiver_outage_and_a_restart() {
    let broker = Mosquitto::start();
    let mqtt = mqtt_subscriber(&broker.url(), "framegate/alerts");
    let mut hooks = WebhookReceiver::down();
    let http = free_port();
    let secret = "hmac-secret";
    let mut fg = Framegate::run(&format!(
        r#"
[server]
http = "127.0.0.1:{http}"
rtsp_port = 0

[database]
snapshots = true

[[models]]
id = "coco"
path = "{model}"
format = "centernet"
threads = 1

[[alerts]]
id = "person-seen"
class = "person"
streams = ["people"]
zone = [[0, 0], [768, 0], [768, 576], [0, 576]]
min_frames = 2
cooldown_s = 2
webhook = {{ url = "{hook}", secret = "{secret}", timeout_s = 2 }}
mqtt = {{ url = "{broker}", topic = "framegate/alerts" }}

[[streams]]
id = "people"
source = "file://{vtest}"
processors = [ {{ kind = "detect", model = "coco", min_score = 0.3 }} ]
"#,
        model = shared("models/centernet.onnx").display(),
        vtest = shared("testdata/vtest.avi").display(),
        hook = hooks.url(),
        broker = broker.url(),
    ));
    let addr = format!("127.0.0.1:{http}");
    wait_for_port(http, LONG);

    // Alerts fire while the webhook receiver is down: they wait in the outbox.
    wait_for("two alerts", LONG, || {
        (all_events(&addr, "&kind=alert").len() >= 2).then_some(())
    });
    wait_for("failed webhook attempts", LONG, || {
        let s = get_json(&addr, "/api/store");
        (s["outbox"]["pending"].as_i64().unwrap() >= 2).then_some(())
    });
    assert!(hooks.hooks().is_empty());

    // framegate restarts, then the receiver comes up: the waiting alerts are delivered.
    fg.restart();
    wait_for_port(http, LONG);
    hooks.up();
    let alerts = all_events(&addr, "&kind=alert");
    let ids: BTreeSet<String> = alerts
        .iter()
        .map(|e| e["uid"].as_str().unwrap().to_string())
        .collect();
    wait_for("every alert at the webhook", LONG, || {
        let got: BTreeSet<String> = hooks.hooks().into_iter().map(|h| h.id).collect();
        ids.is_subset(&got).then_some(())
    });
    wait_for("every alert on MQTT", LONG, || {
        let got: BTreeSet<String> = mqtt
            .lock()
            .unwrap()
            .iter()
            .map(|p| {
                serde_json::from_str::<Value>(p).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        ids.is_subset(&got).then_some(())
    });

    // Every request is signed, names the alert it carries, and an alert (one rule, stream and
    // time) never arrives under two ids.
    let known: BTreeSet<String> = all_events(&addr, "&kind=alert")
        .iter()
        .map(|e| e["uid"].as_str().unwrap().to_string())
        .collect();
    let mut ids_per_alert: BTreeMap<(String, i64), BTreeSet<String>> = BTreeMap::new();
    for h in hooks.hooks() {
        assert_eq!(
            h.signature.as_deref(),
            Some(framegate::alert::signature(secret, h.body.as_bytes()).as_str())
        );
        let body: Value = serde_json::from_str(&h.body).unwrap();
        assert_eq!(body["id"], h.id.as_str());
        assert_eq!(
            (body["rule"].as_str(), body["class"].as_str()),
            (Some("person-seen"), Some("person"))
        );
        assert!(known.contains(&h.id), "unknown alert id {}", h.id);
        ids_per_alert
            .entry((
                body["stream"].as_str().unwrap().to_string(),
                body["at_ms"].as_i64().unwrap(),
            ))
            .or_default()
            .insert(h.id);
    }
    assert!(
        ids_per_alert.values().all(|s| s.len() == 1),
        "{ids_per_alert:?}"
    );

    // Alerts and detections carry a snapshot.
    let with_snapshot = alerts
        .iter()
        .find(|e| e["snapshot"].is_string())
        .expect("a snapshot");
    let r = request(
        &addr,
        "GET",
        &format!("/api/events/{}/snapshot.jpg", with_snapshot["id"]),
        None,
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(&r.body_bytes()[..2], &[0xFF, 0xD8], "a JPEG");
    eprintln!("{} alerts delivered to the webhook and MQTT", ids.len());
}

#[test]
fn retention_deletes_old_events_at_start_and_the_api_reads_what_is_kept() {
    let http = free_port();
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("events.db");
    let url = format!("sqlite://{}", db_path.display());
    // A database with an event from 40 days ago and one from now.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let db = Db::connect(&url).await.unwrap();
        db.insert(&[
            event(kind::STREAM_STATE, "cam0", now_ms() - 40 * 86_400_000),
            event(kind::CONFIG_CHANGED, "cam0", now_ms()),
        ])
        .await
        .unwrap();
        db.close().await;
    });
    let fg = Framegate::run(&format!(
        "[server]\nhttp = \"127.0.0.1:{http}\"\nrtsp_port = 0\n\n[database]\nurl = \"{url}\"\nretention_days = 30\n"
    ));
    let addr = format!("127.0.0.1:{http}");
    wait_for_port(http, LONG);
    wait_for("the old event to be deleted", LONG, || {
        (get_json(&addr, "/api/store")["events"] == 1).then_some(())
    });
    let page = get_json(&addr, "/api/events");
    assert_eq!(page["events"][0]["kind"], kind::CONFIG_CHANGED);
    // Mistakes in the query are named.
    for (query, needle) in [
        ("kind=nope", "kind=nope: one of"),
        ("limit=0", "limit=0: from 1 to 1000"),
        ("since=yesterday", "since=yesterday: expected milliseconds"),
        ("cursor=x", "cursor=x"),
        ("colour=red", "unknown field"),
    ] {
        let r = request(&addr, "GET", &format!("/api/events?{query}"), None, None);
        assert_eq!(r.status, 400, "{query}: {}", r.body);
        assert_eq!(r.json()["error"], "invalid query parameter", "{query}");
        assert!(r.body.contains(needle), "{query}: {}", r.body);
    }
    let r = request(&addr, "GET", "/api/events/123456", None, None);
    assert_eq!(r.status, 404, "{}", r.body);
    drop(fg);
}

// ---------------------------------------------------------------------------------------------
// Redis frames.

/// (channel, message) pairs received so far.
type Messages = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A Redis subscriber on its own thread; returns the messages received so far.
fn redis_subscriber(url: &str, channels: &[&str]) -> Messages {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_connection().unwrap();
    let got: Messages = Arc::default();
    let channels: Vec<String> = channels.iter().map(|c| c.to_string()).collect();
    let ready = Arc::new(AtomicU64::new(0));
    {
        let (got, ready) = (got.clone(), ready.clone());
        std::thread::spawn(move || {
            let mut pubsub = conn.as_pubsub();
            for c in &channels {
                pubsub.subscribe(c).unwrap();
            }
            ready.store(1, Ordering::Relaxed);
            while let Ok(msg) = pubsub.get_message() {
                let payload: Vec<u8> = msg.get_payload().unwrap();
                got.lock()
                    .unwrap()
                    .push((msg.get_channel_name().to_string(), payload));
            }
        });
    }
    wait_for("the Redis subscription", Duration::from_secs(10), || {
        (ready.load(Ordering::Relaxed) == 1).then_some(())
    });
    got
}

/// Splits a message into its JSON header and picture.
fn split(msg: &[u8]) -> (Value, &[u8]) {
    let n = u32::from_be_bytes(msg[..4].try_into().unwrap()) as usize;
    (
        serde_json::from_slice(&msg[4..4 + n]).unwrap(),
        &msg[4 + n..],
    )
}

#[test]
fn redis_output_publishes_frames_and_the_stream_outlives_redis() {
    let mut redis = Redis::start();
    let got = redis_subscriber(&redis.url(), &["frames.cam0", "raw.cam0"]);
    let http = free_port();
    let fg = Framegate::run(&format!(
        r#"
[server]
http = "127.0.0.1:{http}"
rtsp_port = 0

[[streams]]
id = "cam0"
source = "test://ball?width=320&height=240&fps=25"
outputs = [
  {{ kind = "redis", url = "{url}", width = 160, max_fps = 10 }},
  {{ kind = "redis", url = "{url}", channel = "raw.cam0", format = "raw", width = 64, max_fps = 5 }},
]
"#,
        url = redis.url(),
    ));
    let addr = format!("127.0.0.1:{http}");
    wait_for_port(http, LONG);
    wait_for("20 JPEG and 5 raw frames", LONG, || {
        let g = got.lock().unwrap();
        let jpeg = g.iter().filter(|(c, _)| c == "frames.cam0").count();
        let raw = g.iter().filter(|(c, _)| c == "raw.cam0").count();
        (jpeg >= 20 && raw >= 5).then_some(())
    });
    let t_recv = now_ms();
    {
        let g = got.lock().unwrap();
        let mut last_seq = None;
        let jpeg: Vec<_> = g.iter().filter(|(c, _)| c == "frames.cam0").collect();
        for (_, msg) in &jpeg {
            let (h, picture) = split(msg);
            assert_eq!(h["stream"], "cam0");
            assert_eq!(
                (h["width"].as_u64(), h["height"].as_u64()),
                (Some(160), Some(120))
            );
            assert_eq!(h["format"], "jpeg");
            assert_eq!(&picture[..2], &[0xFF, 0xD8]);
            let seq = h["seq"].as_u64().unwrap();
            assert!(
                last_seq.is_none_or(|s| seq > s),
                "sequence numbers increase"
            );
            last_seq = Some(seq);
            let age = t_recv - h["capture_ms"].as_i64().unwrap();
            assert!((0..60_000).contains(&age), "capture time {age} ms ago");
        }
        // Rate-capped at 10 per second (the source has 25).
        let first = split(&jpeg[0].1).0["capture_ms"].as_i64().unwrap();
        let last = split(&jpeg[jpeg.len() - 1].1).0["capture_ms"]
            .as_i64()
            .unwrap();
        let rate = (jpeg.len() - 1) as f64 / ((last - first) as f64 / 1000.0);
        assert!(rate < 12.0, "{rate:.1} frames/s published, cap 10");
        let (h, raw) = split(&g.iter().find(|(c, _)| c == "raw.cam0").unwrap().1);
        assert_eq!(h["format"], "i420");
        assert_eq!(raw.len(), 64 * 48 * 3 / 2, "I420 planes of 64x48");
    }

    // Redis dies: the stream goes on, the output says so and counts what it skips.
    redis.kill();
    let before = encoded(&addr, "cam0");
    wait_for("the output to notice", LONG, || {
        let s = get_json(&addr, "/api/streams/cam0");
        let outputs = s["outputs"].as_array().unwrap().clone();
        outputs
            .iter()
            .all(|o| o["kind"] == "redis" && o["state"] == "retrying")
            .then_some(())
    });
    wait_for("50 more frames without Redis", LONG, || {
        (encoded(&addr, "cam0") >= before + 50).then_some(())
    });
    assert_eq!(get_json(&addr, "/api/streams/cam0")["state"], "live");
    let metrics = request(&addr, "GET", "/metrics", None, None);
    let text = &metrics.body;
    let skipped: u64 = text
        .lines()
        .filter(|l| {
            l.starts_with("framegate_redis_frames_total") && l.contains("result=\"skipped\"")
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(skipped > 0, "skipped frames counted:\n{text}");

    // Back again: publishing resumes.
    redis.up();
    let got = redis_subscriber(&redis.url(), &["frames.cam0"]);
    wait_for("frames after Redis came back", LONG, || {
        (got.lock().unwrap().len() >= 3).then_some(())
    });
    drop(fg);
}

// ---------------------------------------------------------------------------------------------
// Media-server check.

#[test]
fn a_stream_absent_from_the_media_server_is_polled_not_pulled() {
    // The "camera": a port that counts the connections framegate makes to it.
    let camera = TcpListener::bind("127.0.0.1:0").unwrap();
    let camera_port = camera.local_addr().unwrap().port();
    let connections = Arc::new(AtomicU64::new(0));
    {
        let connections = connections.clone();
        std::thread::spawn(move || {
            for c in camera.incoming() {
                connections.fetch_add(1, Ordering::Relaxed);
                drop(c);
            }
        });
    }
    // The media server's API: 404 until the stream is published, then `{"ready": true}`.
    let api = TcpListener::bind("127.0.0.1:0").unwrap();
    let api_port = api.local_addr().unwrap().port();
    let published = Arc::new(AtomicU64::new(0));
    let asked: Arc<Mutex<Vec<String>>> = Arc::default();
    {
        let (published, asked) = (published.clone(), asked.clone());
        std::thread::spawn(move || {
            for c in api.incoming() {
                let mut c = c.unwrap();
                let mut buf = [0u8; 2048];
                let n = c.read(&mut buf).unwrap_or(0);
                let line = String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string();
                asked.lock().unwrap().push(line);
                let reply = if published.load(Ordering::Relaxed) == 1 {
                    let body = r#"{"name":"live/cam1","ready":true}"#;
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_string()
                };
                let _ = c.write_all(reply.as_bytes());
            }
        });
    }
    let http = free_port();
    let fg = Framegate::run(&format!(
        r#"
[server]
http = "127.0.0.1:{http}"
rtsp_port = 0

[[streams]]
id = "cam1"
source = "rtsp://127.0.0.1:{camera_port}/live/cam1"
media_server = {{ url = "http://127.0.0.1:{api_port}/v3/paths/get/{{path}}", json_path = "ready", poll_s = 0.2 }}
reconnect = {{ initial_s = 0.1, max_s = 0.2 }}
"#
    ));
    let addr = format!("127.0.0.1:{http}");
    wait_for_port(http, LONG);
    wait_for("5 questions to the media server", LONG, || {
        (asked.lock().unwrap().len() >= 5).then_some(())
    });
    assert_eq!(
        connections.load(Ordering::Relaxed),
        0,
        "the camera port was knocked on"
    );
    assert!(asked.lock().unwrap()[0].starts_with("GET /v3/paths/get/live/cam1 "));
    let s = get_json(&addr, "/api/streams/cam1");
    assert_eq!(s["state"], "reconnecting", "{s}");
    assert!(
        s["last_error"]["message"].as_str().unwrap().contains("404"),
        "{s}"
    );

    // Published: framegate goes for the source.
    published.store(1, Ordering::Relaxed);
    wait_for("a connection to the camera", LONG, || {
        (connections.load(Ordering::Relaxed) > 0).then_some(())
    });
    drop(fg);
}
