//! The contenders: how each is started on the director of a NAT lab, and
//! the URL the client loads.

use std::{fs, net::Ipv4Addr, path::Path};

use tempfile::TempDir;
use xvs_testhost::{cmd, ChildGuard, Error, Result, Topology};

use crate::xvs::{Method, Xvs};

/// Everything the benchmark can compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Contender {
    /// Client straight to the real servers at their own addresses (wrk's
    /// threads spread over them), the director a plain router.
    Direct,
    /// HAProxy, mode tcp, roundrobin, on the director.
    Haproxy,
    /// nginx stream proxy (round robin) on the director.
    NginxStream,
    /// nftables DNAT with `numgen inc mod N` on the director (kernel NAT).
    NftDnat,
    /// A no-op tc forwarder on the director: IPv4 to the VIP gets a real
    /// server's MAC (one per flow, by source port) and leaves through d1
    /// (DR, no state): the ceiling of a forwarder on xvs's path.
    NoopFwd,
    XvsDr,
    XvsNat,
    XvsTun,
}

pub const ALL: [Contender; 8] = [
    Contender::Direct,
    Contender::Haproxy,
    Contender::NginxStream,
    Contender::NftDnat,
    Contender::NoopFwd,
    Contender::XvsDr,
    Contender::XvsNat,
    Contender::XvsTun,
];

/// Director ports of the peers (all run side by side, idle when not loaded).
const HAPROXY_PORT: u16 = 8001;
const NGINX_PORT: u16 = 8002;
/// nftables DNATs VIP:80 to the real servers' port 80.
const WEB_PORT: u16 = 80;

impl Contender {
    pub fn name(self) -> &'static str {
        match self {
            Contender::Direct => "direct",
            Contender::Haproxy => "haproxy",
            Contender::NginxStream => "nginx-stream",
            Contender::NftDnat => "nft-dnat",
            Contender::NoopFwd => "noop-fwd",
            Contender::XvsDr => "xvs-dr",
            Contender::XvsNat => "xvs-nat",
            Contender::XvsTun => "xvs-tun",
        }
    }

    pub fn parse(s: &str) -> Option<Contender> {
        ALL.into_iter().find(|c| c.name() == s)
    }

    /// Why it cannot be measured, if so. Never fake numbers for these.
    /// Every contender is available today.
    pub fn unavailable(self) -> Option<&'static str> {
        None
    }

    /// The xvs forwarding method, for the xvs contenders.
    pub fn xvs_method(self) -> Option<Method> {
        match self {
            Contender::XvsDr => Some(Method::Dr),
            Contender::XvsNat => Some(Method::Nat),
            Contender::XvsTun => Some(Method::Tun),
            _ => None,
        }
    }

    /// Whether the director's work for it is all in the kernel (no process
    /// of its own on the director).
    pub fn in_kernel(self) -> bool {
        !matches!(self, Contender::Haproxy | Contender::NginxStream)
    }

    /// Whether the client reaches the real servers through the VIP (every
    /// contender but `direct`, which loads each at its own address).
    pub fn through_vip(self) -> bool {
        self != Contender::Direct
    }

    pub fn describe(self) -> &'static str {
        match self {
            Contender::Direct => "client to the real servers at their own addresses (wrk's threads spread over them); the director only routes",
            Contender::Haproxy => "HAProxy 'mode tcp', 'balance roundrobin', nbthread 1, on the director",
            Contender::NginxStream => "nginx 'stream' proxy_pass to an upstream of the real servers (round robin), 1 worker, on the director",
            Contender::NftDnat => "nftables 'dnat to numgen inc mod N map {...}' in prerouting on the director (conntrack NAT, no user space)",
            Contender::NoopFwd => "no-op tc forwarder on d0 (bench.c): IPv4 to the VIP gets a real server's MAC, picked by source port, and is redirected out of d1; no parsing beyond that, no state",
            Contender::XvsDr => "xvs DR: xvs_tc on d0 rewrites the MACs and redirects to the real server, which holds the VIP on lo",
            Contender::XvsNat => "xvs NAT: xvs_tc on d0 (DNAT, redirect out of d1) and d1 (SNAT of the replies)",
            Contender::XvsTun => "xvs TUN: xvs_tc on d0 encapsulates in IPIP; the xvs decap program on each real server's r0 strips it",
        }
    }
}

