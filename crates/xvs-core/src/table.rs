//! The rule table: virtual services and their real servers, with the kernel's
//! validation (net/netfilter/ipvs/ip_vs_ctl.c) and its error codes, worded as
//! ipvsadm words them.
//!
//! A rejected command changes nothing. [`IpvsTable::apply_all`] applies a batch
//! atomically (all or nothing), which is what `-R` needs.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use crate::conn::timeouts::Timeouts;
use crate::ipvsadm::{Command, DaemonConfig, DaemonState, DestAddr};
use crate::model::{
    Dest, DestConfig, DestId, Family, Flow, FwdMethod, ServiceConfig, ServiceKey, TunType,
};
use crate::sched::{Sched, SchedCtx, Scheduler, SvcView};
use crate::snapshot::{DestEntry, ServiceEntry, TableSnapshot};
use crate::stats::{Counters, Rates};
use crate::time::Time;

/// Why the table refused a command. `Display` gives the exact line ipvsadm
/// prints for the kernel's answer; [`OpError::detail`] says precisely what was
/// wrong, for logs and for users who want more than ipvsadm's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpError {
    /// EEXIST on add-service.
    ServiceExists,
    /// ESRCH on edit/delete/zero/list of a service.
    NoSuchService,
    /// ESRCH on a real-server command naming a missing service.
    ServiceNotDefined,
    /// EEXIST on add-server.
    DestExists,
    /// ENOENT on edit/delete-server.
    NoSuchDest,
    /// ENOENT: unknown scheduler or persistence engine (names the one).
    SchedulerOrPeNotFound(String),
    /// EINVAL, with the reason.
    Invalid(&'static str),
    /// ERANGE, with the reason.
    OutOfRange(&'static str),
    /// EEXIST on start-daemon.
    DaemonRunning,
    /// ESRCH on stop-daemon.
    NoDaemon,
}

impl OpError {
    /// The kernel errno this stands for.
    pub fn errno(&self) -> i32 {
        match self {
            OpError::ServiceExists | OpError::DestExists | OpError::DaemonRunning => 17, // EEXIST
            OpError::NoSuchService | OpError::ServiceNotDefined | OpError::NoDaemon => 3, // ESRCH
            OpError::NoSuchDest | OpError::SchedulerOrPeNotFound(_) => 2,                // ENOENT
            OpError::Invalid(_) => 22,                                                   // EINVAL
            OpError::OutOfRange(_) => 34,                                                // ERANGE
        }
    }

    /// A precise description of what was wrong.
    pub fn detail(&self) -> String {
        match self {
            OpError::ServiceExists => "a virtual service with this address already exists".into(),
            OpError::NoSuchService | OpError::ServiceNotDefined => {
                "no virtual service with this address".into()
            }
            OpError::DestExists => "this real server is already in the service".into(),
            OpError::NoSuchDest => "no such real server in the service".into(),
            OpError::SchedulerOrPeNotFound(n) => {
                format!("unknown scheduler or persistence engine '{n}'")
            }
            OpError::Invalid(r) | OpError::OutOfRange(r) => (*r).into(),
            OpError::DaemonRunning => "a sync daemon in this state is already running".into(),
            OpError::NoDaemon => "no sync daemon in this state is running".into(),
        }
    }
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpError::ServiceExists => "Service already exists",
            OpError::NoSuchService => "No such service",
            OpError::ServiceNotDefined => "Service not defined",
            OpError::DestExists => "Destination already exists",
            OpError::NoSuchDest => "No such destination",
            OpError::SchedulerOrPeNotFound(_) => "Scheduler or persistence engine not found",
            OpError::Invalid(_) => {
                "Invalid operation.  Possibly wrong module version, address not unicast, ..."
            }
            OpError::OutOfRange(_) => "Numerical result out of range",
            OpError::DaemonRunning => "Daemon has already run",
            OpError::NoDaemon => "No daemon is running",
        })
    }
}

impl std::error::Error for OpError {}

