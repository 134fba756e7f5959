//! The packet-level model of an LVS director: what `ip_vs_in()` and
//! `ip_vs_out()` (net/netfilter/ipvs/ip_vs_core.c) do with each packet.
//!
//! For a client packet: find its connection; a new-connection packet on a
//! finished entry may replace it (conn_reuse_mode); a connection whose real
//! server was removed drops its packets (or, with expire_nodest_conn, is
//! expired and the packet scheduled afresh); otherwise a SYN (or any UDP
//! packet) to a virtual service is scheduled, through the persistence template
//! if the service is persistent. The entry then counts the packet and takes
//! its protocol state transition. For a NAT real server's reply: find the
//! connection by its server side, count it, transition in the OUTPUT
//! direction, and hand it back with the VIP as source.
//!
//! This is the reference the eBPF datapath is tested against: the same
//! packets in the same order must give the same verdicts and the same real
//! servers.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::conn::{
    reuse_decision, Conn, ConnId, ConnTable, CountChange, Dir, Pkt, Reuse, TcpFlags,
};
use crate::ipvsadm::Command;
use crate::model::{DestId, Family, Flow, FwdMethod, Protocol, ServiceKey};
use crate::persist::{
    conn_dport, persistent_conn_dport, template_dport, template_key, template_valid, Sysctls,
};
use crate::rng::SplitMix64;
use crate::sched::SchedCtx;
use crate::snapshot::{ConnEntry, TableSnapshot};
use crate::stats::{Counters, Estimator};
use crate::table::{IpvsTable, OpError};
use crate::time::Time;

/// A packet as the director sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Addresses and ports as on the wire.
    pub flow: Flow,
    /// What the protocol state machine needs (TCP flags, SCTP first chunk);
    /// its protocol must be `flow.protocol`.
    pub l4: Pkt,
    /// Length of the IP packet in bytes (what the byte counters add).
    pub len: u32,
    /// Firewall mark (`skb->mark`), 0 if none.
    pub fwmark: u32,
}

impl Packet {
    /// A TCP segment with these flags.
    pub fn tcp(flow: Flow, flags: TcpFlags, len: u32) -> Packet {
        debug_assert_eq!(flow.protocol, Protocol::Tcp);
        Packet {
            flow,
            l4: Pkt::Tcp(flags),
            len,
            fwmark: 0,
        }
    }

    /// A UDP datagram.
    pub fn udp(flow: Flow, len: u32) -> Packet {
        debug_assert_eq!(flow.protocol, Protocol::Udp);
        Packet {
            flow,
            l4: Pkt::Udp,
            len,
            fwmark: 0,
        }
    }

    /// The same packet carrying a firewall mark.
    pub fn with_fwmark(mut self, mark: u32) -> Packet {
        self.fwmark = mark;
        self
    }
}

/// Why a packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// A virtual service matched but no real server could take the new
    /// connection; the kernel also answers with ICMP port unreachable.
    NoDestination,
    /// The connection's real server is no longer in its service.
    DestUnavailable,
}

/// What happens to a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Client to real server, by `fwd`, to `daddr:dport` (NAT rewrites the
    /// destination to it; DR and TUN keep the VIP and use `daddr` as next hop
    /// or tunnel endpoint).
    ToReal {
        dest: DestId,
        daddr: IpAddr,
        dport: u16,
        fwd: FwdMethod,
        /// This packet created the connection.
        new_conn: bool,
    },
    /// A NAT real server's reply, with its source rewritten to `vaddr:vport`.
    ToClient {
        vaddr: IpAddr,
        vport: u16,
    },
    /// Not for a virtual service: the director's own stack takes it.
    Pass,
    Drop(DropReason),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum EstKey {
    Total,
    Service(ServiceKey),
    Dest(DestId),
}

/// FTPDATA: packets from this client port are never scheduled.
const FTP_DATA_PORT: u16 = 20;

/// The rate estimator's sampling period (ip_vs_est.c).
const EST_PERIOD_MS: u64 = 2000;

/// A director: the rule table, the connection table, and the sysctls.
pub struct Director {
    pub table: IpvsTable,
    pub sysctls: Sysctls,
    conns: ConnTable,
    rng: SplitMix64,
    estimators: HashMap<EstKey, Estimator>,
    next_estimate: Time,
    /// A real server was removed with expire_nodest_conn set: the next timer
    /// pass expires its connections (ip_vs_expire_nodest_conn_flush).
    flush_nodest: bool,
}

