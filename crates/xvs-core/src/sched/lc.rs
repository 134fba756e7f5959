//! PLACEHOLDER: replaced by the real lc scheduler before this lands.

use super::{SchedCtx, Scheduler, SchedulerKind, SvcView};
use crate::model::Flow;

#[derive(Clone, Debug, Default)]
pub struct Lc;

impl Scheduler for Lc {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Lc
    }
    fn schedule(&mut self, _svc: &SvcView, _flow: &Flow, _ctx: &mut SchedCtx) -> Option<usize> {
        unimplemented!("lc")
    }
}