/// A virtual service with its real servers and scheduler state.
#[derive(Clone, Debug)]
pub struct Service {
    pub cfg: ServiceConfig,
    /// Real servers in kernel list order (newest first).
    pub dests: Vec<Dest>,
    pub sched: Sched,
    pub stats: Counters,
    pub rates: Rates,
    /// Which instance of this service key this is: a service deleted and
    /// added again is a new instance (the kernel allocates a new object).
    generation: u64,
}

impl Service {
    fn new(cfg: ServiceConfig, generation: u64) -> Service {
        let mut sched = Sched::new(cfg.scheduler);
        sched.init_service(&SvcView {
            dests: &[],
            flags: cfg.sched_flags,
            family: cfg.key.family(),
        });
        Service {
            cfg,
            dests: Vec::new(),
            sched,
            stats: Counters::default(),
            rates: Rates::default(),
            generation,
        }
    }

    /// What the scheduler sees of this service.
    pub fn view(&self) -> SvcView<'_> {
        SvcView {
            dests: &self.dests,
            flags: self.cfg.sched_flags,
            family: self.cfg.key.family(),
        }
    }

    fn dest_pos(&self, addr: &IpAddr, port: u16) -> Option<usize> {
        self.dests
            .iter()
            .position(|d| d.cfg.addr == *addr && d.cfg.port == port)
    }

    /// Picks a real server for a new connection (index into `dests`).
    pub fn schedule(&mut self, flow: &Flow, ctx: &mut SchedCtx) -> Option<usize> {
        let view = SvcView {
            dests: &self.dests,
            flags: self.cfg.sched_flags,
            family: self.cfg.key.family(),
        };
        self.sched.schedule(&view, flow, ctx)
    }
}

/// Where a real server lives: in a service's list, or in the trash (removed
/// while connections still point at it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DestLoc {
    Listed { slot: usize, pos: usize },
    Trash,
}

/// A removed real server. The kernel always keeps it for a while (the dest
/// trash): connections may still point at it, and re-adding the same server
/// to the same service brings it back with its counters.
#[derive(Clone, Debug)]
struct TrashEntry {
    svc: ServiceKey,
    svc_generation: u64,
    dest: Dest,
    /// When a trash pass first found it unreferenced (`dest->idle_start`).
    idle_since: Option<Time>,
}

/// IP_VS_DEST_TRASH_PERIOD: an unreferenced trashed server is freed once it
/// has been idle this long; the trash timer runs every half period.
pub const DEST_TRASH_PERIOD_MS: u64 = 120_000;

/// The whole rule table of one director.
#[derive(Clone, Debug, Default)]
pub struct IpvsTable {
    slots: Vec<Option<Service>>,
    free_slots: Vec<usize>,
    by_key: HashMap<ServiceKey, usize>,
    dest_loc: HashMap<DestId, DestLoc>,
    trash: HashMap<DestId, TrashEntry>,
    next_trash_pass: Option<Time>,
    next_dest_id: u32,
    next_generation: u64,
    /// Counters over all services (the kernel's tot_stats).
    pub total: Counters,
    pub total_rates: Rates,
    /// Connection timeouts per protocol state (`--set` changes three of them).
    pub timeouts: Timeouts,
    daemons: Vec<DaemonConfig>,
}

/// Connection hash table size reported in the `-L` header (the kernel default
/// of 2^12 buckets).
pub const CONN_TAB_SIZE: u32 = 4096;

impl IpvsTable {
    pub fn new() -> IpvsTable {
        IpvsTable::default()
    }

    /// Number of virtual services.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Applies one command that changes the table. List, save, restore, help
    /// and version commands change nothing and are refused here: the caller
    /// routes them to the formatter or the restore reader.
    pub fn apply(&mut self, cmd: &Command) -> Result<(), OpError> {
        match cmd {
            Command::AddService(cfg) => self.add_service(cfg.clone()),
            Command::EditService(cfg) => self.edit_service(cfg.clone()),
            Command::DeleteService(key) => self.delete_service(key),
            Command::Clear => {
                self.clear();
                Ok(())
            }
            Command::AddDest(key, d) => self.add_dest(key, *d),
            Command::EditDest(key, d) => self.edit_dest(key, *d),
            Command::DeleteDest(key, d) => self.delete_dest(key, d),
            Command::Zero(key) => self.zero(key.as_ref()),
            Command::SetTimeout(t) => self.timeouts.apply(*t).map_err(|_| {
                OpError::Invalid("a timeout is larger than the kernel accepts (2147483 s)")
            }),
            Command::StartDaemon(d) => self.start_daemon(d.clone()),
            Command::StopDaemon(s) => self.stop_daemon(*s),
            Command::List(_)
            | Command::Save { .. }
            | Command::Restore
            | Command::Help
            | Command::Version => Err(OpError::Invalid(
                "this command does not change the rule table",
            )),
        }
    }

