//! Locality-based least-connection with replication
//! (net/netfilter/ipvs/ip_vs_lblcr.c).
//!
//! Like lblc, but each destination address maps to a *set* of real servers.
//! A flow goes to the set's weighted least-connection member
//! (`ip_vs_dest_set_min`: members flagged overloaded, with weight 0 or no
//! longer in the list are passed over). When there is none, or it is
//! "overloaded" by lblc's rule (more active connections than its weight while
//! some server has `2 * active < weight`), the service-wide weighted
//! least-connection server is picked and added to the set (at its head).
//!
//! The set shrinks on use: when it has more than one member and was last
//! modified more than the expiration time ago (sysctl `lblcr_expiration`,
//! default 24 h -- the kernel compares `lastmod` with the expiration sysctl,
//! not with the 6-minute ENTRY_TIMEOUT), its weighted most-loaded member
//! (`ip_vs_dest_set_max`) is erased. Adding or erasing a member sets `lastmod`.
//!
//! Whole entries expire through the same 60-second timer as lblc (see
//! [`super::lblc`]; same timer origin: armed at the first `tick` after
//! `init_service`). Unlike lblc, `ip_vs_lblcr_new()` never replaces an entry,
//! so its entry counter stays exact.
//!
//! Removed servers: the kernel keeps a removed server alive (in the trash)
//! while a set references it; its weight stays as it was and its
//! connections drain. The scheduler only sees the current list, so for a
//! member no longer in the list the model uses the weight it last saw for it
//! (refreshed whenever the entry is used) and an overhead of 0 (connections
//! drained). This only matters to `ip_vs_dest_set_max`, which ignores
//! availability; `ip_vs_dest_set_min` never picks an unavailable member.

use std::net::IpAddr;
use std::time::Duration;

use super::lblc::{lblc_overloaded, wlc_pick, CacheEntry, CacheTable};
use super::{SchedCtx, Scheduler, SchedulerKind, SvcView};
use crate::model::{DestId, Family, Flow};
use crate::time::Time;

/// One member of a server set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetMember {
    pub dest: DestId,
    /// The member's weight when the model last saw it in the list.
    pub last_seen_weight: u32,
}

/// A destination address's server set (`struct ip_vs_dest_set`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestSet {
    /// Members, most recently added first (`list_add_rcu`).
    pub members: Vec<SetMember>,
    pub lastmod: Time,
}

impl DestSet {
    /// `ip_vs_dest_set_insert()`.
    fn insert(&mut self, dest: DestId, weight: u32, check: bool, now: Time) {
        if check && self.members.iter().any(|m| m.dest == dest) {
            return;
        }
        self.members.insert(
            0,
            SetMember {
                dest,
                last_seen_weight: weight,
            },
        );
        self.lastmod = now;
    }

    /// `ip_vs_dest_set_erase()`.
    fn erase(&mut self, dest: DestId, now: Time) {
        if let Some(pos) = self.members.iter().position(|m| m.dest == dest) {
            self.members.remove(pos);
            self.lastmod = now;
        }
    }

    /// `ip_vs_dest_set_min()`: index (in the service list) of the weighted
    /// least-loaded member that is in the list, not flagged overloaded and
    /// has weight above zero.
    fn min(&self, svc: &SvcView) -> Option<usize> {
        let mut least: Option<(usize, i64)> = None;
        for m in &self.members {
            // A member no longer in the list is not AVAILABLE: never chosen.
            let Some(i) = svc.index_of(m.dest) else {
                continue;
            };
            let d = &svc.dests[i];
            if d.overloaded {
                continue;
            }
            let doh = d.overhead() as i64;
            match least {
                None => {
                    if d.weight() > 0 && d.available {
                        least = Some((i, doh));
                    }
                }
                Some((li, loh)) => {
                    let lw = svc.dests[li].weight() as i64;
                    if loh * d.weight() as i64 > doh * lw && d.available {
                        least = Some((i, doh));
                    }
                }
            }
        }
        least.map(|(i, _)| i)
    }

