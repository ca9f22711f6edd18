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
use crate::publish::LazyRtspServer;
use crate::store::Store;

/// The longest a graceful shutdown may take before the process exits regardless.
const SHUTDOWN_DEADLINE: Duration = Duration::from_millis(2700);

/// `framegate run [--config FILE] [--http ADDR]`: the file's config, or the built-in demo
/// without one; `http` overrides `[server] http`. Runs until a termination signal.
pub fn run_command(path: Option<&Path>, http: Option<std::net::SocketAddr>) -> Result<()> {
    let mut config = match path {
        Some(p) => crate::config::load_file(p)?,
        None => {
            tracing::info!("no --config given: running the built-in demo");
            crate::config::parse_str(&crate::assets::demo_config(), Path::new("<built-in demo>"))?
        }
    };
    if let Some(http) = http {
        config.server.http = http;
    }
    run(&config, path)
}

/// Runs the gateway until a termination signal.
pub fn run(config: &Config, config_path: Option<&Path>) -> Result<()> {
    super::init_media()?;
    config.register_secrets();
    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP]).context("installing signal handlers")?;
    let rtsp_users: Vec<(String, String)> = config
        .server
        .rtsp_auth
        .pairs()
        .into_iter()
        .map(|(u, p)| (u.to_string(), p.to_string()))
        .collect();
    if !rtsp_users.is_empty() {
        tracing::info!(users = rtsp_users.len(), "RTSP clients must log in");
    } else if !config.server.bind.is_loopback() {
        tracing::warn!(
            "the RTSP server listens on {} without [server.rtsp_auth]: anyone who reaches it can watch",
            config.server.bind
        );
    }
    // Bound when the first stream with an `rtsp` output starts (at once on a cluster node).
    let limits = &config.server.limits;
    let rtsp = Arc::new(LazyRtspServer::new(
        config.server.bind,
        config.server.rtsp_port,
        rtsp_users,
        crate::publish::RtspClientLimits {
            connections: limits.rtsp_clients as usize,
            setup_timeout: Duration::from_secs_f64(limits.rtsp_setup_timeout_s),
        },
    ));
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
    let who = config.cluster.as_ref().map_or_else(
        || format!("framegate-{}", std::process::id()),
        |c| c.node.clone(),
    );
    runtime.spawn(crate::alert::run_outbox(store.clone(), alerts.clone(), who));
    let token = match std::env::var("FRAMEGATE_API_TOKEN") {
        Ok(t) if t.len() < 16 || t.trim() != t => anyhow::bail!(
            "FRAMEGATE_API_TOKEN must be at least 16 characters without spaces around it"
        ),
        Ok(t) => Some(t),
        Err(_) => config.server.api_token.clone(),
    };
    if let Some(t) = &token {
        crate::redact::register(t);
    }
    let manager = Manager::start(config, config_path, rtsp.clone(), store.clone(), alerts)?;
    // Bound before the node joins a cluster: a node that cannot listen never registers, and
    // the address it advertises by default is the one it got (`http` may ask for port 0).
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(config.server.http))
        .with_context(|| {
            format!(
                "HTTP API: cannot listen on {} (port in use?)",
                config.server.http
            )
        })?;
    let http_addr = listener.local_addr()?;
    let (membership, cluster_view) =
        super::cluster::join(config, manager.clone(), &rtsp, token.as_deref(), http_addr)?.unzip();
    tracing::info!(
        auth = if token.is_some() {
            "bearer token"
        } else {
            "open"
        },
        "HTTP API listening on {}://{http_addr}",
        if config.server.tls.is_some() {
            "https"
        } else {
            "http"
        }
    );
    let app = api::router(
        manager.clone(),
        &config.server,
        token,
        http_addr,
        cluster_view,
    );
    let tls = match &config.server.tls {
        Some(t) => Some(api::tls_acceptor(t)?),
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let options = api::ServeOptions {
        max_connections: connection_cap(config.server.limits.http_connections as usize),
        header_timeout: Duration::from_secs_f64(config.server.limits.header_read_timeout_s),
        tls,
    };
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(api::serve(listener, app, options, async {
        let _ = http_stopped.await;
    }));
    print_urls(&manager, scheme, http_addr);

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
    {
        // Even then, the events still in memory go to the database or the on-disk queue first.
        let (handle, store) = (runtime.handle().clone(), store.clone());
        std::thread::spawn(move || {
            std::thread::sleep(SHUTDOWN_DEADLINE);
            tracing::warn!(
                "shutdown took longer than {SHUTDOWN_DEADLINE:?}: saving events, then exiting"
            );
            let _ = handle.block_on(async {
                tokio::time::timeout(Duration::from_millis(800), store.close()).await
            });
            std::process::exit(0);
        });
    }
    let _ = stop_http.send(());
    manager.shutdown();
    if let Some(m) = membership {
        let _ = runtime.block_on(tokio::time::timeout(Duration::from_millis(500), m.leave()));
    }
    // Events still in memory go to the database, or to the on-disk queue.
    let _ = runtime
        .block_on(async { tokio::time::timeout(Duration::from_millis(800), store.close()).await });
    let _ =
        runtime.block_on(async { tokio::time::timeout(Duration::from_millis(500), server).await });
    runtime.shutdown_timeout(Duration::from_millis(200));
    tracing::info!("stopped");
    Ok(())
}

/// The HTTP connection cap that fits this process's file descriptors: the soft limit is
/// raised to the hard one, and the cap leaves room for pipelines, sockets and files.
fn connection_cap(wanted: usize) -> usize {
    const RESERVED: u64 = 512;
    let soft = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!("cannot raise the open-files limit: {e}");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(s, _)| s)
        }
    };
    let fits = soft.saturating_sub(RESERVED).max(16) as usize;
    if wanted > fits {
        tracing::warn!(
            "server.limits.http_connections = {wanted} does not fit the open-files limit ({soft}); using {fits}"
        );
    }
    wanted.min(fits)
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

fn print_urls(manager: &Manager, scheme: &str, http: std::net::SocketAddr) {
    let streams = manager.list();
    println!(
        "framegate is running: dashboard {scheme}://{http}/   API {scheme}://{http}/api/streams"
    );
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
