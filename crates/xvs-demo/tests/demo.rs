//! The demo, run non-interactively as the README's first command runs it:
//! both labs, the 2:1:1 split visible, nothing left behind; Ctrl-C in the
//! middle tears down; a killed run is cleaned up by the next.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DEMO: &str = env!("CARGO_BIN_EXE_xvs-demo");

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc_geteuid() },
        0,
        "the demo tests need root (network namespaces, BPF); run them as root"
    );
    let dir = std::path::Path::new(DEMO).parent().unwrap();
    for b in ["xvsd", "xvsadm"] {
        assert!(
            dir.join(b).exists(),
            "{} is missing: build it first (cargo build --release -p xvsd -p xvsadm)",
            dir.join(b).display()
        );
    }
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

fn demo_namespaces() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("xvs-demo-"))
        .map(String::from)
        .collect()
}

/// The demo tests share the instance name `demo` and its namespaces prefix:
/// run them one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn demo_runs_both_labs_and_leaves_nothing_behind() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    require_root();
    let out = Command::new(DEMO)
        .args(["--requests", "8"])
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    // wrr 2:1:1 over 8 requests, in both labs.
    assert_eq!(
        stdout
            .matches("split: rs0 4, rs1 2, rs2 2   (weights 2:1:1)")
            .count(),
        2,
        "{stdout}"
    );
    assert!(stdout.contains("==== LVS-NAT"), "{stdout}");
    assert!(stdout.contains("==== LVS-DR"), "{stdout}");
    // -Ln --stats after 8 connections: the service counted 8.
    assert!(
        stdout.contains("TCP  198.18.0.100:80                     8"),
        "{stdout}"
    );
    assert!(demo_namespaces().is_empty(), "{:?}", demo_namespaces());
    assert!(!std::path::Path::new("/run/xvs/demo").exists());
}

/// Starts the demo with --keep and waits until the lab is up.
fn start_kept() -> std::process::Child {
    let mut child = Command::new(DEMO)
        .args(["--mode", "nat", "--requests", "3", "--keep"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the demo");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "the lab never came up");
        match lines.next() {
            Some(Ok(l)) if l.starts_with("Press Ctrl-C") => break,
            Some(Ok(_)) => continue,
            other => panic!("demo output ended early: {other:?}"),
        }
    }
    // Keep draining its output so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    child
}

#[test]
fn ctrl_c_tears_down_and_a_killed_run_is_cleaned_by_the_next() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    require_root();
    // Ctrl-C (SIGINT to the demo) while the lab is kept running.
    let mut child = start_kept();
    assert!(!demo_namespaces().is_empty());
    let rc = unsafe { libc_kill(child.id() as i32, 2) };
    assert_eq!(rc, 0);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(demo_namespaces().is_empty(), "{:?}", demo_namespaces());

    // SIGKILL leaves everything behind...
    let mut child = start_kept();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !demo_namespaces().is_empty(),
        "a killed demo leaves its lab"
    );
    // ...and the next run cleans it up first, then runs normally.
    let out = Command::new(DEMO)
        .args(["--mode", "dr", "--requests", "4"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("split: rs0 2, rs1 1, rs2 1"), "{stdout}");
    assert!(demo_namespaces().is_empty(), "{:?}", demo_namespaces());
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}
