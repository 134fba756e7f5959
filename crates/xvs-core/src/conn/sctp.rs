//! SCTP connection states (`ip_vs_proto_sctp.c`): names, numbering and
//! default timeouts are the kernel's.
//!
//! NOT MODELLED: the kernel's chunk-driven state machine
//! (`sctp_states[direction][event][state]`, events derived from the first
//! chunk type, ABORT bundled after COOKIE_ECHO/COOKIE_ACK). As a stand-in,
//! every SCTP packet moves the connection to ESTABLISHED (900 s, counted
//! active) — correct for data on an established association, wrong during
//! setup and shutdown (the kernel would show INIT1/INIT/C-*/S-* states with
//! their shorter timeouts, count them inactive, and reach CLOSED on
//! SHUTDOWN_COMPLETE/ABORT).

/// SCTP states, in the kernel's numbering (IP_VS_SCTP_S_*).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum SctpState {
    None = 0,
    Init1 = 1,
    Init = 2,
    CookieSent = 3,
    CookieReplied = 4,
    CookieWait = 5,
    Cookie = 6,
    CookieEchoed = 7,
    Established = 8,
    ShutdownSent = 9,
    ShutdownReceived = 10,
    ShutdownAckSent = 11,
    Rejected = 12,
    Closed = 13,
}

/// Number of SCTP states (IP_VS_SCTP_S_LAST).
pub const SCTP_STATES: usize = 14;

/// IP_VS_SCTP_MAX_RTO: (60 + 1) s.
const MAX_RTO: u32 = 61;

impl SctpState {
    pub const ALL: [SctpState; SCTP_STATES] = [
        SctpState::None,
        SctpState::Init1,
        SctpState::Init,
        SctpState::CookieSent,
        SctpState::CookieReplied,
        SctpState::CookieWait,
        SctpState::Cookie,
        SctpState::CookieEchoed,
        SctpState::Established,
        SctpState::ShutdownSent,
        SctpState::ShutdownReceived,
        SctpState::ShutdownAckSent,
        SctpState::Rejected,
        SctpState::Closed,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            SctpState::None => "NONE",
            SctpState::Init1 => "INIT1",
            SctpState::Init => "INIT",
            SctpState::CookieSent => "C-SENT",
            SctpState::CookieReplied => "C-REPLIED",
            SctpState::CookieWait => "C-WAIT",
            SctpState::Cookie => "COOKIE",
            SctpState::CookieEchoed => "C-ECHOED",
            SctpState::Established => "ESTABLISHED",
            SctpState::ShutdownSent => "S-SENT",
            SctpState::ShutdownReceived => "S-RECEIVED",
            SctpState::ShutdownAckSent => "S-ACK-SENT",
            SctpState::Rejected => "REJECTED",
            SctpState::Closed => "CLOSED",
        }
    }

    /// Only ESTABLISHED counts as active for SCTP.
    pub fn is_active(self) -> bool {
        self == SctpState::Established
    }

    /// Default timeout in seconds (sctp_timeouts[]).
    pub fn default_timeout_secs(self) -> u32 {
        match self {
            SctpState::None => 2,
            SctpState::Init1 | SctpState::Rejected => 4,
            SctpState::Established => 15 * 60,
            _ => MAX_RTO,
        }
    }
}

/// The stand-in transition: see the module documentation.
pub fn next_state(_current: SctpState) -> SctpState {
    SctpState::Established
}
