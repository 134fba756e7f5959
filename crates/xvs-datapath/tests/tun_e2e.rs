//! LVS-TUN end to end through network namespaces, without the director
//! program (its scheduler is elsewhere): the test-only director
//! `bpf/encap_test.c` encapsulates every packet to VIP:8080 toward the one
//! real server, which runs the xvs decap program (tc ingress).
//!
//! ```text
//!  client ns                 director ns                       real-server ns
//!  c0 198.18.0.2 ------------ d0 198.18.0.1 (tc: encap_test)
//!                             d1 198.18.1.1 ------------------- r0 198.18.1.2 (tc: xvs decap)
//!  c1 198.18.3.2 ------------------------------------------------ r1 198.18.3.1
//!                                                               lo: VIP 198.18.2.1/32
//! ```
//!
//! The client reaches the VIP through the director (default route). The
//! director has no route to the VIP and does not forward: only its tc
//! program gets the packets, IPIP- or GUE-encapsulated, to r0. The real
//! server has the VIP on lo (arp_ignore=1, arp_announce=2), rp_filter off
//! (the inner source is reached through r1), and answers straight to the
//! client over r1 (route to 198.18.0.2 via 198.18.3.2), never through the
//! director.
//!
//! IPIP: decap attached with the library ([`Decap::attach_tc`]).
//! GUE: decap installed with the `xvs-decap` command on a private bpffs, so
//! it must stay attached after the command exits, and `detach` removes it.
//!
//! Needs root. Namespaces `xvs-tun-<pid>-*` are deleted by Drop guards.

mod common;
mod tun_common;

use std::{
    io::{Read, Write},
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    process::Command,
    thread,
    time::{Duration, Instant},
};

use tun_common::*;
use xvs_datapath::decap::{Decap, XdpMode};

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 1);
const PORT: u16 = 8080;
const GUE_PORT: u16 = 6080;
const TUN_MTU: u16 = 1600;
const D1_MAC: Mac = [0x02, 0x78, 0x76, 0x74, 0x01, 0x03];
const R0_MAC: Mac = [0x02, 0x78, 0x76, 0x74, 0x01, 0x04];

type Topology = TunTopology;

fn topology() -> Topology {
    tun_topology(
        ["client", "director", "server"],
        D1_MAC,
        R0_MAC,
        VIP,
        TUN_MTU,
    )
}

/// The test director on d0 ingress, encapsulating VIP:PORT toward r0.
fn director(t: &Topology, gue_port: Option<u16>) -> EncapTest {
    let mut tun = XvsTun::v4([198, 18, 1, 1], [198, 18, 1, 2]);
    tun.mtu = TUN_MTU;
    if let Some(p) = gue_port {
        tun = tun.gue(0, p); // source port from the flow hash
    }
    t.director.enter(|| {
        let d1 = xvs_datapath::decap::ifindex_of("d1").expect("d1");
        let mut e = EncapTest::load(TunTestCfg {
            tun,
            dmac: R0_MAC,
            smac: D1_MAC,
            ifindex: d1,
            vip: VIP.octets(),
            vport_be: PORT.to_be(),
            reserved: 0,
        });
        e.attach_tc("d0");
        e
    })
}

fn client_request(msg: &str, timeout: Duration) -> std::io::Result<String> {
    let vip = SocketAddr::new(IpAddr::V4(VIP), PORT);
    let mut s = TcpStream::connect_timeout(&vip, timeout)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(msg.as_bytes())?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    Ok(resp)
}

/// Binds VIP:PORT, retrying for a while: the previous exchange's server-side
/// socket may still be closing (FIN_WAIT) and hold the port.
fn bind_vip() -> std::io::Result<TcpListener> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpListener::bind((VIP, PORT)) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(50));
            }
            r => return r,
        }
    }
}

