//! The classic LVS labs, end to end, with real parts: nginx real servers in
//! network namespaces, curl and wrk on a client, and the xvs eBPF datapath
//! on the director, driven by ipvsadm command lines.
//!
//! The namespaces come from xvs-testhost (`Topology`, 198.18.0.0/15,
//! `xvs-lab-<pid>-<n>-<role>`, deleted on drop). See `labs_common` for how
//! the datapath is attached in each mode. The labs run one at a time.
//!
//! | lab | attach | what is asserted |
//! |---|---|---|
//! | NAT wrr 2:1 | tc, XDP | 300 curl (`Connection: close`) split exactly 200:100; Conns and ActiveConn+InActConn agree; NAT in and out counted; every reply sent straight to the client by the datapath (`replied`, none to the stack), no accept_local |
//! | DR rr | tc, XDP, XDP+tc; next hops from the FIB, and explicit (tc) | 100 requests split 50:50; the director never sees a reply (no `replied`, OutPkts 0, its d0 received only what the datapath forwarded) |
//! | persistence `-p 300`, rr over 3 | tc | six client addresses, ten new connections each: each address always on one server, two addresses per server; six templates (client → server) as `-Lc` would list them, PersistConn 2 each |
//! | NAT rr, `-d` then `-a` under wrk | tc | zero wrk errors; the removed server's connections are kept (their packets dropped while out) and recover |
//! | NAT rr, `-e -w 0` under wrk | tc | zero wrk errors; new connections only to the other server; established ones still served |
//! | NAT UDP rr 3 servers | tc, explicit `L2` | 60 queries from 60 ports split 20:20:20, answered from VIP:53 |
//! | NAT expiry | tc | timeouts 2 s; `expire()` frees all 50 entries, ActiveConn/InActConn back to 0 |
//! | UDP over the MTU, NAT and DR | tc, XDP | a 3000-byte query and a 4000-byte answer, fragmented by the kernels, arrive whole; each counted as one datagram |
//! | SCTP NAT to another port | tc, XDP | an association's setup (INIT, INIT ACK, COOKIE ECHO, COOKIE ACK) between raw-socket endpoints: each packet arrives with its ports mapped and its CRC32c right; the entry ESTABLISHED, ActiveConn 1 |
//!
//! What the labs need on the director besides the rules:
//! - Forwarding on (the topology sets `ip_forward=1`): the real servers'
//!   next hops come from the kernel's FIB and neighbour tables
//!   (`bpf_fib_lookup`, `L2::default()`), which answer FWD_DISABLED unless
//!   the ingress device forwards. One DR lab and one NAT lab use explicit
//!   `L2` entries instead.
//! - No `accept_local`: NAT replies are SNATed and sent straight to the
//!   client's next hop; the labs check that it is off.
//! - XDP with next hops from the FIB: the real servers' neighbour entries
//!   resolved beforehand (managed entries, `ip neigh replace RS dev d0
//!   managed`): XDP cannot resolve a missing one (tc does, with
//!   `bpf_redirect_neigh`).
//! - XDP on veths: the client's tx checksum offload is off (XDP cannot see
//!   CHECKSUM_PARTIAL, so a forwarded copy would carry a partial checksum),
//!   and the bridge port `p-d` that receives `d0`'s XDP_TX frames has an
//!   XDP program (a rule-less xvs_xdp: XDP_PASS), without which a veth
//!   drops XDP frames.
//!
//! Needs root; without it every test fails with a message saying so.

mod common;
mod labs_common;

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket},
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::{Duration, Instant},
};

use xvs_core::conn::tcp::TCP_STATES;

use labs_common::{got, if_stat, show, Attach, Hops, Lab};

/// LVS-NAT, `wrr` with weights 2:1: 300 new connections split exactly
/// 200:100 (wrr is deterministic), and the datapath's per-server
/// connection counters say the same.
#[test]
fn nat_wrr_2_to_1_splits_300_requests_200_to_100() {
    nat_wrr_2_to_1(Attach::Tc);
}

/// The same through XDP on both director interfaces: DNATed packets and
/// SNATed replies leave by `bpf_redirect` to the other interface.
#[test]
fn nat_xdp_wrr_2_to_1_splits_300_requests_200_to_100() {
    nat_wrr_2_to_1(Attach::Xdp);
}

fn nat_wrr_2_to_1(attach: Attach) {
    let mut lab = Lab::nat_with(2, true, Hops::Fib, attach, None);
    lab.ipvsadm("-A -t {vip}:80 -s wrr");
    lab.ipvsadm("-a -t {vip}:80 -r {rs0}:80 -m -w 2");
    lab.ipvsadm("-a -t {vip}:80 -r {rs1}:80 -m -w 1");
    // The client must not reuse a port still in TIME_WAIT: the director would
    // (rightly) replace that entry, and fewer than 300 would remain tracked.
    lab.topo
        .client()
        .sysctl("net.ipv4.tcp_tw_reuse", "0")
        .unwrap();
    let before = lab.dp.counters().unwrap();

    let by = lab.curl_close(300);
    let after = lab.dp.counters().unwrap();
    println!(
        "LVS-NAT wrr 2:1 ({attach:?}): answers {}; {before:?} -> {after:?}",
        show(&by)
    );
    println!("{}", lab.listing());

    assert_eq!(got(&by, "rs0"), 200, "answers by server: {}", show(&by));
    assert_eq!(got(&by, "rs1"), 100, "answers by server: {}", show(&by));
    // The datapath scheduled exactly these connections...
    assert_eq!(lab.conns(0), 200, "rs0 Conns");
    assert_eq!(lab.conns(1), 100, "rs1 Conns");
    // ...and still tracks every one of them (closed ones in TIME_WAIT,
    // counted inactive, for two minutes).
    let (a0, i0) = lab.counts(0);
    let (a1, i1) = lab.counts(1);
    assert_eq!(a0 + i0, 200, "rs0 ActiveConn {a0} + InActConn {i0}");
    assert_eq!(a1 + i1, 100, "rs1 ActiveConn {a1} + InActConn {i1}");
    // Both directions went through it: NAT in and out.
    for i in 0..2 {
        let s = lab.stats(i);
        assert!(s.inpkts > 0 && s.outpkts > 0, "rs{i} stats {s:?}");
    }
    // Client packets: forwarded, or (the first ones, before the director
    // had resolved a real server's MAC) sent with bpf_redirect_neigh.
    let sent = (after.forwarded + after.no_neigh) - (before.forwarded + before.no_neigh);
    assert!(sent >= 300 * 3, "{before:?} -> {after:?}");
    assert!(
        after.no_neigh - before.no_neigh <= 10,
        "neighbours not kept: {before:?} -> {after:?}"
    );
    // Every reply was SNATed and sent straight to the client by the
    // datapath; none went to the director's stack (where, with the VIP as a
    // local source and no accept_local, it would be dropped as a martian).
    assert!(
        after.replied - before.replied >= 300 * 2,
        "{before:?} -> {after:?}"
    );
    assert_eq!(after.no_route, before.no_route, "{before:?} -> {after:?}");
    assert_eq!(after.malformed, before.malformed);
    assert_eq!(after.no_dest, before.no_dest);
}

