//! IPv4 fragments through BPF_PROG_TEST_RUN, for XDP and tc: the first
//! fragment of a TCP/UDP datagram is decided as any packet; the later ones,
//! which carry no ports, go where it went (DR: the same real server's MAC;
//! NAT: the destination rewritten, and a NAT real server's fragmented reply
//! the source). Expected fragments are cut from whole datagrams built from
//! scratch (checksums computed in full over the datagram), so equal bytes
//! mean the first fragment's TCP/UDP checksum was updated right for the
//! datagram and the later ones' payload left alone.
//!
//! Needs root and a BPF-capable kernel; fails (does not skip) without them.

mod common;

use common::*;
use xvs_core::persist::Sysctls;
use xvs_datapath::{verdict::*, Counters, Datapath, NextHop, Prog, L2};

const CLIENT_MAC: Mac = [0x02, 0x78, 0x76, 0x73, 0x00, 0x01];
const DIRECTOR_MAC: Mac = [0x02, 0x78, 0x76, 0x73, 0x00, 0x02];
const RS_MAC: Mac = [0x02, 0x78, 0x76, 0x73, 0x00, 0x03];
const EGRESS_MAC: Mac = [0x02, 0x78, 0x76, 0x73, 0x00, 0x04];
const CLIENT: [u8; 4] = [198, 18, 0, 2];
const VIP: [u8; 4] = [198, 18, 2, 1];
const RS: [u8; 4] = [198, 18, 1, 2];

/// UDP VIP:53 to 198.18.1.2 by DR (`-g`) or NAT to port 5353 (`-m`).
fn datapath(method: &str) -> Datapath {
    let rs = if method == "-m" {
        "198.18.1.2:5353"
    } else {
        "198.18.1.2"
    };
    datapath_of(
        &[
            "-A -u 198.18.2.1:53 -s rr",
            &format!("-a -u 198.18.2.1:53 -r {rs} {method}"),
        ],
        None,
    )
}

/// A datapath with `rules`, every real server's next hop `RS_MAC` from
/// `EGRESS_MAC`, and `tun_saddr` as the tunnel source.
fn datapath_of(rules: &[&str], tun_saddr: Option<[u8; 4]>) -> Datapath {
    let mut dp = load();
    let l2 = L2 {
        default: NextHop {
            mac: RS_MAC,
            src_mac: EGRESS_MAC,
            ifindex: 0,
        },
        tun_saddr: tun_saddr.map(std::net::IpAddr::from),
        ..L2::default()
    };
    dp.sync(&table(rules), &Sysctls::default(), &l2).unwrap();
    dp
}

/// A payload long enough to need two fragments at `SPLIT`.
fn payload() -> Vec<u8> {
    (0..600u32).map(|i| (i * 7 + 3) as u8).collect()
}

/// Bytes of L4 (header and data) in the first fragment: a multiple of 8.
const SPLIT: usize = 256;

/// IP datagram `ip` (from [`ipv4`]: 20-byte header, DF set) cut into two
/// fragments with identification `id`: the first `SPLIT` bytes of its L4
/// part (MF set), then the rest (offset `SPLIT / 8`); DF cleared, header
/// checksums computed afresh.
fn fragments(ip: &[u8], id: u16) -> [Vec<u8>; 2] {
    let l4 = &ip[20..];
    let cut = |part: &[u8], off: usize, more: bool| {
        let mut h = ip[..20].to_vec();
        h[2..4].copy_from_slice(&((20 + part.len()) as u16).to_be_bytes());
        h[4..6].copy_from_slice(&id.to_be_bytes());
        let fo = (off / 8) as u16 | if more { 0x2000 } else { 0 };
        h[6..8].copy_from_slice(&fo.to_be_bytes());
        h[10..12].copy_from_slice(&[0, 0]);
        let c = inet_csum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h.extend_from_slice(part);
        h
    };
    [cut(&l4[..SPLIT], 0, true), cut(&l4[SPLIT..], SPLIT, false)]
}

fn fwd_verdict(prog: Prog) -> u32 {
    match prog {
        Prog::Xdp => XDP_TX,
        Prog::Tc => TC_ACT_REDIRECT,
    }
}

fn pass_verdict(prog: Prog) -> u32 {
    match prog {
        Prog::Xdp => XDP_PASS,
        Prog::Tc => TC_ACT_OK,
    }
}

