//! The rule table: kernel validation, ipvsadm's error words, and "a rejected
//! command changes nothing".

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use xvs_core::ipvsadm::{Command, DaemonConfig, DaemonState, DestAddr};
use xvs_core::model::{
    DestConfig, Family, FwdMethod, Persistence, Protocol, ServiceConfig, ServiceKey, TunType,
};
use xvs_core::sched::{Scheduler, SchedulerKind};
use xvs_core::table::{IpvsTable, OpError};
use xvs_core::time::Time;

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn vip() -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: v4(198, 18, 0, 1),
        port: 80,
    }
}

fn rs(last: u8, weight: u32) -> DestConfig {
    let mut d = DestConfig::new(v4(198, 18, 1, last), 80);
    d.fwd = FwdMethod::Masq;
    d.weight = weight;
    d
}

fn table_with_two_reals() -> IpvsTable {
    let mut t = IpvsTable::new();
    t.apply(&Command::AddService(ServiceConfig::new(vip())))
        .unwrap();
    t.apply(&Command::AddDest(vip(), rs(2, 2))).unwrap();
    t.apply(&Command::AddDest(vip(), rs(3, 1))).unwrap();
    t
}

/// Applies a command that must fail, checks the exact ipvsadm text, and checks
/// that the table is exactly as it was.
fn assert_rejected(t: &mut IpvsTable, cmd: Command, text: &str) -> OpError {
    let before = t.snapshot();
    let err = t.apply(&cmd).expect_err("command should be rejected");
    assert_eq!(err.to_string(), text, "for {cmd:?}");
    assert_eq!(t.snapshot(), before, "rejected {cmd:?} changed the table");
    err
}

#[test]
fn new_real_server_goes_to_the_head_of_the_list() {
    let t = table_with_two_reals();
    let svc = t.service(&vip()).unwrap();
    let order: Vec<IpAddr> = svc.dests.iter().map(|d| d.cfg.addr).collect();
    assert_eq!(order, vec![v4(198, 18, 1, 3), v4(198, 18, 1, 2)]);
}

#[test]
fn duplicate_service_is_refused() {
    let mut t = table_with_two_reals();
    let e = assert_rejected(
        &mut t,
        Command::AddService(ServiceConfig::new(vip())),
        "Service already exists",
    );
    assert_eq!(e.errno(), 17);
}

#[test]
fn missing_service_errors_differ_for_service_and_server_commands() {
    let mut t = table_with_two_reals();
    let other = ServiceKey::Addr {
        protocol: Protocol::Udp,
        addr: v4(198, 18, 0, 1),
        port: 80,
    };
    assert_rejected(
        &mut t,
        Command::EditService(ServiceConfig::new(other)),
        "No such service",
    );
    assert_rejected(&mut t, Command::DeleteService(other), "No such service");
    assert_rejected(&mut t, Command::Zero(Some(other)), "No such service");
    assert_rejected(
        &mut t,
        Command::AddDest(other, rs(4, 1)),
        "Service not defined",
    );
    assert_rejected(
        &mut t,
        Command::EditDest(other, rs(2, 1)),
        "Service not defined",
    );
    let d = DestAddr {
        addr: v4(198, 18, 1, 2),
        port: 80,
    };
    assert_rejected(&mut t, Command::DeleteDest(other, d), "Service not defined");
}

#[test]
fn real_server_errors() {
    let mut t = table_with_two_reals();
    assert_rejected(
        &mut t,
        Command::AddDest(vip(), rs(2, 5)),
        "Destination already exists",
    );
    assert_rejected(
        &mut t,
        Command::EditDest(vip(), rs(9, 5)),
        "No such destination",
    );
    let d = DestAddr {
        addr: v4(198, 18, 1, 9),
        port: 80,
    };
    assert_rejected(&mut t, Command::DeleteDest(vip(), d), "No such destination");
    // Same address, other port: a different real server.
    let d = DestAddr {
        addr: v4(198, 18, 1, 2),
        port: 8080,
    };
    assert_rejected(&mut t, Command::DeleteDest(vip(), d), "No such destination");
}

