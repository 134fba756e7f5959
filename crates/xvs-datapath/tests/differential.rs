//! Differential test: the same rules and the same packets through the
//! reference model (`xvs_core::director::Director`) and through the BPF
//! programs (BPF_PROG_TEST_RUN, XDP and tc at random, sharing the maps). For
//! every packet the verdict and the real server must agree, and at
//! checkpoints every real server's ActiveConn/InActConn.
//!
//! Events: new TCP connections from random clients (SYN), ACKs, FINs, RSTs,
//! repeated SYNs (connection reuse), NAT replies, weight edits, real-server
//! adds, removals and re-adds (the trash), thresholds (-x/-y). SCTP runs
//! (`--sctp-service`) send chunks instead: INITs open associations, then
//! any chunk either way (COOKIE ECHO, COOKIE ACK, DATA, SHUTDOWN*, ABORT,
//! ERROR, an ABORT bundled after a cookie chunk, INIT again), so the
//! kernel's SCTP state tables, as the model has them, are compared with the
//! datapath's through ActiveConn/InActConn and the verdicts.
//!
//! Time is virtual: the model gets `Time(ms)` and the datapath a fixed clock
//! (`Datapath::set_clock`) at the same instant, advanced 1 ms per event. The
//! plain scheduler runs stay inside every timeout; the persistence runs also
//! jump ahead by up to 150 s now and then, so connections and templates
//! expire (the model's timers and `Datapath::expire` run at the same
//! instants), and templates outlive their timeout while they control
//! connections. Persistence runs also compare PersistConn and the number of
//! connections and templates at every checkpoint.
//!
//! IPv6: the same runs with an IPv6 service (addresses from 2001:2::/48,
//! clients in four /64s with varied interface identifiers, `-M 64`
//! persistence, `-f 7 -6`), and mixed runs with an IPv4 and an IPv6 service
//! (same scheduler and options) in one datapath, every event on either.
//!
//! Needs root and a BPF-capable kernel; fails (does not skip) without them.

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::*;
use xvs_core::conn::sctp::chunk;
use xvs_core::conn::{Pkt, TcpFlags, TcpState};
use xvs_core::director::{Director, DropReason, Packet, Verdict};
use xvs_core::model::{Family, Flow, FwdMethod, Protocol, ServiceKey};
use xvs_core::rng::{Rng, SplitMix64};
use xvs_core::time::Time;
use xvs_datapath::{verdict::*, Datapath, NextHop, Prog, L2};

const VIP: [u8; 4] = [198, 18, 2, 1];
const VIP6: &str = "2001:2::1";
const DIRECTOR_MAC: Mac = [0x02, 0x78, 0x76, 0x73, 0x00, 0x02];
const EGRESS_MAC: Mac = [0x02, 0x78, 0x76, 0x73, 0x00, 0x04];
const POOL: u8 = 8;

fn rs_addr(i: u8) -> [u8; 4] {
    [198, 18, 1, 10 + i]
}

fn rs_mac(i: u8) -> Mac {
    [0x02, 0x78, 0x76, 0x73, 0x02, 10 + i]
}

/// The IPv6 pool: 2001:2:0:1::(10 + i).
fn rs_addr6(i: u8) -> IpAddr {
    let mut a = "2001:2:0:1::".parse::<Ipv6Addr>().unwrap().octets();
    a[15] = 10 + i;
    IpAddr::from(a)
}

fn rs_mac6(i: u8) -> Mac {
    [0x02, 0x78, 0x76, 0x73, 0x06, 10 + i]
}

fn rs_ip(i: u8, v6: bool) -> IpAddr {
    if v6 {
        rs_addr6(i)
    } else {
        IpAddr::V4(Ipv4Addr::from(rs_addr(i)))
    }
}

