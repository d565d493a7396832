//! Client connections: accept, connection limits, TLS handshake (bounded by the header-read
//! timeout), then hyper's HTTP/1.1 or HTTP/2 server, picked by ALPN on TLS and by the
//! connection preface on plain listeners (h2c prior knowledge).
//!
//! Limits that hyper enforces itself: a request head larger than `max_header_bytes` gets
//! 431 and more than `max_headers` fields 431, and requests with a `Transfer-Encoding`
//! that does not end in `chunked`, differing `Content-Length`s, or a bad chunk are refused
//! (400, or the connection closed mid-body). What hyper lets through (`Content-Length`
//! with `Transfer-Encoding`, a repeated `Content-Length`) the [`framing`](crate::framing)
//! reader under every HTTP/1 connection finds, and `forward` answers 400 and closes. The
//! same reader closes an HTTP/1 connection whose request head is not complete within
//! `header_read_ms` of its first byte (the first head: of the connection's start), the
//! slowloris bound; between requests a keep-alive connection is bounded by `idle_ms`.

use crate::framing::{FramingIo, FramingLog, HeadLimits};
use crate::{forward, Generation, Shared};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What a request knows of its connection.
#[derive(Debug)]
pub struct ConnInfo {
    pub client: SocketAddr,
    pub tls: bool,
    /// Requests of this connection being answered (for the idle timeout).
    pub in_flight: Arc<AtomicUsize>,
    /// The request framing as received, on HTTP/1 connections.
    pub framing: Option<Arc<FramingLog>>,
}

/// Accept on `listener` (the config's listener `index`) until `shutdown` turns true.
pub async fn accept_loop(
    listener: TcpListener,
    index: usize,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off a little rather than
                    // spin on an error that the next accept will repeat.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = stopped(&mut shutdown) => break,
        };
        let generation = shared.current();
        let limits = &generation.config.limits;
        let slot = match shared.conns.open(
            peer.ip().to_canonical(),
            limits.max_connections,
            limits.max_connections_per_client,
        ) {
            Ok(slot) => slot,
            Err(refused) => {
                shared
                    .metrics
                    .refused_connections
                    .get_or_create(&vec![("reason", refused.label().to_string())])
                    .inc();
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        shared.metrics.connections.inc();
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shared.metrics.active_connections.inc();
            serve_connection(stream, peer, index, generation, &shared, shutdown).await;
            shared.metrics.active_connections.dec();
            drop(slot);
        });
    }
}

/// Resolves when the shutdown flag turns true (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// Plain listener: HTTP/1.1, or HTTP/2 when the client opens with its preface.
    Auto,
    Http1,
    Http2,
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    index: usize,
    generation: Arc<Generation>,
    shared: &Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) {
    let timeouts = generation.config.timeouts;
    let in_flight = Arc::new(AtomicUsize::new(0));
    let io = crate::limits::IdleTimeoutIo::new(
        stream,
        Duration::from_millis(u64::from(timeouts.idle_ms)),
        in_flight.clone(),
    );
    let info = |tls, framing| {
        Arc::new(ConnInfo {
            client: SocketAddr::new(peer.ip().to_canonical(), peer.port()),
            tls,
            in_flight: in_flight.clone(),
            framing,
        })
    };
    let head = HeadLimits {
        max_bytes: generation.config.limits.max_header_bytes,
        max_fields: generation.config.limits.max_headers,
        read_time: Duration::from_millis(u64::from(timeouts.header_read_ms)),
    };
    let tls = generation
        .config
        .listeners
        .get(index)
        .and_then(|l| l.tls.clone());
    let Some(tls) = tls else {
        let framing = Arc::new(FramingLog::default());
        serve_http(
            FramingIo::new(io, head, framing.clone()),
            info(false, Some(framing)),
            Protocol::Auto,
            &generation,
            shared,
            shutdown,
        )
        .await;
        return;
    };
    let handshake = tokio_rustls::TlsAcceptor::from(tls).accept(io);
    let header_read = Duration::from_millis(u64::from(timeouts.header_read_ms));
    let stream = match tokio::time::timeout(header_read, handshake).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            count_handshake(shared, "fail", "-");
            return;
        }
        Err(_) => {
            count_handshake(shared, "timeout", "-");
            return;
        }
    };
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    count_handshake(shared, "ok", if h2 { "h2" } else { "http/1.1" });
    if h2 {
        Box::pin(serve_http(
            stream,
            info(true, None),
            Protocol::Http2,
            &generation,
            shared,
            shutdown,
        ))
        .await;
    } else {
        let framing = Arc::new(FramingLog::default());
        Box::pin(serve_http(
            FramingIo::new(stream, head, framing.clone()),
            info(true, Some(framing)),
            Protocol::Http1,
            &generation,
            shared,
            shutdown,
        ))
        .await;
    }
}

fn count_handshake(shared: &Shared, result: &str, alpn: &str) {
    shared
        .metrics
        .tls_handshakes
        .get_or_create(&vec![
            ("result", result.to_string()),
            ("alpn", alpn.to_string()),
        ])
        .inc();
}

async fn serve_http<I>(
    io: I,
    conn: Arc<ConnInfo>,
    protocol: Protocol,
    generation: &Generation,
    shared: &Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = &generation.config.limits;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // No timer and no `header_read_timeout` for HTTP/1: `FramingIo` bounds the head's
    // time (hyper's timer cost an allocation and two timer updates per request).
    builder
        .http1()
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes)
        .max_headers(limits.max_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes as u32)
        .max_concurrent_streams(256);
    let builder = match protocol {
        Protocol::Auto => builder,
        Protocol::Http1 => builder.http1_only(),
        Protocol::Http2 => builder.http2_only(),
    };
    let shared = shared.clone();
    let service = service_fn(move |req| {
        let shared = shared.clone();
        let conn = conn.clone();
        async move { Ok::<_, Infallible>(forward::handle(req, conn, shared).await) }
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "client connection ended with an error");
            }
        }
        () = stopped(&mut shutdown) => {
            // Finish the requests in flight, take no new ones.
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}
