//! twos: power of two choices (the kernel's ip_vs_twos.c).
//!
//! Eligible servers are those not overloaded with a positive weight. With T
//! their total weight, two numbers r1 then r2 are drawn, each uniform in
//! 0..=T (the kernel's get_random_u32_below(T + 1), here `ctx.rng.below`).
//! Walking the eligible servers in list order, each draw has the server's
//! weight subtracted and lands on the first server where it reaches <= 0; so
//! the first eligible server covers draws 0..=w1 (one value more than its
//! weight), the k-th covers (w1+..+w(k-1), w1+..+wk].
//!
//! The first draw's server wins unless the second one is strictly lighter by
//! `w2 * overhead1 > w1 * overhead2`. The kernel evaluates these products in
//! C `int` (wrapping), unlike wlc which widens to 64 bits; this model does the
//! same, so with large weights and loads the comparison can wrap exactly as it
//! does in the kernel (see the test `products_wrap_like_the_kernel`).

use super::lc::{conn_overhead, weight};
use super::{SchedCtx, Scheduler, SchedulerKind, SvcView};
use crate::model::Flow;

#[derive(Clone, Debug, Default)]
pub struct Twos;

/// One chosen server: its index, weight and connection overhead.
#[derive(Clone, Copy)]
struct Choice {
    index: usize,
    weight: i32,
    overhead: i32,
}

