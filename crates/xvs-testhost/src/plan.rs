//! Address plans for the classic LVS labs, as plain data (no root needed to
//! compute or test them). Everything is inside 198.18.0.0/15 (RFC 2544
//! benchmarking space), and every namespace is private to one topology, so
//! plans of parallel topologies never clash.
//!
//! NAT (director is the real servers' gateway):
//! ```text
//!  client c0 198.18.0.2/24 ── d0 198.18.0.1/24 director d1 198.18.1.1/24 ── [lan bridge] ── r0 198.18.1.10+i/24  rs{i}
//!   gw 198.18.0.1              VIP 198.18.0.100/32 on d0                                      gw 198.18.1.1
//! ```
//! DR (one shared L2 segment, bridge in the `lan` namespace):
//! ```text
//!  client c0 198.18.1.2/24 ─┐
//!  director d0 198.18.1.1/24 + VIP 198.18.1.250/32 ─┼─ [lan bridge]
//!  rs{i} r0 198.18.1.10+i/24, VIP/32 on lo ─┘   arp_ignore=1 arp_announce=2
//! ```
//! TUN (routed; a `router` namespace joins the networks, so replies from the
//! real servers reach the client without the director):
//! ```text
//!  client c0 198.18.0.2/24 ── x0 198.18.0.1   router   x1 198.18.2.1 ── d0 198.18.2.2/24 director (VIP 198.18.3.100/32 on d0)
//!                                       xs{i} 198.18.(10+i).1 ── r0 198.18.(10+i).2/24 rs{i} (VIP/32 on lo, or tunl0 if the kernel has ipip)
//!  router: VIP/32 via 198.18.2.2
//! ```

use std::{fmt, net::Ipv4Addr};

/// Which LVS forwarding method the lab is laid out for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Masquerading: the director is the real servers' gateway.
    Nat,
    /// Direct routing: one L2 segment, VIP on the real servers' loopback.
    Dr,
    /// IP tunnelling: routed networks, a router between them.
    Tun,
}

impl Mode {
    /// Lower-case name (`nat`, `dr`, `tun`).
    pub fn name(self) -> &'static str {
        match self {
            Mode::Nat => "nat",
            Mode::Dr => "dr",
            Mode::Tun => "tun",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A host (namespace) of the lab.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Client,
    Director,
    /// Only in TUN: joins the client, director and real-server networks.
    Router,
    /// Only in NAT and DR: holds the bridge `br0` of the shared segment.
    Lan,
    /// Real server number i (0-based).
    Server(usize),
}

impl Role {
    /// Suffix of the namespace name: `client`, `director`, `router`, `lan`, `rs0`...
    pub fn tag(self) -> String {
        match self {
            Role::Client => "client".into(),
            Role::Director => "director".into(),
            Role::Router => "router".into(),
            Role::Lan => "lan".into(),
            Role::Server(i) => format!("rs{i}"),
        }
    }
}

/// An IPv4 address with its prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    pub const fn new(addr: Ipv4Addr, prefix: u8) -> Self {
        Cidr { addr, prefix }
    }

    /// The network address (host bits cleared).
    pub fn network(self) -> Ipv4Addr {
        let mask = if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        };
        Ipv4Addr::from(u32::from(self.addr) & mask)
    }

    /// Whether `ip` is in the same network.
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        Cidr::new(ip, self.prefix).network() == self.network()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// One end of a veth: interface `ifname` in the namespace of `role`, with
/// a fixed MAC and the addresses to put on it (none for bridge ports).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iface {
    pub role: Role,
    pub ifname: String,
    pub mac: [u8; 6],
    pub addrs: Vec<Cidr>,
}

impl Iface {
    /// The MAC as `02:78:...`.
    pub fn mac_string(&self) -> String {
        mac_string(self.mac)
    }

    /// The first address on it.
    pub fn addr(&self) -> Option<Ipv4Addr> {
        self.addrs.first().map(|c| c.addr)
    }
}

/// `aa:bb:cc:dd:ee:ff`
pub fn mac_string(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A veth pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub a: Iface,
    pub b: Iface,
}

