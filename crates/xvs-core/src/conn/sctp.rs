//! SCTP connection states (`ip_vs_proto_sctp.c`): names, numbering and
//! default timeouts are the kernel's.
//!
//! The kernel's chunk-driven state machine too: a packet's event is its
//! first chunk's type (an ABORT bundled after a COOKIE ECHO or COOKIE ACK
//! wins), looked up in one of three tables by direction, as TCP's.

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

/// SCTP chunk types (SCTP_CID_*, RFC 9260 3.2) that the state machine reads.
pub mod chunk {
    pub const DATA: u8 = 0;
    pub const INIT: u8 = 1;
    pub const INIT_ACK: u8 = 2;
    pub const SACK: u8 = 3;
    pub const HEARTBEAT: u8 = 4;
    pub const HEARTBEAT_ACK: u8 = 5;
    pub const ABORT: u8 = 6;
    pub const SHUTDOWN: u8 = 7;
    pub const SHUTDOWN_ACK: u8 = 8;
    pub const ERROR: u8 = 9;
    pub const COOKIE_ECHO: u8 = 10;
    pub const COOKIE_ACK: u8 = 11;
    pub const ECNE: u8 = 12;
    pub const CWR: u8 = 13;
    pub const SHUTDOWN_COMPLETE: u8 = 14;
}

/// What a packet means to the state machine (`enum ipvs_sctp_event_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SctpEvent {
    /// DATA, SACK, HEARTBEAT(-ACK), ECNE, CWR, and any type it does not know.
    Data = 0,
    Init = 1,
    InitAck = 2,
    CookieEcho = 3,
    CookieAck = 4,
    Shutdown = 5,
    ShutdownAck = 6,
    ShutdownComplete = 7,
    Error = 8,
    Abort = 9,
}

/// Number of events (IP_VS_SCTP_EVENT_LAST).
pub const SCTP_EVENTS: usize = 10;

