//! The control plane: derives the map entries from an [`IpvsTable`], reads
//! counters back, and sweeps expired connections.
//!
//! [`Datapath::sync`] diffs the table against what it last wrote. Services
//! keep their id, real servers their slot (one per identity: service, address,
//! port; the maps' real server id, which is not the core's `DestId`), so
//! established connections (keyed by tuple, pointing at a slot) are
//! untouched by adds, edits and removals, and by a daemon restart that
//! rebuilds its table with other `DestId`s (see [`Datapath::adopt_state`]). The rr/wrr state is adjusted the way the kernel's
//! scheduler hooks do (rr: del_dest of the cursor steps back; wrr:
//! dest_changed resets the cursor and re-derives cw/mw/di), read and written
//! under the state's spin lock (`BPF_F_LOCK`). sh/dh/mh tables are copied
//! from xvs-core's computed tables.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap as StdMap, HashSet};
use std::net::IpAddr;

use aya::maps::{MapError, PerCpuValues};
use xvs_core::conn::Timeouts;
use xvs_core::model::{
    Dest, DestConfig, DestId, Family, FwdMethod, Protocol, ServiceKey, TunCsum, TunType,
};
use xvs_core::persist::Sysctls;
use xvs_core::sched::{Sched, SchedulerKind};
use xvs_core::snapshot::TableSnapshot;
use xvs_core::stats::Counters as CoreCounters;
use xvs_core::table::{IpvsTable, Service};

use crate::maps::{
    addr_words, name, Config, ConnKey, DestList, DestRef, Htab, Real, RealState, SchedState, Stats,
    SvcInfo, SvcKey, Tpl, AF_INET, HTAB_SLOTS, LIVE_F_AVAILABLE, LIVE_F_REAL, LIVE_SVC_SHIFT,
    MAX_DESTS, MAX_REALS, MAX_SERVICES, RAND_SLOTS, REAL_F_AVAILABLE, SEQ_RAND, SEQ_SLOT, SEQ_SVC,
};
use crate::{map_err, Datapath, Error, Result};

/// `BPF_F_LOCK`: copy a value under its bpf_spin_lock.
const BPF_F_LOCK: u64 = 4;
/// `BPF_NOEXIST`.
const BPF_NOEXIST: u64 = 1;

const CTL_EXPIRE: u8 = 1;
const CTL_CLEAR_OVERLOAD: u8 = 2;
const CTL_EXPIRE_TPL: u8 = 3;
const CTL_JIFFIES: u8 = 4;
const CTL_FORGET_FLOWS: u8 = 5;

/// lblc/lblcr cache expiration (the `lblc_expiration`/`lblcr_expiration`
/// sysctls' default, 24 h), seconds.
const LBL_EXPIRATION_SECS: u64 = 24 * 60 * 60;

/// Test hooks written into `xvs_config` with every sync.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TestHooks {
    /// A fixed clock (ns), 0 = `bpf_ktime_get_coarse_ns`.
    now_ns: u64,
    /// twos draws come from `xvs_rand`.
    rand_fixed: bool,
    sysctls: Option<Sysctls>,
    timeouts: Option<Timeouts>,
    /// lblc/lblcr expiration, seconds (0 = the default, 24 h).
    lblc_expiration: u64,
    lblcr_expiration: u64,
}

/// Where frames for a real server go at layer 2 (DR, NAT, and TUN's outer
/// header). The default (all zero) means "ask the kernel": the programs
/// look the real server up in the FIB and neighbour tables
/// (`bpf_fib_lookup`) for every packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NextHop {
    /// Destination MAC: the real server (or the router towards it). All
    /// zero: the next hop (both MACs and the egress device) comes from the
    /// FIB, and the other fields are ignored.
    pub mac: [u8; 6],
    /// Source MAC: the director's egress interface.
    pub src_mac: [u8; 6],
    /// Egress interface index; 0 = back out of the ingress interface.
    pub ifindex: u32,
}

impl NextHop {
    /// Whether this is "ask the FIB" (no MAC given).
    pub fn is_fib(&self) -> bool {
        self.mac == [0; 6]
    }
}

/// Layer-2 next hops of the real servers, by address, with a default.
///
/// `L2::default()` makes every next hop come from the kernel's FIB and
/// neighbour tables, which needs forwarding enabled on the ingress devices
/// (`net.ipv4.conf.<if>.forwarding=1`, for IPv6 services
/// `net.ipv6.conf.<if>.forwarding=1`; otherwise `bpf_fib_lookup` answers
/// FWD_DISABLED and the packets are dropped, counted as `no_route`).
/// Entries in `by_addr` (or a non-zero `default`) override it. NAT replies
/// always take the FIB's next hop toward the client.
#[derive(Clone, Debug, Default)]
pub struct L2 {
    /// For real servers not in `by_addr`; all zero = from the FIB.
    pub default: NextHop,
    /// Per real-server address.
    pub by_addr: StdMap<IpAddr, NextHop>,
    /// LVS-TUN: outer source address of the tunnels (the director's address
    /// toward the real servers), for real servers not in `tun_saddr_by_addr`.
    /// Used only for real servers of its own address family (an IPv6 real
    /// server's tunnel has an IPv6 outer header).
    /// `None`: with the next hop from the FIB, the source the FIB picks for
    /// the route (`BPF_FIB_LOOKUP_SRC`, kernel >= 6.7); with an explicit
    /// next hop, TUN packets are tracked but handed to the stack unchanged.
    pub tun_saddr: Option<IpAddr>,
    /// LVS-TUN: outer source address per real-server address.
    pub tun_saddr_by_addr: StdMap<IpAddr, IpAddr>,
    /// LVS-TUN: MTU of the path to the real servers (IP packet size after
    /// encapsulation), over the route's MTU (which the datapath learns from
    /// the FIB when the next hop comes from it): the lower of the two
    /// applies. A larger non-GSO packet is not sent; the client is told
    /// what fits (ICMP "fragmentation needed" with DF, ICMPv6 "packet too
    /// big"), as the kernel's IPVS does, and it counts as `tun_dropped`.
    /// 0 = the route's MTU alone.
    pub tun_mtu: u16,
}

impl L2 {
    /// The next hop of real server `addr`.
    pub fn next_hop(&self, addr: &IpAddr) -> NextHop {
        self.by_addr.get(addr).copied().unwrap_or(self.default)
    }

    /// The tunnel source address for real server `addr`, if any.
    pub fn tun_source(&self, addr: &IpAddr) -> Option<IpAddr> {
        self.tun_saddr_by_addr.get(addr).copied().or(self.tun_saddr)
    }
}

