//! PLACEHOLDER: replaced by the real mh scheduler before this lands.

use super::{SchedCtx, Scheduler, SchedulerKind, SvcView};
use crate::model::Flow;

#[derive(Clone, Debug, Default)]
pub struct Mh;

impl Scheduler for Mh {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Mh
    }
    fn schedule(&mut self, _svc: &SvcView, _flow: &Flow, _ctx: &mut SchedCtx) -> Option<usize> {
        unimplemented!("mh")
    }
}
