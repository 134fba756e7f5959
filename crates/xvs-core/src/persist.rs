//! Persistence templates (`ip_vs_sched_persist()`, `ip_vs_check_template()`)
//! and the IPVS sysctls that govern templates and connection reuse.
//!
//! A template is a [`crate::conn::Conn`] with the TEMPLATE flag, stored in the
//! same [`crate::conn::ConnTable`] under a [`TemplateKey`]. It binds a client
//! network to a real server: it adds 1 to the server's PersistConn while it
//! lives, its timer is the service's persistence timeout, refreshed each time
//! a new connection is scheduled through it, and it is not freed while
//! connections it controls are alive (see [`crate::conn::ConnTable::expire`]).
//!
//! The director's persistent path, as the kernel does it:
//! 1. `key = template_key(..)`; `ct = table.find_template(&key)`;
//! 2. if `ct` exists but `!template_valid(dest_of(ct), sysctls)`:
//!    `table.invalidate_template(ct)` and treat as absent (the stale template
//!    stays until its own timer runs out, still holding PersistConn);
//! 3. if absent: schedule a dest; create
//!    `Conn::template(&key, dest, template_dport(..), timeout)` and
//!    `table.insert` it (PersistConn +1);
//! 4. create the connection with `dport = persistent_conn_dport(..)`,
//!    `control = Some(ct)`, insert it, then `table.touch(ct, now)` (the
//!    template's timer restarts from now).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::model::{Dest, Family, Protocol, ServiceKey};

/// FTPPORT: persistent services on port 21 get port-less templates.
pub const FTP_PORT: u16 = 21;

/// The IPVS sysctls this model reads (net.ipv4.vs.*), with kernel defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Sysctls {
    /// `expire_nodest_conn` (default 0): expire a connection at once when a
    /// packet arrives for it and its real server is no longer available (or,
    /// on a new-connection packet, has weight 0), instead of dropping the packet.
    pub expire_nodest_conn: bool,
    /// `expire_quiescent_template` (default 0): a template whose real server
    /// has weight 0 is treated as invalid.
    pub expire_quiescent_template: bool,
    /// `conn_reuse_mode` (default 1): bit 0 enables rescheduling a SYN that
    /// hits a TIME_WAIT/CLOSE entry; bit 1 extends it to FIN_WAIT entries of
    /// DR/TUN connections.
    pub conn_reuse_mode: u32,
    /// `sloppy_tcp` (default 0): schedule TCP on any segment, not just SYN.
    pub sloppy_tcp: bool,
    /// `sloppy_sctp` (default 0): schedule SCTP on any chunk, not just INIT.
    pub sloppy_sctp: bool,
}

impl Default for Sysctls {
    fn default() -> Sysctls {
        Sysctls {
            expire_nodest_conn: false,
            expire_quiescent_template: false,
            conn_reuse_mode: 1,
            sloppy_tcp: false,
            sloppy_sctp: false,
        }
    }
}

impl Sysctls {
    /// Sets sysctl `name` (as under `/proc/sys/net/ipv4/vs/`, or with its
    /// `net.ipv4.vs.` / `net/ipv4/vs/` prefix) to `value`, an integer as
    /// the kernel's `proc_dointvec` takes it (non-zero: on). An unknown
    /// name or a value that is no non-negative integer is an error naming
    /// it, and changes nothing.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let short = name
            .strip_prefix("net.ipv4.vs.")
            .or_else(|| name.strip_prefix("net/ipv4/vs/"))
            .unwrap_or(name);
        let names = self.values().map(|(n, _)| n);
        if !names.contains(&short) {
            return Err(format!(
                "unknown IPVS sysctl '{name}' (xvs has {})",
                names.join(", ")
            ));
        }
        let v: u32 = value
            .trim()
            .parse()
            .map_err(|_| format!("bad value '{value}' for {short} (a non-negative integer)"))?;
        match short {
            "expire_nodest_conn" => self.expire_nodest_conn = v != 0,
            "expire_quiescent_template" => self.expire_quiescent_template = v != 0,
            "conn_reuse_mode" => self.conn_reuse_mode = v,
            "sloppy_tcp" => self.sloppy_tcp = v != 0,
            _ => self.sloppy_sctp = v != 0,
        }
        Ok(())
    }

    /// Each sysctl by its name under `/proc/sys/net/ipv4/vs/` (the names
    /// [`Sysctls::set`] takes), with its value as the kernel shows it.
    pub fn values(&self) -> [(&'static str, u32); 5] {
        [
            ("expire_nodest_conn", self.expire_nodest_conn as u32),
            (
                "expire_quiescent_template",
                self.expire_quiescent_template as u32,
            ),
            ("conn_reuse_mode", self.conn_reuse_mode),
            ("sloppy_tcp", self.sloppy_tcp as u32),
            ("sloppy_sctp", self.sloppy_sctp as u32),
        ]
    }
}

