//! An xvsd of its own for each test: a fresh network namespace, a temporary
//! directory for the socket and state, and xvsadm pointed at it. Dropping
//! the guard (also on panic) stops xvsd and deletes the namespace and the
//! directory.

#![allow(dead_code)]

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// What one xvsadm run printed and returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Out {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

impl Out {
    /// Asserts a clean success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert!(
            self.code == 0 && self.stderr.is_empty(),
            "expected success, got exit {} with stderr:\n{}\nstdout:\n{}",
            self.code,
            self.stderr,
            self.stdout
        );
        &self.stdout
    }
}

/// Fails loudly unless running as root: these tests need network
/// namespaces and BPF.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    assert_eq!(
        uid, 0,
        "the xvsd/xvsadm end-to-end tests need root (network namespaces, BPF); run them as root"
    );
}

/// The xvsadm binary, built next to xvsd.
pub fn xvsadm_bin() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_xvsd")).with_file_name("xvsadm");
    assert!(
        p.exists(),
        "xvsadm is not built at {} (build it with `cargo build -p xvsadm` using the same profile, \
         or run `cargo test --workspace`)",
        p.display()
    );
    p
}

/// Runs xvsadm with `args`, `stdin` as its input, talking to `socket`.
pub fn run_adm(socket: &Path, args: &[&str], stdin: &str) -> Out {
    let mut child = Command::new(xvsadm_bin())
        .args(args)
        .env("XVS_SOCKET", socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting xvsadm");
    {
        let mut input = child.stdin.take().expect("xvsadm stdin");
        // xvsadm may exit without reading (an argument error): ignore EPIPE.
        let _ = input.write_all(stdin.as_bytes());
    }
    let o = child.wait_with_output().expect("waiting for xvsadm");
    Out {
        stdout: String::from_utf8(o.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(o.stderr).expect("stderr is UTF-8"),
        code: o.status.code().expect("xvsadm exited by a signal"),
    }
}

/// One xvsd in its own namespace.
pub struct Xvsd {
    pub netns: String,
    pub dir: PathBuf,
    pub socket: PathBuf,
    child: Option<Child>,
    extra: Vec<String>,
    /// Whether the namespace is this guard's (created and deleted by it).
    own_netns: bool,
}

impl Xvsd {
    /// Starts xvsd and waits until its socket answers.
    pub fn start(test: &str) -> Xvsd {
        Xvsd::start_with(test, &[])
    }

    /// [`Xvsd::start`] with more xvsd arguments.
    pub fn start_with(test: &str, extra: &[&str]) -> Xvsd {
        require_root();
        let adm = xvsadm_bin();
        assert!(adm.exists());
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("xvt-cli-{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the test directory");
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("running ip netns add");
        assert!(st.success(), "ip netns add {name} failed");
        Xvsd::spawned(test, &name, dir, extra, true)
    }

    /// [`Xvsd::start_with`] in an existing namespace (a lab's director),
    /// which the guard leaves in place.
    pub fn start_in(test: &str, netns: &str, extra: &[&str]) -> Xvsd {
        require_root();
        xvsadm_bin();
        let dir = std::env::temp_dir().join(format!("xvt-in-{netns}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the test directory");
        Xvsd::spawned(test, netns, dir, extra, false)
    }

    fn spawned(test: &str, netns: &str, dir: PathBuf, extra: &[&str], own_netns: bool) -> Xvsd {
        let mut guard = Xvsd {
            netns: netns.to_string(),
            socket: dir.join("xvsd.sock"),
            dir,
            child: None,
            extra: extra.iter().map(|a| a.to_string()).collect(),
            own_netns,
        };
        guard.spawn(test);
        guard
    }

    /// Starts xvsd (again) on this namespace, socket and state directory,
    /// and waits until its socket answers.
    pub fn spawn(&mut self, test: &str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("xvsd.log"))
            .expect("opening the log");
        let child = Command::new(env!("CARGO_BIN_EXE_xvsd"))
            .args(["--netns", &self.netns, "--name", &self.netns])
            .args(["--max-conns", "65536"])
            .arg("--socket")
            .arg(&self.socket)
            .arg("--state-dir")
            .arg(self.dir.join("state"))
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting xvsd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if UnixStream::connect(&self.socket).is_ok() {
                break;
            }
            if let Some(st) = self
                .child
                .as_mut()
                .unwrap()
                .try_wait()
                .expect("xvsd status")
            {
                panic!(
                    "[{test}] xvsd exited ({st}) before serving its socket; its log:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "[{test}] xvsd did not serve {} within 120 s; its log:\n{}",
                self.socket.display(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops xvsd (SIGTERM; SIGKILL after 10 s) and returns how it exited.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match c.try_wait() {
                Ok(Some(st)) => return Some(st),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = c.kill();
                    let _ = c.wait();
                    return None;
                }
            }
        }
    }

    /// Stops xvsd and starts a new one with the same state directory.
    pub fn restart(&mut self, test: &str) {
        let st = self.stop();
        assert!(
            st.is_some_and(|s| s.success()),
            "[{test}] xvsd did not stop cleanly on SIGTERM ({st:?}); its log:\n{}",
            self.log()
        );
        self.spawn(test);
    }

    /// xvsd's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("xvsd is running").id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("xvsd.log")).unwrap_or_default()
    }

    /// `xvsadm ARGS`.
    pub fn adm(&self, args: &[&str]) -> Out {
        run_adm(&self.socket, args, "")
    }

    /// `xvsadm ARGS < stdin`.
    pub fn adm_in(&self, args: &[&str], stdin: &str) -> Out {
        run_adm(&self.socket, args, stdin)
    }

    /// `xvsadm ARGS` must succeed; its stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.adm(args);
        assert!(
            o.code == 0 && o.stderr.is_empty(),
            "xvsadm {} failed: exit {}, stderr:\n{}",
            args.join(" "),
            o.code,
            o.stderr
        );
        o.stdout
    }

    /// Runs each line (split on whitespace) as an xvsadm command that must succeed.
    #[track_caller]
    pub fn setup(&self, lines: &str) {
        for l in lines.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let args: Vec<&str> = l.split_whitespace().collect();
            self.ok(&args);
        }
    }

    /// `xvsadm -S -n`.
    #[track_caller]
    pub fn save(&self) -> String {
        self.ok(&["-S", "-n"])
    }
}

impl Drop for Xvsd {
    fn drop(&mut self) {
        self.stop();
        // A stopped xvsd leaves its datapath pinned for the next one: remove it.
        let _ = Command::new(env!("CARGO_BIN_EXE_xvsd"))
            .args(["--cleanup", "--name", &self.netns, "--netns", &self.netns])
            .arg("--socket")
            .arg(&self.socket)
            .arg("--state-dir")
            .arg(self.dir.join("state"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if self.own_netns {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.netns])
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Lines joined with newlines, each ending in one (trailing spaces kept).
pub fn lines(ls: &[&str]) -> String {
    let mut s = String::new();
    for l in ls {
        s.push_str(l);
        s.push('\n');
    }
    s
}

/// The first name /etc/services gives `port`/`proto`, as xvsadm prints it
/// (xvsadm reads the file, no resolver; netbase may not be installed).
pub fn service_name(port: u16, proto: &str) -> Option<String> {
    let text = std::fs::read_to_string("/etc/services").ok()?;
    let want = format!("{port}/{proto}");
    text.lines().find_map(|l| {
        let l = l.split('#').next().unwrap_or("");
        let mut f = l.split_whitespace();
        let name = f.next()?;
        (f.next() == Some(want.as_str())).then(|| name.to_string())
    })
}
