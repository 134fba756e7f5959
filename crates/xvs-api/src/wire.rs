//! The JSON documents of the xvsd API, and their conversions to and from the
//! core's snapshots ([`xvs_core::snapshot`]). Field names are part of the
//! stable API: add fields, never rename or repurpose them.

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};
use xvs_core::ipvsadm::{DaemonConfig, DaemonState, TimeoutSet};
use xvs_core::model::{
    DestConfig, Family, FwdMethod, Persistence, Protocol, SchedFlags, ServiceConfig, ServiceKey,
    TunCsum, TunType,
};
use xvs_core::sched::SchedulerKind;
use xvs_core::snapshot::{ConnEntry, DestEntry, ServiceEntry, TableSnapshot};
use xvs_core::stats::{Counters, Rates};

/// `GET /v1/status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// xvsd's version.
    pub version: String,
    /// The instance name (selects the pin directory and state directory).
    pub name: String,
    /// Interfaces the datapath is attached to.
    pub interfaces: Vec<Interface>,
    /// Where the datapath's maps and links are pinned.
    pub pin_dir: String,
    /// Whether this run adopted a datapath left by a previous run.
    pub adopted: bool,
    /// Live entries in the connection table (connections, not templates).
    pub connections: u64,
    /// Seconds since this xvsd started.
    pub uptime_secs: u64,
    /// Packets by what the datapath did with them (`passed`, `forwarded`, ...).
    pub packets: Vec<(String, u64)>,
    /// The IPVS sysctls in force (`xvsd --sysctl`), as the kernel shows
    /// them under `net.ipv4.vs`.
    #[serde(default)]
    pub sysctls: Vec<(String, u32)>,
}

/// An interface the datapath is attached to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    /// `xdp` (native), `xdp-generic`, or `tc`.
    pub mode: String,
}

/// `GET /v1/services`: the table with counters and rates, in the kernel's
/// order (newest real server first).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceList {
    pub services: Vec<Service>,
    /// The connection hash size shown in `-L`'s header.
    pub conn_tab_size: u32,
}

/// A virtual service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// `tcp`, `udp`, `sctp`, or `fwmark`.
    pub protocol: String,
    /// `inet` or `inet6`.
    pub family: String,
    /// The virtual address (absent for fwmark services).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
    /// The virtual port, 0 = all ports (absent for fwmark services).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The firewall mark (fwmark services only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<u32>,
    /// Scheduler name as `-s` takes it.
    pub scheduler: String,
    /// Scheduler flags: `flag-1`, `flag-2`, `flag-3`.
    #[serde(default)]
    pub sched_flags: Vec<String>,
    /// `-p`/`-M`; absent when not persistent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<PersistenceDoc>,
    /// `-o`.
    #[serde(default)]
    pub one_packet: bool,
    /// `--pe`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pe: Option<String>,
    #[serde(default)]
    pub stats: Stats,
    #[serde(default)]
    pub rates: RateDoc,
    pub reals: Vec<Real>,
}

/// Persistence of a service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistenceDoc {
    /// Seconds.
    pub timeout: u32,
    /// IPv4: a dotted mask (`255.255.255.0`); IPv6: a prefix length (`64`).
    pub netmask: String,
}

/// A real server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Real {
    pub address: IpAddr,
    pub port: u16,
    /// `masq`, `route`, `tunnel`, `local` or `bypass`.
    pub forward: String,
    pub weight: u32,
    /// `-x`, 0 = none.
    #[serde(default)]
    pub upper_threshold: u32,
    /// `-y`, 0 = none.
    #[serde(default)]
    pub lower_threshold: u32,
    /// Tunnel settings (forward = `tunnel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<Tunnel>,
    #[serde(default)]
    pub active_conns: u32,
    #[serde(default)]
    pub inactive_conns: u32,
    #[serde(default)]
    pub persistent_conns: u32,
    #[serde(default)]
    pub stats: Stats,
    #[serde(default)]
    pub rates: RateDoc,
}

