//! LVS-TUN through the real director program (`bpf/xvs.c`): fixtures with
//! BPF_PROG_TEST_RUN for XDP and tc (IPIP and GUE frames byte for byte, the
//! MTU check, the fallbacks), and a TCP connection end to end through network
//! namespaces with the director in tc mode and the xvs decap program on the
//! real server; the same lab with the director in XDP finds the path MTU
//! through the director (its fragmentation needed), by TUN and, without
//! the decap program, by DR.
//!
//! ```text
//!  client ns                 director ns                       real-server ns
//!  c0 198.18.0.2 ------------ d0 198.18.0.1 (tc: xvs_tc)
//!                             d1 198.18.1.1 ------------------- r0 198.18.1.2 (IPIP)
//!                                (mtu 1600)                        198.18.1.3 (GUE 6080)
//!                                                                  (tc: xvs decap)
//!  c1 198.18.3.2 ------------------------------------------------ r1 198.18.3.1
//!                                                               lo: VIP 198.18.2.1/32
//! ```
//!
//! Needs root; fails (never skips) without it. Namespaces `xvs-tun-<pid>-*`
//! are deleted by Drop guards.

mod common;
mod tun_common;

use std::{
    io::{Read, Write},
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    thread,
    time::{Duration, Instant},
};

use tun_common::*;
use xvs_core::persist::Sysctls;
use xvs_datapath::{decap::Decap, verdict as v, Counters, Datapath, NextHop, Prog, L2};

const CLIENT_MAC: Mac = [0x02, 0x78, 0x76, 0x75, 0x00, 0x01];
const DIRECTOR_MAC: Mac = [0x02, 0x78, 0x76, 0x75, 0x00, 0x02];
const RS_MAC: Mac = [0x02, 0x78, 0x76, 0x75, 0x00, 0x03];
const EGRESS_MAC: Mac = [0x02, 0x78, 0x76, 0x75, 0x00, 0x04];
const CLIENT: [u8; 4] = [198, 18, 0, 2];
const VIP: [u8; 4] = [198, 18, 2, 1];
const TUN_SRC: [u8; 4] = [198, 18, 1, 1];
const RS_IPIP: [u8; 4] = [198, 18, 1, 2];
const RS_GUE: [u8; 4] = [198, 18, 1, 3];
const GUE_PORT: u16 = 6080;

/// TCP VIP:80 -> IPIP to RS_IPIP, VIP:8080 -> GUE to RS_GUE, VIP:9090 -> GRE.
fn rules() -> xvs_core::table::IpvsTable {
    common::table(&[
        "-A -t 198.18.2.1:80 -s rr",
        "-a -t 198.18.2.1:80 -r 198.18.1.2 -i",
        "-A -t 198.18.2.1:8080 -s rr",
        "-a -t 198.18.2.1:8080 -r 198.18.1.3 -i --tun-type gue --tun-port 6080",
        "-A -t 198.18.2.1:9090 -s rr",
        "-a -t 198.18.2.1:9090 -r 198.18.1.4 -i --tun-type gre",
    ])
}

fn l2(ifindex: u32, tun_src: Option<[u8; 4]>, mtu: u16) -> L2 {
    L2 {
        default: NextHop {
            mac: RS_MAC,
            src_mac: EGRESS_MAC,
            ifindex,
        },
        tun_saddr: tun_src.map(v4),
        tun_mtu: mtu,
        ..L2::default()
    }
}

fn datapath(l2: &L2) -> Datapath {
    let mut dp = common::load();
    dp.sync(&rules(), &Sysctls::default(), l2).unwrap();
    dp
}

/// The GUE source port `xvs_tun_of()` derives from the tuple (fields as
/// the program holds them: addresses and ports in network order in memory).
fn gue_sport(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, proto: u8) -> u16 {
    let w = |b: [u8; 4]| u32::from_ne_bytes(b);
    let p = |x: u16| u32::from(u16::from_ne_bytes(x.to_be_bytes()));
    let mut h = w(src) ^ w(dst) ^ ((p(sport) << 16) | p(dport)) ^ u32::from(proto);
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    // xvs_gue_sport()
    h ^= h >> 16;
    49152 + (h & 0x3fff) as u16
}

