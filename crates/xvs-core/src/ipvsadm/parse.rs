//! ipvsadm 1.31 command-line grammar and `-R` input, as a pure function.
//!
//! [`parse_args`] turns an argument vector (without the program name) into a
//! [`Command`], or into the [`ParseError`] whose text and exit status are what
//! ipvsadm itself would produce. [`parse_restore`] does the same for the lines
//! `ipvsadm -R` reads on standard input. [`to_argv`] goes the other way.
//!
//! # Fidelity notes
//!
//! * Option scanning follows popt, which ipvsadm is built with: short options
//!   may be bundled (`-Ln`, `-At1.2.3.4:80`), a short option's value may be
//!   glued on or follow `=` (`-w5`, `-w=5`), long options take `--name=value`
//!   or `--name value`, long names must be spelled out in full, an option
//!   without a value refuses one (`--numeric=x`, `-n=x`: "option does not take
//!   an argument", as popt 1.19 says), and words that
//!   do not start with `-` (or are exactly `-`, or follow `--`) are set aside
//!   as plain arguments wherever they appear. An option with a required value
//!   takes the next word even when it starts with `-`.
//! * `-p`/`--persistent` has an *optional* value: `-p 100` and `-p100` set the
//!   timeout, but `-p` followed by a word starting with `-` (or at the end)
//!   means the default 360 seconds. A following word that does not start with
//!   `-` is always taken as the timeout (`-p foo` is an invalid timeout).
//! * The command must be the first option; ipvsadm answers anything else with
//!   its "Try ... -h" line. A second command later on is reported as
//!   ``invalid option `-E'`` — ipvsadm's "multiple commands specified" check can
//!   never fire, because commands are only recognised in the first position.
//! * ipvsadm passes any `-s NAME` to the kernel, which answers ENOENT; ipvsadm
//!   then prints `Scheduler or persistence engine not found` and exits 255.
//!   Because [`crate::model::ServiceConfig::scheduler`] is an enum, unknown
//!   names are reported here, with that text, exit code 255 and
//!   [`ErrorKind::Kernel`], after every check ipvsadm makes itself. `--pe`
//!   names are kept as given (the rule table decides whether they exist).
//! * Messages name the program only in the "Try ... -h" line; it is `ipvsadm`
//!   for [`parse_args`]/[`parse_restore`] and whatever the caller passes to
//!   [`parse_args_as`]/[`parse_restore_as`] (xvsadm passes `xvsadm`).
//! * Persistence netmasks: for IPv4 the mask's value as `u32::from(Ipv4Addr)`
//!   (`255.255.255.0` is `0xffff_ff00`; `Ipv4Addr::from(netmask)` prints it),
//!   default `0xffff_ffff`; for IPv6 the prefix length, default 128. Like
//!   ipvsadm, `-M` is read as IPv4 unless the service is already known to be
//!   IPv6 at that point, and a later IPv6 `-t`/`-u` or `-6` resets it to 128.
//!   A `-M` without `-p` is accepted and dropped (no persistence).
//! * Differential-tested against ipvsadm 1.31 built with popt 1.19 (stubbed
//!   kernel calls). Known difference: `-b ,` (only commas) crashes ipvsadm;
//!   here it means no scheduler flags.
//! * popt's `!#:+` argument expansion, the `POSIXLY_CORRECT` environment switch
//!   and the 4096-byte token limit of `-R` lines are not modelled.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::model::{
    DestConfig, Family, FwdMethod, Persistence, Protocol, SchedFlags, ServiceConfig, ServiceKey,
    TunCsum, TunType,
};
use crate::sched::SchedulerKind;

use super::command::{Command, DaemonConfig, DaemonState, DestAddr, ListOptions, TimeoutSet};
use super::names::Names;

/// The longest timeout ipvsadm accepts (31 days), for `-p` and `--set`.
pub const MAX_TIMEOUT: u32 = 86400 * 31;

/// Multicast interface ipvsadm fills in when `--start-daemon` has none.
pub const DEFAULT_MCAST_IFN: &str = "eth0";

/// How ipvsadm reacts to an error, which matters for `-R`: some errors end the
/// whole process, others only fail the current line and reading goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// ipvsadm's `fail()`: message, exit status 2, process ends.
    Fail,
    /// ipvsadm's try-help exit: only the "Try ... -h" line, status 255, process ends.
    TryHelp,
    /// An option-scanner (popt) error such as `--foo: unknown option`: status
    /// 255, but under `-R` ipvsadm goes on with the next line.
    Popt,
    /// What the kernel would answer (unknown scheduler): status 255, and under
    /// `-R` ipvsadm goes on with the next line.
    Kernel,
}

/// A command line ipvsadm would reject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// Exactly what ipvsadm writes to stderr, without the final newline.
    pub message: String,
    /// ipvsadm's exit status (2 or 255).
    pub exit_code: i32,
    pub kind: ErrorKind,
}

impl ParseError {
    fn fail(message: impl Into<String>) -> ParseError {
        ParseError {
            message: message.into(),
            exit_code: 2,
            kind: ErrorKind::Fail,
        }
    }

    fn try_help(program: &str) -> ParseError {
        ParseError {
            message: try_help_line(program),
            exit_code: 255,
            kind: ErrorKind::TryHelp,
        }
    }

    fn popt(bad_option: &str, what: &str) -> ParseError {
        ParseError {
            message: format!("{bad_option}: {what}"),
            exit_code: 255,
            kind: ErrorKind::Popt,
        }
    }

    fn kernel(message: &str) -> ParseError {
        ParseError {
            message: message.to_string(),
            exit_code: 255,
            kind: ErrorKind::Kernel,
        }
    }