/// LVS-DR, `rr` over two real servers: 100 requests split 50:50, and the
/// replies go from the real servers straight to the client: the datapath
/// saw (and counted) only client-to-server packets, and the director's
/// interface received nothing beyond what the datapath forwarded.
fn dr_rr_replies_bypass_the_director(attach: Attach, hops: Hops) {
    let mut lab = Lab::dr_with(2, attach, hops, None);
    lab.ipvsadm("-A -t {vip}:80 -s rr");
    lab.ipvsadm("-a -t {vip}:80 -r {rs0}:80 -g");
    lab.ipvsadm("-a -t {vip}:80 -r {rs1}:80 -g");
    // Warm the ARP caches (the client's entry for the VIP, the real
    // servers' for the client, the director's for the real servers) so
    // only the lab's traffic is measured.
    let cold = lab.dp.counters().unwrap();
    lab.curl_close(2);
    let warm = lab.dp.counters().unwrap();
    let resolving = warm.no_neigh - cold.no_neigh;
    println!("warm-up: {resolving} frames sent without a neighbour entry");
    match (attach, hops) {
        // The director had not resolved the real servers: the first frame
        // to each went out through bpf_redirect_neigh (tc; for XDP+tc,
        // passed by XDP with metadata and sent by tc).
        (Attach::Tc | Attach::XdpTc, Hops::Fib) => assert!(
            resolving >= 2,
            "first frames to the two servers not resolved by the kernel: {cold:?} -> {warm:?}"
        ),
        // Managed neighbour entries (XDP), or no FIB at all.
        _ => assert_eq!(resolving, 0, "{cold:?} -> {warm:?}"),
    }
    let d = lab.topo.director();
    let rs_tx = |lab: &Lab| -> u64 {
        (0..2)
            .map(|i| if_stat(lab.topo.server(i), "r0", "tx_packets"))
            .sum()
    };
    let (d_rx0, c_rx0, rs_tx0) = (
        if_stat(d, "d0", "rx_packets"),
        if_stat(lab.topo.client(), "c0", "rx_packets"),
        rs_tx(&lab),
    );
    let before = lab.dp.counters().unwrap();
    let pass_before = lab.pass.as_ref().map(|p| p.counters().unwrap().passed);
    let conns0 = [lab.conns(0), lab.conns(1)];

    let by = lab.curl_close(100);

    let after = lab.dp.counters().unwrap();
    let d = lab.topo.director();
    let d_rx = if_stat(d, "d0", "rx_packets") - d_rx0;
    let c_rx = if_stat(lab.topo.client(), "c0", "rx_packets") - c_rx0;
    let rs_sent = rs_tx(&lab) - rs_tx0;
    let seen = after.total() - before.total();
    let forwarded = after.forwarded - before.forwarded;
    println!(
        "LVS-DR rr ({attach:?}, next hops {hops:?}): answers {}; datapath saw {seen} packets, forwarded {forwarded}, \
         replied {}; director d0 rx {d_rx} packets; real servers sent {rs_sent}, client received {c_rx}",
        show(&by),
        after.replied - before.replied
    );
    println!("{}", lab.listing());

    assert_eq!(got(&by, "rs0"), 50, "answers by server: {}", show(&by));
    assert_eq!(got(&by, "rs1"), 50, "answers by server: {}", show(&by));
    assert_eq!(lab.conns(0) - conns0[0], 50, "rs0 Conns");
    assert_eq!(lab.conns(1) - conns0[1], 50, "rs1 Conns");
    // Every client packet of 100 connections (SYN, ACK, request, FIN...)
    // was forwarded by the datapath (after the warm-up, the real servers'
    // MACs are in the director's neighbour table).
    assert!(
        forwarded >= 100 * 4,
        "forwarded {forwarded}: {before:?} -> {after:?}"
    );
    assert_eq!(after.no_neigh, before.no_neigh, "{before:?} -> {after:?}");
    assert_eq!(after.no_route, before.no_route, "{before:?} -> {after:?}");
    // No reply was ever seen by the datapath: nothing NATed back, no
    // outgoing packet counted for either server.
    assert_eq!(
        after.replied, before.replied,
        "replies counted by the director"
    );
    for i in 0..2 {
        let s = lab.stats(i);
        assert_eq!(
            s.outpkts, 0,
            "rs{i}: reply packets counted on the director: {s:?}"
        );
        assert!(s.inpkts > 0, "rs{i}: {s:?}");
    }
    // The real servers sent the replies (at least SYN-ACK + response per
    // connection), and the client got them...
    assert!(
        rs_sent >= 100 * 2,
        "real servers sent only {rs_sent} packets"
    );
    assert!(c_rx >= 100 * 2, "client received only {c_rx} packets");
    // ...but they did not reach the director: what its d0 received is what
    // the datapath saw (the client's packets, plus at most a few stray
    // frames such as ARP), nowhere near the real servers' replies.
    assert!(
        d_rx <= seen + 10,
        "director d0 received {d_rx} packets, the datapath saw {seen}: replies went through it"
    );
    assert!(
        d_rx < seen + rs_sent / 2,
        "director d0 received {d_rx} packets: replies went through it"
    );
    // XDP: the XDP_TX frames entered the bridge port p-d through its
    // XDP_PASS program (a rule-less xvs_xdp, which counts them as passed):
    // at least SYN, ACK, request and FIN of each connection.
    if let (Some(p), Some(p0)) = (&lab.pass, pass_before) {
        let passed = p.counters().unwrap().passed - p0;
        println!("XDP_PASS program on p-d passed {passed} frames");
        assert!(passed >= 100 * 4, "p-d passed only {passed} frames");
    }
}

