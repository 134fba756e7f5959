//! Golden tests for the ipvsadm 1.31 output formatter.
//!
//! The expected texts were produced by the real ipvsadm 1.31 (its own
//! ipvsadm.c, with libipvs's own sort and compare functions) built against an
//! in-memory fake of the kernel side that served exactly the fixtures below,
//! and with host/service lookups answered from the same tables as
//! [`TestNames`].

use std::net::IpAddr;

use proptest::prelude::*;
use xvs_core::ipvsadm::format::{self, FormatError};
use xvs_core::ipvsadm::{DaemonConfig, DaemonState, ListOptions, Names, NumericOnly, TimeoutSet};
use xvs_core::model::{
    DestConfig, Family, FwdMethod, Persistence, Protocol, SchedFlags, ServiceConfig, ServiceKey,
    TunCsum, TunType,
};
use xvs_core::sched::SchedulerKind;
use xvs_core::snapshot::{ConnEntry, DaemonList, DestEntry, ServiceEntry, TableSnapshot, Timeouts};
use xvs_core::stats::{Counters, Rates};

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// Reverse host lookups known to [`TestNames`].
pub const HOSTS: &[(&str, &str)] = &[
    (
        "192.168.10.1",
        "a-rather-long-virtual-host-name.example.com",
    ),
    ("10.0.0.1", "web1.example.com"),
    ("10.0.0.2", "realserver-number-two.example.com"),
    (
        "10.1.1.10",
        "a-very-very-long-host-name-that-exceeds-the-buffer.example.com",
    ),
    ("2001:db8::1", "v6-virtual.example.com"),
    ("10.9.8.7", "client.example.net"),
];

/// Port-to-service lookups known to [`TestNames`].
pub const SERVICES: &[(u16, &str, &str)] = &[
    (80, "tcp", "http"),
    (443, "tcp", "https"),
    (53, "udp", "domain"),
    (8080, "tcp", "http-alt"),
];

/// Names from the two tables above, like /etc/hosts and /etc/services.
pub struct TestNames;

impl Names for TestNames {
    fn host_name(&self, addr: &IpAddr) -> Option<String> {
        HOSTS
            .iter()
            .find(|(a, _)| a.parse::<IpAddr>().unwrap() == *addr)
            .map(|(_, n)| n.to_string())
    }
    fn service_name(&self, port: u16, proto: Protocol) -> Option<String> {
        let p = match proto {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        };
        SERVICES
            .iter()
            .find(|(n, pr, _)| *n == port && *pr == p)
            .map(|(_, _, s)| s.to_string())
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tcp(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: ip(addr),
        port,
    }
}

fn udp(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Udp,
        addr: ip(addr),
        port,
    }
}

fn fwm(mark: u32, family: Family) -> ServiceKey {
    ServiceKey::Fwmark { family, mark }
}

fn svc(key: ServiceKey, sched: SchedulerKind, dests: Vec<DestEntry>) -> ServiceEntry {
    let mut cfg = ServiceConfig::new(key);
    cfg.scheduler = sched;
    ServiceEntry {
        cfg,
        stats: Counters::default(),
        rates: Rates::default(),
        dests,
    }
}

fn dest(addr: &str, port: u16, fwd: FwdMethod, weight: u32) -> DestEntry {
    let mut cfg = DestConfig::new(ip(addr), port);
    cfg.fwd = fwd;
    cfg.weight = weight;
    DestEntry {
        cfg,
        active_conns: 0,
        inact_conns: 0,
        persist_conns: 0,
        stats: Counters::default(),
        rates: Rates::default(),
    }
}

fn counters(v: [u64; 5]) -> Counters {
    Counters {
        conns: v[0],
        inpkts: v[1],
        outpkts: v[2],
        inbytes: v[3],
        outbytes: v[4],
    }
}

fn rates(v: [u64; 5]) -> Rates {
    Rates {
        cps: v[0],
        inpps: v[1],
        outpps: v[2],
        inbps: v[3],
        outbps: v[4],
    }
}

fn tunnel(mut d: DestEntry, t: TunType, port: u16, csum: TunCsum) -> DestEntry {
    d.cfg.tun_type = t;
    d.cfg.tun_port = port;
    d.cfg.tun_csum = csum;
    d
}

/// IPv4, IPv6 and fwmark services in kernel (unsorted) order, real servers
/// newest first; NAT/DR/TUN/Local reals, persistence with masks, scheduler
/// flags, weight 0, counters across the K/M/G/T boundaries.
pub fn main_table() -> TableSnapshot {
    // 1: NAT, weights 0..3, thresholds, big counters.
    let mut s1 = svc(tcp("192.168.10.1", 80), SchedulerKind::Wlc, vec![]);
    s1.stats = counters([12_345, 99_999_999, 100_000_000, 999_999_999, 1_000_000_000]);
    s1.rates = rates([5, 100, 99, 123_456_789, 1_000]);
    let mut d13 = dest("10.0.0.3", 8080, FwdMethod::Masq, 0);
    d13.stats = counters([1, 2, 3, 4, 5]);
    let mut d11 = dest("10.0.0.1", 8080, FwdMethod::Masq, 3);
    d11.active_conns = 12;
    d11.inact_conns = 34;
    d11.stats = counters([
        100_000_000_000,
        99_999_999_999_999,
        100_000_000_000_000,
        99_999_999_999,
        100_000_000_000,
    ]);
    d11.rates = rates([123_456_789, 2, 3, 100_000_000, 99_999_999]);
    let mut d12 = dest("10.0.0.2", 8080, FwdMethod::Masq, 1);
    d12.cfg.u_threshold = 100;
    d12.cfg.l_threshold = 50;
    d12.active_conns = 7;
    d12.inact_conns = 8;
    d12.persist_conns = 2;
    d12.stats = counters([u64::MAX, 1_234_567_890_123, 0, 7, 100_000_000_000_000_000]);
    let d120 = dest("10.0.0.20", 80, FwdMethod::Local, 1);
    s1.dests = vec![d13, d11, d12, d120];

    // 2: DR with persistence and a /24 mask.
    let mut s2 = svc(tcp("10.1.1.1", 443), SchedulerKind::Rr, vec![]);
    s2.cfg.persistence = Some(Persistence {
        timeout: 300,
        netmask: 0xffff_ff00,
    });
    let mut d211 = dest("10.1.1.11", 443, FwdMethod::Route, 1);
    d211.persist_conns = 3;
    let mut d210 = dest("10.1.1.10", 443, FwdMethod::Route, 2);
    d210.persist_conns = 5;
    d210.active_conns = 1;
    s2.dests = vec![d211, d210];

    // 3: sh with both flags, one-packet scheduling.
    let mut s3 = svc(udp("10.1.1.1", 53), SchedulerKind::Sh, vec![]);
    s3.cfg.sched_flags = SchedFlags(SchedFlags::SCHED1 | SchedFlags::SCHED2);
    s3.cfg.one_packet = true;
    s3.dests = vec![
        dest("10.2.0.2", 53, FwdMethod::Route, 1),
        dest("10.2.0.1", 53, FwdMethod::Tunnel, 1),
    ];

    // 4: IPv4 fwmark, persistent with the default mask, SIP engine, tunnels.
    let mut s4 = svc(fwm(7, Family::Inet), SchedulerKind::Wrr, vec![]);
    s4.cfg.persistence = Some(Persistence {
        timeout: 360,
        netmask: 0xffff_ffff,
    });
    s4.cfg.pe_name = Some("sip".to_string());
    s4.dests = vec![
        tunnel(
            dest("10.3.0.2", 0, FwdMethod::Tunnel, 5),
            TunType::Gue,
            6080,
            TunCsum::Csum,
        ),
        tunnel(
            dest("10.3.0.1", 0, FwdMethod::Tunnel, 2),
            TunType::Gre,
            0,
            TunCsum::Csum,
        ),
        tunnel(
            dest("10.3.0.3", 0, FwdMethod::Tunnel, 1),
            TunType::Gue,
            5555,
            TunCsum::RemCsum,
        ),
        tunnel(
            dest("10.3.0.4", 0, FwdMethod::Tunnel, 1),
            TunType::Gre,
            0,
            TunCsum::NoCsum,
        ),
    ];

    // 5: IPv6 with an IPv4 tunnel real server (mixed families).
    let mut s5 = svc(tcp("2001:db8::1", 80), SchedulerKind::Lc, vec![]);
    s5.stats = counters([1, 2, 3, 4, 5]);
    let mut d5a = dest("2001:db8::10", 80, FwdMethod::Masq, 1);
    d5a.active_conns = 4;
    d5a.stats = counters([100, 200, 300, 400, 500]);
    s5.dests = vec![
        d5a,
        dest("2001:db8::2", 8080, FwdMethod::Masq, 2),
        dest("10.9.9.9", 80, FwdMethod::Tunnel, 1),
        dest("2001:db8::2", 80, FwdMethod::Masq, 1),
    ];

    // 6: IPv6 fwmark, mh-port, persistence /64.
    let mut s6 = svc(fwm(7, Family::Inet6), SchedulerKind::Mh, vec![]);
    s6.cfg.sched_flags = SchedFlags(SchedFlags::SCHED2);
    s6.cfg.persistence = Some(Persistence {
        timeout: 600,
        netmask: 64,
    });
    s6.dests = vec![dest("2001:db8:1::1", 0, FwdMethod::Route, 1)];

    // 7: SCTP.
    let s7 = svc(
        ServiceKey::Addr {
            protocol: Protocol::Sctp,
            addr: ip("10.1.1.2"),
            port: 9000,
        },
        SchedulerKind::Fo,
        vec![dest("10.4.0.1", 9000, FwdMethod::Route, 1)],
    );

    // 8: all-ports persistent service.
    let mut s8 = svc(
        tcp("192.168.10.1", 0),
        SchedulerKind::Sed,
        vec![dest("10.0.0.1", 0, FwdMethod::Route, 1)],
    );
    s8.cfg.persistence = Some(Persistence {
        timeout: 360,
        netmask: 0xffff_ffff,
    });

    // 9: generic scheduler flags on a non-sh/mh scheduler, no real servers.
    let mut s9 = svc(udp("10.0.0.5", 500), SchedulerKind::Nq, vec![]);
    s9.cfg.sched_flags = SchedFlags(SchedFlags::SCHED1 | SchedFlags::SCHED3);

    // 10: a fwmark above 2^31 (printed as a negative int).
    let s10 = svc(fwm(3_000_000_000, Family::Inet), SchedulerKind::Rr, vec![]);

    // 11: real servers whose wrapping comparison is not transitive.
    let s11 = svc(
        tcp("10.5.5.5", 25),
        SchedulerKind::Lblc,
        vec![
            dest("192.168.0.1", 25, FwdMethod::Route, 1),
            dest("10.0.0.1", 25, FwdMethod::Route, 1),
            dest("127.0.0.1", 25, FwdMethod::Route, 1),
            dest("172.16.0.1", 25, FwdMethod::Route, 1),
        ],
    );

    TableSnapshot {
        services: vec![s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11],
        conn_tab_size: 4096,
    }
}

