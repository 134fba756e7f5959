//! xvsd beyond xvsadm: the HTTP API with its bearer token, the Unix
//! socket's permissions, configuration reload on SIGHUP (a bad file keeps
//! the running rules), and refusals at start-up.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{lines, Xvsd};

/// curl inside the daemon's namespace: (HTTP status, body).
fn curl(d: &Xvsd, args: &[&str]) -> (u16, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", &d.netns, "curl", "-sS", "--noproxy", "*"])
        .args(["--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl (apt-get install curl)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').expect("curl printed the status");
    (
        code.trim().parse().expect("a status code"),
        body.to_string(),
    )
}

/// Waits until something listens on 127.0.0.1:`port` in the namespace.
fn wait_http(d: &Xvsd, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, _) = curl(d, &[&format!("http://127.0.0.1:{port}/v1/status")]);
        if code != 0 {
            return;
        }
        assert!(Instant::now() < deadline, "HTTP API never came up");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn http_api_needs_the_token_and_does_what_the_socket_does() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    let port = 18000 + (std::process::id() % 1000) as u16;
    let listen = format!("127.0.0.1:{port}");
    let d = Xvsd::start_with(
        "http",
        &[
            "--http",
            &listen,
            "--http-token-file",
            token.to_str().unwrap(),
        ],
    );
    // A new namespace's loopback is down.
    let st = Command::new("ip")
        .args(["-n", &d.netns, "link", "set", "lo", "up"])
        .status()
        .unwrap();
    assert!(st.success());
    wait_http(&d, port);
    let base = format!("http://127.0.0.1:{port}");

    // No token, or a wrong one: 401 with the error document.
    let (code, body) = curl(&d, &[&format!("{base}/v1/services")]);
    assert_eq!(code, 401, "{body}");
    let e: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["error"]["message"], "Unauthorized");
    let (code, _) = curl(
        &d,
        &[
            "-H",
            "Authorization: Bearer nope",
            &format!("{base}/v1/services"),
        ],
    );
    assert_eq!(code, 401);

    // With it: a command over HTTP shows in xvsadm, and the other way round.
    let auth = "Authorization: Bearer s3cret-token";
    let (code, body) = curl(
        &d,
        &[
            "-H",
            auth,
            "-X",
            "POST",
            "--data",
            r#"{"commands":[["-A","-t","198.18.0.100:80","-s","rr"],["-a","-t","198.18.0.100:80","-r","198.18.1.10:80","-m"]]}"#,
            &format!("{base}/v1/commands"),
        ],
    );
    assert_eq!((code, body.as_str()), (200, r#"{"applied":2}"#));
    d.ok(&[
        "-a",
        "-t",
        "198.18.0.100:80",
        "-r",
        "198.18.1.11:80",
        "-m",
        "-w",
        "3",
    ]);
    assert_eq!(
        d.save(),
        lines(&[
            "-A -t 198.18.0.100:80 -s rr",
            "-a -t 198.18.0.100:80 -r 198.18.1.10:80 -m -w 1",
            "-a -t 198.18.0.100:80 -r 198.18.1.11:80 -m -w 3",
        ])
    );
    let (code, body) = curl(&d, &["-H", auth, &format!("{base}/v1/services")]);
    assert_eq!(code, 200);
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["services"][0]["scheduler"], "rr");
    assert_eq!(doc["services"][0]["reals"].as_array().unwrap().len(), 2);

    // A refused command: 409 with ipvsadm's words, the errno and the index,
    // and the table as it was.
    let (code, body) = curl(
        &d,
        &[
            "-H",
            auth,
            "-X",
            "POST",
            "--data",
            r#"{"commands":[["-D","-t","198.18.0.100:80"],["-A","-t","198.18.0.100:80"],["-A","-t","198.18.0.100:80"]]}"#,
            &format!("{base}/v1/commands"),
        ],
    );
    assert_eq!(code, 409, "{body}");
    let e: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["error"]["message"], "Service already exists");
    assert_eq!(e["error"]["errno"], 17);
    assert_eq!(e["error"]["index"], 2);
    assert_eq!(d.adm(&["-S", "-n"]).stdout.lines().count(), 3);

    // Garbage and unknown paths.
    let (code, _) = curl(
        &d,
        &[
            "-H",
            auth,
            "-X",
            "POST",
            "--data",
            "{",
            &format!("{base}/v1/commands"),
        ],
    );
    assert_eq!(code, 400);
    let (code, _) = curl(&d, &["-H", auth, &format!("{base}/v2/everything")]);
    assert_eq!(code, 404);
    let (code, _) = curl(
        &d,
        &["-H", auth, "-X", "DELETE", &format!("{base}/v1/services")],
    );
    assert_eq!(code, 405);

    // Metrics.
    let (code, body) = curl(&d, &["-H", auth, &format!("{base}/metrics")]);
    assert_eq!(code, 200);
    assert!(
        body.contains("xvs_real_weight{service=\"tcp:198.18.0.100:80\",real=\"198.18.1.11:80\"} 3"),
        "{body}"
    );
}

#[test]
fn the_socket_is_root_only() {
    use std::os::unix::fs::PermissionsExt;
    let d = Xvsd::start("perm");
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");
}