#[test]
fn dr_rr_tc_splits_50_50_and_replies_bypass_the_director() {
    dr_rr_replies_bypass_the_director(Attach::Tc, Hops::Fib);
}

#[test]
fn dr_rr_xdp_splits_50_50_and_replies_bypass_the_director() {
    dr_rr_replies_bypass_the_director(Attach::Xdp, Hops::Fib);
}

/// XDP with next hops from the FIB and no managed neighbour entries: xvs_tc
/// on the same device sends what XDP could not (the first frames, before
/// the real servers' MACs are known) with bpf_redirect_neigh.
#[test]
fn dr_rr_xdp_with_tc_resolving_neighbours_splits_50_50() {
    dr_rr_replies_bypass_the_director(Attach::XdpTc, Hops::Fib);
}

/// The same with the next hops given explicitly (`L2` entries: the real
/// servers' MACs, out of the ingress device), which override the FIB.
#[test]
fn dr_rr_tc_with_explicit_l2_splits_50_50() {
    dr_rr_replies_bypass_the_director(Attach::Tc, Hops::Explicit);
}

fn nat_rr_two_servers() -> Lab {
    let mut lab = Lab::nat(2, true);
    lab.ipvsadm("-A -t {vip}:80 -s rr");
    lab.ipvsadm("-a -t {vip}:80 -r {rs0}:80 -m");
    lab.ipvsadm("-a -t {vip}:80 -r {rs1}:80 -m");
    lab
}

/// A real server is deleted (`-d`) under keep-alive load and added back
/// 300 ms later. As in the kernel, its connections stay in the table
/// while it sits in the trash; their packets are dropped meanwhile and TCP
/// retransmits them once it is back (with the same identity and counts).
/// wrk sees no error at all.
#[test]
fn nat_real_server_removed_and_readded_under_load() {
    let mut lab = nat_rr_two_servers();
    let id = lab.dest(0);
    let (res, dropped, rs0_during) = thread::scope(|s| {
        let wrk = lab.wrk_keepalive(s, Duration::from_secs(5));
        thread::sleep(Duration::from_millis(1500));
        let c0 = lab.dp.counters().unwrap();
        lab.ipvsadm("-d -t {vip}:80 -r {rs0}:80");
        thread::sleep(Duration::from_millis(300));
        let rs0_during = lab.counts(0);
        lab.ipvsadm("-a -t {vip}:80 -r {rs0}:80 -m");
        let dropped = lab.dp.counters().unwrap().unavailable - c0.unavailable;
        (wrk.join().unwrap(), dropped, rs0_during)
    });
    println!(
        "removed rs0 for 300 ms under load: wrk {} requests, {} socket errors ({} timeouts), \
         {} non-2xx; {dropped} packets of rs0's connections dropped while it was out; \
         rs0 (ActiveConn, InActConn) while removed: {rs0_during:?}",
        res.requests, res.socket_errors, res.timeouts, res.non_2xx
    );
    println!("{}", lab.listing());
    assert!(res.requests > 0, "wrk did no request: {res:?}");
    assert_eq!(res.socket_errors, 0, "wrk socket errors: {res:?}");
    assert_eq!(res.non_2xx, 0, "wrk non-2xx answers: {res:?}");
    assert!(
        rs0_during.0 > 0,
        "rs0's keep-alive connections were forgotten on removal: {rs0_during:?}"
    );
    assert!(
        dropped > 0,
        "no packet of rs0's connections was dropped while it was removed"
    );
    assert_eq!(lab.dest(0), id, "rs0 came back from the trash as itself");
    for i in 0..2 {
        assert!(lab.stats(i).inpkts > 0, "rs{i} served nothing");
    }
}

/// A real server is drained (`-e ... -w 0`) under keep-alive load: its
/// established connections keep being served, new connections go only to
/// the other server, and wrk sees no error. Then its weight is restored.
#[test]
fn nat_real_server_drained_with_weight_0_under_load() {
    let mut lab = nat_rr_two_servers();
    let (res, during, rs0_conns, rs0_inpkts) = thread::scope(|s| {
        let wrk = lab.wrk_keepalive(s, Duration::from_secs(5));
        thread::sleep(Duration::from_millis(1500));
        lab.ipvsadm("-e -t {vip}:80 -r {rs0}:80 -m -w 0");
        let (conns0, inpkts0) = (lab.conns(0), lab.stats(0).inpkts);
        let during = lab.curl_close(20);
        let rs0_conns = lab.conns(0) - conns0;
        let rs0_inpkts = lab.stats(0).inpkts - inpkts0;
        lab.ipvsadm("-e -t {vip}:80 -r {rs0}:80 -m -w 1");
        (wrk.join().unwrap(), during, rs0_conns, rs0_inpkts)
    });
    println!(
        "drained rs0 under load: new connections went to {}; rs0 got {rs0_conns} new \
         connections and {rs0_inpkts} packets of its established ones meanwhile; wrk {} \
         requests, {} socket errors, {} non-2xx",
        show(&during),
        res.requests,
        res.socket_errors,
        res.non_2xx
    );
    println!("{}", lab.listing());
    assert_eq!(
        got(&during, "rs1"),
        20,
        "new connections while rs0 drained: {}",
        show(&during)
    );
    assert_eq!(rs0_conns, 0, "rs0 got new connections while drained");
    assert!(
        rs0_inpkts > 0,
        "rs0's established keep-alive connections were not served while drained"
    );
    assert!(res.requests > 0, "wrk did no request: {res:?}");
    assert_eq!(res.socket_errors, 0, "wrk socket errors: {res:?}");
    assert_eq!(res.non_2xx, 0, "wrk non-2xx answers: {res:?}");
    // Weight back: new connections reach rs0 again.
    let after = lab.curl_close(10);
    assert_eq!(got(&after, "rs0"), 5, "after the drain: {}", show(&after));
}

