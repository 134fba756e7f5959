//! Restarting (or upgrading) xvsd drops nothing: wrk runs through the
//! director while xvsd is stopped and started again, and not one request
//! fails. The new xvsd adopts the pinned datapath and the saved rules, and
//! its counters carry on from the old one's.

mod common;

use std::path::Path;
use std::time::Duration;

use common::Xvsd;
use xvs_testhost::{wrk, Mode, Topology, WrkOptions};

/// The Conns column of the service line of `-Ln --stats --exact`.
fn service_conns(stats: &str) -> u64 {
    let line = stats
        .lines()
        .find(|l| l.starts_with("TCP "))
        .expect("a service line");
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

fn restart_under_load(mode: Mode, close: bool) {
    common::require_root();
    let topo = Topology::builder(mode)
        .prefix("xvt-restart")
        .servers(2)
        .build()
        .expect("lab");
    let _web = topo.start_web_servers(80).expect("web servers");
    let ifaces: &[&str] = if mode == Mode::Nat {
        &["-i", "d0", "-i", "d1"]
    } else {
        &["-i", "d0"]
    };
    // Named after the director's namespace; the guard stops it and removes
    // its pinned state at the end, also on failure.
    let mut x = Xvsd::start_in("restart", topo.director().name(), ifaces);
    let vip = topo.vip();
    let fwd = if mode == Mode::Nat { "-m" } else { "-g" };
    x.setup(&format!("-A -t {vip}:80 -s rr"));
    for s in topo.plan().server_addrs() {
        x.setup(&format!("-a -t {vip}:80 -r {s}:80 {fwd}"));
    }
    let before = x.save();

    let mut opts = WrkOptions::new(&format!("http://{vip}/"));
    opts.duration = Duration::from_secs(8);
    opts.connections = 8;
    opts.close = close;
    let (r, conns_before) = std::thread::scope(|scope| {
        let load = scope.spawn(|| wrk(topo.client(), &opts));
        std::thread::sleep(Duration::from_secs(2));
        let conns_before = service_conns(&x.ok(&["-Ln", "--stats", "--exact"]));
        let st = x.stop();
        assert!(
            st.is_some_and(|s| s.success()),
            "xvsd stopped on SIGTERM: {st:?}"
        );
        // The datapath forwards on its own while no xvsd runs.
        std::thread::sleep(Duration::from_secs(1));
        x.spawn("restart");
        assert_eq!(x.save(), before, "the rules came back");
        (load.join().unwrap().expect("wrk"), conns_before)
    });
    println!("{mode} close={close}: {r:?}");
    assert!(r.requests > 100, "wrk ran: {r:?}");
    assert_eq!(r.socket_errors, 0, "{r:?}");
    assert_eq!(r.non_2xx, 0, "{r:?}");
    let conns_after = service_conns(&x.ok(&["-Ln", "--stats", "--exact"]));
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
    let st = x.stop();
    assert!(
        st.is_some_and(|s| s.success()),
        "xvsd stopped on SIGTERM: {st:?}"
    );
    assert!(
        Path::new(&format!("/sys/fs/bpf/xvs/{}", x.netns)).exists(),
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
