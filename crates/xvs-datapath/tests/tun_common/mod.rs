//! Helpers of the LVS-TUN tests (`tests/tun_*.rs`): root check, packet
//! builders, the test-only encapsulating director (`bpf/encap_test.c`) and
//! network namespaces. Self-contained on purpose (does not share
//! `tests/common`), so the TUN tests and the director's tests evolve apart.

#![allow(dead_code)] // each test binary uses a different subset

use std::{
    fs::File,
    net::{IpAddr, Ipv4Addr},
    process::Command,
    thread,
};

use aya::{
    maps::{Array, MapData},
    programs::{tc, SchedClassifier, TcAttachType, Xdp},
    Ebpf, TestRun, TestRunOptions,
};
use nix::sched::{setns, CloneFlags};

/// These tests load BPF programs and create namespaces: root only. They
/// fail (never skip) without it.
pub fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "xvs-datapath TUN tests need root (CAP_BPF + CAP_NET_ADMIN + CAP_SYS_ADMIN) and a \
         BPF-capable kernel; run them as root, e.g. `sudo -E cargo test -p xvs-datapath`"
    );
}

pub type Mac = [u8; 6];

pub fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

pub fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

pub fn eth(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A 20-byte IPv4 header, checksum filled in.
#[allow(clippy::too_many_arguments)]
pub fn ipv4_header(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    tos: u8,
    id: u16,
    df: bool,
    ttl: u8,
    payload_len: usize,
) -> Vec<u8> {
    let total = 20 + payload_len;
    let mut p = vec![0x45, tos];
    p.extend_from_slice(&(total as u16).to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[if df { 0x40 } else { 0 }, 0, ttl, proto, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    let c = fold(sum16(&p, 0));
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p
}

/// An IPv4 packet (DF, TTL 64, TOS `tos`) carrying `l4`, whose TCP/UDP
/// checksum is filled in.
pub fn ipv4_tos(src: [u8; 4], dst: [u8; 4], proto: u8, tos: u8, l4: &[u8]) -> Vec<u8> {
    let mut p = ipv4_header(src, dst, proto, tos, 0x1234, true, 64, l4.len());
    let mut l4 = l4.to_vec();
    let at = match proto {
        6 => Some(16),
        17 => Some(6),
        _ => None,
    };
    if let Some(at) = at {
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&src);
        pseudo.extend_from_slice(&dst);
        pseudo.extend_from_slice(&[0, proto]);
        pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        let c = fold(sum16(&l4, sum16(&pseudo, 0)));
        l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    }
    p.extend_from_slice(&l4);
    p
}

pub fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    ipv4_tos(src, dst, proto, 0, l4)
}

pub fn tcp(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut t = Vec::with_capacity(20);
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&0x0102_0304u32.to_be_bytes());
    t.extend_from_slice(&0u32.to_be_bytes());
    t.extend_from_slice(&[0x50, flags]);
    t.extend_from_slice(&64240u16.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0]);
    t
}

pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// An IPv6 header (traffic class `tc`, flow label `label`) + `payload`.
pub fn ipv6(src: [u8; 16], dst: [u8; 16], next: u8, tc: u8, label: u32, payload: &[u8]) -> Vec<u8> {
    let first = (6u32 << 28) | (u32::from(tc) << 20) | (label & 0xfffff);
    let mut p = first.to_be_bytes().to_vec();
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next, 64]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(payload);
    p
}

/// UDP (checksum 0) + GUE version 0 data header for inner protocol `proto`.
pub fn gue(sport: u16, dport: u16, proto: u8, inner: &[u8]) -> Vec<u8> {
    let mut g = vec![0, proto, 0, 0];
    g.extend_from_slice(inner);
    udp(sport, dport, &g)
}

/// True if the 20-byte IPv4 header at `h` has a valid checksum.
pub fn ipv4_csum_ok(h: &[u8]) -> bool {
    fold(sum16(&h[..20], 0)) == 0
}

/// The test-only encapsulating director (`bpf/encap_test.c`).
pub static ENCAP_TEST_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/encap_test.bpf.o"));

/// `struct xvs_tun` of `bpf/include/encap.h`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XvsTun {
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub sport_be: u16,
    pub dport_be: u16,
    pub mtu: u16,
    pub family: u8,
    pub ttl: u8,
}

/// `struct tun_test_cfg` of `bpf/encap_test.c`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TunTestCfg {
    pub tun: XvsTun,
    pub dmac: Mac,
    pub smac: Mac,
    pub ifindex: u32,
    pub vip: [u8; 4],
    pub vport_be: u16,
    pub reserved: u16,
}

// SAFETY: plain old data without padding (sizes asserted below).
unsafe impl aya::Pod for TunTestCfg {}
const _: () = assert!(std::mem::size_of::<XvsTun>() == 40);
const _: () = assert!(std::mem::size_of::<TunTestCfg>() == 64);

