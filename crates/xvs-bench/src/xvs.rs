//! xvs as a contender: the datapath library (`xvs-datapath`) loaded in this
//! process, its rules built from ipvsadm command lines with `xvs-core`, as
//! the lab tests and xvsd do, and attached to the director of the bench's
//! NAT lab in one of the three forwarding methods.
//!
//! The lab is the one every other contender uses: client — director (d0,
//! VIP) — director (d1) — bridge — real servers, whose default gateway is
//! the director. So:
//!
//! - NAT: `xvs_tc` on d0 ingress DNATs and redirects out of d1; on d1
//!   ingress it SNATs the replies back to the VIP, which the stack routes
//!   to the client.
//! - DR: `xvs_tc` on d0 rewrites the MACs and redirects out of d1 to the
//!   real server, which holds the VIP on `lo` (arp_ignore=1,
//!   arp_announce=2). Its replies go to its default gateway, the director,
//!   which routes them to the client: the return path has the same hop as
//!   `direct`'s.
//! - TUN: `xvs_tc` on d0 encapsulates (IPIP) towards the real server's own
//!   address, out of d1; the real server strips the tunnel with the xvs
//!   decap program (tc ingress on r0) and answers from the VIP, again via
//!   the director as a router.
//!
//! tc, not XDP, is what a user picks on veths: a local stack hands veth
//! frames over as CHECKSUM_PARTIAL, which XDP cannot see, so an XDP
//! forwarder would need the client's tx checksum offload turned off.
//!
//! The programs are attached only while their contender is measured (like
//! the nftables table), so the other contenders cross a director without
//! them; the connection table is flushed after each measurement.

use std::{cell::RefCell, net::IpAddr};

use xvs_core::{
    ipvsadm::{self, NumericOnly},
    persist::Sysctls,
    table::IpvsTable,
};
use xvs_datapath::{
    decap::{Decap, DecapAttachment},
    Attachment, Datapath, LoadOptions, L2,
};
use xvs_testhost::{Error, Result, Role, Topology};

/// The three forwarding methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    Dr,
    Nat,
    Tun,
}

impl Method {
    /// The ipvsadm forwarding flag.
    pub fn flag(self) -> &'static str {
        match self {
            Method::Dr => "-g",
            Method::Nat => "-m",
            Method::Tun => "-i",
        }
    }
}

fn dp_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("xvs: {what}: {e}"))
}

/// The ipvsadm command lines of the bench's service: VIP:port, rr over
/// every real server with `method`.
pub fn rules(vip: IpAddr, port: u16, servers: &[IpAddr], method: Method) -> Vec<String> {
    let mut v = vec![format!("-A -t {vip}:{port} -s rr")];
    for s in servers {
        v.push(format!(
            "-a -t {vip}:{port} -r {s}:{port} {}",
            method.flag()
        ));
    }
    v
}

/// Applies ipvsadm command lines to a new table.
pub fn table(lines: &[String]) -> Result<IpvsTable> {
    let mut t = IpvsTable::new();
    for l in lines {
        let words: Vec<&str> = l.split_whitespace().collect();
        let cmd = ipvsadm::parse::parse_args(&words, &NumericOnly)
            .map_err(|e| dp_err(&format!("ipvsadm {l}"), e))?;
        t.apply(&cmd)
            .map_err(|e| dp_err(&format!("ipvsadm {l}"), e))?;
    }
    Ok(t)
}

/// The real servers' next hops as xvsd has them: none given (an empty
/// `L2`), so the datapath asks the kernel's FIB and neighbour tables for
/// each packet's next hop (and, for TUN, the tunnel source: `d1`'s
/// address, the source of the route toward the real servers). The TUN MTU
/// is the veths' (larger non-GSO packets are dropped and counted; HTTP
/// requests are far smaller).
pub fn l2(_t: &Topology, method: Method) -> Result<L2> {
    let mut l2 = L2::default();
    if method == Method::Tun {
        l2.tun_mtu = 1500;
    }
    Ok(l2)
}

/// What the bench's lab needs for DR and TUN on top of the NAT layout: the
/// VIP on every real server's `lo` (never answered in ARP), and
/// `accept_local` on the director's `d1`. Not for xvs (NAT replies, which
/// xvs SNATs on `d1`, go straight to the client's next hop): DR and TUN
/// replies cross the director as a router with the VIP, an address of the
/// director's own in this lab, as source, which the kernel drops as a
/// martian without it. Harmless for the other contenders. The director
/// resolves the real servers' MACs once, so the first measured packets
/// find a neighbour entry, as on a director that has been serving a while.
pub fn prepare_lab(t: &Topology) -> Result<()> {
    let vip32 = format!("{}/32", t.vip());
    for s in t.servers() {
        s.sysctls(&[
            ("net.ipv4.conf.all.arp_ignore", "1"),
            ("net.ipv4.conf.all.arp_announce", "2"),
            ("net.ipv4.conf.r0.arp_ignore", "1"),
            ("net.ipv4.conf.r0.arp_announce", "2"),
            ("net.ipv4.conf.all.rp_filter", "0"),
            ("net.ipv4.conf.r0.rp_filter", "0"),
            ("net.ipv4.conf.lo.rp_filter", "0"),
            // No TIME_WAIT on the real servers (they close first under
            // `Connection: close`): one contender's closed connections
            // would meet the next's SYNs on the same four-tuple (direct
            // and every NAT-like path reach rs:80 from the client's
            // address), and with TCP timestamps taken from another offset
            // (the client's offset depends on the address it connects to)
            // PAWS drops those SYNs for a minute: seen as 1 s stalls that
            // cut direct and nft-dnat to a third in some rounds.
            ("net.ipv4.tcp_max_tw_buckets", "0"),
        ])?;
        s.ip(&["addr", "add", &vip32, "dev", "lo"])?;
    }
    t.director().sysctl("net.ipv4.conf.d1.accept_local", "1")?;
    resolve_servers(t)
}

