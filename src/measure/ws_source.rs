//! Feeds the JPEG pictures of a framegate WebSocket (`/streams/{id}/ws`) into an `appsrc`, for
//! the probe: each binary message is a 4-byte big-endian length, a JSON header of that length,
//! then the JPEG.

use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

/// Connects to `url` (`ws://host:port/path`) and pushes every picture into `src` on a thread,
/// until `stop` is set, the pipeline stops taking buffers, or the server closes.
pub fn spawn(url: &str, src: gst_app::AppSrc, stop: Arc<AtomicBool>) -> Result<JoinHandle<()>> {
    let parsed = url::Url::parse(url).with_context(|| format!("`{url}` is not a URL"))?;
    let host = parsed.host_str().context("no host in the WebSocket URL")?;
    let port = parsed.port_or_known_default().unwrap_or(80);
    let tcp =
        TcpStream::connect((host, port)).with_context(|| format!("cannot connect to {url}"))?;
    tcp.set_read_timeout(Some(Duration::from_millis(200)))?;
    tcp.set_nodelay(true)?;
    let (mut socket, _) = tungstenite::client::client(url, tcp)
        .map_err(|e| anyhow::anyhow!("WebSocket handshake with {url}: {e}"))?;
    Ok(std::thread::Builder::new()
        .name("probe-ws".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let msg = match socket.read() {
                    Ok(m) => m,
                    Err(tungstenite::Error::Io(e))
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        continue;
                    }
                    Err(_) => break,
                };
                let tungstenite::Message::Binary(data) = msg else {
                    continue;
                };
                let Some(jpeg) = picture(&data) else {
                    continue;
                };
                if src
                    .push_buffer(gst::Buffer::from_slice(jpeg.to_vec()))
                    .is_err()
                {
                    break;
                }
            }
            let _ = src.end_of_stream();
            let _ = socket.close(None);
        })?)
}

/// The JPEG of one message.
fn picture(msg: &[u8]) -> Option<&[u8]> {
    let len = u32::from_be_bytes(msg.get(..4)?.try_into().ok()?) as usize;
    msg.get(4 + len..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_picture_follows_the_header() {
        let mut msg = 2u32.to_be_bytes().to_vec();
        msg.extend_from_slice(b"{}\xff\xd8jpeg");
        assert_eq!(picture(&msg), Some(&b"\xff\xd8jpeg"[..]));
        assert_eq!(picture(&[0, 0]), None);
        assert_eq!(picture(&[0, 0, 0, 9, b'{']), None);
    }
}
