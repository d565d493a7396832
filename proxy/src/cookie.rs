//! Session persistence by a signed cookie.
//!
//! The cookie names the backend by an opaque id (the first 8 bytes of SHA-256 over the pool
//! name and the backend's address, so the address is not shown) followed by an
//! HMAC-SHA256 tag of that id under the pool's configured key: `id.tag`, both hex. A client
//! can replay a cookie it was given but cannot make one for a backend of its choosing, and
//! a cookie from another pool or key does not verify.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the HMAC tag kept in the cookie (128 bits).
const TAG_LEN: usize = 16;

/// The opaque id of a backend in a pool.
pub fn backend_id(pool: &str, address: SocketAddr) -> String {
    let mut h = Sha256::new();
    h.update(pool.as_bytes());
    h.update([0]);
    h.update(address.to_string().as_bytes());
    hex::encode(&h.finalize()[..8])
}

fn mac(key: &[u8], id: &str) -> HmacSha256 {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(id.as_bytes());
    mac
}

/// The cookie value naming backend `id`.
pub fn sign(key: &[u8], id: &str) -> String {
    let tag = mac(key, id).finalize().into_bytes();
    format!("{id}.{}", hex::encode(&tag[..TAG_LEN]))
}

/// The backend id of a cookie value, if its tag verifies (in constant time).
pub fn verify<'a>(key: &[u8], value: &'a str) -> Option<&'a str> {
    let (id, tag) = value.split_once('.')?;
    let tag = hex::decode(tag).ok()?;
    if tag.len() != TAG_LEN {
        return None;
    }
    mac(key, id).verify_truncated_left(&tag).ok()?;
    Some(id)
}

/// The value of cookie `name` in a request's `Cookie` headers (RFC 6265 §5.4: `; `
/// separated pairs, possibly in several header fields).
pub fn find(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim_matches('"').to_string())
}

/// The `Set-Cookie` value that pins a client to backend `id`.
pub fn set_cookie(name: &str, key: &[u8], id: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{name}={}; Path=/; HttpOnly; SameSite=Lax{secure}",
        sign(key, id)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123";

    #[test]
    fn a_signed_cookie_verifies_and_a_forged_one_does_not() {
        let id = backend_id("web", "127.0.0.1:8081".parse().unwrap());
        let value = sign(KEY, &id);
        assert_eq!(verify(KEY, &value), Some(id.as_str()));
        // Another backend's id with this tag, another key, a cut tag, garbage.
        let other = backend_id("web", "127.0.0.1:8082".parse().unwrap());
        let tag = value.split_once('.').unwrap().1;
        assert_eq!(verify(KEY, &format!("{other}.{tag}")), None);
        assert_eq!(verify(b"another key of 16+ bytes", &value), None);
        assert_eq!(verify(KEY, &value[..value.len() - 2]), None);
        assert_eq!(verify(KEY, "nonsense"), None);
        assert_eq!(verify(KEY, "a.zz"), None);
    }

    #[test]
    fn ids_differ_by_pool_and_address() {
        let a: SocketAddr = "127.0.0.1:8081".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:8082".parse().unwrap();
        assert_ne!(backend_id("web", a), backend_id("web", b));
        assert_ne!(backend_id("web", a), backend_id("api", a));
        assert!(!backend_id("web", a).contains("8081"));
    }

    #[test]
    fn find_reads_every_cookie_header() {
        let mut h = http::HeaderMap::new();
        h.append(http::header::COOKIE, "a=1; b=2".parse().unwrap());
        h.append(http::header::COOKIE, "FG=x.y".parse().unwrap());
        assert_eq!(find(&h, "b").as_deref(), Some("2"));
        assert_eq!(find(&h, "FG").as_deref(), Some("x.y"));
        assert_eq!(find(&h, "c"), None);
    }
}
