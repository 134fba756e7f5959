//! Locality-based least-connection (net/netfilter/ipvs/ip_vs_lblc.c).
//!
//! A cache maps each destination address (the packet's daddr) to the real
//! server last chosen for it. A cached server is reused while it is still in
//! the list, has weight above zero and is not "overloaded" in lblc's own
//! sense: more active connections than its weight while some server has
//! fewer than half its weight active (`2 * active < weight`). Note that the
//! threshold flag (IP_VS_DEST_F_OVERLOAD) is *not* consulted for a cache hit;
//! it only excludes servers from the weighted least-connection pick that
//! replaces the cached server.
//!
//! Expiry follows the kernel's periodic timer (`ip_vs_lblc_check_expire`),
//! run every 60 s by [`Scheduler::tick`]: every 30th run (counter reaching
//! `COUNT_FOR_FULL_EXPIRATION`) removes entries idle for the expiration time
//! (sysctl `lblc_expiration`, default 24 h); the other runs only act when the
//! table holds more than 16384 entries, removing entries idle for 6 minutes
//! bucket by bucket from a rover until a goal is met.
//!
//! Timer origin: `init_service` receives no time, so the model arms the timer
//! at the first `tick(now)` after `init_service` (the owner ticks at least
//! every second, so within a second of the kernel's arming). Each run re-arms
//! it 60 s after the time of that run, as `mod_timer(jiffies + 60 s)` does; a
//! late tick runs the handler once, like a late kernel timer.
//!
//! Kernel quirk kept on purpose: when `ip_vs_lblc_new()` replaces an entry
//! whose server changed, it unlinks the old entry without decrementing the
//! table's entry counter, so the counter (which gates new entries and the
//! garbage collection) drifts above the real number of entries.

use std::net::IpAddr;
use std::time::Duration;

use super::hash::{fold_addr, hash_32};
use super::{SchedCtx, Scheduler, SchedulerKind, SvcView};
use crate::model::{Dest, DestId, Family, Flow};
use crate::time::Time;

/// `CONFIG_IP_VS_LBLC_TAB_BITS` (default 10); lblcr uses the same default.
pub const CACHE_TAB_BITS: u32 = 10;
pub const CACHE_TAB_SIZE: usize = 1 << CACHE_TAB_BITS;
const CACHE_TAB_MASK: usize = CACHE_TAB_SIZE - 1;
/// `max_size`: the table stops taking new entries above this many.
pub const CACHE_MAX_SIZE: usize = CACHE_TAB_SIZE * 16;
/// `CHECK_EXPIRE_INTERVAL`: the period of the garbage-collection timer.
pub const CHECK_EXPIRE_INTERVAL: Duration = Duration::from_secs(60);
/// `ENTRY_TIMEOUT`: idle time after which the overflow collection may drop an entry.
pub const ENTRY_TIMEOUT: Duration = Duration::from_secs(6 * 60);
/// `DEFAULT_EXPIRATION`: default of the `lblc_expiration` / `lblcr_expiration` sysctls.
pub const DEFAULT_EXPIRATION: Duration = Duration::from_secs(24 * 60 * 60);
/// `COUNT_FOR_FULL_EXPIRATION`: every this many timer runs, a full check.
pub const COUNT_FOR_FULL_EXPIRATION: u32 = 30;

/// Bucket of a destination address in the lblc/lblcr hash table:
/// `hash_32(fold(addr), 10)`.
pub fn cache_hashkey(af: Family, addr: &IpAddr) -> usize {
    hash_32(fold_addr(af, addr), CACHE_TAB_BITS) as usize
}

/// What the shared cache table needs of an entry.
pub(crate) trait CacheEntry {
    fn addr(&self) -> &IpAddr;
    fn lastuse(&self) -> Time;
}

/// The hash table and garbage-collection state shared by lblc and lblcr
/// (`struct ip_vs_lblc_table` / `ip_vs_lblcr_table`).
#[derive(Clone, Debug)]
pub(crate) struct CacheTable<E> {
    /// Each bucket newest first (`hlist_add_head`).
    buckets: Vec<Vec<E>>,
    /// The kernel's `entries` counter (see the lblc quirk above).
    entries: usize,
    rover: usize,
    counter: u32,
    next_check: Option<Time>,
    expiration: Duration,
}

