//! ovf: overflow connection (the kernel's ip_vs_ovf.c).
//!
//! Candidates are the servers that are not overloaded, have a non-zero weight
//! and whose active connection count does not exceed their weight
//! (`activeconns > weight` disqualifies, so a server at exactly its weight is
//! still a candidate). Among the candidates the highest weight wins; only a
//! strictly higher weight displaces the current best, so equal weights go to
//! the first in list order.

use super::lc::weight;
use super::{SchedCtx, Scheduler, SchedulerKind, SvcView};
use crate::model::Flow;

#[derive(Clone, Debug, Default)]
pub struct Ovf;

impl Scheduler for Ovf {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Ovf
    }

    fn schedule(&mut self, svc: &SvcView, _flow: &Flow, _ctx: &mut SchedCtx) -> Option<usize> {
        let mut best: Option<(usize, i32)> = None;
        for (i, d) in svc.dests.iter().enumerate() {
            let w = weight(d);
            // The kernel reads activeconns as an `int`.
            if d.overloaded || d.active_conns as i32 > w || w == 0 {
                continue;
            }
            match best {
                Some((_, hw)) if w <= hw => {}
                _ => best = Some((i, w)),
            }
        }
        best.map(|(i, _)| i)
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
        Ovf.schedule(&view(ds), &flow(1, 1000), &mut ctx)
    }

    #[test]
    fn highest_weight_until_active_exceeds_weight() {
        let mut ds = dests(&[2, 3, 1]);
        assert_eq!(pick(&ds), Some(1));
        // Exactly at its weight (3 active, weight 3): still chosen.
        ds[1].active_conns = 3;
        assert_eq!(pick(&ds), Some(1));
        // Past it (4 > 3): overflow to the next highest weight, #1 (w2).
        ds[1].active_conns = 4;
        assert_eq!(pick(&ds), Some(0));
        ds[0].active_conns = 3;
        assert_eq!(pick(&ds), Some(2));
    }

    #[test]
    fn inactive_connections_do_not_count() {
        let mut ds = dests(&[2, 1]);
        ds[0].inact_conns = 100;
        assert_eq!(pick(&ds), Some(0));
    }

    #[test]
    fn ties_keep_the_first_in_list_order() {
        let mut ds = dests(&[1, 4, 4]);
        ds[1].active_conns = 2;
        assert_eq!(pick(&ds), Some(1));
    }

    #[test]
    fn skips_overloaded_and_quiescent() {
        let mut ds = dests(&[9, 0, 1]);
        ds[0].overloaded = true;
        assert_eq!(pick(&ds), Some(2));
    }

    #[test]
    fn no_destination_available() {
        assert_eq!(pick(&[]), None);
        assert_eq!(pick(&dests(&[0, 0])), None);
        let mut ds = dests(&[1, 1]);
        ds[0].overloaded = true;
        ds[1].overloaded = true;
        assert_eq!(pick(&ds), None);
        // Everyone over their weight.
        let mut ds = dests(&[1, 2]);
        ds[0].active_conns = 2;
        ds[1].active_conns = 3;
        assert_eq!(pick(&ds), None);
    }
}
