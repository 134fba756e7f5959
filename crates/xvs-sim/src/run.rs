//! The simulation: connections arrive, live and close as TCP (or UDP) packet
//! exchanges through the reference director; rule changes happen on time.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use xvs_core::conn::TcpFlags;
use xvs_core::director::{Director, DropReason, Packet, Verdict};
use xvs_core::ipvsadm::Command;
use xvs_core::model::{Flow, FwdMethod, Protocol, ServiceKey};
use xvs_core::rng::{Rng, SplitMix64};
use xvs_core::sched::{SchedCtx, SchedulerKind};
use xvs_core::time::Time;

use crate::workload::{Lifetime, Workload};

/// What one real server got.
#[derive(Clone, Debug, PartialEq)]
pub struct RealReport {
    pub addr: IpAddr,
    pub port: u16,
    /// Weight at the end; `None` if the server was removed during the run.
    pub weight: Option<u32>,
    /// New connections scheduled to it over the run.
    pub conns: u64,
    pub active: u32,
    pub inactive: u32,
}

/// The effect of one timed rule change.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeReport {
    pub at_secs: f64,
    pub line: String,
    /// The table's answer (ipvsadm's words) if the change was refused.
    pub error: Option<String>,
    /// Probe flows the scheduler now sends to a different real server; `None`
    /// for schedulers that do not map a flow by hashing it (only sh and mh do).
    pub moved: Option<u32>,
    pub probes: u32,
    /// Live connections whose real server is no longer in the service: the
    /// kernel drops their packets (or expires them with expire_nodest_conn).
    pub stranded: usize,
    /// Live connections at the moment of the change.
    pub live: usize,
}

/// The outcome of a run.
#[derive(Clone, Debug)]
pub struct Report {
    pub reals: Vec<RealReport>,
    pub changes: Vec<ChangeReport>,
    pub connections: u64,
    /// Arrivals whose random tuple matched a live entry (the kernel forwards
    /// such a SYN on the existing connection).
    pub collisions: u64,
    pub packets: u64,
    /// Connections refused because no real server was available.
    pub unschedulable: u64,
    /// Packets dropped because their real server had been removed.
    pub dropped: u64,
    pub peak_live: usize,
    pub live_at_end: usize,
    pub wall_secs: f64,
    /// Peak resident memory of this process, if the OS tells.
    pub peak_rss_kib: Option<u64>,
    /// `ipvsadm -Ln --stats` at the end.
    pub stats_listing: String,
}

struct Live {
    flow: Flow,
    /// Where the director sent it, for NAT replies.
    real: Option<(IpAddr, u16, FwdMethod)>,
}

/// Peak resident set size from /proc (Linux), in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn exp_sample(rng: &mut SplitMix64, mean: f64) -> f64 {
    // Inverse CDF with u in (0, 1].
    let u = ((rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    -u.ln() * mean
}

fn target_of(w: &Workload) -> Result<(IpAddr, u16, Protocol), String> {
    if let Some((a, p)) = w.target {
        return Ok((a, p, w.protocol));
    }
    for c in &w.rules {
        if let Command::AddService(cfg) = c {
            if let ServiceKey::Addr {
                protocol,
                addr,
                port,
            } = cfg.key
            {
                return Ok((addr, if port == 0 { 80 } else { port }, protocol));
            }
        }
    }
    Err("no address/port service in the rules and no 'target' line: nowhere to send traffic".into())
}

fn client_addr(w: &Workload, i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(u32::from(w.client_base).wrapping_add(i)))
}

/// Which real server each probe flow would be scheduled to now (scheduler
/// only, on a copy: the live state is not touched).
fn probe_map(
    d: &Director,
    w: &Workload,
    target: (IpAddr, u16, Protocol),
) -> Vec<Option<(IpAddr, u16)>> {
    let mut out = Vec::with_capacity(w.probes as usize);
    let Some(key) = target_key(d, target) else {
        return vec![None; w.probes as usize];
    };
    let mut svc = d.table.service(&key).expect("found above").clone();
    let mut rng = SplitMix64::new(0x5eed);
    for i in 0..w.probes {
        let flow = Flow {
            protocol: target.2,
            src: client_addr(w, i % w.clients),
            sport: 1024 + (i / w.clients) as u16,
            dst: target.0,
            dport: target.1,
        };
        let mut ctx = SchedCtx {
            now: Time::ZERO,
            rng: &mut rng,
        };
        out.push(
            svc.schedule(&flow, &mut ctx)
                .map(|i| (svc.dests[i].cfg.addr, svc.dests[i].cfg.port)),
        );
    }
    out
}

