//! The IPVS sysctls xvsd takes (`--sysctl NAME=VALUE`, as
//! `net.ipv4.vs.NAME` in the kernel): with expire_nodest_conn=1, deleting a
//! real server frees its connections within the next timer pass, as the
//! kernel's `ip_vs_expire_nodest_conn_flush()` does, instead of leaving
//! them in `-Lnc` until their next packet or their timeout.

mod common;

use std::time::{Duration, Instant};

use common::Xvsd;
use xvs_testhost::{Mode, Topology};

/// The real servers of the connections `-Lnc` lists.
fn conn_servers(x: &Xvsd) -> Vec<String> {
    x.ok(&["-Lnc"])
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().nth(5).map(String::from))
        .collect()
}

#[test]
fn expire_nodest_conn_frees_a_deleted_servers_connections() {
    common::require_root();
    let topo = Topology::builder(Mode::Dr)
        .prefix("xvt-sysctl")
        .servers(2)
        .build()
        .expect("lab");
    let _web = topo.start_web_servers(80).expect("web servers");
    let x = Xvsd::start_in(
        "sysctls",
        topo.director().name(),
        &["-i", "d0", "--sysctl", "net.ipv4.vs.expire_nodest_conn=1"],
    );
    // the start line shows the sysctls (it follows the socket)
    let deadline = Instant::now() + Duration::from_secs(10);
    while !x.log().contains("xvsd started") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = x.log();
    let started = log.lines().find(|l| l.contains("xvsd started"));
    assert!(
        started.is_some_and(|l| l.contains(r#""expire_nodest_conn":1"#)),
        "{log}"
    );
    // and the status document
    let out = std::process::Command::new("curl")
        .args(["-sS", "--unix-socket"])
        .arg(&x.socket)
        .arg("http://xvsd/v1/status")
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        status["sysctls"],
        serde_json::json!([
            ["expire_nodest_conn", 1],
            ["expire_quiescent_template", 0],
            ["conn_reuse_mode", 1],
            ["sloppy_tcp", 0],
            ["sloppy_sctp", 0]
        ])
    );
    let vip = topo.vip();
    let rs = topo.plan().server_addrs();
    x.setup(&format!("-A -t {vip}:80 -s rr"));
    for s in &rs {
        x.setup(&format!("-a -t {vip}:80 -r {s}:80 -g"));
    }
    for _ in 0..2 {
        topo.curl_from_client(&format!("http://{vip}/"))
            .expect("through the VIP");
    }
    // one finished connection to each (TIME_WAIT: 2 minutes left)
    let mut before = conn_servers(&x);
    before.sort();
    assert_eq!(before, [format!("{}:80", rs[0]), format!("{}:80", rs[1])]);
    x.ok(&[
        "-d",
        "-t",
        &format!("{vip}:80"),
        "-r",
        &format!("{}:80", rs[0]),
    ]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while conn_servers(&x).len() > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        conn_servers(&x),
        [format!("{}:80", rs[1])],
        "the deleted server's connection is gone, the other's stays"
    );
}
