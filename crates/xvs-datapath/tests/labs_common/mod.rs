//! The lab bench of `tests/labs.rs`: an xvs-testhost topology (client,
//! director, bridge, real servers in network namespaces, nginx in each real
//! server) with the xvs datapath attached on the director and its rules
//! driven through ipvsadm command lines, as an operator would type them.

#![allow(dead_code)] // not every test uses every helper

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr},
    path::Path,
    sync::{Mutex, MutexGuard},
};

use xvs_core::{
    ipvsadm::{self, command::ListOptions, NumericOnly},
    model::DestId,
    persist::Sysctls,
    table::IpvsTable,
};
use xvs_datapath::{Attachment, Datapath, LoadOptions, NextHop, XdpMode, L2};
use xvs_testhost::{cmd, Mode, Netns, Role, Topology, WebServer};

/// The HTTP port of the labs.
pub const PORT: u16 = 80;

/// Namespace prefix of these tests (stale ones from killed runs are swept).
const PREFIX: &str = "xvs-lab";

/// Fails the test, clearly, unless it runs as root.
pub fn require_root() {
    if let Err(e) = xvs_testhost::require_root() {
        panic!(
            "the xvs lab tests load BPF programs and build network namespaces: {e}. \
             They need root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN) and are never skipped."
        );
    }
}

/// The labs run one at a time: they share two cores, and the load tests
/// need the CPU for TCP's retransmissions to land within wrk's timeout.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where the real servers' next hops come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hops {
    /// `L2::default()`: the programs ask the kernel's FIB and neighbour
    /// tables (`bpf_fib_lookup`); the director has forwarding on (the
    /// topology sets `ip_forward=1`).
    Fib,
    /// Explicit `L2` entries (MACs and egress device) for every real server.
    Explicit,
}

/// Where the datapath is attached on the director.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attach {
    /// tc (clsact ingress, tcx link), veth offloads left on.
    Tc,
    /// Native XDP on the director's veth; the client's tx checksum offload
    /// is off and the veth peer that receives XDP_TX frames has an
    /// XDP_PASS program.
    Xdp,
    /// DR only: [`Attach::Xdp`] plus `xvs_tc` on the same device, which
    /// sends the frames XDP could not (no neighbour entry: XDP passes them
    /// with metadata) with `bpf_redirect_neigh`. No managed neighbour
    /// entries needed.
    XdpTc,
}

/// One lab: topology, rules, datapath. Field order is drop order: the
/// datapaths detach before the namespaces go; the serial lock goes last.
pub struct Lab {
    pub dp: Datapath,
    /// NAT/DR links of `dp` (kept for the record; dropping `dp` detaches).
    pub attachments: Vec<Attachment>,
    /// A second, rule-less datapath whose XDP program passes every frame:
    /// the XDP_PASS program on the veth peer that XDP_TX frames enter.
    pub pass: Option<Datapath>,
    pub table: IpvsTable,
    pub sysctls: Sysctls,
    pub l2: L2,
    pub web: Vec<WebServer>,
    pub topo: Topology,
    _serial: MutexGuard<'static, ()>,
}

fn load() -> Datapath {
    load_pinned(None)
}

/// Loads the datapath, its maps pinned in `pin` if given (see
/// `LoadOptions::pin_dir`).
pub fn load_pinned(pin: Option<&Path>) -> Datapath {
    let opts = LoadOptions {
        pin_dir: pin.map(Path::to_path_buf),
        ..LoadOptions::with_max_conns(1 << 16)
    };
    Datapath::load_with(opts).unwrap_or_else(|e| panic!("loading the xvs datapath: {e:?}"))
}

fn build(mode: Mode, servers: usize) -> Topology {
    Topology::builder(mode)
        .servers(servers)
        .prefix(PREFIX)
        .build()
        .unwrap_or_else(|e| panic!("building the {mode} lab: {e}"))
}

fn mac_of(t: &Topology, role: Role, ifname: &str) -> [u8; 6] {
    t.plan()
        .iface(role, ifname)
        .unwrap_or_else(|| panic!("{role:?} has no {ifname}"))
        .mac
}