    /// Whether ipvsadm stops at once (also in the middle of `-R` input).
    pub fn is_fatal(&self) -> bool {
        matches!(self.kind, ErrorKind::Fail | ErrorKind::TryHelp)
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseError {}

/// The line ipvsadm prints when it cannot make sense of the command at all.
pub fn try_help_line(program: &str) -> String {
    format!("Try `{program} -h' or '{program} --help' for more information.")
}

/// A bad line in `-R` input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreError {
    /// 1-based line number in the input.
    pub line: usize,
    pub error: ParseError,
}

impl fmt::Display for RestoreError {
    /// Prints what ipvsadm prints (it does not name the line); use
    /// [`RestoreError::line`] to say where.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for RestoreError {}

// ---------------------------------------------------------------------------
// Option table and popt-style scanning
// ---------------------------------------------------------------------------

/// Every option ipvsadm knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    AddService,
    EditService,
    DeleteService,
    Clear,
    List,
    Zero,
    AddServer,
    EditServer,
    DeleteServer,
    Set,
    Help,
    Version,
    Restore,
    Save,
    StartDaemon,
    StopDaemon,
    Tcp,
    Udp,
    Sctp,
    Fwmark,
    Scheduler,
    Persistent,
    Netmask,
    RealServer,
    Masquerading,
    Ipip,
    Gatewaying,
    Weight,
    UThreshold,
    LThreshold,
    Numeric,
    Connection,
    McastInterface,
    SyncId,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Sort,
    Exact,
    Ipv6,
    Ops,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arg {
    No,
    Required,
    Optional,
}

struct OptDef {
    long: &'static str,
    short: Option<u8>,
    arg: Arg,
    key: Key,
}

const fn o(long: &'static str, short: Option<u8>, arg: Arg, key: Key) -> OptDef {
    OptDef {
        long,
        short,
        arg,
        key,
    }
}

/// The option table, in the order lookups try it (`--list` is `-L`).
const OPTS: &[OptDef] = &[
    o("add-service", Some(b'A'), Arg::No, Key::AddService),
    o("edit-service", Some(b'E'), Arg::No, Key::EditService),
    o("delete-service", Some(b'D'), Arg::No, Key::DeleteService),
    o("clear", Some(b'C'), Arg::No, Key::Clear),
    o("list", Some(b'L'), Arg::No, Key::List),
    o("list", Some(b'l'), Arg::No, Key::List),
    o("zero", Some(b'Z'), Arg::No, Key::Zero),
    o("add-server", Some(b'a'), Arg::No, Key::AddServer),
    o("edit-server", Some(b'e'), Arg::No, Key::EditServer),
    o("delete-server", Some(b'd'), Arg::No, Key::DeleteServer),
    o("set", None, Arg::No, Key::Set),
    o("help", Some(b'h'), Arg::No, Key::Help),
    o("version", Some(b'v'), Arg::No, Key::Version),
    o("restore", Some(b'R'), Arg::No, Key::Restore),
    o("save", Some(b'S'), Arg::No, Key::Save),
    o("start-daemon", None, Arg::Required, Key::StartDaemon),
    o("stop-daemon", None, Arg::Required, Key::StopDaemon),
    o("tcp-service", Some(b't'), Arg::Required, Key::Tcp),
    o("udp-service", Some(b'u'), Arg::Required, Key::Udp),
    o("sctp-service", None, Arg::Required, Key::Sctp),
    o("fwmark-service", Some(b'f'), Arg::Required, Key::Fwmark),
    o("scheduler", Some(b's'), Arg::Required, Key::Scheduler),
    o("persistent", Some(b'p'), Arg::Optional, Key::Persistent),
    o("netmask", Some(b'M'), Arg::Required, Key::Netmask),
    o("real-server", Some(b'r'), Arg::Required, Key::RealServer),
    o("masquerading", Some(b'm'), Arg::No, Key::Masquerading),
    o("ipip", Some(b'i'), Arg::No, Key::Ipip),
    o("gatewaying", Some(b'g'), Arg::No, Key::Gatewaying),
    o("weight", Some(b'w'), Arg::Required, Key::Weight),
    o("u-threshold", Some(b'x'), Arg::Required, Key::UThreshold),
    o("l-threshold", Some(b'y'), Arg::Required, Key::LThreshold),
    o("numeric", Some(b'n'), Arg::No, Key::Numeric),
    o("connection", Some(b'c'), Arg::No, Key::Connection),
    o("mcast-interface", None, Arg::Required, Key::McastInterface),
    o("syncid", None, Arg::Required, Key::SyncId),
    o("timeout", None, Arg::No, Key::Timeout),
    o("daemon", None, Arg::No, Key::Daemon),
    o("stats", None, Arg::No, Key::Stats),
    o("rate", None, Arg::No, Key::Rate),
    o("thresholds", None, Arg::No, Key::Thresholds),
    o("persistent-conn", None, Arg::No, Key::PersistentConn),
    o("nosort", None, Arg::No, Key::NoSort),
    o("sort", None, Arg::No, Key::Sort),
    o("exact", Some(b'X'), Arg::No, Key::Exact),
    o("ipv6", Some(b'6'), Arg::No, Key::Ipv6),
    o("ops", Some(b'o'), Arg::No, Key::Ops),
    o("pe", None, Arg::Required, Key::Pe),
    o("sched-flags", Some(b'b'), Arg::Required, Key::SchedFlags),
    o("mcast-group", None, Arg::Required, Key::McastGroup),
    o("mcast-port", None, Arg::Required, Key::McastPort),
    o("mcast-ttl", None, Arg::Required, Key::McastTtl),
    o("sync-maxlen", None, Arg::Required, Key::SyncMaxlen),
    o("tun-info", None, Arg::No, Key::TunInfo),
    o("tun-type", None, Arg::Required, Key::TunType),
    o("tun-port", None, Arg::Required, Key::TunPort),
    o("tun-nocsum", None, Arg::No, Key::TunNocsum),
    o("tun-csum", None, Arg::No, Key::TunCsum),
    o("tun-remcsum", None, Arg::No, Key::TunRemcsum),
];

enum Scan {
    Opt(Key, Option<String>),
    End,
    /// popt's "missing argument" / "unknown option" / "option does not take an argument".
    Error(&'static str),
}

/// A popt-compatible scanner over one argument vector.
struct Scanner<'a> {
    args: Vec<&'a str>,
    next: usize,
    /// Position inside a bundle of short options: (word index, byte offset).
    bundle: Option<(usize, usize)>,
    rest_are_args: bool,
    leftovers: Vec<&'a str>,
    next_leftover: usize,
}

impl<'a> Scanner<'a> {
    fn new(args: Vec<&'a str>) -> Scanner<'a> {
        Scanner {
            args,
            next: 0,
            bundle: None,
            rest_are_args: false,
            leftovers: Vec::new(),
            next_leftover: 0,
        }
    }

    /// The word popt blames for an error: the last one it consumed.
    fn bad_option(&self) -> &'a str {
        self.next
            .checked_sub(1)
            .and_then(|i| self.args.get(i).copied())
            .unwrap_or("")
    }

    fn next_arg(&mut self) -> Option<&'a str> {
        let a = self.leftovers.get(self.next_leftover).copied();
        if a.is_some() {
            self.next_leftover += 1;
        }
        a
    }

    fn scan(&mut self) -> Scan {
        loop {
            let mut long_value: Option<&'a str> = None;
            let def: &OptDef;
            if self.bundle.is_none() {
                if self.next >= self.args.len() {
                    return Scan::End;
                }
                let idx = self.next;
                let word = self.args[idx];
                self.next += 1;
                if self.rest_are_args || !word.starts_with('-') || word == "-" {
                    self.leftovers.push(word);
                    continue;
                }
                if word == "--" {
                    self.rest_are_args = true;
                    continue;
                }
                if let Some(body) = word.strip_prefix("--") {
                    let (name, value) = match body.find('=') {
                        Some(i) => (&body[..i], Some(&body[i + 1..])),
                        None => (body, None),
                    };
                    match OPTS.iter().find(|d| d.long == name) {
                        Some(d) => {
                            long_value = value;
                            def = d;
                        }
                        None => return Scan::Error("unknown option"),
                    }
                } else {
                    // No option of ipvsadm is a single-dash long option: the
                    // word is a bundle of short options.
                    self.bundle = Some((idx, 1));
                    match self.take_short() {
                        Some(d) => def = d,
                        None => return Scan::Error("unknown option"),
                    }
                }
            } else {
                match self.take_short() {
                    Some(d) => def = d,
                    None => return Scan::Error("unknown option"),
                }
            }

            let value = match def.arg {
                Arg::No => {
                    let glued = self
                        .bundle
                        .is_some_and(|(idx, pos)| self.args[idx].as_bytes()[pos] == b'=');
                    if long_value.is_some() || glued {
                        return Scan::Error("option does not take an argument");
                    }
                    None
                }
                Arg::Required | Arg::Optional => {
                    if let Some(v) = long_value {
                        Some(v.to_string())
                    } else if let Some((idx, pos)) = self.bundle.take() {
                        // `-w=5`: one '=' after the letter is skipped.
                        let rest = &self.args[idx][pos..];
                        Some(rest.strip_prefix('=').unwrap_or(rest).to_string())
                    } else if self.next >= self.args.len() {
                        if def.arg == Arg::Required {
                            return Scan::Error("missing argument");
                        }
                        None
                    } else if def.arg == Arg::Optional && self.args[self.next].starts_with('-') {
                        None
                    } else {
                        let v = self.args[self.next];
                        self.next += 1;
                        Some(v.to_string())
                    }
                }
            };
            return Scan::Opt(def.key, value);
        }
    }

    /// The next option letter of the current bundle.
    fn take_short(&mut self) -> Option<&'static OptDef> {
        let (idx, pos) = self.bundle.take()?;
        let bytes = self.args[idx].as_bytes();
        let c = *bytes.get(pos)?;
        let def = OPTS.iter().find(|d| d.short == Some(c))?;
        if pos + 1 < bytes.len() {
            self.bundle = Some((idx, pos + 1));
        }
        Some(def)
    }
}

// ---------------------------------------------------------------------------
// Commands and the legality table
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Timeout,
    StartDaemon,
    StopDaemon,
    Restore,
    Save,
    Zero,
}

impl Cmd {
    fn name(self) -> &'static str {
        match self {
            Cmd::Add => "add-service",
            Cmd::Edit => "edit-service",
            Cmd::Del => "delete-service",
            Cmd::Flush => "flush",
            Cmd::List => "list",
            Cmd::AddDest => "add-server",
            Cmd::DelDest => "delete-server",
            Cmd::EditDest => "edit-server",
            Cmd::Timeout => "set",
            Cmd::StartDaemon => "start-daemon",
            Cmd::StopDaemon => "stop-daemon",
            Cmd::Restore => "restore",
            Cmd::Save => "save",
            Cmd::Zero => "zero",
        }
    }
}

