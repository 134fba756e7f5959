//! LVS-TUN fixtures through BPF_PROG_TEST_RUN:
//! - the encapsulation helpers (`bpf/include/encap.h`), through the test-only
//!   director `bpf/encap_test.c`, for XDP and tc: input frame -> expected
//!   encapsulated frame, byte for byte;
//! - the real-server decapsulation program (`bpf/decap.c`, [`Decap`]), XDP
//!   and tc: input frame -> verdict, output frame, counters.
//!
//! Needs root; fails (does not skip) without it.

mod tun_common;

use tun_common::*;
use xvs_datapath::decap::{Decap, DecapCounters, DecapProg};

const CLIENT_MAC: Mac = [0x02, 0x78, 0x76, 0x74, 0x00, 0x01];
const DIR_MAC: Mac = [0x02, 0x78, 0x76, 0x74, 0x00, 0x02];
const RS_MAC: Mac = [0x02, 0x78, 0x76, 0x74, 0x00, 0x03];
const EG_MAC: Mac = [0x02, 0x78, 0x76, 0x74, 0x00, 0x04];
const CLIENT: [u8; 4] = [198, 18, 0, 2];
const VIP: [u8; 4] = [198, 18, 2, 1];
const DIP: [u8; 4] = [198, 18, 1, 1];
const RIP: [u8; 4] = [198, 18, 1, 2];
const OTHER: [u8; 4] = [198, 18, 1, 9];
const GUE_PORT: u16 = 6080;

fn v6(last: u8) -> [u8; 16] {
    // 2001:db8::/32 documentation addresses: never routed, only in frames.
    let mut a = [0u8; 16];
    a[0] = 0x20;
    a[1] = 0x01;
    a[2] = 0x0d;
    a[3] = 0xb8;
    a[15] = last;
    a
}

fn cfg(tun: XvsTun) -> TunTestCfg {
    TunTestCfg {
        tun,
        dmac: RS_MAC,
        smac: EG_MAC,
        ..TunTestCfg::default()
    }
}

fn syn() -> Vec<u8> {
    ipv4(CLIENT, VIP, 6, &tcp(40000, 80, 0x02))
}

fn client_frame(ip: &[u8]) -> Vec<u8> {
    let et = if ip[0] >> 4 == 6 { 0x86dd } else { 0x0800 };
    eth(DIR_MAC, CLIENT_MAC, et, ip)
}

/// What the director should send: to the RS MAC from the egress MAC.
fn to_rs(ethertype: u16, outer: &[u8]) -> Vec<u8> {
    eth(RS_MAC, EG_MAC, ethertype, outer)
}

/// Runs `input` through the three variants (XDP, XDP with the one-pass
/// IPIP where it applies, tc) and checks verdicts, output and the helper's
/// return value.
fn check_encap(c: TunTestCfg, input: &[u8], expect: &[u8]) {
    let e = EncapTest::load(c);
    for (n, which) in [(1, Which::Xdp), (2, Which::XdpIpip4)] {
        let (v, out) = e.run(which, input);
        assert_eq!(e.stats(), (n, 0), "{which:?} helper result");
        assert_eq!(
            v,
            if c.ifindex == 0 { XDP_TX } else { XDP_REDIRECT },
            "{which:?} verdict"
        );
        assert_eq!(out, expect, "{which:?} output frame");
    }
    let (v, out) = e.run(Which::Tc, input);
    assert_eq!(e.stats(), (3, 0), "tc helper result");
    assert_eq!(v, TC_ACT_REDIRECT, "tc verdict");
    assert_eq!(out, expect, "tc output frame");
    assert!(ipv4_or_v6_ok(expect));
}

fn ipv4_or_v6_ok(frame: &[u8]) -> bool {
    frame[12..14] != [0x08, 0x00] || ipv4_csum_ok(&frame[14..34])
}

