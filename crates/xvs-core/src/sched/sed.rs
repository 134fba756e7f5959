//! PLACEHOLDER: replaced by the real sed scheduler before this lands.

use super::{SchedCtx, Scheduler, SchedulerKind, SvcView};
use crate::model::Flow;

#[derive(Clone, Debug, Default)]
pub struct Sed;

impl Scheduler for Sed {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Sed
    }
    fn schedule(&mut self, _svc: &SvcView, _flow: &Flow, _ctx: &mut SchedCtx) -> Option<usize> {
        unimplemented!("sed")
    }
}