impl<E: CacheEntry> CacheTable<E> {
    pub(crate) fn new() -> Self {
        CacheTable {
            buckets: (0..CACHE_TAB_SIZE).map(|_| Vec::new()).collect(),
            entries: 0,
            rover: 0,
            counter: 1,
            next_check: None,
            expiration: DEFAULT_EXPIRATION,
        }
    }

    /// Fresh table as `init_service` allocates it, keeping the sysctl value.
    pub(crate) fn reset(&mut self) {
        let expiration = self.expiration;
        *self = Self::new();
        self.expiration = expiration;
    }

    pub(crate) fn expiration(&self) -> Duration {
        self.expiration
    }

    pub(crate) fn set_expiration(&mut self, d: Duration) {
        self.expiration = d;
    }

    pub(crate) fn counter(&self) -> usize {
        self.entries
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &E> {
        self.buckets.iter().flatten()
    }

    pub(crate) fn get(&self, af: Family, addr: &IpAddr) -> Option<&E> {
        self.buckets[cache_hashkey(af, addr)]
            .iter()
            .find(|e| e.addr() == addr)
    }

    pub(crate) fn get_mut(&mut self, af: Family, addr: &IpAddr) -> Option<&mut E> {
        self.buckets[cache_hashkey(af, addr)]
            .iter_mut()
            .find(|e| e.addr() == addr)
    }

    /// Unlinks an entry without touching the counter (`ip_vs_lblc_del`).
    pub(crate) fn unlink(&mut self, af: Family, addr: &IpAddr) -> Option<E> {
        let b = &mut self.buckets[cache_hashkey(af, addr)];
        let pos = b.iter().position(|e| e.addr() == addr)?;
        Some(b.remove(pos))
    }

    /// Whether a new entry may be created (`entries > max_size` refuses).
    pub(crate) fn has_room(&self) -> bool {
        self.entries <= CACHE_MAX_SIZE
    }

    /// Links an entry at the head of its bucket and counts it.
    pub(crate) fn insert(&mut self, af: Family, e: E) {
        let b = cache_hashkey(af, e.addr());
        self.buckets[b].insert(0, e);
        self.entries += 1;
    }

    /// Drops from bucket `j` every entry for which `expired` holds; returns how many.
    fn sweep(&mut self, j: usize, expired: impl Fn(&E) -> bool) -> usize {
        let b = &mut self.buckets[j];
        let before = b.len();
        b.retain(|e| !expired(e));
        let n = before - b.len();
        self.entries -= n;
        n
    }

    /// The timer, driven by the owner's clock.
    pub(crate) fn tick(&mut self, now: Time) {
        match self.next_check {
            None => self.next_check = Some(now + CHECK_EXPIRE_INTERVAL),
            Some(t) if now >= t => {
                self.check_expire(now);
                self.next_check = Some(now + CHECK_EXPIRE_INTERVAL);
            }
            Some(_) => {}
        }
    }

    /// `ip_vs_lblc_check_expire()` / `ip_vs_lblcr_check_expire()`.
    fn check_expire(&mut self, now: Time) {
        if self.counter.is_multiple_of(COUNT_FOR_FULL_EXPIRATION) {
            self.full_check(now);
            self.counter = 1;
            return;
        }
        if self.entries <= CACHE_MAX_SIZE {
            self.counter += 1;
            return;
        }
        let goal = ((self.entries - CACHE_MAX_SIZE) * 4 / 3).min(CACHE_MAX_SIZE / 2);
        let mut goal = goal as i64;
        let mut j = self.rover;
        for _ in 0..CACHE_TAB_SIZE {
            j = (j + 1) & CACHE_TAB_MASK;
            // time_before(now, lastuse + ENTRY_TIMEOUT) keeps the entry.
            goal -= self.sweep(j, |e| now >= e.lastuse() + ENTRY_TIMEOUT) as i64;
            if goal <= 0 {
                break;
            }
        }
        self.rover = j;
    }

    /// `ip_vs_lblc_full_check()`: drop entries idle for the expiration time.
    fn full_check(&mut self, now: Time) {
        let exp = self.expiration;
        let mut j = self.rover;
        for _ in 0..CACHE_TAB_SIZE {
            j = (j + 1) & CACHE_TAB_MASK;
            self.sweep(j, |e| now >= e.lastuse() + exp);
        }
        self.rover = j;
    }
}

/// The weighted least-connection pick both schedulers fall back to
/// (`__ip_vs_lblc_schedule` / `__ip_vs_lblcr_schedule`): skip servers flagged
/// overloaded; the first with weight above zero starts, then a later server
/// wins when `least_overhead * its_weight > its_overhead * least_weight`
/// (strictly, so ties keep the earlier one).
pub(crate) fn wlc_pick(svc: &SvcView) -> Option<usize> {
    let mut least: Option<(usize, i64)> = None;
    for (i, d) in svc.dests.iter().enumerate() {
        if d.overloaded {
            continue;
        }
        let doh = d.overhead() as i64;
        match least {
            None => {
                if d.weight() > 0 {
                    least = Some((i, doh));
                }
            }
            Some((li, loh)) => {
                let lw = svc.dests[li].weight() as i64;
                if loh * d.weight() as i64 > doh * lw {
                    least = Some((i, doh));
                }
            }
        }
    }
    least.map(|(i, _)| i)
}

/// lblc's and lblcr's `is_overloaded()`: `dest` has more active connections
/// than its weight and some server in the list has `2 * active < weight`.
pub(crate) fn lblc_overloaded(dest: &Dest, svc: &SvcView) -> bool {
    (dest.active_conns as i64) > dest.weight() as i64
        && svc
            .dests
            .iter()
            .any(|d| (d.active_conns as i64) * 2 < d.weight() as i64)
}

/// One cache entry: destination address -> real server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LblcEntry {
    pub addr: IpAddr,
    pub dest: DestId,
    pub lastuse: Time,
}

