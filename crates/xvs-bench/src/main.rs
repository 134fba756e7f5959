//! `xvs-bench`: see `bench/run` and BENCHMARKS.md.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use xvs_bench::{peers::Contender, report, Config};

const USAGE: &str = "usage: xvs-bench [--quick] [--duration SECS] [--repeats N] [--connections N]
                 [--threads N] [--servers N] [--only NAME,NAME...] [--no-warmup]
                 [--parts wrk,rate,conns,ctl] [--rate-duration SECS] [--rate-repeats N]
                 [--flows N] [--flow-order random|cyclic] [--sweep N,N...|none]
                 [--forwarders NAME,...] [--new-flows NAME,...|none]
                 [--tsv FILE] [--report FILE] [--update-doc FILE] [--plots DIR]

Builds a NAT lab in network namespaces (client, director, real servers
running nginx) and measures, side by side, with rounds in rotating order:
direct, haproxy, nginx-stream, nft-dnat, noop-fwd, xvs-dr, xvs-nat, xvs-tun
(wrk); then the packet rate of the no-op XDP/tc forwarders and xvs with a
live-frames generator, for established flows and for new ones (every frame
a SYN of a new flow: new connections/s); the connection table at
10k/1M/10M entries; and the
control plane at 10,000 services x 10 real servers. Default: 10 s per wrk
measurement, 3 rounds; --quick: 3 s, 2 rounds. Needs root.";

/// Where to write the samples, the report, and which doc to update.
type Outputs = (
    Option<PathBuf>,
    Option<PathBuf>,
    Option<PathBuf>,
    Option<PathBuf>,
);

/// A comma-separated list, each item through `one` (trimmed), or `none`.
fn list_or_none<T>(v: &str, one: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    if v == "none" {
        return Ok(Vec::new());
    }
    v.split(',').map(|n| one(n.trim())).collect()
}

