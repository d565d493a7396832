//! Request smuggling refused: the framing of each HTTP/1 request as the client sent it
//! (RFC 9112 §6), so that a request whose length is ambiguous is answered 400 and its
//! connection closed before anything reaches a backend.
//!
//! hyper already refuses (400, connection closed) a `Transfer-Encoding` that does not end
//! in `chunked` (§6.3 item 4), differing `Content-Length`s or an invalid one (§6.3 item 5)
//! and `Transfer-Encoding` in HTTP/1.0 (§6.1). What it lets through, as §6.1 allows, is a
//! request with both `Content-Length` and `Transfer-Encoding` (read by the latter, the
//! connection closed after it) and repeated equal `Content-Length`s (folded into one) — and
//! it drops the evidence: the request our service sees carries one `Content-Length` or
//! none. It has no hook to see the head as received, so [`FramingIo`] watches the bytes
//! hyper reads and follows the request boundaries itself, with `httparse` (hyper's own
//! parser) for heads, chunk sizes and trailers: per head that declares a body it records a
//! [`Framing`] entry, which the service takes for that request ([`FramingLog::take`]).
//! A chunked body whose framing is already broken in the bytes read with its head is
//! marked too, so that such a request is refused before it is forwarded.
//!
//! The same reader bounds the time a request head takes to arrive (slowloris): it knows
//! where a head starts and ends, so the bound costs one timer per connection, moved only
//! when it fires, where hyper's `header_read_timeout` made and dropped a timer per
//! request (see [`FramingIo`]).
//!
//! When this tracking loses step with hyper (a head it cannot parse, an upgrade, a bound
//! passed, an entry that does not match the request), it stops for the rest of the
//! connection and every request there is treated as unchecked: hyper's own rules (reading
//! by `Transfer-Encoding`, closing after an ambiguous request) still keep a smuggled
//! request from being read, only without the 400.

use std::collections::VecDeque;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Header fields a head may have for this tracking; hyper's `max_headers` defaults to 100.
const MAX_FIELDS: usize = 128;
/// Longest chunk-size line (with extensions) or trailer section followed.
const MAX_LINE: usize = 16 * 1024;

/// Why a request's framing is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Smuggling {
    /// `Content-Length` and `Transfer-Encoding` both (RFC 9112 §6.1, §6.3 item 3).
    LengthWithTransferEncoding,
    /// `Content-Length` given more than once, or as a list (RFC 9112 §6.3 item 5).
    RepeatedContentLength,
    /// A chunked body whose chunk framing is invalid (RFC 9112 §7.1).
    InvalidChunking,
}

impl Smuggling {
    pub fn label(self) -> &'static str {
        match self {
            Smuggling::LengthWithTransferEncoding => "content_length_with_transfer_encoding",
            Smuggling::RepeatedContentLength => "repeated_content_length",
            Smuggling::InvalidChunking => "invalid_chunking",
        }
    }
}

/// One request head that declared a body, as received.
#[derive(Debug)]
struct Entry {
    /// Method and target, hashed: what ties the entry to the request hyper hands over.
    key: u64,
    problem: Option<Smuggling>,
}

/// The entries of one connection, shared between its reader ([`FramingIo`]) and the
/// service answering its requests.
#[derive(Debug, Default)]
pub struct FramingLog {
    inner: Mutex<LogState>,
    /// The connection switched protocols (101): its bytes are no longer HTTP/1, so
    /// neither framing nor the head-read bound applies to them.
    upgraded: AtomicBool,
    /// A request head has begun and not ended (the connection is not parked then).
    mid_head: AtomicBool,
}

#[derive(Debug, Default)]
struct LogState {
    entries: VecDeque<Entry>,
    /// Tracking stopped: nothing is known of requests past the logged entries.
    lost: bool,
}

/// What the service learns of a request's framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Sound,
    Refused(Smuggling),
    /// Not tracked (HTTP/2, or tracking lost on this connection).
    Unknown,
}

