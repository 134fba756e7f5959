//! Host and service names from /etc/hosts and /etc/services (no DNS: a
//! control command should not hang on a resolver).

use std::collections::HashMap;
use std::net::IpAddr;

use xvs_core::ipvsadm::Names;
use xvs_core::model::{Family, Protocol};

/// The names this machine's files know.
#[derive(Debug, Default)]
pub struct FileNames {
    hosts: Vec<(IpAddr, Vec<String>)>,
    services: HashMap<(String, &'static str), u16>,
    ports: HashMap<(u16, &'static str), String>,
}

fn proto_key(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

impl FileNames {
    pub fn load() -> FileNames {
        let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        let services = std::fs::read_to_string("/etc/services").unwrap_or_default();
        FileNames::parse(&hosts, &services)
    }

    pub fn parse(hosts: &str, services: &str) -> FileNames {
        let mut n = FileNames::default();
        for line in hosts.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut w = line.split_whitespace();
            let Some(addr) = w.next().and_then(|a| a.parse().ok()) else {
                continue;
            };
            let names: Vec<String> = w.map(String::from).collect();
            if !names.is_empty() {
                n.hosts.push((addr, names));
            }
        }
        for line in services.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut w = line.split_whitespace();
            let (Some(name), Some(pp)) = (w.next(), w.next()) else {
                continue;
            };
            let Some((port, proto)) = pp.split_once('/') else {
                continue;
            };
            let Ok(port) = port.parse::<u16>() else {
                continue;
            };
            let proto = match proto {
                "tcp" => "tcp",
                "udp" => "udp",
                "sctp" => "sctp",
                _ => continue,
            };
            for alias in std::iter::once(name).chain(w) {
                n.services.entry((alias.to_string(), proto)).or_insert(port);
            }
            n.ports
                .entry((port, proto))
                .or_insert_with(|| name.to_string());
        }
        n
    }
}

impl Names for FileNames {
    fn host_addr(&self, name: &str, family: Option<Family>) -> Option<IpAddr> {
        self.hosts
            .iter()
            .filter(|(a, _)| family.is_none_or(|f| Family::of(a) == f))
            .find(|(_, names)| names.iter().any(|n| n == name))
            .map(|(a, _)| *a)
    }

    fn service_port(&self, name: &str, proto: Protocol) -> Option<u16> {
        self.services
            .get(&(name.to_string(), proto_key(proto)))
            .copied()
    }

    fn host_name(&self, addr: &IpAddr) -> Option<String> {
        self.hosts
            .iter()
            .find(|(a, _)| a == addr)
            .and_then(|(_, names)| names.first().cloned())
    }

    fn service_name(&self, port: u16, proto: Protocol) -> Option<String> {
        self.ports.get(&(port, proto_key(proto))).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hosts_and_services() {
        let n = FileNames::parse(
            "127.0.0.1 localhost\n198.18.0.100 www vip # the VIP\n::1 ip6-localhost\n",
            "http 80/tcp www # WorldWideWeb\ndomain 53/udp\nbogus x/tcp\n",
        );
        assert_eq!(
            n.host_addr("vip", Some(Family::Inet)),
            Some("198.18.0.100".parse().unwrap())
        );
        assert_eq!(n.host_addr("vip", Some(Family::Inet6)), None);
        assert_eq!(
            n.host_name(&"198.18.0.100".parse().unwrap()).as_deref(),
            Some("www")
        );
        assert_eq!(n.service_port("www", Protocol::Tcp), Some(80));
        assert_eq!(n.service_port("http", Protocol::Udp), None);
        assert_eq!(n.service_name(53, Protocol::Udp).as_deref(), Some("domain"));
    }
}
