//! # xvs-core
//!
//! The reference model of Linux Virtual Server, with no I/O and no unsafe code:
//! the rule table ([`table`]), the fourteen schedulers ([`sched`]), connections
//! and their TCP/UDP state machines ([`conn`]), persistence templates
//! ([`persist`]), counters and the rate estimator ([`stats`]), the packet-level
//! director ([`director`]), and ipvsadm's grammar and output ([`ipvsadm`]).
//!
//! Time and randomness are inputs ([`time::Time`], [`rng::Rng`]), so every run
//! is repeatable. The eBPF datapath must agree with this crate packet for packet.

#![forbid(unsafe_code)]

pub mod conn;
pub mod director;
pub mod ipvsadm;
pub mod model;
pub mod persist;
pub mod rng;
pub mod sched;
pub mod snapshot;
pub mod stats;
pub mod table;
pub mod time;