fn run(dp: &Datapath, prog: Prog, input: &[u8], verdict: u32, output: &[u8], what: &str) {
    let got = dp
        .test_run(prog, input)
        .unwrap_or_else(|e| panic!("{prog:?} {what}: {e:?}"));
    assert_eq!(got.verdict, verdict, "{prog:?} {what}: verdict");
    assert_eq!(got.packet, output, "{prog:?} {what}: frame");
}

#[test]
fn dr_fragments_all_go_to_the_first_ones_real_server() {
    let datagram = ipv4(CLIENT, VIP, 17, &udp(5000, 53, &payload()));
    let [first, later] = fragments(&datagram, 0x4242);
    let frame = |ip: &[u8], dst: Mac, src: Mac| eth(dst, src, 0x0800, ip);
    for prog in [Prog::Xdp, Prog::Tc] {
        let dp = datapath("-g");
        // the later fragment before its first: not known yet, handed on
        let early = frame(&later, DIRECTOR_MAC, CLIENT_MAC);
        run(&dp, prog, &early, pass_verdict(prog), &early, "early");
        for (what, ip) in [("first", &first), ("later", &later)] {
            let input = frame(ip, DIRECTOR_MAC, CLIENT_MAC);
            let out = frame(ip, RS_MAC, EGRESS_MAC);
            run(&dp, prog, &input, fwd_verdict(prog), &out, what);
        }
        // another datagram's later fragment (other id) is not this one's
        let [_, other] = fragments(&datagram, 0x4243);
        let other = frame(&other, DIRECTOR_MAC, CLIENT_MAC);
        run(&dp, prog, &other, pass_verdict(prog), &other, "other id");
        assert_eq!(
            dp.counters().unwrap(),
            Counters {
                forwarded: 2,
                fragment: 2,
                ..Counters::default()
            },
            "{prog:?} counters"
        );
        // one connection, and one packet of the datagram's length, as the
        // kernel counts the datagram it reassembles
        let total = dp.total_stats().unwrap();
        assert_eq!(
            (total.conns, total.inpkts, total.inbytes),
            (1, 1, datagram.len() as u64),
            "{prog:?} stats"
        );
    }
}

#[test]
fn nat_fragments_are_rewritten_as_the_datagram_would_be() {
    let query = ipv4(CLIENT, VIP, 17, &udp(5000, 53, &payload()));
    let query_out = ipv4(CLIENT, RS, 17, &udp(5000, 5353, &payload()));
    let answer: Vec<u8> = payload().iter().rev().copied().collect();
    let reply = ipv4(RS, CLIENT, 17, &udp(5353, 5000, &answer));
    let reply_out = ipv4(VIP, CLIENT, 17, &udp(53, 5000, &answer));
    for prog in [Prog::Xdp, Prog::Tc] {
        in_private_netns(|| {
            let dp = datapath("-m");
            let ins = fragments(&query, 7);
            let outs = fragments(&query_out, 7);
            for (i, what) in ["first", "later"].iter().enumerate() {
                let input = eth(DIRECTOR_MAC, CLIENT_MAC, 0x0800, &ins[i]);
                let out = eth(RS_MAC, EGRESS_MAC, 0x0800, &outs[i]);
                run(&dp, prog, &input, fwd_verdict(prog), &out, what);
            }
            // The reply, fragmented by the real server: SNATed fragment by
            // fragment. (Its next hop is the client's: this namespace's FIB
            // answers FWD_DISABLED, so it goes to the stack, as in
            // nat_fixtures.rs.)
            let ins = fragments(&reply, 9);
            let outs = fragments(&reply_out, 9);
            for (i, what) in ["reply first", "reply later"].iter().enumerate() {
                let input = eth(DIRECTOR_MAC, RS_MAC, 0x0800, &ins[i]);
                let out = eth(DIRECTOR_MAC, RS_MAC, 0x0800, &outs[i]);
                run(&dp, prog, &input, pass_verdict(prog), &out, what);
            }
            assert_eq!(
                dp.counters().unwrap(),
                Counters {
                    forwarded: 2,
                    no_route: 2,
                    ..Counters::default()
                },
                "{prog:?} counters"
            );
            let total = dp.total_stats().unwrap();
            assert_eq!(
                (total.inpkts, total.inbytes, total.outpkts, total.outbytes),
                (1, query.len() as u64, 1, reply.len() as u64),
                "{prog:?} stats"
            );
        });
    }
}