/// `--tun-type`, `--tun-port`, `--tun-nocsum|--tun-csum|--tun-remcsum`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tunnel {
    /// `ipip`, `gue` or `gre`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub port: u16,
    /// `nocsum`, `csum` or `remcsum`.
    #[serde(default = "nocsum")]
    pub csum: String,
}

fn nocsum() -> String {
    "nocsum".into()
}

/// Counters since the service or real server was added (or last zeroed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

/// Rates from the 2-second estimator, per second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateDoc {
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}

/// `GET /v1/connections`: connections and persistence templates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnList {
    pub connections: Vec<Conn>,
}

/// One line of `-Lc`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conn {
    /// `TCP`, `UDP`, `SCTP`, or `IP` (templates of fwmark services).
    pub protocol: String,
    pub client: IpAddr,
    pub client_port: u16,
    #[serde(rename = "virtual")]
    pub virtual_addr: IpAddr,
    pub virtual_port: u16,
    pub destination: IpAddr,
    pub destination_port: u16,
    /// `ESTABLISHED`, `SYN_RECV`, ..., `UDP`, or `NONE` (templates).
    pub state: String,
    /// Seconds until it expires.
    pub expires: u64,
}

/// `GET /v1/timeouts` (seconds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}

/// `GET /v1/daemons`: the connection-sync daemons.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonList {
    pub daemons: Vec<Daemon>,
}

/// One sync daemon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Daemon {
    /// `master` or `backup`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcast_interface: Option<String>,
    pub syncid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_maxlen: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcast_group: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcast_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcast_ttl: Option<u8>,
}

/// `POST /v1/commands`: ipvsadm command lines (without the program name),
/// applied in order as one transaction: all or none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandsRequest {
    pub commands: Vec<Vec<String>>,
}

/// The answer to a successful [`CommandsRequest`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandsResponse {
    /// How many commands were applied (all of them).
    pub applied: usize,
}

/// The body of every error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDoc {
    pub error: ApiError,
}

/// What went wrong.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// What ipvsadm would print (e.g. `Service already exists`).
    pub message: String,
    /// A precise description of what was wrong.
    pub detail: String,
    /// The errno the kernel would have answered, 0 when not a table error.
    #[serde(default)]
    pub errno: i32,
    /// For [`CommandsRequest`]: the 0-based index of the refused command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
}

// ---------------------------------------------------------------------------
// Core -> wire
// ---------------------------------------------------------------------------

fn family_name(f: Family) -> &'static str {
    match f {
        Family::Inet => "inet",
        Family::Inet6 => "inet6",
    }
}

fn proto_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

const FWD: [(FwdMethod, &str); 5] = [
    (FwdMethod::Masq, "masq"),
    (FwdMethod::Local, "local"),
    (FwdMethod::Tunnel, "tunnel"),
    (FwdMethod::Route, "route"),
    (FwdMethod::Bypass, "bypass"),
];

const CSUM: [(TunCsum, &str); 3] = [
    (TunCsum::NoCsum, "nocsum"),
    (TunCsum::Csum, "csum"),
    (TunCsum::RemCsum, "remcsum"),
];

const TUN: [TunType; 3] = [TunType::Ipip, TunType::Gue, TunType::Gre];

const SCHED_FLAGS: [(u32, &str); 3] = [
    (SchedFlags::SCHED1, "flag-1"),
    (SchedFlags::SCHED2, "flag-2"),
    (SchedFlags::SCHED3, "flag-3"),
];

impl From<Counters> for Stats {
    fn from(c: Counters) -> Stats {
        Stats {
            conns: c.conns,
            inpkts: c.inpkts,
            outpkts: c.outpkts,
            inbytes: c.inbytes,
            outbytes: c.outbytes,
        }
    }
}

impl From<Stats> for Counters {
    fn from(c: Stats) -> Counters {
        Counters {
            conns: c.conns,
            inpkts: c.inpkts,
            outpkts: c.outpkts,
            inbytes: c.inbytes,
            outbytes: c.outbytes,
        }
    }
}