fn parse_args() -> Result<(Config, Outputs), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut cfg = if args.iter().any(|a| a == "--quick") {
        Config::quick()
    } else {
        Config::full()
    };
    let (mut tsv, mut rep, mut doc, mut plots) = (None, None, None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value"))
        };
        let num = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{a}: not a number: {v}"))
        };
        match a.as_str() {
            "--quick" => {}
            "--no-warmup" => cfg.warmup = false,
            "--duration" => cfg.duration = Duration::from_secs(num(val()?)?.max(1)),
            "--repeats" => cfg.repeats = num(val()?)?.max(1) as u32,
            "--connections" => cfg.connections = num(val()?)?.max(1) as u32,
            "--threads" => cfg.threads = num(val()?)?.max(1) as u32,
            "--servers" => cfg.servers = num(val()?)? as usize,
            "--parts" => {
                let v = val()?;
                cfg.parts = xvs_bench::Parts::parse(&v)
                    .ok_or_else(|| format!("--parts: want a subset of wrk,rate,conns,ctl: {v}"))?;
            }
            "--rate-duration" => cfg.rate.duration = Duration::from_secs(num(val()?)?.max(1)),
            "--rate-repeats" => cfg.rate.repeats = num(val()?)?.max(1) as u32,
            "--flows" => cfg.rate.flows = num(val()?)?.max(1) as u32,
            "--sweep" => {
                cfg.rate.sweep = list_or_none(&val()?, |n| {
                    n.parse::<u32>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| format!("--sweep: not a number of flows: {n}"))
                })?;
            }
            "--flow-order" => {
                let v = val()?;
                cfg.rate.order = xvs_bench::pktgen::FlowOrder::parse(&v)
                    .ok_or_else(|| format!("--flow-order: want cyclic or random: {v}"))?;
            }
            "--new-flows" => {
                cfg.rate.new_flows = list_or_none(&val()?, |n| {
                    xvs_bench::pktgen::Forwarder::parse(n)
                        .ok_or_else(|| format!("--new-flows: unknown forwarder {n:?}"))
                })?;
            }
            "--forwarders" => {
                cfg.rate.forwarders = val()?
                    .split(',')
                    .map(|n| {
                        xvs_bench::pktgen::Forwarder::parse(n.trim())
                            .ok_or_else(|| format!("unknown forwarder {n:?}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--only" => {
                cfg.contenders = val()?
                    .split(',')
                    .map(|n| {
                        Contender::parse(n.trim()).ok_or_else(|| format!("unknown contender {n:?}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--tsv" => tsv = Some(PathBuf::from(val()?)),
            "--plots" => plots = Some(PathBuf::from(val()?)),
            "--report" => rep = Some(PathBuf::from(val()?)),
            "--update-doc" => doc = Some(PathBuf::from(val()?)),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if cfg.parts.wrk
        && cfg.contenders.contains(&Contender::Direct)
        && !(cfg.threads as usize).is_multiple_of(cfg.servers.max(1))
    {
        return Err(format!(
            "--threads {} is not a multiple of --servers {}: direct spreads wrk's threads over the real servers",
            cfg.threads, cfg.servers
        ));
    }
    if cfg.connections < cfg.threads {
        return Err(format!(
            "--connections {} is fewer than --threads {}",
            cfg.connections, cfg.threads
        ));
    }
    let mut shown = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if ["--tsv", "--report", "--update-doc", "--plots"].contains(&a.as_str()) {
            it.next();
        } else {
            shown.push(a.clone());
        }
    }
    cfg.args = shown.join(" ");
    Ok((cfg, (tsv, rep, doc, plots)))
}

fn main() -> ExitCode {
    let (cfg, (tsv, rep, doc, plots)) = match parse_args() {
        Ok(x) => x,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("xvs-bench: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match xvs_bench::run(&cfg) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("xvs-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut figs = Vec::new();
    let mut prefix = String::new();
    if let Some(dir) = &plots {
        match xvs_bench::plots::draw(&result, dir) {
            Ok(f) => {
                figs = f;
                prefix = format!("{}/", dir.display());
            }
            Err(e) => eprintln!("xvs-bench: no figures: {e}"),
        }
    }
    let md = report::markdown(&result, &figs, &prefix);
    println!("{md}");
    let write = |p: &PathBuf, text: &str| {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(p, text).map_err(|e| format!("writing {}: {e}", p.display()))
    };
    let mut ok = true;
    if let Some(p) = &tsv {
        if let Err(e) = write(p, &report::to_tsv(&result.samples)) {
            eprintln!("xvs-bench: {e}");
            ok = false;
        }
        if !result.rates.is_empty() || !result.new_flows.is_empty() {
            let rp = p.with_extension("rate.tsv");
            let all = [
                result.rates.clone(),
                result.sweep.clone(),
                result.new_flows.clone(),
            ]
            .concat();
            if let Err(e) = write(&rp, &xvs_bench::pktgen::to_tsv(&all)) {
                eprintln!("xvs-bench: {e}");
                ok = false;
            }
        }
    }
    if let Some(p) = &rep {
        if let Err(e) = write(p, &md) {
            eprintln!("xvs-bench: {e}");
            ok = false;
        }
    }
    if let Some(p) = &doc {
        let r = std::fs::read_to_string(p)
            .map_err(|e| format!("reading {}: {e}", p.display()))
            .and_then(|d| report::splice(&d, &md).map_err(|e| format!("{}: {e}", p.display())))
            .and_then(|d| write(p, &d));
        match r {
            Ok(()) => eprintln!("xvs-bench: updated {}", p.display()),
            Err(e) => {
                eprintln!("xvs-bench: {e}");
                ok = false;
            }
        }
    }
    let failed = result
        .outcomes
        .values()
        .any(|o| matches!(o, xvs_bench::Outcome::Failed(_)));
    if failed {
        eprintln!("xvs-bench: some contenders failed (see the report)");
    }
    if ok && !failed && !result.samples.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
