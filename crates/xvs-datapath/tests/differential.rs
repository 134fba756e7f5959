//! Differential test: the same rules and the same packets through the
//! reference model (`xvs_core::director::Director`) and through the BPF
//! programs (BPF_PROG_TEST_RUN, XDP and tc at random, sharing the maps). For
//! every packet the verdict and the real server must agree, and at
//! checkpoints every real server's ActiveConn/InActConn.
//!
//! Events: new TCP connections from random clients (SYN), ACKs, FINs, RSTs,
//! repeated SYNs (connection reuse), NAT replies, weight edits, real-server
//! adds, removals and re-adds (the trash), thresholds (-x/-y).
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
//! Needs root and a BPF-capable kernel; fails (does not skip) without them.

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use common::*;
use xvs_core::conn::{Pkt, TcpFlags, TcpState};
use xvs_core::director::{Director, Packet, Verdict};
use xvs_core::model::{Flow, FwdMethod, Protocol};
use xvs_core::rng::{Rng, SplitMix64};
use xvs_core::time::Time;
use xvs_datapath::{verdict::*, Datapath, NextHop, Prog, L2};

const VIP: [u8; 4] = [198, 18, 2, 1];
const DIRECTOR_MAC: Mac = [0x02, 0x78, 0x76, 0x73, 0x00, 0x02];
const EGRESS_MAC: Mac = [0x02, 0x78, 0x76, 0x73, 0x00, 0x04];
const POOL: u8 = 8;

fn rs_addr(i: u8) -> [u8; 4] {
    [198, 18, 1, 10 + i]
}

fn rs_mac(i: u8) -> Mac {
    [0x02, 0x78, 0x76, 0x73, 0x02, 10 + i]
}

/// A real server of the pool as the test configures it.
#[derive(Clone, Copy)]
struct RsCfg {
    nat: bool,
    weight: u32,
    upper: u32,
    lower: u32,
    /// The service port (DR servers take it; 0 on a port-zero service).
    svc_port: u16,
}

impl RsCfg {
    fn target(&self, i: u8) -> String {
        let a = Ipv4Addr::from(rs_addr(i));
        if self.nat {
            format!("-r {a}:8080 -m")
        } else {
            format!("-r {a}:{} -g", self.svc_port)
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
    client: [u8; 4],
    sport: u16,
    vip: [u8; 4],
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
}

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
    }

    /// One packet through both; panics on any disagreement.
    fn packet(
        &mut self,
        what: &str,
        src: [u8; 4],
        sport: u16,
        dst: [u8; 4],
        dport: u16,
        flags: u8,
    ) -> Verdict {
        let frame = eth(
            DIRECTOR_MAC,
            [0x02, 0, 0, 0, 0, 1],
            0x0800,
            &ipv4(src, dst, 6, &tcp(sport, dport, flags)),
        );
        let flow = Flow {
            protocol: Protocol::Tcp,
            src: IpAddr::V4(src.into()),
            sport,
            dst: IpAddr::V4(dst.into()),
            dport,
        };
        let tf = TcpFlags::new(
            flags & 2 != 0,
            flags & 1 != 0,
            flags & 0x10 != 0,
            flags & 4 != 0,
        );
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
            l4: Pkt::Tcp(tf),
            len: 40,
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
        if std::env::var("XVS_DEBUG_CLIENT").is_ok_and(|c| {
            Ipv4Addr::from(src).to_string().starts_with(&c)
                || Ipv4Addr::from(dst).to_string().starts_with(&c)
        }) {
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
            Verdict::Drop(_) => assert_eq!(got.verdict, drop, "{ctx}\n{}", self.dump()),
            Verdict::ToClient { vaddr, vport } => {
                assert_eq!(got.verdict, pass, "{ctx}\n{}", self.dump());
                let ip = &got.packet[14..];
                assert_eq!(
                    IpAddr::V4(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15])),
                    vaddr,
                    "{ctx}\n{}",
                    self.dump()
                );
                assert_eq!(
                    u16::from_be_bytes([ip[20], ip[21]]),
                    vport,
                    "{ctx}\n{}",
                    self.dump()
                );
                assert!(checksums_ok(&got.packet), "{ctx}\n{}", self.dump());
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
                    assert_eq!(
                        IpAddr::V4(Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19])),
                        daddr,
                        "{ctx}\n{}",
                        self.dump()
                    );
                    assert_eq!(
                        u16::from_be_bytes([ip[22], ip[23]]),
                        dport,
                        "{ctx}\n{}",
                        self.dump()
                    );
                } else {
                    assert_eq!(&got.packet[14..], &frame[14..], "{ctx}\n{}", self.dump());
                }
                assert!(checksums_ok(&got.packet), "{ctx}\n{}", self.dump());
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
                Ipv4Addr::from(t.key.caddr[0].to_ne_bytes()),
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
    /// More `-A` options (scheduler flags, `-p`, `-M`).
    flags: &'a str,
    seed: u64,
    events: usize,
    /// The service's port: 80, or 0 (a port-zero service; packets go to
    /// ports 80, 443 and 8080).
    port: u16,
    /// Jump ahead in time now and then, so entries expire.
    jumps: bool,
    /// `expire_quiescent_template`.
    eqt: bool,
    /// Client addresses per /24 network (4 networks).
    clients: u32,
    /// A fwmark service (`-f mark`) instead of `-t VIP:port`; its packets
    /// go to four VIPs.
    mark: u32,
}

