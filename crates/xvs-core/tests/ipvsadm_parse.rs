//! ipvsadm 1.31 grammar: every command and option, and the exact error texts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use xvs_core::ipvsadm::parse::{
    parse_args, parse_args_as, parse_restore, parse_restore_lines, to_argv, ErrorKind,
};
use xvs_core::ipvsadm::{
    Command, DaemonConfig, DaemonState, DestAddr, ListOptions, Names, NumericOnly, TimeoutSet,
};
use xvs_core::model::{
    DestConfig, Family, FwdMethod, Persistence, Protocol, SchedFlags, ServiceConfig, ServiceKey,
    TunCsum, TunType,
};
use xvs_core::sched::SchedulerKind;

struct TestNames;

impl Names for TestNames {
    fn host_addr(&self, name: &str, family: Option<Family>) -> Option<IpAddr> {
        match (name, family) {
            ("www", Some(Family::Inet) | None) => Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9))),
            ("v6only", _) => Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            _ => None,
        }
    }
    fn service_port(&self, name: &str, proto: Protocol) -> Option<u16> {
        match (name, proto) {
            ("http", Protocol::Tcp) => Some(80),
            ("domain", Protocol::Udp | Protocol::Tcp) => Some(53),
            _ => None,
        }
    }
}

fn p(line: &str) -> Result<Command, xvs_core::ipvsadm::ParseError> {
    let args: Vec<&str> = line.split_whitespace().collect();
    parse_args(&args, &TestNames)
}

fn ok(line: &str) -> Command {
    match p(line) {
        Ok(c) => c,
        Err(e) => panic!("{line:?}: {e}"),
    }
}

/// Asserts the exact stderr text and exit code.
fn err(line: &str, message: &str, exit_code: i32) {
    match p(line) {
        Ok(c) => panic!("{line:?} parsed as {c:?}, expected error {message:?}"),
        Err(e) => {
            assert_eq!(e.message, message, "for {line:?}");
            assert_eq!(e.exit_code, exit_code, "for {line:?}");
            assert_eq!(e.to_string(), message);
        }
    }
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn tcp(a: IpAddr, port: u16) -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: a,
        port,
    }
}

fn vip() -> ServiceKey {
    tcp(v4(192, 168, 0, 1), 80)
}

const TRY: &str = "Try `ipvsadm -h' or 'ipvsadm --help' for more information.";

// ----------------------------------------------------------------------------
// Services
// ----------------------------------------------------------------------------

#[test]
fn add_service_defaults_to_wlc() {
    let want = Command::AddService(ServiceConfig::new(vip()));
    assert_eq!(ok("-A -t 192.168.0.1:80"), want);
    assert_eq!(ok("--add-service --tcp-service 192.168.0.1:80"), want);
    assert_eq!(ok("--add-service --tcp-service=192.168.0.1:80"), want);
    assert_eq!(ok("-At 192.168.0.1:80"), want);
    assert_eq!(ok("-At192.168.0.1:80"), want);
    assert_eq!(ok("-A -t=192.168.0.1:80"), want);
    if let Command::AddService(c) = &want {
        assert_eq!(c.scheduler, SchedulerKind::Wlc);
    }
}

#[test]
fn edit_service_also_defaults_to_wlc() {
    assert_eq!(
        ok("-E -t 192.168.0.1:80"),
        Command::EditService(ServiceConfig::new(vip()))
    );
    let mut c = ServiceConfig::new(vip());
    c.scheduler = SchedulerKind::Rr;
    assert_eq!(
        ok("--edit-service -t 192.168.0.1:80 --scheduler rr"),
        Command::EditService(c)
    );
}

#[test]
fn every_scheduler_name() {
    for k in SchedulerKind::ALL {
        let mut c = ServiceConfig::new(vip());
        c.scheduler = k;
        assert_eq!(
            ok(&format!("-A -t 192.168.0.1:80 -s {}", k.name())),
            Command::AddService(c)
        );
    }
    // ipvsadm: `-s ''` is an empty name, replaced by the default.
    assert_eq!(
        parse_args(&["-A", "-t", "192.168.0.1:80", "-s", ""], &NumericOnly),
        Ok(Command::AddService(ServiceConfig::new(vip())))
    );
}

#[test]
fn udp_sctp_fwmark_services() {
    let mut c = ServiceConfig::new(ServiceKey::Addr {
        protocol: Protocol::Udp,
        addr: v4(10, 1, 1, 1),
        port: 53,
    });
    c.scheduler = SchedulerKind::Rr;
    assert_eq!(
        ok("-A -u 10.1.1.1:53 -s rr"),
        Command::AddService(c.clone())
    );
    assert_eq!(
        ok("-A --udp-service 10.1.1.1:domain -s rr"),
        Command::AddService(c)
    );

    let sctp = ServiceKey::Addr {
        protocol: Protocol::Sctp,
        addr: v4(10, 1, 1, 1),
        port: 9,
    };
    assert_eq!(
        ok("-A --sctp-service 10.1.1.1:9"),
        Command::AddService(ServiceConfig::new(sctp))
    );

    let fw = ServiceKey::Fwmark {
        family: Family::Inet,
        mark: 7,
    };
    assert_eq!(ok("-A -f 7"), Command::AddService(ServiceConfig::new(fw)));
    assert_eq!(
        ok("-A --fwmark-service 7"),
        Command::AddService(ServiceConfig::new(fw))
    );
    let fw6 = ServiceKey::Fwmark {
        family: Family::Inet6,
        mark: 7,
    };
    assert_eq!(
        ok("-A -f 7 -6"),
        Command::AddService(ServiceConfig::new(fw6))
    );
    assert_eq!(
        ok("-A -f 7 --ipv6"),
        Command::AddService(ServiceConfig::new(fw6))
    );
    assert_eq!(
        ok("-A -f 4294967295"),
        Command::AddService(ServiceConfig::new(ServiceKey::Fwmark {
            family: Family::Inet,
            mark: u32::MAX,
        }))
    );
}

