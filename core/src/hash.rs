//! Stage 3 — hash: a keyed Toeplitz hash (the RSS hash NICs compute) over the frame's
//! tuple, masked by the VIP's persistence mode, plus a 64-bit flow digest from two more
//! independent keys.
//!
//! * `hash` = Toeplitz(key `rss`, tuple). For the 5-tuple mode this is exactly the RSS hash
//!   a NIC computes with the same key over (src addr, dst addr, src port, dst port), so a
//!   DPDK host can reuse the NIC's hash. It picks the flow-table set and the Maglev slot.
//! * `digest` = Toeplitz(`digest_hi`, tuple ‖ protocol ‖ vip) << 32 | Toeplitz(`digest_lo`,
//!   same): what the flow table stores to recognise a flow (a false hit needs both 32-bit
//!   halves and the set to collide).
//!
//! The tuple: source address, destination address (4 or 16 bytes each), then source and
//! destination port (big-endian). Ports are zero for fragments (L3-only hashing, so every
//! fragment of a datagram lands on one backend) and in `SrcIp` persistence (every
//! connection of a client to the VIP lands on one backend).
//!
//! Toeplitz is written by hand: it is ten lines, and the contract needs the exact bit order
//! the hardware's XOR tree computes; no crate exposes it over arbitrary keys this way.

use crate::parse::ParsedFrame;
use std::net::IpAddr;

/// Bytes in each hash key: enough for the longest digest input (36-byte IPv6 tuple +
/// protocol + 2-byte VIP index = 39 bytes, plus 4). The first 40 bytes of `rss` are the
/// NIC's RSS key.
pub const KEY_LEN: usize = 52;
/// Longest digest input (IPv6 tuple + protocol + VIP index).
pub const MAX_INPUT_LEN: usize = 39;

/// How a VIP maps frames to flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Persistence {
    /// (src, dst, protocol, src port, dst port): each connection balanced on its own.
    #[default]
    FiveTuple,
    /// (src, dst, protocol): all of a client's connections to the VIP on one backend.
    SrcIp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashKeys {
    pub rss: [u8; KEY_LEN],
    pub digest_hi: [u8; KEY_LEN],
    pub digest_lo: [u8; KEY_LEN],
}

impl Default for HashKeys {
    fn default() -> Self {
        // The first 40 bytes of `rss` are the well-known default RSS key (Microsoft's
        // verification key, used by most NIC drivers); the rest are arbitrary fixed bytes.
        const RSS: [u8; KEY_LEN] = [
            0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
            0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
            0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa, 0x1f, 0x83,
            0xd9, 0xab, 0xfb, 0x41, 0xbd, 0x6b, 0x5b, 0xe0, 0xcd, 0x19,
        ];
        HashKeys {
            rss: RSS,
            digest_hi: derive_key(0x243f_6a88_85a3_08d3),
            digest_lo: derive_key(0x1319_8a2e_0370_7344),
        }
    }
}

/// A fixed key from a seed (splitmix64), so defaults are reproducible everywhere.
pub fn derive_key(seed: u64) -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    let mut state = seed;
    for chunk in key.chunks_mut(8) {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_be_bytes()[..chunk.len()]);
    }
    key
}

/// Toeplitz hash of `input` under `key` (bit 0 of the input = MSB of its first byte).
/// `key` must be at least `input.len() + 4` bytes long.
pub fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
    debug_assert!(key.len() >= input.len() + 4);
    let mut result = 0u32;
    // A 64-bit window over the key: its top 32 bits are the key bits aligned with the
    // current input bit.
    let mut window = u64::from_be_bytes([
        key[0], key[1], key[2], key[3], key[4], key[5], key[6], key[7],
    ]);
    for (i, &byte) in input.iter().enumerate() {
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                result ^= (window >> (32 - bit)) as u32;
            }
        }
        window = window << 8 | key.get(i + 8).copied().unwrap_or(0) as u64;
    }
    result
}

/// The two values every later stage uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowHash {
    pub hash: u32,
    pub digest: u64,
}

