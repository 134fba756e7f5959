//! What an ipvsadm command line means, once parsed. The rule table applies these
//! ([`crate::table::IpvsTable::apply`]); list and save commands go to the formatter.

use std::net::IpAddr;

use crate::model::{DestConfig, ServiceConfig, ServiceKey};

/// One ipvsadm command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `-A`: add a virtual service.
    AddService(ServiceConfig),
    /// `-E`: edit a virtual service (scheduler, flags, persistence).
    EditService(ServiceConfig),
    /// `-D`: delete a virtual service and its real servers.
    DeleteService(ServiceKey),
    /// `-C`: clear the whole table.
    Clear,
    /// `-a`: add a real server to a service.
    AddDest(ServiceKey, DestConfig),
    /// `-e`: edit a real server.
    EditDest(ServiceKey, DestConfig),
    /// `-d`: delete a real server.
    DeleteDest(ServiceKey, DestAddr),
    /// `-Z [service]`: zero counters of one service or of all.
    Zero(Option<ServiceKey>),
    /// `--set tcp tcpfin udp`: connection timeouts in seconds, 0 = leave as is.
    SetTimeout(TimeoutSet),
    /// `--start-daemon master|backup ...`.
    StartDaemon(DaemonConfig),
    /// `--stop-daemon master|backup`.
    StopDaemon(DaemonState),
    /// `-L`/`-l`, with what to show.
    List(ListOptions),
    /// `-S`: print the table as commands; `numeric` is `-n`.
    Save { numeric: bool },
    /// `-R`: read commands from standard input.
    Restore,
    /// `-h`.
    Help,
    /// `-v`.
    Version,
}

/// A real server's identity within a service (`-r addr[:port]` of `-d`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DestAddr {
    pub addr: IpAddr,
    pub port: u16,
}

/// `--set tcp tcpfin udp`, seconds; 0 leaves that timeout unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TimeoutSet {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}

/// Connection-sync daemon role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DaemonState {
    Master,
    Backup,
}

/// `--start-daemon` and its options.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DaemonConfig {
    pub state: DaemonState,
    /// `--mcast-interface`.
    pub mcast_ifn: Option<String>,
    /// `--syncid` (0..255).
    pub syncid: u32,
    /// `--sync-maxlen`.
    pub sync_maxlen: Option<u16>,
    /// `--mcast-group`.
    pub mcast_group: Option<IpAddr>,
    /// `--mcast-port`.
    pub mcast_port: Option<u16>,
    /// `--mcast-ttl`.
    pub mcast_ttl: Option<u8>,
}

/// What `-L`/`-l` shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Only this service (`-L -t addr:port`).
    pub service: Option<ServiceKey>,
    /// `-n`: numeric addresses and ports.
    pub numeric: bool,
    /// `--exact`: expand numbers instead of K/M/G.
    pub exact: bool,
    /// `--stats`.
    pub stats: bool,
    /// `--rate`.
    pub rate: bool,
    /// `--thresholds`.
    pub thresholds: bool,
    /// `--persistent-conn`.
    pub persistent_conn: bool,
    /// `--tun-info`.
    pub tun_info: bool,
    /// `-c`: list connections instead of services.
    pub connections: bool,
    /// `--timeout`: list timeouts.
    pub timeout: bool,
    /// `--daemon`: list sync daemon state.
    pub daemon: bool,
    /// `--nosort`: keep the kernel's order (`--sort` is the default and a no-op).
    pub nosort: bool,
}
