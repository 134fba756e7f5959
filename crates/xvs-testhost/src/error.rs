//! One error type: every failure says which command or step failed and why.

use std::fmt;

/// Everything that can go wrong while building or driving test hosts.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Network namespaces, veths and sysctls need root.
    #[error(
        "xvs-testhost needs root (network namespaces, veths, sysctls): running as uid {uid}; \
         run the tests as root (sudo -E cargo test ...)"
    )]
    NotRoot { uid: u32 },

    /// A command ran and exited unsuccessfully.
    #[error("command failed: `{cmd}` ({status})\nstderr: {stderr}\nstdout: {stdout}")]
    Command {
        cmd: String,
        status: String,
        stderr: String,
        stdout: String,
    },

    /// A command could not be started at all (missing binary, ...).
    #[error("could not start `{cmd}`: {source}")]
    Spawn {
        cmd: String,
        #[source]
        source: std::io::Error,
    },

    /// A program the step needs is not installed.
    #[error("`{tool}` is not installed: {hint}")]
    Missing { tool: String, hint: String },

    /// Some other I/O step (temp files, /proc, sockets).
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },

    /// Output of a tool could not be understood.
    #[error("could not parse {what}: {detail}\n--- output ---\n{text}")]
    Parse {
        what: String,
        detail: String,
        text: String,
    },

    /// Something did not become ready in time.
    #[error("timed out after {secs:.1}s waiting for {what}{}", last.as_deref().map(|l| format!(" (last error: {l})")).unwrap_or_default())]
    Timeout {
        what: String,
        secs: f64,
        last: Option<String>,
    },

    /// A request was invalid (bad server count, unknown name, ...).
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(what: impl fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            what: what.to_string(),
            source,
        }
    }
}
