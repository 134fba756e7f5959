//! Fuzz-style test: thousands of random and mutated frames (truncated, bad
//! lengths, IP options, fragments, random bytes) through both programs. No
//! crash; a frame is only ever sent on (TX/redirect) when it is a well formed
//! IPv4 TCP/UDP/SCTP packet to the VIP, and then with valid headers (an SCTP
//! packet's CRC32c right after NAT if it was before); every other verdict is
//! PASS or DROP; every packet is counted exactly once.
//!
//! Needs root and a BPF-capable kernel; fails (does not skip) without them.

mod common;

use common::*;
use xvs_core::persist::Sysctls;
use xvs_core::rng::{Rng, SplitMix64};
use xvs_datapath::{verdict::*, NextHop, Prog, L2};

const VIP: [u8; 4] = [198, 18, 2, 1];
const RS: [u8; 4] = [198, 18, 1, 2];

/// What the parser must accept before anything may be forwarded: a whole
/// datagram or a first fragment with its TCP/UDP header, or a later
/// fragment (no L4 header; it goes where its first went, if that was seen).
fn well_formed_to_vip(f: &[u8]) -> bool {
    if f.len() < 14 + 20 || f[12..14] != [0x08, 0x00] {
        return false;
    }
    let ip = &f[14..];
    let ihl = usize::from(ip[0] & 0xf) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let later = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff != 0;
    let l4min = match ip[9] {
        6 => 20,
        17 => 8,
        // SCTP: common header and a chunk header inside the IP length, and
        // no fragment (SCTP's are handed on)
        132 if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 => return false,
        132 if total < ihl + 16 => return false,
        132 => 16,
        _ => return false,
    };
    ip[0] >> 4 == 4
        && ihl >= 20
        && total >= ihl
        && total <= ip.len()
        && (later || ip.len() >= ihl + l4min)
        && ip[16..20] == VIP
}

/// An IPv4 SCTP frame of `l4`.
fn sctp4(src: [u8; 4], dst: [u8; 4], l4: &[u8]) -> Vec<u8> {
    let m = [2, 0, 0, 0, 0, 1];
    eth(m, m, 0x0800, &ipv4(src, dst, 132, l4))
}

/// An IPv4 SCTP frame whose CRC32c is right.
fn sctp_crc_right(f: &[u8]) -> bool {
    if f.len() < 14 + 20 || f[12..14] != [0x08, 0x00] || f[14 + 9] != 132 {
        return false;
    }
    let ip = &f[14..];
    let ihl = usize::from(ip[0] & 0xf) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    ihl >= 20 && total >= ihl + 12 && total <= ip.len() && sctp_crc_ok(&ip[ihl..total])
}

fn mutate(rng: &mut SplitMix64, base: &[u8]) -> Vec<u8> {
    let mut f = base.to_vec();
    match rng.below(8) {
        0 => f.truncate(14 + rng.below(f.len() as u32 - 13) as usize),
        1 => {
            // a few random bytes in the headers
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(f.len().min(14 + 60) as u32) as usize;
                f[i] = rng.next_u32() as u8;
            }
        }
        2 => f[14] = 0x40 | (rng.below(16) as u8), // IHL
        3 => {
            let v = rng.below(200) as u16;
            f[16..18].copy_from_slice(&v.to_be_bytes()); // tot_len
        }
        4 => {
            let v = rng.next_u32() as u16; // flags / fragment offset
            f[20..22].copy_from_slice(&v.to_be_bytes());
        }
        5 => {
            // IP options, with or without a fixed-up header length
            let n = 4 * (1 + rng.below(10) as usize);
            let opts: Vec<u8> = (0..n).map(|_| rng.next_u32() as u8).collect();
            f.splice(34..34, opts);
            if rng.below(2) == 0 {
                f[14] = 0x40 | ((20 + n) / 4) as u8;
                let t = (f.len() - 14) as u16;
                f[16..18].copy_from_slice(&t.to_be_bytes());
            }
        }
        6 => {
            let n = 14 + rng.below(120) as usize;
            f = (0..n).map(|_| rng.next_u32() as u8).collect();
            if rng.below(2) == 0 {
                f[12..14].copy_from_slice(&[0x08, 0x00]);
            }
        }
        _ => {
            // TCP data offset / flags
            if f.len() > 14 + 20 + 13 {
                f[14 + 20 + 12] = rng.next_u32() as u8;
                f[14 + 20 + 13] = rng.next_u32() as u8;
            }
        }
    }
    f
}

