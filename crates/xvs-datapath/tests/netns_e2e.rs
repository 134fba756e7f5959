//! End to end through real network namespaces:
//!
//! ```text
//!  client ns            director ns                     real-server ns
//!  c0 198.18.0.2 ---- d0 198.18.0.1  d1 198.18.1.1 ---- r0 198.18.1.2
//!                     (tc ingress:                       lo: VIP 198.18.2.1/32
//!                      xvs_tc)                           arp_ignore=1, arp_announce=2
//! ```
//!
//! The client connects to VIP:8080. The director has no route to the VIP:
//! only the tc program can get the packets to the real server, by rewriting
//! the MACs and redirecting them out of d1 (DR). The real server answers from
//! the VIP straight back to the client by its own routing (through the
//! director's ordinary IP forwarding, as this chain has no shared L2).
//! Offloads are left on, so the client's packets carry CHECKSUM_PARTIAL: the
//! reason veths use tc rather than XDP.
//!
//! Needs root; namespaces are named with the pid and always deleted (Drop).

mod common;

use std::{
    fs::File,
    io::{Read, Write},
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use nix::sched::{setns, CloneFlags};
use xvs_core::persist::Sysctls;
use xvs_datapath::{Datapath, NextHop, XdpMode, L2};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 1);
const PORT: u16 = 8080;
const D1_MAC: [u8; 6] = [0x02, 0x78, 0x76, 0x73, 0x01, 0x03];
const R0_MAC: [u8; 6] = [0x02, 0x78, 0x76, 0x73, 0x01, 0x04];

fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Runs a command, failing the test with its output if it fails.
fn run(prog: &str, args: &[&str]) {
    let out = Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {prog}: {e}"));
    assert!(
        out.status.success(),
        "{prog} {}: {}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn output(prog: &str, args: &[&str]) -> String {
    let out = Command::new(prog).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A named network namespace (`ip netns add`), deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Self {
        let name = format!("xvs-dp-{}-{tag}", std::process::id());
        run("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n <ns> ...`
    fn ip(&self, args: &[&str]) {
        let mut a = vec!["-n", &self.name];
        a.extend_from_slice(args);
        run("ip", &a);
    }

    fn sysctl(&self, settings: &[&str]) {
        let mut a = vec!["netns", "exec", &self.name, "sysctl", "-qw"];
        a.extend_from_slice(settings);
        run("ip", &a);
    }

    /// Runs `f` on a new thread that has entered this namespace, so sockets,
    /// interface names and netlink requests made by `f` are resolved here.
    /// (setns on a fresh thread: libtest's own threads are never moved.)
    fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        thread::scope(|s| {
            s.spawn(|| {
                let fd = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                setns(&fd, CloneFlags::CLONE_NEWNET).expect("setns");
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Deletes namespaces left by earlier runs that were killed before their
/// guards ran (their pid is gone).
fn reap_stale_namespaces() {
    for line in output("ip", &["netns", "list"]).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(rest) = name.strip_prefix("xvs-dp-") else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        if !pid.is_empty() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

struct Topology {
    client: Netns,
    director: Netns,
    server: Netns,
}

fn topology() -> Topology {
    reap_stale_namespaces();
    let t = Topology {
        client: Netns::new("client"),
        director: Netns::new("director"),
        server: Netns::new("server"),
    };
    let (c, d, r) = (&t.client.name, &t.director.name, &t.server.name);
    run(
        "ip",
        &[
            "link", "add", "c0", "netns", c, "type", "veth", "peer", "name", "d0", "netns", d,
        ],
    );
    run(
        "ip",
        &[
            "link",
            "add",
            "d1",
            "netns",
            d,
            "address",
            &mac(D1_MAC),
            "type",
            "veth",
            "peer",
            "name",
            "r0",
            "netns",
            r,
            "address",
            &mac(R0_MAC),
        ],
    );

    t.client.ip(&["addr", "add", "198.18.0.2/24", "dev", "c0"]);
    t.client.ip(&["link", "set", "c0", "up"]);
    t.client
        .ip(&["route", "add", "default", "via", "198.18.0.1"]);

    t.director
        .ip(&["addr", "add", "198.18.0.1/24", "dev", "d0"]);
    t.director
        .ip(&["addr", "add", "198.18.1.1/24", "dev", "d1"]);
    t.director.ip(&["link", "set", "d0", "up"]);
    t.director.ip(&["link", "set", "d1", "up"]);
    // Forwarding for the replies; no route to the VIP on purpose.
    t.director.sysctl(&[
        "net.ipv4.ip_forward=1",
        "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.d0.rp_filter=0",
        "net.ipv4.conf.d1.rp_filter=0",
    ]);

    t.server.ip(&["addr", "add", "198.18.1.2/24", "dev", "r0"]);
    t.server
        .ip(&["addr", "add", &format!("{VIP}/32"), "dev", "lo"]);
    t.server.ip(&["link", "set", "r0", "up"]);
    t.server
        .ip(&["route", "add", "default", "via", "198.18.1.1"]);
    // The usual LVS-DR real-server settings: never answer ARP for the VIP.
    t.server.sysctl(&[
        "net.ipv4.conf.all.arp_ignore=1",
        "net.ipv4.conf.all.arp_announce=2",
        "net.ipv4.conf.r0.arp_ignore=1",
        "net.ipv4.conf.r0.arp_announce=2",
    ]);
    t
}

fn client_request(timeout: Duration) -> std::io::Result<(String, SocketAddr)> {
    let vip = SocketAddr::new(IpAddr::V4(VIP), PORT);
    let mut s = TcpStream::connect_timeout(&vip, timeout)?;
    let peer = s.peer_addr()?; // before the close: then it is ENOTCONN
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"hello over DR\n")?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    Ok((resp, peer))
}

#[test]
fn tcp_connection_to_vip_through_tc_dr_director() {
    common::require_root();
    let t = topology();
    let mut dp = common::load();

    // Attach in the director's namespace, and learn d1's index there.
    let (attachment, d1) = t.director.enter(|| {
        let d1 = xvs_datapath::ifindex("d1").expect("d1 in director ns");
        (dp.attach_tc("d0").expect("attach tc to d0"), d1)
    });
    let rules = common::table(&[
        "-A -t 198.18.2.1:8080 -s rr",
        "-a -t 198.18.2.1:8080 -r 198.18.1.2 -g",
    ]);
    let l2 = L2 {
        default: NextHop {
            mac: R0_MAC,
            src_mac: D1_MAC,
            ifindex: d1,
        },
        ..L2::default()
    };
    dp.sync(&rules, &Sysctls::default(), &l2).unwrap();
    let before = dp.counters().unwrap();

    let listener = t
        .server
        .enter(|| TcpListener::bind((VIP, PORT)).expect("bind VIP:8080 in the server ns"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let (served, answered) = thread::scope(|s| {
        let server = s.spawn(|| common::serve_one(listener, deadline));
        let answered = t.client.enter(|| client_request(Duration::from_secs(5)));
        (server.join().unwrap(), answered)
    });

    let after = dp.counters().unwrap();
    let peer = served.expect("real server side");
    assert_eq!(
        peer.ip(),
        IpAddr::from([198, 18, 0, 2]),
        "the RS sees the client's own address"
    );
    let (resp, from) = answered.expect("client request to the VIP through the director");
    assert_eq!(resp, "real server says: hello over DR\n");
    assert_eq!(from, SocketAddr::new(IpAddr::V4(VIP), PORT));
    // SYN, ACK, data, FIN at least went through the tc program.
    assert!(
        after.forwarded >= before.forwarded + 4,
        "forwarded counter: {before:?} -> {after:?}"
    );
    assert_eq!(after.malformed, before.malformed);

    // Detached, nothing gets the client's packets to the real server: the
    // director has no route to the VIP.
    dp.detach(attachment).unwrap();
    let at_detach = dp.counters().unwrap();
    let again = t.client.enter(|| client_request(Duration::from_secs(2)));
    assert!(
        again.is_err(),
        "connected with the program detached: {again:?}"
    );
    assert_eq!(dp.counters().unwrap(), at_detach);
}

#[test]
fn xdp_attaches_to_a_veth_and_detaches() {
    common::require_root();
    reap_stale_namespaces();
    let ns = Netns::new("xdp");
    ns.ip(&["link", "add", "x0", "type", "veth", "peer", "name", "x1"]);
    ns.ip(&["link", "set", "x0", "up"]);
    ns.ip(&["link", "set", "x1", "up"]);
    let link_show = || output("ip", &["-n", &ns.name, "link", "show", "x0"]);
    assert!(!link_show().contains("xdp"));

    let mut dp: Datapath = common::load();
    let (by_name, index) = ns.enter(|| {
        let a = dp
            .attach_xdp("x0", XdpMode::Driver)
            .expect("attach XDP (native) to a veth");
        (a, xvs_datapath::ifindex("x0").unwrap())
    });
    let shown = link_show();
    assert!(
        shown.contains("xdp"),
        "ip link shows no XDP program: {shown}"
    );
    dp.detach(by_name).unwrap();
    assert!(
        !link_show().contains("xdp"),
        "still attached: {}",
        link_show()
    );

    // By index, then dropping the datapath detaches too.
    ns.enter(|| {
        dp.attach_xdp(index, XdpMode::Driver)
            .expect("attach by ifindex")
    });
    assert!(link_show().contains("xdp"));
    drop(dp);
    assert!(
        !link_show().contains("xdp"),
        "still attached after drop: {}",
        link_show()
    );
}
