//! Packet fixtures through BPF_PROG_TEST_RUN: input frame -> expected output
//! frame and verdict, for the XDP and the tc program, plus the counters.
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
const OTHER: [u8; 4] = [198, 18, 2, 9];

fn l2(ifindex: u32) -> L2 {
    L2 {
        default: NextHop {
            mac: RS_MAC,
            src_mac: EGRESS_MAC,
            ifindex,
        },
        ..L2::default()
    }
}

/// A datapath with TCP VIP:80 and UDP VIP:53 as DR services to one real server.
fn datapath(ifindex: u32) -> Datapath {
    let mut dp = load();
    let t = table(&[
        "-A -t 198.18.2.1:80 -s rr",
        "-a -t 198.18.2.1:80 -r 198.18.1.2 -g",
        "-A -u 198.18.2.1:53 -s rr",
        "-a -u 198.18.2.1:53 -r 198.18.1.2 -g",
    ]);
    dp.sync(&t, &Sysctls::default(), &l2(ifindex)).unwrap();
    dp
}

fn syn_to(dst: [u8; 4], dport: u16) -> Vec<u8> {
    eth(
        DIRECTOR_MAC,
        CLIENT_MAC,
        0x0800,
        &ipv4(CLIENT, dst, 6, &tcp(40000, dport, 0x02)),
    )
}

/// `frame` with its MACs rewritten as DR does: to the real server, from the
/// director's egress interface; nothing else changes.
fn dr_rewritten(frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[0..6].copy_from_slice(&RS_MAC);
    f[6..12].copy_from_slice(&EGRESS_MAC);
    f
}

fn counters(passed: u64, forwarded: u64, malformed: u64) -> Counters {
    Counters {
        passed,
        forwarded,
        malformed,
        ..Counters::default()
    }
}

/// Runs `input` through `prog` of a fresh datapath (services per
/// [`datapath`]) and checks verdict, output frame and counters.
fn check(prog: Prog, ifindex: u32, input: &[u8], verdict: u32, output: &[u8], expect: Counters) {
    let dp = datapath(ifindex);
    let got = dp
        .test_run(prog, input)
        .unwrap_or_else(|e| panic!("{prog:?} test run: {e:?}"));
    assert_eq!(got.verdict, verdict, "{prog:?} verdict");
    assert_eq!(got.packet, output, "{prog:?} output frame");
    assert_eq!(dp.counters().unwrap(), expect, "{prog:?} counters");
}

#[test]
fn tcp_syn_to_vip_is_forwarded_with_macs_rewritten() {
    let syn = syn_to(VIP, 80);
    let out = dr_rewritten(&syn);
    assert_ne!(syn, out);
    // Egress = ingress interface: XDP_TX; tc redirects to the ingress device.
    check(Prog::Xdp, 0, &syn, XDP_TX, &out, counters(0, 1, 0));
    check(Prog::Tc, 0, &syn, TC_ACT_REDIRECT, &out, counters(0, 1, 0));
}

#[test]
fn tcp_syn_to_vip_with_egress_ifindex_is_redirected() {
    let syn = syn_to(VIP, 80);
    let out = dr_rewritten(&syn);
    check(Prog::Xdp, 4242, &syn, XDP_REDIRECT, &out, counters(0, 1, 0));
    check(
        Prog::Tc,
        4242,
        &syn,
        TC_ACT_REDIRECT,
        &out,
        counters(0, 1, 0),
    );
}

#[test]
fn udp_to_vip_is_forwarded() {
    let pkt = eth(
        DIRECTOR_MAC,
        CLIENT_MAC,
        0x0800,
        &ipv4(CLIENT, VIP, 17, &udp(5353, 53, b"query")),
    );
    let out = dr_rewritten(&pkt);
    check(Prog::Xdp, 0, &pkt, XDP_TX, &out, counters(0, 1, 0));
    check(Prog::Tc, 0, &pkt, TC_ACT_REDIRECT, &out, counters(0, 1, 0));
}