/// Option classes ipvsadm tracks (each at most once per command), in the
/// order its checks visit them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Opt {
    Numeric,
    Connection,
    Service,
    Scheduler,
    Persistent,
    Netmask,
    Server,
    Forward,
    Weight,
    UThreshold,
    LThreshold,
    Mcast,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    SyncId,
    Exact,
    OnePacket,
    PersistenceEngine,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
}

const ALL_OPTS: [Opt; 34] = [
    Opt::Numeric,
    Opt::Connection,
    Opt::Service,
    Opt::Scheduler,
    Opt::Persistent,
    Opt::Netmask,
    Opt::Server,
    Opt::Forward,
    Opt::Weight,
    Opt::UThreshold,
    Opt::LThreshold,
    Opt::Mcast,
    Opt::Timeout,
    Opt::Daemon,
    Opt::Stats,
    Opt::Rate,
    Opt::Thresholds,
    Opt::PersistentConn,
    Opt::NoSort,
    Opt::SyncId,
    Opt::Exact,
    Opt::OnePacket,
    Opt::PersistenceEngine,
    Opt::SchedFlags,
    Opt::McastGroup,
    Opt::McastPort,
    Opt::McastTtl,
    Opt::SyncMaxlen,
    Opt::TunInfo,
    Opt::TunType,
    Opt::TunPort,
    Opt::TunNocsum,
    Opt::TunCsum,
    Opt::TunRemcsum,
];

impl Opt {
    fn bit(self) -> u64 {
        1u64 << (self as u8)
    }

    /// The name ipvsadm uses for the option in its messages.
    fn name(self) -> &'static str {
        match self {
            Opt::Numeric => "numeric",
            Opt::Connection => "connection",
            Opt::Service => "service-address",
            Opt::Scheduler => "scheduler",
            Opt::Persistent => "persistent",
            Opt::Netmask => "netmask",
            Opt::Server => "real-server",
            Opt::Forward => "forwarding-method",
            Opt::Weight => "weight",
            Opt::UThreshold => "u-threshold",
            Opt::LThreshold => "l-threshold",
            Opt::Mcast => "mcast-interface",
            Opt::Timeout => "timeout",
            Opt::Daemon => "daemon",
            Opt::Stats => "stats",
            Opt::Rate => "rate",
            Opt::Thresholds => "thresholds",
            Opt::PersistentConn => "persistent-conn",
            Opt::NoSort => "nosort",
            Opt::SyncId => "syncid",
            Opt::Exact => "exact",
            Opt::OnePacket => "ops",
            Opt::PersistenceEngine => "pe",
            Opt::SchedFlags => "sched-flags",
            Opt::McastGroup => "mcast-group",
            Opt::McastPort => "mcast-port",
            Opt::McastTtl => "mcast-ttl",
            Opt::SyncMaxlen => "sync-maxlen",
            Opt::TunInfo => "tun-info",
            Opt::TunType => "tun-type",
            Opt::TunPort => "tun-port",
            Opt::TunNocsum => "tun-nocsum",
            Opt::TunCsum => "tun-csum",
            Opt::TunRemcsum => "tun-remcsum",
        }
    }
}

/// How an option relates to a command (or a tunnel type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    Required,
    Optional,
    /// At most one option of this class may be given.
    OneOf,
    Illegal,
}

/// What each command accepts; everything not listed is illegal.
fn rule(cmd: Cmd, opt: Opt) -> Rule {
    use Opt as O;
    let (required, optional, one_of): (&[Opt], &[Opt], &[Opt]) = match cmd {
        Cmd::Add | Cmd::Edit => (
            &[O::Service],
            &[
                O::Scheduler,
                O::Persistent,
                O::Netmask,
                O::OnePacket,
                O::PersistenceEngine,
                O::SchedFlags,
            ],
            &[],
        ),
        Cmd::Del => (&[O::Service], &[], &[]),
        Cmd::Flush | Cmd::Timeout | Cmd::Restore => (&[], &[], &[]),
        Cmd::List => (
            &[],
            &[
                O::Numeric,
                O::Stats,
                O::Rate,
                O::Thresholds,
                O::PersistentConn,
                O::NoSort,
                O::SyncId,
                O::Exact,
                O::TunInfo,
            ],
            &[O::Connection, O::Service, O::Timeout, O::Daemon],
        ),
        Cmd::AddDest | Cmd::EditDest => (
            &[O::Service, O::Server],
            &[
                O::Forward,
                O::Weight,
                O::UThreshold,
                O::LThreshold,
                O::TunType,
                O::TunPort,
                O::TunNocsum,
                O::TunCsum,
                O::TunRemcsum,
            ],
            &[],
        ),
        Cmd::DelDest => (&[O::Service, O::Server], &[], &[]),
        Cmd::StartDaemon => (
            &[],
            &[
                O::Mcast,
                O::SyncId,
                O::McastGroup,
                O::McastPort,
                O::McastTtl,
                O::SyncMaxlen,
            ],
            &[],
        ),
        Cmd::StopDaemon => (&[], &[O::SyncId], &[]),
        Cmd::Save => (&[], &[O::Numeric], &[]),
        Cmd::Zero => (&[], &[O::Service], &[]),
    };
    if required.contains(&opt) {
        Rule::Required
    } else if optional.contains(&opt) {
        Rule::Optional
    } else if one_of.contains(&opt) {
        Rule::OneOf
    } else {
        Rule::Illegal
    }
}

/// ipvsadm's legality check of `options` against a table of rules: a
/// required option missing, an illegal one given, or two of the mutually
/// exclusive ones, for `subject` (a command or a tunnel type, `kind`).
fn check_legality(
    opts: impl IntoIterator<Item = Opt>,
    rule: impl Fn(Opt) -> Rule,
    options: u64,
    subject: &str,
    kind: &str,
) -> Result<(), ParseError> {
    let mut first_exclusive: Option<Opt> = None;
    for opt in opts {
        let given = options & opt.bit() != 0;
        match (rule(opt), given) {
            (Rule::Required, false) => {
                return Err(ParseError::fail(format!(
                    "You need to supply the '{}' option for the '{subject}' {kind}",
                    opt.name()
                )))
            }
            (Rule::Illegal, true) => {
                return Err(ParseError::fail(format!(
                    "Illegal '{}' option with the '{subject}' {kind}",
                    opt.name()
                )))
            }
            (Rule::OneOf, true) => match first_exclusive {
                None => first_exclusive = Some(opt),
                Some(prev) => {
                    return Err(ParseError::fail(format!(
                        "The option '{}' conflicts with the '{}' option in the '{subject}' {kind}",
                        opt.name(),
                        prev.name()
                    )))
                }
            },
            _ => {}
        }
    }
    Ok(())
}

fn check_command_options(cmd: Cmd, options: u64) -> Result<(), ParseError> {
    check_legality(
        ALL_OPTS,
        |opt| rule(cmd, opt),
        options,
        cmd.name(),
        "command",
    )
}

/// What each tunnel type accepts of the tunnel options.
fn tunnel_rule(tun: TunType, opt: Opt) -> Rule {
    match (tun, opt) {
        (TunType::Ipip, _) => Rule::Illegal,
        (TunType::Gue, Opt::TunPort) => Rule::Required,
        (TunType::Gue, _) => Rule::OneOf,
        (TunType::Gre, Opt::TunNocsum | Opt::TunCsum) => Rule::OneOf,
        (TunType::Gre, _) => Rule::Illegal,
    }
}

fn check_tunnel_options(tun: TunType, options: u64) -> Result<(), ParseError> {
    check_legality(
        [Opt::TunPort, Opt::TunNocsum, Opt::TunCsum, Opt::TunRemcsum],
        |opt| tunnel_rule(tun, opt),
        options,
        tun.name(),
        "tunnel type",
    )
}

// ---------------------------------------------------------------------------
// Value parsers with C library semantics
// ---------------------------------------------------------------------------

