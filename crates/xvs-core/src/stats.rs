//! Counters and rates, as `ipvsadm --stats` and `--rate` show them.

use std::ops::AddAssign;

/// Cumulative counters of a service, a real server, or the whole table
/// (the kernel's struct ip_vs_kstats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Counters {
    pub conns: u64,
    pub inpkts: u64,
    pub outpkts: u64,
    pub inbytes: u64,
    pub outbytes: u64,
}

impl AddAssign for Counters {
    fn add_assign(&mut self, o: Counters) {
        self.conns += o.conns;
        self.inpkts += o.inpkts;
        self.outpkts += o.outpkts;
        self.inbytes += o.inbytes;
        self.outbytes += o.outbytes;
    }
}

/// Estimated rates per second, as the kernel reports them (already rounded).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rates {
    pub cps: u64,
    pub inpps: u64,
    pub outpps: u64,
    pub inbps: u64,
    pub outbps: u64,
}