/// Sets the flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A DNS-like UDP service over LVS-NAT: a responder in each of three real
/// servers answers every datagram with its name; 60 queries from 60
/// distinct client ports are scheduled rr 20:20:20, the answers come back
/// from VIP:53 (SNAT), and each real server saw the client's own address.
#[test]
fn nat_udp_dns_like_service_rr_over_three_servers() {
    let mut lab = Lab::nat_with(3, false, Hops::Explicit, Attach::Tc, None);
    lab.ipvsadm("-A -u {vip}:53 -s rr");
    for i in 0..3 {
        lab.ipvsadm(&format!("-a -u {{vip}}:53 -r {{rs{i}}}:53 -m"));
    }
    let vip = SocketAddr::from((lab.vip(), 53));
    let client_addr = IpAddr::V4(lab.topo.plan().client_addr());
    // A socket made in a namespace stays in it: bind there, serve anywhere.
    let socks: Vec<UdpSocket> = lab
        .topo
        .servers()
        .map(|ns| {
            ns.enter(|| UdpSocket::bind(("0.0.0.0", 53)))
                .unwrap()
                .unwrap_or_else(|e| panic!("binding :53 in {}: {e}", ns.name()))
        })
        .collect();
    let stop = AtomicBool::new(false);
    let (answers, seen) = thread::scope(|s| {
        let servers: Vec<_> = socks
            .iter()
            .enumerate()
            .map(|(i, sock)| {
                let stop = &stop;
                s.spawn(move || {
                    sock.set_read_timeout(Some(Duration::from_millis(100)))
                        .unwrap();
                    let name = format!("rs{i}");
                    let mut peers = Vec::new();
                    let mut buf = [0u8; 512];
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok((_, peer)) = sock.recv_from(&mut buf) {
                            sock.send_to(name.as_bytes(), peer).unwrap();
                            peers.push(peer);
                        }
                    }
                    peers
                })
            })
            .collect();
        // Stops the responders however the client side ends (a panic
        // included), or the scope would wait for them forever.
        let stopper = StopOnDrop(&stop);
        let answers = lab
            .topo
            .client()
            .enter(|| {
                // All 60 sockets open at once: 60 distinct source ports.
                let clients: Vec<UdpSocket> = (0..60)
                    .map(|_| UdpSocket::bind(("0.0.0.0", 0)).unwrap())
                    .collect();
                let mut answers = Vec::new();
                for (q, c) in clients.iter().enumerate() {
                    c.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
                    let mut buf = [0u8; 512];
                    // A lost datagram is retried from the same port (the
                    // same connection entry, so the same server).
                    let got = (0..3).find_map(|_| {
                        c.send_to(format!("query {q}").as_bytes(), vip).unwrap();
                        c.recv_from(&mut buf).ok()
                    });
                    let (n, from) = got.unwrap_or_else(|| panic!("query {q}: no answer"));
                    answers.push((String::from_utf8_lossy(&buf[..n]).into_owned(), from));
                }
                answers
            })
            .unwrap();
        drop(stopper);
        let seen: Vec<Vec<SocketAddr>> = servers.into_iter().map(|h| h.join().unwrap()).collect();
        (answers, seen)
    });
    let mut by = BTreeMap::new();
    for (name, from) in &answers {
        assert_eq!(*from, vip, "answer {name:?} did not come from the VIP");
        *by.entry(name.clone()).or_insert(0usize) += 1;
    }
    println!(
        "UDP rr over NAT (tc): answers {}; queries seen by the servers: {:?}",
        show(&by),
        seen.iter().map(Vec::len).collect::<Vec<_>>()
    );
    println!("{}", lab.listing());
    for (i, peers) in seen.iter().enumerate() {
        assert_eq!(got(&by, &format!("rs{i}")), 20, "answers: {}", show(&by));
        assert_eq!(lab.conns(i), 20, "rs{i} Conns");
        assert!(
            peers.iter().all(|p| p.ip() == client_addr),
            "rs{i} saw queries from {peers:?}, not only from the client {client_addr}"
        );
        let s = lab.stats(i);
        assert!(s.inpkts >= 20 && s.outpkts >= 20, "rs{i} stats {s:?}");
    }
}