#[test]
fn ipv4_with_options_to_vip_is_forwarded() {
    // IHL 6: one 4-byte option (NOPs + EOL) before the TCP header.
    let mut ip = ipv4(CLIENT, VIP, 6, &tcp(40000, 80, 0x02));
    ip.splice(20..20, [1, 1, 1, 0]);
    ip[0] = 0x46;
    let total = ip.len() as u16;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    let pkt = eth(DIRECTOR_MAC, CLIENT_MAC, 0x0800, &ip);
    let out = dr_rewritten(&pkt);
    check(Prog::Xdp, 0, &pkt, XDP_TX, &out, counters(0, 1, 0));
    check(Prog::Tc, 0, &pkt, TC_ACT_REDIRECT, &out, counters(0, 1, 0));
}

#[test]
fn non_vip_traffic_passes_unchanged() {
    let cases = [
        ("other address", syn_to(OTHER, 80)),
        ("other port", syn_to(VIP, 81)),
        (
            "UDP to the TCP service's port",
            eth(
                DIRECTOR_MAC,
                CLIENT_MAC,
                0x0800,
                &ipv4(CLIENT, VIP, 17, &udp(1, 80, b"x")),
            ),
        ),
        (
            "ICMP to the VIP",
            eth(
                DIRECTOR_MAC,
                CLIENT_MAC,
                0x0800,
                &ipv4(CLIENT, VIP, 1, &[8, 0, 0, 0, 0, 1, 0, 1]),
            ),
        ),
    ];
    for (what, pkt) in cases {
        eprintln!("case: {what}");
        check(Prog::Xdp, 0, &pkt, XDP_PASS, &pkt, counters(1, 0, 0));
        check(Prog::Tc, 0, &pkt, TC_ACT_OK, &pkt, counters(1, 0, 0));
    }
}

#[test]
fn arp_passes_unchanged() {
    let arp = arp_request(CLIENT_MAC, CLIENT, VIP);
    check(Prog::Xdp, 0, &arp, XDP_PASS, &arp, counters(1, 0, 0));
    check(Prog::Tc, 0, &arp, TC_ACT_OK, &arp, counters(1, 0, 0));
}

