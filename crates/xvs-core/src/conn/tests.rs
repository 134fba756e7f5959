use std::net::IpAddr;

use proptest::prelude::*;

use super::*;
use crate::ipvsadm::command::TimeoutSet;
use crate::model::{DestId, Family, Flow, FwdMethod, Protocol, ServiceKey};
use crate::persist::{template_key, Sysctls};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn flow(proto: Protocol, cport: u16) -> Flow {
    Flow {
        protocol: proto,
        src: ip("192.0.2.10"),
        sport: cport,
        dst: ip("10.0.0.1"),
        dport: 80,
    }
}

fn new_conn(proto: Protocol, cport: u16, fwd: FwdMethod) -> Conn {
    Conn::new(
        &flow(proto, cport),
        ip("10.1.0.1"),
        8080,
        Some(DestId(1)),
        fwd,
        false,
    )
}

fn cc(active: i32, inactive: i32) -> CountChange {
    CountChange {
        dest: Some(DestId(1)),
        active,
        inactive,
        persist: 0,
    }
}

fn secs(s: u64) -> Time {
    Time::from_secs(s)
}

/// Feeds one TCP packet and checks state, timeout, expiry and counts delta.
#[allow(clippy::too_many_arguments)]
fn step(
    t: &mut ConnTable,
    id: ConnId,
    now: Time,
    dir: Dir,
    flags: TcpFlags,
    state: TcpState,
    timeout: u32,
    delta: (i32, i32),
) {
    let tm = Timeouts::default();
    let d = t.packet(id, dir, Pkt::Tcp(flags), now, &tm);
    let c = t.get(id).unwrap();
    assert_eq!(c.state, ConnState::Tcp(state), "{dir:?} {flags:?}");
    assert_eq!(c.timeout, timeout, "{dir:?} {flags:?}");
    assert_eq!(c.expires, Time(now.0 + timeout as u64 * 1000));
    assert_eq!(d, cc(delta.0, delta.1), "{dir:?} {flags:?} -> {state:?}");
    assert_eq!(c.is_inactive(), !state.is_active());
}

#[test]
fn nat_handshake_and_teardown() {
    use Dir::*;
    use TcpState::*;
    let mut t = ConnTable::new();
    let c = new_conn(Protocol::Tcp, 40000, FwdMethod::Masq);
    assert!(c.is_inactive());
    assert!(!c.flags.has(ConnFlags::NO_OUTPUT));
    let (id, bind) = t.insert(c, secs(0));
    assert_eq!(bind, cc(0, 1));
    assert_eq!(t.get(id).unwrap().state.name(), "NONE");
    assert_eq!(t.get(id).unwrap().expires, secs(3));

    step(
        &mut t,
        id,
        secs(0),
        Input,
        TcpFlags::SYN,
        SynRecv,
        60,
        (1, -1),
    );
    step(
        &mut t,
        id,
        secs(1),
        Output,
        TcpFlags::SYN_ACK,
        SynRecv,
        60,
        (0, 0),
    );
    step(
        &mut t,
        id,
        secs(2),
        Input,
        TcpFlags::ACK,
        Established,
        900,
        (0, 0),
    );
    step(
        &mut t,
        id,
        secs(3),
        Output,
        TcpFlags::ACK,
        Established,
        900,
        (0, 0),
    );
    // Client closes first: INPUT fin in ESTABLISHED -> CLOSE_WAIT.
    step(
        &mut t,
        id,
        secs(4),
        Input,
        TcpFlags::FIN_ACK,
        CloseWait,
        60,
        (-1, 1),
    );
    step(
        &mut t,
        id,
        secs(5),
        Output,
        TcpFlags::ACK,
        CloseWait,
        60,
        (0, 0),
    );
    step(
        &mut t,
        id,
        secs(6),
        Output,
        TcpFlags::FIN_ACK,
        TimeWait,
        120,
        (0, 0),
    );
    step(
        &mut t,
        id,
        secs(7),
        Input,
        TcpFlags::ACK,
        TimeWait,
        120,
        (0, 0),
    );

    assert!(t.expire(Time(127_000 - 1)).is_empty());
    let gone = t.expire(secs(127));
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].counts, cc(0, -1));
    assert!(t.get(id).is_none());
    assert!(t.is_empty());
}

