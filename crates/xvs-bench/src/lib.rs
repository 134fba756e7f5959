//! The xvs benchmark runner: builds a NAT lab (client, director, 3 real
//! servers running nginx), starts every peer on the director side by side,
//! then loads each in turn from the client with wrk, in rounds whose order
//! rotates, and reports medians and spreads.

pub mod bpfsys;
pub mod conntable;
pub mod ctlplane;
pub mod peers;
pub mod pktgen;
pub mod plots;
pub mod report;
pub mod xvs;

use std::{
    collections::BTreeMap,
    fs,
    time::{Duration, Instant},
};

use peers::{Contender, Running};
use xvs_testhost::{curl, wrk, Error, Mode, Netns, Result, Topology, WrkOptions};

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    pub contenders: Vec<Contender>,
    /// Length of one wrk run.
    pub duration: Duration,
    /// Rounds; each round runs every contender and workload once.
    pub repeats: u32,
    pub threads: u32,
    pub connections: u32,
    pub servers: usize,
    pub warmup: bool,
    pub quick: bool,
    /// Which parts to run.
    pub parts: Parts,
    /// Packet rate: forwarders, protocols, flows, length of one run.
    pub rate: pktgen::RateConfig,
    /// Connection table sizes, timing runs per size, random flows per run.
    pub conn_sizes: Vec<u64>,
    pub conn_runs: usize,
    pub conn_random_flows: usize,
    /// Control plane: (services, reals per service) and runs.
    pub ctl_size: (u32, u32),
    pub ctl_runs: usize,
    /// The measurement options as given on the command line (for the
    /// report's header; output paths left out).
    pub args: String,
}

/// The parts of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parts {
    /// wrk: HTTP keep-alive and close, every contender.
    pub wrk: bool,
    /// Packet rate with the live-frames generator.
    pub rate: bool,
    /// Connection table at 10k, 1M, 10M entries.
    pub conns: bool,
    /// Control plane: 10,000 services x 10 real servers.
    pub ctl: bool,
}

impl Parts {
    pub const ALL: Parts = Parts {
        wrk: true,
        rate: true,
        conns: true,
        ctl: true,
    };

    /// `wrk,rate,conns,ctl` (any subset).
    pub fn parse(s: &str) -> Option<Parts> {
        let mut p = Parts {
            wrk: false,
            rate: false,
            conns: false,
            ctl: false,
        };
        for w in s.split(',') {
            match w.trim() {
                "wrk" => p.wrk = true,
                "rate" => p.rate = true,
                "conns" => p.conns = true,
                "ctl" => p.ctl = true,
                _ => return None,
            }
        }
        Some(p)
    }
}

impl Config {
    /// The full run: 10 s per measurement, 3 rounds (about 5 minutes).
    pub fn full() -> Config {
        Config {
            contenders: peers::ALL.to_vec(),
            duration: Duration::from_secs(10),
            repeats: 3,
            threads: 3,
            connections: 15,
            servers: 3,
            warmup: true,
            quick: false,
            parts: Parts::ALL,
            rate: pktgen::RateConfig {
                forwarders: pktgen::ALL_FORWARDERS.to_vec(),
                l4s: vec![pktgen::L4::Tcp, pktgen::L4::Udp],
                flows: 10_000,
                order: pktgen::FlowOrder::Cyclic,
                sweep: vec![100, 1_000],
                new_flows: vec![
                    pktgen::Forwarder::NoopXdp,
                    pktgen::Forwarder::XvsXdp(xvs::Method::Dr),
                    pktgen::Forwarder::XvsXdp(xvs::Method::Nat),
                    pktgen::Forwarder::NoopTc,
                    pktgen::Forwarder::XvsTc(xvs::Method::Dr),
                ],
                duration: Duration::from_secs(3),
                repeats: 3,
            },
            conn_sizes: vec![10_000, 1_000_000, 10_000_000],
            conn_runs: 5,
            conn_random_flows: 100_000,
            ctl_size: (10_000, 10),
            ctl_runs: 3,
            args: String::new(),
        }
    }

    /// The smoke run: 3 s per measurement, 2 rounds (about 1 minute).
    pub fn quick() -> Config {
        let full = Config::full();
        Config {
            duration: Duration::from_secs(3),
            repeats: 2,
            quick: true,
            rate: pktgen::RateConfig {
                duration: Duration::from_secs(1),
                repeats: 2,
                l4s: vec![pktgen::L4::Tcp],
                new_flows: vec![
                    pktgen::Forwarder::NoopXdp,
                    pktgen::Forwarder::XvsXdp(xvs::Method::Dr),
                ],
                ..full.rate.clone()
            },
            conn_runs: 3,
            conn_random_flows: 20_000,
            ctl_runs: 1,
            ..full
        }
    }
}