/// The TUN fields of `struct real` for real server `addr`.
fn tun_fields(l2: &L2, addr: &IpAddr) -> ([u32; 4], u16) {
    // A tunnel source of the other family than the real server is no use
    // for its outer header: none (from the FIB, or handed to the stack).
    let saddr = l2
        .tun_source(addr)
        .filter(|a| a.is_ipv6() == addr.is_ipv6())
        .map(|a| addr_words(a).0)
        .unwrap_or_default();
    (saddr, l2.tun_mtu)
}

#[derive(Clone, Debug)]
struct SyncedSvc {
    id: u32,
    key: SvcKey,
    sched: SchedulerKind,
    /// (slot, weight, the whole config) in list order.
    dests: Vec<(u32, i32, DestConfig)>,
    /// lblc/lblcr cache timer (`ip_vs_lblc_check_expire`): next run (ns on
    /// the datapath clock, 0 = not armed yet) and run counter.
    lbl_next_check: u64,
    lbl_counter: u32,
}

/// A real server's identity, as the kernel's trash matches it: its
/// service, address (and family) and port (network order).
type RealIdent = (SvcKey, [u32; 4], u8, u16);

/// What the last sync wrote.
#[derive(Debug, Default)]
pub(crate) struct SyncState {
    services: StdMap<ServiceKey, SyncedSvc>,
    /// Every real server in xvs_reals (listed or waiting in the trash), by
    /// slot.
    reals: StdMap<u32, Real>,
    /// The slot of each real-server identity.
    slots: StdMap<RealIdent, u32>,
    /// Each slot's identity (`None`: adopted from a previous run, of a
    /// service that is gone) and the table's `DestId` for it (`None` until
    /// a sync after adoption matched it).
    slot_info: StdMap<u32, (Option<RealIdent>, Option<DestId>)>,
    /// The table's `DestId`s -> slots.
    dest_slot: StdMap<DestId, u32>,
    /// The ids of the services in `services`.
    svc_ids: BTreeSet<u32>,
    /// Last service id and slot handed out (also kept in `xvs_seq`).
    next_svc_id: u32,
    next_slot: u32,
    /// `expire_nodest_conn` as of the last sync.
    expire_nodest: bool,
    /// A real server was removed with `expire_nodest_conn` set: the next
    /// sweep frees its connections (`ip_vs_expire_nodest_conn_flush()`).
    flush_nodest: bool,
}

fn sched_index(k: SchedulerKind) -> u32 {
    SchedulerKind::ALL
        .iter()
        .position(|&x| x == k)
        .expect("every kind is in ALL") as u32
}

fn svc_key(key: &ServiceKey) -> SvcKey {
    match *key {
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        } => {
            let (a, family) = addr_words(addr);
            SvcKey {
                addr: a,
                port: port.to_be(),
                proto: protocol.number(),
                family,
            }
        }
        ServiceKey::Fwmark { family, mark } => SvcKey::fwmark(
            match family {
                Family::Inet => AF_INET,
                Family::Inet6 => crate::maps::AF_INET6,
            },
            mark,
        ),
    }
}

fn describe(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        } => format!("{} service {addr}:{port}", protocol.name()),
        ServiceKey::Fwmark { mark, .. } => format!("fwmark service {mark}"),
    }
}

/// Refuses what the datapath cannot do yet, rather than mis-schedule it.
fn check_supported(svc: &Service) -> Result<()> {
    let refuse = |why: &str| Err(Error::Refused(format!("{}: {why}", describe(&svc.cfg.key))));
    if svc.dests.len() > MAX_DESTS {
        return refuse(&format!("more than {MAX_DESTS} real servers"));
    }
    // The kernel allows a real server of the other family with tunnelling
    // (-i) only (IPv4 in IPv6, IPv6 in IPv4); IpvsTable refuses the rest,
    // and so does the datapath, should such a table reach it.
    let family = svc.cfg.key.family();
    if let Some(d) = svc
        .dests
        .iter()
        .find(|d| Family::of(&d.cfg.addr) != family && d.cfg.fwd != FwdMethod::Tunnel)
    {
        return refuse(&format!(
            "real server {} is of another address family than the service \
             and not tunnelled (-i)",
            d.cfg.addr
        ));
    }
    Ok(())
}

fn gcd(mut a: i32, mut b: i32) -> i32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// ip_vs_wrr_gcd_weight() and ip_vs_wrr_max_weight().
fn wrr_weights(dests: &[Dest]) -> (i32, i32) {
    let w = |d: &Dest| d.cfg.weight as i32;
    let g = dests
        .iter()
        .map(w)
        .filter(|&x| x > 0)
        .fold(0, |g, x| if g > 0 { gcd(x, g) } else { x });
    let di = if g == 0 { 1 } else { g };
    let max = dests.iter().map(w).fold(0, i32::max);
    (di, max)
}

fn real_of(d: &Dest, svc_id: u32, l2: &L2) -> Real {
    let (addr, family) = addr_words(d.cfg.addr);
    let nh = l2.next_hop(&d.cfg.addr);
    let (tun_saddr, tun_mtu) = tun_fields(l2, &d.cfg.addr);
    Real {
        addr,
        port: d.cfg.port.to_be(),
        fwd: d.cfg.fwd.kernel_value() as u8,
        family,
        weight: d.cfg.weight as i32,
        u_threshold: d.cfg.u_threshold,
        l_threshold: d.cfg.l_threshold,
        flags: REAL_F_AVAILABLE,
        svc_id,
        tun_type: match d.cfg.tun_type {
            TunType::Ipip => 0,
            TunType::Gue => 1,
            TunType::Gre => 2,
        },
        tun_flags: match d.cfg.tun_csum {
            TunCsum::NoCsum => 0,
            TunCsum::Csum => 1,
            TunCsum::RemCsum => 2,
        },
        tun_port: d.cfg.tun_port.to_be(),
        mac: nh.mac,
        src_mac: nh.src_mac,
        ifindex: nh.ifindex,
        pad: 0,
        tun_saddr,
        tun_mtu,
        pad2: 0,
    }
}

impl Real {
    /// This configuration with `other`'s weight, thresholds and flags: what
    /// an edit that only changes those leaves alone.
    fn with_weight_and_state(&self, other: &Real) -> Real {
        Real {
            weight: other.weight,
            u_threshold: other.u_threshold,
            l_threshold: other.l_threshold,
            flags: other.flags,
            ..*self
        }
    }
}

