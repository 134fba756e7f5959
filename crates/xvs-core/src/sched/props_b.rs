//! Property tests for the hashing schedulers (sh, dh, mh).
//!
//! Findings these tests pin down (measured, not assumed):
//! * sh is *not* consistent: its table is filled by position in the list, so
//!   removing a server reassigns every bucket after that server's first
//!   turn. Only the prefix of the table filled before the removed server's
//!   first turn is guaranteed to stay put.
//! * mh (Maglev) has small but non-zero churn. Over 20 000 random services
//!   of 2..=32 equal-weight servers with random addresses and ports, the
//!   share of slots *not* owned by the removed server that changed owner was
//!   1.4 % on average, 2.5 % at the 99th percentile and 12.6 % at worst
//!   (Maglev gives no hard bound: two servers with clashing permutations can
//!   trade many slots). The per-case assertion uses 15 %, the batch-average
//!   assertion 2.5 %.
//! * mh with equal weights is balanced to within one slot: every server
//!   claims exactly one slot per round until the 4093 slots are gone.

use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;

use super::dh::Dh;
use super::mh::{Mh, MH_TAB_SIZE};
use super::sh::{Sh, SH_TAB_SIZE};
use super::testutil::view;
use super::{SchedCtx, Scheduler, SvcView};
use crate::model::{Dest, DestConfig, DestId, Flow, Protocol, SchedFlags};
use crate::rng::SplitMix64;
use crate::time::Time;

/// Servers with the given (address, port, weight), ids 1..=n, in list order.
fn make_dests(spec: &[(u32, u16, u32)]) -> Vec<Dest> {
    spec.iter()
        .enumerate()
        .map(|(i, &(addr, port, w))| {
            let mut c = DestConfig::new(IpAddr::V4(Ipv4Addr::from(addr)), port);
            c.weight = w;
            Dest::new(DestId(i as u32 + 1), c)
        })
        .collect()
}

/// Distinct addresses (as the kernel requires of addr:port pairs).
fn servers(
    n: std::ops::RangeInclusive<usize>,
    w: std::ops::RangeInclusive<u32>,
) -> impl Strategy<Value = Vec<(u32, u16, u32)>> {
    prop::collection::btree_map(any::<u32>(), (any::<u16>(), w), n)
        .prop_map(|m| m.into_iter().map(|(a, (p, w))| (a, p, w)).collect())
        .prop_shuffle()
}

fn flow_from(src: u32, sport: u16, dst: u32) -> Flow {
    Flow {
        protocol: Protocol::Tcp,
        src: IpAddr::V4(Ipv4Addr::from(src)),
        sport,
        dst: IpAddr::V4(Ipv4Addr::from(dst)),
        dport: 80,
    }
}

fn pick<S: Scheduler>(s: &mut S, svc: &SvcView, f: &Flow) -> Option<usize> {
    let mut rng = SplitMix64::new(7);
    let mut ctx = SchedCtx {
        now: Time::ZERO,
        rng: &mut rng,
    };
    s.schedule(svc, f, &mut ctx)
}

