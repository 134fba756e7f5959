//! Per-protocol, per-state timeouts (the kernel's `pd->timeout_table`), and
//! `ipvsadm --set tcp tcpfin udp` (`ip_vs_set_timeout()`).

use std::fmt;

use super::sctp::{SctpState, SCTP_STATES};
use super::tcp::{TcpState, TCP_STATES};
use crate::ipvsadm::command::TimeoutSet;

/// Timeouts in seconds. Every kernel default is a whole number of seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timeouts {
    /// Indexed by [`TcpState::index`].
    pub tcp: [u32; TCP_STATES],
    /// IP_VS_UDP_S_NORMAL.
    pub udp: u32,
    /// Indexed by [`SctpState::index`].
    pub sctp: [u32; SCTP_STATES],
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        let mut tcp = [0; TCP_STATES];
        for s in TcpState::ALL {
            tcp[s.index()] = s.default_timeout_secs();
        }
        let mut sctp = [0; SCTP_STATES];
        for s in SctpState::ALL {
            sctp[s.index()] = s.default_timeout_secs();
        }
        Timeouts {
            tcp,
            udp: Timeouts::UDP_DEFAULT,
            sctp,
        }
    }
}

/// `--set` rejected: a value is above INT_MAX / HZ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeoutRangeError;

impl fmt::Display for TimeoutRangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Invalid argument")
    }
}

impl std::error::Error for TimeoutRangeError {}

impl Timeouts {
    /// UDP NORMAL: 5 minutes.
    pub const UDP_DEFAULT: u32 = super::udp::DEFAULT_TIMEOUT_SECS;

    /// Largest value `--set` accepts: the kernel rejects more than INT_MAX / HZ
    /// seconds with EINVAL. HZ is a kernel build option; this model assumes
    /// HZ = 1000 (the limit is 2147483 s).
    pub const MAX_SET: u32 = (i32::MAX / 1000) as u32;

    pub fn tcp(&self, s: TcpState) -> u32 {
        self.tcp[s.index()]
    }

    pub fn sctp(&self, s: SctpState) -> u32 {
        self.sctp[s.index()]
    }

    /// `ipvsadm --set tcp tcpfin udp`: `tcp` sets ESTABLISHED, `tcpfin` sets
    /// FIN_WAIT (only; TIME_WAIT and the others keep their values), `udp`
    /// sets UDP NORMAL. A 0 leaves that value unchanged. All three are
    /// range-checked before anything changes. Connections already in the
    /// table keep their current timer; the new values apply from their next
    /// packet.
    pub fn apply(&mut self, set: TimeoutSet) -> Result<(), TimeoutRangeError> {
        if set.tcp > Self::MAX_SET || set.tcp_fin > Self::MAX_SET || set.udp > Self::MAX_SET {
            return Err(TimeoutRangeError);
        }
        if set.tcp != 0 {
            self.tcp[TcpState::Established.index()] = set.tcp;
        }
        if set.tcp_fin != 0 {
            self.tcp[TcpState::FinWait.index()] = set.tcp_fin;
        }
        if set.udp != 0 {
            self.udp = set.udp;
        }
        Ok(())
    }

    /// What `ipvsadm -L --timeout` shows (`__ip_vs_get_timeouts()`).
    pub fn to_set(&self) -> TimeoutSet {
        TimeoutSet {
            tcp: self.tcp(TcpState::Established),
            tcp_fin: self.tcp(TcpState::FinWait),
            udp: self.udp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_view() {
        let t = Timeouts::default();
        assert_eq!(
            t.to_set(),
            TimeoutSet {
                tcp: 900,
                tcp_fin: 120,
                udp: 300
            }
        );
    }

    #[test]
    fn set_semantics() {
        let mut t = Timeouts::default();
        t.apply(TimeoutSet {
            tcp: 100,
            tcp_fin: 0,
            udp: 0,
        })
        .unwrap();
        assert_eq!(t.tcp(TcpState::Established), 100);
        assert_eq!(t.tcp(TcpState::FinWait), 120);
        assert_eq!(t.udp, 300);

        t.apply(TimeoutSet {
            tcp: 0,
            tcp_fin: 7,
            udp: 9,
        })
        .unwrap();
        assert_eq!(t.tcp(TcpState::Established), 100);
        assert_eq!(t.tcp(TcpState::FinWait), 7);
        // tcpfin does not touch TIME_WAIT, CLOSE_WAIT or LAST_ACK.
        assert_eq!(t.tcp(TcpState::TimeWait), 120);
        assert_eq!(t.tcp(TcpState::CloseWait), 60);
        assert_eq!(t.tcp(TcpState::LastAck), 30);
        assert_eq!(t.udp, 9);
        assert_eq!(
            t.to_set(),
            TimeoutSet {
                tcp: 100,
                tcp_fin: 7,
                udp: 9
            }
        );

        // All-zero is a no-op.
        let before = t;
        t.apply(TimeoutSet::default()).unwrap();
        assert_eq!(t, before);
    }

    #[test]
    fn set_out_of_range_changes_nothing() {
        let mut t = Timeouts::default();
        let r = t.apply(TimeoutSet {
            tcp: 5,
            tcp_fin: 5,
            udp: Timeouts::MAX_SET + 1,
        });
        assert_eq!(r, Err(TimeoutRangeError));
        assert_eq!(t, Timeouts::default());
    }
}