#[test]
fn later_fragments_of_a_removed_real_server_are_dropped() {
    let datagram = ipv4(CLIENT, VIP, 17, &udp(5000, 53, &payload()));
    let [first, later] = fragments(&datagram, 0x77);
    for prog in [Prog::Xdp, Prog::Tc] {
        let mut dp = datapath("-g");
        let input = eth(DIRECTOR_MAC, CLIENT_MAC, 0x0800, &first);
        let out = eth(RS_MAC, EGRESS_MAC, 0x0800, &first);
        run(&dp, prog, &input, fwd_verdict(prog), &out, "first");
        // the real server goes; a weight-0 one would still take them
        let t = table(&["-A -u 198.18.2.1:53 -s rr"]);
        dp.sync(&t, &Sysctls::default(), &L2::default()).unwrap();
        let input = eth(DIRECTOR_MAC, CLIENT_MAC, 0x0800, &later);
        let drop = match prog {
            Prog::Xdp => XDP_DROP,
            Prog::Tc => TC_ACT_SHOT,
        };
        let got = dp.test_run(prog, &input).unwrap();
        assert_eq!(got.verdict, drop, "{prog:?} later");
        let c = dp.counters().unwrap();
        assert_eq!((c.forwarded, c.unavailable), (1, 1), "{prog:?} counters");
    }
}

#[test]
fn fragments_of_other_protocols_pass_untouched() {
    // an ICMP echo cut in two: the stack's
    let echo: Vec<u8> = [8u8, 0, 0, 0, 0, 1, 0, 1]
        .into_iter()
        .chain(payload())
        .collect();
    let datagram = ipv4(CLIENT, VIP, 1, &echo);
    for prog in [Prog::Xdp, Prog::Tc] {
        let dp = datapath("-g");
        for (what, ip) in ["first", "later"].iter().zip(fragments(&datagram, 3)) {
            let f = eth(DIRECTOR_MAC, CLIENT_MAC, 0x0800, &ip);
            run(&dp, prog, &f, pass_verdict(prog), &f, what);
        }
        assert_eq!(
            dp.counters().unwrap(),
            Counters {
                fragment: 2,
                ..Counters::default()
            },
            "{prog:?} counters"
        );
    }
}

#[test]
fn tun_fragments_are_each_encapsulated_to_the_first_ones_real_server() {
    const TUN_SRC: [u8; 4] = [198, 18, 1, 1];
    let datagram = ipv4(CLIENT, VIP, 17, &udp(5000, 53, &payload()));
    for prog in [Prog::Xdp, Prog::Tc] {
        let dp = datapath_of(
            &[
                "-A -u 198.18.2.1:53 -s rr",
                "-a -u 198.18.2.1:53 -r 198.18.1.2 -i",
            ],
            Some(TUN_SRC),
        );
        for (what, inner) in ["first", "later"].iter().zip(fragments(&datagram, 0x99)) {
            let input = eth(DIRECTOR_MAC, CLIENT_MAC, 0x0800, &inner);
            let got = dp.test_run(prog, &input).unwrap();
            assert_eq!(got.verdict, fwd_verdict(prog), "{prog:?} {what}: verdict");
            // IPIP to the real server; the inner fragment has no DF, so
            // the outer header has none and a random identification
            let id = &got.packet[14 + 4..14 + 6];
            let mut outer = vec![0x45, 0];
            outer.extend_from_slice(&((20 + inner.len()) as u16).to_be_bytes());
            outer.extend_from_slice(id);
            outer.extend_from_slice(&[0, 0, 64, 4, 0, 0]);
            outer.extend_from_slice(&TUN_SRC);
            outer.extend_from_slice(&RS);
            let c = inet_csum(&outer);
            outer[10..12].copy_from_slice(&c.to_be_bytes());
            outer.extend_from_slice(&inner);
            let want = eth(RS_MAC, EGRESS_MAC, 0x0800, &outer);
            assert_eq!(got.packet, want, "{prog:?} {what}: frame");
        }
        assert_eq!(dp.counters().unwrap().forwarded, 2, "{prog:?} counters");
    }
}

