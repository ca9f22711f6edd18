//! The `framegate` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use framegate::app::{self, ProcessArgs};
use framegate::config::{self, Config, EncoderConfig, Hardware, ProcessorConfig, X264Preset};

/// A real-time video analytics gateway: pulls cameras, runs every frame through processors,
/// re-encodes and republishes with low latency.
#[derive(Parser)]
#[command(name = "framegate", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum WatermarkCommand {
    /// Read the watermark of a file or a live URL (rtsp://, rtmp://, http://): per window, the
    /// ID found (or none) and a confidence. Needs the key; needs no original.
    Read {
        /// A media file or a URL.
        source: String,
        /// The key the watermark was embedded with. Visible to other users in `ps`: prefer
        /// `--key-file` or the environment variable `FRAMEGATE_WATERMARK_KEY`.
        #[arg(long)]
        key: Option<String>,
        /// A file holding the key (its first line).
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// Seconds of video per report (0.01 to 3600).
        #[arg(long, default_value_t = 2.0)]
        window: f64,
        /// Stop after this many seconds (live sources run until stopped otherwise).
        #[arg(long)]
        seconds: Option<f64>,
        /// One JSON line per window instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Write the streams of a config file to etcd as the cluster's cameras (replacing those of
    /// the same id). The whole file is checked first; nothing is written unless it is valid.
    Import {
        /// etcd's client URL (`http://host:2379`); repeat for several members.
        #[arg(long, required = true)]
        etcd: Vec<String>,
        /// The config file whose `[[streams]]` are the cameras.
        file: PathBuf,
    },
    /// List the nodes registered now, and the cameras.
    Status {
        /// etcd's client URL (`http://host:2379`); repeat for several members.
        #[arg(long, required = true)]
        etcd: Vec<String>,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway. Without --config: a built-in demo of two test patterns on RTSP.
    Run {
        /// The config file (TOML).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address of the REST API, overriding `[server] http` (port 0: a free one).
        #[arg(long)]
        http: Option<std::net::SocketAddr>,
    },
    /// Validate a config file: exit 0, or print what is wrong with its line and exit 1.
    Check {
        /// The config file (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Run decode → processors → encode over a file as fast as possible and write an MP4.
    Process {
        /// The input media file.
        #[arg(long)]
        input: PathBuf,
        /// The MP4 to write.
        #[arg(long)]
        output: PathBuf,
        /// A processor to run (repeatable, in order), e.g. `--processor overlay`.
        #[arg(long = "processor")]
        processors: Vec<String>,
        /// Encoder bitrate in kbit/s.
        #[arg(long, default_value_t = 2000)]
        bitrate_kbps: u32,
        /// Frames between key frames.
        #[arg(long, default_value_t = 50)]
        keyframe_interval: u32,
        /// x264 speed preset.
        #[arg(long, value_enum, default_value_t = X264Preset::Ultrafast)]
        preset: X264Preset,
        /// Use NVIDIA's decoder and encoder: auto, on or off.
        #[arg(long, value_enum, default_value_t = Hardware::Auto)]
        hardware: Hardware,
        /// Pace the input at its own frame rate, as a live source would be.
        #[arg(long)]
        realtime: bool,
        /// Write each frame's tracks (a `track` processor's) here, as JSON lines
        /// `{"pts": seconds, "tracks": [...]}`; a frame that brings a detector's new result
        /// also has `"detections": {"pts": seconds of the frame it was found in, "boxes": [...]}`,
        /// and one where the tracker reported something `"events": [{"kind": "line.crossed",
        /// "class": ..., "data": {...}}]`. A last line has the counts, and the events of the
        /// tracks the input's end ended.
        #[arg(long)]
        tracks_out: Option<PathBuf>,
        /// Take the processors and encoder settings of a stream of this config file (with
        /// `--stream`) instead of `--processor` and the encoder options.
        #[arg(long, requires = "stream", conflicts_with = "processors")]
        config: Option<PathBuf>,
        /// The stream of `--config` whose processors and encoder settings to use.
        #[arg(long, requires = "config")]
        stream: Option<String>,
    },
    /// Serve live H.264 test patterns over RTSP at rtsp://BIND:PORT/cam0 ... (stand-in cameras).
    Testsrc {
        /// RTSP port (0 picks a free one; the URLs are printed).
        #[arg(long, default_value_t = 8554)]
        rtsp_port: u16,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        /// Number of streams.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Frame size, WIDTHxHEIGHT.
        #[arg(long, default_value = "1280x720", value_parser = parse_size)]
        size: (u32, u32),
        /// Frames per second.
        #[arg(long, default_value_t = 25)]
        fps: u32,
        /// The videotestsrc pattern (ball, smpte, white, ...).
        #[arg(long, default_value = "ball")]
        pattern: String,
        /// H.264 bitrate in kbit/s.
        #[arg(long, default_value_t = 2000)]
        bitrate_kbps: u32,
        /// Close every client connection this often, in milliseconds, as a flaky camera would.
        #[arg(long)]
        drop_clients_every_ms: Option<u64>,
        /// Require RTSP credentials, USER:PASSWORD (clients without them get 401).
        #[arg(long)]
        credentials: Option<String>,
        /// Serve H.265 instead of H.264.
        #[arg(long)]
        h265: bool,
    },
    /// Read an output (rtsp://, rtmp://, http:// MJPEG or HLS, ws:// framegate WebSocket) and report how old frames are on
    /// arrival, from the capture time `framegate testsrc` stamps into each frame.
    Probe {
        /// The URL to read.
        url: String,
        /// Seconds to read after the first frame (and the warm-up).
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Seconds after the first frame not counted (a server's backlog on connect).
        #[arg(long, default_value_t = 0.0)]
        warmup: f64,
        /// Print one JSON line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run the tracker over boxes from a file (JSON lines) instead of a detector, with no video,
    /// and print the tracks and events of every frame and the line and zone counts (JSON lines;
    /// the last line also has the events of the tracks the input's end ended): for evaluating
    /// it against ground truth and measuring its cost.
    Track {
        /// The boxes: one `{"t": seconds, "boxes": [{"box": [x, y, w, h], "label": ...,
        /// "score": ...}]}` per frame, `boxes` absent on frames without a detector result.
        #[arg(long)]
        boxes: PathBuf,
        /// Take the `track` settings, lines and zones of a stream of this config file.
        #[arg(long, requires = "stream")]
        config: Option<PathBuf>,
        /// The stream of `--config`.
        #[arg(long, requires = "config")]
        stream: Option<String>,
        /// The frames' size, WIDTHxHEIGHT (boxes are clipped to it).
        #[arg(long, value_parser = parse_size, default_value = "1280x720")]
        size: (u32, u32),
    },
    /// Several nodes as one cluster on etcd: cameras in, nodes out.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// The invisible watermark.
    Watermark {
        #[command(subcommand)]
        command: WatermarkCommand,
    },
    /// Print the config reference (Markdown), generated from the config types.
    ConfigReference,
    /// Print the JSON schema of the config file (for editors and validators).
    ConfigSchema,
}

fn main() -> ExitCode {
    // First of all, before any thread exists: the gateway runs with bounded malloc arenas.
    framegate::app::bound_malloc_arenas();
    init_logging();
    let cli = Cli::parse();
    match execute(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn execute(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run { config, http } => {
            app::run_command(config.as_deref(), http)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { config } => Ok(app::check_and_report(&config)),
        Command::Track {
            boxes,
            config,
            stream,
            size,
        } => {
            let config = config.map(|p| load(&p).map(|c| (p, c))).transpose()?;
            let stream = match (&config, &stream) {
                (Some((path, c)), Some(id)) => Some(
                    c.streams
                        .iter()
                        .find(|s| s.id().as_str() == id)
                        .with_context(|| format!("{}: no stream `{id}`", path.display()))?,
                ),
                _ => None,
            };
            let input = std::fs::File::open(&boxes)
                .with_context(|| format!("opening {}", boxes.display()))?;
            let report = app::replay_tracks(
                std::io::BufReader::new(input),
                std::io::BufWriter::new(std::io::stdout().lock()),
                stream,
                [size.0, size.1],
            )
            .with_context(|| boxes.display().to_string())?;
            eprintln!(
                "{} frames, {:.3} ms per detector result",
                report.frames, report.mean_update_ms
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Process {
            input,
            output,
            processors,
            bitrate_kbps,
            keyframe_interval,
            preset,
            hardware,
            realtime,
            tracks_out,
            config,
            stream,
        } => {
            let args = match (config, stream) {
                (Some(path), Some(id)) => {
                    let config = load(&path)?;
                    let s = config
                        .streams
                        .iter()
                        .find(|s| s.id().as_str() == id)
                        .with_context(|| format!("{}: no stream `{id}`", path.display()))?;
                    ProcessArgs {
                        input,
                        output,
                        processors: s.processors.clone(),
                        encoder: s.encoder.clone(),
                        decoder_hardware: s.decoder.hardware,
                        realtime,
                        models: framegate::process::Models::new(&config),
                        lines: s.lines.clone(),
                        zones: s.zones.clone(),
                        tracks_out,
                        python: config.python.clone(),
                    }
                }
                _ => ProcessArgs {
                    input,
                    output,
                    processors: processors
                        .iter()
                        .map(|kind| processor_from_kind(kind))
                        .collect::<anyhow::Result<Vec<_>>>()?,
                    encoder: EncoderConfig {
                        bitrate_kbps,
                        keyframe_interval,
                        preset,
                        hardware,
                        ..EncoderConfig::default()
                    },
                    decoder_hardware: hardware,
                    realtime,
                    models: framegate::process::Models::default(),
                    lines: Vec::new(),
                    zones: Vec::new(),
                    tracks_out,
                    python: Default::default(),
                },
            };
            let report = app::process_file(&args)?;
            println!(
                "{}: {} frames in {:.2} s ({:.1} fps)",
                args.output.display(),
                report.frames,
                report.elapsed.as_secs_f64(),
                report.frames as f64 / report.elapsed.as_secs_f64().max(1e-9)
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Testsrc {
            rtsp_port,
            bind,
            count,
            size,
            fps,
            pattern,
            bitrate_kbps,
            drop_clients_every_ms,
            credentials,
            h265,
        } => {
            let credentials = credentials
                .map(|c| {
                    c.split_once(':')
                        .map(|(u, p)| (u.to_string(), p.to_string()))
                        .context("--credentials takes USER:PASSWORD")
                })
                .transpose()?;
            app::run_test_source(&app::TestSourceArgs {
                bind,
                port: rtsp_port,
                count,
                width: size.0,
                height: size.1,
                fps,
                pattern,
                bitrate_kbps,
                drop_clients_every: drop_clients_every_ms.map(std::time::Duration::from_millis),
                credentials,
                h265,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Watermark {
            command:
                WatermarkCommand::Read {
                    source,
                    key,
                    key_file,
                    window,
                    seconds,
                    json,
                },
        } => {
            let key = watermark_key(key, key_file.as_deref())?;
            app::read_and_print(&source, &key, window, seconds, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Probe {
            url,
            seconds,
            warmup,
            json,
        } => {
            app::probe(&url, seconds, warmup, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Cluster { command } => cluster(command),
        Command::ConfigReference => {
            print!("{}", config::reference::markdown());
            Ok(ExitCode::SUCCESS)
        }
        Command::ConfigSchema => {
            println!("{:#}", config::reference::json_schema());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn cluster(command: ClusterCommand) -> anyhow::Result<ExitCode> {
    match command {
        ClusterCommand::Import { etcd, file } => {
            let n = app::cluster_import(&etcd, &file)?;
            println!("{n} cameras written to etcd");
        }
        ClusterCommand::Status { etcd, json } => app::print_cluster_status(&etcd, json)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once('x')
        .ok_or_else(|| format!("`{s}`: expected WIDTHxHEIGHT, e.g. 1280x720"))?;
    let parse = |v: &str| {
        v.parse::<u32>()
            .ok()
            .filter(|n| (16..=7680).contains(n) && n % 2 == 0)
            .ok_or_else(|| format!("`{s}`: sizes are even numbers from 16 to 7680"))
    };
    Ok((parse(w)?, parse(h)?))
}

/// The watermark key: `--key-file`, else `--key`, else `FRAMEGATE_WATERMARK_KEY`.
fn watermark_key(key: Option<String>, file: Option<&Path>) -> anyhow::Result<String> {
    if let Some(f) = file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("--key-file: cannot read {}", f.display()))?;
        let line = text.lines().next().unwrap_or("").trim_end().to_string();
        anyhow::ensure!(!line.is_empty(), "--key-file: {} is empty", f.display());
        return Ok(line);
    }
    key.or_else(|| std::env::var("FRAMEGATE_WATERMARK_KEY").ok())
        .filter(|k| !k.is_empty())
        .context("the watermark key: give --key-file, FRAMEGATE_WATERMARK_KEY or --key")
}

fn load(path: &Path) -> anyhow::Result<Config> {
    Ok(config::load_file(path)?)
}

/// A processor with default settings from its `kind`, as `--processor overlay` gives it.
fn processor_from_kind(kind: &str) -> anyhow::Result<ProcessorConfig> {
    let mut table = toml::Table::new();
    table.insert("kind".into(), toml::Value::String(kind.into()));
    toml::Value::Table(table)
        .try_into()
        .with_context(|| format!("--processor {kind}: unknown processor"))
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("FRAMEGATE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,ort=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(framegate::redact::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}
