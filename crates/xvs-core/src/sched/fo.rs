//! PLACEHOLDER: replaced by the real fo scheduler before this lands.

use super::{SchedCtx, Scheduler, SchedulerKind, SvcView};
use crate::model::Flow;

#[derive(Clone, Debug, Default)]
pub struct Fo;

impl Scheduler for Fo {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Fo
    }
    fn schedule(&mut self, _svc: &SvcView, _flow: &Flow, _ctx: &mut SchedCtx) -> Option<usize> {
        unimplemented!("fo")
    }
}
