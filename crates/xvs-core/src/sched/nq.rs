//! nq: never queue (the kernel's ip_vs_nq.c).
//!
//! Walking the list in order over servers that are not overloaded and have a
//! non-zero weight, the first one with no active connection is taken at once
//! (inactive connections do not count as busy). Without such an idle server
//! the choice is sed's: least (activeconns + 1) / weight, compared by 64-bit
//! cross-multiplication, strictly, so ties keep the earlier server.

use super::lc::weight;
use super::{SchedCtx, Scheduler, SchedulerKind, SvcView};
use crate::model::{Dest, Flow};

/// The kernel's ip_vs_nq_dest_overhead(): activeconns + 1 as a C `int`.
fn expected_overhead(d: &Dest) -> i32 {
    (d.active_conns as i32).wrapping_add(1)
}

#[derive(Clone, Debug, Default)]
pub struct Nq;

impl Scheduler for Nq {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Nq
    }

    fn schedule(&mut self, svc: &SvcView, _flow: &Flow, _ctx: &mut SchedCtx) -> Option<usize> {
        let ds = svc.dests;
        let mut least: Option<(usize, i64)> = None;
        for (i, d) in ds.iter().enumerate() {
            if d.overloaded || weight(d) == 0 {
                continue;
            }
            let doh = expected_overhead(d) as i64;
            if d.active_conns == 0 {
                return Some(i);
            }
            match least {
                Some((l, loh)) if loh * weight(d) as i64 <= doh * weight(&ds[l]) as i64 => {}
                _ => least = Some((i, doh)),
            }
        }
        least.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::sed::Sed;
    use crate::sched::testutil::{dests, run_once as run};

    fn pick(ds: &[Dest]) -> Option<usize> {
        run(Nq, ds)
    }

    #[test]
    fn idle_server_first() {
        // #1 w10, 1 active: sed load (1+1)/10 = 0.2
        // #2 w1, idle:      sed load (0+1)/1  = 1
        // sed takes #1; nq takes the idle #2.
        let mut ds = dests(&[10, 1]);
        ds[0].active_conns = 1;
        assert_eq!(run(Sed, &ds), Some(0));
        assert_eq!(pick(&ds), Some(1));
    }

    #[test]
    fn idle_means_no_active_connection() {
        // #2 has only inactive connections: it still counts as idle.
        let mut ds = dests(&[10, 1]);
        ds[0].active_conns = 1;
        ds[1].inact_conns = 500;
        assert_eq!(pick(&ds), Some(1));
    }

    #[test]
    fn first_idle_in_list_order_wins() {
        let mut ds = dests(&[1, 1, 100]);
        ds[0].active_conns = 1;
        assert_eq!(pick(&ds), Some(1));
    }

    #[test]
    fn idle_but_unavailable_is_skipped() {
        let mut ds = dests(&[0, 1, 1]);
        ds[1].overloaded = true;
        ds[2].active_conns = 7;
        assert_eq!(pick(&ds), Some(2));
    }

    #[test]
    fn without_idle_servers_behaves_like_sed() {
        let mut ds = dests(&[1, 3, 2]);
        // (2+1)/1 = 3, (5+1)/3 = 2, (3+1)/2 = 2 -> #2 (tie with #3, earlier wins)
        ds[0].active_conns = 2;
        ds[1].active_conns = 5;
        ds[2].active_conns = 3;
        assert_eq!(pick(&ds), Some(1));
        assert_eq!(run(Sed, &ds), Some(1));
        // #2 up to 6 active: 7/3 = 2.33 > 2 -> #3.
        ds[1].active_conns = 6;
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
}
