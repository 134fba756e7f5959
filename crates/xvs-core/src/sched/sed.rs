//! sed: shortest expected delay (the kernel's ip_vs_sed.c).
//!
//! Like wlc, but the load counts only active connections plus the one being
//! scheduled: (activeconns + 1) / weight. Starting candidate: the first server
//! that is not overloaded and has a positive weight; later servers that are
//! not overloaded replace it when `loh * w(dest) > doh * w(least)` (64-bit,
//! strict, so ties keep the earlier server).

use super::lc::weight;
use super::{SchedCtx, Scheduler, SchedulerKind, SvcView};
use crate::model::{Dest, Flow};

/// The kernel's ip_vs_sed_dest_overhead(): activeconns + 1 as a C `int`.
fn expected_overhead(d: &Dest) -> i32 {
    (d.active_conns as i32).wrapping_add(1)
}

#[derive(Clone, Debug, Default)]
pub struct Sed;

impl Scheduler for Sed {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Sed
    }

    fn schedule(&mut self, svc: &SvcView, _flow: &Flow, _ctx: &mut SchedCtx) -> Option<usize> {
        let ds = svc.dests;
        let first = ds.iter().position(|d| !d.overloaded && weight(d) > 0)?;
        let mut least = first;
        let mut loh = expected_overhead(&ds[first]) as i64;
        for (i, d) in ds.iter().enumerate().skip(first + 1) {
            if d.overloaded {
                continue;
            }
            let doh = expected_overhead(d) as i64;
            if loh * weight(d) as i64 > doh * weight(&ds[least]) as i64 {
                least = i;
                loh = doh;
            }
        }
        Some(least)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testutil::{dests, run_once as run};
    use crate::sched::wlc::Wlc;

    fn pick(ds: &[Dest]) -> Option<usize> {
        run(Sed, ds)
    }

    #[test]
    fn differs_from_wlc_by_counting_the_new_job() {
        // Both idle, weights 1 and 2.
        // wlc: 0/1 vs 0/2, a tie -> the first (#1).
        // sed: (0+1)/1 = 1 vs (0+1)/2 = 0.5 -> #2.
        let ds = dests(&[1, 2]);
        assert_eq!(run(Wlc, &ds), Some(0));
        assert_eq!(pick(&ds), Some(1));

        // #1 w1 with 1 active, #2 w3 with 3 active.
        // wlc: 256/1 = 768/3 = 256, a tie -> #1.
        // sed: (1+1)/1 = 2 vs (3+1)/3 = 1.33 -> #2.
        let mut ds = dests(&[1, 3]);
        ds[0].active_conns = 1;
        ds[1].active_conns = 3;
        assert_eq!(run(Wlc, &ds), Some(0));
        assert_eq!(pick(&ds), Some(1));
    }

    #[test]
    fn ignores_inactive_connections() {
        let mut ds = dests(&[1, 1]);
        ds[0].inact_conns = 1000;
        ds[1].active_conns = 1;
        // sed: (0+1)/1 = 1 vs (1+1)/1 = 2 -> #1 despite its 1000 inactive.
        assert_eq!(pick(&ds), Some(0));
    }

    #[test]
    fn ties_keep_the_first_in_list_order() {
        let mut ds = dests(&[2, 1, 4]);
        // (1+1)/2 = 1, (0+1)/1 = 1, (3+1)/4 = 1: all equal.
        ds[0].active_conns = 1;
        ds[2].active_conns = 3;
        assert_eq!(pick(&ds), Some(0));
    }

    #[test]
    fn skips_quiescent_and_overloaded() {
        let mut ds = dests(&[0, 10, 1]);
        ds[1].overloaded = true;
        ds[2].active_conns = 40;
        assert_eq!(pick(&ds), Some(2));
        // A weight-0 server after the first candidate never wins either.
        let mut ds = dests(&[1, 0]);
        ds[0].active_conns = 40;
        assert_eq!(pick(&ds), Some(0));
    }

    #[test]
    fn no_destination_available() {
        assert_eq!(pick(&[]), None);
        assert_eq!(pick(&dests(&[0])), None);
        let mut ds = dests(&[3, 0]);
        ds[0].overloaded = true;
        assert_eq!(pick(&ds), None);
    }
}
