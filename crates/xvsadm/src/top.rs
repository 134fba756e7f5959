//! `xvsadm --top`: a live view of services, real servers, rates and
//! connections, refreshed every interval (`--interval SECS`, default 2: the
//! estimator's period). `--iterations N` stops after N frames (batch use).

use std::fmt::Write;
use std::io::IsTerminal;
use std::time::Duration;

use xvs_api::client::{Client, ClientError};
use xvs_api::wire::{ServiceList, Status};

fn take_value(args: &mut Vec<String>, flag: &str) -> Result<Option<u64>, String> {
    let Some(i) = args.iter().position(|a| a == flag) else {
        return Ok(None);
    };
    let v = args
        .get(i + 1)
        .cloned()
        .ok_or_else(|| format!("xvsadm: {flag} needs a number"))?;
    let n = v
        .parse::<u64>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("xvsadm: bad {flag} value '{v}'"))?;
    args.drain(i..i + 2);
    Ok(Some(n))
}

fn frame(status: &Status, doc: &ServiceList) -> String {
    let mut o = String::new();
    let fwd = status
        .packets
        .iter()
        .find(|(k, _)| k == "forwarded")
        .map(|(_, v)| *v)
        .unwrap_or(0);
    let _ = writeln!(
        o,
        "xvs top - {} up {}s, {} connections, {} packets forwarded, interfaces: {}",
        status.name,
        status.uptime_secs,
        status.connections,
        fwd,
        status
            .interfaces
            .iter()
            .map(|i| format!("{} ({})", i.name, i.mode))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        o,
        "{:<34} {:>6} {:>8} {:>8} {:>10} {:>10} {:>8} {:>9}",
        "Service / real server",
        "Weight",
        "Conns/s",
        "Pkts/s",
        "InBytes/s",
        "OutBytes/s",
        "Active",
        "Inactive"
    );
    for s in &doc.services {
        let name = match (&s.address, s.port, s.fwmark) {
            (Some(a), Some(p), _) => {
                format!("{} {a}:{p} {}", s.protocol.to_uppercase(), s.scheduler)
            }
            (_, _, Some(m)) => format!("FWM {m} {}", s.scheduler),
            _ => s.protocol.clone(),
        };
        let act: u32 = s.reals.iter().map(|r| r.active_conns).sum();
        let inact: u32 = s.reals.iter().map(|r| r.inactive_conns).sum();
        let _ = writeln!(
            o,
            "{:<34} {:>6} {:>8} {:>8} {:>10} {:>10} {:>8} {:>9}",
            name, "", s.rates.cps, s.rates.inpps, s.rates.inbps, s.rates.outbps, act, inact
        );
        for r in &s.reals {
            let _ = writeln!(
                o,
                "  -> {:<29} {:>6} {:>8} {:>8} {:>10} {:>10} {:>8} {:>9}",
                format!("{}:{} {}", r.address, r.port, r.forward),
                r.weight,
                r.rates.cps,
                r.rates.inpps,
                r.rates.inbps,
                r.rates.outbps,
                r.active_conns,
                r.inactive_conns
            );
        }
    }
    o
}

fn error(client: &Client, e: ClientError) -> String {
    match e {
        ClientError::NotRunning(_, io) => crate::not_running_line(client, &io),
        e => format!("xvsadm: {e}"),
    }
}

pub fn run(client: &Client, args: &mut Vec<String>) -> Result<(), String> {
    let interval = take_value(args, "--interval")?.unwrap_or(2);
    let iterations = take_value(args, "--iterations")?;
    args.retain(|a| a != "-n");
    if let Some(a) = args.first() {
        return Err(format!("xvsadm: --top does not take '{a}'"));
    }
    let tty = std::io::stdout().is_terminal();
    let mut n = 0;
    loop {
        let status: Status = client.get("/v1/status").map_err(|e| error(client, e))?;
        let doc: ServiceList = client.get("/v1/services").map_err(|e| error(client, e))?;
        if tty {
            print!("\x1b[H\x1b[2J");
        }
        print!("{}", frame(&status, &doc));
        n += 1;
        if iterations.is_some_and(|i| n >= i) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(interval));
    }
}