/// A route to install in one host: `dest` via `via` (`dest` None: default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub role: Role,
    pub dest: Option<Cidr>,
    pub via: Ipv4Addr,
}

/// The whole lab: namespaces, veths, addresses, routes, VIP placement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressPlan {
    pub mode: Mode,
    /// The virtual service address clients connect to.
    pub vip: Ipv4Addr,
    /// Every namespace to create.
    pub roles: Vec<Role>,
    /// Every veth pair.
    pub links: Vec<Link>,
    /// Interfaces (by role, ifname) to enslave to `br0` in the `lan` namespace.
    pub bridge_ports: Vec<String>,
    pub routes: Vec<Route>,
    /// The VIP (as /32) goes on this director interface.
    pub director_vip_iface: String,
    /// Whether the real servers carry the VIP on loopback (DR, TUN).
    pub vip_on_servers: bool,
}

/// Largest real-server count a plan supports.
pub const MAX_SERVERS: usize = 200;

const CLIENT_NET: [u8; 3] = [198, 18, 0];
const LAN_NET: [u8; 3] = [198, 18, 1];

fn ip(n: [u8; 3], h: u8) -> Ipv4Addr {
    Ipv4Addr::new(n[0], n[1], n[2], h)
}

fn mac(role: Role, idx: u8) -> [u8; 6] {
    let r = match role {
        Role::Client => 0x01,
        Role::Director => 0x02,
        Role::Router => 0x03,
        Role::Lan => 0x04,
        Role::Server(i) => 0x10 + i as u8,
    };
    [0x02, 0x78, 0x76, 0x73, r, idx]
}

fn iface(role: Role, ifname: &str, idx: u8, addrs: Vec<Cidr>) -> Iface {
    Iface {
        role,
        ifname: ifname.into(),
        mac: mac(role, idx),
        addrs,
    }
}

impl AddressPlan {
    /// The plan for `mode` with `servers` real servers (1..=200).
    pub fn new(mode: Mode, servers: usize) -> crate::Result<AddressPlan> {
        if servers == 0 || servers > MAX_SERVERS {
            return Err(crate::Error::Invalid(format!(
                "real-server count must be 1..={MAX_SERVERS}, got {servers}"
            )));
        }
        Ok(match mode {
            Mode::Nat => Self::nat(servers),
            Mode::Dr => Self::dr(servers),
            Mode::Tun => Self::tun(servers),
        })
    }

    fn nat(n: usize) -> AddressPlan {
        let mut roles = vec![Role::Client, Role::Director, Role::Lan];
        let mut links = vec![
            Link {
                a: iface(
                    Role::Client,
                    "c0",
                    0,
                    vec![Cidr::new(ip(CLIENT_NET, 2), 24)],
                ),
                b: iface(
                    Role::Director,
                    "d0",
                    0,
                    vec![Cidr::new(ip(CLIENT_NET, 1), 24)],
                ),
            },
            Link {
                a: iface(Role::Director, "d1", 1, vec![Cidr::new(ip(LAN_NET, 1), 24)]),
                b: iface(Role::Lan, "p-d", 0, vec![]),
            },
        ];
        let mut bridge_ports = vec!["p-d".to_string()];
        let mut routes = vec![Route {
            role: Role::Client,
            dest: None,
            via: ip(CLIENT_NET, 1),
        }];
        for i in 0..n {
            let r = Role::Server(i);
            roles.push(r);
            let port = format!("p-r{i}");
            links.push(Link {
                a: iface(r, "r0", 0, vec![Cidr::new(ip(LAN_NET, 10 + i as u8), 24)]),
                b: iface(Role::Lan, &port, 1 + i as u8, vec![]),
            });
            bridge_ports.push(port);
            routes.push(Route {
                role: r,
                dest: None,
                via: ip(LAN_NET, 1),
            });
        }
        AddressPlan {
            mode: Mode::Nat,
            vip: ip(CLIENT_NET, 100),
            roles,
            links,
            bridge_ports,
            routes,
            director_vip_iface: "d0".into(),
            vip_on_servers: false,
        }
    }

