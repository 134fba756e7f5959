//! xvsd: the xvs director daemon.
//!
//! ```text
//! xvsd -i IFACE[:xdp|:xdp-generic|:tc] [-i IFACE2] [-f RULES] [--socket PATH]
//!      [--name NAME] [--netns NETNS] [--http ADDR:PORT [--http-token-file FILE]]
//!      [--max-conns N] [--flow-cache N] [--sysctl NAME=VALUE] [--detach-on-exit]
//! xvsd --cleanup [--name NAME] [--netns NETNS]
//! ```
//!
//! See `xvsd --help` and the README.

mod api;
mod daemon;
mod log;
mod metrics;
mod run;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use xvs_core::persist::Sysctls;

/// How to attach to one interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// XDP in the driver for NICs, tc for veth-like devices.
    Auto,
    Xdp,
    XdpGeneric,
    Tc,
}

/// The command line.
#[derive(Clone, Debug)]
pub struct Args {
    pub ifaces: Vec<(String, AttachMode)>,
    pub config: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub name: String,
    pub netns: Option<String>,
    pub pin_dir: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub http: Option<SocketAddr>,
    pub http_token_file: Option<PathBuf>,
    pub max_conns: Option<u32>,
    pub flow_cache: Option<u32>,
    /// The IPVS sysctls (`--sysctl`), the kernel's defaults otherwise.
    pub sysctls: Sysctls,
    pub detach_on_exit: bool,
    pub cleanup: bool,
}

const USAGE: &str = "\
Usage: xvsd -i IFACE[:xdp|:xdp-generic|:tc] [-i IFACE ...] [options]
       xvsd --cleanup [--name NAME] [--netns NETNS]

The xvs director daemon: loads the eBPF datapath, attaches it to the given
interfaces, and serves the xvsadm API on a Unix socket.

Options:
  -i, --interface IFACE[:MODE]  attach to IFACE; MODE is xdp (native), xdp-generic
                                or tc; the default picks xdp for NICs, tc for
                                virtual devices (veth, bridges)
  -f, --config FILE             rules to load at start and on SIGHUP (ipvsadm -S
                                format); without it, the rules saved by the last run
  --socket PATH                 API socket (default /run/xvs/xvsd.sock, or
                                /run/xvs/NAME/xvsd.sock with --name)
  --name NAME                   instance name: one per director on a machine; it
                                selects the pin directory /sys/fs/bpf/xvs/NAME and
                                the state directory /run/xvs/NAME (default: default)
  --netns NETNS                 run in network namespace /run/netns/NETNS
  --pin-dir DIR                 pin directory (default /sys/fs/bpf/xvs/NAME)
  --state-dir DIR               state directory (default /run/xvs/NAME)
  --http ADDR:PORT              also serve the API over HTTP (off by default);
                                any address but loopback needs --http-token-file
  --http-token-file FILE        bearer token HTTP callers must present
  --max-conns N                 connection table size (default 10000000)
  --flow-cache N                established IPv4 flows cached per CPU in front of
                                the table, 32 bytes each (default 32768; 0: none)
  --sysctl NAME=VALUE           an IPVS sysctl, as net.ipv4.vs.NAME would set it in
                                the kernel: expire_nodest_conn, conn_reuse_mode,
                                expire_quiescent_template, sloppy_tcp, sloppy_sctp
                                (repeatable; kernel defaults otherwise)
  --detach-on-exit              on SIGTERM/SIGINT, detach from the interfaces and
                                remove the pinned state (default: leave the
                                datapath forwarding for the next xvsd to adopt)
  --cleanup                     detach and remove the pinned state of NAME, then exit
  -h, --help                    this text
  -V, --version                 the version
";