impl Lab {
    /// LVS-NAT: the director (`d0` client side with the VIP, `d1` towards
    /// the real servers' bridge) is the real servers' default gateway.
    /// `xvs_tc` on `d0` ingress DNATs client packets and redirects them out
    /// of `d1`; on `d1` ingress it SNATs the replies back to the VIP and
    /// sends them straight out of `d0` to the client (next hop from the
    /// FIB), so the director needs no `accept_local`. Next hops from the FIB.
    pub fn nat(servers: usize, web: bool) -> Lab {
        Self::nat_with(servers, web, Hops::Fib, Attach::Tc, None)
    }

    /// [`Lab::nat`] with the real servers' next hops from `hops`, attached
    /// with `attach`. XDP: native `xvs_xdp` on `d0` and `d1` (the DNATed
    /// packets are redirected from d0 to d1, the SNATed replies from d1 to
    /// d0); the veth peers those frames enter
    /// (`p-d` on the bridge, the client's `c0`) get an XDP_PASS program,
    /// and the client's and the real servers' tx checksum offload is off.
    /// With `pin`, the datapath's maps and links are pinned there (tc only):
    /// the attachments outlive `dp`.
    pub fn nat_with(
        servers: usize,
        web: bool,
        hops: Hops,
        attach: Attach,
        pin: Option<&Path>,
    ) -> Lab {
        require_root();
        let guard = serial();
        let topo = build(Mode::Nat, servers);
        let web = if web { start_web(&topo) } else { vec![] };
        let mut dp = load_pinned(pin);
        let d = topo.director();
        // The replies are not handed to the director's stack any more, so
        // the VIP as their source is no martian: accept_local stays off.
        assert_eq!(
            d.get_sysctl("net.ipv4.conf.d1.accept_local")
                .expect("reading accept_local on d1")
                .trim(),
            "0",
            "accept_local on d1"
        );
        let mut pass = None;
        if attach == Attach::Xdp {
            cmd::require_tool("ethtool", "ethtool").unwrap_or_else(|e| panic!("{e}"));
            topo.client()
                .exec(&["ethtool", "-K", "c0", "tx", "off"])
                .expect("ethtool -K c0 tx off in the client");
            for s in topo.servers() {
                s.exec(&["ethtool", "-K", "r0", "tx", "off"])
                    .expect("ethtool -K r0 tx off in a real server");
            }
            let mut p = load();
            let lan = topo.lan().expect("NAT lab has a lan namespace");
            lan.enter(|| {
                p.attach_xdp("p-d", XdpMode::Driver)
                    .expect("attach XDP_PASS to p-d")
            })
            .expect("entering the lan");
            topo.client()
                .enter(|| {
                    p.attach_xdp("c0", XdpMode::Driver)
                        .expect("attach XDP_PASS to c0")
                })
                .expect("entering the client");
            pass = Some(p);
        }
        let (attachments, d1) = d
            .enter(|| {
                let d1 = xvs_datapath::ifindex("d1").expect("d1 in the director");
                if pin.is_some() {
                    assert_eq!(attach, Attach::Tc, "pinned NAT labs attach with tc");
                    for i in ["d0", "d1"] {
                        dp.attach_pinned_tc(i)
                            .unwrap_or_else(|e| panic!("pinned xvs_tc on {i}: {e}"));
                    }
                    return (vec![], d1);
                }
                let a = match attach {
                    Attach::Tc => vec![
                        dp.attach_tc("d0").expect("attach xvs_tc to d0 ingress"),
                        dp.attach_tc("d1").expect("attach xvs_tc to d1 ingress"),
                    ],
                    Attach::Xdp | Attach::XdpTc => vec![
                        dp.attach_xdp("d0", XdpMode::Driver)
                            .expect("attach xvs_xdp (native) to d0"),
                        dp.attach_xdp("d1", XdpMode::Driver)
                            .expect("attach xvs_xdp (native) to d1"),
                    ],
                };
                (a, d1)
            })
            .expect("entering the director");
        let mut l2 = L2::default();
        if hops == Hops::Explicit {
            let src_mac = mac_of(&topo, Role::Director, "d1");
            for i in 0..servers {
                l2.by_addr.insert(
                    IpAddr::V4(topo.plan().server_addr(i)),
                    NextHop {
                        mac: mac_of(&topo, Role::Server(i), "r0"),
                        src_mac,
                        ifindex: d1,
                    },
                );
            }
        }
        Lab {
            dp,
            attachments,
            pass,
            table: IpvsTable::new(),
            sysctls: Sysctls::default(),
            l2,
            web,
            topo,
            _serial: guard,
        }
    }