fn client_frame(dport: u16, flags: u8, payload: usize) -> (Vec<u8>, Vec<u8>) {
    let mut l4 = tcp(40000, dport, flags);
    l4.extend((0..payload).map(|i| i as u8));
    let inner = ipv4(CLIENT, VIP, 6, &l4);
    (eth(DIRECTOR_MAC, CLIENT_MAC, 0x0800, &inner), inner)
}

fn ipip_frame(inner: &[u8], rs: [u8; 4]) -> Vec<u8> {
    // Inner DF: outer DF and ID 0; TOS 0; TTL 64.
    let mut p = ipv4_header(TUN_SRC, rs, 4, 0, 0, true, 64, inner.len());
    p.extend_from_slice(inner);
    eth(RS_MAC, EGRESS_MAC, 0x0800, &p)
}

fn gue_frame(inner: &[u8], sport: u16) -> Vec<u8> {
    let l4 = gue(sport, GUE_PORT, 4, inner);
    let mut p = ipv4_header(TUN_SRC, RS_GUE, 17, 0, 0, true, 64, l4.len());
    p.extend_from_slice(&l4);
    eth(RS_MAC, EGRESS_MAC, 0x0800, &p)
}

fn fwd_verdict(prog: Prog) -> u32 {
    match prog {
        Prog::Xdp => v::XDP_TX,
        Prog::Tc => v::TC_ACT_REDIRECT,
    }
}

fn drop_verdict(prog: Prog) -> u32 {
    match prog {
        Prog::Xdp => v::XDP_DROP,
        Prog::Tc => v::TC_ACT_SHOT,
    }
}

fn pass_verdict(prog: Prog) -> u32 {
    match prog {
        Prog::Xdp => v::XDP_PASS,
        Prog::Tc => v::TC_ACT_OK,
    }
}

const PROGS: [Prog; 2] = [Prog::Xdp, Prog::Tc];

#[test]
fn ipip_syn_and_ack_are_encapsulated_byte_for_byte() {
    for prog in PROGS {
        let dp = datapath(&l2(0, Some(TUN_SRC), 1500));
        for flags in [0x02, 0x10] {
            let (input, inner) = client_frame(80, flags, 0);
            let got = dp.test_run(prog, &input).unwrap();
            assert_eq!(got.verdict, fwd_verdict(prog), "{prog:?} {flags:#x}");
            assert_eq!(
                got.packet,
                ipip_frame(&inner, RS_IPIP),
                "{prog:?} {flags:#x}"
            );
            assert!(ipv4_csum_ok(&got.packet[14..]), "{prog:?} outer checksum");
        }
        assert_eq!(
            dp.counters().unwrap(),
            Counters {
                forwarded: 2,
                ..Counters::default()
            },
            "{prog:?}"
        );
        assert_eq!(dp.conn_count(), 1, "{prog:?}");
    }
}

#[test]
fn gue_syn_is_encapsulated_byte_for_byte_with_a_flow_source_port() {
    let sport = gue_sport(CLIENT, VIP, 40000, 8080, 6);
    assert!(sport >= 49152);
    for prog in PROGS {
        let dp = datapath(&l2(0, Some(TUN_SRC), 0));
        // SYN then a data segment: the same flow keeps its source port.
        for (flags, payload) in [(0x02, 0), (0x18, 100)] {
            let (input, inner) = client_frame(8080, flags, payload);
            let got = dp.test_run(prog, &input).unwrap();
            assert_eq!(got.verdict, fwd_verdict(prog), "{prog:?}");
            assert_eq!(got.packet, gue_frame(&inner, sport), "{prog:?}");
            assert!(ipv4_csum_ok(&got.packet[14..]), "{prog:?} outer checksum");
        }
        assert_eq!(
            dp.counters().unwrap(),
            Counters {
                forwarded: 2,
                ..Counters::default()
            },
            "{prog:?}"
        );
    }
}

