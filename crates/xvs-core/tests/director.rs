//! The packet-level director model: what an LVS operator sees happen to
//! connections, counters and listings when packets flow.

use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;
use xvs_core::conn::TcpFlags;
use xvs_core::director::{Director, DropReason, Packet, Verdict};
use xvs_core::ipvsadm::parse::parse_args;
use xvs_core::ipvsadm::{format, Command, ListOptions, NumericOnly};
use xvs_core::model::{Flow, FwdMethod, Protocol};
use xvs_core::time::Time;

const VIP: [u8; 4] = [198, 18, 0, 1];

fn ip(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn rs(n: u8) -> IpAddr {
    ip([198, 18, 1, n])
}

fn client(n: u16) -> IpAddr {
    ip([198, 19, (n >> 8) as u8, n as u8])
}

fn cmd(line: &str) -> Command {
    let args: Vec<&str> = line.split_whitespace().collect();
    parse_args(&args, &NumericOnly).unwrap_or_else(|e| panic!("{line}: {e}"))
}

fn director(lines: &[&str]) -> Director {
    let mut d = Director::new(1);
    for l in lines {
        d.apply(&cmd(l)).unwrap_or_else(|e| panic!("{l}: {e}"));
    }
    d
}

fn flow(c: u16, sport: u16, dport: u16) -> Flow {
    Flow {
        protocol: Protocol::Tcp,
        src: client(c),
        sport,
        dst: ip(VIP),
        dport,
    }
}

fn back(f: &Flow, daddr: IpAddr, dport: u16) -> Flow {
    Flow {
        protocol: f.protocol,
        src: daddr,
        sport: dport,
        dst: f.src,
        dport: f.sport,
    }
}

fn syn(d: &mut Director, t: u64, f: Flow) -> Verdict {
    d.process(Time(t), &Packet::tcp(f, TcpFlags::SYN, 60))
}

fn real_of(v: Verdict) -> IpAddr {
    match v {
        Verdict::ToReal { daddr, .. } => daddr,
        other => panic!("expected ToReal, got {other:?}"),
    }
}

/// (active, inactive, persistent) of a real server.
fn counts(d: &Director, addr: IpAddr) -> (u32, u32, u32) {
    let svc = d.table.services().next().unwrap();
    let x = svc.dests.iter().find(|x| x.cfg.addr == addr).unwrap();
    (x.active_conns, x.inact_conns, x.persist_conns)
}

const NAT_21: &[&str] = &[
    "-A -t 198.18.0.1:80 -s wrr",
    "-a -t 198.18.0.1:80 -r 198.18.1.1:8080 -m -w 2",
    "-a -t 198.18.0.1:80 -r 198.18.1.2:8080 -m -w 1",
];

#[test]
fn nat_wrr_splits_two_to_one_and_rewrites_both_ways() {
    let mut d = director(NAT_21);
    let mut n = [0; 2];
    for c in 0..300 {
        let f = flow(c, 40000, 80);
        match syn(&mut d, 0, f) {
            Verdict::ToReal {
                daddr,
                dport,
                fwd,
                new_conn,
                ..
            } => {
                assert_eq!((dport, fwd, new_conn), (8080, FwdMethod::Masq, true));
                n[(daddr == rs(2)) as usize] += 1;
                // The real server's SYN-ACK goes back with the VIP as source.
                let reply = Packet::tcp(back(&f, daddr, 8080), TcpFlags::SYN_ACK, 60);
                assert_eq!(
                    d.process(Time(1), &reply),
                    Verdict::ToClient {
                        vaddr: ip(VIP),
                        vport: 80
                    }
                );
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(n, [200, 100]);
    let svc = d.table.services().next().unwrap();
    assert_eq!(
        (svc.stats.conns, svc.stats.inpkts, svc.stats.outpkts),
        (300, 300, 300)
    );
    assert_eq!(svc.stats.inbytes, 300 * 60);
}

#[test]
fn dr_connection_walks_the_input_only_states_and_counts() {
    let mut d = director(&[
        "-A -t 198.18.0.1:80 -s rr",
        "-a -t 198.18.0.1:80 -r 198.18.1.1 -g",
    ]);
    let f = flow(1, 5555, 80);
    // SYN: SYN_RECV, which counts as active in current kernels.
    let v = syn(&mut d, 0, f);
    assert_eq!(real_of(v), rs(1));
    assert_eq!(counts(&d, rs(1)), (1, 0, 0));
    let state = |d: &Director| d.connections(Time(0))[0].state.clone();
    assert_eq!(state(&d), "SYN_RECV");
    d.process(Time(10), &Packet::tcp(f, TcpFlags::ACK, 52));
    assert_eq!(state(&d), "ESTABLISHED");
    assert_eq!(d.connections(Time(10))[0].expires, 900);
    // The client closes: FIN_WAIT is not active.
    d.process(Time(20), &Packet::tcp(f, TcpFlags::FIN_ACK, 52));
    assert_eq!(state(&d), "FIN_WAIT");
    assert_eq!(counts(&d, rs(1)), (0, 1, 0));
    // FIN_WAIT lasts 120 s, then the entry is freed and the count drops.
    assert_eq!(d.expire(Time(20 + 119_000)), 0);
    assert_eq!(d.expire(Time(20 + 120_000)), 1);
    assert_eq!(counts(&d, rs(1)), (0, 0, 0));
    assert_eq!(d.conn_count(), 0);
}

#[test]
fn packets_not_for_a_service_pass() {
    let mut d = director(NAT_21);
    // Another port on the VIP, another address, and a mid-stream segment with
    // no connection: none is the director's business.
    assert_eq!(syn(&mut d, 0, flow(1, 1000, 22)), Verdict::Pass);
    let mut other = flow(1, 1000, 80);
    other.dst = ip([198, 18, 0, 99]);
    assert_eq!(syn(&mut d, 0, other), Verdict::Pass);
    let ack = Packet::tcp(flow(1, 1000, 80), TcpFlags::ACK, 52);
    assert_eq!(d.process(Time(0), &ack), Verdict::Pass);
    let rst = Packet::tcp(flow(1, 1000, 80), TcpFlags::RST, 40);
    assert_eq!(d.process(Time(0), &rst), Verdict::Pass);
    assert_eq!(d.conn_count(), 0);
}

#[test]
fn no_available_real_server_drops_new_connections() {
    let mut d = director(&[
        "-A -t 198.18.0.1:80 -s wlc",
        "-a -t 198.18.0.1:80 -r 198.18.1.1:80 -m -w 0",
    ]);
    assert_eq!(
        syn(&mut d, 0, flow(1, 1, 80)),
        Verdict::Drop(DropReason::NoDestination)
    );
    assert_eq!(d.conn_count(), 0);
}

#[test]
fn weight_zero_drains_existing_connections_keep_flowing() {
    let mut d = director(NAT_21);
    let f = flow(7, 7000, 80);
    let first = real_of(syn(&mut d, 0, f));
    d.apply(&cmd(&format!(
        "-e -t 198.18.0.1:80 -r {first}:8080 -m -w 0"
    )))
    .unwrap();
    // The established connection still reaches its server...
    let v = d.process(Time(5), &Packet::tcp(f, TcpFlags::ACK, 52));
    assert_eq!(real_of(v), first);
    // ...and every new one goes to the other.
    for c in 100..120 {
        assert_ne!(real_of(syn(&mut d, 10, flow(c, 1, 80))), first);
    }
}

#[test]
fn removed_real_server_drops_its_packets_until_re_added() {
    let mut d = director(NAT_21);
    let f = flow(3, 3000, 80);
    let first = real_of(syn(&mut d, 0, f));
    d.process(Time(1), &Packet::tcp(f, TcpFlags::ACK, 52));
    d.apply(&cmd(&format!("-d -t 198.18.0.1:80 -r {first}:8080")))
        .unwrap();
    assert_eq!(d.table.trash_len(), 1, "in use, so kept in the trash");
    let ack = Packet::tcp(f, TcpFlags::ACK, 52);
    assert_eq!(
        d.process(Time(2), &ack),
        Verdict::Drop(DropReason::DestUnavailable)
    );
    // Re-added (from the trash): the same connection flows again.
    d.apply(&cmd(&format!(
        "-a -t 198.18.0.1:80 -r {first}:8080 -m -w 2"
    )))
    .unwrap();
    assert_eq!(real_of(d.process(Time(3), &ack)), first);
    assert_eq!(counts(&d, first), (1, 0, 0));
}

#[test]
fn expire_nodest_conn_expires_the_orphan_and_reschedules_a_syn() {
    let mut d = director(NAT_21);
    d.sysctls.expire_nodest_conn = true;
    let f = flow(3, 3000, 80);
    let first = real_of(syn(&mut d, 0, f));
    d.apply(&cmd(&format!("-d -t 198.18.0.1:80 -r {first}:8080")))
        .unwrap();
    // The background flush expires the orphan at the next timer pass,
    // without waiting for a packet.
    assert_eq!(d.conn_count(), 1);
    assert_eq!(d.expire(Time(1)), 1);
    assert_eq!(d.conn_count(), 0);
    // A mid-stream segment now finds nothing and is not a SYN.
    assert_eq!(
        d.process(Time(2), &Packet::tcp(f, TcpFlags::ACK, 52)),
        Verdict::Pass
    );
    // The same tuple's SYN is scheduled to a remaining server.
    assert_ne!(real_of(syn(&mut d, 3, f)), first);
}

#[test]
fn expire_nodest_conn_on_a_packet_expires_the_entry_and_schedules_the_syn() {
    let mut d = director(NAT_21);
    let f = flow(3, 3000, 80);
    let first = real_of(syn(&mut d, 0, f));
    d.apply(&cmd(&format!("-d -t 198.18.0.1:80 -r {first}:8080")))
        .unwrap();
    // Turned on after the removal: no background flush, the packet does it.
    d.sysctls.expire_nodest_conn = true;
    let v = syn(&mut d, 2, f);
    assert!(matches!(v, Verdict::ToReal { new_conn: true, .. }), "{v:?}");
    assert_ne!(real_of(v), first);
    // The old entry stays bound until the timer pass frees it.
    assert_eq!(d.conn_count(), 2);
    d.expire(Time(2));
    assert_eq!(d.conn_count(), 1);
}

#[test]
fn expire_nodest_conn_reschedules_a_persistent_client_off_a_quiescent_server() {
    let mut d = director(&[
        "-A -t 198.18.0.1:80 -s rr -p 300",
        "-a -t 198.18.0.1:80 -r 198.18.1.1:80 -m",
        "-a -t 198.18.0.1:80 -r 198.18.1.2:80 -m",
    ]);
    d.sysctls.expire_nodest_conn = true;
    d.sysctls.expire_quiescent_template = true;
    let f = flow(1, 1000, 80);
    let first = real_of(syn(&mut d, 0, f));
    d.apply(&cmd(&format!("-e -t 198.18.0.1:80 -r {first}:80 -m -w 0")))
        .unwrap();
    // A SYN on the same tuple: the entry is under a template, but with
    // expire_nodest_conn a weight-0 server still gets the SYN rescheduled.
    assert_ne!(real_of(syn(&mut d, 1, f)), first);
}

#[test]
fn syn_on_time_wait_entry_starts_a_new_connection() {
    let mut d = director(&[
        "-A -t 198.18.0.1:80 -s rr",
        "-a -t 198.18.0.1:80 -r 198.18.1.1:80 -m",
        "-a -t 198.18.0.1:80 -r 198.18.1.2:80 -m",
    ]);
    let f = flow(9, 9999, 80);
    let first = real_of(syn(&mut d, 0, f));
    let b = back(&f, first, 80);
    for (t, p) in [
        (1, Packet::tcp(b, TcpFlags::SYN_ACK, 60)),
        (2, Packet::tcp(f, TcpFlags::ACK, 52)),
        (3, Packet::tcp(f, TcpFlags::FIN_ACK, 52)),
        (4, Packet::tcp(b, TcpFlags::FIN_ACK, 52)),
        (5, Packet::tcp(f, TcpFlags::ACK, 52)),
    ] {
        d.process(Time(t), &p);
    }
    assert_eq!(d.connections(Time(5))[0].state, "TIME_WAIT");
    // Port reuse: the new SYN replaces the finished entry and is scheduled
    // afresh (rr moves on to the other server).
    match syn(&mut d, 6, f) {
        Verdict::ToReal {
            daddr, new_conn, ..
        } => {
            assert!(new_conn);
            assert_ne!(daddr, first);
        }
        v => panic!("{v:?}"),
    }
    // The finished entry's timer fires now; it still counts until the next
    // timer pass frees it.
    assert_eq!(d.conn_count(), 2);
    assert_eq!(counts(&d, first), (0, 1, 0));
    d.expire(Time(6));
    assert_eq!(d.conn_count(), 1);
    assert_eq!(counts(&d, first), (0, 0, 0));
}

#[test]
fn a_replaced_entry_still_counts_when_its_successor_is_scheduled() {
    // wlc sees the TIME_WAIT entry being replaced as one inactive connection
    // on its server, as the kernel does (the entry is only marked to expire).
    let mut d = director(&[
        "-A -t 198.18.0.1:80 -s wlc",
        "-a -t 198.18.0.1:80 -r 198.18.1.1:80 -m",
        "-a -t 198.18.0.1:80 -r 198.18.1.2:80 -m",
    ]);
    let f = flow(9, 9999, 80);
    let first = real_of(syn(&mut d, 0, f));
    let b = back(&f, first, 80);
    for (t, p) in [
        (1, Packet::tcp(b, TcpFlags::SYN_ACK, 60)),
        (2, Packet::tcp(f, TcpFlags::ACK, 52)),
        (3, Packet::tcp(f, TcpFlags::FIN_ACK, 52)),
        (4, Packet::tcp(b, TcpFlags::FIN_ACK, 52)),
        (5, Packet::tcp(f, TcpFlags::ACK, 52)),
    ] {
        d.process(Time(t), &p);
    }
    assert_eq!(counts(&d, first), (0, 1, 0));
    assert_ne!(real_of(syn(&mut d, 6, f)), first);
}

#[test]
fn active_ftp_data_from_port_20_is_not_scheduled() {
    let mut d = director(NAT_21);
    assert_eq!(syn(&mut d, 0, flow(1, 20, 80)), Verdict::Pass);
    assert_eq!(d.conn_count(), 0);
}

#[test]
fn persistence_sticks_per_client_network() {
    let mut d = director(&[
        "-A -t 198.18.0.1:80 -s rr -p 300 -M 255.255.255.0",
        "-a -t 198.18.0.1:80 -r 198.18.1.1:80 -m",
        "-a -t 198.18.0.1:80 -r 198.18.1.2:80 -m",
        "-a -t 198.18.0.1:80 -r 198.18.1.3:80 -m",
    ]);
    // Clients in 198.19.0.0/24 all land where the first one did.
    let first = real_of(syn(&mut d, 0, flow(1, 1000, 80)));
    for c in 2..50 {
        assert_eq!(real_of(syn(&mut d, 10, flow(c, 1000 + c, 80))), first);
    }
    // Clients from other /24s spread over the three servers.
    let mut seen = std::collections::HashSet::new();
    for net in 1..7u16 {
        seen.insert(real_of(syn(&mut d, 20, flow(net << 8, 2000, 80))));
    }
    assert_eq!(seen.len(), 3);
    // One template per client network, counted as PersistConn.
    let persist: u32 = [1, 2, 3].iter().map(|&n| counts(&d, rs(n)).2).sum();
    assert_eq!(persist, 7);
    let templates = d
        .connections(Time(20))
        .into_iter()
        .filter(|c| c.protocol == "TCP" && c.cport == 0);
    assert_eq!(templates.count(), 7);
}

#[test]
fn quiescent_server_keeps_persistent_clients_unless_told_otherwise() {
    let lines = [
        "-A -t 198.18.0.1:80 -s rr -p 300",
        "-a -t 198.18.0.1:80 -r 198.18.1.1:80 -m",
        "-a -t 198.18.0.1:80 -r 198.18.1.2:80 -m",
    ];
    for expire_quiescent in [false, true] {
        let mut d = director(&lines);
        d.sysctls.expire_quiescent_template = expire_quiescent;
        let first = real_of(syn(&mut d, 0, flow(1, 1000, 80)));
        d.apply(&cmd(&format!("-e -t 198.18.0.1:80 -r {first}:80 -m -w 0")))
            .unwrap();
        let again = real_of(syn(&mut d, 1000, flow(1, 1001, 80)));
        assert_eq!(
            again == first,
            !expire_quiescent,
            "expire_quiescent_template={expire_quiescent}"
        );
    }
}

#[test]
fn port_zero_service_needs_persistence() {
    let mut d = director(&[
        "-A -t 198.18.0.1:0 -s rr -p 60",
        "-a -t 198.18.0.1:0 -r 198.18.1.1 -g",
        "-a -t 198.18.0.1:0 -r 198.18.1.2 -g",
    ]);
    // Any port of the VIP; one client sticks to one server across ports, and
    // the connection keeps the port it was sent to.
    let first = syn(&mut d, 0, flow(1, 1000, 443));
    let Verdict::ToReal { daddr, dport, .. } = first else {
        panic!("{first:?}")
    };
    assert_eq!(dport, 443);
    assert_eq!(real_of(syn(&mut d, 0, flow(1, 1001, 22))), daddr);
    assert_eq!(real_of(syn(&mut d, 0, flow(1, 1002, 8443))), daddr);
}

#[test]
fn fwmark_service_matches_marked_packets_only() {
    let mut d = director(&["-A -f 7 -s rr", "-a -f 7 -r 198.18.1.1 -g"]);
    let f = flow(1, 1000, 12345);
    assert_eq!(syn(&mut d, 0, f), Verdict::Pass);
    let marked = Packet::tcp(f, TcpFlags::SYN, 60).with_fwmark(7);
    assert_eq!(real_of(d.process(Time(0), &marked)), rs(1));
}

#[test]
fn upper_threshold_overloads_and_lower_threshold_clears() {
    let mut d = director(&[
        "-A -t 198.18.0.1:80 -s wrr",
        "-a -t 198.18.0.1:80 -r 198.18.1.2:80 -m -w 1",
        "-a -t 198.18.0.1:80 -r 198.18.1.1:80 -m -w 100 -x 2 -y 1",
    ]);
    // The service was built from scratch, so wrr's current weight is still 0
    // after the adds and its first pass takes every server once (1.1, 1.2);
    // then the weight-100 server gets the turns. It may hold only 2 connections (-x 2), so the fourth goes to
    // the weight-1 server.
    let picks: Vec<IpAddr> = (0..4)
        .map(|c| real_of(syn(&mut d, 0, flow(c, 1, 80))))
        .collect();
    assert_eq!(picks, vec![rs(1), rs(2), rs(1), rs(2)]);
    let overloaded = |d: &Director| {
        let svc = d.table.services().next().unwrap();
        svc.dests
            .iter()
            .find(|x| x.cfg.addr == rs(1))
            .unwrap()
            .overloaded
    };
    assert!(overloaded(&d));
    // The SYN_RECV entries time out (60 s): below the lower threshold (-y 1).
    d.expire(Time(60_000));
    assert!(!overloaded(&d));
    assert_eq!(real_of(syn(&mut d, 60_001, flow(9, 1, 80))), rs(1));
}

#[test]
fn one_packet_udp_leaves_no_entry_but_counts() {
    let mut d = director(&[
        "-A -u 198.18.0.53:53 -s rr -o",
        "-a -u 198.18.0.53:53 -r 198.18.1.1:53 -m",
        "-a -u 198.18.0.53:53 -r 198.18.1.2:53 -m",
    ]);
    let f = Flow {
        protocol: Protocol::Udp,
        src: client(1),
        sport: 5353,
        dst: ip([198, 18, 0, 53]),
        dport: 53,
    };
    // The same tuple is scheduled anew each time.
    let a = real_of(d.process(Time(0), &Packet::udp(f, 80)));
    let b = real_of(d.process(Time(1), &Packet::udp(f, 80)));
    assert_ne!(a, b);
    assert_eq!(d.conn_count(), 0);
    assert_eq!((counts(&d, a), counts(&d, b)), ((0, 0, 0), (0, 0, 0)));
    assert_eq!(d.table.services().next().unwrap().stats.conns, 2);
}

#[test]
fn udp_flow_is_one_inactive_entry_for_300_seconds() {
    let mut d = director(&[
        "-A -u 198.18.0.53:53 -s rr",
        "-a -u 198.18.0.53:53 -r 198.18.1.1:53 -m",
    ]);
    let f = Flow {
        protocol: Protocol::Udp,
        src: client(1),
        sport: 5353,
        dst: ip([198, 18, 0, 53]),
        dport: 53,
    };
    d.process(Time(0), &Packet::udp(f, 80));
    let r = d.process(Time(1), &Packet::udp(back(&f, rs(1), 53), 120));
    assert_eq!(
        r,
        Verdict::ToClient {
            vaddr: ip([198, 18, 0, 53]),
            vport: 53
        }
    );
    assert_eq!(counts(&d, rs(1)), (0, 1, 0));
    assert_eq!(d.connections(Time(1))[0].state, "UDP");
    assert_eq!(d.expire(Time(1 + 299_999)), 0);
    assert_eq!(d.expire(Time(1 + 300_000)), 1);
}

#[test]
fn rates_follow_a_steady_connection_rate() {
    let mut d = director(NAT_21);
    // 50 new connections per second for 20 seconds.
    let mut c = 0u16;
    for ms in (0..20_000).step_by(20) {
        syn(&mut d, ms, flow(c, 1, 80));
        c = c.wrapping_add(1);
        if ms % 1000 == 0 {
            d.expire(Time(ms));
        }
    }
    d.expire(Time(20_000));
    // The kernel's estimator, recomputed here: every 2 s the window's
    // connections become a rate scaled by 2^10 per second (<< 9 for a 2 s
    // window), averaged with weight 1/4, read out rounded ((x + 0x1ff) >> 10).
    // Windows: 101 connections (0..=2000 ms, the SYN at 2000 lands before the
    // sample), then 100 each, and 99 in the last (18020..=19980 ms).
    let mut windows = vec![101i64];
    windows.extend([100; 8]);
    windows.push(99);
    let avg = windows
        .iter()
        .fold(0i64, |avg, n| avg + (((n << 9) - avg) >> 2));
    let want = ((avg + 0x1ff) >> 10) as u64;
    assert_eq!(want, 47);
    assert_eq!(d.table.total_rates.cps, want);
    let svc = d.table.services().next().unwrap();
    assert_eq!(svc.rates.cps, want);
    // The two real servers share it 2:1 (wrr), each estimated on its own.
    let per_real: u64 = svc.dests.iter().map(|x| x.rates.cps).sum();
    assert!((want - 1..=want + 1).contains(&per_real), "{per_real}");

    // -Z clears rates at once, for the service, its real servers and the total.
    d.apply(&Command::Zero(None)).unwrap();
    let svc = d.table.services().next().unwrap();
    assert_eq!(d.table.total_rates.cps, 0);
    assert_eq!(svc.rates.cps, 0);
    assert!(svc.dests.iter().all(|x| x.rates.cps == 0));
}

#[test]
fn a_server_back_from_the_trash_shows_no_rate_spike() {
    let mut d = director(NAT_21);
    for c in 0..40 {
        syn(&mut d, 0, flow(c, 1, 80));
    }
    d.apply(&cmd("-d -t 198.18.0.1:80 -r 198.18.1.1:8080"))
        .unwrap();
    for s in 1..=10 {
        d.expire(Time::from_secs(s));
    }
    d.apply(&cmd("-a -t 198.18.0.1:80 -r 198.18.1.1:8080 -m -w 2"))
        .unwrap();
    for s in 11..=14 {
        d.expire(Time::from_secs(s));
    }
    let svc = d.table.services().next().unwrap();
    let back = svc.dests.iter().find(|x| x.cfg.addr == rs(1)).unwrap();
    assert!(back.stats.conns > 0, "it kept its counters");
    assert_eq!(back.rates.cps, 0, "no new connections, no rate");
}

#[test]
fn listing_shows_what_the_packets_did() {
    let mut d = director(NAT_21);
    for c in 0..3 {
        syn(&mut d, 0, flow(c, 1, 80));
    }
    let opts = ListOptions {
        numeric: true,
        ..Default::default()
    };
    let out = format::list(&d.snapshot(), &opts, &NumericOnly).unwrap();
    assert_eq!(
        out,
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n\
         TCP  198.18.0.1:80 wrr\n  \
         -> 198.18.1.1:8080              Masq    2      2          0         \n  \
         -> 198.18.1.2:8080              Masq    1      1          0         \n"
    );
}

/// A random client event: which client, and what it does.
#[derive(Clone, Debug)]
enum Ev {
    Syn(u8),
    Ack(u8),
    Fin(u8),
    Rst(u8),
    Reply(u8),
    Wait(u32),
    Weight(u8, u8),
    Remove(u8),
    Add(u8),
}

fn ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        4 => any::<u8>().prop_map(Ev::Syn),
        3 => any::<u8>().prop_map(Ev::Ack),
        2 => any::<u8>().prop_map(Ev::Fin),
        1 => any::<u8>().prop_map(Ev::Rst),
        2 => any::<u8>().prop_map(Ev::Reply),
        1 => (0u32..200_000).prop_map(Ev::Wait),
        1 => (0u8..3, 0u8..4).prop_map(|(r, w)| Ev::Weight(r, w)),
        1 => (0u8..3).prop_map(Ev::Remove),
        1 => (0u8..3).prop_map(Ev::Add),
    ]
}

proptest! {
    /// Whatever the packets and rule changes, each real server's active and
    /// inactive counts equal the split of the live connections bound to it.
    #[test]
    fn counts_always_match_live_connections(
        sched in prop::sample::select(vec!["rr", "wrr", "wlc", "lc", "sh", "mh", "lblc"]),
        persistent in any::<bool>(),
        events in prop::collection::vec(ev(), 1..300),
    ) {
        let p = if persistent { " -p 120" } else { "" };
        let mut d = director(&[&format!("-A -t 198.18.0.1:80 -s {sched}{p}")]);
        for r in 1..=3 {
            d.apply(&cmd(&format!("-a -t 198.18.0.1:80 -r 198.18.1.{r}:80 -m -w 2"))).unwrap();
        }
        let mut now = 0u64;
        for e in events {
            now += 1;
            let f = |c: u8| flow(c as u16 % 16, 1000 + (c as u16 / 16), 80);
            match e {
                Ev::Syn(c) => { d.process(Time(now), &Packet::tcp(f(c), TcpFlags::SYN, 60)); }
                Ev::Ack(c) => { d.process(Time(now), &Packet::tcp(f(c), TcpFlags::ACK, 52)); }
                Ev::Fin(c) => { d.process(Time(now), &Packet::tcp(f(c), TcpFlags::FIN_ACK, 52)); }
                Ev::Rst(c) => { d.process(Time(now), &Packet::tcp(f(c), TcpFlags::RST, 40)); }
                Ev::Reply(c) => {
                    for r in 1..=3 {
                        d.process(Time(now), &Packet::tcp(back(&f(c), rs(r), 80), TcpFlags::ACK, 52));
                    }
                }
                Ev::Wait(ms) => { now += ms as u64; d.expire(Time(now)); }
                Ev::Weight(r, w) => {
                    let _ = d.apply(&cmd(&format!("-e -t 198.18.0.1:80 -r 198.18.1.{}:80 -m -w {w}", r + 1)));
                }
                Ev::Remove(r) => { let _ = d.apply(&cmd(&format!("-d -t 198.18.0.1:80 -r 198.18.1.{}:80", r + 1))); }
                Ev::Add(r) => { let _ = d.apply(&cmd(&format!("-a -t 198.18.0.1:80 -r 198.18.1.{}:80 -m", r + 1))); }
            }
            // Recount from the connection table.
            let mut want: std::collections::HashMap<_, (u32, u32, u32)> = Default::default();
            for (_, c) in d.conns().iter() {
                let e = want.entry(c.dest.unwrap()).or_default();
                if c.is_template() { e.2 += 1 } else if c.is_inactive() { e.1 += 1 } else { e.0 += 1 }
            }
            for (id, (a, i, p)) in &want {
                let dest = d.table.dest(*id).expect("a bound real server is listed or in the trash");
                prop_assert_eq!((dest.active_conns, dest.inact_conns, dest.persist_conns), (*a, *i, *p));
            }
            for svc in d.table.services() {
                for x in &svc.dests {
                    let w = want.get(&x.id).copied().unwrap_or_default();
                    prop_assert_eq!((x.active_conns, x.inact_conns, x.persist_conns), w);
                }
            }
        }
    }
}