fn c_isspace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// `strtol(s, &end, 10)`: the value (clamped on overflow), whether it
/// overflowed, and whether the whole string was a number.
fn strtol10(s: &str) -> (i64, bool, bool) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && c_isspace(b[i]) {
        i += 1;
    }
    let mut neg = false;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        neg = b[i] == b'-';
        i += 1;
    }
    let start = i;
    // Magnitude, capped just past what an i64 can hold.
    let cap: i128 = i128::from(i64::MAX) + 2;
    let mut mag: i128 = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        mag = (mag * 10 + i128::from(b[i] - b'0')).min(cap);
        i += 1;
    }
    if i == start {
        return (0, false, false);
    }
    let signed = if neg { -mag } else { mag };
    let whole = i == b.len();
    if signed > i128::from(i64::MAX) {
        (i64::MAX, true, whole)
    } else if signed < i128::from(i64::MIN) {
        (i64::MIN, true, whole)
    } else {
        (signed as i64, false, whole)
    }
}

/// ipvsadm's string_to_number: a whole decimal number within `min..=max`.
fn number_in(s: &str, min: i64, max: i64) -> Option<i64> {
    let (v, overflow, whole) = strtol10(s);
    (whole && !overflow && min <= v && v <= max).then_some(v)
}

/// glibc `atoi`: leading number, garbage after it ignored, int truncation.
fn c_atoi(s: &str) -> i32 {
    let (v, _, _) = strtol10(s);
    v as i32
}

/// glibc `inet_aton`: 1 to 4 parts, each decimal, octal (`0..`) or hex
/// (`0x..`); trailing whitespace and anything after it is ignored.
fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut parts: Vec<u64> = Vec::new();
    let mut val: u64;
    let mut digit;
    loop {
        if i >= b.len() || !b[i].is_ascii_digit() {
            return None;
        }
        val = 0;
        let mut base = 10;
        digit = false;
        if b[i] == b'0' {
            i += 1;
            if i < b.len() && (b[i] == b'x' || b[i] == b'X') {
                base = 16;
                i += 1;
            } else {
                base = 8;
                digit = true;
            }
        }
        while i < b.len() {
            let c = b[i];
            let d = if c.is_ascii_digit() {
                if base == 8 && c >= b'8' {
                    return None;
                }
                u64::from(c - b'0')
            } else if base == 16 && c.is_ascii_hexdigit() {
                u64::from(c.to_ascii_lowercase() - b'a' + 10)
            } else {
                break;
            };
            val = val * base + d;
            if val > u64::from(u32::MAX) {
                return None;
            }
            digit = true;
            i += 1;
        }
        if i < b.len() && b[i] == b'.' {
            if parts.len() >= 3 || val > 0xff {
                return None;
            }
            parts.push(val);
            i += 1;
        } else {
            break;
        }
    }
    if i < b.len() && !c_isspace(b[i]) {
        return None;
    }
    if !digit {
        return None;
    }
    let max: u64 = match parts.len() {
        0 => 0xffff_ffff,
        1 => 0xff_ffff,
        2 => 0xffff,
        _ => 0xff,
    };
    if val > max {
        return None;
    }
    let mut word = val;
    for (n, p) in parts.iter().enumerate() {
        word |= p << (24 - 8 * n);
    }
    Some(Ipv4Addr::from(word as u32))
}

/// An IPv4 address as ipvsadm reads one: `inet_aton`, else a host name.
fn ipv4_or_host(s: &str, names: &dyn Names) -> Option<Ipv4Addr> {
    if let Some(a) = inet_aton(s) {
        return Some(a);
    }
    if s.is_empty() {
        return None;
    }
    match names.host_addr(s, Some(Family::Inet)) {
        Some(IpAddr::V4(a)) => Some(a),
        _ => None,
    }
}

/// `addr[:port]`, `[v6addr]:port` or a bare IPv6 address, as ipvsadm's
/// parse_service reads it. Returns the address and the port if one was given.
fn parse_service_addr(
    buf: &str,
    proto: Option<Protocol>,
    names: &dyn Names,
) -> Option<(IpAddr, Option<u16>)> {
    if buf.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut host = buf;
    let mut port_str: Option<&str> = None;
    if let Some(rest) = buf.strip_prefix('[') {
        let close = rest.find(']')?;
        host = &rest[..close];
        port_str = Some(rest[close + 1..].strip_prefix(':')?);
    }
    let addr = if let Ok(a6) = host.parse::<Ipv6Addr>() {
        IpAddr::V6(a6)
    } else {
        // Not IPv6: whatever follows the last ':' is the port (this also
        // applies inside brackets, where the bracketed port is then ignored).
        match host.rfind(':') {
            Some(i) => {
                port_str = Some(&host[i + 1..]);
                host = &host[..i];
            }
            None => port_str = None,
        }
        IpAddr::V4(ipv4_or_host(host, names)?)
    };
    let port = match port_str {
        None => None,
        Some(p) => Some(match number_in(p, 0, 65535) {
            Some(n) => n as u16,
            None => names.service_port(p, proto?)?,
        }),
    };
    Some((addr, port))
}

fn parse_timeout(s: Option<&str>, min: u32) -> Result<u32, ParseError> {
    match s {
        None => Ok(Persistence::DEFAULT_TIMEOUT),
        Some(s) => number_in(s, i64::from(min), i64::from(MAX_TIMEOUT))
            .map(|v| v as u32)
            .ok_or_else(|| ParseError::fail(format!("invalid timeout value `{s}' specified"))),
    }
}

fn parse_fwmark(s: &str) -> Result<u32, ParseError> {
    let (v, overflow, whole) = strtol10(s);
    // strtol's result is stored unsigned: negative values are huge.
    if !whole || overflow || v <= 0 || v > i64::from(u32::MAX) {
        return Err(ParseError::fail(format!(
            "invalid fwmark value `{s}' specified"
        )));
    }
    Ok(v as u32)
}

fn parse_sched_flags(sched: &str, arg: &str) -> Result<u32, ParseError> {
    let sched = if sched.is_empty() { "wlc" } else { sched };
    let mut flags = 0;
    // strtok: runs of commas separate, empty fields vanish. (ipvsadm crashes
    // on an argument made only of commas; here that means no flags.)
    for flag in arg.split(',').filter(|f| !f.is_empty()) {
        let (bit, needs) = match flag {
            "flag-1" => (SchedFlags::SCHED1, None),
            "flag-2" => (SchedFlags::SCHED2, None),
            "flag-3" => (SchedFlags::SCHED3, None),
            "sh-fallback" => (SchedFlags::SCHED1, Some("sh")),
            "sh-port" => (SchedFlags::SCHED2, Some("sh")),
            "mh-fallback" => (SchedFlags::SCHED1, Some("mh")),
            "mh-port" => (SchedFlags::SCHED2, Some("mh")),
            _ => return Err(ParseError::fail(format!("invalid scheduler flag `{flag}'"))),
        };
        flags |= bit;
        if let Some(s) = needs {
            if s != sched {
                return Err(ParseError::fail(format!(
                    "incompatible scheduler flag `{flag}'"
                )));
            }
        }
    }
    Ok(flags)
}

/// `strncpy` into a fixed buffer: at most `max` bytes (cut at a character
/// boundary here, since the result must stay a Rust string).
fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

// ---------------------------------------------------------------------------
// The command line itself
// ---------------------------------------------------------------------------

/// Everything the options set, before it becomes a [`Command`].
struct State {
    cmd: Option<Cmd>,
    daemon_state: DaemonState,
    options: u64,
    list: ListOptions,
    // virtual service
    svc_family: Option<Family>,
    svc_proto: Option<Protocol>,
    svc_addr: Option<IpAddr>,
    svc_port: u16,
    fwmark: u32,
    /// IPv4: mask as `u32::from(Ipv4Addr)`; IPv6: prefix length.
    netmask: u32,
    sched_name: String,
    persistent: Option<u32>,
    one_packet: bool,
    pe_name: String,
    sched_flags_arg: String,
    // real server
    dest_family: Option<Family>,
    dest_addr: Option<IpAddr>,
    dest_port: u16,
    fwd: FwdMethod,
    weight: u32,
    u_threshold: u32,
    l_threshold: u32,
    tun_type: TunType,
    tun_port: u16,
    tun_csum: bool,
    tun_remcsum: bool,
    // daemon
    mcast_ifn: String,
    syncid: u32,
    sync_maxlen: Option<u16>,
    mcast_group: Option<IpAddr>,
    mcast_port: Option<u16>,
    mcast_ttl: Option<u8>,
    // --set
    timeouts: TimeoutSet,
}

