//! PNG figures of a run, drawn by gnuplot (Debian `gnuplot-nox`, installed
//! by bench/install-deps.sh): the data and the script are written next to
//! the PNGs so a figure can be redrawn or checked by hand.

use std::{fmt::Write as _, fs, path::Path, process::Command};

use crate::{
    pktgen::{Forwarder, L4},
    report::{summarise, Stat},
    RunResult, Workload,
};

/// Figures written, as (file name, alt text).
pub type Figures = Vec<(String, String)>;

fn stat_cols(s: Option<Stat>, scale: f64) -> String {
    match s {
        Some(s) => format!(
            "{:.3} {:.3} {:.3}",
            s.median * scale,
            s.min * scale,
            s.max * scale
        ),
        None => "0 0 0".into(),
    }
}

fn gnuplot(dir: &Path, name: &str, script: &str) -> Result<(), String> {
    let gp = dir.join(format!("{name}.gp"));
    fs::write(&gp, script).map_err(|e| format!("writing {}: {e}", gp.display()))?;
    // gnuplot runs in `dir`, so the script's data and output names are
    // plain file names.
    let out = Command::new("gnuplot")
        .arg(format!("{name}.gp"))
        .current_dir(dir)
        .output()
        .map_err(|e| format!("running gnuplot (apt-get install gnuplot-nox): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "gnuplot {}: {}",
            gp.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

const HEAD: &str = "set terminal pngcairo size 1100,520 font 'sans,10'\n\
set style data histogram\n\
set style histogram errorbars gap 2 lw 1\n\
set style fill solid 0.8 border -1\n\
set boxwidth 0.9\n\
set grid ytics\n\
set xtics rotate by -30\n\
set key top right\n\
set yrange [0:*]\n";

/// Draws every figure the run has data for into `dir`.
pub fn draw(r: &RunResult, dir: &Path) -> Result<Figures, String> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut figs = Vec::new();
    let measured: Vec<_> = r
        .config
        .contenders
        .iter()
        .copied()
        .filter(|c| summarise(&r.samples, *c, Workload::KeepAlive).is_some())
        .collect();
    if !measured.is_empty() {
        let mut d = String::from("# contender  ka_rps min max  close_rps min max  ka_p50_ms min max  ka_p99_ms min max  cl_p50_ms min max  cl_p99_ms min max\n");
        for c in &measured {
            let ka = summarise(&r.samples, *c, Workload::KeepAlive);
            let cl = summarise(&r.samples, *c, Workload::Close);
            let _ = writeln!(
                d,
                "{} {} {} {} {} {} {}",
                c.name(),
                stat_cols(ka.as_ref().map(|s| s.rps), 1.0),
                stat_cols(cl.as_ref().map(|s| s.rps), 1.0),
                stat_cols(ka.as_ref().and_then(|s| s.p50), 1e-3),
                stat_cols(ka.as_ref().and_then(|s| s.p99), 1e-3),
                stat_cols(cl.as_ref().and_then(|s| s.p50), 1e-3),
                stat_cols(cl.as_ref().and_then(|s| s.p99), 1e-3),
            );
        }
        fs::write(dir.join("http.dat"), &d).map_err(|e| e.to_string())?;
        let script = format!(
            "{HEAD}set output 'throughput.png'\n\
             set multiplot layout 1,2 title 'HTTP through the director (wrk -c{c}, median of {n} rounds, bars: min-max)'\n\
             set title 'keep-alive: requests/s'\n\
             plot 'http.dat' using 2:3:4:xtic(1) title 'req/s' lc rgb '#3366cc'\n\
             set title 'Connection: close: new connections/s'\n\
             plot 'http.dat' using 5:6:7:xtic(1) title 'conn/s' lc rgb '#dc3912'\n\
             unset multiplot\n",
            c = r.config.connections,
            n = r.config.repeats
        );
        gnuplot(dir, "throughput", &script)?;
        figs.push((
            "throughput.png".into(),
            "HTTP requests/s per contender, keep-alive and Connection: close".into(),
        ));
        let script = format!(
            "{HEAD}set output 'latency.png'\n\
             set multiplot layout 1,2 title 'HTTP latency (wrk --latency, ms; median of rounds, bars: min-max)'\n\
             set title 'keep-alive'\n\
             plot 'http.dat' using 8:9:10:xtic(1) title 'p50' lc rgb '#3366cc', '' using 11:12:13 title 'p99' lc rgb '#ff9900'\n\
             set title 'Connection: close'\n\
             plot 'http.dat' using 14:15:16:xtic(1) title 'p50' lc rgb '#3366cc', '' using 17:18:19 title 'p99' lc rgb '#ff9900'\n\
             unset multiplot\n"
        );
        gnuplot(dir, "latency", &script)?;
        figs.push((
            "latency.png".into(),
            "HTTP latency p50 and p99 per contender".into(),
        ));
    }
    if !r.rates.is_empty() {
        let mut d = String::from("# forwarder  tcp_mpps min max  udp_mpps min max\n");
        let mut fwds: Vec<Forwarder> = Vec::new();
        for s in &r.rates {
            if !fwds.contains(&s.forwarder) {
                fwds.push(s.forwarder);
            }
        }
        for f in &fwds {
            let st = |l: L4| {
                Stat::of(
                    r.rates
                        .iter()
                        .filter(|s| s.forwarder == *f && s.l4 == l)
                        .map(|s| s.pps())
                        .collect(),
                )
            };
            let _ = writeln!(
                d,
                "{} {} {}",
                f.name(),
                stat_cols(st(L4::Tcp), 1e-6),
                stat_cols(st(L4::Udp), 1e-6)
            );
        }
        fs::write(dir.join("pktrate.dat"), &d).map_err(|e| e.to_string())?;
        let script = format!(
            "{HEAD}set output 'pktrate.png'\n\
             set title 'Established-flow forwarding, 60-byte frames, {} flows (Mpps at the sink; median of {} runs, bars: min-max)'\n\
             plot 'pktrate.dat' using 2:3:4:xtic(1) title 'TCP ACK' lc rgb '#3366cc', '' using 5:6:7 title 'UDP' lc rgb '#109618'\n",
            r.config.rate.flows, r.config.rate.repeats
        );
        gnuplot(dir, "pktrate", &script)?;
        figs.push((
            "pktrate.png".into(),
            "Packet rate per forwarder: no-op XDP/tc forwarders and xvs".into(),
        ));
    }
    if let Some(c) = r.conns.as_ref().filter(|c| !c.points.is_empty()) {
        let mut d = String::from("# entries  hot_ns min max  random_ns min max  MiB\n");
        for p in &c.points {
            let _ = writeln!(
                d,
                "{} {} {} {:.1}",
                p.entries,
                stat_cols(Stat::of(p.hot_ns.clone()), 1.0),
                stat_cols(Stat::of(p.random_ns.clone()), 1.0),
                (p.conns_bytes + p.index_bytes) as f64 / 1048576.0
            );
        }
        fs::write(dir.join("conntable.dat"), &d).map_err(|e| e.to_string())?;
        let script = "set terminal pngcairo size 1100,420 font 'sans,10'\n\
             set output 'conntable.png'\n\
             set multiplot layout 1,2 title 'Connection table: established-flow packet through xvs\\_xdp (BPF\\_PROG\\_TEST\\_RUN)'\n\
             set logscale x\nset grid\nset key top left\nset yrange [0:*]\nset xlabel 'entries'\n\
             set title 'ns per packet (median, bars: min-max)'\n\
             plot 'conntable.dat' using 1:2:3:4 with yerrorlines title 'same flow repeated', '' using 1:5:6:7 with yerrorlines title 'random flows of the table'\n\
             set title 'kernel memory (memlock), MiB: table + NAT index'\n\
             plot 'conntable.dat' using 1:8 with linespoints title 'MiB'\n\
             unset multiplot\n";
        gnuplot(dir, "conntable", script)?;
        figs.push((
            "conntable.png".into(),
            "Connection table: packet cost and memory at 10k, 1M, 10M entries".into(),
        ));
    }
    Ok(figs)
}