    /// Applies commands in order, all or nothing: on the first error the table
    /// is left exactly as it was and the failing command's index is returned.
    pub fn apply_all(&mut self, cmds: &[Command]) -> Result<(), (usize, OpError)> {
        let mut next = self.clone();
        for (i, c) in cmds.iter().enumerate() {
            next.apply(c).map_err(|e| (i, e))?;
        }
        *self = next;
        Ok(())
    }

    pub fn service(&self, key: &ServiceKey) -> Option<&Service> {
        self.by_key.get(key).and_then(|&s| self.slots[s].as_ref())
    }

    pub fn service_mut(&mut self, key: &ServiceKey) -> Option<&mut Service> {
        let s = *self.by_key.get(key)?;
        self.slots[s].as_mut()
    }

    /// Services in table order (the order `--nosort` lists them).
    pub fn services(&self) -> impl Iterator<Item = &Service> {
        self.slots.iter().flatten()
    }

    pub fn services_mut(&mut self) -> impl Iterator<Item = &mut Service> {
        self.slots.iter_mut().flatten()
    }

    /// A real server by id, listed or in the trash.
    pub fn dest(&self, id: DestId) -> Option<&Dest> {
        match self.dest_loc.get(&id)? {
            DestLoc::Listed { slot, pos } => self.slots[*slot].as_ref().map(|s| &s.dests[*pos]),
            DestLoc::Trash => self.trash.get(&id).map(|t| &t.dest),
        }
    }

    pub fn dest_mut(&mut self, id: DestId) -> Option<&mut Dest> {
        match *self.dest_loc.get(&id)? {
            DestLoc::Listed { slot, pos } => self.slots[slot].as_mut().map(|s| &mut s.dests[pos]),
            DestLoc::Trash => self.trash.get_mut(&id).map(|t| &mut t.dest),
        }
    }

    /// The service a listed real server belongs to.
    pub fn service_of(&self, id: DestId) -> Option<&Service> {
        match self.dest_loc.get(&id)? {
            DestLoc::Listed { slot, .. } => self.slots[*slot].as_ref(),
            DestLoc::Trash => None,
        }
    }

    /// Removed real servers still held in the trash.
    pub fn trash_len(&self) -> usize {
        self.trash.len()
    }

    /// Removed real servers still held in the trash.
    pub fn trash(&self) -> impl Iterator<Item = &Dest> {
        self.trash.values().map(|t| &t.dest)
    }

    /// The trash timer (`ip_vs_dest_trash_expire`): a pass every 60 s while
    /// the trash is not empty (the first one 60 s after the first call that
    /// finds it non-empty). A pass marks each unreferenced server idle, and
    /// frees those idle for 120 s; referenced ones wait. Call it with the
    /// current time at least once a second.
    pub fn purge_trash(&mut self, now: Time) {
        if self.trash.is_empty() {
            self.next_trash_pass = None;
            return;
        }
        let due = *self
            .next_trash_pass
            .get_or_insert(Time(now.0 + DEST_TRASH_PERIOD_MS / 2));
        if now < due {
            return;
        }
        self.next_trash_pass = Some(Time(now.0 + DEST_TRASH_PERIOD_MS / 2));
        let mut dead = Vec::new();
        for (id, t) in self.trash.iter_mut() {
            if t.dest.total_conns() > 0 || t.dest.persist_conns > 0 {
                continue;
            }
            match t.idle_since {
                None => t.idle_since = Some(now),
                Some(since) if now.0 >= since.0 + DEST_TRASH_PERIOD_MS => dead.push(*id),
                Some(_) => {}
            }
        }
        for id in dead {
            self.trash.remove(&id);
            self.dest_loc.remove(&id);
        }
    }