impl State {
    fn new() -> State {
        State {
            cmd: None,
            daemon_state: DaemonState::Master,
            options: 0,
            list: ListOptions::default(),
            svc_family: None,
            svc_proto: None,
            svc_addr: None,
            svc_port: 0,
            fwmark: 0,
            netmask: 0xffff_ffff,
            sched_name: String::new(),
            persistent: None,
            one_packet: false,
            pe_name: String::new(),
            sched_flags_arg: String::new(),
            dest_family: None,
            dest_addr: None,
            dest_port: 0,
            fwd: FwdMethod::Route,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            tun_type: TunType::Ipip,
            tun_port: 0,
            tun_csum: false,
            tun_remcsum: false,
            mcast_ifn: String::new(),
            syncid: 0,
            sync_maxlen: None,
            mcast_group: None,
            mcast_port: None,
            mcast_ttl: None,
            timeouts: TimeoutSet::default(),
        }
    }

    fn set_option(&mut self, opt: Opt) -> Result<(), ParseError> {
        if self.options & opt.bit() != 0 {
            return Err(ParseError::fail(format!(
                "multiple '{}' options specified",
                opt.name()
            )));
        }
        self.options |= opt.bit();
        Ok(())
    }

    fn has(&self, opt: Opt) -> bool {
        self.options & opt.bit() != 0
    }

    fn service_key(&self) -> Option<ServiceKey> {
        if !self.has(Opt::Service) {
            return None;
        }
        if self.fwmark != 0 {
            return Some(ServiceKey::Fwmark {
                family: self.svc_family.unwrap_or(Family::Inet),
                mark: self.fwmark,
            });
        }
        Some(ServiceKey::Addr {
            protocol: self.svc_proto?,
            addr: self.svc_addr?,
            port: self.svc_port,
        })
    }
}

enum First {
    Cmd(Cmd),
    Done(Command),
}

fn first_command(
    scanner: &mut Scanner,
    program: &str,
    st: &mut State,
) -> Result<First, ParseError> {
    let (key, value) = match scanner.scan() {
        Scan::Opt(k, v) => (k, v),
        Scan::End | Scan::Error(_) => return Err(ParseError::try_help(program)),
    };
    let cmd = match key {
        Key::AddService => Cmd::Add,
        Key::EditService => Cmd::Edit,
        Key::DeleteService => Cmd::Del,
        Key::AddServer => Cmd::AddDest,
        Key::EditServer => Cmd::EditDest,
        Key::DeleteServer => Cmd::DelDest,
        Key::Clear => Cmd::Flush,
        Key::List => Cmd::List,
        Key::Zero => Cmd::Zero,
        Key::Set => Cmd::Timeout,
        Key::Restore => Cmd::Restore,
        Key::Save => Cmd::Save,
        Key::StartDaemon | Key::StopDaemon => {
            let start = key == Key::StartDaemon;
            st.daemon_state = match value.as_deref() {
                Some("master") => DaemonState::Master,
                Some("backup") => DaemonState::Backup,
                _ if start => {
                    return Err(ParseError::fail("illegal start-daemon parameter specified"))
                }
                _ => return Err(ParseError::fail("illegal start_daemon specified")),
            };
            if start {
                Cmd::StartDaemon
            } else {
                Cmd::StopDaemon
            }
        }
        Key::Help => return Ok(First::Done(Command::Help)),
        Key::Version => return Ok(First::Done(Command::Version)),
        _ => return Err(ParseError::try_help(program)),
    };
    Ok(First::Cmd(cmd))
}

fn handle_option(
    st: &mut State,
    key: Key,
    value: Option<String>,
    bad_option: &str,
    names: &dyn Names,
) -> Result<(), ParseError> {
    let val = value.as_deref().unwrap_or("");
    match key {
        Key::Tcp | Key::Udp | Key::Sctp => {
            st.set_option(Opt::Service)?;
            let proto = match key {
                Key::Tcp => Protocol::Tcp,
                Key::Udp => Protocol::Udp,
                _ => Protocol::Sctp,
            };
            st.svc_proto = Some(proto);
            let (addr, port) = parse_service_addr(val, Some(proto), names).ok_or_else(|| {
                ParseError::fail("illegal virtual server address[:port] specified")
            })?;
            st.svc_addr = Some(addr);
            st.svc_family = Some(Family::of(&addr));
            if addr.is_ipv6() {
                st.netmask = 128;
            }
            if let Some(p) = port {
                st.svc_port = p;
            }
        }
        Key::Fwmark => {
            st.set_option(Opt::Service)?;
            st.svc_family = Some(Family::Inet);
            st.svc_proto = Some(Protocol::Tcp);
            st.fwmark = parse_fwmark(val)?;
        }
        Key::Scheduler => {
            st.set_option(Opt::Scheduler)?;
            st.sched_name = truncate(val, 15);
        }
        Key::Persistent => {
            st.set_option(Opt::Persistent)?;
            st.persistent = Some(parse_timeout(value.as_deref(), 1)?);
        }
        Key::Netmask => {
            st.set_option(Opt::Netmask)?;
            if st.svc_family != Some(Family::Inet6) {
                let mask = ipv4_or_host(val, names).ok_or_else(|| {
                    ParseError::fail("illegal virtual server persistent mask specified")
                })?;
                st.netmask = u32::from(mask);
            } else {
                let n = c_atoi(val) as u32;
                if !(1..=128).contains(&n) {
                    return Err(ParseError::fail("illegal ipv6 netmask specified"));
                }
                st.netmask = n;
            }
        }
        Key::RealServer => {
            st.set_option(Opt::Server)?;
            let (addr, port) = parse_service_addr(val, st.svc_proto, names)
                .ok_or_else(|| ParseError::fail("illegal real server address[:port] specified"))?;
            st.dest_addr = Some(addr);
            st.dest_family = Some(Family::of(&addr));
            st.dest_port = port.unwrap_or(st.svc_port);
        }
        Key::Ipip | Key::Gatewaying | Key::Masquerading => {
            st.set_option(Opt::Forward)?;
            st.fwd = match key {
                Key::Ipip => FwdMethod::Tunnel,
                Key::Gatewaying => FwdMethod::Route,
                _ => FwdMethod::Masq,
            };
        }
        Key::Weight => {
            st.set_option(Opt::Weight)?;
            st.weight = number_in(val, 0, 65535)
                .ok_or_else(|| ParseError::fail("illegal weight specified"))?
                as u32;
        }
        Key::UThreshold => {
            st.set_option(Opt::UThreshold)?;
            st.u_threshold = number_in(val, 0, i64::from(i32::MAX))
                .ok_or_else(|| ParseError::fail("illegal u_threshold specified"))?
                as u32;
        }
        Key::LThreshold => {
            st.set_option(Opt::LThreshold)?;
            st.l_threshold = number_in(val, 0, i64::from(i32::MAX))
                .ok_or_else(|| ParseError::fail("illegal l_threshold specified"))?
                as u32;
        }
        Key::Connection => {
            st.set_option(Opt::Connection)?;
            st.list.connections = true;
        }
        Key::Numeric => {
            st.set_option(Opt::Numeric)?;
            st.list.numeric = true;
        }
        Key::McastInterface => {
            st.set_option(Opt::Mcast)?;
            st.mcast_ifn = truncate(val, 15);
        }
        Key::SyncId => {
            st.set_option(Opt::SyncId)?;
            st.syncid = number_in(val, 0, 255)
                .ok_or_else(|| ParseError::fail("illegal syncid specified"))?
                as u32;
        }
        Key::Timeout => {
            st.set_option(Opt::Timeout)?;
            st.list.timeout = true;
        }
        Key::Daemon => {
            st.set_option(Opt::Daemon)?;
            st.list.daemon = true;
        }
        Key::Stats => {
            st.set_option(Opt::Stats)?;
            st.list.stats = true;
        }
        Key::Rate => {
            st.set_option(Opt::Rate)?;
            st.list.rate = true;
        }
        Key::Thresholds => {
            st.set_option(Opt::Thresholds)?;
            st.list.thresholds = true;
        }
        Key::PersistentConn => {
            st.set_option(Opt::PersistentConn)?;
            st.list.persistent_conn = true;
        }
        Key::NoSort => {
            st.set_option(Opt::NoSort)?;
            st.list.nosort = true;
        }
        Key::Sort => {}
        Key::Exact => {
            st.set_option(Opt::Exact)?;
            st.list.exact = true;
        }
        Key::Ipv6 => {
            if st.fwmark == 0 {
                return Err(ParseError::fail("-6 used before -f\n"));
            }
            st.svc_family = Some(Family::Inet6);
            st.netmask = 128;
        }
        Key::Ops => {
            st.set_option(Opt::OnePacket)?;
            st.one_packet = true;
        }
        Key::Pe => {
            st.set_option(Opt::PersistenceEngine)?;
            st.pe_name = truncate(val, 16);
        }
        Key::SchedFlags => {
            st.set_option(Opt::SchedFlags)?;
            st.sched_flags_arg = truncate(val, 127);
        }
        Key::McastGroup => {
            st.set_option(Opt::McastGroup)?;
            if val.contains(':') {
                match val.parse::<Ipv6Addr>() {
                    Ok(a) if a.is_multicast() => st.mcast_group = Some(IpAddr::V6(a)),
                    _ => {
                        return Err(ParseError::fail(format!(
                            "invalid IPv6 mcast-group `{val}'"
                        )))
                    }
                }
            } else {
                match val.parse::<Ipv4Addr>() {
                    Ok(a) if a.is_multicast() => st.mcast_group = Some(IpAddr::V4(a)),
                    _ => {
                        return Err(ParseError::fail(format!(
                            "invalid IPv4 mcast-group `{val}'"
                        )))
                    }
                }
            }
        }
        Key::McastPort => {
            st.set_option(Opt::McastPort)?;
            st.mcast_port = Some(
                number_in(val, 1, 65535)
                    .ok_or_else(|| ParseError::fail("illegal mcast-port specified"))?
                    as u16,
            );
        }
        Key::McastTtl => {
            st.set_option(Opt::McastTtl)?;
            st.mcast_ttl = Some(
                number_in(val, 1, 255)
                    .ok_or_else(|| ParseError::fail("illegal mcast-ttl specified"))?
                    as u8,
            );
        }
        Key::SyncMaxlen => {
            st.set_option(Opt::SyncMaxlen)?;
            st.sync_maxlen = Some(
                number_in(val, 1, 65535 - 20 - 8)
                    .ok_or_else(|| ParseError::fail("illegal sync-maxlen specified"))?
                    as u16,
            );
        }
        Key::TunInfo => {
            st.set_option(Opt::TunInfo)?;
            st.list.tun_info = true;
        }
        Key::TunType => {
            st.set_option(Opt::TunType)?;
            st.tun_type = match val {
                "ipip" => TunType::Ipip,
                "gue" => TunType::Gue,
                "gre" => TunType::Gre,
                _ => return Err(ParseError::fail("illegal tunnel type specified")),
            };
        }
        Key::TunPort => {
            st.set_option(Opt::TunPort)?;
            st.tun_port = number_in(val, 1, 65535)
                .ok_or_else(|| ParseError::fail("illegal tunnel port specified"))?
                as u16;
        }
        Key::TunNocsum => st.set_option(Opt::TunNocsum)?,
        Key::TunCsum => {
            st.set_option(Opt::TunCsum)?;
            st.tun_csum = true;
        }
        Key::TunRemcsum => {
            st.set_option(Opt::TunRemcsum)?;
            st.tun_remcsum = true;
        }
        // Commands, -h and -v are only recognised as the first option.
        Key::AddService
        | Key::EditService
        | Key::DeleteService
        | Key::Clear
        | Key::List
        | Key::Zero
        | Key::AddServer
        | Key::EditServer
        | Key::DeleteServer
        | Key::Set
        | Key::Help
        | Key::Version
        | Key::Restore
        | Key::Save
        | Key::StartDaemon
        | Key::StopDaemon => {
            return Err(ParseError::fail(format!("invalid option `{bad_option}'")));
        }
    }
    Ok(())
}

