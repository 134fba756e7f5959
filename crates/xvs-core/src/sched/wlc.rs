//! PLACEHOLDER: replaced by the real wlc scheduler before this lands.

use super::{SchedCtx, Scheduler, SchedulerKind, SvcView};
use crate::model::Flow;

#[derive(Clone, Debug, Default)]
pub struct Wlc;

impl Scheduler for Wlc {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Wlc
    }
    fn schedule(&mut self, _svc: &SvcView, _flow: &Flow, _ctx: &mut SchedCtx) -> Option<usize> {
        unimplemented!("wlc")
    }
}