impl From<Rates> for RateDoc {
    fn from(r: Rates) -> RateDoc {
        RateDoc {
            cps: r.cps,
            inpps: r.inpps,
            outpps: r.outpps,
            inbps: r.inbps,
            outbps: r.outbps,
        }
    }
}

impl From<RateDoc> for Rates {
    fn from(r: RateDoc) -> Rates {
        Rates {
            cps: r.cps,
            inpps: r.inpps,
            outpps: r.outpps,
            inbps: r.inbps,
            outbps: r.outbps,
        }
    }
}

impl ServiceList {
    /// The document for a snapshot.
    pub fn from_snapshot(snap: &TableSnapshot) -> ServiceList {
        ServiceList {
            services: snap.services.iter().map(Service::from_entry).collect(),
            conn_tab_size: snap.conn_tab_size,
        }
    }

    /// Back to a snapshot, for the formatter. Fails naming the first field
    /// that does not make sense.
    pub fn to_snapshot(&self) -> Result<TableSnapshot, String> {
        Ok(TableSnapshot {
            services: self
                .services
                .iter()
                .map(Service::to_entry)
                .collect::<Result<_, _>>()?,
            conn_tab_size: self.conn_tab_size,
        })
    }
}

impl Service {
    fn from_entry(e: &ServiceEntry) -> Service {
        let c = &e.cfg;
        let (protocol, family, address, port, fwmark) = match c.key {
            ServiceKey::Addr {
                protocol,
                addr,
                port,
            } => (
                proto_name(protocol),
                family_name(Family::of(&addr)),
                Some(addr),
                Some(port),
                None,
            ),
            ServiceKey::Fwmark { family, mark } => {
                ("fwmark", family_name(family), None, None, Some(mark))
            }
        };
        let v6 = family == "inet6";
        Service {
            protocol: protocol.into(),
            family: family.into(),
            address,
            port,
            fwmark,
            scheduler: c.scheduler.name().into(),
            sched_flags: SCHED_FLAGS
                .iter()
                .filter(|(bit, _)| c.sched_flags.0 & bit != 0)
                .map(|(_, n)| (*n).into())
                .collect(),
            persistence: c.persistence.map(|p| PersistenceDoc {
                timeout: p.timeout,
                netmask: if v6 {
                    p.netmask.to_string()
                } else {
                    Ipv4Addr::from(p.netmask).to_string()
                },
            }),
            one_packet: c.one_packet,
            pe: c.pe_name.clone(),
            stats: e.stats.into(),
            rates: e.rates.into(),
            reals: e.dests.iter().map(Real::from_entry).collect(),
        }
    }

    fn to_entry(&self) -> Result<ServiceEntry, String> {
        let family = match self.family.as_str() {
            "inet" => Family::Inet,
            "inet6" => Family::Inet6,
            f => return Err(format!("unknown family '{f}'")),
        };
        let key = if self.protocol == "fwmark" {
            ServiceKey::Fwmark {
                family,
                mark: self.fwmark.ok_or("fwmark service without 'fwmark'")?,
            }
        } else {
            let protocol = match self.protocol.as_str() {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                "sctp" => Protocol::Sctp,
                p => return Err(format!("unknown protocol '{p}'")),
            };
            ServiceKey::Addr {
                protocol,
                addr: self.address.ok_or("service without 'address'")?,
                port: self.port.ok_or("service without 'port'")?,
            }
        };
        let scheduler = SchedulerKind::ALL
            .into_iter()
            .find(|k| k.name() == self.scheduler)
            .ok_or_else(|| format!("unknown scheduler '{}'", self.scheduler))?;
        let mut flags = 0;
        for f in &self.sched_flags {
            let (bit, _) = SCHED_FLAGS
                .iter()
                .find(|(_, n)| n == f)
                .ok_or_else(|| format!("unknown scheduler flag '{f}'"))?;
            flags |= bit;
        }
        let persistence = match &self.persistence {
            None => None,
            Some(p) => Some(Persistence {
                timeout: p.timeout,
                netmask: if family == Family::Inet6 {
                    p.netmask
                        .parse()
                        .map_err(|_| format!("bad IPv6 prefix '{}'", p.netmask))?
                } else {
                    u32::from(
                        p.netmask
                            .parse::<Ipv4Addr>()
                            .map_err(|_| format!("bad netmask '{}'", p.netmask))?,
                    )
                },
            }),
        };
        Ok(ServiceEntry {
            cfg: ServiceConfig {
                key,
                scheduler,
                sched_flags: SchedFlags(flags),
                persistence,
                one_packet: self.one_packet,
                pe_name: self.pe.clone(),
            },
            stats: self.stats.into(),
            rates: self.rates.into(),
            dests: self
                .reals
                .iter()
                .map(Real::to_entry)
                .collect::<Result<_, _>>()?,
        })
    }
}

