//! PLACEHOLDER: replaced by the real lblc scheduler before this lands.

use super::{SchedCtx, Scheduler, SchedulerKind, SvcView};
use crate::model::Flow;

#[derive(Clone, Debug, Default)]
pub struct Lblc;

impl Scheduler for Lblc {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Lblc
    }
    fn schedule(&mut self, _svc: &SvcView, _flow: &Flow, _ctx: &mut SchedCtx) -> Option<usize> {
        unimplemented!("lblc")
    }
}
