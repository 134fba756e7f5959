//! The datapath's events reach xvsd's log as the kernel's IPVS logs them:
//! a connection to a service with no real server to take it is refused at
//! once (the datapath's port unreachable) and logged as "rr: TCP VIP:80 -
//! no destination available"; with a real server back, connections go
//! through and nothing more is logged. A restarted xvsd (its own load, its
//! own ring buffer, the programs replaced) goes on telling.

mod common;

use std::time::{Duration, Instant};

use common::Xvsd;
use xvs_testhost::{Mode, Topology};

/// The lines of xvsd's log that say `msg`.
fn logged(x: &Xvsd, msg: &str) -> Vec<serde_json::Value> {
    x.log()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["msg"] == msg)
        .collect()
}

/// Waits up to 10 s for `n` lines saying `msg`.
fn wait_logged(x: &Xvsd, msg: &str, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let l = logged(x, msg);
        if l.len() >= n || Instant::now() > deadline {
            return l;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn no_destination_available_is_logged_as_the_kernel_logs_it() {
    common::require_root();
    let topo = Topology::builder(Mode::Dr)
        .prefix("xvt-events")
        .servers(1)
        .build()
        .expect("lab");
    let _web = topo.start_web_servers(80).expect("web servers");
    let mut x = Xvsd::start_in("events", topo.director().name(), &["-i", "d0"]);
    let vip = topo.vip();
    let rs = topo.plan().server_addrs()[0];
    x.setup(&format!("-A -t {vip}:80 -s rr"));
    x.setup(&format!("-a -t {vip}:80 -r {rs}:80 -g -w 0"));
    let url = format!("http://{vip}/");
    let msg = format!("rr: TCP {vip}:80 - no destination available");

    // weight 0: refused at once, not timed out, and logged
    let t = Instant::now();
    let err = topo.curl_from_client(&url).expect_err("no real server");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "refused, not timed out: {err}"
    );
    let l = wait_logged(&x, &msg, 1);
    assert_eq!(l.len(), 1, "xvsd's log:\n{}", x.log());
    assert_eq!(l[0]["level"], "warn");
    assert_eq!(l[0]["event"], "no_destination");
    assert_eq!(l[0]["service"], format!("TCP {vip}:80"));
    assert_eq!(l[0]["scheduler"], "rr");

    // a real server to take it: through, and nothing more logged
    let weight = |x: &Xvsd, w: &str| {
        x.ok(&[
            "-e",
            "-t",
            &format!("{vip}:80"),
            "-r",
            &format!("{rs}:80"),
            "-g",
            "-w",
            w,
        ])
    };
    weight(&x, "1");
    let body = topo.curl_from_client(&url).expect("through the VIP");
    assert!(!body.is_empty());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(logged(&x, &msg).len(), 1, "xvsd's log:\n{}", x.log());

    // a new xvsd, and weight 0 again: its own events
    x.restart("events");
    weight(&x, "0");
    topo.curl_from_client(&url).expect_err("no real server");
    assert_eq!(
        wait_logged(&x, &msg, 2).len(),
        2,
        "xvsd's log:\n{}",
        x.log()
    );
}