#[test]
fn nat_server_closes_first() {
    use Dir::*;
    use TcpState::*;
    let mut t = ConnTable::new();
    let (id, _) = t.insert(new_conn(Protocol::Tcp, 1, FwdMethod::Masq), secs(0));
    step(
        &mut t,
        id,
        secs(0),
        Input,
        TcpFlags::SYN,
        SynRecv,
        60,
        (1, -1),
    );
    step(
        &mut t,
        id,
        secs(0),
        Output,
        TcpFlags::SYN_ACK,
        SynRecv,
        60,
        (0, 0),
    );
    step(
        &mut t,
        id,
        secs(0),
        Input,
        TcpFlags::ACK,
        Established,
        900,
        (0, 0),
    );
    step(
        &mut t,
        id,
        secs(1),
        Output,
        TcpFlags::FIN_ACK,
        FinWait,
        120,
        (-1, 1),
    );
    step(
        &mut t,
        id,
        secs(1),
        Input,
        TcpFlags::ACK,
        FinWait,
        120,
        (0, 0),
    );
    step(
        &mut t,
        id,
        secs(2),
        Input,
        TcpFlags::FIN_ACK,
        TimeWait,
        120,
        (0, 0),
    );
    step(
        &mut t,
        id,
        secs(2),
        Output,
        TcpFlags::ACK,
        TimeWait,
        120,
        (0, 0),
    );
}

#[test]
fn dr_input_only_walk() {
    use Dir::*;
    use TcpState::*;
    let mut t = ConnTable::new();
    let c = new_conn(Protocol::Tcp, 40001, FwdMethod::Route);
    assert!(c.flags.has(ConnFlags::NO_OUTPUT));
    let (id, bind) = t.insert(c, secs(0));
    assert_eq!(bind, cc(0, 1));
    step(
        &mut t,
        id,
        secs(0),
        Input,
        TcpFlags::SYN,
        SynRecv,
        60,
        (1, -1),
    );
    step(
        &mut t,
        id,
        secs(1),
        Input,
        TcpFlags::ACK,
        Established,
        900,
        (0, 0),
    );
    step(
        &mut t,
        id,
        secs(2),
        Input,
        TcpFlags::ACK,
        Established,
        900,
        (0, 0),
    );
    // INPUT-ONLY: client FIN in ESTABLISHED -> FIN_WAIT (the INPUT table says CLOSE_WAIT).
    step(
        &mut t,
        id,
        secs(3),
        Input,
        TcpFlags::FIN_ACK,
        FinWait,
        120,
        (-1, 1),
    );
    step(
        &mut t,
        id,
        secs(4),
        Input,
        TcpFlags::ACK,
        FinWait,
        120,
        (0, 0),
    );
    assert!(t.get(id).unwrap().flags.has(ConnFlags::NO_OUTPUT));
    let gone = t.expire(secs(124));
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].counts, cc(0, -1));
}

#[test]
fn output_packet_clears_no_output() {
    use Dir::*;
    use TcpState::*;
    let mut t = ConnTable::new();
    let (id, _) = t.insert(new_conn(Protocol::Tcp, 2, FwdMethod::Local), secs(0));
    step(
        &mut t,
        id,
        secs(0),
        Input,
        TcpFlags::SYN,
        SynRecv,
        60,
        (1, -1),
    );
    step(
        &mut t,
        id,
        secs(0),
        Output,
        TcpFlags::SYN_ACK,
        SynRecv,
        60,
        (0, 0),
    );
    assert!(!t.get(id).unwrap().flags.has(ConnFlags::NO_OUTPUT));
    step(
        &mut t,
        id,
        secs(0),
        Input,
        TcpFlags::ACK,
        Established,
        900,
        (0, 0),
    );
    // Now the INPUT table applies: FIN -> CLOSE_WAIT.
    step(
        &mut t,
        id,
        secs(1),
        Input,
        TcpFlags::FIN_ACK,
        CloseWait,
        60,
        (-1, 1),
    );
}

