//! `GET /metrics`: the counters in the Prometheus text format.

use std::fmt::Write;

use xvs_api::wire::Status;
use xvs_core::model::ServiceKey;
use xvs_core::snapshot::TableSnapshot;

fn service_label(k: &ServiceKey) -> String {
    match k {
        ServiceKey::Addr {
            protocol,
            addr,
            port,
        } => {
            let p = protocol.name().to_ascii_lowercase();
            match addr {
                std::net::IpAddr::V4(a) => format!("{p}:{a}:{port}"),
                std::net::IpAddr::V6(a) => format!("{p}:[{a}]:{port}"),
            }
        }
        ServiceKey::Fwmark { mark, .. } => format!("fwmark:{mark}"),
    }
}

/// The whole page.
pub fn render(snap: &TableSnapshot, status: &Status) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# TYPE xvs_packets_total counter");
    for (what, n) in &status.packets {
        let _ = writeln!(o, "xvs_packets_total{{result=\"{what}\"}} {n}");
    }
    let _ = writeln!(o, "# TYPE xvs_connections gauge");
    let _ = writeln!(o, "xvs_connections {}", status.connections);
    let metrics: [(&str, &str); 5] = [
        ("conns", "xvs_service_connections_total"),
        ("inpkts", "xvs_service_in_packets_total"),
        ("outpkts", "xvs_service_out_packets_total"),
        ("inbytes", "xvs_service_in_bytes_total"),
        ("outbytes", "xvs_service_out_bytes_total"),
    ];
    for (field, name) in metrics {
        let _ = writeln!(o, "# TYPE {name} counter");
        for s in &snap.services {
            let v = match field {
                "conns" => s.stats.conns,
                "inpkts" => s.stats.inpkts,
                "outpkts" => s.stats.outpkts,
                "inbytes" => s.stats.inbytes,
                _ => s.stats.outbytes,
            };
            let _ = writeln!(o, "{name}{{service=\"{}\"}} {v}", service_label(&s.cfg.key));
        }
    }
    for (name, kind) in [
        ("xvs_real_active_connections", "gauge"),
        ("xvs_real_inactive_connections", "gauge"),
        ("xvs_real_weight", "gauge"),
        ("xvs_real_connections_total", "counter"),
    ] {
        let _ = writeln!(o, "# TYPE {name} {kind}");
        for s in &snap.services {
            for d in &s.dests {
                let v = match name {
                    "xvs_real_active_connections" => d.active_conns as u64,
                    "xvs_real_inactive_connections" => d.inact_conns as u64,
                    "xvs_real_weight" => d.cfg.weight as u64,
                    _ => d.stats.conns,
                };
                let real = match d.cfg.addr {
                    std::net::IpAddr::V4(a) => format!("{a}:{}", d.cfg.port),
                    std::net::IpAddr::V6(a) => format!("[{a}]:{}", d.cfg.port),
                };
                let _ = writeln!(
                    o,
                    "{name}{{service=\"{}\",real=\"{real}\"}} {v}",
                    service_label(&s.cfg.key)
                );
            }
        }
    }
    o
}