/// One TCP exchange client -> VIP:PORT -> listener in the server ns; checks
/// the answer and that the server saw the client's own address.
fn exchange(t: &Topology, msg: &str) {
    let listener = t
        .server
        .enter(|| bind_vip().expect("bind VIP:8080 in the server ns"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let (served, answered) = thread::scope(|s| {
        let server = s.spawn(|| common::serve_one(listener, deadline));
        let answered = t
            .client
            .enter(|| client_request(msg, Duration::from_secs(5)));
        (server.join().unwrap(), answered)
    });
    let peer = served.expect("real server side");
    assert_eq!(
        peer.ip(),
        IpAddr::from([198, 18, 0, 2]),
        "RS sees the client"
    );
    let resp = answered.expect("client request to the VIP through the TUN director");
    assert_eq!(resp, format!("real server says: {msg}"));
}

/// 1 MiB and a newline: the client's TCP sends it as GSO skbs (veth has
/// TSO), so encapsulation, decapsulation and the checksum offload state are
/// exercised on large packets too.
fn bulk() -> String {
    let mut s: String = (0..1 << 20)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    s.push('\n');
    s
}

/// With the decap program gone nothing can deliver: the connection fails.
fn exchange_fails(t: &Topology) {
    let listener = t
        .server
        .enter(|| bind_vip().expect("bind VIP:8080 in the server ns"));
    let r = t
        .client
        .enter(|| client_request("again\n", Duration::from_secs(2)));
    assert!(r.is_err(), "connected without decapsulation: {r:?}");
    drop(listener);
}

#[test]
fn tcp_through_ipip_tunnel_with_tc_decap() {
    require_root();
    let t = topology();
    let dir = director(&t, None);

    let mut decap = Decap::load().unwrap_or_else(|e| panic!("loading decap: {e:?}"));
    decap.add_address(v4([198, 18, 1, 2])).unwrap();
    let att = t
        .server
        .enter(|| decap.attach_tc("r0").expect("attach decap to r0"));
    let before = decap.counters().unwrap();

    exchange(&t, "hello over IPIP\n");
    // A bulk transfer: GSO (TSO) skbs through encap and decap.
    exchange(&t, &bulk());

    let after = decap.counters().unwrap();
    // SYN, ACK, data, FIN at least were decapsulated.
    assert!(
        after.ipip >= before.ipip + 4,
        "ipip counter: {before:?} -> {after:?}"
    );
    assert_eq!(after.gue, 0);
    assert_eq!(after.malformed, 0);
    assert_eq!(after.error, 0);
    let (encapsulated, last) = dir.stats();
    assert!(encapsulated >= 4, "director encapsulated {encapsulated}");
    assert_eq!(last, 0);
    assert!(
        dir.max_len() > 1514,
        "no GSO skb went through: longest {}",
        dir.max_len()
    );

    decap.detach(att).unwrap();
    let at_detach = decap.counters().unwrap();
    exchange_fails(&t);
    assert_eq!(decap.counters().unwrap(), at_detach);
}

/// A private bpffs mount for the command's pins, unmounted on drop (which
/// also releases anything still pinned there).
struct PrivateBpffs(PathBuf);

impl PrivateBpffs {
    fn new() -> Self {
        let p =
            std::env::temp_dir().join(format!("xvs-tun-bpffs-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&p).unwrap();
        PrivateBpffs(p)
    }
}

impl Drop for PrivateBpffs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Runs `xvs-decap ARGS` inside network namespace `ns` (mount namespace
/// unchanged, so the pins land on our bpffs).
fn xvs_decap(ns: &Netns, args: &[&str]) -> (bool, String) {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", ns.path()))
        .arg(env!("CARGO_BIN_EXE_xvs-decap"))
        .args(args)
        .output()
        .expect("running nsenter xvs-decap");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Waits up to 2 s for `cond`: a bpf_link is released when its last file
/// reference goes, and a concurrent fork (other tests spawn `ip`) can hold
/// one until its exec.
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !cond() {
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
    true
}

fn status_counter(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in status output: {text}"))
}

#[test]
fn tcp_through_gue_tunnel_with_xvs_decap_command() {
    require_root();
    let t = topology();
    let dir = director(&t, Some(GUE_PORT));
    let bpffs = PrivateBpffs::new();
    let fs = bpffs.0.to_str().unwrap();

    let (ok, text) = xvs_decap(
        &t.server,
        &["attach", "r0", "--tc", "--gue-port", "6080", "--bpffs", fs],
    );
    assert!(ok, "xvs-decap attach: {text}");
    assert!(text.contains("198.18.1.2"), "accepted addresses: {text}");
    let (ok, text) = xvs_decap(&t.server, &["attach", "r0", "--bpffs", fs]);
    assert!(
        !ok && text.contains("already attached"),
        "second attach: {text}"
    );

    // The command has exited: the program must still be there.
    exchange(&t, "hello over GUE\n");
    exchange(&t, &bulk());

    let (ok, text) = xvs_decap(&t.server, &["status", "r0", "--bpffs", fs]);
    assert!(ok, "status: {text}");
    assert!(status_counter(&text, "gue") >= 8, "gue counter: {text}");
    assert_eq!(status_counter(&text, "ipip"), 0, "{text}");
    assert_eq!(status_counter(&text, "malformed"), 0, "{text}");
    let (encapsulated, last) = dir.stats();
    assert!(encapsulated >= 8, "director encapsulated {encapsulated}");
    assert_eq!(last, 0);
    assert!(
        dir.max_len() > 1514,
        "no GSO skb went through: longest {}",
        dir.max_len()
    );

    let (ok, text) = xvs_decap(&t.server, &["detach", "r0", "--bpffs", fs]);
    assert!(ok, "detach: {text}");
    // Only the kernel's own iterator files (maps.debug, progs.debug) remain.
    let leftover: Vec<_> = std::fs::read_dir(&bpffs.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".debug"))
        .collect();
    assert!(leftover.is_empty(), "pins left: {leftover:?}");
    exchange_fails(&t);
    let (ok, text) = xvs_decap(&t.server, &["detach", "r0", "--bpffs", fs]);
    assert!(
        !ok && text.contains("not attached"),
        "second detach: {text}"
    );
}

#[test]
fn xvs_decap_command_xdp_attach_persists_and_detaches() {
    require_root();
    reap_stale_namespaces();
    let ns = Netns::new("xdp");
    ns.ip(&["link", "add", "x0", "type", "veth", "peer", "name", "x1"]);
    ns.ip(&["addr", "add", "198.18.4.1/24", "dev", "x0"]);
    ns.ip(&["link", "set", "x0", "up"]);
    ns.ip(&["link", "set", "x1", "up"]);
    let bpffs = PrivateBpffs::new();
    let fs = bpffs.0.to_str().unwrap();
    let link_show = || output("ip", &["-n", &ns.name, "link", "show", "x0"]);

    let (ok, text) = xvs_decap(
        &ns,
        &[
            "attach",
            "x0",
            "--xdp",
            "--addr",
            "198.18.4.1",
            "--bpffs",
            fs,
        ],
    );
    assert!(ok, "attach --xdp: {text}");
    assert!(
        link_show().contains("xdp"),
        "no XDP after the command exited: {}",
        link_show()
    );
    let (ok, text) = xvs_decap(&ns, &["detach", "x0", "--bpffs", fs]);
    assert!(ok, "detach: {text}");
    // Unpinning releases the link from a workqueue: not instantly.
    assert!(
        eventually(|| !link_show().contains("xdp")),
        "still attached: {}",
        link_show()
    );

    // Bad usage is refused with the usage text.
    let (ok, text) = xvs_decap(&ns, &["attach", "x0", "--gue-port", "0", "--bpffs", fs]);
    assert!(!ok && text.contains("usage"), "{text}");
}

#[test]
fn decap_library_attaches_xdp_too() {
    require_root();
    reap_stale_namespaces();
    let ns = Netns::new("xdplib");
    ns.ip(&["link", "add", "y0", "type", "veth", "peer", "name", "y1"]);
    ns.ip(&["link", "set", "y0", "up"]);
    let link_show = || output("ip", &["-n", &ns.name, "link", "show", "y0"]);
    let mut d = Decap::load().unwrap();
    let att = ns.enter(|| d.attach_xdp("y0", XdpMode::Driver).expect("attach XDP"));
    assert!(link_show().contains("xdp"));
    d.detach(att).unwrap();
    assert!(
        eventually(|| !link_show().contains("xdp")),
        "still attached"
    );
    ns.enter(|| d.attach_xdp("y0", XdpMode::Driver).expect("attach XDP"));
    drop(d);
    assert!(
        eventually(|| !link_show().contains("xdp")),
        "still attached after drop"
    );
}
