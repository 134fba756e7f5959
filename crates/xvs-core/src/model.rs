//! The LVS object model: what `ipvsadm -A/-E/-a/-e` can express.
//!
//! These are plain values (configuration) plus the runtime state the kernel keeps
//! next to them (connection counts, flags, counters). The rule table in
//! [`crate::table`] owns them and applies the kernel's validation.

use std::fmt;
use std::net::IpAddr;

use crate::sched::SchedulerKind;
use crate::stats::{Counters, Rates};

/// Transport protocol of a virtual service (IPPROTO_* values in the kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The IP protocol number (IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP).
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
        }
    }

    pub fn from_number(n: u8) -> Option<Protocol> {
        match n {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            132 => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// Upper-case name as `ipvsadm -L` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Address family (AF_INET / AF_INET6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Inet,
    Inet6,
}

impl Family {
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::Inet,
            IpAddr::V6(_) => Family::Inet6,
        }
    }
}

/// Identity of a virtual service: `-t|-u|--sctp-service addr:port` or `-f mark [-6]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKey {
    Addr {
        protocol: Protocol,
        addr: IpAddr,
        port: u16,
    },
    Fwmark {
        family: Family,
        mark: u32,
    },
}

impl ServiceKey {
    pub fn family(&self) -> Family {
        match self {
            ServiceKey::Addr { addr, .. } => Family::of(addr),
            ServiceKey::Fwmark { family, .. } => *family,
        }
    }

    /// The service port; 0 for fwmark services and all-port services.
    pub fn port(&self) -> u16 {
        match self {
            ServiceKey::Addr { port, .. } => *port,
            ServiceKey::Fwmark { .. } => 0,
        }
    }

    pub fn fwmark(&self) -> u32 {
        match self {
            ServiceKey::Addr { .. } => 0,
            ServiceKey::Fwmark { mark, .. } => *mark,
        }
    }

    pub fn protocol(&self) -> Option<Protocol> {
        match self {
            ServiceKey::Addr { protocol, .. } => Some(*protocol),
            ServiceKey::Fwmark { .. } => None,
        }
    }
}

/// Scheduler flags (`-b`). The kernel stores them as IP_VS_SVC_F_SCHED1..3;
/// sh and mh give SCHED1 the meaning "fallback" and SCHED2 "port".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SchedFlags(pub u32);

impl SchedFlags {
    pub const SCHED1: u32 = 0x0008;
    pub const SCHED2: u32 = 0x0010;
    pub const SCHED3: u32 = 0x0020;
    pub const MASK: u32 = Self::SCHED1 | Self::SCHED2 | Self::SCHED3;

    /// sh-fallback / mh-fallback: skip unavailable or overloaded servers.
    pub fn fallback(self) -> bool {
        self.0 & Self::SCHED1 != 0
    }
    /// sh-port / mh-port: hash the source port too.
    pub fn port(self) -> bool {
        self.0 & Self::SCHED2 != 0
    }
}

/// Persistence (`-p [timeout]`, `-M netmask`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Persistence {
    /// Template timeout in seconds (ipvsadm default 360).
    pub timeout: u32,
    /// For IPv4 the mask as a host-order integer, so `Ipv4Addr::from(netmask)`
    /// is the dotted quad ipvsadm prints (0xffffff00 = 255.255.255.0); for
    /// IPv6 a prefix length 1..=128.
    pub netmask: u32,
}

impl Persistence {
    pub const DEFAULT_TIMEOUT: u32 = 360;

    /// Full-host granularity for the family (255.255.255.255 or /128).
    pub fn default_netmask(family: Family) -> u32 {
        match family {
            Family::Inet => 0xffff_ffff,
            Family::Inet6 => 128,
        }
    }
}

/// A virtual service's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceConfig {
    pub key: ServiceKey,
    pub scheduler: SchedulerKind,
    pub sched_flags: SchedFlags,
    pub persistence: Option<Persistence>,
    /// `-o`: one-packet scheduling (UDP and fwmark services only).
    pub one_packet: bool,
    /// `--pe NAME`: persistence engine (only "sip" exists in the kernel).
    pub pe_name: Option<String>,
}

impl ServiceConfig {
    /// A service with ipvsadm's defaults: wlc, no persistence, no flags.
    pub fn new(key: ServiceKey) -> ServiceConfig {
        ServiceConfig {
            key,
            scheduler: SchedulerKind::Wlc,
            sched_flags: SchedFlags::default(),
            persistence: None,
            one_packet: false,
            pe_name: None,
        }
    }

    /// The kernel's svc->flags word (PERSISTENT, ONEPACKET, SCHED1..3; HASHED is
    /// implied for a service in the table).
    pub fn kernel_flags(&self) -> u32 {
        let mut f = 0x0002; // IP_VS_SVC_F_HASHED
        if self.persistence.is_some() {
            f |= 0x0001;
        }
        if self.one_packet {
            f |= 0x0004;
        }
        f | (self.sched_flags.0 & SchedFlags::MASK)
    }
}

/// Packet forwarding method (IP_VS_CONN_F_FWD_MASK values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FwdMethod {
    /// `-m`: masquerading (NAT).
    Masq,
    /// The real server is the director itself.
    Local,
    /// `-i`: IP tunnelling.
    Tunnel,
    /// `-g`: direct routing (the default).
    Route,
    Bypass,
}