/// Both variants leave `input` untouched, with `ret` from the helper (None:
/// not selected, the helper was not called).
fn check_encap_refused(c: TunTestCfg, input: &[u8], ret: Option<i64>) {
    let e = EncapTest::load(c);
    for which in [Which::Xdp, Which::XdpIpip4] {
        let (v, out) = e.run(which, input);
        assert_eq!((v, &out[..]), (XDP_PASS, input), "{which:?}");
    }
    let (v, out) = e.run(Which::Tc, input);
    assert_eq!((v, &out[..]), (TC_ACT_OK, input), "tc");
    let (n, last) = e.stats();
    assert_eq!(n, 0, "nothing encapsulated");
    if let Some(r) = ret {
        assert_eq!(last, r, "helper return value");
    }
}

#[test]
fn encap_ipip_ipv4() {
    let inner = syn();
    let mut outer = ipv4_header(DIP, RIP, 4, 0, 0, true, 64, inner.len());
    outer.extend_from_slice(&inner);
    check_encap(
        cfg(XvsTun::v4(DIP, RIP)),
        &client_frame(&inner),
        &to_rs(0x0800, &outer),
    );
}

#[test]
fn encap_gue_ipv4() {
    let inner = syn();
    let l4 = gue(50000, GUE_PORT, 4, &inner);
    assert_eq!(l4.len(), 8 + 4 + inner.len());
    let mut outer = ipv4_header(DIP, RIP, 17, 0, 0, true, 64, l4.len());
    outer.extend_from_slice(&l4);
    check_encap(
        cfg(XvsTun::v4(DIP, RIP).gue(50000, GUE_PORT)),
        &client_frame(&inner),
        &to_rs(0x0800, &outer),
    );
}

#[test]
fn encap_copies_dscp_and_ecn_but_ce_becomes_ect0() {
    for (inner_tos, outer_tos) in [(0xb8u8, 0xb8u8), (0xb9, 0xb9), (0xba, 0xba), (0xbb, 0xba)] {
        let inner = ipv4_tos(CLIENT, VIP, 6, inner_tos, &tcp(40000, 80, 0x10));
        let mut outer = ipv4_header(DIP, RIP, 4, outer_tos, 0, true, 64, inner.len());
        outer.extend_from_slice(&inner);
        check_encap(
            cfg(XvsTun::v4(DIP, RIP)),
            &client_frame(&inner),
            &to_rs(0x0800, &outer),
        );
    }
}

#[test]
fn encap_ipv6_inner_in_ipv4() {
    let inner = ipv6(v6(2), v6(0x80), 6, 0x28, 0x12345, &tcp(40000, 80, 0x02));
    for gue_on in [false, true] {
        let (proto, l4) = if gue_on {
            (17, gue(50001, GUE_PORT, 41, &inner))
        } else {
            (41, inner.clone())
        };
        let mut outer = ipv4_header(DIP, RIP, proto, 0x28, 0, true, 64, l4.len());
        outer.extend_from_slice(&l4);
        let mut t = XvsTun::v4(DIP, RIP);
        if gue_on {
            t = t.gue(50001, GUE_PORT);
        }
        check_encap(cfg(t), &client_frame(&inner), &to_rs(0x0800, &outer));
    }
}

#[test]
fn encap_ipv6_outer() {
    let inner = syn();
    // IPIP (4 in 6): flow label = sport = 0.
    let outer = ipv6(v6(1), v6(2), 4, 0, 0, &inner);
    check_encap(
        cfg(XvsTun::v6(v6(1), v6(2))),
        &client_frame(&inner),
        &to_rs(0x86dd, &outer),
    );
    // GUE over IPv6: flow label = source port, UDP checksum 0.
    let outer = ipv6(v6(1), v6(2), 17, 0, 50002, &gue(50002, GUE_PORT, 4, &inner));
    check_encap(
        cfg(XvsTun::v6(v6(1), v6(2)).gue(50002, GUE_PORT)),
        &client_frame(&inner),
        &to_rs(0x86dd, &outer),
    );
    // 6 in 6.
    let inner6 = ipv6(v6(7), v6(8), 17, 0, 0, &udp(1, 53, b"q"));
    let outer = ipv6(v6(1), v6(2), 41, 0, 0, &inner6);
    check_encap(
        cfg(XvsTun::v6(v6(1), v6(2))),
        &client_frame(&inner6),
        &to_rs(0x86dd, &outer),
    );
}

