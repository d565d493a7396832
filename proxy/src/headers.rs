//! Header rewriting on the way through: hop-by-hop fields dropped both ways (RFC 9110
//! §7.6.1), forwarding fields added towards the backend (`X-Forwarded-For`,
//! `X-Forwarded-Proto`, `Forwarded` of RFC 7239, `Via`), and the backend hidden on the way
//! back (`Server`, `X-Powered-By` and the pool's `hide_headers` removed, `Via` added).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Version;
use std::fmt::{self, Write as _};
use std::net::{IpAddr, SocketAddr};

/// Names of fields that `http` has no constant for, made once (a name given as a `&str`
/// is parsed and, not being a standard one, copied into a new allocation on every use).
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The name this proxy gives itself in `Via`.
pub const VIA_NAME: &str = "flowgate";

/// Hop-by-hop fields named by RFC 9110 §7.6.1 (and the obsolete ones it says to treat
/// the same way), besides those listed in `Connection`. Names, not strings: a name given
/// as a `&str` is parsed again on every lookup (14 parses per request, a tenth of the
/// proxy's own instructions per request).
static HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::TRAILER,
];

static X_POWERED_BY: HeaderName = HeaderName::from_static("x-powered-by");

/// Remove the hop-by-hop fields of a message, including every field that its `Connection`
/// header names. With `keep_upgrade`, a WebSocket handshake's `Connection: upgrade` and
/// `Upgrade` stay, since the upgrade is passed through to the other side.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // One pass over the names finds which of the listed fields are there (bit i: the
    // i-th), so only those are looked up to be removed: most messages have none (HTTP/2
    // none at all), a keep-alive response one, `Connection`. Without a `Connection`
    // field nothing names another, and without `Upgrade` there is nothing to keep.
    let present = headers.keys().fold(0u8, |bits, name| {
        HOP_BY_HOP
            .iter()
            .position(|h| h == name)
            .map_or(bits, |i| bits | 1 << i)
    });
    if present == 0 {
        return;
    }
    // Options that name a field beyond the fixed list (`Connection: keep-alive` names one
    // already on it, `close` none): usually there are none, and then nothing is allocated.
    let names_another = |t: &[u8]| {
        !t.eq_ignore_ascii_case(b"close")
            && !HOP_BY_HOP
                .iter()
                .any(|h| t.eq_ignore_ascii_case(h.as_str().as_bytes()))
    };
    let named: Vec<HeaderName> = if connection_tokens(headers).any(names_another) {
        connection_tokens(headers)
            .filter(|t| names_another(t))
            .filter_map(|t| HeaderName::from_bytes(t).ok())
            .collect()
    } else {
        Vec::new()
    };
    let upgrade = headers.get(header::UPGRADE).cloned();
    for name in named {
        headers.remove(name);
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & 1 << i != 0 {
            headers.remove(name);
        }
    }
    if keep_upgrade {
        if let Some(upgrade) = upgrade {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, upgrade);
        }
    }
}

/// The tokens of every `Connection` field of a message, trimmed (RFC 9110 §7.6.1: a
/// comma-separated list of connection options). Split as bytes: the tokens are ASCII, and a
/// field that also carries obs-text still names its options.
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
}

/// Whether a message's `Connection` fields name `option` (ASCII case-insensitive).
pub fn connection_lists(headers: &HeaderMap, option: &str) -> bool {
    connection_tokens(headers).any(|t| t.eq_ignore_ascii_case(option.as_bytes()))
}

/// Whether a request asks to switch protocols (WebSocket) over HTTP/1.1.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_lists(headers, "upgrade")
}

/// `Via` of this proxy for a message of `version` (RFC 9110 §7.6.3: protocol version,
/// then [`VIA_NAME`]); static, so adding it allocates nothing.
fn via(version: Version) -> HeaderValue {
    HeaderValue::from_static(match version {
        Version::HTTP_09 => "0.9 flowgate",
        Version::HTTP_10 => "1.0 flowgate",
        Version::HTTP_2 => "2 flowgate",
        Version::HTTP_3 => "3 flowgate",
        _ => "1.1 flowgate",
    })
}

fn append_via(headers: &mut HeaderMap, version: Version) {
    headers.append(header::VIA, via(version));
}

/// Room for a forwarding field's value on the stack: an address list of a few hops, or
/// `for=...;proto=...;host="..."` with a host of ordinary length.
const VALUE_ROOM: usize = 192;