/// Makes the director's neighbour entries for the real servers permanent,
/// with their MACs from the lab's plan: for the packet rate, whose sink
/// (on the bridge port in front of the servers) drops every frame the
/// director sends them, ARP among them. An entry left to itself goes
/// STALE, is probed once something uses it, and fails when the probes get
/// no answer; xvs, taking its next hops from the FIB, then finds no
/// neighbour and hands the frames to the stack (seen once: a whole run
/// with nothing at the sink, eight minutes into a full bench).
pub fn pin_server_neighbours(t: &Topology) -> Result<()> {
    for (i, a) in t.plan().server_addrs().into_iter().enumerate() {
        let mac = t
            .plan()
            .iface(Role::Server(i), "r0")
            .ok_or_else(|| dp_err("lab", format!("real server {i} has no r0")))?
            .mac_string();
        t.director().ip(&[
            "neigh",
            "replace",
            &a.to_string(),
            "lladdr",
            &mac,
            "dev",
            "d1",
            "nud",
            "permanent",
        ])?;
    }
    Ok(())
}

/// One UDP datagram (to the discard port) from the director to every real
/// server, so its neighbour table has their MACs before anything is
/// measured (the datapath's FIB lookups need them; without one a packet
/// takes the stack's slower path once).
pub fn resolve_servers(t: &Topology) -> Result<()> {
    let addrs = t.plan().server_addrs();
    t.director().enter(|| {
        if let Ok(s) = std::net::UdpSocket::bind("0.0.0.0:0") {
            for a in &addrs {
                let _ = s.send_to(b"arp", (*a, 9));
            }
        }
    })?;
    std::thread::sleep(std::time::Duration::from_millis(200));
    Ok(())
}

struct State {
    dp: Datapath,
    attachments: Vec<Attachment>,
    decaps: Vec<(Decap, Option<DecapAttachment>)>,
}

/// A loaded, synced xvs contender, attached only while active.
pub struct Xvs {
    pub method: Method,
    state: RefCell<State>,
}

impl Xvs {
    /// Loads the datapath and syncs the service VIP:port in `method`.
    pub fn start(t: &Topology, method: Method, port: u16) -> Result<Xvs> {
        let servers: Vec<IpAddr> = t
            .plan()
            .server_addrs()
            .into_iter()
            .map(IpAddr::V4)
            .collect();
        let table = table(&rules(IpAddr::V4(t.vip()), port, &servers, method))?;
        let l2 = l2(t, method)?;
        let mut dp = Datapath::load_with(LoadOptions::with_max_conns(1 << 20))
            .map_err(|e| dp_err("loading the datapath", format!("{e:?}")))?;
        dp.sync(&table, &Sysctls::default(), &l2)
            .map_err(|e| dp_err("sync", e))?;
        let mut decaps = Vec::new();
        if method == Method::Tun {
            for a in &servers {
                let mut d = Decap::load().map_err(|e| dp_err("loading decap", e))?;
                d.add_address(*a).map_err(|e| dp_err("decap address", e))?;
                decaps.push((d, None));
            }
        }
        Ok(Xvs {
            method,
            state: RefCell::new(State {
                dp,
                attachments: Vec::new(),
                decaps,
            }),
        })
    }

    /// Attaches `xvs_tc` (d0, and d1 for NAT) and, for TUN, the decap
    /// program on every real server's r0.
    pub fn activate(&self, t: &Topology) -> Result<()> {
        let mut g = self.state.borrow_mut();
        let st = &mut *g;
        let ifaces: &[&str] = if self.method == Method::Nat {
            &["d0", "d1"]
        } else {
            &["d0"]
        };
        let dp = &mut st.dp;
        let att = t.director().enter(|| {
            ifaces
                .iter()
                .map(|i| dp.attach_tc(*i))
                .collect::<Result<Vec<_>, _>>()
        })?;
        st.attachments = att.map_err(|e| dp_err("attach", e))?;
        for (i, (d, a)) in st.decaps.iter_mut().enumerate() {
            let got = t.server(i).enter(|| d.attach_tc("r0"))?;
            *a = Some(got.map_err(|e| dp_err("attach decap", e))?);
        }
        Ok(())
    }

    /// Detaches everything and frees the connections.
    pub fn deactivate(&self, t: &Topology) -> Result<()> {
        let mut g = self.state.borrow_mut();
        let st = &mut *g;
        let dp = &mut st.dp;
        let atts = std::mem::take(&mut st.attachments);
        t.director().enter(|| {
            for a in atts {
                let _ = dp.detach(a);
            }
        })?;
        for (i, (d, a)) in st.decaps.iter_mut().enumerate() {
            if let Some(a) = a.take() {
                t.server(i)
                    .enter(|| d.detach(a))?
                    .map_err(|e| dp_err("detach decap", e))?;
            }
        }
        dp.flush_conns().map_err(|e| dp_err("flush", e))?;
        Ok(())
    }

    /// The datapath's packet counters.
    pub fn counters(&self) -> Result<xvs_datapath::Counters> {
        self.state
            .borrow()
            .dp
            .counters()
            .map_err(|e| dp_err("counters", e))
    }
}