    fn dr(n: usize) -> AddressPlan {
        let mut roles = vec![Role::Client, Role::Director, Role::Lan];
        let mut links = vec![
            Link {
                a: iface(Role::Client, "c0", 0, vec![Cidr::new(ip(LAN_NET, 2), 24)]),
                b: iface(Role::Lan, "p-c", 0, vec![]),
            },
            Link {
                a: iface(Role::Director, "d0", 0, vec![Cidr::new(ip(LAN_NET, 1), 24)]),
                b: iface(Role::Lan, "p-d", 1, vec![]),
            },
        ];
        let mut bridge_ports = vec!["p-c".to_string(), "p-d".to_string()];
        for i in 0..n {
            let r = Role::Server(i);
            roles.push(r);
            let port = format!("p-r{i}");
            links.push(Link {
                a: iface(r, "r0", 0, vec![Cidr::new(ip(LAN_NET, 10 + i as u8), 24)]),
                b: iface(Role::Lan, &port, 2 + i as u8, vec![]),
            });
            bridge_ports.push(port);
        }
        AddressPlan {
            mode: Mode::Dr,
            vip: ip(LAN_NET, 250),
            roles,
            links,
            bridge_ports,
            // Everyone is on one segment: no gateways, so replies from the
            // real servers can only go straight to the client.
            routes: vec![],
            director_vip_iface: "d0".into(),
            vip_on_servers: true,
        }
    }

    fn tun(n: usize) -> AddressPlan {
        let vip = Ipv4Addr::new(198, 18, 3, 100);
        let dnet = [198, 18, 2];
        let mut roles = vec![Role::Client, Role::Director, Role::Router];
        let mut links = vec![
            Link {
                a: iface(
                    Role::Client,
                    "c0",
                    0,
                    vec![Cidr::new(ip(CLIENT_NET, 2), 24)],
                ),
                b: iface(
                    Role::Router,
                    "x0",
                    0,
                    vec![Cidr::new(ip(CLIENT_NET, 1), 24)],
                ),
            },
            Link {
                a: iface(Role::Director, "d0", 0, vec![Cidr::new(ip(dnet, 2), 24)]),
                b: iface(Role::Router, "x1", 1, vec![Cidr::new(ip(dnet, 1), 24)]),
            },
        ];
        let mut routes = vec![
            Route {
                role: Role::Client,
                dest: None,
                via: ip(CLIENT_NET, 1),
            },
            Route {
                role: Role::Director,
                dest: None,
                via: ip(dnet, 1),
            },
            Route {
                role: Role::Router,
                dest: Some(Cidr::new(vip, 32)),
                via: ip(dnet, 2),
            },
        ];
        for i in 0..n {
            let r = Role::Server(i);
            roles.push(r);
            let net = [198, 18, 10 + i as u8];
            links.push(Link {
                a: iface(r, "r0", 0, vec![Cidr::new(ip(net, 2), 24)]),
                b: iface(
                    Role::Router,
                    &format!("xs{i}"),
                    2 + i as u8,
                    vec![Cidr::new(ip(net, 1), 24)],
                ),
            });
            routes.push(Route {
                role: r,
                dest: None,
                via: ip(net, 1),
            });
        }
        AddressPlan {
            mode: Mode::Tun,
            vip,
            roles,
            links,
            bridge_ports: vec![],
            routes,
            director_vip_iface: "d0".into(),
            vip_on_servers: true,
        }
    }

    /// Number of real servers.
    pub fn server_count(&self) -> usize {
        self.roles
            .iter()
            .filter(|r| matches!(r, Role::Server(_)))
            .count()
    }

    /// Every interface in the namespace of `role`.
    pub fn ifaces(&self, role: Role) -> Vec<&Iface> {
        self.links
            .iter()
            .flat_map(|l| [&l.a, &l.b])
            .filter(|i| i.role == role)
            .collect()
    }

    /// Interface `ifname` of `role`.
    pub fn iface(&self, role: Role, ifname: &str) -> Option<&Iface> {
        self.ifaces(role).into_iter().find(|i| i.ifname == ifname)
    }

    /// The client's address.
    pub fn client_addr(&self) -> Ipv4Addr {
        self.iface(Role::Client, "c0")
            .and_then(Iface::addr)
            .unwrap()
    }