impl Scheduler for Twos {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Twos
    }

    fn schedule(&mut self, svc: &SvcView, _flow: &Flow, ctx: &mut SchedCtx) -> Option<usize> {
        let eligible = |d: &crate::model::Dest| !d.overloaded && weight(d) > 0;

        let mut total: i32 = 0;
        let mut last_eligible = None;
        for (i, d) in svc.dests.iter().enumerate() {
            if eligible(d) {
                total = total.wrapping_add(weight(d));
                last_eligible = Some(i);
            }
        }
        let last_eligible = last_eligible?;

        // Draws are inclusive of T: one more value than the total weight.
        let bound = total.wrapping_add(1) as u32;
        let mut r1 = ctx.rng.below(bound) as i32;
        let mut r2 = ctx.rng.below(bound) as i32;

        let mut c1: Option<Choice> = None;
        let mut c2: Option<Choice> = None;
        for (i, d) in svc.dests.iter().enumerate() {
            if !eligible(d) {
                continue;
            }
            let w = weight(d);
            r1 = r1.wrapping_sub(w);
            r2 = r2.wrapping_sub(w);
            let here = Choice {
                index: i,
                weight: w,
                overhead: conn_overhead(d),
            };
            if r1 <= 0 && c1.is_none() {
                c1 = Some(here);
            }
            if r2 <= 0 && c2.is_none() {
                c2 = Some(here);
            }
            if c1.is_some() && c2.is_some() {
                break;
            }
        }

        // Both draws always land (a draw is at most T), but mirror the
        // kernel's starting values anyway: the first choice defaults to the
        // last eligible server with weight -1 and overhead 0.
        let c1 = c1.unwrap_or(Choice {
            index: last_eligible,
            weight: -1,
            overhead: 0,
        });
        if let Some(c2) = c2 {
            if c2.weight.wrapping_mul(c1.overhead) > c1.weight.wrapping_mul(c2.overhead) {
                return Some(c2.index);
            }
        }
        Some(c1.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Dest;
    use crate::rng::{Fixed, Rng};
    use crate::sched::testutil::{dests, flow, view};
    use crate::time::Time;

    /// The 32-bit draw that `below(n)` maps to `r`: ceil(r * 2^32 / n).
    fn draw_for(r: u32, n: u32) -> u32 {
        (((r as u64) << 32).div_ceil(n as u64)) as u32
    }

    fn pick(ds: &[Dest], r1: u32, r2: u32) -> Option<usize> {
        let total: u32 = ds
            .iter()
            .filter(|d| !d.overloaded && d.weight() > 0)
            .map(|d| d.weight())
            .sum();
        let n = total + 1;
        let mut rng = Fixed::new(vec![draw_for(r1, n), draw_for(r2, n)]);
        let mut ctx = SchedCtx {
            now: Time::ZERO,
            rng: &mut rng,
        };
        Twos.schedule(&view(ds), &flow(1, 1000), &mut ctx)
    }

    #[test]
    fn draw_helper_inverts_below() {
        for n in [1u32, 2, 7, 131_071, u32::MAX] {
            for r in [0, n / 2, n - 1] {
                let mut rng = Fixed::new(vec![draw_for(r, n)]);
                assert_eq!(rng.below(n), r, "r={r} n={n}");
            }
        }
    }

    #[test]
    fn draws_map_onto_weight_ranges() {
        // Weights 2, 3, 1: T = 6, draws in 0..=6.
        //   #1 takes r <= 2      -> {0, 1, 2}
        //   #2 takes r <= 2+3    -> {3, 4, 5}
        //   #3 takes r <= 2+3+1  -> {6}
        // With r1 == r2 both choices are the same server.
        let ds = dests(&[2, 3, 1]);
        let expect = [0, 0, 0, 1, 1, 1, 2];
        for (r, &want) in expect.iter().enumerate() {
            assert_eq!(pick(&ds, r as u32, r as u32), Some(want), "r={r}");
        }
    }

    #[test]
    fn tie_goes_to_the_first_draw() {
        // All idle: w2*0 > w1*0 is false, the first draw's server is kept.
        let ds = dests(&[2, 3, 1]);
        assert_eq!(pick(&ds, 0, 6), Some(0));
        assert_eq!(pick(&ds, 6, 0), Some(2));
        assert_eq!(pick(&ds, 4, 1), Some(1));
    }

    #[test]
    fn lighter_second_choice_wins() {
        let mut ds = dests(&[2, 3, 1]);
        // choice1 = #1 (w2), choice2 = #3 (w1).
        ds[0].active_conns = 1; // overhead1 = 256
        ds[2].inact_conns = 100; // overhead2 = 100
                                 // 1*256 = 256 > 2*100 = 200 -> #3
        assert_eq!(pick(&ds, 1, 6), Some(2));
        // overhead2 = 128: 256 > 256 is false (equal ratios) -> #1
        ds[2].inact_conns = 128;
        assert_eq!(pick(&ds, 1, 6), Some(0));
        // Swapping the draws swaps the roles: #3 first, #1 second.
        // 2*128 = 256 > 1*256 = 256 is false -> #3 stays.
        assert_eq!(pick(&ds, 6, 1), Some(2));
    }

    #[test]
    fn skips_overloaded_and_quiescent() {
        // Weights 2, 3 (overloaded), 0, 1: T = 3, #1 takes {0,1,2}, #4 takes {3}.
        let mut ds = dests(&[2, 3, 0, 1]);
        ds[1].overloaded = true;
        assert_eq!(pick(&ds, 3, 3), Some(3));
        assert_eq!(pick(&ds, 2, 2), Some(0));
    }

    #[test]
    fn draws_are_taken_in_order_and_only_two() {
        let ds = dests(&[1, 1]);
        // T = 2, draws 0..=2: #1 takes {0, 1}, #2 takes {2}.
        let mut rng = Fixed::new(vec![draw_for(2, 3), draw_for(0, 3), draw_for(2, 3)]);
        let mut ctx = SchedCtx {
            now: Time::ZERO,
            rng: &mut rng,
        };
        assert_eq!(Twos.schedule(&view(&ds), &flow(1, 1000), &mut ctx), Some(1));
        // The third draw (2 -> #2) was not consumed: the next call starts
        // with it as its first draw, then wraps to the first value.
        assert_eq!(rng.next_u32(), draw_for(2, 3));
    }

    #[test]
    fn products_wrap_like_the_kernel() {
        // Two servers of weight 65535: T = 131070. r1 = 0 -> #1, r2 = T -> #2.
        let mut ds = dests(&[65535, 65535]);
        // #1: 128 active -> overhead 32768; 65535 * 32768 = 2147450880 fits
        // in an int and exceeds 65535 * 0: the idle #2 wins.
        ds[0].active_conns = 128;
        assert_eq!(pick(&ds, 0, 131_070), Some(1));
        // #1: 129 active -> overhead 33024; 65535 * 33024 = 2164227840 wraps
        // to -2130739456 in an int, which is not > 0: the kernel keeps the
        // loaded #1.
        ds[0].active_conns = 129;
        assert_eq!(pick(&ds, 0, 131_070), Some(0));
    }

    #[test]
    fn no_destination_available() {
        let run = |ds: &[Dest]| {
            let mut rng = Fixed::new(vec![0]);
            let mut ctx = SchedCtx {
                now: Time::ZERO,
                rng: &mut rng,
            };
            Twos.schedule(&view(ds), &flow(1, 1000), &mut ctx)
        };
        assert_eq!(run(&[]), None);
        assert_eq!(run(&dests(&[0, 0])), None);
        let mut ds = dests(&[1, 5]);
        ds[0].overloaded = true;
        ds[1].overloaded = true;
        assert_eq!(run(&ds), None);
    }
}
