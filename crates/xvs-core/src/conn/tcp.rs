//! The TCP state machine of IPVS (`ip_vs_proto_tcp.c`).
//!
//! IPVS does not follow TCP sequence numbers; it walks a table indexed by
//! (direction, flag row, current state). Three tables exist: INPUT (client
//! packets of a NAT connection), OUTPUT (real-server replies seen on the way
//! back through the director) and INPUT-ONLY (client packets of a connection
//! that has never shown an output packet: DR, TUN and local).
//!
//! Verified against the current kernel (`tcp_states[]`, `tcp_state_idx()`,
//! `set_tcp_state()`, `tcp_timeouts[]`, `tcp_state_active_table[]`):
//! * flag priority RST > SYN > FIN > ACK selects the row; a segment with none
//!   of the four moves the connection to CLOSE (set_tcp_state starts from
//!   CLOSE and skips the table lookup);
//! * active = ESTABLISHED, SYN_SENT, SYN_RECV, SYNACK (kernels since 4.10;
//!   earlier kernels counted only ESTABLISHED);
//! * the `secure_tcp` defence tables (`tcp_states_dos`) are not modelled.

use std::fmt;

/// TCP connection states, in the kernel's numbering (IP_VS_TCP_S_*).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum TcpState {
    None = 0,
    Established = 1,
    SynSent = 2,
    SynRecv = 3,
    FinWait = 4,
    TimeWait = 5,
    Close = 6,
    CloseWait = 7,
    LastAck = 8,
    Listen = 9,
    SynAck = 10,
}

/// Number of TCP states (IP_VS_TCP_S_LAST).
pub const TCP_STATES: usize = 11;

impl TcpState {
    pub const ALL: [TcpState; TCP_STATES] = [
        TcpState::None,
        TcpState::Established,
        TcpState::SynSent,
        TcpState::SynRecv,
        TcpState::FinWait,
        TcpState::TimeWait,
        TcpState::Close,
        TcpState::CloseWait,
        TcpState::LastAck,
        TcpState::Listen,
        TcpState::SynAck,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn from_index(i: usize) -> Option<TcpState> {
        TcpState::ALL.get(i).copied()
    }

    /// Name as `ipvsadm -Lc` and /proc/net/ip_vs_conn print it.
    pub fn name(self) -> &'static str {
        match self {
            TcpState::None => "NONE",
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait => "FIN_WAIT",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::SynAck => "SYNACK",
        }
    }

    /// Whether a connection in this state counts in the real server's
    /// ActiveConn (the kernel's tcp_state_active_table).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            TcpState::Established | TcpState::SynSent | TcpState::SynRecv | TcpState::SynAck
        )
    }

    /// Default timeout in seconds (tcp_timeouts[]).
    pub fn default_timeout_secs(self) -> u32 {
        match self {
            TcpState::None => 2,
            TcpState::Established => 15 * 60,
            TcpState::SynSent => 2 * 60,
            TcpState::SynRecv => 60,
            TcpState::FinWait => 2 * 60,
            TcpState::TimeWait => 2 * 60,
            TcpState::Close => 10,
            TcpState::CloseWait => 60,
            TcpState::LastAck => 30,
            TcpState::Listen => 2 * 60,
            TcpState::SynAck => 120,
        }
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The four TCP header flags IPVS looks at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags {
    pub syn: bool,
    pub fin: bool,
    pub ack: bool,
    pub rst: bool,
}

impl TcpFlags {
    pub const NONE: TcpFlags = TcpFlags::new(false, false, false, false);
    pub const SYN: TcpFlags = TcpFlags::new(true, false, false, false);
    pub const SYN_ACK: TcpFlags = TcpFlags::new(true, false, true, false);
    pub const ACK: TcpFlags = TcpFlags::new(false, false, true, false);
    pub const FIN: TcpFlags = TcpFlags::new(false, true, false, false);
    pub const FIN_ACK: TcpFlags = TcpFlags::new(false, true, true, false);
    pub const RST: TcpFlags = TcpFlags::new(false, false, false, true);
    pub const RST_ACK: TcpFlags = TcpFlags::new(false, false, true, true);

    pub const fn new(syn: bool, fin: bool, ack: bool, rst: bool) -> TcpFlags {
        TcpFlags { syn, fin, ack, rst }
    }

    /// The table row: RST beats SYN beats FIN beats ACK; `None` when none of
    /// the four is set (tcp_state_idx() returning -1).
    pub fn row(self) -> Option<usize> {
        if self.rst {
            Some(ROW_RST)
        } else if self.syn {
            Some(ROW_SYN)
        } else if self.fin {
            Some(ROW_FIN)
        } else if self.ack {
            Some(ROW_ACK)
        } else {
            None
        }
    }
}

const ROW_SYN: usize = 0;
const ROW_FIN: usize = 1;
const ROW_ACK: usize = 2;
const ROW_RST: usize = 3;

/// Which of the three tables a packet is looked up in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcpTable {
    Input = 0,
    Output = 1,
    InputOnly = 2,
}

