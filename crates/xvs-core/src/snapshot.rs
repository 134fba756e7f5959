//! Read-only views of the table, shaped like what ipvsadm gets from the kernel
//! (ipvs_service_entry_t, ipvs_dest_entry_t, /proc/net/ip_vs_conn). The
//! formatter prints these; the daemon's API serves them.

use std::net::IpAddr;

use crate::ipvsadm::{DaemonConfig, TimeoutSet};
use crate::model::{DestConfig, ServiceConfig};
use crate::stats::{Counters, Rates};

/// Everything `ipvsadm -L`/`-S` prints.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TableSnapshot {
    /// Services in the kernel's order (unsorted).
    pub services: Vec<ServiceEntry>,
    /// Connection hash table size shown in the header, 4096 by default.
    pub conn_tab_size: u32,
}

/// One virtual service with its real servers.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceEntry {
    pub cfg: ServiceConfig,
    pub stats: Counters,
    pub rates: Rates,
    /// Real servers in kernel list order (newest first).
    pub dests: Vec<DestEntry>,
}

/// One real server.
#[derive(Clone, Debug, PartialEq)]
pub struct DestEntry {
    pub cfg: DestConfig,
    pub active_conns: u32,
    pub inact_conns: u32,
    pub persist_conns: u32,
    pub stats: Counters,
    pub rates: Rates,
}

/// One line of `ipvsadm -Lc` (a connection or a persistence template).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnEntry {
    /// "TCP", "UDP", "SCTP", or "IP" for templates of all-port/fwmark services.
    pub protocol: String,
    pub caddr: IpAddr,
    pub cport: u16,
    pub vaddr: IpAddr,
    pub vport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
    /// State name as the kernel prints it ("ESTABLISHED", "NONE", ...).
    pub state: String,
    /// Seconds until expiry.
    pub expires: u64,
    pub pe_name: Option<String>,
    pub pe_data: Option<String>,
}

/// `ipvsadm -L --timeout`.
pub type Timeouts = TimeoutSet;

/// `ipvsadm -L --daemon`: the running sync daemons.
pub type DaemonList = Vec<DaemonConfig>;