#[test]
fn sighup_reloads_and_a_bad_file_keeps_the_running_rules() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("rules");
    std::fs::write(
        &conf,
        "-A -t 198.18.0.100:80 -s wrr\n-a -t 198.18.0.100:80 -r 198.18.1.10:80 -m -w 2\n",
    )
    .unwrap();
    let d = Xvsd::start_with("hup", &["-f", conf.to_str().unwrap()]);
    let first = lines(&[
        "-A -t 198.18.0.100:80 -s wrr",
        "-a -t 198.18.0.100:80 -r 198.18.1.10:80 -m -w 2",
    ]);
    assert_eq!(d.save(), first);

    let hup = |d: &Xvsd| {
        // SAFETY: kill(2) on the test's own child.
        assert_eq!(unsafe { libc::kill(d.pid() as i32, libc::SIGHUP) }, 0);
    };
    let wait_for = |d: &Xvsd, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !d.log().contains(what) {
            assert!(
                Instant::now() < deadline,
                "no '{what}' in the log:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // A good new file replaces the rules.
    std::fs::write(
        &conf,
        "-A -u 198.18.0.100:53 -s rr\n-a -u 198.18.0.100:53 -r 198.18.1.11:53 -m\n",
    )
    .unwrap();
    hup(&d);
    wait_for(&d, "\"msg\":\"reloaded\"");
    let second = lines(&[
        "-A -u 198.18.0.100:53 -s rr",
        "-a -u 198.18.0.100:53 -r 198.18.1.11:53 -m -w 1",
    ]);
    assert_eq!(d.save(), second);

    // A bad one (line 2 is wrong) changes nothing, and the log says why.
    std::fs::write(
        &conf,
        "-A -t 198.18.0.100:443 -s rr\n-a -t 198.18.0.100:443 -r 198.18.1.12:443 -w 70000\n",
    )
    .unwrap();
    hup(&d);
    wait_for(&d, "reload failed; keeping the running rules");
    assert!(d.log().contains("line 2"), "{}", d.log());
    assert_eq!(d.save(), second);
}

#[test]
fn refusals_at_start_name_what_was_wrong() {
    common::require_root();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_xvsd"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, err) = run(&["--http", "198.18.0.1:8080"]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with(
            "xvsd: --http 198.18.0.1:8080 is not a loopback address: give --http-token-file too\n"
        ),
        "{err}"
    );
    let (code, err) = run(&["-i", "d0:turbo"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown attach mode 'turbo'"), "{err}");
    let (code, err) = run(&["--sysctl", "net.ipv4.vs.expire_nodest_conn=on"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("bad value 'on' for expire_nodest_conn (a non-negative integer)"),
        "{err}"
    );
    let (code, err) = run(&["--netns", "xvt-no-such-namespace", "--name", "nope"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("network namespace /run/netns/xvt-no-such-namespace"),
        "{err}"
    );
}

#[test]
fn a_second_xvsd_on_the_same_socket_is_refused() {
    let d = Xvsd::start("twice");
    let other = format!("xvt-twice-{}", std::process::id());
    let out = Command::new(env!("CARGO_BIN_EXE_xvsd"))
        .args(["--netns", &d.netns, "--name", &other])
        .arg("--socket")
        .arg(&d.socket)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another xvsd is already serving"), "{err}");
    // ...and left nothing of its own behind.
    assert!(!std::path::Path::new(&format!("/run/xvs/{other}")).exists());
    assert!(!std::path::Path::new(&format!("/sys/fs/bpf/xvs/{other}")).exists());
    // The first one still answers.
    d.save();
}

#[test]
fn xdp_comes_with_tc_behind_it_for_unresolved_neighbours() {
    common::require_root();
    let ns = format!("xvt-xdp-{}", std::process::id());
    let ip = |args: &[&str]| {
        let st = Command::new("ip").args(args).status().unwrap();
        assert!(st.success(), "ip {}", args.join(" "));
    };
    ip(&["netns", "add", &ns]);
    struct Gone(String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = Command::new(env!("CARGO_BIN_EXE_xvsd"))
                .args(["--cleanup", "--name", &self.0, "--netns", &self.0])
                .output();
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let _gone = Gone(ns.clone());
    ip(&[
        "-n", &ns, "link", "add", "x0", "type", "veth", "peer", "name", "x1",
    ]);
    ip(&["-n", &ns, "link", "set", "x0", "up"]);
    ip(&["-n", &ns, "link", "set", "x1", "up"]);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("xvsd.sock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_xvsd"))
        .args([
            "--netns",
            &ns,
            "--name",
            &ns,
            "--max-conns",
            "65536",
            "--flow-cache",
            "4096",
            "-i",
            "x0:xdp",
        ])
        .arg("--socket")
        .arg(&socket)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "xvsd did not come up");
        assert!(child.try_wait().unwrap().is_none(), "xvsd exited");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = Command::new("curl")
        .args(["-sS", "--unix-socket"])
        .arg(&socket)
        .arg("http://xvsd/v1/status")
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        status["interfaces"],
        serde_json::json!([{"name": "x0", "mode": "xdp"}, {"name": "x0", "mode": "tc"}])
    );
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}