    /// LVS-DR: client, director and real servers on one bridge; the VIP is
    /// on the director's `d0` and on every real server's `lo`
    /// (arp_ignore=1, arp_announce=2). The datapath rewrites the MACs and
    /// sends the frame back out of `d0` to the chosen real server, which
    /// answers the client directly.
    ///
    /// With [`Hops::Fib`] the real servers' MACs come from the director's
    /// neighbour table. tc resolves a missing entry itself
    /// (`bpf_redirect_neigh`); XDP cannot, so for XDP the director keeps
    /// the real servers' entries resolved with managed neighbour entries
    /// (`ip neigh replace RS dev d0 managed`), as a daemon would.
    pub fn dr(servers: usize, attach: Attach) -> Lab {
        Self::dr_with(servers, attach, Hops::Fib, None)
    }

    /// [`Lab::dr`] with the real servers' next hops from `hops`, and the
    /// datapath's maps and links pinned in `pin` when given (the
    /// attachments outlive `dp`).
    pub fn dr_with(servers: usize, attach: Attach, hops: Hops, pin: Option<&Path>) -> Lab {
        require_root();
        let guard = serial();
        let topo = build(Mode::Dr, servers);
        let web = start_web(&topo);
        let mut dp = load_pinned(pin);
        let mut pass = None;
        let d = topo.director();
        let attachments = match attach {
            Attach::Tc if pin.is_some() => d
                .enter(|| {
                    dp.attach_pinned_tc("d0").expect("pinned xvs_tc on d0");
                    vec![]
                })
                .expect("entering the director"),
            Attach::Tc => d
                .enter(|| vec![dp.attach_tc("d0").expect("attach xvs_tc to d0 ingress")])
                .expect("entering the director"),
            Attach::Xdp | Attach::XdpTc => {
                // The client's stack leaves TCP checksums to the "hardware"
                // (CHECKSUM_PARTIAL), which XDP cannot see: the frame XDP
                // sends on would carry a partial checksum. Offload off.
                cmd::require_tool("ethtool", "ethtool").unwrap_or_else(|e| panic!("{e}"));
                topo.client()
                    .exec(&["ethtool", "-K", "c0", "tx", "off"])
                    .expect("ethtool -K c0 tx off in the client");
                // XDP_TX on d0 puts the frame on its peer p-d (the bridge
                // port), which only takes XDP frames when it has an XDP
                // program itself: a rule-less xvs_xdp passes everything.
                let mut p = load();
                let lan = topo.lan().expect("DR lab has a lan namespace");
                lan.enter(|| {
                    p.attach_xdp("p-d", XdpMode::Driver)
                        .expect("attach XDP_PASS to p-d")
                })
                .expect("entering the lan");
                pass = Some(p);
                d.enter(|| {
                    if pin.is_some() {
                        dp.attach_pinned_xdp("d0", XdpMode::Driver)
                            .expect("pinned xvs_xdp (native) on d0");
                        return vec![];
                    }
                    let mut a = vec![dp
                        .attach_xdp("d0", XdpMode::Driver)
                        .expect("attach xvs_xdp (native) to d0")];
                    if attach == Attach::XdpTc {
                        a.push(dp.attach_tc("d0").expect("attach xvs_tc to d0 ingress"));
                    }
                    a
                })
                .expect("entering the director")
            }
        };
        let mut l2 = L2::default();
        match hops {
            Hops::Explicit => {
                let src_mac = mac_of(&topo, Role::Director, "d0");
                for i in 0..servers {
                    l2.by_addr.insert(
                        IpAddr::V4(topo.plan().server_addr(i)),
                        NextHop {
                            mac: mac_of(&topo, Role::Server(i), "r0"),
                            src_mac,
                            ifindex: 0, // back out of d0
                        },
                    );
                }
            }
            Hops::Fib if attach == Attach::Xdp => {
                for i in 0..servers {
                    let rs = topo.plan().server_addr(i).to_string();
                    d.ip(&["neigh", "replace", &rs, "dev", "d0", "managed"])
                        .expect("managed neighbour entry for a real server");
                }
                for i in 0..servers {
                    let rs = topo.plan().server_addr(i).to_string();
                    cmd::wait_until(
                        &format!("the director to resolve {rs}"),
                        std::time::Duration::from_secs(5),
                        || {
                            let out = d.ip(&["neigh", "show", &rs, "dev", "d0"])?;
                            if out.contains("lladdr") {
                                Ok(())
                            } else {
                                Err(xvs_testhost::Error::Invalid(out))
                            }
                        },
                    )
                    .unwrap_or_else(|e| panic!("{e}"));
                }
            }
            Hops::Fib => {}
        }
        Lab {
            dp,
            attachments,
            pass,
            table: IpvsTable::new(),
            sysctls: Sysctls::default(),
            l2,
            web,
            topo,
            _serial: guard,
        }
    }