#[test]
fn host_and_service_names() {
    assert_eq!(
        ok("-A -t www:http"),
        Command::AddService(ServiceConfig::new(tcp(v4(10, 0, 0, 9), 80)))
    );
    // IPv6-only answers do not count for an IPv4 lookup.
    err(
        "-A -t v6only:80",
        "illegal virtual server address[:port] specified",
        2,
    );
    // inet_aton forms.
    assert_eq!(
        ok("-A -t 10.1:80"),
        Command::AddService(ServiceConfig::new(tcp(v4(10, 0, 0, 1), 80)))
    );
}

#[test]
fn ipv6_services() {
    let a6: IpAddr = "2001:db8::1".parse().unwrap();
    let mut c = ServiceConfig::new(tcp(a6, 80));
    c.persistence = Some(Persistence {
        timeout: 360,
        netmask: 128,
    });
    assert_eq!(
        ok("-A -t [2001:db8::1]:80 -p"),
        Command::AddService(c.clone())
    );
    c.persistence = Some(Persistence {
        timeout: 360,
        netmask: 64,
    });
    assert_eq!(
        ok("-A -t [2001:db8::1]:80 -p -M 64"),
        Command::AddService(c)
    );
    // Without brackets an IPv6 address has no port.
    assert_eq!(ok("-D -t 2001:db8::1"), Command::DeleteService(tcp(a6, 0)));
    // Brackets need a port.
    err(
        "-D -t [2001:db8::1]",
        "illegal virtual server address[:port] specified",
        2,
    );
    // ipvsadm quirk: an IPv4 address in brackets loses the bracketed port.
    assert_eq!(
        ok("-D -t [1.2.3.4]:80"),
        Command::DeleteService(tcp(v4(1, 2, 3, 4), 0))
    );
}

#[test]
fn persistence_and_netmask() {
    let with = |timeout, netmask| {
        let mut c = ServiceConfig::new(vip());
        c.persistence = Some(Persistence { timeout, netmask });
        Command::AddService(c)
    };
    assert_eq!(ok("-A -t 192.168.0.1:80 -p"), with(360, 0xffff_ffff));
    assert_eq!(
        ok("-A -t 192.168.0.1:80 --persistent"),
        with(360, 0xffff_ffff)
    );
    assert_eq!(ok("-A -t 192.168.0.1:80 -p 100"), with(100, 0xffff_ffff));
    assert_eq!(ok("-A -t 192.168.0.1:80 -p100"), with(100, 0xffff_ffff));
    assert_eq!(
        ok("-A -t 192.168.0.1:80 --persistent=100"),
        with(100, 0xffff_ffff)
    );
    // Optional value: the next word is not taken when it starts with '-'.
    assert_eq!(ok("-A -t 192.168.0.1:80 -p -s wlc"), with(360, 0xffff_ffff));
    assert_eq!(ok("-A -p -t 192.168.0.1:80"), with(360, 0xffff_ffff));
    // ...but always when it does not.
    err(
        "-A -t 192.168.0.1:80 -p rr",
        "invalid timeout value `rr' specified",
        2,
    );
    // Netmask as u32::from(Ipv4Addr): 255.255.255.0 is 0xffffff00.
    assert_eq!(
        ok("-A -t 192.168.0.1:80 -p 60 -M 255.255.255.0"),
        with(60, 0xffff_ff00)
    );
    assert_eq!(
        ok("-A -t 192.168.0.1:80 -p 60 --netmask 255.255.0.0"),
        with(60, 0xffff_0000)
    );
    // Port 0 is allowed with persistence.
    let mut c = ServiceConfig::new(tcp(v4(192, 168, 0, 1), 0));
    c.persistence = Some(Persistence {
        timeout: 360,
        netmask: 0xffff_ffff,
    });
    assert_eq!(ok("-A -t 192.168.0.1 -p"), Command::AddService(c.clone()));
    assert_eq!(ok("-A -t 192.168.0.1:0 -p"), Command::AddService(c));
    assert_eq!(
        ok(&format!("-A -t 192.168.0.1:80 -p {}", 86400 * 31)),
        with(86400 * 31, 0xffff_ffff)
    );
}

#[test]
fn ops_pe_sched_flags() {
    let mut c = ServiceConfig::new(ServiceKey::Addr {
        protocol: Protocol::Udp,
        addr: v4(10, 1, 1, 1),
        port: 53,
    });
    c.one_packet = true;
    assert_eq!(ok("-A -u 10.1.1.1:53 -o"), Command::AddService(c.clone()));
    assert_eq!(ok("-A -u 10.1.1.1:53 --ops"), Command::AddService(c));

    let mut f = ServiceConfig::new(ServiceKey::Fwmark {
        family: Family::Inet,
        mark: 1,
    });
    f.one_packet = true;
    assert_eq!(ok("-A -f 1 -o"), Command::AddService(f));

    let mut c = ServiceConfig::new(tcp(v4(10, 1, 1, 1), 5060));
    c.pe_name = Some("sip".into());
    c.persistence = Some(Persistence {
        timeout: 360,
        netmask: 0xffff_ffff,
    });
    assert_eq!(
        ok("-A -t 10.1.1.1:5060 -p --pe sip"),
        Command::AddService(c)
    );

    let mut c = ServiceConfig::new(vip());
    c.scheduler = SchedulerKind::Sh;
    c.sched_flags = SchedFlags(SchedFlags::SCHED1 | SchedFlags::SCHED2);
    assert_eq!(
        ok("-A -t 192.168.0.1:80 -s sh -b sh-fallback,sh-port"),
        Command::AddService(c.clone())
    );
    assert_eq!(
        ok("-A -t 192.168.0.1:80 -b sh-port,sh-fallback -s sh"),
        Command::AddService(c.clone())
    );
    assert_eq!(
        ok("-A -t 192.168.0.1:80 -s sh --sched-flags flag-1,,flag-2"),
        Command::AddService(c)
    );
    let mut c = ServiceConfig::new(vip());
    c.scheduler = SchedulerKind::Mh;
    c.sched_flags = SchedFlags(SchedFlags::SCHED1 | SchedFlags::SCHED2 | SchedFlags::SCHED3);
    assert_eq!(
        ok("-A -t 192.168.0.1:80 -s mh -b mh-port,mh-fallback,flag-3"),
        Command::AddService(c)
    );
}