/// The two loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Workload {
    /// wrk over persistent connections: HTTP requests/s.
    KeepAlive,
    /// `Connection: close`: one request per connection, so requests/s is
    /// new connections/s.
    Close,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Workload::KeepAlive => "keepalive",
            Workload::Close => "close",
        }
    }
}

pub const WORKLOADS: [Workload; 2] = [Workload::KeepAlive, Workload::Close];

/// One measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub round: u32,
    pub contender: Contender,
    pub workload: Workload,
    pub requests: u64,
    pub rps: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub errors: u64,
    pub non_2xx: u64,
    /// Busy CPU time of the whole box (all cores, /proc/stat), ms. Counts
    /// anything else running on the machine too.
    pub box_cpu_ms: f64,
    /// CPU time of the lab's own processes (wrk, via getrusage of the
    /// children, plus every process in the client, director and real-server
    /// namespaces, via /proc/PID/stat), ms. Kernel network work is in it
    /// when it runs in those processes' context (softirq on veth transmit;
    /// this kernel has no IRQ time accounting); ksoftirqd's share is not.
    pub lab_cpu_ms: f64,
    /// CPU time of the contender's own processes on the director
    /// (/proc/PID/stat utime+stime of its process group), ms; 0 for the
    /// kernel paths.
    pub director_cpu_ms: f64,
    /// Packets the director received during the run (rx of d0 and d1):
    /// both directions, client and real-server side.
    pub director_packets: u64,
}

impl Sample {
    pub fn box_ms_per_1k(&self) -> f64 {
        per_1k(self.box_cpu_ms, self.requests)
    }
    pub fn lab_ms_per_1k(&self) -> f64 {
        per_1k(self.lab_cpu_ms, self.requests)
    }
    pub fn director_ms_per_1k(&self) -> f64 {
        per_1k(self.director_cpu_ms, self.requests)
    }
    /// Busy CPU time of the box per million packets through the director,
    /// seconds.
    pub fn box_s_per_mpkt(&self) -> f64 {
        if self.director_packets == 0 {
            f64::NAN
        } else {
            self.box_cpu_ms / 1000.0 / (self.director_packets as f64 / 1e6)
        }
    }
}

fn per_1k(ms: f64, requests: u64) -> f64 {
    if requests == 0 {
        f64::NAN
    } else {
        ms * 1000.0 / requests as f64
    }
}

/// A contender's fate: measured, unavailable (xvs slots) or failed.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Measured,
    Unavailable(String),
    Failed(String),
}

/// Everything a run produced.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub config: Config,
    pub samples: Vec<Sample>,
    pub outcomes: BTreeMap<Contender, Outcome>,
    pub started: String,
    pub elapsed: Duration,
    pub machine: report::Machine,
    /// Packet-rate samples (empty if not run).
    pub rates: Vec<pktgen::RateSample>,
    /// Why the packet-rate part failed, if it did.
    pub rate_error: Option<String>,
    /// Packet rate by number of flows (`RateConfig::sweep`; empty if not run).
    pub sweep: Vec<pktgen::RateSample>,
    /// New connections: SYNs of new flows (`RateConfig::new_flows`; empty
    /// if not run).
    pub new_flows: Vec<pktgen::RateSample>,
    /// Connection table at scale (None if not run).
    pub conns: Option<conntable::ConnResult>,
    /// Control plane timings (empty if not run): the asked size, and if
    /// the datapath refused it, the largest standard size it takes.
    pub ctl: Vec<ctlplane::CtlPoint>,
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Busy and total jiffies of the box, from the `cpu` line of /proc/stat.
fn box_jiffies() -> Result<(u64, u64)> {
    let s = fs::read_to_string("/proc/stat").map_err(|e| Error::Io {
        what: "reading /proc/stat".into(),
        source: e,
    })?;
    let line = s.lines().next().unwrap_or_default();
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest counted in user)
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Ok((total - idle, total))
}

/// utime+stime (jiffies) of the processes in `ns` whose process group is
/// `pgid` (all of them if None).
fn group_jiffies(ns: &Netns, pgid: Option<u32>) -> u64 {
    let Ok(pids) = ns.pids() else { return 0 };
    pids.into_iter()
        .filter_map(|p| fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .filter_map(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            // After "pid (comm) ": state=0 ppid=1 pgrp=2 ... utime=11 stime=12
            let pgrp: u32 = f.get(2)?.parse().ok()?;
            (pgid.is_none() || Some(pgrp) == pgid).then(|| {
                f.get(11).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
                    + f.get(12).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
            })
        })
        .sum()
}