/// `a` as ipvsadm takes it with a port.
fn with_port(a: IpAddr, port: u16) -> String {
    match a {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// IPv6 VIP number n (0 = VIP6).
fn vip6(n: u8) -> IpAddr {
    let mut a = VIP6.parse::<Ipv6Addr>().unwrap().octets();
    a[15] += n;
    IpAddr::from(a)
}

/// Client `host` of network `net`: 198.19.net.host, or for IPv6
/// 2001:2:0:(0x100 + net):(host * 0x1111):(host * 0x77):0:host, a
/// different interface identifier per host within one /64.
fn client_addr(v6: bool, net: u8, host: u8) -> IpAddr {
    if !v6 {
        return IpAddr::V4(Ipv4Addr::new(198, 19, net, host));
    }
    let h = u16::from(host);
    IpAddr::V6(Ipv6Addr::new(
        0x2001,
        2,
        0,
        0x100 + u16::from(net),
        h.wrapping_mul(0x1111),
        h.wrapping_mul(0x77),
        0,
        h,
    ))
}

fn v6_octets(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(a) => panic!("{a} is not IPv6"),
    }
}

fn v4_octets(a: IpAddr) -> [u8; 4] {
    match a {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(a) => panic!("{a} is not IPv4"),
    }
}

/// A real server of the pool as the test configures it.
#[derive(Clone, Copy)]
struct RsCfg {
    /// Of the IPv6 pool (an IPv6 service's).
    v6: bool,
    nat: bool,
    weight: u32,
    upper: u32,
    lower: u32,
    /// The service port (DR servers take it; 0 on a port-zero service).
    svc_port: u16,
}

impl RsCfg {
    fn target(&self, i: u8) -> String {
        let a = rs_ip(i, self.v6);
        if self.nat {
            format!("-r {} -m", with_port(a, 8080))
        } else {
            format!("-r {} -g", with_port(a, self.svc_port))
        }
    }
    fn args(&self, i: u8) -> String {
        format!(
            "{} -w {} -x {} -y {}",
            self.target(i),
            self.weight,
            self.upper,
            self.lower
        )
    }
}

#[derive(Clone, Copy)]
struct Open {
    client: IpAddr,
    sport: u16,
    vip: IpAddr,
    dport: u16,
    /// Where the model sent it last (daddr, dport, method).
    to: Option<(IpAddr, u16, FwdMethod)>,
}

struct Run {
    dir: Director,
    dp: Datapath,
    l2: L2,
    rng: SplitMix64,
    /// The virtual clock, ms.
    now_ms: u64,
    packets: u64,
    /// The service is lblc/lblcr.
    lbl: bool,
    /// Firewall mark of the service (0: a TCP service), put on packets run
    /// through tc.
    mark: u32,
    /// Verdicts seen: to a real server, NAT reply, pass, drop.
    seen: [u64; 4],
    /// Of the drops, XDP's answered with a port unreachable.
    unreachables: u64,
    /// An SCTP service: `flags` are a chunk type, | [`BUNDLED_ABORT`].
    sctp: bool,
}

/// In an SCTP run's `flags`: an ABORT chunk follows the first.
const BUNDLED_ABORT: u8 = 0x80;

impl Run {
    fn now(&self) -> Time {
        Time(self.now_ms)
    }

    /// Moves both clocks to `now_ms + ms` and runs the timers that are due:
    /// the model's, and the datapath's sweep when the model has an entry due
    /// (the datapath's entries have the same deadlines).
    fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
        self.dp.set_clock(Some(self.now_ms * 1_000_000)).unwrap();
        self.timers();
    }

    fn timers(&mut self) {
        let now = self.now();
        let due = self.dir.conns().iter().any(|(_, c)| c.expires <= now);
        self.dir.expire(now);
        self.dp.forget_purged(&self.dir.table);
        // lblc/lblcr: the cache timer runs in every sweep, so sweep whenever
        // the model's timers run.
        if due || self.lbl {
            self.dp.expire().unwrap();
        }
    }

    fn apply(&mut self, line: &str) -> bool {
        let ok = self.dir.apply(&cmd(line)).is_ok();
        self.dp
            .sync(&self.dir.table, &self.dir.sysctls, &self.l2)
            .unwrap_or_else(|e| panic!("sync after {line}: {e}"));
        ok
    }

    fn mac_to_addr(&self, mac: &[u8]) -> Option<IpAddr> {
        (0..POOL)
            .find(|&i| rs_mac(i) == mac)
            .map(|i| IpAddr::V4(Ipv4Addr::from(rs_addr(i))))
            .or_else(|| (0..POOL).find(|&i| rs_mac6(i) == mac).map(rs_addr6))
    }

    /// One packet through both; panics on any disagreement.
    fn packet(
        &mut self,
        what: &str,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        flags: u8,
    ) -> Verdict {
        let v6 = src.is_ipv6();
        let (proto, l4) = if self.sctp {
            let first = flags & !BUNDLED_ABORT;
            let mut chunks: Vec<(u8, u8, &[u8])> = vec![(first, 0, b"chunk value")];
            if flags & BUNDLED_ABORT != 0 {
                chunks.push((chunk::ABORT, 0, b""));
            }
            (132, sctp(sport, dport, 0x5c7b, &chunks))
        } else {
            (6, tcp(sport, dport, flags))
        };
        let (frame, len) = if v6 {
            (
                eth(
                    DIRECTOR_MAC,
                    [0x02, 0, 0, 0, 0, 1],
                    0x86dd,
                    &ipv6_l4(v6_octets(src), v6_octets(dst), proto, &l4),
                ),
                40 + l4.len() as u32,
            )
        } else {
            (
                eth(
                    DIRECTOR_MAC,
                    [0x02, 0, 0, 0, 0, 1],
                    0x0800,
                    &ipv4(v4_octets(src), v4_octets(dst), proto, &l4),
                ),
                20 + l4.len() as u32,
            )
        };
        // IP header length: where the ports are
        let ihl = if v6 { 40 } else { 20 };
        let flow = Flow {
            protocol: if self.sctp {
                Protocol::Sctp
            } else {
                Protocol::Tcp
            },
            src,
            sport,
            dst,
            dport,
        };
        let l4 = if self.sctp {
            Pkt::Sctp {
                first_chunk: flags & !BUNDLED_ABORT,
                abort_follows: flags & BUNDLED_ABORT != 0,
            }
        } else {
            Pkt::Tcp(TcpFlags::new(
                flags & 2 != 0,
                flags & 1 != 0,
                flags & 0x10 != 0,
                flags & 4 != 0,
            ))
        };
        let prog = if self.rng.below(2) == 0 {
            Prog::Xdp
        } else {
            Prog::Tc
        };
        // A fwmark service sees marked packets through tc only (XDP has no
        // mark: the model gets none either).
        let mark = if prog == Prog::Tc { self.mark } else { 0 };
        let pkt = Packet {
            flow,
            l4,
            len,
            fwmark: mark,
        };
        let now = self.now();
        let want = self.dir.process(now, &pkt);
        // The kernel's timer frees an entry marked to expire a jiffy later:
        // run the timers before the next packet.
        self.timers();
        let got = self.dp.test_run_marked(prog, &frame, mark).unwrap();
        self.packets += 1;
        // Debugging aid: XVS_DEBUG_CLIENT=198.19.3. prints every packet of
        // those clients with the model's entries for them.
        if std::env::var("XVS_DEBUG_CLIENT")
            .is_ok_and(|c| src.to_string().starts_with(&c) || dst.to_string().starts_with(&c))
        {
            eprintln!(
                "DEBUG now {} {what} {flow:?} flags {flags:#x}: model {want:?} dp {}",
                self.now_ms, got.verdict
            );
            for (_, c) in self.dir.conns().iter().filter(|(_, c)| {
                c.caddr
                    .to_string()
                    .starts_with(&std::env::var("XVS_DEBUG_CLIENT").unwrap())
            }) {
                eprintln!("   model entry {:?}", c);
            }
        }
        let ctx = format!("packet #{} ({what}, {prog:?}, {flow:?} flags {flags:#x}): model {want:?}, datapath verdict {} frame {:02x?}", self.packets, got.verdict, &got.packet[..]);
        let (pass, drop, fwd) = match prog {
            Prog::Xdp => (XDP_PASS, XDP_DROP, XDP_TX),
            Prog::Tc => (TC_ACT_OK, TC_ACT_SHOT, TC_ACT_REDIRECT),
        };
        self.seen[match want {
            Verdict::ToReal { .. } => 0,
            Verdict::ToClient { .. } => 1,
            Verdict::Pass => 2,
            Verdict::Drop(_) => 3,
        }] += 1;
        match want {
            Verdict::Pass => {
                assert_eq!(got.verdict, pass, "{ctx}\n{}", self.dump());
                assert_eq!(got.packet, frame, "{ctx}\n{}", self.dump());
            }
            // ip_vs_leave()'s port unreachable (the fixtures have its
            // bytes): back to the client, quoting the packet, unless the
            // per-CPU rate limit held it back (then a drop)
            Verdict::Drop(DropReason::NoDestination) if got.verdict == fwd => {
                let (ip, sent) = (&got.packet[14..], &frame[14..]);
                // header, protocol, type/code; addresses; the quote: the
                // IP header and TCP/UDP through its checksum
                let (hl, proto, tc, a) = if v6 {
                    (40, (ip[6], 58), (1, 4), (8, 24, 16))
                } else {
                    (20, (ip[9], 1), (3, 3), (12, 16, 4))
                };
                let quote = hl
                    + if flow.protocol == Protocol::Tcp {
                        18
                    } else {
                        8
                    };
                assert_eq!(got.packet.len(), 14 + hl + 8 + quote, "{ctx}");
                assert_eq!(proto.0, proto.1, "{ctx}");
                assert_eq!((ip[hl], ip[hl + 1]), tc, "{ctx}");
                let (src, dst, n) = a;
                assert_eq!(
                    (&ip[src..src + n], &ip[dst..dst + n]),
                    (&sent[dst..dst + n], &sent[src..src + n]),
                    "{ctx}"
                );
                assert_eq!(&ip[hl + 8..], &sent[..quote], "{ctx}");
                self.unreachables += 1;
            }
            Verdict::Drop(_) => assert_eq!(got.verdict, drop, "{ctx}\n{}", self.dump()),
            Verdict::ToClient { vaddr, vport } => {
                assert_eq!(got.verdict, pass, "{ctx}\n{}", self.dump());
                let ip = &got.packet[14..];
                let saddr = if v6 {
                    IpAddr::from(<[u8; 16]>::try_from(&ip[8..24]).unwrap())
                } else {
                    IpAddr::V4(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]))
                };
                assert_eq!(saddr, vaddr, "{ctx}\n{}", self.dump());
                assert_eq!(
                    u16::from_be_bytes([ip[ihl], ip[ihl + 1]]),
                    vport,
                    "{ctx}\n{}",
                    self.dump()
                );
                assert!(checksums_ok_any(&got.packet), "{ctx}\n{}", self.dump());
            }
            Verdict::ToReal {
                daddr,
                dport,
                fwd: method,
                ..
            } => {
                assert_eq!(got.verdict, fwd, "{ctx}\n{}", self.dump());
                assert_eq!(
                    self.mac_to_addr(&got.packet[..6]),
                    Some(daddr),
                    "{ctx}\n{}",
                    self.dump()
                );
                let ip = &got.packet[14..];
                if method == FwdMethod::Masq {
                    let got_daddr = if v6 {
                        IpAddr::from(<[u8; 16]>::try_from(&ip[24..40]).unwrap())
                    } else {
                        IpAddr::V4(Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]))
                    };
                    assert_eq!(got_daddr, daddr, "{ctx}\n{}", self.dump());
                    assert_eq!(
                        u16::from_be_bytes([ip[ihl + 2], ip[ihl + 3]]),
                        dport,
                        "{ctx}\n{}",
                        self.dump()
                    );
                } else {
                    assert_eq!(&got.packet[14..], &frame[14..], "{ctx}\n{}", self.dump());
                }
                assert!(checksums_ok_any(&got.packet), "{ctx}\n{}", self.dump());
            }
        }
        want
    }

    /// Both sides' templates and counts, for a failure message.
    fn dump(&self) -> String {
        let mut out = format!("now {} ms\nmodel templates:\n", self.now_ms);
        for (_, c) in self.dir.conns().iter().filter(|(_, c)| c.is_template()) {
            out += &format!(
                "  {} vport {} -> {:?} dport {} expires {} timeout {} n_control {}\n",
                c.caddr, c.vport, c.dest, c.dport, c.expires.0, c.timeout, c.n_control
            );
        }
        for svc in self.dir.table.services() {
            if let xvs_core::sched::Sched::Lblcr(l) = &svc.sched {
                for e in l.entries() {
                    out += &format!(
                        "model lblcr {} lastmod {} lastuse {} members {:?}\n",
                        e.addr, e.set.lastmod.0, e.lastuse.0, e.set.members
                    );
                }
            }
        }
        for (_, e) in self.dp.lblcr_sets() {
            out += &format!(
                "datapath lblcr lastmod {} lastuse {} members {:?}\n",
                e.lastmod / 1_000_000,
                e.lastuse / 1_000_000,
                &e.m[..e.n as usize]
            );
        }
        out += "datapath templates:\n";
        for t in self.dp.templates() {
            out += &format!(
                "  {} vport {} -> {} dport {} expires {} timeout {} n_control {} flags {}\n",
                xvs_datapath::maps::words_addr(t.key.caddr, t.key.family)
                    .map_or("?".to_string(), |a| a.to_string()),
                u16::from_be(t.key.vport),
                t.real_id,
                u16::from_be(t.dport),
                t.expires / 1_000_000,
                t.timeout,
                t.n_control,
                t.flags
            );
        }
        for svc in self.dir.table.services() {
            for d in &svc.dests {
                let c = self.dp.real_counts(d.id).unwrap().unwrap_or_default();
                out += &format!(
                    "  {:?} {} w {}: model a/i/p {}/{}/{} ov {}, datapath {}/{}/{} ov {}\n",
                    d.id,
                    d.cfg.addr,
                    d.cfg.weight,
                    d.active_conns,
                    d.inact_conns,
                    d.persist_conns,
                    d.overloaded,
                    c.active,
                    c.inactive,
                    c.persist,
                    c.overloaded
                );
            }
        }
        out
    }

    fn checkpoint(&self, at: usize) {
        for svc in self.dir.table.services() {
            for d in &svc.dests {
                let c = self.dp.real_counts(d.id).unwrap().unwrap_or_default();
                assert_eq!(
                    (c.active, c.inactive, c.persist, c.overloaded),
                    (d.active_conns, d.inact_conns, d.persist_conns, d.overloaded),
                    "event {at}: counts (active, inactive, persist, overloaded) of {} ({:?})\n{}",
                    d.cfg.addr,
                    d.id,
                    self.dump()
                );
            }
        }
        // Packet, byte and connection counters.
        for svc in self.dir.table.services() {
            let got = self.dp.service_stats(&svc.cfg.key).unwrap().unwrap();
            assert_eq!(got, svc.stats, "event {at}: service counters");
            for d in &svc.dests {
                let got = self.dp.real_stats(d.id).unwrap().unwrap();
                assert_eq!(got, d.stats, "event {at}: counters of {}", d.cfg.addr);
            }
        }
        assert_eq!(
            self.dp.total_stats().unwrap(),
            self.dir.table.total,
            "event {at}: total counters"
        );
        let templates = self.dir.conns().templates();
        assert_eq!(
            (
                self.dp.conn_count() + self.dp.template_count(),
                self.dp.template_count()
            ),
            (self.dir.conn_count(), templates),
            "event {at}: entries (all, templates)\n{}",
            self.dump()
        );
    }
}