#[test]
fn delete_clear_zero() {
    assert_eq!(ok("-D -t 192.168.0.1:80"), Command::DeleteService(vip()));
    assert_eq!(
        ok("--delete-service -t 192.168.0.1:80"),
        Command::DeleteService(vip())
    );
    assert_eq!(ok("-C"), Command::Clear);
    assert_eq!(ok("--clear"), Command::Clear);
    assert_eq!(ok("-Z"), Command::Zero(None));
    assert_eq!(ok("--zero"), Command::Zero(None));
    assert_eq!(ok("-Z -t 192.168.0.1:80"), Command::Zero(Some(vip())));
    assert_eq!(
        ok("-Z -f 3 -6"),
        Command::Zero(Some(ServiceKey::Fwmark {
            family: Family::Inet6,
            mark: 3
        }))
    );
}

// ----------------------------------------------------------------------------
// Real servers
// ----------------------------------------------------------------------------

#[test]
fn add_server_defaults() {
    // DR by default, weight 1, port forced to the service port.
    let d = DestConfig::new(v4(10, 0, 0, 2), 80);
    assert_eq!(
        ok("-a -t 192.168.0.1:80 -r 10.0.0.2"),
        Command::AddDest(vip(), d)
    );
    assert_eq!(
        ok("-a -t 192.168.0.1:80 -r 10.0.0.2:8080"),
        Command::AddDest(vip(), d)
    );
    assert_eq!(
        ok("-a -t 192.168.0.1:80 -r 10.0.0.2:8080 -g"),
        Command::AddDest(vip(), d)
    );
    assert_eq!(
        ok("--add-server --tcp-service 192.168.0.1:80 --real-server 10.0.0.2 --gatewaying"),
        Command::AddDest(vip(), d)
    );
}

#[test]
fn masquerading_keeps_its_port() {
    let mut d = DestConfig::new(v4(10, 0, 0, 2), 8080);
    d.fwd = FwdMethod::Masq;
    d.weight = 5;
    assert_eq!(
        ok("-a -t 192.168.0.1:80 -r 10.0.0.2:8080 -m -w 5"),
        Command::AddDest(vip(), d)
    );
    assert_eq!(
        ok("-a -t 192.168.0.1:80 -r 10.0.0.2:8080 --masquerading --weight=5"),
        Command::AddDest(vip(), d)
    );
    // Without a port, the service port (as known at that point).
    d.port = 80;
    assert_eq!(
        ok("-a -t 192.168.0.1:80 -r 10.0.0.2 -m -w 5"),
        Command::AddDest(vip(), d)
    );
    // ipvsadm quirk: -r before -t copies the port before it is known.
    d.port = 0;
    assert_eq!(
        ok("-a -r 10.0.0.2 -t 192.168.0.1:80 -m -w 5"),
        Command::AddDest(vip(), d)
    );
    // Service names for real servers use the service's protocol.
    d.port = 80;
    d.weight = 1;
    assert_eq!(
        ok("-a -t 192.168.0.1:80 -r 10.0.0.2:http -m"),
        Command::AddDest(vip(), d)
    );
}

#[test]
fn fwmark_dests_keep_their_port() {
    let fw = ServiceKey::Fwmark {
        family: Family::Inet,
        mark: 1,
    };
    let d = DestConfig::new(v4(10, 0, 0, 2), 8080);
    assert_eq!(ok("-a -f 1 -r 10.0.0.2:8080"), Command::AddDest(fw, d));
    let d = DestConfig::new(v4(10, 0, 0, 2), 0);
    assert_eq!(ok("-a -f 1 -r 10.0.0.2"), Command::AddDest(fw, d));
}

#[test]
fn thresholds_weights_edit() {
    let mut d = DestConfig::new(v4(10, 0, 0, 2), 80);
    d.weight = 0;
    d.u_threshold = 100;
    d.l_threshold = 50;
    assert_eq!(
        ok("-e -t 192.168.0.1:80 -r 10.0.0.2 -w 0 -x 100 -y 50"),
        Command::EditDest(vip(), d)
    );
    assert_eq!(
        ok("--edit-server -t 192.168.0.1:80 -r 10.0.0.2 --weight 0 --u-threshold 100 --l-threshold 50"),
        Command::EditDest(vip(), d)
    );
    d.weight = 65535;
    d.u_threshold = i32::MAX as u32;
    d.l_threshold = 0;
    assert_eq!(
        ok("-e -t 192.168.0.1:80 -r 10.0.0.2 -w 65535 -x 2147483647"),
        Command::EditDest(vip(), d)
    );
}