impl Director {
    /// An empty director; `seed` drives the random draws of the twos scheduler.
    pub fn new(seed: u64) -> Director {
        Director {
            table: IpvsTable::new(),
            sysctls: Sysctls::default(),
            conns: ConnTable::new(),
            rng: SplitMix64::new(seed),
            // The total is estimated from the start, like the kernel's tot_stats.
            estimators: HashMap::from([(
                EstKey::Total,
                Estimator::new(Time::ZERO, &Counters::default()),
            )]),
            next_estimate: Time(EST_PERIOD_MS),
            flush_nodest: false,
        }
    }

    /// Applies a rule command (see [`IpvsTable::apply`]).
    pub fn apply(&mut self, cmd: &Command) -> Result<(), OpError> {
        self.table.apply(cmd)?;
        self.after_apply(std::slice::from_ref(cmd));
        Ok(())
    }

    /// Applies a batch all or nothing (see [`IpvsTable::apply_all`]).
    pub fn apply_all(&mut self, cmds: &[Command]) -> Result<(), (usize, OpError)> {
        self.table.apply_all(cmds)?;
        self.after_apply(cmds);
        Ok(())
    }

    fn after_apply(&mut self, cmds: &[Command]) {
        for c in cmds {
            match c {
                Command::Zero(key) => self.zero_estimators(key.as_ref()),
                Command::DeleteDest(..) | Command::DeleteService(_) | Command::Clear => {
                    self.flush_nodest |= self.sysctls.expire_nodest_conn;
                }
                _ => {}
            }
        }
        // ip_vs_start_estimator: a new service or real server (or one back
        // from the trash) is estimated from its counters as they are now.
        self.seed_estimators();
    }

    /// The estimator samples at the start of the current period.
    fn last_sample(&self) -> Time {
        Time(self.next_estimate.0 - EST_PERIOD_MS)
    }

    fn seed_estimators(&mut self) {
        let at = self.last_sample();
        let mut missing = vec![(EstKey::Total, self.table.total)];
        for svc in self.table.services() {
            missing.push((EstKey::Service(svc.cfg.key), svc.stats));
            missing.extend(svc.dests.iter().map(|d| (EstKey::Dest(d.id), d.stats)));
        }
        for (k, c) in missing {
            self.estimators
                .entry(k)
                .or_insert_with(|| Estimator::new(at, &c));
        }
    }

    /// Live entries in the connection table (templates included).
    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    pub fn conns(&self) -> &ConnTable {
        &self.conns
    }

    /// One packet through the director.
    pub fn process(&mut self, now: Time, pkt: &Packet) -> Verdict {
        let p = pkt.l4;
        debug_assert_eq!(
            p.protocol(),
            pkt.flow.protocol,
            "packet kind and flow disagree"
        );
        let mut cp = self.conns.find_in_flow(&pkt.flow);
        if cp.is_none() {
            if let Some(id) = self.conns.find_out_flow(&pkt.flow) {
                return self.reply(now, id, p, pkt.len);
            }
        }

        // A new connection attempt on a finished entry (conn_reuse_mode).
        if let Some(id) = cp {
            let conn = self.conns.get(id).expect("found above");
            let weight = conn
                .dest
                .and_then(|d| self.table.dest(d))
                .map(|d| d.weight());
            if let Reuse::Reschedule { expire_old } = reuse_decision(conn, p, weight, &self.sysctls)
            {
                // ip_vs_conn_expire_now: the old entry's timer fires now; it
                // stays bound (and counted) until the next timer pass, and the
                // new connection shadows it in the table.
                if expire_old {
                    self.conns.expire_now(id, now);
                }
                cp = None;
            }
        }

        // The connection's real server has been removed.
        if let Some(id) = cp {
            let conn = self.conns.get(id).expect("found above");
            let available = match conn.dest {
                Some(d) => self.table.dest(d).is_some_and(|d| d.available),
                None => true,
            };
            if !available {
                if !self.sysctls.expire_nodest_conn {
                    return Verdict::Drop(DropReason::DestUnavailable);
                }
                self.conns.expire_now(id, now);
                cp = None;
            }
        }

        let (id, new_conn) = match cp {
            Some(id) => (id, false),
            None => match self.schedule(now, pkt, p) {
                Scheduled::Conn(id) => (id, true),
                Scheduled::OnePacket(verdict) => return verdict,
                Scheduled::Pass => return Verdict::Pass,
                Scheduled::Unreachable => return Verdict::Drop(DropReason::NoDestination),
            },
        };

        let conn = self.conns.get(id).expect("live connection");
        let (dest, daddr, dport, fwd) = (conn.dest, conn.daddr, conn.dport, conn.fwd);
        self.count(dest, pkt.len, true);
        let change = self
            .conns
            .packet(id, Dir::Input, p, now, &self.table.timeouts);
        self.apply_counts(change, None);
        Verdict::ToReal {
            dest: dest.expect("scheduled connections have a real server"),
            daddr,
            dport,
            fwd,
            new_conn,
        }
    }