#[test]
fn ipv6_passes_unchanged() {
    let mut src = [0u8; 16];
    src[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    let mut dst = src;
    src[15] = 2;
    dst[15] = 1;
    let pkt = eth(
        DIRECTOR_MAC,
        CLIENT_MAC,
        0x86dd,
        &ipv6(src, dst, 6, &tcp(40000, 80, 0x02)),
    );
    check(Prog::Xdp, 0, &pkt, XDP_PASS, &pkt, counters(1, 0, 0));
    check(Prog::Tc, 0, &pkt, TC_ACT_OK, &pkt, counters(1, 0, 0));
}

#[test]
fn malformed_packets_pass_unchanged_and_are_counted() {
    let syn = syn_to(VIP, 80);
    let mut bad_ihl = syn.clone();
    bad_ihl[14] = 0x44; // IHL 4 < 5
    let mut bad_version = syn.clone();
    bad_version[14] = 0x55;
    let mut short_tot_len = syn.clone();
    short_tot_len[16..18].copy_from_slice(&10u16.to_be_bytes());
    let mut ihl_past_end = syn[..14 + 20].to_vec();
    ihl_past_end[14] = 0x4f; // claims 60 bytes of header, has 20
    let mut bad_doff = syn.clone();
    bad_doff[14 + 20 + 12] = 0x40; // TCP data offset 4 < 5
    let short_ipv6 = eth(
        DIRECTOR_MAC,
        CLIENT_MAC,
        0x86dd,
        &[0x60, 0, 0, 0, 0, 20, 6, 64],
    );
    // The bool: whether the kernel's skb test run accepts the frame at all.
    // For SCHED_CLS it refuses (EINVAL) an IPv4/IPv6 frame shorter than the
    // fixed IP header, so those two only reach the tc program on real traffic.
    let cases: [(&str, Vec<u8>, bool); 8] = [
        (
            "IPv4 header cut at 10 bytes",
            syn[..14 + 10].to_vec(),
            false,
        ),
        (
            "TCP header cut at 8 bytes",
            syn[..14 + 20 + 8].to_vec(),
            true,
        ),
        ("IHL below 5", bad_ihl, true),
        ("IP version 5 under ethertype IPv4", bad_version, true),
        ("tot_len shorter than the header", short_tot_len, true),
        ("IHL beyond the end of the frame", ihl_past_end, true),
        ("TCP data offset below 5", bad_doff, true),
        ("IPv6 header cut at 8 bytes", short_ipv6, false),
    ];
    for (what, pkt, tc_runs) in cases {
        eprintln!("case: {what}");
        check(Prog::Xdp, 0, &pkt, XDP_PASS, &pkt, counters(0, 0, 1));
        if tc_runs {
            check(Prog::Tc, 0, &pkt, TC_ACT_OK, &pkt, counters(0, 0, 1));
        } else {
            let dp = datapath(0);
            let err = dp.test_run(Prog::Tc, &pkt).unwrap_err();
            assert_eq!(os_error(&err), Some(libc::EINVAL), "{err:?}");
            assert_eq!(dp.counters().unwrap(), counters(0, 0, 0));
        }
    }
}

/// The errno behind a failed test run, if any.
fn os_error(err: &xvs_datapath::Error) -> Option<i32> {
    match err {
        xvs_datapath::Error::Program {
            source: aya::programs::ProgramError::SyscallError(e),
            ..
        } => e.io_error.raw_os_error(),
        _ => None,
    }
}

#[test]
fn frame_shorter_than_ethernet_is_rejected_by_the_kernel_not_the_program() {
    // BPF_PROG_TEST_RUN refuses frames below ETH_HLEN (EINVAL) for both
    // program types, so the program's own Ethernet bounds check cannot be
    // reached from here; it is still there for real traffic.
    let dp = load();
    for prog in [Prog::Xdp, Prog::Tc] {
        let err = dp.test_run(prog, &[0u8; 10]).unwrap_err();
        assert_eq!(os_error(&err), Some(libc::EINVAL), "{prog:?}: {err:?}");
    }
}

#[test]
fn removed_service_stops_forwarding_and_counters_add_up() {
    let mut dp = datapath(0);
    let syn = syn_to(VIP, 80);
    for _ in 0..3 {
        assert_eq!(dp.test_run(Prog::Xdp, &syn).unwrap().verdict, XDP_TX);
        assert_eq!(
            dp.test_run(Prog::Tc, &syn).unwrap().verdict,
            TC_ACT_REDIRECT
        );
    }
    assert_eq!(dp.conn_count(), 1, "one tuple, one connection");
    // Service and real server gone: the connection's packets are dropped
    // (its real server is unavailable), new tuples pass.
    let t = table(&[
        "-A -u 198.18.2.1:53 -s rr",
        "-a -u 198.18.2.1:53 -r 198.18.1.2 -g",
    ]);
    dp.sync(&t, &Sysctls::default(), &l2(0)).unwrap();
    let got = dp.test_run(Prog::Xdp, &syn).unwrap();
    assert_eq!((got.verdict, got.packet), (XDP_DROP, syn.clone()));
    let other = eth(
        DIRECTOR_MAC,
        CLIENT_MAC,
        0x0800,
        &ipv4(CLIENT, VIP, 6, &tcp(40001, 80, 0x02)),
    );
    let got = dp.test_run(Prog::Tc, &other).unwrap();
    assert_eq!((got.verdict, got.packet), (TC_ACT_OK, other.clone()));
    let _ = dp.test_run(Prog::Xdp, &syn[..20]).unwrap();
    let c = dp.counters().unwrap();
    assert_eq!(
        c,
        Counters {
            unavailable: 1,
            ..counters(1, 6, 1)
        }
    );
    // After a flush the entry is gone and its counts are back to zero.
    assert_eq!(dp.flush_conns().unwrap(), 1);
    assert_eq!(dp.conn_count(), 0);
}

/// expire_nodest_conn: the sweep after a real server's removal frees its
/// connections at once (ip_vs_expire_nodest_conn_flush()), and the
/// template of a persistent one, not waiting for their next packet or
/// timer; the other server's connection stays, and so does everything
/// without the sysctl. The removed server's counts go back to zero.
#[test]
fn expire_nodest_conn_frees_a_removed_servers_connections_at_the_next_sweep() {
    for on in [true, false] {
        let sysctls = Sysctls {
            expire_nodest_conn: on,
            ..Sysctls::default()
        };
        let mut dp = load();
        let mut t = table(&[
            "-A -t 198.18.2.1:80 -s rr",
            "-a -t 198.18.2.1:80 -r 198.18.1.2 -g",
            "-a -t 198.18.2.1:80 -r 198.18.1.3 -g",
            "-A -t 198.18.2.1:443 -s rr -p 300",
            "-a -t 198.18.2.1:443 -r 198.18.1.2 -g",
        ]);
        dp.sync(&t, &sysctls, &l2(0)).unwrap();
        for (sport, dport) in [(40000, 80), (40001, 80), (40002, 443)] {
            let syn = eth(
                DIRECTOR_MAC,
                CLIENT_MAC,
                0x0800,
                &ipv4(CLIENT, VIP, 6, &tcp(sport, dport, 0x02)),
            );
            assert_eq!(dp.test_run(Prog::Xdp, &syn).unwrap().verdict, XDP_TX);
        }
        assert_eq!((dp.conn_count(), dp.template_count()), (3, 1));
        let removed: Vec<_> = t
            .services()
            .flat_map(|s| s.dests.iter())
            .filter(|d| d.cfg.addr.to_string() == "198.18.1.2")
            .map(|d| d.id)
            .collect();
        // 198.18.1.2 leaves both services, as xvsd applies it
        for l in [
            "-d -t 198.18.2.1:80 -r 198.18.1.2",
            "-d -t 198.18.2.1:443 -r 198.18.1.2",
        ] {
            t.apply(&cmd(l)).unwrap();
        }
        dp.sync(&t, &sysctls, &l2(0)).unwrap();
        // one connection on :80, the one on :443 and its template
        assert_eq!(dp.expire().unwrap(), if on { 3 } else { 0 }, "on: {on}");
        let left: Vec<String> = dp
            .connections()
            .iter()
            .filter(|c| c.cport != 0) // not the template
            .map(|c| c.daddr.to_string())
            .collect();
        if on {
            assert_eq!(left, ["198.18.1.3"]);
            assert_eq!(dp.template_count(), 0);
        } else {
            assert_eq!(left.len(), 3);
            assert_eq!(dp.template_count(), 1);
        }
        for id in removed {
            let c = dp.real_counts(id).unwrap().expect("in the trash");
            let zero = (c.active, c.inactive, c.persist) == (0, 0, 0);
            assert_eq!(zero, on, "on: {on}, the removed server's counts: {c:?}");
        }
        // the flush is done once: a second sweep frees nothing more
        assert_eq!(dp.expire().unwrap(), 0);
    }
}

/// The ICMP port unreachable the kernel's IPVS sends for a new connection
/// no real server can take (ip_vs_leave()): from the VIP to the client,
/// quoting the IP header and the TCP/UDP header through its checksum.
fn port_unreachable(quoted: &[u8]) -> Vec<u8> {
    eth(CLIENT_MAC, DIRECTOR_MAC, 0x0800, &answer4(quoted, 3, 0))
}

/// No real server (the service's only one has weight 0): XDP and tc answer
/// a SYN and a UDP datagram with an ICMP port unreachable sent back where
/// they came from (so the client's connect fails at once), at most 50 in a
/// burst and then 1000 a second per CPU. Each counts as no_dest. Nothing is
/// answered to a multicast source.
#[test]
fn no_real_server_answers_icmp_port_unreachable() {
    let mut dp = load();
    let t = table(&[
        "-A -t 198.18.2.1:80 -s rr",
        "-a -t 198.18.2.1:80 -r 198.18.1.2 -g -w 0",
        "-A -u 198.18.2.1:53 -s wlc",
        "-a -u 198.18.2.1:53 -r 198.18.1.2 -g -w 0",
    ]);
    dp.sync(&t, &Sysctls::default(), &l2(0)).unwrap();
    dp.set_clock(Some(1_000_000_000)).unwrap();
    let syn = syn_to(VIP, 80);
    let dgram = eth(
        DIRECTOR_MAC,
        CLIENT_MAC,
        0x0800,
        &ipv4(
            CLIENT,
            VIP,
            17,
            &udp(40000, 53, b"query, longer than the quote"),
        ),
    );
    for input in [&syn, &dgram] {
        let got = dp.test_run(Prog::Xdp, input).unwrap();
        let want = port_unreachable(&input[14..]);
        assert_eq!((got.verdict, &got.packet), (XDP_TX, &want));
        // the IP header's and the ICMP message's checksums verify
        assert_eq!(got.packet.len(), if input[23] == 6 { 80 } else { 70 });
        assert_eq!(inet_csum(&got.packet[14..34]), 0);
        assert_eq!(inet_csum(&got.packet[34..]), 0);
        let got = dp.test_run(Prog::Tc, input).unwrap();
        assert_eq!((got.verdict, &got.packet), (TC_ACT_REDIRECT, &want));
    }
    let mcast = eth(
        DIRECTOR_MAC,
        CLIENT_MAC,
        0x0800,
        &ipv4([224, 0, 0, 9], VIP, 17, &udp(40000, 53, b"q")),
    );
    assert_eq!(dp.test_run(Prog::Xdp, &mcast).unwrap().verdict, XDP_DROP);
    // The burst: 4 sent above, 46 more; then none until the clock moves.
    for i in 0..47 {
        let v = dp.test_run(Prog::Xdp, &syn).unwrap().verdict;
        assert_eq!(v, if i < 46 { XDP_TX } else { XDP_DROP }, "message {i}");
    }
    dp.set_clock(Some(1_002_000_000)).unwrap();
    for want in [XDP_TX, XDP_TX, XDP_DROP] {
        assert_eq!(dp.test_run(Prog::Xdp, &syn).unwrap().verdict, want);
    }
    assert_eq!(
        dp.counters().unwrap(),
        Counters {
            no_dest: 2 * 2 + 1 + 47 + 3,
            ..Counters::default()
        }
    );
    assert_eq!(dp.conn_count(), 0);
}

/// A new connection no real server can take is told to user space as the
/// kernel's IPVS logs it (the ring buffer, read by the daemon), XDP and tc
/// alike: the scheduler and the service (address, or firewall mark). At most 10 in a burst, then one
/// each 0.5 s per CPU; the next one says how many were left out. A
/// forwarded connection tells nothing.
#[test]
fn no_real_server_is_an_event_as_the_kernel_logs_it() {
    // the rate limit is per CPU: stay on one
    let mut cpus = nix::sched::CpuSet::new();
    cpus.set(0).unwrap();
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &cpus).unwrap();
    let mut dp = load();
    let t = table(&[
        "-A -t 198.18.2.1:80 -s rr",
        "-a -t 198.18.2.1:80 -r 198.18.1.2 -g -w 0",
        "-A -u 198.18.2.1:53 -s wlc",
        "-A -f 5 -s sh",
        "-a -f 5 -r 198.18.1.2 -g -w 0",
        "-A -t 198.18.2.3:80 -s rr",
        "-a -t 198.18.2.3:80 -r 198.18.1.2 -g",
    ]);
    dp.sync(&t, &Sysctls::default(), &l2(0)).unwrap();
    // (a clock far enough from 0 for a full burst)
    dp.set_clock(Some(100_000_000_000)).unwrap();
    let mut events = dp.take_events().unwrap();
    assert!(dp.take_events().is_err(), "one reader");
    assert!(!events.wait(std::time::Duration::ZERO).unwrap());
    let dgram = eth(
        DIRECTOR_MAC,
        CLIENT_MAC,
        0x0800,
        &ipv4(CLIENT, VIP, 17, &udp(40000, 53, b"query")),
    );
    let mut next = || events.next_event().map(|e| (e.to_string(), e.suppressed));
    let no_dest = |s: &str| (format!("{s} - no destination available"), 0);
    assert_eq!(
        dp.test_run(Prog::Xdp, &syn_to(VIP, 80)).unwrap().verdict,
        XDP_TX
    );
    assert_eq!(next(), Some(no_dest("rr: TCP 198.18.2.1:80")));
    assert_eq!(
        dp.test_run(Prog::Tc, &dgram).unwrap().verdict,
        TC_ACT_REDIRECT
    );
    assert_eq!(next(), Some(no_dest("wlc: UDP 198.18.2.1:53")));
    dp.test_run_marked(Prog::Tc, &syn_to(OTHER, 80), 5).unwrap();
    assert_eq!(next(), Some(no_dest("sh: FWM 5 0x00000005")));
    // forwarded: nothing to tell
    assert_eq!(
        dp.test_run(Prog::Xdp, &syn_to([198, 18, 2, 3], 80))
            .unwrap()
            .verdict,
        XDP_TX
    );
    assert_eq!(next(), None);
    // the burst: 3 told, 7 more, then 3 left out until the clock moves
    for _ in 0..10 {
        dp.test_run(Prog::Xdp, &syn_to(VIP, 80)).unwrap();
    }
    for _ in 0..7 {
        assert_eq!(next(), Some(no_dest("rr: TCP 198.18.2.1:80")));
    }
    assert_eq!(next(), None);
    dp.set_clock(Some(100_500_000_000)).unwrap();
    dp.test_run(Prog::Xdp, &syn_to(VIP, 80)).unwrap();
    assert_eq!(
        next(),
        Some(("rr: TCP 198.18.2.1:80 - no destination available".into(), 3))
    );
    assert_eq!(next(), None);
    assert_eq!(dp.counters().unwrap().no_dest, 3 + 10 + 1);
}

