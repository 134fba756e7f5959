//! PLACEHOLDER: replaced by the real ovf scheduler before this lands.

use super::{SchedCtx, Scheduler, SchedulerKind, SvcView};
use crate::model::Flow;

#[derive(Clone, Debug, Default)]
pub struct Ovf;

impl Scheduler for Ovf {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Ovf
    }
    fn schedule(&mut self, _svc: &SvcView, _flow: &Flow, _ctx: &mut SchedCtx) -> Option<usize> {
        unimplemented!("ovf")
    }
}
