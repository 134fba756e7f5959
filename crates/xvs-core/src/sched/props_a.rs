//! Property tests for rr, wrr, lc, wlc, sed, nq, fo, ovf and twos.
//!
//! The lc family is checked against a declarative statement of each rule
//! (e.g. "the first eligible server, in list order, with the smallest
//! overhead / weight"), computed with exact u128 cross-multiplication and kept
//! below the counter sizes where the kernel's C `int` arithmetic would wrap.

use proptest::prelude::*;

use super::fo::Fo;
use super::lc::Lc;
use super::nq::Nq;
use super::ovf::Ovf;
use super::rr::Rr;
use super::sed::Sed;
use super::testutil::{dest, flow, view};
use super::twos::Twos;
use super::wlc::Wlc;
use super::wrr::Wrr;
use super::{SchedCtx, Scheduler};
use crate::model::Dest;
use crate::rng::SplitMix64;
use crate::time::Time;

/// (weight, overloaded, active, inactive) per server, in list order.
type Spec = (u32, bool, u32, u32);

fn build(specs: &[Spec]) -> Vec<Dest> {
    specs
        .iter()
        .enumerate()
        .map(|(i, &(w, over, act, inact))| {
            let mut d = dest(i as u8 + 1, w);
            d.overloaded = over;
            d.active_conns = act;
            d.inact_conns = inact;
            d
        })
        .collect()
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop_oneof![Just(0u32), 1u32..=5, 1u32..=65535],
        prop::bool::weighted(0.2),
        prop_oneof![Just(0u32), 0u32..=20, 0u32..=100_000],
        prop_oneof![Just(0u32), 0u32..=300, 0u32..=100_000],
    )
}

fn specs() -> impl Strategy<Value = Vec<Spec>> {
    prop::collection::vec(spec(), 0..=8)
}

fn picks<S: Scheduler>(s: &mut S, ds: &[Dest], k: usize, seed: u64) -> Vec<Option<usize>> {
    let mut rng = SplitMix64::new(seed);
    let mut ctx = SchedCtx {
        now: Time::ZERO,
        rng: &mut rng,
    };
    let v = view(ds);
    (0..k)
        .map(|_| s.schedule(&v, &flow(1, 1000), &mut ctx))
        .collect()
}

fn pick_once<S: Scheduler>(mut s: S, ds: &[Dest], seed: u64) -> Option<usize> {
    picks(&mut s, ds, 1, seed)[0]
}

fn eligible(d: &Dest) -> bool {
    !d.overloaded && d.weight() > 0
}