/// After a burst of short TCP connections and UDP datagrams, every entry
/// sits in the table (closed TCP ones in TIME_WAIT, counted inactive).
/// With all timeouts set to 2 s, `Datapath::expire()` run past them frees
/// every entry and brings ActiveConn/InActConn back to 0.
#[test]
fn nat_expiry_brings_counts_back_to_zero() {
    let mut lab = Lab::nat(2, true);
    lab.table.timeouts.tcp = [2; TCP_STATES];
    lab.table.timeouts.udp = 2;
    lab.ipvsadm("-A -t {vip}:80 -s rr");
    lab.ipvsadm("-a -t {vip}:80 -r {rs0}:80 -m");
    lab.ipvsadm("-a -t {vip}:80 -r {rs1}:80 -m");
    lab.ipvsadm("-A -u {vip}:53 -s rr");
    lab.ipvsadm("-a -u {vip}:53 -r {rs0}:53 -m");
    lab.ipvsadm("-a -u {vip}:53 -r {rs1}:53 -m");

    let by = lab.curl_close(40);
    // Ten one-datagram UDP "connections" (nothing listens on :53, so the
    // real servers answer with ICMP, which the datapath passes).
    let vip = SocketAddr::from((lab.vip(), 53));
    lab.topo
        .client()
        .enter(|| {
            let socks: Vec<UdpSocket> = (0..10)
                .map(|_| UdpSocket::bind(("0.0.0.0", 0)).unwrap())
                .collect();
            for s in &socks {
                s.send_to(b"query", vip).unwrap();
            }
        })
        .unwrap();
    // Let the last datagrams reach the director.
    thread::sleep(Duration::from_millis(200));
    let tracked = lab.dp.conn_count();
    let counts: Vec<(u32, u32)> = (0..2).map(|i| lab.counts(i)).collect();
    println!(
        "after the burst: answers {}; {tracked} entries tracked; TCP (ActiveConn, InActConn) {counts:?}",
        show(&by)
    );
    println!("{}", lab.listing());
    assert_eq!(tracked, 50, "40 TCP + 10 UDP entries");
    for (i, (a, n)) in counts.iter().enumerate() {
        assert_eq!(a + n, 20, "rs{i} TCP ActiveConn {a} + InActConn {n}");
    }
    // Each server's TCP and UDP entries are one real server each in the
    // table; the two services' real servers share an address but not
    // their counts, so count both.
    let all: u32 = lab
        .table
        .services()
        .flat_map(|s| s.dests.iter())
        .map(|d| {
            let c = lab.dp.real_counts(d.id).unwrap().unwrap_or_default();
            c.active + c.inactive
        })
        .sum();
    assert_eq!(all, 50, "ActiveConn + InActConn over all real servers");

    // Past the 2 s timeouts, sweep until the table is empty (bounded).
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut freed = 0;
    thread::sleep(Duration::from_secs(2));
    while lab.dp.conn_count() > 0 && Instant::now() < deadline {
        freed += lab.dp.expire().expect("expire");
        thread::sleep(Duration::from_millis(250));
    }
    let snap: Vec<(u32, u32)> = lab
        .table
        .services()
        .flat_map(|s| s.dests.iter())
        .map(|d| {
            let c = lab.dp.real_counts(d.id).unwrap().unwrap_or_default();
            (c.active, c.inactive)
        })
        .collect();
    println!(
        "after expire(): freed {freed}; {} entries left, {} reply-index entries; \
         (ActiveConn, InActConn) per real server {snap:?}",
        lab.dp.conn_count(),
        lab.dp.reply_index_count()
    );
    println!("{}", lab.listing());
    assert_eq!(freed, 50, "expire() freed every entry once");
    assert_eq!(lab.dp.conn_count(), 0, "entries left after expiry");
    assert_eq!(
        lab.dp.reply_index_count(),
        0,
        "NAT reply-index entries left"
    );
    assert!(
        snap.iter().all(|&c| c == (0, 0)),
        "counts after expiry: {snap:?}"
    );
    // The cumulative counters are not touched by expiry.
    let conns: u64 = lab
        .table
        .services()
        .flat_map(|s| s.dests.iter())
        .map(|d| lab.dp.real_stats(d.id).unwrap().unwrap_or_default().conns)
        .sum();
    assert_eq!(conns, 40 + 10, "Conns over all real servers");
}

/// Persistence, the classic `-p`: an rr service with a 300 s persistence
/// timeout over three NAT real servers (next hops from the FIB). The client
/// has six more addresses; each makes ten new connections (`Connection:
/// close`), in two rounds of five interleaved with the other clients'. Every
/// connection of one client address lands on the same real server (even
/// though rr alone would move it on with each new connection), and the six
/// clients spread over the three servers two by two (rr picks a server per
/// new template). The datapath holds one template per client (`-Lc`:
/// client:0 -> VIP:80 -> the server that answered it, timeout 300 s), and
/// each server's PersistConn is 2.
#[test]
fn nat_persistence_keeps_each_client_on_one_server() {
    let mut lab = Lab::nat(3, true);
    lab.topo
        .client()
        .sysctl("net.ipv4.tcp_tw_reuse", "0")
        .unwrap();
    lab.ipvsadm("-A -t {vip}:80 -s rr -p 300");
    for i in 0..3 {
        lab.ipvsadm(&format!("-a -t {{vip}}:80 -r {{rs{i}}}:80 -m"));
    }
    let clients: Vec<Ipv4Addr> = (21..27).map(|h| Ipv4Addr::new(198, 18, 0, h)).collect();
    for c in &clients {
        lab.topo
            .client()
            .ip(&["addr", "add", &format!("{c}/24"), "dev", "c0"])
            .unwrap_or_else(|e| panic!("adding {c} to the client: {e}"));
    }
    let mut by_client: BTreeMap<Ipv4Addr, BTreeMap<String, usize>> = BTreeMap::new();
    for _round in 0..2 {
        for c in &clients {
            for (server, n) in lab.curl_close_from(*c, 5) {
                *by_client.entry(*c).or_default().entry(server).or_default() += n;
            }
        }
    }
    for (c, by) in &by_client {
        println!("client {c}: {}", show(by));
    }
    println!("{}", lab.listing());

    // Each client on exactly one server, for all ten connections.
    let mut server_of: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
    for c in &clients {
        let by = &by_client[c];
        assert_eq!(by.len(), 1, "client {c} answered by {}", show(by));
        let (server, n) = by.iter().next().unwrap();
        assert_eq!(*n, 10, "client {c}: {}", show(by));
        server_of.insert(*c, server.clone());
    }
    // The clients spread: two per server.
    let mut clients_of: BTreeMap<String, usize> = BTreeMap::new();
    for s in server_of.values() {
        *clients_of.entry(s.clone()).or_default() += 1;
    }
    assert_eq!(
        clients_of,
        (0..3).map(|i| (format!("rs{i}"), 2)).collect(),
        "clients per server: {server_of:?}"
    );

    // The templates, as `ipvsadm -Lcn` lists them.
    let vip = lab.vip();
    let name_of = |addr: Ipv4Addr| -> String {
        (0..3)
            .find(|&i| lab.rs(i) == addr)
            .map(|i| format!("rs{i}"))
            .unwrap_or_else(|| panic!("template to {addr}, not a real server"))
    };
    let tpls = lab.dp.templates();
    println!("pro timeout state source              virtual             destination");
    let mut seen: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
    for t in &tpls {
        let client = Ipv4Addr::from(t.key.caddr[0].to_ne_bytes());
        let vaddr = Ipv4Addr::from(t.key.vaddr[0].to_ne_bytes());
        let daddr = Ipv4Addr::from(t.daddr[0].to_ne_bytes());
        println!(
            "TCP {:>7} NONE  {client}:0{:>8} {vaddr}:{}  {daddr}:{}",
            t.timeout,
            "",
            u16::from_be(t.key.vport),
            u16::from_be(t.dport)
        );
        assert_eq!(vaddr, vip, "template {t:?}");
        assert_eq!(u16::from_be(t.key.vport), 80, "template {t:?}");
        assert_eq!(t.timeout, 300, "template {t:?}");
        assert_eq!(t.flags, 0, "template invalidated: {t:?}");
        seen.insert(client, name_of(daddr));
    }
    assert_eq!(tpls.len(), 6, "one template per client: {tpls:?}");
    assert_eq!(
        seen, server_of,
        "templates (client -> server) vs who answered"
    );
    assert_eq!(lab.dp.valid_template_count(), 6);
    for i in 0..3 {
        let c = lab.dp.real_counts(lab.dest(i)).unwrap().unwrap_or_default();
        assert_eq!(c.persist, 2, "rs{i} PersistConn: {c:?}");
        assert_eq!(lab.conns(i), 20, "rs{i} Conns");
    }
    let c = lab.dp.counters().unwrap();
    assert_eq!(c.no_route, 0, "{c:?}");
    assert_eq!(c.no_dest, 0, "{c:?}");
}

