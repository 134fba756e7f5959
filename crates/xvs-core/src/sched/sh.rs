//! PLACEHOLDER: replaced by the real sh scheduler before this lands.

use super::{SchedCtx, Scheduler, SchedulerKind, SvcView};
use crate::model::Flow;

#[derive(Clone, Debug, Default)]
pub struct Sh;

impl Scheduler for Sh {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Sh
    }
    fn schedule(&mut self, _svc: &SvcView, _flow: &Flow, _ctx: &mut SchedCtx) -> Option<usize> {
        unimplemented!("sh")
    }
}