#[test]
fn thresholds_lower_above_upper_is_out_of_range() {
    let mut t = table_with_two_reals();
    let mut d = rs(4, 1);
    d.u_threshold = 10;
    d.l_threshold = 11;
    let e = assert_rejected(
        &mut t,
        Command::AddDest(vip(), d),
        "Numerical result out of range",
    );
    assert_eq!(e.errno(), 34);
    assert_eq!(e.detail(), "lower threshold is higher than upper threshold");
    // A lower threshold alone is "higher than" the absent (0) upper one.
    let mut d = rs(2, 1);
    d.l_threshold = 5;
    assert_rejected(
        &mut t,
        Command::EditDest(vip(), d),
        "Numerical result out of range",
    );
}

#[test]
fn non_unicast_real_server_is_invalid() {
    let mut t = table_with_two_reals();
    let text = "Invalid operation.  Possibly wrong module version, address not unicast, ...";
    let mapped = IpAddr::V6("::ffff:198.18.1.9".parse().unwrap());
    for addr in [
        v4(0, 0, 0, 0),
        v4(0, 1, 2, 3),
        v4(224, 0, 0, 1),
        v4(255, 255, 255, 255),
    ] {
        let mut d = rs(1, 1);
        d.addr = addr;
        assert_rejected(&mut t, Command::AddDest(vip(), d), text);
    }
    // An IPv4-mapped IPv6 address is not unicast to the kernel either.
    let v6 = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        port: 80,
    };
    t.apply(&Command::AddService(ServiceConfig::new(v6)))
        .unwrap();
    let mut d = rs(1, 1);
    d.addr = mapped;
    assert_rejected(&mut t, Command::AddDest(v6, d), text);
}

#[test]
fn other_family_real_server_only_with_tunnelling() {
    let mut t = table_with_two_reals();
    let mut d = rs(1, 1);
    d.addr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7));
    assert_rejected(
        &mut t,
        Command::AddDest(vip(), d),
        "Invalid operation.  Possibly wrong module version, address not unicast, ...",
    );
    d.fwd = FwdMethod::Tunnel;
    t.apply(&Command::AddDest(vip(), d)).unwrap();
}

#[test]
fn gue_tunnel_needs_a_port() {
    let mut t = table_with_two_reals();
    let mut d = rs(5, 1);
    d.fwd = FwdMethod::Tunnel;
    d.tun_type = TunType::Gue;
    let e = assert_rejected(
        &mut t,
        Command::AddDest(vip(), d),
        "Invalid operation.  Possibly wrong module version, address not unicast, ...",
    );
    assert!(e.detail().contains("--tun-port"));
    d.tun_port = 6080;
    t.apply(&Command::AddDest(vip(), d)).unwrap();
}

#[test]
fn unknown_persistence_engine() {
    let mut t = IpvsTable::new();
    let mut cfg = ServiceConfig::new(vip());
    cfg.pe_name = Some("http".into());
    let e = assert_rejected(
        &mut t,
        Command::AddService(cfg.clone()),
        "Scheduler or persistence engine not found",
    );
    assert_eq!(e.errno(), 2);
    cfg.pe_name = Some("sip".into());
    t.apply(&Command::AddService(cfg)).unwrap();
}

#[test]
fn ipv6_persistence_prefix_must_be_1_to_128() {
    let mut t = IpvsTable::new();
    let key = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        port: 443,
    };
    let mut cfg = ServiceConfig::new(key);
    cfg.persistence = Some(Persistence {
        timeout: 360,
        netmask: 129,
    });
    assert_rejected(
        &mut t,
        Command::AddService(cfg.clone()),
        "Invalid operation.  Possibly wrong module version, address not unicast, ...",
    );
    cfg.persistence = Some(Persistence {
        timeout: 360,
        netmask: 64,
    });
    t.apply(&Command::AddService(cfg)).unwrap();
}