/// The fields `ip_vs_ct_in_get()` matches a template on (its cport is always 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TemplateKey {
    /// IP protocol number; 0 (IPPROTO_IP) for fwmark templates.
    pub proto: u8,
    /// The client address masked with the service netmask / prefix.
    pub caddr: IpAddr,
    /// The virtual address, or the fwmark encoded as an address.
    pub vaddr: IpAddr,
    /// The service port, or 0 (FTP, port-zero and fwmark services).
    pub vport: u16,
}

/// The client address masked to the service's persistence granularity.
/// For IPv4 `netmask` is the mask as a host-order integer (`Ipv4Addr::from(netmask)`
/// is the dotted quad ipvsadm prints: 0xffffff00 = 255.255.255.0); for IPv6
/// it is a prefix length (values above 128 are treated as 128).
pub fn mask_client(addr: IpAddr, netmask: u32) -> IpAddr {
    match addr {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & netmask)),
        IpAddr::V6(a) => {
            let plen = netmask.min(128);
            let mask = if plen == 0 {
                0
            } else {
                u128::MAX << (128 - plen)
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
        }
    }
}

/// How the kernel stores a fwmark in a template's vaddr: the mark, in network
/// byte order, in the first four bytes of the address (rest zero).
pub fn fwmark_addr(family: Family, mark: u32) -> IpAddr {
    match family {
        Family::Inet => IpAddr::V4(Ipv4Addr::from(mark)),
        Family::Inet6 => IpAddr::V6(Ipv6Addr::from((mark as u128) << 96)),
    }
}

/// The template key `ip_vs_sched_persist()` builds for a packet
/// `client -> vaddr:dport` of protocol `proto` hitting service `svc` with
/// persistence netmask `netmask`:
/// * `dport == svc port` (normal services): `<proto, snet, vaddr, vport>`,
///   except FTP (port 21), whose templates have vport 0;
/// * otherwise, fwmark services: `<0 (IPPROTO_IP), snet, fwmark, 0>`;
///   port-zero services: `<proto, snet, vaddr, 0>`.
pub fn template_key(
    svc: &ServiceKey,
    netmask: u32,
    proto: Protocol,
    client: IpAddr,
    vaddr: IpAddr,
    dport: u16,
) -> TemplateKey {
    let caddr = mask_client(client, netmask);
    let mut key = TemplateKey {
        proto: proto.number(),
        caddr,
        vaddr,
        vport: 0,
    };
    if dport == svc.port() {
        if svc.port() != FTP_PORT {
            key.vport = dport;
        }
    } else if let ServiceKey::Fwmark { family, mark } = *svc {
        key.proto = 0;
        key.vaddr = fwmark_addr(family, mark);
    }
    key
}

/// `ip_vs_check_template()` with no required dest: a template is usable only
/// if its real server still exists, is available (in a service's list), and,
/// with `expire_quiescent_template`, has a non-zero weight.
pub fn template_valid(dest: Option<&Dest>, sysctls: &Sysctls) -> bool {
    match dest {
        None => false,
        Some(d) => d.available && !(sysctls.expire_quiescent_template && d.weight() == 0),
    }
}

/// The dport stored in a new template: the real server's port for a normal
/// persistent service, 0 for FTP, port-zero and fwmark services.
pub fn template_dport(pkt_dport: u16, svc_port: u16, dest_port: u16) -> u16 {
    if pkt_dport == svc_port && svc_port != FTP_PORT {
        dest_port
    } else {
        0
    }
}

/// The dport of a connection created under a template: the real server's
/// port when the packet's port is the service port and the server has one,
/// else the packet's own port (port-zero and fwmark services keep it).
pub fn persistent_conn_dport(pkt_dport: u16, svc_port: u16, dest_port: u16) -> u16 {
    if pkt_dport == svc_port && dest_port != 0 {
        dest_port
    } else {
        pkt_dport
    }
}

