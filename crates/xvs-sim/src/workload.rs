//! The workload file: ipvsadm commands for the rules, a client population, a
//! connection arrival rate and lifetime, and timed rule changes.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use xvs_core::ipvsadm::parse::parse_args;
use xvs_core::ipvsadm::{Command, NumericOnly};
use xvs_core::model::Protocol;

/// How long connections live.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Lifetime {
    /// Exponentially distributed with this mean, seconds.
    Exponential(f64),
    /// Exactly this long, seconds.
    Fixed(f64),
}

/// A rule change at a point in simulated time.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub at_secs: f64,
    pub line: String,
    pub cmd: Command,
}

/// A parsed workload.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    pub rules: Vec<Command>,
    pub changes: Vec<Change>,
    /// Distinct client addresses.
    pub clients: u32,
    /// First client address; clients count up from it.
    pub client_base: Ipv4Addr,
    /// New connections per second.
    pub rate: f64,
    pub lifetime: Lifetime,
    /// Simulated seconds.
    pub duration: f64,
    pub seed: u64,
    /// Probe flows used to measure how many flows a change moves.
    pub probes: u32,
    /// Protocol of generated traffic (tcp or udp).
    pub protocol: Protocol,
    /// Where clients connect; defaults to the first service's address and port.
    pub target: Option<(IpAddr, u16)>,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            rules: Vec::new(),
            changes: Vec::new(),
            clients: 1000,
            client_base: Ipv4Addr::new(198, 19, 0, 1),
            rate: 100.0,
            lifetime: Lifetime::Exponential(10.0),
            duration: 60.0,
            seed: 1,
            probes: 10_000,
            protocol: Protocol::Tcp,
            target: None,
        }
    }
}

/// A workload line that could not be understood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for WorkloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for WorkloadError {}

fn number<T: std::str::FromStr>(word: Option<&str>, what: &str) -> Result<T, String> {
    let w = word.ok_or_else(|| format!("'{what}' needs a value"))?;
    w.parse()
        .map_err(|_| format!("'{what}': '{w}' is not a valid number"))
}

fn ipvsadm(words: &[&str]) -> Result<Command, String> {
    if words.first() != Some(&"ipvsadm") && words.first() != Some(&"xvsadm") {
        return Err("expected an ipvsadm command".into());
    }
    let cmd = parse_args(&words[1..], &NumericOnly).map_err(|e| e.to_string())?;
    match cmd {
        Command::List(_)
        | Command::Save { .. }
        | Command::Restore
        | Command::Help
        | Command::Version => {
            Err("only commands that change the rules belong in a workload".into())
        }
        c => Ok(c),
    }
}