/// A differential run.
#[derive(Clone, Copy)]
struct Spec<'a> {
    sched: &'a str,
    /// More `-A` options (scheduler flags, `-p`, `-M`), for every service.
    flags: &'a str,
    /// More `-A` options for the IPv4 / the IPv6 service only (`-M`).
    flags4: &'a str,
    flags6: &'a str,
    seed: u64,
    events: usize,
    /// The service's port: 80, or 0 (a port-zero service; packets go to
    /// ports 80, 443 and 8080).
    port: u16,
    /// Jump ahead in time now and then, so entries expire.
    jumps: bool,
    /// `expire_quiescent_template`.
    eqt: bool,
    /// Client addresses per /24 network (IPv6: per /64; 4 networks).
    clients: u32,
    /// A fwmark service (`-f mark`) instead of `-t VIP:port`; its packets
    /// go to four VIPs.
    mark: u32,
    /// The services: IPv4 (false) and/or IPv6 (true), in one datapath.
    families: &'a [bool],
    /// SCTP services (`--sctp-service`) and chunks instead of TCP.
    sctp: bool,
}

impl<'a> Spec<'a> {
    fn new(sched: &'a str, flags: &'a str, seed: u64) -> Spec<'a> {
        Spec {
            sched,
            flags,
            flags4: "",
            flags6: "",
            seed,
            events: EVENTS,
            port: 80,
            jumps: false,
            eqt: false,
            clients: 250,
            mark: 0,
            families: &[false],
            sctp: false,
        }
    }
}

