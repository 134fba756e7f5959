//! The API: routes, served on the Unix socket and (optionally) on TCP.
//! The paths and documents are described in `docs/openapi.yaml`.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::json;
use xvs_api::http::{self, Request, Response};
use xvs_api::wire::{
    CommandsRequest, CommandsResponse, Conn, ConnList, Daemon as DaemonDoc, DaemonList, ErrorDoc,
    ServiceList,
};

use crate::daemon::{refusal, Daemon, Refusal};
use crate::log;

/// Who may call: the Unix socket is trusted (its file mode is the boundary);
/// TCP callers must present the token when one is configured.
#[derive(Clone, Debug)]
pub enum Access {
    Local,
    Tcp { token: Option<String> },
}

fn ok<T: Serialize>(v: &T) -> Response {
    Response::json(200, serde_json::to_vec(v).unwrap_or_default())
}

fn fail((status, error): Refusal) -> Response {
    Response::json(
        status,
        serde_json::to_vec(&ErrorDoc { error }).unwrap_or_default(),
    )
}

fn simple(status: u16, message: &str, detail: String) -> Response {
    fail(refusal(status, message, detail))
}

/// Answers one request.
pub fn route(state: &Mutex<Daemon>, access: &Access, req: &Request) -> Response {
    if let Access::Tcp { token: Some(t) } = access {
        let presented = req
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "));
        if presented != Some(t.as_str()) {
            return simple(
                401,
                "Unauthorized",
                "a valid bearer token is required".into(),
            );
        }
    }
    let lock = || state.lock().unwrap_or_else(|p| p.into_inner());
    match (req.method.as_str(), req.path()) {
        ("GET", "/v1/status") => ok(&lock().status()),
        ("GET", "/v1/services") => match lock().snapshot() {
            Ok(s) => ok(&ServiceList::from_snapshot(&s)),
            Err(r) => fail(r),
        },
        ("GET", "/v1/connections") => {
            let conns = lock().dp.connections();
            ok(&ConnList {
                connections: conns.iter().map(Conn::from).collect(),
            })
        }
        ("GET", "/v1/timeouts") => ok(&lock().timeouts()),
        ("GET", "/v1/daemons") => ok(&DaemonList {
            daemons: lock().table.daemons().iter().map(DaemonDoc::from).collect(),
        }),
        ("GET", "/v1/rules") => ok(&json!({ "rules": lock().rules_text() })),
        ("POST", "/v1/commands") => {
            let body: CommandsRequest = match serde_json::from_slice(&req.body) {
                Ok(b) => b,
                Err(e) => return simple(400, "Bad request body", e.to_string()),
            };
            match lock().apply_argvs(&body.commands) {
                Ok(applied) => ok(&CommandsResponse { applied }),
                Err(r) => fail(r),
            }
        }
        ("GET", "/metrics") => {
            let d = lock();
            match d.snapshot() {
                Ok(s) => Response {
                    status: 200,
                    content_type: "text/plain; version=0.0.4",
                    body: crate::metrics::render(&s, &d.status()).into_bytes(),
                },
                Err(r) => fail(r),
            }
        }
        (
            _,
            "/v1/status" | "/v1/services" | "/v1/connections" | "/v1/timeouts" | "/v1/daemons"
            | "/v1/rules" | "/v1/commands" | "/metrics",
        ) => simple(
            405,
            "Method Not Allowed",
            format!("{} is not allowed on {}", req.method, req.path()),
        ),
        _ => simple(404, "Not Found", format!("no such path: {}", req.path())),
    }
}

/// Serves one connection: one request, one response.
pub fn serve<S: Read + Write>(state: &Arc<Mutex<Daemon>>, access: &Access, mut stream: S) {
    let resp = match http::read_request(&mut stream) {
        Ok(req) => route(state, access, &req),
        Err(e) => simple(400, "Bad request", e.to_string()),
    };
    if let Err(e) = http::write_response(&mut stream, &resp) {
        log::warn("writing a response", &[("error", json!(e.to_string()))]);
    }
}