#[test]
fn egress_ifindex_means_redirect() {
    for prog in PROGS {
        let dp = datapath(&l2(4242, Some(TUN_SRC), 0));
        let (input, inner) = client_frame(80, 0x02, 0);
        let got = dp.test_run(prog, &input).unwrap();
        let want = match prog {
            Prog::Xdp => v::XDP_REDIRECT,
            Prog::Tc => v::TC_ACT_REDIRECT,
        };
        assert_eq!(got.verdict, want, "{prog:?}");
        assert_eq!(got.packet, ipip_frame(&inner, RS_IPIP), "{prog:?}");
    }
}

/// What the director answers a packet too big for its tunnel with: a
/// fragmentation needed from the VIP back to the client, next-hop MTU
/// `mtu` (the tunnel's MTU less its overhead), sent back where the packet
/// came from.
fn frag_needed_to_client(inner: &[u8], mtu: u16) -> Vec<u8> {
    eth(
        CLIENT_MAC,
        DIRECTOR_MAC,
        0x0800,
        &common::answer4(inner, 4, mtu),
    )
}

/// The configured tunnel MTU (1500): a packet that fits is tunnelled; one
/// byte over, with DF, is answered with a fragmentation needed carrying
/// what fits (1480 by IPIP, 1468 by GUE), as the kernel's IPVS answers it,
/// so the client's TCP lowers its segments (path MTU discovery); without
/// DF (the kernel's IPVS would fragment the tunnel's packet; XDP and tc
/// cannot) it is dropped. Each one over counts as tun_dropped.
#[test]
fn over_the_mtu_gets_fragmentation_needed_at_the_mtu_is_sent() {
    for prog in PROGS {
        let dp = datapath(&l2(0, Some(TUN_SRC), 1500));
        // 20 + 20 + 1440 = 1480 inner bytes: 1500 with IPIP, fits exactly.
        let (input, inner) = client_frame(80, 0x02, 1440);
        let got = dp.test_run(prog, &input).unwrap();
        assert_eq!(got.verdict, fwd_verdict(prog), "{prog:?} at the MTU");
        assert_eq!(got.packet, ipip_frame(&inner, RS_IPIP), "{prog:?}");
        // 1481 inner bytes: one over.
        let (input, inner) = client_frame(80, 0x10, 1441);
        let got = dp.test_run(prog, &input).unwrap();
        assert_eq!(got.verdict, fwd_verdict(prog), "{prog:?} over the MTU");
        assert_eq!(got.packet, frag_needed_to_client(&inner, 1480), "{prog:?}");
        assert_eq!(common::inet_csum(&got.packet[34..]), 0, "{prog:?}");
        // GUE: 32 bytes of overhead, so 1468 + 1 is over.
        let (input, inner) = client_frame(8080, 0x02, 1469 - 40);
        let got = dp.test_run(prog, &input).unwrap();
        assert_eq!(got.verdict, fwd_verdict(prog), "{prog:?} GUE over the MTU");
        assert_eq!(got.packet, frag_needed_to_client(&inner, 1468), "{prog:?}");
        // Without DF: dropped, nothing sent.
        let input = eth(
            DIRECTOR_MAC,
            CLIENT_MAC,
            0x0800,
            &common::without_df(&inner),
        );
        let got = dp.test_run(prog, &input).unwrap();
        assert_eq!(got.verdict, drop_verdict(prog), "{prog:?} no DF");
        assert_eq!(
            dp.counters().unwrap(),
            Counters {
                forwarded: 1,
                tun_dropped: 3,
                ..Counters::default()
            },
            "{prog:?}"
        );
    }
}

#[test]
fn gre_is_dropped_and_counted() {
    for prog in PROGS {
        let dp = datapath(&l2(0, Some(TUN_SRC), 0));
        let (input, _) = client_frame(9090, 0x02, 0);
        let got = dp.test_run(prog, &input).unwrap();
        assert_eq!(got.verdict, drop_verdict(prog), "{prog:?}");
        assert_eq!(
            dp.counters().unwrap(),
            Counters {
                tun_dropped: 1,
                ..Counters::default()
            },
            "{prog:?}"
        );
    }
}

