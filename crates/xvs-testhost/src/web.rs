//! A web server in a real-server namespace that answers with its own name.

use std::{fs, path::Path, time::Duration};

use tempfile::TempDir;

use crate::{
    cmd::{self, wait_until, ChildGuard},
    netns::Netns,
    Error, Result,
};

/// Which implementation to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebServerKind {
    /// nginx if installed, else Python.
    Auto,
    /// nginx, one worker, from a config in a temp dir.
    Nginx,
    /// Python's http.server (threaded, HTTP/1.1 keep-alive): a fallback
    /// for machines without nginx; far slower, never for benchmarks.
    Python,
}

/// A running web server; stopped (and its temp dir removed) on drop.
#[derive(Debug)]
pub struct WebServer {
    // Field order: the process is stopped before its directory goes.
    child: ChildGuard,
    dir: TempDir,
    kind: WebServerKind,
    name: String,
    port: u16,
}

/// nginx.conf for a real server: `GET` anything answers `{name}\n`.
/// Long keep-alive (a benchmark's connections are never cut by the server),
/// no access log, all paths inside `dir`.
pub fn nginx_web_config(dir: &Path, name: &str, port: u16) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 16384; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server {{
        listen {port} backlog=65535;
        location / {{
            default_type text/plain;
            return 200 "{name}\n";
        }}
    }}
}}
"#
    )
}

const PYTHON_SERVER: &str = r#"
import http.server, sys
name = sys.argv[2].encode() + b"\n"
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(name)))
        self.end_headers()
        self.wfile.write(name)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer.request_queue_size = 1024
http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), H).serve_forever()
"#;

impl WebServer {
    /// Starts a web server in `ns` on 0.0.0.0:`port` answering `{name}\n`,
    /// and waits (up to 10 s) until it answers on 127.0.0.1.
    pub fn start(ns: &Netns, name: &str, port: u16, kind: WebServerKind) -> Result<WebServer> {
        let kind = match kind {
            WebServerKind::Auto if cmd::have_tool("nginx") => WebServerKind::Nginx,
            WebServerKind::Auto => WebServerKind::Python,
            k => k,
        };
        let dir = tempfile::Builder::new()
            .prefix(&format!("xvs-web-{name}-"))
            .tempdir()
            .map_err(|e| Error::io("creating a temp dir for the web server", e))?;
        let log = dir.path().join("stderr.log");
        let child = match kind {
            WebServerKind::Nginx => {
                cmd::require_tool("nginx", "nginx")?;
                let conf = dir.path().join("nginx.conf");
                fs::write(&conf, nginx_web_config(dir.path(), name, port))
                    .map_err(|e| Error::io(format!("writing {}", conf.display()), e))?;
                let (p, c) = (dir.path().to_string_lossy(), conf.to_string_lossy());
                let e = dir.path().join("error.log");
                ns.spawn_logged(
                    &["nginx", "-p", &p, "-c", &c, "-e", &e.to_string_lossy()],
                    &log,
                )?
            }
            WebServerKind::Python => {
                cmd::require_tool("python3", "python3")?;
                let script = dir.path().join("server.py");
                fs::write(&script, PYTHON_SERVER)
                    .map_err(|e| Error::io(format!("writing {}", script.display()), e))?;
                ns.spawn_logged(
                    &[
                        "python3",
                        &script.to_string_lossy(),
                        &port.to_string(),
                        name,
                    ],
                    &log,
                )?
            }
            WebServerKind::Auto => unreachable!(),
        };
        let mut w = WebServer {
            child,
            dir,
            kind,
            name: name.into(),
            port,
        };
        let url = format!("http://127.0.0.1:{port}/");
        let want = format!("{name}\n");
        let ready = wait_until(
            &format!("web server {name} in {} to answer {url}", ns.name()),
            Duration::from_secs(10),
            || {
                w.child.check_running()?;
                let body = crate::load::curl(ns, &url)?;
                if body == want {
                    Ok(())
                } else {
                    Err(Error::Invalid(format!(
                        "answered {body:?}, wanted {want:?}"
                    )))
                }
            },
        );
        if let Err(e) = ready {
            let log = fs::read_to_string(&log).unwrap_or_default();
            let elog = fs::read_to_string(w.dir.path().join("error.log")).unwrap_or_default();
            return Err(Error::Command {
                cmd: w.child.command_line().into(),
                status: format!("web server not ready: {e}"),
                stderr: format!("{log}{elog}"),
                stdout: String::new(),
            });
        }
        Ok(w)
    }

    pub fn kind(&self) -> WebServerKind {
        self.kind
    }

    /// The name it answers with.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Pid of its main process.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Its temp dir (config and logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_config_answers_with_the_name_and_keeps_connections() {
        let c = nginx_web_config(Path::new("/tmp/x"), "rs1", 8080);
        assert!(c.contains("listen 8080 backlog=65535;"));
        assert!(c.contains(r#"return 200 "rs1\n";"#));
        assert!(c.contains("daemon off;"));
        assert!(c.contains("pid /tmp/x/nginx.pid;"));
        assert!(c.contains("keepalive_requests 100000000;"));
        assert_eq!(c.matches('{').count(), c.matches('}').count());
    }
}