#[test]
fn one_packet_flag_is_accepted_by_the_table_for_any_protocol() {
    // ipvsadm refuses `-o` on TCP (the parser's test pins that text); the
    // kernel accepts the flag and applies it to UDP packets only.
    let mut t = IpvsTable::new();
    let mut cfg = ServiceConfig::new(vip());
    cfg.one_packet = true;
    t.apply(&Command::AddService(cfg)).unwrap();
    let mut fwm = ServiceConfig::new(ServiceKey::Fwmark {
        family: Family::Inet,
        mark: 7,
    });
    fwm.one_packet = true;
    t.apply(&Command::AddService(fwm)).unwrap();
}

#[test]
fn edit_service_rebinds_scheduler_and_keeps_reals() {
    let mut t = table_with_two_reals();
    let mut cfg = ServiceConfig::new(vip());
    cfg.scheduler = SchedulerKind::Rr;
    t.apply(&Command::EditService(cfg)).unwrap();
    let svc = t.service(&vip()).unwrap();
    assert_eq!(svc.sched.kind(), SchedulerKind::Rr);
    assert_eq!(svc.dests.len(), 2);
}

#[test]
fn edit_dest_tracks_last_weight_and_clears_overload() {
    let mut t = table_with_two_reals();
    let mut d = rs(2, 2);
    d.u_threshold = 10;
    t.apply(&Command::EditDest(vip(), d)).unwrap();
    let id = t.service(&vip()).unwrap().dests[1].id;
    t.dest_mut(id).unwrap().overloaded = true;

    // Weight 0 (quiescent): last_weight keeps the previous non-zero weight.
    d.weight = 0;
    t.apply(&Command::EditDest(vip(), d)).unwrap();
    let dest = t.dest(id).unwrap();
    assert_eq!((dest.weight(), dest.last_weight), (0, 2));
    // Same upper threshold: OVERLOAD stays.
    assert!(dest.overloaded);

    // Raising the upper threshold clears OVERLOAD.
    d.weight = 3;
    d.u_threshold = 20;
    t.apply(&Command::EditDest(vip(), d)).unwrap();
    let dest = t.dest(id).unwrap();
    assert_eq!((dest.weight(), dest.last_weight), (3, 3));
    assert!(!dest.overloaded);
}

#[test]
fn removed_server_in_use_waits_in_trash_and_comes_back_with_its_connections() {
    let mut t = table_with_two_reals();
    let id = t.service(&vip()).unwrap().dests[0].id;
    t.dest_mut(id).unwrap().active_conns = 5;
    let addr = DestAddr {
        addr: v4(198, 18, 1, 3),
        port: 80,
    };
    t.apply(&Command::DeleteDest(vip(), addr)).unwrap();
    assert_eq!(t.service(&vip()).unwrap().dests.len(), 1);
    assert_eq!(t.trash_len(), 1);
    let gone = t.dest(id).unwrap();
    assert!(!gone.available);
    assert_eq!(gone.active_conns, 5);

    // Re-adding the same server to the same service takes it out of the trash.
    t.apply(&Command::AddDest(vip(), rs(3, 4))).unwrap();
    assert_eq!(t.trash_len(), 0);
    let back = &t.service(&vip()).unwrap().dests[0];
    assert_eq!((back.id, back.active_conns, back.weight()), (id, 5, 4));
    assert!(back.available);
}

#[test]
fn unused_removed_server_is_freed_after_the_trash_period() {
    let mut t = table_with_two_reals();
    let id = t.service(&vip()).unwrap().dests[0].id;
    let addr = DestAddr {
        addr: v4(198, 18, 1, 3),
        port: 80,
    };
    t.apply(&Command::DeleteDest(vip(), addr)).unwrap();
    // Always trashed first, even with nothing pointing at it.
    assert_eq!(t.trash_len(), 1);
    // The trash timer runs every 60 s: the first pass (at 60 s) marks it
    // idle, and it is freed by the first pass 120 s after that.
    for s in [0, 59, 60, 120, 179] {
        t.purge_trash(Time::from_secs(s));
        assert_eq!(t.trash_len(), 1, "still trashed at {s} s");
    }
    t.purge_trash(Time::from_secs(180));
    assert_eq!(t.trash_len(), 0);
    assert!(t.dest(id).is_none());
}

