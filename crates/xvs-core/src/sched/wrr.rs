//! wrr: weighted round robin (the kernel's ip_vs_wrr.c).
//!
//! State, all recomputed from the list whenever it changes:
//! - `di`: the gcd of the positive weights (1 if there are none);
//! - `mw`: the maximum weight minus (di - 1), so the last pass runs at cw = 1;
//! - `cw`: the current weight threshold, stepping down by `di`;
//! - `cl`: the cursor, the list head (`None`) or the server picked last.
//!
//! A pick scans forward from the cursor for a server that is not overloaded
//! and whose weight is >= cw. At the end of the list cw drops by di and the
//! scan restarts from the head; when cw would reach 0 or below it goes back to
//! mw. With max weight m*di the passes run at cw = (m-1)di+1, ..., di+1, 1, and
//! a server of weight j*di qualifies in the last j of those m passes, so every
//! full cycle of sum(w)/di picks gives it exactly w/di of them.
//!
//! The search gives up ("all destinations are overloaded") after one full
//! pass at the lowest threshold over every server; `mw == 0` (no positive
//! weight at the last list change) fails at once.
//!
//! add_dest, del_dest and upd_dest all do what the kernel's
//! ip_vs_wrr_dest_changed() does: the cursor goes back to the head, di and mw
//! are recomputed, and cw is kept unless it is 0 or above the new mw (then it
//! becomes mw); when kept and di > 1 it is realigned to (cw / di) * di + 1.

use super::lc::weight;
use super::{SchedCtx, Scheduler, SchedulerKind, SvcView};
use crate::model::{Dest, DestId, Flow};

#[derive(Clone, Debug)]
pub struct Wrr {
    /// `None`: the list head; `Some(id)`: the server picked last.
    cl: Option<DestId>,
    /// Current weight threshold.
    cw: i32,
    /// Maximum weight, less (di - 1).
    mw: i32,
    /// Step: gcd of the positive weights.
    di: i32,
}

impl Default for Wrr {
    /// The state of a service with no servers (what init_service computes
    /// for an empty list).
    fn default() -> Wrr {
        Wrr {
            cl: None,
            cw: 0,
            mw: 0,
            di: 1,
        }
    }
}

fn gcd(mut a: i32, mut b: i32) -> i32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// gcd of all positive weights, 1 when there is none (ip_vs_wrr_gcd_weight).
fn gcd_weight(dests: &[Dest]) -> i32 {
    let g = dests
        .iter()
        .map(weight)
        .filter(|&w| w > 0)
        .fold(0, |g, w| if g > 0 { gcd(w, g) } else { w });
    if g == 0 {
        1
    } else {
        g
    }
}

/// Largest weight over all servers, overloaded or not; 0 for none
/// (ip_vs_wrr_max_weight).
fn max_weight(dests: &[Dest]) -> i32 {
    dests.iter().map(weight).fold(0, i32::max)
}

impl Wrr {
    fn dest_changed(&mut self, svc: &SvcView) {
        self.cl = None;
        self.di = gcd_weight(svc.dests);
        self.mw = max_weight(svc.dests) - (self.di - 1);
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }
}