fn differential(sched: &str, flags: &str, seed: u64, events: usize) {
    run(Spec {
        events,
        ..Spec::new(sched, flags, seed)
    })
}

/// In a network namespace of its own, so that the NAT replies' FIB lookups
/// answer FWD_DISABLED (handed to the stack, as the model's `ToClient`
/// verdict is checked) whatever the host's routes.
fn run(spec: Spec) {
    in_private_netns(move || run_here(spec))
}

/// One service of a run and the real servers listed in it.
struct SvcCtx {
    v6: bool,
    /// `-t VIP:port` or `-f mark [-6]`, as ipvsadm takes it.
    svc: String,
    key: ServiceKey,
    vips: Vec<IpAddr>,
    listed: BTreeMap<u8, RsCfg>,
}

fn run_here(spec: Spec) {
    let Spec {
        sched,
        flags,
        seed,
        events,
        ..
    } = spec;
    let mut l2 = L2 {
        default: NextHop {
            mac: [0x02, 0, 0, 0, 0, 0xee],
            src_mac: EGRESS_MAC,
            ifindex: 0,
        },
        ..L2::default()
    };
    for i in 0..POOL {
        l2.by_addr.insert(
            IpAddr::V4(Ipv4Addr::from(rs_addr(i))),
            NextHop {
                mac: rs_mac(i),
                src_mac: EGRESS_MAC,
                ifindex: 0,
            },
        );
        l2.by_addr.insert(
            rs_addr6(i),
            NextHop {
                mac: rs_mac6(i),
                src_mac: EGRESS_MAC,
                ifindex: 0,
            },
        );
    }
    let mut run = Run {
        dir: Director::new(seed),
        dp: load(),
        l2,
        rng: SplitMix64::new(seed),
        now_ms: 1000,
        lbl: sched.starts_with("lblc"),
        mark: spec.mark,
        packets: 0,
        seen: [0; 4],
        unreachables: 0,
        sctp: spec.sctp,
    };
    run.dp.set_clock(Some(run.now_ms * 1_000_000)).unwrap();
    // twos: the datapath takes the draws the model's generator will make
    // (the Director draws from SplitMix64(seed), for twos only).
    let mut gen = SplitMix64::new(seed);
    let draws: Vec<u32> = (0..65536).map(|_| gen.next_u32()).collect();
    run.dp.set_fixed_draws(Some(&draws)).unwrap();
    run.dir.sysctls.expire_quiescent_template = spec.eqt;
    if spec.jumps {
        // A template restarted by a SYN runs for its timeout (60 s once it
        // has outlived its own); the SYN's connection for SYN_RECV's. Equal,
        // their deadlines would tie, and the order of two timers due at the
        // same instant is arbitrary (the model's is its slot order).
        run.dir.table.timeouts.tcp[TcpState::SynRecv.index()] = 59;
    }
    let mut ctxs: Vec<SvcCtx> = Vec::new();
    for &v6 in spec.families {
        let family = if v6 { Family::Inet6 } else { Family::Inet };
        let (svc, key) = if spec.mark != 0 {
            (
                format!("-f {}{}", spec.mark, if v6 { " -6" } else { "" }),
                ServiceKey::Fwmark {
                    family,
                    mark: spec.mark,
                },
            )
        } else {
            let vip = if v6 { vip6(0) } else { IpAddr::V4(VIP.into()) };
            let (opt, protocol) = if spec.sctp {
                ("--sctp-service", Protocol::Sctp)
            } else {
                ("-t", Protocol::Tcp)
            };
            (
                format!("{opt} {}", with_port(vip, spec.port)),
                ServiceKey::Addr {
                    protocol,
                    addr: vip,
                    port: spec.port,
                },
            )
        };
        let vips: Vec<IpAddr> = match (spec.mark != 0, v6) {
            (false, false) => vec![IpAddr::V4(VIP.into())],
            (false, true) => vec![vip6(0)],
            (true, false) => [VIP, [198, 18, 2, 2], [198, 18, 2, 3], [198, 18, 2, 4]]
                .map(|a| IpAddr::V4(a.into()))
                .to_vec(),
            (true, true) => (0..4).map(vip6).collect(),
        };
        let more = if v6 { spec.flags6 } else { spec.flags4 };
        assert!(run
            .dir
            .apply(&cmd(&format!("-A {svc} -s {sched} {flags} {more}")))
            .is_ok());
        if spec.jumps {
            // lblc/lblcr: a short expiration, so idle cache entries go at the
            // half-hourly full check and lblcr sets shrink (the busiest member
            // of a set unchanged that long is dropped).
            let exp = std::time::Duration::from_secs(40);
            match run.dir.table.service_mut(&key).map(|s| &mut s.sched) {
                Some(xvs_core::sched::Sched::Lblcr(l)) => l.set_expiration(exp),
                Some(xvs_core::sched::Sched::Lblc(l)) => l.set_expiration(exp),
                _ => {}
            }
        }
        ctxs.push(SvcCtx {
            v6,
            svc,
            key,
            vips,
            listed: BTreeMap::new(),
        });
    }
    let ports: &[u16] = if spec.port == 0 {
        &[80, 443, 8080]
    } else {
        std::slice::from_ref(&spec.port)
    };
    run.dp
        .sync(&run.dir.table, &run.dir.sysctls, &run.l2)
        .unwrap();
    let mut open: Vec<Open> = Vec::new();
    let new_cfg = |rng: &mut SplitMix64, v6: bool| RsCfg {
        v6,
        nat: rng.below(2) == 0,
        weight: rng.below(5),
        upper: if rng.below(3) == 0 {
            2 + rng.below(6)
        } else {
            0
        },
        lower: 0,
        svc_port: if spec.mark != 0 { 80 } else { spec.port },
    };
    for ctx in ctxs.iter_mut() {
        for i in 0..4 {
            let mut c = new_cfg(&mut run.rng, ctx.v6);
            c.weight = c.weight.max(1);
            c.lower = if c.upper > 0 {
                run.rng.below(c.upper)
            } else {
                0
            };
            assert!(run.apply(&format!("-a {} {}", ctx.svc, c.args(i))));
            ctx.listed.insert(i, c);
        }
    }
    // Which service an event is for (no draw with one service, so the
    // IPv4-only runs see the same events as before there were several).
    let pick = |rng: &mut SplitMix64, n: usize| -> usize {
        if n == 1 {
            0
        } else {
            rng.below(n as u32) as usize
        }
    };

    for ev in 0..events {
        let r = run.rng.below(100);
        if run.rng.below(200) == 0 {
            // ipvsadm -Z, of a service or of everything
            run.checkpoint(ev);
            let all = run.rng.below(2) == 0;
            let k = pick(&mut run.rng, ctxs.len());
            let line = if all {
                "-Z".to_string()
            } else {
                format!("-Z {}", ctxs[k].svc)
            };
            assert!(run.dir.apply(&cmd(&line)).is_ok());
            run.dp
                .zero(if all { None } else { Some(&ctxs[k].key) })
                .unwrap();
            run.checkpoint(ev);
        }
        if spec.jumps && run.rng.below(40) == 0 {
            let ms = 1000 + run.rng.below(150_000) as u64;
            run.checkpoint(ev);
            run.advance(ms);
            run.checkpoint(ev);
        }
        if spec.jumps {
            // New connections (which restart their template's timer) happen
            // in the first half of a second, everything else in the second
            // half, so a template's deadline never ties with that of a
            // connection it controls: on a tie the order of the two timers
            // decides whether the template is kept, and the model's order
            // (its slot order) is an accident of allocation.
            let syn = r < 30;
            let mut t = run.now_ms + 1 + run.rng.below(3) as u64;
            if syn && t % 1000 >= 500 {
                t += 1000 - t % 1000;
            } else if !syn && t % 1000 < 500 {
                t += 500 - t % 1000;
            }
            run.advance(t - run.now_ms);
        } else {
            run.advance(1);
        }
        let k = if !(30..80).contains(&r) {
            pick(&mut run.rng, ctxs.len())
        } else {
            0
        };
        let ctx = &mut ctxs[k];
        match r {
            0..=29 => {
                let net = run.rng.below(4) as u8;
                let host = run.rng.below(spec.clients) as u8 + 1;
                let client = client_addr(ctx.v6, net, host);
                let sport = 1024 + run.rng.below(60000) as u16;
                let dport = ports[run.rng.below(ports.len() as u32) as usize];
                let vip = ctx.vips[run.rng.below(ctx.vips.len() as u32) as usize];
                let first = if spec.sctp { chunk::INIT } else { 0x02 };
                let v = run.packet("SYN", client, sport, vip, dport, first);
                let to = match v {
                    Verdict::ToReal {
                        daddr, dport, fwd, ..
                    } => Some((daddr, dport, fwd)),
                    _ => None,
                };
                open.push(Open {
                    client,
                    sport,
                    vip,
                    dport,
                    to,
                });
            }
            30..=64 if !open.is_empty() => {
                let i = run.rng.below(open.len() as u32) as usize;
                let o = open[i];
                let flags = if spec.sctp {
                    SCTP_CLIENT[run.rng.below(SCTP_CLIENT.len() as u32) as usize]
                } else {
                    match run.rng.below(10) {
                        0..=5 => 0x10, // ACK
                        6 | 7 => 0x11, // FIN+ACK
                        8 => 0x04,     // RST
                        _ => 0x02,     // SYN again (reuse)
                    }
                };
                let v = run.packet("client", o.client, o.sport, o.vip, o.dport, flags);
                if let Verdict::ToReal {
                    daddr, dport, fwd, ..
                } = v
                {
                    open[i].to = Some((daddr, dport, fwd));
                }
            }
            65..=79 if !open.is_empty() => {
                let i = run.rng.below(open.len() as u32) as usize;
                let o = open[i];
                if let Some((d, dport, FwdMethod::Masq)) = o.to {
                    let flags = if spec.sctp {
                        SCTP_SERVER[run.rng.below(SCTP_SERVER.len() as u32) as usize]
                    } else {
                        [0x12, 0x10, 0x11, 0x04][run.rng.below(4) as usize]
                    };
                    run.packet("reply", d, dport, o.client, o.sport, flags);
                }
            }
            80..=87 if !ctx.listed.is_empty() => {
                // Edit a weight (always to a different value).
                let keys: Vec<u8> = ctx.listed.keys().copied().collect();
                let i = keys[run.rng.below(keys.len() as u32) as usize];
                let mut c = ctx.listed[&i];
                let mut w = run.rng.below(5);
                if w == c.weight {
                    w = (w + 1) % 5;
                }
                c.weight = w;
                assert!(run.apply(&format!("-e {} {}", ctx.svc, c.args(i))));
                ctx.listed.insert(i, c);
            }
            88..=93 => {
                // Add a server of the pool that is not listed (maybe back from the trash).
                let free: Vec<u8> = (0..POOL).filter(|i| !ctx.listed.contains_key(i)).collect();
                if !free.is_empty() {
                    let i = free[run.rng.below(free.len() as u32) as usize];
                    let mut c = new_cfg(&mut run.rng, ctx.v6);
                    c.lower = if c.upper > 0 {
                        run.rng.below(c.upper)
                    } else {
                        0
                    };
                    assert!(run.apply(&format!("-a {} {}", ctx.svc, c.args(i))));
                    ctx.listed.insert(i, c);
                }
            }
            94..=99 if !ctx.listed.is_empty() => {
                let keys: Vec<u8> = ctx.listed.keys().copied().collect();
                let i = keys[run.rng.below(keys.len() as u32) as usize];
                let c = ctx.listed.remove(&i).unwrap();
                assert!(run.apply(&format!(
                    "-d {} {}",
                    ctx.svc,
                    c.target(i).trim_end_matches(" -m").trim_end_matches(" -g")
                )));
            }
            _ => {}
        }
        if ev % 50 == 49 {
            run.checkpoint(ev);
        }
    }
    run.checkpoint(events);
    eprintln!(
        "{sched} {flags} families {:?} port {} mark {} eqt {}: {} packets agreed (to real, reply, pass, drop: {:?}; port unreachables sent {}), \
         {} templates live, {} s of virtual time",
        spec.families,
        spec.port,
        spec.mark,
        spec.eqt,
        run.packets,
        run.seen,
        run.unreachables,
        run.dp.template_count(),
        run.now_ms / 1000
    );
    assert!(
        run.seen[0] >= 10 && run.seen[1] >= 3 && run.seen[2] >= 1 && run.seen[3] >= 3,
        "every kind of verdict should be exercised: {:?}",
        run.seen
    );
    if spec.mark != 0 {
        // fwmark templates: protocol 0, the mark as the address.
        for t in run.dp.templates() {
            assert_eq!(
                (t.key.proto, t.key.vaddr, t.key.vport),
                (0, [spec.mark.to_be(), 0, 0, 0], 0)
            );
        }
    }
    if spec.families.contains(&true) && spec.flags6.contains("-M 64") {
        // IPv6 templates hold the client's /64.
        for t in run.dp.templates() {
            if let Some(IpAddr::V6(a)) = xvs_datapath::maps::words_addr(t.key.caddr, t.key.family) {
                assert_eq!(u128::from(a) & u128::from(u64::MAX), 0, "{a}");
            }
        }
    }
    assert!(run.dp.fixed_draws_used().unwrap() < 65536);
    if sched == "twos" {
        assert!(run.dp.fixed_draws_used().unwrap() > 100);
    }
    // Everything freed: counts back to zero on both sides.
    run.dp.flush_conns().unwrap();
    assert_eq!((run.dp.conn_count(), run.dp.template_count()), (0, 0));
}