/// In a network namespace of its own: NAT replies' FIB lookups answer
/// FWD_DISABLED there whatever the host's routes (rewritten, passed).
#[test]
fn random_and_mutated_frames() {
    in_private_netns(random_and_mutated_frames_here)
}

fn random_and_mutated_frames_here() {
    let mut dp = load();
    let t = table(&[
        "-A -t 198.18.2.1:80 -s wlc",
        "-a -t 198.18.2.1:80 -r 198.18.1.2:8080 -m",
        "-a -t 198.18.2.1:80 -r 198.18.1.3 -g",
        "-A -u 198.18.2.1:53 -s rr",
        "-a -u 198.18.2.1:53 -r 198.18.1.2 -m",
        "-A --sctp-service 198.18.2.1:5000 -s rr",
        "-a --sctp-service 198.18.2.1:5000 -r 198.18.1.2:6000 -m",
    ]);
    let l2 = L2 {
        default: NextHop {
            mac: [2, 0, 0, 0, 0, 3],
            src_mac: [2, 0, 0, 0, 0, 4],
            ifindex: 0,
        },
        ..L2::default()
    };
    dp.sync(&t, &Sysctls::default(), &l2).unwrap();
    let m = [2, 0, 0, 0, 0, 1];
    let bases = [
        eth(
            m,
            m,
            0x0800,
            &ipv4([198, 19, 0, 1], VIP, 6, &tcp(1000, 80, 0x02)),
        ),
        eth(
            m,
            m,
            0x0800,
            &ipv4([198, 19, 0, 1], VIP, 6, &tcp(1000, 80, 0x10)),
        ),
        eth(
            m,
            m,
            0x0800,
            &ipv4([198, 19, 0, 1], VIP, 17, &udp(1000, 53, b"hello")),
        ),
        eth(
            m,
            m,
            0x0800,
            &ipv4(RS, [198, 19, 0, 1], 6, &tcp(8080, 1000, 0x12)),
        ),
        eth(
            m,
            m,
            0x0800,
            &ipv4(RS, [198, 19, 0, 1], 17, &udp(53, 1000, b"x")),
        ),
        // SCTP: an INIT, a COOKIE ECHO with an ABORT after it, a reply
        sctp4(
            [198, 19, 0, 1],
            VIP,
            &sctp(1000, 5000, 0, &[(1, 0, &[7; 16])]),
        ),
        sctp4(
            [198, 19, 0, 1],
            VIP,
            &sctp(1000, 5000, 9, &[(10, 0, b"cookie!"), (6, 0, b"")]),
        ),
        sctp4(
            RS,
            [198, 19, 0, 1],
            &sctp(6000, 1000, 9, &[(2, 0, &[7; 20])]),
        ),
    ];
    let mut rng = SplitMix64::new(42);
    let mut runs = 0u64;
    let mut sctp_rewritten = 0u64;
    for n in 0..6000 {
        let base = &bases[rng.below(bases.len() as u32) as usize];
        let f = mutate(&mut rng, base);
        let prog = if n % 2 == 0 { Prog::Xdp } else { Prog::Tc };
        let Ok(got) = dp.test_run(prog, &f) else {
            // The kernel refuses some short skbs (EINVAL) before the program runs.
            assert_eq!(prog, Prog::Tc, "XDP test run failed on {f:02x?}");
            continue;
        };
        runs += 1;
        let sent = match prog {
            Prog::Xdp => matches!(got.verdict, XDP_TX | XDP_REDIRECT),
            Prog::Tc => got.verdict == TC_ACT_REDIRECT,
        };
        if sent {
            assert!(
                well_formed_to_vip(&f),
                "{prog:?} sent on a malformed frame {f:02x?}"
            );
            // Only MACs and (NAT) addresses/ports may change: same length, same
            // IP header apart from the destination and checksum.
            assert_eq!(got.packet.len(), f.len());
            assert_eq!(got.packet[14..24], f[14..24], "{prog:?}: {f:02x?}");
        }
        if got.packet != f && sctp_crc_right(&f) {
            sctp_rewritten += 1;
            assert!(
                sctp_crc_right(&got.packet),
                "{prog:?} broke the CRC32c of {f:02x?}"
            );
        }
        if !sent {
            let ok = match prog {
                Prog::Xdp => [XDP_PASS, XDP_DROP].contains(&got.verdict),
                Prog::Tc => [TC_ACT_OK, TC_ACT_SHOT].contains(&got.verdict),
            };
            assert!(ok, "{prog:?} verdict {} on {f:02x?}", got.verdict);
            if got.packet != f {
                // Only a NAT reply may be rewritten, and only if well formed.
                let src = &f[14 + 12..14 + 16];
                assert!(src == RS, "{prog:?} changed a frame it passed: {f:02x?}");
                assert_eq!(got.packet[14 + 12..14 + 16], VIP);
            }
        }
    }
    let c = dp.counters().unwrap();
    assert_eq!(c.total(), runs, "every packet counted once: {c:?}");
    assert!(
        c.malformed > 100 && c.fragment > 10 && c.forwarded > 10,
        "{c:?}"
    );
    assert!(sctp_rewritten > 50, "SCTP NATed: {sctp_rewritten}");
    // Whatever state the fuzzing left, a flush brings every count to zero.
    dp.flush_conns().unwrap();
    for id in 1..=4 {
        let rc = dp
            .real_counts(xvs_core::model::DestId(id))
            .unwrap()
            .unwrap();
        assert_eq!((rc.active, rc.inactive), (0, 0), "real {id}");
    }
    assert_eq!(dp.reply_index_count(), 0);
}

