//! Host and service names. ipvsadm accepts names on input (`-t www:http`) and
//! prints them on output unless `-n` is given. The core does no lookups itself:
//! the caller supplies them (xvsadm reads /etc/hosts and /etc/services).

use std::net::IpAddr;

use crate::model::{Family, Protocol};

/// Name lookups in both directions; each returns `None` when it does not know.
pub trait Names {
    /// A host name to an address of the given family (any family if `None`).
    fn host_addr(&self, _name: &str, _family: Option<Family>) -> Option<IpAddr> {
        None
    }
    /// A service name (e.g. "http") to a port for the protocol.
    fn service_port(&self, _name: &str, _proto: Protocol) -> Option<u16> {
        None
    }
    /// An address to a host name (output without `-n`).
    fn host_name(&self, _addr: &IpAddr) -> Option<String> {
        None
    }
    /// A port to a service name (output without `-n`).
    fn service_name(&self, _port: u16, _proto: Protocol) -> Option<String> {
        None
    }
}

/// Knows no names at all: numbers only.
#[derive(Clone, Copy, Debug, Default)]
pub struct NumericOnly;

impl Names for NumericOnly {}