const EVENTS: usize = 2000;

/// An SCTP client's chunks after its INIT (the association's setup and
/// data most often).
const SCTP_CLIENT: [u8; 14] = [
    chunk::COOKIE_ECHO,
    chunk::COOKIE_ECHO,
    chunk::DATA,
    chunk::DATA,
    chunk::SACK,
    chunk::HEARTBEAT,
    chunk::SHUTDOWN,
    chunk::SHUTDOWN_ACK,
    chunk::SHUTDOWN_COMPLETE,
    chunk::ABORT,
    chunk::ERROR,
    chunk::INIT,
    chunk::COOKIE_ECHO | BUNDLED_ABORT,
    chunk::COOKIE_ACK | BUNDLED_ABORT,
];

/// A NAT real server's chunks.
const SCTP_SERVER: [u8; 11] = [
    chunk::INIT_ACK,
    chunk::INIT_ACK,
    chunk::COOKIE_ACK,
    chunk::DATA,
    chunk::SACK,
    chunk::SHUTDOWN,
    chunk::SHUTDOWN_ACK,
    chunk::SHUTDOWN_COMPLETE,
    chunk::ABORT,
    chunk::INIT,
    chunk::COOKIE_ECHO,
];

/// SCTP runs: the state tables through NAT and DR real servers, IPv4 and
/// IPv6, a firewall-mark service, one with persistence and jumps in time
/// (entries expire by the SCTP states' timeouts).
#[test]
fn sctp_wlc() {
    run(Spec {
        sctp: true,
        port: 5000,
        ..Spec::new("wlc", "", 41)
    })
}
#[test]
fn sctp_rr_v4_and_v6() {
    run(Spec {
        sctp: true,
        families: &[false, true],
        ..Spec::new("rr", "", 42)
    })
}
#[test]
fn sctp_fwmark_wlc() {
    // a firewall-mark service takes SCTP packets too (marked through tc)
    run(Spec {
        sctp: true,
        mark: 7,
        ..Spec::new("wlc", "", 44)
    })
}
#[test]
fn sctp_persist_lc() {
    run(Spec {
        sctp: true,
        jumps: true,
        clients: 20,
        ..Spec::new("lc", "-p 45", 43)
    })
}