/// Write the tuple for `p` under `persistence` into `buf`; returns its length (12 or 36).
pub fn tuple_bytes(
    p: &ParsedFrame,
    persistence: Persistence,
    buf: &mut [u8; MAX_INPUT_LEN],
) -> usize {
    let mut n = 0;
    for addr in [p.src, p.dst] {
        match addr {
            IpAddr::V4(a) => {
                buf[n..n + 4].copy_from_slice(&a.octets());
                n += 4;
            }
            IpAddr::V6(a) => {
                buf[n..n + 16].copy_from_slice(&a.octets());
                n += 16;
            }
        }
    }
    let ports = !p.fragment && persistence == Persistence::FiveTuple;
    let (sp, dp) = if ports {
        (p.src_port, p.dst_port)
    } else {
        (0, 0)
    };
    buf[n..n + 2].copy_from_slice(&sp.to_be_bytes());
    buf[n + 2..n + 4].copy_from_slice(&dp.to_be_bytes());
    n + 4
}

/// Hash and digest of a frame classified to VIP `vip`, by the bit-serial reference
/// [`toeplitz`]. Engines use [`FlowHasher::flow_hash`], which is tested equal to this.
pub fn flow_hash(keys: &HashKeys, p: &ParsedFrame, persistence: Persistence, vip: u16) -> FlowHash {
    let (buf, n, m) = hash_input(p, persistence, vip);
    let hash = toeplitz(&keys.rss, &buf[..n]);
    let digest = (toeplitz(&keys.digest_hi, &buf[..m]) as u64) << 32
        | toeplitz(&keys.digest_lo, &buf[..m]) as u64;
    FlowHash { hash, digest }
}

/// The one definition of what is hashed: the tuple (`buf[..n]`) under `rss`, the tuple ‖
/// protocol ‖ vip (`buf[..m]`) under the two digest keys. Returns (buf, n, m).
fn hash_input(
    p: &ParsedFrame,
    persistence: Persistence,
    vip: u16,
) -> ([u8; MAX_INPUT_LEN], usize, usize) {
    let mut buf = [0u8; MAX_INPUT_LEN];
    let n = tuple_bytes(p, persistence, &mut buf);
    buf[n] = p.protocol;
    buf[n + 1..n + 3].copy_from_slice(&vip.to_be_bytes());
    (buf, n, n + 3)
}

/// [`hash_input`] as big-endian 32-bit words, built straight from the addresses (no byte
/// buffer: this is the per-frame path of the carry-less-multiply form). Returns (words,
/// tuple words, tuple ‖ protocol ‖ vip words); the last word is zero-padded. Tested equal
/// to [`hash_input`] in `fast_hashers_equal_the_reference`.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[inline]
fn hash_words(p: &ParsedFrame, persistence: Persistence, vip: u16) -> ([u32; WORDS], usize, usize) {
    let mut words = [0u32; WORDS];
    let mut n = 0;
    for addr in [p.src, p.dst] {
        match addr {
            IpAddr::V4(a) => {
                words[n] = u32::from(a);
                n += 1;
            }
            IpAddr::V6(a) => {
                let v = u128::from(a);
                words[n] = (v >> 96) as u32;
                words[n + 1] = (v >> 64) as u32;
                words[n + 2] = (v >> 32) as u32;
                words[n + 3] = v as u32;
                n += 4;
            }
        }
    }
    if !p.fragment && persistence == Persistence::FiveTuple {
        words[n] = u32::from(p.src_port) << 16 | u32::from(p.dst_port);
    }
    words[n + 1] = u32::from(p.protocol) << 24 | u32::from(vip) << 8;
    (words, n + 1, n + 2)
}

/// What one nibble value at one input position adds to the three Toeplitz hashes.
/// Toeplitz is linear over XOR, so a hash is the XOR of one such entry per input nibble.
#[derive(Clone, Copy, Default)]
#[repr(C, align(16))]
struct Contribution {
    /// `digest_hi` part << 32 | `digest_lo` part.
    digest: u64,
    rss: u32,
}