    pub fn vip(&self) -> Ipv4Addr {
        self.topo.vip()
    }

    /// Real server i's address.
    pub fn rs(&self, i: usize) -> Ipv4Addr {
        self.topo.plan().server_addr(i)
    }

    /// Applies one ipvsadm command line (`{vip}` and `{rsN}` are replaced
    /// by the lab's addresses) and syncs the datapath, as xvsd does after
    /// every command.
    pub fn ipvsadm(&mut self, line: &str) {
        let mut l = line.replace("{vip}", &self.vip().to_string());
        for i in 0..self.topo.plan().server_count() {
            l = l.replace(&format!("{{rs{i}}}"), &self.rs(i).to_string());
        }
        let words: Vec<&str> = l.split_whitespace().collect();
        let cmd = ipvsadm::parse::parse_args(&words, &NumericOnly)
            .unwrap_or_else(|e| panic!("ipvsadm {l}: {e}"));
        self.table
            .apply(&cmd)
            .unwrap_or_else(|e| panic!("ipvsadm {l}: {e}"));
        self.sync();
    }

    /// Writes the table into the datapath.
    pub fn sync(&mut self) {
        self.dp
            .sync(&self.table, &self.sysctls, &self.l2)
            .unwrap_or_else(|e| panic!("syncing the datapath: {e}"));
    }

    /// The DestId of real server i (listed or in the trash).
    pub fn dest(&self, i: usize) -> DestId {
        let addr = IpAddr::V4(self.rs(i));
        self.table
            .services()
            .flat_map(|s| s.dests.iter())
            .chain(self.table.trash())
            .find(|d| d.cfg.addr == addr)
            .unwrap_or_else(|| panic!("rs{i} ({addr}) is not in the table"))
            .id
    }

    /// (ActiveConn, InActConn) of real server i in the datapath.
    pub fn counts(&self, i: usize) -> (u32, u32) {
        let c = self
            .dp
            .real_counts(self.dest(i))
            .expect("reading real counts")
            .unwrap_or_default();
        (c.active, c.inactive)
    }

    /// Connections scheduled to real server i (the `Conns` column).
    pub fn conns(&self, i: usize) -> u64 {
        self.stats(i).conns
    }

    pub fn stats(&self, i: usize) -> xvs_core::stats::Counters {
        self.dp
            .real_stats(self.dest(i))
            .expect("reading real stats")
            .unwrap_or_default()
    }

    /// `ipvsadm -Ln --stats` from the datapath's counters, plus
    /// ActiveConn/InActConn (`-Ln`).
    pub fn listing(&self) -> String {
        let snap = self.dp.snapshot(&self.table).expect("snapshot");
        let stats = ipvsadm::format::list(
            &snap,
            &ListOptions {
                numeric: true,
                stats: true,
                ..ListOptions::default()
            },
            &NumericOnly,
        )
        .expect("list --stats");
        let plain = ipvsadm::format::list(
            &snap,
            &ListOptions {
                numeric: true,
                ..ListOptions::default()
            },
            &NumericOnly,
        )
        .expect("list");
        format!("{plain}{stats}")
    }

