//! NAT packet fixtures through BPF_PROG_TEST_RUN, for XDP and tc: the client
//! packet is DNATed to the real server, the real server's reply SNATed back
//! to the VIP. Expected frames are built from scratch (checksums computed in
//! full by the test helpers), so equal bytes mean correct incremental
//! checksum updates; `checksums_ok` re-verifies them independently.
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

fn datapath() -> Datapath {
    let mut dp = load();
    let t = table(&[
        "-A -t 198.18.2.1:80 -s rr",
        "-a -t 198.18.2.1:80 -r 198.18.1.2:8080 -m",
        "-A -u 198.18.2.1:53 -s rr",
        "-a -u 198.18.2.1:53 -r 198.18.1.2:5353 -m",
    ]);
    let l2 = L2 {
        default: NextHop {
            mac: RS_MAC,
            src_mac: EGRESS_MAC,
            ifindex: 0,
        },
        ..L2::default()
    };
    dp.sync(&t, &Sysctls::default(), &l2).unwrap();
    dp
}

fn zero_udp_csum(mut f: Vec<u8>) -> Vec<u8> {
    f[14 + 20 + 6] = 0;
    f[14 + 20 + 7] = 0;
    f
}

/// Runs the client packet then the reply through a fresh datapath with `prog`,
/// in a new network namespace: the reply's FIB lookup (its next hop is the
/// client's) answers FWD_DISABLED there, so it is SNATed and handed to the
/// stack (`no_route`). The FIB paths are in `fib_fixtures.rs`.
fn nat_round_trip(prog: Prog, inp: &[u8], inp_out: &[u8], reply: &[u8], reply_out: &[u8]) {
    in_private_netns(|| nat_round_trip_here(prog, inp, inp_out, reply, reply_out))
}

fn nat_round_trip_here(prog: Prog, inp: &[u8], inp_out: &[u8], reply: &[u8], reply_out: &[u8]) {
    let dp = datapath();
    let (fwd, pass) = match prog {
        Prog::Xdp => (XDP_TX, XDP_PASS),
        Prog::Tc => (TC_ACT_REDIRECT, TC_ACT_OK),
    };
    let got = dp.test_run(prog, inp).unwrap();
    assert_eq!(got.verdict, fwd, "{prog:?} in verdict");
    assert_eq!(got.packet, inp_out, "{prog:?} in frame");
    assert!(checksums_ok(&got.packet), "{prog:?} in checksums");
    let got = dp.test_run(prog, reply).unwrap();
    assert_eq!(got.verdict, pass, "{prog:?} reply verdict");
    assert_eq!(got.packet, reply_out, "{prog:?} reply frame");
    assert!(checksums_ok(&got.packet), "{prog:?} reply checksums");
    assert_eq!(
        dp.counters().unwrap(),
        Counters {
            forwarded: 1,
            no_route: 1,
            ..Counters::default()
        }
    );
    assert_eq!(dp.conn_count(), 1);
    assert_eq!(dp.reply_index_count(), 1);
}

#[test]
fn tcp_nat_in_and_out() {
    let syn = eth(
        DIRECTOR_MAC,
        CLIENT_MAC,
        0x0800,
        &ipv4(CLIENT, VIP, 6, &tcp(40000, 80, 0x02)),
    );
    let syn_out = eth(
        RS_MAC,
        EGRESS_MAC,
        0x0800,
        &ipv4(CLIENT, RS, 6, &tcp(40000, 8080, 0x02)),
    );
    let synack = eth(
        DIRECTOR_MAC,
        RS_MAC,
        0x0800,
        &ipv4(RS, CLIENT, 6, &tcp(8080, 40000, 0x12)),
    );
    let synack_out = eth(
        DIRECTOR_MAC,
        RS_MAC,
        0x0800,
        &ipv4(VIP, CLIENT, 6, &tcp(80, 40000, 0x12)),
    );
    for prog in [Prog::Xdp, Prog::Tc] {
        nat_round_trip(prog, &syn, &syn_out, &synack, &synack_out);
    }
}

#[test]
fn udp_nat_in_and_out() {
    let q = eth(
        DIRECTOR_MAC,
        CLIENT_MAC,
        0x0800,
        &ipv4(CLIENT, VIP, 17, &udp(5000, 53, b"query!")),
    );
    let q_out = eth(
        RS_MAC,
        EGRESS_MAC,
        0x0800,
        &ipv4(CLIENT, RS, 17, &udp(5000, 5353, b"query!")),
    );
    let a = eth(
        DIRECTOR_MAC,
        RS_MAC,
        0x0800,
        &ipv4(RS, CLIENT, 17, &udp(5353, 5000, b"answer")),
    );
    let a_out = eth(
        DIRECTOR_MAC,
        RS_MAC,
        0x0800,
        &ipv4(VIP, CLIENT, 17, &udp(53, 5000, b"answer")),
    );
    for prog in [Prog::Xdp, Prog::Tc] {
        nat_round_trip(prog, &q, &q_out, &a, &a_out);
    }
    // A UDP checksum of 0 ("none") stays 0.
    for prog in [Prog::Xdp, Prog::Tc] {
        nat_round_trip(
            prog,
            &zero_udp_csum(q.clone()),
            &zero_udp_csum(q_out.clone()),
            &zero_udp_csum(a.clone()),
            &zero_udp_csum(a_out.clone()),
        );
    }
}

