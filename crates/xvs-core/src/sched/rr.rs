//! PLACEHOLDER: replaced by the real rr scheduler before this lands.

use super::{SchedCtx, Scheduler, SchedulerKind, SvcView};
use crate::model::Flow;

#[derive(Clone, Debug, Default)]
pub struct Rr;

impl Scheduler for Rr {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Rr
    }
    fn schedule(&mut self, _svc: &SvcView, _flow: &Flow, _ctx: &mut SchedCtx) -> Option<usize> {
        unimplemented!("rr")
    }
}
