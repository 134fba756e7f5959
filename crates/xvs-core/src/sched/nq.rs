//! PLACEHOLDER: replaced by the real nq scheduler before this lands.

use super::{SchedCtx, Scheduler, SchedulerKind, SvcView};
use crate::model::Flow;

#[derive(Clone, Debug, Default)]
pub struct Nq;

impl Scheduler for Nq {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Nq
    }
    fn schedule(&mut self, _svc: &SvcView, _flow: &Flow, _ctx: &mut SchedCtx) -> Option<usize> {
        unimplemented!("nq")
    }
}
