//! `/metrics`: the Prometheus text exposition format, written out directly from the streams'
//! counters and histograms (no registry to keep in sync).

use std::fmt::Write;

use crate::stream::{Histogram, Stream};

use super::Manager;
use crate::process::detect::ModelStatus;

/// The states a stream can be in, for the one-hot `framegate_stream_state` gauge.
const STATES: [&str; 5] = ["connecting", "live", "stalled", "reconnecting", "stopped"];

/// Renders every metric.
pub fn render(manager: &Manager) -> String {
    let mut m = Metrics::default();
    manager.for_each(|config, running| {
        let id = config.id().as_str();
        m.stream(id, running);
    });
    m.models(&manager.models());
    m.store(&manager.store().status());
    let mut out = String::new();
    for family in m.families() {
        out.push_str(&family);
    }
    process_metrics(&mut out);
    out
}

/// Samples grouped by metric family (a family's lines must be together).
#[derive(Default)]
struct Metrics {
    frames: String,
    dropped: String,
    fps: String,
    reconnects: String,
    state: String,
    latency: String,
    output_failures: String,
    detect: String,
    python_calls: String,
    python_behind: String,
    tracks: String,
    line_crossings: String,
    zone_entries: String,
    zone_inside: String,
    model_inputs: String,
    model_batches: String,
    model_busy: String,
    model_panics: String,
    model_restarts: String,
    model_sessions: String,
    redis: String,
    webrtc: String,
    events_written: String,
    events_queued: String,
    events_held: String,
    events_write_failures: String,
    events_dropped: String,
    encoder_restarts: String,
    degraded: String,
    audio_packets: String,
    audio_transcodes: String,
}