fn process(
    program: &str,
    args: Vec<&str>,
    names: &dyn Names,
    in_restore: bool,
) -> Result<Command, ParseError> {
    let mut scanner = Scanner::new(args);
    let mut st = State::new();
    let cmd = match first_command(&mut scanner, program, &mut st)? {
        First::Done(c) => return Ok(c),
        First::Cmd(c) => c,
    };
    st.cmd = Some(cmd);

    loop {
        match scanner.scan() {
            Scan::Opt(key, value) => {
                let bad = scanner.bad_option();
                handle_option(&mut st, key, value, bad, names)?;
            }
            Scan::End => break,
            Scan::Error(what) => return Err(ParseError::popt(scanner.bad_option(), what)),
        }
    }

    if cmd == Cmd::Timeout {
        match (scanner.next_arg(), scanner.next_arg(), scanner.next_arg()) {
            (Some(tcp), Some(fin), Some(udp)) => {
                st.timeouts = TimeoutSet {
                    tcp: parse_timeout(Some(tcp), 0)?,
                    tcp_fin: parse_timeout(Some(fin), 0)?,
                    udp: parse_timeout(Some(udp), 0)?,
                };
            }
            _ => return Err(ParseError::fail("--set option requires 3 timeout values")),
        }
    }

    if let Some(extra) = scanner.next_arg() {
        return Err(ParseError::fail(format!("unexpected argument {extra}")));
    }

    let sched_flags = if st.sched_flags_arg.is_empty() {
        0
    } else {
        parse_sched_flags(&st.sched_name, &st.sched_flags_arg)?
    };

    check_command_options(cmd, st.options)?;

    if matches!(cmd, Cmd::Add | Cmd::Edit) {
        if st.fwmark == 0 && st.svc_port == 0 && st.persistent.is_none() {
            return Err(ParseError::fail(
                "Zero port specified for non-persistent service",
            ));
        }
        if st.one_packet && st.fwmark == 0 && st.svc_proto != Some(Protocol::Udp) {
            return Err(ParseError::fail(
                "One-Packet Scheduling is only for UDP virtual services",
            ));
        }
        if st.sched_name.is_empty() {
            st.sched_name = SchedulerKind::Wlc.name().to_string();
        }
    }

    if matches!(cmd, Cmd::AddDest | Cmd::EditDest) {
        if st.fwmark == 0 && matches!(st.fwd, FwdMethod::Tunnel | FwdMethod::Route) {
            st.dest_port = st.svc_port;
        }
        if st.dest_family != st.svc_family && st.fwd != FwdMethod::Tunnel {
            return Err(ParseError::fail(
                "Different address family is allowed only for tunneling servers",
            ));
        }
        let tunnel_opts = Opt::TunType.bit()
            | Opt::TunPort.bit()
            | Opt::TunNocsum.bit()
            | Opt::TunCsum.bit()
            | Opt::TunRemcsum.bit();
        if st.options & tunnel_opts != 0 && st.fwd != FwdMethod::Tunnel {
            return Err(ParseError::fail(
                "Tunnel options conflict with forward method",
            ));
        }
        check_tunnel_options(st.tun_type, st.options)?;
    }

    if cmd == Cmd::List {
        let o = st.options;
        let any = |opts: &[Opt]| opts.iter().any(|x| o & x.bit() != 0);
        if (any(&[Opt::Connection, Opt::Timeout, Opt::Daemon])
            && any(&[Opt::Stats, Opt::Rate, Opt::Thresholds]))
            || (any(&[Opt::Timeout, Opt::Daemon]) && any(&[Opt::PersistentConn]))
        {
            return Err(ParseError::fail("options conflicts in the list command"));
        }
    }

    if cmd == Cmd::Restore && in_restore {
        return Err(ParseError::try_help(program));
    }

    build(cmd, st, sched_flags)
}