pub fn empty_table() -> TableSnapshot {
    TableSnapshot {
        services: vec![],
        conn_tab_size: 1024,
    }
}

fn conn(
    protocol: &str,
    c: (&str, u16),
    v: (&str, u16),
    d: (&str, u16),
    state: &str,
    expires: u64,
) -> ConnEntry {
    ConnEntry {
        protocol: protocol.to_string(),
        caddr: ip(c.0),
        cport: c.1,
        vaddr: ip(v.0),
        vport: v.1,
        daddr: ip(d.0),
        dport: d.1,
        state: state.to_string(),
        expires,
        pe_name: None,
        pe_data: None,
    }
}

pub fn conns() -> Vec<ConnEntry> {
    let mut sip = conn(
        "UDP",
        ("10.9.8.7", 5060),
        ("10.1.1.1", 53),
        ("10.2.0.1", 53),
        "UDP",
        3600,
    );
    sip.pe_name = Some("sip".to_string());
    sip.pe_data = Some("a84b4c76e66710@pc33".to_string());
    vec![
        conn(
            "TCP",
            ("10.9.8.7", 40000),
            ("192.168.10.1", 80),
            ("10.0.0.1", 8080),
            "ESTABLISHED",
            899,
        ),
        conn(
            "UDP",
            ("10.9.8.7", 5353),
            ("10.1.1.1", 53),
            ("10.2.0.2", 53),
            "UDP",
            299,
        ),
        conn(
            "IP",
            ("10.9.8.7", 0),
            ("0.0.0.7", 0),
            ("10.3.0.2", 0),
            "NONE",
            359,
        ),
        conn(
            "TCP",
            ("2001:db8::99", 50000),
            ("2001:db8::1", 80),
            ("2001:db8::10", 80),
            "SYN_RECV",
            59,
        ),
        conn(
            "TCP",
            ("2001:db8::98", 443),
            ("2001:db8::1", 80),
            ("10.9.9.9", 80),
            "FIN_WAIT",
            6000,
        ),
        sip,
        conn(
            "SCTP",
            ("10.9.8.6", 1234),
            ("10.1.1.2", 9000),
            ("10.4.0.1", 9000),
            "COOKIE_ECHOED",
            0,
        ),
    ]
}

pub fn timeouts() -> Timeouts {
    TimeoutSet {
        tcp: 900,
        tcp_fin: 120,
        udp: 300,
    }
}