    /// ip_vs_out(): a real server's packet to a client of a NAT connection.
    fn reply(&mut self, now: Time, id: ConnId, p: Pkt, len: u32) -> Verdict {
        let conn = self.conns.get(id).expect("found by caller");
        if conn.fwd != FwdMethod::Masq {
            return Verdict::Pass;
        }
        let (dest, vaddr, vport) = (conn.dest, conn.vaddr, conn.vport);
        self.count(dest, len, false);
        let change = self
            .conns
            .packet(id, Dir::Output, p, now, &self.table.timeouts);
        self.apply_counts(change, None);
        Verdict::ToClient { vaddr, vport }
    }

    /// The service a new packet belongs to (ip_vs_service_find): a fwmark
    /// service first when the packet carries a matching mark, then the exact
    /// <protocol, address, port>, then the port-zero service of the address.
    fn service_for(&self, pkt: &Packet) -> Option<ServiceKey> {
        let f = &pkt.flow;
        if pkt.fwmark != 0 {
            let key = ServiceKey::Fwmark {
                family: Family::of(&f.dst),
                mark: pkt.fwmark,
            };
            if self.table.service(&key).is_some() {
                return Some(key);
            }
        }
        [f.dport, 0].into_iter().find_map(|port| {
            let key = ServiceKey::Addr {
                protocol: f.protocol,
                addr: f.dst,
                port,
            };
            self.table.service(&key).map(|_| key)
        })
    }

