//! Builds each lab for real and proves it is wired right, with no load
//! balancer at all: every real server answers the client directly, NAT's
//! director is the gateway, DR's VIP is owned (on the wire) by the
//! director only, TUN's replies go through the router.
//!
//! Needs root (and curl; nginx is used when installed, else Python). Fails,
//! clearly, without root.

use std::{net::Ipv4Addr, path::Path};

use xvs_testhost::{curl, netns, sweep_stale, Error, Mode, Netns, Role, Topology, WebServerKind};

const PORT: u16 = 80;

fn build(mode: Mode, servers: usize) -> Topology {
    Topology::builder(mode)
        .servers(servers)
        .build()
        .unwrap_or_else(|e| panic!("building the {mode} topology: {e}"))
}

fn url(a: Ipv4Addr) -> String {
    format!("http://{a}:{PORT}/")
}

/// Every real server answers the client with its own name, at its own address.
fn every_server_answers_the_client(t: &Topology) {
    for (i, a) in t.plan().server_addrs().into_iter().enumerate() {
        let body = t
            .curl_from_client(&url(a))
            .unwrap_or_else(|e| panic!("{} rs{i} at {a}: {e}", t.mode()));
        assert_eq!(body, format!("rs{i}\n"), "{} rs{i} at {a}", t.mode());
    }
}

fn tx_packets(ns: &Netns, dev: &str) -> u64 {
    let out = ns
        .exec(&[
            "cat",
            &format!("/sys/class/net/{dev}/statistics/tx_packets"),
        ])
        .unwrap();
    out.trim().parse().unwrap()
}

#[test]
fn nat_servers_answer_through_the_director_as_a_plain_router() {
    let t = build(Mode::Nat, 3);
    let web = t.start_web_servers(PORT).expect("starting web servers");
    assert_eq!(web.len(), 3);

    let before = tx_packets(t.director(), "d1");
    every_server_answers_the_client(&t);
    let after = tx_packets(t.director(), "d1");
    assert!(
        after >= before + 3 * 5,
        "the requests did not go out of the director's server side (d1 tx {before} -> {after})"
    );

    // The real servers see the client's own address (routing, no NAT).
    let route = t
        .server(0)
        .ip(&["route", "get", &t.plan().client_addr().to_string()])
        .unwrap();
    assert!(route.contains("via 198.18.1.1"), "{route}");

    // Without forwarding on the director, the client reaches nothing.
    t.director().sysctl("net.ipv4.ip_forward", "0").unwrap();
    let e = t
        .curl_from_client(&url(t.plan().server_addr(1)))
        .expect_err("reached a real server with forwarding off");
    assert!(matches!(e, Error::Command { .. }), "{e}");
    t.director().sysctl("net.ipv4.ip_forward", "1").unwrap();
    assert_eq!(t.director().get_sysctl("net.ipv4.ip_forward").unwrap(), "1");
    every_server_answers_the_client(&t);
}

#[test]
fn dr_servers_answer_the_client_on_the_shared_segment_and_only_the_director_owns_the_vip() {
    let t = build(Mode::Dr, 3);
    let _web = t.start_web_servers(PORT).expect("starting web servers");
    every_server_answers_the_client(&t);

    // Each real server accepts traffic for the VIP (it is on its loopback)...
    for (i, s) in t.servers().enumerate() {
        assert_eq!(curl(s, &url(t.vip())).unwrap(), format!("rs{i}\n"));
        assert_eq!(s.get_sysctl("net.ipv4.conf.r0.arp_ignore").unwrap(), "1");
        assert_eq!(s.get_sysctl("net.ipv4.conf.r0.arp_announce").unwrap(), "2");
    }
    // ...but never answers ARP for it: the client's request for the VIP
    // reaches the director, where nothing listens (refused), never a real
    // server (which would answer rsN).
    let e = t
        .curl_from_client(&url(t.vip()))
        .expect_err("a real server answered for the VIP");
    assert!(e.to_string().contains("curl: (7)"), "not refused: {e}");
    let neigh = t
        .client()
        .ip(&["neigh", "show", &t.vip().to_string()])
        .unwrap();
    let d0 = t.plan().iface(Role::Director, "d0").unwrap().mac_string();
    assert!(
        neigh.contains(&d0),
        "VIP resolves to {neigh:?}, not the director {d0}"
    );
    assert!(t.lan().is_some() && t.router().is_none());
    assert_eq!(t.director().get_sysctl("net.ipv4.ip_forward").unwrap(), "1");
}

