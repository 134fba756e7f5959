//! Next hops from the kernel's FIB and neighbour tables, byte for byte, with
//! BPF_PROG_TEST_RUN (XDP and tc). An empty `L2` makes the programs ask
//! `bpf_fib_lookup()`; explicit `L2` entries still override it.
//!
//! Each test runs on a thread in a network namespace of its own
//! (`common::in_private_netns`), where it builds a small director: a veth
//! pair whose ends stand for the client side (`fx0`) and the server side
//! (`fx1`), forwarding on, permanent neighbour entries (so the expected MACs
//! are known), a route through a gateway. Packets are run "as if received"
//! on one of those devices (`Datapath::test_run_on`: XDP's ingress_ifindex,
//! the skb's device), which is what the FIB lookup starts from.
//!
//! ```text
//!  fx0 02:78:76:66:00:01  198.18.0.1/24, VIP 198.18.2.1/32
//!      neighbours: client 198.18.0.2, same-segment DR real server 198.18.0.10
//!  fx1 02:78:76:66:00:02  198.18.1.1/24
//!      neighbours: real server 198.18.1.2, gateway 198.18.1.254
//!      198.18.1.3: no neighbour entry; 198.18.20.0/24 via 198.18.1.254
//! ```
//!
//! Needs root; fails (never skips) without it.

mod common;
mod tun_common;

use std::{net::IpAddr, process::Command};

use common::in_private_netns;
use tun_common::{eth, ipv4, ipv4_header, tcp, udp, Mac};
use xvs_core::persist::Sysctls;
use xvs_datapath::{verdict::*, Counters, Datapath, NextHop, Prog, L2};

const FX0_MAC: Mac = [0x02, 0x78, 0x76, 0x66, 0x00, 0x01];
const FX1_MAC: Mac = [0x02, 0x78, 0x76, 0x66, 0x00, 0x02];
const CLIENT_MAC: Mac = [0x02, 0x78, 0x76, 0x66, 0x01, 0x01];
const RS_MAC: Mac = [0x02, 0x78, 0x76, 0x66, 0x01, 0x02];
const RS_NEAR_MAC: Mac = [0x02, 0x78, 0x76, 0x66, 0x01, 0x0a];
const GW_MAC: Mac = [0x02, 0x78, 0x76, 0x66, 0x01, 0xfe];
const OVERRIDE_MAC: Mac = [0x02, 0x78, 0x76, 0x66, 0x0f, 0x0f];

const CLIENT: [u8; 4] = [198, 18, 0, 2];
const VIP: [u8; 4] = [198, 18, 2, 1];
const RS: [u8; 4] = [198, 18, 1, 2];
const RS_NEAR: [u8; 4] = [198, 18, 0, 10];
const RS_UNRESOLVED: [u8; 4] = [198, 18, 1, 3];
const RS_FAR: [u8; 4] = [198, 18, 20, 5];
const FX1_ADDR: [u8; 4] = [198, 18, 1, 1];

const PROGS: [Prog; 2] = [Prog::Xdp, Prog::Tc];