fn parse_args(argv: &[String]) -> Result<Option<Args>, String> {
    let mut a = Args {
        ifaces: Vec::new(),
        config: None,
        socket: None,
        name: "default".into(),
        netns: None,
        pin_dir: None,
        state_dir: None,
        http: None,
        http_token_file: None,
        max_conns: None,
        flow_cache: None,
        sysctls: Sysctls::default(),
        detach_on_exit: false,
        cleanup: false,
    };
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = |what: &str| -> Result<String, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("{flag} needs {what}")),
            }
        };
        match flag {
            "-h" | "--help" => return Ok(None),
            "-V" | "--version" => {
                println!("xvsd {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            "-i" | "--interface" => {
                let v = value("an interface name")?;
                let (name, mode) = match v.split_once(':') {
                    None => (v.as_str(), AttachMode::Auto),
                    Some((n, "xdp")) => (n, AttachMode::Xdp),
                    Some((n, "xdp-generic")) => (n, AttachMode::XdpGeneric),
                    Some((n, "tc")) => (n, AttachMode::Tc),
                    Some((_, m)) => {
                        return Err(format!(
                            "unknown attach mode '{m}' in '{v}' (xdp, xdp-generic or tc)"
                        ))
                    }
                };
                if name.is_empty() || name.len() > 15 {
                    return Err(format!("bad interface name '{name}'"));
                }
                a.ifaces.push((name.to_string(), mode));
            }
            "-f" | "--config" => a.config = Some(value("a file")?.into()),
            "--socket" => a.socket = Some(value("a path")?.into()),
            "--name" => {
                let n = value("a name")?;
                if n.is_empty()
                    || !n
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    return Err(format!(
                        "bad instance name '{n}' (letters, digits, '-' and '_')"
                    ));
                }
                a.name = n;
            }
            "--netns" => a.netns = Some(value("a network namespace name")?),
            "--pin-dir" => a.pin_dir = Some(value("a directory")?.into()),
            "--state-dir" => a.state_dir = Some(value("a directory")?.into()),
            "--http" => {
                let v = value("ADDR:PORT")?;
                a.http = Some(
                    v.parse()
                        .map_err(|_| format!("bad --http address '{v}' (want ADDR:PORT)"))?,
                );
            }
            "--http-token-file" => a.http_token_file = Some(value("a file")?.into()),
            "--max-conns" => {
                let v = value("a number")?;
                a.max_conns = Some(
                    v.parse()
                        .ok()
                        .filter(|&n: &u32| n > 0)
                        .ok_or_else(|| format!("bad --max-conns '{v}'"))?,
                );
            }
            "--flow-cache" => {
                let v = value("a number")?;
                a.flow_cache = Some(
                    v.parse()
                        .ok()
                        .filter(|&n: &u32| n <= 1 << 24)
                        .ok_or_else(|| format!("bad --flow-cache '{v}' (0 to 16777216)"))?,
                );
            }
            "--sysctl" => {
                let v = value("NAME=VALUE")?;
                let (name, val) = v
                    .split_once('=')
                    .ok_or_else(|| format!("bad --sysctl '{v}' (want NAME=VALUE)"))?;
                a.sysctls
                    .set(name.trim(), val)
                    .map_err(|e| format!("--sysctl {v}: {e}"))?;
            }
            "--detach-on-exit" => a.detach_on_exit = true,
            "--cleanup" => a.cleanup = true,
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    if let Some(addr) = a.http {
        if !addr.ip().is_loopback() && a.http_token_file.is_none() {
            return Err(format!(
                "--http {addr} is not a loopback address: give --http-token-file too"
            ));
        }
    }
    Ok(Some(a))
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&argv) {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("xvsd: {e}");
            eprintln!("Try 'xvsd --help' for more information.");
            return ExitCode::from(2);
        }
    };
    match run::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error(&e, &[]);
            eprintln!("xvsd: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Option<Args>, String> {
        parse_args(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn interfaces_and_modes() {
        let a = args("-i d0 -i d1:xdp --interface=d2:tc").unwrap().unwrap();
        assert_eq!(
            a.ifaces,
            vec![
                ("d0".into(), AttachMode::Auto),
                ("d1".into(), AttachMode::Xdp),
                ("d2".into(), AttachMode::Tc)
            ]
        );
    }

    #[test]
    fn bad_input_names_what_was_wrong() {
        assert_eq!(
            args("-i d0:fast").unwrap_err(),
            "unknown attach mode 'fast' in 'd0:fast' (xdp, xdp-generic or tc)"
        );
        assert_eq!(
            args("--name a/b").unwrap_err(),
            "bad instance name 'a/b' (letters, digits, '-' and '_')"
        );
        assert_eq!(args("-i").unwrap_err(), "-i needs an interface name");
        assert_eq!(args("--bogus").unwrap_err(), "unknown option '--bogus'");
        assert_eq!(
            args("--http 198.18.0.1:8080").unwrap_err(),
            "--http 198.18.0.1:8080 is not a loopback address: give --http-token-file too"
        );
        assert_eq!(args("--max-conns 0").unwrap_err(), "bad --max-conns '0'");
        assert_eq!(
            args("--flow-cache lots").unwrap_err(),
            "bad --flow-cache 'lots' (0 to 16777216)"
        );
        assert_eq!(args("--flow-cache 0").unwrap().unwrap().flow_cache, Some(0));
        assert_eq!(
            args("--sysctl expire_nodest_conn").unwrap_err(),
            "bad --sysctl 'expire_nodest_conn' (want NAME=VALUE)"
        );
        assert_eq!(
            args("--sysctl drop_entry=1").unwrap_err(),
            "--sysctl drop_entry=1: unknown IPVS sysctl 'drop_entry' (xvs has expire_nodest_conn, expire_quiescent_template, conn_reuse_mode, sloppy_tcp, sloppy_sctp)"
        );
        assert_eq!(
            args("--sysctl=sloppy_tcp=on").unwrap_err(),
            "--sysctl sloppy_tcp=on: bad value 'on' for sloppy_tcp (a non-negative integer)"
        );
    }

    #[test]
    fn sysctls() {
        let a = args("--sysctl expire_nodest_conn=1 --sysctl=net.ipv4.vs.conn_reuse_mode=0")
            .unwrap()
            .unwrap();
        assert_eq!(
            a.sysctls,
            Sysctls {
                expire_nodest_conn: true,
                conn_reuse_mode: 0,
                ..Sysctls::default()
            }
        );
        assert_eq!(args("-i d0").unwrap().unwrap().sysctls, Sysctls::default());
    }
}