#[test]
fn tun_servers_answer_through_the_router_and_the_vip_is_routed_to_the_director() {
    let t = build(Mode::Tun, 3);
    let _web = t.start_web_servers(PORT).expect("starting web servers");
    every_server_answers_the_client(&t);

    let router = t.router().expect("TUN has a router");
    for s in t.servers() {
        let route = s
            .ip(&["route", "get", &t.plan().client_addr().to_string()])
            .unwrap();
        let gw = t.plan().peer_of(Role::Server(0), "r0").unwrap().role;
        assert_eq!(gw, Role::Router);
        assert!(route.contains("dev r0"), "{route}");
        let vip_on = if t.kernel_ipip() { "tunl0" } else { "lo" };
        let addrs = s.ip(&["-o", "addr", "show", "dev", vip_on]).unwrap();
        assert!(addrs.contains(&format!("{}/32", t.vip())), "{addrs}");
    }
    let route = router.ip(&["route", "get", &t.vip().to_string()]).unwrap();
    assert!(route.contains("via 198.18.2.2"), "{route}");
    // The VIP reaches the director (nothing listens there: refused).
    let e = t.curl_from_client(&url(t.vip())).expect_err("VIP answered");
    assert!(e.to_string().contains("curl: (7)"), "not refused: {e}");
}

#[test]
fn python_fallback_web_server_answers_too() {
    let t = build(Mode::Nat, 1);
    let w = t
        .start_web_servers_with(8080, WebServerKind::Python)
        .expect("python web server");
    assert_eq!(w[0].kind(), WebServerKind::Python);
    let body = t
        .curl_from_client(&format!("http://{}:8080/", t.plan().server_addr(0)))
        .unwrap();
    assert_eq!(body, "rs0\n");
}

#[test]
fn drop_deletes_namespaces_and_kills_what_ran_in_them() {
    let t = build(Mode::Nat, 2);
    let web = t.start_web_servers(PORT).unwrap();
    let pids: Vec<u32> = web.iter().map(|w| w.pid()).collect();
    // A stray process that no guard owns: the namespace's drop kills it.
    let stray = t.server(0).spawn(&["sleep", "600"]).unwrap();
    let stray_pid = stray.pid();
    std::mem::forget(stray);
    let id = t.id().to_string();
    drop(t);
    let left: Vec<_> = netns::list_with_prefix(&id).unwrap();
    assert!(left.is_empty(), "left behind: {left:?}");
    for p in pids.iter().chain([&stray_pid]) {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for its guard (the web servers' guards
        // are still alive here).
        assert!(
            stat.is_empty() || stat.contains(") Z"),
            "pid {p} still runs: {stat}"
        );
    }
    drop(web);
}

#[test]
fn sweep_deletes_namespaces_of_dead_runs_only() {
    let prefix = "xvs-thsweep";
    // pid_max is at most 2^22: this pid cannot be alive.
    let dead = format!("{prefix}-4194305-0-client");
    let live = Netns::create(&netns::unique_id(prefix)).unwrap();
    let _ = Netns::create(&dead).map(std::mem::forget);
    assert!(Path::new(&format!("/run/netns/{dead}")).exists());
    let gone = sweep_stale(prefix).unwrap();
    assert_eq!(gone, vec![dead.clone()]);
    assert!(!Path::new(&format!("/run/netns/{dead}")).exists());
    assert!(Path::new(&format!("/run/netns/{}", live.name())).exists());
}

#[test]
fn parallel_topologies_do_not_clash() {
    let a = build(Mode::Dr, 1);
    let b = build(Mode::Dr, 1);
    assert_ne!(a.id(), b.id());
    let _wa = a.start_web_servers(PORT).unwrap();
    let _wb = b.start_web_servers(PORT).unwrap();
    every_server_answers_the_client(&a);
    every_server_answers_the_client(&b);
}
