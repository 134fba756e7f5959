//! Hash helpers shared by the hashing schedulers (sh, dh, mh, lblc, lblcr),
//! reproducing the kernel's arithmetic bit for bit so the eBPF datapath can
//! compute the same buckets.
//!
//! * [`hash_32`]: include/linux/hash.h's multiplicative hash (x86_64 has no
//!   arch override, so it is the generic `val * GOLDEN_RATIO_32 >> (32 - bits)`).
//! * [`fold_addr`]: how IPVS reduces an address to 32 bits before hashing
//!   (IPv6: XOR of the four 32-bit words, then taken in host order).
//! * [`hsiphash`]: lib/siphash.c's `hsiphash()` as built on a 64-bit kernel,
//!   where "HalfSipHash" is really SipHash-1-3 over 64-bit words with a key of
//!   two `unsigned long`s, truncated to 32 bits.

use std::net::IpAddr;

use crate::model::Family;

/// The multiplier of `hash_32()` (the negative golden ratio, 0x61C88647).
pub const GOLDEN_RATIO_32: u32 = 0x61C8_8647;

/// The kernel's `hash_32(val, bits)`: multiply by [`GOLDEN_RATIO_32`] modulo
/// 2^32 and keep the top `bits` bits. `bits` must be in 1..=32.
pub fn hash_32(val: u32, bits: u32) -> u32 {
    debug_assert!((1..=32).contains(&bits));
    val.wrapping_mul(GOLDEN_RATIO_32) >> (32 - bits)
}

/// An address folded to a host-order `u32` the way the IPVS hashing
/// schedulers do it for a service of family `af`.
///
/// The kernel reads the `union nf_inet_addr`: for an AF_INET service only the
/// first 32-bit word (`addr->ip`), for AF_INET6 the XOR of all four words;
/// the result is then passed through `ntohl()`. An IPv4 address stored in the
/// union has its other words zero, so folding it as IPv6 gives the same value.
pub fn fold_addr(af: Family, addr: &IpAddr) -> u32 {
    match addr {
        IpAddr::V4(a) => u32::from(*a),
        IpAddr::V6(a) => {
            let o = a.octets();
            let word = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            match af {
                Family::Inet => word(0),
                Family::Inet6 => word(0) ^ word(4) ^ word(8) ^ word(12),
            }
        }
    }
}

/// A `hsiphash_key_t` on a 64-bit kernel: two `unsigned long` words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HsipKey(pub [u64; 2]);

const SIP_C0: u64 = 0x736f_6d65_7073_6575;
const SIP_C1: u64 = 0x646f_7261_6e64_6f6d;
const SIP_C2: u64 = 0x6c79_6765_6e65_7261;
const SIP_C3: u64 = 0x7465_6462_7974_6573;

#[derive(Clone, Copy)]
struct SipState([u64; 4]);

impl SipState {
    fn new(key: &[u64; 2]) -> SipState {
        SipState([
            SIP_C0 ^ key[0],
            SIP_C1 ^ key[1],
            SIP_C2 ^ key[0],
            SIP_C3 ^ key[1],
        ])
    }

    /// One SipRound (the ARX permutation on four 64-bit lanes).
    fn round(&mut self) {
        let [mut a, mut b, mut c, mut d] = self.0;
        a = a.wrapping_add(b);
        b = b.rotate_left(13) ^ a;
        a = a.rotate_left(32);
        c = c.wrapping_add(d);
        d = d.rotate_left(16) ^ c;
        a = a.wrapping_add(d);
        d = d.rotate_left(21) ^ a;
        c = c.wrapping_add(b);
        b = b.rotate_left(17) ^ c;
        c = c.rotate_left(32);
        self.0 = [a, b, c, d];
    }

    fn absorb(&mut self, m: u64, c_rounds: usize) {
        self.0[3] ^= m;
        for _ in 0..c_rounds {
            self.round();
        }
        self.0[0] ^= m;
    }
}

/// SipHash-c-d over `data` with a 128-bit key given as two little-endian
/// 64-bit words, returning the 64-bit result.
fn siphash_cd(data: &[u8], key: &[u64; 2], c_rounds: usize, d_rounds: usize) -> u64 {
    let mut s = SipState::new(key);
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        s.absorb(u64::from_le_bytes(w), c_rounds);
    }
    // Final word: the remaining bytes little-endian, the length in the top byte.
    let mut last = (data.len() as u64) << 56;
    for (i, &byte) in chunks.remainder().iter().enumerate() {
        last |= (byte as u64) << (8 * i);
    }
    s.absorb(last, c_rounds);
    s.0[2] ^= 0xff;
    for _ in 0..d_rounds {
        s.round();
    }
    let [a, b, c, d] = s.0;
    a ^ b ^ c ^ d
}

/// The kernel's `siphash()` (SipHash-2-4), keyed by two 64-bit words.
pub fn siphash(data: &[u8], key: &[u64; 2]) -> u64 {
    siphash_cd(data, key, 2, 4)
}

/// The kernel's `hsiphash()` on a 64-bit build (`BITS_PER_LONG == 64`):
/// SipHash-1-3 with 64-bit lanes, truncated to the low 32 bits. The aligned,
/// unaligned and word-at-a-time tail paths all compute this same function.
pub fn hsiphash(data: &[u8], key: &HsipKey) -> u32 {
    siphash_cd(data, &key.0, 1, 3) as u32
}