#[test]
fn encap_without_df_gets_a_checksummed_header_without_df() {
    let mut inner = syn();
    inner[6] = 0; // clear DF
    let c = fold(sum16(&[&inner[..10], &inner[12..20]].concat(), 0));
    inner[10..12].copy_from_slice(&c.to_be_bytes());
    let e = EncapTest::load(cfg(XvsTun::v4(DIP, RIP)));
    for which in [Which::Xdp, Which::XdpIpip4, Which::Tc] {
        let (_, out) = e.run(which, &client_frame(&inner));
        let o = &out[14..34];
        assert!(ipv4_csum_ok(o), "{which:?}: outer checksum {o:02x?}");
        assert_eq!(o[6] & 0x40, 0, "{which:?}: no DF");
        // Everything but the ID (random) and checksum as with DF.
        let mut want = ipv4_header(DIP, RIP, 4, 0, 0, false, 64, inner.len());
        want[4..6].copy_from_slice(&o[4..6]);
        let c = fold(sum16(&[&want[..10], &want[12..20]].concat(), 0));
        want[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(o, &want[..], "{which:?}");
        assert_eq!(&out[34..], &inner[..]);
    }
}

#[test]
fn encap_ignores_ethernet_padding_and_redirects_to_ifindex() {
    // A 40-byte ACK padded to the 60-byte Ethernet minimum.
    let inner = ipv4(CLIENT, VIP, 6, &tcp(40000, 80, 0x10));
    let mut frame = client_frame(&inner);
    frame.resize(60, 0);
    let mut outer = ipv4_header(DIP, RIP, 4, 0, 0, true, 64, inner.len());
    outer.extend_from_slice(&inner);
    let mut expect = to_rs(0x0800, &outer);
    expect.extend_from_slice(&[0; 6]); // the padding stays behind the packet
    let mut c = cfg(XvsTun::v4(DIP, RIP));
    c.ifindex = 4242;
    check_encap(c, &frame, &expect);
}

#[test]
fn encap_gue_source_port_from_flow_hash() {
    let e = EncapTest::load(cfg(XvsTun::v4(DIP, RIP).gue(0, GUE_PORT)));
    for which in [Which::Xdp, Which::Tc] {
        let mut ports = Vec::new();
        for sport in [40000u16, 40000, 40001, 40002] {
            let inner = ipv4(CLIENT, VIP, 6, &tcp(sport, 80, 0x02));
            let (_, out) = e.run(which, &client_frame(&inner));
            let p = u16::from_be_bytes([out[34], out[35]]);
            assert!(
                p >= 49152,
                "{which:?}: source port {p} outside 49152..65535"
            );
            assert_eq!(u16::from_be_bytes([out[36], out[37]]), GUE_PORT);
            ports.push(p);
        }
        assert_eq!(ports[0], ports[1], "{which:?}: same flow, same port");
    }
}

#[test]
fn encap_refuses_what_it_cannot_encapsulate() {
    let c = cfg(XvsTun::v4(DIP, RIP));
    // Not IP: not selected.
    let mut arp = eth([0xff; 6], CLIENT_MAC, 0x0806, &[0u8; 28]);
    check_encap_refused(c, &arp, None);
    arp.truncate(14);
    arp.extend_from_slice(&[0; 2]);
    check_encap_refused(c, &arp, None);
    // IPv4 claiming more bytes than the frame has.
    let mut ip = syn();
    ip[2..4].copy_from_slice(&200u16.to_be_bytes());
    check_encap_refused(c, &client_frame(&ip), Some(-1));
    // Version 6 behind the IPv4 EtherType.
    let mut ip = syn();
    ip[0] = 0x65;
    check_encap_refused(c, &client_frame(&ip), Some(-1));
    // Bad outer family.
    let mut bad = c;
    bad.tun.family = 7;
    check_encap_refused(bad, &client_frame(&syn()), Some(-1));
}

#[test]
fn encap_enforces_mtu() {
    let inner = syn(); // 40 bytes
    let mut c = cfg(XvsTun::v4(DIP, RIP));
    c.tun.mtu = 60;
    let mut outer = ipv4_header(DIP, RIP, 4, 0, 0, true, 64, inner.len());
    outer.extend_from_slice(&inner);
    check_encap(c, &client_frame(&inner), &to_rs(0x0800, &outer));
    c.tun.mtu = 59;
    check_encap_refused(c, &client_frame(&inner), Some(-2));
    // GUE adds 32.
    let mut c = cfg(XvsTun::v4(DIP, RIP).gue(50000, GUE_PORT));
    c.tun.mtu = 71;
    check_encap_refused(c, &client_frame(&inner), Some(-2));
}

#[test]
fn encap_only_the_selected_service() {
    let mut c = cfg(XvsTun::v4(DIP, RIP));
    c.vip = VIP;
    c.vport_be = 80u16.to_be();
    check_encap_refused(
        c,
        &client_frame(&ipv4(CLIENT, VIP, 6, &tcp(1, 81, 2))),
        None,
    );
    check_encap_refused(
        c,
        &client_frame(&ipv4(CLIENT, OTHER, 6, &tcp(1, 80, 2))),
        None,
    );
    let inner = syn();
    let mut outer = ipv4_header(DIP, RIP, 4, 0, 0, true, 64, inner.len());
    outer.extend_from_slice(&inner);
    check_encap(c, &client_frame(&inner), &to_rs(0x0800, &outer));
}

// ---- decapsulation ----

fn decap() -> Decap {
    require_root();
    let mut d = Decap::load().unwrap_or_else(|e| panic!("loading the decap program: {e:?}"));
    d.add_address(v4(RIP)).unwrap();
    d.add_address(std::net::IpAddr::from(v6(2))).unwrap();
    d.set_gue_port(Some(GUE_PORT)).unwrap();
    d
}

fn from_director(ethertype: u16, outer: &[u8]) -> Vec<u8> {
    eth(RS_MAC, DIR_MAC, ethertype, outer)
}

fn ipip4(dst: [u8; 4], proto: u8, inner: &[u8]) -> Vec<u8> {
    let mut o = ipv4_header(DIP, dst, proto, 0, 0, true, 64, inner.len());
    o.extend_from_slice(inner);
    from_director(0x0800, &o)
}

fn gue4(dst: [u8; 4], l4: &[u8]) -> Vec<u8> {
    let mut o = ipv4_header(DIP, dst, 17, 0, 0, true, 64, l4.len());
    o.extend_from_slice(l4);
    from_director(0x0800, &o)
}

fn counts(passed: u64, ipip: u64, gue: u64, malformed: u64) -> DecapCounters {
    DecapCounters {
        passed,
        ipip,
        gue,
        malformed,
        error: 0,
    }
}

/// Both programs, each on a fresh Decap: verdict PASS/OK, output, counters.
fn check_decap(input: &[u8], output: &[u8], expect: DecapCounters) {
    for (prog, pass) in [(DecapProg::Xdp, XDP_PASS), (DecapProg::Tc, TC_ACT_OK)] {
        let d = decap();
        let (v, out) = d
            .test_run(prog, input)
            .unwrap_or_else(|e| panic!("{prog:?}: {e:?}"));
        assert_eq!(v, pass, "{prog:?} verdict");
        assert_eq!(out, output, "{prog:?} output frame");
        assert_eq!(d.counters().unwrap(), expect, "{prog:?} counters");
    }
}

fn inner_frame(inner: &[u8]) -> Vec<u8> {
    let et = if inner[0] >> 4 == 6 { 0x86dd } else { 0x0800 };
    from_director(et, inner)
}

#[test]
fn decap_ipip() {
    let inner = syn();
    check_decap(
        &ipip4(RIP, 4, &inner),
        &inner_frame(&inner),
        counts(0, 1, 0, 0),
    );
    let inner6 = ipv6(v6(7), v6(8), 6, 0, 0, &tcp(1, 80, 2));
    check_decap(
        &ipip4(RIP, 41, &inner6),
        &inner_frame(&inner6),
        counts(0, 1, 0, 0),
    );
}

#[test]
fn decap_ipip_over_ipv6() {
    let inner = syn();
    let f = from_director(0x86dd, &ipv6(v6(1), v6(2), 4, 0, 0, &inner));
    check_decap(&f, &inner_frame(&inner), counts(0, 1, 0, 0));
    let f = from_director(
        0x86dd,
        &ipv6(v6(1), v6(2), 17, 0, 0, &gue(50000, GUE_PORT, 4, &inner)),
    );
    check_decap(&f, &inner_frame(&inner), counts(0, 0, 1, 0));
    // IPv6 in IPv6 (next header 41), what the director sends an IPv6 real
    // server for `-i`.
    let inner6 = ipv6(v6(7), v6(8), 6, 0, 0, &tcp(40000, 80, 0x02));
    let f = from_director(0x86dd, &ipv6(v6(1), v6(2), 41, 0, 0, &inner6));
    check_decap(&f, &inner_frame(&inner6), counts(0, 1, 0, 0));
    // Not our IPv6 address.
    let f = from_director(0x86dd, &ipv6(v6(1), v6(3), 4, 0, 0, &inner));
    check_decap(&f, &f, counts(1, 0, 0, 0));
}

#[test]
fn decap_gue() {
    let inner = syn();
    check_decap(
        &gue4(RIP, &gue(50000, GUE_PORT, 4, &inner)),
        &inner_frame(&inner),
        counts(0, 0, 1, 0),
    );
    let inner6 = ipv6(v6(7), v6(8), 17, 0, 0, &udp(1, 53, b"q"));
    check_decap(
        &gue4(RIP, &gue(50000, GUE_PORT, 41, &inner6)),
        &inner_frame(&inner6),
        counts(0, 0, 1, 0),
    );
    // GUE version 1: the IP header right after UDP.
    check_decap(
        &gue4(RIP, &udp(50000, GUE_PORT, &inner)),
        &inner_frame(&inner),
        counts(0, 0, 1, 0),
    );
    // Version 0 with two option words (Hlen 2, flags 0): skipped.
    let mut g = vec![0x02, 4, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd, 1, 2, 3, 4];
    g.extend_from_slice(&inner);
    check_decap(
        &gue4(RIP, &udp(50000, GUE_PORT, &g)),
        &inner_frame(&inner),
        counts(0, 0, 1, 0),
    );
}

#[test]
fn decap_passes_other_traffic() {
    let inner = syn();
    let cases = [
        (
            "TCP to the RS",
            from_director(0x0800, &ipv4(CLIENT, RIP, 6, &tcp(1, 80, 2))),
        ),
        (
            "UDP to another port",
            gue4(RIP, &gue(50000, GUE_PORT + 1, 4, &inner)),
        ),
        ("IPIP to another address", ipip4(OTHER, 4, &inner)),
        (
            "GUE to another address",
            gue4(OTHER, &gue(50000, GUE_PORT, 4, &inner)),
        ),
        (
            "GUE control message",
            gue4(RIP, &udp(50000, GUE_PORT, &[0x20, 0, 0, 0, 1, 2, 3, 4])),
        ),
        (
            "ICMP",
            from_director(0x0800, &ipv4(CLIENT, RIP, 1, &[8, 0, 0, 0, 0, 1, 0, 1])),
        ),
        ("ARP", eth([0xff; 6], DIR_MAC, 0x0806, &[0u8; 28])),
        (
            "IPv6 TCP",
            from_director(0x86dd, &ipv6(v6(1), v6(2), 6, 0, 0, &tcp(1, 80, 2))),
        ),
    ];
    for (what, f) in cases {
        eprintln!("case: {what}");
        check_decap(&f, &f, counts(1, 0, 0, 0));
    }
    // An outer fragment: the stack's business.
    let mut f = ipip4(RIP, 4, &inner);
    f[14 + 6] = 0x20; // MF, no DF
    let c = fold(sum16(&[&f[14..24], &f[26..34]].concat(), 0));
    f[24..26].copy_from_slice(&c.to_be_bytes());
    check_decap(&f, &f, counts(1, 0, 0, 0));
}

#[test]
fn decap_gue_off_passes_gue() {
    let f = gue4(RIP, &gue(50000, GUE_PORT, 4, &syn()));
    for prog in [DecapProg::Xdp, DecapProg::Tc] {
        let mut d = decap();
        d.set_gue_port(None).unwrap();
        assert_eq!(d.gue_port().unwrap(), None);
        let (_, out) = d.test_run(prog, &f).unwrap();
        assert_eq!(out, f);
        assert_eq!(d.counters().unwrap(), counts(1, 0, 0, 0));
    }
}

#[test]
fn decap_leaves_malformed_tunnel_packets_alone() {
    let inner = syn();
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    // Inner header cut at 10 bytes (outer length consistent with it).
    cases.push(("truncated inner", ipip4(RIP, 4, &inner[..10])));
    // Protocol 4 but an IPv6 header inside.
    cases.push((
        "inner version mismatch",
        ipip4(RIP, 4, &ipv6(v6(7), v6(8), 6, 0, 0, &tcp(1, 80, 2))),
    ));
    // Inner claims more than the outer carries.
    let mut big = inner.clone();
    big[2..4].copy_from_slice(&41u16.to_be_bytes());
    cases.push(("inner longer than outer", ipip4(RIP, 4, &big)));
    // Outer total length shorter than its header.
    let mut f = ipip4(RIP, 4, &inner);
    f[16..18].copy_from_slice(&19u16.to_be_bytes());
    cases.push(("outer tot_len < ihl", f));
    // Outer IHL 4.
    let mut f = ipip4(RIP, 4, &inner);
    f[14] = 0x44;
    cases.push(("outer ihl 4", f));
    // GUE: UDP length beyond the packet, version 2, flags set, truncated.
    let mut l4 = gue(50000, GUE_PORT, 4, &inner);
    l4[4..6].copy_from_slice(&200u16.to_be_bytes());
    cases.push(("GUE udp length too big", gue4(RIP, &l4)));
    let mut l4 = gue(50000, GUE_PORT, 4, &inner);
    l4[8] = 0x80;
    cases.push(("GUE version 2", gue4(RIP, &l4)));
    let mut l4 = gue(50000, GUE_PORT, 4, &inner);
    l4[10] = 0x80;
    cases.push(("GUE flags", gue4(RIP, &l4)));
    cases.push(("GUE header cut", gue4(RIP, &udp(50000, GUE_PORT, &[0, 4]))));
    cases.push((
        "GUE unknown inner protocol",
        gue4(RIP, &gue(50000, GUE_PORT, 6, &inner)),
    ));
    for (what, f) in cases {
        eprintln!("case: {what}");
        check_decap(&f, &f, counts(0, 0, 0, 1));
    }
}

#[test]
fn decap_addresses_are_configurable() {
    let mut d = decap();
    assert_eq!(
        d.addresses().unwrap(),
        vec![v4(RIP), std::net::IpAddr::from(v6(2))]
    );
    assert_eq!(d.gue_port().unwrap(), Some(GUE_PORT));
    d.remove_address(v4(RIP)).unwrap();
    let f = ipip4(RIP, 4, &syn());
    let (_, out) = d.test_run(DecapProg::Tc, &f).unwrap();
    assert_eq!(out, f, "address removed: passed");
    assert!(d.remove_address(v4(RIP)).is_err());
}

#[test]
fn encap_then_decap_round_trip() {
    // Director's output fed to the real server's program gives the client's
    // packet back (with the director's MACs).
    let inner = syn();
    for t in [XvsTun::v4(DIP, RIP), XvsTun::v4(DIP, RIP).gue(0, GUE_PORT)] {
        let e = EncapTest::load(cfg(t));
        for which in [Which::Xdp, Which::Tc] {
            let (_, enc) = e.run(which, &client_frame(&inner));
            for prog in [DecapProg::Xdp, DecapProg::Tc] {
                let d = decap();
                let (_, dec) = d.test_run(prog, &enc).unwrap();
                assert_eq!(
                    dec,
                    eth(RS_MAC, EG_MAC, 0x0800, &inner),
                    "{which:?} -> {prog:?}"
                );
            }
        }
    }
}
