//! Restarting (or upgrading) xvsd drops nothing: wrk runs through the
//! director while xvsd is stopped and started again, and not one request
//! fails. The new xvsd adopts the pinned datapath and the saved rules, and
//! its counters carry on from the old one's.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use xvs_testhost::{wrk, Mode, Topology, WrkOptions};

const XVSD: &str = env!("CARGO_BIN_EXE_xvsd");

fn xvsadm_bin() -> PathBuf {
    let p = Path::new(XVSD).with_file_name("xvsadm");
    assert!(
        p.exists(),
        "{} is missing: build it first (cargo build --release -p xvsadm)",
        p.display()
    );
    p
}

struct Daemon {
    child: Child,
}

impl Daemon {
    fn start(name: &str, netns: &str, state: &Path, ifaces: &[&str]) -> Daemon {
        let socket = state.join("xvsd.sock");
        let _ = std::fs::remove_file(&socket);
        let mut cmd = Command::new(XVSD);
        cmd.args(["--netns", netns, "--name", name, "--max-conns", "262144"])
            .arg("--state-dir")
            .arg(state)
            .arg("--socket")
            .arg(&socket);
        for i in ifaces {
            cmd.args(["-i", i]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start xvsd");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "xvsd did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        Daemon { child }
    }

    /// SIGTERM and wait: xvsd exits leaving the datapath forwarding.
    fn stop(mut self) {
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { kill(self.child.id() as i32, 15) }, 0);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "xvsd exited with {status}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Removes the instance's pinned state when the test ends, also on panic.
struct Cleanup {
    name: String,
    netns: String,
    state: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let out = Command::new(XVSD)
            .args(["--cleanup", "--name", &self.name, "--netns", &self.netns])
            .arg("--state-dir")
            .arg(&self.state)
            .output()
            .expect("xvsd --cleanup");
        if !std::thread::panicking() {
            assert!(
                out.status.success(),
                "xvsd --cleanup: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
    fn geteuid() -> u32;
}

fn xvsadm(state: &Path, args: &str) -> String {
    let out = Command::new(xvsadm_bin())
        .args(args.split_whitespace())
        .env("XVS_SOCKET", state.join("xvsd.sock"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "xvsadm {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The Conns column of the service line of `-Ln --stats --exact`.
fn service_conns(stats: &str) -> u64 {
    let line = stats
        .lines()
        .find(|l| l.starts_with("TCP "))
        .expect("a service line");
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

fn restart_under_load(mode: Mode, close: bool) {
    // SAFETY: no preconditions.
    assert_eq!(
        unsafe { geteuid() },
        0,
        "this test needs root; run it as root"
    );
    let topo = Topology::builder(mode)
        .prefix("xvt-restart")
        .servers(2)
        .build()
        .expect("lab");
    let _web = topo.start_web_servers(80).expect("web servers");
    let name = format!(
        "restart-{}-{}-{}",
        mode.name(),
        close as u8,
        std::process::id()
    );
    let state = tempfile::tempdir().unwrap();
    let ifaces: &[&str] = if mode == Mode::Nat {
        &["d0", "d1"]
    } else {
        &["d0"]
    };
    let _cleanup = Cleanup {
        name: name.clone(),
        netns: topo.director().name().to_string(),
        state: state.path().to_path_buf(),
    };
    let d = Daemon::start(&name, topo.director().name(), state.path(), ifaces);
    let vip = topo.vip();
    let fwd = if mode == Mode::Nat { "-m" } else { "-g" };
    xvsadm(state.path(), &format!("-A -t {vip}:80 -s rr"));
    for s in topo.plan().server_addrs() {
        xvsadm(state.path(), &format!("-a -t {vip}:80 -r {s}:80 {fwd}"));
    }
    let before = xvsadm(state.path(), "-S -n");

    let mut opts = WrkOptions::new(&format!("http://{vip}/"));
    opts.duration = Duration::from_secs(8);
    opts.connections = 8;
    opts.close = close;
    let (r, conns_before, d) = std::thread::scope(|scope| {
        let load = scope.spawn(|| wrk(topo.client(), &opts));
        std::thread::sleep(Duration::from_secs(2));
        let conns_before = service_conns(&xvsadm(state.path(), "-Ln --stats --exact"));
        d.stop();
        // The datapath forwards on its own while no xvsd runs.
        std::thread::sleep(Duration::from_secs(1));
        let d = Daemon::start(&name, topo.director().name(), state.path(), ifaces);
        assert_eq!(xvsadm(state.path(), "-S -n"), before, "the rules came back");
        let r = load.join().unwrap().expect("wrk");
        (r, conns_before, d)
    });
    println!("{mode} close={close}: {r:?}");
    assert!(r.requests > 100, "wrk ran: {r:?}");
    assert_eq!(r.socket_errors, 0, "{r:?}");
    assert_eq!(r.non_2xx, 0, "{r:?}");
    let conns_after = service_conns(&xvsadm(state.path(), "-Ln --stats --exact"));
    if close {
        // New connections all along: the count went on growing from where
        // it was (a reset would have restarted it near 0).
        assert!(
            conns_after > conns_before,
            "counters carried on: {conns_before} before the restart, {conns_after} after"
        );
    } else {
        // The same keep-alive connections throughout: nothing new, nothing lost.
        assert_eq!(conns_after, conns_before, "counters carried on");
    }
    d.stop();
    assert!(
        Path::new(&format!("/sys/fs/bpf/xvs/{name}")).exists(),
        "a stopped xvsd leaves its datapath pinned for the next one"
    );
}

#[test]
fn nat_keepalive_survives_restart() {
    restart_under_load(Mode::Nat, false);
}

#[test]
fn dr_new_connections_survive_restart() {
    restart_under_load(Mode::Dr, true);
}