/// Bytes written on the stack, to be copied once into a field value.
struct Room<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Room<N> {
    fn new() -> Self {
        Room {
            buf: [0; N],
            len: 0,
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl<const N: usize> fmt::Write for Room<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        self.buf
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The longest address text: an IPv6 address with an embedded IPv4 one.
const IP_ROOM: usize = 45;

/// A client address as text. IPv4, nearly every client, is written digit by digit:
/// `Display` ran the formatter for each octet and dot, twice per request (both
/// forwarding fields name the client).
fn ip_text(ip: IpAddr) -> Room<IP_ROOM> {
    let mut room = Room::new();
    match ip {
        IpAddr::V4(a) => {
            for (i, octet) in a.octets().into_iter().enumerate() {
                if i > 0 {
                    room.buf[room.len] = b'.';
                    room.len += 1;
                }
                let digits = [octet / 100, octet / 10 % 10, octet % 10];
                let first = if octet >= 100 {
                    0
                } else if octet >= 10 {
                    1
                } else {
                    2
                };
                for d in &digits[first..] {
                    room.buf[room.len] = b'0' + d;
                    room.len += 1;
                }
            }
        }
        // Fits: an IPv6 address is at most IP_ROOM characters.
        IpAddr::V6(a) => {
            let _ = write!(room, "{a}");
        }
    }
    room
}

/// The field value made of `pieces`. Written on the stack and copied once into the value:
/// `format!` grew a `String` piece by piece (an allocation and reallocations per field,
/// per request); a value longer than [`VALUE_ROOM`] is joined on the heap.
fn field_value(pieces: &[&[u8]]) -> Option<HeaderValue> {
    let mut room = Room::<VALUE_ROOM>::new();
    for piece in pieces {
        let end = room.len + piece.len();
        let Some(slot) = room.buf.get_mut(room.len..end) else {
            return HeaderValue::from_bytes(&pieces.concat()).ok();
        };
        slot.copy_from_slice(piece);
        room.len = end;
    }
    HeaderValue::from_bytes(room.bytes()).ok()
}

/// Where a request came from, for the forwarding headers.
pub struct Hop<'a> {
    pub client: SocketAddr,
    pub tls: bool,
    /// The request's host (authority), if it named one.
    pub host: Option<&'a str>,
    pub version: Version,
}

/// How many fields a request may gain on its way to a backend: `Host`, and the four
/// [`add_forwarding`] adds. Room made for them at once grows the field map once, where
/// each insert past its capacity grew it again (three growths per request).
pub const FIELDS_ADDED: usize = 5;

/// Add the forwarding fields to a request going to a backend. Existing values from
/// earlier proxies are kept and this hop is appended.
pub fn add_forwarding(headers: &mut HeaderMap, hop: &Hop<'_>) {
    let proto = if hop.tls { "https" } else { "http" };
    let client = hop.client.ip().to_canonical();
    let text = ip_text(client);
    let ip = text.bytes();
    let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prior) => field_value(&[prior.as_bytes(), b", ", ip]),
        None => field_value(&[ip]),
    };
    if let Some(v) = xff {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    // An IPv6 node is quoted and bracketed (RFC 7239 §6).
    let (open, close): (&[u8], &[u8]) = if client.is_ipv6() {
        (b"\"[", b"]\"")
    } else {
        (b"", b"")
    };
    let proto = proto.as_bytes();
    // A host is a token or a quoted string (RFC 7239 §4); quote it, and leave out one
    // that cannot be quoted.
    let forwarded = match hop.host.filter(|host| {
        host.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    }) {
        Some(host) => field_value(&[
            b"for=",
            open,
            ip,
            close,
            b";proto=",
            proto,
            b";host=\"",
            host.as_bytes(),
            b"\"",
        ]),
        None => field_value(&[b"for=", open, ip, close, b";proto=", proto]),
    };
    if let Some(v) = forwarded {
        headers.append(header::FORWARDED, v);
    }
    append_via(headers, hop.version);
}

/// Hide the backend in a response: drop what names its software and what the pool hides,
/// and add `Via`.
pub fn hide_backend(headers: &mut HeaderMap, hide: &[HeaderName], version: Version) {
    headers.remove(header::SERVER);
    headers.remove(&X_POWERED_BY);
    for name in hide {
        headers.remove(name);
    }
    append_via(headers, version);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_fields_go() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "keep-alive, x-secret".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert(header::TE, "trailers".parse().unwrap());
        h.insert("proxy-connection", "keep-alive".parse().unwrap());
        h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key(header::CONTENT_TYPE));
    }

    #[test]
    fn connection_options_are_read_across_fields_and_beside_obs_text() {
        let mut h = HeaderMap::new();
        h.append(header::CONNECTION, "keep-alive".parse().unwrap());
        h.append(
            header::CONNECTION,
            HeaderValue::from_bytes(b"x-\xe9t\xe9 , x-secret,  CLOSE").unwrap(),
        );
        h.insert("x-secret", "1".parse().unwrap());
        assert!(connection_lists(&h, "close"));
        assert!(!connection_lists(&h, "upgrade"));
        assert!(!connection_lists(&h, "keep"));
        strip_hop_by_hop(&mut h, false);
        assert!(h.is_empty(), "{h:?}");
    }

    #[test]
    fn an_upgrade_is_kept_when_passed_through() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "keep-alive, Upgrade".parse().unwrap());
        h.insert(header::UPGRADE, "websocket".parse().unwrap());
        assert!(is_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h[header::CONNECTION], "upgrade");
        assert_eq!(h[header::UPGRADE], "websocket");
    }

    #[test]
    fn forwarding_fields_append_to_earlier_hops() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "192.0.2.1".parse().unwrap());
        add_forwarding(
            &mut h,
            &Hop {
                client: "[2001:db8::1]:5000".parse().unwrap(),
                tls: true,
                host: Some("example.com"),
                version: Version::HTTP_2,
            },
        );
        assert_eq!(h["x-forwarded-for"], "192.0.2.1, 2001:db8::1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(
            h[header::FORWARDED],
            "for=\"[2001:db8::1]\";proto=https;host=\"example.com\""
        );
        assert_eq!(h[header::VIA], "2 flowgate");
    }

    #[test]
    fn long_forwarding_values_are_written_whole() {
        // Longer than the stack room: the values take the allocating path, unchanged.
        let prior = (1..=40)
            .map(|i| format!("198.51.100.{i}"))
            .collect::<Vec<_>>();
        let host = format!("{}.example", "a".repeat(300));
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", prior.join(", ").parse().unwrap());
        add_forwarding(
            &mut h,
            &Hop {
                client: "192.0.2.7:5000".parse().unwrap(),
                tls: false,
                host: Some(&host),
                version: Version::HTTP_11,
            },
        );
        assert_eq!(
            h["x-forwarded-for"],
            format!("{}, 192.0.2.7", prior.join(", ")).as_str()
        );
        assert_eq!(
            h[header::FORWARDED],
            format!("for=192.0.2.7;proto=http;host=\"{host}\"").as_str()
        );
        // A host that cannot be quoted is left out.
        let mut h = HeaderMap::new();
        add_forwarding(
            &mut h,
            &Hop {
                client: "192.0.2.7:5000".parse().unwrap(),
                tls: false,
                host: Some("bad\"host"),
                version: Version::HTTP_11,
            },
        );
        assert_eq!(h["x-forwarded-for"], "192.0.2.7");
        assert_eq!(h[header::FORWARDED], "for=192.0.2.7;proto=http");
    }

    #[test]
    fn client_addresses_are_written_as_display_writes_them() {
        let mut addresses: Vec<IpAddr> = [
            "0.0.0.0",
            "9.10.99.100",
            "127.0.0.1",
            "255.255.255.255",
            "::1",
            "2001:db8::ff00:42:8329",
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        addresses.extend((0..=255u8).map(|o| IpAddr::from([o, 255 - o, o / 3, 7])));
        for ip in addresses {
            assert_eq!(ip_text(ip).bytes(), ip.to_string().as_bytes(), "{ip}");
        }
    }

    #[test]
    fn via_names_this_proxy_for_every_version() {
        for version in [
            Version::HTTP_09,
            Version::HTTP_10,
            Version::HTTP_11,
            Version::HTTP_2,
            Version::HTTP_3,
        ] {
            let via = via(version);
            let (_, name) = via.to_str().unwrap().split_once(' ').unwrap();
            assert_eq!(name, VIA_NAME);
        }
    }
}
