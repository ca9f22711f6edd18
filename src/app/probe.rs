//! `framegate probe URL`: reads a stream as a viewer would and says what came: frames, rate,
//! the first frame's delay, and the age of stamped frames on arrival.

use std::time::Duration;

use anyhow::Result;

/// How long the first frame may take before the probe gives up.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(20);

/// Probes `url` for `seconds` after `warmup` seconds and prints the result (JSON with `json`).
pub fn probe(url: &str, seconds: f64, warmup: f64, json: bool) -> Result<()> {
    super::init_media()?;
    let r = crate::measure::probe(url, seconds, warmup, FIRST_FRAME_TIMEOUT)?;
    if json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    let ages = r
        .age_ms
        .as_ref()
        .map_or("no stamped frames".to_string(), |a| {
            format!(
                "age on arrival p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms",
                a.p50, a.p95, a.p99
            )
        });
    println!(
        "{}: {} frames ({} stamped) in {:.1} s, {:.1} fps; first frame after {:.0} ms; {ages}",
        r.url,
        r.frames,
        r.stamped,
        r.seconds,
        r.fps,
        r.first_frame_ms.unwrap_or(0.0)
    );
    Ok(())
}