#[test]
fn without_a_tunnel_source_tun_goes_to_the_stack_unchanged() {
    for prog in PROGS {
        let dp = datapath(&l2(0, None, 0));
        let (input, _) = client_frame(80, 0x02, 0);
        let got = dp.test_run(prog, &input).unwrap();
        assert_eq!(got.verdict, pass_verdict(prog), "{prog:?}");
        assert_eq!(got.packet, input, "{prog:?}");
        assert_eq!(
            dp.counters().unwrap(),
            Counters {
                local: 1,
                ..Counters::default()
            },
            "{prog:?}"
        );
    }
}

#[test]
fn per_real_tunnel_source_overrides_the_default() {
    let mut l2 = l2(0, Some([198, 18, 9, 9]), 0);
    l2.tun_saddr_by_addr.insert(v4(RS_IPIP), v4(TUN_SRC));
    let dp = datapath(&l2);
    let (input, inner) = client_frame(80, 0x02, 0);
    let got = dp.test_run(Prog::Tc, &input).unwrap();
    assert_eq!(got.packet, ipip_frame(&inner, RS_IPIP));
}

// ---- end to end ----------------------------------------------------------

const VIP_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 1);
const PORT: u16 = 80;
const TUN_MTU: u16 = 1600;
const D1_MAC: Mac = [0x02, 0x78, 0x76, 0x75, 0x01, 0x03];
const R0_MAC: Mac = [0x02, 0x78, 0x76, 0x75, 0x01, 0x04];

type Topology = TunTopology;

fn topology() -> Topology {
    topology_mtu(TUN_MTU)
}

/// The lab with `mtu` on the director's link to the real server.
fn topology_mtu(mtu: u16) -> Topology {
    let t = tun_topology(["tdc", "tdd", "tds"], D1_MAC, R0_MAC, VIP_ADDR, mtu);
    // A second address on the real server, for the GUE real server.
    t.server.ip(&["addr", "add", "198.18.1.3/24", "dev", "r0"]);
    t
}

fn client_request(msg: &str) -> std::io::Result<String> {
    let vip = SocketAddr::new(IpAddr::V4(VIP_ADDR), PORT);
    let mut s = TcpStream::connect_timeout(&vip, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(msg.as_bytes())?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    Ok(resp)
}

fn bind_vip() -> std::io::Result<TcpListener> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpListener::bind((VIP_ADDR, PORT)) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(50));
            }
            r => return r,
        }
    }
}

