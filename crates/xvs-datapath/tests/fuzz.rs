//! Fuzz-style test: thousands of random and mutated frames (truncated, bad
//! lengths, IP options, fragments, random bytes) through both programs. No
//! crash; a frame is only ever sent on (TX/redirect) when it is a well formed
//! IPv4 TCP/UDP packet to the VIP, and then with valid headers; every other
//! verdict is PASS or DROP; every packet is counted exactly once.
//!
//! Needs root and a BPF-capable kernel; fails (does not skip) without them.

mod common;

use common::*;
use xvs_core::persist::Sysctls;
use xvs_core::rng::{Rng, SplitMix64};
use xvs_datapath::{verdict::*, NextHop, Prog, L2};

const VIP: [u8; 4] = [198, 18, 2, 1];
const RS: [u8; 4] = [198, 18, 1, 2];

/// What the parser must accept before anything may be forwarded.
fn well_formed_to_vip(f: &[u8]) -> bool {
    if f.len() < 14 + 20 || f[12..14] != [0x08, 0x00] {
        return false;
    }
    let ip = &f[14..];
    let ihl = usize::from(ip[0] & 0xf) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let frag = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff;
    let l4min = match ip[9] {
        6 => 20,
        17 => 8,
        _ => return false,
    };
    ip[0] >> 4 == 4
        && ihl >= 20
        && total >= ihl
        && total <= ip.len()
        && frag == 0
        && ip.len() >= ihl + l4min
        && ip[16..20] == VIP
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
    ];
    let mut rng = SplitMix64::new(42);
    let mut runs = 0u64;
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
        } else {
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
    // Whatever state the fuzzing left, a flush brings every count to zero.
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
