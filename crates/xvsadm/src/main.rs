//! xvsadm: ipvsadm for xvs. Same commands, options, output and exit codes;
//! the rules go to xvsd over its Unix socket (`XVS_SOCKET`, default
//! /run/xvs/xvsd.sock).
//!
//! Extras ipvsadm lacks, kept out of the compatible output: `--json` on the
//! list commands, and `--top` (a live view of services, real servers, rates
//! and connections).

mod names;
mod top;

use std::collections::HashSet;
use std::io::Read;
use std::process::ExitCode;

use xvs_api::client::{Client, ClientError};
use xvs_api::wire::{
    CommandsRequest, CommandsResponse, ConnList, DaemonList, ServiceList, Timeouts,
};
use xvs_core::ipvsadm::{
    self, help::help_text, parse::restore_words, parse_args_as, parse_restore_lines, to_argv,
    Command, ErrorKind, ListOptions, Names, ParseError,
};
use xvs_core::model::ServiceKey;
use xvs_core::snapshot::ConnEntry;

const PROGRAM: &str = "xvsadm";

/// What a run ends with: text for stdout, text for stderr, exit status.
struct Outcome {
    stdout: String,
    stderr: String,
    code: u8,
}

impl Outcome {
    fn out(s: String) -> Outcome {
        Outcome {
            stdout: s,
            stderr: String::new(),
            code: 0,
        }
    }
    fn err(s: impl Into<String>, code: i32) -> Outcome {
        let mut stderr = s.into();
        if !stderr.ends_with('\n') {
            stderr.push('\n');
        }
        Outcome {
            stdout: String::new(),
            stderr,
            code: code as u8,
        }
    }
}

/// The one line xvsadm prints when nothing answers on the socket.
fn not_running_line(client: &Client, e: &std::io::Error) -> String {
    format!(
        "{PROGRAM}: xvsd is not running (cannot connect to {}: {e}); start it with `xvsd -i IFACE`, or set XVS_SOCKET to its socket",
        client.path().display()
    )
}

fn not_running(client: &Client, e: &std::io::Error) -> Outcome {
    Outcome::err(not_running_line(client, e), 2)
}

/// Turns a client error into what xvsadm prints: ipvsadm's words for a
/// refused command, with the precise reason on a second line where
/// ipvsadm's words are vague.
fn client_error(client: &Client, e: ClientError) -> Outcome {
    match e {
        ClientError::NotRunning(_, io) => not_running(client, &io),
        ClientError::Api(_, err) => {
            let mut s = err.message.clone();
            if matches!(err.errno, 22 | 34) || (err.errno == 0 && err.detail != err.message) {
                s.push_str(&format!("\n{PROGRAM}: {}", err.detail));
            }
            // ipvsadm exits with 255 (-1) when the kernel refuses a command.
            Outcome::err(s, 255)
        }
        ClientError::Protocol(m) => Outcome::err(format!("{PROGRAM}: talking to xvsd: {m}"), 2),
    }
}

fn pretty<T: serde::Serialize>(v: &T) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

fn list(client: &Client, opts: &ListOptions, json: bool, names: &dyn Names) -> Outcome {
    if opts.connections {
        let doc: ConnList = match client.get("/v1/connections") {
            Ok(d) => d,
            Err(e) => return client_error(client, e),
        };
        if json {
            return Outcome::out(pretty(&doc));
        }
        let conns: Vec<ConnEntry> = doc.connections.iter().map(ConnEntry::from).collect();
        return Outcome::out(ipvsadm::list_conns(&conns, opts, names));
    }
    if opts.timeout {
        let doc: Timeouts = match client.get("/v1/timeouts") {
            Ok(d) => d,
            Err(e) => return client_error(client, e),
        };
        if json {
            return Outcome::out(pretty(&doc));
        }
        return Outcome::out(ipvsadm::list_timeouts(&doc.into()));
    }
    if opts.daemon {
        let doc: DaemonList = match client.get("/v1/daemons") {
            Ok(d) => d,
            Err(e) => return client_error(client, e),
        };
        if json {
            return Outcome::out(pretty(&doc));
        }
        let mut list = Vec::new();
        for d in &doc.daemons {
            match d.try_into() {
                Ok(c) => list.push(c),
                Err(m) => return Outcome::err(format!("{PROGRAM}: xvsd sent {m}"), 2),
            }
        }
        return Outcome::out(ipvsadm::list_daemons(&list));
    }
    let doc: ServiceList = match client.get("/v1/services") {
        Ok(d) => d,
        Err(e) => return client_error(client, e),
    };
    let snap = match doc.to_snapshot() {
        Ok(s) => s,
        Err(m) => return Outcome::err(format!("{PROGRAM}: xvsd sent {m}"), 2),
    };
    if json {
        let mut doc = doc;
        if let Some(key) = &opts.service {
            let keep = ServiceList::from_snapshot(&xvs_core::snapshot::TableSnapshot {
                services: snap
                    .services
                    .iter()
                    .filter(|s| s.cfg.key == *key)
                    .cloned()
                    .collect(),
                conn_tab_size: snap.conn_tab_size,
            });
            if keep.services.is_empty() {
                return Outcome::err("No such service", 1);
            }
            doc = keep;
        }
        return Outcome::out(pretty(&doc));
    }
    match ipvsadm::list(&snap, opts, names) {
        Ok(s) => Outcome::out(s),
        Err(e) => Outcome::err(e.message, e.exit_code),
    }
}