impl CacheEntry for LblcEntry {
    fn addr(&self) -> &IpAddr {
        &self.addr
    }
    fn lastuse(&self) -> Time {
        self.lastuse
    }
}

#[derive(Clone, Debug)]
pub struct Lblc {
    table: CacheTable<LblcEntry>,
}

impl Default for Lblc {
    fn default() -> Self {
        Lblc {
            table: CacheTable::new(),
        }
    }
}

impl Lblc {
    /// The cache entries (bucket order, newest first within a bucket).
    pub fn entries(&self) -> impl Iterator<Item = &LblcEntry> {
        self.table.iter()
    }

    /// The cache entry for a destination address of a service of family `af`.
    pub fn lookup(&self, af: Family, addr: &IpAddr) -> Option<&LblcEntry> {
        self.table.get(af, addr)
    }

    /// The kernel's entry counter (may exceed the real count, see module docs).
    pub fn entry_counter(&self) -> usize {
        self.table.counter()
    }

    /// The `net.ipv4.vs.lblc_expiration` sysctl (default 24 h).
    pub fn expiration(&self) -> Duration {
        self.table.expiration()
    }

    pub fn set_expiration(&mut self, d: Duration) {
        self.table.set_expiration(d);
    }

    /// `ip_vs_lblc_new()`: keep an entry already pointing at `dest`, else
    /// replace it (unlinking the old one without uncounting it).
    fn new_entry(&mut self, af: Family, addr: IpAddr, dest: DestId, now: Time) {
        if let Some(en) = self.table.get(af, &addr) {
            if en.dest == dest {
                return;
            }
            self.table.unlink(af, &addr);
        }
        if !self.table.has_room() {
            return;
        }
        self.table.insert(
            af,
            LblcEntry {
                addr,
                dest,
                lastuse: now,
            },
        );
    }
}