impl XvsTun {
    pub fn v4(src: [u8; 4], dst: [u8; 4]) -> Self {
        let mut t = Self {
            family: 2,
            ..Self::default()
        };
        t.saddr[..4].copy_from_slice(&src);
        t.daddr[..4].copy_from_slice(&dst);
        t
    }

    pub fn v6(src: [u8; 16], dst: [u8; 16]) -> Self {
        Self {
            saddr: src,
            daddr: dst,
            family: 10,
            ..Self::default()
        }
    }

    pub fn gue(mut self, sport: u16, dport: u16) -> Self {
        self.sport_be = sport.to_be();
        self.dport_be = dport.to_be();
        self
    }
}

pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;
pub const XDP_REDIRECT: u32 = 4;
pub const TC_ACT_OK: u32 = 0;
pub const TC_ACT_SHOT: u32 = 2;
pub const TC_ACT_REDIRECT: u32 = 7;

/// The loaded test director.
pub struct EncapTest {
    pub ebpf: Ebpf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    Xdp,
    /// XDP through `xvs_encap_ipip4_xdp` where it applies (the flow cache's
    /// one-pass IPIP), else as `Xdp`.
    XdpIpip4,
    Tc,
}

impl EncapTest {
    pub fn load(cfg: TunTestCfg) -> Self {
        require_root();
        let mut ebpf = Ebpf::load(ENCAP_TEST_OBJECT).expect("parse encap_test.bpf.o");
        for name in ["tun_test_xdp", "tun_test_xdp_ipip4"] {
            let x: &mut Xdp = ebpf.program_mut(name).unwrap().try_into().unwrap();
            xvs_datapath::load_retrying(|| x.load())
                .unwrap_or_else(|e| panic!("load {name} (verifier): {e:?}"));
        }
        let t: &mut SchedClassifier = ebpf.program_mut("tun_test_tc").unwrap().try_into().unwrap();
        xvs_datapath::load_retrying(|| t.load()).expect("load tun_test_tc (verifier)");
        let mut e = Self { ebpf };
        e.set(cfg);
        e
    }

    pub fn set(&mut self, cfg: TunTestCfg) {
        let mut a: Array<&mut MapData, TunTestCfg> =
            Array::try_from(self.ebpf.map_mut("tun_test_cfg").unwrap()).unwrap();
        a.set(0, cfg, 0).unwrap();
    }

    /// (packets encapsulated, last encap helper return value).
    pub fn stats(&self) -> (i64, i64) {
        let a: Array<&MapData, i64> =
            Array::try_from(self.ebpf.map("tun_test_stats").unwrap()).unwrap();
        (a.get(&0, 0).unwrap(), a.get(&1, 0).unwrap())
    }

    /// Helper calls that failed.
    pub fn failures(&self) -> i64 {
        let a: Array<&MapData, i64> =
            Array::try_from(self.ebpf.map("tun_test_stats").unwrap()).unwrap();
        a.get(&3, 0).unwrap()
    }

    /// Longest frame the tc program encapsulated.
    pub fn max_len(&self) -> i64 {
        let a: Array<&MapData, i64> =
            Array::try_from(self.ebpf.map("tun_test_stats").unwrap()).unwrap();
        a.get(&2, 0).unwrap()
    }

    pub fn run(&self, which: Which, frame: &[u8]) -> (u32, Vec<u8>) {
        let mut out = vec![0u8; frame.len() + 256];
        let opts = TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ..TestRunOptions::default()
        };
        let res = match which {
            Which::Xdp | Which::XdpIpip4 => {
                let name = if which == Which::Xdp {
                    "tun_test_xdp"
                } else {
                    "tun_test_xdp_ipip4"
                };
                let p: &Xdp = self.ebpf.program(name).unwrap().try_into().unwrap();
                p.test_run(opts)
            }
            Which::Tc => {
                let p: &SchedClassifier = self
                    .ebpf
                    .program("tun_test_tc")
                    .unwrap()
                    .try_into()
                    .unwrap();
                p.test_run(opts)
            }
        }
        .unwrap_or_else(|e| panic!("{which:?} test run: {e:?}"));
        out.truncate(res.data_size_out as usize);
        (res.return_value, out)
    }

    /// Attaches the tc program to `iface`'s ingress (calling thread's netns).
    pub fn attach_tc(&mut self, iface: &str) {
        let _ = tc::qdisc_add_clsact(iface);
        let t: &mut SchedClassifier = self
            .ebpf
            .program_mut("tun_test_tc")
            .unwrap()
            .try_into()
            .unwrap();
        t.attach(iface, TcAttachType::Ingress)
            .expect("attach tun_test_tc");
    }
}

// ---- network namespaces ----