impl FramingLog {
    /// The framing of the request with `method` and `path_and_query` that hyper hands the
    /// service next. Only requests that carry `Content-Length` or `Transfer-Encoding` have
    /// an entry (hyper keeps one of them on every request whose head declared a body), so
    /// only those may ask.
    pub fn take(&self, method: &str, path_and_query: &str) -> Framing {
        let mut state = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match state.entries.pop_front() {
            Some(e) if e.key == key(method.as_bytes(), path_and_query.as_bytes()) => {
                e.problem.map_or(Framing::Sound, Framing::Refused)
            }
            None if state.lost => Framing::Unknown,
            _ => {
                state.lost = true;
                state.entries.clear();
                Framing::Unknown
            }
        }
    }

    fn push(&self, entry: Entry) {
        let mut state = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if !state.lost {
            state.entries.push_back(entry);
        }
    }

    /// Mark the newest entry (the head whose body is being read) if hyper has not handed
    /// its request over yet.
    fn mark_last(&self, key: u64, problem: Smuggling) {
        let mut state = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = state.entries.back_mut().filter(|e| e.key == key) {
            e.problem.get_or_insert(problem);
        }
    }

    /// The service answered 101: the connection carries another protocol from now on, so
    /// neither framing nor the head-read bound applies to its bytes.
    pub fn upgraded(&self) {
        self.upgraded.store(true, Ordering::Relaxed);
    }

    /// Whether the connection may leave hyper now (see `server`): no request head under
    /// way and the tracking in step, so that the next byte starts a request.
    pub fn at_rest(&self) -> bool {
        !self.mid_head.load(Ordering::Relaxed)
            && !self.upgraded.load(Ordering::Relaxed)
            && !self.inner.lock().unwrap_or_else(|p| p.into_inner()).lost
    }

    /// The reader stops: entries already logged stay good (their heads were read in step),
    /// nothing more is logged.
    fn lose(&self) {
        let mut state = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        state.lost = true;
    }
}

/// A `Content-Length` value: a length, or a list of equal ones (which hyper folds).
fn content_length(value: &[u8]) -> Option<u64> {
    let mut lengths = value
        .split(|&b| b == b',')
        .map(|v| v.trim_ascii())
        // Digits only, as hyper reads them (`u64::from_str` would take a leading `+`).
        .map(|v| {
            (!v.is_empty() && v.iter().all(u8::is_ascii_digit))
                .then(|| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
                .flatten()
        });
    let first = lengths.next()??;
    lengths.all(|n| n == Some(first)).then_some(first)
}

fn key(method: &[u8], path_and_query: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    method.hash(&mut h);
    path_and_query.hash(&mut h);
    h.finish()
}

/// The origin-form part of a request target, as `http::Uri::path_and_query` gives it.
fn path_and_query(target: &[u8]) -> &[u8] {
    if target.first() == Some(&b'/') || target == b"*" {
        return target;
    }
    // Absolute form: what follows the authority.
    let Some(scheme_end) = target.windows(3).position(|w| w == b"://") else {
        return b"/";
    };
    let rest = &target[scheme_end + 3..];
    match rest.iter().position(|&b| b == b'/' || b == b'?') {
        Some(i) if rest[i] == b'/' => &rest[i..],
        _ => b"/",
    }
}

/// Where the reader stands in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Head,
    /// Bytes of a `Content-Length` body left.
    Length(u64),
    ChunkSize,
    /// Bytes of chunk data left, then its CRLF.
    ChunkData(u64),
    ChunkEnd,
    Trailers,
    Lost,
}

/// The framing reader of one connection (see the module doc).
#[derive(Debug)]
struct Tracker {
    step: Step,
    /// An incomplete head, chunk-size line or trailer section, carried to the next read.
    pending: Vec<u8>,
    max_head: usize,
    /// The most header fields hyper takes (its `max_headers`).
    max_fields: usize,
    /// Key of the head whose body is being read, if it has an entry.
    current: Option<u64>,
    log: Arc<FramingLog>,
}

/// What one line-oriented step made of the bytes it was given.
enum Parsed {
    /// Needs more bytes.
    Partial,
    /// Consumed this many bytes; go on with that step.
    Done(usize, Step),
    /// The bytes cannot be what hyper reads next.
    Bad,
    /// The chunked body is broken.
    BadChunk,
}