/// Sends the ICMP message `msg` to `dst` from the calling thread's network
/// namespace through a raw socket (the kernel adds the IP header).
fn send_icmp(dst: Ipv4Addr, msg: &[u8]) {
    RawSocket::open(libc::IPPROTO_ICMP)
        .expect("raw ICMP socket")
        .send(dst, msg);
}

/// A UDP socket on real server 0 at `bind`:53 and one on the client (an
/// ephemeral port of its address), each waiting 5 s at most for a datagram.
fn udp_sockets(lab: &Lab, bind: Ipv4Addr) -> (UdpSocket, UdpSocket) {
    let server = lab
        .topo
        .server(0)
        .enter(|| UdpSocket::bind(SocketAddr::new(IpAddr::V4(bind), 53)))
        .unwrap()
        .unwrap_or_else(|e| panic!("bind {bind}:53 on the real server: {e}"));
    let client = lab.topo.plan().client_addr();
    let sock = lab
        .topo
        .client()
        .enter(|| UdpSocket::bind(SocketAddr::new(IpAddr::V4(client), 0)))
        .unwrap()
        .expect("client socket");
    for s in [&server, &sock] {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    }
    (server, sock)
}

/// Datagrams bigger than the path's MTU, end to end: the client's kernel
/// fragments a 3000-byte UDP query to the VIP; the director forwards every
/// fragment where the first went; the real server's kernel reassembles it
/// and answers with 4000 bytes, which its kernel fragments: by NAT each
/// fragment is SNATed on its way back through the director, by DR it goes
/// straight to the client. The client gets the whole answer from VIP:53,
/// and the server saw the whole query from the client's address. Without
/// fragment forwarding the later fragments of the query stay on the
/// director (whose own VIP they are for) and the server never answers.
#[test]
fn udp_datagrams_over_the_mtu_go_through_fragmented() {
    let cases = [
        ("NAT", Attach::Tc),
        ("NAT", Attach::Xdp),
        ("DR", Attach::Tc),
        ("DR", Attach::Xdp),
    ];
    for (method, attach) in cases {
        let mut lab = if method == "NAT" {
            Lab::nat_with(1, false, Hops::Fib, attach, None)
        } else {
            Lab::dr_with(1, attach, Hops::Fib, None)
        };
        lab.ipvsadm("-A -u {vip}:53 -s rr");
        if method == "NAT" {
            lab.ipvsadm("-a -u {vip}:53 -r {rs0}:53 -m");
        } else {
            lab.ipvsadm("-a -u {vip}:53 -r {rs0}:53 -g");
        }
        let (vip, client) = (lab.vip(), lab.topo.plan().client_addr());
        // DR: the server answers from the VIP on its loopback
        let bind = if method == "NAT" {
            Ipv4Addr::UNSPECIFIED
        } else {
            vip
        };
        let (server, sock) = udp_sockets(&lab, bind);
        let query: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let answer: Vec<u8> = (0..4000u32).map(|i| (i % 241) as u8).collect();
        let before = lab.dp.counters().unwrap();
        sock.send_to(&query, SocketAddr::new(IpAddr::V4(vip), 53))
            .unwrap();
        let mut buf = vec![0u8; 65536];
        let (n, from) = server
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("{method} {attach:?}: the query at the server: {e}"));
        assert_eq!(n, query.len(), "{method} {attach:?}: query length");
        assert!(buf[..n] == query[..], "{method} {attach:?}: query bytes");
        assert_eq!(from.ip(), IpAddr::V4(client), "{method} {attach:?}");
        server.send_to(&answer, from).unwrap();
        let (n, from) = sock
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("{method} {attach:?}: the answer at the client: {e}"));
        assert_eq!(
            (n, from),
            (answer.len(), SocketAddr::new(IpAddr::V4(vip), 53)),
            "{method} {attach:?}: answer"
        );
        assert!(buf[..n] == answer[..], "{method} {attach:?}: answer bytes");
        let after = lab.dp.counters().unwrap();
        // 3000 bytes: three fragments at MTU 1500 (the first of them,
        // tc, maybe to a neighbour the kernel resolves); 4000 bytes: three
        assert_eq!(
            after.forwarded + after.no_neigh - before.forwarded - before.no_neigh,
            3,
            "{method} {attach:?}: {after:?}"
        );
        assert_eq!(after.fragment, before.fragment, "{method} {attach:?}");
        let s = lab.stats(0);
        assert_eq!(
            (s.conns, s.inpkts, s.inbytes),
            (1, 1, 3000 + 8 + 20),
            "{method} {attach:?}: the query counted as one datagram"
        );
        if method == "NAT" {
            assert_eq!(
                after.replied - before.replied,
                3,
                "{method} {attach:?}: {after:?}"
            );
            assert_eq!(
                (s.outpkts, s.outbytes),
                (1, 4000 + 8 + 20),
                "{method} {attach:?}: the answer counted as one datagram"
            );
        }
        drop(lab);
    }
}