#[test]
fn rr() {
    differential("rr", "", 1, EVENTS);
}
#[test]
fn wrr() {
    differential("wrr", "", 2, EVENTS);
}
#[test]
fn lc() {
    differential("lc", "", 3, EVENTS);
}
#[test]
fn wlc() {
    differential("wlc", "", 4, EVENTS);
}
#[test]
fn sed() {
    differential("sed", "", 5, EVENTS);
}
#[test]
fn nq() {
    differential("nq", "", 6, EVENTS);
}
#[test]
fn fo() {
    differential("fo", "", 7, EVENTS);
}
#[test]
fn ovf() {
    differential("ovf", "", 8, EVENTS);
}
#[test]
fn sh() {
    differential("sh", "", 9, EVENTS);
}
#[test]
fn sh_fallback_port() {
    differential("sh", "-b sh-fallback,sh-port", 10, EVENTS);
}
#[test]
fn dh() {
    differential("dh", "", 11, EVENTS);
}
#[test]
fn mh() {
    differential("mh", "", 12, EVENTS);
}
#[test]
fn lblc() {
    differential("lblc", "", 15, EVENTS);
}
#[test]
fn lblcr() {
    differential("lblcr", "", 16, EVENTS);
}
#[test]
fn twos() {
    differential("twos", "", 14, EVENTS);
}
#[test]
fn mh_fallback_port() {
    differential("mh", "-b mh-fallback,mh-port", 13, EVENTS);
}