    /// `ip_vs_dest_set_max()`: the member with the weighted highest load
    /// among those with weight above zero (availability is not checked).
    fn max(&self, svc: &SvcView) -> Option<DestId> {
        let view = |m: &SetMember| -> (i64, i64) {
            match svc.index_of(m.dest) {
                Some(i) => {
                    let d = &svc.dests[i];
                    (d.weight() as i64, d.overhead() as i64)
                }
                None => (m.last_seen_weight as i64, 0),
            }
        };
        let mut most: Option<(DestId, i64, i64)> = None;
        for m in &self.members {
            let (dw, doh) = view(m);
            match most {
                None => {
                    if dw > 0 {
                        most = Some((m.dest, dw, doh));
                    }
                }
                Some((_, mw, moh)) => {
                    if moh * dw < doh * mw && dw > 0 {
                        most = Some((m.dest, dw, doh));
                    }
                }
            }
        }
        most.map(|(id, _, _)| id)
    }
}

/// One cache entry: destination address -> server set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LblcrEntry {
    pub addr: IpAddr,
    pub set: DestSet,
    pub lastuse: Time,
}

impl CacheEntry for LblcrEntry {
    fn addr(&self) -> &IpAddr {
        &self.addr
    }
    fn lastuse(&self) -> Time {
        self.lastuse
    }
}

#[derive(Clone, Debug)]
pub struct Lblcr {
    table: CacheTable<LblcrEntry>,
}

impl Default for Lblcr {
    fn default() -> Self {
        Lblcr {
            table: CacheTable::new(),
        }
    }
}

impl Lblcr {
    /// The cache entries (bucket order, newest first within a bucket).
    pub fn entries(&self) -> impl Iterator<Item = &LblcrEntry> {
        self.table.iter()
    }

    /// The cache entry for a destination address of a service of family `af`.
    pub fn lookup(&self, af: Family, addr: &IpAddr) -> Option<&LblcrEntry> {
        self.table.get(af, addr)
    }

    /// The kernel's entry counter.
    pub fn entry_counter(&self) -> usize {
        self.table.counter()
    }

    /// The `net.ipv4.vs.lblcr_expiration` sysctl (default 24 h).
    pub fn expiration(&self) -> Duration {
        self.table.expiration()
    }

    pub fn set_expiration(&mut self, d: Duration) {
        self.table.set_expiration(d);
    }
}

