//! PLACEHOLDER: replaced by the real twos scheduler before this lands.

use super::{SchedCtx, Scheduler, SchedulerKind, SvcView};
use crate::model::Flow;

#[derive(Clone, Debug, Default)]
pub struct Twos;

impl Scheduler for Twos {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Twos
    }
    fn schedule(&mut self, _svc: &SvcView, _flow: &Flow, _ctx: &mut SchedCtx) -> Option<usize> {
        unimplemented!("twos")
    }
}