#[test]
fn tunnels() {
    let mut d = DestConfig::new(v4(10, 0, 0, 2), 80);
    d.fwd = FwdMethod::Tunnel;
    assert_eq!(
        ok("-a -t 192.168.0.1:80 -r 10.0.0.2:99 -i"),
        Command::AddDest(vip(), d)
    );
    assert_eq!(
        ok("-a -t 192.168.0.1:80 -r 10.0.0.2 --ipip"),
        Command::AddDest(vip(), d)
    );
    assert_eq!(
        ok("-a -t 192.168.0.1:80 -r 10.0.0.2 -i --tun-type ipip"),
        Command::AddDest(vip(), d)
    );
    d.tun_type = TunType::Gue;
    d.tun_port = 6080;
    assert_eq!(
        ok("-a -t 192.168.0.1:80 -r 10.0.0.2 -i --tun-type gue --tun-port 6080"),
        Command::AddDest(vip(), d)
    );
    d.tun_csum = TunCsum::RemCsum;
    assert_eq!(
        ok("-a -t 192.168.0.1:80 -r 10.0.0.2 -i --tun-type gue --tun-port 6080 --tun-remcsum"),
        Command::AddDest(vip(), d)
    );
    d.tun_csum = TunCsum::Csum;
    assert_eq!(
        ok("-a -t 192.168.0.1:80 -r 10.0.0.2 -i --tun-type=gue --tun-port=6080 --tun-csum"),
        Command::AddDest(vip(), d)
    );
    let mut g = DestConfig::new(v4(10, 0, 0, 2), 80);
    g.fwd = FwdMethod::Tunnel;
    g.tun_type = TunType::Gre;
    assert_eq!(
        ok("-a -t 192.168.0.1:80 -r 10.0.0.2 -i --tun-type gre --tun-nocsum"),
        Command::AddDest(vip(), g)
    );
    // Tunnelling allows another address family.
    let mut x = DestConfig::new("2001:db8::2".parse().unwrap(), 80);
    x.fwd = FwdMethod::Tunnel;
    assert_eq!(
        ok("-a -t 192.168.0.1:80 -r [2001:db8::2]:80 -i"),
        Command::AddDest(vip(), x)
    );
}

#[test]
fn delete_server() {
    let want = Command::DeleteDest(
        vip(),
        DestAddr {
            addr: v4(10, 0, 0, 2),
            port: 8080,
        },
    );
    // No port forcing for -d: the given port is kept.
    assert_eq!(ok("-d -t 192.168.0.1:80 -r 10.0.0.2:8080"), want);
    assert_eq!(
        ok("--delete-server -t 192.168.0.1:80 --real-server 10.0.0.2:8080"),
        want
    );
    assert_eq!(
        ok("-d -t 192.168.0.1:80 -r 10.0.0.2"),
        Command::DeleteDest(
            vip(),
            DestAddr {
                addr: v4(10, 0, 0, 2),
                port: 80
            }
        )
    );
}

// ----------------------------------------------------------------------------
// List, save, restore, timeouts, daemons, help, version
// ----------------------------------------------------------------------------

#[test]
fn list_variants() {
    let d = ListOptions::default();
    assert_eq!(
        parse_args::<&str>(&[], &NumericOnly),
        Ok(Command::List(d.clone()))
    );
    assert_eq!(ok("-L"), Command::List(d.clone()));
    assert_eq!(ok("-l"), Command::List(d.clone()));
    assert_eq!(ok("--list"), Command::List(d.clone()));
    assert_eq!(ok("-L --sort"), Command::List(d.clone()));
    let n = ListOptions {
        numeric: true,
        ..d.clone()
    };
    assert_eq!(ok("-Ln"), Command::List(n.clone()));
    assert_eq!(ok("-L -n"), Command::List(n.clone()));
    assert_eq!(ok("-l --numeric"), Command::List(n.clone()));
    let all = ListOptions {
        numeric: true,
        exact: true,
        stats: true,
        rate: true,
        thresholds: true,
        persistent_conn: true,
        tun_info: true,
        nosort: true,
        ..d.clone()
    };
    assert_eq!(
        ok("-L -n --exact --stats --rate --thresholds --persistent-conn --tun-info --nosort"),
        Command::List(all.clone())
    );
    assert_eq!(
        ok("-LnX --stats --rate --thresholds --persistent-conn --tun-info --nosort"),
        Command::List(all)
    );
    assert_eq!(
        ok("-L -c"),
        Command::List(ListOptions {
            connections: true,
            ..d.clone()
        })
    );
    assert_eq!(
        ok("-Lnc --persistent-conn"),
        Command::List(ListOptions {
            connections: true,
            numeric: true,
            persistent_conn: true,
            ..d.clone()
        })
    );
    assert_eq!(
        ok("-L --timeout"),
        Command::List(ListOptions {
            timeout: true,
            ..d.clone()
        })
    );
    assert_eq!(
        ok("-L --daemon"),
        Command::List(ListOptions {
            daemon: true,
            ..d.clone()
        })
    );
    assert_eq!(
        ok("-L -t 192.168.0.1:80 --stats"),
        Command::List(ListOptions {
            service: Some(vip()),
            stats: true,
            ..d.clone()
        })
    );
    // --syncid is accepted (and ignored) by -L.
    assert_eq!(ok("-L --syncid 3"), Command::List(d));
}

#[test]
fn save_restore_help_version() {
    assert_eq!(ok("-S"), Command::Save { numeric: false });
    assert_eq!(ok("--save"), Command::Save { numeric: false });
    assert_eq!(ok("-S -n"), Command::Save { numeric: true });
    assert_eq!(ok("-Sn"), Command::Save { numeric: true });
    assert_eq!(ok("-R"), Command::Restore);
    assert_eq!(ok("--restore"), Command::Restore);
    assert_eq!(ok("-h"), Command::Help);
    assert_eq!(ok("--help"), Command::Help);
    assert_eq!(ok("-v"), Command::Version);
    assert_eq!(ok("--version"), Command::Version);
    // Help and version stop processing at once.
    assert_eq!(ok("-h --bogus"), Command::Help);
    assert_eq!(ok("-v -A"), Command::Version);
}

#[test]
fn set_timeouts() {
    let t = TimeoutSet {
        tcp: 900,
        tcp_fin: 120,
        udp: 300,
    };
    assert_eq!(ok("--set 900 120 300"), Command::SetTimeout(t));
    // popt: plain words may come anywhere after the command.
    assert_eq!(ok("--set 900 -- 120 300"), Command::SetTimeout(t));
    assert_eq!(
        ok("--set 0 0 0"),
        Command::SetTimeout(TimeoutSet::default())
    );
}

