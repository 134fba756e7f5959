//! The fourteen LVS schedulers, with the kernel's exact semantics
//! (net/netfilter/ipvs/ip_vs_*.c).
//!
//! A scheduler sees the service's real servers in kernel list order (newest
//! first: the kernel adds a destination at the head of the list) and returns the
//! index of the one that gets the new connection. The kernel's hooks
//! (init_service, add_dest, del_dest, upd_dest) are methods here, called by the
//! rule table after it changed the list.

use std::fmt;
use std::str::FromStr;

use crate::model::{Dest, DestId, Family, Flow, SchedFlags};
use crate::rng::Rng;
use crate::time::Time;

pub mod dh;
pub mod fo;
pub mod hash;
pub mod lblc;
pub mod lblcr;
pub mod lc;
pub mod mh;
pub mod nq;
pub mod ovf;
#[cfg(test)]
mod props_b;
pub mod rr;
pub mod sed;
pub mod sh;
pub mod twos;
pub mod wlc;
pub mod wrr;

#[cfg(test)]
mod props_a;

/// Scheduler names, as `-s NAME` takes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SchedulerKind {
    Rr,
    Wrr,
    Lc,
    Wlc,
    Sed,
    Nq,
    Dh,
    Sh,
    Lblc,
    Lblcr,
    Mh,
    Fo,
    Ovf,
    Twos,
}

impl SchedulerKind {
    pub const ALL: [SchedulerKind; 14] = [
        SchedulerKind::Rr,
        SchedulerKind::Wrr,
        SchedulerKind::Lc,
        SchedulerKind::Wlc,
        SchedulerKind::Sed,
        SchedulerKind::Nq,
        SchedulerKind::Dh,
        SchedulerKind::Sh,
        SchedulerKind::Lblc,
        SchedulerKind::Lblcr,
        SchedulerKind::Mh,
        SchedulerKind::Fo,
        SchedulerKind::Ovf,
        SchedulerKind::Twos,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::Rr => "rr",
            SchedulerKind::Wrr => "wrr",
            SchedulerKind::Lc => "lc",
            SchedulerKind::Wlc => "wlc",
            SchedulerKind::Sed => "sed",
            SchedulerKind::Nq => "nq",
            SchedulerKind::Dh => "dh",
            SchedulerKind::Sh => "sh",
            SchedulerKind::Lblc => "lblc",
            SchedulerKind::Lblcr => "lblcr",
            SchedulerKind::Mh => "mh",
            SchedulerKind::Fo => "fo",
            SchedulerKind::Ovf => "ovf",
            SchedulerKind::Twos => "twos",
        }
    }
}

impl fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name is not one of the fourteen schedulers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownScheduler(pub String);

impl FromStr for SchedulerKind {
    type Err = UnknownScheduler;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SchedulerKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownScheduler(s.to_string()))
    }
}

/// What a scheduler may look at of its service.
#[derive(Clone, Copy, Debug)]
pub struct SvcView<'a> {
    /// The real servers in kernel list order (newest first).
    pub dests: &'a [Dest],
    pub flags: SchedFlags,
    pub family: Family,
}

impl<'a> SvcView<'a> {
    pub fn index_of(&self, id: DestId) -> Option<usize> {
        self.dests.iter().position(|d| d.id == id)
    }
}

/// Per-call inputs that are not part of the service: the clock and randomness.
pub struct SchedCtx<'a> {
    pub now: Time,
    pub rng: &'a mut dyn Rng,
}

/// One scheduler's behaviour. Each hook mirrors the kernel's struct
/// ip_vs_scheduler callback of the same name.
pub trait Scheduler: fmt::Debug + Clone {
    fn kind(&self) -> SchedulerKind;

    /// The scheduler was bound to a service (ipvsadm -A, or -E with a new -s).
    fn init_service(&mut self, _svc: &SvcView) {}

    /// `dest` was just added; `svc.dests` already contains it (at index 0).
    fn add_dest(&mut self, _svc: &SvcView, _dest: DestId) {}

    /// `removed` was just taken out of the list, where it stood at `former_index`;
    /// `svc.dests` no longer contains it.
    fn del_dest(&mut self, _svc: &SvcView, _removed: &Dest, _former_index: usize) {}

    /// `dest`'s weight, thresholds or method were edited in place (ipvsadm -e).
    /// Editing a service (ipvsadm -E) calls no hook unless the scheduler itself
    /// changes, in which case a fresh one gets `init_service`.
    fn upd_dest(&mut self, _svc: &SvcView, _dest: DestId) {}

