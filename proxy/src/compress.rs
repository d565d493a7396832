//! Response compression (issue 21): gzip, brotli and zstd chosen by the client's
//! `Accept-Encoding` (RFC 9110 §12.5.3) and the route's preference order, streamed through
//! `async-compression` frame by frame, never buffering the body.
//!
//! What is never compressed: a response that already has a `Content-Encoding`, one marked
//! `Cache-Control: no-transform` (RFC 9110 §7.7), a 206 or any answer to a `Range` request,
//! HEAD, 1xx/204/304 (no content), a content type the route does not list, and a body whose
//! `Content-Length` is under the route's minimum. A compressible response always carries
//! `Vary: Accept-Encoding` (even when this client got identity), a strong `ETag` becomes weak
//! on a transformed body (RFC 9110 §8.8.3: the bytes differ), and `Content-Length` goes.

use crate::config::CompressConfig;
use crate::{BoxError, ProxyBody};
use async_compression::tokio::bufread::{BrotliEncoder, GzipEncoder, ZstdEncoder};
use async_compression::Level;
use bytes::Bytes;
use futures_util::TryStreamExt;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::io::AsyncRead;
use tokio_util::io::{ReaderStream, StreamReader};

/// A content coding the proxy produces. The table of codings: adding one is a row here
/// and an arm in [`Codec::encoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    Gzip,
    Brotli,
    Zstd,
}

impl Codec {
    pub const ALL: [Codec; 3] = [Codec::Brotli, Codec::Zstd, Codec::Gzip];

    /// The content-coding token (RFC 9110 §8.4.1, IANA registry).
    pub fn token(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Brotli => "br",
            Codec::Zstd => "zstd",
        }
    }

    pub fn from_token(token: &str) -> Option<Codec> {
        Codec::ALL
            .into_iter()
            .find(|c| c.token().eq_ignore_ascii_case(token))
            // "x-gzip" is gzip (RFC 9110 §8.4.1.3).
            .or_else(|| token.eq_ignore_ascii_case("x-gzip").then_some(Codec::Gzip))
    }

    /// Default level: a web server's usual trade of speed for ratio.
    pub fn default_level(self) -> i32 {
        match self {
            Codec::Gzip => 6,
            Codec::Brotli => 4,
            Codec::Zstd => 3,
        }
    }

    /// Levels the library accepts for this codec.
    pub fn levels(self) -> std::ops::RangeInclusive<i32> {
        match self {
            Codec::Gzip => 1..=9,
            Codec::Brotli => 0..=11,
            Codec::Zstd => 1..=19,
        }
    }

    fn encoder<R: tokio::io::AsyncBufRead + Send + Unpin + 'static>(
        self,
        input: R,
        level: i32,
    ) -> Box<dyn AsyncRead + Send + Unpin> {
        let level = Level::Precise(level);
        match self {
            Codec::Gzip => Box::new(GzipEncoder::with_quality(input, level)),
            Codec::Brotli => Box::new(BrotliEncoder::with_quality(input, level)),
            Codec::Zstd => Box::new(ZstdEncoder::with_quality(input, level)),
        }
    }
}

/// The q-value of a list member (`;q=0.5`), 1 when absent; `None` when malformed.
fn qvalue(params: &str) -> Option<f32> {
    for param in params.split(';') {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("q") {
            let q: f32 = value.trim().parse().ok()?;
            return (0.0..=1.0).contains(&q).then_some(q);
        }
    }
    Some(1.0)
}

/// The coding for a response under RFC 9110 §12.5.3: each codec's weight is its own
/// member's q, else the `*` member's q, else 0 (not acceptable); the highest non-zero weight
/// wins and ties go to the route's preference order. `None` (identity) when the request has
/// no `Accept-Encoding` (the proxy does not guess) or accepts none of `prefer`.
pub fn negotiate(headers: &HeaderMap, prefer: &[Codec]) -> Option<Codec> {
    let mut listed = false;
    let mut star = None;
    let mut weights: Vec<(Codec, f32)> = Vec::new();
    for member in headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let (token, params) = member.split_once(';').unwrap_or((member, ""));
        let token = token.trim();
        if token.is_empty() {
            continue;
        }
        listed = true;
        let Some(q) = qvalue(params) else {
            continue;
        };
        if token == "*" {
            star = Some(q);
        } else if let Some(codec) = Codec::from_token(token) {
            weights.push((codec, q));
        }
    }
    if !listed {
        return None;
    }
    let mut best: Option<(Codec, f32)> = None;
    for &codec in prefer {
        let q = weights
            .iter()
            .find(|(c, _)| *c == codec)
            .map(|&(_, q)| q)
            .or(star)
            .unwrap_or(0.0);
        if q > 0.0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((codec, q));
        }
    }
    best.map(|(c, _)| c)
}

