//! Builds an [`AddressPlan`] into real namespaces and veths.

use std::{collections::BTreeMap, net::Ipv4Addr, time::Duration};

use crate::{
    cmd::{self, wait_until},
    netns::{self, Netns},
    plan::{AddressPlan, Mode, Role},
    web::{WebServer, WebServerKind},
    Error, Result,
};

/// Default namespace-name prefix.
pub const DEFAULT_PREFIX: &str = "xvs-th";

/// Sysctls set in every namespace so that benchmarks with many short
/// connections do not run out of ports: TIME_WAIT reuse for outgoing
/// connections and the widest ephemeral range.
pub const BUSY_HOST_SYSCTLS: &[(&str, &str)] = &[
    ("net.ipv4.tcp_tw_reuse", "1"),
    ("net.ipv4.ip_local_port_range", "1024 65535"),
    ("net.core.somaxconn", "65535"),
    ("net.ipv4.tcp_max_syn_backlog", "65535"),
];

/// Configures and builds a [`Topology`].
#[derive(Clone, Debug)]
pub struct TopologyBuilder {
    mode: Mode,
    servers: usize,
    prefix: String,
}

impl TopologyBuilder {
    /// Number of real servers (default 3).
    pub fn servers(mut self, n: usize) -> Self {
        self.servers = n;
        self
    }

    /// Prefix of the namespace names (default `xvs-th`). Namespaces are
    /// named `{prefix}-{pid}-{seq}-{role}`; stale ones with this prefix are
    /// swept before building.
    pub fn prefix(mut self, p: &str) -> Self {
        self.prefix = p.into();
        self
    }

    /// Creates the namespaces, veths, bridge, addresses, routes and sysctls.
    /// On error everything made so far is deleted.
    pub fn build(self) -> Result<Topology> {
        cmd::require_root()?;
        cmd::require_tool("ip", "iproute2")?;
        cmd::require_tool("sysctl", "procps")?;
        let plan = AddressPlan::new(self.mode, self.servers)?;
        netns::sweep_stale(&self.prefix)?;
        let id = netns::unique_id(&self.prefix);
        let mut hosts = BTreeMap::new();
        for role in &plan.roles {
            hosts.insert(*role, Netns::create(&format!("{id}-{}", role.tag()))?);
        }
        let mut t = Topology {
            id,
            plan,
            hosts,
            kernel_ipip: false,
        };
        t.wire()?;
        Ok(t)
    }
}

/// A built lab: one namespace per role of its [`AddressPlan`]. Dropping it
/// kills every process left in its namespaces and deletes them.
#[derive(Debug)]
pub struct Topology {
    id: String,
    plan: AddressPlan,
    hosts: BTreeMap<Role, Netns>,
    kernel_ipip: bool,
}

impl Topology {
    /// A builder for `mode`, 3 real servers, prefix `xvs-th`.
    pub fn builder(mode: Mode) -> TopologyBuilder {
        TopologyBuilder {
            mode,
            servers: 3,
            prefix: DEFAULT_PREFIX.into(),
        }
    }