/// Runs a command, failing the test with its output if it fails.
pub fn run(prog: &str, args: &[&str]) {
    let out = Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {prog}: {e}"));
    assert!(
        out.status.success(),
        "{prog} {}: {}\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn output(prog: &str, args: &[&str]) -> String {
    let out = Command::new(prog).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn mac(m: Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A number unique within this test process (tests run in parallel threads).
pub fn unique() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A named network namespace `xvs-tun-<pid>-<n><tag>`, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Self {
        let name = format!("xvs-tun-{}-{}{tag}", std::process::id(), unique());
        run("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn ip(&self, args: &[&str]) {
        let mut a = vec!["-n", &self.name];
        a.extend_from_slice(args);
        run("ip", &a);
    }

    pub fn sysctl(&self, settings: &[&str]) {
        let mut a = vec!["netns", "exec", &self.name, "sysctl", "-qw"];
        a.extend_from_slice(settings);
        run("ip", &a);
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// Runs `f` on a new thread inside this namespace.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = self.path();
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

/// Deletes `xvs-tun-<pid>-*` namespaces whose pid is gone (killed runs).
pub fn reap_stale_namespaces() {
    for line in output("ip", &["netns", "list"]).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(rest) = name.strip_prefix("xvs-tun-") else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        if !pid.is_empty() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

pub fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

/// The LVS-TUN lab: client — director — real server, plus a direct
/// client–server link so replies bypass the director (as in LVS-TUN). The
/// director has no route to the VIP and no forwarding: only BPF delivers.
pub struct TunTopology {
    pub client: Netns,
    pub director: Netns,
    pub server: Netns,
}

/// Builds the lab with these namespace names and MACs for the director-side
/// (`d1`) and server-side (`r0`) ends of their link; `vip` goes on the real
/// server's loopback, `mtu` on that link.
pub fn tun_topology(
    names: [&str; 3],
    d1_mac: Mac,
    r0_mac: Mac,
    vip: std::net::Ipv4Addr,
    mtu: u16,
) -> TunTopology {
    reap_stale_namespaces();
    let t = TunTopology {
        client: Netns::new(names[0]),
        director: Netns::new(names[1]),
        server: Netns::new(names[2]),
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
            &mac(d1_mac),
            "type",
            "veth",
            "peer",
            "name",
            "r0",
            "netns",
            r,
            "address",
            &mac(r0_mac),
        ],
    );
    run(
        "ip",
        &[
            "link", "add", "c1", "netns", c, "type", "veth", "peer", "name", "r1", "netns", r,
        ],
    );

    t.client.ip(&["addr", "add", "198.18.0.2/24", "dev", "c0"]);
    t.client.ip(&["addr", "add", "198.18.3.2/24", "dev", "c1"]);
    t.client.ip(&["link", "set", "c0", "up"]);
    t.client.ip(&["link", "set", "c1", "up"]);
    t.client
        .ip(&["route", "add", "default", "via", "198.18.0.1"]);
    // Replies from the VIP arrive on c1, not where the route to the VIP goes.
    t.client.sysctl(&[
        "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.c0.rp_filter=0",
        "net.ipv4.conf.c1.rp_filter=0",
    ]);

    t.director
        .ip(&["addr", "add", "198.18.0.1/24", "dev", "d0"]);
    t.director
        .ip(&["addr", "add", "198.18.1.1/24", "dev", "d1"]);
    // The director-RS link must carry full-size client packets plus the
    // tunnel overhead, as with IPVS TUN: a larger MTU there (or ICMP
    // "fragmentation needed" from the director, which the test director
    // does not send; the xvs director does: tun_director.rs at 1500). With 1500, a single full-size non-GSO segment
    // encapsulated is 1520 bytes and veth drops it (is_skb_forwardable).
    t.director
        .ip(&["link", "set", "d1", "mtu", &mtu.to_string()]);
    t.server.ip(&["link", "set", "r0", "mtu", &mtu.to_string()]);
    t.director.ip(&["link", "set", "d0", "up"]);
    t.director.ip(&["link", "set", "d1", "up"]);
    // No route to the VIP and no forwarding: only the BPF program delivers.
    t.director.sysctl(&["net.ipv4.ip_forward=0"]);

    t.server.ip(&["addr", "add", "198.18.1.2/24", "dev", "r0"]);
    t.server.ip(&["addr", "add", "198.18.3.1/24", "dev", "r1"]);
    t.server
        .ip(&["addr", "add", &format!("{vip}/32"), "dev", "lo"]);
    t.server.ip(&["link", "set", "r0", "up"]);
    t.server.ip(&["link", "set", "r1", "up"]);
    // Straight back to the client, not through the director.
    t.server.ip(&[
        "route",
        "add",
        "198.18.0.2/32",
        "via",
        "198.18.3.2",
        "dev",
        "r1",
    ]);
    t.server.sysctl(&[
        "net.ipv4.conf.all.arp_ignore=1",
        "net.ipv4.conf.all.arp_announce=2",
        "net.ipv4.conf.r0.arp_ignore=1",
        "net.ipv4.conf.r0.arp_announce=2",
        "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.r0.rp_filter=0",
        "net.ipv4.conf.lo.rp_filter=0",
    ]);
    t
}