impl Tracker {
    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match self.step {
                Step::Lost => return,
                Step::Length(left) | Step::ChunkData(left) => {
                    let take = left.min(data.len() as u64);
                    data = &data[take as usize..];
                    let left = left - take;
                    self.step = match self.step {
                        Step::Length(_) if left == 0 => Step::Head,
                        Step::Length(_) => Step::Length(left),
                        _ if left == 0 => Step::ChunkEnd,
                        _ => Step::ChunkData(left),
                    };
                }
                step => {
                    let carried = self.pending.len();
                    let parsed = if carried == 0 {
                        self.parse(step, data)
                    } else {
                        let mut joined = std::mem::take(&mut self.pending);
                        joined.extend_from_slice(data);
                        let parsed = self.parse(step, &joined);
                        self.pending = joined;
                        parsed
                    };
                    match parsed {
                        Parsed::Partial => {
                            let bound = if step == Step::Head {
                                self.max_head
                            } else {
                                MAX_LINE
                            };
                            if carried == 0 {
                                self.pending.extend_from_slice(data);
                            }
                            if self.pending.len() > bound {
                                self.lose();
                            }
                            return;
                        }
                        Parsed::Done(used, next) => {
                            self.pending.clear();
                            data = &data[used.saturating_sub(carried).min(data.len())..];
                            self.step = next;
                        }
                        Parsed::BadChunk => {
                            if let Some(k) = self.current {
                                self.log.mark_last(k, Smuggling::InvalidChunking);
                            }
                            self.lose();
                            return;
                        }
                        Parsed::Bad => {
                            self.lose();
                            return;
                        }
                    }
                }
            }
        }
    }

    fn lose(&mut self) {
        self.step = Step::Lost;
        self.pending = Vec::new();
        self.log.lose();
    }

    fn parse(&mut self, step: Step, buf: &[u8]) -> Parsed {
        match step {
            Step::Head => self.head(buf),
            Step::ChunkSize => match httparse::parse_chunk_size(buf) {
                Ok(httparse::Status::Complete((used, 0))) => Parsed::Done(used, Step::Trailers),
                Ok(httparse::Status::Complete((used, size))) => {
                    Parsed::Done(used, Step::ChunkData(size))
                }
                Ok(httparse::Status::Partial) => Parsed::Partial,
                Err(_) => Parsed::BadChunk,
            },
            Step::ChunkEnd => match buf {
                [b'\r', b'\n', ..] => Parsed::Done(2, Step::ChunkSize),
                [b'\r'] => Parsed::Partial,
                _ => Parsed::BadChunk,
            },
            Step::Trailers => {
                let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
                match httparse::parse_headers(buf, &mut fields) {
                    Ok(httparse::Status::Complete((used, _))) => {
                        self.current = None;
                        Parsed::Done(used, Step::Head)
                    }
                    Ok(httparse::Status::Partial) => Parsed::Partial,
                    Err(_) => Parsed::BadChunk,
                }
            }
            Step::Length(_) | Step::ChunkData(_) | Step::Lost => Parsed::Bad,
        }
    }

    /// Whether a request head has begun and not ended.
    fn in_head(&self) -> bool {
        self.step == Step::Head && !self.pending.is_empty()
    }

    fn head(&mut self, buf: &[u8]) -> Parsed {
        // Uninitialised: this runs for every request, and 128 empty fields are 4 KiB to fill.
        let mut fields =
            [const { std::mem::MaybeUninit::<httparse::Header>::uninit() }; MAX_FIELDS];
        let mut req = httparse::Request::new(&mut []);
        match req.parse_with_uninit_headers(buf, &mut fields) {
            Ok(httparse::Status::Complete(used)) => self.head_parsed(&req, used),
            Ok(httparse::Status::Partial) => Parsed::Partial,
            // More fields than the stack holds but as many as hyper takes: once more with
            // room for them all (rare: only where `max_headers` is raised above 128).
            Err(httparse::Error::TooManyHeaders) if self.max_fields > MAX_FIELDS => {
                let mut fields = vec![httparse::EMPTY_HEADER; self.max_fields];
                let mut req = httparse::Request::new(&mut fields);
                match req.parse(buf) {
                    Ok(httparse::Status::Complete(used)) => self.head_parsed(&req, used),
                    Ok(httparse::Status::Partial) => Parsed::Partial,
                    Err(_) => Parsed::Bad,
                }
            }
            Err(_) => Parsed::Bad,
        }
    }

    fn head_parsed(&mut self, req: &httparse::Request<'_, '_>, used: usize) -> Parsed {
        let mut lengths = 0;
        let mut length = None;
        let mut listed = false;
        let mut chunked = None;
        for f in req.headers.iter() {
            if f.name.eq_ignore_ascii_case("content-length") {
                lengths += 1;
                listed |= f.value.contains(&b',');
                length = content_length(f.value);
            } else if f.name.eq_ignore_ascii_case("transfer-encoding") {
                // The last coding of the last field is what counts (RFC 9112 §6.3 item 4).
                let last = f.value.rsplit(|&b| b == b',').next().unwrap_or_default();
                chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            }
        }
        let next = match (chunked, length) {
            (Some(true), _) => Step::ChunkSize,
            // hyper answers 400 and closes.
            (Some(false), _) => return Parsed::Bad,
            (None, _) if lengths == 0 => Step::Head,
            (None, Some(0)) => Step::Head,
            (None, Some(n)) => Step::Length(n),
            (None, None) => return Parsed::Bad,
        };
        if chunked.is_some() || lengths > 0 {
            let problem = if chunked.is_some() && lengths > 0 {
                Some(Smuggling::LengthWithTransferEncoding)
            } else if lengths > 1 || listed {
                Some(Smuggling::RepeatedContentLength)
            } else {
                None
            };
            let k = key(
                req.method.unwrap_or_default().as_bytes(),
                path_and_query(req.path.unwrap_or_default().as_bytes()),
            );
            self.log.push(Entry { key: k, problem });
            self.current = Some(k);
        } else {
            self.current = None;
        }
        Parsed::Done(used, next)
    }
}