    /// Lets schedulers with caches expire entries (lblc, lblcr).
    pub fn tick(&mut self, now: Time) {
        for svc in self.services_mut() {
            svc.sched.tick(now);
        }
    }

    fn add_service(&mut self, cfg: ServiceConfig) -> Result<(), OpError> {
        // ip_vs_genl_set_cmd: an existing service is EEXIST before
        // ip_vs_add_service looks at the scheduler, engine or netmask.
        if self.by_key.contains_key(&cfg.key) {
            return Err(OpError::ServiceExists);
        }
        validate_service(&cfg)?;
        let key = cfg.key;
        self.next_generation += 1;
        let svc = Service::new(cfg, self.next_generation);
        let slot = match self.free_slots.pop() {
            Some(s) => {
                self.slots[s] = Some(svc);
                s
            }
            None => {
                self.slots.push(Some(svc));
                self.slots.len() - 1
            }
        };
        self.by_key.insert(key, slot);
        Ok(())
    }

    fn edit_service(&mut self, cfg: ServiceConfig) -> Result<(), OpError> {
        if !self.by_key.contains_key(&cfg.key) {
            return Err(OpError::NoSuchService);
        }
        validate_service(&cfg)?;
        let svc = self.service_mut(&cfg.key).expect("checked above");
        let rebind = svc.cfg.scheduler != cfg.scheduler;
        svc.cfg = cfg;
        if rebind {
            // ip_vs_edit_service: unbind the old scheduler, bind and
            // initialise the new one against the current list.
            let mut sched = Sched::new(svc.cfg.scheduler);
            sched.init_service(&svc.view());
            svc.sched = sched;
        }
        Ok(())
    }

    fn delete_service(&mut self, key: &ServiceKey) -> Result<(), OpError> {
        let slot = self.by_key.remove(key).ok_or(OpError::NoSuchService)?;
        let svc = self.slots[slot]
            .take()
            .expect("indexed slot holds a service");
        self.free_slots.push(slot);
        for mut d in svc.dests {
            d.available = false;
            self.retire_dest(*key, svc.generation, d);
        }
        Ok(())
    }

    fn clear(&mut self) {
        let keys: Vec<ServiceKey> = self.by_key.keys().copied().collect();
        for k in keys {
            // Cannot fail: every key comes from the index.
            let _ = self.delete_service(&k);
        }
    }

    /// __ip_vs_del_dest: a removed real server always goes to the trash.
    fn retire_dest(&mut self, svc: ServiceKey, svc_generation: u64, dest: Dest) {
        let id = dest.id;
        self.dest_loc.insert(id, DestLoc::Trash);
        self.trash.insert(
            id,
            TrashEntry {
                svc,
                svc_generation,
                dest,
                idle_since: None,
            },
        );
    }

    fn reindex(&mut self, slot: usize) {
        if let Some(svc) = self.slots[slot].as_ref() {
            for (pos, d) in svc.dests.iter().enumerate() {
                self.dest_loc.insert(d.id, DestLoc::Listed { slot, pos });
            }
        }
    }

    fn add_dest(&mut self, key: &ServiceKey, cfg: DestConfig) -> Result<(), OpError> {
        let slot = *self.by_key.get(key).ok_or(OpError::ServiceNotDefined)?;
        self.validate_dest(key.family(), &cfg)?;
        let svc = self.slots[slot].as_ref().expect("indexed slot");
        if svc.dest_pos(&cfg.addr, cfg.port).is_some() {
            return Err(OpError::DestExists);
        }
        let generation = svc.generation;
        // ip_vs_trash_get_dest: a server removed from this same service while
        // still in use comes back with its counters and connections.
        let from_trash = self
            .trash
            .iter()
            .find(|(_, t)| {
                t.svc == *key && t.dest.cfg.addr == cfg.addr && t.dest.cfg.port == cfg.port
            })
            .map(|(id, _)| *id);
        let dest = match from_trash {
            Some(id) => {
                let t = self.trash.remove(&id).expect("found above");
                let mut d = t.dest;
                if t.svc_generation != generation {
                    // The service was deleted and created again: the
                    // kernel binds the server to the new service and
                    // zeroes its counters.
                    d.stats = Counters::default();
                    d.rates = Rates::default();
                }
                update_dest(&mut d, cfg, true);
                d
            }
            None => {
                if !is_unicast(&cfg.addr) {
                    // ip_vs_new_dest: only a new server's address is checked.
                    return Err(OpError::Invalid(
                        "real server address is not a unicast address",
                    ));
                }
                self.next_dest_id += 1;
                Dest::new(DestId(self.next_dest_id), cfg)
            }
        };
        let id = dest.id;
        let svc = self.slots[slot].as_mut().expect("indexed slot");
        svc.dests.insert(0, dest);
        let view = SvcView {
            dests: &svc.dests,
            flags: svc.cfg.sched_flags,
            family: svc.cfg.key.family(),
        };
        svc.sched.add_dest(&view, id);
        self.reindex(slot);
        Ok(())
    }

