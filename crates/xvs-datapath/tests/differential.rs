//! Differential test: the same rules and the same packets through the
//! reference model (`xvs_core::director::Director`) and through the BPF
//! programs (BPF_PROG_TEST_RUN, XDP and tc at random, sharing the maps). For
//! every packet the verdict and the real server must agree, and at
//! checkpoints every real server's ActiveConn/InActConn.
//!
//! Events: new TCP connections from random clients (SYN), ACKs, FINs, RSTs,
//! repeated SYNs (connection reuse), NAT replies, weight edits, real-server
//! adds, removals and re-adds (the trash), thresholds (-x/-y). All within a
//! few seconds, far inside every timeout, so expiry plays no part.
//!
//! Needs root and a BPF-capable kernel; fails (does not skip) without them.

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use common::*;
use xvs_core::conn::{Pkt, TcpFlags};
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
}

impl RsCfg {
    fn target(&self, i: u8) -> String {
        let a = Ipv4Addr::from(rs_addr(i));
        if self.nat {
            format!("-r {a}:8080 -m")
        } else {
            format!("-r {a}:80 -g")
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
    /// Where the model sent it last (daddr, dport, method).
    to: Option<(IpAddr, u16, FwdMethod)>,
}

struct Run {
    dir: Director,
    dp: Datapath,
    l2: L2,
    rng: SplitMix64,
    start: Instant,
    packets: u64,
    /// Verdicts seen: to a real server, NAT reply, pass, drop.
    seen: [u64; 4],
}

impl Run {
    fn now(&self) -> Time {
        Time(self.start.elapsed().as_millis() as u64)
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
        let pkt = Packet {
            flow,
            l4: Pkt::Tcp(tf),
            len: 40,
            fwmark: 0,
        };
        let now = self.now();
        let want = self.dir.process(now, &pkt);
        // The kernel's timer frees an entry marked to expire a jiffy later:
        // run the model's timer pass before the next packet.
        self.dir.expire(now);
        let prog = if self.rng.below(2) == 0 {
            Prog::Xdp
        } else {
            Prog::Tc
        };
        let got = self.dp.test_run(prog, &frame).unwrap();
        self.packets += 1;
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
                assert_eq!(got.verdict, pass, "{ctx}");
                assert_eq!(got.packet, frame, "{ctx}");
            }
            Verdict::Drop(_) => assert_eq!(got.verdict, drop, "{ctx}"),
            Verdict::ToClient { vaddr, vport } => {
                assert_eq!(got.verdict, pass, "{ctx}");
                let ip = &got.packet[14..];
                assert_eq!(
                    IpAddr::V4(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15])),
                    vaddr,
                    "{ctx}"
                );
                assert_eq!(u16::from_be_bytes([ip[20], ip[21]]), vport, "{ctx}");
                assert!(checksums_ok(&got.packet), "{ctx}");
            }
            Verdict::ToReal {
                daddr,
                dport,
                fwd: method,
                ..
            } => {
                assert_eq!(got.verdict, fwd, "{ctx}");
                assert_eq!(self.mac_to_addr(&got.packet[..6]), Some(daddr), "{ctx}");
                let ip = &got.packet[14..];
                if method == FwdMethod::Masq {
                    assert_eq!(
                        IpAddr::V4(Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19])),
                        daddr,
                        "{ctx}"
                    );
                    assert_eq!(u16::from_be_bytes([ip[22], ip[23]]), dport, "{ctx}");
                } else {
                    assert_eq!(&got.packet[14..], &frame[14..], "{ctx}");
                }
                assert!(checksums_ok(&got.packet), "{ctx}");
            }
        }
        want
    }

    fn checkpoint(&self, at: usize) {
        for svc in self.dir.table.services() {
            for d in &svc.dests {
                let c = self.dp.real_counts(d.id).unwrap().unwrap_or_default();
                assert_eq!(
                    (c.active, c.inactive, c.overloaded),
                    (d.active_conns, d.inact_conns, d.overloaded),
                    "event {at}: counts of {} ({:?})",
                    d.cfg.addr,
                    d.id
                );
            }
        }
    }
}

fn differential(sched: &str, flags: &str, seed: u64, events: usize) {
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
        start: Instant::now(),
        packets: 0,
        seen: [0; 4],
    };
    let svc = format!("-t {}:80", Ipv4Addr::from(VIP));
    assert!(run.apply(&format!("-A {svc} -s {sched} {flags}")));
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
        match r {
            0..=29 => {
                let client = [
                    198,
                    19,
                    run.rng.below(4) as u8,
                    run.rng.below(250) as u8 + 1,
                ];
                let sport = 1024 + run.rng.below(60000) as u16;
                let v = run.packet("SYN", client, sport, VIP, 80, 0x02);
                let to = match v {
                    Verdict::ToReal {
                        daddr, dport, fwd, ..
                    } => Some((daddr, dport, fwd)),
                    _ => None,
                };
                open.push(Open { client, sport, to });
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
                let v = run.packet("client", o.client, o.sport, VIP, 80, flags);
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
    assert!(
        run.start.elapsed().as_secs() < 8,
        "too slow: timeouts could kick in"
    );
    eprintln!(
        "{sched} {flags}: {} packets agreed (to real, reply, pass, drop: {:?})",
        run.packets, run.seen
    );
    assert!(
        run.seen[0] >= 10 && run.seen[1] >= 10 && run.seen[2] >= 1 && run.seen[3] >= 10,
        "every kind of verdict should be exercised: {:?}",
        run.seen
    );
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
fn mh_fallback_port() {
    differential("mh", "-b mh-fallback,mh-port", 13, EVENTS);
}