#[test]
fn rst_handling() {
    use Dir::*;
    use TcpState::*;
    let mut t = ConnTable::new();
    // Client RST on an established NAT connection.
    let (a, _) = t.insert(new_conn(Protocol::Tcp, 10, FwdMethod::Masq), secs(0));
    step(
        &mut t,
        a,
        secs(0),
        Input,
        TcpFlags::SYN,
        SynRecv,
        60,
        (1, -1),
    );
    step(
        &mut t,
        a,
        secs(0),
        Input,
        TcpFlags::ACK,
        Established,
        900,
        (0, 0),
    );
    step(
        &mut t,
        a,
        secs(1),
        Input,
        TcpFlags::RST_ACK,
        Close,
        10,
        (-1, 1),
    );
    // RST wins over SYN in the same segment.
    step(
        &mut t,
        a,
        secs(2),
        Input,
        TcpFlags::new(true, false, false, true),
        Close,
        10,
        (0, 0),
    );

    // Server RST in ESTABLISHED.
    let (b, _) = t.insert(new_conn(Protocol::Tcp, 11, FwdMethod::Masq), secs(0));
    step(
        &mut t,
        b,
        secs(0),
        Input,
        TcpFlags::SYN,
        SynRecv,
        60,
        (1, -1),
    );
    step(
        &mut t,
        b,
        secs(0),
        Input,
        TcpFlags::ACK,
        Established,
        900,
        (0, 0),
    );
    step(
        &mut t,
        b,
        secs(1),
        Output,
        TcpFlags::RST,
        Close,
        10,
        (-1, 1),
    );

    // Client RST during SYN_RECV is ignored (stays SYN_RECV, timer restarts).
    let (c, _) = t.insert(new_conn(Protocol::Tcp, 12, FwdMethod::Route), secs(0));
    step(
        &mut t,
        c,
        secs(0),
        Input,
        TcpFlags::SYN,
        SynRecv,
        60,
        (1, -1),
    );
    step(
        &mut t,
        c,
        secs(5),
        Input,
        TcpFlags::RST,
        SynRecv,
        60,
        (0, 0),
    );

    // A segment with none of SYN/FIN/ACK/RST closes the entry.
    let (d, _) = t.insert(new_conn(Protocol::Tcp, 13, FwdMethod::Masq), secs(0));
    step(
        &mut t,
        d,
        secs(0),
        Input,
        TcpFlags::SYN,
        SynRecv,
        60,
        (1, -1),
    );
    step(
        &mut t,
        d,
        secs(0),
        Input,
        TcpFlags::ACK,
        Established,
        900,
        (0, 0),
    );
    step(
        &mut t,
        d,
        secs(1),
        Input,
        TcpFlags::NONE,
        Close,
        10,
        (-1, 1),
    );

    // RST before anything else: NONE -> CLOSE, still inactive.
    let (e, _) = t.insert(new_conn(Protocol::Tcp, 14, FwdMethod::Masq), secs(0));
    step(&mut t, e, secs(0), Input, TcpFlags::RST, Close, 10, (0, 0));
}

#[test]
fn udp_is_inactive_with_udp_timeout() {
    let mut t = ConnTable::new();
    let mut tm = Timeouts::default();
    let c = new_conn(Protocol::Udp, 5353, FwdMethod::Masq);
    assert_eq!(c.state.name(), "UDP");
    let (id, bind) = t.insert(c, secs(0));
    assert_eq!(bind, cc(0, 1));
    let d = t.packet(id, Dir::Input, Pkt::Udp, secs(0), &tm);
    assert!(d.is_zero());
    assert_eq!(t.get(id).unwrap().expires, secs(300));
    assert!(t.get(id).unwrap().is_inactive());
    let d = t.packet(id, Dir::Output, Pkt::Udp, secs(10), &tm);
    assert!(d.is_zero());
    assert_eq!(t.get(id).unwrap().expires, secs(310));
    // --set 0 0 30 applies from the next packet.
    tm.apply(TimeoutSet {
        tcp: 0,
        tcp_fin: 0,
        udp: 30,
    })
    .unwrap();
    assert_eq!(t.get(id).unwrap().expires, secs(310));
    t.packet(id, Dir::Input, Pkt::Udp, secs(20), &tm);
    assert_eq!(t.get(id).unwrap().expires, secs(50));
    assert!(t.expire(Time(49_999)).is_empty());
    let gone = t.expire(secs(50));
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].counts, cc(0, -1));
}

