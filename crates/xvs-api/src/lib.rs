//! The xvsd API, shared by the daemon and its clients (xvsadm).
//!
//! - [`wire`]: the JSON documents (stable, versioned by the `/v1` path prefix)
//!   and their conversions to and from the core's snapshots.
//! - [`http`]: a deliberately small HTTP/1.1 codec: one request per
//!   connection, `Content-Length` bodies, `Connection: close`.
//! - [`client`]: a client over the daemon's Unix socket.
//!
//! The same operations are served on the Unix socket (root-only: that is the
//! security boundary) and, when configured, on TCP with a bearer token. The
//! OpenAPI description is `docs/openapi.yaml` in the repository.

pub mod client;
pub mod http;
pub mod wire;

/// Where xvsd listens and xvsadm looks when `XVS_SOCKET` is not set.
pub const DEFAULT_SOCKET: &str = "/run/xvs/xvsd.sock";

/// The environment variable that names the socket for xvsadm.
pub const SOCKET_ENV: &str = "XVS_SOCKET";