    /// Picks the real server for a new connection of `flow`; `None` when no
    /// server is available (the kernel's "no destination available").
    fn schedule(&mut self, svc: &SvcView, flow: &Flow, ctx: &mut SchedCtx) -> Option<usize>;

    /// Periodic housekeeping (lblc/lblcr cache expiry); called by the owner with
    /// the current time, at least every second.
    fn tick(&mut self, _now: Time) {}
}

macro_rules! sched_enum {
    ($($variant:ident => $module:ident :: $ty:ident),* $(,)?) => {
        /// A scheduler instance of any kind (enum dispatch keeps the rule table
        /// `Clone`, so a batch of commands can be applied atomically).
        #[derive(Clone, Debug)]
        pub enum Sched {
            $($variant($module::$ty),)*
        }

        impl Sched {
            pub fn new(kind: SchedulerKind) -> Sched {
                match kind {
                    $(SchedulerKind::$variant => Sched::$variant($module::$ty::default()),)*
                }
            }
        }

        impl Scheduler for Sched {
            fn kind(&self) -> SchedulerKind {
                match self { $(Sched::$variant(s) => s.kind(),)* }
            }
            fn init_service(&mut self, svc: &SvcView) {
                match self { $(Sched::$variant(s) => s.init_service(svc),)* }
            }
            fn add_dest(&mut self, svc: &SvcView, dest: DestId) {
                match self { $(Sched::$variant(s) => s.add_dest(svc, dest),)* }
            }
            fn del_dest(&mut self, svc: &SvcView, removed: &Dest, former_index: usize) {
                match self { $(Sched::$variant(s) => s.del_dest(svc, removed, former_index),)* }
            }
            fn upd_dest(&mut self, svc: &SvcView, dest: DestId) {
                match self { $(Sched::$variant(s) => s.upd_dest(svc, dest),)* }
            }
            fn schedule(&mut self, svc: &SvcView, flow: &Flow, ctx: &mut SchedCtx) -> Option<usize> {
                match self { $(Sched::$variant(s) => s.schedule(svc, flow, ctx),)* }
            }
            fn tick(&mut self, now: Time) {
                match self { $(Sched::$variant(s) => s.tick(now),)* }
            }
        }
    };
}

sched_enum! {
    Rr => rr::Rr,
    Wrr => wrr::Wrr,
    Lc => lc::Lc,
    Wlc => wlc::Wlc,
    Sed => sed::Sed,
    Nq => nq::Nq,
    Dh => dh::Dh,
    Sh => sh::Sh,
    Lblc => lblc::Lblc,
    Lblcr => lblcr::Lblcr,
    Mh => mh::Mh,
    Fo => fo::Fo,
    Ovf => ovf::Ovf,
    Twos => twos::Twos,
}

/// Builders for scheduler unit tests.
#[cfg(test)]
pub(crate) mod testutil {
    use std::net::{IpAddr, Ipv4Addr};

    use super::SvcView;
    use crate::model::{Dest, DestConfig, DestId, Family, Flow, Protocol, SchedFlags};

    /// Real server `i` (1-based): 198.18.1.i:80, DR, the given weight, id i.
    pub(crate) fn dest(i: u8, weight: u32) -> Dest {
        let mut cfg = DestConfig::new(IpAddr::V4(Ipv4Addr::new(198, 18, 1, i)), 80);
        cfg.weight = weight;
        Dest::new(DestId(i as u32), cfg)
    }

    /// Real servers 1..=n with these weights, in this list order.
    pub(crate) fn dests(weights: &[u32]) -> Vec<Dest> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| dest(i as u8 + 1, w))
            .collect()
    }

    pub(crate) fn view(dests: &[Dest]) -> SvcView<'_> {
        SvcView {
            dests,
            flags: SchedFlags::default(),
            family: Family::Inet,
        }
    }

    /// One pick by a fresh scheduler `s` over `ds` (flow 1:1000, time 0, random
    /// draws all 0).
    pub(crate) fn run_once<S: super::Scheduler>(mut s: S, ds: &[Dest]) -> Option<usize> {
        let mut rng = crate::rng::Fixed::new(vec![0]);
        let mut ctx = super::SchedCtx {
            now: crate::time::Time::ZERO,
            rng: &mut rng,
        };
        s.schedule(&view(ds), &flow(1, 1000), &mut ctx)
    }

    /// A TCP flow from client 198.19.x.y:sport to the VIP 198.18.0.1:80.
    pub(crate) fn flow(client: u16, sport: u16) -> Flow {
        Flow {
            protocol: Protocol::Tcp,
            src: IpAddr::V4(Ipv4Addr::new(198, 19, (client >> 8) as u8, client as u8)),
            sport,
            dst: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
            dport: 80,
        }
    }
}