fn mac(m: Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Runs a command in the calling thread's network namespace (a child
/// inherits it) and fails the test if it fails.
fn run(prog: &str, args: &[&str]) {
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

fn ip(args: &[&str]) {
    run("ip", args);
}

fn sysctl(setting: &str) {
    run("sysctl", &["-qw", setting]);
}

fn a(v: [u8; 4]) -> String {
    std::net::Ipv4Addr::from(v).to_string()
}

/// The director of the module comment, in the current (private) namespace.
/// Returns the ifindexes of fx0 and fx1.
fn director() -> (u32, u32) {
    ip(&[
        "link",
        "add",
        "fx0",
        "address",
        &mac(FX0_MAC),
        "type",
        "veth",
        "peer",
        "name",
        "fx1",
        "address",
        &mac(FX1_MAC),
    ]);
    ip(&["addr", "add", "198.18.0.1/24", "dev", "fx0"]);
    ip(&["addr", "add", "198.18.2.1/32", "dev", "fx0"]);
    ip(&["addr", "add", "198.18.1.1/24", "dev", "fx1"]);
    ip(&["link", "set", "fx0", "up"]);
    ip(&["link", "set", "fx1", "up"]);
    for (addr, m, dev) in [
        (CLIENT, CLIENT_MAC, "fx0"),
        (RS_NEAR, RS_NEAR_MAC, "fx0"),
        (RS, RS_MAC, "fx1"),
        ([198, 18, 1, 254], GW_MAC, "fx1"),
    ] {
        ip(&[
            "neigh",
            "replace",
            &a(addr),
            "lladdr",
            &mac(m),
            "dev",
            dev,
            "nud",
            "permanent",
        ]);
    }
    ip(&["route", "add", "198.18.20.0/24", "via", "198.18.1.254"]);
    // bpf_fib_lookup answers FWD_DISABLED unless the ingress device forwards.
    sysctl("net.ipv4.conf.all.forwarding=1");
    sysctl("net.ipv4.conf.fx0.forwarding=1");
    sysctl("net.ipv4.conf.fx1.forwarding=1");
    let idx = |n| xvs_datapath::ifindex(n).unwrap_or_else(|e| panic!("{n}: {e}"));
    (idx("fx0"), idx("fx1"))
}

fn datapath(rules: &[&str], l2: &L2) -> Datapath {
    let mut dp = common::load();
    dp.sync(&common::table(rules), &Sysctls::default(), l2)
        .unwrap();
    dp
}

fn syn_from_client(dport: u16) -> Vec<u8> {
    eth(
        FX0_MAC,
        CLIENT_MAC,
        0x0800,
        &ipv4(CLIENT, VIP, 6, &tcp(40000, dport, 0x02)),
    )
}

/// A TCP segment from the client's port `sport` to VIP:80 (`flags`).
fn seg_from_client(sport: u16, flags: u8) -> Vec<u8> {
    eth(
        FX0_MAC,
        CLIENT_MAC,
        0x0800,
        &ipv4(CLIENT, VIP, 6, &tcp(sport, 80, flags)),
    )
}

/// An IPv4 TCP packet of `len` bytes (headers and filler), `flags`.
fn tcp_packet(
    (src, sport): ([u8; 4], u16),
    (dst, dport): ([u8; 4], u16),
    flags: u8,
    len: usize,
) -> Vec<u8> {
    let mut l4 = tcp(sport, dport, flags);
    l4.resize(len - 20, 0x5a);
    ipv4(src, dst, 6, &l4)
}

/// IPv4 packet `ip` as fx0 receives it from the client.
fn from_client(ip: &[u8]) -> Vec<u8> {
    eth(FX0_MAC, CLIENT_MAC, 0x0800, ip)
}

/// The fragmentation needed (`mtu`) the director sends the client about
/// IPv4 packet `ip`, from the VIP, back out of fx0.
fn frag_needed_to_client(ip: &[u8], mtu: u16) -> Vec<u8> {
    eth(CLIENT_MAC, FX0_MAC, 0x0800, &common::answer4(ip, 4, mtu))
}

fn redirect(prog: Prog) -> u32 {
    match prog {
        Prog::Xdp => XDP_REDIRECT,
        Prog::Tc => TC_ACT_REDIRECT,
    }
}

fn dropped(prog: Prog) -> u32 {
    match prog {
        Prog::Xdp => XDP_DROP,
        Prog::Tc => TC_ACT_SHOT,
    }
}

/// An answer sent back out of the device the packet came in on.
fn answered(prog: Prog) -> u32 {
    match prog {
        Prog::Xdp => XDP_TX,
        Prog::Tc => TC_ACT_REDIRECT,
    }
}

fn passed(prog: Prog) -> u32 {
    match prog {
        Prog::Xdp => XDP_PASS,
        Prog::Tc => TC_ACT_OK,
    }
}

/// DR with an empty L2: the real server's MAC and the egress device (fx1,
/// not the ingress fx0: a redirect) come from the FIB; the IP packet is
/// untouched. An explicit `L2` entry for the address still wins.
#[test]
fn dr_next_hop_from_the_fib_and_explicit_l2_overrides_it() {
    common::require_root();
    in_private_netns(|| {
        let (_fx0, _fx1) = director();
        let rules = [
            "-A -t 198.18.2.1:80 -s rr",
            "-a -t 198.18.2.1:80 -r 198.18.1.2 -g",
        ];
        let input = syn_from_client(80);
        let ip_part = input[14..].to_vec();
        for prog in PROGS {
            let fx0 = xvs_datapath::ifindex("fx0").unwrap();
            let dp = datapath(&rules, &L2::default());
            let got = dp.test_run_on(prog, &input, fx0).unwrap();
            assert_eq!(got.verdict, redirect(prog), "{prog:?}");
            assert_eq!(
                got.packet,
                eth(RS_MAC, FX1_MAC, 0x0800, &ip_part),
                "{prog:?}"
            );
            assert_eq!(
                dp.counters().unwrap(),
                Counters {
                    forwarded: 1,
                    ..Counters::default()
                },
                "{prog:?}"
            );

            // Override: this MAC and "out of the ingress device".
            let mut l2 = L2::default();
            l2.by_addr.insert(
                IpAddr::V4(RS.into()),
                NextHop {
                    mac: OVERRIDE_MAC,
                    src_mac: FX0_MAC,
                    ifindex: 0,
                },
            );
            let dp = datapath(&rules, &l2);
            let got = dp.test_run_on(prog, &input, fx0).unwrap();
            let same_dev = match prog {
                Prog::Xdp => XDP_TX,
                Prog::Tc => TC_ACT_REDIRECT,
            };
            assert_eq!(got.verdict, same_dev, "{prog:?} override");
            assert_eq!(
                got.packet,
                eth(OVERRIDE_MAC, FX0_MAC, 0x0800, &ip_part),
                "{prog:?} override"
            );
        }
    });
}

/// DR to a real server on the ingress device's own segment: XDP_TX in XDP,
/// a redirect to the same device in tc, with the MACs from the FIB.
#[test]
fn dr_back_out_of_the_ingress_device() {
    common::require_root();
    in_private_netns(|| {
        let (fx0, _) = director();
        let rules = [
            "-A -t 198.18.2.1:80 -s rr",
            "-a -t 198.18.2.1:80 -r 198.18.0.10 -g",
        ];
        let input = syn_from_client(80);
        for prog in PROGS {
            let dp = datapath(&rules, &L2::default());
            let got = dp.test_run_on(prog, &input, fx0).unwrap();
            let want = match prog {
                Prog::Xdp => XDP_TX,
                Prog::Tc => TC_ACT_REDIRECT,
            };
            assert_eq!(got.verdict, want, "{prog:?}");
            assert_eq!(
                got.packet,
                eth(RS_NEAR_MAC, FX0_MAC, 0x0800, &input[14..]),
                "{prog:?}"
            );
        }
    });
}

/// NAT with an empty L2, both directions: the client's packet is DNATed and
/// sent to the real server's MAC out of fx1; the real server's reply (in on
/// fx1) is SNATed to the VIP and sent straight to the client's MAC out of
/// fx0, not handed to the stack (no accept_local needed).
#[test]
fn nat_both_directions_from_the_fib() {
    common::require_root();
    in_private_netns(|| {
        let (fx0, fx1) = director();
        let rules = [
            "-A -t 198.18.2.1:80 -s rr",
            "-a -t 198.18.2.1:80 -r 198.18.1.2:8080 -m",
            "-A -u 198.18.2.1:53 -s rr",
            "-a -u 198.18.2.1:53 -r 198.18.1.2:5353 -m",
        ];
        for prog in PROGS {
            let dp = datapath(&rules, &L2::default());
            // TCP
            let got = dp.test_run_on(prog, &syn_from_client(80), fx0).unwrap();
            assert_eq!(got.verdict, redirect(prog), "{prog:?} SYN");
            assert_eq!(
                got.packet,
                eth(
                    RS_MAC,
                    FX1_MAC,
                    0x0800,
                    &ipv4(CLIENT, RS, 6, &tcp(40000, 8080, 0x02))
                ),
                "{prog:?} SYN"
            );
            let synack = eth(
                FX1_MAC,
                RS_MAC,
                0x0800,
                &ipv4(RS, CLIENT, 6, &tcp(8080, 40000, 0x12)),
            );
            let got = dp.test_run_on(prog, &synack, fx1).unwrap();
            assert_eq!(got.verdict, redirect(prog), "{prog:?} SYN-ACK");
            assert_eq!(
                got.packet,
                eth(
                    CLIENT_MAC,
                    FX0_MAC,
                    0x0800,
                    &ipv4(VIP, CLIENT, 6, &tcp(80, 40000, 0x12))
                ),
                "{prog:?} SYN-ACK"
            );
            // UDP
            let q = eth(
                FX0_MAC,
                CLIENT_MAC,
                0x0800,
                &ipv4(CLIENT, VIP, 17, &udp(5000, 53, b"query!")),
            );
            let got = dp.test_run_on(prog, &q, fx0).unwrap();
            assert_eq!(got.verdict, redirect(prog), "{prog:?} query");
            assert_eq!(
                got.packet,
                eth(
                    RS_MAC,
                    FX1_MAC,
                    0x0800,
                    &ipv4(CLIENT, RS, 17, &udp(5000, 5353, b"query!"))
                ),
                "{prog:?} query"
            );
            let ans = eth(
                FX1_MAC,
                RS_MAC,
                0x0800,
                &ipv4(RS, CLIENT, 17, &udp(5353, 5000, b"answer")),
            );
            let got = dp.test_run_on(prog, &ans, fx1).unwrap();
            assert_eq!(got.verdict, redirect(prog), "{prog:?} answer");
            assert_eq!(
                got.packet,
                eth(
                    CLIENT_MAC,
                    FX0_MAC,
                    0x0800,
                    &ipv4(VIP, CLIENT, 17, &udp(53, 5000, b"answer"))
                ),
                "{prog:?} answer"
            );
            assert!(common::checksums_ok(&got.packet), "{prog:?}");
            assert_eq!(
                dp.counters().unwrap(),
                Counters {
                    forwarded: 2,
                    replied: 2,
                    ..Counters::default()
                },
                "{prog:?}"
            );
        }
    });
}

/// XDP metadata left for the tc program: magic, egress ifindex, next hop.
fn meta(ifindex: u32, nh: [u8; 4]) -> Vec<u8> {
    let mut m = 0x3173_7678u32.to_ne_bytes().to_vec();
    m.extend_from_slice(&ifindex.to_ne_bytes());
    m.extend_from_slice(&nh);
    m
}

/// A real server the FIB routes but whose neighbour (ARP) entry is missing:
/// tc hands the packet to bpf_redirect_neigh (a redirect: the kernel
/// resolves the MAC and sends it). XDP cannot: it passes the frame with
/// metadata (egress device, next hop) for xvs_tc on the same device, which
/// then does the same (the test run's output starts at the metadata). A NAT
/// frame is DNATed (without xvs_tc the stack forwards it and resolves the
/// neighbour); a DR frame gets a zero destination MAC (without xvs_tc the
/// stack drops it as not for this host, rather than take a packet for its
/// VIP as its own). Counted as `no_neigh`, never as forwarded.
#[test]
fn no_neighbour_entry() {
    common::require_root();
    in_private_netns(|| {
        let (fx0, fx1) = director();
        let input = syn_from_client(80);
        for prog in PROGS {
            // DR
            let dp = datapath(
                &[
                    "-A -t 198.18.2.1:80 -s rr",
                    "-a -t 198.18.2.1:80 -r 198.18.1.3 -g",
                ],
                &L2::default(),
            );
            let got = dp.test_run_on(prog, &input, fx0).unwrap();
            match prog {
                Prog::Xdp => {
                    assert_eq!(got.verdict, XDP_PASS, "DR");
                    let mut want = meta(fx1, RS_UNRESOLVED);
                    want.extend(eth([0; 6], CLIENT_MAC, 0x0800, &input[14..]));
                    assert_eq!(got.packet, want, "DR: metadata, no destination MAC");
                }
                Prog::Tc => {
                    assert_eq!(got.verdict, TC_ACT_REDIRECT, "DR");
                    assert_eq!(got.packet, input, "DR: left to the kernel");
                }
            }
            assert_eq!(
                dp.counters().unwrap(),
                Counters {
                    no_neigh: 1,
                    ..Counters::default()
                },
                "{prog:?} DR"
            );
            // NAT
            let dp = datapath(
                &[
                    "-A -t 198.18.2.1:80 -s rr",
                    "-a -t 198.18.2.1:80 -r 198.18.1.3:8080 -m",
                ],
                &L2::default(),
            );
            let got = dp.test_run_on(prog, &input, fx0).unwrap();
            let (verdict, mut want) = match prog {
                Prog::Xdp => (XDP_PASS, meta(fx1, RS_UNRESOLVED)),
                Prog::Tc => (TC_ACT_REDIRECT, vec![]),
            };
            want.extend(eth(
                FX0_MAC,
                CLIENT_MAC,
                0x0800,
                &ipv4(CLIENT, RS_UNRESOLVED, 6, &tcp(40000, 8080, 0x02)),
            ));
            assert_eq!(got.verdict, verdict, "{prog:?} NAT");
            assert_eq!(
                got.packet, want,
                "{prog:?} NAT: DNATed, MACs left to the kernel"
            );
            assert_eq!(
                dp.counters().unwrap(),
                Counters {
                    no_neigh: 1,
                    ..Counters::default()
                },
                "{prog:?} NAT"
            );
        }
    });
}

/// No neighbour entry for a gateway (TUN, outer destination behind
/// 198.18.1.253, which has none) or for a client (a NAT reply to
/// 198.18.0.3): the next hop left for bpf_redirect_neigh is the gateway
/// (the lookup replaced the destination by it), or the client. The TUN
/// packet is encapsulated first (outer source from the FIB, MACs as they
/// came); the reply SNATed first.
#[test]
fn no_neighbour_entry_for_a_gateway_or_a_client() {
    common::require_root();
    in_private_netns(|| {
        let (fx0, fx1) = director();
        ip(&["route", "add", "198.18.21.0/24", "via", "198.18.1.253"]);
        let input = syn_from_client(80);
        let inner = input[14..].to_vec();
        let mut outer = ipv4_header(FX1_ADDR, [198, 18, 21, 5], 4, 0, 0, true, 64, inner.len());
        outer.extend_from_slice(&inner);
        let encapsulated = eth(FX0_MAC, CLIENT_MAC, 0x0800, &outer);
        let client3 = [198, 18, 0, 3];
        for prog in PROGS {
            let dp = datapath(
                &[
                    "-A -t 198.18.2.1:80 -s rr",
                    "-a -t 198.18.2.1:80 -r 198.18.21.5 -i",
                    "-A -t 198.18.2.1:8080 -s rr",
                    "-a -t 198.18.2.1:8080 -r 198.18.1.2:80 -m",
                ],
                &L2::default(),
            );
            let got = dp.test_run_on(prog, &input, fx0).unwrap();
            let (verdict, mut want) = match prog {
                Prog::Xdp => (XDP_PASS, meta(fx1, [198, 18, 1, 253])),
                Prog::Tc => (TC_ACT_REDIRECT, vec![]),
            };
            want.extend_from_slice(&encapsulated);
            assert_eq!(got.verdict, verdict, "{prog:?} TUN");
            assert_eq!(got.packet, want, "{prog:?} TUN");

            // NAT: the client 198.18.0.3 connects (the real server's MAC is
            // known), its reply finds no neighbour entry for it.
            let syn = eth(
                FX0_MAC,
                CLIENT_MAC,
                0x0800,
                &ipv4(client3, VIP, 6, &tcp(40001, 8080, 0x02)),
            );
            let got = dp.test_run_on(prog, &syn, fx0).unwrap();
            assert_eq!(got.verdict, redirect(prog), "{prog:?} NAT in");
            let synack = eth(
                FX1_MAC,
                RS_MAC,
                0x0800,
                &ipv4(RS, client3, 6, &tcp(80, 40001, 0x12)),
            );
            let got = dp.test_run_on(prog, &synack, fx1).unwrap();
            let (verdict, mut want) = match prog {
                Prog::Xdp => (XDP_PASS, meta(fx0, client3)),
                Prog::Tc => (TC_ACT_REDIRECT, vec![]),
            };
            want.extend(eth(
                FX1_MAC,
                RS_MAC,
                0x0800,
                &ipv4(VIP, client3, 6, &tcp(8080, 40001, 0x12)),
            ));
            assert_eq!(got.verdict, verdict, "{prog:?} NAT reply");
            assert_eq!(got.packet, want, "{prog:?} NAT reply");
            assert_eq!(
                dp.counters().unwrap(),
                Counters {
                    forwarded: 1,
                    no_neigh: 2,
                    ..Counters::default()
                },
                "{prog:?}"
            );
        }
    });
}

/// Forwarding off on the ingress device: bpf_fib_lookup answers
/// FWD_DISABLED. Client packets are dropped (`no_route`); a NAT reply is
/// SNATed and handed to the stack (which, with the VIP as a local source,
/// would need accept_local: the old way).
#[test]
fn forwarding_off_on_the_ingress_device() {
    common::require_root();
    in_private_netns(|| {
        let (fx0, fx1) = director();
        sysctl("net.ipv4.conf.fx0.forwarding=0");
        sysctl("net.ipv4.conf.fx1.forwarding=0");
        for prog in PROGS {
            let dp = datapath(
                &[
                    "-A -t 198.18.2.1:80 -s rr",
                    "-a -t 198.18.2.1:80 -r 198.18.1.2 -g",
                ],
                &L2::default(),
            );
            let got = dp.test_run_on(prog, &syn_from_client(80), fx0).unwrap();
            let drop = dropped(prog);
            assert_eq!(got.verdict, drop, "{prog:?} DR");

            let dp = datapath(
                &[
                    "-A -t 198.18.2.1:80 -s rr",
                    "-a -t 198.18.2.1:80 -r 198.18.1.2:8080 -m",
                ],
                &L2::default(),
            );
            let got = dp.test_run_on(prog, &syn_from_client(80), fx0).unwrap();
            assert_eq!(got.verdict, drop, "{prog:?} NAT in");
            // The SYN was tracked before its next hop failed: the reply is
            // still the connection's.
            let synack = eth(
                FX1_MAC,
                RS_MAC,
                0x0800,
                &ipv4(RS, CLIENT, 6, &tcp(8080, 40000, 0x12)),
            );
            let got = dp.test_run_on(prog, &synack, fx1).unwrap();
            let pass = passed(prog);
            assert_eq!(got.verdict, pass, "{prog:?} NAT reply");
            assert_eq!(
                got.packet,
                eth(
                    FX1_MAC,
                    RS_MAC,
                    0x0800,
                    &ipv4(VIP, CLIENT, 6, &tcp(80, 40000, 0x12))
                ),
                "{prog:?} NAT reply: SNATed, MACs untouched"
            );
            assert_eq!(
                dp.counters().unwrap(),
                Counters {
                    no_route: 2,
                    ..Counters::default()
                },
                "{prog:?}"
            );
        }
    });
}

/// LVS-TUN with an empty L2 and no tunnel source: the outer source is the
/// one the FIB picks for the route (fx1's address, BPF_FIB_LOOKUP_SRC), the
/// next hop is the gateway of 198.18.20.0/24. A configured tunnel source is
/// kept with the FIB's next hop.
#[test]
fn tun_source_and_next_hop_from_the_fib() {
    common::require_root();
    in_private_netns(|| {
        let (fx0, _) = director();
        let rules = TUN_RULES;
        let input = syn_from_client(80);
        let inner = input[14..].to_vec();
        let outer = |src: [u8; 4]| {
            let mut p = ipv4_header(src, RS_FAR, 4, 0, 0, true, 64, inner.len());
            p.extend_from_slice(&inner);
            eth(GW_MAC, FX1_MAC, 0x0800, &p)
        };
        for prog in PROGS {
            let dp = datapath(&rules, &L2::default());
            let got = dp.test_run_on(prog, &input, fx0).unwrap();
            assert_eq!(got.verdict, redirect(prog), "{prog:?}");
            assert_eq!(got.packet, outer(FX1_ADDR), "{prog:?}");
            assert_eq!(
                dp.counters().unwrap(),
                Counters {
                    forwarded: 1,
                    ..Counters::default()
                },
                "{prog:?}"
            );
            let l2 = L2 {
                tun_saddr: Some(IpAddr::V4([198, 18, 1, 77].into())),
                ..L2::default()
            };
            let dp = datapath(&rules, &l2);
            let got = dp.test_run_on(prog, &input, fx0).unwrap();
            assert_eq!(got.verdict, redirect(prog), "{prog:?} configured source");
            assert_eq!(
                got.packet,
                outer([198, 18, 1, 77]),
                "{prog:?} configured source"
            );
        }
    });
}

/// The FIB's answers are cached (per CPU, for a second): a changed
/// neighbour MAC is picked up once the entry has expired, and a neighbour
/// that appears is used at once (a missing one is never cached). Whether
/// the old MAC is still used within the second depends on the CPU the run
/// lands on, so that is not asserted.
#[test]
fn cached_next_hops_follow_neighbour_changes() {
    common::require_root();
    in_private_netns(|| {
        let (fx0, fx1) = director();
        let input = syn_from_client(80);
        let ip_part = input[14..].to_vec();
        let neigh = |addr: [u8; 4], m: Mac| {
            ip(&[
                "neigh",
                "replace",
                &a(addr),
                "lladdr",
                &mac(m),
                "dev",
                "fx1",
                "nud",
                "permanent",
            ])
        };
        for prog in PROGS {
            neigh(RS, RS_MAC);
            let dp = datapath(
                &[
                    "-A -t 198.18.2.1:80 -s rr",
                    "-a -t 198.18.2.1:80 -r 198.18.1.2 -g",
                ],
                &L2::default(),
            );
            let got = dp.test_run_on(prog, &input, fx0).unwrap();
            assert_eq!(
                got.packet,
                eth(RS_MAC, FX1_MAC, 0x0800, &ip_part),
                "{prog:?}"
            );
            neigh(RS, OVERRIDE_MAC);
            std::thread::sleep(std::time::Duration::from_millis(1100));
            let got = dp.test_run_on(prog, &input, fx0).unwrap();
            assert_eq!(
                got.packet,
                eth(OVERRIDE_MAC, FX1_MAC, 0x0800, &ip_part),
                "{prog:?} after the MAC changed"
            );

            // No neighbour entry, then one: used by the very next packet.
            let _ = Command::new("ip")
                .args(["neigh", "del", &a(RS_UNRESOLVED), "dev", "fx1"])
                .output();
            let dp = datapath(
                &[
                    "-A -t 198.18.2.1:80 -s rr",
                    "-a -t 198.18.2.1:80 -r 198.18.1.3 -g",
                ],
                &L2::default(),
            );
            dp.test_run_on(prog, &input, fx0).unwrap();
            assert_eq!(dp.counters().unwrap().no_neigh, 1, "{prog:?}");
            neigh(RS_UNRESOLVED, RS_MAC);
            let got = dp.test_run_on(prog, &input, fx0).unwrap();
            assert_eq!(got.verdict, redirect(prog), "{prog:?} resolved");
            assert_eq!(
                got.packet,
                eth(RS_MAC, FX1_MAC, 0x0800, &ip_part),
                "{prog:?} resolved"
            );
            assert_eq!(dp.counters().unwrap().forwarded, 1, "{prog:?} resolved");
            let _ = fx1;
            let _ = Command::new("ip")
                .args(["neigh", "del", &a(RS_UNRESOLVED), "dev", "fx1"])
                .output();
        }
    });
}

/// The flow cache in front of the connection table (IPv4, DR to next hops
/// from the FIB): an established connection's packets go to the same real
/// server as from the table and are counted alike; a real server taken out
/// stops its cached flows at once (dropped as unavailable, not forwarded
/// for another second); flushed connections are not forwarded from it; a
/// FIN takes its flow out; and a connection's timer in the table lags its
/// last packet by at most a second (the entry is trusted for a second, then
/// the table restarts it).
#[test]
fn established_flows_from_the_flow_cache_follow_the_table() {
    common::require_root();
    in_private_netns(|| {
        director();
        let fx0 = xvs_datapath::ifindex("fx0").unwrap();
        const S: u64 = 1_000_000_000;
        let t0 = 5_000 * S;
        let rules = [
            "-A -t 198.18.2.1:80 -s rr",
            "-a -t 198.18.2.1:80 -r 198.18.1.2 -g",
            "-a -t 198.18.2.1:80 -r 198.18.0.10 -g",
        ];
        let ports = 41000..41004u16;
        for prog in PROGS {
            let mut t = common::table(&rules);
            let mut dp = common::load();
            dp.set_clock(Some(t0)).unwrap();
            dp.sync(&t, &Sysctls::default(), &L2::default()).unwrap();
            let seg = seg_from_client;
            // The real server's MAC, or the verdict of a packet not sent on.
            let send = |dp: &Datapath, sport: u16, flags: u8| -> Result<Mac, u32> {
                let out = dp.test_run_on(prog, &seg(sport, flags), fx0).unwrap();
                let sent =
                    out.verdict == redirect(prog) || (prog == Prog::Xdp && out.verdict == XDP_TX);
                if sent {
                    Ok(out.packet[..6].try_into().unwrap())
                } else {
                    Err(out.verdict)
                }
            };
            let mut owner = Vec::new();
            for p in ports.clone() {
                let m = send(&dp, p, 0x02).expect("SYN forwarded");
                // the ACK that establishes it fills the cache; ten more hit it
                for _ in 0..11 {
                    assert_eq!(send(&dp, p, 0x10), Ok(m), "{prog:?} port {p}");
                }
                owner.push(m);
            }
            assert!(owner.contains(&RS_MAC) && owner.contains(&RS_NEAR_MAC));
            assert_eq!(dp.counters().unwrap().forwarded, 48, "{prog:?}");
            for d in &t.services().next().unwrap().dests {
                let st = dp.real_stats(d.id).unwrap().unwrap();
                assert_eq!((st.conns, st.inpkts), (2, 24), "{prog:?} {}", d.cfg.addr);
            }

            // The timer: untouched by a cached packet half a second on,
            // restarted by the first one after a second.
            let left = |dp: &Datapath| {
                dp.connections()
                    .iter()
                    .find(|c| c.cport == 41000)
                    .map(|c| c.expires)
                    .unwrap()
            };
            assert_eq!(left(&dp), 900);
            dp.set_clock(Some(t0 + S / 2)).unwrap();
            assert_eq!(send(&dp, 41000, 0x10), Ok(owner[0]));
            assert_eq!(left(&dp), 899, "{prog:?}: the timer lags by half a second");
            dp.set_clock(Some(t0 + 3 * S / 2)).unwrap();
            assert_eq!(send(&dp, 41000, 0x10), Ok(owner[0]));
            assert_eq!(left(&dp), 900, "{prog:?}: the timer restarted");

            // A FIN takes the full path and its flow out of the cache: the
            // bare ACK after it restarts the FIN_WAIT timer, as the table
            // says (from a stale cached entry it would not).
            let fin = 41003;
            dp.set_clock(Some(t0 + 2 * S)).unwrap();
            assert_eq!(send(&dp, fin, 0x10), Ok(owner[3])); // cached afresh
            assert_eq!(send(&dp, fin, 0x11), Ok(owner[3]));
            let state = |dp: &Datapath| {
                dp.connections()
                    .iter()
                    .find(|c| c.cport == fin)
                    .map(|c| (c.state.to_string(), c.expires))
                    .unwrap()
            };
            assert_eq!(state(&dp), ("FIN_WAIT".to_string(), 120), "{prog:?}");
            dp.set_clock(Some(t0 + 5 * S / 2)).unwrap();
            assert_eq!(send(&dp, fin, 0x10), Ok(owner[3]));
            assert_eq!(state(&dp), ("FIN_WAIT".to_string(), 120), "{prog:?}");

            // The first connection's real server taken out: its cached
            // flows are dropped at once; the other server's go on.
            let gone = if owner[0] == RS_MAC {
                "198.18.1.2"
            } else {
                "198.18.0.10"
            };
            t.apply(&common::cmd(&format!("-d -t 198.18.2.1:80 -r {gone}")))
                .unwrap();
            dp.sync(&t, &Sysctls::default(), &L2::default()).unwrap();
            let drop = dropped(prog);
            let other = ports
                .clone()
                .zip(&owner)
                .find(|(_, m)| **m != owner[0])
                .unwrap()
                .0;
            assert_eq!(send(&dp, 41000, 0x10), Err(drop), "{prog:?}");
            assert_eq!(dp.counters().unwrap().unavailable, 1, "{prog:?}");
            assert_eq!(
                send(&dp, other, 0x10),
                Ok(*owner.iter().find(|m| **m != owner[0]).unwrap())
            );

            // Flushed: a bare ACK of a flushed connection is no new
            // connection; it is not forwarded from the cache either.
            dp.flush_conns().unwrap();
            let pass = passed(prog);
            assert_eq!(
                send(&dp, other, 0x10),
                Err(pass),
                "{prog:?} after the flush"
            );
        }
    });
}

/// One TUN service to the real server beyond the gateway.
const TUN_RULES: [&str; 2] = [
    "-A -t 198.18.2.1:80 -s rr",
    "-a -t 198.18.2.1:80 -r 198.18.20.5 -i",
];

/// Frame `input` as TUN_RULES's tunnel carries it (source and next hop
/// from the FIB): IPIP from fx1's address, to the gateway's MAC.
fn outer(input: &[u8]) -> Vec<u8> {
    let inner = &input[14..];
    let mut p = ipv4_header(FX1_ADDR, RS_FAR, 4, 0, 0, true, 64, inner.len());
    p.extend_from_slice(inner);
    eth(GW_MAC, FX1_MAC, 0x0800, &p)
}

/// TUN flows from the flow cache: an established connection's packets are
/// encapsulated byte for byte as from the table (outer source and next hop
/// from the FIB, the tunnel as the real server's configuration says), the
/// cache is what answers (the table's timer lags), and a real server taken
/// out stops them at once.
#[test]
fn tun_flows_from_the_flow_cache_are_encapsulated_as_from_the_table() {
    common::require_root();
    in_private_netns(|| {
        let (fx0, _) = director();
        const S: u64 = 1_000_000_000;
        let t0 = 5_000 * S;
        let rules = TUN_RULES;
        let seg = |flags: u8| seg_from_client(40000, flags);
        for prog in PROGS {
            let mut t = common::table(&rules);
            let mut dp = common::load();
            dp.set_clock(Some(t0)).unwrap();
            dp.sync(&t, &Sysctls::default(), &L2::default()).unwrap();
            // SYN, then the ACK that establishes it (and fills the cache)
            for flags in [0x02, 0x10] {
                let got = dp.test_run_on(prog, &seg(flags), fx0).unwrap();
                assert_eq!(got.verdict, redirect(prog), "{prog:?} {flags:#x}");
                assert_eq!(got.packet, outer(&seg(flags)), "{prog:?} {flags:#x}");
            }
            let left = |dp: &Datapath| dp.connections()[0].expires;
            assert_eq!(left(&dp), 900, "{prog:?}");
            // half a second on: from the cache, the same bytes, the
            // table's timer not restarted
            dp.set_clock(Some(t0 + S / 2)).unwrap();
            for _ in 0..3 {
                let got = dp.test_run_on(prog, &seg(0x10), fx0).unwrap();
                assert_eq!(got.verdict, redirect(prog), "{prog:?} cached");
                assert_eq!(got.packet, outer(&seg(0x10)), "{prog:?} cached");
            }
            assert_eq!(left(&dp), 899, "{prog:?}: answered by the cache");
            assert_eq!(dp.counters().unwrap().forwarded, 5, "{prog:?}");
            let id = t.services().next().unwrap().dests[0].id;
            let st = dp.real_stats(id).unwrap().unwrap();
            assert_eq!((st.conns, st.inpkts), (1, 5), "{prog:?}");
            // The tunnel's MTU lowered below the packet (XDP's entry for
            // this flow carries the MTU): the edit takes effect at once,
            // the packet is too big for the tunnel and dropped; raised
            // again, the flow is forwarded again.
            let small = L2 {
                tun_mtu: 50,
                ..L2::default()
            };
            dp.sync(&t, &Sysctls::default(), &small).unwrap();
            let got = dp.test_run_on(prog, &seg(0x10), fx0).unwrap();
            assert_eq!(got.verdict, dropped(prog), "{prog:?} over the new MTU");
            assert_eq!(dp.counters().unwrap().tun_dropped, 1, "{prog:?}");
            dp.sync(&t, &Sysctls::default(), &L2::default()).unwrap();
            for _ in 0..2 {
                let got = dp.test_run_on(prog, &seg(0x10), fx0).unwrap();
                assert_eq!(got.verdict, redirect(prog), "{prog:?} MTU back");
                assert_eq!(got.packet, outer(&seg(0x10)), "{prog:?} MTU back");
            }
            assert_eq!(dp.counters().unwrap().forwarded, 7, "{prog:?}");
            // the real server taken out: dropped at once, not forwarded
            // from the cache for another second
            t.apply(&common::cmd("-d -t 198.18.2.1:80 -r 198.18.20.5"))
                .unwrap();
            dp.sync(&t, &Sysctls::default(), &L2::default()).unwrap();
            let got = dp.test_run_on(prog, &seg(0x10), fx0).unwrap();
            let drop = dropped(prog);
            assert_eq!(got.verdict, drop, "{prog:?} server gone");
            assert_eq!(dp.counters().unwrap().unavailable, 1, "{prog:?}");
        }
    });
}

/// A cached flow left alone until its tick is 2^31 (plus ten seconds) in
/// the past, so that a signed "until is ahead" would take it for fresh:
/// its connection long expired, the bare ACK is not forwarded from the
/// cache.
#[test]
fn a_flow_cached_long_ago_stays_out_when_the_clock_comes_round() {
    common::require_root();
    in_private_netns(|| {
        director();
        let fx0 = xvs_datapath::ifindex("fx0").unwrap();
        let t0 = 5_000_000_000_000u64;
        let rules = [
            "-A -t 198.18.2.1:80 -s rr",
            "-a -t 198.18.2.1:80 -r 198.18.1.2 -g",
        ];
        let seg = |flags: u8| seg_from_client(42000, flags);
        for prog in PROGS {
            let t = common::table(&rules);
            let mut dp = common::load();
            let hz = u64::from(dp.clock_hz());
            assert!(hz >= 100, "HZ measured at load: {hz}");
            dp.set_clock(Some(t0)).unwrap();
            dp.sync(&t, &Sysctls::default(), &L2::default()).unwrap();
            for flags in [0x02, 0x10, 0x10] {
                let out = dp.test_run_on(prog, &seg(flags), fx0).unwrap();
                assert_eq!(out.verdict, redirect(prog), "{prog:?}");
            }
            let later = t0 + ((1u64 << 31) + 10 * hz) * 1_000_000_000 / hz;
            dp.set_clock(Some(later)).unwrap();
            let out = dp.test_run_on(prog, &seg(0x10), fx0).unwrap();
            let pass = passed(prog);
            assert_eq!(out.verdict, pass, "{prog:?}");
            assert_eq!(dp.counters().unwrap().forwarded, 3, "{prog:?}");
        }
    });
}

/// Path MTU discovery through LVS-TUN: a router's "fragmentation needed"
/// about a packet the real server sent the client (from the VIP) is
/// tunnelled to the connection's real server like the connection's own
/// packets (outer source and next hop from the FIB), so the server's TCP
/// learns the client path's MTU; the kernel's IPVS does the same.
#[test]
fn icmp_errors_about_a_tun_connection_are_tunnelled_to_its_server() {
    common::require_root();
    in_private_netns(|| {
        let (fx0, _) = director();
        let rules = TUN_RULES;
        // fragmentation needed, MTU 1280, quoting the server's SYN-ACK
        let quoted = ipv4(VIP, CLIENT, 6, &tcp(80, 40000, 0x12));
        let err = eth(
            FX0_MAC,
            CLIENT_MAC,
            0x0800,
            &ipv4([198, 18, 0, 254], VIP, 1, &common::frag_needed(&quoted)),
        );
        for prog in PROGS {
            let t = common::table(&rules);
            let mut dp = common::load();
            dp.sync(&t, &Sysctls::default(), &L2::default()).unwrap();
            let got = dp
                .test_run_on(prog, &seg_from_client(40000, 0x02), fx0)
                .unwrap();
            assert_eq!(got.verdict, redirect(prog), "{prog:?} SYN");
            let got = dp.test_run_on(prog, &err, fx0).unwrap();
            assert_eq!(got.verdict, redirect(prog), "{prog:?} frag needed");
            assert_eq!(got.packet, outer(&err), "{prog:?} frag needed");
            assert_eq!(dp.counters().unwrap().forwarded, 2, "{prog:?}");
        }
    });
}

/// A TUN flow cached (XDP: with what it needs of its server's tunnel in the
/// entry) after its next hop was cached, so that the hop's second runs out
/// first: its packets then take the general path, which asks the FIB
/// again, and are tunnelled as ever, not dropped.
#[test]
fn a_tun_flow_cached_longer_than_its_hop_is_still_tunnelled() {
    common::require_root();
    in_private_netns(|| {
        let (fx0, _) = director();
        const S: u64 = 1_000_000_000;
        let t0 = 5_000 * S;
        let rules = TUN_RULES;
        let seg = |flags: u8| seg_from_client(40000, flags);
        for prog in PROGS {
            let t = common::table(&rules);
            let mut dp = common::load();
            // the SYN caches the hop at t0; the ACK that establishes the
            // connection, 0.9 s on, finds it still fresh and caches the
            // flow for a second; 1.2 s on the flow is cached, its hop not
            for (at, flags) in [
                (t0, 0x02),
                (t0 + 9 * S / 10, 0x10),
                (t0 + 12 * S / 10, 0x10),
            ] {
                dp.set_clock(Some(at)).unwrap();
                if flags == 0x02 {
                    dp.sync(&t, &Sysctls::default(), &L2::default()).unwrap();
                }
                let got = dp.test_run_on(prog, &seg(flags), fx0).unwrap();
                assert_eq!(got.verdict, redirect(prog), "{prog:?} {at}");
                assert_eq!(got.packet, outer(&seg(flags)), "{prog:?} {at}");
            }
            let c = dp.counters().unwrap();
            assert_eq!((c.forwarded, c.unavailable), (3, 0), "{prog:?}");
        }
    });
}

/// The tunnel's MTU from the FIB (xvsd configures none): the route's toward
/// the real server, the device's (fx1 at 1400), or a locked route MTU (1300)
/// below it. An established flow's segment that fits is tunnelled (from the
/// flow cache too); one byte over is answered, from the VIP back to the
/// client, with a fragmentation needed carrying the route's MTU less the
/// tunnel's 20 bytes, as the kernel's IPVS answers it.
#[test]
fn tun_packets_over_the_route_mtu_get_fragmentation_needed() {
    common::require_root();
    in_private_netns(|| {
        let (fx0, _) = director();
        ip(&["link", "set", "fx1", "mtu", "1400"]);
        let seg = |flags: u8, inner_len: usize| {
            from_client(&tcp_packet((CLIENT, 40000), (VIP, 80), flags, inner_len))
        };
        let told = |input: &[u8], mtu: u16| frag_needed_to_client(&input[14..], mtu);
        for prog in PROGS {
            let mut dp = datapath(&TUN_RULES, &L2::default());
            dp.set_clock(Some(5_000_000_000_000)).unwrap();
            // the connection, established (its flow cached in XDP)
            for input in [seg(0x02, 40), seg(0x10, 40), seg(0x10, 1380)] {
                let got = dp.test_run_on(prog, &input, fx0).unwrap();
                assert_eq!(got.verdict, redirect(prog), "{prog:?}");
                assert_eq!(got.packet, outer(&input), "{prog:?}");
            }
            let big = seg(0x18, 1381);
            let got = dp.test_run_on(prog, &big, fx0).unwrap();
            assert_eq!(got.verdict, answered(prog), "{prog:?} over the MTU");
            assert_eq!(got.packet, told(&big, 1380), "{prog:?} over the MTU");
            let c = dp.counters().unwrap();
            assert_eq!((c.forwarded, c.tun_dropped), (3, 1), "{prog:?}");
        }
        ip(&[
            "route",
            "replace",
            "198.18.20.0/24",
            "via",
            "198.18.1.254",
            "mtu",
            "lock",
            "1300",
        ]);
        for prog in PROGS {
            let dp = datapath(&TUN_RULES, &L2::default());
            let (fits, big) = (seg(0x02, 1280), seg(0x02, 1281));
            let got = dp.test_run_on(prog, &fits, fx0).unwrap();
            assert_eq!(got.verdict, redirect(prog), "{prog:?} locked route MTU");
            let got = dp.test_run_on(prog, &big, fx0).unwrap();
            assert_eq!(got.verdict, answered(prog), "{prog:?} locked route MTU");
            assert_eq!(got.packet, told(&big, 1280), "{prog:?} locked route MTU");
        }
    });
}

/// DR and NAT over the route's MTU toward the real server (fx1 at 1400):
/// a segment that fits is sent on (from the flow cache too); one byte over
/// with DF is answered, before any DNAT, with a fragmentation needed
/// carrying 1400 from the VIP back to the client, as the kernel's IPVS
/// answers it (ip_vs_dr_xmit(), ip_vs_nat_xmit()); without DF it is only
/// dropped. Both count as no_route (the FIB's route does not take them).
#[test]
fn dr_and_nat_packets_over_the_route_mtu_get_fragmentation_needed() {
    common::require_root();
    in_private_netns(|| {
        let (fx0, _) = director();
        ip(&["link", "set", "fx1", "mtu", "1400"]);
        let seg = |dport: u16, flags: u8, len: usize| {
            tcp_packet((CLIENT, 40000), (VIP, dport), flags, len)
        };
        for (dport, how) in [(80, "-g"), (8080, "-m")] {
            let rules = [
                &format!("-A -t 198.18.2.1:{dport} -s rr"),
                &format!("-a -t 198.18.2.1:{dport} -r 198.18.1.2:80 {how}")[..],
            ];
            for prog in PROGS {
                let mut dp = datapath(&rules, &L2::default());
                dp.set_clock(Some(5_000_000_000_000)).unwrap();
                // established (its flow cached in XDP), then at the MTU
                for (flags, len) in [(0x02, 40), (0x10, 40), (0x10, 1400)] {
                    let got = dp
                        .test_run_on(prog, &from_client(&seg(dport, flags, len)), fx0)
                        .unwrap();
                    assert_eq!(got.verdict, redirect(prog), "{prog:?} {how} {len}");
                    assert_eq!(got.packet.len(), 14 + len, "{prog:?} {how}");
                }
                let big = seg(dport, 0x18, 1401);
                let got = dp.test_run_on(prog, &from_client(&big), fx0).unwrap();
                assert_eq!(got.verdict, answered(prog), "{prog:?} {how} over");
                assert_eq!(
                    got.packet,
                    frag_needed_to_client(&big, 1400),
                    "{prog:?} {how} over"
                );
                let no_df = common::without_df(&big);
                let got = dp.test_run_on(prog, &from_client(&no_df), fx0).unwrap();
                assert_eq!(got.verdict, dropped(prog), "{prog:?} {how} no DF");
                let c = dp.counters().unwrap();
                assert_eq!((c.forwarded, c.no_route), (3, 2), "{prog:?} {how}");
            }
        }
    });
}

/// A NAT reply over the route's MTU toward the client (fx0 at 1400) is
/// answered as the director's forwarding answers it, ahead of the SNAT: a
/// fragmentation needed (1400) back to the real server, about its own
/// packet, from the director's address toward it (fx1's); no_route. One
/// that fits is rewritten and sent on.
#[test]
fn nat_replies_over_the_route_mtu_get_fragmentation_needed() {
    common::require_root();
    in_private_netns(|| {
        let (fx0, fx1) = director();
        ip(&["link", "set", "fx0", "mtu", "1400"]);
        let rules = [
            "-A -t 198.18.2.1:80 -s rr",
            "-a -t 198.18.2.1:80 -r 198.18.1.2:8080 -m",
        ];
        let reply = |flags: u8, len: usize| tcp_packet((RS, 8080), (CLIENT, 40000), flags, len);
        let from_rs = |ip: &[u8]| eth(FX1_MAC, RS_MAC, 0x0800, ip);
        for prog in PROGS {
            let dp = datapath(&rules, &L2::default());
            let got = dp.test_run_on(prog, &syn_from_client(80), fx0).unwrap();
            assert_eq!(got.verdict, redirect(prog), "{prog:?} SYN");
            for (flags, len) in [(0x12, 40), (0x10, 1400)] {
                let got = dp
                    .test_run_on(prog, &from_rs(&reply(flags, len)), fx1)
                    .unwrap();
                assert_eq!(got.verdict, redirect(prog), "{prog:?} reply {len}");
                assert_eq!(got.packet.len(), 14 + len, "{prog:?} reply {len}");
                assert_eq!(&got.packet[26..30], &VIP, "{prog:?} SNAT");
            }
            let big = reply(0x18, 1401);
            let got = dp.test_run_on(prog, &from_rs(&big), fx1).unwrap();
            assert_eq!(got.verdict, answered(prog), "{prog:?} over");
            assert_eq!(
                got.packet,
                eth(
                    RS_MAC,
                    FX1_MAC,
                    0x0800,
                    &common::answer4_from(&big, 4, 1400, FX1_ADDR)
                ),
                "{prog:?} over"
            );
            let c = dp.counters().unwrap();
            assert_eq!((c.forwarded, c.replied, c.no_route), (1, 2, 1), "{prog:?}");
        }
    });
}