#[test]
fn referenced_trash_waits_for_its_connections() {
    let mut t = table_with_two_reals();
    let id = t.service(&vip()).unwrap().dests[0].id;
    t.dest_mut(id).unwrap().inact_conns = 1;
    t.apply(&Command::DeleteService(vip())).unwrap();
    assert_eq!(t.trash_len(), 2);
    for s in (0..=600).step_by(60) {
        t.purge_trash(Time::from_secs(s));
    }
    assert_eq!(
        t.trash_len(),
        1,
        "the unused one is freed, the used one waits"
    );
    t.dest_mut(id).unwrap().inact_conns = 0;
    for s in (660..=900).step_by(60) {
        t.purge_trash(Time::from_secs(s));
    }
    assert_eq!(t.trash_len(), 0);
    assert!(t.dest(id).is_none());
}

#[test]
fn re_added_server_keeps_its_counters_unless_the_service_was_re_created() {
    let mut t = table_with_two_reals();
    let id = t.service(&vip()).unwrap().dests[0].id;
    t.dest_mut(id).unwrap().stats.conns = 9;
    let addr = DestAddr {
        addr: v4(198, 18, 1, 3),
        port: 80,
    };
    t.apply(&Command::DeleteDest(vip(), addr)).unwrap();
    t.apply(&Command::AddDest(vip(), rs(3, 1))).unwrap();
    assert_eq!(
        t.dest(id).unwrap().stats.conns,
        9,
        "same service: counters kept"
    );

    t.apply(&Command::DeleteService(vip())).unwrap();
    t.apply(&Command::AddService(ServiceConfig::new(vip())))
        .unwrap();
    t.apply(&Command::AddDest(vip(), rs(3, 1))).unwrap();
    let d = t
        .dest(id)
        .expect("the same server comes back from the trash");
    assert_eq!(d.stats.conns, 0, "re-created service: counters zeroed");
}

#[test]
fn existence_is_checked_before_the_rest_as_the_kernel_does() {
    let mut t = table_with_two_reals();
    let mut cfg = ServiceConfig::new(vip());
    cfg.pe_name = Some("nope".into());
    assert_rejected(
        &mut t,
        Command::AddService(cfg.clone()),
        "Service already exists",
    );
    let mut other = cfg.clone();
    other.key = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: v4(198, 18, 0, 9),
        port: 80,
    };
    assert_rejected(&mut t, Command::EditService(other), "No such service");
    // A duplicate server with a bad threshold: ERANGE comes first.
    let mut d = rs(2, 1);
    d.l_threshold = 3;
    assert_rejected(
        &mut t,
        Command::AddDest(vip(), d),
        "Numerical result out of range",
    );
    // A new server's address is checked after the thresholds (ip_vs_new_dest).
    let text = "Invalid operation.  Possibly wrong module version, address not unicast, ...";
    let mut d = rs(1, 1);
    d.addr = v4(0, 1, 2, 3);
    assert_rejected(&mut t, Command::AddDest(vip(), d), text);
}

#[test]
fn sync_daemon_and_mixed_families_exclude_each_other() {
    let text = "Invalid operation.  Possibly wrong module version, address not unicast, ...";
    let daemon = DaemonConfig {
        state: DaemonState::Master,
        mcast_ifn: Some("eth0".into()),
        syncid: 1,
        sync_maxlen: None,
        mcast_group: None,
        mcast_port: None,
        mcast_ttl: None,
    };
    let mut v6 = rs(1, 1);
    v6.addr = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7));
    v6.fwd = FwdMethod::Tunnel;

    let mut t = table_with_two_reals();
    t.apply(&Command::StartDaemon(daemon.clone())).unwrap();
    assert_rejected(&mut t, Command::AddDest(vip(), v6), text);

    let mut t = table_with_two_reals();
    t.apply(&Command::AddDest(vip(), v6)).unwrap();
    assert_rejected(&mut t, Command::StartDaemon(daemon), text);
}