#[test]
fn set_changes_tcp_established_and_fin_wait() {
    let mut t = ConnTable::new();
    let mut tm = Timeouts::default();
    tm.apply(TimeoutSet {
        tcp: 100,
        tcp_fin: 7,
        udp: 0,
    })
    .unwrap();
    let (id, _) = t.insert(new_conn(Protocol::Tcp, 3, FwdMethod::Route), secs(0));
    t.packet(id, Dir::Input, Pkt::Tcp(TcpFlags::SYN), secs(0), &tm);
    assert_eq!(t.get(id).unwrap().timeout, 60);
    t.packet(id, Dir::Input, Pkt::Tcp(TcpFlags::ACK), secs(0), &tm);
    assert_eq!(t.get(id).unwrap().timeout, 100);
    t.packet(id, Dir::Input, Pkt::Tcp(TcpFlags::FIN_ACK), secs(0), &tm);
    assert_eq!(t.get(id).unwrap().timeout, 7);
}

#[test]
fn lookups_both_directions() {
    let mut t = ConnTable::new();
    let f = flow(Protocol::Tcp, 40000);
    let (id, _) = t.insert(
        Conn::new(
            &f,
            ip("10.1.0.1"),
            8080,
            Some(DestId(1)),
            FwdMethod::Masq,
            false,
        ),
        secs(0),
    );
    assert_eq!(t.find_in_flow(&f), Some(id));
    let reply = Flow {
        protocol: Protocol::Tcp,
        src: ip("10.1.0.1"),
        sport: 8080,
        dst: f.src,
        dport: f.sport,
    };
    assert_eq!(t.find_out_flow(&reply), Some(id));
    assert_eq!(
        t.find_in(Protocol::Udp, f.src, f.sport, f.dst, f.dport),
        None
    );
    assert_eq!(
        t.find_in(Protocol::Tcp, f.src, f.sport + 1, f.dst, f.dport),
        None
    );
    t.remove(id).unwrap();
    assert_eq!(t.find_in_flow(&f), None);
    assert_eq!(t.find_out_flow(&reply), None);
    assert!(t.get(id).is_none());
}

#[test]
fn expiry_order_refresh_and_shortening() {
    let tm = Timeouts::default();
    let mut t = ConnTable::new();
    let (a, _) = t.insert(new_conn(Protocol::Udp, 1, FwdMethod::Masq), secs(0));
    let (b, _) = t.insert(new_conn(Protocol::Udp, 2, FwdMethod::Masq), secs(0));
    let (c, _) = t.insert(new_conn(Protocol::Tcp, 3, FwdMethod::Masq), secs(0));
    t.packet(a, Dir::Input, Pkt::Udp, secs(0), &tm); // expires 300
    t.packet(b, Dir::Input, Pkt::Udp, secs(10), &tm); // expires 310
    t.packet(c, Dir::Input, Pkt::Tcp(TcpFlags::SYN), secs(0), &tm);
    t.packet(c, Dir::Input, Pkt::Tcp(TcpFlags::ACK), secs(0), &tm); // expires 900
                                                                    // Refresh a: now expires 400, after b.
    t.packet(a, Dir::Input, Pkt::Udp, secs(100), &tm);
    // Shorten c: RST -> CLOSE, 10 s from t=200.
    t.packet(c, Dir::Input, Pkt::Tcp(TcpFlags::RST), secs(200), &tm);
    assert!(t.expire(secs(209)).is_empty());
    let order: Vec<ConnId> = t.expire(secs(1000)).into_iter().map(|e| e.id).collect();
    assert_eq!(order, [c, b, a]);

    // Several due in one call come out in deadline order.
    let (x, _) = t.insert(new_conn(Protocol::Udp, 7, FwdMethod::Masq), secs(2000));
    let (y, _) = t.insert(new_conn(Protocol::Udp, 8, FwdMethod::Masq), secs(1999));
    t.packet(x, Dir::Input, Pkt::Udp, secs(2000), &tm);
    t.packet(y, Dir::Input, Pkt::Udp, secs(2001), &tm);
    let order: Vec<ConnId> = t.expire(secs(5000)).into_iter().map(|e| e.id).collect();
    assert_eq!(order, [x, y]);
    assert!(t.is_empty());
}

