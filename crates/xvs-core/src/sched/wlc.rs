//! wlc: weighted least connection (the kernel's ip_vs_wlc.c), the default
//! scheduler.
//!
//! The load of a server is overhead / weight. The first server (list order)
//! that is not overloaded and has a positive weight is the starting candidate;
//! every later server that is not overloaded is compared with it by
//! cross-multiplication in 64 bits, `loh * w(dest) > doh * w(least)`, and
//! replaces it only when strictly lighter. Later servers are not checked for
//! weight 0 here, exactly as in the kernel: with weight 0 the left side is 0
//! and can never exceed the right side (while overheads stay non-negative).

use super::lc::{conn_overhead, weight};
use super::{SchedCtx, Scheduler, SchedulerKind, SvcView};
use crate::model::Flow;

#[derive(Clone, Debug, Default)]
pub struct Wlc;

impl Scheduler for Wlc {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Wlc
    }

    fn schedule(&mut self, svc: &SvcView, _flow: &Flow, _ctx: &mut SchedCtx) -> Option<usize> {
        let ds = svc.dests;
        let first = ds.iter().position(|d| !d.overloaded && weight(d) > 0)?;
        let mut least = first;
        let mut loh = conn_overhead(&ds[first]) as i64;
        for (i, d) in ds.iter().enumerate().skip(first + 1) {
            if d.overloaded {
                continue;
            }
            let doh = conn_overhead(d) as i64;
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
    use crate::model::Dest;
    use crate::rng::Fixed;
    use crate::sched::testutil::{dests, flow, view};
    use crate::time::Time;

    fn pick(ds: &[Dest]) -> Option<usize> {
        let mut rng = Fixed::new(vec![0]);
        let mut ctx = SchedCtx {
            now: Time::ZERO,
            rng: &mut rng,
        };
        Wlc.schedule(&view(ds), &flow(1, 1000), &mut ctx)
    }

    #[test]
    fn picks_least_overhead_per_weight() {
        let mut ds = dests(&[1, 3, 2]);
        // #1 w1: 1 active, 10 inactive -> 266 ; 266/1 = 266
        // #2 w3: 3 active,  0 inactive -> 768 ; 768/3 = 256  (least)
        // #3 w2: 2 active,  5 inactive -> 517 ; 517/2 = 258.5
        ds[0].active_conns = 1;
        ds[0].inact_conns = 10;
        ds[1].active_conns = 3;
        ds[2].active_conns = 2;
        ds[2].inact_conns = 5;
        assert_eq!(pick(&ds), Some(1));
        // One more inactive on #2: 769/3 = 256.33 still least.
        ds[1].inact_conns = 1;
        assert_eq!(pick(&ds), Some(1));
        // #2 at 3 active, 10 inactive: 778/3 = 259.33 > 258.5 -> #3.
        ds[1].inact_conns = 10;
        assert_eq!(pick(&ds), Some(2));
    }

    #[test]
    fn ties_keep_the_first_in_list_order() {
        let mut ds = dests(&[2, 4, 1]);
        // 512/2 = 1024/4 = 256/1 = 256: all equal, the first stays.
        ds[0].active_conns = 2;
        ds[1].active_conns = 4;
        ds[2].active_conns = 1;
        assert_eq!(pick(&ds), Some(0));
        // All idle: 0/w everywhere, the first stays.
        assert_eq!(pick(&dests(&[1, 9, 9])), Some(0));
    }

    #[test]
    fn quiescent_server_is_never_chosen() {
        // Idle weight-0 #1 and #3 lose to a loaded #2.
        let mut ds = dests(&[0, 1, 0]);
        ds[1].active_conns = 100;
        assert_eq!(pick(&ds), Some(1));
    }

    #[test]
    fn overloaded_server_is_skipped() {
        let mut ds = dests(&[5, 1]);
        ds[0].overloaded = true;
        ds[1].active_conns = 9;
        assert_eq!(pick(&ds), Some(1));
        // Also when the overloaded one comes after the starting candidate.
        let mut ds = dests(&[1, 5]);
        ds[0].active_conns = 9;
        ds[1].overloaded = true;
        assert_eq!(pick(&ds), Some(0));
    }

    #[test]
    fn no_destination_available() {
        assert_eq!(pick(&[]), None);
        assert_eq!(pick(&dests(&[0, 0, 0])), None);
        let mut ds = dests(&[1, 1]);
        ds[0].overloaded = true;
        ds[1].overloaded = true;
        assert_eq!(pick(&ds), None);
    }
}