#[test]
fn nat_connection_follows_the_tcp_states() {
    in_private_netns(nat_connection_follows_the_tcp_states_here)
}

fn nat_connection_follows_the_tcp_states_here() {
    let dp = datapath();
    let c = |flags| {
        eth(
            DIRECTOR_MAC,
            CLIENT_MAC,
            0x0800,
            &ipv4(CLIENT, VIP, 6, &tcp(40000, 80, flags)),
        )
    };
    let r = |flags| {
        eth(
            DIRECTOR_MAC,
            RS_MAC,
            0x0800,
            &ipv4(RS, CLIENT, 6, &tcp(8080, 40000, flags)),
        )
    };
    let id = xvs_core::model::DestId(1);
    let counts = || {
        let c = dp.real_counts(id).unwrap().unwrap();
        (c.active, c.inactive)
    };
    dp.test_run(Prog::Xdp, &c(0x02)).unwrap(); // SYN: SYN_RECV, active
    assert_eq!(counts(), (1, 0));
    dp.test_run(Prog::Tc, &r(0x12)).unwrap(); // SYN+ACK out
    dp.test_run(Prog::Xdp, &c(0x10)).unwrap(); // ACK: ESTABLISHED
    assert_eq!(counts(), (1, 0));
    dp.test_run(Prog::Tc, &c(0x11)).unwrap(); // FIN in: CLOSE_WAIT, inactive
    assert_eq!(counts(), (0, 1));
    dp.test_run(Prog::Xdp, &r(0x11)).unwrap(); // FIN out: TIME_WAIT
                                               // A new SYN on the TIME_WAIT entry replaces it (conn_reuse_mode 1).
    let got = dp.test_run(Prog::Xdp, &c(0x02)).unwrap();
    assert_eq!(got.verdict, XDP_TX);
    assert_eq!(counts(), (1, 0));
    assert_eq!(dp.conn_count(), 1);
    let s = dp.real_stats(id).unwrap().unwrap();
    assert_eq!((s.conns, s.inpkts, s.outpkts), (2, 4, 2));
    assert_eq!((s.inbytes, s.outbytes), (160, 80));
}

/// ICMP errors about a NAT connection, rewritten as `ip_vs_nat_icmp()`
/// does. One from a router to the VIP about the connection's packet
/// VIP:80 -> client goes to the real server with the outer destination and
/// the quoted source made RS:8080; one from the real server about its
/// packet client -> RS:8080 goes toward the client (a reply: in this
/// namespace the FIB leaves it to the stack) with the outer source and the
/// quoted destination made VIP:80. Every checksum is recomputed from
/// scratch in the expected frames.
#[test]
fn icmp_errors_about_a_nat_connection_are_rewritten_both_ways() {
    require_root();
    const ROUTER: [u8; 4] = [198, 18, 0, 254];
    let syn = eth(
        DIRECTOR_MAC,
        CLIENT_MAC,
        0x0800,
        &ipv4(CLIENT, VIP, 6, &tcp(40000, 80, 0x02)),
    );
    // an error from src to dst (frame dst_mac <- src_mac) quoting `quoted`
    let err = |macs: (Mac, Mac), src: [u8; 4], dst: [u8; 4], quoted: Vec<u8>| {
        eth(
            macs.0,
            macs.1,
            0x0800,
            &ipv4(src, dst, 1, &frag_needed(&quoted)),
        )
    };
    let to_vip = err(
        (DIRECTOR_MAC, CLIENT_MAC),
        ROUTER,
        VIP,
        ipv4(VIP, CLIENT, 6, &tcp(80, 40000, 0x12)),
    );
    let to_rs = err(
        (RS_MAC, EGRESS_MAC),
        ROUTER,
        RS,
        ipv4(RS, CLIENT, 6, &tcp(8080, 40000, 0x12)),
    );
    let from_rs = err(
        (DIRECTOR_MAC, RS_MAC),
        RS,
        CLIENT,
        ipv4(CLIENT, RS, 6, &tcp(40000, 8080, 0x10)),
    );
    let to_client = err(
        (DIRECTOR_MAC, RS_MAC),
        VIP,
        CLIENT,
        ipv4(CLIENT, VIP, 6, &tcp(40000, 80, 0x10)),
    );
    for (prog, fwd, pass) in [
        (Prog::Xdp, XDP_TX, XDP_PASS),
        (Prog::Tc, TC_ACT_REDIRECT, TC_ACT_OK),
    ] {
        in_private_netns(|| {
            let dp = datapath();
            assert_eq!(dp.test_run(prog, &syn).unwrap().verdict, fwd, "{prog:?}");
            let got = dp.test_run(prog, &to_vip).unwrap();
            assert_eq!(got.verdict, fwd, "{prog:?} to the VIP");
            assert_eq!(got.packet, to_rs, "{prog:?} to the VIP");
            let got = dp.test_run(prog, &from_rs).unwrap();
            assert_eq!(got.verdict, pass, "{prog:?} from the server");
            assert_eq!(got.packet, to_client, "{prog:?} from the server");
            assert_eq!(
                dp.counters().unwrap(),
                Counters {
                    forwarded: 2,
                    no_route: 1,
                    ..Counters::default()
                },
                "{prog:?}"
            );
        });
    }
}
