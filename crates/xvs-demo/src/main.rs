//! The xvs demo: the classic LVS labs, run the way the tutorials run them.
//!
//! It builds a client, a director and three real servers (each a web server
//! that answers with its name) in network namespaces, starts `xvsd` on the
//! director, configures a virtual service with `xvsadm`, sends requests from
//! the client and shows which real server answered each, then `xvsadm -Ln
//! --stats`. First in NAT mode, then in DR mode (`--mode` picks one). On exit,
//! Ctrl-C included, everything is torn down; a run that was killed is
//! cleaned up by the next one.
//!
//! ```text
//! xvs-demo [--mode nat|dr|both] [--requests N] [--keep]
//! ```

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xvs_testhost::{Mode, Topology};

/// Prefix of the demo's namespaces (stale ones are swept at start).
const PREFIX: &str = "xvs-demo";

struct Opts {
    modes: Vec<Mode>,
    requests: usize,
    keep: bool,
}

fn usage() -> ! {
    eprintln!("usage: xvs-demo [--mode nat|dr|both] [--requests N] [--keep]");
    std::process::exit(2)
}

fn parse() -> Opts {
    let mut o = Opts {
        modes: vec![Mode::Nat, Mode::Dr],
        requests: 12,
        keep: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--mode" => {
                o.modes = match it.next().as_deref() {
                    Some("nat") => vec![Mode::Nat],
                    Some("dr") => vec![Mode::Dr],
                    Some("both") => vec![Mode::Nat, Mode::Dr],
                    Some(m) => {
                        eprintln!("xvs-demo: unknown mode '{m}' (nat, dr or both)");
                        usage()
                    }
                    None => usage(),
                }
            }
            "--requests" => {
                o.requests = match it.next().and_then(|n| n.parse().ok()) {
                    Some(n) if n > 0 => n,
                    _ => {
                        eprintln!("xvs-demo: --requests needs a positive number");
                        usage()
                    }
                }
            }
            "--keep" => o.keep = true,
            "-h" | "--help" => {
                println!("usage: xvs-demo [--mode nat|dr|both] [--requests N] [--keep]");
                println!("  --mode     which lab to run (default: both, NAT then DR)");
                println!("  --requests requests to send from the client (default 12)");
                println!("  --keep     leave the lab running for exploration until Ctrl-C");
                std::process::exit(0)
            }
            _ => {
                eprintln!("xvs-demo: unknown argument '{a}'");
                usage()
            }
        }
    }
    o
}

/// The xvsd and xvsadm binaries, beside this one.
fn sibling(name: &str) -> PathBuf {
    let me = std::env::current_exe().expect("own path");
    let p = me.with_file_name(name);
    if !p.exists() {
        eprintln!(
            "xvs-demo: {} is missing; build it with `cargo build --release -p xvsd -p xvsadm`",
            p.display()
        );
        std::process::exit(1);
    }
    p
}

/// A running xvsd; stopped (SIGTERM, it detaches and cleans up) on drop.
struct Xvsd {
    child: Child,
    socket: PathBuf,
}