impl SctpEvent {
    pub const ALL: [SctpEvent; SCTP_EVENTS] = [
        SctpEvent::Data,
        SctpEvent::Init,
        SctpEvent::InitAck,
        SctpEvent::CookieEcho,
        SctpEvent::CookieAck,
        SctpEvent::Shutdown,
        SctpEvent::ShutdownAck,
        SctpEvent::ShutdownComplete,
        SctpEvent::Error,
        SctpEvent::Abort,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    /// The event of a packet whose first chunk is `first`; `abort_follows`:
    /// the chunk after it is an ABORT. As `set_sctp_state()` reads it, an
    /// ABORT bundled after a COOKIE ECHO or COOKIE ACK is the packet's event
    /// (the only chunks worth looking past: INIT, INIT ACK and SHUTDOWN
    /// COMPLETE are never bundled, and an ABORT's other companions come
    /// before it).
    pub fn of(first: u8, abort_follows: bool) -> SctpEvent {
        if abort_follows && (first == chunk::COOKIE_ECHO || first == chunk::COOKIE_ACK) {
            return SctpEvent::Abort;
        }
        match first {
            chunk::INIT => SctpEvent::Init,
            chunk::INIT_ACK => SctpEvent::InitAck,
            chunk::ABORT => SctpEvent::Abort,
            chunk::SHUTDOWN => SctpEvent::Shutdown,
            chunk::SHUTDOWN_ACK => SctpEvent::ShutdownAck,
            chunk::ERROR => SctpEvent::Error,
            chunk::COOKIE_ECHO => SctpEvent::CookieEcho,
            chunk::COOKIE_ACK => SctpEvent::CookieAck,
            chunk::SHUTDOWN_COMPLETE => SctpEvent::ShutdownComplete,
            _ => SctpEvent::Data,
        }
    }
}

use super::tcp::TcpTable;
use SctpState as T;
const I1: T = T::Init1;
const IN: T = T::Init;
const CS: T = T::CookieSent;
const CR: T = T::CookieReplied;
const CW: T = T::CookieWait;
const CO: T = T::Cookie;
const CE: T = T::CookieEchoed;
const ES: T = T::Established;
const SS: T = T::ShutdownSent;
const SR: T = T::ShutdownReceived;
const SA: T = T::ShutdownAckSent;
const RJ: T = T::Rejected;
const CL: T = T::Closed;

/// `sctp_states[table][event][state]`: the next state. The states are the
/// real server's view of the association; columns in state order (NONE,
/// INIT1, INIT, C-SENT, C-REPLIED, C-WAIT, COOKIE, C-ECHOED, ESTABLISHED,
/// S-SENT, S-RECEIVED, S-ACK-SENT, REJECTED, CLOSED), rows in event order.
#[rustfmt::skip]
const NEXT: [[[SctpState; SCTP_STATES]; SCTP_EVENTS]; 3] = [
    // INPUT (client -> real server, replies seen)
    [
        /* data */ [ES, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        /* init */ [I1, IN, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, IN, IN],
        /* i_ack */[CW, CW, CW, CS, CR, CO, CO, CE, ES, SS, SR, SA, RJ, CL],
        /* c_ech */[CR, IN, IN, CR, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        /* c_ack */[ES, I1, IN, CS, CR, CW, CO, ES, ES, SS, SR, SA, RJ, CL],
        /* shut */ [SR, I1, IN, CS, CR, CW, CO, CE, SR, SS, SR, SA, RJ, CL],
        /* s_ack */[CL, IN, IN, CS, CR, CW, CO, CE, ES, CL, SR, CL, RJ, CL],
        /* s_cpl */[CL, CL, CL, CS, CR, CW, CO, CE, ES, SS, SR, CL, RJ, CL],
        /* error */[CL, I1, IN, CS, CR, CW, CO, CL, ES, SS, SR, SA, RJ, CL],
        /* abort */[CL, CL, CL, CL, CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL],
    ],
    // OUTPUT (real server -> client, NAT)
    [
        /* data */ [ES, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        /* init */ [CW, CW, CW, CW, CW, CW, CW, CW, ES, CW, CW, CW, CW, CW],
        /* i_ack */[CS, CS, CS, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        /* c_ech */[CE, CE, CE, CE, CE, CE, CE, CE, ES, SS, SR, SA, RJ, CL],
        /* c_ack */[ES, ES, ES, ES, ES, ES, ES, ES, ES, SS, SR, SA, RJ, CL],
        /* shut */ [SS, SS, SS, SS, SS, SS, SS, SS, SS, SS, SR, SA, RJ, CL],
        /* s_ack */[SA, SA, SA, SA, SA, CW, CO, CE, ES, SA, SA, SA, RJ, CL],
        /* s_cpl */[CL, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        /* error */[CL, CL, CL, CL, CL, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        /* abort */[CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL, CL],
    ],
    // INPUT-ONLY (client -> real server, no reply seen yet: DR, TUN)
    [
        /* data */ [ES, I1, IN, CS, CR, ES, CO, CE, ES, SS, SR, SA, RJ, CL],
        /* init */ [I1, IN, IN, IN, IN, IN, CO, CE, ES, SS, SR, SA, IN, IN],
        /* i_ack */[CE, CE, CE, CE, CE, CE, CO, CE, ES, SS, SR, SA, RJ, CL],
        /* c_ech */[ES, ES, ES, ES, ES, ES, CO, CE, ES, SS, SR, SA, RJ, CL],
        /* c_ack */[ES, I1, IN, ES, ES, CW, ES, ES, ES, SS, SR, SA, RJ, CL],
        /* shut */ [SR, I1, IN, CS, CR, CW, CO, CE, SR, SS, SR, SA, RJ, CL],
        /* s_ack */[CL, IN, IN, CS, CR, CW, CO, CE, CL, CL, SR, CL, RJ, CL],
        /* s_cpl */[CL, CL, CL, CL, CL, CW, CO, CE, ES, SS, CL, CL, RJ, CL],
        /* error */[CL, I1, IN, CS, CR, CW, CO, CE, ES, SS, SR, SA, RJ, CL],
        /* abort */[CL, CL, CL, CL, CL, RJ, CL, CL, CL, CL, CL, CL, CL, CL],
    ],
];

/// The kernel's SCTP transition (`set_sctp_state()`): `table` as for TCP
/// (INPUT-ONLY while a DR/TUN connection has shown no output).
pub fn next_state(table: TcpTable, ev: SctpEvent, cur: SctpState) -> SctpState {
    NEXT[table as usize][ev.index()][cur.index()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_association_through_nat_is_established_then_closed() {
        // INIT, INIT ACK, COOKIE ECHO, COOKIE ACK; DATA; SHUTDOWN (client),
        // SHUTDOWN ACK (server), SHUTDOWN COMPLETE (client).
        let steps = [
            (TcpTable::Input, chunk::INIT, T::Init1),
            (TcpTable::Output, chunk::INIT_ACK, T::CookieSent),
            (TcpTable::Input, chunk::COOKIE_ECHO, T::CookieReplied),
            (TcpTable::Output, chunk::COOKIE_ACK, T::Established),
            (TcpTable::Input, chunk::DATA, T::Established),
            (TcpTable::Output, chunk::SACK, T::Established),
            (TcpTable::Input, chunk::SHUTDOWN, T::ShutdownReceived),
            (TcpTable::Output, chunk::SHUTDOWN_ACK, T::ShutdownAckSent),
            (TcpTable::Input, chunk::SHUTDOWN_COMPLETE, T::Closed),
        ];
        let mut s = T::None;
        for (table, c, want) in steps {
            s = next_state(table, SctpEvent::of(c, false), s);
            assert_eq!(s, want, "after chunk {c} ({table:?})");
        }
    }

    #[test]
    fn a_dr_association_is_established_from_the_client_side_alone() {
        // INPUT-ONLY: the server's INIT ACK and COOKIE ACK are never seen.
        let mut s = T::None;
        for (c, want) in [
            (chunk::INIT, T::Init1),
            (chunk::COOKIE_ECHO, T::Established),
            (chunk::DATA, T::Established),
            (chunk::SHUTDOWN_ACK, T::Closed),
        ] {
            s = next_state(TcpTable::InputOnly, SctpEvent::of(c, false), s);
            assert_eq!(s, want, "after chunk {c}");
        }
    }

    #[test]
    fn an_abort_after_a_cookie_chunk_is_the_event_and_a_retried_init_is_init() {
        assert_eq!(SctpEvent::of(chunk::COOKIE_ECHO, true), SctpEvent::Abort);
        assert_eq!(SctpEvent::of(chunk::COOKIE_ACK, true), SctpEvent::Abort);
        assert_eq!(SctpEvent::of(chunk::DATA, true), SctpEvent::Data);
        assert_eq!(SctpEvent::of(200, false), SctpEvent::Data);
        let s = next_state(TcpTable::Input, SctpEvent::Init, T::Init1);
        assert_eq!(s, T::Init);
        // an INIT answered by an ABORT: rejected, a short timeout
        let s = next_state(TcpTable::Output, SctpEvent::Abort, T::Init1);
        assert_eq!((s, s.default_timeout_secs()), (T::Rejected, 4));
        // every cell is a state
        for t in [TcpTable::Input, TcpTable::Output, TcpTable::InputOnly] {
            for e in SctpEvent::ALL {
                for s in T::ALL {
                    assert!(next_state(t, e, s).index() < SCTP_STATES);
                }
            }
        }
    }
}