/// Backup listed first: the output must still start with the master.
pub fn daemons() -> DaemonList {
    vec![
        DaemonConfig {
            state: DaemonState::Backup,
            mcast_ifn: Some("eth1".to_string()),
            syncid: 2,
            sync_maxlen: None,
            mcast_group: Some(ip("ff02::81")),
            mcast_port: None,
            mcast_ttl: None,
        },
        DaemonConfig {
            state: DaemonState::Master,
            mcast_ifn: Some("eth0".to_string()),
            syncid: 1,
            sync_maxlen: Some(1472),
            mcast_group: Some(ip("224.0.0.81")),
            mcast_port: Some(8848),
            mcast_ttl: Some(1),
        },
    ]
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn opts() -> ListOptions {
    ListOptions::default()
}

fn numeric() -> ListOptions {
    ListOptions {
        numeric: true,
        ..ListOptions::default()
    }
}

fn list_n(o: ListOptions) -> String {
    format::list(&main_table(), &o, &NumericOnly).unwrap()
}

#[track_caller]
fn same(got: &str, want: &str) {
    if got != want {
        panic!("output differs\n--- got ---\n{got}--- want ---\n{want}---");
    }
}

// ---------------------------------------------------------------------------
// Golden tests
// ---------------------------------------------------------------------------
/// `ipvsadm -L`
#[test]
fn golden_list_names() {
    same(
        &format::list(&main_table(), &opts(), &TestNames).unwrap(),
        r#"IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
FWM  -1294967296 rr
TCP  a-rather-long-virtual-host-n sed persistent 360
  -> web1.example.com:0           Route   1      0          0         
TCP  a-rather-long-virtual-host-n wlc
  -> web1.example.com:http-alt    Masq    3      12         34        
  -> realserver-number-two.exampl Masq    1      7          8         
  -> 10.0.0.3:http-alt            Masq    0      0          0         
  -> 10.0.0.20:http               Local   1      0          0         
TCP  10.1.1.1:https rr persistent 300 mask 255.255.255.0
  -> a-very-very-long-host-name-t Route   2      1          0         
  -> 10.1.1.11:https              Route   1      0          0         
TCP  10.5.5.5:25 lblc
  -> 127.0.0.1:25                 Route   1      0          0         
  -> 172.16.0.1:25                Route   1      0          0         
  -> 192.168.0.1:25               Route   1      0          0         
  -> web1.example.com:25          Route   1      0          0         
UDP  10.0.0.5:500 nq (flag-1,flag-3)
UDP  10.1.1.1:domain sh (sh-fallback,sh-port) ops
  -> 10.2.0.1:domain              Tunnel  1      0          0         
  -> 10.2.0.2:domain              Route   1      0          0         
SCTP 10.1.1.2:9000 fo
  -> 10.4.0.1:9000                Route   1      0          0         
TCP  [v6-virtual.example.com]:http lc
  -> 10.9.9.9:http                Tunnel  1      0          0         
  -> [2001:db8::2]:http           Masq    1      0          0         
  -> [2001:db8::2]:http-alt       Masq    2      0          0         
  -> [2001:db8::10]:http          Masq    1      4          0         
FWM  7 wrr persistent 360 pe sip
  -> 10.3.0.1:0                   Tunnel  2      0          0         
  -> 10.3.0.2:0                   Tunnel  5      0          0         
  -> 10.3.0.3:0                   Tunnel  1      0          0         
  -> 10.3.0.4:0                   Tunnel  1      0          0         
FWM  7 IPv6 mh (mh-port) persistent 600 mask 64
  -> [2001:db8:1::1]:0            Route   1      0          0         
"#,
    );
}

/// `ipvsadm -L -n`
#[test]
fn golden_list_numeric() {
    same(
        &format::list(
            &main_table(),
            &ListOptions {
                numeric: true,
                ..opts()
            },
            &NumericOnly,
        )
        .unwrap(),
        r#"IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
FWM  -1294967296 rr
TCP  192.168.10.1:0 sed persistent 360
  -> 10.0.0.1:0                   Route   1      0          0         
TCP  192.168.10.1:80 wlc
  -> 10.0.0.1:8080                Masq    3      12         34        
  -> 10.0.0.2:8080                Masq    1      7          8         
  -> 10.0.0.3:8080                Masq    0      0          0         
  -> 10.0.0.20:80                 Local   1      0          0         
TCP  10.1.1.1:443 rr persistent 300 mask 255.255.255.0
  -> 10.1.1.10:443                Route   2      1          0         
  -> 10.1.1.11:443                Route   1      0          0         
TCP  10.5.5.5:25 lblc
  -> 127.0.0.1:25                 Route   1      0          0         
  -> 172.16.0.1:25                Route   1      0          0         
  -> 192.168.0.1:25               Route   1      0          0         
  -> 10.0.0.1:25                  Route   1      0          0         
UDP  10.0.0.5:500 nq (flag-1,flag-3)
UDP  10.1.1.1:53 sh (sh-fallback,sh-port) ops
  -> 10.2.0.1:53                  Tunnel  1      0          0         
  -> 10.2.0.2:53                  Route   1      0          0         
SCTP 10.1.1.2:9000 fo
  -> 10.4.0.1:9000                Route   1      0          0         
TCP  [2001:db8::1]:80 lc
  -> 10.9.9.9:80                  Tunnel  1      0          0         
  -> [2001:db8::2]:80             Masq    1      0          0         
  -> [2001:db8::2]:8080           Masq    2      0          0         
  -> [2001:db8::10]:80            Masq    1      4          0         
FWM  7 wrr persistent 360 pe sip
  -> 10.3.0.1:0                   Tunnel  2      0          0         
  -> 10.3.0.2:0                   Tunnel  5      0          0         
  -> 10.3.0.3:0                   Tunnel  1      0          0         
  -> 10.3.0.4:0                   Tunnel  1      0          0         
FWM  7 IPv6 mh (mh-port) persistent 600 mask 64
  -> [2001:db8:1::1]:0            Route   1      0          0         
"#,
    );
}

/// `ipvsadm -L -n --nosort`
#[test]
fn golden_list_numeric_nosort() {
    same(
        &format::list(
            &main_table(),
            &ListOptions {
                numeric: true,
                nosort: true,
                ..opts()
            },
            &NumericOnly,
        )
        .unwrap(),
        r#"IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  192.168.10.1:80 wlc
  -> 10.0.0.3:8080                Masq    0      0          0         
  -> 10.0.0.1:8080                Masq    3      12         34        
  -> 10.0.0.2:8080                Masq    1      7          8         
  -> 10.0.0.20:80                 Local   1      0          0         
TCP  10.1.1.1:443 rr persistent 300 mask 255.255.255.0
  -> 10.1.1.11:443                Route   1      0          0         
  -> 10.1.1.10:443                Route   2      1          0         
UDP  10.1.1.1:53 sh (sh-fallback,sh-port) ops
  -> 10.2.0.2:53                  Route   1      0          0         
  -> 10.2.0.1:53                  Tunnel  1      0          0         
FWM  7 wrr persistent 360 pe sip
  -> 10.3.0.2:0                   Tunnel  5      0          0         
  -> 10.3.0.1:0                   Tunnel  2      0          0         
  -> 10.3.0.3:0                   Tunnel  1      0          0         
  -> 10.3.0.4:0                   Tunnel  1      0          0         
TCP  [2001:db8::1]:80 lc
  -> [2001:db8::10]:80            Masq    1      4          0         
  -> [2001:db8::2]:8080           Masq    2      0          0         
  -> 10.9.9.9:80                  Tunnel  1      0          0         
  -> [2001:db8::2]:80             Masq    1      0          0         
FWM  7 IPv6 mh (mh-port) persistent 600 mask 64
  -> [2001:db8:1::1]:0            Route   1      0          0         
SCTP 10.1.1.2:9000 fo
  -> 10.4.0.1:9000                Route   1      0          0         
TCP  192.168.10.1:0 sed persistent 360
  -> 10.0.0.1:0                   Route   1      0          0         
UDP  10.0.0.5:500 nq (flag-1,flag-3)
FWM  -1294967296 rr
TCP  10.5.5.5:25 lblc
  -> 192.168.0.1:25               Route   1      0          0         
  -> 10.0.0.1:25                  Route   1      0          0         
  -> 127.0.0.1:25                 Route   1      0          0         
  -> 172.16.0.1:25                Route   1      0          0         
"#,
    );
}

/// `ipvsadm -L -n --stats`
#[test]
fn golden_list_stats() {
    same(
        &format::list(
            &main_table(),
            &ListOptions {
                numeric: true,
                stats: true,
                ..opts()
            },
            &NumericOnly,
        )
        .unwrap(),
        r#"IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
FWM  -1294967296                         0        0        0        0        0
TCP  192.168.10.1:0                      0        0        0        0        0
  -> 10.0.0.1:0                          0        0        0        0        0
TCP  192.168.10.1:80                 12345 99999999  100000K  999999K    1000M
  -> 10.0.0.1:8080                    100G   99999G     100T   99999M     100G
  -> 10.0.0.2:8080               18446744T    1234G        0        7  100000T
  -> 10.0.0.3:8080                       1        2        3        4        5
  -> 10.0.0.20:80                        0        0        0        0        0
TCP  10.1.1.1:443                        0        0        0        0        0
  -> 10.1.1.10:443                       0        0        0        0        0
  -> 10.1.1.11:443                       0        0        0        0        0
TCP  10.5.5.5:25                         0        0        0        0        0
  -> 127.0.0.1:25                        0        0        0        0        0
  -> 172.16.0.1:25                       0        0        0        0        0
  -> 192.168.0.1:25                      0        0        0        0        0
  -> 10.0.0.1:25                         0        0        0        0        0
UDP  10.0.0.5:500                        0        0        0        0        0
UDP  10.1.1.1:53                         0        0        0        0        0
  -> 10.2.0.1:53                         0        0        0        0        0
  -> 10.2.0.2:53                         0        0        0        0        0
SCTP 10.1.1.2:9000                       0        0        0        0        0
  -> 10.4.0.1:9000                       0        0        0        0        0
TCP  [2001:db8::1]:80                    1        2        3        4        5
  -> 10.9.9.9:80                         0        0        0        0        0
  -> [2001:db8::2]:80                    0        0        0        0        0
  -> [2001:db8::2]:8080                  0        0        0        0        0
  -> [2001:db8::10]:80                 100      200      300      400      500
FWM  7                                   0        0        0        0        0
  -> 10.3.0.1:0                          0        0        0        0        0
  -> 10.3.0.2:0                          0        0        0        0        0
  -> 10.3.0.3:0                          0        0        0        0        0
  -> 10.3.0.4:0                          0        0        0        0        0
FWM  7 IPv6                              0        0        0        0        0
  -> [2001:db8:1::1]:0                   0        0        0        0        0
"#,
    );
}

/// `ipvsadm -L -n --stats --exact`
#[test]
fn golden_list_stats_exact() {
    same(
        &format::list(
            &main_table(),
            &ListOptions {
                numeric: true,
                stats: true,
                exact: true,
                ..opts()
            },
            &NumericOnly,
        )
        .unwrap(),
        r#"IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
FWM  -1294967296                         0        0        0        0        0
TCP  192.168.10.1:0                      0        0        0        0        0
  -> 10.0.0.1:0                          0        0        0        0        0
TCP  192.168.10.1:80                 12345 99999999 100000000 999999999 1000000000
  -> 10.0.0.1:8080                100000000000 99999999999999 100000000000000 99999999999 100000000000
  -> 10.0.0.2:8080                18446744073709551615 1234567890123        0        7 100000000000000000
  -> 10.0.0.3:8080                       1        2        3        4        5
  -> 10.0.0.20:80                        0        0        0        0        0
TCP  10.1.1.1:443                        0        0        0        0        0
  -> 10.1.1.10:443                       0        0        0        0        0
  -> 10.1.1.11:443                       0        0        0        0        0
TCP  10.5.5.5:25                         0        0        0        0        0
  -> 127.0.0.1:25                        0        0        0        0        0
  -> 172.16.0.1:25                       0        0        0        0        0
  -> 192.168.0.1:25                      0        0        0        0        0
  -> 10.0.0.1:25                         0        0        0        0        0
UDP  10.0.0.5:500                        0        0        0        0        0
UDP  10.1.1.1:53                         0        0        0        0        0
  -> 10.2.0.1:53                         0        0        0        0        0
  -> 10.2.0.2:53                         0        0        0        0        0
SCTP 10.1.1.2:9000                       0        0        0        0        0
  -> 10.4.0.1:9000                       0        0        0        0        0
TCP  [2001:db8::1]:80                    1        2        3        4        5
  -> 10.9.9.9:80                         0        0        0        0        0
  -> [2001:db8::2]:80                    0        0        0        0        0
  -> [2001:db8::2]:8080                  0        0        0        0        0
  -> [2001:db8::10]:80                 100      200      300      400      500
FWM  7                                   0        0        0        0        0
  -> 10.3.0.1:0                          0        0        0        0        0
  -> 10.3.0.2:0                          0        0        0        0        0
  -> 10.3.0.3:0                          0        0        0        0        0
  -> 10.3.0.4:0                          0        0        0        0        0
FWM  7 IPv6                              0        0        0        0        0
  -> [2001:db8:1::1]:0                   0        0        0        0        0
"#,
    );
}

/// `ipvsadm -L --stats`
#[test]
fn golden_list_stats_names() {
    same(
        &format::list(
            &main_table(),
            &ListOptions {
                stats: true,
                ..opts()
            },
            &TestNames,
        )
        .unwrap(),
        r#"IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
FWM  -1294967296                         0        0        0        0        0
TCP  a-rather-long-virtual-host-n        0        0        0        0        0
  -> web1.example.com:0                  0        0        0        0        0
TCP  a-rather-long-virtual-host-n    12345 99999999  100000K  999999K    1000M
  -> web1.example.com:http-alt        100G   99999G     100T   99999M     100G
  -> realserver-number-two.exampl18446744T    1234G        0        7  100000T
  -> 10.0.0.3:http-alt                   1        2        3        4        5
  -> 10.0.0.20:http                      0        0        0        0        0
TCP  10.1.1.1:https                      0        0        0        0        0
  -> a-very-very-long-host-name-t        0        0        0        0        0
  -> 10.1.1.11:https                     0        0        0        0        0
TCP  10.5.5.5:25                         0        0        0        0        0
  -> 127.0.0.1:25                        0        0        0        0        0
  -> 172.16.0.1:25                       0        0        0        0        0
  -> 192.168.0.1:25                      0        0        0        0        0
  -> web1.example.com:25                 0        0        0        0        0
UDP  10.0.0.5:500                        0        0        0        0        0
UDP  10.1.1.1:domain                     0        0        0        0        0
  -> 10.2.0.1:domain                     0        0        0        0        0
  -> 10.2.0.2:domain                     0        0        0        0        0
SCTP 10.1.1.2:9000                       0        0        0        0        0
  -> 10.4.0.1:9000                       0        0        0        0        0
TCP  [v6-virtual.example.com]:http        1        2        3        4        5
  -> 10.9.9.9:http                       0        0        0        0        0
  -> [2001:db8::2]:http                  0        0        0        0        0
  -> [2001:db8::2]:http-alt              0        0        0        0        0
  -> [2001:db8::10]:http               100      200      300      400      500
FWM  7                                   0        0        0        0        0
  -> 10.3.0.1:0                          0        0        0        0        0
  -> 10.3.0.2:0                          0        0        0        0        0
  -> 10.3.0.3:0                          0        0        0        0        0
  -> 10.3.0.4:0                          0        0        0        0        0
FWM  7 IPv6                              0        0        0        0        0
  -> [2001:db8:1::1]:0                   0        0        0        0        0
"#,
    );
}

/// `ipvsadm -L -n --rate`
#[test]
fn golden_list_rate() {
    same(
        &format::list(
            &main_table(),
            &ListOptions {
                numeric: true,
                rate: true,
                ..opts()
            },
            &NumericOnly,
        )
        .unwrap(),
        r#"IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS
  -> RemoteAddress:Port
FWM  -1294967296                         0        0        0        0        0
TCP  192.168.10.1:0                      0        0        0        0        0
  -> 10.0.0.1:0                          0        0        0        0        0
TCP  192.168.10.1:80                     5      100       99  123456K     1000
  -> 10.0.0.1:8080                123456789        2        3  100000K 99999999
  -> 10.0.0.2:8080                       0        0        0        0        0
  -> 10.0.0.3:8080                       0        0        0        0        0
  -> 10.0.0.20:80                        0        0        0        0        0
TCP  10.1.1.1:443                        0        0        0        0        0
  -> 10.1.1.10:443                       0        0        0        0        0
  -> 10.1.1.11:443                       0        0        0        0        0
TCP  10.5.5.5:25                         0        0        0        0        0
  -> 127.0.0.1:25                        0        0        0        0        0
  -> 172.16.0.1:25                       0        0        0        0        0
  -> 192.168.0.1:25                      0        0        0        0        0
  -> 10.0.0.1:25                         0        0        0        0        0
UDP  10.0.0.5:500                        0        0        0        0        0
UDP  10.1.1.1:53                         0        0        0        0        0
  -> 10.2.0.1:53                         0        0        0        0        0
  -> 10.2.0.2:53                         0        0        0        0        0
SCTP 10.1.1.2:9000                       0        0        0        0        0
  -> 10.4.0.1:9000                       0        0        0        0        0
TCP  [2001:db8::1]:80                    0        0        0        0        0
  -> 10.9.9.9:80                         0        0        0        0        0
  -> [2001:db8::2]:80                    0        0        0        0        0
  -> [2001:db8::2]:8080                  0        0        0        0        0
  -> [2001:db8::10]:80                   0        0        0        0        0
FWM  7                                   0        0        0        0        0
  -> 10.3.0.1:0                          0        0        0        0        0
  -> 10.3.0.2:0                          0        0        0        0        0
  -> 10.3.0.3:0                          0        0        0        0        0
  -> 10.3.0.4:0                          0        0        0        0        0
FWM  7 IPv6                              0        0        0        0        0
  -> [2001:db8:1::1]:0                   0        0        0        0        0
"#,
    );
}

/// `ipvsadm -L -n --rate --exact`
#[test]
fn golden_list_rate_exact() {
    same(
        &format::list(
            &main_table(),
            &ListOptions {
                numeric: true,
                rate: true,
                exact: true,
                ..opts()
            },
            &NumericOnly,
        )
        .unwrap(),
        r#"IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS
  -> RemoteAddress:Port
FWM  -1294967296                         0        0        0        0        0
TCP  192.168.10.1:0                      0        0        0        0        0
  -> 10.0.0.1:0                          0        0        0        0        0
TCP  192.168.10.1:80                     5      100       99 123456789     1000
  -> 10.0.0.1:8080                123456789        2        3 100000000 99999999
  -> 10.0.0.2:8080                       0        0        0        0        0
  -> 10.0.0.3:8080                       0        0        0        0        0
  -> 10.0.0.20:80                        0        0        0        0        0
TCP  10.1.1.1:443                        0        0        0        0        0
  -> 10.1.1.10:443                       0        0        0        0        0
  -> 10.1.1.11:443                       0        0        0        0        0
TCP  10.5.5.5:25                         0        0        0        0        0
  -> 127.0.0.1:25                        0        0        0        0        0
  -> 172.16.0.1:25                       0        0        0        0        0
  -> 192.168.0.1:25                      0        0        0        0        0
  -> 10.0.0.1:25                         0        0        0        0        0
UDP  10.0.0.5:500                        0        0        0        0        0
UDP  10.1.1.1:53                         0        0        0        0        0
  -> 10.2.0.1:53                         0        0        0        0        0
  -> 10.2.0.2:53                         0        0        0        0        0
SCTP 10.1.1.2:9000                       0        0        0        0        0
  -> 10.4.0.1:9000                       0        0        0        0        0
TCP  [2001:db8::1]:80                    0        0        0        0        0
  -> 10.9.9.9:80                         0        0        0        0        0
  -> [2001:db8::2]:80                    0        0        0        0        0
  -> [2001:db8::2]:8080                  0        0        0        0        0
  -> [2001:db8::10]:80                   0        0        0        0        0
FWM  7                                   0        0        0        0        0
  -> 10.3.0.1:0                          0        0        0        0        0
  -> 10.3.0.2:0                          0        0        0        0        0
  -> 10.3.0.3:0                          0        0        0        0        0
  -> 10.3.0.4:0                          0        0        0        0        0
FWM  7 IPv6                              0        0        0        0        0
  -> [2001:db8:1::1]:0                   0        0        0        0        0
"#,
    );
}

/// `ipvsadm -L -n --thresholds`
#[test]
fn golden_list_thresholds() {
    same(
        &format::list(
            &main_table(),
            &ListOptions {
                numeric: true,
                thresholds: true,
                ..opts()
            },
            &NumericOnly,
        )
        .unwrap(),
        r#"IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn 
  -> RemoteAddress:Port
FWM  -1294967296 rr
TCP  192.168.10.1:0 sed persistent 360
  -> 10.0.0.1:0                   0          0          0          0         
TCP  192.168.10.1:80 wlc
  -> 10.0.0.1:8080                0          0          12         34        
  -> 10.0.0.2:8080                100        50         7          8         
  -> 10.0.0.3:8080                0          0          0          0         
  -> 10.0.0.20:80                 0          0          0          0         
TCP  10.1.1.1:443 rr persistent 300 mask 255.255.255.0
  -> 10.1.1.10:443                0          0          1          0         
  -> 10.1.1.11:443                0          0          0          0         
TCP  10.5.5.5:25 lblc
  -> 127.0.0.1:25                 0          0          0          0         
  -> 172.16.0.1:25                0          0          0          0         
  -> 192.168.0.1:25               0          0          0          0         
  -> 10.0.0.1:25                  0          0          0          0         
UDP  10.0.0.5:500 nq (flag-1,flag-3)
UDP  10.1.1.1:53 sh (sh-fallback,sh-port) ops
  -> 10.2.0.1:53                  0          0          0          0         
  -> 10.2.0.2:53                  0          0          0          0         
SCTP 10.1.1.2:9000 fo
  -> 10.4.0.1:9000                0          0          0          0         
TCP  [2001:db8::1]:80 lc
  -> 10.9.9.9:80                  0          0          0          0         
  -> [2001:db8::2]:80             0          0          0          0         
  -> [2001:db8::2]:8080           0          0          0          0         
  -> [2001:db8::10]:80            0          0          4          0         
FWM  7 wrr persistent 360 pe sip
  -> 10.3.0.1:0                   0          0          0          0         
  -> 10.3.0.2:0                   0          0          0          0         
  -> 10.3.0.3:0                   0          0          0          0         
  -> 10.3.0.4:0                   0          0          0          0         
FWM  7 IPv6 mh (mh-port) persistent 600 mask 64
  -> [2001:db8:1::1]:0            0          0          0          0         
"#,
    );
}

/// `ipvsadm -L -n --persistent-conn`
#[test]
fn golden_list_persistent_conn() {
    same(
        &format::list(
            &main_table(),
            &ListOptions {
                numeric: true,
                persistent_conn: true,
                ..opts()
            },
            &NumericOnly,
        )
        .unwrap(),
        r#"IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn 
  -> RemoteAddress:Port
FWM  -1294967296 rr
TCP  192.168.10.1:0 sed persistent 360
  -> 10.0.0.1:0                   1         0           0          0         
TCP  192.168.10.1:80 wlc
  -> 10.0.0.1:8080                3         0           12         34        
  -> 10.0.0.2:8080                1         2           7          8         
  -> 10.0.0.3:8080                0         0           0          0         
  -> 10.0.0.20:80                 1         0           0          0         
TCP  10.1.1.1:443 rr persistent 300 mask 255.255.255.0
  -> 10.1.1.10:443                2         5           1          0         
  -> 10.1.1.11:443                1         3           0          0         
TCP  10.5.5.5:25 lblc
  -> 127.0.0.1:25                 1         0           0          0         
  -> 172.16.0.1:25                1         0           0          0         
  -> 192.168.0.1:25               1         0           0          0         
  -> 10.0.0.1:25                  1         0           0          0         
UDP  10.0.0.5:500 nq (flag-1,flag-3)
UDP  10.1.1.1:53 sh (sh-fallback,sh-port) ops
  -> 10.2.0.1:53                  1         0           0          0         
  -> 10.2.0.2:53                  1         0           0          0         
SCTP 10.1.1.2:9000 fo
  -> 10.4.0.1:9000                1         0           0          0         
TCP  [2001:db8::1]:80 lc
  -> 10.9.9.9:80                  1         0           0          0         
  -> [2001:db8::2]:80             1         0           0          0         
  -> [2001:db8::2]:8080           2         0           0          0         
  -> [2001:db8::10]:80            1         0           4          0         
FWM  7 wrr persistent 360 pe sip
  -> 10.3.0.1:0                   2         0           0          0         
  -> 10.3.0.2:0                   5         0           0          0         
  -> 10.3.0.3:0                   1         0           0          0         
  -> 10.3.0.4:0                   1         0           0          0         
FWM  7 IPv6 mh (mh-port) persistent 600 mask 64
  -> [2001:db8:1::1]:0            1         0           0          0         
"#,
    );
}

/// `ipvsadm -L -n --tun-info`
#[test]
fn golden_list_tun_info() {
    same(
        &format::list(
            &main_table(),
            &ListOptions {
                numeric: true,
                tun_info: true,
                ..opts()
            },
            &NumericOnly,
        )
        .unwrap(),
        r#"IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn
FWM  -1294967296 rr
TCP  192.168.10.1:0 sed persistent 360
  -> 10.0.0.1:0                   Route   n/a           1      0          0         
TCP  192.168.10.1:80 wlc
  -> 10.0.0.1:8080                Masq    n/a           3      12         34        
  -> 10.0.0.2:8080                Masq    n/a           1      7          8         
  -> 10.0.0.3:8080                Masq    n/a           0      0          0         
  -> 10.0.0.20:80                 Local   n/a           1      0          0         
TCP  10.1.1.1:443 rr persistent 300 mask 255.255.255.0
  -> 10.1.1.10:443                Route   n/a           2      1          0         
  -> 10.1.1.11:443                Route   n/a           1      0          0         
TCP  10.5.5.5:25 lblc
  -> 127.0.0.1:25                 Route   n/a           1      0          0         
  -> 172.16.0.1:25                Route   n/a           1      0          0         
  -> 192.168.0.1:25               Route   n/a           1      0          0         
  -> 10.0.0.1:25                  Route   n/a           1      0          0         
UDP  10.0.0.5:500 nq (flag-1,flag-3)
UDP  10.1.1.1:53 sh (sh-fallback,sh-port) ops
  -> 10.2.0.1:53                  Tunnel  ipip          1      0          0         
  -> 10.2.0.2:53                  Route   n/a           1      0          0         
SCTP 10.1.1.2:9000 fo
  -> 10.4.0.1:9000                Route   n/a           1      0          0         
TCP  [2001:db8::1]:80 lc
  -> 10.9.9.9:80                  Tunnel  ipip          1      0          0         
  -> [2001:db8::2]:80             Masq    n/a           1      0          0         
  -> [2001:db8::2]:8080           Masq    n/a           2      0          0         
  -> [2001:db8::10]:80            Masq    n/a           1      4          0         
FWM  7 wrr persistent 360 pe sip
  -> 10.3.0.1:0                   Tunnel  gre:+c        2      0          0         
  -> 10.3.0.2:0                   Tunnel  gue:6080:+c   5      0          0         
  -> 10.3.0.3:0                   Tunnel  gue:5555:r+c  1      0          0         
  -> 10.3.0.4:0                   Tunnel  gre:-c        1      0          0         
FWM  7 IPv6 mh (mh-port) persistent 600 mask 64
  -> [2001:db8:1::1]:0            Route   n/a           1      0          0         
"#,
    );
}

/// `ipvsadm -L -n --tun-info --nosort`
#[test]
fn golden_list_tun_info_nosort() {
    same(
        &format::list(
            &main_table(),
            &ListOptions {
                numeric: true,
                tun_info: true,
                nosort: true,
                ..opts()
            },
            &NumericOnly,
        )
        .unwrap(),
        r#"IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn
TCP  192.168.10.1:80 wlc
  -> 10.0.0.3:8080                Masq    n/a           0      0          0         
  -> 10.0.0.1:8080                Masq    n/a           3      12         34        
  -> 10.0.0.2:8080                Masq    n/a           1      7          8         
  -> 10.0.0.20:80                 Local   n/a           1      0          0         
TCP  10.1.1.1:443 rr persistent 300 mask 255.255.255.0
  -> 10.1.1.11:443                Route   n/a           1      0          0         
  -> 10.1.1.10:443                Route   n/a           2      1          0         
UDP  10.1.1.1:53 sh (sh-fallback,sh-port) ops
  -> 10.2.0.2:53                  Route   n/a           1      0          0         
  -> 10.2.0.1:53                  Tunnel  ipip          1      0          0         
FWM  7 wrr persistent 360 pe sip
  -> 10.3.0.2:0                   Tunnel  gue:6080:+c   5      0          0         
  -> 10.3.0.1:0                   Tunnel  gre:+c        2      0          0         
  -> 10.3.0.3:0                   Tunnel  gue:5555:r+c  1      0          0         
  -> 10.3.0.4:0                   Tunnel  gre:-c        1      0          0         
TCP  [2001:db8::1]:80 lc
  -> [2001:db8::10]:80            Masq    n/a           1      4          0         
  -> [2001:db8::2]:8080           Masq    n/a           2      0          0         
  -> 10.9.9.9:80                  Tunnel  ipip          1      0          0         
  -> [2001:db8::2]:80             Masq    n/a           1      0          0         
FWM  7 IPv6 mh (mh-port) persistent 600 mask 64
  -> [2001:db8:1::1]:0            Route   n/a           1      0          0         
SCTP 10.1.1.2:9000 fo
  -> 10.4.0.1:9000                Route   n/a           1      0          0         
TCP  192.168.10.1:0 sed persistent 360
  -> 10.0.0.1:0                   Route   n/a           1      0          0         
UDP  10.0.0.5:500 nq (flag-1,flag-3)
FWM  -1294967296 rr
TCP  10.5.5.5:25 lblc
  -> 192.168.0.1:25               Route   n/a           1      0          0         
  -> 10.0.0.1:25                  Route   n/a           1      0          0         
  -> 127.0.0.1:25                 Route   n/a           1      0          0         
  -> 172.16.0.1:25                Route   n/a           1      0          0         
"#,
    );
}

/// `ipvsadm -L -n --stats --rate --thresholds --persistent-conn`
#[test]
fn golden_list_stats_wins_over_rate_and_thresholds() {
    same(
        &format::list(
            &main_table(),
            &ListOptions {
                numeric: true,
                stats: true,
                rate: true,
                thresholds: true,
                persistent_conn: true,
                ..opts()
            },
            &NumericOnly,
        )
        .unwrap(),
        r#"IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
FWM  -1294967296                         0        0        0        0        0
TCP  192.168.10.1:0                      0        0        0        0        0
  -> 10.0.0.1:0                          0        0        0        0        0
TCP  192.168.10.1:80                 12345 99999999  100000K  999999K    1000M
  -> 10.0.0.1:8080                    100G   99999G     100T   99999M     100G
  -> 10.0.0.2:8080               18446744T    1234G        0        7  100000T
  -> 10.0.0.3:8080                       1        2        3        4        5
  -> 10.0.0.20:80                        0        0        0        0        0
TCP  10.1.1.1:443                        0        0        0        0        0
  -> 10.1.1.10:443                       0        0        0        0        0
  -> 10.1.1.11:443                       0        0        0        0        0
TCP  10.5.5.5:25                         0        0        0        0        0
  -> 127.0.0.1:25                        0        0        0        0        0
  -> 172.16.0.1:25                       0        0        0        0        0
  -> 192.168.0.1:25                      0        0        0        0        0
  -> 10.0.0.1:25                         0        0        0        0        0
UDP  10.0.0.5:500                        0        0        0        0        0
UDP  10.1.1.1:53                         0        0        0        0        0
  -> 10.2.0.1:53                         0        0        0        0        0
  -> 10.2.0.2:53                         0        0        0        0        0
SCTP 10.1.1.2:9000                       0        0        0        0        0
  -> 10.4.0.1:9000                       0        0        0        0        0
TCP  [2001:db8::1]:80                    1        2        3        4        5
  -> 10.9.9.9:80                         0        0        0        0        0
  -> [2001:db8::2]:80                    0        0        0        0        0
  -> [2001:db8::2]:8080                  0        0        0        0        0
  -> [2001:db8::10]:80                 100      200      300      400      500
FWM  7                                   0        0        0        0        0
  -> 10.3.0.1:0                          0        0        0        0        0
  -> 10.3.0.2:0                          0        0        0        0        0
  -> 10.3.0.3:0                          0        0        0        0        0
  -> 10.3.0.4:0                          0        0        0        0        0
FWM  7 IPv6                              0        0        0        0        0
  -> [2001:db8:1::1]:0                   0        0        0        0        0
"#,
    );
}

/// `ipvsadm -L -n --thresholds --persistent-conn --tun-info`
#[test]
fn golden_list_thresholds_wins_over_persistent_conn() {
    same(
        &format::list(
            &main_table(),
            &ListOptions {
                numeric: true,
                thresholds: true,
                persistent_conn: true,
                tun_info: true,
                ..opts()
            },
            &NumericOnly,
        )
        .unwrap(),
        r#"IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn 
  -> RemoteAddress:Port
FWM  -1294967296 rr
TCP  192.168.10.1:0 sed persistent 360
  -> 10.0.0.1:0                   0          0          0          0         
TCP  192.168.10.1:80 wlc
  -> 10.0.0.1:8080                0          0          12         34        
  -> 10.0.0.2:8080                100        50         7          8         
  -> 10.0.0.3:8080                0          0          0          0         
  -> 10.0.0.20:80                 0          0          0          0         
TCP  10.1.1.1:443 rr persistent 300 mask 255.255.255.0
  -> 10.1.1.10:443                0          0          1          0         
  -> 10.1.1.11:443                0          0          0          0         
TCP  10.5.5.5:25 lblc
  -> 127.0.0.1:25                 0          0          0          0         
  -> 172.16.0.1:25                0          0          0          0         
  -> 192.168.0.1:25               0          0          0          0         
  -> 10.0.0.1:25                  0          0          0          0         
UDP  10.0.0.5:500 nq (flag-1,flag-3)
UDP  10.1.1.1:53 sh (sh-fallback,sh-port) ops
  -> 10.2.0.1:53                  0          0          0          0         
  -> 10.2.0.2:53                  0          0          0          0         
SCTP 10.1.1.2:9000 fo
  -> 10.4.0.1:9000                0          0          0          0         
TCP  [2001:db8::1]:80 lc
  -> 10.9.9.9:80                  0          0          0          0         
  -> [2001:db8::2]:80             0          0          0          0         
  -> [2001:db8::2]:8080           0          0          0          0         
  -> [2001:db8::10]:80            0          0          4          0         
FWM  7 wrr persistent 360 pe sip
  -> 10.3.0.1:0                   0          0          0          0         
  -> 10.3.0.2:0                   0          0          0          0         
  -> 10.3.0.3:0                   0          0          0          0         
  -> 10.3.0.4:0                   0          0          0          0         
FWM  7 IPv6 mh (mh-port) persistent 600 mask 64
  -> [2001:db8:1::1]:0            0          0          0          0         
"#,
    );
}

/// `ipvsadm -L -n -t 10.1.1.1:443`
#[test]
fn golden_list_one_service_v4() {
    same(
        &format::list(
            &main_table(),
            &ListOptions {
                numeric: true,
                service: Some(tcp("10.1.1.1", 443)),
                ..opts()
            },
            &NumericOnly,
        )
        .unwrap(),
        r#"Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.1.1.1:443 rr persistent 300 mask 255.255.255.0
  -> 10.1.1.10:443                Route   2      1          0         
  -> 10.1.1.11:443                Route   1      0          0         
"#,
    );
}

/// `ipvsadm -L --stats -t [2001:db8::1]:80`
#[test]
fn golden_list_one_service_v6_names_stats() {
    same(
        &format::list(
            &main_table(),
            &ListOptions {
                stats: true,
                service: Some(tcp("2001:db8::1", 80)),
                ..opts()
            },
            &TestNames,
        )
        .unwrap(),
        r#"Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  [v6-virtual.example.com]:http        1        2        3        4        5
  -> 10.9.9.9:http                       0        0        0        0        0
  -> [2001:db8::2]:http                  0        0        0        0        0
  -> [2001:db8::2]:http-alt              0        0        0        0        0
  -> [2001:db8::10]:http               100      200      300      400      500
"#,
    );
}

/// `ipvsadm -L -n -f 7 -6`
#[test]
fn golden_list_one_service_fwmark6() {
    same(
        &format::list(
            &main_table(),
            &ListOptions {
                numeric: true,
                service: Some(fwm(7, Family::Inet6)),
                ..opts()
            },
            &NumericOnly,
        )
        .unwrap(),
        r#"Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
FWM  7 IPv6 mh (mh-port) persistent 600 mask 64
  -> [2001:db8:1::1]:0            Route   1      0          0         
"#,
    );
}

/// `ipvsadm -L -n --nosort -t 192.168.10.1:80`
#[test]
fn golden_list_one_service_nosort() {
    same(
        &format::list(
            &main_table(),
            &ListOptions {
                numeric: true,
                nosort: true,
                service: Some(tcp("192.168.10.1", 80)),
                ..opts()
            },
            &NumericOnly,
        )
        .unwrap(),
        r#"Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  192.168.10.1:80 wlc
  -> 10.0.0.3:8080                Masq    0      0          0         
  -> 10.0.0.1:8080                Masq    3      12         34        
  -> 10.0.0.2:8080                Masq    1      7          8         
  -> 10.0.0.20:80                 Local   1      0          0         
"#,
    );
}

/// `ipvsadm -L -n`
#[test]
fn golden_list_empty() {
    same(
        &format::list(
            &empty_table(),
            &ListOptions {
                numeric: true,
                ..opts()
            },
            &NumericOnly,
        )
        .unwrap(),
        r#"IP Virtual Server version 1.2.1 (size=1024)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
"#,
    );
}

/// `ipvsadm -L -n --stats`
#[test]
fn golden_list_empty_stats() {
    same(
        &format::list(
            &empty_table(),
            &ListOptions {
                numeric: true,
                stats: true,
                ..opts()
            },
            &NumericOnly,
        )
        .unwrap(),
        r#"IP Virtual Server version 1.2.1 (size=1024)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
"#,
    );
}

/// `ipvsadm -S -n`
#[test]
fn golden_save_numeric() {
    same(
        &format::save(&main_table(), true, &NumericOnly),
        r#"-A -f -1294967296 -s rr
-A -t 192.168.10.1:0 -s sed -p 360
-a -t 192.168.10.1:0 -r 10.0.0.1:0 -g -w 1
-A -t 192.168.10.1:80 -s wlc
-a -t 192.168.10.1:80 -r 10.0.0.1:8080 -m -w 3
-a -t 192.168.10.1:80 -r 10.0.0.2:8080 -m -w 1
-a -t 192.168.10.1:80 -r 10.0.0.3:8080 -m -w 0
-a -t 192.168.10.1:80 -r 10.0.0.20:80 -g -w 1
-A -t 10.1.1.1:443 -s rr -p 300 -M 255.255.255.0
-a -t 10.1.1.1:443 -r 10.1.1.10:443 -g -w 2
-a -t 10.1.1.1:443 -r 10.1.1.11:443 -g -w 1
-A -t 10.5.5.5:25 -s lblc
-a -t 10.5.5.5:25 -r 127.0.0.1:25 -g -w 1
-a -t 10.5.5.5:25 -r 172.16.0.1:25 -g -w 1
-a -t 10.5.5.5:25 -r 192.168.0.1:25 -g -w 1
-a -t 10.5.5.5:25 -r 10.0.0.1:25 -g -w 1
-A -u 10.0.0.5:500 -s nq -b flag-1,flag-3
-A -u 10.1.1.1:53 -s sh -o -b sh-fallback,sh-port
-a -u 10.1.1.1:53 -r 10.2.0.1:53 -i -w 1 --tun-type ipip
-a -u 10.1.1.1:53 -r 10.2.0.2:53 -g -w 1
-A --sctp-service 10.1.1.2:9000 -s fo
-a --sctp-service 10.1.1.2:9000 -r 10.4.0.1:9000 -g -w 1
-A -t [2001:db8::1]:80 -s lc
-a -t [2001:db8::1]:80 -r 10.9.9.9:80 -i -w 1 --tun-type ipip
-a -t [2001:db8::1]:80 -r [2001:db8::2]:80 -m -w 1
-a -t [2001:db8::1]:80 -r [2001:db8::2]:8080 -m -w 2
-a -t [2001:db8::1]:80 -r [2001:db8::10]:80 -m -w 1
-A -f 7 -s wrr -p 360 --pe sip
-a -f 7 -r 10.3.0.1:0 -i -w 2 --tun-type gre --tun-csum
-a -f 7 -r 10.3.0.2:0 -i -w 5 --tun-type gue --tun-port 6080 --tun-csum
-a -f 7 -r 10.3.0.3:0 -i -w 1 --tun-type gue --tun-port 5555 --tun-remcsum
-a -f 7 -r 10.3.0.4:0 -i -w 1 --tun-type gre --tun-nocsum
-A -f 7 -6 -s mh -p 600 -M 64 -b mh-port
-a -f 7 -6 -r [2001:db8:1::1]:0 -g -w 1
"#,
    );
}

/// `ipvsadm -S`
#[test]
fn golden_save_names() {
    same(
        &format::save(&main_table(), false, &TestNames),
        r#"-A -f -1294967296 -s rr
-A -t a-rather-long-virtual-host-name.example.com:0 -s sed -p 360
-a -t a-rather-long-virtual-host-name.example.com:0 -r web1.example.com:0 -g -w 1
-A -t a-rather-long-virtual-host-name.example.com:http -s wlc
-a -t a-rather-long-virtual-host-name.example.com:http -r web1.example.com:http-alt -m -w 3
-a -t a-rather-long-virtual-host-name.example.com:http -r realserver-number-two.example.com:http-alt -m -w 1
-a -t a-rather-long-virtual-host-name.example.com:http -r 10.0.0.3:http-alt -m -w 0
-a -t a-rather-long-virtual-host-name.example.com:http -r 10.0.0.20:http -g -w 1
-A -t 10.1.1.1:https -s rr -p 300 -M 255.255.255.0
-a -t 10.1.1.1:https -r a-very-very-long-host-name-that-exceeds-the-buffer.example. -g -w 2
-a -t 10.1.1.1:https -r 10.1.1.11:https -g -w 1
-A -t 10.5.5.5:25 -s lblc
-a -t 10.5.5.5:25 -r 127.0.0.1:25 -g -w 1
-a -t 10.5.5.5:25 -r 172.16.0.1:25 -g -w 1
-a -t 10.5.5.5:25 -r 192.168.0.1:25 -g -w 1
-a -t 10.5.5.5:25 -r web1.example.com:25 -g -w 1
-A -u 10.0.0.5:500 -s nq -b flag-1,flag-3
-A -u 10.1.1.1:domain -s sh -o -b sh-fallback,sh-port
-a -u 10.1.1.1:domain -r 10.2.0.1:domain -i -w 1 --tun-type ipip
-a -u 10.1.1.1:domain -r 10.2.0.2:domain -g -w 1
-A --sctp-service 10.1.1.2:9000 -s fo
-a --sctp-service 10.1.1.2:9000 -r 10.4.0.1:9000 -g -w 1
-A -t [v6-virtual.example.com]:http -s lc
-a -t [v6-virtual.example.com]:http -r 10.9.9.9:http -i -w 1 --tun-type ipip
-a -t [v6-virtual.example.com]:http -r [2001:db8::2]:http -m -w 1
-a -t [v6-virtual.example.com]:http -r [2001:db8::2]:http-alt -m -w 2
-a -t [v6-virtual.example.com]:http -r [2001:db8::10]:http -m -w 1
-A -f 7 -s wrr -p 360 --pe sip
-a -f 7 -r 10.3.0.1:0 -i -w 2 --tun-type gre --tun-csum
-a -f 7 -r 10.3.0.2:0 -i -w 5 --tun-type gue --tun-port 6080 --tun-csum
-a -f 7 -r 10.3.0.3:0 -i -w 1 --tun-type gue --tun-port 5555 --tun-remcsum
-a -f 7 -r 10.3.0.4:0 -i -w 1 --tun-type gre --tun-nocsum
-A -f 7 -6 -s mh -p 600 -M 64 -b mh-port
-a -f 7 -6 -r [2001:db8:1::1]:0 -g -w 1
"#,
    );
}

/// `ipvsadm -S -n`
#[test]
fn golden_save_empty() {
    same(&format::save(&empty_table(), true, &NumericOnly), r#""#);
}

/// `ipvsadm -L -c`
#[test]
fn golden_conns_names() {
    same(
        &format::list_conns(&conns(), &opts(), &TestNames),
        r#"IPVS connection entries
pro expire state       source             virtual            destination
TCP 14:59  ESTABLISHED client.example.net:40000 a-rather-long-virtual-host-name.example.com:http web1.example.com:http-alt
UDP 04:59  UDP         client.example.net:5353 10.1.1.1:domain    10.2.0.2:domain
IP  05:59  NONE        client.example.net:0 0.0.0.7:0          10.3.0.2:0
TCP 00:59  SYN_RECV    [2001:db8::99]:50000 [v6-virtual.example.com]:http [2001:db8::10]:http
TCP 100:00 FIN_WAIT    [2001:db8::98]:https [v6-virtual.example.com]:http 10.9.9.9:http
UDP 60:00  UDP         client.example.net:5060 10.1.1.1:domain    10.2.0.1:domain
SCTP 00:00  COOKIE_ECHOED 10.9.8.6:1234      10.1.1.2:9000      10.4.0.1:9000
"#,
    );
}

/// `ipvsadm -L -c -n`
#[test]
fn golden_conns_numeric() {
    same(
        &format::list_conns(
            &conns(),
            &ListOptions {
                numeric: true,
                ..opts()
            },
            &NumericOnly,
        ),
        r#"IPVS connection entries
pro expire state       source             virtual            destination
TCP 14:59  ESTABLISHED 10.9.8.7:40000     192.168.10.1:80    10.0.0.1:8080
UDP 04:59  UDP         10.9.8.7:5353      10.1.1.1:53        10.2.0.2:53
IP  05:59  NONE        10.9.8.7:0         0.0.0.7:0          10.3.0.2:0
TCP 00:59  SYN_RECV    [2001:db8::99]:50000 [2001:db8::1]:80   [2001:db8::10]:80
TCP 100:00 FIN_WAIT    [2001:db8::98]:443 [2001:db8::1]:80   10.9.9.9:80
UDP 60:00  UDP         10.9.8.7:5060      10.1.1.1:53        10.2.0.1:53
SCTP 00:00  COOKIE_ECHOED 10.9.8.6:1234      10.1.1.2:9000      10.4.0.1:9000
"#,
    );
}

/// `ipvsadm -L -c -n --persistent-conn`
#[test]
fn golden_conns_persistent_conn() {
    same(
        &format::list_conns(
            &conns(),
            &ListOptions {
                numeric: true,
                persistent_conn: true,
                ..opts()
            },
            &NumericOnly,
        ),
        r#"IPVS connection entries
pro expire state       source             virtual            destination        pe name          pe_data
TCP 14:59  ESTABLISHED 10.9.8.7:40000     192.168.10.1:80    10.0.0.1:8080
UDP 04:59  UDP         10.9.8.7:5353      10.1.1.1:53        10.2.0.2:53
IP  05:59  NONE        10.9.8.7:0         0.0.0.7:0          10.3.0.2:0
TCP 00:59  SYN_RECV    [2001:db8::99]:50000 [2001:db8::1]:80   [2001:db8::10]:80
TCP 100:00 FIN_WAIT    [2001:db8::98]:443 [2001:db8::1]:80   10.9.9.9:80
UDP 60:00  UDP         10.9.8.7:5060      10.1.1.1:53        10.2.0.1:53      sip                a84b4c76e66710@pc33
SCTP 00:00  COOKIE_ECHOED 10.9.8.6:1234      10.1.1.2:9000      10.4.0.1:9000
"#,
    );
}

/// `ipvsadm -L -c -n`
#[test]
fn golden_conns_empty() {
    same(
        &format::list_conns(
            &[],
            &ListOptions {
                numeric: true,
                ..opts()
            },
            &NumericOnly,
        ),
        r#"IPVS connection entries
pro expire state       source             virtual            destination
"#,
    );
}

/// `ipvsadm -L --timeout`
#[test]
fn golden_list_timeout() {
    same(
        &format::list_timeouts(&timeouts()),
        r#"Timeout (tcp tcpfin udp): 900 120 300
"#,
    );
}

/// `ipvsadm -L --daemon`
#[test]
fn golden_list_daemon() {
    same(
        &format::list_daemons(&daemons()),
        r#"master sync daemon (mcast=eth0, syncid=1, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)
backup sync daemon (mcast=eth1, syncid=2, group=ff02::81)
"#,
    );
}

/// `ipvsadm -L -n -t 10.1.1.1:444` prints "No such service" on stderr and
/// exits with status 1.
#[test]
fn list_missing_service_is_an_error() {
    let o = ListOptions {
        numeric: true,
        service: Some(tcp("10.1.1.1", 444)),
        ..opts()
    };
    let err = format::list(&main_table(), &o, &NumericOnly).unwrap_err();
    assert_eq!(
        err,
        FormatError {
            message: "No such service".to_string(),
            exit_code: 1,
        }
    );
    assert_eq!(err.to_string(), "No such service");
    // Same protocol and port but the other family, and a fwmark of the
    // wrong family, are different services too.
    for key in [
        tcp("::1", 443),
        fwm(3, Family::Inet),
        fwm(3_000_000_000, Family::Inet6),
    ] {
        let o = ListOptions {
            service: Some(key),
            ..opts()
        };
        assert!(format::list(&main_table(), &o, &NumericOnly).is_err());
    }
}

/// ipvsadm prints `ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)`;
/// xvsadm keeps every field but the program name and the parenthesised build.
#[test]
fn version_keeps_ipvsadm_shape() {
    let v = format::version_line("xvsadm");
    assert_eq!(
        v,
        format!(
            "xvsadm v1.31 2019/12/24 (compiled with xvs-core {} and IPVS v1.2.1)\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    let fields: Vec<&str> = v.split_whitespace().collect();
    assert_eq!(fields[1], "v1.31");
    assert_eq!(fields[2], "2019/12/24");
    assert_eq!(*fields.last().unwrap(), "v1.2.1)");
}

/// `--exact` only matters for `--stats` and `--rate`.
#[test]
fn exact_alone_changes_nothing() {
    assert_eq!(
        list_n(ListOptions {
            numeric: true,
            exact: true,
            ..opts()
        }),
        list_n(numeric())
    );
}

#[test]
fn largenum_rules() {
    let cases: &[(u64, &str, &str)] = &[
        (0, "        0", "        0"),
        (99_999_999, " 99999999", " 99999999"),
        (100_000_000, "  100000K", " 100000000"),
        (999_999_999, "  999999K", " 999999999"),
        (1_000_000_000, "    1000M", " 1000000000"),
        (99_999_999_999, "   99999M", " 99999999999"),
        (100_000_000_000, "     100G", " 100000000000"),
        (99_999_999_999_999, "   99999G", " 99999999999999"),
        (100_000_000_000_000, "     100T", " 100000000000000"),
        (u64::MAX, "18446744T", " 18446744073709551615"),
    ];
    for &(n, short, exact) in cases {
        assert_eq!(format::largenum(n, false), short, "{n}");
        assert_eq!(format::largenum(n, true), exact, "{n} exact");
    }
}

/// The libipvs order compares addresses by wrapping 32-bit subtraction.
#[test]
fn sort_order_quirks() {
    let t = main_table();
    let keys: Vec<ServiceKey> = format::sorted_services(&t.services)
        .iter()
        .map(|s| s.cfg.key)
        .collect();
    assert_eq!(keys[0], fwm(3_000_000_000, Family::Inet));
    assert_eq!(keys[1], tcp("192.168.10.1", 0));
    assert_eq!(*keys.last().unwrap(), fwm(7, Family::Inet6));
    let dests: Vec<String> = format::sorted_dests(&t.services[10].dests)
        .iter()
        .map(|d| d.cfg.addr.to_string())
        .collect();
    assert_eq!(
        dests,
        ["127.0.0.1", "172.16.0.1", "192.168.0.1", "10.0.0.1"]
    );
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

fn arb_addr(v6: bool) -> BoxedStrategy<IpAddr> {
    if v6 {
        any::<[u8; 16]>().prop_map(IpAddr::from).boxed()
    } else {
        any::<[u8; 4]>().prop_map(IpAddr::from).boxed()
    }
}

fn arb_dest(v6: bool) -> impl Strategy<Value = DestEntry> {
    (
        prop_oneof![arb_addr(v6), arb_addr(false)],
        any::<u16>(),
        0usize..5,
        0u32..=65535,
        0usize..3,
        0usize..3,
        any::<u16>(),
        any::<[u64; 5]>(),
    )
        .prop_map(|(addr, port, fwd, weight, tt, tc, tp, st)| {
            let fwd = [
                FwdMethod::Masq,
                FwdMethod::Local,
                FwdMethod::Tunnel,
                FwdMethod::Route,
                FwdMethod::Bypass,
            ][fwd];
            let mut d = dest(&addr.to_string(), port, fwd, weight);
            d.cfg.tun_type = [TunType::Ipip, TunType::Gue, TunType::Gre][tt];
            d.cfg.tun_csum = [TunCsum::NoCsum, TunCsum::Csum, TunCsum::RemCsum][tc];
            d.cfg.tun_port = tp;
            d.stats = counters(st);
            d
        })
}

fn arb_service() -> impl Strategy<Value = ServiceEntry> {
    any::<bool>().prop_flat_map(|v6| {
        (
            prop_oneof![
                (0usize..3, arb_addr(v6), any::<u16>()).prop_map(|(p, addr, port)| {
                    ServiceKey::Addr {
                        protocol: [Protocol::Tcp, Protocol::Udp, Protocol::Sctp][p],
                        addr,
                        port,
                    }
                }),
                any::<u32>().prop_map(move |mark| ServiceKey::Fwmark {
                    family: if v6 { Family::Inet6 } else { Family::Inet },
                    mark,
                }),
            ],
            0usize..SchedulerKind::ALL.len(),
            0u32..8,
            proptest::option::of((any::<u32>(), any::<u32>())),
            any::<bool>(),
            proptest::option::of("[a-z]{1,8}"),
            proptest::collection::vec(arb_dest(v6), 0..5),
        )
            .prop_map(|(key, sched, flags, pers, ops, pe, dests)| {
                let mut s = svc(key, SchedulerKind::ALL[sched], dests);
                s.cfg.sched_flags = SchedFlags(flags << 3);
                s.cfg.persistence = pers.map(|(timeout, netmask)| Persistence { timeout, netmask });
                s.cfg.one_packet = ops;
                s.cfg.pe_name = pe;
                s
            })
    })
}

fn arb_table() -> impl Strategy<Value = TableSnapshot> {
    (proptest::collection::vec(arb_service(), 0..8), any::<u32>()).prop_map(
        |(services, conn_tab_size)| TableSnapshot {
            services,
            conn_tab_size,
        },
    )
}

proptest! {
    /// `-S` output is one `-A ` line per service and one `-a ` line per real
    /// server, ready to be fed back through `-R`.
    #[test]
    fn save_lines_are_rules(t in arb_table(), numeric in any::<bool>()) {
        let names: &dyn Names = if numeric { &NumericOnly } else { &TestNames };
        let out = format::save(&t, numeric, names);
        prop_assert!(out.is_empty() || out.ends_with('\n'));
        let mut services = 0;
        let mut dests = 0;
        for line in out.lines() {
            if line.starts_with("-A ") {
                services += 1;
            } else if line.starts_with("-a ") {
                dests += 1;
            } else {
                prop_assert!(false, "not a rule: {line:?}");
            }
        }
        prop_assert_eq!(services, t.services.len());
        prop_assert_eq!(dests, t.services.iter().map(|s| s.dests.len()).sum::<usize>());
    }

    /// Every listing style has a header, the titles, and one line per
    /// service and per real server, sorted or not.
    #[test]
    fn list_line_counts(
        t in arb_table(),
        flags in proptest::collection::vec(any::<bool>(), 7),
    ) {
        let o = ListOptions {
            numeric: flags[0],
            stats: flags[1],
            rate: flags[2],
            thresholds: flags[3],
            persistent_conn: flags[4],
            tun_info: flags[5],
            nosort: flags[6],
            ..opts()
        };
        let out = format::list(&t, &o, &TestNames).unwrap();
        let rows = t.services.len() + t.services.iter().map(|s| s.dests.len()).sum::<usize>();
        prop_assert_eq!(out.lines().count(), 3 + rows);
        let header = format!("IP Virtual Server version 1.2.1 (size={})\n", t.conn_tab_size as i32);
        prop_assert!(out.starts_with(&header));
    }

    /// Sorting only reorders: the sorted lists are permutations.
    #[test]
    fn sorting_is_a_permutation(t in arb_table()) {
        let sorted = format::sorted_services(&t.services);
        prop_assert_eq!(sorted.len(), t.services.len());
        for s in &t.services {
            prop_assert!(sorted.iter().any(|x| std::ptr::eq(*x, s)));
            let d = format::sorted_dests(&s.dests);
            prop_assert_eq!(d.len(), s.dests.len());
            for x in &s.dests {
                prop_assert!(d.iter().any(|y| std::ptr::eq(*y, x)));
            }
        }
    }
}