fn persistent_setup(t: &mut ConnTable, now: Time) -> (ConnId, ConnId) {
    let svc = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: ip("10.0.0.1"),
        port: 80,
    };
    let f = flow(Protocol::Tcp, 50000);
    let key = template_key(&svc, 0xffff_ff00, Protocol::Tcp, f.src, f.dst, f.dport);
    let tpl = Conn::template(&key, ip("10.1.0.1"), 8080, DestId(1), FwdMethod::Route, 10);
    assert_eq!(tpl.state.name(), "NONE");
    let (tid, counts) = t.insert(tpl, now);
    assert_eq!(
        counts,
        CountChange {
            dest: Some(DestId(1)),
            active: 0,
            inactive: 0,
            persist: 1
        }
    );
    assert_eq!(t.find_template(&key), Some(tid));
    let mut c = Conn::new(
        &f,
        ip("10.1.0.1"),
        8080,
        Some(DestId(1)),
        FwdMethod::Route,
        false,
    );
    c.control = Some(tid);
    let (cid, _) = t.insert(c, now);
    t.touch(tid, now);
    assert_eq!(t.get(tid).unwrap().n_control, 1);
    (tid, cid)
}

#[test]
fn template_kept_while_it_controls_connections() {
    let tm = Timeouts::default();
    let mut t = ConnTable::new();
    let (tid, cid) = persistent_setup(&mut t, secs(0));
    t.packet(cid, Dir::Input, Pkt::Tcp(TcpFlags::SYN), secs(0), &tm);
    t.packet(cid, Dir::Input, Pkt::Tcp(TcpFlags::ACK), secs(1), &tm); // ES, expires 901
                                                                      // The template's 10 s run out, but it controls cid: delayed by 60 s.
    assert!(t.expire(secs(10)).is_empty());
    let tpl = t.get(tid).unwrap();
    assert_eq!((tpl.timeout, tpl.expires), (60, secs(70)));
    assert!(t.expire(secs(70)).is_empty());
    assert_eq!(t.get(tid).unwrap().expires, secs(130));
    // The connection closes and expires; the template follows at its next retry.
    t.packet(cid, Dir::Input, Pkt::Tcp(TcpFlags::RST), secs(100), &tm); // CLOSE, 110
    let gone = t.expire(secs(110));
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].id, cid);
    assert_eq!(t.get(tid).unwrap().n_control, 0);
    let gone = t.expire(secs(130));
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].id, tid);
    assert_eq!(gone[0].counts.persist, -1);
    assert!(t.is_empty());
}

#[test]
fn template_refresh_after_delay_uses_60s() {
    // Kernel quirk: after a delayed expiry the template's timeout stays 60 s,
    // so later refreshes (new connections through it) use 60 s too.
    let mut t = ConnTable::new();
    let (tid, cid) = persistent_setup(&mut t, secs(0));
    t.packet(
        cid,
        Dir::Input,
        Pkt::Tcp(TcpFlags::SYN),
        secs(0),
        &Timeouts::default(),
    );
    assert!(t.expire(secs(10)).is_empty());
    t.touch(tid, secs(20));
    assert_eq!(t.get(tid).unwrap().expires, secs(80));
}

#[test]
fn invalidated_template_lingers_but_is_not_found() {
    let mut t = ConnTable::new();
    let (tid, cid) = persistent_setup(&mut t, secs(0));
    let key = t.get(tid).unwrap().template_key();
    t.invalidate_template(tid);
    assert_eq!(t.find_template(&key), None);
    assert_eq!(t.get(tid).unwrap().dport, 0xffff);
    // A replacement template under the same key.
    let tpl2 = Conn::template(&key, ip("10.1.0.2"), 8080, DestId(2), FwdMethod::Route, 10);
    let (t2, _) = t.insert(tpl2, secs(1));
    assert_eq!(t.find_template(&key), Some(t2));
    assert_eq!(t.templates(), 2);
    // The old one still controls cid; removing cid lets it go at its timer.
    assert!(t.remove(tid).is_none());
    t.remove(cid).unwrap();
    let gone: Vec<ConnId> = t.expire(secs(10)).into_iter().map(|e| e.id).collect();
    assert_eq!(gone, [tid]);
    assert_eq!(t.find_template(&key), Some(t2));
}