    /// `{prefix}-{pid}-{seq}`: the common part of its namespace names.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn plan(&self) -> &AddressPlan {
        &self.plan
    }

    pub fn mode(&self) -> Mode {
        self.plan.mode
    }

    pub fn vip(&self) -> Ipv4Addr {
        self.plan.vip
    }

    /// The namespace of `role`, if the plan has one.
    pub fn host(&self, role: Role) -> Option<&Netns> {
        self.hosts.get(&role)
    }

    pub fn client(&self) -> &Netns {
        &self.hosts[&Role::Client]
    }

    pub fn director(&self) -> &Netns {
        &self.hosts[&Role::Director]
    }

    /// Real server i (0-based).
    pub fn server(&self, i: usize) -> &Netns {
        &self.hosts[&Role::Server(i)]
    }

    pub fn servers(&self) -> impl Iterator<Item = &Netns> {
        (0..self.plan.server_count()).map(|i| self.server(i))
    }

    /// TUN only: the router between the networks.
    pub fn router(&self) -> Option<&Netns> {
        self.hosts.get(&Role::Router)
    }

    /// NAT and DR: the namespace holding bridge `br0`.
    pub fn lan(&self) -> Option<&Netns> {
        self.hosts.get(&Role::Lan)
    }

    /// TUN: whether the kernel has the ipip module, so the VIP is on the
    /// real servers' `tunl0` and the kernel decapsulates. Without it (as on
    /// kernels built without CONFIG_NET_IPIP) the VIP is on `lo` and
    /// decapsulation is up to a program on `r0`.
    pub fn kernel_ipip(&self) -> bool {
        self.kernel_ipip
    }

    /// Starts a web server on every real server, answering `GET /` with its
    /// namespace tag (`rs0\n`, `rs1\n`, ...) on 0.0.0.0:`port`, and waits
    /// until each answers locally. nginx if installed, else a Python one.
    pub fn start_web_servers(&self, port: u16) -> Result<Vec<WebServer>> {
        self.start_web_servers_with(port, WebServerKind::Auto)
    }

    /// [`Topology::start_web_servers`] with a chosen implementation.
    pub fn start_web_servers_with(&self, port: u16, kind: WebServerKind) -> Result<Vec<WebServer>> {
        (0..self.plan.server_count())
            .map(|i| WebServer::start(self.server(i), &Role::Server(i).tag(), port, kind))
            .collect()
    }

    /// `curl` from the client; returns the body.
    pub fn curl_from_client(&self, url: &str) -> Result<String> {
        crate::load::curl(self.client(), url)
    }

    fn wire(&mut self) -> Result<()> {
        let plan = self.plan.clone();
        for link in &plan.links {
            let (a, b) = (&self.hosts[&link.a.role], &self.hosts[&link.b.role]);
            cmd::run_argv(
                "ip",
                &[
                    "link",
                    "add",
                    &link.a.ifname,
                    "netns",
                    a.name(),
                    "address",
                    &link.a.mac_string(),
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &link.b.ifname,
                    "netns",
                    b.name(),
                    "address",
                    &link.b.mac_string(),
                ],
            )?;
        }
        if let Some(lan) = self.hosts.get(&Role::Lan) {
            lan.ip(&["link", "add", "br0", "type", "bridge"])?;
            // No STP, no forward delay: the segment is usable at once.
            lan.ip(&[
                "link",
                "set",
                "br0",
                "type",
                "bridge",
                "stp_state",
                "0",
                "forward_delay",
                "0",
            ])?;
            lan.ip(&["link", "set", "br0", "up"])?;
            for port in &plan.bridge_ports {
                lan.ip(&["link", "set", port, "master", "br0"])?;
            }
        }
        for link in &plan.links {
            for end in [&link.a, &link.b] {
                let ns = &self.hosts[&end.role];
                for a in &end.addrs {
                    ns.ip(&["addr", "add", &a.to_string(), "dev", &end.ifname])?;
                }
                ns.ip(&["link", "set", &end.ifname, "up"])?;
            }
        }
        for r in &plan.routes {
            let ns = &self.hosts[&r.role];
            let dest = r.dest.map(|d| d.to_string()).unwrap_or("default".into());
            ns.ip(&["route", "add", &dest, "via", &r.via.to_string()])?;
        }

        for (role, ns) in &self.hosts {
            if *role != Role::Lan {
                ns.sysctls(BUSY_HOST_SYSCTLS)?;
            }
        }

        let vip32 = format!("{}/32", plan.vip);
        let d = &self.hosts[&Role::Director];
        d.ip(&["addr", "add", &vip32, "dev", &plan.director_vip_iface])?;
        // The director forwards (needed by bpf_fib_lookup and by the plain
        // routed path) and does no reverse-path filtering.
        d.sysctls(&[
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv4.conf.all.rp_filter", "0"),
            ("net.ipv4.conf.default.rp_filter", "0"),
        ])?;
        for i in plan.ifaces(Role::Director) {
            d.sysctl(&format!("net.ipv4.conf.{}.rp_filter", i.ifname), "0")?;
        }
        if let Some(r) = self.hosts.get(&Role::Router) {
            r.sysctls(&[
                ("net.ipv4.ip_forward", "1"),
                ("net.ipv4.conf.all.rp_filter", "0"),
                ("net.ipv4.conf.default.rp_filter", "0"),
            ])?;
        }

        if plan.vip_on_servers {
            for i in 0..plan.server_count() {
                let s = &self.hosts[&Role::Server(i)];
                // The usual LVS real-server settings: never answer ARP for
                // the VIP, never use it as the source of ARP requests.
                s.sysctls(&[
                    ("net.ipv4.conf.all.arp_ignore", "1"),
                    ("net.ipv4.conf.all.arp_announce", "2"),
                    ("net.ipv4.conf.r0.arp_ignore", "1"),
                    ("net.ipv4.conf.r0.arp_announce", "2"),
                    ("net.ipv4.conf.all.rp_filter", "0"),
                    ("net.ipv4.conf.default.rp_filter", "0"),
                    ("net.ipv4.conf.r0.rp_filter", "0"),
                ])?;
                let mut on = "lo";
                if plan.mode == Mode::Tun && s.ip(&["link", "set", "tunl0", "up"]).is_ok() {
                    on = "tunl0";
                    self.kernel_ipip = true;
                    s.sysctl("net.ipv4.conf.tunl0.rp_filter", "0")?;
                }
                s.ip(&["addr", "add", &vip32, "dev", on])?;
            }
        }

        // Wait for the veths to be carrier-up (DAD is not an issue with v4,
        // but a veth is only usable once both ends are up).
        for link in &plan.links {
            let ns = &self.hosts[&link.a.role];
            wait_until(
                &format!("{} in {} to be up", link.a.ifname, ns.name()),
                Duration::from_secs(5),
                || {
                    let out = ns.ip(&["-o", "link", "show", "dev", &link.a.ifname])?;
                    if out.contains("LOWER_UP") {
                        Ok(())
                    } else {
                        Err(Error::Invalid(out))
                    }
                },
            )?;
        }
        Ok(())
    }
}
