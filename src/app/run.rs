//! `framegate run`: start every stream of the config under the stream manager, serve the REST
//! API, print where to watch, and run until SIGINT or SIGTERM (a second one exits at once).
//! SIGHUP re-reads the config file.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::alert::AlertRules;
use crate::config::Config;
use crate::control::{Manager, api};
use crate::publish::RtspServer;
use crate::store::Store;

/// The longest a graceful shutdown may take before the process exits regardless.
const SHUTDOWN_DEADLINE: Duration = Duration::from_millis(2700);

/// Runs the gateway until a termination signal.
pub fn run(config: &Config, config_path: Option<&Path>) -> Result<()> {
    super::init_media()?;
    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP]).context("installing signal handlers")?;
    let rtsp = Arc::new(RtspServer::start(
        config.server.bind,
        config.server.rtsp_port,
    )?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("async")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // Streams start tasks (JPEG feeders, Redis outputs) on this runtime.
    let _entered = runtime.enter();
    let store = start_store(config, config_path)?;
    let alerts = AlertRules::new(config.alerts.clone());
    runtime.spawn(crate::alert::run_outbox(store.clone(), alerts.clone()));
    let manager = Manager::start(config, config_path, rtsp, store.clone(), alerts)?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(config.server.http))
        .with_context(|| {
            format!(
                "HTTP API: cannot listen on {} (port in use?)",
                config.server.http
            )
        })?;
    let http_addr = listener.local_addr()?;
    let token = std::env::var("FRAMEGATE_API_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .or_else(|| config.server.api_token.clone());
    tracing::info!(
        auth = if token.is_some() {
            "bearer token"
        } else {
            "open"
        },
        "HTTP API listening on http://{http_addr}"
    );
    let app = api::router(manager.clone(), token, config.server.api_read_open);
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(api::serve(listener, app, async {
        let _ = http_stopped.await;
    }));
    print_urls(&manager, http_addr);

    for signal in signals.forever() {
        if signal == SIGHUP {
            tracing::info!("SIGHUP: reloading the config");
            if let Err(e) = manager.reload() {
                tracing::error!("reload failed, nothing changed: {e}");
            }
            continue;
        }
        tracing::info!(signal, "shutting down (a second signal exits at once)");
        break;
    }
    std::thread::spawn(move || {
        if signals.forever().any(|s| s != SIGHUP) {
            std::process::exit(130);
        }
    });
    // Outputs get end-of-stream and close cleanly; should something hang (a server that never
    // answers a TEARDOWN), the process still ends in time for service managers.
    std::thread::spawn(|| {
        std::thread::sleep(SHUTDOWN_DEADLINE);
        tracing::warn!("shutdown took longer than {SHUTDOWN_DEADLINE:?}: exiting now");
        std::process::exit(0);
    });
    let _ = stop_http.send(());
    manager.shutdown();
    // Events still in memory go to the database, or to the on-disk queue.
    let _ = runtime
        .block_on(async { tokio::time::timeout(Duration::from_millis(800), store.close()).await });
    let _ =
        runtime.block_on(async { tokio::time::timeout(Duration::from_millis(500), server).await });
    runtime.shutdown_timeout(Duration::from_millis(200));
    tracing::info!("stopped");
    Ok(())
}

/// The event store of the config; the built-in demo keeps its events in memory.
fn start_store(config: &Config, config_path: Option<&Path>) -> Result<Arc<Store>> {
    let mut db = config.database.clone();
    let dir = config_path.map(|p| {
        let stem = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "framegate".into());
        p.with_file_name(format!("{stem}.events"))
    });
    if config_path.is_none() && db == crate::config::DatabaseConfig::default() {
        db.url = "sqlite::memory:".into();
    }
    Store::start(&db, dir.as_deref())
}

fn print_urls(manager: &Manager, http: std::net::SocketAddr) {
    let streams = manager.list();
    println!("framegate is running: dashboard http://{http}/   API http://{http}/api/streams");
    let urls: Vec<(String, String)> = streams
        .iter()
        .flat_map(|s| {
            s.outputs
                .iter()
                .filter(|o| o.kind == "rtsp")
                .map(move |o| (s.id.clone(), o.url.clone()))
        })
        .collect();
    for (id, url) in &urls {
        println!("  {id:<16} {url}");
    }
    if let Some((_, url)) = urls.first() {
        println!(
            "open one with: ffplay -rtsp_transport tcp {url}   (or VLC: Media > Open Network Stream)"
        );
    }
}