    /// Real server i's own (real) address.
    pub fn server_addr(&self, i: usize) -> Ipv4Addr {
        self.iface(Role::Server(i), "r0")
            .and_then(Iface::addr)
            .expect("no such real server")
    }

    /// Every real server's own address, in order.
    pub fn server_addrs(&self) -> Vec<Ipv4Addr> {
        (0..self.server_count())
            .map(|i| self.server_addr(i))
            .collect()
    }

    /// The director's address facing the real servers (NAT: d1; DR: d0,
    /// the shared segment; TUN: d0, whence the tunnels start).
    pub fn director_server_side(&self) -> Ipv4Addr {
        let ifname = if self.mode == Mode::Nat { "d1" } else { "d0" };
        self.iface(Role::Director, ifname)
            .and_then(Iface::addr)
            .unwrap()
    }

    /// The director's address facing the client.
    pub fn director_client_side(&self) -> Ipv4Addr {
        self.iface(Role::Director, "d0")
            .and_then(Iface::addr)
            .unwrap()
    }

    /// The veth that joins `role` to its peer, and that peer.
    pub fn peer_of(&self, role: Role, ifname: &str) -> Option<&Iface> {
        self.links.iter().find_map(|l| {
            if l.a.role == role && l.a.ifname == ifname {
                Some(&l.b)
            } else if l.b.role == role && l.b.ifname == ifname {
                Some(&l.a)
            } else {
                None
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn in_bench_space(a: Ipv4Addr) -> bool {
        Cidr::new(Ipv4Addr::new(198, 18, 0, 0), 15).contains(a)
    }

    fn all_addrs(p: &AddressPlan) -> Vec<Ipv4Addr> {
        p.links
            .iter()
            .flat_map(|l| [&l.a, &l.b])
            .flat_map(|i| i.addrs.iter().map(|c| c.addr))
            .collect()
    }

    #[test]
    fn every_address_is_in_198_18_slash_15_and_unique() {
        for mode in [Mode::Nat, Mode::Dr, Mode::Tun] {
            for n in [1, 3, MAX_SERVERS] {
                let p = AddressPlan::new(mode, n).unwrap();
                let addrs = all_addrs(&p);
                for a in addrs.iter().chain([&p.vip]) {
                    assert!(in_bench_space(*a), "{mode} {a}");
                }
                let set: HashSet<_> = addrs.iter().collect();
                assert_eq!(set.len(), addrs.len(), "{mode}: duplicate address");
                assert!(!set.contains(&p.vip), "{mode}: VIP is also a host address");
                assert_eq!(p.server_count(), n);
            }
        }
    }

    #[test]
    fn interface_names_fit_and_are_unique_per_namespace() {
        for mode in [Mode::Nat, Mode::Dr, Mode::Tun] {
            let p = AddressPlan::new(mode, MAX_SERVERS).unwrap();
            for role in &p.roles {
                let names: Vec<_> = p.ifaces(*role).iter().map(|i| i.ifname.clone()).collect();
                let set: HashSet<_> = names.iter().collect();
                assert_eq!(set.len(), names.len(), "{mode} {role:?}");
                assert!(names.iter().all(|n| n.len() <= 15), "{mode} {names:?}");
            }
            let macs: HashSet<_> = p.links.iter().flat_map(|l| [l.a.mac, l.b.mac]).collect();
            assert_eq!(macs.len(), p.links.len() * 2, "{mode}: duplicate MAC");
            for m in macs {
                assert_eq!(m[0] & 0x03, 0x02, "locally administered unicast");
            }
        }
    }

    #[test]
    fn server_counts_out_of_range_are_refused() {
        assert!(AddressPlan::new(Mode::Nat, 0).is_err());
        assert!(AddressPlan::new(Mode::Dr, MAX_SERVERS + 1).is_err());
    }

    #[test]
    fn nat_director_is_the_gateway_of_a_private_server_net() {
        let p = AddressPlan::new(Mode::Nat, 3).unwrap();
        assert_eq!(p.vip, Ipv4Addr::new(198, 18, 0, 100));
        assert_eq!(p.client_addr(), Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(p.director_client_side(), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(p.director_server_side(), Ipv4Addr::new(198, 18, 1, 1));
        assert_eq!(
            p.server_addrs(),
            [10, 11, 12].map(|h| Ipv4Addr::new(198, 18, 1, h))
        );
        // The VIP is on the client's segment (the director answers ARP for it).
        let c0 = p.iface(Role::Client, "c0").unwrap().addrs[0];
        assert!(c0.contains(p.vip));
        // Real servers are not on the client's segment: only the director
        // joins them.
        for a in p.server_addrs() {
            assert!(!c0.contains(a));
        }
        for i in 0..3 {
            let r = p.routes.iter().find(|r| r.role == Role::Server(i)).unwrap();
            assert_eq!((r.dest, r.via), (None, p.director_server_side()));
        }
        let r = p.routes.iter().find(|r| r.role == Role::Client).unwrap();
        assert_eq!((r.dest, r.via), (None, p.director_client_side()));
        assert_eq!(p.bridge_ports, ["p-d", "p-r0", "p-r1", "p-r2"]);
        assert!(!p.vip_on_servers);
        assert_eq!(p.peer_of(Role::Director, "d1").unwrap().ifname, "p-d");
    }

    #[test]
    fn dr_puts_everyone_on_one_segment_without_gateways() {
        let p = AddressPlan::new(Mode::Dr, 3).unwrap();
        let lan = Cidr::new(Ipv4Addr::new(198, 18, 1, 0), 24);
        assert!(lan.contains(p.vip));
        assert!(lan.contains(p.client_addr()));
        assert!(lan.contains(p.director_client_side()));
        assert_eq!(p.director_client_side(), p.director_server_side());
        for a in p.server_addrs() {
            assert!(lan.contains(a));
        }
        assert!(
            p.routes.is_empty(),
            "replies must go straight to the client"
        );
        assert!(p.vip_on_servers);
        assert_eq!(p.bridge_ports.len(), 2 + 3);
        assert!(p.ifaces(Role::Director).len() == 1);
    }

    #[test]
    fn tun_routes_each_server_net_through_a_router_not_the_director() {
        let p = AddressPlan::new(Mode::Tun, 3).unwrap();
        assert_eq!(p.vip, Ipv4Addr::new(198, 18, 3, 100));
        assert!(p.roles.contains(&Role::Router));
        assert!(!p.roles.contains(&Role::Lan));
        assert_eq!(p.ifaces(Role::Director).len(), 1);
        // Each real server on its own network.
        let nets: HashSet<_> = (0..3)
            .map(|i| p.iface(Role::Server(i), "r0").unwrap().addrs[0].network())
            .collect();
        assert_eq!(nets.len(), 3);
        // Servers' gateway is the router, never the director.
        for i in 0..3 {
            let r = p.routes.iter().find(|r| r.role == Role::Server(i)).unwrap();
            let peer = p.peer_of(Role::Server(i), "r0").unwrap();
            assert_eq!(peer.role, Role::Router);
            assert_eq!(r.via, peer.addr().unwrap());
        }
        // The router sends the VIP to the director.
        let r = p.routes.iter().find(|r| r.role == Role::Router).unwrap();
        assert_eq!(r.dest, Some(Cidr::new(p.vip, 32)));
        assert_eq!(r.via, p.director_client_side());
        assert!(p.vip_on_servers);
    }

    #[test]
    fn cidr_arithmetic() {
        let c = Cidr::new(Ipv4Addr::new(198, 18, 1, 77), 24);
        assert_eq!(c.network(), Ipv4Addr::new(198, 18, 1, 0));
        assert!(c.contains(Ipv4Addr::new(198, 18, 1, 1)));
        assert!(!c.contains(Ipv4Addr::new(198, 18, 2, 1)));
        assert_eq!(c.to_string(), "198.18.1.77/24");
        assert!(
            Cidr::new(Ipv4Addr::new(198, 19, 255, 1), 15).contains(Ipv4Addr::new(198, 18, 0, 0))
        );
        assert_eq!(mac_string([2, 0x78, 0x76, 0x73, 1, 0]), "02:78:76:73:01:00");
    }
}