impl Drop for Xvsd {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc_kill(self.child.id() as i32, 15) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

const XVSD_NAME: &str = "demo";

fn state_dir() -> PathBuf {
    PathBuf::from(format!("/run/xvs/{XVSD_NAME}"))
}

/// Removes what a killed run may have left: xvsd's pinned state and socket.
fn clean_leftovers(xvsd: &Path) {
    let _ = Command::new(xvsd)
        .args(["--cleanup", "--name", XVSD_NAME])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn start_xvsd(xvsd: &Path, topo: &Topology, ifaces: &[&str]) -> Xvsd {
    let socket = state_dir().join("xvsd.sock");
    let log = std::fs::File::create("/tmp/xvs-demo-xvsd.log").expect("xvsd log file");
    let mut cmd = Command::new(xvsd);
    cmd.args([
        "--netns",
        topo.director().name(),
        "--name",
        XVSD_NAME,
        "--max-conns",
        "1000000",
        "--detach-on-exit",
    ]);
    for i in ifaces {
        cmd.args(["-i", i]);
    }
    show(&format!(
        "xvsd -i {} --detach-on-exit &     (in the director's namespace)",
        ifaces.join(" -i ")
    ));
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("start xvsd");
    let x = Xvsd { child, socket };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !x.socket.exists() {
        if Instant::now() > deadline {
            eprintln!("xvs-demo: xvsd did not start; its log is /tmp/xvs-demo-xvsd.log:");
            eprintln!(
                "{}",
                std::fs::read_to_string("/tmp/xvs-demo-xvsd.log").unwrap_or_default()
            );
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    x
}

fn show(cmdline: &str) {
    if std::io::stdout().is_terminal() {
        println!("\x1b[1m# {cmdline}\x1b[0m");
    } else {
        println!("# {cmdline}");
    }
}

/// Runs `xvsadm args`, printing the command and what it printed.
fn xvsadm(bin: &Path, x: &Xvsd, args: &str) {
    show(&format!("xvsadm {args}"));
    let out = Command::new(bin)
        .args(args.split_whitespace())
        .env("XVS_SOCKET", &x.socket)
        .output()
        .expect("run xvsadm");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        eprintln!("xvs-demo: xvsadm {args} failed ({})", out.status);
        std::process::exit(1);
    }
}

fn lab(mode: Mode, o: &Opts, stop: &AtomicBool) -> Result<(), String> {
    let xvsd_bin = sibling("xvsd");
    let xvsadm_bin = sibling("xvsadm");
    // A killed run left namespaces (with its xvsd inside) and pinned state:
    // the namespaces go first, which stops that xvsd, then its state.
    xvs_testhost::sweep_stale(PREFIX).map_err(|e| format!("sweeping old labs: {e}"))?;
    clean_leftovers(&xvsd_bin);
    let topo = Topology::builder(mode)
        .servers(3)
        .prefix(PREFIX)
        .build()
        .map_err(|e| format!("building the lab: {e}"))?;
    let _web = topo
        .start_web_servers(80)
        .map_err(|e| format!("starting the web servers: {e}"))?;
    let vip = topo.vip();
    let plan = topo.plan();
    let servers: Vec<String> = plan.server_addrs().iter().map(|a| a.to_string()).collect();
    println!();
    match mode {
        Mode::Nat => {
            println!("==== LVS-NAT: the director rewrites addresses both ways; it is the real servers' gateway");
            println!("  client 198.18.0.2 -- [d0 VIP {vip}] director [d1 198.18.1.1] -- rs0 {}, rs1 {}, rs2 {}", servers[0], servers[1], servers[2]);
        }
        _ => {
            println!("==== LVS-DR: the director rewrites only the MAC; real servers hold the VIP on lo and answer the client directly");
            println!("  one LAN: client, director [d0, VIP {vip}], rs0 {}, rs1 {}, rs2 {} (arp_ignore=1, arp_announce=2)", servers[0], servers[1], servers[2]);
        }
    }
    println!();
    let ifaces: Vec<&str> = if mode == Mode::Nat {
        vec!["d0", "d1"]
    } else {
        vec!["d0"]
    };
    let x = start_xvsd(&xvsd_bin, &topo, &ifaces);
    let fwd = if mode == Mode::Nat { "-m" } else { "-g" };
    xvsadm(&xvsadm_bin, &x, &format!("-A -t {vip}:80 -s wrr"));
    xvsadm(
        &xvsadm_bin,
        &x,
        &format!("-a -t {vip}:80 -r {}:80 {fwd} -w 2", servers[0]),
    );
    for s in &servers[1..] {
        xvsadm(
            &xvsadm_bin,
            &x,
            &format!("-a -t {vip}:80 -r {s}:80 {fwd} -w 1"),
        );
    }
    xvsadm(&xvsadm_bin, &x, "-Ln");
    println!();
    show(&format!(
        "for i in $(seq {}); do curl -s http://{vip}/; done     (from the client)",
        o.requests
    ));
    let mut tally: BTreeMap<String, usize> = BTreeMap::new();
    for i in 1..=o.requests {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let who = topo
            .curl_from_client(&format!("http://{vip}/"))
            .map_err(|e| format!("request {i}: {e}"))?;
        let who = who.trim().to_string();
        println!("  request {i:>3} answered by {who}");
        *tally.entry(who).or_default() += 1;
    }
    println!(
        "  split: {}   (weights 2:1:1)",
        tally
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!();
    xvsadm(&xvsadm_bin, &x, "-Ln --stats");
    if mode == Mode::Dr {
        println!("  (in DR the director sees only the client's packets: OutPkts stay 0, the replies went straight to the client)");
    }
    xvsadm(&xvsadm_bin, &x, "-Lnc");
    if o.keep {
        println!();
        println!("The lab is running. Try, in another terminal:");
        println!(
            "  XVS_SOCKET={} {} -Ln --stats",
            x.socket.display(),
            xvsadm_bin.display()
        );
        println!(
            "  ip netns exec {} curl -s http://{vip}/",
            topo.client().name()
        );
        println!(
            "  XVS_SOCKET={} {} --top",
            x.socket.display(),
            xvsadm_bin.display()
        );
        println!("Press Ctrl-C to tear it down.");
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    drop(x);
    println!("  (lab torn down)");
    Ok(())
}

fn main() {
    let o = parse();
    if xvs_testhost::require_root().is_err() {
        eprintln!("xvs-demo: needs root (network namespaces, BPF)");
        std::process::exit(1);
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).expect("signal handler");
    }
    for mode in o.modes.clone() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if let Err(e) = lab(mode, &o, &stop) {
            eprintln!("xvs-demo: {e}");
            std::process::exit(1);
        }
    }
    if stop.load(Ordering::Relaxed) {
        println!("interrupted: everything torn down");
    }
}