/// The bounds of a connection's request heads.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// The longest request head hyper accepts (its `max_buf_size`).
    pub max_bytes: usize,
    /// The most header fields hyper accepts (its `max_headers`).
    pub max_fields: usize,
    /// A head must be complete this long after its first byte (the connection's first
    /// head: after the connection starts).
    pub read_time: Duration,
}

/// A client connection's reader that follows its HTTP/1 request framing (see the module
/// doc) and fails its reads with `TimedOut` when a request head takes longer than
/// [`HeadLimits::read_time`]; writes pass through.
///
/// The head-read bound is this reader's rather than hyper's `header_read_timeout`
/// because hyper makes a timer for every request and drops it when the head is in (an
/// allocation and two timer-wheel updates per request). Here one timer per connection is
/// moved only when it fires: it is always due no later than the end of the current head's
/// time (it is set to "now + read_time" when no head is under way, and a head starting
/// later ends later), so when it fires it either cuts the connection or moves to the end
/// of the head under way, or a `read_time` on.
pub struct FramingIo<T> {
    inner: T,
    tracker: Tracker,
    read_time: Duration,
    deadline: Pin<Box<Sleep>>,
    /// When the head under way started.
    head_since: Option<Instant>,
}

impl<T> FramingIo<T> {
    /// Between requests: every byte read belonged to a whole request (head and body).
    pub fn at_boundary(&self) -> bool {
        self.tracker.step == Step::Head && self.tracker.pending.is_empty()
    }

    pub fn into_inner(self) -> T {
        self.inner
    }