/// utime+stime (jiffies) of every process in the lab's namespaces.
fn lab_jiffies(t: &Topology) -> u64 {
    let mut n = group_jiffies(t.client(), None) + group_jiffies(t.director(), None);
    for s in t.servers() {
        n += group_jiffies(s, None);
    }
    n
}

/// CPU time (ms) of this process's waited-for children so far.
fn children_cpu_ms() -> f64 {
    // SAFETY: getrusage writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Checks that every real server answers: through `r`'s URL, new
/// connections reach them all (round robin at once, noop-fwd's source-port
/// pick within a few dozen); `direct`: each at its own address.
fn verify(t: &Topology, r: &mut Running) -> Result<()> {
    r.check_running()?;
    let plan = t.plan();
    let n = plan.server_count();
    let want: std::collections::BTreeSet<String> = (0..n).map(|i| format!("rs{i}")).collect();
    let mut seen = std::collections::BTreeSet::new();
    if r.contender.through_vip() {
        for _ in 0..12 * n {
            let body = curl(t.client(), &r.url)?;
            seen.insert(body.trim().to_string());
            if seen == want {
                break;
            }
        }
    } else {
        for (i, a) in plan.server_addrs().iter().enumerate() {
            let body = curl(t.client(), &format!("http://{a}:80/"))?;
            if body.trim() != format!("rs{i}") {
                return Err(Error::Invalid(format!(
                    "{}: http://{a}:80/ answered {:?}, expected rs{i}",
                    r.contender.name(),
                    body.trim()
                )));
            }
        }
        return Ok(());
    }
    if seen == want {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{} through {}: answered by {seen:?}, expected {want:?}",
            r.contender.name(),
            r.url
        )))
    }
}

/// The wrk run of `r`: `cfg`'s threads and connections (`direct`: its
/// threads spread over the real servers).
fn wrk_options(r: &Running, cfg: &Config, duration: Duration) -> WrkOptions {
    let mut o = WrkOptions::new(&r.url);
    o.threads = cfg.threads;
    o.connections = cfg.connections;
    o.duration = duration;
    o.script = r.script.clone();
    o
}

