//! xvsadm without a running xvsd: help and version need no daemon, bad
//! command lines are refused before any connection, and everything else says
//! in one line that xvsd is not running and how to start it. (The tests with
//! a daemon are in crates/xvsd/tests/xvsadm_cli.rs.)

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

struct Out {
    stdout: String,
    stderr: String,
    code: i32,
}

fn xvsadm(socket: &Path, args: &[&str], stdin: &str) -> Out {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xvsadm"))
        .args(args)
        .env("XVS_SOCKET", socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting xvsadm");
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes());
    let o = child.wait_with_output().expect("xvsadm");
    Out {
        stdout: String::from_utf8(o.stdout).unwrap(),
        stderr: String::from_utf8(o.stderr).unwrap(),
        code: o.status.code().expect("exit code"),
    }
}

/// A directory of this test's own, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("xvt-adm-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const VERSION: &str = "xvsadm v1.31 2019/12/24 (compiled with xvs-core 0.1.0 and IPVS v1.2.1)\n";

#[test]
fn help_and_version_need_no_daemon() {
    let none = Path::new("/nonexistent/xvsd.sock");
    for args in [&["-v"][..], &["--version"]] {
        let o = xvsadm(none, args, "");
        assert_eq!(
            (o.code, o.stdout.as_str(), o.stderr.as_str()),
            (0, VERSION, "")
        );
    }
    let h = xvsadm(none, &["-h"], "");
    assert_eq!((h.code, h.stderr.as_str()), (0, ""));
    assert!(h.stdout.starts_with(VERSION), "{}", h.stdout);
    for want in [
        "\nUsage:\n",
        "  xvsadm -A|E virtual-service [-s scheduler] [-p [timeout]] [-M netmask] [--pe persistence_engine] [-b sched-flags]\n",
        "  xvsadm -D virtual-service\n",
        "  xvsadm -C\n",
        "  --mcast-ttl ttl                     multicast TTL (default 1)\n",
    ] {
        assert!(h.stdout.contains(want), "no {want:?} in\n{}", h.stdout);
    }
    assert!(h.stdout.ends_with("multicast TTL (default 1)\n"));
    let h2 = xvsadm(none, &["--help"], "");
    assert_eq!(h2.stdout, h.stdout);
}

#[test]
fn bad_command_lines_are_refused_before_connecting() {
    let none = Path::new("/nonexistent/xvsd.sock");
    let try_help = "Try `xvsadm -h' or 'xvsadm --help' for more information.\n";
    for (args, code, stderr) in [
        (&["-Q"][..], 255, try_help),
        (
            &["-A", "-t", "198.18.0.1:0"],
            2,
            "Zero port specified for non-persistent service\n",
        ),
        (
            &[
                "-a",
                "-t",
                "198.18.0.1:80",
                "-r",
                "198.18.1.1",
                "-w",
                "70000",
            ],
            2,
            "illegal weight specified\n",
        ),
        (
            &["-S", "--json"],
            2,
            "xvsadm: --json goes with the list commands (-L, -l)\n",
        ),
    ] {
        let o = xvsadm(none, args, "");
        assert_eq!(
            (o.code, o.stderr.as_str(), o.stdout.as_str()),
            (code, stderr, ""),
            "xvsadm {args:?}"
        );
    }
}

#[test]
fn says_when_xvsd_is_not_running() {
    // No socket file at all.
    let dir = TempDir::new("missing");
    let sock = dir.0.join("xvsd.sock");
    let line = format!(
        "xvsadm: xvsd is not running (cannot connect to {}: No such file or directory (os error 2)); \
         start it with `xvsd -i IFACE`, or set XVS_SOCKET to its socket\n",
        sock.display()
    );
    for args in [
        &["-L", "-n"][..],
        &["-S"],
        &["-A", "-t", "198.18.0.1:80"],
        &["-C"],
        &["-L", "--timeout"],
        &["-L", "-c"],
        &["-L", "--daemon"],
        &["-L", "--json"],
        &["--set", "1", "2", "3"],
    ] {
        let o = xvsadm(&sock, args, "");
        assert_eq!(
            (o.code, o.stderr.as_str(), o.stdout.as_str()),
            (2, line.as_str(), ""),
            "xvsadm {args:?}"
        );
    }
    let o = xvsadm(&sock, &["-R"], "-A -t 198.18.0.1:80 -s rr\n");
    assert_eq!((o.code, o.stderr.as_str()), (2, line.as_str()));
    let o = xvsadm(&sock, &["--top", "--iterations", "1"], "");
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("xvsd is not running"), "{}", o.stderr);
    assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);

    // A socket file nobody listens on (xvsd was killed).
    let dir = TempDir::new("stale");
    let sock = dir.0.join("xvsd.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let o = xvsadm(&sock, &["-L", "-n"], "");
    assert_eq!(o.code, 2);
    assert_eq!(
        o.stderr,
        format!(
            "xvsadm: xvsd is not running (cannot connect to {}: Connection refused (os error 111)); \
             start it with `xvsd -i IFACE`, or set XVS_SOCKET to its socket\n",
            sock.display()
        )
    );
}
