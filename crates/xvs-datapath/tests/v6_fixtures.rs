//! IPv6 through the datapath, byte for byte, with BPF_PROG_TEST_RUN (XDP
//! and tc). No packet leaves anything: the project's tests put addresses on
//! interfaces only from 198.18.0.0/15, so IPv6 is tested here and in the
//! differential and fuzz tests, never with traffic between namespaces. The
//! addresses are from the IPv6 benchmarking range 2001:2::/48 (RFC 5180).
//!
//! - DR (MACs only), with and without extension headers (hop-by-hop,
//!   routing, destination options), XDP_TX and a redirect to an ifindex;
//! - NAT both directions, TCP and UDP (also behind a destination options
//!   header, so the L4 offset is the walked one): expected frames built from
//!   scratch, checksums verified again by an independent routine here;
//! - TUN: IPv6-in-IPv6 (next header 41) and GUE over IPv6;
//! - persistence with `-M 64`: one real server per /64;
//! - what is not forwarded: fragments (counted as such), malformed chains
//!   and lengths, UDP checksum 0 (not allowed over IPv6), ICMPv6 and ESP
//!   (passed);
//! - next hops from the FIB (`bpf_fib_lookup` AF_INET6) in a private
//!   namespace whose veth pair carries 2001:2:: addresses and permanent
//!   neighbour entries (nothing is transmitted: the test runs only return
//!   verdicts), including the XDP → tc metadata of a next hop without a
//!   neighbour entry.
//!
//! Needs root and a BPF-capable kernel; fails (does not skip) without them.

mod common;

use std::net::{IpAddr, Ipv6Addr};
use std::process::Command;

use common::*;
use xvs_core::persist::Sysctls;
use xvs_datapath::{verdict::*, Counters, Datapath, NextHop, Prog, L2};

const CLIENT_MAC: Mac = [0x02, 0x78, 0x76, 0x36, 0x00, 0x01];
const DIRECTOR_MAC: Mac = [0x02, 0x78, 0x76, 0x36, 0x00, 0x02];
const RS_MAC: Mac = [0x02, 0x78, 0x76, 0x36, 0x00, 0x03];
const EGRESS_MAC: Mac = [0x02, 0x78, 0x76, 0x36, 0x00, 0x04];

const PROGS: [Prog; 2] = [Prog::Xdp, Prog::Tc];

fn v6(s: &str) -> [u8; 16] {
    s.parse::<Ipv6Addr>().unwrap().octets()
}

fn client() -> [u8; 16] {
    v6("2001:2:0:ff::2")
}
fn vip() -> [u8; 16] {
    v6("2001:2::1")
}
fn rs() -> [u8; 16] {
    v6("2001:2:0:1::2")
}

// Packet building (the independent checksum check is common::checksums_ok6) --

