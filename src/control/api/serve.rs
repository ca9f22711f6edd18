//! The HTTP server under the API: accepts connections (HTTPS when `[server.tls]` is set), caps
//! how many are open, and cuts off clients that are slow to send their headers.
//!
//! - **Header timeout**: a connection must send a request's headers within
//!   `server.limits.header_read_timeout_s`, the first one and each one after (so an idle
//!   keep-alive connection closes after that long too). TLS handshakes get the same time.
//! - **Connection cap**: at most `server.limits.http_connections` are open. A new connection
//!   that finds them all taken closes the oldest connection that has not yet sent a complete
//!   request (a slowloris socket), so that clients who do send requests are served at once; if
//!   every open connection is serving a request (viewers), the new one is closed.
//!
//! Each connection is served by hyper's HTTP/1.1 (with upgrades, for WebSockets) from the
//! axum router, with the peer's address as `ConnectInfo`.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::supervise::lock;

use super::counters::{EDGE, count};

/// The server's settings.
pub struct ServeOptions {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Time to send a request's headers (and to finish a TLS handshake).
    pub header_timeout: Duration,
    /// HTTPS.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// One open connection, as the cap sees it.
struct Open {
    id: u64,
    /// Set once the connection has sent a complete request head.
    served: Arc<AtomicBool>,
    /// Closes it.
    close: watch::Sender<bool>,
}

#[derive(Default)]
struct Table {
    next: u64,
    open: VecDeque<Open>,
}

impl Table {
    /// Makes room for one more connection: closes the oldest one that has sent no complete
    /// request. `false` when there is none to close.
    fn make_room(&mut self) -> bool {
        let Some(i) = self
            .open
            .iter()
            .position(|o| !o.served.load(Ordering::Relaxed))
        else {
            return false;
        };
        if let Some(o) = self.open.remove(i) {
            let _ = o.close.send(true);
        }
        true
    }
}

/// Serves `app` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let table = Arc::new(Mutex::new(Table::default()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let options = Arc::new(options);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // wait a moment instead of spinning.
                    tracing::debug!("HTTP accept: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        count(&EDGE.connections_accepted);
        let (close_tx, close_rx) = watch::channel(false);
        let served = Arc::new(AtomicBool::new(false));
        let id = {
            let mut t = lock(&table);
            if t.open.len() >= options.max_connections {
                if t.make_room() {
                    count(&EDGE.connections_evicted);
                } else {
                    count(&EDGE.connections_refused);
                    drop(stream);
                    continue;
                }
            }
            t.next += 1;
            let id = t.next;
            t.open.push_back(Open {
                id,
                served: served.clone(),
                close: close_tx,
            });
            id
        };
        EDGE.connections_open.fetch_add(1, Ordering::Relaxed);
        let (app, options, table, stop) =
            (app.clone(), options.clone(), table.clone(), stop_rx.clone());
        tokio::spawn(async move {
            match &options.tls {
                Some(acceptor) => {
                    match tokio::time::timeout(options.header_timeout, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(tls)) => {
                            connection(tls, peer, app, &options, served, close_rx, stop).await
                        }
                        _ => count(&EDGE.tls_failed),
                    }
                }
                None => connection(stream, peer, app, &options, served, close_rx, stop).await,
            }
            lock(&table).open.retain(|o| o.id != id);
            EDGE.connections_open.fetch_sub(1, Ordering::Relaxed);
        });
    }
    // Graceful: connections finish the request they are serving, then close.
    let _ = stop_tx.send(true);
    Ok(())
}

/// Serves one connection until it closes, is closed to make room, or the server stops.
async fn connection<S>(
    io: S,
    peer: SocketAddr,
    app: Router,
    options: &ServeOptions,
    served: Arc<AtomicBool>,
    mut close: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        served.store(true, Ordering::Relaxed);
        req.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let stopping = tokio::select! {
        _ = conn.as_mut() => false,
        _ = closed(&mut close) => false,
        _ = closed(&mut stop) => true,
    };
    if stopping {
        conn.as_mut().graceful_shutdown();
        let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
    }
}

/// Waits until `flag` is set (or its sender is gone).
async fn closed(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|c| *c).await.map(|_| ());
}

/// The TLS acceptor of `[server.tls]`: the certificate chain and key read from their PEM files.
pub fn tls_acceptor(tls: &crate::config::TlsConfig) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use anyhow::Context;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .with_context(|| format!("server.tls.cert: cannot read `{}`", tls.cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| {
            format!(
                "server.tls.cert: `{}` is not a PEM certificate chain",
                tls.cert.display()
            )
        })?;
    if certs.is_empty() {
        anyhow::bail!(
            "server.tls.cert: `{}` holds no certificate",
            tls.cert.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key).with_context(|| {
        format!(
            "server.tls.key: `{}` holds no usable PEM private key",
            tls.key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("server.tls: the key does not match the certificate")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(id: u64, served: bool) -> (Open, watch::Receiver<bool>) {
        let (tx, rx) = watch::channel(false);
        (
            Open {
                id,
                served: Arc::new(AtomicBool::new(served)),
                close: tx,
            },
            rx,
        )
    }

    #[test]
    fn room_is_made_by_closing_the_oldest_silent_connection() {
        let mut t = Table::default();
        let (a, a_rx) = open(1, true);
        let (b, b_rx) = open(2, false);
        let (c, c_rx) = open(3, false);
        t.open.extend([a, b, c]);
        assert!(t.make_room());
        assert!(*b_rx.borrow(), "the oldest silent one is closed");
        assert!(!*a_rx.borrow() && !*c_rx.borrow());
        assert!(t.make_room());
        assert!(*c_rx.borrow());
        assert!(
            !t.make_room(),
            "a serving connection is never closed for room"
        );
        assert_eq!(t.open.len(), 1);
    }
}