#[test]
fn daemons() {
    assert_eq!(
        ok("--start-daemon master"),
        Command::StartDaemon(DaemonConfig {
            state: DaemonState::Master,
            mcast_ifn: Some("eth0".into()),
            syncid: 0,
            sync_maxlen: None,
            mcast_group: None,
            mcast_port: None,
            mcast_ttl: None,
        })
    );
    assert_eq!(
        ok(
            "--start-daemon=backup --mcast-interface eth1 --syncid 7 --sync-maxlen 1400 \
            --mcast-group 224.0.0.90 --mcast-port 9000 --mcast-ttl 2"
        ),
        Command::StartDaemon(DaemonConfig {
            state: DaemonState::Backup,
            mcast_ifn: Some("eth1".into()),
            syncid: 7,
            sync_maxlen: Some(1400),
            mcast_group: Some(v4(224, 0, 0, 90)),
            mcast_port: Some(9000),
            mcast_ttl: Some(2),
        })
    );
    assert_eq!(
        ok("--start-daemon master --mcast-group ff02::81"),
        Command::StartDaemon(DaemonConfig {
            state: DaemonState::Master,
            mcast_ifn: Some("eth0".into()),
            syncid: 0,
            sync_maxlen: None,
            mcast_group: Some("ff02::81".parse().unwrap()),
            mcast_port: None,
            mcast_ttl: None,
        })
    );
    assert_eq!(
        ok("--stop-daemon master"),
        Command::StopDaemon(DaemonState::Master)
    );
    assert_eq!(
        ok("--stop-daemon backup --syncid 3"),
        Command::StopDaemon(DaemonState::Backup)
    );
}

// ----------------------------------------------------------------------------
// Errors, one per class, with ipvsadm's exact text and exit status
// ----------------------------------------------------------------------------

#[test]
fn error_unknown_scheduler_is_the_kernels_answer() {
    let e = p("-A -t 192.168.0.1:80 -s foo").unwrap_err();
    assert_eq!(e.message, "Scheduler or persistence engine not found");
    assert_eq!(e.exit_code, 255);
    assert_eq!(e.kind, ErrorKind::Kernel);
    assert!(!e.is_fatal());
    // ...and it comes after every check ipvsadm makes itself.
    err(
        "-A -t 192.168.0.1 -s foo",
        "Zero port specified for non-persistent service",
        2,
    );
}

#[test]
fn error_missing_service() {
    err(
        "-A",
        "You need to supply the 'service-address' option for the 'add-service' command",
        2,
    );
    err(
        "-A -s rr",
        "You need to supply the 'service-address' option for the 'add-service' command",
        2,
    );
    err(
        "-D",
        "You need to supply the 'service-address' option for the 'delete-service' command",
        2,
    );
    err(
        "-a -r 10.0.0.2",
        "You need to supply the 'service-address' option for the 'add-server' command",
        2,
    );
    err(
        "-a -t 192.168.0.1:80",
        "You need to supply the 'real-server' option for the 'add-server' command",
        2,
    );
    err(
        "-d -t 192.168.0.1:80",
        "You need to supply the 'real-server' option for the 'delete-server' command",
        2,
    );
    err(
        "-e -t 192.168.0.1:80",
        "You need to supply the 'real-server' option for the 'edit-server' command",
        2,
    );
}

#[test]
fn error_bad_addresses() {
    err(
        "-A -t 80",
        "illegal virtual server address[:port] specified",
        2,
    );
    err(
        "-A -t nosuchhost:80",
        "illegal virtual server address[:port] specified",
        2,
    );
    err(
        "-A -t 1.2.3.4:99999",
        "illegal virtual server address[:port] specified",
        2,
    );
    err(
        "-A -t 1.2.3.4:nosuchport",
        "illegal virtual server address[:port] specified",
        2,
    );
    // service names are per protocol: "http" is only known for TCP here.
    err(
        "-A -u 1.2.3.4:http",
        "illegal virtual server address[:port] specified",
        2,
    );
    err(
        "-a -t 1.2.3.4:80 -r 10.0.0.300",
        "illegal real server address[:port] specified",
        2,
    );
    // A real-server service name needs the protocol from an earlier -t.
    err(
        "-a -r 10.0.0.2:http -t 1.2.3.4:80",
        "illegal real server address[:port] specified",
        2,
    );
}

#[test]
fn error_zero_port_without_persistence() {
    err(
        "-A -t 192.168.0.1",
        "Zero port specified for non-persistent service",
        2,
    );
    err(
        "-E -t 192.168.0.1:0 -s rr",
        "Zero port specified for non-persistent service",
        2,
    );
}

#[test]
fn error_ops_on_tcp() {
    err(
        "-A -t 192.168.0.1:80 -o",
        "One-Packet Scheduling is only for UDP virtual services",
        2,
    );
    err(
        "-A --sctp-service 192.168.0.1:80 --ops",
        "One-Packet Scheduling is only for UDP virtual services",
        2,
    );
}

#[test]
fn error_weight_and_thresholds() {
    err(
        "-a -t 192.168.0.1:80 -r 10.0.0.2 -w 65536",
        "illegal weight specified",
        2,
    );
    err(
        "-a -t 192.168.0.1:80 -r 10.0.0.2 -w -1",
        "illegal weight specified",
        2,
    );
    err(
        "-a -t 192.168.0.1:80 -r 10.0.0.2 -w x",
        "illegal weight specified",
        2,
    );
    err(
        "-a -t 192.168.0.1:80 -r 10.0.0.2 -x 2147483648",
        "illegal u_threshold specified",
        2,
    );
    err(
        "-a -t 192.168.0.1:80 -r 10.0.0.2 -y abc",
        "illegal l_threshold specified",
        2,
    );
}

#[test]
fn error_fwmark() {
    err("-A -f 0", "invalid fwmark value `0' specified", 2);
    err("-A -f -1", "invalid fwmark value `-1' specified", 2);
    err(
        "-A -f 4294967296",
        "invalid fwmark value `4294967296' specified",
        2,
    );
    err("-A -f 1x", "invalid fwmark value `1x' specified", 2);
    err("-A -6 -f 1", "-6 used before -f\n", 2);
    err("-A -t 1.2.3.4:80 -6", "-6 used before -f\n", 2);
}