impl Scheduler for Wrr {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Wrr
    }

    fn init_service(&mut self, svc: &SvcView) {
        self.cl = None;
        self.di = gcd_weight(svc.dests);
        self.mw = max_weight(svc.dests) - (self.di - 1);
        self.cw = self.mw;
    }

    fn add_dest(&mut self, svc: &SvcView, _dest: DestId) {
        self.dest_changed(svc);
    }

    fn del_dest(&mut self, svc: &SvcView, _removed: &Dest, _former_index: usize) {
        self.dest_changed(svc);
    }

    fn upd_dest(&mut self, svc: &SvcView, _dest: DestId) {
        self.dest_changed(svc);
    }

    fn schedule(&mut self, svc: &SvcView, _flow: &Flow, _ctx: &mut SchedCtx) -> Option<usize> {
        let ds = svc.dests;
        // The cursor is reset on every list change, so it is always in the
        // list; were it not, scanning from the head is the safe reading.
        let mut pos = self.cl.and_then(|id| svc.index_of(id));
        if self.mw == 0 {
            self.cl = pos.map(|i| ds[i].id);
            return None;
        }
        let last = pos;
        let mut stop: Option<usize> = None;
        let mut last_pass = false;
        let mut restarted = false;
        loop {
            let from = pos.map_or(0, |i| i + 1);
            for (i, d) in ds.iter().enumerate().skip(from) {
                if !d.overloaded && weight(d) >= self.cw {
                    self.cl = Some(d.id);
                    return Some(i);
                }
                if stop == Some(i) {
                    // Back at the starting server on the final pass.
                    self.cl = Some(d.id);
                    return None;
                }
            }
            // Ran off the end of the list: the position is the head again.
            pos = None;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                // Already did a lowest-threshold pass over every server:
                // either it started at the head, or it went round once.
                if last_pass || last.is_none() {
                    self.cl = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                // The first lowest-threshold pass only covered the servers
                // after `last`; this one must cover those up to it.
                stop = last;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Fixed;
    use crate::sched::testutil::{dest, dests, flow, view};
    use crate::time::Time;

    fn next(s: &mut Wrr, ds: &[Dest]) -> Option<usize> {
        let mut rng = Fixed::new(vec![0]);
        let mut ctx = SchedCtx {
            now: Time::ZERO,
            rng: &mut rng,
        };
        s.schedule(&view(ds), &flow(1, 1000), &mut ctx)
    }

    fn run(s: &mut Wrr, ds: &[Dest], k: usize) -> Vec<Option<usize>> {
        (0..k).map(|_| next(s, ds)).collect()
    }

    fn fresh(ds: &[Dest]) -> Wrr {
        let mut s = Wrr::default();
        s.init_service(&view(ds));
        s
    }

    #[test]
    fn weights_4_3_2() {
        // A=4, B=3, C=2 in list order: di = gcd = 1, mw = 4 - 0 = 4, cw = 4.
        //   cw=4: A(4>=4)                      -> A
        //   cw=4: B,C fail; end -> cw=3; A      -> A
        //   cw=3: B(3>=3)                      -> B
        //   cw=3: C fails; end -> cw=2; A      -> A
        //   cw=2: B                            -> B
        //   cw=2: C(2>=2)                      -> C
        //   cw=2: end -> cw=1; A               -> A
        //   cw=1: B                            -> B
        //   cw=1: C                            -> C
        //   cw=1: end -> cw=0 <= 0 -> cw=mw=4; A -> A (next cycle)
        const A: Option<usize> = Some(0);
        const B: Option<usize> = Some(1);
        const C: Option<usize> = Some(2);
        let ds = dests(&[4, 3, 2]);
        let mut s = fresh(&ds);
        let cycle = [A, A, B, A, B, C, A, B, C];
        let picks = run(&mut s, &ds, 18);
        assert_eq!(picks[..9], cycle);
        assert_eq!(picks[9..], cycle);
    }

    #[test]
    fn common_divisor_steps() {
        // Weights 6, 4: di = 2, mw = 6 - 1 = 5.
        //   cw=5: A(6)                    -> A
        //   cw=5: B(4) fails; cw=3: A     -> A
        //   cw=3: B(4>=3)                 -> B
        //   cw=3: end; cw=1: A            -> A
        //   cw=1: B                       -> B
        //   cw=1: end; cw=-1 -> 5: A      -> A (next cycle)
        let ds = dests(&[6, 4]);
        let mut s = fresh(&ds);
        assert_eq!((s.di, s.mw, s.cw), (2, 5, 5));
        assert_eq!(run(&mut s, &ds, 6), [0, 0, 1, 0, 1, 0].map(Some).to_vec());
    }

    #[test]
    fn add_dest_restarts_from_the_head_keeping_cw() {
        let ds = dests(&[4, 3, 2]);
        let mut s = fresh(&ds);
        assert_eq!(run(&mut s, &ds, 2), [0, 0].map(Some).to_vec());
        // Now cl = A, cw = 3; without a change the next pick would be B.
        assert_eq!((s.cl, s.cw), (Some(DestId(1)), 3));
        // Add D (weight 1) at the head: [D1, A4, B3, C2]. di = 1, mw = 4,
        // cw = 3 is kept (0 < 3 <= 4, di = 1), cl back to the head.
        let mut grown = vec![dest(4, 1)];
        grown.extend(ds.iter().cloned());
        s.add_dest(&view(&grown), DestId(4));
        assert_eq!((s.cl, s.cw, s.mw, s.di), (None, 3, 4, 1));
        // From the head at cw=3: D(1) fails, A(4) -> A (index 1), then B.
        assert_eq!(run(&mut s, &grown, 2), [1, 2].map(Some).to_vec());
    }

    #[test]
    fn change_realigns_cw_to_the_new_step() {
        // [6, 4]: di 2, mw 5. Three picks leave cw = 3, cl = B.
        let mut ds = dests(&[6, 4]);
        let mut s = fresh(&ds);
        run(&mut s, &ds, 3);
        assert_eq!((s.cl, s.cw), (Some(DestId(2)), 3));
        // Edit B to 3: [6, 3], di = 3, mw = 6 - 2 = 4; cw 3 <= 4 and di > 1:
        // cw = (3 / 3) * 3 + 1 = 4.
        ds[1].cfg.weight = 3;
        s.upd_dest(&view(&ds), DestId(2));
        assert_eq!((s.cl, s.cw, s.mw, s.di), (None, 4, 4, 3));
        // Edit A to 2: [2, 3], di = 1, mw = 3; cw 4 > 3 -> cw = 3.
        ds[0].cfg.weight = 2;
        s.upd_dest(&view(&ds), DestId(1));
        assert_eq!((s.cl, s.cw, s.mw, s.di), (None, 3, 3, 1));
    }

    #[test]
    fn del_dest_recomputes() {
        let ds = dests(&[4, 3, 2]);
        let mut s = fresh(&ds);
        run(&mut s, &ds, 4); // cl = A, cw = 2
        let mut shrunk = ds.clone();
        let removed = shrunk.remove(0); // [B3, C2]: di 1, mw 3, cw 2 kept
        s.del_dest(&view(&shrunk), &removed, 0);
        assert_eq!((s.cl, s.cw, s.mw, s.di), (None, 2, 3, 1));
        // cw=2: B, C; cw=1: B, C; wrap to cw=3: B; ...
        assert_eq!(run(&mut s, &shrunk, 5), [0, 1, 0, 1, 0].map(Some).to_vec());
    }

    #[test]
    fn overloaded_servers_are_skipped() {
        let mut ds = dests(&[4, 3, 2]);
        ds[0].overloaded = true;
        let mut s = fresh(&ds);
        // mw stays 4 (max over all servers); passes at cw 4 find nobody.
        //   cw=4: none; cw=3: B                 -> B
        //   cw=3: C fails; cw=2: B              -> B
        //   cw=2: C                             -> C
        //   cw=1: B, C                          -> B, C
        //   cw=0 -> 4 (restart): none; cw=3: B  -> B
        assert_eq!(run(&mut s, &ds, 6), [1, 1, 2, 1, 2, 1].map(Some).to_vec());
    }

    #[test]
    fn all_overloaded_gives_none_and_cursor_placement() {
        // Weights 2, 1: di 1, mw 2. Cycle: A (cw 2), A (cw 1), B (cw 1).
        let healthy = dests(&[2, 1]);
        let mut down = healthy.clone();
        down[0].overloaded = true;
        down[1].overloaded = true;

        // Cursor on A, cw 2. Failing scan: B at cw 2; end, cw 1 (a last
        // pass, not restarted): A, B; end, cw 0 -> 2 after a last pass:
        // give up with the cursor at the head.
        let mut s = fresh(&healthy);
        assert_eq!(next(&mut s, &healthy), Some(0));
        assert_eq!(next(&mut s, &down), None);
        assert_eq!((s.cl, s.cw), (None, 2));

        // Cursor on B, cw 1. Failing scan: nothing after B; cw 0 -> 2
        // (restarted); A, B at cw 2; cw 1 is a last pass after a restart, so
        // stop = B: A fails, B fails and is the stop -> the cursor stays on B.
        let mut s = fresh(&healthy);
        assert_eq!(run(&mut s, &healthy, 3), [0, 0, 1].map(Some).to_vec());
        assert_eq!(next(&mut s, &down), None);
        assert_eq!((s.cl, s.cw), (Some(DestId(2)), 1));
        // Recovery continues after B: wrap, cw 0 -> 2, A.
        assert_eq!(next(&mut s, &healthy), Some(0));

        // From the head: A, B at cw 2, A, B at cw 1, then give up.
        let mut s = fresh(&healthy);
        assert_eq!(next(&mut s, &down), None);
        assert_eq!((s.cl, s.cw), (None, 2));
        // Recovery of B alone: cw 2 skips it, cw 1 takes it.
        let mut half = down.clone();
        half[1].overloaded = false;
        assert_eq!(next(&mut s, &half), Some(1));
    }

    #[test]
    fn weight_zero_servers_are_never_picked() {
        let ds = dests(&[0, 2, 0, 1]);
        let mut s = fresh(&ds);
        assert_eq!(run(&mut s, &ds, 6), [1, 1, 3, 1, 1, 3].map(Some).to_vec());
    }

    #[test]
    fn no_destination_available() {
        // Empty service.
        let mut s = fresh(&[]);
        assert_eq!(next(&mut s, &[]), None);
        // All weights 0: mw = 0, fails at once, cursor untouched.
        let ds = dests(&[0, 0]);
        let mut s = fresh(&ds);
        assert_eq!((s.di, s.mw), (1, 0));
        assert_eq!(next(&mut s, &ds), None);
        // All overloaded.
        let mut ds = dests(&[3, 1]);
        ds[0].overloaded = true;
        ds[1].overloaded = true;
        let mut s = fresh(&ds);
        assert_eq!(next(&mut s, &ds), None);
    }

    #[test]
    fn weights_set_to_zero_take_effect_through_upd_dest() {
        let mut ds = dests(&[1, 1]);
        let mut s = fresh(&ds);
        assert_eq!(next(&mut s, &ds), Some(0));
        ds[0].cfg.weight = 0;
        ds[1].cfg.weight = 0;
        s.upd_dest(&view(&ds), DestId(1));
        // di = 1, mw = 0; cw 1 > 0 -> cw = 0.
        assert_eq!((s.mw, s.cw), (0, 0));
        assert_eq!(next(&mut s, &ds), None);
        // #2 back at weight 2: di = 2, mw = 2 - (2 - 1) = 1; cw == 0 -> cw = 1.
        ds[1].cfg.weight = 2;
        s.upd_dest(&view(&ds), DestId(2));
        assert_eq!((s.mw, s.cw, s.di), (1, 1, 2));
        assert_eq!(next(&mut s, &ds), Some(1));
    }
}