impl Scheduler for Lblc {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Lblc
    }

    fn init_service(&mut self, _svc: &SvcView) {
        self.table.reset();
    }

    fn schedule(&mut self, svc: &SvcView, flow: &Flow, ctx: &mut SchedCtx) -> Option<usize> {
        let af = svc.family;
        let daddr = flow.dst;
        if let Some(en) = self.table.get_mut(af, &daddr) {
            en.lastuse = ctx.now;
            // A server no longer in the list is not AVAILABLE.
            if let Some(i) = svc.index_of(en.dest) {
                let d = &svc.dests[i];
                if d.available && d.weight() > 0 && !lblc_overloaded(d, svc) {
                    return Some(i);
                }
            }
        }
        let i = wlc_pick(svc)?;
        self.new_entry(af, daddr, svc.dests[i].id, ctx.now);
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

    fn pick(s: &mut Lblc, svc: &SvcView, f: &Flow, now: Time) -> Option<usize> {
        let mut rng = SplitMix64::new(1);
        let mut ctx = SchedCtx { now, rng: &mut rng };
        s.schedule(svc, f, &mut ctx)
    }

    #[test]
    fn bucket_hash() {
        // 10.0.0.1 = 0x0A000001; * 0x61C88647 mod 2^32 = 0x27C88647; top 10 bits = 0x9F.
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(cache_hashkey(Family::Inet, &a), 0x27C8_8647 >> 22);
        assert_eq!(cache_hashkey(Family::Inet, &a), 159);
    }

    #[test]
    fn picks_least_loaded_then_sticks_to_cached_server() {
        let mut d = dests(&[1, 1, 1]);
        d[0].active_conns = 2;
        d[1].active_conns = 1;
        d[2].active_conns = 1;
        let mut s = Lblc::default();
        s.init_service(&view(&d));
        let f = flow_to([10, 0, 0, 1]);
        // wlc: index 1 (overhead 256) beats index 0 (512); index 2 ties and loses.
        assert_eq!(pick(&mut s, &view(&d), &f, Time::ZERO), Some(1));
        let en = s.lookup(Family::Inet, &f.dst).unwrap();
        assert_eq!((en.dest, en.lastuse), (DestId(2), Time::ZERO));
        // Index 1 becomes the busiest but is not "overloaded" (1 active <= weight 1).
        d[2].active_conns = 0;
        assert_eq!(pick(&mut s, &view(&d), &f, Time::from_secs(5)), Some(1));
        assert_eq!(
            s.lookup(Family::Inet, &f.dst).unwrap().lastuse,
            Time::from_secs(5)
        );
        // Another destination address gets its own pick.
        assert_eq!(
            pick(&mut s, &view(&d), &flow_to([10, 0, 0, 2]), Time::ZERO),
            Some(2)
        );
    }

    #[test]
    fn moves_when_overloaded_by_the_two_times_weight_rule() {
        let mut d = dests(&[2, 2, 2]);
        let mut s = Lblc::default();
        s.init_service(&view(&d));
        let f = flow_to([10, 0, 0, 1]);
        assert_eq!(pick(&mut s, &view(&d), &f, Time::ZERO), Some(0));
        // 3 active > weight 2, but no server has 2 * active < 2 (all have 1+).
        d[0].active_conns = 3;
        d[1].active_conns = 1;
        d[2].active_conns = 1;
        assert_eq!(pick(&mut s, &view(&d), &f, Time::ZERO), Some(0));
        // Server 3 drops to 0 active: 2 * 0 < 2, so the cached server is overloaded.
        d[2].active_conns = 0;
        assert_eq!(pick(&mut s, &view(&d), &f, Time::ZERO), Some(2));
        assert_eq!(s.lookup(Family::Inet, &f.dst).unwrap().dest, DestId(3));
        // The replacement was unlinked without being uncounted (kernel quirk).
        assert_eq!(s.entries().count(), 1);
        assert_eq!(s.entry_counter(), 2);
    }

    #[test]
    fn threshold_flag_is_ignored_for_a_cache_hit_but_not_for_the_pick() {
        let mut d = dests(&[1, 1]);
        let mut s = Lblc::default();
        s.init_service(&view(&d));
        let f = flow_to([10, 0, 0, 1]);
        assert_eq!(pick(&mut s, &view(&d), &f, Time::ZERO), Some(0));
        d[0].overloaded = true;
        assert_eq!(pick(&mut s, &view(&d), &f, Time::ZERO), Some(0));
        // A new destination address avoids the flagged server.
        assert_eq!(
            pick(&mut s, &view(&d), &flow_to([10, 0, 0, 9]), Time::ZERO),
            Some(1)
        );
    }

    #[test]
    fn removed_or_quiesced_cached_server_is_replaced() {
        let mut d = dests(&[1, 1]);
        let mut s = Lblc::default();
        s.init_service(&view(&d));
        let f = flow_to([10, 0, 0, 1]);
        assert_eq!(pick(&mut s, &view(&d), &f, Time::ZERO), Some(0));
        d[0].cfg.weight = 0;
        assert_eq!(pick(&mut s, &view(&d), &f, Time::ZERO), Some(1));
        // Server 2 removed from the list: the entry is stale, server 1 is back.
        d[0].cfg.weight = 1;
        let d1 = vec![d[0].clone()];
        assert_eq!(pick(&mut s, &view(&d1), &f, Time::ZERO), Some(0));
        // Nothing available at all.
        assert_eq!(pick(&mut s, &view(&[]), &f, Time::ZERO), None);
    }

    #[test]
    fn full_expiration_after_24h_idle_on_the_30th_timer_run() {
        let d = dests(&[1]);
        let mut s = Lblc::default();
        s.init_service(&view(&d));
        s.tick(Time::ZERO); // arms the timer for t = 60 s
        let f = flow_to([10, 0, 0, 1]);
        let g = flow_to([10, 0, 0, 2]);
        pick(&mut s, &view(&d), &f, Time::ZERO);
        pick(&mut s, &view(&d), &g, Time::ZERO);
        // Runs at 60 s, 120 s, ...; the 30th (t = 1800 s) is a full check, then
        // every 30 runs. Keep g in use; f stays idle.
        let mut t = 0;
        while t < 24 * 3600 + 1800 {
            t += 1;
            if t % 3600 == 0 {
                pick(&mut s, &view(&d), &g, Time::from_secs(t));
            }
            s.tick(Time::from_secs(t));
            let idle_f = t >= 24 * 3600;
            // Full checks happen at multiples of 1800 s.
            if t % 1800 == 0 && idle_f {
                assert!(s.lookup(Family::Inet, &f.dst).is_none(), "t = {t}");
            }
            if t < 24 * 3600 {
                assert!(s.lookup(Family::Inet, &f.dst).is_some(), "t = {t}");
            }
        }
        // f was removed at the first full check at or after 24 h: t = 86400 s.
        assert!(s.lookup(Family::Inet, &f.dst).is_none());
        assert!(s.lookup(Family::Inet, &g.dst).is_some());
        assert_eq!(s.entry_counter(), 1);
    }

    #[test]
    fn expiration_is_not_before_the_full_check() {
        let d = dests(&[1]);
        let mut s = Lblc::default();
        s.init_service(&view(&d));
        s.set_expiration(Duration::from_secs(100));
        s.tick(Time::ZERO);
        let f = flow_to([10, 0, 0, 1]);
        pick(&mut s, &view(&d), &f, Time::ZERO);
        // Idle > 100 s long before the first full check (t = 1800 s): still there.
        for t in 1..1800 {
            s.tick(Time::from_secs(t));
        }
        assert!(s.lookup(Family::Inet, &f.dst).is_some());
        s.tick(Time::from_secs(1800));
        assert!(s.lookup(Family::Inet, &f.dst).is_none());
    }

    #[test]
    fn overflow_collection_drops_six_minute_idle_entries() {
        let d = dests(&[1]);
        let mut s = Lblc::default();
        s.init_service(&view(&d));
        s.tick(Time::ZERO);
        // Offer max_size + 4 new destination addresses.
        let n = CACHE_MAX_SIZE + 4;
        for k in 0..n as u32 {
            let f = flow_to((0x0A00_0000 + k).to_be_bytes());
            pick(&mut s, &view(&d), &f, Time::ZERO);
        }
        // The table refuses the entry once the counter exceeds max_size.
        assert_eq!(s.entry_counter(), CACHE_MAX_SIZE + 1);
        // Runs at 60..300 s: counter above max_size, goal = (1 * 4 / 3) = 1,
        // but nothing is 6 minutes idle: the whole table is swept in vain.
        for t in 1..360 {
            s.tick(Time::from_secs(t));
        }
        assert_eq!(s.entry_counter(), CACHE_MAX_SIZE + 1);
        assert!(s
            .lookup(Family::Inet, &flow_to([10, 0, 0, 0]).dst)
            .is_some());
        // Run at 360 s: everything is exactly 6 minutes idle; bucket rover + 1
        // = 1 is swept whole, which meets the goal, and the sweep stops there.
        s.tick(Time::from_secs(360));
        let in_bucket = |b: usize| {
            (0..=CACHE_MAX_SIZE as u32)
                .map(|k| IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + k)))
                .filter(|a| cache_hashkey(Family::Inet, a) == b)
                .count()
        };
        let swept = in_bucket(1);
        assert!(swept > 0);
        assert_eq!(s.entry_counter(), CACHE_MAX_SIZE + 1 - swept);
        assert_eq!(s.entries().count(), CACHE_MAX_SIZE + 1 - swept);
        assert!(s
            .entries()
            .all(|e| cache_hashkey(Family::Inet, &e.addr) != 1));
    }
}