/// By GUE, a datagram's fragments share the outer UDP source port, which a
/// NIC's RSS or an ECMP hop spreads by: the later ones (no ports) take it
/// from their first (hashed over the datagram's ports), so they are not
/// sent another way, nor to another CPU of the real server.
#[test]
fn gue_fragments_share_their_first_ones_source_port() {
    let datagram = ipv4(CLIENT, VIP, 17, &udp(5000, 53, &payload()));
    for prog in [Prog::Xdp, Prog::Tc] {
        let dp = datapath_of(
            &[
                "-A -u 198.18.2.1:53 -s rr",
                "-a -u 198.18.2.1:53 -r 198.18.1.2 -i --tun-type gue --tun-port 6080",
            ],
            Some([198, 18, 1, 1]),
        );
        let mut sports = Vec::new();
        for (what, inner) in ["first", "later"].iter().zip(fragments(&datagram, 0x99)) {
            let input = eth(DIRECTOR_MAC, CLIENT_MAC, 0x0800, &inner);
            let got = dp.test_run(prog, &input).unwrap();
            assert_eq!(got.verdict, fwd_verdict(prog), "{prog:?} {what}: verdict");
            let ip = &got.packet[14..];
            assert_eq!(
                (ip[9], &ip[22..24]),
                (17, &6080u16.to_be_bytes()[..]),
                "{prog:?} {what}"
            );
            sports.push(u16::from_be_bytes([ip[20], ip[21]]));
        }
        assert_eq!(sports[0], sports[1], "{prog:?}: GUE source ports");
        assert!(sports[0] >= 49152, "{prog:?}: {}", sports[0]);
    }
}

// IPv6 ------------------------------------------------------------------------

fn v6(net: u16, last: u8) -> [u8; 16] {
    // 2001:2::/48, the benchmarking range: only ever in test frames
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&[0x20, 0x01, 0x00, 0x02]);
    a[6..8].copy_from_slice(&net.to_be_bytes());
    a[15] = last;
    a
}

/// IPv6 datagram `ip` (from [`ipv6_l4`]: no extension headers) cut into
/// two fragments behind a Fragment header with identification `id`.
fn fragments6(ip: &[u8], id: u32) -> [Vec<u8>; 2] {
    let (next, l4) = (ip[6], &ip[40..]);
    let cut = |part: &[u8], off: usize, more: bool| {
        let mut p = ip[..40].to_vec();
        p[4..6].copy_from_slice(&((8 + part.len()) as u16).to_be_bytes());
        p[6] = 44;
        let fo = (off as u16) | u16::from(more);
        p.extend_from_slice(&[next, 0]);
        p.extend_from_slice(&fo.to_be_bytes());
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(part);
        p
    };
    [cut(&l4[..SPLIT], 0, true), cut(&l4[SPLIT..], SPLIT, false)]
}

#[test]
fn ipv6_fragments_go_where_the_first_went_by_dr_and_nat() {
    let (client, vip, rs) = (v6(0, 2), v6(2, 1), v6(1, 2));
    let frame = |ip: &[u8], dst: Mac, src: Mac| eth(dst, src, 0x86dd, ip);
    for (method, rport) in [("-g", 53), ("-m", 5353)] {
        let query = ipv6_l4(client, vip, 17, &udp(5000, 53, &payload()));
        let out = if method == "-m" {
            ipv6_l4(client, rs, 17, &udp(5000, rport, &payload()))
        } else {
            query.clone()
        };
        for prog in [Prog::Xdp, Prog::Tc] {
            let dp = datapath_of(
                &[
                    "-A -u [2001:2:0:2::1]:53 -s rr",
                    &format!("-a -u [2001:2:0:2::1]:53 -r [2001:2:0:1::2]:{rport} {method}"),
                ],
                None,
            );
            let ins = fragments6(&query, 0x0102_0304);
            let outs = fragments6(&out, 0x0102_0304);
            let early = frame(&ins[1], DIRECTOR_MAC, CLIENT_MAC);
            run(&dp, prog, &early, pass_verdict(prog), &early, "early");
            for (i, what) in ["first", "later"].iter().enumerate() {
                let input = frame(&ins[i], DIRECTOR_MAC, CLIENT_MAC);
                let want = frame(&outs[i], RS_MAC, EGRESS_MAC);
                run(&dp, prog, &input, fwd_verdict(prog), &want, what);
            }
            // the same identification between other addresses is another datagram
            let other = fragments6(
                &ipv6_l4(v6(0, 3), vip, 17, &udp(5000, 53, &payload())),
                0x0102_0304,
            );
            let other = frame(&other[1], DIRECTOR_MAC, CLIENT_MAC);
            run(
                &dp,
                prog,
                &other,
                pass_verdict(prog),
                &other,
                "other source",
            );
            let c = dp.counters().unwrap();
            assert_eq!(
                (c.forwarded, c.fragment),
                (2, 2),
                "{method} {prog:?}: {c:?}"
            );
        }
    }
}