impl Real {
    fn from_entry(e: &DestEntry) -> Real {
        let c = &e.cfg;
        let forward = FWD.iter().find(|(m, _)| *m == c.fwd).map(|(_, n)| *n);
        let tunnel = (c.fwd == FwdMethod::Tunnel).then(|| Tunnel {
            kind: c.tun_type.name().into(),
            port: c.tun_port,
            csum: CSUM
                .iter()
                .find(|(m, _)| *m == c.tun_csum)
                .map(|(_, n)| (*n).into())
                .unwrap_or_else(nocsum),
        });
        Real {
            address: c.addr,
            port: c.port,
            forward: forward.unwrap_or("route").into(),
            weight: c.weight,
            upper_threshold: c.u_threshold,
            lower_threshold: c.l_threshold,
            tunnel,
            active_conns: e.active_conns,
            inactive_conns: e.inact_conns,
            persistent_conns: e.persist_conns,
            stats: e.stats.into(),
            rates: e.rates.into(),
        }
    }

    fn to_entry(&self) -> Result<DestEntry, String> {
        let mut cfg = DestConfig::new(self.address, self.port);
        cfg.fwd = FWD
            .iter()
            .find(|(_, n)| *n == self.forward)
            .map(|(m, _)| *m)
            .ok_or_else(|| format!("unknown forwarding method '{}'", self.forward))?;
        cfg.weight = self.weight;
        cfg.u_threshold = self.upper_threshold;
        cfg.l_threshold = self.lower_threshold;
        if let Some(t) = &self.tunnel {
            cfg.tun_type = TUN
                .into_iter()
                .find(|k| k.name() == t.kind)
                .ok_or_else(|| format!("unknown tunnel type '{}'", t.kind))?;
            cfg.tun_port = t.port;
            cfg.tun_csum = CSUM
                .iter()
                .find(|(_, n)| *n == t.csum)
                .map(|(m, _)| *m)
                .ok_or_else(|| format!("unknown tunnel checksum '{}'", t.csum))?;
        }
        Ok(DestEntry {
            cfg,
            active_conns: self.active_conns,
            inact_conns: self.inactive_conns,
            persist_conns: self.persistent_conns,
            stats: self.stats.into(),
            rates: self.rates.into(),
        })
    }
}

impl From<&ConnEntry> for Conn {
    fn from(c: &ConnEntry) -> Conn {
        Conn {
            protocol: c.protocol.clone(),
            client: c.caddr,
            client_port: c.cport,
            virtual_addr: c.vaddr,
            virtual_port: c.vport,
            destination: c.daddr,
            destination_port: c.dport,
            state: c.state.clone(),
            expires: c.expires,
        }
    }
}

impl From<&Conn> for ConnEntry {
    fn from(c: &Conn) -> ConnEntry {
        ConnEntry {
            protocol: c.protocol.clone(),
            caddr: c.client,
            cport: c.client_port,
            vaddr: c.virtual_addr,
            vport: c.virtual_port,
            daddr: c.destination,
            dport: c.destination_port,
            state: c.state.clone(),
            expires: c.expires,
            pe_name: None,
            pe_data: None,
        }
    }
}