    /// `started`: when the connection (or its first head) started, from which the first
    /// head's time counts.
    pub fn new(inner: T, limits: HeadLimits, log: Arc<FramingLog>, started: Instant) -> Self {
        FramingIo {
            inner,
            tracker: Tracker {
                step: Step::Head,
                pending: Vec::new(),
                max_head: limits.max_bytes,
                max_fields: limits.max_fields,
                current: None,
                log,
            },
            read_time: limits.read_time,
            deadline: Box::pin(tokio::time::sleep_until(started + limits.read_time)),
            head_since: Some(started),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FramingIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        match result {
            Poll::Ready(Ok(())) => {
                let this = &mut *self;
                if this.tracker.step != Step::Lost {
                    if this.tracker.log.upgraded.load(Ordering::Relaxed) {
                        this.tracker.lose();
                    } else {
                        this.tracker.feed(&buf.filled()[before..]);
                    }
                }
                let in_head = this.tracker.in_head();
                if in_head != this.tracker.log.mid_head.load(Ordering::Relaxed) {
                    this.tracker.log.mid_head.store(in_head, Ordering::Relaxed);
                }
                if !in_head {
                    this.head_since = None;
                } else if this.head_since.is_none() {
                    this.head_since = Some(Instant::now());
                }
            }
            Poll::Pending => {
                while self.deadline.as_mut().poll(cx).is_ready() {
                    let now = Instant::now();
                    let due = match self.head_since {
                        // A tracking that lost step knows no heads: hyper's rules and the
                        // idle timeout are what is left (see the module doc).
                        Some(since) if self.tracker.step != Step::Lost => since + self.read_time,
                        _ => now + self.read_time,
                    };
                    if due <= now {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "request head not complete in time",
                        )));
                    }
                    self.deadline
                        .as_mut()
                        .reset(due.max(now + Duration::from_millis(1)));
                }
            }
            Poll::Ready(Err(_)) => {}
        }
        result
    }
}

write_through!(FramingIo);

#[cfg(test)]
mod tests {
    use super::*;

    fn tracked(reads: &[&[u8]]) -> Arc<FramingLog> {
        let log = Arc::new(FramingLog::default());
        let mut t = Tracker {
            step: Step::Head,
            pending: Vec::new(),
            max_head: 8192,
            max_fields: 100,
            current: None,
            log: log.clone(),
        };
        for r in reads {
            t.feed(r);
        }
        log
    }

    #[test]
    fn bodies_are_skipped_and_heads_with_bodies_logged_in_order() {
        let stream: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
            POST /b HTTP/1.1\r\nContent-Length: 6\r\n\r\nGET /x\
            POST /c?q HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nT: 1\r\n\r\n\
            PUT http://h:80/d HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
        // The same bytes in one read, and a byte at a time.
        let whole = tracked(&[stream]);
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        let trickled = tracked(&bytes);
        for log in [whole, trickled] {
            assert_eq!(log.take("POST", "/b"), Framing::Sound);
            assert_eq!(log.take("POST", "/c?q"), Framing::Sound);
            assert_eq!(log.take("PUT", "/d"), Framing::Sound);
            assert_eq!(log.take("PUT", "/e"), Framing::Unknown);
        }
    }