/// Path MTU discovery through LVS-DR, end to end: a UDP exchange through
/// the director (the real server's socket answers the client from the
/// VIP), then a "fragmentation needed" (MTU 1280) about the server's
/// datagram VIP:53 -> client, sent to the VIP as a router on the client's
/// path would send it. The director forwards it to the connection's real
/// server, whose kernel takes it for its socket's and caches the path MTU
/// toward the client: `ip route get` on the server shows it. Without the
/// datapath's ICMP handling the error stays on the director (the VIP is
/// its own address there), and the server never learns the MTU.
#[test]
fn dr_icmp_fragmentation_needed_reaches_the_real_server() {
    for attach in [Attach::Xdp, Attach::Tc] {
        let mut lab = Lab::dr_with(1, attach, Hops::Fib, None);
        lab.ipvsadm("-A -u {vip}:53 -s rr");
        lab.ipvsadm("-a -u {vip}:53 -r {rs0}:53 -g");
        let (vip, client) = (lab.vip(), lab.topo.plan().client_addr());
        let (server, sock) = udp_sockets(&lab, vip);
        let cport = sock.local_addr().unwrap().port();
        sock.send_to(b"query", SocketAddr::new(IpAddr::V4(vip), 53))
            .unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = server.recv_from(&mut buf).expect("the query at the server");
        assert_eq!((&buf[..n], from.ip()), (&b"query"[..], IpAddr::V4(client)));
        let mtu_on_server = |lab: &Lab| {
            lab.topo
                .server(0)
                .exec(&["ip", "-4", "route", "get", &client.to_string()])
                .unwrap()
        };
        assert!(
            !mtu_on_server(&lab).contains("mtu 1280"),
            "{attach:?}: {}",
            mtu_on_server(&lab)
        );

        // the server's answer as the client's path saw it (VIP:53 ->
        // client:cport), quoted in the router's error
        let mut quoted = vec![
            0x45, 0, 0, 33, 0, 0, 0x40, 0, 64, 17, 0, 0, // to the checksum
        ];
        quoted.extend_from_slice(&vip.octets());
        quoted.extend_from_slice(&client.octets());
        let c = common::inet_csum(&quoted);
        quoted[10..12].copy_from_slice(&c.to_be_bytes());
        quoted.extend_from_slice(&53u16.to_be_bytes());
        quoted.extend_from_slice(&cport.to_be_bytes());
        quoted.extend_from_slice(&[0, 13, 0, 0]);
        let mut msg = vec![3, 4, 0, 0, 0, 0, 0x05, 0x00];
        msg.extend_from_slice(&quoted);
        let c = common::inet_csum(&msg);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
        let before = lab.dp.counters().unwrap();
        lab.topo.client().enter(|| send_icmp(vip, &msg)).unwrap();

        let deadline = Instant::now() + Duration::from_secs(5);
        while !mtu_on_server(&lab).contains("mtu 1280") && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
        }
        let route = mtu_on_server(&lab);
        assert!(
            route.contains("mtu 1280"),
            "{attach:?}: the server did not learn the path MTU: {route}"
        );
        let after = lab.dp.counters().unwrap();
        assert_eq!(after.forwarded - before.forwarded, 1, "{attach:?}");
        drop(lab);
    }
}

/// A service whose real servers cannot take a connection (weight 0, or
/// none at all): the datapath answers with an ICMP port unreachable, as
/// the kernel's IPVS does, so the client's TCP connect and its connected
/// UDP socket fail at once with "connection refused" (a drop would leave
/// both waiting for their timeout). XDP, and tc with the client's
/// checksum offload left on (its SYN arrives CHECKSUM_PARTIAL).
#[test]
fn dr_no_real_server_refuses_connections_at_once_xdp() {
    no_real_server_refuses_connections(Attach::Xdp);
}

#[test]
fn dr_no_real_server_refuses_connections_at_once_tc() {
    no_real_server_refuses_connections(Attach::Tc);
}

fn no_real_server_refuses_connections(attach: Attach) {
    let mut lab = Lab::dr(1, attach);
    lab.ipvsadm("-A -t {vip}:80 -s rr");
    lab.ipvsadm("-a -t {vip}:80 -r {rs0}:80 -g -w 0");
    lab.ipvsadm("-A -u {vip}:53 -s rr");
    let (vip, client) = (lab.vip(), lab.topo.plan().client_addr());
    let before = lab.dp.counters().unwrap();
    let tcp = lab
        .topo
        .client()
        .enter(|| {
            std::net::TcpStream::connect_timeout(
                &SocketAddr::new(IpAddr::V4(vip), 80),
                Duration::from_secs(5),
            )
        })
        .unwrap();
    assert_eq!(
        tcp.as_ref().map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::ConnectionRefused),
        "{attach:?}: TCP connect to the VIP: {tcp:?}"
    );
    let udp = lab
        .topo
        .client()
        .enter(|| -> std::io::Result<usize> {
            let s = UdpSocket::bind(SocketAddr::new(IpAddr::V4(client), 0))?;
            s.connect(SocketAddr::new(IpAddr::V4(vip), 53))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.send(b"query")?;
            s.recv(&mut [0u8; 64])
        })
        .unwrap();
    assert_eq!(
        udp.as_ref().map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::ConnectionRefused),
        "{attach:?}: UDP query to the VIP: {udp:?}"
    );
    let after = lab.dp.counters().unwrap();
    assert_eq!(after.no_dest - before.no_dest, 2, "{attach:?}: {after:?}");
    assert_eq!(after.forwarded, before.forwarded, "{after:?}");
    assert_eq!(lab.dp.conn_count(), 0);
}