/// An IPv6 packet: fixed header, `ext` (extension headers, already chained:
/// the fixed header's next header is `first`), then `l4` of protocol
/// `proto` with its checksum filled in.
fn ip6(src: [u8; 16], dst: [u8; 16], first: u8, ext: &[u8], proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut l4 = l4.to_vec();
    if proto == 6 || proto == 17 {
        let c = l4_csum6(&src, &dst, proto, &l4);
        let at = if proto == 6 { 16 } else { 6 };
        l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&((ext.len() + l4.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[first, 64]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(ext);
    p.extend_from_slice(&l4);
    p
}

fn ip6_plain(src: [u8; 16], dst: [u8; 16], proto: u8, l4: &[u8]) -> Vec<u8> {
    ip6(src, dst, proto, &[], proto, l4)
}

/// One extension header of `len8` 8-byte units after the first 8, padded
/// with PadN-ish bytes (zeros: Pad1 options), followed by `next`.
fn ext_hdr(next: u8, len8: u8) -> Vec<u8> {
    let mut h = vec![next, len8];
    h.resize(8 * (usize::from(len8) + 1), 0);
    h
}

fn frame(dst: Mac, src: Mac, ip: &[u8]) -> Vec<u8> {
    eth(dst, src, 0x86dd, ip)
}

fn verdicts(prog: Prog) -> (u32, u32, u32) {
    match prog {
        Prog::Xdp => (XDP_TX, XDP_PASS, XDP_DROP),
        Prog::Tc => (TC_ACT_REDIRECT, TC_ACT_OK, TC_ACT_SHOT),
    }
}

fn l2_explicit() -> L2 {
    L2 {
        default: NextHop {
            mac: RS_MAC,
            src_mac: EGRESS_MAC,
            ifindex: 0,
        },
        ..L2::default()
    }
}

fn datapath(rules: &[&str], l2: &L2) -> Datapath {
    let mut dp = load();
    dp.sync(&table(rules), &Sysctls::default(), l2).unwrap();
    dp
}

// DR --------------------------------------------------------------------------

#[test]
fn dr_rewrites_only_the_macs() {
    let rules = [
        "-A -t [2001:2::1]:80 -s rr",
        "-a -t [2001:2::1]:80 -r [2001:2:0:1::2]:80 -g",
        "-A -u [2001:2::1]:53 -s rr",
        "-a -u [2001:2::1]:53 -r [2001:2:0:1::2]:53 -g",
    ];
    // TCP SYN, UDP, and a SYN behind hop-by-hop + routing + destination
    // options headers.
    let mut ext = ext_hdr(43, 0);
    ext.extend(ext_hdr(60, 1));
    ext.extend(ext_hdr(6, 0));
    let inputs = [
        ip6_plain(client(), vip(), 6, &tcp(40000, 80, 0x02)),
        ip6_plain(client(), vip(), 17, &udp(5000, 53, b"query")),
        ip6(client(), vip(), 0, &ext, 6, &tcp(40001, 80, 0x02)),
    ];
    for prog in PROGS {
        let (fwd, _, _) = verdicts(prog);
        let dp = datapath(&rules, &l2_explicit());
        for ip in &inputs {
            let input = frame(DIRECTOR_MAC, CLIENT_MAC, ip);
            let got = dp.test_run(prog, &input).unwrap();
            assert_eq!(got.verdict, fwd, "{prog:?}");
            assert_eq!(got.packet, frame(RS_MAC, EGRESS_MAC, ip), "{prog:?}");
        }
        assert_eq!(
            dp.counters().unwrap(),
            Counters {
                forwarded: 3,
                ..Counters::default()
            }
        );
        assert_eq!(dp.conn_count(), 3);
        // the connection entries hold the IPv6 tuple
        let svc = xvs_core::model::ServiceKey::Addr {
            protocol: xvs_core::model::Protocol::Tcp,
            addr: IpAddr::from(vip()),
            port: 80,
        };
        let st = dp.service_stats(&svc).unwrap().unwrap();
        assert_eq!((st.conns, st.inpkts), (2, 2));
        assert_eq!(st.inbytes, 2 * 60 + ext.len() as u64, "IPv6 packet lengths");
    }
}

#[test]
fn dr_redirect_to_an_egress_ifindex() {
    let l2 = L2 {
        default: NextHop {
            mac: RS_MAC,
            src_mac: EGRESS_MAC,
            ifindex: 4242,
        },
        ..L2::default()
    };
    let ip = ip6_plain(client(), vip(), 6, &tcp(40000, 80, 0x02));
    for prog in PROGS {
        let dp = datapath(
            &[
                "-A -t [2001:2::1]:80 -s wlc",
                "-a -t [2001:2::1]:80 -r [2001:2:0:1::2]:80 -g",
            ],
            &l2,
        );
        let got = dp
            .test_run(prog, &frame(DIRECTOR_MAC, CLIENT_MAC, &ip))
            .unwrap();
        let want = match prog {
            Prog::Xdp => XDP_REDIRECT,
            Prog::Tc => TC_ACT_REDIRECT,
        };
        assert_eq!(got.verdict, want, "{prog:?}");
        assert_eq!(got.packet, frame(RS_MAC, EGRESS_MAC, &ip));
    }
}

// NAT -------------------------------------------------------------------------

const NAT_RULES: [&str; 4] = [
    "-A -t [2001:2::1]:80 -s rr",
    "-a -t [2001:2::1]:80 -r [2001:2:0:1::2]:8080 -m",
    "-A -u [2001:2::1]:53 -s rr",
    "-a -u [2001:2::1]:53 -r [2001:2:0:1::2]:5353 -m",
];

/// Client packet DNATed to the real server, the reply SNATed back to the
/// VIP; in a private namespace, where the reply's FIB lookup answers
/// FWD_DISABLED: rewritten and handed to the stack (`no_route`).
fn nat_round_trip(inp: &[u8], inp_out: &[u8], reply: &[u8], reply_out: &[u8]) {
    in_private_netns(|| {
        for prog in PROGS {
            let (fwd, pass, _) = verdicts(prog);
            let dp = datapath(&NAT_RULES, &l2_explicit());
            let got = dp.test_run(prog, inp).unwrap();
            assert_eq!(got.verdict, fwd, "{prog:?} in verdict");
            assert_eq!(got.packet, inp_out, "{prog:?} in frame");
            assert!(checksums_ok6(&got.packet), "{prog:?} in checksum");
            let got = dp.test_run(prog, reply).unwrap();
            assert_eq!(got.verdict, pass, "{prog:?} reply verdict");
            assert_eq!(got.packet, reply_out, "{prog:?} reply frame");
            assert!(checksums_ok6(&got.packet), "{prog:?} reply checksum");
            assert_eq!(
                dp.counters().unwrap(),
                Counters {
                    forwarded: 1,
                    no_route: 1,
                    ..Counters::default()
                },
                "{prog:?}"
            );
            assert_eq!((dp.conn_count(), dp.reply_index_count()), (1, 1));
        }
    })
}

#[test]
fn tcp_nat_in_and_out() {
    let mut body = tcp(40000, 80, 0x02);
    body.extend_from_slice(b"some payload, odd length");
    let mut body_out = body.clone();
    body_out[2..4].copy_from_slice(&8080u16.to_be_bytes());
    let mut reply = tcp(8080, 40000, 0x12);
    reply.extend_from_slice(b"answer");
    let mut reply_out = reply.clone();
    reply_out[0..2].copy_from_slice(&80u16.to_be_bytes());
    nat_round_trip(
        &frame(
            DIRECTOR_MAC,
            CLIENT_MAC,
            &ip6_plain(client(), vip(), 6, &body),
        ),
        &frame(RS_MAC, EGRESS_MAC, &ip6_plain(client(), rs(), 6, &body_out)),
        &frame(DIRECTOR_MAC, RS_MAC, &ip6_plain(rs(), client(), 6, &reply)),
        &frame(
            DIRECTOR_MAC,
            RS_MAC,
            &ip6_plain(vip(), client(), 6, &reply_out),
        ),
    );
}

#[test]
fn udp_nat_in_and_out() {
    nat_round_trip(
        &frame(
            DIRECTOR_MAC,
            CLIENT_MAC,
            &ip6_plain(client(), vip(), 17, &udp(5000, 53, b"query!")),
        ),
        &frame(
            RS_MAC,
            EGRESS_MAC,
            &ip6_plain(client(), rs(), 17, &udp(5000, 5353, b"query!")),
        ),
        &frame(
            DIRECTOR_MAC,
            RS_MAC,
            &ip6_plain(rs(), client(), 17, &udp(5353, 5000, b"answer")),
        ),
        &frame(
            DIRECTOR_MAC,
            RS_MAC,
            &ip6_plain(vip(), client(), 17, &udp(53, 5000, b"answer")),
        ),
    );
}

/// The L4 header found behind a destination options header: NAT writes
/// the ports and checksum there, not at 40 bytes.
#[test]
fn nat_behind_extension_headers() {
    let ext = ext_hdr(6, 2);
    nat_round_trip(
        &frame(
            DIRECTOR_MAC,
            CLIENT_MAC,
            &ip6(client(), vip(), 60, &ext, 6, &tcp(40000, 80, 0x02)),
        ),
        &frame(
            RS_MAC,
            EGRESS_MAC,
            &ip6(client(), rs(), 60, &ext, 6, &tcp(40000, 8080, 0x02)),
        ),
        &frame(
            DIRECTOR_MAC,
            RS_MAC,
            &ip6(rs(), client(), 60, &ext, 6, &tcp(8080, 40000, 0x12)),
        ),
        &frame(
            DIRECTOR_MAC,
            RS_MAC,
            &ip6(vip(), client(), 60, &ext, 6, &tcp(80, 40000, 0x12)),
        ),
    );
}

/// Many source addresses and ports: every rewritten checksum is the one
/// computed from scratch (incremental updates over all eight address words,
/// including the 0 → 0xffff case of UDP if it comes up).
#[test]
fn nat_checksums_for_many_tuples() {
    in_private_netns(|| {
        for prog in PROGS {
            let dp = datapath(&NAT_RULES, &l2_explicit());
            for i in 0..300u16 {
                let mut c = client();
                c[8..10].copy_from_slice(&i.wrapping_mul(7919).to_be_bytes());
                c[14..16].copy_from_slice(&i.to_be_bytes());
                let (proto, body) = if i % 2 == 0 {
                    (6, tcp(1024 + i, 80, 0x02))
                } else {
                    (17, udp(1024 + i, 53, &i.to_be_bytes()))
                };
                let inp = frame(DIRECTOR_MAC, CLIENT_MAC, &ip6_plain(c, vip(), proto, &body));
                let got = dp.test_run(prog, &inp).unwrap();
                assert_eq!(got.verdict, verdicts(prog).0, "{prog:?} {i}");
                assert!(
                    checksums_ok6(&got.packet),
                    "{prog:?} {i}: {:02x?}",
                    got.packet
                );
                assert_eq!(&got.packet[14 + 24..14 + 40], &rs());
            }
        }
    })
}

// TUN -------------------------------------------------------------------------

fn tun_src() -> [u8; 16] {
    v6("2001:2:0:1::1")
}

/// `-i` to an IPv6 real server: IPv6-in-IPv6 (next header 41), traffic
/// class from the inner packet, flow label 0, hop limit 64; GUE over IPv6:
/// UDP (checksum 0) + GUE, flow label = the GUE source port.
#[test]
fn tun_ip6ip6_and_gue_over_ipv6() {
    let l2 = L2 {
        tun_saddr: Some(IpAddr::from(tun_src())),
        ..l2_explicit()
    };
    let rules = [
        "-A -t [2001:2::1]:80 -s rr",
        "-a -t [2001:2::1]:80 -r [2001:2:0:1::2]:80 -i",
        "-A -t [2001:2::1]:8080 -s rr",
        "-a -t [2001:2::1]:8080 -r [2001:2:0:1::3]:8080 -i --tun-type gue --tun-port 6080",
    ];
    for prog in PROGS {
        let (fwd, _, _) = verdicts(prog);
        let dp = datapath(&rules, &l2);
        // IPIP
        let inner = ip6_plain(client(), vip(), 6, &tcp(40000, 80, 0x02));
        let got = dp
            .test_run(prog, &frame(DIRECTOR_MAC, CLIENT_MAC, &inner))
            .unwrap();
        assert_eq!(got.verdict, fwd, "{prog:?}");
        let mut outer = vec![0x60, 0, 0, 0];
        outer.extend_from_slice(&(inner.len() as u16).to_be_bytes());
        outer.extend_from_slice(&[41, 64]);
        outer.extend_from_slice(&tun_src());
        outer.extend_from_slice(&rs());
        outer.extend_from_slice(&inner);
        assert_eq!(
            got.packet,
            frame(RS_MAC, EGRESS_MAC, &outer),
            "{prog:?} 6in6"
        );
        // GUE
        let inner = ip6_plain(client(), vip(), 6, &tcp(40000, 8080, 0x02));
        let got = dp
            .test_run(prog, &frame(DIRECTOR_MAC, CLIENT_MAC, &inner))
            .unwrap();
        assert_eq!(got.verdict, fwd, "{prog:?}");
        let o = &got.packet[14..];
        let sport = u16::from_be_bytes([o[40], o[41]]);
        assert!(sport >= 49152, "GUE source port {sport}");
        let mut outer = (0x6000_0000u32 | u32::from(sport)).to_be_bytes().to_vec();
        outer.extend_from_slice(&((inner.len() + 12) as u16).to_be_bytes());
        outer.extend_from_slice(&[17, 64]);
        outer.extend_from_slice(&tun_src());
        outer.extend_from_slice(&v6("2001:2:0:1::3"));
        outer.extend_from_slice(&sport.to_be_bytes());
        outer.extend_from_slice(&6080u16.to_be_bytes());
        outer.extend_from_slice(&((inner.len() + 12) as u16).to_be_bytes());
        outer.extend_from_slice(&[0, 0, 0, 41, 0, 0]);
        outer.extend_from_slice(&inner);
        assert_eq!(
            got.packet,
            frame(RS_MAC, EGRESS_MAC, &outer),
            "{prog:?} GUE"
        );
        assert_eq!(
            dp.counters().unwrap(),
            Counters {
                forwarded: 2,
                ..Counters::default()
            }
        );
    }
}

/// An IPv6 packet too big for its tunnel (tun_mtu 1500, 40 bytes of
/// 6in6) is answered with an ICMPv6 packet too big (2/0) carrying what
/// fits, 1460, from the VIP back to the client, as the kernel's IPVS
/// answers it; one that fits is tunnelled.
#[test]
fn tun_over_the_mtu_gets_icmpv6_packet_too_big() {
    let l2 = L2 {
        tun_saddr: Some(IpAddr::from(tun_src())),
        tun_mtu: 1500,
        ..l2_explicit()
    };
    let rules = [
        "-A -t [2001:2::1]:80 -s rr",
        "-a -t [2001:2::1]:80 -r [2001:2:0:1::2]:80 -i",
    ];
    let seg = |len: usize| {
        let mut l4 = tcp(40000, 80, 0x02);
        l4.resize(len - 40, 0x5a);
        ip6_plain(client(), vip(), 6, &l4)
    };
    for prog in PROGS {
        let (fwd, _, _) = verdicts(prog);
        let dp = datapath(&rules, &l2);
        let got = dp
            .test_run(prog, &frame(DIRECTOR_MAC, CLIENT_MAC, &seg(1460)))
            .unwrap();
        assert_eq!(got.verdict, fwd, "{prog:?} at the MTU");
        assert_eq!(got.packet.len(), 14 + 1500, "{prog:?} tunnelled");
        let big = seg(1461);
        let got = dp
            .test_run(prog, &frame(DIRECTOR_MAC, CLIENT_MAC, &big))
            .unwrap();
        assert_eq!(got.verdict, fwd, "{prog:?} over the MTU");
        assert_eq!(got.packet, answer6(&big, 2, 0, 1460), "{prog:?}");
        assert_eq!(
            dp.counters().unwrap(),
            Counters {
                forwarded: 1,
                tun_dropped: 1,
                ..Counters::default()
            },
            "{prog:?}"
        );
    }
}

/// A tunnel source of the other family is not used for an IPv6 real
/// server: with an explicit next hop the packet is tracked and handed to
/// the stack unchanged (`local`), as for IPv4 without a source.
#[test]
fn tun_without_an_ipv6_source_goes_to_the_stack() {
    let l2 = L2 {
        tun_saddr: Some(IpAddr::from([198, 18, 1, 1])),
        ..l2_explicit()
    };
    let rules = [
        "-A -t [2001:2::1]:80 -s rr",
        "-a -t [2001:2::1]:80 -r [2001:2:0:1::2]:80 -i",
    ];
    for prog in PROGS {
        let (_, pass, _) = verdicts(prog);
        let dp = datapath(&rules, &l2);
        let input = frame(
            DIRECTOR_MAC,
            CLIENT_MAC,
            &ip6_plain(client(), vip(), 6, &tcp(40000, 80, 0x02)),
        );
        let got = dp.test_run(prog, &input).unwrap();
        assert_eq!((got.verdict, &got.packet), (pass, &input), "{prog:?}");
        assert_eq!(
            dp.counters().unwrap(),
            Counters {
                local: 1,
                ..Counters::default()
            }
        );
    }
}

/// A real server of the other family (allowed with `-i` only): IPv6 in
/// IPv4 (protocol 41; DF set, ID 0, TOS from the traffic class) and IPv4
/// in IPv6 (next header 4), each with a tunnel source of the real server's
/// family.
#[test]
fn tun_across_families() {
    let mut l2 = L2 {
        tun_saddr: Some(IpAddr::from(tun_src())),
        ..l2_explicit()
    };
    l2.tun_saddr_by_addr
        .insert(IpAddr::from([198, 18, 1, 2]), IpAddr::from([198, 18, 1, 1]));
    let rules = [
        "-A -t [2001:2::1]:80 -s rr",
        "-a -t [2001:2::1]:80 -r 198.18.1.2:80 -i",
        "-A -t 198.18.2.1:80 -s rr",
        "-a -t 198.18.2.1:80 -r [2001:2:0:1::2]:80 -i",
    ];
    for prog in PROGS {
        let (fwd, _, _) = verdicts(prog);
        let dp = datapath(&rules, &l2);
        // 6in4
        let inner = ip6_plain(client(), vip(), 6, &tcp(40000, 80, 0x02));
        let got = dp
            .test_run(prog, &frame(DIRECTOR_MAC, CLIENT_MAC, &inner))
            .unwrap();
        assert_eq!(got.verdict, fwd, "{prog:?} 6in4");
        let total = (20 + inner.len()) as u16;
        let mut outer = vec![0x45, 0];
        outer.extend_from_slice(&total.to_be_bytes());
        outer.extend_from_slice(&[0, 0, 0x40, 0, 64, 41, 0, 0, 198, 18, 1, 1, 198, 18, 1, 2]);
        let mut sum: u32 = outer
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        outer[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        outer.extend_from_slice(&inner);
        assert_eq!(
            got.packet,
            eth(RS_MAC, EGRESS_MAC, 0x0800, &outer),
            "{prog:?} 6in4"
        );
        // 4in6
        let inner = ipv4([198, 18, 0, 2], [198, 18, 2, 1], 6, &tcp(40000, 80, 0x02));
        let got = dp
            .test_run(prog, &eth(DIRECTOR_MAC, CLIENT_MAC, 0x0800, &inner))
            .unwrap();
        assert_eq!(got.verdict, fwd, "{prog:?} 4in6");
        let mut outer = vec![0x60, 0, 0, 0];
        outer.extend_from_slice(&(inner.len() as u16).to_be_bytes());
        outer.extend_from_slice(&[4, 64]);
        outer.extend_from_slice(&tun_src());
        outer.extend_from_slice(&rs());
        outer.extend_from_slice(&inner);
        assert_eq!(
            got.packet,
            frame(RS_MAC, EGRESS_MAC, &outer),
            "{prog:?} 4in6"
        );
        assert_eq!(
            dp.counters().unwrap(),
            Counters {
                forwarded: 2,
                ..Counters::default()
            }
        );
    }
}

// Persistence -----------------------------------------------------------------

/// `-p 300 -M 64`: every client of a /64 goes to the server its first
/// connection got; rr moves on for each new /64. Templates hold the /64.
#[test]
fn persistence_with_a_64_bit_prefix() {
    let rules = [
        "-A -t [2001:2::1]:80 -s rr -p 300 -M 64",
        "-a -t [2001:2::1]:80 -r [2001:2:0:1::2]:80 -g",
        "-a -t [2001:2::1]:80 -r [2001:2:0:1::3]:80 -g",
        "-a -t [2001:2::1]:80 -r [2001:2:0:1::4]:80 -g",
    ];
    let mut l2 = l2_explicit();
    for i in 2..=4u8 {
        let mut a = rs();
        a[15] = i;
        l2.by_addr.insert(
            IpAddr::from(a),
            NextHop {
                mac: [0x02, 0x78, 0x76, 0x36, 0x01, i],
                src_mac: EGRESS_MAC,
                ifindex: 0,
            },
        );
    }
    for prog in PROGS {
        let mut dp = datapath(&rules, &l2);
        dp.set_clock(Some(1_000_000_000)).unwrap();
        let mut server_of = std::collections::BTreeMap::new();
        for net in 0..6u16 {
            for host in 0..5u16 {
                let mut c = v6("2001:2:0:ff::");
                c[6..8].copy_from_slice(&(0x100 + net).to_be_bytes());
                c[8..10].copy_from_slice(&(0xa000 + host).to_be_bytes());
                c[15] = host as u8 + 1;
                let ip = ip6_plain(c, vip(), 6, &tcp(30000 + host, 80, 0x02));
                let got = dp
                    .test_run(prog, &frame(DIRECTOR_MAC, CLIENT_MAC, &ip))
                    .unwrap();
                assert_eq!(got.verdict, verdicts(prog).0);
                let to = got.packet[5];
                assert_eq!(
                    *server_of.entry(net).or_insert(to),
                    to,
                    "{prog:?} /64 #{net}"
                );
            }
        }
        // rr over the three servers, one per new /64
        let picks: Vec<u8> = server_of.values().copied().collect();
        assert_eq!(picks[..3], picks[3..], "{prog:?} {picks:?}");
        let mut distinct = picks[..3].to_vec();
        distinct.sort();
        assert_eq!(distinct, [2, 3, 4]);
        let tpls = dp.templates();
        assert_eq!(tpls.len(), 6);
        for t in &tpls {
            let caddr = xvs_datapath::maps::words_addr(t.key.caddr, t.key.family).unwrap();
            let IpAddr::V6(a) = caddr else {
                panic!("{caddr}")
            };
            assert_eq!(u128::from(a) & ((1u128 << 64) - 1), 0, "masked to /64: {a}");
            assert_eq!(
                xvs_datapath::maps::words_addr(t.key.vaddr, t.key.family),
                Some(IpAddr::from(vip()))
            );
            assert_eq!(u16::from_be(t.key.vport), 80);
        }
        assert_eq!(dp.conn_count(), 30);
    }
}

// What is not forwarded -------------------------------------------------------

#[test]
fn fragments_malformed_and_other_ipv6_pass_untouched_and_are_counted() {
    let syn = || tcp(40000, 80, 0x02);
    // a later fragment (offset 8, more to come) of a datagram whose first
    // fragment was not seen (first fragments: frag_fixtures.rs)
    let frag_hdr = vec![6, 0, 0, 9, 0, 0, 0, 1];
    let mut hbh_late = ext_hdr(0, 0);
    hbh_late.extend(ext_hdr(6, 0));
    let mut too_many = Vec::new();
    for _ in 0..6 {
        too_many.extend(ext_hdr(60, 0));
    }
    too_many.extend(ext_hdr(6, 0));
    let mut long_payload = ip6_plain(client(), vip(), 6, &syn());
    long_payload[4..6].copy_from_slice(&100u16.to_be_bytes());
    let mut short_payload = ip6_plain(client(), vip(), 6, &syn());
    short_payload[4..6].copy_from_slice(&8u16.to_be_bytes());
    let mut zero_udp = ip6_plain(client(), vip(), 17, &udp(5000, 53, b"q"));
    zero_udp[40 + 6] = 0;
    zero_udp[40 + 7] = 0;
    let mut truncated_ext = ip6(client(), vip(), 60, &ext_hdr(6, 3), 6, &syn());
    truncated_ext.truncate(40 + 16);
    truncated_ext[4..6].copy_from_slice(&16u16.to_be_bytes());
    let mut bad_version = ip6_plain(client(), vip(), 6, &syn());
    bad_version[0] = 0x40;
    // (what, IP packet, counter: 0 passed, 1 malformed, 2 fragment)
    let cases: Vec<(&str, Vec<u8>, usize)> = vec![
        (
            "fragment header",
            ip6(client(), vip(), 44, &frag_hdr, 6, &syn()),
            2,
        ),
        (
            "fragment header after destination options",
            {
                let mut e = ext_hdr(44, 0);
                e.extend(&frag_hdr);
                ip6(client(), vip(), 60, &e, 6, &syn())
            },
            2,
        ),
        (
            "hop-by-hop not first",
            ip6(client(), vip(), 60, &hbh_late, 6, &syn()),
            1,
        ),
        (
            "seven extension headers",
            ip6(client(), vip(), 60, &too_many, 6, &syn()),
            1,
        ),
        ("extension header cut short", truncated_ext, 1),
        ("payload length beyond the frame", long_payload, 1),
        ("payload length shorter than TCP", short_payload, 1),
        ("UDP checksum 0", zero_udp, 1),
        ("version 4 under EtherType IPv6", bad_version, 1),
        (
            "TCP header cut at 8 bytes",
            ip6_plain(client(), vip(), 6, &syn())[..48].to_vec(),
            1,
        ),
        (
            "ICMPv6 echo request",
            ip6_plain(client(), vip(), 58, &[128, 0, 0, 0, 0, 1, 0, 1]),
            0,
        ),
        (
            "ESP",
            ip6_plain(client(), vip(), 50, &[0, 0, 0, 1, 0, 0, 0, 1]),
            0,
        ),
        (
            "no next header",
            ip6(client(), vip(), 60, &ext_hdr(59, 0), 59, &[]),
            0,
        ),
    ];
    for prog in PROGS {
        let (_, pass, _) = verdicts(prog);
        let dp = datapath(
            &[
                "-A -t [2001:2::1]:80 -s rr",
                "-a -t [2001:2::1]:80 -r [2001:2:0:1::2]:8080 -m",
                "-A -u [2001:2::1]:53 -s rr",
                "-a -u [2001:2::1]:53 -r [2001:2:0:1::2]:5353 -m",
            ],
            &l2_explicit(),
        );
        let mut want = Counters::default();
        for (what, ip, counter) in &cases {
            let input = frame(DIRECTOR_MAC, CLIENT_MAC, ip);
            let got = dp.test_run(prog, &input).unwrap();
            assert_eq!(got.verdict, pass, "{prog:?} {what}");
            assert_eq!(got.packet, input, "{prog:?} {what}: untouched");
            match counter {
                0 => want.passed += 1,
                1 => want.malformed += 1,
                _ => want.fragment += 1,
            }
            assert_eq!(dp.counters().unwrap(), want, "{prog:?} {what}");
        }
        assert_eq!(dp.conn_count(), 0, "{prog:?}");
    }
}

/// An IPv6 frame whose header is cut: XDP counts it malformed; the kernel's
/// skb test run refuses it (EINVAL) before the tc program runs.
#[test]
fn ipv6_header_cut_short() {
    let ip = ip6_plain(client(), vip(), 6, &tcp(40000, 80, 0x02));
    let input = frame(DIRECTOR_MAC, CLIENT_MAC, &ip[..30]);
    let dp = datapath(
        &[
            "-A -t [2001:2::1]:80 -s rr",
            "-a -t [2001:2::1]:80 -r [2001:2:0:1::2]:80 -g",
        ],
        &l2_explicit(),
    );
    let got = dp.test_run(Prog::Xdp, &input).unwrap();
    assert_eq!((got.verdict, &got.packet), (XDP_PASS, &input));
    assert!(dp.test_run(Prog::Tc, &input).is_err());
    assert_eq!(
        dp.counters().unwrap(),
        Counters {
            malformed: 1,
            ..Counters::default()
        }
    );
}

// Next hops from the FIB ------------------------------------------------------

const FX0_MAC: Mac = [0x02, 0x78, 0x76, 0x36, 0x0f, 0x00];
const FX1_MAC: Mac = [0x02, 0x78, 0x76, 0x36, 0x0f, 0x01];

fn sh(prog: &str, args: &[&str]) {
    let out = Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{prog} {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{prog} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mac_str(m: Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// In the current (private) namespace: a veth pair, fx0 (client side,
/// 2001:2:0:ff::1/64) and fx1 (server side, 2001:2:0:1::1/64), IPv6
/// forwarding on, permanent neighbour entries for the client and the real
/// server 2001:2:0:1::2; 2001:2:0:1::9 has none. Nothing is ever sent: the
/// test runs only return verdicts. Returns the ifindexes.
fn fib_director() -> (u32, u32) {
    sh(
        "ip",
        &[
            "link",
            "add",
            "fx0",
            "address",
            &mac_str(FX0_MAC),
            "type",
            "veth",
            "peer",
            "name",
            "fx1",
            "address",
            &mac_str(FX1_MAC),
        ],
    );
    for (dev, addr) in [("fx0", "2001:2:0:ff::1/64"), ("fx1", "2001:2:0:1::1/64")] {
        sh(
            "sysctl",
            &["-qw", &format!("net.ipv6.conf.{dev}.forwarding=1")],
        );
        sh("ip", &["-6", "addr", "add", addr, "dev", dev, "nodad"]);
        sh("ip", &["link", "set", dev, "up"]);
    }
    sh("sysctl", &["-qw", "net.ipv6.conf.all.forwarding=1"]);
    for (addr, m, dev) in [
        ("2001:2:0:ff::2", CLIENT_MAC, "fx0"),
        ("2001:2:0:1::2", RS_MAC, "fx1"),
    ] {
        sh(
            "ip",
            &[
                "-6",
                "neigh",
                "replace",
                addr,
                "lladdr",
                &mac_str(m),
                "dev",
                dev,
                "nud",
                "permanent",
            ],
        );
    }
    let idx = |n| xvs_datapath::ifindex(n).unwrap_or_else(|e| panic!("{n}: {e}"));
    (idx("fx0"), idx("fx1"))
}

/// DR and NAT with next hops from `bpf_fib_lookup(AF_INET6)`: toward the
/// real server out of fx1 (its MAC as source, the neighbour's as
/// destination), the NAT reply to the client out of fx0 (`replied`).
#[test]
fn fib_next_hops_dr_and_nat() {
    require_root();
    in_private_netns(|| {
        let (fx0, fx1) = fib_director();
        let syn = ip6_plain(client(), vip(), 6, &tcp(40000, 80, 0x02));
        for prog in PROGS {
            let redirect = match prog {
                Prog::Xdp => XDP_REDIRECT,
                Prog::Tc => TC_ACT_REDIRECT,
            };
            // DR
            let dp = datapath(
                &[
                    "-A -t [2001:2::1]:80 -s rr",
                    "-a -t [2001:2::1]:80 -r [2001:2:0:1::2]:80 -g",
                ],
                &L2::default(),
            );
            let got = dp
                .test_run_on(prog, &frame(FX0_MAC, CLIENT_MAC, &syn), fx0)
                .unwrap();
            assert_eq!(got.verdict, redirect, "{prog:?} DR");
            assert_eq!(got.packet, frame(RS_MAC, FX1_MAC, &syn), "{prog:?} DR");
            // NAT, both directions
            let dp = datapath(
                &[
                    "-A -t [2001:2::1]:80 -s rr",
                    "-a -t [2001:2::1]:80 -r [2001:2:0:1::2]:8080 -m",
                ],
                &L2::default(),
            );
            let got = dp
                .test_run_on(prog, &frame(FX0_MAC, CLIENT_MAC, &syn), fx0)
                .unwrap();
            assert_eq!(got.verdict, redirect, "{prog:?} NAT in");
            let want = ip6_plain(client(), rs(), 6, &tcp(40000, 8080, 0x02));
            assert_eq!(got.packet, frame(RS_MAC, FX1_MAC, &want), "{prog:?} NAT in");
            let reply = ip6_plain(rs(), client(), 6, &tcp(8080, 40000, 0x12));
            let got = dp
                .test_run_on(prog, &frame(FX1_MAC, RS_MAC, &reply), fx1)
                .unwrap();
            assert_eq!(got.verdict, redirect, "{prog:?} NAT reply");
            let want = ip6_plain(vip(), client(), 6, &tcp(80, 40000, 0x12));
            assert_eq!(
                got.packet,
                frame(CLIENT_MAC, FX0_MAC, &want),
                "{prog:?} NAT reply"
            );
            assert!(checksums_ok6(&got.packet));
            assert_eq!(
                dp.counters().unwrap(),
                Counters {
                    forwarded: 1,
                    replied: 1,
                    ..Counters::default()
                },
                "{prog:?}"
            );
        }
    });
}

/// A real server routed but without a neighbour entry: tc hands the frame
/// to bpf_redirect_neigh; XDP passes it with the IPv6 metadata ("xvs6",
/// egress ifindex, next hop) for xvs_tc on the same device, DR frames with
/// a zero destination MAC. `no_neigh`.
#[test]
fn fib_no_neighbour_entry() {
    require_root();
    in_private_netns(|| {
        let (fx0, fx1) = fib_director();
        let unresolved = v6("2001:2:0:1::9");
        let syn = ip6_plain(client(), vip(), 6, &tcp(40000, 80, 0x02));
        let input = frame(FX0_MAC, CLIENT_MAC, &syn);
        for prog in PROGS {
            let dp = datapath(
                &[
                    "-A -t [2001:2::1]:80 -s rr",
                    "-a -t [2001:2::1]:80 -r [2001:2:0:1::9]:80 -g",
                ],
                &L2::default(),
            );
            let got = dp.test_run_on(prog, &input, fx0).unwrap();
            match prog {
                Prog::Xdp => {
                    assert_eq!(got.verdict, XDP_PASS);
                    let mut want = 0x3673_7678u32.to_ne_bytes().to_vec();
                    want.extend_from_slice(&fx1.to_ne_bytes());
                    want.extend_from_slice(&unresolved);
                    want.extend(frame([0; 6], CLIENT_MAC, &syn));
                    assert_eq!(got.packet, want, "metadata, no destination MAC");
                }
                Prog::Tc => {
                    assert_eq!(got.verdict, TC_ACT_REDIRECT);
                    assert_eq!(got.packet, input);
                }
            }
            assert_eq!(
                dp.counters().unwrap(),
                Counters {
                    no_neigh: 1,
                    ..Counters::default()
                },
                "{prog:?}"
            );
        }
    });
}

/// TUN with the tunnel source and next hop from the FIB
/// (BPF_FIB_LOOKUP_SRC for IPv6: fx1's address).
#[test]
fn fib_tun_source_and_next_hop() {
    require_root();
    in_private_netns(|| {
        let (fx0, _) = fib_director();
        let inner = ip6_plain(client(), vip(), 6, &tcp(40000, 80, 0x02));
        for prog in PROGS {
            let dp = datapath(
                &[
                    "-A -t [2001:2::1]:80 -s rr",
                    "-a -t [2001:2::1]:80 -r [2001:2:0:1::2]:80 -i",
                ],
                &L2::default(),
            );
            let got = dp
                .test_run_on(prog, &frame(FX0_MAC, CLIENT_MAC, &inner), fx0)
                .unwrap();
            let redirect = match prog {
                Prog::Xdp => XDP_REDIRECT,
                Prog::Tc => TC_ACT_REDIRECT,
            };
            assert_eq!(got.verdict, redirect, "{prog:?}");
            let mut outer = vec![0x60, 0, 0, 0];
            outer.extend_from_slice(&(inner.len() as u16).to_be_bytes());
            outer.extend_from_slice(&[41, 64]);
            outer.extend_from_slice(&v6("2001:2:0:1::1"));
            outer.extend_from_slice(&rs());
            outer.extend_from_slice(&inner);
            assert_eq!(got.packet, frame(RS_MAC, FX1_MAC, &outer), "{prog:?}");
        }
    });
}

// ICMPv6 errors ----------------------------------------------------------------

/// An ICMPv6 message from `src` to `dst` (type, code, the 4-byte field,
/// then `body`), its checksum over the pseudo header filled in.
fn icmp6(src: [u8; 16], dst: [u8; 16], ty: u8, code: u8, field: u32, body: &[u8]) -> Vec<u8> {
    let mut msg = vec![ty, code, 0, 0];
    msg.extend_from_slice(&field.to_be_bytes());
    msg.extend_from_slice(body);
    let mut sum = Vec::new();
    sum.extend_from_slice(&src);
    sum.extend_from_slice(&dst);
    sum.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    sum.extend_from_slice(&[0, 0, 0, 58]);
    sum.extend_from_slice(&msg);
    let c = inet_csum(&sum);
    msg[2..4].copy_from_slice(&c.to_be_bytes());
    ip6_plain(src, dst, 58, &msg)
}

/// Path MTU discovery through IPv6 LVS-DR: a router's "packet too big"
/// about the real server's segment VIP:80 -> client goes to the
/// connection's real server, MACs rewritten, counted as the connection's
/// (ip_vs_in_icmp_v6()). One about another client port, and an echo
/// request to the VIP, are the director's stack's.
#[test]
fn icmp6_errors_about_a_dr_connection_go_to_its_real_server() {
    let rules = [
        "-A -t [2001:2::1]:80 -s rr",
        "-a -t [2001:2::1]:80 -r [2001:2:0:1::2]:80 -g",
    ];
    let router = v6("2001:2:0:ff::fe");
    let syn = ip6_plain(client(), vip(), 6, &tcp(40000, 80, 0x02));
    let quote = |cport: u16| ip6_plain(vip(), client(), 6, &tcp(80, cport, 0x12))[..48].to_vec();
    let too_big = icmp6(router, vip(), 2, 0, 1280, &quote(40000));
    let other = icmp6(router, vip(), 2, 0, 1280, &quote(40001));
    let echo = icmp6(client(), vip(), 128, 0, 0x0001_0001, b"ping");
    for prog in PROGS {
        let (fwd, pass, _) = verdicts(prog);
        let dp = datapath(&rules, &l2_explicit());
        let input = frame(DIRECTOR_MAC, CLIENT_MAC, &syn);
        assert_eq!(dp.test_run(prog, &input).unwrap().verdict, fwd, "{prog:?}");
        let input = frame(DIRECTOR_MAC, CLIENT_MAC, &too_big);
        let got = dp.test_run(prog, &input).unwrap();
        assert_eq!(got.verdict, fwd, "{prog:?} packet too big");
        assert_eq!(
            got.packet,
            frame(RS_MAC, EGRESS_MAC, &too_big),
            "{prog:?} packet too big"
        );
        for ip in [&other, &echo] {
            let input = frame(DIRECTOR_MAC, CLIENT_MAC, ip);
            let got = dp.test_run(prog, &input).unwrap();
            assert_eq!(got.verdict, pass, "{prog:?} not ours");
            assert_eq!(got.packet, input, "{prog:?} not ours");
        }
        assert_eq!(
            dp.counters().unwrap(),
            Counters {
                forwarded: 2,
                passed: 2,
                ..Counters::default()
            },
            "{prog:?}"
        );
        let svc = xvs_core::model::ServiceKey::Addr {
            protocol: xvs_core::model::Protocol::Tcp,
            addr: IpAddr::from(vip()),
            port: 80,
        };
        let st = dp.service_stats(&svc).unwrap().unwrap();
        assert_eq!((st.conns, st.inpkts), (1, 2), "{prog:?}");
    }
}

// No real server ---------------------------------------------------------------

/// ICMPv6 port unreachable (type 1 code 4) from the VIP to the client, as
/// the kernel's IPVS sends it for a new connection no real server can take:
/// quoting the IPv6 header and the TCP/UDP header through its checksum,
/// hop limit 64.
fn port_unreachable6(sent: &[u8]) -> Vec<u8> {
    answer6(sent, 1, 4, 0)
}

/// The ICMPv6 message (`ty`, `code`, `mtu` in its second word) the
/// director answers IPv6 packet `sent` with, as port_unreachable6() above.
fn answer6(sent: &[u8], ty: u8, code: u8, mtu: u32) -> Vec<u8> {
    let mut msg = vec![ty, code, 0, 0];
    msg.extend_from_slice(&mtu.to_be_bytes());
    msg.extend_from_slice(&sent[..if sent[6] == 6 { 58 } else { 48 }]);
    let c = l4_csum6(&vip(), &client(), 58, &msg);
    msg[2..4].copy_from_slice(&c.to_be_bytes());
    frame(
        CLIENT_MAC,
        DIRECTOR_MAC,
        &ip6(vip(), client(), 58, &[], 58, &msg),
    )
}

/// XDP and tc answer a SYN and a UDP datagram to a service without a usable
/// real server with an ICMPv6 port unreachable, sent back where they came
/// from; behind extension headers (the quote would not reach the
/// ports) and from a multicast source nothing is sent. All are no_dest,
/// and each is told to user space as the kernel logs it.
#[test]
fn no_real_server_answers_icmpv6_port_unreachable() {
    let mut dp = datapath(
        &[
            "-A -t [2001:2::1]:80 -s rr",
            "-a -t [2001:2::1]:80 -r [2001:2:0:1::2]:80 -g -w 0",
            "-A -u [2001:2::1]:53 -s rr",
        ],
        &l2_explicit(),
    );
    let mut events = dp.take_events().unwrap();
    let syn = ip6_plain(client(), vip(), 6, &tcp(40000, 80, 0x02));
    let dgram = ip6_plain(client(), vip(), 17, &udp(40000, 53, b"a query"));
    for ip in [&syn, &dgram] {
        let f = frame(DIRECTOR_MAC, CLIENT_MAC, ip);
        let got = dp.test_run(Prog::Xdp, &f).unwrap();
        let want = port_unreachable6(ip);
        assert_eq!((got.verdict, &got.packet), (XDP_TX, &want));
        // the ICMPv6 checksum verifies over the pseudo header
        let icmp = &got.packet[54..];
        assert_eq!(icmp.len(), if ip[6] == 6 { 66 } else { 56 });
        let len = icmp.len() as u8;
        let mut sum: u32 = 0;
        for w in [
            &vip()[..],
            &client()[..],
            &[0, 0, 0, len, 0, 0, 0, 58],
            icmp,
        ] {
            for c in w.chunks(2) {
                sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
            }
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff);
        let got = dp.test_run(Prog::Tc, &f).unwrap();
        assert_eq!((got.verdict, &got.packet), (TC_ACT_REDIRECT, &want));
    }
    let behind_ext = ip6(
        client(),
        vip(),
        60,
        &ext_hdr(6, 0),
        6,
        &tcp(40001, 80, 0x02),
    );
    let mcast = ip6_plain(v6("ff02::1"), vip(), 17, &udp(40000, 53, b"q"));
    for ip in [&behind_ext, &mcast] {
        let f = frame(DIRECTOR_MAC, CLIENT_MAC, ip);
        assert_eq!(dp.test_run(Prog::Xdp, &f).unwrap().verdict, XDP_DROP);
        assert_eq!(dp.test_run(Prog::Tc, &f).unwrap().verdict, TC_ACT_SHOT);
    }
    assert_eq!(
        dp.counters().unwrap(),
        Counters {
            no_dest: 8,
            ..Counters::default()
        }
    );
    let told: Vec<String> = std::iter::from_fn(|| events.next_event())
        .map(|e| e.to_string())
        .collect();
    let tcp = "rr: TCP [2001:2::1]:80 - no destination available";
    let udp = "rr: UDP [2001:2::1]:53 - no destination available";
    assert_eq!(told, [tcp, tcp, udp, udp, tcp, tcp, udp, udp]);
}