/// A real server's `xvs_real_live` word: flags, and its service's id above
/// them.
fn live_of(r: &Real) -> u32 {
    let mut live = r.svc_id << LIVE_SVC_SHIFT;
    if r.flags & REAL_F_AVAILABLE != 0 {
        live |= LIVE_F_AVAILABLE;
    }
    if r.mac != [0; 6] || u32::from(r.fwd) == FwdMethod::Tunnel.kernel_value() {
        live |= LIVE_F_REAL;
    }
    live
}

fn sum_stats(v: &PerCpuValues<Stats>) -> CoreCounters {
    let mut c = CoreCounters::default();
    for s in v.iter() {
        c.conns += s.conns;
        c.inpkts += s.inpkts;
        c.outpkts += s.outpkts;
        c.inbytes += s.inbytes;
        c.outbytes += s.outbytes;
    }
    c
}

fn not_found(e: &MapError) -> bool {
    matches!(e, MapError::KeyNotFound)
        || matches!(e, MapError::SyscallError(s) if s.io_error.raw_os_error() == Some(libc::ENOENT))
}

/// A real server's connection counts as the datapath holds them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RealCounts {
    /// ActiveConn.
    pub active: u32,
    /// InActConn.
    pub inactive: u32,
    /// PersistConn.
    pub persist: u32,
    /// The overload flag.
    pub overloaded: bool,
}

impl Datapath {
    pub(crate) fn write_config(&mut self, t: &Timeouts, s: &Sysctls) -> Result<()> {
        let mut c = Config::default();
        c.tcp_timeout[..t.tcp.len()].copy_from_slice(&t.tcp);
        c.udp_timeout = t.udp;
        c.conn_reuse_mode = s.conn_reuse_mode;
        c.expire_nodest_conn = s.expire_nodest_conn as u32;
        c.sloppy_tcp = s.sloppy_tcp as u32;
        c.sloppy_sctp = s.sloppy_sctp as u32;
        c.expire_quiescent_template = s.expire_quiescent_template as u32;
        c.lblcr_expiration = self.lblcr_expiration() as u32;
        c.rand_fixed = self.hooks.rand_fixed as u32;
        c.now_ns = self.hooks.now_ns;
        c.flow_sets = self.flow_sets;
        c.hz = self.hz;
        self.hooks.timeouts = Some(*t);
        self.hooks.sysctls = Some(*s);
        self.config.set(0, c, 0).map_err(map_err(name::CONFIG))
    }

    fn lblc_expiration(&self) -> u64 {
        match self.hooks.lblc_expiration {
            0 => LBL_EXPIRATION_SECS,
            s => s,
        }
    }

    fn lblcr_expiration(&self) -> u64 {
        match self.hooks.lblcr_expiration {
            0 => LBL_EXPIRATION_SECS,
            s => s,
        }
    }

    fn rewrite_config(&mut self) -> Result<()> {
        let t = self.hooks.timeouts.unwrap_or_default();
        let s = self.hooks.sysctls.unwrap_or_default();
        self.write_config(&t, &s)
    }

    /// Test hook: run the programs (and [`Datapath::expire`]) on a fixed
    /// clock, `Some(ns)`, instead of `CLOCK_MONOTONIC_COARSE`; `None` returns to
    /// the real clock. Lets a test move time exactly as a model does.
    pub fn set_clock(&mut self, ns: Option<u64>) -> Result<()> {
        self.hooks.now_ns = ns.unwrap_or(0);
        self.rewrite_config()
    }

    /// Test hook: the twos scheduler takes its 32-bit draws from `draws`
    /// (in order, from the first; at most 65536, cycling) instead of
    /// `bpf_get_prandom_u32`. `None` returns to the kernel's random numbers.
    pub fn set_fixed_draws(&mut self, draws: Option<&[u32]>) -> Result<()> {
        if let Some(d) = draws {
            for (i, v) in d.iter().take(RAND_SLOTS as usize).enumerate() {
                self.rand
                    .set(i as u32, *v, 0)
                    .map_err(map_err(name::RAND))?;
            }
            self.seq.set(SEQ_RAND, 0, 0).map_err(map_err(name::SEQ))?;
        }
        self.hooks.rand_fixed = draws.is_some();
        self.rewrite_config()
    }

    /// How many test draws twos has taken since [`Datapath::set_fixed_draws`].
    pub fn fixed_draws_used(&self) -> Result<u64> {
        self.seq.get(&SEQ_RAND, 0).map_err(map_err(name::SEQ))
    }

    /// Now on the datapath's clock, ns.
    pub(crate) fn now_ns(&self) -> u64 {
        if self.hooks.now_ns != 0 {
            self.hooks.now_ns
        } else {
            monotonic_ns()
        }
    }

    fn zero_stats(&self) -> Result<PerCpuValues<Stats>> {
        PerCpuValues::try_from(vec![Stats::default(); self.nr_cpus])
            .map_err(|e| Error::Interface("possible CPUs".into(), e))
    }

    fn run_ctl(&self, op: u8, payload: &[u8]) -> Result<u32> {
        let mut frame = [0u8; 64];
        frame[0] = op;
        frame[4..4 + payload.len()].copy_from_slice(payload);
        let prog = self.xdp_named(crate::CTL_PROG)?;
        let res = aya::TestRun::test_run(
            prog,
            aya::TestRunOptions {
                data_in: Some(&frame),
                ..Default::default()
            },
        )
        .map_err(|source| Error::Program {
            prog: crate::CTL_PROG,
            source,
        })?;
        Ok(res.return_value)
    }