fn post(client: &Client, commands: Vec<Vec<String>>) -> Result<usize, ClientError> {
    let r: CommandsResponse = client.post("/v1/commands", &CommandsRequest { commands })?;
    Ok(r.applied)
}

/// `-R`: every line of standard input, applied as one transaction.
fn restore(client: &Client, names: &dyn Names) -> Outcome {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        return Outcome::err(format!("{PROGRAM}: reading standard input: {e}"), 2);
    }
    let mut cmds = Vec::new();
    let mut lines = Vec::new();
    for l in parse_restore_lines(PROGRAM, &input, names) {
        match l.result {
            Ok(c) if is_table_command(&c) => {
                cmds.push(to_argv(&c));
                lines.push(l.line);
            }
            Ok(_) => {
                return Outcome::err(
                    format!(
                    "{PROGRAM}: line {}: only table commands can be restored; nothing was restored",
                    l.line
                ),
                    2,
                )
            }
            Err(mut e) => {
                if e.kind == ErrorKind::Kernel {
                    let words: Vec<String> = input
                        .split('\n')
                        .nth(l.line - 1)
                        .map(restore_words)
                        .unwrap_or_default()
                        .into_iter()
                        .map(String::from)
                        .collect();
                    if let Some((key, adding)) = sched_lookup(&words, names) {
                        let exists = match service_keys(client) {
                            Ok(k) => exists_after(k, &cmds, key),
                            Err(o) => return o,
                        };
                        if let Some(m) = lookup_error(adding, exists) {
                            e.message = m.into();
                        }
                    }
                }
                return Outcome::err(
                    format!(
                        "{}\n{PROGRAM}: line {}: nothing was restored",
                        e.message, l.line
                    ),
                    e.exit_code,
                );
            }
        }
    }
    if cmds.is_empty() {
        return Outcome::out(String::new());
    }
    match post(client, cmds) {
        Ok(_) => Outcome::out(String::new()),
        Err(ClientError::Api(s, mut err)) => {
            let line = err.index.and_then(|i| lines.get(i)).copied();
            if let Some(line) = line {
                err.detail = format!("line {line}: {}; nothing was restored", err.detail);
                err.errno = 0;
            }
            client_error(client, ClientError::Api(s, err))
        }
        Err(e) => client_error(client, e),
    }
}

/// Whether `key` is a service once `earlier` (numeric command lines) have
/// been applied to a table holding `keys`.
fn exists_after(mut keys: HashSet<ServiceKey>, earlier: &[Vec<String>], key: ServiceKey) -> bool {
    for argv in earlier {
        match ipvsadm::parse_args(argv, &ipvsadm::NumericOnly) {
            Ok(Command::AddService(c)) => {
                keys.insert(c.key);
            }
            Ok(Command::DeleteService(k)) => {
                keys.remove(&k);
            }
            Ok(Command::Clear) => keys.clear(),
            _ => {}
        }
    }
    keys.contains(&key)
}

fn is_table_command(c: &Command) -> bool {
    !matches!(
        c,
        Command::List(_)
            | Command::Save { .. }
            | Command::Restore
            | Command::Help
            | Command::Version
    )
}