// IPv6 ------------------------------------------------------------------------

const VIP6: [u8; 16] = [0x20, 0x01, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const RS6: [u8; 16] = [0x20, 0x01, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2];
const CLIENT6: [u8; 16] = [0x20, 0x01, 0, 2, 0, 0, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 2];

/// What the parser must accept before an IPv6 frame may be forwarded: the
/// datapath's rules, written again independently (hop-by-hop only first,
/// routing and destination options walked, at most 6 extension headers
/// starting within 512 bytes after the fixed header, no Fragment header,
/// the payload length covering the headers and within the frame, a whole
/// TCP/UDP header, TCP data offset >= 5, UDP checksum not 0), to the VIP.
fn well_formed6_to_vip(f: &[u8]) -> bool {
    if f.len() < 14 + 40 || f[12..14] != [0x86, 0xdd] {
        return false;
    }
    let ip = &f[14..];
    if ip[0] >> 4 != 6 {
        return false;
    }
    let total = 40 + usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    let mut next = ip[6];
    let mut off = 40usize;
    let mut fragment = false;
    for i in 0..6 {
        if next == 6 || next == 17 {
            break;
        }
        if next == 44 {
            // one Fragment header: a later fragment has no L4 header
            if fragment || off > 40 + 512 || ip.len() < off + 8 {
                return false;
            }
            fragment = true;
            let later = u16::from_be_bytes([ip[off + 2], ip[off + 3]]) & 0xfff8 != 0;
            next = ip[off];
            off += 8;
            if later {
                return matches!(next, 6 | 17)
                    && total >= off
                    && total <= ip.len()
                    && ip[24..40] == VIP6;
            }
            continue;
        }
        if !matches!(next, 0 | 43 | 60) || (next == 0 && i > 0) || off > 40 + 512 {
            return false;
        }
        if ip.len() < off + 2 {
            return false;
        }
        next = ip[off];
        off += 8 * (usize::from(ip[off + 1]) + 1);
    }
    let l4min = match next {
        6 => 20,
        17 => 8,
        _ => return false,
    };
    if off > 40 + 512 || ip.len() < off + l4min || total < off + l4min || total > ip.len() {
        return false;
    }
    if next == 6 && ip[off + 12] >> 4 < 5 {
        return false;
    }
    if next == 17 && ip[off + 6..off + 8] == [0, 0] {
        return false;
    }
    ip[24..40] == VIP6
}

/// An extension header chain of `kinds` (each: next-header value of the
/// header itself, and its length in 8-byte units after the first 8), ending
/// in `last`; returns (first next header, bytes).
fn chain(kinds: &[(u8, u8)], last: u8, rng: &mut SplitMix64) -> (u8, Vec<u8>) {
    let mut bytes = Vec::new();
    for (n, &(_, len8)) in kinds.iter().enumerate() {
        let next = kinds.get(n + 1).map_or(last, |k| k.0);
        let mut h = vec![next, len8];
        h.extend((0..8 * (usize::from(len8) + 1) - 2).map(|_| rng.below(4) as u8));
        bytes.extend(h);
    }
    (kinds.first().map_or(last, |k| k.0), bytes)
}

fn mutate6(rng: &mut SplitMix64, base: &[u8]) -> Vec<u8> {
    let mut f = base.to_vec();
    let ext_kind = |rng: &mut SplitMix64| -> (u8, u8) {
        let k = [0u8, 43, 60, 60, 44, 51, 135][rng.below(7) as usize];
        let len8 = if k == 44 { 0 } else { rng.below(4) as u8 };
        (k, len8)
    };
    match rng.below(10) {
        0 => f.truncate(14 + rng.below(f.len() as u32 - 13) as usize),
        1 => {
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(f.len().min(14 + 40 + 40) as u32) as usize;
                f[i] = rng.next_u32() as u8;
            }
        }
        2 => {
            let v = rng.below(200) as u16; // payload length
            f[18..20].copy_from_slice(&v.to_be_bytes());
        }
        3 => f[20] = [0u8, 43, 44, 60, 6, 17, 58, 50, 51, 59][rng.below(10) as usize],
        4 | 5 => {
            // an extension header chain (maybe with a Fragment header,
            // maybe too long, maybe hop-by-hop late), lengths fixed up or not
            let n = 1 + rng.below(8) as usize;
            let kinds: Vec<(u8, u8)> = (0..n).map(|_| ext_kind(rng)).collect();
            let last = f[20];
            let (first, bytes) = chain(&kinds, last, rng);
            let added = bytes.len();
            f.splice(54..54, bytes);
            f[20] = first;
            if rng.below(3) != 0 {
                let plen = u16::from_be_bytes([f[18], f[19]]) as usize + added;
                f[18..20].copy_from_slice(&(plen as u16).to_be_bytes());
            }
        }
        6 => {
            let n = 14 + rng.below(140) as usize;
            f = (0..n).map(|_| rng.next_u32() as u8).collect();
            f[12..14].copy_from_slice(&[0x86, 0xdd]);
            if rng.below(2) == 0 && n > 14 {
                f[14] = 0x60 | (f[14] & 0x0f);
            }
        }
        7 => f[14] = (rng.below(16) as u8) << 4 | (f[14] & 0x0f),
        8 => {
            // L4: TCP data offset / flags, or the UDP checksum
            if f[20] == 6 && f.len() > 54 + 13 {
                f[54 + 12] = rng.next_u32() as u8;
                f[54 + 13] = rng.next_u32() as u8;
            } else if f[20] == 17 && f.len() >= 54 + 8 {
                f[54 + 6] = 0;
                f[54 + 7] = 0;
            }
        }
        _ => {
            // a valid Fragment header, first fragment or not
            let last = f[20];
            let mut h = vec![last, 0, 0, 0, 0, 0, 0, rng.below(255) as u8];
            let off_m = ((rng.below(4) as u16) << 3) | rng.below(2) as u16;
            h[2..4].copy_from_slice(&off_m.to_be_bytes());
            f.splice(54..54, h);
            f[20] = 44;
            let plen = u16::from_be_bytes([f[18], f[19]]) + 8;
            f[18..20].copy_from_slice(&plen.to_be_bytes());
        }
    }
    f
}

