//! rr: round robin (the kernel's ip_vs_rr.c).
//!
//! The kernel keeps a list position as its cursor: either the list head or the
//! server picked last. Here it is `None` for the head and the server's
//! [`DestId`] otherwise, so servers added at the head do not move it.
//!
//! A pick scans forward from the cursor for the first server that is not
//! overloaded and has a positive weight. From the head it scans the list once;
//! from a server it scans to the end and then wraps from the start up to and
//! including that server. A hit moves the cursor onto it; a miss leaves the
//! cursor where it was.
//!
//! Only init_service and del_dest are hooked, like the kernel: when the server
//! under the cursor is removed, the cursor steps back to the entry before it
//! (the head if it was the first), so the next pick continues with the server
//! that followed the removed one.

use super::{SchedCtx, Scheduler, SchedulerKind, SvcView};
use crate::model::{Dest, DestId, Flow};

#[derive(Clone, Debug, Default)]
pub struct Rr {
    /// `None`: the list head; `Some(id)`: the server last picked.
    cursor: Option<DestId>,
}

impl Rr {
    fn eligible(d: &Dest) -> bool {
        !d.overloaded && (d.weight() as i32) > 0
    }
}

impl Scheduler for Rr {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Rr
    }

    fn init_service(&mut self, _svc: &SvcView) {
        self.cursor = None;
    }

    fn del_dest(&mut self, svc: &SvcView, removed: &Dest, former_index: usize) {
        if self.cursor == Some(removed.id) {
            self.cursor = match former_index {
                0 => None,
                i => svc.dests.get(i - 1).map(|d| d.id),
            };
        }
    }

    fn schedule(&mut self, svc: &SvcView, _flow: &Flow, _ctx: &mut SchedCtx) -> Option<usize> {
        let n = svc.dests.len();
        // A cursor on a server no longer in the list cannot happen while the
        // owner calls del_dest; treat it as the head if it ever does.
        let start = self.cursor.and_then(|id| svc.index_of(id));
        let hit = match start {
            None => (0..n).find(|&i| Self::eligible(&svc.dests[i])),
            Some(s) => (s + 1..n)
                .chain(0..=s)
                .find(|&i| Self::eligible(&svc.dests[i])),
        }?;
        self.cursor = Some(svc.dests[hit].id);
        Some(hit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Fixed;
    use crate::sched::testutil::{dest, dests, flow, view};
    use crate::time::Time;

    fn next(s: &mut Rr, ds: &[Dest]) -> Option<usize> {
        let mut rng = Fixed::new(vec![0]);
        let mut ctx = SchedCtx {
            now: Time::ZERO,
            rng: &mut rng,
        };
        s.schedule(&view(ds), &flow(1, 1000), &mut ctx)
    }

    fn run(s: &mut Rr, ds: &[Dest], k: usize) -> Vec<Option<usize>> {
        (0..k).map(|_| next(s, ds)).collect()
    }

    fn fresh(ds: &[Dest]) -> Rr {
        let mut s = Rr::default();
        s.init_service(&view(ds));
        s
    }

    #[test]
    fn cycles_in_list_order_from_the_head() {
        let ds = dests(&[1, 5, 2]);
        let mut s = fresh(&ds);
        let picks = run(&mut s, &ds, 7);
        assert_eq!(
            picks,
            [0, 1, 2, 0, 1, 2, 0].map(Some).to_vec(),
            "weights other than 0 do not matter"
        );
    }

    #[test]
    fn skips_weight_zero_and_overloaded_and_wraps() {
        // #1 ok, #2 weight 0, #3 overloaded, #4 ok.
        let mut ds = dests(&[1, 0, 1, 1]);
        ds[2].overloaded = true;
        let mut s = fresh(&ds);
        assert_eq!(run(&mut s, &ds, 5), [0, 3, 0, 3, 0].map(Some).to_vec());
    }

    #[test]
    fn only_the_cursor_server_left_is_picked_again() {
        let mut ds = dests(&[1, 1, 1]);
        let mut s = fresh(&ds);
        assert_eq!(next(&mut s, &ds), Some(0));
        assert_eq!(next(&mut s, &ds), Some(1));
        // Everyone else becomes unavailable: the wrap reaches #2 itself.
        ds[0].overloaded = true;
        ds[2].cfg.weight = 0;
        assert_eq!(next(&mut s, &ds), Some(1));
        assert_eq!(next(&mut s, &ds), Some(1));
    }

    #[test]
    fn miss_leaves_the_cursor() {
        let mut ds = dests(&[1, 1, 1]);
        let mut s = fresh(&ds);
        assert_eq!(next(&mut s, &ds), Some(0));
        for d in &mut ds {
            d.overloaded = true;
        }
        assert_eq!(next(&mut s, &ds), None);
        for d in &mut ds {
            d.overloaded = false;
        }
        // The cursor is still on #1, so the next is #2.
        assert_eq!(next(&mut s, &ds), Some(1));
    }

    #[test]
    fn new_server_at_the_head_does_not_move_the_cursor() {
        let ds = dests(&[1, 1, 1]);
        let mut s = fresh(&ds);
        assert_eq!(next(&mut s, &ds), Some(0));
        assert_eq!(next(&mut s, &ds), Some(1)); // cursor on id 2
                                                // Add id 4 at the head (no rr hook): [4, 1, 2, 3].
        let mut grown = vec![dest(4, 1)];
        grown.extend(ds.iter().cloned());
        s.add_dest(&view(&grown), DestId(4));
        // After id 2 (index 2) comes id 3 (index 3), then wrap to id 4.
        assert_eq!(run(&mut s, &grown, 3), [3, 0, 1].map(Some).to_vec());
    }

    #[test]
    fn deleting_the_cursor_server_steps_back_to_its_predecessor() {
        let ds = dests(&[1, 1, 1, 1]);
        let mut s = fresh(&ds);
        assert_eq!(run(&mut s, &ds, 3), [0, 1, 2].map(Some).to_vec()); // cursor on id 3
                                                                       // Remove id 3 (index 2): cursor -> id 2, the entry before it.
        let mut shrunk = ds.clone();
        let removed = shrunk.remove(2);
        s.del_dest(&view(&shrunk), &removed, 2);
        assert_eq!(s.cursor, Some(DestId(2)));
        // So the next pick is id 4 (index 2 now), the one after the removed.
        assert_eq!(next(&mut s, &shrunk), Some(2));
    }

    #[test]
    fn deleting_the_first_server_under_the_cursor_goes_to_the_head() {
        let ds = dests(&[1, 1, 1]);
        let mut s = fresh(&ds);
        assert_eq!(next(&mut s, &ds), Some(0)); // cursor on id 1
        let mut shrunk = ds.clone();
        let removed = shrunk.remove(0);
        s.del_dest(&view(&shrunk), &removed, 0);
        assert_eq!(s.cursor, None);
        assert_eq!(next(&mut s, &shrunk), Some(0)); // id 2, from the head
    }

    #[test]
    fn deleting_another_server_keeps_the_cursor() {
        let ds = dests(&[1, 1, 1]);
        let mut s = fresh(&ds);
        assert_eq!(run(&mut s, &ds, 2), [0, 1].map(Some).to_vec()); // cursor on id 2
        let mut shrunk = ds.clone();
        let removed = shrunk.remove(2);
        s.del_dest(&view(&shrunk), &removed, 2);
        assert_eq!(s.cursor, Some(DestId(2)));
        // [1, 2]: after id 2 wraps to id 1.
        assert_eq!(next(&mut s, &shrunk), Some(0));
    }

    #[test]
    fn init_service_resets_to_the_head() {
        let ds = dests(&[1, 1, 1]);
        let mut s = fresh(&ds);
        assert_eq!(run(&mut s, &ds, 2), [0, 1].map(Some).to_vec());
        s.init_service(&view(&ds));
        assert_eq!(next(&mut s, &ds), Some(0));
    }

    #[test]
    fn no_destination_available() {
        let mut s = Rr::default();
        assert_eq!(next(&mut s, &[]), None);
        let ds = dests(&[0, 0]);
        assert_eq!(next(&mut s, &ds), None);
        let mut ds = dests(&[1, 1]);
        ds[0].overloaded = true;
        ds[1].overloaded = true;
        assert_eq!(next(&mut s, &ds), None);
        assert_eq!(s.cursor, None);
    }
}