#[test]
fn fwmark_template_key_shape() {
    let svc = ServiceKey::Fwmark {
        family: Family::Inet,
        mark: 5,
    };
    let key = template_key(
        &svc,
        0xffff_ffff,
        Protocol::Udp,
        ip("192.0.2.1"),
        ip("10.0.0.9"),
        53,
    );
    let tpl = Conn::template(&key, ip("10.1.0.1"), 0, DestId(3), FwdMethod::Masq, 360);
    assert_eq!(tpl.protocol(), None);
    assert_eq!(tpl.vaddr, ip("0.0.0.5"));
    assert_eq!((tpl.cport, tpl.vport, tpl.dport), (0, 0, 0));
}

#[test]
fn reuse_predicate() {
    let s = Sysctls::default();
    let mut c = new_conn(Protocol::Tcp, 9, FwdMethod::Route);
    let syn = Pkt::Tcp(TcpFlags::SYN);
    c.state = ConnState::Tcp(TcpState::TimeWait);
    assert!(is_new_conn_expected(&c, 1));
    assert_eq!(
        reuse_decision(&c, syn, Some(1), &s),
        Reuse::Reschedule { expire_old: true }
    );
    // Only SYN triggers it.
    assert_eq!(
        reuse_decision(&c, Pkt::Tcp(TcpFlags::ACK), Some(1), &s),
        Reuse::Keep
    );
    c.state = ConnState::Tcp(TcpState::Close);
    assert!(is_new_conn_expected(&c, 1));
    c.state = ConnState::Tcp(TcpState::Established);
    assert!(!is_new_conn_expected(&c, 3));
    assert_eq!(reuse_decision(&c, syn, Some(1), &s), Reuse::Keep);
    // FIN_WAIT only with bit 1 and only without output seen.
    c.state = ConnState::Tcp(TcpState::FinWait);
    assert!(!is_new_conn_expected(&c, 1));
    assert!(is_new_conn_expected(&c, 2));
    c.flags.clear(ConnFlags::NO_OUTPUT);
    assert!(!is_new_conn_expected(&c, 2));
    // conn_reuse_mode 0 disables it.
    c.state = ConnState::Tcp(TcpState::TimeWait);
    let off = Sysctls {
        conn_reuse_mode: 0,
        ..s
    };
    assert_eq!(reuse_decision(&c, syn, Some(1), &off), Reuse::Keep);
    // expire_nodest_conn with a weight-0 server reschedules even ESTABLISHED.
    c.state = ConnState::Tcp(TcpState::Established);
    let nodest = Sysctls {
        expire_nodest_conn: true,
        conn_reuse_mode: 0,
        ..s
    };
    assert_eq!(
        reuse_decision(&c, syn, Some(0), &nodest),
        Reuse::Reschedule { expire_old: true }
    );
    assert_eq!(reuse_decision(&c, syn, Some(1), &nodest), Reuse::Keep);
    // Controlled (persistent) connections are never rescheduled here.
    c.state = ConnState::Tcp(TcpState::TimeWait);
    let mut t = ConnTable::new();
    let (tid, _) = persistent_setup(&mut t, secs(0));
    c.control = Some(tid);
    assert_eq!(reuse_decision(&c, syn, Some(1), &s), Reuse::Keep);
    // UDP never.
    let u = new_conn(Protocol::Udp, 9, FwdMethod::Masq);
    assert!(!is_new_conn_expected(&u, 3));
}

#[test]
fn reuse_replaces_entry_in_table() {
    let tm = Timeouts::default();
    let mut t = ConnTable::new();
    let f = flow(Protocol::Tcp, 1234);
    let (old, _) = t.insert(new_conn(Protocol::Tcp, 1234, FwdMethod::Masq), secs(0));
    t.packet(old, Dir::Input, Pkt::Tcp(TcpFlags::RST), secs(0), &tm);
    t.expire_now(old, secs(1));
    let (new, _) = t.insert(new_conn(Protocol::Tcp, 1234, FwdMethod::Masq), secs(1));
    assert_eq!(t.find_in_flow(&f), Some(new));
    let gone = t.expire(secs(1));
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].id, old);
    assert_eq!(t.find_in_flow(&f), Some(new));
    assert!(t.get(old).is_none());
}

