//! docs/openapi.yaml describes the API as served: every route of
//! crates/xvsd/src/api.rs is there with its method and no other, and every
//! document's fields, as serialized from the wire types, are the schema's
//! properties with the schema's JSON types and enum values.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;

use serde_json::{json, Value};
use xvs_api::wire::{
    ApiError, CommandsRequest, CommandsResponse, Conn, ConnList, Daemon, DaemonList, ErrorDoc,
    Interface, ServiceList, Status, Timeouts,
};
use xvs_core::ipvsadm::{parse_restore, NumericOnly};
use xvs_core::sched::SchedulerKind;
use xvs_core::table::IpvsTable;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn spec() -> Value {
    let path = repo().join("docs/openapi.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}

/// `(METHOD, path)` of every route matched in api.rs.
fn routes() -> BTreeSet<(String, String)> {
    let path = repo().join("crates/xvsd/src/api.rs");
    let src = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut out = BTreeSet::new();
    for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
        let pat = format!("(\"{method}\", \"");
        let mut rest = src.as_str();
        while let Some(i) = rest.find(&pat) {
            rest = &rest[i + pat.len()..];
            let end = rest.find('"').expect("a closing quote");
            out.insert((method.to_string(), rest[..end].to_string()));
        }
    }
    assert!(out.len() >= 8, "found too few routes in api.rs: {out:?}");
    out
}

#[test]
fn every_route_is_documented() {
    let spec = spec();
    assert!(
        spec["openapi"].as_str().unwrap_or("").starts_with("3.0"),
        "OpenAPI 3.0"
    );
    let paths = spec["paths"].as_object().expect("paths");
    let mut documented = BTreeSet::new();
    for (p, ops) in paths {
        for (m, op) in ops.as_object().expect("operations") {
            documented.insert((m.to_ascii_uppercase(), p.clone()));
            assert!(
                op["responses"]["200"].is_object(),
                "{m} {p} documents no 200 answer"
            );
        }
    }
    assert_eq!(documented, routes(), "docs/openapi.yaml vs api.rs routes");
    // Bearer auth for TCP, and an error document.
    assert_eq!(
        spec["components"]["securitySchemes"]["bearerAuth"]["scheme"],
        "bearer"
    );
    assert!(spec["components"]["schemas"]["ErrorDoc"].is_object());
}

/// Resolves a `$ref` to its schema and name.
fn resolve<'a>(spec: &'a Value, s: &'a Value) -> (&'a Value, Option<String>) {
    match s.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("unexpected $ref {r}"));
            let t = &spec["components"]["schemas"][name];
            assert!(t.is_object(), "dangling $ref {r}");
            (t, Some(name.to_string()))
        }
        None => (s, None),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks `v` against schema `s`; records, per named schema, the property
/// names seen, so that the caller can check every property is produced.
fn check(
    spec: &Value,
    s: &Value,
    v: &Value,
    at: &str,
    seen: &mut BTreeMap<String, BTreeSet<String>>,
) {
    let (s, name) = resolve(spec, s);
    if let Some(alts) = s.get("oneOf").and_then(Value::as_array) {
        // Only scalars are alternatives here (the `[name, count]` pairs).
        let ok = alts
            .iter()
            .any(|a| resolve(spec, a).0["type"].as_str() == Some(json_type(v)));
        assert!(ok, "{at}: {v} matches none of {alts:?}");
        return;
    }
    let ty = s["type"]
        .as_str()
        .unwrap_or_else(|| panic!("{at}: schema without a type"));
    assert_eq!(json_type(v), ty, "{at}: {v} is not a {ty}");
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        assert!(e.contains(v), "{at}: {v} is not one of {e:?}");
    }
    match v {
        Value::Object(o) => {
            let props = s["properties"]
                .as_object()
                .unwrap_or_else(|| panic!("{at}: object schema without properties"));
            for (k, x) in o {
                let ps = props
                    .get(k)
                    .unwrap_or_else(|| panic!("{at}: property '{k}' is not documented"));
                check(spec, ps, x, &format!("{at}.{k}"), seen);
            }
            for r in s["required"].as_array().into_iter().flatten() {
                let r = r.as_str().unwrap();
                assert!(o.contains_key(r), "{at}: required '{r}' missing in {v}");
            }
            if let Some(n) = name {
                seen.entry(n).or_default().extend(o.keys().cloned());
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                check(spec, &s["items"], x, &format!("{at}[{i}]"), seen);
            }
        }
        _ => {}
    }
}

/// A table with every optional field present somewhere.
fn sample_services() -> ServiceList {
    let rules = "\
-A -t 198.18.0.100:80 -s wrr
-a -t 198.18.0.100:80 -r 198.18.1.10:8080 -m -w 2 -x 100 -y 50
-a -t 198.18.0.100:80 -r 198.18.1.11:8080 -g -w 1
-A -u 198.18.0.100:53 -s sh -b sh-fallback,sh-port -o
-a -u 198.18.0.100:53 -r 198.18.1.12:53 -g -w 0
-A -f 7 -s rr -p 600 -M 255.255.255.0
-a -f 7 -r 198.18.1.13:0 -i --tun-type gue --tun-port 6080 --tun-csum
-A -t 198.18.0.101:5060 -s lc --pe sip -p
";
    let cmds = parse_restore(rules, &NumericOnly).expect("rules parse");
    let mut t = IpvsTable::new();
    t.apply_all(&cmds).expect("rules apply");
    ServiceList::from_snapshot(&t.snapshot())
}