impl Metrics {
    fn stream(&mut self, id: &str, running: Option<&Stream>) {
        let label = escape(id);
        let state = running.map_or("stopped", |s| s.state().name());
        for st in STATES {
            let _ = writeln!(
                self.state,
                "framegate_stream_state{{stream=\"{label}\",state=\"{st}\"}} {}",
                u8::from(st == state)
            );
        }
        let Some(s) = running else { return };
        let stats = s.stats();
        let snap = stats.snapshot(s.dropped_outputs());
        for (stage, v) in [
            ("decoded", snap.frames_in),
            ("encoded", snap.frames_out),
            ("held", snap.frames_held),
            ("slate", snap.frames_slate),
            ("processed", snap.frames_processed),
            (
                "similar",
                stats
                    .frames_similar
                    .load(std::sync::atomic::Ordering::Relaxed),
            ),
            (
                "copied",
                stats
                    .frames_copied
                    .load(std::sync::atomic::Ordering::Relaxed),
            ),
            (
                "withheld",
                stats
                    .frames_withheld
                    .load(std::sync::atomic::Ordering::Relaxed),
            ),
        ] {
            let _ = writeln!(
                self.frames,
                "framegate_stream_frames_total{{stream=\"{label}\",stage=\"{stage}\"}} {v}"
            );
        }
        for (stage, v) in [
            ("ingest", snap.dropped_ingest),
            ("outputs", snap.dropped_outputs),
            (
                "early",
                stats
                    .dropped_early
                    .load(std::sync::atomic::Ordering::Relaxed),
            ),
        ] {
            let _ = writeln!(
                self.dropped,
                "framegate_stream_dropped_frames_total{{stream=\"{label}\",stage=\"{stage}\"}} {v}"
            );
        }
        let (fin, fout) = stats.rates();
        let _ = writeln!(
            self.fps,
            "framegate_stream_fps{{stream=\"{label}\",direction=\"in\"}} {fin:.3}"
        );
        let _ = writeln!(
            self.fps,
            "framegate_stream_fps{{stream=\"{label}\",direction=\"out\"}} {fout:.3}"
        );
        let _ = writeln!(
            self.reconnects,
            "framegate_stream_reconnects_total{{stream=\"{label}\"}} {}",
            snap.reconnects
        );
        let health = s.encoder_health();
        let _ = writeln!(
            self.encoder_restarts,
            "framegate_encoder_restarts_total{{stream=\"{label}\"}} {}",
            health.restarts()
        );
        let _ = writeln!(
            self.degraded,
            "framegate_stream_degraded{{stream=\"{label}\"}} {}",
            u8::from(health.degraded().is_some())
        );
        let audio = s.audio().stats();
        for (kind, v) in [
            ("source", &audio.packets),
            ("silence", &audio.silent),
            ("dropped", &audio.dropped),
            ("transcoded", &*audio.transcoded),
        ] {
            let _ = writeln!(
                self.audio_packets,
                "framegate_audio_packets_total{{stream=\"{label}\",kind=\"{kind}\"}} {}",
                v.load(std::sync::atomic::Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            self.audio_transcodes,
            "framegate_audio_transcodes_total{{stream=\"{label}\"}} {}",
            audio.transcodes.load(std::sync::atomic::Ordering::Relaxed)
        );
        for (stage, h) in [
            ("queue", &stats.queue_latency),
            ("process", &stats.process_latency),
            ("encode", &stats.encode_latency),
        ] {
            histogram(&mut self.latency, &label, stage, h);
        }
        for d in s.detectors() {
            let st = d.status();
            for (result, v) in [
                ("submitted", st.submitted),
                ("completed", st.completed),
                ("dropped", st.dropped),
                ("failed", st.failed),
            ] {
                let _ = writeln!(
                    self.detect,
                    "framegate_detect_frames_total{{stream=\"{label}\",model=\"{}\",result=\"{result}\"}} {v}",
                    escape(&st.model)
                );
            }
            if let Some(py) = &st.python {
                let file = escape(&py.file);
                for (result, v) in [
                    ("returned", py.calls - py.errors.min(py.calls)),
                    ("raised", py.errors),
                    ("skipped", py.skipped),
                    ("late", py.late),
                    ("copied", py.copied),
                ] {
                    let _ = writeln!(
                        self.python_calls,
                        "framegate_python_frames_total{{stream=\"{label}\",file=\"{file}\",result=\"{result}\"}} {v}"
                    );
                }
                let _ = writeln!(
                    self.python_behind,
                    "framegate_python_behind{{stream=\"{label}\",file=\"{file}\"}} {}",
                    u8::from(py.behind)
                );
            }
        }
        if let Some(t) = s.tracker() {
            let st = t.status();
            for (event, v) in [("started", st.started), ("ended", st.ended)] {
                let _ = writeln!(
                    self.tracks,
                    "framegate_tracks_total{{stream=\"{label}\",event=\"{event}\"}} {v}"
                );
            }
            let counts = t.counts();
            for (line, classes) in &counts.lines {
                for (class, c) in classes {
                    for (direction, v) in [("forward", c.forward), ("backward", c.backward)] {
                        let _ = writeln!(
                            self.line_crossings,
                            "framegate_line_crossings_total{{stream=\"{label}\",line=\"{}\",class=\"{}\",direction=\"{direction}\"}} {v}",
                            escape(line),
                            escape(class)
                        );
                    }
                }
            }
            for (zone, classes) in &counts.zones {
                for (class, c) in classes {
                    let labels = format!(
                        "stream=\"{label}\",zone=\"{}\",class=\"{}\"",
                        escape(zone),
                        escape(class)
                    );
                    let _ = writeln!(
                        self.zone_entries,
                        "framegate_zone_entries_total{{{labels}}} {}",
                        c.entered
                    );
                    let _ = writeln!(
                        self.zone_inside,
                        "framegate_zone_inside{{{labels}}} {}",
                        c.inside
                    );
                }
            }
        }
        for o in s.push_outputs() {
            let _ = writeln!(
                self.output_failures,
                "framegate_output_failures_total{{stream=\"{label}\",output=\"{}\"}} {}",
                escape(o.name()),
                o.status().failures
            );
        }
        if let Some(s) = running {
            let _ = writeln!(
                self.webrtc,
                "framegate_webrtc_sessions{{stream=\"{label}\"}} {}",
                s.whep().count()
            );
        }
        for o in s.redis_outputs() {
            let name = format!("redis {}", o.url());
            let _ = writeln!(
                self.output_failures,
                "framegate_output_failures_total{{stream=\"{label}\",output=\"{}\"}} {}",
                escape(&name),
                o.status().failures
            );
            let c = o.counters();
            for (result, v) in [("published", &c.published), ("skipped", &c.skipped)] {
                let _ = writeln!(
                    self.redis,
                    "framegate_redis_frames_total{{stream=\"{label}\",output=\"{}\",result=\"{result}\"}} {}",
                    escape(&name),
                    v.load(std::sync::atomic::Ordering::Relaxed)
                );
            }
        }
    }

    fn models(&mut self, models: &[ModelStatus]) {
        for m in models {
            let label = escape(&m.id);
            let provider = escape(&m.provider);
            let _ = writeln!(
                self.model_inputs,
                "framegate_model_inputs_total{{model=\"{label}\",provider=\"{provider}\"}} {}",
                m.inputs
            );
            let _ = writeln!(
                self.model_batches,
                "framegate_model_batches_total{{model=\"{label}\"}} {}",
                m.batches
            );
            let _ = writeln!(
                self.model_busy,
                "framegate_model_busy_seconds_total{{model=\"{label}\"}} {}",
                m.mean_batch_ms * m.batches as f64 / 1000.0
            );
            let _ = writeln!(
                self.model_panics,
                "framegate_model_panics_total{{model=\"{label}\"}} {}",
                m.panics
            );
            let _ = writeln!(
                self.model_restarts,
                "framegate_model_restarts_total{{model=\"{label}\"}} {}",
                m.restarts
            );
        }
        let sessions = models.first().map_or(0, |m| m.sessions_in_process);
        let _ = writeln!(self.model_sessions, "framegate_model_sessions {sessions}");
    }

    fn store(&mut self, st: &crate::store::StoreStatus) {
        let _ = writeln!(
            self.events_written,
            "framegate_events_written_total {}",
            st.written
        );
        let _ = writeln!(self.events_queued, "framegate_events_queued {}", st.queued);
        let _ = writeln!(
            self.events_held,
            "framegate_events_held_in_memory {}",
            st.held_in_memory
        );
        let _ = writeln!(
            self.events_write_failures,
            "framegate_events_write_failures_total {}",
            st.write_failures
        );
        let _ = writeln!(
            self.events_dropped,
            "framegate_events_dropped_total{{reason=\"channel_full\"}} {}\nframegate_events_dropped_total{{reason=\"queue_full\"}} {}\nframegate_events_dropped_total{{reason=\"fenced\"}} {}",
            st.dropped_channel_full, st.dropped_queue_full, st.dropped_fenced
        );
    }

    fn families(self) -> Vec<String> {
        let family = |name: &str, kind: &str, help: &str, body: String| {
            format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{body}")
        };
        vec![
            family(
                "framegate_stream_state",
                "gauge",
                "1 for the state the stream is in.",
                self.state,
            ),
            family(
                "framegate_stream_frames_total",
                "counter",
                "Frames per stage: decoded from the source; encoded (live, held and slate); held (repeated through short gaps); slate (NO SIGNAL).",
                self.frames,
            ),
            family(
                "framegate_stream_dropped_frames_total",
                "counter",
                "Frames dropped: ingest (replaced by a newer one before processing), outputs (slow viewers or servers).",
                self.dropped,
            ),
            family(
                "framegate_stream_fps",
                "gauge",
                "Frames per second over the last second.",
                self.fps,
            ),
            family(
                "framegate_stream_reconnects_total",
                "counter",
                "Times the source was reopened.",
                self.reconnects,
            ),
            family(
                "framegate_encoder_restarts_total",
                "counter",
                "Times the stream's encoder was started again after it failed.",
                self.encoder_restarts,
            ),
            family(
                "framegate_stream_degraded",
                "gauge",
                "1 while the stream's encoder is failed and being restarted (the reason is in the stream's status).",
                self.degraded,
            ),
            family(
                "framegate_audio_packets_total",
                "counter",
                "Audio packets per kind: source (carried from the source), silence (sent while the source sent none), dropped (source packets that could not be placed on the output timeline), transcoded (out of the stream's transcodes).",
                self.audio_packets,
            ),
            family(
                "framegate_audio_transcodes_total",
                "counter",
                "Audio transcodes started (one per codec some output needs that the source does not send, shared by all its outputs).",
                self.audio_transcodes,
            ),
            family(
                "framegate_stage_latency_seconds",
                "histogram",
                "Time per frame in each stage: queue (decoder to processing), process, encode.",
                self.latency,
            ),
            family(
                "framegate_output_failures_total",
                "counter",
                "Failed connections of push and redis outputs.",
                self.output_failures,
            ),
            family(
                "framegate_redis_frames_total",
                "counter",
                "Pictures of a redis output: published, or skipped while Redis was slow or down.",
                self.redis,
            ),
            family(
                "framegate_webrtc_sessions",
                "gauge",
                "WebRTC (WHEP) viewers of a stream now.",
                self.webrtc,
            ),
            family(
                "framegate_events_written_total",
                "counter",
                "Events written to the event store's database.",
                self.events_written,
            ),
            family(
                "framegate_events_queued",
                "gauge",
                "Events waiting for the database: in the on-disk queue, or held in memory while the disk refuses them.",
                self.events_queued,
            ),
            family(
                "framegate_events_held_in_memory",
                "gauge",
                "Events of the queue held in memory because the disk refuses them (full, read-only).",
                self.events_held,
            ),
            family(
                "framegate_events_write_failures_total",
                "counter",
                "Writes (and connections) the event store's database refused; the events wait in the queue.",
                self.events_write_failures,
            ),
            family(
                "framegate_events_dropped_total",
                "counter",
                "Events lost: the writer's channel was full, or the on-disk queue was full.",
                self.events_dropped,
            ),
            family(
                "framegate_detect_frames_total",
                "counter",
                "Frames of a stream's detector: submitted to the model, completed, dropped (the model still had the stream's last frame), failed.",
                self.detect,
            ),
            family(
                "framegate_python_frames_total",
                "counter",
                "Frames of a stream's python processor: calls that returned or raised, frames that went by while it was busy (skipped), calls past its budget (late: their frame was withheld), frames copied because the function kept views of them.",
                self.python_calls,
            ),
            family(
                "framegate_python_behind",
                "gauge",
                "1 while a stream's python processor is slower than its budget (frames do not wait for it).",
                self.python_behind,
            ),
            family(
                "framegate_tracks_total",
                "counter",
                "Objects a stream's tracker confirmed (started) and ended.",
                self.tracks,
            ),
            family(
                "framegate_line_crossings_total",
                "counter",
                "Tracked objects that crossed a counting line, per class and direction.",
                self.line_crossings,
            ),
            family(
                "framegate_zone_entries_total",
                "counter",
                "Tracked objects that entered a zone, per class.",
                self.zone_entries,
            ),
            family(
                "framegate_zone_inside",
                "gauge",
                "Tracked objects inside a zone now, per class.",
                self.zone_inside,
            ),
            family(
                "framegate_model_inputs_total",
                "counter",
                "Frames run by a shared model, all streams together.",
                self.model_inputs,
            ),
            family(
                "framegate_model_batches_total",
                "counter",
                "Batches run by a shared model.",
                self.model_batches,
            ),
            family(
                "framegate_model_panics_total",
                "counter",
                "Panics caught on a model's thread (pre-processing or a run); the model goes on.",
                self.model_panics,
            ),
            family(
                "framegate_model_restarts_total",
                "counter",
                "Times a model's loop was started again after a panic outside a run (in a stream's reply).",
                self.model_restarts,
            ),
            family(
                "framegate_model_busy_seconds_total",
                "counter",
                "Time a model's thread spent pre-processing and running batches.",
                self.model_busy,
            ),
            family(
                "framegate_model_sessions",
                "gauge",
                "ONNX Runtime sessions in the process (one per loaded model).",
                self.model_sessions,
            ),
        ]
    }
}

fn histogram(out: &mut String, stream: &str, stage: &str, h: &Histogram) {
    let name = "framegate_stage_latency_seconds";
    for (le, count) in h.cumulative() {
        let le = le.map_or("+Inf".to_string(), |v| format!("{v}"));
        let _ = writeln!(
            out,
            "{name}_bucket{{stream=\"{stream}\",stage=\"{stage}\",le=\"{le}\"}} {count}"
        );
    }
    let _ = writeln!(
        out,
        "{name}_sum{{stream=\"{stream}\",stage=\"{stage}\"}} {}",
        h.sum_secs()
    );
    let _ = writeln!(
        out,
        "{name}_count{{stream=\"{stream}\",stage=\"{stage}\"}} {}",
        h.count()
    );
}

/// CPU time, resident memory and threads of this process, from /proc.
fn process_metrics(out: &mut String) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    if let Some(cpu) = process_cpu_seconds() {
        let _ = write!(
            out,
            "# HELP process_cpu_seconds_total User and system CPU time.\n\
             # TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {cpu}\n"
        );
    }
    let _ = write!(
        out,
        "# HELP framegate_h264_encoders H.264 encoders running: one per running stream, however many outputs and viewers it has.\n\
         # TYPE framegate_h264_encoders gauge\nframegate_h264_encoders {}\n",
        crate::encode::running_encoders()
    );
    if let Some(rss) = field("VmRSS:") {
        let _ = write!(
            out,
            "# HELP process_resident_memory_bytes Resident memory.\n\
             # TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {}\n",
            rss * 1024
        );
    }
    if let Some(threads) = field("Threads:") {
        let _ = write!(
            out,
            "# HELP process_threads Threads of the process.\n\
             # TYPE process_threads gauge\nprocess_threads {threads}\n"
        );
    }
}

fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // Clock ticks per second: 100 on every Linux this runs on.
    Some((utime + stime) / 100.0)
}

/// Escapes a label value.
fn escape(v: &str) -> String {
    crate::redact::text(v)
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