    #[test]
    fn ambiguous_lengths_are_marked() {
        let log = tracked(&[
            b"POST /a HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ]);
        assert_eq!(
            log.take("POST", "/a"),
            Framing::Refused(Smuggling::LengthWithTransferEncoding)
        );
        let log =
            tracked(&[b"POST /a HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd"]);
        assert_eq!(
            log.take("POST", "/a"),
            Framing::Refused(Smuggling::RepeatedContentLength)
        );
        let log = tracked(&[b"POST /a HTTP/1.1\r\nContent-Length: 4, 4\r\n\r\nabcd"]);
        assert_eq!(
            log.take("POST", "/a"),
            Framing::Refused(Smuggling::RepeatedContentLength)
        );
    }

    #[test]
    fn broken_chunks_read_with_their_head_are_marked() {
        let log = tracked(&[
            b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        ]);
        assert_eq!(
            log.take("POST", "/a"),
            Framing::Refused(Smuggling::InvalidChunking)
        );
        let log = tracked(&[
            b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n",
        ]);
        assert_eq!(
            log.take("POST", "/a"),
            Framing::Refused(Smuggling::InvalidChunking)
        );
    }

    #[test]
    fn an_unparsable_stream_or_a_mismatch_stops_tracking() {
        let log = tracked(&[b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"]);
        assert_eq!(log.take("POST", "/"), Framing::Unknown);
        let log = tracked(&[
            b"POST /a HTTP/1.1\r\nContent-Length: 1\r\n\r\nx",
            b"POST /b HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        ]);
        assert_eq!(log.take("POST", "/other"), Framing::Unknown);
        assert_eq!(log.take("POST", "/b"), Framing::Unknown);
    }

    #[test]
    fn more_fields_than_the_stack_holds_are_followed_when_hyper_takes_them() {
        let mut head = b"POST /a HTTP/1.1\r\n".to_vec();
        for i in 0..MAX_FIELDS + 10 {
            head.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        head.extend_from_slice(b"Content-Length: 1\r\nContent-Length: 1\r\n\r\nx");
        let log = Arc::new(FramingLog::default());
        let mut t = Tracker {
            step: Step::Head,
            pending: Vec::new(),
            max_head: 65536,
            max_fields: 200,
            current: None,
            log: log.clone(),
        };
        t.feed(&head);
        assert_eq!(
            log.take("POST", "/a"),
            Framing::Refused(Smuggling::RepeatedContentLength)
        );
    }

    const READ_TIME: Duration = Duration::from_secs(10);

    /// A `FramingIo` over one end of a pipe, and the other end as the client.
    fn connection() -> (FramingIo<tokio::io::DuplexStream>, tokio::io::DuplexStream) {
        let (server, client) = tokio::io::duplex(4096);
        let limits = HeadLimits {
            max_bytes: 8192,
            max_fields: 100,
            read_time: READ_TIME,
        };
        let io = FramingIo::new(
            server,
            limits,
            Arc::new(FramingLog::default()),
            Instant::now(),
        );
        (io, client)
    }

    /// Read what the client sent, or the error, or nothing within `wait` (test time).
    async fn read_within(
        io: &mut FramingIo<tokio::io::DuplexStream>,
        wait: Duration,
    ) -> Option<io::Result<usize>> {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 256];
        tokio::time::timeout(wait, io.read(&mut buf)).await.ok()
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickled_head_is_cut_at_its_read_time() {
        use tokio::io::AsyncWriteExt;
        let (mut io, mut client) = connection();
        // A whole head, then the connection waits longer than the head time between
        // requests: that wait is the idle timeout's, not this bound's.
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert!(matches!(read_within(&mut io, READ_TIME).await, Some(Ok(_))));
        assert!(read_within(&mut io, READ_TIME * 3).await.is_none());
        // Then a head trickled a byte a second: cut 10 s after its first byte.
        let started = Instant::now();
        for b in b"GET / HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaa" {
            client.write_all(&[*b]).await.unwrap();
            // The byte, then a second's wait for the next (as hyper reads until pending).
            for expected in [Some(1), None] {
                match read_within(&mut io, Duration::from_secs(1)).await {
                    Some(Err(e)) => {
                        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
                        let held = started.elapsed();
                        assert!(held >= READ_TIME && held <= READ_TIME + Duration::from_secs(2));
                        return;
                    }
                    got => assert_eq!(got.map(|r| r.unwrap()), expected),
                }
            }
        }
        panic!("the trickled head was never cut");
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_head_counts_from_the_connection_start() {
        let (mut io, _client) = connection();
        let got = read_within(&mut io, READ_TIME * 2).await;
        assert!(
            matches!(&got, Some(Err(e)) if e.kind() == io::ErrorKind::TimedOut),
            "{got:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_upgraded_connection_has_no_head_bound() {
        use tokio::io::AsyncWriteExt;
        let (mut io, mut client) = connection();
        client
            .write_all(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n")
            .await
            .unwrap();
        assert!(matches!(read_within(&mut io, READ_TIME).await, Some(Ok(_))));
        io.tracker.log.upgraded();
        // Text that would be the start of a head, and then nothing for a long time.
        client.write_all(b"hello").await.unwrap();
        assert!(matches!(read_within(&mut io, READ_TIME).await, Some(Ok(5))));
        assert!(read_within(&mut io, READ_TIME * 3).await.is_none());
    }

    #[test]
    fn absolute_targets_reduce_to_their_path() {
        assert_eq!(path_and_query(b"http://h:80/d?x"), b"/d?x");
        assert_eq!(path_and_query(b"http://h"), b"/");
        assert_eq!(path_and_query(b"/p"), b"/p");
    }
}
