//! `ipvsadm -Lc` from the maps: the connection table and the persistence
//! templates as [`ConnEntry`] lines.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use xvs_core::conn::sctp::SctpState;
use xvs_core::conn::tcp::TcpState;
use xvs_core::snapshot::ConnEntry;

use crate::maps::{AF_INET6, TPL_F_INVALID};
use crate::Datapath;

impl Datapath {
    /// Every connection and persistence template, with the seconds left
    /// before each expires, in no particular order (as `/proc/net/ip_vs_conn`
    /// walks its hash table).
    pub fn connections(&self) -> Vec<ConnEntry> {
        let now = self.now_ns();
        let secs_left = |at: u64| at.saturating_sub(now) / 1_000_000_000;
        let mut out = Vec::new();
        for (k, c) in self.conns.iter().filter_map(|r| r.ok()) {
            let state = match k.proto {
                6 => TcpState::from_index(c.state as usize)
                    .map(TcpState::name)
                    .unwrap_or("NONE"),
                17 => "UDP",
                132 => SctpState::ALL
                    .get(c.state as usize)
                    .map_or("NONE", |s| s.name()),
                _ => "NONE",
            };
            out.push(ConnEntry {
                protocol: proto_name(k.proto).into(),
                caddr: word_addr(k.saddr, k.family),
                cport: u16::from_be(k.sport),
                vaddr: word_addr(k.daddr, k.family),
                vport: u16::from_be(k.dport),
                daddr: word_addr(c.daddr, c.family),
                dport: u16::from_be(c.dport),
                state: state.into(),
                expires: secs_left(c.expires),
                pe_name: None,
                pe_data: None,
            });
        }
        for (_, t) in self.tpls.iter().filter_map(|r| r.ok()) {
            let dport = if t.flags & TPL_F_INVALID != 0 {
                0xffff
            } else {
                u16::from_be(t.dport)
            };
            out.push(ConnEntry {
                protocol: proto_name(t.key.proto).into(),
                caddr: word_addr(t.key.caddr, t.key.family),
                cport: 0,
                vaddr: word_addr(t.key.vaddr, t.key.family),
                vport: u16::from_be(t.key.vport),
                daddr: word_addr(t.daddr, t.key.family),
                dport,
                state: "NONE".into(),
                expires: secs_left(t.expires),
                pe_name: None,
                pe_data: None,
            });
        }
        out
    }
}

/// The protocol column of `-Lc`; templates of fwmark services say "IP".
fn proto_name(p: u8) -> &'static str {
    match p {
        6 => "TCP",
        17 => "UDP",
        132 => "SCTP",
        _ => "IP",
    }
}

/// The inverse of [`crate::maps::addr_words`].
fn word_addr(w: [u32; 4], family: u8) -> IpAddr {
    if family == AF_INET6 {
        let mut o = [0u8; 16];
        for (i, x) in w.iter().enumerate() {
            o[4 * i..4 * i + 4].copy_from_slice(&x.to_ne_bytes());
        }
        IpAddr::V6(Ipv6Addr::from(o))
    } else {
        IpAddr::V4(Ipv4Addr::from(w[0].to_ne_bytes()))
    }
}