    fn edit_dest(&mut self, key: &ServiceKey, cfg: DestConfig) -> Result<(), OpError> {
        let slot = *self.by_key.get(key).ok_or(OpError::ServiceNotDefined)?;
        self.validate_dest(key.family(), &cfg)?;
        let svc = self.slots[slot].as_mut().expect("indexed slot");
        let pos = svc
            .dest_pos(&cfg.addr, cfg.port)
            .ok_or(OpError::NoSuchDest)?;
        update_dest(&mut svc.dests[pos], cfg, false);
        let id = svc.dests[pos].id;
        let view = SvcView {
            dests: &svc.dests,
            flags: svc.cfg.sched_flags,
            family: svc.cfg.key.family(),
        };
        svc.sched.upd_dest(&view, id);
        Ok(())
    }

    fn delete_dest(&mut self, key: &ServiceKey, d: &DestAddr) -> Result<(), OpError> {
        let slot = *self.by_key.get(key).ok_or(OpError::ServiceNotDefined)?;
        let svc = self.slots[slot].as_mut().expect("indexed slot");
        let pos = svc.dest_pos(&d.addr, d.port).ok_or(OpError::NoSuchDest)?;
        let mut removed = svc.dests.remove(pos);
        removed.available = false;
        let view = SvcView {
            dests: &svc.dests,
            flags: svc.cfg.sched_flags,
            family: svc.cfg.key.family(),
        };
        svc.sched.del_dest(&view, &removed, pos);
        let generation = svc.generation;
        self.retire_dest(*key, generation, removed);
        self.reindex(slot);
        Ok(())
    }

    fn zero(&mut self, key: Option<&ServiceKey>) -> Result<(), OpError> {
        fn zero_svc(svc: &mut Service) {
            svc.stats = Counters::default();
            svc.rates = Rates::default();
            for d in &mut svc.dests {
                d.stats = Counters::default();
                d.rates = Rates::default();
            }
        }
        match key {
            Some(k) => zero_svc(self.service_mut(k).ok_or(OpError::NoSuchService)?),
            None => {
                for svc in self.services_mut() {
                    zero_svc(svc);
                }
                self.total = Counters::default();
                self.total_rates = Rates::default();
            }
        }
        Ok(())
    }

    fn start_daemon(&mut self, d: DaemonConfig) -> Result<(), OpError> {
        // ip_vs_genl_new_daemon: the sync protocol cannot carry services
        // whose real servers are of another address family.
        if self.mixed_family_dests() {
            return Err(OpError::Invalid(
                "connection sync cannot run while a service has real servers of another address family",
            ));
        }
        if self.daemons.iter().any(|x| x.state == d.state) {
            return Err(OpError::DaemonRunning);
        }
        self.daemons.push(d);
        Ok(())
    }

    fn stop_daemon(&mut self, state: DaemonState) -> Result<(), OpError> {
        let before = self.daemons.len();
        self.daemons.retain(|d| d.state != state);
        if self.daemons.len() == before {
            return Err(OpError::NoDaemon);
        }
        Ok(())
    }

    /// The running sync daemons (`-L --daemon`).
    pub fn daemons(&self) -> &[DaemonConfig] {
        &self.daemons
    }