/// Share of slots not owned by `removed` before whose owner changed.
fn churn(before: &[Option<DestId>], after: &[Option<DestId>], removed: DestId) -> (usize, usize) {
    let mut moved = 0;
    let mut kept = 0;
    for (b, a) in before.iter().zip(after) {
        if *b == Some(removed) {
            continue;
        }
        kept += 1;
        if b != a {
            moved += 1;
        }
    }
    (moved, kept)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// sh: each server gets exactly its weight's share of the 256 buckets:
    /// q full passes of `max(weight, 1)` buckets each plus what the partial
    /// last pass reaches.
    #[test]
    fn sh_table_is_proportional_to_weights(weights in prop::collection::vec(0u32..20, 1..12)) {
        let d = make_dests(&weights.iter().enumerate().map(|(i, &w)| (0x0A00_0001 + i as u32, 80, w)).collect::<Vec<_>>());
        let mut s = Sh::default();
        s.init_service(&view(&d));
        let turns: Vec<usize> = weights.iter().map(|&w| w.max(1) as usize).collect();
        let total: usize = turns.iter().sum();
        let (q, rem) = (SH_TAB_SIZE / total, SH_TAB_SIZE % total);
        let mut prefix = 0;
        for (i, &t) in turns.iter().enumerate() {
            let extra = rem.saturating_sub(prefix).min(t);
            prefix += t;
            let got = s.table().iter().filter(|b| **b == Some(DestId(i as u32 + 1))).count();
            prop_assert_eq!(got, q * t + extra, "server {}", i);
        }
    }

    /// sh: removing a server keeps exactly the table prefix filled before its
    /// first turn; the fill is positional, so later buckets generally move.
    #[test]
    fn sh_removal_keeps_only_the_prefix(weights in prop::collection::vec(1u32..6, 2..10), r in any::<prop::sample::Index>()) {
        let d = make_dests(&weights.iter().enumerate().map(|(i, &w)| (0x0A00_0001 + i as u32, 80, w)).collect::<Vec<_>>());
        let r = r.index(d.len());
        let mut s = Sh::default();
        s.init_service(&view(&d));
        let before = s.table().to_vec();
        let mut d2 = d.clone();
        let removed = d2.remove(r);
        s.del_dest(&view(&d2), &removed, r);
        let prefix: usize = weights[..r].iter().map(|&w| w as usize).sum::<usize>().min(SH_TAB_SIZE);
        prop_assert_eq!(&s.table()[..prefix], &before[..prefix]);
        prop_assert!(s.table().iter().all(|b| *b != Some(removed.id)));
    }

    /// sh / sh-fallback: fallback agrees with plain sh whenever plain finds a
    /// server, and never returns an unusable one.
    #[test]
    fn sh_fallback_agrees_and_skips_unusable(
        spec in servers(1..=8, 0..=3),
        overloaded in prop::collection::vec(any::<bool>(), 8),
        src in any::<u32>(), sport in any::<u16>(), port_flag in any::<bool>(),
    ) {
        let mut d = make_dests(&spec);
        for (x, &o) in d.iter_mut().zip(&overloaded) { x.overloaded = o; }
        let mut s = Sh::default();
        s.init_service(&view(&d));
        let f = flow_from(src, sport, 0xC612_0001);
        let base = if port_flag { SchedFlags::SCHED2 } else { 0 };
        let mut plain = view(&d);
        plain.flags = SchedFlags(base);
        let mut fb = view(&d);
        fb.flags = SchedFlags(base | SchedFlags::SCHED1);
        let p = pick(&mut s, &plain, &f);
        let q = pick(&mut s, &fb, &f);
        if p.is_some() { prop_assert_eq!(p, q); }
        if let Some(i) = q { prop_assert!(d[i].weight() > 0 && !d[i].overloaded); }
        // The fallback probes (2 * ihash + k) & 255 for k in 0..256: every
        // bucket, so it finds a usable server whenever one exists.
        let usable = d.iter().any(|x| x.weight() > 0 && !x.overloaded);
        prop_assert_eq!(q.is_some(), usable);
    }

    /// dh: the pick depends on the destination address only.
    #[test]
    fn dh_ignores_the_source(spec in servers(1..=8, 1..=3), dst in any::<u32>(), a in any::<u32>(), b in any::<u32>(), pa in any::<u16>(), pb in any::<u16>()) {
        let d = make_dests(&spec);
        let mut s = Dh::default();
        s.init_service(&view(&d));
        let x = pick(&mut s, &view(&d), &flow_from(a, pa, dst));
        let y = pick(&mut s, &view(&d), &flow_from(b, pb, dst));
        prop_assert_eq!(x, y);
        prop_assert!(x.is_some());
    }

    /// mh, equal weights: every server owns 4093 / n slots, rounded either way.
    #[test]
    fn mh_equal_weights_balanced_within_one_slot(spec in servers(1..=64, 1..=1), w in 1u32..1000) {
        let spec: Vec<_> = spec.into_iter().map(|(a, p, _)| (a, p, w)).collect();
        let d = make_dests(&spec);
        let mut s = Mh::default();
        s.init_service(&view(&d));
        let n = d.len();
        let counts: Vec<usize> = (1..=n as u32).map(|id| s.table().iter().filter(|x| **x == Some(DestId(id))).count()).collect();
        let (lo, hi) = (MH_TAB_SIZE / n, MH_TAB_SIZE.div_ceil(n));
        prop_assert!(counts.iter().all(|&c| c == lo || c == hi), "{:?}", counts);
        prop_assert_eq!(counts.iter().sum::<usize>(), MH_TAB_SIZE);
    }

    /// mh, weighted: server i owns between k * turns_i and (k + 1) * turns_i
    /// slots, k = 4093 / sum(turns), turns from last_weight / gcd >> shift.
    #[test]
    fn mh_weighted_shares_follow_turns(spec in servers(1..=16, 1..=300)) {
        let d = make_dests(&spec);
        let mut s = Mh::default();
        s.init_service(&view(&d));
        let (g, sh) = (s.gcd(), s.rshift());
        let turns: Vec<usize> = d.iter().map(|x| ((x.last_weight / g) >> sh).max(1) as usize).collect();
        let k = MH_TAB_SIZE / turns.iter().sum::<usize>();
        for (i, &t) in turns.iter().enumerate() {
            let c = s.table().iter().filter(|x| **x == Some(DestId(i as u32 + 1))).count();
            prop_assert!(c >= k * t && c <= (k + 1) * t, "server {} turns {} count {} k {}", i, t, c, k);
        }
    }

    /// mh: removing one of n equal-weight servers moves few of the other
    /// servers' slots (see the module docs for the measured distribution),
    /// and flows follow the table.
    #[test]
    fn mh_removal_has_small_churn(spec in servers(2..=32, 1..=1), r in any::<prop::sample::Index>(), probes in prop::collection::vec((any::<u32>(), any::<u16>()), 32)) {
        let d = make_dests(&spec);
        let r = r.index(d.len());
        let mut s = Mh::default();
        s.init_service(&view(&d));
        let before = s.table().to_vec();
        let before_picks: Vec<_> = probes.iter().map(|&(a, p)| pick(&mut s, &view(&d), &flow_from(a, p, 1)).map(|i| d[i].id)).collect();
        let mut d2 = d.clone();
        let removed = d2.remove(r);
        s.del_dest(&view(&d2), &removed, r);
        prop_assert!(s.table().iter().all(|x| x.is_some() && *x != Some(removed.id)));
        let (moved, kept) = churn(&before, s.table(), removed.id);
        prop_assert!(moved * 100 < kept * 15, "moved {} of {}", moved, kept);
        // Flow level: a flow moves iff its slot changed owner.
        for (&(a, p), was) in probes.iter().zip(before_picks) {
            let now = pick(&mut s, &view(&d2), &flow_from(a, p, 1)).map(|i| d2[i].id);
            let slot = super::mh::mh_hashkey(crate::model::Family::Inet, &IpAddr::V4(Ipv4Addr::from(a)), 0, &super::mh::MH_HASH1, 0) as usize % MH_TAB_SIZE;
            prop_assert_eq!(was, before[slot]);
            prop_assert_eq!(now, s.table()[slot]);
        }
    }

    /// mh / mh-fallback: fallback agrees with plain mh whenever plain finds a
    /// server, and never returns an unusable one.
    #[test]
    fn mh_fallback_agrees_and_skips_unusable(
        spec in servers(1..=8, 1..=3),
        zero in prop::collection::vec(any::<bool>(), 8),
        overloaded in prop::collection::vec(any::<bool>(), 8),
        src in any::<u32>(), sport in any::<u16>(), port_flag in any::<bool>(),
    ) {
        let mut d = make_dests(&spec);
        let mut s = Mh::default();
        s.init_service(&view(&d));
        // Quiesce and flag some servers after the build (last_weight keeps slots).
        for ((x, &z), &o) in d.iter_mut().zip(&zero).zip(&overloaded) {
            if z { x.cfg.weight = 0; }
            x.overloaded = o;
        }
        let f = flow_from(src, sport, 1);
        let base = if port_flag { SchedFlags::SCHED2 } else { 0 };
        let mut plain = view(&d);
        plain.flags = SchedFlags(base);
        let mut fb = view(&d);
        fb.flags = SchedFlags(base | SchedFlags::SCHED1);
        let p = pick(&mut s, &plain, &f);
        let q = pick(&mut s, &fb, &f);
        if p.is_some() { prop_assert_eq!(p, q); }
        if let Some(i) = q { prop_assert!(d[i].weight() > 0 && !d[i].overloaded); }
        if !d.iter().any(|x| x.weight() > 0 && !x.overloaded) { prop_assert_eq!(q, None); }
    }
}