use TcpState as S;
#[allow(dead_code)] // NONE and SYNACK are never a next state
const NO: S = S::None;
const ES: S = S::Established;
const SS: S = S::SynSent;
const SR: S = S::SynRecv;
const FW: S = S::FinWait;
const TW: S = S::TimeWait;
const CL: S = S::Close;
const CW: S = S::CloseWait;
const LA: S = S::LastAck;
const LI: S = S::Listen;
#[allow(dead_code)]
const SA: S = S::SynAck;

/// NEXT[table][row][current state]; rows are syn, fin, ack, rst and the
/// columns follow the state numbering NO ES SS SR FW TW CL CW LA LI SA.
const NEXT: [[[TcpState; TCP_STATES]; 4]; 3] = [
    // INPUT
    [
        [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR], // syn
        [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW], // fin
        [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES], // ack
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR], // rst
    ],
    // OUTPUT
    [
        [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR], // syn
        [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW], // fin
        [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES], // ack
        [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL], // rst
    ],
    // INPUT-ONLY
    [
        [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR], // syn
        [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW], // fin
        [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES], // ack
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL], // rst
    ],
];

/// The next state for a segment with `flags` looked up in `table`.
pub fn next_state(table: TcpTable, flags: TcpFlags, current: TcpState) -> TcpState {
    match flags.row() {
        Some(row) => NEXT[table as usize][row][current.index()],
        None => TcpState::Close,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_priority() {
        assert_eq!(TcpFlags::new(true, true, true, true).row(), Some(ROW_RST));
        assert_eq!(TcpFlags::new(true, true, true, false).row(), Some(ROW_SYN));
        assert_eq!(TcpFlags::FIN_ACK.row(), Some(ROW_FIN));
        assert_eq!(TcpFlags::ACK.row(), Some(ROW_ACK));
        assert_eq!(TcpFlags::NONE.row(), None);
    }

    #[test]
    fn no_flags_means_close() {
        for s in TcpState::ALL {
            for t in [TcpTable::Input, TcpTable::Output, TcpTable::InputOnly] {
                assert_eq!(next_state(t, TcpFlags::NONE, s), TcpState::Close);
            }
        }
    }

    #[test]
    fn default_timeouts() {
        let secs: Vec<u32> = TcpState::ALL
            .iter()
            .map(|s| s.default_timeout_secs())
            .collect();
        assert_eq!(secs, [2, 900, 120, 60, 120, 120, 10, 60, 30, 120, 120]);
    }

    #[test]
    fn active_states() {
        let active: Vec<TcpState> = TcpState::ALL
            .into_iter()
            .filter(|s| s.is_active())
            .collect();
        assert_eq!(
            active,
            [
                TcpState::Established,
                TcpState::SynSent,
                TcpState::SynRecv,
                TcpState::SynAck
            ]
        );
    }

    #[test]
    fn selected_cells() {
        use TcpTable::*;
        // A reply SYN in SYN_RECV (simultaneous open through NAT) stays SYN_RECV.
        assert_eq!(next_state(Output, TcpFlags::SYN_ACK, SR), SR);
        // RST from the client in SYN_RECV is ignored (stays SYN_RECV).
        assert_eq!(next_state(Input, TcpFlags::RST, SR), SR);
        assert_eq!(next_state(InputOnly, TcpFlags::RST, SR), SR);
        // RST from the server in SYN_SENT keeps SYN_SENT; in TIME_WAIT keeps TIME_WAIT.
        assert_eq!(next_state(Output, TcpFlags::RST, SS), SS);
        assert_eq!(next_state(Output, TcpFlags::RST, TW), TW);
        // Input-only FIN in ESTABLISHED goes FIN_WAIT (input table: CLOSE_WAIT).
        assert_eq!(next_state(InputOnly, TcpFlags::FIN_ACK, ES), FW);
        assert_eq!(next_state(Input, TcpFlags::FIN_ACK, ES), CW);
        // A bare ACK on a fresh entry establishes it (all three tables).
        assert_eq!(next_state(Input, TcpFlags::ACK, NO), ES);
        assert_eq!(next_state(InputOnly, TcpFlags::ACK, NO), ES);
        // RST on SYNACK: input table -> SYN_RECV, input-only -> CLOSE.
        assert_eq!(next_state(Input, TcpFlags::RST, SA), SR);
        assert_eq!(next_state(InputOnly, TcpFlags::RST, SA), CL);
    }
}