#[test]
fn unsupported_rules_are_refused_not_mis_scheduled() {
    let mut dp = load();
    // SCTP and IPv6 services are supported now (tests/sctp_fixtures.rs,
    // tests/v6_fixtures.rs); what is left is size: a service's real servers
    // must fit its scheduler's slots.
    let mut rules = vec!["-A -t 198.18.2.1:80 -s rr".to_string()];
    for i in 0..=xvs_datapath::maps::MAX_DESTS {
        rules.push(format!(
            "-a -t 198.18.2.1:80 -r 198.18.{}.{} -g",
            10 + i / 200,
            1 + i % 200
        ));
    }
    let rules: Vec<&str> = rules.iter().map(String::as_str).collect();
    let err = dp
        .sync(&table(&rules), &Sysctls::default(), &L2::default())
        .unwrap_err();
    assert!(matches!(err, xvs_datapath::Error::Refused(_)), "{err}");
    assert!(
        err.to_string().contains("more than 256 real servers"),
        "{err}"
    );
    assert_eq!(dp.conn_count(), 0);
}

/// twos without the test hook draws from bpf_get_prandom_u32: both servers
/// get connections, and no test draw is taken.
#[test]
fn twos_draws_kernel_random_numbers_without_the_hook() {
    let mut dp = load();
    let t = table(&[
        "-A -t 198.18.2.1:80 -s twos",
        "-a -t 198.18.2.1:80 -r 198.18.1.2 -g",
        "-a -t 198.18.2.1:80 -r 198.18.1.3 -g",
    ]);
    let mut by_addr = std::collections::HashMap::new();
    for (i, a) in [[198u8, 18, 1, 2], [198, 18, 1, 3]].iter().enumerate() {
        by_addr.insert(
            std::net::IpAddr::V4((*a).into()),
            NextHop {
                mac: [0x02, 0x78, 0x76, 0x73, 0x03, i as u8],
                src_mac: EGRESS_MAC,
                ifindex: 0,
            },
        );
    }
    let l2 = L2 { by_addr, ..l2(0) };
    dp.sync(&t, &Sysctls::default(), &l2).unwrap();
    let mut seen = [0u32; 2];
    for sport in 0..200u16 {
        let f = eth(
            DIRECTOR_MAC,
            CLIENT_MAC,
            0x0800,
            &ipv4(CLIENT, VIP, 6, &tcp(30000 + sport, 80, 0x02)),
        );
        let out = dp.test_run(Prog::Xdp, &f).unwrap();
        assert_eq!(out.verdict, XDP_TX);
        seen[out.packet[5] as usize] += 1;
    }
    assert!(seen[0] > 20 && seen[1] > 20, "{seen:?}");
    assert_eq!(dp.fixed_draws_used().unwrap(), 0);
}