/// Batch average of mh churn over 300 random equal-weight services
/// (deterministic seed): measured 1.4 %, asserted below 2.5 %.
#[test]
fn mh_average_churn_is_small() {
    let mut rng = SplitMix64::new(0x5eed);
    let (mut moved_all, mut kept_all) = (0usize, 0usize);
    for _ in 0..300 {
        let n = 2 + (rng.next_u64() % 31) as usize;
        let spec: Vec<(u32, u16, u32)> = (0..n)
            .map(|_| (rng.next_u64() as u32, rng.next_u64() as u16, 1))
            .collect();
        let d = make_dests(&spec);
        let r = (rng.next_u64() % n as u64) as usize;
        let mut s = Mh::default();
        s.init_service(&view(&d));
        let before = s.table().to_vec();
        let mut d2 = d.clone();
        let removed = d2.remove(r);
        s.del_dest(&view(&d2), &removed, r);
        let (m, k) = churn(&before, s.table(), removed.id);
        moved_all += m;
        kept_all += k;
    }
    assert!(moved_all * 1000 < kept_all * 25, "{moved_all} / {kept_all}");
}

/// sh really is positional: with three equal servers, removing the last one
/// still moves a third of the buckets of the two that stay (bucket b went to
/// b % 3, now to b % 2).
#[test]
fn sh_removal_moves_other_servers_flows() {
    let d = make_dests(&[(1, 80, 1), (2, 80, 1), (3, 80, 1)]);
    let mut s = Sh::default();
    s.init_service(&view(&d));
    let before = s.table().to_vec();
    let removed = d[2].clone();
    s.del_dest(&view(&d[..2]), &removed, 2);
    let (moved, kept) = churn(&before, s.table(), removed.id);
    // Buckets with b % 3 in {0, 1}: 171; those with b % 3 != b % 2 among
    // them are b % 6 in {3, 4}: 43 + 42 = 85.
    assert_eq!((moved, kept), (85, 171));
}
