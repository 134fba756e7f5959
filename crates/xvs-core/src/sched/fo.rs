//! fo: weighted fail over (the kernel's ip_vs_fo.c).
//!
//! All traffic goes to the server with the highest weight that is not
//! overloaded. Only a strictly higher weight displaces the current best, so
//! among equal weights the first in list order wins; weight 0 never wins (the
//! running maximum starts at 0).

use super::lc::weight;
use super::{SchedCtx, Scheduler, SchedulerKind, SvcView};
use crate::model::Flow;

#[derive(Clone, Debug, Default)]
pub struct Fo;

impl Scheduler for Fo {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Fo
    }

    fn schedule(&mut self, svc: &SvcView, _flow: &Flow, _ctx: &mut SchedCtx) -> Option<usize> {
        let mut best = None;
        let mut hw: i32 = 0;
        for (i, d) in svc.dests.iter().enumerate() {
            if !d.overloaded && weight(d) > hw {
                best = Some(i);
                hw = weight(d);
            }
        }
        best
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
        Fo.schedule(&view(ds), &flow(1, 1000), &mut ctx)
    }

    #[test]
    fn highest_weight_wins_regardless_of_load() {
        let mut ds = dests(&[2, 7, 5]);
        ds[1].active_conns = 10_000;
        assert_eq!(pick(&ds), Some(1));
    }

    #[test]
    fn ties_keep_the_first_in_list_order() {
        assert_eq!(pick(&dests(&[3, 7, 7, 1])), Some(1));
    }

    #[test]
    fn fails_over_when_overloaded() {
        let mut ds = dests(&[2, 7, 5, 5]);
        ds[1].overloaded = true;
        assert_eq!(pick(&ds), Some(2));
        ds[2].overloaded = true;
        assert_eq!(pick(&ds), Some(3));
    }

    #[test]
    fn no_destination_available() {
        assert_eq!(pick(&[]), None);
        assert_eq!(pick(&dests(&[0, 0])), None);
        let mut ds = dests(&[4, 0]);
        ds[0].overloaded = true;
        assert_eq!(pick(&ds), None);
    }
}