/// Parses a workload file.
pub fn parse(text: &str) -> Result<Workload, WorkloadError> {
    let mut w = Workload::default();
    let mut probes_set = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let err = |message: String| WorkloadError {
            line: i + 1,
            message,
        };
        let mut rest = words[1..].iter().copied();
        match words[0] {
            "ipvsadm" | "xvsadm" => w.rules.push(ipvsadm(&words).map_err(err)?),
            "at" => {
                let at_secs: f64 = number(rest.next(), "at").map_err(err)?;
                let cmd_words = &words[2..];
                let cmd = ipvsadm(cmd_words).map_err(err)?;
                w.changes.push(Change {
                    at_secs,
                    line: cmd_words.join(" "),
                    cmd,
                });
            }
            "clients" => w.clients = number(rest.next(), "clients").map_err(err)?,
            "client-base" => {
                w.client_base = number(rest.next(), "client-base").map_err(err)?;
            }
            "rate" => w.rate = number(rest.next(), "rate").map_err(err)?,
            "lifetime" => {
                w.lifetime = match rest.next() {
                    Some("fixed") => {
                        Lifetime::Fixed(number(rest.next(), "lifetime fixed").map_err(err)?)
                    }
                    Some("exp") => {
                        Lifetime::Exponential(number(rest.next(), "lifetime exp").map_err(err)?)
                    }
                    other => Lifetime::Exponential(number(other, "lifetime").map_err(err)?),
                }
            }
            "duration" => w.duration = number(rest.next(), "duration").map_err(err)?,
            "seed" => w.seed = number(rest.next(), "seed").map_err(err)?,
            "probes" => {
                w.probes = number(rest.next(), "probes").map_err(err)?;
                probes_set = true;
            }
            "protocol" => {
                w.protocol = match rest.next() {
                    Some("tcp") => Protocol::Tcp,
                    Some("udp") => Protocol::Udp,
                    other => {
                        return Err(err(format!("protocol must be tcp or udp, not {other:?}")))
                    }
                }
            }
            "target" => {
                let t = rest
                    .next()
                    .ok_or_else(|| err("'target' needs ADDR:PORT".into()))?;
                let (a, p) = t
                    .rsplit_once(':')
                    .ok_or_else(|| err(format!("target '{t}' is not ADDR:PORT")))?;
                let addr = a
                    .trim_matches(|c| c == '[' || c == ']')
                    .parse()
                    .map_err(|_| err(format!("target address '{a}' is not an IP address")))?;
                let port = p
                    .parse()
                    .map_err(|_| err(format!("target port '{p}' is not a port number")))?;
                w.target = Some((addr, port));
            }
            other => return Err(err(format!("unknown directive '{other}'"))),
        }
        if let Some(extra) = rest.next() {
            if !matches!(words[0], "ipvsadm" | "xvsadm" | "at") {
                return Err(err(format!("unexpected '{extra}' after '{}'", words[0])));
            }
        }
    }
    if w.rate <= 0.0 || !w.rate.is_finite() {
        return Err(WorkloadError {
            line: 0,
            message: "rate must be a positive number".into(),
        });
    }
    if w.clients == 0 {
        return Err(WorkloadError {
            line: 0,
            message: "clients must be at least 1".into(),
        });
    }
    if !probes_set {
        w.probes = w.probes.min(w.clients.saturating_mul(4)).max(1);
    }
    w.changes.sort_by(|a, b| a.at_secs.total_cmp(&b.at_secs));
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_workload() {
        let w = parse(
            "# comment\n\
             ipvsadm -A -t 198.18.0.1:80 -s wrr\n\
             ipvsadm -a -t 198.18.0.1:80 -r 198.18.1.1:80 -m -w 2\n\
             clients 500\n\
             rate 250   # per second\n\
             lifetime fixed 5\n\
             duration 30\n\
             seed 7\n\
             at 20 ipvsadm -d -t 198.18.0.1:80 -r 198.18.1.1:80\n\
             at 10 ipvsadm -e -t 198.18.0.1:80 -r 198.18.1.1:80 -m -w 0\n",
        )
        .unwrap();
        assert_eq!(w.rules.len(), 2);
        assert_eq!(
            (w.clients, w.rate, w.duration, w.seed),
            (500, 250.0, 30.0, 7)
        );
        assert_eq!(w.lifetime, Lifetime::Fixed(5.0));
        let at: Vec<f64> = w.changes.iter().map(|c| c.at_secs).collect();
        assert_eq!(at, vec![10.0, 20.0], "changes are sorted by time");
        assert_eq!(w.probes, 2000);
    }

    #[test]
    fn bad_lines_name_the_line_and_the_problem() {
        let e = parse("clients 10\nrate fast\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2: 'rate': 'fast' is not a valid number"
        );
        let e = parse("ipvsadm -A -t 198.18.0.1:0 -s rr\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert_eq!(e.message, "Zero port specified for non-persistent service");
        let e = parse("frobnicate 3\n").unwrap_err();
        assert_eq!(e.to_string(), "line 1: unknown directive 'frobnicate'");
        let e = parse("ipvsadm -L -n\n").unwrap_err();
        assert_eq!(
            e.message,
            "only commands that change the rules belong in a workload"
        );
        let e = parse("duration 3 4\n").unwrap_err();
        assert_eq!(e.message, "unexpected '4' after 'duration'");
    }
}