    /// tcp/udp_conn_schedule() and ip_vs_schedule(): create the connection
    /// for a new packet, or say why not.
    fn schedule(&mut self, now: Time, pkt: &Packet, p: Pkt) -> Scheduled {
        let flow = pkt.flow;
        // Only a connection's first packet is scheduled: a TCP SYN without RST,
        // an SCTP INIT (or anything but an ABORT first, with the sloppy
        // sysctls), any UDP datagram.
        let first = match p {
            Pkt::Tcp(t) => (t.syn || self.sysctls.sloppy_tcp) && !t.rst,
            Pkt::Sctp { first_chunk, .. } => {
                first_chunk != crate::conn::sctp::chunk::ABORT
                    && (p.is_new_conn() || self.sysctls.sloppy_sctp)
            }
            Pkt::Udp => true,
        };
        if !first {
            return Scheduled::Pass;
        }
        let Some(key) = self.service_for(pkt) else {
            return Scheduled::Pass;
        };
        // ip_vs_schedule: active FTP data (client port 20) is never scheduled.
        if flow.sport == FTP_DATA_PORT {
            return Scheduled::Pass;
        }
        let svc = self.table.service(&key).expect("found above");
        let (svc_port, persistence, one_packet_svc) =
            (key.port(), svc.cfg.persistence, svc.cfg.one_packet);
        let one_packet = one_packet_svc && flow.protocol == Protocol::Udp;

        let (dest_id, dport, control) = if let Some(pers) = persistence {
            // ip_vs_sched_persist()
            let tkey = template_key(
                &key,
                pers.netmask,
                flow.protocol,
                flow.src,
                flow.dst,
                flow.dport,
            );
            let mut tpl = self.conns.find_template(&tkey);
            if let Some(ct) = tpl {
                let dest = self
                    .conns
                    .get(ct)
                    .and_then(|c| c.dest)
                    .and_then(|d| self.table.dest(d));
                if !template_valid(dest, &self.sysctls) {
                    self.conns.invalidate_template(ct);
                    tpl = None;
                }
            }
            let ct = match tpl {
                Some(ct) => ct,
                None => {
                    let Some(idx) = self.pick(&key, &flow, now) else {
                        return Scheduled::Unreachable;
                    };
                    let d = &self.table.service(&key).expect("exists").dests[idx];
                    let tpl_conn = Conn::template(
                        &tkey,
                        d.cfg.addr,
                        template_dport(flow.dport, svc_port, d.cfg.port),
                        d.id,
                        d.cfg.fwd,
                        pers.timeout,
                    );
                    let (ct, change) = self.conns.insert(tpl_conn, now);
                    self.apply_counts(change, Some(true));
                    ct
                }
            };
            let dest_id = self
                .conns
                .get(ct)
                .and_then(|c| c.dest)
                .expect("templates have a real server");
            let dest_port = self.table.dest(dest_id).expect("valid template").cfg.port;
            (
                dest_id,
                persistent_conn_dport(flow.dport, svc_port, dest_port),
                Some(ct),
            )
        } else {
            if !matches!(key, ServiceKey::Fwmark { .. }) && flow.dport != svc_port {
                // Port-zero services schedule only with persistence.
                return Scheduled::Unreachable;
            }
            let Some(idx) = self.pick(&key, &flow, now) else {
                return Scheduled::Unreachable;
            };
            let d = &self.table.service(&key).expect("exists").dests[idx];
            (d.id, conn_dport(flow.dport, d.cfg.port), None)
        };

        let dest = self
            .table
            .dest(dest_id)
            .expect("scheduled real server exists");
        let mut conn = Conn::new(
            &flow,
            dest.cfg.addr,
            dport,
            Some(dest_id),
            dest.cfg.fwd,
            one_packet,
        );
        conn.control = control;
        // ip_vs_conn_stats(): the new connection counts for its real server,
        // its service and the total.
        self.count_conn(dest_id, key);
        if let Some(ct) = control {
            self.conns.touch(ct, now);
        }
        if one_packet {
            // Never hashed: bound, used for this one packet, and freed.
            let bind = conn.bind_change();
            self.apply_counts(bind, Some(true));
            self.count(Some(dest_id), pkt.len, true);
            let change = conn.transition(Dir::Input, p, &self.table.timeouts);
            self.apply_counts(change, None);
            let verdict = Verdict::ToReal {
                dest: dest_id,
                daddr: conn.daddr,
                dport: conn.dport,
                fwd: conn.fwd,
                new_conn: true,
            };
            self.apply_counts(conn.unbind_change(), Some(false));
            return Scheduled::OnePacket(verdict);
        }
        let (id, bind) = self.conns.insert(conn, now);
        self.apply_counts(bind, Some(true));
        Scheduled::Conn(id)
    }

    /// Runs the service's scheduler.
    fn pick(&mut self, key: &ServiceKey, flow: &Flow, now: Time) -> Option<usize> {
        let svc = self.table.service_mut(key)?;
        let mut ctx = SchedCtx {
            now,
            rng: &mut self.rng,
        };
        svc.schedule(flow, &mut ctx)
    }

    /// Applies a count change to its real server; `bound` is Some(true) after
    /// a bind, Some(false) after an unbind (the overload rule runs), None for
    /// a state change.
    fn apply_counts(&mut self, change: CountChange, bound: Option<bool>) {
        if change.is_zero() && bound.is_none() {
            return;
        }
        let Some(d) = change.dest.and_then(|id| self.table.dest_mut(id)) else {
            return;
        };
        change.apply(d);
        if let Some(b) = bound {
            d.update_overload(b);
        }
    }

    /// ip_vs_in_stats() / ip_vs_out_stats(): packet and byte counters of the
    /// real server (if still in its service), its service and the total.
    fn count(&mut self, dest: Option<DestId>, len: u32, inbound: bool) {
        let bump = |c: &mut Counters| {
            if inbound {
                c.inpkts += 1;
                c.inbytes += len as u64;
            } else {
                c.outpkts += 1;
                c.outbytes += len as u64;
            }
        };
        let Some(id) = dest else { return };
        let Some(d) = self.table.dest_mut(id) else {
            return;
        };
        if !d.available {
            return;
        }
        bump(&mut d.stats);
        let key = self.table.service_of(id).map(|s| s.cfg.key);
        if let Some(svc) = key.and_then(|k| self.table.service_mut(&k)) {
            bump(&mut svc.stats);
        }
        bump(&mut self.table.total);
    }

    fn count_conn(&mut self, dest: DestId, key: ServiceKey) {
        if let Some(d) = self.table.dest_mut(dest) {
            d.stats.conns += 1;
        }
        if let Some(svc) = self.table.service_mut(&key) {
            svc.stats.conns += 1;
        }
        self.table.total.conns += 1;
    }