/// The first eligible index minimising load(d) = num(d) / weight(d).
fn first_min_ratio(ds: &[Dest], num: impl Fn(&Dest) -> u128) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, d) in ds.iter().enumerate().filter(|(_, d)| eligible(d)) {
        match best {
            Some(b) if num(d) * ds[b].weight() as u128 >= num(&ds[b]) * d.weight() as u128 => {}
            _ => best = Some(i),
        }
    }
    best
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// lc, wlc, sed, nq, fo, ovf, twos never pick an overloaded or weight-0
    /// server, and answer None exactly when no server is eligible (for ovf:
    /// eligible and active <= weight).
    #[test]
    fn lc_family_only_picks_eligible(specs in specs(), seed in any::<u64>()) {
        let ds = build(&specs);
        let any = ds.iter().any(eligible);
        let results = [
            ("lc", pick_once(Lc, &ds, seed)),
            ("wlc", pick_once(Wlc, &ds, seed)),
            ("sed", pick_once(Sed, &ds, seed)),
            ("nq", pick_once(Nq, &ds, seed)),
            ("fo", pick_once(Fo, &ds, seed)),
            ("twos", pick_once(Twos, &ds, seed)),
        ];
        for (name, r) in results {
            prop_assert_eq!(r.is_some(), any, "{}", name);
            if let Some(i) = r {
                prop_assert!(eligible(&ds[i]), "{} picked ineligible #{}", name, i);
            }
        }
        let ovf_ok = |d: &Dest| eligible(d) && d.active_conns <= d.weight();
        let r = pick_once(Ovf, &ds, seed);
        prop_assert_eq!(r.is_some(), ds.iter().any(ovf_ok));
        if let Some(i) = r {
            prop_assert!(ovf_ok(&ds[i]));
        }
    }

    /// Each lc-family pick is the first server in list order that is best by
    /// its rule.
    #[test]
    fn lc_family_matches_its_rule(specs in specs()) {
        let ds = build(&specs);
        let overhead = |d: &Dest| d.overhead() as u128;
        let lc_rule = ds
            .iter()
            .enumerate()
            .filter(|(_, d)| eligible(d))
            .min_by_key(|(i, d)| (d.overhead(), *i))
            .map(|(i, _)| i);
        prop_assert_eq!(pick_once(Lc, &ds, 0), lc_rule);
        prop_assert_eq!(pick_once(Wlc, &ds, 0), first_min_ratio(&ds, overhead));
        let expected_delay = |d: &Dest| d.active_conns as u128 + 1;
        let sed_rule = first_min_ratio(&ds, expected_delay);
        prop_assert_eq!(pick_once(Sed, &ds, 0), sed_rule);
        let idle = ds.iter().position(|d| eligible(d) && d.active_conns == 0);
        prop_assert_eq!(pick_once(Nq, &ds, 0), idle.or(sed_rule));
        let fo_rule = ds
            .iter()
            .enumerate()
            .filter(|(_, d)| eligible(d))
            .max_by_key(|(i, d)| (d.weight(), std::cmp::Reverse(*i)))
            .map(|(i, _)| i);
        prop_assert_eq!(pick_once(Fo, &ds, 0), fo_rule);
        let ovf_rule = ds
            .iter()
            .enumerate()
            .filter(|(_, d)| eligible(d) && d.active_conns <= d.weight())
            .max_by_key(|(i, d)| (d.weight(), std::cmp::Reverse(*i)))
            .map(|(i, _)| i);
        prop_assert_eq!(pick_once(Ovf, &ds, 0), ovf_rule);
    }

    /// twos picks one of the two servers its draws land on, and the lighter
    /// one by overhead/weight (the first draw's on a tie).
    #[test]
    fn twos_picks_the_lighter_of_its_two_draws(specs in specs(), seed in any::<u64>()) {
        use crate::rng::Rng;
        let ds = build(&specs);
        let elig: Vec<usize> = (0..ds.len()).filter(|&i| eligible(&ds[i])).collect();
        prop_assume!(!elig.is_empty());
        let total: u32 = elig.iter().map(|&i| ds[i].weight()).sum();
        let mut shadow = SplitMix64::new(seed);
        let r1 = shadow.below(total + 1);
        let r2 = shadow.below(total + 1);
        let land = |r: u32| {
            let mut acc = 0u32;
            for &i in &elig {
                acc += ds[i].weight();
                if r <= acc {
                    return i;
                }
            }
            unreachable!()
        };
        let (a, b) = (land(r1), land(r2));
        // The kernel compares these products as C ints; only check cases
        // where they fit, so the exact comparison is the kernel's.
        let p1 = ds[b].weight() as i64 * ds[a].overhead() as i64;
        let p2 = ds[a].weight() as i64 * ds[b].overhead() as i64;
        prop_assume!(p1 <= i32::MAX as i64 && p2 <= i32::MAX as i64);
        let want = if p1 > p2 { b } else { a };
        prop_assert_eq!(pick_once(Twos, &ds, seed), Some(want));
    }

    /// wrr: from a fresh service, over one period of sum(w)/gcd picks each
    /// server gets exactly w/gcd of them (0 for weight 0), and the sequence
    /// then repeats with that period.
    #[test]
    fn wrr_period_gives_each_its_share(
        base in prop::collection::vec(prop_oneof![Just(0u32), 1u32..=12], 1..=6),
        factor in 1u32..=4,
    ) {
        let weights: Vec<u32> = base.iter().map(|w| w * factor).collect();
        prop_assume!(weights.iter().any(|&w| w > 0));
        let specs: Vec<Spec> = weights.iter().map(|&w| (w, false, 0, 0)).collect();
        let ds = build(&specs);
        let g = weights.iter().fold(0, |g, &w| gcd(g, w));
        let period = (weights.iter().sum::<u32>() / g) as usize;

        let mut s = Wrr::default();
        s.init_service(&view(&ds));
        let seq = picks(&mut s, &ds, 3 * period, 0);
        let mut counts = vec![0u32; ds.len()];
        for p in &seq[..period] {
            counts[p.expect("a server is always available")] += 1;
        }
        let want: Vec<u32> = weights.iter().map(|w| w / g).collect();
        prop_assert_eq!(counts, want);
        for i in 0..2 * period {
            prop_assert_eq!(seq[i], seq[i + period], "not periodic at {}", i);
        }
    }

    /// wrr never picks an ineligible server and only fails when none is
    /// eligible, whatever the overload pattern and starting point.
    #[test]
    fn wrr_picks_only_eligible(specs in specs(), warmup in 0usize..20, flip in any::<u8>()) {
        let ds = build(&specs);
        let healthy: Vec<Dest> = ds
            .iter()
            .cloned()
            .map(|mut d| { d.overloaded = false; d })
            .collect();
        let mut s = Wrr::default();
        s.init_service(&view(&ds));
        // Warm up on the healthy list, then overloads appear (no hook: the
        // overload flag is not a list change).
        picks(&mut s, &healthy, warmup, 0);
        let mut ds = ds;
        if let Some(d) = ds.get_mut(flip as usize % 8) {
            d.overloaded = !d.overloaded;
        }
        let any = ds.iter().any(eligible);
        for p in picks(&mut s, &ds, 40, 0) {
            prop_assert_eq!(p.is_some(), any);
            if let Some(i) = p {
                prop_assert!(eligible(&ds[i]));
            }
        }
    }

    /// rr: after any number of earlier picks, every run of n picks (n = the
    /// number of eligible servers) visits each eligible server exactly once,
    /// in list order from where it stands; None when nobody is eligible.
    #[test]
    fn rr_is_fair(specs in specs(), warmup in 0usize..20) {
        let ds = build(&specs);
        let healthy: Vec<Dest> = ds
            .iter()
            .cloned()
            .map(|mut d| { d.overloaded = false; d.cfg.weight = d.weight().max(1); d })
            .collect();
        let mut s = Rr::default();
        s.init_service(&view(&ds));
        // Move the cursor somewhere arbitrary first.
        picks(&mut s, &healthy, warmup, 0);
        let elig: Vec<usize> = (0..ds.len()).filter(|&i| eligible(&ds[i])).collect();
        let n = elig.len();
        let seq = picks(&mut s, &ds, 3 * n.max(1), 0);
        if n == 0 {
            prop_assert!(seq.iter().all(|p| p.is_none()));
        } else {
            let seq: Vec<usize> = seq.into_iter().map(|p| p.unwrap()).collect();
            for w in seq.windows(n) {
                let mut sorted = w.to_vec();
                sorted.sort_unstable();
                prop_assert_eq!(&sorted, &elig);
            }
            // Consecutive picks follow list order cyclically over eligibles.
            for pair in seq.windows(2) {
                let pos = elig.iter().position(|&i| i == pair[0]).unwrap();
                prop_assert_eq!(pair[1], elig[(pos + 1) % n]);
            }
        }
    }

    /// rr: deleting the server under the cursor makes the next pick the
    /// eligible server that followed it (wrapping), as if it had been skipped.
    #[test]
    fn rr_delete_under_cursor_continues_after_it(n in 2usize..8, k in 1usize..20) {
        let ds = build(&vec![(1, false, 0, 0); n]);
        let mut s = Rr::default();
        s.init_service(&view(&ds));
        let at = picks(&mut s, &ds, k, 0).last().unwrap().unwrap();
        let mut shrunk = ds.clone();
        let removed = shrunk.remove(at);
        s.del_dest(&view(&shrunk), &removed, at);
        let next = picks(&mut s, &shrunk, 1, 0)[0].unwrap();
        // The one after the removed: same index now, or the first on wrap.
        prop_assert_eq!(next, if at < shrunk.len() { at } else { 0 });
    }
}