/// All three keys as tables per input nibble position: row `i`, half `h` (0 = high
/// nibble), entry `v` is [`Contribution`] of nibble value `v` there. Nibbles rather than
/// bytes keep the tables at 20 KiB, small enough to stay in L1 between frames (a byte
/// table per key is 117 KiB and is evicted by the packet data streaming through the
/// cache); one entry serves all three keys. This is the software form of the hardware's
/// XOR tree; no crate provides it over arbitrary keys and the contract's input layout.
type NibbleRows = [[[Contribution; 16]; 2]; MAX_INPUT_LEN];

fn nibble_rows(keys: &HashKeys) -> Box<NibbleRows> {
    let mut rows = Box::new([[[Contribution::default(); 16]; 2]; MAX_INPUT_LEN]);
    for (i, row) in rows.iter_mut().enumerate() {
        for (half, entries) in row.iter_mut().enumerate() {
            for (v, entry) in entries.iter_mut().enumerate() {
                let mut input = [0u8; MAX_INPUT_LEN];
                input[i] = (v as u8) << (4 * (1 - half));
                let input = &input[..=i];
                *entry = Contribution {
                    digest: (toeplitz(&keys.digest_hi, input) as u64) << 32
                        | toeplitz(&keys.digest_lo, input) as u64,
                    rss: toeplitz(&keys.rss, input),
                };
            }
        }
    }
    rows
}

/// 32-bit input words of the longest input (the last one zero-padded).
const WORDS: usize = MAX_INPUT_LEN.div_ceil(4);
/// 32-bit words of an IPv4 and of an IPv6 tuple (two addresses, then the ports).
const IPV4_TUPLE_WORDS: usize = 3;
const IPV6_TUPLE_WORDS: usize = 9;
const _: () = assert!(IPV6_TUPLE_WORDS < WORDS);

/// The key windows the carry-less-multiply form needs: for input word `k`, the key's
/// bits `32k .. 32k + 64`, bit-reversed. Toeplitz is a carry-less product: the word's
/// contribution is bits 31..63 of `clmul(word, window)`, read backwards (see
/// [`clmul::flow_hash`]).
#[derive(Clone, Copy)]
struct Windows {
    rss: [u64; WORDS],
    hi: [u64; WORDS],
    lo: [u64; WORDS],
}

