//! Events from the datapath: the `xvs_events` ring buffer (`struct
//! xvs_event` in `structs.h`), on which the programs tell user space what
//! the kernel's IPVS writes to its log (`IP_VS_ERR_RL`), at most 10 in a
//! burst and then 2 a second per CPU, as `net_ratelimit()` lets the
//! kernel's through. The daemon logs them.
//!
//! Today: a new connection that found no real server. The channel is one way, like the
//! rest: the programs write, one reader takes ([`crate::Datapath::take_events`]).

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::AsRawFd,
    time::Duration,
};

use aya::maps::{MapData, RingBuf};
use xvs_core::{
    model::{Family, Protocol, ServiceKey},
    sched::SchedulerKind,
};

use crate::maps::AF_INET6;

/// `XVS_EV_NO_DEST`
const EV_NO_DEST: u16 = 1;
/// `sizeof(struct xvs_event)`
pub const EVENT_SIZE: usize = 36;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A new connection for the service found no real server: none was
    /// available to its scheduler (`ip_vs_scheduler_err()`). The packet
    /// was dropped (and answered with a port unreachable), counted as
    /// `no_dest`.
    NoDestination,
}

/// One event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// The service, as the packet found it.
    pub service: ServiceKey,
    /// The packet's protocol (also for a firewall-mark service).
    pub protocol: Option<Protocol>,
    /// The service's scheduler (`None`: a code this build does not know).
    pub scheduler: Option<SchedulerKind>,
    /// The service's id in the datapath's maps.
    pub svc_id: u32,
    /// Events the CPU that sent this one left out (rate limit) since its
    /// previous one: the kernel's "N callbacks suppressed".
    pub suppressed: u32,
}

impl Event {
    /// Decodes a `struct xvs_event`; `None` for anything else.
    pub fn parse(b: &[u8]) -> Option<Event> {
        if b.len() < EVENT_SIZE {
            return None;
        }
        let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let kind = match u16_at(0) {
            EV_NO_DEST => EventKind::NoDestination,
            _ => return None,
        };
        let family = if b[2] == AF_INET6 {
            Family::Inet6
        } else {
            Family::Inet
        };
        let protocol = Protocol::from_number(b[3]);
        let fwmark = u32_at(8);
        let addr: [u8; 16] = b[20..36].try_into().ok()?;
        let service = if fwmark != 0 {
            ServiceKey::Fwmark {
                family,
                mark: fwmark,
            }
        } else {
            ServiceKey::Addr {
                protocol: protocol?,
                addr: match family {
                    Family::Inet6 => IpAddr::V6(Ipv6Addr::from(addr)),
                    Family::Inet => IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])),
                },
                port: u16::from_be_bytes([b[12], b[13]]),
            }
        };
        Some(Event {
            kind,
            service,
            protocol,
            scheduler: SchedulerKind::ALL.get(usize::from(b[14])).copied(),
            svc_id: u32_at(4),
            suppressed: u32_at(16),
        })
    }

    /// The service as the kernel's messages name it: `TCP 10.0.0.1:80`,
    /// `UDP [2001:db8::1]:53`, `FWM 5 0x00000005`.
    pub fn service_name(&self) -> String {
        match self.service {
            ServiceKey::Addr {
                protocol,
                addr: IpAddr::V6(a),
                port,
            } => format!("{protocol} [{a}]:{port}"),
            ServiceKey::Addr {
                protocol,
                addr,
                port,
            } => format!("{protocol} {addr}:{port}"),
            ServiceKey::Fwmark { mark, .. } => format!("FWM {mark} 0x{mark:08X}"),
        }
    }
}

/// The kernel's log line for it, without the `IPVS: ` prefix.
impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            EventKind::NoDestination => write!(
                f,
                "{}: {} - no destination available",
                self.scheduler.map_or("none", |s| s.name()),
                self.service_name()
            ),
        }
    }
}

/// The reading end of the ring buffer.
pub struct Events {
    ring: RingBuf<MapData>,
}

impl Events {
    pub(crate) fn new(ring: RingBuf<MapData>) -> Events {
        Events { ring }
    }

    /// The next event already there, if any (records that are no event of
    /// this build are skipped).
    pub fn next_event(&mut self) -> Option<Event> {
        loop {
            let item = self.ring.next()?;
            if let Some(e) = Event::parse(&item) {
                return Some(e);
            }
        }
    }

    /// Waits up to `timeout` for events to read; `Ok(false)` if none came.
    pub fn wait(&self, timeout: Duration) -> std::io::Result<bool> {
        let mut fd = libc::pollfd {
            fd: self.ring.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd, for the duration of the call.
        let n = unsafe { libc::poll(&mut fd, 1, ms) };
        match n {
            n if n < 0 => {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
            0 => Ok(false),
            _ => Ok(true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(kind: u16, family: u8, proto: u8, fwmark: u32, port: u16, addr: [u8; 16]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&kind.to_ne_bytes());
        b.push(family);
        b.push(proto);
        b.extend_from_slice(&7u32.to_ne_bytes()); // svc_id
        b.extend_from_slice(&fwmark.to_ne_bytes());
        b.extend_from_slice(&port.to_be_bytes());
        b.push(3); // wlc
        b.push(0);
        b.extend_from_slice(&4u32.to_ne_bytes()); // suppressed
        b.extend_from_slice(&addr);
        b
    }

    #[test]
    fn events_read_as_the_kernels_log_lines() {
        let mut v4 = [0u8; 16];
        v4[..4].copy_from_slice(&[198, 18, 0, 100]);
        let e = Event::parse(&raw(1, 2, 6, 0, 80, v4)).unwrap();
        assert_eq!(
            e.to_string(),
            "wlc: TCP 198.18.0.100:80 - no destination available"
        );
        assert_eq!((e.svc_id, e.suppressed), (7, 4));
        let v6: [u8; 16] = "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets();
        let e = Event::parse(&raw(1, 10, 17, 0, 53, v6)).unwrap();
        assert_eq!(
            e.to_string(),
            "wlc: UDP [2001:db8::1]:53 - no destination available"
        );
        let e = Event::parse(&raw(1, 2, 6, 5, 0, [0; 16])).unwrap();
        assert_eq!(
            e.to_string(),
            "wlc: FWM 5 0x00000005 - no destination available"
        );
        // not an event of this build, or short
        assert_eq!(Event::parse(&raw(9, 2, 6, 0, 80, v4)), None);
        assert_eq!(Event::parse(&raw(1, 2, 6, 0, 80, v4)[..35]), None);
    }
}
