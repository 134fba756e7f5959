//! A client of xvsd's Unix socket.

use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use serde::{de::DeserializeOwned, Serialize};

use crate::http;
use crate::wire::{ApiError, ErrorDoc};

/// Why a call failed.
#[derive(Debug)]
pub enum ClientError {
    /// Nobody listens on the socket (or it does not exist).
    NotRunning(PathBuf, io::Error),
    /// The daemon refused the request.
    Api(u16, ApiError),
    /// The connection broke or the answer was not understood.
    Protocol(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::NotRunning(p, e) => write!(f, "cannot reach xvsd at {}: {e}", p.display()),
            ClientError::Api(status, e) => write!(f, "xvsd answered {status}: {}", e.message),
            ClientError::Protocol(m) => write!(f, "talking to xvsd: {m}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// A client of one xvsd instance.
#[derive(Clone, Debug)]
pub struct Client {
    path: PathBuf,
}

impl Client {
    pub fn new(path: impl Into<PathBuf>) -> Client {
        Client { path: path.into() }
    }

    /// The socket named by `XVS_SOCKET`, or the default one.
    pub fn from_env() -> Client {
        Client::new(
            std::env::var_os(crate::SOCKET_ENV)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(crate::DEFAULT_SOCKET)),
        )
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `GET path`.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call("GET", path, &[])
    }

    /// `POST path` with a JSON body.
    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.call("POST", path, &body)
    }

    fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<T, ClientError> {
        let stream = UnixStream::connect(&self.path)
            .map_err(|e| ClientError::NotRunning(self.path.clone(), e))?;
        http::write_request(&stream, method, path, None, body)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let (status, body) =
            http::read_response(&stream).map_err(|e| ClientError::Protocol(e.to_string()))?;
        if status != 200 {
            let doc: ErrorDoc = serde_json::from_slice(&body).map_err(|e| {
                ClientError::Protocol(format!("status {status} with an unreadable body: {e}"))
            })?;
            return Err(ClientError::Api(status, doc.error));
        }
        serde_json::from_slice(&body).map_err(|e| ClientError::Protocol(e.to_string()))
    }
}