/// rx_packets of the director's d0 and d1.
fn director_packets(t: &Topology) -> u64 {
    t.director()
        .exec(&[
            "cat",
            "/sys/class/net/d0/statistics/rx_packets",
            "/sys/class/net/d1/statistics/rx_packets",
        ])
        .map(|o| {
            o.split_whitespace()
                .filter_map(|x| x.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0)
}

fn measure(t: &Topology, r: &Running, w: Workload, cfg: &Config, round: u32) -> Result<Sample> {
    let mut o = wrk_options(r, cfg, cfg.duration);
    o.close = w == Workload::Close;
    let pgid = r.process.as_ref().map(|p| p.pid());
    r.activate(t)?;
    let d0 = pgid
        .map(|g| group_jiffies(t.director(), Some(g)))
        .unwrap_or(0);
    let l0 = lab_jiffies(t);
    let p0 = director_packets(t);
    let w0 = children_cpu_ms();
    let (b0, _) = box_jiffies()?;
    let res = wrk(t.client(), &o);
    let (b1, _) = box_jiffies()?;
    let w1 = children_cpu_ms();
    let p1 = director_packets(t);
    let l1 = lab_jiffies(t);
    let d1 = pgid
        .map(|g| group_jiffies(t.director(), Some(g)))
        .unwrap_or(0);
    r.deactivate(t)?;
    let res = res?;
    let ms = 1000.0 / clk_tck();
    Ok(Sample {
        round,
        contender: r.contender,
        workload: w,
        requests: res.requests,
        rps: res.requests_per_sec,
        p50_us: res.p50_us,
        p90_us: res.p90_us,
        p99_us: res.p99_us,
        errors: res.socket_errors,
        non_2xx: res.non_2xx,
        box_cpu_ms: (b1 - b0) as f64 * ms,
        lab_cpu_ms: l1.saturating_sub(l0) as f64 * ms + (w1 - w0),
        director_cpu_ms: d1.saturating_sub(d0) as f64 * ms,
        director_packets: p1.saturating_sub(p0),
    })
}

/// Runs the benchmark. Progress goes to stderr.
pub fn run(cfg: &Config) -> Result<RunResult> {
    xvs_testhost::require_root()?;
    for (tool, pkg) in [("wrk", "wrk"), ("curl", "curl"), ("nginx", "nginx")] {
        xvs_testhost::cmd::require_tool(tool, pkg)?;
    }
    let start = Instant::now();
    let started = report::now_utc();
    let machine = report::Machine::probe();
    let t = Topology::builder(Mode::Nat)
        .servers(cfg.servers)
        .prefix("xvs-bench")
        .build()?;
    let _web = t.start_web_servers(80)?;
    xvs::prepare_lab(&t)?;
    eprintln!(
        "xvs-bench: lab {} (NAT, {} real servers, VIP {})",
        t.id(),
        cfg.servers,
        t.vip()
    );

    let mut outcomes = BTreeMap::new();
    let mut running = Vec::new();
    // The contenders are only for wrk: none are started (nor warmed up)
    // for the other parts.
    let contenders: &[Contender] = if cfg.parts.wrk { &cfg.contenders } else { &[] };
    for &c in contenders {
        if let Some(why) = c.unavailable() {
            eprintln!("xvs-bench: {}: {why}", c.name());
            outcomes.insert(c, Outcome::Unavailable(why.into()));
            continue;
        }
        let started = peers::start(&t, c).and_then(|mut r| {
            r.activate(&t)?;
            let ok = xvs_testhost::cmd::wait_until(
                &format!("{} to answer", c.name()),
                Duration::from_secs(10),
                || verify(&t, &mut r),
            );
            r.deactivate(&t)?;
            ok.map(|_| r)
        });
        match started {
            Ok(r) => {
                eprintln!("xvs-bench: {} ready at {}", c.name(), r.url);
                outcomes.insert(c, Outcome::Measured);
                running.push(r);
            }
            Err(e) => {
                eprintln!("xvs-bench: {} FAILED to start: {e}", c.name());
                outcomes.insert(c, Outcome::Failed(e.to_string()));
            }
        }
    }

    if cfg.warmup {
        for r in &running {
            let o = wrk_options(r, cfg, Duration::from_secs(1));
            r.activate(&t)?;
            let _ = wrk(t.client(), &o);
            r.deactivate(&t)?;
        }
    }

    let mut samples = Vec::new();
    let n = running.len().max(1);
    let wrk_repeats = if cfg.parts.wrk { cfg.repeats } else { 0 };
    for round in 0..wrk_repeats {
        // Rotate the order every round so no contender always runs first
        // (or right after the same neighbour).
        for k in 0..running.len() {
            let r = &running[(k + round as usize) % n];
            for w in WORKLOADS {
                if outcomes.get(&r.contender) != Some(&Outcome::Measured) {
                    continue;
                }
                match measure(&t, r, w, cfg, round) {
                    Ok(s) => {
                        eprintln!(
                            "xvs-bench: round {}/{} {:<13} {:<9} {:>9.0} req/s  p50 {:>7.0}us p99 {:>7.0}us  errors {}",
                            round + 1,
                            cfg.repeats,
                            r.contender.name(),
                            w.name(),
                            s.rps,
                            s.p50_us,
                            s.p99_us,
                            s.errors
                        );
                        samples.push(s);
                    }
                    Err(e) => {
                        eprintln!("xvs-bench: {} {} FAILED: {e}", r.contender.name(), w.name());
                        outcomes.insert(r.contender, Outcome::Failed(e.to_string()));
                    }
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
    drop(running);
    let (mut runs, mut rate_error) = (pktgen::RateRuns::default(), None);
    if cfg.parts.rate {
        match pktgen::run(&t, &cfg.rate) {
            Ok(r) => runs = r,
            Err(e) => {
                eprintln!("xvs-bench: packet rate FAILED: {e}");
                rate_error = Some(e.to_string());
            }
        }
    }
    drop(_web);
    drop(t);
    let conns = cfg
        .parts
        .conns
        .then(|| conntable::run(&cfg.conn_sizes, cfg.conn_runs, cfg.conn_random_flows));
    let mut ctl = Vec::new();
    if cfg.parts.ctl {
        let (s, r) = cfg.ctl_size;
        let p = ctlplane::run(s, r, cfg.ctl_runs);
        eprintln!("xvs-bench: control plane {s} x {r}: {p:?}");
        let refused = p.sync_error.is_some();
        ctl.push(p);
        if refused {
            // What the datapath's maps take today (4096 services).
            let p = ctlplane::run(4_000, r, cfg.ctl_runs);
            eprintln!("xvs-bench: control plane 4000 x {r}: {p:?}");
            ctl.push(p);
        }
    }
    Ok(RunResult {
        conns,
        ctl,
        rates: runs.main,
        rate_error,
        sweep: runs.sweep,
        new_flows: runs.new_flows,
        config: cfg.clone(),
        samples,
        outcomes,
        started,
        elapsed: start.elapsed(),
        machine,
    })
}