    /// Like [`Lab::curl_close`], from source address `src` (an address of
    /// the client's, `curl --interface`).
    pub fn curl_close_from(&self, src: Ipv4Addr, n: usize) -> BTreeMap<String, usize> {
        let url = format!("http://{}:{PORT}/?[1-{n}]", self.vip());
        let src = src.to_string();
        let out = self
            .topo
            .client()
            .exec(&[
                "curl",
                "-sS",
                "--fail",
                "--fail-early",
                "--noproxy",
                "*",
                "--interface",
                &src,
                "--connect-timeout",
                "5",
                "--max-time",
                "10",
                "-H",
                "Connection: close",
                &url,
            ])
            .unwrap_or_else(|e| panic!("curl {url} from {src} in the client: {e}"));
        let mut by = BTreeMap::new();
        for l in out.lines() {
            *by.entry(l.to_string()).or_default() += 1;
        }
        assert_eq!(
            by.values().sum::<usize>(),
            n,
            "curl from {src} got {} answers for {n} requests: {out:?}",
            by.values().sum::<usize>()
        );
        by
    }

    /// wrk with keep-alive from the client for `duration` (16 connections,
    /// 5 s per-request timeout), on a thread of `s` (knowing the client
    /// namespace by name), so the test can change the rules meanwhile.
    pub fn wrk_keepalive<'s>(
        &self,
        s: &'s std::thread::Scope<'s, '_>,
        duration: std::time::Duration,
    ) -> std::thread::ScopedJoinHandle<'s, xvs_testhost::WrkResult> {
        let mut o = xvs_testhost::WrkOptions::new(&self.url());
        o.connections = 16;
        o.duration = duration;
        o.timeout = std::time::Duration::from_secs(5);
        let ns = self.topo.client().name().to_string();
        s.spawn(move || {
            let mut c = std::process::Command::new("ip");
            c.args(["netns", "exec", &ns]).args(o.argv());
            let out = cmd::run(&mut c).unwrap_or_else(|e| panic!("wrk: {e}"));
            xvs_testhost::load::parse_wrk(&out).unwrap_or_else(|e| panic!("wrk: {e}"))
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}:{PORT}/", self.vip())
    }

    /// `n` HTTP requests from the client with one curl, each on a new
    /// connection (`Connection: close`); returns how many each server
    /// answered, by the name in the body.
    pub fn curl_close(&self, n: usize) -> BTreeMap<String, usize> {
        let url = format!("http://{}:{PORT}/?[1-{n}]", self.vip());
        let out = self
            .topo
            .client()
            .exec(&[
                "curl",
                "-sS",
                "--fail",
                "--fail-early",
                "--noproxy",
                "*",
                "--connect-timeout",
                "5",
                "--max-time",
                "10",
                "-H",
                "Connection: close",
                &url,
            ])
            .unwrap_or_else(|e| panic!("curl {url} from the client: {e}"));
        let mut by = BTreeMap::new();
        for l in out.lines() {
            *by.entry(l.to_string()).or_default() += 1;
        }
        assert_eq!(
            by.values().sum::<usize>(),
            n,
            "curl got {} answers for {n} requests: {out:?}",
            by.values().sum::<usize>()
        );
        by
    }
}

fn start_web(t: &Topology) -> Vec<WebServer> {
    t.start_web_servers(PORT)
        .unwrap_or_else(|e| panic!("starting nginx in the real servers: {e}"))
}

/// An interface counter from `/sys/class/net/DEV/statistics` in `ns`.
pub fn if_stat(ns: &Netns, dev: &str, stat: &str) -> u64 {
    let path = format!("/sys/class/net/{dev}/statistics/{stat}");
    ns.exec(&["cat", &path])
        .unwrap_or_else(|e| panic!("reading {path} in {}: {e}", ns.name()))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `{"rs0": 200, "rs1": 100}` -> `rs0=200 rs1=100`.
pub fn show(by: &BTreeMap<String, usize>) -> String {
    by.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// How many answers came from server `name`.
pub fn got(by: &BTreeMap<String, usize>, name: &str) -> usize {
    by.get(name).copied().unwrap_or(0)
}