    /// The kernel's HZ (jiffies a second), for the datapath caches' clock:
    /// jiffies read by the datapath over 40 ms of the monotonic clock, to
    /// the nearest of the values Linux builds with (100, 250, 300, 1000).
    /// Measured once per process. Were it ever taken too low, the caches
    /// would keep entries for less time than meant, never more; so a
    /// reading between two values goes to the lower one.
    pub(crate) fn kernel_hz(&self) -> Result<u32> {
        static HZ: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
        if let Some(&hz) = HZ.get() {
            return Ok(hz);
        }
        let j0 = self.run_ctl(CTL_JIFFIES, &[])?;
        let t0 = std::time::Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(40));
        let j1 = self.run_ctl(CTL_JIFFIES, &[])?;
        let secs = t0.elapsed().as_secs_f64();
        let hz = hz_of(j1.wrapping_sub(j0), secs);
        Ok(*HZ.get_or_init(|| hz))
    }

    fn ctl_expire_tpl(&self, id: u32, force: bool) -> Result<u32> {
        let mut payload = [0u8; 41];
        payload[..4].copy_from_slice(&id.to_ne_bytes());
        payload[40] = force as u8;
        self.run_ctl(CTL_EXPIRE_TPL, &payload)
    }

    fn ctl_expire(&self, k: &ConnKey, force: bool) -> Result<u32> {
        // SAFETY: ConnKey is Pod (repr(C), no padding); its bytes are what
        // the BPF program reads back as a struct conn_key.
        let bytes: [u8; 40] = unsafe { std::mem::transmute(*k) };
        let mut payload = [0u8; 41];
        payload[..40].copy_from_slice(&bytes);
        payload[40] = force as u8;
        self.run_ctl(CTL_EXPIRE, &payload)
    }

    /// Writes the rules of `table` into the maps: services, real servers,
    /// lists, scheduler state and tables, timeouts and sysctls. What the
    /// datapath cannot do yet (see [`Error::Refused`]) is refused before
    /// anything is written. Connections in the table are left as they are.
    ///
    /// Call it after every command to reproduce the kernel's scheduler hooks
    /// exactly: a batch is applied as one diff (one wrr `dest_changed` per
    /// changed service; an edit that changes nothing is not seen).
    pub fn sync(&mut self, table: &IpvsTable, sysctls: &Sysctls, l2: &L2) -> Result<()> {
        for svc in table.services() {
            check_supported(svc)?;
        }
        // The lblc_expiration / lblcr_expiration sysctls, which the model
        // keeps in each scheduler instance.
        self.hooks.lblc_expiration = 0;
        self.hooks.lblcr_expiration = 0;
        for svc in table.services() {
            match &svc.sched {
                Sched::Lblc(s) => self.hooks.lblc_expiration = s.expiration().as_secs().max(1),
                Sched::Lblcr(s) => self.hooks.lblcr_expiration = s.expiration().as_secs().max(1),
                _ => {}
            }
        }
        self.write_config(&table.timeouts, sysctls)?;
        self.sync.expire_nodest = sysctls.expire_nodest_conn;
        // Servers the table's trash purged go first, so that one added anew
        // (a new DestId for the same identity) starts afresh, as in the kernel.
        self.forget_purged(table);
        let mut seen = HashSet::new();
        for svc in table.services() {
            seen.insert(svc.cfg.key);
            self.sync_service(svc, l2)?;
        }
        let gone: Vec<ServiceKey> = self
            .sync
            .services
            .keys()
            .filter(|k| !seen.contains(*k))
            .copied()
            .collect();
        for key in gone {
            let s = self.sync.services.remove(&key).expect("listed above");
            match self.services.remove(&s.key) {
                Ok(()) => {}
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(map_err(name::SERVICES)(e)),
            }
            let _ = self.dest_lists.remove(&s.id);
            let _ = self.sched_state.remove(&s.id);
            let _ = self.htab.remove(&s.id);
            self.sync.svc_ids.remove(&s.id);
            self.clear_lbl_caches(s.id);
            for (slot, _, _) in &s.dests {
                self.retire_real(*slot)?;
            }
        }
        self.forget_purged(table);
        Ok(())
    }

    fn retire_real(&mut self, id: u32) -> Result<()> {
        if let Some(r) = self.sync.reals.get_mut(&id) {
            if r.flags & REAL_F_AVAILABLE != 0 {
                r.flags &= !REAL_F_AVAILABLE;
                let r = *r;
                self.sync.flush_nodest |= self.sync.expire_nodest;
                // unavailable to packets first, then in its configuration
                self.real_live
                    .set(id, live_of(&r), 0)
                    .map_err(map_err(name::REAL_LIVE))?;
                self.reals.insert(id, r, 0).map_err(map_err(name::REALS))?;
            }
        }
        Ok(())
    }

    /// Hands out the next free id of `xvs_seq[idx]` (services, slots): the
    /// one after the last, wrapping below `MAX_SERVICES` / `MAX_REALS` (the
    /// per-id arrays' sizes), never 0, and records it there so that a later
    /// run continues after it. Ids come round again only after every other
    /// free one, so an id is not reused while anything that outlived its
    /// last holder (a connection's counters) is likely to still name it.
    fn next_seq(&mut self, idx: u32) -> Result<u32> {
        let svc = idx == SEQ_SVC;
        let (limit, what) = if svc {
            (MAX_SERVICES, "services")
        } else {
            (
                MAX_REALS,
                "real servers (listed, or removed and still in use)",
            )
        };
        let mut v = if svc {
            self.sync.next_svc_id
        } else {
            self.sync.next_slot
        };
        for _ in 1..limit {
            v = if v + 1 >= limit { 1 } else { v + 1 };
            let used = if svc {
                self.sync.svc_ids.contains(&v)
            } else {
                self.sync.slot_info.contains_key(&v)
            };
            if used {
                continue;
            }
            if svc {
                self.sync.next_svc_id = v;
            } else {
                self.sync.next_slot = v;
            }
            self.seq
                .set(idx, u64::from(v), 0)
                .map_err(map_err(name::SEQ))?;
            return Ok(v);
        }
        Err(Error::Refused(format!(
            "the datapath holds at most {} {what}",
            limit - 1
        )))
    }

    /// The slot of real server `d` of service `skey`: the one its identity
    /// already has, or a new one.
    fn slot_of(&mut self, d: &Dest, skey: SvcKey) -> Result<u32> {
        let (addr, family) = addr_words(d.cfg.addr);
        let ident = (skey, addr, family, d.cfg.port.to_be());
        let slot = match self.sync.slots.get(&ident) {
            Some(&s) => s,
            None => {
                let s = self.next_seq(SEQ_SLOT)?;
                self.sync.slots.insert(ident, s);
                s
            }
        };
        if let Some((_, Some(old))) = self.sync.slot_info.get(&slot) {
            if *old != d.id {
                self.sync.dest_slot.remove(old);
            }
        }
        self.sync.slot_info.insert(slot, (Some(ident), Some(d.id)));
        self.sync.dest_slot.insert(d.id, slot);
        Ok(slot)
    }

    fn sync_real(&mut self, d: &Dest, skey: SvcKey, svc_id: u32, l2: &L2) -> Result<u32> {
        let id = self.slot_of(d, skey)?;
        let r = real_of(d, svc_id, l2);
        let old = self.sync.reals.get(&id).copied();
        if old == Some(r) {
            return Ok(id);
        }
        // Counters first, so the real server is never seen without them.
        match self
            .real_state
            .insert(id, RealState::default(), BPF_NOEXIST)
        {
            Ok(()) => {}
            Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(map_err(name::REAL_STATE)(e)),
        }
        if old.is_none() {
            // a slot handed out anew: its counters start from zero
            let z = self.zero_stats()?;
            self.real_stats
                .set(id, z, 0)
                .map_err(map_err(name::REAL_STATS))?;
        }
        // (listed: its configuration first, then available to packets)
        self.reals.insert(id, r, 0).map_err(map_err(name::REALS))?;
        self.real_live
            .set(id, live_of(&r), 0)
            .map_err(map_err(name::REAL_LIVE))?;
        self.sync.reals.insert(id, r);
        // __ip_vs_update_dest(): the overload flag is cleared when the upper
        // threshold is removed or raised.
        if let Some(o) = old {
            if o.with_weight_and_state(&r) != r {
                // What a cached flow may carry of it changed (its tunnel,
                // next hop, method): every CPU's cached flows go, and the
                // next packet of each reads the new configuration.
                self.run_ctl(CTL_FORGET_FLOWS, &[])?;
            }
            let changed = o.u_threshold != r.u_threshold || o.flags != r.flags;
            if changed && (r.u_threshold == 0 || r.u_threshold > o.u_threshold) {
                self.run_ctl(CTL_CLEAR_OVERLOAD, &id.to_ne_bytes())?;
            }
        }
        Ok(id)
    }

    fn sync_service(&mut self, svc: &Service, l2: &L2) -> Result<()> {
        let key = svc.cfg.key;
        let prev = self.sync.services.get(&key).cloned();
        let id = match &prev {
            Some(p) => p.id,
            None => self.next_seq(SEQ_SVC)?,
        };
        let skey = svc_key(&key);
        let mut now: Vec<(u32, i32, DestConfig)> = Vec::with_capacity(svc.dests.len());
        for d in &svc.dests {
            let slot = self.sync_real(d, skey, id, l2)?;
            now.push((slot, d.cfg.weight as i32, d.cfg));
        }
        if let Some(p) = &prev {
            for (did, _, _) in &p.dests {
                if !now.iter().any(|(n, _, _)| n == did) {
                    self.retire_real(*did)?;
                }
            }
        }

        // The list, in kernel order.
        let mut list = DestList {
            n: now.len() as u32,
            pad: 0,
            d: [DestRef::default(); MAX_DESTS],
        };
        for (i, (did, w, _)) in now.iter().enumerate() {
            list.d[i] = DestRef {
                id: *did,
                weight: *w,
            };
        }
        self.dest_lists
            .insert(id, list, 0)
            .map_err(map_err(name::DEST_LISTS))?;

        // rr/wrr state, as the scheduler hooks change it.
        let kind = svc.cfg.scheduler;
        let fresh = prev.as_ref().is_none_or(|p| p.sched != kind);
        let changed = prev.as_ref().is_none_or(|p| p.dests != now);
        if fresh {
            self.clear_lbl_caches(id);
            let mut st = SchedState::default();
            if kind == SchedulerKind::Wrr {
                let (di, max) = wrr_weights(&svc.dests);
                st.di = di;
                st.mw = max - (di - 1);
                st.cw = st.mw;
            }
            self.sched_state
                .insert(id, st, 0)
                .map_err(map_err(name::SCHED_STATE))?;
        } else if changed && matches!(kind, SchedulerKind::Rr | SchedulerKind::Wrr) {
            let p = prev.as_ref().expect("not fresh");
            let mut st = self
                .sched_state
                .get(&id, BPF_F_LOCK)
                .map_err(map_err(name::SCHED_STATE))?;
            if kind == SchedulerKind::Rr {
                // del_dest of the cursor: step back to its predecessor.
                let gone = |i: &u32| !now.iter().any(|(n, _, _)| n == i);
                if st.cl != 0 && gone(&st.cl) {
                    let pos = p.dests.iter().position(|(d, _, _)| *d == st.cl);
                    st.cl = pos
                        .and_then(|i| p.dests[..i].iter().rev().find(|(d, _, _)| !gone(d)))
                        .map_or(0, |(d, _, _)| *d);
                }
            } else {
                // ip_vs_wrr_dest_changed()
                let (di, max) = wrr_weights(&svc.dests);
                let mw = max - (di - 1);
                st.cl = 0;
                if st.cw > mw || st.cw == 0 {
                    st.cw = mw;
                } else if di > 1 {
                    st.cw = (st.cw / di) * di + 1;
                }
                st.mw = mw;
                st.di = di;
            }
            self.sched_state
                .insert(id, st, BPF_F_LOCK)
                .map_err(map_err(name::SCHED_STATE))?;
        }

        // sh/dh/mh: the tables xvs-core computed.
        let table = match &svc.sched {
            Sched::Sh(s) => Some(s.table()),
            Sched::Dh(s) => Some(s.table()),
            Sched::Mh(s) => Some(s.table()),
            _ => None,
        };
        if let Some(t) = table {
            let mut h = Htab {
                slot: [0; HTAB_SLOTS],
            };
            for (slot, d) in h.slot.iter_mut().zip(t) {
                *slot = d
                    .and_then(|d| self.sync.dest_slot.get(&d).copied())
                    .unwrap_or(0);
            }
            self.htab.insert(id, h, 0).map_err(map_err(name::HTAB))?;
        }

        if prev.is_none() {
            let z = self.zero_stats()?;
            self.svc_stats
                .set(id, z, 0)
                .map_err(map_err(name::SVC_STATS))?;
        }
        let info = SvcInfo {
            id,
            sched: sched_index(kind),
            flags: svc.cfg.kernel_flags(),
            timeout: svc.cfg.persistence.map_or(0, |p| p.timeout),
            netmask: svc.cfg.persistence.map_or(0, |p| p.netmask),
            pad: 0,
        };
        self.services
            .insert(skey, info, 0)
            .map_err(map_err(name::SERVICES))?;
        let (lbl_next_check, lbl_counter) = match &prev {
            Some(p) if !fresh => (p.lbl_next_check, p.lbl_counter),
            _ => (0, 1),
        };
        self.sync.svc_ids.insert(id);
        self.sync.services.insert(
            key,
            SyncedSvc {
                id,
                key: skey,
                sched: kind,
                dests: now,
                lbl_next_check,
                lbl_counter,
            },
        );
        Ok(())
    }

    /// Frees the connections whose deadline has passed (on the kernel's
    /// `CLOCK_MONOTONIC_COARSE`, the clock of `bpf_ktime_get_coarse_ns`), and forgets
    /// removed real servers nothing refers to any more. Each entry is freed
    /// by the BPF control program, which changes the counts only if its own
    /// delete succeeded, so a packet freeing the same entry at the same time
    /// cannot make it count twice. With `expire_nodest_conn`, the first
    /// call after a sync that removed real servers frees their connections
    /// too, as the kernel's `ip_vs_expire_nodest_conn_flush()` does.
    /// Returns how many entries this call freed.
    pub fn expire(&mut self) -> Result<usize> {
        let n = if std::mem::take(&mut self.sync.flush_nodest) {
            self.flush_nodest()?
        } else {
            0
        };
        Ok(n + self.sweep(false)?)
    }

    /// `ip_vs_expire_nodest_conn_flush()`: the kernel's timer pass after a
    /// real server was removed with `expire_nodest_conn` set. Every
    /// connection whose server is no longer available (removed: in the
    /// table's trash, or purged) is freed now rather than at its next
    /// packet, and so is its template once it controls nothing; so are
    /// such servers' templates that control nothing. The rest keep their
    /// timers. Returns how many entries it freed.
    fn flush_nodest(&self) -> Result<usize> {
        let reals = &self.sync.reals;
        let gone = |id: u32| {
            reals
                .get(&id)
                .is_none_or(|r| r.flags & REAL_F_AVAILABLE == 0)
        };
        let doomed: Vec<(ConnKey, u32)> = self
            .conns
            .iter()
            .filter_map(|r| r.ok())
            .filter(|(_, c)| gone(c.real_id))
            .map(|(k, c)| (k, c.control))
            .collect();
        let mut n = 0;
        for (k, control) in doomed {
            if self.ctl_expire(&k, true)? == 2 {
                n += 1;
            }
            if control != 0
                && self.tpls.get(&control, 0).is_ok_and(|t| t.n_control == 0)
                && self.ctl_expire_tpl(control, true)? == 2
            {
                n += 1;
            }
        }
        let idle: Vec<u32> = self
            .tpls
            .iter()
            .filter_map(|r| r.ok())
            .filter(|(_, t)| t.n_control == 0 && gone(t.real_id))
            .map(|(id, _)| id)
            .collect();
        for id in idle {
            if self.ctl_expire_tpl(id, true)? == 2 {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Frees every connection now (as if all had expired).
    pub fn flush_conns(&mut self) -> Result<usize> {
        self.sweep(true)
    }

    fn sweep(&mut self, force: bool) -> Result<usize> {
        let now = self.now_ns();
        // Every due entry, connections and templates, in deadline order (as
        // the kernel's timers fire), connections first on a tie: a template
        // is freed only once the connections it controls are gone, and one
        // still controlling some is kept with a 60 s timer, which may come
        // due again within this sweep.
        let (keys, deadlines): (Vec<ConnKey>, Vec<u64>) = self
            .conns
            .iter()
            .filter_map(|r| r.ok())
            .filter(|(_, c)| force || c.expires <= now)
            .map(|(k, c)| (k, if force { 0 } else { c.expires }))
            .unzip();
        let mut due: BinaryHeap<Reverse<(u64, u8, usize)>> = BinaryHeap::new();
        for (i, at) in deadlines.into_iter().enumerate() {
            due.push(Reverse((at, 0, i)));
        }
        for (id, t) in self.tpls.iter().filter_map(|r| r.ok()) {
            if force || t.expires <= now {
                due.push(Reverse((if force { 1 } else { t.expires }, 1, id as usize)));
            }
        }
        let mut n = 0;
        while let Some(Reverse((_, kind, i))) = due.pop() {
            if kind == 0 {
                if self.ctl_expire(&keys[i], force)? == 2 {
                    n += 1;
                }
                continue;
            }
            let id = i as u32;
            match self.ctl_expire_tpl(id, force)? {
                2 => n += 1,
                1 => {
                    if let Ok(t) = self.tpls.get(&id, 0) {
                        if t.expires <= now {
                            due.push(Reverse((t.expires, 1, i)));
                        }
                    }
                }
                _ => {}
            }
        }
        if !force {
            self.lbl_timers(now);
        }
        Ok(n)
    }

    /// Forgets the removed real servers `table` no longer holds (its trash
    /// purged them: unreferenced and idle long enough): their entries in
    /// `xvs_reals`, `xvs_real_state` and `xvs_real_stats`. Until then a
    /// removed server keeps its counters, so one re-added from the trash
    /// comes back with them, as in the kernel. [`Datapath::sync`] does this
    /// too; call it after the table's timers ran (`Director::expire`).
    pub fn forget_purged(&mut self, table: &IpvsTable) {
        let info = &self.sync.slot_info;
        let gone: Vec<u32> = self
            .sync
            .reals
            .iter()
            .filter(|(id, r)| {
                r.flags & REAL_F_AVAILABLE == 0
                    && info
                        .get(id)
                        .and_then(|(_, d)| *d)
                        .is_none_or(|d| table.dest(d).is_none())
            })
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            let _ = self.real_live.set(id, 0, 0);
            let _ = self.reals.remove(&id);
            let _ = self.real_state.remove(&id);
            self.sync.reals.remove(&id);
            if let Some((ident, dest)) = self.sync.slot_info.remove(&id) {
                if let Some(i) = ident {
                    self.sync.slots.remove(&i);
                }
                if let Some(d) = dest {
                    if self.sync.dest_slot.get(&d) == Some(&id) {
                        self.sync.dest_slot.remove(&d);
                    }
                }
            }
        }
    }

    /// The slot (the maps' real server id) of the table's real server `id`,
    /// as of the last [`Datapath::sync`].
    pub fn real_slot(&self, id: DestId) -> Option<u32> {
        self.sync.dest_slot.get(&id).copied()
    }

    /// Live entries in the connection table.
    pub fn conn_count(&self) -> usize {
        self.conns.keys().filter(|k| k.is_ok()).count()
    }

    /// Live persistence templates (valid or invalidated).
    pub fn template_count(&self) -> usize {
        self.tpls.keys().filter(|k| k.is_ok()).count()
    }

    /// The lblcr cache: (service id, destination address) -> server set.
    pub fn lblcr_sets(&self) -> Vec<(crate::maps::LblKey, crate::maps::LblcrSet)> {
        self.lblcr.iter().filter_map(|r| r.ok()).collect()
    }

    /// The lblc cache: (service id, destination address) -> real server.
    pub fn lblc_entries(&self) -> Vec<(crate::maps::LblKey, crate::maps::LblcEntry)> {
        self.lblc.iter().filter_map(|r| r.ok()).collect()
    }

    /// Templates that can still be found (not invalidated).
    pub fn valid_template_count(&self) -> usize {
        self.tpl_index.keys().filter(|k| k.is_ok()).count()
    }

    /// The persistence templates.
    pub fn templates(&self) -> Vec<Tpl> {
        self.tpls
            .iter()
            .filter_map(|r| r.ok())
            .map(|(_, t)| t)
            .collect()
    }

    /// The lblc/lblcr cache timer of each such service, as the kernel's
    /// `ip_vs_lblc_check_expire()` (and the model's `CacheTable::tick`) run
    /// it: armed 60 s after the first sweep following `init_service`, then
    /// every 60 s from the sweep that ran it; every 30th run drops the
    /// service's entries idle for the expiration time (24 h by default).
    /// Not done: the kernel's extra collection of entries idle for 6 min
    /// when a table holds more than 16384 entries.
    fn lbl_timers(&mut self, now: u64) {
        const PERIOD: u64 = 60 * 1_000_000_000;
        let mut full = Vec::new();
        for s in self.sync.services.values_mut() {
            if !matches!(s.sched, SchedulerKind::Lblc | SchedulerKind::Lblcr) {
                continue;
            }
            if s.lbl_next_check == 0 {
                s.lbl_next_check = now + PERIOD;
                continue;
            }
            if now < s.lbl_next_check {
                continue;
            }
            if s.lbl_counter.is_multiple_of(30) {
                full.push((s.id, s.sched));
                s.lbl_counter = 1;
            } else {
                s.lbl_counter += 1;
            }
            s.lbl_next_check = now + PERIOD;
        }
        for (id, sched) in full {
            if sched == SchedulerKind::Lblc {
                let limit = self.lblc_expiration() * 1_000_000_000;
                let stale: Vec<_> = self
                    .lblc
                    .iter()
                    .filter_map(|r| r.ok())
                    .filter(|(k, e)| k.svc_id == id && now >= e.lastuse.saturating_add(limit))
                    .map(|(k, _)| k)
                    .collect();
                for k in stale {
                    let _ = self.lblc.remove(&k);
                }
            } else {
                let limit = self.lblcr_expiration() * 1_000_000_000;
                let stale: Vec<_> = self
                    .lblcr
                    .iter()
                    .filter_map(|r| r.ok())
                    .filter(|(k, e)| k.svc_id == id && now >= e.lastuse.saturating_add(limit))
                    .map(|(k, _)| k)
                    .collect();
                for k in stale {
                    let _ = self.lblcr.remove(&k);
                }
            }
        }
    }

    /// Drops service `id`'s lblc/lblcr cache (init_service, removal).
    fn clear_lbl_caches(&mut self, id: u32) {
        let keys: Vec<_> = self
            .lblc
            .keys()
            .filter_map(|r| r.ok())
            .filter(|k| k.svc_id == id)
            .collect();
        for k in keys {
            let _ = self.lblc.remove(&k);
        }
        let keys: Vec<_> = self
            .lblcr
            .keys()
            .filter_map(|r| r.ok())
            .filter(|k| k.svc_id == id)
            .collect();
        for k in keys {
            let _ = self.lblcr.remove(&k);
        }
    }

    /// Entries in the NAT reply index.
    pub fn reply_index_count(&self) -> usize {
        self.conns_out.keys().filter(|k| k.is_ok()).count()
    }

    /// A real server's counts, if the datapath knows it.
    pub fn real_counts(&self, id: DestId) -> Result<Option<RealCounts>> {
        let Some(slot) = self.real_slot(id) else {
            return Ok(None);
        };
        match self.real_state.get(&slot, 0) {
            Ok(s) => Ok(Some(RealCounts {
                active: s.active.max(0) as u32,
                inactive: s.inactive.max(0) as u32,
                persist: s.persist.max(0) as u32,
                overloaded: s.overloaded != 0,
            })),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(map_err(name::REAL_STATE)(e)),
        }
    }

    /// A real server's packet/byte/connection counters, summed over CPUs.
    pub fn real_stats(&self, id: DestId) -> Result<Option<CoreCounters>> {
        let Some(slot) = self.real_slot(id) else {
            return Ok(None);
        };
        match self.real_stats.get(&slot, 0) {
            Ok(v) => Ok(Some(sum_stats(&v))),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(map_err(name::REAL_STATS)(e)),
        }
    }

    /// A service's counters, summed over CPUs.
    pub fn service_stats(&self, key: &ServiceKey) -> Result<Option<CoreCounters>> {
        let Some(s) = self.sync.services.get(key) else {
            return Ok(None);
        };
        match self.svc_stats.get(&s.id, 0) {
            Ok(v) => Ok(Some(sum_stats(&v))),
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(map_err(name::SVC_STATS)(e)),
        }
    }

    /// `ipvsadm -Z [service]`: zeroes the packet, byte and connection
    /// counters of one service and its listed real servers, or of every
    /// service, listed real server and the total (as `IpvsTable` does for
    /// `Command::Zero`; call it with the same key). The per-CPU values are
    /// overwritten with zeros from user space, so a packet counted on
    /// another CPU during the write may survive or be lost, as with any
    /// non-atomic reset.
    pub fn zero(&mut self, key: Option<&ServiceKey>) -> Result<()> {
        let svcs: Vec<(u32, Vec<u32>)> = match key {
            Some(k) => self.sync.services.get(k).into_iter().collect::<Vec<_>>(),
            None => self.sync.services.values().collect(),
        }
        .into_iter()
        .map(|s| (s.id, s.dests.iter().map(|(d, _, _)| *d).collect()))
        .collect();
        for (id, dests) in svcs {
            self.svc_stats
                .set(id, self.zero_stats()?, 0)
                .map_err(map_err(name::SVC_STATS))?;
            for d in dests {
                self.real_stats
                    .set(d, self.zero_stats()?, 0)
                    .map_err(map_err(name::REAL_STATS))?;
            }
        }
        if key.is_none() {
            self.total_stats
                .set(0, self.zero_stats()?, 0)
                .map_err(map_err(name::TOTAL_STATS))?;
        }
        Ok(())
    }

    /// The total counters, summed over CPUs.
    pub fn total_stats(&self) -> Result<CoreCounters> {
        let v = self
            .total_stats
            .get(&0, 0)
            .map_err(map_err(name::TOTAL_STATS))?;
        Ok(sum_stats(&v))
    }

    /// `table`'s snapshot with the connection counts and counters the
    /// datapath holds (what `ipvsadm -L --stats` shows).
    pub fn snapshot(&self, table: &IpvsTable) -> Result<TableSnapshot> {
        let mut snap = table.snapshot();
        for (entry, svc) in snap.services.iter_mut().zip(table.services()) {
            if let Some(s) = self.service_stats(&svc.cfg.key)? {
                entry.stats = s;
            }
            for (de, d) in entry.dests.iter_mut().zip(&svc.dests) {
                if let Some(c) = self.real_counts(d.id)? {
                    de.active_conns = c.active;
                    de.inact_conns = c.inactive;
                    de.persist_conns = c.persist;
                }
                if let Some(s) = self.real_stats(d.id)? {
                    de.stats = s;
                }
            }
        }
        Ok(snap)
    }
}

/// Now on `CLOCK_MONOTONIC_COARSE`, in ns (what `bpf_ktime_get_coarse_ns` returns).
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The table's service key of a map key (the inverse of `svc_key`).
fn service_key_of(k: &SvcKey) -> Option<ServiceKey> {
    let family = match k.family {
        AF_INET => Family::Inet,
        crate::maps::AF_INET6 => Family::Inet6,
        _ => return None,
    };
    if k.proto == 0 {
        return Some(ServiceKey::Fwmark {
            family,
            mark: k.addr[0],
        });
    }
    Some(ServiceKey::Addr {
        protocol: Protocol::from_number(k.proto)?,
        addr: crate::maps::words_addr(k.addr, k.family)?,
        port: u16::from_be(k.port),
    })
}

/// The configuration a `struct real` was written from (the inverse of
/// `real_of`, but for the next hop).
fn cfg_of(r: &Real) -> Option<DestConfig> {
    Some(DestConfig {
        addr: crate::maps::words_addr(r.addr, r.family)?,
        port: u16::from_be(r.port),
        fwd: match r.fwd {
            0 => FwdMethod::Masq,
            1 => FwdMethod::Local,
            2 => FwdMethod::Tunnel,
            3 => FwdMethod::Route,
            4 => FwdMethod::Bypass,
            _ => return None,
        },
        weight: r.weight as u32,
        u_threshold: r.u_threshold,
        l_threshold: r.l_threshold,
        tun_type: match r.tun_type {
            0 => TunType::Ipip,
            1 => TunType::Gue,
            2 => TunType::Gre,
            _ => return None,
        },
        tun_port: u16::from_be(r.tun_port),
        tun_csum: match r.tun_flags {
            0 => TunCsum::NoCsum,
            1 => TunCsum::Csum,
            2 => TunCsum::RemCsum,
            _ => return None,
        },
    })
}

impl Datapath {
    /// Rebuilds what the last sync wrote from the maps a previous run left
    /// pinned: services (key -> id, scheduler, list), real servers (slot ->
    /// identity: service, address, port) and the id counters. The next
    /// [`Datapath::sync`] then matches the table's real servers to their
    /// slots by identity, whatever their `DestId`s, and diffs as usual: an
    /// unchanged rule set writes nothing, the rr/wrr cursors stay, and the
    /// connections, templates and lblc/lblcr caches keep pointing at the
    /// right real servers.
    pub(crate) fn adopt_state(&mut self) -> Result<()> {
        let mut st = SyncState {
            next_svc_id: self.seq.get(&SEQ_SVC, 0).map_err(map_err(name::SEQ))? as u32,
            next_slot: self.seq.get(&SEQ_SLOT, 0).map_err(map_err(name::SEQ))? as u32,
            ..SyncState::default()
        };
        let services: Vec<(SvcKey, SvcInfo)> =
            self.services.iter().filter_map(|r| r.ok()).collect();
        let by_id: StdMap<u32, SvcKey> = services.iter().map(|(k, i)| (i.id, *k)).collect();
        for (slot, r) in self.reals.iter().filter_map(|r| r.ok()) {
            let ident = by_id.get(&r.svc_id).map(|k| (*k, r.addr, r.family, r.port));
            if let Some(i) = ident {
                st.slots.insert(i, slot);
            }
            st.slot_info.insert(slot, (ident, None));
            st.reals.insert(slot, r);
            // (a map this build added is new and empty: fill it in)
            self.real_live
                .set(slot, live_of(&r), 0)
                .map_err(map_err(name::REAL_LIVE))?;
            st.next_slot = st.next_slot.max(slot);
        }
        for (k, info) in services {
            st.next_svc_id = st.next_svc_id.max(info.id);
            st.svc_ids.insert(info.id);
            let (Some(key), Some(&sched)) = (
                service_key_of(&k),
                SchedulerKind::ALL.get(info.sched as usize),
            ) else {
                continue;
            };
            let dests = match self.dest_lists.get(&info.id, 0) {
                Ok(l) => l.d[..(l.n as usize).min(MAX_DESTS)]
                    .iter()
                    .filter_map(|d| Some((d.id, d.weight, cfg_of(st.reals.get(&d.id)?)?)))
                    .collect(),
                Err(e) if not_found(&e) => Vec::new(),
                Err(e) => return Err(map_err(name::DEST_LISTS)(e)),
            };
            st.services.insert(
                key,
                SyncedSvc {
                    id: info.id,
                    key: k,
                    sched,
                    dests,
                    lbl_next_check: 0,
                    lbl_counter: 1,
                },
            );
        }
        self.sync = st;
        Ok(())
    }
}

/// HZ from `ticks` jiffies over `secs` seconds: the nearest of the values
/// Linux builds with, the lower one on a tie (see `Datapath::kernel_hz`).
pub(crate) fn hz_of(ticks: u32, secs: f64) -> u32 {
    const BUILT: [u32; 4] = [100, 250, 300, 1000];
    let est = if secs > 0.0 {
        f64::from(ticks) / secs
    } else {
        0.0
    };
    let mut best = BUILT[0];
    for hz in BUILT {
        if (f64::from(hz) - est).abs() < (f64::from(best) - est).abs() {
            best = hz;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::hz_of;

    #[test]
    fn hz_is_read_to_the_nearest_built_value_and_the_lower_on_a_tie() {
        // 40 ms give +-1 jiffy: every reading of each HZ maps back to it.
        for (hz, ticks) in [(100, 3..=5), (250, 9..=11), (300, 12..=13), (1000, 39..=41)] {
            for t in ticks {
                assert_eq!(hz_of(t, 0.040), hz, "{t} ticks in 40 ms");
            }
        }
        // Halfway between 250 and 300: 250 (a low HZ only shortens the
        // caches' lifetimes).
        assert_eq!(hz_of(11, 0.040), 250);
        assert_eq!(hz_of(0, 0.040), 100);
        assert_eq!(hz_of(5, 0.0), 100);
        assert_eq!(hz_of(500, 0.040), 1000);
    }
}
