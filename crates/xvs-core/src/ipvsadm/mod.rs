//! ipvsadm as a library: its command grammar, its errors, and its output.

pub mod command;
pub mod format;
pub mod help;
pub mod names;
pub mod parse;

pub use command::{Command, DaemonConfig, DaemonState, DestAddr, ListOptions, TimeoutSet};
pub use names::{Names, NumericOnly};
pub use parse::{
    parse_args, parse_args_as, parse_restore, parse_restore_as, parse_restore_lines, to_argv,
    ErrorKind, ParseError, RestoreError, RestoreLine,
};
