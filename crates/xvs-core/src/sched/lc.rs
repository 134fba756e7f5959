//! lc: least connection (the kernel's ip_vs_lc.c).
//!
//! Every server that is neither overloaded nor quiescent (weight 0) is a
//! candidate; the one with the smallest connection overhead wins, the weight
//! only deciding eligibility. A later server must be strictly lighter to
//! displace an earlier one, so ties go to the first in list order.
//!
//! This file also holds the two small helpers the lc family shares, which
//! reproduce the kernel's C `int` arithmetic exactly.

use super::{SchedCtx, Scheduler, SchedulerKind, SvcView};
use crate::model::{Dest, Flow};

/// The kernel's ip_vs_dest_conn_overhead(): `(activeconns << 8) + inactconns`,
/// evaluated as a C `int` (two's complement, wrapping; the kernel is built with
/// -fno-strict-overflow). Equal to [`Dest::overhead`] until the active count
/// passes 2^23; past that the kernel's value wraps, and so does this one.
pub(crate) fn conn_overhead(d: &Dest) -> i32 {
    (d.active_conns << 8).wrapping_add(d.inact_conns) as i32
}

/// A server's weight as the kernel reads it (`atomic_read(&dest->weight)`, an `int`).
pub(crate) fn weight(d: &Dest) -> i32 {
    d.weight() as i32
}

#[derive(Clone, Debug, Default)]
pub struct Lc;

impl Scheduler for Lc {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Lc
    }

    fn schedule(&mut self, svc: &SvcView, _flow: &Flow, _ctx: &mut SchedCtx) -> Option<usize> {
        // ip_vs_lc_schedule() keeps the overhead in an `unsigned int` and
        // compares with a strict `<`.
        let mut least: Option<(usize, u32)> = None;
        for (i, d) in svc.dests.iter().enumerate() {
            if d.overloaded || weight(d) == 0 {
                continue;
            }
            let doh = conn_overhead(d) as u32;
            match least {
                Some((_, loh)) if doh >= loh => {}
                _ => least = Some((i, doh)),
            }
        }
        least.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Fixed;
    use crate::sched::testutil::{dests, flow, view};
    use crate::time::Time;

    fn pick(ds: &[Dest]) -> Option<usize> {
        let mut rng = Fixed::new(vec![0]);
        let mut ctx = SchedCtx {
            now: Time::ZERO,
            rng: &mut rng,
        };
        Lc.schedule(&view(ds), &flow(1, 1000), &mut ctx)
    }

    #[test]
    fn overhead_weighs_active_256_times_inactive() {
        let mut ds = dests(&[1, 1, 1]);
        // #1: 1 active, 0 inactive   -> 1*256 + 0   = 256
        // #2: 0 active, 255 inactive -> 0*256 + 255 = 255  (least)
        // #3: 0 active, 300 inactive -> 0*256 + 300 = 300
        ds[0].active_conns = 1;
        ds[1].inact_conns = 255;
        ds[2].inact_conns = 300;
        assert_eq!(pick(&ds), Some(1));
        ds[1].inact_conns = 257; // now 257 > 256: #1 is the least
        assert_eq!(pick(&ds), Some(0));
    }

    #[test]
    fn weight_does_not_scale_the_load() {
        // lc ignores the weight beyond "non-zero": #1 (w 100, overhead 2) loses
        // to #2 (w 1, overhead 1) although 2/100 < 1/1.
        let mut ds = dests(&[100, 1]);
        ds[0].inact_conns = 2;
        ds[1].inact_conns = 1;
        assert_eq!(pick(&ds), Some(1));
    }

    #[test]
    fn ties_keep_the_first_in_list_order() {
        let mut ds = dests(&[1, 5, 3]);
        for d in &mut ds {
            d.active_conns = 2;
        }
        assert_eq!(pick(&ds), Some(0));
        ds[0].active_conns = 3;
        assert_eq!(pick(&ds), Some(1));
    }

    #[test]
    fn skips_quiescent_and_overloaded() {
        let mut ds = dests(&[0, 1, 1]);
        ds[1].overloaded = true;
        ds[2].active_conns = 50; // the only candidate, however loaded
        assert_eq!(pick(&ds), Some(2));
    }

    #[test]
    fn no_destination_available() {
        assert_eq!(pick(&[]), None);
        assert_eq!(pick(&dests(&[0, 0])), None);
        let mut ds = dests(&[1, 2]);
        ds[0].overloaded = true;
        ds[1].overloaded = true;
        assert_eq!(pick(&ds), None);
    }

    #[test]
    fn overhead_wraps_like_a_c_int() {
        let mut ds = dests(&[1]);
        ds[0].active_conns = 3;
        ds[0].inact_conns = 7;
        assert_eq!(conn_overhead(&ds[0]), 3 * 256 + 7);
        assert_eq!(conn_overhead(&ds[0]) as u64, ds[0].overhead());
        ds[0].active_conns = 1 << 23; // (1<<23)<<8 = 1<<31: the sign bit
        ds[0].inact_conns = 0;
        assert_eq!(conn_overhead(&ds[0]), i32::MIN);
    }
}