/// Runs a workload to the end.
pub fn run(w: &Workload) -> Result<Report, String> {
    let started = Instant::now();
    let target = target_of(w)?;
    let mut d = Director::new(w.seed);
    for (i, c) in w.rules.iter().enumerate() {
        d.apply(c)
            .map_err(|e| format!("initial rule {}: {e} ({})", i + 1, e.detail()))?;
    }
    let mut rng = SplitMix64::new(w.seed ^ 0x9e37_79b9);
    let mut live: HashMap<u64, Live> = HashMap::new();
    let mut per_real: HashMap<(IpAddr, u16), u64> = HashMap::new();
    let mut closes: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::new();
    let mut next_id = 0u64;
    let end_ms = (w.duration * 1000.0) as u64;
    let mut next_arrival = exp_sample(&mut rng, 1000.0 / w.rate);
    let mut next_tick = 1000u64;
    let mut change_idx = 0;
    let mut report = Report {
        reals: Vec::new(),
        changes: Vec::new(),
        connections: 0,
        collisions: 0,
        packets: 0,
        unschedulable: 0,
        dropped: 0,
        peak_live: 0,
        live_at_end: 0,
        wall_secs: 0.0,
        peak_rss_kib: None,
        stats_listing: String::new(),
    };

    let send = |d: &mut Director, report: &mut Report, now: Time, flow: Flow, tcp: TcpFlags| {
        report.packets += 1;
        let pkt = match flow.protocol {
            Protocol::Udp => Packet::udp(flow, 60),
            _ => Packet::tcp(flow, tcp, 60),
        };
        let v = d.process(now, &pkt);
        if matches!(v, Verdict::Drop(_)) {
            report.dropped += 1;
        }
        v
    };

    loop {
        let arrival_ms = next_arrival as u64;
        let close_ms = closes.peek().map(|r| r.0 .0).unwrap_or(u64::MAX);
        let change_ms = w
            .changes
            .get(change_idx)
            .map(|c| (c.at_secs * 1000.0) as u64)
            .unwrap_or(u64::MAX);
        let now_ms = arrival_ms.min(close_ms).min(change_ms).min(next_tick);
        if now_ms > end_ms {
            break;
        }
        let now = Time(now_ms);
        if now_ms == next_tick {
            d.expire(now);
            next_tick += 1000;
        } else if now_ms == change_ms {
            let c = &w.changes[change_idx];
            change_idx += 1;
            let hashing = target_key(&d, target)
                .and_then(|k| d.table.service(&k))
                .is_some_and(|s| matches!(s.cfg.scheduler, SchedulerKind::Sh | SchedulerKind::Mh));
            let before = hashing.then(|| probe_map(&d, w, target));
            let error = d.apply(&c.cmd).err().map(|e| e.to_string());
            let moved = before.map(|before| {
                let after = probe_map(&d, w, target);
                before.iter().zip(&after).filter(|(a, b)| a != b).count() as u32
            });
            let listed = listed_reals(&d, target);
            let stranded = live
                .values()
                .filter(|l| matches!(l.real, Some((a, p, _)) if !listed.contains(&(a, p))))
                .count();
            report.changes.push(ChangeReport {
                at_secs: c.at_secs,
                line: c.line.clone(),
                error,
                moved,
                probes: w.probes,
                stranded,
                live: live.len(),
            });
        } else if now_ms == close_ms {
            let Reverse((_, id)) = closes.pop().expect("peeked");
            let l = live.remove(&id).expect("every close has its connection");
            if l.flow.protocol == Protocol::Tcp {
                send(&mut d, &mut report, now, l.flow, TcpFlags::FIN_ACK);
                if let Some((raddr, rport, FwdMethod::Masq)) = l.real {
                    let back = reply_flow(&l.flow, raddr, rport);
                    send(&mut d, &mut report, now, back, TcpFlags::FIN_ACK);
                }
                send(&mut d, &mut report, now, l.flow, TcpFlags::ACK);
            }
        } else {
            // A new connection from a random client and source port.
            next_arrival += exp_sample(&mut rng, 1000.0 / w.rate);
            let client = rng.below(w.clients);
            let flow = Flow {
                protocol: target.2,
                src: client_addr(w, client),
                sport: 1024 + (rng.below(65535 - 1024)) as u16,
                dst: target.0,
                dport: target.1,
            };
            let first = if flow.protocol == Protocol::Tcp {
                TcpFlags::SYN
            } else {
                TcpFlags::NONE
            };
            let real = match send(&mut d, &mut report, now, flow, first) {
                Verdict::ToReal {
                    new_conn: false, ..
                } => {
                    report.collisions += 1;
                    None
                }
                Verdict::ToReal {
                    daddr, dport, fwd, ..
                } => Some((daddr, dport, fwd)),
                Verdict::Drop(DropReason::NoDestination) => {
                    report.unschedulable += 1;
                    None
                }
                // The tuple is still held by an entry on a removed server.
                _ => None,
            };
            if let Some((raddr, rport, fwd)) = real {
                report.connections += 1;
                *per_real.entry((raddr, rport)).or_default() += 1;
                if flow.protocol == Protocol::Tcp {
                    if fwd == FwdMethod::Masq {
                        let back = reply_flow(&flow, raddr, rport);
                        send(&mut d, &mut report, now, back, TcpFlags::SYN_ACK);
                    }
                    send(&mut d, &mut report, now, flow, TcpFlags::ACK);
                } else if fwd == FwdMethod::Masq {
                    send(
                        &mut d,
                        &mut report,
                        now,
                        reply_flow(&flow, raddr, rport),
                        TcpFlags::NONE,
                    );
                }
                let life = match w.lifetime {
                    Lifetime::Exponential(m) => exp_sample(&mut rng, m * 1000.0),
                    Lifetime::Fixed(s) => s * 1000.0,
                };
                next_id += 1;
                live.insert(next_id, Live { flow, real });
                closes.push(Reverse((now_ms + life.max(1.0) as u64, next_id)));
                report.peak_live = report.peak_live.max(live.len());
            }
        }
    }

    let snap = d.snapshot();
    for svc in &snap.services {
        for dest in &svc.dests {
            let key = (dest.cfg.addr, dest.cfg.port);
            report.reals.push(RealReport {
                addr: dest.cfg.addr,
                port: dest.cfg.port,
                weight: Some(dest.cfg.weight),
                conns: per_real.remove(&key).unwrap_or(0),
                active: dest.active_conns,
                inactive: dest.inact_conns,
            });
        }
    }
    // Servers removed along the way: what they got before they left.
    for ((addr, port), conns) in per_real {
        report.reals.push(RealReport {
            addr,
            port,
            weight: None,
            conns,
            active: 0,
            inactive: 0,
        });
    }
    report.reals.sort_by_key(|r| (r.addr, r.port));
    let opts = xvs_core::ipvsadm::ListOptions {
        numeric: true,
        stats: true,
        ..Default::default()
    };
    report.stats_listing =
        xvs_core::ipvsadm::format::list(&snap, &opts, &xvs_core::ipvsadm::NumericOnly)
            .map_err(|e| e.to_string())?;
    report.live_at_end = live.len();
    report.wall_secs = started.elapsed().as_secs_f64();
    report.peak_rss_kib = peak_rss_kib();
    Ok(report)
}

fn target_key(d: &Director, target: (IpAddr, u16, Protocol)) -> Option<ServiceKey> {
    d.table.services().map(|s| s.cfg.key).find(|k| match *k {
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        } => protocol == target.2 && addr == target.0 && (port == target.1 || port == 0),
        ServiceKey::Fwmark { .. } => false,
    })
}

/// The real servers currently in the target service.
fn listed_reals(d: &Director, target: (IpAddr, u16, Protocol)) -> Vec<(IpAddr, u16)> {
    target_key(d, target)
        .and_then(|k| d.table.service(&k))
        .map(|s| s.dests.iter().map(|x| (x.cfg.addr, x.cfg.port)).collect())
        .unwrap_or_default()
}

fn reply_flow(client: &Flow, raddr: IpAddr, rport: u16) -> Flow {
    Flow {
        protocol: client.protocol,
        src: raddr,
        sport: rport,
        dst: client.src,
        dport: client.sport,
    }
}
