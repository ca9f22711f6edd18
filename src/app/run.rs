//! `framegate run`: start every stream of the config, print where to watch them, and run until
//! SIGINT or SIGTERM. A second signal exits at once.

use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::config::{Config, OutputConfig};
use crate::publish::RtspServer;
use crate::stream::Stream;

/// The longest a graceful shutdown may take before the process exits regardless.
const SHUTDOWN_DEADLINE: std::time::Duration = std::time::Duration::from_millis(2700);

/// Runs the gateway until a termination signal.
pub fn run(config: &Config) -> Result<()> {
    super::init_media()?;
    let mut signals = Signals::new([SIGINT, SIGTERM]).context("installing signal handlers")?;
    let needs_rtsp = config
        .streams
        .iter()
        .any(|s| s.outputs.iter().any(|o| matches!(o, OutputConfig::Rtsp(_))));
    let rtsp = if needs_rtsp {
        Some(RtspServer::start(
            config.server.bind,
            config.server.rtsp_port,
        )?)
    } else {
        None
    };
    let mut streams = Vec::new();
    for s in &config.streams {
        match Stream::start(s, &config.server, rtsp.as_ref()) {
            Ok(stream) => streams.push(stream),
            // One stream that cannot start (say, `hardware = "on"` without a GPU) is reported
            // and left out; the others run.
            Err(e) => tracing::error!(stream = %s.id(), "not started: {e:#}"),
        }
    }
    print_urls(&streams);

    let signal = signals.forever().next();
    tracing::info!(signal, "shutting down (a second signal exits at once)");
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
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
    for s in &streams {
        s.begin_stop();
    }
    for s in streams {
        s.stop(rtsp.as_ref());
    }
    drop(rtsp);
    tracing::info!("stopped");
    Ok(())
}

fn print_urls(streams: &[Stream]) {
    let urls: Vec<_> = streams
        .iter()
        .flat_map(|s| s.rtsp_urls().iter().map(move |u| (s.id(), u)))
        .collect();
    if urls.is_empty() {
        return;
    }
    println!("framegate is serving:");
    for (id, url) in &urls {
        println!("  {id:<16} {url}");
    }
    if let Some((_, url)) = urls.first() {
        println!(
            "open one with: ffplay -rtsp_transport tcp {url}   (or VLC: Media > Open Network Stream)"
        );
    }
}