/// The IPv6 counterpart, in the same kind of namespace: random and mutated
/// IPv6 frames (truncated headers, extension header chains of every kind,
/// bogus payload lengths, fragments, bad versions, UDP checksum 0) to an
/// IPv6 NAT/DR service and a UDP NAT one, plus replies. No crash; only
/// frames `well_formed6_to_vip` accepts are ever sent on, then with the
/// same length, the same header up to the source address, and checksums
/// still right; everything else PASS or DROP, untouched unless a NAT reply;
/// every packet counted once.
#[test]
fn random_and_mutated_ipv6_frames() {
    in_private_netns(random_and_mutated_ipv6_frames_here)
}

fn random_and_mutated_ipv6_frames_here() {
    let mut dp = load();
    let t = table(&[
        "-A -t [2001:2::1]:80 -s wlc",
        "-a -t [2001:2::1]:80 -r [2001:2:0:1::2]:8080 -m",
        "-a -t [2001:2::1]:80 -r [2001:2:0:1::3]:80 -g",
        "-A -u [2001:2::1]:53 -s rr",
        "-a -u [2001:2::1]:53 -r [2001:2:0:1::2]:53 -m",
    ]);
    let l2 = L2 {
        default: NextHop {
            mac: [2, 0, 0, 0, 0, 3],
            src_mac: [2, 0, 0, 0, 0, 4],
            ifindex: 0,
        },
        ..L2::default()
    };
    dp.sync(&t, &Sysctls::default(), &l2).unwrap();
    let m = [2, 0, 0, 0, 0, 1];
    let mut rng = SplitMix64::new(4242);
    let bases = [
        eth(
            m,
            m,
            0x86dd,
            &ipv6_l4(CLIENT6, VIP6, 6, &tcp(1000, 80, 0x02)),
        ),
        eth(
            m,
            m,
            0x86dd,
            &ipv6_l4(CLIENT6, VIP6, 6, &tcp(1000, 80, 0x10)),
        ),
        eth(
            m,
            m,
            0x86dd,
            &ipv6_l4(CLIENT6, VIP6, 17, &udp(1000, 53, b"hello")),
        ),
        eth(
            m,
            m,
            0x86dd,
            &ipv6_l4(RS6, CLIENT6, 6, &tcp(8080, 1000, 0x12)),
        ),
        eth(
            m,
            m,
            0x86dd,
            &ipv6_l4(RS6, CLIENT6, 17, &udp(53, 1000, b"x")),
        ),
    ];
    let mut runs = 0u64;
    let mut sent_n = 0u64;
    for n in 0..6000 {
        let base = &bases[rng.below(bases.len() as u32) as usize];
        // new clients now and then, so new connections keep coming
        let mut base = base.clone();
        if base[14 + 8..14 + 24] == CLIENT6 {
            base[14 + 23] = rng.below(200) as u8;
            let ip = ipv6_l4(base[22..38].try_into().unwrap(), VIP6, base[20], &{
                let mut l4 = base[54..].to_vec();
                let at = if base[20] == 6 { 16 } else { 6 };
                l4[at] = 0;
                l4[at + 1] = 0;
                l4
            });
            base.truncate(14);
            base.extend(ip);
        }
        let f = mutate6(&mut rng, &base);
        let prog = if n % 2 == 0 { Prog::Xdp } else { Prog::Tc };
        let Ok(got) = dp.test_run(prog, &f) else {
            assert_eq!(prog, Prog::Tc, "XDP test run failed on {f:02x?}");
            continue;
        };
        runs += 1;
        let sent = match prog {
            Prog::Xdp => matches!(got.verdict, XDP_TX | XDP_REDIRECT),
            Prog::Tc => got.verdict == TC_ACT_REDIRECT,
        };
        if sent {
            sent_n += 1;
            assert!(
                well_formed6_to_vip(&f),
                "{prog:?} sent on a malformed frame {f:02x?}"
            );
            assert_eq!(got.packet.len(), f.len());
            // version .. source address unchanged (only the destination,
            // ports and checksum may be)
            assert_eq!(got.packet[14..38], f[14..38], "{prog:?}: {f:02x?}");
            if checksums_ok6(&f) {
                assert!(checksums_ok6(&got.packet), "{prog:?}: {f:02x?}");
            }
        } else {
            let ok = match prog {
                Prog::Xdp => [XDP_PASS, XDP_DROP].contains(&got.verdict),
                Prog::Tc => [TC_ACT_OK, TC_ACT_SHOT].contains(&got.verdict),
            };
            assert!(ok, "{prog:?} verdict {} on {f:02x?}", got.verdict);
            if got.packet != f {
                let src = &f[14 + 8..14 + 24];
                assert!(src == RS6, "{prog:?} changed a frame it passed: {f:02x?}");
                assert_eq!(got.packet[14 + 8..14 + 24], VIP6);
            }
        }
    }
    let c = dp.counters().unwrap();
    assert_eq!(c.total(), runs, "every packet counted once: {c:?}");
    assert!(
        c.malformed > 100 && c.fragment > 100 && c.forwarded > 100 && c.passed > 100,
        "{c:?}"
    );
    assert!(sent_n >= c.forwarded, "{sent_n} {c:?}");
    dp.flush_conns().unwrap();
    for id in 1..=3 {
        let rc = dp
            .real_counts(xvs_core::model::DestId(id))
            .unwrap()
            .unwrap();
        assert_eq!((rc.active, rc.inactive), (0, 0), "real {id}");
    }
    assert_eq!(dp.reply_index_count(), 0);
}