/// A contender started on the director: the URL to load, and its
/// processes (none for the kernel paths).
pub struct Running {
    pub contender: Contender,
    pub url: String,
    pub process: Option<ChildGuard>,
    /// Where its stdout/stderr go.
    pub log: Option<std::path::PathBuf>,
    /// nftables ruleset loaded by `activate`.
    ruleset: Option<std::path::PathBuf>,
    /// xvs: the loaded datapath, attached by `activate`.
    pub xvs: Option<Xvs>,
    /// noop-fwd: the bench programs while active.
    noop: Option<std::cell::RefCell<Option<crate::pktgen::BenchProgs>>>,
    /// direct: the wrk script spreading its threads over the real servers.
    pub script: Option<std::path::PathBuf>,
    _dir: Option<TempDir>,
}

impl Running {
    /// Kernel paths only hook into the director while measured, so that
    /// e.g. conntrack is not active on the director for the other runs
    /// (the direct path must be a plain router). No-op for the proxies.
    pub fn activate(&self, t: &Topology) -> Result<()> {
        if let Some(rules) = &self.ruleset {
            t.director()
                .exec(&["nft", "-f", &rules.to_string_lossy()])?;
        }
        if let Some(x) = &self.xvs {
            x.activate(t)?;
        }
        if let Some(n) = &self.noop {
            let mut p = crate::pktgen::BenchProgs::load()?;
            let plan = t.plan();
            let d1 = t
                .director()
                .enter(|| xvs_datapath::ifindex("d1"))?
                .map_err(|e| Error::Invalid(format!("d1: {e}")))?;
            let macs: Vec<[u8; 6]> = (0..plan.server_count())
                .map(|i| plan.iface(xvs_testhost::Role::Server(i), "r0").unwrap().mac)
                .collect();
            p.set_fwd(
                &macs,
                plan.iface(xvs_testhost::Role::Director, "d1").unwrap().mac,
                d1,
                Some(t.vip()),
                None,
            )?;
            t.director().enter(|| p.attach_fwd_tc("d0"))??;
            *n.borrow_mut() = Some(p);
        }
        Ok(())
    }

    /// Undoes [`Running::activate`].
    pub fn deactivate(&self, t: &Topology) -> Result<()> {
        if self.ruleset.is_some() {
            t.director()
                .exec(&["nft", "delete", "table", "ip", "xvsbench"])?;
        }
        if let Some(x) = &self.xvs {
            x.deactivate(t)?;
        }
        if let Some(n) = &self.noop {
            n.borrow_mut().take();
        }
        Ok(())
    }

    /// Fails (with the tail of its log) if its process has exited.
    pub fn check_running(&mut self) -> Result<()> {
        let Some(p) = self.process.as_mut() else {
            return Ok(());
        };
        p.check_running().map_err(|e| {
            let log = self
                .log
                .as_ref()
                .and_then(|l| fs::read_to_string(l).ok())
                .unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            Error::Invalid(format!(
                "{}: {e}; log: {}",
                self.contender.name(),
                tail.join(" / ")
            ))
        })
    }
}

fn tempdir(tag: &str) -> Result<TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("xvs-bench-{tag}-"))
        .tempdir()
        .map_err(|e| Error::Io {
            what: "creating a temp dir".into(),
            source: e,
        })
}

fn write(path: &Path, text: &str) -> Result<()> {
    fs::write(path, text).map_err(|e| Error::Io {
        what: format!("writing {}", path.display()),
        source: e,
    })
}