/// `hsiphash(&v, sizeof(v), key)` for a host `u32` on a little-endian machine
/// (x86_64): the four bytes of `v` in little-endian order, which is also what
/// `hsiphash_1u32(v, key)` computes.
pub fn hsiphash_u32(v: u32, key: &HsipKey) -> u32 {
    hsiphash(&v.to_le_bytes(), key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// The kernel's KUnit key for both siphash and (64-bit) hsiphash:
    /// bytes 00..0f read as two little-endian words.
    const TEST_KEY: [u64; 2] = [0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908];

    /// lib/siphash_kunit.c `test_vectors_hsiphash` for BITS_PER_LONG == 64:
    /// vector i is the hash of the bytes 0, 1, .., i-1.
    const HSIPHASH_VECTORS_64BIT: [u32; 64] = [
        0x050fc4dc, 0x7d57ca93, 0x4dc7d44d, 0xe7ddf7fb, 0x88d38328, 0x49533b67, 0xc59f22a7,
        0x9bb11140, 0x8d299a8e, 0x6c063de4, 0x92ff097f, 0xf94dc352, 0x57b4d9a2, 0x1229ffa7,
        0xc0f95d34, 0x2a519956, 0x7d908b66, 0x63dbd80c, 0xb473e63e, 0x8d297d1c, 0xa6cce040,
        0x2b45f844, 0xa320872e, 0xdae6c123, 0x67349c8c, 0x705b0979, 0xca9913a5, 0x4ade3b35,
        0xef6cd00d, 0x4ab1e1f4, 0x43c5e663, 0x8c21d1bc, 0x16a7b60d, 0x7a8ff9bf, 0x1f2a753e,
        0xbf186b91, 0xada26206, 0xa3c33057, 0xae3a36a1, 0x7b108392, 0x99e41531, 0x3f1ad944,
        0xc8138825, 0xc28949a6, 0xfaf8876b, 0x9f042196, 0x68b1d623, 0x8b5114fd, 0xdf074c46,
        0x12cc86b3, 0x0a52098f, 0x9d292f9a, 0xa2f41f12, 0x43a71ed0, 0x73f0bce6, 0x70a7e980,
        0x243c6d75, 0xfdb71513, 0xa67d8a08, 0xb7e8f148, 0xf7a644ee, 0x0f1837f2, 0x4b6694e0,
        0xb7bbb3a8,
    ];

    #[test]
    fn hsiphash_matches_kernel_kunit_vectors() {
        let input: Vec<u8> = (0u8..64).collect();
        let key = HsipKey(TEST_KEY);
        for (len, &want) in HSIPHASH_VECTORS_64BIT.iter().enumerate() {
            assert_eq!(hsiphash(&input[..len], &key), want, "length {len}");
        }
        // The kernel's hsiphash_1u32(0x03020100) check against vector 4.
        assert_eq!(hsiphash_u32(0x0302_0100, &key), HSIPHASH_VECTORS_64BIT[4]);
    }

    #[test]
    fn siphash24_matches_reference_vectors() {
        // First, 8-byte, 16-byte and last entries of the SipHash-2-4 reference
        // vectors (veorq/SipHash, also in the kernel's KUnit test).
        let input: Vec<u8> = (0u8..64).collect();
        let cases: [(usize, u64); 5] = [
            (0, 0x726fdb47dd0e0e31),
            (1, 0x74f839c593dc67fd),
            (8, 0x93f5f5799a932462),
            (15, 0xa129ca6149be45e5),
            (63, 0x958a324ceb064572),
        ];
        for (len, want) in cases {
            assert_eq!(siphash(&input[..len], &TEST_KEY), want, "length {len}");
        }
    }

    #[test]
    fn hash_32_is_multiply_then_top_bits() {
        // 1 * 0x61C88647 = 0x61C88647; top 8 bits = 0x61.
        assert_eq!(hash_32(1, 8), 0x61);
        // 2 * 0x61C88647 = 0xC3910C8E; top 10 bits = 0xC3910C8E >> 22 = 0x30E.
        assert_eq!(hash_32(2, 10), 0x30E);
        assert_eq!(hash_32(0, 8), 0);
        assert_eq!(
            hash_32(0xdead_beef, 32),
            0xdead_beefu32.wrapping_mul(GOLDEN_RATIO_32)
        );
    }

    #[test]
    fn fold_addr_ipv4_and_ipv6() {
        let v4 = IpAddr::V4(Ipv4Addr::new(198, 19, 0, 7));
        assert_eq!(fold_addr(Family::Inet, &v4), 0xC613_0007);
        assert_eq!(fold_addr(Family::Inet6, &v4), 0xC613_0007);
        let v6 = IpAddr::V6(Ipv6Addr::new(
            0x2001, 0x0db8, 0, 0x0001, 0x1111, 0x2222, 0x0000, 0x00ff,
        ));
        // 0x20010db8 ^ 0x00000001 ^ 0x11112222 ^ 0x000000ff
        assert_eq!(
            fold_addr(Family::Inet6, &v6),
            0x2001_0db8 ^ 0x0000_0001 ^ 0x1111_2222 ^ 0x0000_00ff
        );
        assert_eq!(fold_addr(Family::Inet, &v6), 0x2001_0db8);
    }
}