#[test]
fn error_timeouts() {
    err(
        "-A -t 192.168.0.1:80 -p 0",
        "invalid timeout value `0' specified",
        2,
    );
    err(
        "-A -t 192.168.0.1:80 -p 2678401",
        "invalid timeout value `2678401' specified",
        2,
    );
    err(
        "-A -t 192.168.0.1:80 -p=",
        "invalid timeout value `' specified",
        2,
    );
    err("--set 1 2 x", "invalid timeout value `x' specified", 2);
    err("--set 1 2", "--set option requires 3 timeout values", 2);
    err("--set", "--set option requires 3 timeout values", 2);
}

#[test]
fn error_multiple_commands_and_options() {
    // ipvsadm only accepts a command as the first option; a later one is
    // an invalid option ("multiple commands specified" cannot happen).
    err("-A -E -t 192.168.0.1:80", "invalid option `-E'", 2);
    err("-AE -t 192.168.0.1:80", "invalid option `-AE'", 2);
    err("-L --start-daemon master", "invalid option `master'", 2);
    err("-L -h", "invalid option `-h'", 2);
    err(
        "-A -t 1.2.3.4:80 -t 1.2.3.4:81",
        "multiple 'service-address' options specified",
        2,
    );
    err(
        "-A -t 1.2.3.4:80 -f 1",
        "multiple 'service-address' options specified",
        2,
    );
    err(
        "-a -t 1.2.3.4:80 -r 10.0.0.2 -m -g",
        "multiple 'forwarding-method' options specified",
        2,
    );
    err(
        "-a -t 1.2.3.4:80 -r 10.0.0.2 -w 1 -w 2",
        "multiple 'weight' options specified",
        2,
    );
    err("-Lnn", "multiple 'numeric' options specified", 2);
}

#[test]
fn error_illegal_option_for_command() {
    err(
        "-A -t 192.168.0.1:80 -w 3",
        "Illegal 'weight' option with the 'add-service' command",
        2,
    );
    err(
        "-D -t 192.168.0.1:80 -s rr",
        "Illegal 'scheduler' option with the 'delete-service' command",
        2,
    );
    err(
        "-C -n",
        "Illegal 'numeric' option with the 'flush' command",
        2,
    );
    err(
        "-a -t 192.168.0.1:80 -r 10.0.0.2 -p",
        "Illegal 'persistent' option with the 'add-server' command",
        2,
    );
    err(
        "-d -t 192.168.0.1:80 -r 10.0.0.2 -m",
        "Illegal 'forwarding-method' option with the 'delete-server' command",
        2,
    );
    err(
        "-S -c",
        "Illegal 'connection' option with the 'save' command",
        2,
    );
    err(
        "-R -n",
        "Illegal 'numeric' option with the 'restore' command",
        2,
    );
    err(
        "--set 1 2 3 -n",
        "Illegal 'numeric' option with the 'set' command",
        2,
    );
    err(
        "--stop-daemon master --mcast-port 1",
        "Illegal 'mcast-port' option with the 'stop-daemon' command",
        2,
    );
    err(
        "--start-daemon master -n",
        "Illegal 'numeric' option with the 'start-daemon' command",
        2,
    );
    err(
        "-Z -n",
        "Illegal 'numeric' option with the 'zero' command",
        2,
    );
    err(
        "-L -s rr",
        "Illegal 'scheduler' option with the 'list' command",
        2,
    );
    // The first problem in option order wins.
    err(
        "-a -s rr -w 2",
        "You need to supply the 'service-address' option for the 'add-server' command",
        2,
    );
}

#[test]
fn error_exclusive_list_options() {
    err(
        "-L -c --timeout",
        "The option 'timeout' conflicts with the 'connection' option in the 'list' command",
        2,
    );
    err(
        "-L -t 1.2.3.4:80 --daemon",
        "The option 'daemon' conflicts with the 'service-address' option in the 'list' command",
        2,
    );
    err("-L -c --stats", "options conflicts in the list command", 2);
    err(
        "-L --timeout --persistent-conn",
        "options conflicts in the list command",
        2,
    );
}

#[test]
fn error_sched_flags() {
    err(
        "-A -t 192.168.0.1:80 -b foo",
        "invalid scheduler flag `foo'",
        2,
    );
    err(
        "-A -t 192.168.0.1:80 -s sh -b sh-port,bar",
        "invalid scheduler flag `bar'",
        2,
    );
    err(
        "-A -t 192.168.0.1:80 -b sh-port",
        "incompatible scheduler flag `sh-port'",
        2,
    );
    err(
        "-A -t 192.168.0.1:80 -s sh -b mh-fallback",
        "incompatible scheduler flag `mh-fallback'",
        2,
    );
    // Flags are checked before the command's legality.
    err(
        "-a -t 192.168.0.1:80 -r 10.0.0.2 -b nope",
        "invalid scheduler flag `nope'",
        2,
    );
    err(
        "-a -t 192.168.0.1:80 -r 10.0.0.2 -b flag-1",
        "Illegal 'sched-flags' option with the 'add-server' command",
        2,
    );
}

