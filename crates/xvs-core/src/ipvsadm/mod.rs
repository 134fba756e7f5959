//! ipvsadm as a library: its command grammar, its errors, and its output.

pub mod command;
pub mod format;
pub mod help;
pub mod names;
pub mod parse;

pub use command::{Command, DaemonConfig, DaemonState, DestAddr, ListOptions, TimeoutSet};
pub use format::{
    largenum, list, list_conns, list_daemons, list_timeouts, save, sorted_dests, sorted_services,
    version_line, FormatError,
};
pub use names::{Names, NumericOnly};
pub use parse::{
    parse_args, parse_args_as, parse_restore, parse_restore_as, parse_restore_lines, to_argv,
    ErrorKind, ParseError, RestoreError, RestoreLine,
};