impl Scheduler for Lblcr {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Lblcr
    }

    fn init_service(&mut self, _svc: &SvcView) {
        self.table.reset();
    }

    fn schedule(&mut self, svc: &SvcView, flow: &Flow, ctx: &mut SchedCtx) -> Option<usize> {
        let af = svc.family;
        let daddr = flow.dst;
        let now = ctx.now;
        let expiration = self.table.expiration();
        if let Some(en) = self.table.get_mut(af, &daddr) {
            en.lastuse = now;
            for m in en.set.members.iter_mut() {
                if let Some(i) = svc.index_of(m.dest) {
                    m.last_seen_weight = svc.dests[i].weight();
                }
            }
            let dest = en.set.min(svc);
            // More than one member and unchanged for longer than the
            // expiration (time_after: strictly later): drop the busiest.
            if en.set.members.len() > 1 && now > en.set.lastmod + expiration {
                if let Some(m) = en.set.max(svc) {
                    en.set.erase(m, now);
                }
            }
            // The least-loaded member is used even if it was just erased.
            if let Some(i) = dest {
                if !lblc_overloaded(&svc.dests[i], svc) {
                    return Some(i);
                }
            }
            let i = wlc_pick(svc)?;
            let d = &svc.dests[i];
            en.set.insert(d.id, d.weight(), true, now);
            return Some(i);
        }
        let i = wlc_pick(svc)?;
        if self.table.has_room() {
            let d = &svc.dests[i];
            let mut set = DestSet {
                members: Vec::new(),
                lastmod: now,
            };
            set.insert(d.id, d.weight(), false, now);
            self.table.insert(
                af,
                LblcrEntry {
                    addr: daddr,
                    set,
                    lastuse: now,
                },
            );
        }
        Some(i)
    }

    fn tick(&mut self, now: Time) {
        self.table.tick(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;
    use crate::sched::testutil::{dests, flow, view};
    use std::net::Ipv4Addr;

    fn flow_to(dst: [u8; 4]) -> Flow {
        let mut f = flow(1, 1000);
        f.dst = IpAddr::V4(Ipv4Addr::from(dst));
        f
    }

    fn pick(s: &mut Lblcr, svc: &SvcView, f: &Flow, now: Time) -> Option<usize> {
        let mut rng = SplitMix64::new(1);
        let mut ctx = SchedCtx { now, rng: &mut rng };
        s.schedule(svc, f, &mut ctx)
    }

    fn members(s: &Lblcr, f: &Flow) -> Vec<u32> {
        s.lookup(Family::Inet, &f.dst)
            .unwrap()
            .set
            .members
            .iter()
            .map(|m| m.dest.0)
            .collect()
    }

    #[test]
    fn set_grows_when_member_is_overloaded() {
        let mut d = dests(&[2, 2, 2]);
        let mut s = Lblcr::default();
        s.init_service(&view(&d));
        let f = flow_to([10, 0, 0, 1]);
        assert_eq!(pick(&mut s, &view(&d), &f, Time::ZERO), Some(0));
        assert_eq!(members(&s, &f), [1]);
        // Member 1 at 3 active > weight 2 and server 3 idle (2 * 0 < 2):
        // pick service-wide wlc -> server 3 (overhead 0), added at the head.
        d[0].active_conns = 3;
        d[1].active_conns = 1;
        let t1 = Time::from_secs(10);
        assert_eq!(pick(&mut s, &view(&d), &f, t1), Some(2));
        assert_eq!(members(&s, &f), [3, 1]);
        assert_eq!(s.lookup(Family::Inet, &f.dst).unwrap().set.lastmod, t1);
        // Now the set's least-loaded member (server 3) is used.
        d[2].active_conns = 1;
        assert_eq!(pick(&mut s, &view(&d), &f, t1), Some(2));
        assert_eq!(members(&s, &f), [3, 1]);
    }

    #[test]
    fn set_min_skips_flagged_zero_weight_and_removed_members() {
        let mut d = dests(&[1, 1, 1]);
        let mut s = Lblcr::default();
        s.init_service(&view(&d));
        let f = flow_to([10, 0, 0, 1]);
        pick(&mut s, &view(&d), &f, Time::ZERO); // set {1}
        d[0].overloaded = true;
        pick(&mut s, &view(&d), &f, Time::ZERO); // set min empty -> wlc -> 2
        assert_eq!(members(&s, &f), [2, 1]);
        d[0].overloaded = false;
        d[0].active_conns = 0;
        d[1].active_conns = 1;
        // Both members usable; 1 has the lower overhead.
        assert_eq!(pick(&mut s, &view(&d), &f, Time::ZERO), Some(0));
        d[0].cfg.weight = 0;
        assert_eq!(pick(&mut s, &view(&d), &f, Time::ZERO), Some(1));
        // Server 2 removed from the list, server 1 quiesced: wlc picks 3.
        let d2 = vec![d[0].clone(), d[2].clone()];
        assert_eq!(pick(&mut s, &view(&d2), &f, Time::ZERO), Some(1));
        assert_eq!(members(&s, &f), [3, 2, 1]);
    }

    #[test]
    fn set_shrinks_after_expiration_since_last_change() {
        let mut d = dests(&[2, 2]);
        let mut s = Lblcr::default();
        s.init_service(&view(&d));
        let f = flow_to([10, 0, 0, 1]);
        pick(&mut s, &view(&d), &f, Time::ZERO);
        d[0].active_conns = 3;
        pick(&mut s, &view(&d), &f, Time::ZERO); // adds server 2
        assert_eq!(members(&s, &f), [2, 1]);
        d[0].active_conns = 5;
        d[1].active_conns = 1;
        // Exactly 24 h after the last change: not yet (strictly after).
        let day = Time::from_secs(24 * 3600);
        assert_eq!(pick(&mut s, &view(&d), &f, day), Some(1));
        assert_eq!(members(&s, &f), [2, 1]);
        // One millisecond later the busiest member (server 1) is erased.
        let later = Time(day.0 + 1);
        assert_eq!(pick(&mut s, &view(&d), &f, later), Some(1));
        assert_eq!(members(&s, &f), [2]);
        assert_eq!(s.lookup(Family::Inet, &f.dst).unwrap().set.lastmod, later);
        // A single member is never erased.
        let much_later = Time::from_secs(10 * 24 * 3600);
        assert_eq!(pick(&mut s, &view(&d), &f, much_later), Some(1));
        assert_eq!(members(&s, &f), [2]);
    }

    #[test]
    fn erased_min_is_still_used_for_this_flow() {
        // set_min is computed before the shrink; if the shrink then erases
        // that same member, the kernel still returns it for this flow. Make
        // min and max coincide by giving server 1 weight 0 (skipped by both).
        let mut d = dests(&[1, 1]);
        let mut s = Lblcr::default();
        s.init_service(&view(&d));
        let f = flow_to([10, 0, 0, 1]);
        pick(&mut s, &view(&d), &f, Time::ZERO); // {1}
        d[0].active_conns = 2;
        pick(&mut s, &view(&d), &f, Time::ZERO); // {2, 1}
        d[0].cfg.weight = 0;
        let t = Time::from_secs(24 * 3600 + 1);
        // min: server 2 (server 1 has weight 0); max: server 2 (only weight > 0).
        assert_eq!(pick(&mut s, &view(&d), &f, t), Some(1));
        assert_eq!(members(&s, &f), [1]);
    }

    #[test]
    fn removed_member_counts_with_last_seen_weight_and_no_load_in_set_max() {
        let mut d = dests(&[1, 1, 1]);
        let mut s = Lblcr::default();
        s.init_service(&view(&d));
        let f = flow_to([10, 0, 0, 1]);
        pick(&mut s, &view(&d), &f, Time::ZERO); // {1}
        d[0].active_conns = 2;
        pick(&mut s, &view(&d), &f, Time::ZERO); // {2, 1}
                                                 // Server 2 removed; server 1 drops to 1 active (not overloaded).
        d[0].active_conns = 1;
        let d13 = vec![d[0].clone(), d[2].clone()];
        let t = Time::from_secs(24 * 3600 + 1);
        // set_max: server 2 first (last seen weight 1, overhead 0), server 1
        // has overhead 256 > 0, so server 1 is the busiest and is erased.
        assert_eq!(pick(&mut s, &view(&d13), &f, t), Some(0));
        assert_eq!(members(&s, &f), [2]);
    }

    #[test]
    fn entry_expires_after_24h_idle() {
        let d = dests(&[1]);
        let mut s = Lblcr::default();
        s.init_service(&view(&d));
        s.tick(Time::ZERO);
        let f = flow_to([10, 0, 0, 1]);
        pick(&mut s, &view(&d), &f, Time::ZERO);
        for t in 1..24 * 3600 {
            s.tick(Time::from_secs(t));
        }
        assert!(s.lookup(Family::Inet, &f.dst).is_some());
        s.tick(Time::from_secs(24 * 3600));
        assert!(s.lookup(Family::Inet, &f.dst).is_none());
        assert_eq!(s.entry_counter(), 0);
    }

    #[test]
    fn nothing_available() {
        let mut s = Lblcr::default();
        s.init_service(&view(&[]));
        assert_eq!(
            pick(&mut s, &view(&[]), &flow_to([10, 0, 0, 1]), Time::ZERO),
            None
        );
        assert_eq!(s.entries().count(), 0);
    }
}