#[test]
fn error_tunnels() {
    err(
        "-a -t 192.168.0.1:80 -r 10.0.0.2 --tun-type gue --tun-port 1",
        "Tunnel options conflict with forward method",
        2,
    );
    err(
        "-a -t 192.168.0.1:80 -r 10.0.0.2 -m --tun-csum",
        "Tunnel options conflict with forward method",
        2,
    );
    err(
        "-a -t 192.168.0.1:80 -r 10.0.0.2 -i --tun-port 6080",
        "Illegal 'tun-port' option with the 'ipip' tunnel type",
        2,
    );
    err(
        "-a -t 192.168.0.1:80 -r 10.0.0.2 -i --tun-type gue",
        "You need to supply the 'tun-port' option for the 'gue' tunnel type",
        2,
    );
    err(
        "-a -t 192.168.0.1:80 -r 10.0.0.2 -i --tun-type gre --tun-port 1",
        "Illegal 'tun-port' option with the 'gre' tunnel type",
        2,
    );
    err(
        "-a -t 192.168.0.1:80 -r 10.0.0.2 -i --tun-type gre --tun-remcsum",
        "Illegal 'tun-remcsum' option with the 'gre' tunnel type",
        2,
    );
    err(
        "-a -t 192.168.0.1:80 -r 10.0.0.2 -i --tun-type gue --tun-port 1 --tun-csum --tun-nocsum",
        "The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gue' tunnel type",
        2,
    );
    err(
        "-a -t 192.168.0.1:80 -r 10.0.0.2 -i --tun-type vxlan",
        "illegal tunnel type specified",
        2,
    );
    err(
        "-a -t 192.168.0.1:80 -r 10.0.0.2 -i --tun-type gue --tun-port 0",
        "illegal tunnel port specified",
        2,
    );
    err(
        "-a -t 192.168.0.1:80 -r [2001:db8::2]:80",
        "Different address family is allowed only for tunneling servers",
        2,
    );
    err(
        "-a -t 192.168.0.1:80 -r [2001:db8::2]:80 -m",
        "Different address family is allowed only for tunneling servers",
        2,
    );
}

#[test]
fn error_netmasks() {
    err(
        "-A -t 192.168.0.1:80 -p -M 255.255.255.256",
        "illegal virtual server persistent mask specified",
        2,
    );
    err(
        "-A -t 192.168.0.1:80 -p -M nosuch",
        "illegal virtual server persistent mask specified",
        2,
    );
    err(
        "-A -t [::1]:80 -p -M 129",
        "illegal ipv6 netmask specified",
        2,
    );
    err(
        "-A -t [::1]:80 -p -M 0",
        "illegal ipv6 netmask specified",
        2,
    );
    err("-A -f 1 -6 -p -M x", "illegal ipv6 netmask specified", 2);
    err(
        "-A -t 192.168.0.1:80 -p -M 255.255.255.0 -M 255.0.0.0",
        "multiple 'netmask' options specified",
        2,
    );
}

#[test]
fn error_daemon_parameters() {
    err(
        "--start-daemon primary",
        "illegal start-daemon parameter specified",
        2,
    );
    err("--stop-daemon primary", "illegal start_daemon specified", 2);
    err(
        "--start-daemon master --syncid 256",
        "illegal syncid specified",
        2,
    );
    err(
        "--start-daemon master --mcast-group 10.0.0.1",
        "invalid IPv4 mcast-group `10.0.0.1'",
        2,
    );
    err(
        "--start-daemon master --mcast-group 2001:db8::1",
        "invalid IPv6 mcast-group `2001:db8::1'",
        2,
    );
    err(
        "--start-daemon master --mcast-port 0",
        "illegal mcast-port specified",
        2,
    );
    err(
        "--start-daemon master --mcast-ttl 256",
        "illegal mcast-ttl specified",
        2,
    );
    err(
        "--start-daemon master --sync-maxlen 65508",
        "illegal sync-maxlen specified",
        2,
    );
}

#[test]
fn error_unexpected_argument() {
    err("-C foo", "unexpected argument foo", 2);
    err("-L - ", "unexpected argument -", 2);
    err("--set 1 2 3 4", "unexpected argument 4", 2);
    err("-A -t 192.168.0.1:80 -p -- -s", "unexpected argument -s", 2);
}

#[test]
fn error_unknown_option_and_missing_argument() {
    // After the command: popt's own message, status 255, not fatal under -R.
    let e = p("-A -t 192.168.0.1:80 --bogus").unwrap_err();
    assert_eq!(e.message, "--bogus: unknown option");
    assert_eq!(e.exit_code, 255);
    assert_eq!(e.kind, ErrorKind::Popt);
    err("-Lq", "-Lq: unknown option", 255);
    err("-L --nope=1", "--nope=1: unknown option", 255);
    // popt 1.19: a value for an option that takes none.
    err(
        "-L --numeric=x",
        "--numeric=x: option does not take an argument",
        255,
    );
    err("-L -n=", "-n=: option does not take an argument", 255);
    err("-Ln=x", "-Ln=x: option does not take an argument", 255);
    err("-A=", TRY, 255);
    err("-L --num", "--num: unknown option", 255);
    err("-A -t", "-t: missing argument", 255);
    err("-A --scheduler", "--scheduler: missing argument", 255);
    // Before any command: only the try-help line.
    err("--bogus", TRY, 255);
    err("-t 1.2.3.4:80 -A", TRY, 255);
    err("-n -L", TRY, 255);
    err("foo", TRY, 255);
    err("--start-daemon", TRY, 255);
    let e = parse_args_as("xvsadm", &["-q"], &NumericOnly).unwrap_err();
    assert_eq!(
        e.message,
        "Try `xvsadm -h' or 'xvsadm --help' for more information."
    );
    assert_eq!(e.kind, ErrorKind::TryHelp);
    assert!(e.is_fatal());
}

#[test]
fn required_values_take_dash_words() {
    // A required value is the next word, even when it looks like an option.
    err(
        "-A -t -s",
        "illegal virtual server address[:port] specified",
        2,
    );
    err(
        "-a -t 1.2.3.4:80 -r 10.0.0.2 -w -x",
        "illegal weight specified",
        2,
    );
}

// ----------------------------------------------------------------------------
// -R input
// ----------------------------------------------------------------------------

