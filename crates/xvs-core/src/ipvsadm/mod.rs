//! ipvsadm as a library: its command grammar, its errors, and its output.

pub mod command;
pub mod format;
pub mod names;
pub mod parse;

pub use command::{Command, DaemonConfig, DaemonState, DestAddr, ListOptions, TimeoutSet};
pub use names::{Names, NumericOnly};