/// A "fragmentation needed" from `from` to the VIP quoting `quoted` (an
/// IPv4 packet), as a frame from the client's side.
fn frag_needed_to_vip(from: [u8; 4], quoted: &[u8]) -> Vec<u8> {
    eth(
        DIRECTOR_MAC,
        CLIENT_MAC,
        0x0800,
        &ipv4(from, VIP, 1, &frag_needed(quoted)),
    )
}

const ROUTER: [u8; 4] = [198, 18, 0, 254];

/// Path MTU discovery through LVS-DR: a router's "fragmentation needed"
/// about a packet the real server sent the client (from the VIP) reaches
/// the director, which forwards it to the connection's real server as it
/// does the connection's packets (the kernel's IPVS does the same), and
/// counts it as the connection's. One about no tracked connection, and an
/// echo request to the VIP, are the director's stack's, untouched.
#[test]
fn icmp_errors_about_a_connection_go_to_its_real_server() {
    require_root();
    for (prog, verdict, pass) in [
        (Prog::Xdp, XDP_TX, XDP_PASS),
        (Prog::Tc, TC_ACT_REDIRECT, TC_ACT_OK),
    ] {
        let dp = datapath(0);
        let syn = syn_to(VIP, 80);
        assert_eq!(
            dp.test_run(prog, &syn).unwrap().verdict,
            verdict,
            "{prog:?}"
        );
        // the server's reply, as the client's path saw it: VIP:80 -> client
        let reply = ipv4(VIP, CLIENT, 6, &tcp(80, 40000, 0x12));
        let err = frag_needed_to_vip(ROUTER, &reply);
        let got = dp.test_run(prog, &err).unwrap();
        assert_eq!(got.verdict, verdict, "{prog:?} frag needed");
        assert_eq!(got.packet, dr_rewritten(&err), "{prog:?} frag needed");
        assert_eq!(dp.counters().unwrap(), counters(0, 2, 0), "{prog:?}");
        let t = table(&[
            "-A -t 198.18.2.1:80 -s rr",
            "-a -t 198.18.2.1:80 -r 198.18.1.2 -g",
        ]);
        let id = t.services().next().unwrap().dests[0].id;
        let st = dp.real_stats(id).unwrap().unwrap();
        assert_eq!((st.conns, st.inpkts), (1, 2), "{prog:?}");

        // no such connection (another client port), an echo request
        let other = frag_needed_to_vip(ROUTER, &ipv4(VIP, CLIENT, 6, &tcp(80, 40001, 0x12)));
        let mut echo = vec![8, 0, 0, 0, 0, 1, 0, 1];
        let c = inet_csum(&echo);
        echo[2..4].copy_from_slice(&c.to_be_bytes());
        let echo = eth(
            DIRECTOR_MAC,
            CLIENT_MAC,
            0x0800,
            &ipv4(CLIENT, VIP, 1, &echo),
        );
        for input in [other, echo] {
            let got = dp.test_run(prog, &input).unwrap();
            assert_eq!(got.verdict, pass, "{prog:?} not ours");
            assert_eq!(got.packet, input, "{prog:?} not ours");
        }
        assert_eq!(dp.counters().unwrap(), counters(2, 2, 0), "{prog:?}");
    }
}