pub fn haproxy_config(vip: Ipv4Addr, port: u16, servers: &[Ipv4Addr], web_port: u16) -> String {
    let mut s = format!(
        "global\n    maxconn 8000\n    nbthread 1\n\
         defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n\
         frontend fe\n    bind {vip}:{port}\n    default_backend be\n\
         backend be\n    balance roundrobin\n"
    );
    for (i, a) in servers.iter().enumerate() {
        s.push_str(&format!("    server rs{i} {a}:{web_port}\n"));
    }
    s
}

pub fn nginx_stream_config(
    dir: &Path,
    module: &Path,
    vip: Ipv4Addr,
    port: u16,
    servers: &[Ipv4Addr],
    web_port: u16,
) -> String {
    let d = dir.display();
    let ups: String = servers
        .iter()
        .map(|a| format!("        server {a}:{web_port};\n"))
        .collect();
    format!(
        "load_module {m};\n\
         daemon off;\nmaster_process on;\nworker_processes 1;\nworker_rlimit_nofile 20000;\n\
         pid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 8000; multi_accept on; }}\n\
         stream {{\n    upstream be {{\n{ups}    }}\n    server {{\n        listen {vip}:{port} backlog=65535;\n        proxy_pass be;\n        proxy_connect_timeout 5s;\n    }}\n}}\n",
        m = module.display()
    )
}

pub fn nft_dnat_ruleset(vip: Ipv4Addr, port: u16, servers: &[Ipv4Addr]) -> String {
    let map: Vec<String> = servers
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{i} : {a}"))
        .collect();
    format!(
        "table ip xvsbench {{\n    chain prerouting {{\n        type nat hook prerouting priority dstnat; policy accept;\n        ip daddr {vip} tcp dport {port} dnat to numgen inc mod {n} map {{ {m} }}\n    }}\n}}\n",
        n = servers.len(),
        m = map.join(", ")
    )
}

fn stream_module() -> Option<std::path::PathBuf> {
    [
        "/usr/lib/nginx/modules/ngx_stream_module.so",
        "/usr/share/nginx/modules/ngx_stream_module.so",
    ]
    .into_iter()
    .map(std::path::PathBuf::from)
    .find(|p| p.is_file())
}