// Persistence: templates (-p, -M) with several schedulers, /32 and /24
// masks, a port-zero service, expire_quiescent_template on and off; time
// jumps make connections and templates expire.

fn persistent(sched: &str, flags: &str, seed: u64, port: u16, eqt: bool, clients: u32) {
    run(Spec {
        port,
        jumps: true,
        eqt,
        clients,
        ..Spec::new(sched, flags, seed)
    })
}

#[test]
fn persist_rr_slash32() {
    persistent("rr", "-p 45", 21, 80, false, 20);
}
#[test]
fn persist_wlc_slash24() {
    persistent("wlc", "-p 100 -M 255.255.255.0", 22, 80, false, 250);
}
#[test]
fn persist_wrr_eqt() {
    persistent("wrr", "-p 45", 23, 80, true, 20);
}
#[test]
fn persist_lc_port0_slash24_eqt() {
    persistent("lc", "-p 70 -M 255.255.255.0", 24, 0, true, 250);
}
#[test]
fn persist_sh_port0() {
    persistent("sh", "-p 45", 25, 0, false, 20);
}
#[test]
fn persist_twos_slash24() {
    persistent("twos", "-p 45 -M 255.255.255.0", 27, 80, false, 250);
}
#[test]
fn persist_lblc_slash24() {
    persistent("lblc", "-p 70 -M 255.255.255.0", 29, 80, false, 250);
}
#[test]
fn persist_lblcr_port0() {
    persistent("lblcr", "-p 45", 28, 0, false, 20);
}
#[test]
fn persist_fwmark_lblc_slash24() {
    run(Spec {
        jumps: true,
        mark: 7,
        ..Spec::new("lblc", "-p 45 -M 255.255.255.0", 30)
    })
}
#[test]
fn persist_fwmark_wlc() {
    run(Spec {
        jumps: true,
        mark: 7,
        clients: 20,
        ..Spec::new("wlc", "-p 45", 31)
    })
}
#[test]
fn fwmark_lblcr() {
    run(Spec {
        mark: 7,
        ..Spec::new("lblcr", "", 32)
    })
}
#[test]
fn persist_mh_slash24() {
    persistent(
        "mh",
        "-b mh-fallback -p 33 -M 255.255.255.0",
        26,
        80,
        false,
        250,
    );
}