    /// Timer work up to `now`: frees expired connections and templates (and
    /// unbinds them), runs scheduler cache expiry, releases unused trashed
    /// real servers, and samples the rate estimators every 2 s. Call it at
    /// least once a second. Returns how many entries were freed.
    pub fn expire(&mut self, now: Time) -> usize {
        if std::mem::take(&mut self.flush_nodest) {
            self.flush_nodest_conns(now);
        }
        let expired = self.conns.expire(now);
        let n = expired.len();
        for e in expired {
            self.apply_counts(e.counts, Some(false));
        }
        self.table.tick(now);
        self.table.purge_trash(now);
        while self.next_estimate <= now {
            let at = self.next_estimate;
            self.estimate(at);
            self.next_estimate = Time(at.0 + EST_PERIOD_MS);
        }
        n
    }

    /// ip_vs_expire_nodest_conn_flush: with expire_nodest_conn, connections
    /// whose real server was removed are expired without waiting for their
    /// next packet, and so is a template left controlling nothing else.
    fn flush_nodest_conns(&mut self, now: Time) {
        let mut doomed = Vec::new();
        for (id, c) in self.conns.iter() {
            let Some(d) = c.dest else { continue };
            if c.n_control > 0 || self.table.dest(d).is_some_and(|d| d.available) {
                continue;
            }
            doomed.push(id);
            if let Some(ct) = c.control {
                if self.conns.get(ct).is_some_and(|t| t.n_control == 1) {
                    doomed.push(ct);
                }
            }
        }
        for id in doomed {
            self.conns.expire_now(id, now);
        }
    }

    fn estimate(&mut self, now: Time) {
        let mut samples: Vec<(EstKey, Counters)> = vec![(EstKey::Total, self.table.total)];
        for svc in self.table.services() {
            samples.push((EstKey::Service(svc.cfg.key), svc.stats));
            samples.extend(svc.dests.iter().map(|d| (EstKey::Dest(d.id), d.stats)));
        }
        let mut live = HashMap::with_capacity(samples.len());
        for (k, c) in samples {
            let mut est = self
                .estimators
                .remove(&k)
                .unwrap_or_else(|| Estimator::new(Time(now.0 - EST_PERIOD_MS), &c));
            est.sample(now, &c);
            let r = est.rates();
            match k {
                EstKey::Total => self.table.total_rates = r,
                EstKey::Service(key) => {
                    if let Some(s) = self.table.service_mut(&key) {
                        s.rates = r;
                    }
                }
                EstKey::Dest(id) => {
                    if let Some(d) = self.table.dest_mut(id) {
                        d.rates = r;
                    }
                }
            }
            live.insert(k, est);
        }
        self.estimators = live;
    }

    fn zero_estimators(&mut self, key: Option<&ServiceKey>) {
        match key {
            None => self.estimators.clear(),
            Some(k) => {
                let dests: Vec<DestId> = self
                    .table
                    .service(k)
                    .map(|s| s.dests.iter().map(|d| d.id).collect())
                    .unwrap_or_default();
                self.estimators.remove(&EstKey::Service(*k));
                for d in dests {
                    self.estimators.remove(&EstKey::Dest(d));
                }
            }
        }
    }

    /// The table in ipvsadm's shape.
    pub fn snapshot(&self) -> TableSnapshot {
        self.table.snapshot()
    }

    /// `ipvsadm -Lc`: connections and templates with seconds left at `now`.
    pub fn connections(&self, now: Time) -> Vec<ConnEntry> {
        self.conns.iter().map(|(_, c)| conn_entry(c, now)).collect()
    }
}

enum Scheduled {
    Conn(ConnId),
    OnePacket(Verdict),
    Pass,
    Unreachable,
}

fn conn_entry(c: &Conn, now: Time) -> ConnEntry {
    let protocol = match c.protocol() {
        Some(p) => p.name().to_string(),
        None => "IP".to_string(),
    };
    ConnEntry {
        protocol,
        caddr: c.caddr,
        cport: c.cport,
        vaddr: c.vaddr,
        vport: c.vport,
        daddr: c.daddr,
        dport: c.dport,
        state: c.state.name().to_string(),
        expires: now.until(c.expires).as_secs(),
        pe_name: None,
        pe_data: None,
    }
}