impl Windows {
    fn new(keys: &HashKeys) -> Windows {
        let window = |key: &[u8; KEY_LEN]| {
            std::array::from_fn(|k| {
                let mut w = [0u8; 8];
                w.copy_from_slice(&key[4 * k..4 * k + 8]);
                u64::from_be_bytes(w).reverse_bits()
            })
        };
        Windows {
            rss: window(&keys.rss),
            hi: window(&keys.digest_hi),
            lo: window(&keys.digest_lo),
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod clmul {
    use super::{Windows, IPV4_TUPLE_WORDS, IPV6_TUPLE_WORDS, WORDS};
    use std::arch::x86_64::{__m128i, _mm_clmulepi64_si128, _mm_cvtsi64_si128, _mm_xor_si128};

    /// Bits 31..63 of the carry-less product, read backwards: the 32-bit Toeplitz value.
    #[inline(always)]
    fn finish(p: __m128i) -> u32 {
        // SAFETY: plain 128-bit reinterpretation.
        let low = unsafe { std::mem::transmute::<__m128i, [u64; 2]>(p) }[0];
        ((low >> 31) as u32).reverse_bits()
    }

    /// Toeplitz under the three keys at once: the tuple (`words[..n]`) under `rss`,
    /// `words[..n + 1]` (the tuple, then protocol ‖ vip) under the digest keys (the input
    /// as big-endian 32-bit words, the last one zero-padded). Returns (hash, digest).
    ///
    /// # Safety
    /// The CPU must have PCLMULQDQ.
    #[target_feature(enable = "pclmulqdq,sse2")]
    pub(super) unsafe fn flow_hash(w: &Windows, words: &[u32; WORDS], n: usize) -> (u32, u64) {
        // The two tuple lengths as constants, so that each form is unrolled with no
        // bounds checks (a loop over a run-time length cost about 60 instructions a frame).
        if n == IPV4_TUPLE_WORDS {
            unrolled::<IPV4_TUPLE_WORDS>(w, words)
        } else {
            debug_assert_eq!(n, IPV6_TUPLE_WORDS);
            unrolled::<IPV6_TUPLE_WORDS>(w, words)
        }
    }

    /// [`flow_hash`] for a tuple of `N` words.
    #[target_feature(enable = "pclmulqdq,sse2")]
    #[inline]
    unsafe fn unrolled<const N: usize>(w: &Windows, words: &[u32; WORDS]) -> (u32, u64) {
        let word = |k: usize| _mm_cvtsi64_si128(i64::from(words[k]));
        let key = |v: u64| _mm_cvtsi64_si128(v as i64);
        let zero = _mm_cvtsi64_si128(0);
        let (mut rss, mut hi, mut lo) = (zero, zero, zero);
        for k in 0..N {
            let x = word(k);
            rss = _mm_xor_si128(rss, _mm_clmulepi64_si128::<0>(x, key(w.rss[k])));
            hi = _mm_xor_si128(hi, _mm_clmulepi64_si128::<0>(x, key(w.hi[k])));
            lo = _mm_xor_si128(lo, _mm_clmulepi64_si128::<0>(x, key(w.lo[k])));
        }
        // Protocol ‖ vip: the digests only.
        let x = word(N);
        hi = _mm_xor_si128(hi, _mm_clmulepi64_si128::<0>(x, key(w.hi[N])));
        lo = _mm_xor_si128(lo, _mm_clmulepi64_si128::<0>(x, key(w.lo[N])));
        (finish(rss), (finish(hi) as u64) << 32 | finish(lo) as u64)
    }
}

/// The key windows of [`Windows`] laid out for [`vclmul::flow_hash`]: row `k` is one
/// 512-bit vector whose 128-bit lanes 0, 1, 2 hold in their low half the `rss`,
/// `digest_hi` and `digest_lo` windows of input word `k` (lane 3 is zero).
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct LaneRows([[u64; 8]; WORDS]);

impl LaneRows {
    fn new(w: &Windows) -> LaneRows {
        LaneRows(std::array::from_fn(|k| {
            [w.rss[k], 0, w.hi[k], 0, w.lo[k], 0, 0, 0]
        }))
    }
}

#[cfg(target_arch = "x86_64")]
mod vclmul {
    use super::{LaneRows, IPV4_TUPLE_WORDS, IPV6_TUPLE_WORDS, WORDS};
    use std::arch::x86_64::{
        _mm256_extract_epi32, _mm256_gf2p8affine_epi64_epi8, _mm256_set1_epi64x, _mm256_setr_epi8,
        _mm256_shuffle_epi8, _mm512_clmulepi64_epi128, _mm512_cvtepi64_epi32, _mm512_load_si512,
        _mm512_mask_xor_epi64, _mm512_set1_epi64, _mm512_setzero_si512, _mm512_srli_epi64,
        _mm512_xor_si512,
    };

    /// [`super::clmul::flow_hash`] with the three keys' products of one input word in one
    /// 512-bit carry-less multiply (VPCLMULQDQ: one product per 128-bit lane), so a word
    /// costs four instructions instead of ten. Same arguments and result.
    ///
    /// # Safety
    /// The CPU must have AVX-512F, VPCLMULQDQ and GFNI.
    #[target_feature(enable = "avx512f,vpclmulqdq,gfni,avx2")]
    pub(super) unsafe fn flow_hash(rows: &LaneRows, words: &[u32; WORDS], n: usize) -> (u32, u64) {
        if n == IPV4_TUPLE_WORDS {
            unrolled::<IPV4_TUPLE_WORDS>(rows, words)
        } else {
            debug_assert_eq!(n, IPV6_TUPLE_WORDS);
            unrolled::<IPV6_TUPLE_WORDS>(rows, words)
        }
    }

    #[target_feature(enable = "avx512f,vpclmulqdq,gfni,avx2")]
    #[inline]
    unsafe fn unrolled<const N: usize>(rows: &LaneRows, words: &[u32; WORDS]) -> (u32, u64) {
        // SAFETY (loads): each row is 64 bytes, 64-aligned (`repr(align(64))`).
        let product = |k: usize| {
            let x = _mm512_set1_epi64(i64::from(words[k]));
            _mm512_clmulepi64_epi128::<0>(x, _mm512_load_si512(rows.0[k].as_ptr().cast()))
        };
        let mut acc = _mm512_setzero_si512();
        for k in 0..N {
            acc = _mm512_xor_si512(acc, product(k));
        }
        // Protocol ‖ vip: the digests only (64-bit elements 2..5: lanes 1 and 2).
        acc = _mm512_mask_xor_epi64(acc, 0b0011_1100, acc, product(N));
        // Each lane's value is bits 31..63 of its low half, read backwards: shift, narrow
        // to 32-bit elements (lane l's value is element 2l), then reverse every element's
        // bits at once (bytes by a shuffle, bits within bytes by a GF(2) affine map)
        // instead of three scalar `reverse_bits` (about 40 instructions).
        let values = _mm512_cvtepi64_epi32(_mm512_srli_epi64::<31>(acc));
        let bytes = _mm256_shuffle_epi8(
            values,
            _mm256_setr_epi8(
                3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12, 3, 2, 1, 0, 7, 6, 5, 4, 11,
                10, 9, 8, 15, 14, 13, 12,
            ),
        );
        let reversed = _mm256_gf2p8affine_epi64_epi8::<0>(
            bytes,
            _mm256_set1_epi64x(0x8040_2010_0804_0201_u64 as i64),
        );
        let (rss, hi, lo) = (
            _mm256_extract_epi32::<0>(reversed) as u32,
            _mm256_extract_epi32::<2>(reversed) as u32,
            _mm256_extract_epi32::<4>(reversed) as u32,
        );
        (rss, (hi as u64) << 32 | lo as u64)
    }
}

/// The fast form of [`flow_hash`] for one set of keys: engines build it once per key
/// change and hash every frame with it. On x86-64 CPUs with 512-bit carry-less multiply
/// (AVX-512F, VPCLMULQDQ and GFNI) it computes the three keys' products of a word at once, on
/// those with PCLMULQDQ only one after the other, else it looks up 20 KiB of tables; all
/// three forms are tested equal to the reference.
#[derive(Clone)]
pub struct FlowHasher {
    keys: HashKeys,
    rows: std::sync::Arc<NibbleRows>,
    /// `Some` when the CPU has PCLMULQDQ.
    windows: Option<Windows>,
    /// `Some` when the CPU has AVX-512F, VPCLMULQDQ and GFNI.
    lanes: Option<std::sync::Arc<LaneRows>>,
}

impl std::fmt::Debug for FlowHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowHasher")
            .field("keys", &self.keys)
            .field("clmul", &self.windows.is_some())
            .field("vpclmul", &self.lanes.is_some())
            .finish_non_exhaustive()
    }
}

fn has_clmul() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn has_vpclmul() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("vpclmulqdq")
            && std::arch::is_x86_feature_detected!("gfni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl FlowHasher {
    pub fn new(keys: &HashKeys) -> FlowHasher {
        let windows = has_clmul().then(|| Windows::new(keys));
        FlowHasher {
            keys: keys.clone(),
            rows: std::sync::Arc::from(nibble_rows(keys)),
            lanes: windows
                .filter(|_| has_vpclmul())
                .map(|w| std::sync::Arc::new(LaneRows::new(&w))),
            windows,
        }
    }

    /// The keys this hasher was built for.
    pub fn keys(&self) -> &HashKeys {
        &self.keys
    }

    /// Same result as [`flow_hash`] with this hasher's keys.
    // Always inlined: with `prepare` inlined into the DPDK loop the compiler kept this a
    // call (the words built in memory, the result returned in it): 19 (hit-heavy) and 15
    // (new-flow-heavy) instructions a frame in flowgate-dpdk.
    #[inline(always)]
    pub fn flow_hash(&self, p: &ParsedFrame, persistence: Persistence, vip: u16) -> FlowHash {
        #[cfg(target_arch = "x86_64")]
        if let Some(rows) = &self.lanes {
            let (words, n, _) = hash_words(p, persistence, vip);
            // SAFETY: `lanes` is only built when the CPU has AVX-512F, VPCLMULQDQ and GFNI.
            let (hash, digest) = unsafe { vclmul::flow_hash(rows, &words, n) };
            return FlowHash { hash, digest };
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(w) = &self.windows {
            let (words, n, _) = hash_words(p, persistence, vip);
            // SAFETY: `windows` is only built when the CPU has PCLMULQDQ.
            let (hash, digest) = unsafe { clmul::flow_hash(w, &words, n) };
            return FlowHash { hash, digest };
        }
        let (buf, n, m) = hash_input(p, persistence, vip);
        self.by_tables(&buf, n, m)
    }

    /// The table form (CPUs without carry-less multiply).
    fn by_tables(&self, buf: &[u8; MAX_INPUT_LEN], n: usize, m: usize) -> FlowHash {
        let (mut rss, mut digest) = (0u32, 0u64);
        for (row, &byte) in self.rows.iter().zip(&buf[..n]) {
            let (a, b) = (&row[0][(byte >> 4) as usize], &row[1][(byte & 15) as usize]);
            rss ^= a.rss ^ b.rss;
            digest ^= a.digest ^ b.digest;
        }
        // Protocol and VIP index: digest only.
        for (row, &byte) in self.rows[n..].iter().zip(&buf[n..m]) {
            digest ^= row[0][(byte >> 4) as usize].digest ^ row[1][(byte & 15) as usize].digest;
        }
        FlowHash { hash: rss, digest }
    }
}

/// One vector of the RSS specification's verification suite: the tuple bytes as hashed
/// (src addr, dst addr, src port, dst port) and the published hash under the default key.
pub struct RssVector {
    pub tuple: Vec<u8>,
    pub hash: u32,
}

/// The published RSS verification vectors (IPv4 and IPv6 with ports) for the default key
/// (`HashKeys::default().rss`): the independent check of bit order and key windowing that
/// every engine's Toeplitz is tested with.
pub fn rss_verification_vectors() -> Vec<RssVector> {
    use std::net::{Ipv4Addr, Ipv6Addr};
    let tuple = |src: &[u8], dst: &[u8], sport: u16, dport: u16| {
        [src, dst, &sport.to_be_bytes(), &dport.to_be_bytes()].concat()
    };
    let v4 = |src: Ipv4Addr, sport, dst: Ipv4Addr, dport, hash| RssVector {
        tuple: tuple(&src.octets(), &dst.octets(), sport, dport),
        hash,
    };
    let v6 = |src: Ipv6Addr, sport, dst: Ipv6Addr, dport, hash| RssVector {
        tuple: tuple(&src.octets(), &dst.octets(), sport, dport),
        hash,
    };
    vec![
        v4(
            Ipv4Addr::new(66, 9, 149, 187),
            2794,
            Ipv4Addr::new(161, 142, 100, 80),
            1766,
            0x51cc_c178,
        ),
        v4(
            Ipv4Addr::new(199, 92, 111, 2),
            14230,
            Ipv4Addr::new(65, 69, 140, 83),
            4739,
            0xc626_b0ea,
        ),
        v4(
            Ipv4Addr::new(24, 19, 198, 95),
            12898,
            Ipv4Addr::new(12, 22, 207, 184),
            38024,
            0x5c2b_394a,
        ),
        v6(
            Ipv6Addr::new(0x3ffe, 0x2501, 0x200, 0x1fff, 0, 0, 0, 7),
            2794,
            Ipv6Addr::new(0x3ffe, 0x2501, 0x200, 3, 0, 0, 0, 1),
            1766,
            0x4020_7d3d,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_hashers_equal_the_reference() {
        use crate::parse::{ParsedFrame, IPPROTO_TCP, IPPROTO_UDP};
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x1234_5678_9abc_def0u64);
        let mut next = || rng.gen::<u64>();
        let (mut checked_clmul, mut checked_vpclmul) = (false, false);
        for round in 0..2000 {
            let keys = if round % 100 == 0 {
                HashKeys {
                    rss: derive_key(next()),
                    digest_hi: derive_key(next()),
                    digest_lo: derive_key(next()),
                }
            } else {
                HashKeys::default()
            };
            let hasher = FlowHasher::new(&keys);
            let r = next();
            let (src, dst): (IpAddr, IpAddr) = if r & 1 == 0 {
                (
                    std::net::Ipv4Addr::from(r as u32).into(),
                    std::net::Ipv4Addr::from((r >> 32) as u32).into(),
                )
            } else {
                (
                    std::net::Ipv6Addr::from(r as u128 * 0x9e37_79b9).into(),
                    std::net::Ipv6Addr::from(next() as u128).into(),
                )
            };
            let p = ParsedFrame {
                vlan_count: 0,
                l3_offset: 14,
                src,
                dst,
                ip_len: 40,
                protocol: if r & 2 == 0 { IPPROTO_TCP } else { IPPROTO_UDP },
                l4_offset: 34,
                fragment: r & 4 != 0,
                src_port: (r >> 8) as u16,
                dst_port: (r >> 24) as u16,
                tcp_flags: 0,
                dscp_ecn: 0,
            };
            for persistence in [Persistence::FiveTuple, Persistence::SrcIp] {
                let vip = (r >> 40) as u16;
                let want = flow_hash(&keys, &p, persistence, vip);
                assert_eq!(hasher.flow_hash(&p, persistence, vip), want);
                let (buf, n, m) = hash_input(&p, persistence, vip);
                assert_eq!(hasher.by_tables(&buf, n, m), want, "table form");
                // hash_words: the same input as words, zero-padded.
                let (words, wn, wm) = hash_words(&p, persistence, vip);
                let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
                assert_eq!((wn * 4, wm), (n, m.div_ceil(4)));
                assert_eq!(&bytes[..m], &buf[..m]);
                assert!(bytes[m..].iter().all(|&b| b == 0));
                let want = (want.hash, want.digest);
                #[cfg(target_arch = "x86_64")]
                if let Some(w) = &hasher.windows {
                    // SAFETY: built only when the CPU has PCLMULQDQ.
                    assert_eq!(unsafe { clmul::flow_hash(w, &words, wn) }, want, "clmul");
                    checked_clmul = true;
                }
                #[cfg(target_arch = "x86_64")]
                if let Some(rows) = &hasher.lanes {
                    // SAFETY: built only when the CPU has AVX-512F, VPCLMULQDQ and GFNI.
                    assert_eq!(
                        unsafe { vclmul::flow_hash(rows, &words, wn) },
                        want,
                        "vpclmul"
                    );
                    checked_vpclmul = true;
                }
            }
        }
        if !checked_clmul {
            eprintln!("SKIPPED: this CPU has no PCLMULQDQ, only the table form was checked");
        }
        if !checked_vpclmul {
            eprintln!(
                "SKIPPED: this CPU has no AVX-512F + VPCLMULQDQ + GFNI, that form was not checked"
            );
        }
    }

    #[test]
    fn toeplitz_matches_rss_verification_suite() {
        let key = HashKeys::default().rss;
        for v in rss_verification_vectors() {
            assert_eq!(toeplitz(&key, &v.tuple), v.hash, "tuple {:02x?}", v.tuple);
        }
    }
}