impl From<TimeoutSet> for Timeouts {
    fn from(t: TimeoutSet) -> Timeouts {
        Timeouts {
            tcp: t.tcp,
            tcp_fin: t.tcp_fin,
            udp: t.udp,
        }
    }
}

impl From<Timeouts> for TimeoutSet {
    fn from(t: Timeouts) -> TimeoutSet {
        TimeoutSet {
            tcp: t.tcp,
            tcp_fin: t.tcp_fin,
            udp: t.udp,
        }
    }
}

impl From<&DaemonConfig> for Daemon {
    fn from(d: &DaemonConfig) -> Daemon {
        Daemon {
            state: match d.state {
                DaemonState::Master => "master",
                DaemonState::Backup => "backup",
            }
            .into(),
            mcast_interface: d.mcast_ifn.clone(),
            syncid: d.syncid,
            sync_maxlen: d.sync_maxlen,
            mcast_group: d.mcast_group,
            mcast_port: d.mcast_port,
            mcast_ttl: d.mcast_ttl,
        }
    }
}

impl TryFrom<&Daemon> for DaemonConfig {
    type Error = String;
    fn try_from(d: &Daemon) -> Result<DaemonConfig, String> {
        Ok(DaemonConfig {
            state: match d.state.as_str() {
                "master" => DaemonState::Master,
                "backup" => DaemonState::Backup,
                s => return Err(format!("unknown daemon state '{s}'")),
            },
            mcast_ifn: d.mcast_interface.clone(),
            syncid: d.syncid,
            sync_maxlen: d.sync_maxlen,
            mcast_group: d.mcast_group,
            mcast_port: d.mcast_port,
            mcast_ttl: d.mcast_ttl,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xvs_core::ipvsadm::{parse_restore, NumericOnly};
    use xvs_core::table::IpvsTable;

    /// Every kind of service and real server survives core -> JSON -> core.
    #[test]
    fn snapshot_round_trips_through_json() {
        let rules = "\
-A -t 198.18.0.100:80 -s wrr
-a -t 198.18.0.100:80 -r 198.18.1.10:8080 -m -w 2 -x 100 -y 50
-a -t 198.18.0.100:80 -r 198.18.1.11:8080 -m -w 1
-A -u 198.18.0.100:53 -s sh -b sh-fallback,sh-port -o
-a -u 198.18.0.100:53 -r 198.18.1.12:53 -g -w 0
-A -f 7 -s rr -p 600 -M 255.255.255.0
-a -f 7 -r 198.18.1.13:0 -i --tun-type gue --tun-port 6080 --tun-csum
-A -f 8 -6 -s mh -p 30 -M 64
-a -f 8 -6 -r [2001:db8::1]:0 -i
-A -t [2001:db8::100]:443 -s lc --pe sip -p
";
        let cmds = parse_restore(rules, &NumericOnly).expect("rules parse");
        let mut t = IpvsTable::new();
        t.apply_all(&cmds).expect("rules apply");
        let snap = t.snapshot();
        let doc = ServiceList::from_snapshot(&snap);
        let json = serde_json::to_string_pretty(&doc).unwrap();
        let back: ServiceList = serde_json::from_str(&json).unwrap();
        assert_eq!(back.to_snapshot().unwrap(), snap, "{json}");
        assert!(json.contains("\"scheduler\": \"wrr\""), "{json}");
        assert!(json.contains("\"netmask\": \"255.255.255.0\""), "{json}");
        assert!(json.contains("\"netmask\": \"64\""), "{json}");
    }

    #[test]
    fn nonsense_names_the_field() {
        let mut doc = ServiceList {
            services: vec![],
            conn_tab_size: 4096,
        };
        let json = r#"{"protocol":"tcp","family":"inet","address":"198.18.0.1","port":80,
            "scheduler":"fastest","reals":[]}"#;
        doc.services.push(serde_json::from_str(json).unwrap());
        assert_eq!(
            doc.to_snapshot().unwrap_err(),
            "unknown scheduler 'fastest'"
        );
    }
}