#[test]
fn batch_is_all_or_nothing() {
    let mut t = table_with_two_reals();
    let before = t.snapshot();
    let other = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: v4(198, 18, 0, 2),
        port: 443,
    };
    let batch = vec![
        Command::AddService(ServiceConfig::new(other)),
        Command::AddDest(other, rs(7, 1)),
        Command::AddDest(vip(), rs(2, 1)), // duplicate: fails
        Command::AddDest(other, rs(8, 1)),
    ];
    let (i, e) = t.apply_all(&batch).unwrap_err();
    assert_eq!(
        (i, e.to_string().as_str()),
        (2, "Destination already exists")
    );
    assert_eq!(t.snapshot(), before);
    batch[..2].iter().for_each(|c| t.apply(c).unwrap());
    assert_eq!(t.len(), 2);
}

#[test]
fn clear_empties_the_table() {
    let mut t = table_with_two_reals();
    t.apply(&Command::Clear).unwrap();
    assert!(t.is_empty());
    assert_eq!(t.snapshot().services, vec![]);
    // And the table is usable again.
    t.apply(&Command::AddService(ServiceConfig::new(vip())))
        .unwrap();
}

#[test]
fn zero_resets_counters() {
    let mut t = table_with_two_reals();
    t.service_mut(&vip()).unwrap().stats.conns = 7;
    t.service_mut(&vip()).unwrap().dests[0].stats.inpkts = 9;
    t.total.conns = 7;
    t.apply(&Command::Zero(Some(vip()))).unwrap();
    let svc = t.service(&vip()).unwrap();
    assert_eq!((svc.stats.conns, svc.dests[0].stats.inpkts), (0, 0));
    assert_eq!(t.total.conns, 7, "zeroing one service keeps the totals");
    t.apply(&Command::Zero(None)).unwrap();
    assert_eq!(t.total.conns, 0);
}

#[test]
fn sync_daemon_start_stop() {
    let mut t = IpvsTable::new();
    let d = DaemonConfig {
        state: DaemonState::Master,
        mcast_ifn: Some("eth0".into()),
        syncid: 1,
        sync_maxlen: None,
        mcast_group: None,
        mcast_port: None,
        mcast_ttl: None,
    };
    t.apply(&Command::StartDaemon(d.clone())).unwrap();
    assert_rejected(&mut t, Command::StartDaemon(d), "Daemon has already run");
    assert_rejected(
        &mut t,
        Command::StopDaemon(DaemonState::Backup),
        "No daemon is running",
    );
    t.apply(&Command::StopDaemon(DaemonState::Master)).unwrap();
    assert!(t.daemons().is_empty());
}

#[test]
fn set_timeout_zero_leaves_value() {
    let mut t = IpvsTable::new();
    t.apply(&Command::SetTimeout(xvs_core::ipvsadm::TimeoutSet {
        tcp: 900,
        tcp_fin: 0,
        udp: 60,
    }))
    .unwrap();
    t.apply(&Command::SetTimeout(xvs_core::ipvsadm::TimeoutSet {
        tcp: 0,
        tcp_fin: 30,
        udp: 0,
    }))
    .unwrap();
    let set = t.timeouts.to_set();
    assert_eq!((set.tcp, set.tcp_fin, set.udp), (900, 30, 60));
    let e = t
        .apply(&Command::SetTimeout(xvs_core::ipvsadm::TimeoutSet {
            tcp: 3_000_000,
            tcp_fin: 0,
            udp: 0,
        }))
        .unwrap_err();
    assert_eq!(e.errno(), 22);
    assert_eq!(t.timeouts.to_set(), set, "a refused --set changes nothing");
}