    /// A read-only copy in the shape ipvsadm prints.
    pub fn snapshot(&self) -> TableSnapshot {
        TableSnapshot {
            services: self
                .services()
                .map(|s| ServiceEntry {
                    cfg: s.cfg.clone(),
                    stats: s.stats,
                    rates: s.rates,
                    dests: s
                        .dests
                        .iter()
                        .map(|d| DestEntry {
                            cfg: d.cfg,
                            active_conns: d.active_conns,
                            inact_conns: d.inact_conns,
                            persist_conns: d.persist_conns,
                            stats: d.stats,
                            rates: d.rates,
                        })
                        .collect(),
                })
                .collect(),
            conn_tab_size: CONN_TAB_SIZE,
        }
    }
}

/// __ip_vs_update_dest: new weight and thresholds; last_weight keeps the
/// latest non-zero weight; OVERLOAD is cleared when the upper threshold is
/// removed or raised.
fn update_dest(d: &mut Dest, cfg: DestConfig, add: bool) {
    if add || cfg.weight != 0 {
        d.last_weight = cfg.weight;
    }
    if cfg.u_threshold == 0 || cfg.u_threshold > d.cfg.u_threshold {
        d.overloaded = false;
    }
    d.cfg = cfg;
    d.available = true;
}

fn validate_service(cfg: &ServiceConfig) -> Result<(), OpError> {
    if let Some(pe) = &cfg.pe_name {
        // The kernel has one persistence engine.
        if pe != "sip" {
            return Err(OpError::SchedulerOrPeNotFound(pe.clone()));
        }
    }
    if let (Family::Inet6, Some(p)) = (cfg.key.family(), cfg.persistence) {
        if !(1..=128).contains(&p.netmask) {
            return Err(OpError::Invalid(
                "IPv6 persistence prefix length must be 1..128",
            ));
        }
    }
    // `-o` on a TCP service is refused by ipvsadm's own checks (the parser);
    // the kernel accepts the flag and applies it to UDP packets only.
    Ok(())
}

impl IpvsTable {
    fn mixed_family_dests(&self) -> bool {
        self.services().any(|s| {
            s.dests
                .iter()
                .any(|d| Family::of(&d.cfg.addr) != s.cfg.key.family())
        })
    }

    /// The checks ip_vs_genl_set_cmd, ip_vs_add_dest and ip_vs_edit_dest make
    /// before looking the server up, in the kernel's order.
    fn validate_dest(&self, svc_family: Family, cfg: &DestConfig) -> Result<(), OpError> {
        if Family::of(&cfg.addr) != svc_family {
            if !self.daemons.is_empty() {
                return Err(OpError::Invalid(
                    "a real server of another address family cannot be added while connection sync runs",
                ));
            }
            if cfg.fwd != FwdMethod::Tunnel {
                return Err(OpError::Invalid(
                    "a real server of another address family is allowed only with tunnelling (-i)",
                ));
            }
        }
        validate_dest(cfg)
    }
}

/// What the kernel's inet_addr_type()/ipv6_addr_type() accept for a real
/// server: unicast, not 0.0.0.0/8, multicast, broadcast, link-local IPv6 or
/// IPv4-mapped IPv6.
fn is_unicast(addr: &IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => !(a.octets()[0] == 0 || a.is_multicast() || a.is_broadcast()),
        IpAddr::V6(a) => {
            !(a.is_unspecified()
                || a.is_multicast()
                || (a.segments()[0] & 0xffc0) == 0xfe80
                || a.to_ipv4_mapped().is_some())
        }
    }
}

fn validate_dest(cfg: &DestConfig) -> Result<(), OpError> {
    if cfg.weight > i32::MAX as u32 {
        return Err(OpError::OutOfRange("server weight less than zero"));
    }
    if cfg.l_threshold > cfg.u_threshold {
        return Err(OpError::OutOfRange(
            "lower threshold is higher than upper threshold",
        ));
    }
    if cfg.tun_type == TunType::Gue && cfg.fwd == FwdMethod::Tunnel && cfg.tun_port == 0 {
        return Err(OpError::Invalid(
            "GUE tunnelling needs a tunnel port (--tun-port)",
        ));
    }
    Ok(())
}