fn exchange(t: &Topology, msg: &str) {
    let listener = t
        .server
        .enter(|| bind_vip().expect("bind VIP:80 in the server ns"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let (served, answered) = thread::scope(|s| {
        let server = s.spawn(|| common::serve_one(listener, deadline));
        let answered = t.client.enter(|| client_request(msg));
        (server.join().unwrap(), answered)
    });
    let peer = served.expect("real server side");
    assert_eq!(peer.ip(), v4(CLIENT), "RS sees the client");
    let resp = answered.expect("client request to the VIP through the xvs TUN director");
    assert_eq!(resp, format!("real server says: {msg}"));
}

/// 256 KiB and a newline: GSO skbs through encapsulation and decapsulation.
fn bulk() -> String {
    let mut s: String = (0..1 << 18)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    s.push('\n');
    s
}

#[test]
fn tcp_through_xvs_tc_director_over_ipip_and_gue_to_xvs_decap() {
    tcp_through_tun_director(|d1| L2 {
        default: NextHop {
            mac: R0_MAC,
            src_mac: D1_MAC,
            ifindex: d1,
        },
        tun_saddr: Some(v4(TUN_SRC)),
        tun_mtu: TUN_MTU,
        ..L2::default()
    });
}

/// The same with an empty `L2`: the real servers' MAC and the egress device
/// (d1) from the director's FIB and neighbour tables, the tunnel source from
/// the FIB too (BPF_FIB_LOOKUP_SRC: d1's 198.18.1.1). Only d0 forwards
/// (`net.ipv4.conf.d0.forwarding=1`, which bpf_fib_lookup needs on the
/// ingress device; `ip_forward` stays 0 and the director still has no
/// route to the VIP). The real server's MAC is not resolved at first: tc
/// sends those packets with bpf_redirect_neigh.
#[test]
fn tcp_through_xvs_tc_director_with_next_hops_and_tunnel_source_from_the_fib() {
    tcp_through_tun_director(|_| L2::default());
}

fn tcp_through_tun_director(l2_for: impl FnOnce(u32) -> L2) {
    require_root();
    let t = topology();
    let mut dp = common::load();
    let (_att, d1) = t.director.enter(|| {
        let d1 = xvs_datapath::ifindex("d1").expect("d1 in the director ns");
        (dp.attach_tc("d0").expect("attach xvs_tc to d0"), d1)
    });
    // rr over an IPIP and a GUE real server (both addresses on r0).
    let rules = common::table(&[
        "-A -t 198.18.2.1:80 -s rr",
        "-a -t 198.18.2.1:80 -r 198.18.1.2 -i",
        "-a -t 198.18.2.1:80 -r 198.18.1.3 -i --tun-type gue --tun-port 6080",
    ]);
    let l2 = l2_for(d1);
    let fib = l2.default.is_fib();
    if fib {
        t.director.sysctl(&["net.ipv4.conf.d0.forwarding=1"]);
    }
    dp.sync(&rules, &Sysctls::default(), &l2).unwrap();

    let mut decap = Decap::load().unwrap_or_else(|e| panic!("loading decap: {e:?}"));
    decap.add_address(v4(RS_IPIP)).unwrap();
    decap.add_address(v4(RS_GUE)).unwrap();
    decap.set_gue_port(Some(GUE_PORT)).unwrap();
    let _datt = t
        .server
        .enter(|| decap.attach_tc("r0").expect("attach decap to r0"));
    let before = dp.counters().unwrap();
    let dbefore = decap.counters().unwrap();

    // rr: each real server gets a small and a bulk connection.
    exchange(&t, "hello over TUN 1\n");
    exchange(&t, "hello over TUN 2\n");
    let big = bulk();
    exchange(&t, &big);
    exchange(&t, &big);

    let after = dp.counters().unwrap();
    let dafter = decap.counters().unwrap();
    println!("director {before:?} -> {after:?}; decap {dbefore:?} -> {dafter:?}");
    // Sent with the next hop known, or (FIB, first packets) with
    // bpf_redirect_neigh while the director resolved r0's MAC.
    let sent = (after.forwarded + after.no_neigh) - (before.forwarded + before.no_neigh);
    assert!(sent >= 16, "sent: {before:?} -> {after:?}");
    if !fib {
        assert_eq!(after.no_neigh, 0, "{after:?}");
    }
    assert!(
        after.forwarded >= before.forwarded + 8,
        "forwarded: {before:?} -> {after:?}"
    );
    assert_eq!(after.no_route, 0, "{after:?}");
    assert_eq!(after.tun_dropped, 0, "{after:?}");
    assert_eq!(after.local, 0, "{after:?}");
    assert!(
        dafter.ipip >= dbefore.ipip + 8,
        "ipip: {dbefore:?} -> {dafter:?}"
    );
    assert!(
        dafter.gue >= dbefore.gue + 8,
        "gue: {dbefore:?} -> {dafter:?}"
    );
    assert_eq!(dafter.malformed, 0, "{dafter:?}");
    assert_eq!(dafter.error, 0, "{dafter:?}");
}

/// Path MTU discovery through the tunnel: every link at 1500 bytes, so a
/// full-size segment from the client (1500) is 1520 bytes once tunnelled,
/// too big for the director's link to the real server. The director
/// answers the first one with a fragmentation needed (1480), the client's
/// TCP lowers its segments for the VIP and the upload goes through, where
/// without the message it would stall (full-size segments dropped each
/// time). XDP on the director (the client's checksum offload off, so it
/// sends full-size segments, not TSO skbs) and the xvs decap program in
/// XDP on the real server; next hops and the route's MTU from the FIB.
#[test]
fn tcp_upload_through_xdp_tun_at_mtu_1500_finds_the_path_mtu() {
    upload_finds_the_path_mtu(true);
}

/// The same lab in DR: the director's link to the real server at 1400, the
/// real server's own at 1500 (so its SYN-ACK offers an MSS of 1460 and
/// cannot spare the client the discovery). The director answers the first
/// full-size segment with a fragmentation needed (1400), as the kernel's
/// IPVS does, and the upload goes through at 1400.
#[test]
fn tcp_upload_through_xdp_dr_over_a_1400_link_finds_the_path_mtu() {
    upload_finds_the_path_mtu(false);
}

fn upload_finds_the_path_mtu(tun: bool) {
    require_root();
    let t = topology_mtu(if tun { 1500 } else { 1400 });
    t.server.ip(&["link", "set", "r0", "mtu", "1500"]);
    run(
        "ip",
        &[
            "netns",
            "exec",
            &t.client.name,
            "ethtool",
            "-K",
            "c0",
            "tx",
            "off",
        ],
    );
    t.director.sysctl(&["net.ipv4.conf.d0.forwarding=1"]);
    // the real server's MAC known (XDP sends nothing without it)
    t.director.ip(&[
        "neigh",
        "replace",
        "198.18.1.2",
        "lladdr",
        &mac(R0_MAC),
        "dev",
        "d1",
        "nud",
        "permanent",
    ]);
    let mut dp = common::load();
    let _att = t.director.enter(|| {
        dp.attach_xdp("d0", xvs_datapath::XdpMode::Driver)
            .expect("attach xvs_xdp to d0")
    });
    // XDP_TX or a redirect into a veth is delivered only with an XDP
    // program on its peer: a datapath without rules passes everything, on
    // the client's c0 (and in DR on the real server's r0; a NIC needs
    // nothing of the kind)
    let mut pass = common::load();
    let mut _patt = vec![t.client.enter(|| {
        pass.attach_xdp("c0", xvs_datapath::XdpMode::Driver)
            .expect("attach a rule-less xvs_xdp to c0")
    })];
    let how = if tun { "-i" } else { "-g" };
    let rules = common::table(&[
        "-A -t 198.18.2.1:80 -s rr",
        &format!("-a -t 198.18.2.1:80 -r 198.18.1.2 {how}"),
    ]);
    dp.sync(&rules, &Sysctls::default(), &L2::default())
        .unwrap();
    let mut decap = Decap::load().unwrap_or_else(|e| panic!("loading decap: {e:?}"));
    decap.add_address(v4(RS_IPIP)).unwrap();
    let _datt = if tun {
        Some(t.server.enter(|| {
            decap
                .attach_xdp("r0", xvs_datapath::XdpMode::Driver)
                .expect("attach decap (XDP) to r0")
        }))
    } else {
        _patt.push(t.server.enter(|| {
            pass.attach_xdp("r0", xvs_datapath::XdpMode::Driver)
                .expect("attach a rule-less xvs_xdp to r0")
        }));
        None
    };

    exchange(&t, "hello at the path MTU\n");
    exchange(&t, &bulk());

    let c = dp.counters().unwrap();
    println!("director {c:?}");
    // the too-big segments were answered, not sent on
    let told = if tun { c.tun_dropped } else { c.no_route };
    assert!(told >= 1, "{c:?}");
    assert!(c.forwarded >= 100, "{c:?}");
    let route = output("ip", &["-n", &t.client.name, "route", "get", "198.18.2.1"]);
    let want = if tun { "mtu 1480" } else { "mtu 1400" };
    assert!(
        route.contains(want),
        "the client learnt no path MTU ({want}) for the VIP: {route}"
    );
}
