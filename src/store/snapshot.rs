//! Event snapshots: a frame saved as a JPEG file.

use std::path::Path;

use anyhow::{Context, Result};

use super::event::Picture;

/// Encodes the picture as JPEG (GStreamer's converter and `jpegenc`) and writes it to `path`,
/// creating its folder.
pub fn save(picture: &Picture, path: &Path) -> Result<()> {
    let caps = picture.info.to_caps().context("frame caps")?;
    let sample = gst::Sample::builder()
        .buffer(&picture.buffer)
        .caps(&caps)
        .build();
    let jpeg_caps = gst::Caps::builder("image/jpeg").build();
    let out = gst_video::convert_sample(&sample, &jpeg_caps, Some(gst::ClockTime::from_seconds(5)))
        .context("encoding the snapshot")?;
    let buffer = out.buffer().context("empty snapshot")?;
    let map = buffer.map_readable().context("reading the snapshot")?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, map.as_slice()).with_context(|| format!("writing {}", path.display()))
}
