//! Sound and picture together: a clip whose every second starts with a white flash and a
//! 1 kHz beep at the same instant, and a meter that finds both in an output and says how far
//! apart they are.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Makes a `secs`-long 320x240 25 fps H.264 clip in Matroska with a flash and a beep (80 ms)
/// at every whole second, the audio encoded with `audio` (ffmpeg output arguments).
pub fn sync_clip(dir: &Path, name: &str, secs: u32, audio: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("color=c=black:s=320x240:r=25,drawbox=c=white:t=fill:enable='lt(mod(t\\,1)\\,0.08)'")
        .args(["-f", "lavfi", "-i"])
        .arg("aevalsrc='if(lt(mod(t\\,1)\\,0.08)\\,0.5*sin(2*PI*1000*t)\\,0)':s=48000:c=stereo")
        .args(["-t", &secs.to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-bf",
            "0",
        ])
        .args(["-pix_fmt", "yuv420p"])
        .args(audio)
        .arg(&path)
        .status()
        .expect("ffmpeg is not installed");
    assert!(status.success(), "ffmpeg could not make {name}");
    path
}

/// What the meter found in an output.
#[derive(Debug)]
pub struct AvReport {
    /// Audio onset minus video onset per flash, in milliseconds.
    pub offsets_ms: Vec<f64>,
    /// Flashes seen.
    pub flashes: usize,
    /// Beeps heard.
    pub beeps: usize,
    /// What the reader said (its errors), for a failure's message.
    pub reader_said: String,
}

impl AvReport {
    /// The median offset.
    pub fn median(&self) -> Option<f64> {
        let mut v = self.offsets_ms.clone();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    }

    /// Asserts that there were at least `events` flashes each with its beep, that the median
    /// offset is within `bound_ms`, and most of them (a video frame dropped or held on a
    /// loaded machine moves one flash by a frame interval or two: that is frame loss, not an
    /// A/V offset; the test machine decodes five outputs at once on two cores).
    pub fn assert_in_sync(&self, what: &str, events: usize, bound_ms: f64) {
        assert!(
            self.offsets_ms.len() >= events,
            "{what}: {} flash/beep pairs found, {events} expected: {self:?}",
            self.offsets_ms.len()
        );
        let median = self.median().unwrap_or(f64::NAN);
        let within = self
            .offsets_ms
            .iter()
            .filter(|o| o.abs() <= bound_ms)
            .count();
        assert!(
            median.abs() <= bound_ms && within * 5 >= self.offsets_ms.len() * 3,
            "{what}: A/V offset median {median:.1} ms, {within} of {} within ±{bound_ms} ms: {:?}",
            self.offsets_ms.len(),
            self.offsets_ms
        );
        eprintln!(
            "{what}: A/V offset median {median:+.1} ms over {} flashes (audio after video > 0): {:?}",
            self.offsets_ms.len(),
            self.offsets_ms
                .iter()
                .map(|o| o.round())
                .collect::<Vec<_>>()
        );
    }
}

/// Reads `secs` seconds of `url` with ffmpeg (decoding both tracks) and pairs each flash with
/// the nearest beep. The sound is measured in 5 ms windows whatever its rate (resampled to
/// 48 kHz first: 240 samples of 8 kHz G.711 were 30 ms, too coarse for a ±40 ms bound). An ffmpeg that has not finished `secs` + 20 s later is killed and the
/// reading done again, once.
pub fn measure(url: &str, secs: u32) -> AvReport {
    measure_once(url, secs)
        .or_else(|| {
            eprintln!("ffmpeg did not finish reading {url}: reading it again");
            measure_once(url, secs)
        })
        .unwrap_or_else(|| panic!("ffmpeg did not finish reading {url} twice"))
}

fn measure_once(url: &str, secs: u32) -> Option<AvReport> {
    let dir = tempfile::tempdir().unwrap();
    let (v, a) = (dir.path().join("v.txt"), dir.path().join("a.txt"));
    let graph = format!(
        "[0:v]scale=16:12,signalstats,metadata=mode=print:key=lavfi.signalstats.YAVG:file={}[v];\
         [0:a]aresample=48000,asetnsamples=n=240:p=0,astats=metadata=1:reset=1,\
         ametadata=mode=print:key=lavfi.astats.Overall.RMS_level:file={}[a]",
        v.display(),
        a.display()
    );
    let mut child = super::av_tool("ffmpeg", url)
        .arg("-y")
        .args([
            "-t",
            &secs.to_string(),
            "-i",
            url,
            "-filter_complex",
            &graph,
        ])
        .args([
            "-map", "[v]", "-f", "null", "-", "-map", "[a]", "-f", "null", "-",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("err.txt")).unwrap())
        .spawn()
        .expect("ffmpeg is not installed");
    let deadline = Instant::now() + Duration::from_secs(u64::from(secs) + 20);
    // (ffmpeg writes the metadata files as it ends: killed, it leaves them incomplete.)
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let flashes = onsets(&read(&v, "lavfi.signalstats.YAVG"), 128.0);
    let beeps = onsets(&read(&a, "lavfi.astats.Overall.RMS_level"), -30.0);
    let offsets_ms = flashes
        .iter()
        .filter_map(|f| {
            beeps
                .iter()
                .map(|b| (b - f) * 1000.0)
                .min_by(|x, y| x.abs().total_cmp(&y.abs()))
                .filter(|o| o.abs() < 500.0)
        })
        .collect();
    let said = std::fs::read_to_string(dir.path().join("err.txt")).unwrap_or_default();
    Some(AvReport {
        offsets_ms,
        flashes: flashes.len(),
        beeps: beeps.len(),
        reader_said: said
            .chars()
            .rev()
            .take(2000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect(),
    })
}

/// `(pts_time, value)` pairs of one key in a metadata print file.
fn read(path: &Path, key: &str) -> Vec<(f64, f64)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = Vec::new();
    let mut t = None;
    for line in text.lines() {
        if let Some(rest) = line.split("pts_time:").nth(1) {
            t = rest.trim().parse::<f64>().ok();
        } else if let Some(v) = line.strip_prefix(&format!("{key}="))
            && let Some(t) = t
        {
            out.push((t, v.trim().parse::<f64>().unwrap_or(-200.0)));
        }
    }
    out
}

/// Times where the value rises above `threshold`. The first second is left out (an output
/// can start in the middle of a flash).
fn onsets(values: &[(f64, f64)], threshold: f64) -> Vec<f64> {
    let start = values.first().map_or(0.0, |(t, _)| *t) + 1.0;
    let mut out = Vec::new();
    let mut above = true;
    for (t, v) in values {
        let now = v.is_finite() && *v > threshold;
        if now && !above && *t >= start {
            out.push(*t);
        }
        above = now;
    }
    out
}

/// The codec of each stream ffprobe finds at `url` (`h264`, `aac`, `opus`, `pcm_alaw`, ...),
/// with audio rates: `aac 48000 2`.
pub fn streams(url: &str) -> Vec<String> {
    let out = super::av_tool("ffprobe", url)
        .args([
            "-show_entries",
            "stream=codec_name,sample_rate,channels",
            "-of",
            "csv=p=0",
            url,
        ])
        .stderr(Stdio::null())
        .output()
        .expect("ffprobe is not installed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_end_matches(',').replace(',', " "))
        .filter(|l| !l.is_empty())
        .collect()
}
