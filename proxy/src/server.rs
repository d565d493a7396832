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
use crate::limits::{Activity, ConnectionSlot, IdleTimeoutIo};
use crate::{forward, BoxError, Generation, Shared};
use futures_util::stream::{FuturesUnordered, StreamExt};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus_client::metrics::gauge::Gauge;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

/// What a request knows of its connection.
#[derive(Debug)]
pub struct ConnInfo {
    pub client: SocketAddr,
    pub tls: bool,
    /// Its requests in flight, and whether it may be parked.
    pub activity: Arc<Activity>,
    /// The request framing as received, on HTTP/1 connections.
    pub framing: Option<Arc<FramingLog>>,
}

/// An open client connection: its place under the connection limits and in the
/// `active_connections` gauge, both given back when it is dropped (the connection's task
/// ends, or the parking lot closes it).
#[derive(Debug)]
pub struct OpenConnection {
    _slot: ConnectionSlot,
    active: Gauge,
}

impl OpenConnection {
    fn new(slot: ConnectionSlot, shared: &Shared) -> OpenConnection {
        let active = shared.metrics.active_connections.clone();
        active.inc();
        OpenConnection {
            _slot: slot,
            active,
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.active.dec();
    }
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
        let open = OpenConnection::new(slot, &shared);
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            serve_connection(stream, peer, index, generation, &shared, shutdown, open).await;
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

fn head_limits(generation: &Generation) -> HeadLimits {
    HeadLimits {
        max_bytes: generation.config.limits.max_header_bytes,
        max_fields: generation.config.limits.max_headers,
        read_time: ms(generation.config.timeouts.header_read_ms),
    }
}

fn ms(n: u32) -> Duration {
    Duration::from_millis(u64::from(n))
}

/// The client's address as the proxy reports and limits it: an IPv4-mapped IPv6 peer (a
/// dual-stack listener) as its IPv4 address.
fn client_addr(peer: SocketAddr) -> SocketAddr {
    SocketAddr::new(peer.ip().to_canonical(), peer.port())
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    index: usize,
    generation: Arc<Generation>,
    shared: &Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    open: OpenConnection,
) {
    let client = client_addr(peer);
    let tls = generation
        .config
        .listeners
        .get(index)
        .and_then(|l| l.tls.clone());
    match tls {
        None => serve_plain(stream, client, generation, shared, shutdown, open).await,
        // Boxed: a TLS session's room is not carried by every plain connection's task.
        Some(tls) => {
            Box::pin(serve_tls(stream, client, tls, generation, shared, shutdown)).await;
            drop(open);
        }
    }
}

/// The HTTP/2 connection preface (RFC 9113 §3.4), which opens an h2c prior-knowledge
/// connection.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A plain connection: HTTP/1.1, parked while idle (see [`serve_h1`]), or h2c when it
/// opens with the HTTP/2 preface.
async fn serve_plain(
    stream: TcpStream,
    client: SocketAddr,
    generation: Arc<Generation>,
    shared: &Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    open: OpenConnection,
) {
    let started = Instant::now();
    let timeouts = generation.config.timeouts;
    // What the connection opens with, peeked (left in the socket for hyper): the first
    // head's time counts from the connection's start, as `FramingIo` counts it.
    let mut opening = [0u8; 24];
    let peeked = tokio::time::timeout(ms(timeouts.header_read_ms), stream.peek(&mut opening));
    let h2_maybe = match peeked.await {
        Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
        Ok(Ok(n)) => H2_PREFACE.starts_with(&opening[..n]),
    };
    if h2_maybe {
        // The preface, or too few bytes to tell: hyper-util's detection reads on and
        // serves either protocol; such a connection is not parked.
        let activity = Arc::new(Activity::default());
        let io = IdleTimeoutIo::new(stream, ms(timeouts.idle_ms), None, activity.clone());
        let framing = Arc::new(FramingLog::default());
        let conn = Arc::new(ConnInfo {
            client,
            tls: false,
            activity,
            framing: Some(framing.clone()),
        });
        let io = FramingIo::new(io, head_limits(&generation), framing, started);
        Box::pin(serve_http(
            io,
            conn,
            Protocol::Auto,
            &generation,
            shared,
            shutdown,
        ))
        .await;
        return;
    }
    serve_h1_then_park(stream, client, generation, started, shared, shutdown, open).await;
}

/// A parked connection turned readable: serve it again (under the config current now,
/// its first head timed from now), from the [`ParkingLot`](crate::parking::ParkingLot).
pub async fn resume(
    stream: TcpStream,
    open: OpenConnection,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) {
    // Not kept in the lot (32 bytes a connection); a socket whose client reset it has no
    // peer any more and nothing to serve.
    let Ok(peer) = stream.peer_addr() else {
        return;
    };
    let client = client_addr(peer);
    let generation = shared.current();
    serve_h1_then_park(
        stream,
        client,
        generation,
        Instant::now(),
        &shared,
        shutdown,
        open,
    )
    .await;
}

/// Serve HTTP/1 on a plain connection until it closes, or until it is idle: then it goes
/// to the parking lot with its limit slot, and this task ends.
async fn serve_h1_then_park(
    stream: TcpStream,
    client: SocketAddr,
    generation: Arc<Generation>,
    started: Instant,
    shared: &Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    open: OpenConnection,
) {
    let timeouts = generation.config.timeouts;
    let activity = Arc::new(Activity::default());
    let io = IdleTimeoutIo::new(
        stream,
        ms(timeouts.idle_ms),
        Some(ms(timeouts.park_ms)),
        activity.clone(),
    );
    let session = serve_h1(
        io,
        client,
        &generation,
        shared,
        &activity,
        started,
        &mut shutdown,
    );
    let Some(parked) = Box::pin(session).await else {
        return;
    };
    let deadline = parked.idle_deadline();
    shared.parking.park(parked.into_inner(), deadline, open);
}

/// One hyper HTTP/1 session on a plain connection, until the connection closes (`None`)
/// or is parked (`Some`, the socket given back with nothing read past the last request).
///
/// Parking: hyper's HTTP/1 server keeps an 8 KiB read buffer, a write buffer and its
/// dispatcher for as long as a connection lives, idle or not, with no option to free
/// them between requests. So once the connection has been quiet for `park_ms` (no byte
/// received, no request in flight: [`IdleTimeoutIo`] marks it) with no request head under
/// way, the session is ended with `graceful_shutdown`: on an idle hyper connection that
/// closes its HTTP state at once (on one still flushing a response, once that is out;
/// either way after the response head, so no `Connection: close` is written), and
/// `IdleTimeoutIo` keeps hyper from shutting the socket down. The caller parks the
/// socket ([`ParkingLot`](crate::parking::ParkingLot)), which starts a new session on it
/// when it is readable. Not parked:
/// a session that hyper ends itself (`Connection: close`, HTTP/1.0, an error), one that
/// a response marked (`Activity::no_park`), an upgrade, and one whose bytes read do not
/// end on a request's end (which cannot happen on an idle connection; checked anyway).
async fn serve_h1(
    io: IdleTimeoutIo<TcpStream>,
    client: SocketAddr,
    generation: &Generation,
    shared: &Arc<Shared>,
    activity: &Arc<Activity>,
    started: Instant,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<IdleTimeoutIo<TcpStream>> {
    let limits = &generation.config.limits;
    let framing = Arc::new(FramingLog::default());
    let conn = Arc::new(ConnInfo {
        client,
        tls: false,
        activity: activity.clone(),
        framing: Some(framing.clone()),
    });
    let io = FramingIo::new(io, head_limits(generation), framing.clone(), started);
    let mut builder = hyper::server::conn::http1::Builder::new();
    // No timer and no `header_read_timeout`: `FramingIo` bounds the head's time.
    builder
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes)
        .max_headers(limits.max_headers)
        .keep_alive(true);
    let shared_svc = shared.clone();
    let service = service_fn(move |req| {
        let shared = shared_svc.clone();
        let conn = conn.clone();
        async move { Ok::<_, Infallible>(forward::handle(req, conn, shared).await) }
    });
    let mut connection = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut stop = std::pin::pin!(stopped(shutdown));
    let mut stopping = false;
    let mut asked = false;
    let ended = std::future::poll_fn(|cx| {
        if !stopping && stop.as_mut().poll(cx).is_ready() {
            // Finish the requests in flight, take no new ones.
            stopping = true;
            Pin::new(&mut connection).graceful_shutdown();
        }
        let polled = Pin::new(&mut connection).poll(cx);
        if polled.is_pending() && !asked && !stopping && activity.wants_park() && framing.at_rest()
        {
            asked = true;
            activity.parking();
            Pin::new(&mut connection).graceful_shutdown();
            return Pin::new(&mut connection).poll(cx);
        }
        polled
    })
    .await;
    if let Err(e) = ended {
        tracing::debug!(error = %e, "client connection ended with an error");
        return None;
    }
    if !asked || stopping {
        return None;
    }
    // `None`: upgraded, the connection is the tunnel's now.
    let parts = connection.into_parts()?;
    let io = parts.io.into_inner();
    if !parts.read_buf.is_empty() || !io.at_boundary() {
        return None;
    }
    Some(io.into_inner())
}

/// A TLS connection: handshake (bounded by the header-read timeout), then HTTP/2 or
/// HTTP/1.1 by ALPN.
async fn serve_tls(
    stream: TcpStream,
    client: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    generation: Arc<Generation>,
    shared: &Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let timeouts = generation.config.timeouts;
    let activity = Arc::new(Activity::default());
    let io = IdleTimeoutIo::new(stream, ms(timeouts.idle_ms), None, activity.clone());
    let handshake = tokio_rustls::TlsAcceptor::from(tls).accept(io);
    let stream = match tokio::time::timeout(ms(timeouts.header_read_ms), handshake).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(%client, error = %e, "TLS handshake failed");
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
    let info = |framing| {
        Arc::new(ConnInfo {
            client,
            tls: true,
            activity: activity.clone(),
            framing,
        })
    };
    if h2 {
        serve_http(
            stream,
            info(None),
            Protocol::Http2,
            &generation,
            shared,
            shutdown,
        )
        .await;
    } else {
        let framing = Arc::new(FramingLog::default());
        serve_http(
            FramingIo::new(stream, head_limits(&generation), framing.clone(), started),
            info(Some(framing)),
            Protocol::Http1,
            &generation,
            shared,
            shutdown,
        )
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

/// A future of one HTTP/2 stream (or of an extended-CONNECT tunnel) that hyper hands to
/// its executor.
type StreamTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// hyper's executor for the HTTP/2 streams of one client connection: the streams are
/// polled by the connection's own task ([`ConnectionWithStreams`]), not spawned. A task
/// per stream (hyper-util's `TokioExecutor`) cost a task cell, the runtime's task list,
/// a scheduling and a `JoinHandle` per request, about 4,000 of the TLS h2 row's 69,000
/// user-space instructions per request; streams here are one box in a `FuturesUnordered`
/// that wakes the connection's task. The streams of a connection then share its worker
/// thread (on the multi-thread scheduler), as HAProxy's do.
#[derive(Clone, Default)]
struct ConnectionStreams {
    /// Handed over by hyper while the connection is polled, taken by the connection's
    /// task right after: never locked by two at once.
    new: Arc<Mutex<Vec<StreamTask>>>,
}

impl<F> hyper::rt::Executor<F> for ConnectionStreams
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, stream: F) {
        self.new
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::pin(stream));
    }
}

/// A client connection and its HTTP/2 streams, driven together: done when the connection
/// is and every stream has finished (a stream whose client went away still completes its
/// request, as a spawned one would).
struct ConnectionWithStreams<C> {
    connection: Pin<Box<C>>,
    result: Option<Result<(), BoxError>>,
    streams: ConnectionStreams,
    running: FuturesUnordered<StreamTask>,
}

impl<C, E> ConnectionWithStreams<C>
where
    C: Future<Output = Result<(), E>>,
    E: Into<BoxError>,
{
    fn poll_all(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        loop {
            if self.result.is_none() {
                if let Poll::Ready(r) = self.connection.as_mut().poll(cx) {
                    self.result = Some(r.map_err(Into::into));
                }
            }
            // Drained, not taken: the hand-over vector keeps its buffer, so a new stream
            // does not allocate a new one.
            let had_new = {
                let mut new = self.streams.new.lock().unwrap_or_else(|p| p.into_inner());
                let had_new = !new.is_empty();
                self.running.extend(new.drain(..));
                had_new
            };
            // Each stream woken since the last poll, until none is ready; a stream's
            // progress may have queued frames (or new streams) for the connection.
            let mut progressed = had_new;
            while let Poll::Ready(Some(())) = self.running.poll_next_unpin(cx) {
                progressed = true;
            }
            let waiting = !self
                .streams
                .new
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty();
            if self.running.is_empty() && !waiting {
                if let Some(result) = self.result.take() {
                    return Poll::Ready(result);
                }
            }
            // Round again for streams handed over meanwhile, or, while the connection is
            // open, to write what finished streams queued without waiting for a wake-up.
            let again = waiting || (progressed && self.result.is_none());
            if !again {
                return Poll::Pending;
            }
        }
    }
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
    let streams = ConnectionStreams::default();
    let mut builder = auto::Builder::new(streams.clone());
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
    let mut both = ConnectionWithStreams {
        connection: Box::pin(connection),
        result: None,
        streams,
        running: FuturesUnordered::new(),
    };
    let mut stop = std::pin::pin!(stopped(&mut shutdown));
    let mut stopping = false;
    let ended = std::future::poll_fn(|cx| {
        if !stopping && stop.as_mut().poll(cx).is_ready() {
            // Finish the requests in flight, take no new ones.
            stopping = true;
            if both.result.is_none() {
                both.connection.as_mut().graceful_shutdown();
            }
        }
        both.poll_all(cx)
    })
    .await;
    if let Err(e) = ended {
        tracing::debug!(error = %e, "client connection ended with an error");
    }
}