/// A raw IPv4 socket of one protocol, in the network namespace of the
/// thread that opens it: it writes that protocol's messages (the kernel
/// adds the IP header) and reads whole IP packets, waiting 5 s at most.
/// The path MTU lab's ICMP message goes through one, and, as this kernel
/// has no SCTP stack, the SCTP lab's endpoints are two.
struct RawSocket(std::os::fd::OwnedFd);

impl RawSocket {
    fn open(proto: libc::c_int) -> std::io::Result<RawSocket> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain socket(2); the fd is owned from here on.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, proto) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let s = RawSocket(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
        let tv = libc::timeval {
            tv_sec: 5,
            tv_usec: 0,
        };
        // SAFETY: a valid fd and a timeval of the size given.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(s)
    }

    fn send(&self, to: Ipv4Addr, msg: &[u8]) {
        use std::os::fd::AsRawFd;
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from(to).to_be(),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: a valid fd, buffer and sockaddr_in of the sizes given.
        let n = unsafe {
            libc::sendto(
                self.0.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&sa as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        let err = std::io::Error::last_os_error();
        assert_eq!(n, msg.len() as isize, "sendto {to}: {err}");
    }

    /// The next packet to `port` (bytes 2-3 of its L4 header, as TCP, UDP
    /// and SCTP have it; others are skipped): (source address, the L4
    /// packet). Panics after 5 s without one.
    fn recv_to(&self, port: u16) -> (Ipv4Addr, Vec<u8>) {
        use std::os::fd::AsRawFd;
        let mut buf = vec![0u8; 65536];
        loop {
            // SAFETY: a valid fd and buffer of the size given.
            let n =
                unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            assert!(
                n > 0,
                "no packet to port {port}: {}",
                std::io::Error::last_os_error()
            );
            let ip = &buf[..n as usize];
            let ihl = usize::from(ip[0] & 0xf) * 4;
            let l4 = &ip[ihl..];
            if l4.len() >= 12 && u16::from_be_bytes([l4[2], l4[3]]) == port {
                return (Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]), l4.to_vec());
            }
        }
    }
}

/// SCTP by NAT to another port on real veths, tc and XDP: an association's
/// setup between raw-socket endpoints (this kernel has no SCTP stack). The
/// client's INIT and COOKIE ECHO reach the real server from the client's
/// address, to port 6000, with a right CRC32c (updated by the director for
/// the port); the server's INIT ACK and COOKIE ACK, SNATed, reach the
/// client from VIP:5000, their CRC32c right too. The director's entry goes
/// INIT1, C-SENT, C-REPLIED, ESTABLISHED, and counts in ActiveConn.
#[test]
fn sctp_nat_association_setup_through_the_director() {
    const INIT: u8 = 1;
    const INIT_ACK: u8 = 2;
    const COOKIE_ECHO: u8 = 10;
    const COOKIE_ACK: u8 = 11;
    let params = [0x11u8, 0x22, 0x33, 0x44, 0, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1];
    for attach in [Attach::Tc, Attach::Xdp] {
        let mut lab = Lab::nat_with(1, false, Hops::Fib, attach, None);
        lab.ipvsadm("-A --sctp-service {vip}:5000 -s rr");
        lab.ipvsadm("-a --sctp-service {vip}:5000 -r {rs0}:6000 -m");
        let (vip, client_addr) = (lab.vip(), lab.topo.plan().client_addr());
        let raw_sctp = || RawSocket::open(132);
        let client = lab.topo.client().enter(raw_sctp).unwrap().unwrap();
        let server = lab.topo.server(0).enter(raw_sctp).unwrap().unwrap();
        let state = |lab: &Lab| lab.dp.connections()[0].state.clone();
        let steps = [
            (true, INIT, "INIT1"),
            (false, INIT_ACK, "C-SENT"),
            (true, COOKIE_ECHO, "C-REPLIED"),
            (false, COOKIE_ACK, "ESTABLISHED"),
        ];
        for (from_client, chunk, want) in steps {
            let ctx = format!("{attach:?} chunk {chunk}");
            if from_client {
                let tag = if chunk == INIT { 0 } else { 0x1122_3344 };
                client.send(vip, &common::sctp(40000, 5000, tag, &[(chunk, 0, &params)]));
                let (src, got) = server.recv_to(6000);
                assert_eq!(src, client_addr, "{ctx}");
                assert_eq!(u16::from_be_bytes([got[0], got[1]]), 40000, "{ctx}");
                assert_eq!(got[12], chunk, "{ctx}");
                assert!(common::sctp_crc_ok(&got), "{ctx}: CRC32c at the server");
            } else {
                let sent = common::sctp(6000, 40000, 0x1122_3344, &[(chunk, 0, &params)]);
                server.send(client_addr, &sent);
                let (src, got) = client.recv_to(40000);
                assert_eq!(src, vip, "{ctx}");
                assert_eq!(u16::from_be_bytes([got[0], got[1]]), 5000, "{ctx}");
                assert_eq!(got[12], chunk, "{ctx}");
                assert!(common::sctp_crc_ok(&got), "{ctx}: CRC32c at the client");
            }
            assert_eq!(state(&lab), want, "{ctx}");
        }
        assert_eq!(lab.counts(0), (1, 0), "{attach:?}: ActiveConn, InActConn");
        let st = lab.stats(0);
        assert_eq!((st.conns, st.inpkts, st.outpkts), (1, 2, 2), "{attach:?}");
        println!("SCTP NAT ({attach:?}):\n{}", lab.listing());
    }
}