/// The dport of a connection on a non-persistent service (`ip_vs_schedule()`).
/// (The kernel does not schedule a non-persistent, non-fwmark packet whose
/// port differs from the service port, so port-zero services need persistence.)
pub fn conn_dport(pkt_dport: u16, dest_port: u16) -> u16 {
    if dest_port != 0 {
        dest_port
    } else {
        pkt_dport
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DestConfig, DestId};

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn sysctl_defaults() {
        let s = Sysctls::default();
        assert!(!s.expire_nodest_conn);
        assert!(!s.expire_quiescent_template);
        assert_eq!(s.conn_reuse_mode, 1);
        assert!(!s.sloppy_tcp && !s.sloppy_sctp);
    }

    #[test]
    fn sysctls_are_set_by_their_proc_names() {
        let mut s = Sysctls::default();
        s.set("expire_nodest_conn", "1").unwrap();
        s.set("net.ipv4.vs.conn_reuse_mode", "3").unwrap();
        s.set("net/ipv4/vs/sloppy_tcp", " 2\n").unwrap();
        s.set("expire_quiescent_template", "0").unwrap();
        assert_eq!(
            s,
            Sysctls {
                expire_nodest_conn: true,
                conn_reuse_mode: 3,
                sloppy_tcp: true,
                ..Sysctls::default()
            }
        );
        assert_eq!(
            s.values(),
            [
                ("expire_nodest_conn", 1),
                ("expire_quiescent_template", 0),
                ("conn_reuse_mode", 3),
                ("sloppy_tcp", 1),
                ("sloppy_sctp", 0)
            ]
        );
        let before = s;
        assert_eq!(
            s.set("am_droprate", "10").unwrap_err(),
            "unknown IPVS sysctl 'am_droprate' (xvs has expire_nodest_conn, expire_quiescent_template, conn_reuse_mode, sloppy_tcp, sloppy_sctp)"
        );
        assert_eq!(
            s.set("expire_nodest_conn", "yes").unwrap_err(),
            "bad value 'yes' for expire_nodest_conn (a non-negative integer)"
        );
        assert_eq!(
            s.set("net.ipv4.vs.sloppy_sctp", "-1").unwrap_err(),
            "bad value '-1' for sloppy_sctp (a non-negative integer)"
        );
        assert_eq!(s, before, "a refused value changes nothing");
    }

    #[test]
    fn key_ipv4_slash24() {
        let svc = ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr: v4("10.0.0.1"),
            port: 80,
        };
        let k = template_key(
            &svc,
            0xffff_ff00,
            Protocol::Tcp,
            v4("192.168.7.201"),
            v4("10.0.0.1"),
            80,
        );
        assert_eq!(
            k,
            TemplateKey {
                proto: 6,
                caddr: v4("192.168.7.0"),
                vaddr: v4("10.0.0.1"),
                vport: 80
            }
        );
        // Another client in the same /24 shares the template; one outside does not.
        let k2 = template_key(
            &svc,
            0xffff_ff00,
            Protocol::Tcp,
            v4("192.168.7.3"),
            v4("10.0.0.1"),
            80,
        );
        let k3 = template_key(
            &svc,
            0xffff_ff00,
            Protocol::Tcp,
            v4("192.168.8.3"),
            v4("10.0.0.1"),
            80,
        );
        assert_eq!(k, k2);
        assert_ne!(k, k3);
        // Default /32 keeps the whole address.
        let k4 = template_key(
            &svc,
            0xffff_ffff,
            Protocol::Tcp,
            v4("192.168.7.201"),
            v4("10.0.0.1"),
            80,
        );
        assert_eq!(k4.caddr, v4("192.168.7.201"));
    }

    #[test]
    fn key_ipv6_slash64() {
        let vip: IpAddr = "2001:db8::1".parse().unwrap();
        let svc = ServiceKey::Addr {
            protocol: Protocol::Udp,
            addr: vip,
            port: 53,
        };
        let client: IpAddr = "2001:db8:aa:bb:1:2:3:4".parse().unwrap();
        let k = template_key(&svc, 64, Protocol::Udp, client, vip, 53);
        assert_eq!(k.caddr, "2001:db8:aa:bb::".parse::<IpAddr>().unwrap());
        assert_eq!((k.proto, k.vaddr, k.vport), (17, vip, 53));
        assert_eq!(mask_client(client, 128), client);
        assert_eq!(mask_client(client, 0), "::".parse::<IpAddr>().unwrap());
        assert_eq!(mask_client(client, 1), "::".parse::<IpAddr>().unwrap());
        assert_eq!(mask_client(client, 20), "2001::".parse::<IpAddr>().unwrap());
        assert_eq!(
            mask_client(client, 24),
            "2001:d00::".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn key_port_zero_service() {
        let svc = ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr: v4("10.0.0.1"),
            port: 0,
        };
        let k = template_key(
            &svc,
            0xffff_ffff,
            Protocol::Tcp,
            v4("1.2.3.4"),
            v4("10.0.0.1"),
            443,
        );
        assert_eq!(
            k,
            TemplateKey {
                proto: 6,
                caddr: v4("1.2.3.4"),
                vaddr: v4("10.0.0.1"),
                vport: 0
            }
        );
        // All ports of the VIP share the template.
        let k2 = template_key(
            &svc,
            0xffff_ffff,
            Protocol::Tcp,
            v4("1.2.3.4"),
            v4("10.0.0.1"),
            22,
        );
        assert_eq!(k, k2);
        assert_eq!(persistent_conn_dport(443, 0, 0), 443);
        assert_eq!(template_dport(443, 0, 0), 0);
    }

    #[test]
    fn key_ftp() {
        let svc = ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr: v4("10.0.0.1"),
            port: 21,
        };
        let k = template_key(
            &svc,
            0xffff_ffff,
            Protocol::Tcp,
            v4("1.2.3.4"),
            v4("10.0.0.1"),
            21,
        );
        assert_eq!(k.vport, 0);
        assert_eq!(template_dport(21, 21, 21), 0);
        assert_eq!(persistent_conn_dport(21, 21, 2121), 2121);
    }

    #[test]
    fn key_fwmark_service() {
        let svc = ServiceKey::Fwmark {
            family: Family::Inet,
            mark: 0x0102_0304,
        };
        let k = template_key(
            &svc,
            0xffff_0000,
            Protocol::Udp,
            v4("172.16.9.9"),
            v4("10.0.0.1"),
            5000,
        );
        assert_eq!(
            k,
            TemplateKey {
                proto: 0,
                caddr: v4("172.16.0.0"),
                vaddr: v4("1.2.3.4"),
                vport: 0
            }
        );
        // TCP and UDP flows of the same mark share it.
        let k2 = template_key(
            &svc,
            0xffff_0000,
            Protocol::Tcp,
            v4("172.16.1.1"),
            v4("10.9.9.9"),
            80,
        );
        assert_eq!(k, k2);
        // IPv6 fwmark: mark in the first four bytes.
        assert_eq!(
            fwmark_addr(Family::Inet6, 7),
            "0:7::".parse::<IpAddr>().unwrap()
        );
        assert_eq!(template_dport(5000, 0, 0), 0);
        assert_eq!(persistent_conn_dport(5000, 0, 0), 5000);
    }

    #[test]
    fn quiescent_template_rule() {
        let mut d = Dest::new(DestId(1), DestConfig::new(v4("10.1.0.1"), 80));
        let off = Sysctls::default();
        let on = Sysctls {
            expire_quiescent_template: true,
            ..Sysctls::default()
        };
        assert!(template_valid(Some(&d), &off));
        assert!(template_valid(Some(&d), &on));
        d.cfg.weight = 0;
        assert!(template_valid(Some(&d), &off));
        assert!(!template_valid(Some(&d), &on));
        d.cfg.weight = 3;
        d.available = false;
        assert!(!template_valid(Some(&d), &off));
        assert!(!template_valid(None, &off));
    }

    #[test]
    fn dports() {
        assert_eq!(template_dport(80, 80, 8080), 8080);
        assert_eq!(persistent_conn_dport(80, 80, 8080), 8080);
        assert_eq!(persistent_conn_dport(80, 80, 0), 80);
        assert_eq!(conn_dport(80, 8080), 8080);
        assert_eq!(conn_dport(80, 0), 80);
    }
}
