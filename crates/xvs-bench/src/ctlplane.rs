//! Control plane: the time to load N services x M real servers, as
//! `ipvsadm-restore` input, through xvs-core (`parse_restore` +
//! `IpvsTable::apply_all`) and then into the kernel through
//! `Datapath::sync`; and a second sync after one change (a real server's
//! weight), which is what xvsd does after every command.

use std::{
    net::{IpAddr, Ipv4Addr},
    time::Instant,
};

use xvs_core::{
    ipvsadm::{self, NumericOnly},
    persist::Sysctls,
    table::IpvsTable,
};
use xvs_datapath::{Datapath, LoadOptions, NextHop, L2};

/// One size.
#[derive(Clone, Debug, PartialEq)]
pub struct CtlPoint {
    pub services: u32,
    pub reals: u32,
    /// Seconds: parse_restore, apply_all, first sync, sync after one change.
    pub parse_s: Vec<f64>,
    pub apply_s: Vec<f64>,
    pub sync_s: Vec<f64>,
    pub resync_s: Vec<f64>,
    /// Why the datapath refused it, if it did.
    pub sync_error: Option<String>,
}

fn vip(i: u32) -> Ipv4Addr {
    // 198.18.0.0/15, skipping .0 and .255 hosts.
    let a = u32::from(Ipv4Addr::new(198, 18, 0, 0)) + (i / 254) * 256 + 1 + i % 254;
    Ipv4Addr::from(a)
}

fn real(j: u32) -> Ipv4Addr {
    Ipv4Addr::new(198, 19, 255, 1 + j as u8)
}

/// `ipvsadm-restore` input: `services` TCP services (rr), each with
/// `reals` direct-routing real servers.
pub fn restore_input(services: u32, reals: u32) -> String {
    let mut s = String::new();
    for i in 0..services {
        let v = vip(i);
        s.push_str(&format!("-A -t {v}:80 -s rr\n"));
        for j in 0..reals {
            s.push_str(&format!("-a -t {v}:80 -r {}:80 -g -w 1\n", real(j)));
        }
    }
    s
}

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

/// Measures `services` x `reals`, `runs` times.
pub fn run(services: u32, reals: u32, runs: usize) -> CtlPoint {
    let input = restore_input(services, reals);
    let mut p = CtlPoint {
        services,
        reals,
        parse_s: vec![],
        apply_s: vec![],
        sync_s: vec![],
        resync_s: vec![],
        sync_error: None,
    };
    let l2 = L2 {
        default: NextHop {
            mac: [0x02, 0x78, 0x76, 0x73, 0x10, 0],
            src_mac: [0x02, 0x78, 0x76, 0x73, 0x02, 0],
            ifindex: 0,
        },
        ..L2::default()
    };
    for _ in 0..runs {
        let t = Instant::now();
        let cmds = match ipvsadm::parse::parse_restore(&input, &NumericOnly) {
            Ok(c) => c,
            Err(e) => {
                p.sync_error = Some(format!("parse_restore: {e:?}"));
                return p;
            }
        };
        p.parse_s.push(secs(t));
        let mut table = IpvsTable::new();
        let t = Instant::now();
        if let Err((i, e)) = table.apply_all(&cmds) {
            p.sync_error = Some(format!("apply_all: command {i}: {e}"));
            return p;
        }
        p.apply_s.push(secs(t));
        if p.sync_error.is_some() {
            continue;
        }
        let mut dp = match Datapath::load_with(LoadOptions::with_max_conns(1 << 16)) {
            Ok(d) => d,
            Err(e) => {
                p.sync_error = Some(format!("loading the datapath: {e}"));
                continue;
            }
        };
        let t = Instant::now();
        if let Err(e) = dp.sync(&table, &Sysctls::default(), &l2) {
            p.sync_error = Some(e.to_string());
            continue;
        }
        p.sync_s.push(secs(t));
        let words = format!("-e -t {}:80 -r {}:80 -g -w 2", vip(services / 2), real(0));
        let words: Vec<&str> = words.split_whitespace().collect();
        let cmd = ipvsadm::parse::parse_args(&words, &NumericOnly).expect("edit command");
        table.apply(&cmd).expect("edit applies");
        let t = Instant::now();
        if let Err(e) = dp.sync(&table, &Sysctls::default(), &l2) {
            p.sync_error = Some(format!("second sync: {e}"));
            continue;
        }
        p.resync_s.push(secs(t));
    }
    let _ = IpAddr::V4(vip(0));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_input_is_valid_and_stays_in_the_benchmark_range() {
        let s = restore_input(600, 3);
        assert_eq!(s.lines().count(), 600 * 4);
        let cmds = ipvsadm::parse::parse_restore(&s, &NumericOnly).unwrap();
        let mut t = IpvsTable::new();
        t.apply_all(&cmds).unwrap();
        assert_eq!(t.services().count(), 600);
        let net = xvs_testhost::Cidr::new(Ipv4Addr::new(198, 18, 0, 0), 15);
        for i in [0, 253, 254, 9_999, 20_000] {
            assert!(net.contains(vip(i)), "{}", vip(i));
        }
        assert_ne!(vip(253), vip(254));
    }
}