fn samples() -> Vec<(&'static str, Value)> {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let v = |x: Value| x;
    vec![
        (
            "Status",
            serde_json::to_value(Status {
                version: "0.1.0".into(),
                name: "default".into(),
                interfaces: vec![Interface {
                    name: "eth0".into(),
                    mode: "xdp".into(),
                }],
                pin_dir: "/sys/fs/bpf/xvs/default".into(),
                adopted: false,
                connections: 3,
                uptime_secs: 10,
                packets: vec![("passed".into(), 1), ("forwarded".into(), 2)],
                sysctls: vec![("expire_nodest_conn".into(), 1)],
            })
            .unwrap(),
        ),
        (
            "ServiceList",
            serde_json::to_value(sample_services()).unwrap(),
        ),
        (
            "ConnList",
            serde_json::to_value(ConnList {
                connections: vec![Conn {
                    protocol: "TCP".into(),
                    client: ip("198.18.5.1"),
                    client_port: 40000,
                    virtual_addr: ip("198.18.0.100"),
                    virtual_port: 80,
                    destination: ip("198.18.1.10"),
                    destination_port: 8080,
                    state: "ESTABLISHED".into(),
                    expires: 899,
                }],
            })
            .unwrap(),
        ),
        (
            "Timeouts",
            serde_json::to_value(Timeouts {
                tcp: 900,
                tcp_fin: 120,
                udp: 300,
            })
            .unwrap(),
        ),
        (
            "DaemonList",
            serde_json::to_value(DaemonList {
                daemons: vec![Daemon {
                    state: "backup".into(),
                    mcast_interface: Some("eth1".into()),
                    syncid: 5,
                    sync_maxlen: Some(1472),
                    mcast_group: Some(ip("224.0.0.81")),
                    mcast_port: Some(8848),
                    mcast_ttl: Some(1),
                }],
            })
            .unwrap(),
        ),
        // api.rs builds this one with json!.
        (
            "Rules",
            v(json!({ "rules": "-A -t 198.18.0.100:80 -s wrr\n" })),
        ),
        (
            "CommandsRequest",
            serde_json::to_value(CommandsRequest {
                commands: vec![vec!["-C".into()]],
            })
            .unwrap(),
        ),
        (
            "CommandsResponse",
            serde_json::to_value(CommandsResponse { applied: 1 }).unwrap(),
        ),
        (
            "ErrorDoc",
            serde_json::to_value(ErrorDoc {
                error: ApiError {
                    message: "Service already exists".into(),
                    detail: "command 1: ...".into(),
                    errno: 17,
                    index: Some(1),
                },
            })
            .unwrap(),
        ),
    ]
}

#[test]
fn every_wire_field_is_documented() {
    let spec = spec();
    let mut seen = BTreeMap::new();
    for (name, value) in samples() {
        let s = json!({ "$ref": format!("#/components/schemas/{name}") });
        check(&spec, &s, &value, name, &mut seen);
    }
    // Every documented property of every schema was produced by a sample:
    // nothing is documented that the wire types do not have.
    let schemas = spec["components"]["schemas"].as_object().unwrap();
    for (name, s) in schemas {
        let props: BTreeSet<String> = s["properties"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        let got = seen.remove(name).unwrap_or_default();
        assert_eq!(got, props, "schema {name}: properties vs serialized fields");
    }
    assert!(seen.is_empty(), "undocumented schemas: {seen:?}");
}

/// The documented responses use the schemas the samples were checked against.
#[test]
fn responses_use_the_checked_schemas() {
    let spec = spec();
    let schema_of = |path: &str, method: &str| -> String {
        spec["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]
            ["$ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: no JSON 200 schema"))
            .to_string()
    };
    for (path, method, name) in [
        ("/v1/status", "get", "Status"),
        ("/v1/services", "get", "ServiceList"),
        ("/v1/connections", "get", "ConnList"),
        ("/v1/timeouts", "get", "Timeouts"),
        ("/v1/daemons", "get", "DaemonList"),
        ("/v1/rules", "get", "Rules"),
        ("/v1/commands", "post", "CommandsResponse"),
    ] {
        assert_eq!(
            schema_of(path, method),
            format!("#/components/schemas/{name}"),
            "{method} {path}"
        );
    }
    assert_eq!(
        spec["paths"]["/v1/commands"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/CommandsRequest"
    );
    assert!(
        spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.starts_with("text/plain"))
    );
    // Every scheduler xvs knows is in the enum, and nothing else.
    let en: BTreeSet<String> = spec["components"]["schemas"]["Service"]["properties"]["scheduler"]
        ["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let all: BTreeSet<String> = SchedulerKind::ALL
        .iter()
        .map(|k| k.name().to_string())
        .collect();
    assert_eq!(en, all);
}