fn build(cmd: Cmd, st: State, sched_flags: u32) -> Result<Command, ParseError> {
    let key = st.service_key();
    // Present whenever the legality check required it.
    let need_key =
        || key.ok_or_else(|| ParseError::fail("illegal virtual server address[:port] specified"));
    let dest_addr = || {
        st.dest_addr
            .ok_or_else(|| ParseError::fail("illegal real server address[:port] specified"))
    };
    Ok(match cmd {
        Cmd::Add | Cmd::Edit => {
            let key = need_key()?;
            let scheduler: SchedulerKind = st
                .sched_name
                .parse()
                .map_err(|_| ParseError::kernel("Scheduler or persistence engine not found"))?;
            let mut cfg = ServiceConfig::new(key);
            cfg.scheduler = scheduler;
            cfg.sched_flags = SchedFlags(sched_flags & SchedFlags::MASK);
            cfg.persistence = st.persistent.map(|timeout| Persistence {
                timeout,
                netmask: st.netmask,
            });
            cfg.one_packet = st.one_packet;
            cfg.pe_name = (!st.pe_name.is_empty()).then(|| st.pe_name.clone());
            if cmd == Cmd::Add {
                Command::AddService(cfg)
            } else {
                Command::EditService(cfg)
            }
        }
        Cmd::Del => Command::DeleteService(need_key()?),
        Cmd::Flush => Command::Clear,
        Cmd::List => {
            let mut list = st.list.clone();
            list.service = key;
            Command::List(list)
        }
        Cmd::AddDest | Cmd::EditDest => {
            let key = need_key()?;
            let mut d = DestConfig::new(dest_addr()?, st.dest_port);
            d.fwd = st.fwd;
            d.weight = st.weight;
            d.u_threshold = st.u_threshold;
            d.l_threshold = st.l_threshold;
            d.tun_type = st.tun_type;
            d.tun_port = st.tun_port;
            d.tun_csum = if st.tun_remcsum {
                TunCsum::RemCsum
            } else if st.tun_csum {
                TunCsum::Csum
            } else {
                TunCsum::NoCsum
            };
            if cmd == Cmd::AddDest {
                Command::AddDest(key, d)
            } else {
                Command::EditDest(key, d)
            }
        }
        Cmd::DelDest => Command::DeleteDest(
            need_key()?,
            DestAddr {
                addr: dest_addr()?,
                port: st.dest_port,
            },
        ),
        Cmd::Timeout => Command::SetTimeout(st.timeouts),
        Cmd::StartDaemon => Command::StartDaemon(DaemonConfig {
            state: st.daemon_state,
            mcast_ifn: Some(if st.mcast_ifn.is_empty() {
                DEFAULT_MCAST_IFN.to_string()
            } else {
                st.mcast_ifn.clone()
            }),
            syncid: st.syncid,
            sync_maxlen: st.sync_maxlen,
            mcast_group: st.mcast_group,
            mcast_port: st.mcast_port,
            mcast_ttl: st.mcast_ttl,
        }),
        Cmd::StopDaemon => Command::StopDaemon(st.daemon_state),
        Cmd::Restore => Command::Restore,
        Cmd::Save => Command::Save {
            numeric: st.list.numeric,
        },
        Cmd::Zero => Command::Zero(key),
    })
}

/// Parses an ipvsadm command line (without the program name). No arguments at
/// all means "list the table", as with ipvsadm. Errors name the program as
/// `ipvsadm`; see [`parse_args_as`].
pub fn parse_args<S: AsRef<str>>(args: &[S], names: &dyn Names) -> Result<Command, ParseError> {
    parse_args_as("ipvsadm", args, names)
}

/// [`parse_args`], naming the program `program` in the "Try ... -h" line
/// (ipvsadm uses its `argv[0]` there).
pub fn parse_args_as<S: AsRef<str>>(
    program: &str,
    args: &[S],
    names: &dyn Names,
) -> Result<Command, ParseError> {
    if args.is_empty() {
        return Ok(Command::List(ListOptions::default()));
    }
    let args: Vec<&str> = args.iter().map(|a| a.as_ref()).collect();
    process(program, args, names, false)
}

// ---------------------------------------------------------------------------
// -R input
// ---------------------------------------------------------------------------

/// Splits one `-R` line into words the way ipvsadm does: separators are space,
/// tab and carriage return; every word that is exactly `ipvsadm` is dropped
/// (so `ipvsadm -S` output can be fed back). `#` has no special meaning:
/// ipvsadm 1.31's comment handling never triggers, so a comment line is an
/// error there too.
pub fn restore_words(line: &str) -> Vec<&str> {
    line.split([' ', '\t', '\r'])
        .filter(|w| !w.is_empty() && *w != "ipvsadm")
        .collect()
}

/// One non-empty line of `-R` input and what it means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreLine {
    /// 1-based line number.
    pub line: usize,
    pub result: Result<Command, ParseError>,
}

/// Every command line of `-R` input, in order, the way ipvsadm processes them:
/// lines with no words are skipped; processing stops after the first fatal
/// error ([`ParseError::is_fatal`]) but goes on after option-scanner and
/// kernel-level errors. A nested `-R` is a fatal try-help error. (`-h` and
/// `-v` end ipvsadm with status 0 after printing; the caller should stop
/// there too.)
pub fn parse_restore_lines(program: &str, input: &str, names: &dyn Names) -> Vec<RestoreLine> {
    let mut out = Vec::new();
    for (i, line) in input.split('\n').enumerate() {
        let words = restore_words(line);
        if words.is_empty() {
            continue;
        }
        let result = process(program, words, names, true);
        let fatal = matches!(&result, Err(e) if e.is_fatal());
        out.push(RestoreLine {
            line: i + 1,
            result,
        });
        if fatal {
            break;
        }
    }
    out
}

/// Parses `-R` input into commands, stopping at the first line with any error
/// (see [`parse_restore_lines`] for ipvsadm's exact carry-on behaviour).
pub fn parse_restore(input: &str, names: &dyn Names) -> Result<Vec<Command>, RestoreError> {
    parse_restore_as("ipvsadm", input, names)
}

/// [`parse_restore`] with the program name for "Try ... -h" lines.
pub fn parse_restore_as(
    program: &str,
    input: &str,
    names: &dyn Names,
) -> Result<Vec<Command>, RestoreError> {
    let mut cmds = Vec::new();
    for l in parse_restore_lines(program, input, names) {
        match l.result {
            Ok(c) => cmds.push(c),
            Err(error) => {
                return Err(RestoreError {
                    line: l.line,
                    error,
                })
            }
        }
    }
    Ok(cmds)
}

// ---------------------------------------------------------------------------
// Back to argv
// ---------------------------------------------------------------------------

fn addr_port(addr: &IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

fn service_argv(key: &ServiceKey, out: &mut Vec<String>) {
    match key {
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        } => {
            out.push(
                match protocol {
                    Protocol::Tcp => "-t",
                    Protocol::Udp => "-u",
                    Protocol::Sctp => "--sctp-service",
                }
                .to_string(),
            );
            out.push(addr_port(addr, *port));
        }
        ServiceKey::Fwmark { family, mark } => {
            out.push("-f".to_string());
            out.push(mark.to_string());
            if *family == Family::Inet6 {
                out.push("-6".to_string());
            }
        }
    }
}

fn netmask_text(family: Family, netmask: u32) -> String {
    match family {
        Family::Inet => Ipv4Addr::from(netmask).to_string(),
        Family::Inet6 => netmask.to_string(),
    }
}

fn service_config_argv(cfg: &ServiceConfig, out: &mut Vec<String>) {
    service_argv(&cfg.key, out);
    out.push("-s".to_string());
    out.push(cfg.scheduler.name().to_string());
    let flags: Vec<&str> = [
        (SchedFlags::SCHED1, "flag-1"),
        (SchedFlags::SCHED2, "flag-2"),
        (SchedFlags::SCHED3, "flag-3"),
    ]
    .iter()
    .filter(|(bit, _)| cfg.sched_flags.0 & bit != 0)
    .map(|(_, name)| *name)
    .collect();
    if !flags.is_empty() {
        out.push("-b".to_string());
        out.push(flags.join(","));
    }
    if let Some(p) = cfg.persistence {
        out.push("-p".to_string());
        out.push(p.timeout.to_string());
        out.push("-M".to_string());
        out.push(netmask_text(cfg.key.family(), p.netmask));
    }
    if cfg.one_packet {
        out.push("-o".to_string());
    }
    if let Some(pe) = &cfg.pe_name {
        out.push("--pe".to_string());
        out.push(pe.clone());
    }
}