// IPv6: an IPv4 and an IPv6 service with the same scheduler in one
// datapath, events on either (every scheduler: sh/dh/mh fold the IPv6
// addresses, lblc/lblcr key their caches by them); IPv6 persistence with
// prefix lengths; an IPv6 fwmark service.

const BOTH: &[bool] = &[false, true];

fn mixed(sched: &str, flags: &str, seed: u64) {
    run(Spec {
        families: BOTH,
        ..Spec::new(sched, flags, seed)
    })
}

#[test]
fn mixed_rr() {
    mixed("rr", "", 101);
}
#[test]
fn mixed_wrr() {
    mixed("wrr", "", 102);
}
#[test]
fn mixed_lc() {
    mixed("lc", "", 103);
}
#[test]
fn mixed_wlc() {
    mixed("wlc", "", 104);
}
#[test]
fn mixed_sed() {
    mixed("sed", "", 105);
}
#[test]
fn mixed_nq() {
    mixed("nq", "", 106);
}
#[test]
fn mixed_fo() {
    mixed("fo", "", 107);
}
#[test]
fn mixed_ovf() {
    mixed("ovf", "", 108);
}
#[test]
fn mixed_sh() {
    mixed("sh", "", 109);
}
#[test]
fn mixed_sh_fallback_port() {
    mixed("sh", "-b sh-fallback,sh-port", 110);
}
#[test]
fn mixed_dh() {
    mixed("dh", "", 111);
}
#[test]
fn mixed_mh() {
    mixed("mh", "", 112);
}
#[test]
fn mixed_mh_fallback_port() {
    mixed("mh", "-b mh-fallback,mh-port", 113);
}
#[test]
fn mixed_twos() {
    mixed("twos", "", 114);
}
#[test]
fn mixed_lblc() {
    mixed("lblc", "", 115);
}
#[test]
fn mixed_lblcr() {
    mixed("lblcr", "", 116);
}

/// Persistence on both services: `-M 255.255.255.0` for IPv4, a prefix
/// length for IPv6.
fn mixed_persistent(sched: &str, flags: &str, m6: &str, seed: u64, port: u16, clients: u32) {
    run(Spec {
        families: BOTH,
        flags4: "-M 255.255.255.0",
        flags6: m6,
        port,
        jumps: true,
        clients,
        ..Spec::new(sched, flags, seed)
    })
}

#[test]
fn mixed_persist_wlc_prefix64() {
    mixed_persistent("wlc", "-p 100", "-M 64", 121, 80, 250);
}
#[test]
fn mixed_persist_rr_prefix128() {
    mixed_persistent("rr", "-p 45", "-M 128", 122, 80, 20);
}
#[test]
fn mixed_persist_lblc_prefix64() {
    mixed_persistent("lblc", "-p 70", "-M 64", 123, 80, 250);
}
#[test]
fn mixed_persist_mh_port0_prefix56() {
    mixed_persistent("mh", "-b mh-fallback -p 33", "-M 56", 124, 0, 250);
}
#[test]
fn v6_persist_fwmark_wlc_prefix64() {
    run(Spec {
        families: &[true],
        flags6: "-M 64",
        jumps: true,
        mark: 7,
        clients: 20,
        ..Spec::new("wlc", "-p 45", 125)
    })
}
#[test]
fn v6_fwmark_lblcr() {
    run(Spec {
        families: &[true],
        mark: 7,
        ..Spec::new("lblcr", "", 126)
    })
}