#[test]
fn restore_lines() {
    let input = "-A -t 192.168.0.1:80 -s rr\n\
                 \n\
                 ipvsadm -a -t 192.168.0.1:80 -r 10.0.0.2:80 -m -w 2\n\
                 \t  \r\n\
                 -a -t 192.168.0.1:80 -r 10.0.0.3 -g -w 1   \n\
                 ipvsadm\n\
                 -C";
    let cmds = parse_restore(input, &TestNames).unwrap();
    let mut svc = ServiceConfig::new(vip());
    svc.scheduler = SchedulerKind::Rr;
    let mut d2 = DestConfig::new(v4(10, 0, 0, 2), 80);
    d2.fwd = FwdMethod::Masq;
    d2.weight = 2;
    let d3 = DestConfig::new(v4(10, 0, 0, 3), 80);
    assert_eq!(
        cmds,
        vec![
            Command::AddService(svc),
            Command::AddDest(vip(), d2),
            Command::AddDest(vip(), d3),
            Command::Clear,
        ]
    );
}

#[test]
fn restore_reports_the_bad_line() {
    let input = "-A -t 192.168.0.1:80\n-a -t 192.168.0.1:80 -r 10.0.0.2\n-a -t 192.168.0.1:80 -r 10.0.0.3 -w 70000\n-C\n";
    let e = parse_restore(input, &TestNames).unwrap_err();
    assert_eq!(e.line, 3);
    assert_eq!(e.error.message, "illegal weight specified");
    assert_eq!(e.error.exit_code, 2);
    assert_eq!(e.to_string(), "illegal weight specified");
}

#[test]
fn restore_line_numbers_count_blank_lines() {
    let e = parse_restore("\n\n-C\n\n-Q\n", &TestNames).unwrap_err();
    assert_eq!(e.line, 5);
    assert_eq!(e.error.message, TRY);
}

#[test]
fn restore_has_no_comments_and_no_nesting() {
    // ipvsadm 1.31's '#' handling never triggers: a comment is plain words.
    let e = parse_restore("# saved rules\n-C\n", &TestNames).unwrap_err();
    assert_eq!((e.line, e.error.message.as_str()), (1, TRY));
    let e = parse_restore("-C # flush\n", &TestNames).unwrap_err();
    assert_eq!(e.error.message, "unexpected argument #");
    let e = parse_restore("-C\n-R\n", &TestNames).unwrap_err();
    assert_eq!(
        (e.line, e.error.message.as_str(), e.error.exit_code),
        (2, TRY, 255)
    );
}

#[test]
fn restore_lines_go_on_after_non_fatal_errors() {
    let out = parse_restore_lines(
        "ipvsadm",
        "-A -t 1.2.3.4:80 -s nope\n-C --bogus\n-C\n-A -t 1.2.3.4\n-C\n",
        &TestNames,
    );
    let lines: Vec<usize> = out.iter().map(|l| l.line).collect();
    assert_eq!(lines, vec![1, 2, 3, 4]);
    assert_eq!(out[0].result.as_ref().unwrap_err().kind, ErrorKind::Kernel);
    assert_eq!(
        out[1].result.as_ref().unwrap_err().message,
        "--bogus: unknown option"
    );
    assert_eq!(out[2].result, Ok(Command::Clear));
    assert!(out[3].result.as_ref().unwrap_err().is_fatal());
}

// ----------------------------------------------------------------------------
// Round trips and robustness
// ----------------------------------------------------------------------------

#[test]
fn to_argv_round_trips() {
    for line in [
        "-A -t 192.168.0.1:80",
        "-E -u 10.0.0.1:53 -s sh -b sh-port -p 60 -M 255.255.255.0 -o --pe sip",
        "-A -t [2001:db8::1]:443 -p 30 -M 48",
        "-A -f 9 -6 -p",
        "-D --sctp-service 10.0.0.1:9",
        "-C",
        "-a -t 192.168.0.1:80 -r 10.0.0.2:8080 -m -w 3 -x 10 -y 5",
        "-e -t 192.168.0.1:80 -r 10.0.0.2 -i --tun-type gue --tun-port 6080 --tun-remcsum",
        "-d -t 192.168.0.1:80 -r 10.0.0.2:81",
        "-Z -f 1",
        "-Z",
        "--set 1 2 3",
        "--start-daemon backup --syncid 4 --mcast-group ff02::1 --mcast-port 9 --mcast-ttl 3 --sync-maxlen 900",
        "--stop-daemon master",
        "-L -t 1.2.3.4:80 -n --exact --stats --rate --thresholds --persistent-conn --tun-info --nosort",
        "-L -c -n",
        "-L --timeout",
        "-L --daemon",
        "-S -n",
        "-R",
        "-h",
        "-v",
    ] {
        let c = ok(line);
        let argv = to_argv(&c);
        assert_eq!(parse_args(&argv, &NumericOnly), Ok(c.clone()), "{line} -> {argv:?}");
    }
}

fn arb_word() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("-A".to_string()),
        Just("-a".to_string()),
        Just("-L".to_string()),
        Just("-t".to_string()),
        Just("-r".to_string()),
        Just("-p".to_string()),
        Just("-M".to_string()),
        Just("-6".to_string()),
        Just("-f".to_string()),
        Just("-b".to_string()),
        Just("--set".to_string()),
        Just("--tun-type".to_string()),
        Just("--".to_string()),
        Just("-".to_string()),
        Just("1.2.3.4:80".to_string()),
        Just("[::1]:80".to_string()),
        Just("gue".to_string()),
        "[-=:\\[\\]a-zA-Z0-9.,]{0,12}",
        any::<String>(),
    ]
}

proptest! {
    #[test]
    fn arbitrary_argv_never_panics(args in proptest::collection::vec(arb_word(), 0..8)) {
        let r = parse_args(&args, &TestNames);
        if let Err(e) = r {
            prop_assert!(e.exit_code == 2 || e.exit_code == 255);
        }
    }

    #[test]
    fn arbitrary_restore_input_never_panics(input in any::<String>()) {
        let _ = parse_restore(&input, &TestNames);
    }

    #[test]
    fn parsed_commands_round_trip(args in proptest::collection::vec(arb_word(), 0..8)) {
        if let Ok(c) = parse_args(&args, &NumericOnly) {
            prop_assert_eq!(parse_args(&to_argv(&c), &NumericOnly), Ok(c));
        }
    }
}