impl<'a> Spec<'a> {
    fn new(sched: &'a str, flags: &'a str, seed: u64) -> Spec<'a> {
        Spec {
            sched,
            flags,
            seed,
            events: EVENTS,
            port: 80,
            jumps: false,
            eqt: false,
            clients: 250,
            mark: 0,
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
    let (svc, svc_key) = if spec.mark != 0 {
        (
            format!("-f {}", spec.mark),
            xvs_core::model::ServiceKey::Fwmark {
                family: xvs_core::model::Family::Inet,
                mark: spec.mark,
            },
        )
    } else {
        (
            format!("-t {}:{}", Ipv4Addr::from(VIP), spec.port),
            xvs_core::model::ServiceKey::Addr {
                protocol: Protocol::Tcp,
                addr: IpAddr::V4(VIP.into()),
                port: spec.port,
            },
        )
    };
    let vips: &[[u8; 4]] = if spec.mark != 0 {
        &[VIP, [198, 18, 2, 2], [198, 18, 2, 3], [198, 18, 2, 4]]
    } else {
        &[VIP]
    };
    let ports: &[u16] = if spec.port == 0 {
        &[80, 443, 8080]
    } else {
        &[80]
    };
    assert!(run
        .dir
        .apply(&cmd(&format!("-A {svc} -s {sched} {flags}")))
        .is_ok());
    if spec.jumps {
        // lblc/lblcr: a short expiration, so idle cache entries go at the
        // half-hourly full check and lblcr sets shrink (the busiest member
        // of a set unchanged that long is dropped).
        let exp = std::time::Duration::from_secs(40);
        match run.dir.table.service_mut(&svc_key).map(|s| &mut s.sched) {
            Some(xvs_core::sched::Sched::Lblcr(l)) => l.set_expiration(exp),
            Some(xvs_core::sched::Sched::Lblc(l)) => l.set_expiration(exp),
            _ => {}
        }
    }
    run.dp
        .sync(&run.dir.table, &run.dir.sysctls, &run.l2)
        .unwrap();
    let mut listed: BTreeMap<u8, RsCfg> = BTreeMap::new();
    let mut open: Vec<Open> = Vec::new();
    let new_cfg = |rng: &mut SplitMix64| RsCfg {
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
    for i in 0..4 {
        let mut c = new_cfg(&mut run.rng);
        c.weight = c.weight.max(1);
        c.lower = if c.upper > 0 {
            run.rng.below(c.upper)
        } else {
            0
        };
        assert!(run.apply(&format!("-a {svc} {}", c.args(i))));
        listed.insert(i, c);
    }

    for ev in 0..events {
        let r = run.rng.below(100);
        if run.rng.below(200) == 0 {
            // ipvsadm -Z, of the service or of everything
            run.checkpoint(ev);
            let all = run.rng.below(2) == 0;
            let line = if all {
                "-Z".to_string()
            } else {
                format!("-Z {svc}")
            };
            assert!(run.dir.apply(&cmd(&line)).is_ok());
            run.dp
                .zero(if all { None } else { Some(&svc_key) })
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
        match r {
            0..=29 => {
                let client = [
                    198,
                    19,
                    run.rng.below(4) as u8,
                    run.rng.below(spec.clients) as u8 + 1,
                ];
                let sport = 1024 + run.rng.below(60000) as u16;
                let dport = ports[run.rng.below(ports.len() as u32) as usize];
                let vip = vips[run.rng.below(vips.len() as u32) as usize];
                let v = run.packet("SYN", client, sport, vip, dport, 0x02);
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
                let flags = match run.rng.below(10) {
                    0..=5 => 0x10, // ACK
                    6 | 7 => 0x11, // FIN+ACK
                    8 => 0x04,     // RST
                    _ => 0x02,     // SYN again (reuse)
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
                if let Some((IpAddr::V4(d), dport, FwdMethod::Masq)) = o.to {
                    let flags = [0x12, 0x10, 0x11, 0x04][run.rng.below(4) as usize];
                    run.packet("reply", d.octets(), dport, o.client, o.sport, flags);
                }
            }
            80..=87 if !listed.is_empty() => {
                // Edit a weight (always to a different value).
                let keys: Vec<u8> = listed.keys().copied().collect();
                let i = keys[run.rng.below(keys.len() as u32) as usize];
                let mut c = listed[&i];
                let mut w = run.rng.below(5);
                if w == c.weight {
                    w = (w + 1) % 5;
                }
                c.weight = w;
                assert!(run.apply(&format!("-e {svc} {}", c.args(i))));
                listed.insert(i, c);
            }
            88..=93 => {
                // Add a server of the pool that is not listed (maybe back from the trash).
                let free: Vec<u8> = (0..POOL).filter(|i| !listed.contains_key(i)).collect();
                if !free.is_empty() {
                    let i = free[run.rng.below(free.len() as u32) as usize];
                    let mut c = new_cfg(&mut run.rng);
                    c.lower = if c.upper > 0 {
                        run.rng.below(c.upper)
                    } else {
                        0
                    };
                    assert!(run.apply(&format!("-a {svc} {}", c.args(i))));
                    listed.insert(i, c);
                }
            }
            94..=99 if !listed.is_empty() => {
                let keys: Vec<u8> = listed.keys().copied().collect();
                let i = keys[run.rng.below(keys.len() as u32) as usize];
                let c = listed.remove(&i).unwrap();
                assert!(run.apply(&format!(
                    "-d {svc} {}",
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
        "{sched} {flags} port {} mark {} eqt {}: {} packets agreed (to real, reply, pass, drop: {:?}), \
         {} templates live, {} s of virtual time",
        spec.port,
        spec.mark,
        spec.eqt,
        run.packets,
        run.seen,
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
                (t.key.proto, t.key.vaddr[0], t.key.vport),
                (0, spec.mark.to_be(), 0)
            );
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
