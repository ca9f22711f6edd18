//! The watermark's embedding cost per frame, measured in one thread without decoding or
//! encoding around it: `cargo run --release --example watermark_cost -- FRAMES.y4m [ROUNDS]`.
//! Marks every frame of an I420 Y4M file (up to 250 frames, held in memory) with the processor's
//! own code, `ROUNDS` times (default 5), and prints the median milliseconds per frame as JSON.

use std::time::Instant;

use anyhow::{Context, bail};
use framegate::config::{WatermarkConfig, WatermarkStrength};
use framegate::process::watermark::Watermark;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .context("usage: watermark_cost FRAMES.y4m [ROUNDS]")?;
    let rounds: usize = args.next().map_or(Ok(5), |r| r.parse())?;
    let data = std::fs::read(&path).with_context(|| format!("reading {path}"))?;
    let header_end = data
        .iter()
        .position(|b| *b == b'\n')
        .context("not a Y4M file")?;
    let header = String::from_utf8_lossy(&data[..header_end]);
    let field = |tag: char| -> anyhow::Result<usize> {
        let v = header
            .split(' ')
            .find_map(|f| f.strip_prefix(tag))
            .with_context(|| format!("{path}: no {tag} in the Y4M header"))?;
        Ok(v.parse()?)
    };
    let (w, h) = (field('W')?, field('H')?);
    if header
        .split(' ')
        .any(|f| f.starts_with('C') && !f.starts_with("C420"))
    {
        bail!("{path}: only 4:2:0 Y4M is read");
    }
    let frame_size = w * h * 3 / 2;
    let mut lumas = Vec::new();
    let mut at = header_end + 1;
    while at < data.len() && lumas.len() < 250 {
        let line = data[at..]
            .iter()
            .position(|b| *b == b'\n')
            .context("cut frame")?;
        at += line + 1;
        let Some(frame) = data.get(at..at + frame_size) else {
            break;
        };
        lumas.push(frame[..w * h].to_vec());
        at += frame_size;
    }
    if lumas.is_empty() {
        bail!("{path}: no frames");
    }
    let config = WatermarkConfig {
        id: "CAM0042".into(),
        key: "benchmark secret".into(),
        key_file: None,
        key_env: None,
        strength: WatermarkStrength::Auto,
    };
    let mut per_frame = Vec::new();
    for _ in 0..rounds {
        let mut wm = Watermark::new(&config);
        let mut frames = lumas.clone();
        let start = Instant::now();
        for (i, luma) in frames.iter_mut().enumerate() {
            wm.mark_luma(luma, w, w, h, i as f64 / 25.0);
        }
        per_frame.push(start.elapsed().as_secs_f64() * 1000.0 / frames.len() as f64);
    }
    per_frame.sort_by(f64::total_cmp);
    println!(
        "{{\"width\": {w}, \"height\": {h}, \"frames\": {}, \"rounds\": {rounds}, \"ms_per_frame_median\": {:.3}, \"ms_per_frame_min\": {:.3}}}",
        lumas.len(),
        per_frame[per_frame.len() / 2],
        per_frame[0]
    );
    Ok(())
}