/// Whether the route compresses this kind of response at all (the answer decides `Vary`).
pub fn eligible(cfg: &CompressConfig, method: &Method, status: StatusCode, h: &HeaderMap) -> bool {
    if *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || status == StatusCode::PARTIAL_CONTENT
        || h.contains_key(header::CONTENT_ENCODING)
        || h.contains_key(header::CONTENT_RANGE)
    {
        return false;
    }
    let no_transform = h
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| d.trim().eq_ignore_ascii_case("no-transform"));
    if no_transform {
        return false;
    }
    let content_type = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let Some(content_type) = content_type else {
        return false;
    };
    if !cfg.types.iter().any(|t| type_matches(t, &content_type)) {
        return false;
    }
    let length = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    length.is_none_or(|n| n >= cfg.min_bytes)
}

/// `text/*` matches any text type; anything else matches exactly.
fn type_matches(pattern: &str, content_type: &str) -> bool {
    match pattern.strip_suffix("/*") {
        Some(major) => content_type
            .split_once('/')
            .is_some_and(|(m, _)| m == major),
        None => pattern == content_type,
    }
}

/// Add `field` to `Vary` unless it (or `*`) is already there.
pub fn add_vary(h: &mut HeaderMap, field: &'static str) {
    let present = h
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || t.trim().eq_ignore_ascii_case(field));
    if !present {
        h.append(header::VARY, HeaderValue::from_static(field));
    }
}

/// Compress a response for a request with `request_headers`, where the route and the
/// response allow it; otherwise hand it back unchanged (but with `Vary` where the choice
/// depended on `Accept-Encoding`).
pub fn apply(
    cfg: &CompressConfig,
    method: &Method,
    request_headers: &HeaderMap,
    response: http::Response<ProxyBody>,
) -> http::Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    if !eligible(cfg, method, parts.status, &parts.headers) {
        return http::Response::from_parts(parts, body);
    }
    add_vary(&mut parts.headers, "accept-encoding");
    // A range of the identity body cannot be served compressed (RFC 9110 §14.2).
    if request_headers.contains_key(header::RANGE) {
        return http::Response::from_parts(parts, body);
    }
    let Some(codec) = negotiate(request_headers, &cfg.prefer) else {
        return http::Response::from_parts(parts, body);
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::ACCEPT_RANGES);
    parts.headers.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static(codec.token()),
    );
    if let Some(etag) = parts.headers.get(header::ETAG).cloned() {
        if !etag.as_bytes().starts_with(b"W/") {
            let mut weak = b"W/".to_vec();
            weak.extend_from_slice(etag.as_bytes());
            if let Ok(v) = HeaderValue::from_bytes(&weak) {
                parts.headers.insert(header::ETAG, v);
            }
        }
    }
    http::Response::from_parts(parts, encode(body, codec, cfg.level(codec)))
}

/// The body through `codec`: data frames in, compressed data frames out (trailers of the
/// input are dropped: a compressed HTTP/1.1 body is chunked without them).
pub fn encode(body: ProxyBody, codec: Codec, level: i32) -> ProxyBody {
    let input = body.into_data_stream().map_err(std::io::Error::other);
    let reader = StreamReader::new(input);
    let output = ReaderStream::new(codec.encoder(reader, level))
        .map_ok(Frame::data)
        .map_err(|e| Box::new(e) as BoxError);
    StreamBody::new(output).boxed_unsync()
}

/// Used by tests and the cache: the whole body as one buffer.
pub async fn collect(body: ProxyBody) -> Result<Bytes, BoxError> {
    Ok(body.collect().await?.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ae(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, v.parse().unwrap());
        h
    }

    const PREFER: [Codec; 3] = [Codec::Brotli, Codec::Zstd, Codec::Gzip];

    #[test]
    fn rfc9110_12_5_3_q_values_pick_the_coding() {
        assert_eq!(negotiate(&HeaderMap::new(), &PREFER), None);
        assert_eq!(negotiate(&ae("gzip"), &PREFER), Some(Codec::Gzip));
        assert_eq!(negotiate(&ae("gzip, br"), &PREFER), Some(Codec::Brotli));
        assert_eq!(
            negotiate(&ae("gzip;q=1.0, br;q=0.5"), &PREFER),
            Some(Codec::Gzip)
        );
        assert_eq!(negotiate(&ae("br;q=0, gzip"), &PREFER), Some(Codec::Gzip));
        assert_eq!(negotiate(&ae("*"), &PREFER), Some(Codec::Brotli));
        assert_eq!(negotiate(&ae("*;q=0, zstd"), &PREFER), Some(Codec::Zstd));
        assert_eq!(negotiate(&ae("identity"), &PREFER), None);
        assert_eq!(negotiate(&ae("identity;q=0"), &PREFER), None);
        assert_eq!(
            negotiate(&ae("identity;q=0, *;q=0.1"), &PREFER),
            Some(Codec::Brotli)
        );
        assert_eq!(negotiate(&ae("GZIP;Q=0.3"), &PREFER), Some(Codec::Gzip));
        assert_eq!(negotiate(&ae("gzip;q=2"), &PREFER), None);
        assert_eq!(negotiate(&ae("x-gzip"), &[Codec::Gzip]), Some(Codec::Gzip));
    }

    #[test]
    fn content_types_match_by_major_or_exactly() {
        assert!(type_matches("text/*", "text/html"));
        assert!(!type_matches("text/*", "textual/html"));
        assert!(type_matches("application/json", "application/json"));
        assert!(!type_matches("application/json", "application/jsonx"));
    }
}