impl FwdMethod {
    /// Name in the Forward column of `ipvsadm -L`.
    pub fn name(self) -> &'static str {
        match self {
            FwdMethod::Masq => "Masq",
            FwdMethod::Local => "Local",
            FwdMethod::Tunnel => "Tunnel",
            FwdMethod::Route => "Route",
            FwdMethod::Bypass => "Bypass",
        }
    }

    /// The kernel's IP_VS_CONN_F_* value.
    pub fn kernel_value(self) -> u32 {
        match self {
            FwdMethod::Masq => 0,
            FwdMethod::Local => 1,
            FwdMethod::Tunnel => 2,
            FwdMethod::Route => 3,
            FwdMethod::Bypass => 4,
        }
    }

    /// Every method but NAT sees only client->server packets (the kernel sets
    /// IP_VS_CONN_F_NOOUTPUT for all of them; the TCP state machine then uses
    /// the INPUT-ONLY table).
    pub fn input_only(self) -> bool {
        self != FwdMethod::Masq
    }
}

/// Tunnel encapsulation (`--tun-type`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TunType {
    #[default]
    Ipip,
    Gue,
    Gre,
}

impl TunType {
    pub fn name(self) -> &'static str {
        match self {
            TunType::Ipip => "ipip",
            TunType::Gue => "gue",
            TunType::Gre => "gre",
        }
    }
}

/// Tunnel checksum option (`--tun-nocsum`, `--tun-csum`, `--tun-remcsum`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TunCsum {
    #[default]
    NoCsum,
    Csum,
    RemCsum,
}

/// A real server's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DestConfig {
    pub addr: IpAddr,
    /// Forced to the service port for DR and TUN by ipvsadm/the kernel.
    pub port: u16,
    pub fwd: FwdMethod,
    /// 0..=65535; 0 means quiescent (no new connections).
    pub weight: u32,
    /// `-x`: upper connection threshold, 0 = none.
    pub u_threshold: u32,
    /// `-y`: lower connection threshold, 0 = none.
    pub l_threshold: u32,
    pub tun_type: TunType,
    /// `--tun-port` (GUE/GRE destination port), 0 when unused.
    pub tun_port: u16,
    pub tun_csum: TunCsum,
}

impl DestConfig {
    /// A real server with ipvsadm's defaults: DR (`-g`), weight 1, no thresholds.
    pub fn new(addr: IpAddr, port: u16) -> DestConfig {
        DestConfig {
            addr,
            port,
            fwd: FwdMethod::Route,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            tun_type: TunType::Ipip,
            tun_port: 0,
            tun_csum: TunCsum::NoCsum,
        }
    }
}

/// Stable identity of a real server inside the rule table, independent of its
/// position in the service's list. Schedulers keep these in their caches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestId(pub u32);

/// A real server as the kernel holds it: configuration plus runtime state.
#[derive(Clone, Debug, PartialEq)]
pub struct Dest {
    pub id: DestId,
    pub cfg: DestConfig,
    /// IP_VS_DEST_F_AVAILABLE: the server is in a service's list (cleared when
    /// it is removed, while connections may still point at it).
    pub available: bool,
    /// IP_VS_DEST_F_OVERLOAD: set by the threshold rule, see [`Dest::update_overload`].
    pub overloaded: bool,
    /// The last non-zero weight this server had (the kernel's `last_weight`,
    /// used by mh so a quiescent server keeps its table slots).
    pub last_weight: u32,
    pub active_conns: u32,
    pub inact_conns: u32,
    pub persist_conns: u32,
    pub stats: Counters,
    /// Rates from the estimator, refreshed every 2 s by its owner.
    pub rates: Rates,
}

impl Dest {
    pub fn new(id: DestId, cfg: DestConfig) -> Dest {
        Dest {
            id,
            cfg,
            available: true,
            overloaded: false,
            last_weight: cfg.weight,
            active_conns: 0,
            inact_conns: 0,
            persist_conns: 0,
            stats: Counters::default(),
            rates: Rates::default(),
        }
    }

    pub fn weight(&self) -> u32 {
        self.cfg.weight
    }

    /// The kernel's ip_vs_dest_totalconns(): active + inactive.
    pub fn total_conns(&self) -> u32 {
        self.active_conns + self.inact_conns
    }

    /// The load figure used by lc, wlc, fo...: (active << 8) + inactive.
    pub fn overhead(&self) -> u64 {
        ((self.active_conns as u64) << 8) + self.inact_conns as u64
    }

    /// Threshold rule after a connection is bound (`bound = true`) or unbound:
    /// set when active+inactive >= upper; cleared below lower, or below 3/4 of
    /// upper when no lower threshold is set, or at once when neither is set.
    pub fn update_overload(&mut self, bound: bool) {
        let total = self.total_conns() as u64;
        let upper = self.cfg.u_threshold as u64;
        let lower = self.cfg.l_threshold as u64;
        if bound {
            if upper != 0 && total >= upper {
                self.overloaded = true;
            }
        } else if lower != 0 {
            if total < lower {
                self.overloaded = false;
            }
        } else if upper != 0 {
            if total * 4 < upper * 3 {
                self.overloaded = false;
            }
        } else {
            self.overloaded = false;
        }
    }
}

/// A 5-tuple as seen on the wire, used to schedule a new connection and to key
/// connection lookups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flow {
    pub protocol: Protocol,
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
}