#[test]
fn stale_ids_are_rejected() {
    let tm = Timeouts::default();
    let mut t = ConnTable::new();
    let (a, _) = t.insert(new_conn(Protocol::Udp, 1, FwdMethod::Masq), secs(0));
    t.remove(a).unwrap();
    let (b, _) = t.insert(new_conn(Protocol::Udp, 2, FwdMethod::Masq), secs(0));
    assert_ne!(a, b);
    assert!(t.get(a).is_none());
    assert!(t.packet(a, Dir::Input, Pkt::Udp, secs(1), &tm).is_zero());
    assert!(t.remove(a).is_none());
    assert_eq!(t.len(), 1);
}

#[test]
fn one_packet_flag_udp_only() {
    let c = Conn::new(
        &flow(Protocol::Udp, 1),
        ip("10.1.0.1"),
        53,
        Some(DestId(1)),
        FwdMethod::Masq,
        true,
    );
    assert!(c.flags.has(ConnFlags::ONE_PACKET));
    let c = Conn::new(
        &flow(Protocol::Tcp, 1),
        ip("10.1.0.1"),
        53,
        Some(DestId(1)),
        FwdMethod::Masq,
        true,
    );
    assert!(!c.flags.has(ConnFlags::ONE_PACKET));
}

#[derive(Clone, Debug)]
enum Op {
    New(u8, bool, bool), // client port index, udp?, nat?
    Pkt(u8, bool, u8),   // client port index, output?, flag bits
    Advance(u16),        // seconds
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..8, any::<bool>(), any::<bool>()).prop_map(|(p, u, n)| Op::New(p, u, n)),
        (0u8..8, any::<bool>(), 0u8..16).prop_map(|(p, o, f)| Op::Pkt(p, o, f)),
        (0u16..200).prop_map(Op::Advance),
    ]
}

proptest! {
    #[test]
    fn counts_never_negative_and_match_live_entries(ops in prop::collection::vec(op(), 1..200)) {
        let tm = Timeouts::default();
        let mut t = ConnTable::new();
        let mut now = Time::ZERO;
        let (mut active, mut inactive) = (0i64, 0i64);
        let apply = |d: CountChange, a: &mut i64, i: &mut i64| {
            *a += d.active as i64;
            *i += d.inactive as i64;
        };
        for op in ops {
            match op {
                Op::New(p, udp, nat) => {
                    let proto = if udp { Protocol::Udp } else { Protocol::Tcp };
                    let f = flow(proto, 1000 + p as u16);
                    if t.find_in_flow(&f).is_some() {
                        continue;
                    }
                    let fwd = if nat { FwdMethod::Masq } else { FwdMethod::Route };
                    let (_, d) = t.insert(new_conn(proto, 1000 + p as u16, fwd), now);
                    apply(d, &mut active, &mut inactive);
                }
                Op::Pkt(p, out, bits) => {
                    for proto in [Protocol::Tcp, Protocol::Udp] {
                        let f = flow(proto, 1000 + p as u16);
                        if let Some(id) = t.find_in_flow(&f) {
                            let pkt = if proto == Protocol::Udp {
                                Pkt::Udp
                            } else {
                                Pkt::Tcp(TcpFlags::new(bits & 1 != 0, bits & 2 != 0, bits & 4 != 0, bits & 8 != 0))
                            };
                            let dir = if out { Dir::Output } else { Dir::Input };
                            let d = t.packet(id, dir, pkt, now, &tm);
                            apply(d, &mut active, &mut inactive);
                        }
                    }
                }
                Op::Advance(s) => {
                    now = Time(now.0 + s as u64 * 1000);
                    for e in t.expire(now) {
                        apply(e.counts, &mut active, &mut inactive);
                    }
                }
            }
            prop_assert!(active >= 0 && inactive >= 0);
            let live_active = t.iter().filter(|(_, c)| !c.is_inactive()).count() as i64;
            let live_inactive = t.iter().filter(|(_, c)| c.is_inactive()).count() as i64;
            prop_assert_eq!(active, live_active);
            prop_assert_eq!(inactive, live_inactive);
            for (_, c) in t.iter() {
                if let ConnState::Tcp(s) = c.state {
                    prop_assert_eq!(c.is_inactive(), !s.is_active() );
                }
            }
        }
    }
}

#[test]
fn conn_stays_compact() {
    assert!(
        std::mem::size_of::<Conn>() <= 104,
        "{}",
        std::mem::size_of::<Conn>()
    );
}
