//! xvs-sim: replays a workload through the reference model of LVS.
//!
//! Usage: `xvs-sim WORKLOAD-FILE`

mod run;
mod workload;

use std::fmt::Write as _;
use std::process::ExitCode;

use run::Report;

fn render(r: &Report, duration: f64) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "simulated {duration} s: {} connections ({} refused: no real server; {} arrivals hit a live tuple), \
         {} packets ({} dropped)",
        r.connections, r.unschedulable, r.collisions, r.packets, r.dropped
    );
    let rss = r
        .peak_rss_kib
        .map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
        .unwrap_or_else(|| "unknown".into());
    let _ = writeln!(
        o,
        "took {:.2} s wall time, peak memory {rss}, peak {} live connections, {} live at the end",
        r.wall_secs, r.peak_live, r.live_at_end
    );
    let _ = writeln!(o);
    let total: u64 = r.reals.iter().map(|x| x.conns).sum();
    let wsum: u64 = r.reals.iter().filter_map(|x| x.weight).map(u64::from).sum();
    let _ = writeln!(
        o,
        "{:<28} {:>6} {:>10} {:>7} {:>7} {:>10} {:>10}",
        "Real server", "Weight", "Conns", "Share", "Weight%", "ActiveConn", "InActConn"
    );
    // Listing every real server of a 1,000-server run helps nobody.
    let shown = if r.reals.len() > 40 {
        20
    } else {
        r.reals.len()
    };
    for x in &r.reals[..shown] {
        let share = if total > 0 {
            100.0 * x.conns as f64 / total as f64
        } else {
            0.0
        };
        let name = match x.addr {
            std::net::IpAddr::V6(a) => format!("[{a}]:{}", x.port),
            a => format!("{a}:{}", x.port),
        };
        let (weight, wshare) = match x.weight {
            Some(w) if wsum > 0 => (
                w.to_string(),
                format!("{:.1}%", 100.0 * w as f64 / wsum as f64),
            ),
            Some(w) => (w.to_string(), "-".into()),
            None => ("gone".into(), "-".into()),
        };
        let _ = writeln!(
            o,
            "{name:<28} {weight:>6} {:>10} {share:>6.1}% {wshare:>7} {:>10} {:>10}",
            x.conns, x.active, x.inactive
        );
    }
    if shown < r.reals.len() {
        let _ = writeln!(o, "... and {} more real servers", r.reals.len() - shown);
    }
    if !r.changes.is_empty() {
        let _ = writeln!(o, "\nChanges:");
        for c in &r.changes {
            match &c.error {
                Some(e) => {
                    let _ = writeln!(o, "  at {} s: {}: refused: {e}", c.at_secs, c.line);
                }
                None => {
                    let moved = match c.moved {
                        Some(m) => format!(
                            "{m} of {} probe flows now hash to another real server ({:.1}%)",
                            c.probes,
                            100.0 * m as f64 / c.probes.max(1) as f64
                        ),
                        None => "flow remapping n/a (not a hashing scheduler)".to_string(),
                    };
                    let _ = writeln!(
                        o,
                        "  at {} s: {}:\n      {moved}; {} of {} live connections on a removed real server",
                        c.at_secs, c.line, c.stranded, c.live
                    );
                }
            }
        }
    }
    if r.reals.len() <= 40 {
        let _ = writeln!(o, "\nipvsadm -Ln --stats at the end:\n{}", r.stats_listing);
    }
    o
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path] = args.as_slice() else {
        eprintln!("usage: xvs-sim WORKLOAD-FILE");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("xvs-sim: cannot read {path}: {e}");
            return ExitCode::from(2);
        }
    };
    let w = match workload::parse(&text) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("xvs-sim: {path}: {e}");
            return ExitCode::from(2);
        }
    };
    match run::run(&w) {
        Ok(r) => {
            print!("{}", render(&r, w.duration));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xvs-sim: {path}: {e}");
            ExitCode::FAILURE
        }
    }
}