fn dest_config_argv(d: &DestConfig, out: &mut Vec<String>) {
    out.push("-r".to_string());
    out.push(addr_port(&d.addr, d.port));
    out.push(
        match d.fwd {
            FwdMethod::Masq => "-m",
            FwdMethod::Tunnel => "-i",
            FwdMethod::Route | FwdMethod::Local | FwdMethod::Bypass => "-g",
        }
        .to_string(),
    );
    out.push("-w".to_string());
    out.push(d.weight.to_string());
    if d.u_threshold != 0 {
        out.push("-x".to_string());
        out.push(d.u_threshold.to_string());
    }
    if d.l_threshold != 0 {
        out.push("-y".to_string());
        out.push(d.l_threshold.to_string());
    }
    if d.fwd == FwdMethod::Tunnel && d.tun_type != TunType::Ipip {
        out.push("--tun-type".to_string());
        out.push(d.tun_type.name().to_string());
        if d.tun_type == TunType::Gue {
            out.push("--tun-port".to_string());
            out.push(d.tun_port.to_string());
        }
        out.push(
            match d.tun_csum {
                TunCsum::NoCsum => "--tun-nocsum",
                TunCsum::Csum => "--tun-csum",
                TunCsum::RemCsum => "--tun-remcsum",
            }
            .to_string(),
        );
    }
}

/// An ipvsadm argument vector (without the program name) meaning `cmd`.
/// Every field the parser can produce is written out, so
/// `parse_args(&to_argv(&c))` gives `c` back for any command the parser
/// produced. (Local/Bypass forwarding, which no option selects, is written as
/// `-g`, as ipvsadm -S does for Local.)
pub fn to_argv(cmd: &Command) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let push = |out: &mut Vec<String>, s: &str| out.push(s.to_string());
    match cmd {
        Command::AddService(cfg) => {
            push(&mut out, "-A");
            service_config_argv(cfg, &mut out);
        }
        Command::EditService(cfg) => {
            push(&mut out, "-E");
            service_config_argv(cfg, &mut out);
        }
        Command::DeleteService(key) => {
            push(&mut out, "-D");
            service_argv(key, &mut out);
        }
        Command::Clear => push(&mut out, "-C"),
        Command::AddDest(key, d) => {
            push(&mut out, "-a");
            service_argv(key, &mut out);
            dest_config_argv(d, &mut out);
        }
        Command::EditDest(key, d) => {
            push(&mut out, "-e");
            service_argv(key, &mut out);
            dest_config_argv(d, &mut out);
        }
        Command::DeleteDest(key, d) => {
            push(&mut out, "-d");
            service_argv(key, &mut out);
            push(&mut out, "-r");
            out.push(addr_port(&d.addr, d.port));
        }
        Command::Zero(key) => {
            push(&mut out, "-Z");
            if let Some(k) = key {
                service_argv(k, &mut out);
            }
        }
        Command::SetTimeout(t) => {
            push(&mut out, "--set");
            out.push(t.tcp.to_string());
            out.push(t.tcp_fin.to_string());
            out.push(t.udp.to_string());
        }
        Command::StartDaemon(d) => {
            push(&mut out, "--start-daemon");
            push(&mut out, daemon_state_name(d.state));
            if let Some(ifn) = &d.mcast_ifn {
                push(&mut out, "--mcast-interface");
                out.push(ifn.clone());
            }
            if d.syncid != 0 {
                push(&mut out, "--syncid");
                out.push(d.syncid.to_string());
            }
            if let Some(n) = d.sync_maxlen {
                push(&mut out, "--sync-maxlen");
                out.push(n.to_string());
            }
            if let Some(g) = d.mcast_group {
                push(&mut out, "--mcast-group");
                out.push(g.to_string());
            }
            if let Some(p) = d.mcast_port {
                push(&mut out, "--mcast-port");
                out.push(p.to_string());
            }
            if let Some(t) = d.mcast_ttl {
                push(&mut out, "--mcast-ttl");
                out.push(t.to_string());
            }
        }
        Command::StopDaemon(s) => {
            push(&mut out, "--stop-daemon");
            push(&mut out, daemon_state_name(*s));
        }
        Command::List(l) => {
            push(&mut out, "-L");
            if let Some(k) = &l.service {
                service_argv(k, &mut out);
            }
            let flags = [
                (l.numeric, "-n"),
                (l.exact, "--exact"),
                (l.stats, "--stats"),
                (l.rate, "--rate"),
                (l.thresholds, "--thresholds"),
                (l.persistent_conn, "--persistent-conn"),
                (l.tun_info, "--tun-info"),
                (l.connections, "-c"),
                (l.timeout, "--timeout"),
                (l.daemon, "--daemon"),
                (l.nosort, "--nosort"),
            ];
            for (on, flag) in flags {
                if on {
                    push(&mut out, flag);
                }
            }
        }
        Command::Save { numeric } => {
            push(&mut out, "-S");
            if *numeric {
                push(&mut out, "-n");
            }
        }
        Command::Restore => push(&mut out, "-R"),
        Command::Help => push(&mut out, "-h"),
        Command::Version => push(&mut out, "-v"),
    }
    out
}

fn daemon_state_name(s: DaemonState) -> &'static str {
    match s {
        DaemonState::Master => "master",
        DaemonState::Backup => "backup",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtol_like_c() {
        assert_eq!(number_in(" 42", 0, 100), Some(42));
        assert_eq!(number_in("+7", 0, 100), Some(7));
        assert_eq!(number_in("-0", 0, 100), Some(0));
        assert_eq!(number_in("42 ", 0, 100), None);
        assert_eq!(number_in("", 0, 100), None);
        assert_eq!(number_in("-", 0, 100), None);
        assert_eq!(number_in("99999999999999999999", 0, i64::MAX), None);
        assert_eq!(c_atoi("64abc"), 64);
        assert_eq!(c_atoi("abc"), 0);
        assert_eq!(c_atoi("4294967361"), 65);
    }

    #[test]
    fn inet_aton_like_glibc() {
        assert_eq!(inet_aton("1.2.3.4"), Some(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(inet_aton("10.1"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(inet_aton("10.1.2"), Some(Ipv4Addr::new(10, 1, 0, 2)));
        assert_eq!(inet_aton("0x7f.1"), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(inet_aton("010.0.0.1"), Some(Ipv4Addr::new(8, 0, 0, 1)));
        assert_eq!(inet_aton("1.2.3.4 junk"), Some(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(inet_aton("64"), Some(Ipv4Addr::new(0, 0, 0, 64)));
        assert_eq!(inet_aton("1.2.3.256"), None);
        assert_eq!(inet_aton("08"), None);
        assert_eq!(inet_aton("0x"), None);
        assert_eq!(inet_aton("1.2.3.4.5"), None);
        assert_eq!(inet_aton("1.2.3."), None);
        assert_eq!(inet_aton(""), None);
        assert_eq!(inet_aton("a.b.c.d"), None);
    }

    #[test]
    fn legality_rules_spot_checks() {
        assert_eq!(rule(Cmd::Add, Opt::Service), Rule::Required);
        assert_eq!(rule(Cmd::Add, Opt::Weight), Rule::Illegal);
        assert_eq!(rule(Cmd::List, Opt::SyncId), Rule::Optional);
        assert_eq!(rule(Cmd::List, Opt::Daemon), Rule::OneOf);
        assert_eq!(rule(Cmd::StopDaemon, Opt::SyncId), Rule::Optional);
        assert_eq!(rule(Cmd::Zero, Opt::Service), Rule::Optional);
        assert_eq!(ALL_OPTS.len(), 34);
        for (i, o) in ALL_OPTS.iter().enumerate() {
            assert_eq!(*o as usize, i);
        }
    }

    #[test]
    fn restore_word_splitting() {
        assert_eq!(
            restore_words("ipvsadm -A\t-t 1.2.3.4:80  -s rr\r"),
            vec!["-A", "-t", "1.2.3.4:80", "-s", "rr"]
        );
        assert!(restore_words("  \t ").is_empty());
        assert!(restore_words("ipvsadm").is_empty());
    }
}