/// Starts `c` on the director of `t` (a NAT lab whose real servers serve
/// on port 80).
pub fn start(t: &Topology, c: Contender) -> Result<Running> {
    let vip = t.vip();
    let servers = t.plan().server_addrs();
    let d = t.director();
    let (url, process, log, dir) = match c {
        Contender::Direct => {
            let dir = tempdir("direct")?;
            let addrs: Vec<std::net::SocketAddr> = servers
                .iter()
                .map(|a| std::net::SocketAddr::from((*a, WEB_PORT)))
                .collect();
            write(
                &dir.path().join("spread.lua"),
                &xvs_testhost::spread_script(&addrs),
            )?;
            (
                format!("http://{}:{WEB_PORT}/", servers[0]),
                None,
                None,
                Some(dir),
            )
        }
        Contender::Haproxy => {
            cmd::require_tool("haproxy", "haproxy")?;
            let dir = tempdir("haproxy")?;
            let cfg = dir.path().join("haproxy.cfg");
            write(&cfg, &haproxy_config(vip, HAPROXY_PORT, &servers, WEB_PORT))?;
            let log = dir.path().join("haproxy.log");
            let p = d.spawn_logged(&["haproxy", "-db", "-f", &cfg.to_string_lossy()], &log)?;
            (
                format!("http://{vip}:{HAPROXY_PORT}/"),
                Some(p),
                Some(log),
                Some(dir),
            )
        }
        Contender::NginxStream => {
            cmd::require_tool("nginx", "nginx")?;
            let module = stream_module().ok_or_else(|| Error::Missing {
                tool: "ngx_stream_module.so".into(),
                hint: "install the Debian package `libnginx-mod-stream`".into(),
            })?;
            let dir = tempdir("nginx-stream")?;
            let cfg = dir.path().join("nginx.conf");
            write(
                &cfg,
                &nginx_stream_config(dir.path(), &module, vip, NGINX_PORT, &servers, WEB_PORT),
            )?;
            let log = dir.path().join("stderr.log");
            let e = dir.path().join("error.log");
            let p = d.spawn_logged(
                &[
                    "nginx",
                    "-p",
                    &dir.path().to_string_lossy(),
                    "-c",
                    &cfg.to_string_lossy(),
                    "-e",
                    &e.to_string_lossy(),
                ],
                &log,
            )?;
            (
                format!("http://{vip}:{NGINX_PORT}/"),
                Some(p),
                Some(e),
                Some(dir),
            )
        }
        Contender::NftDnat => {
            cmd::require_tool("nft", "nftables")?;
            let dir = tempdir("nft")?;
            let rules = dir.path().join("dnat.nft");
            write(&rules, &nft_dnat_ruleset(vip, WEB_PORT, &servers))?;
            (format!("http://{vip}:{WEB_PORT}/"), None, None, Some(dir))
        }
        Contender::XvsDr | Contender::XvsNat | Contender::XvsTun => {
            let m = c.xvs_method().unwrap();
            let x = Xvs::start(t, m, WEB_PORT)?;
            return Ok(Running {
                ruleset: None,
                contender: c,
                url: format!("http://{vip}:{WEB_PORT}/"),
                process: None,
                log: None,
                xvs: Some(x),
                noop: None,
                script: None,
                _dir: None,
            });
        }
        Contender::NoopFwd => {
            return Ok(Running {
                ruleset: None,
                contender: c,
                url: format!("http://{vip}:{WEB_PORT}/"),
                process: None,
                log: None,
                xvs: None,
                noop: Some(std::cell::RefCell::new(None)),
                script: None,
                _dir: None,
            });
        }
    };
    let ruleset = (c == Contender::NftDnat).then(|| dir.as_ref().unwrap().path().join("dnat.nft"));
    let script = (c == Contender::Direct).then(|| dir.as_ref().unwrap().path().join("spread.lua"));
    Ok(Running {
        ruleset,
        script,
        xvs: None,
        noop: None,
        contender: c,
        url,
        process,
        log,
        _dir: dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers() -> Vec<Ipv4Addr> {
        vec![Ipv4Addr::new(198, 18, 1, 10), Ipv4Addr::new(198, 18, 1, 11)]
    }

    #[test]
    fn configs() {
        let vip = Ipv4Addr::new(198, 18, 0, 100);
        let h = haproxy_config(vip, 8001, &servers(), 80);
        assert!(h.contains("bind 198.18.0.100:8001"));
        assert!(h.contains("balance roundrobin"));
        assert!(h.contains("server rs1 198.18.1.11:80"));
        let n = nginx_stream_config(
            Path::new("/t"),
            Path::new("/m.so"),
            vip,
            8002,
            &servers(),
            80,
        );
        assert!(n.starts_with("load_module /m.so;"));
        assert!(n.contains("listen 198.18.0.100:8002 backlog=65535;"));
        assert!(n.contains("server 198.18.1.10:80;"));
        assert_eq!(n.matches('{').count(), n.matches('}').count());
        let r = nft_dnat_ruleset(vip, 80, &servers());
        assert!(r.contains(
            "ip daddr 198.18.0.100 tcp dport 80 dnat to numgen inc mod 2 map { 0 : 198.18.1.10, 1 : 198.18.1.11 }"
        ));
    }

    #[test]
    fn names_round_trip_and_every_contender_is_available() {
        for c in ALL {
            assert_eq!(Contender::parse(c.name()), Some(c));
            assert!(c.unavailable().is_none());
        }
        assert_eq!(Contender::XvsTun.xvs_method(), Some(Method::Tun));
        assert!(Contender::XvsDr.in_kernel() && !Contender::Haproxy.in_kernel());
    }
}