fn run(mut args: Vec<String>) -> Outcome {
    let names = names::FileNames::load();
    // Our extras come out before the ipvsadm grammar sees the line.
    let json = take_flag(&mut args, "--json");
    if take_flag(&mut args, "--top") {
        return match top::run(&Client::from_env(), &mut args) {
            Ok(()) => Outcome::out(String::new()),
            Err(o) => Outcome::err(o, 2),
        };
    }
    let cmd = match parse_args_as(PROGRAM, &args, &names) {
        Ok(c) => c,
        Err(e) if e.kind == ErrorKind::Kernel => {
            return kernel_order(&Client::from_env(), &args, e, &names)
        }
        Err(e) => return Outcome::err(e.message, e.exit_code),
    };
    if json && !matches!(cmd, Command::List(_)) {
        return Outcome::err(
            format!("{PROGRAM}: --json goes with the list commands (-L, -l)"),
            2,
        );
    }
    let client = Client::from_env();
    match cmd {
        Command::Help => Outcome::out(help_text(PROGRAM)),
        Command::Version => Outcome::out(ipvsadm::version_line(PROGRAM)),
        Command::List(opts) => list(&client, &opts, json, &names),
        Command::Save { numeric } => {
            let doc: ServiceList = match client.get("/v1/services") {
                Ok(d) => d,
                Err(e) => return client_error(&client, e),
            };
            match doc.to_snapshot() {
                Ok(snap) => Outcome::out(ipvsadm::save(&snap, numeric, &names)),
                Err(m) => Outcome::err(format!("{PROGRAM}: xvsd sent {m}"), 2),
            }
        }
        Command::Restore => restore(&client, &names),
        c => match post(&client, vec![to_argv(&c)]) {
            Ok(_) => Outcome::out(String::new()),
            Err(e) => client_error(&client, e),
        },
    }
}

/// An unknown scheduler (`-A`/`-E -s NAME`) is a kernel error, and the
/// kernel looks the service up first: `-A` of an existing service answers
/// "Service already exists" and `-E` of a missing one "No such service",
/// whatever the scheduler. The parser refuses the name before any lookup, so
/// the lookup is made here, with the key parsed from the same line under a
/// known scheduler: `Some((key, adding))` for `-A`/`-E` lines.
fn sched_lookup(args: &[String], names: &dyn Names) -> Option<(ServiceKey, bool)> {
    let mut known = args.to_vec();
    let mut i = 0;
    while i < known.len() {
        let a = known[i].as_str();
        if a == "-s" || a == "--scheduler" {
            if let Some(v) = known.get_mut(i + 1) {
                *v = "wlc".into();
            }
            i += 1;
        } else if a.starts_with("--scheduler=") {
            known[i] = "--scheduler=wlc".into();
        } else if a.starts_with("-s") {
            known[i] = "-swlc".into();
        }
        i += 1;
    }
    match parse_args_as(PROGRAM, &known, names) {
        Ok(Command::AddService(c)) => Some((c.key, true)),
        Ok(Command::EditService(c)) => Some((c.key, false)),
        _ => None,
    }
}

/// What the kernel answers before looking at the scheduler, if anything.
fn lookup_error(adding: bool, exists: bool) -> Option<&'static str> {
    match (adding, exists) {
        (true, true) => Some("Service already exists"),
        (false, false) => Some("No such service"),
        _ => None,
    }
}

/// The keys of the services in xvsd's table.
fn service_keys(client: &Client) -> Result<HashSet<ServiceKey>, Outcome> {
    let doc: ServiceList = client
        .get("/v1/services")
        .map_err(|e| client_error(client, e))?;
    let snap = doc
        .to_snapshot()
        .map_err(|m| Outcome::err(format!("{PROGRAM}: xvsd sent {m}"), 2))?;
    Ok(snap.services.iter().map(|s| s.cfg.key).collect())
}

fn kernel_order(client: &Client, args: &[String], e: ParseError, names: &dyn Names) -> Outcome {
    let Some((key, adding)) = sched_lookup(args, names) else {
        return Outcome::err(e.message, e.exit_code);
    };
    let keys = match service_keys(client) {
        Ok(k) => k,
        Err(o) => return o,
    };
    match lookup_error(adding, keys.contains(&key)) {
        Some(m) => Outcome::err(m, 255),
        None => Outcome::err(e.message, e.exit_code),
    }
}

/// Removes every `flag` from `args`; true if there was one.
fn take_flag(args: &mut Vec<String>, flag: &str) -> bool {
    let before = args.len();
    args.retain(|a| a != flag);
    args.len() != before
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let o = run(args);
    use std::io::Write;
    let _ = std::io::stdout().write_all(o.stdout.as_bytes());
    let _ = std::io::stderr().write_all(o.stderr.as_bytes());
    ExitCode::from(o.code)
}
