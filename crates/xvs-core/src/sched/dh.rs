//! PLACEHOLDER: replaced by the real dh scheduler before this lands.

use super::{SchedCtx, Scheduler, SchedulerKind, SvcView};
use crate::model::Flow;

#[derive(Clone, Debug, Default)]
pub struct Dh;

impl Scheduler for Dh {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Dh
    }
    fn schedule(&mut self, _svc: &SvcView, _flow: &Flow, _ctx: &mut SchedCtx) -> Option<usize> {
        unimplemented!("dh")
    }
}
