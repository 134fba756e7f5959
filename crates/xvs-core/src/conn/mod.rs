//! Connection entries, their per-protocol state machines, and the connection
//! table (`ip_vs_conn.c`, `ip_vs_proto_{tcp,udp,sctp}.c`).
//!
//! Nothing here touches a [`crate::model::Dest`]: every operation that the
//! kernel would apply to a real server's counters returns a [`CountChange`]
//! instead, which the caller applies to the right `Dest` (then, after a bind
//! or unbind, calls `Dest::update_overload(bound)`).
//!
//! Life of a connection, as the director drives it:
//! * `Conn::new(..)` (starts in NONE with the INACTIVE flag, plus NO_OUTPUT
//!   unless the forwarding method is NAT — `__ip_vs_update_dest()` gives every
//!   dest those connection flags), `ConnTable::insert` → bind counts
//!   (InActConn +1);
//! * each packet: `ConnTable::packet(id, dir, pkt, now, &timeouts)` → state
//!   change and counts delta; the timer restarts at `now + state timeout`;
//! * `ConnTable::expire(now)` → what ran out, with unbind counts.
//!
//! One-packet (`-o`, UDP) connections are never hashed by the kernel and are
//! freed right after their packet: don't insert them; apply
//! `bind_change()`, `transition(..)`, `unbind_change()` on a local `Conn`.

pub mod sctp;
pub mod table;
pub mod tcp;
pub mod timeouts;
pub mod udp;

use std::net::IpAddr;
use std::ops::{Add, Neg};

use crate::model::{Dest, DestId, Flow, FwdMethod, Protocol};
use crate::persist::{Sysctls, TemplateKey};
use crate::time::Time;

pub use sctp::SctpState;
pub use table::{ConnId, ConnTable, Expired};
pub use tcp::{TcpFlags, TcpState};
pub use timeouts::Timeouts;

/// Packet direction relative to the connection: client -> server is Input,
/// server -> client (seen only for NAT) is Output. The INPUT-ONLY table is
/// chosen internally from the NO_OUTPUT flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    Input,
    Output,
}

/// What the state machines need to know about a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pkt {
    Tcp(TcpFlags),
    Udp,
    /// The type of the first chunk (1 = INIT), and whether the chunk after
    /// it is an ABORT (which matters after a COOKIE ECHO or COOKIE ACK:
    /// [`sctp::SctpEvent::of`]).
    Sctp {
        first_chunk: u8,
        abort_follows: bool,
    },
}

/// SCTP_CID_INIT.
pub const SCTP_CHUNK_INIT: u8 = 1;

impl Pkt {
    pub fn protocol(self) -> Protocol {
        match self {
            Pkt::Tcp(_) => Protocol::Tcp,
            Pkt::Udp => Protocol::Udp,
            Pkt::Sctp { .. } => Protocol::Sctp,
        }
    }

    /// The kernel's `is_new_conn()`: a TCP segment with SYN, an SCTP packet
    /// starting with INIT. Never for UDP.
    pub fn is_new_conn(self) -> bool {
        match self {
            Pkt::Tcp(f) => f.syn,
            Pkt::Udp => false,
            Pkt::Sctp { first_chunk, .. } => first_chunk == SCTP_CHUNK_INIT,
        }
    }
}

/// A connection's protocol state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnState {
    Tcp(TcpState),
    /// UDP has a single state, IP_VS_UDP_S_NORMAL, printed "UDP".
    Udp,
    Sctp(SctpState),
    /// Persistence templates (IP_VS_CTPL_S_NONE), printed "NONE".
    Template,
}

impl ConnState {
    /// Name in `ipvsadm -Lc` (`ip_vs_state_name()`).
    pub fn name(self) -> &'static str {
        match self {
            ConnState::Tcp(s) => s.name(),
            ConnState::Udp => "UDP",
            ConnState::Sctp(s) => s.name(),
            ConnState::Template => "NONE",
        }
    }

    fn initial(proto: Protocol) -> ConnState {
        match proto {
            Protocol::Tcp => ConnState::Tcp(TcpState::None),
            Protocol::Udp => ConnState::Udp,
            Protocol::Sctp => ConnState::Sctp(SctpState::None),
        }
    }
}

/// The connection flags this model keeps (a subset of IP_VS_CONN_F_*).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConnFlags(pub u8);

impl ConnFlags {
    /// IP_VS_CONN_F_INACTIVE: counted in InActConn rather than ActiveConn.
    pub const INACTIVE: u8 = 0x01;
    /// IP_VS_CONN_F_TEMPLATE: a persistence template.
    pub const TEMPLATE: u8 = 0x02;
    /// IP_VS_CONN_F_ONE_PACKET: `-o` UDP scheduling.
    pub const ONE_PACKET: u8 = 0x04;
    /// IP_VS_CONN_F_NOOUTPUT: no server->client packet seen yet on a non-NAT
    /// connection; client packets use the INPUT-ONLY TCP table.
    pub const NO_OUTPUT: u8 = 0x08;

    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
    pub fn set(&mut self, bit: u8) {
        self.0 |= bit;
    }
    pub fn clear(&mut self, bit: u8) {
        self.0 &= !bit;
    }
}

/// Changes to a real server's ActiveConn / InActConn / PersistConn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CountChange {
    /// The server concerned; `None` for connections without one (bypass).
    pub dest: Option<DestId>,
    pub active: i32,
    pub inactive: i32,
    pub persist: i32,
}

impl CountChange {
    pub fn is_zero(&self) -> bool {
        self.active == 0 && self.inactive == 0 && self.persist == 0
    }

    /// Adds the deltas to `d` (the caller picks `d` by `self.dest`). Does not
    /// touch the overload flag: call `d.update_overload(..)` after bind/unbind.
    pub fn apply(&self, d: &mut Dest) {
        fn add(v: &mut u32, delta: i32) {
            let n = *v as i64 + delta as i64;
            debug_assert!(n >= 0, "connection count would go negative");
            *v = n.max(0) as u32;
        }
        add(&mut d.active_conns, self.active);
        add(&mut d.inact_conns, self.inactive);
        add(&mut d.persist_conns, self.persist);
    }
}

impl Neg for CountChange {
    type Output = CountChange;
    fn neg(self) -> CountChange {
        CountChange {
            dest: self.dest,
            active: -self.active,
            inactive: -self.inactive,
            persist: -self.persist,
        }
    }
}

impl Add for CountChange {
    type Output = CountChange;
    /// Sum of two changes; `dest` is taken from whichever side has one.
    fn add(self, o: CountChange) -> CountChange {
        CountChange {
            dest: self.dest.or(o.dest),
            active: self.active + o.active,
            inactive: self.inactive + o.inactive,
            persist: self.persist + o.persist,
        }
    }
}

/// A connection entry or a persistence template (`struct ip_vs_conn`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conn {
    /// Client address and port (templates: the masked client network, port 0).
    pub caddr: IpAddr,
    /// Virtual address (fwmark templates: the encoded mark, see
    /// [`crate::persist::fwmark_addr`]).
    pub vaddr: IpAddr,
    /// Real server address.
    pub daddr: IpAddr,
    pub cport: u16,
    pub vport: u16,
    /// Real server port; 0xffff marks a template invalidated by
    /// [`ConnTable::invalidate_template`], as the kernel does.
    pub dport: u16,
    /// IP protocol number; 0 (IPPROTO_IP) for fwmark templates.
    pub proto: u8,
    pub state: ConnState,
    pub flags: ConnFlags,
    pub fwd: FwdMethod,
    pub dest: Option<DestId>,
    /// Current timeout in seconds (`cp->timeout`): set by each state change;
    /// templates hold the persistence timeout, or 60 after a delayed expiry.
    pub timeout: u32,
    /// When the timer fires (`cp->timer.expires`); maintained by [`ConnTable`].
    pub expires: Time,
    /// The template controlling this connection (`cp->control`).
    pub control: Option<ConnId>,
    /// How many live connections this entry controls (`cp->n_control`).
    pub n_control: u32,
}

/// Initial `cp->timeout` given by `ip_vs_conn_new()` (3 s), used only if a
/// connection is inserted and never sees a packet.
pub const INITIAL_TIMEOUT_SECS: u32 = 3;

/// The delay `ip_vs_conn_expire()` gives an entry that still controls others.
pub const CONTROL_RETRY_SECS: u32 = 60;

impl Conn {
    /// A new connection for a client packet `flow` scheduled to the real
    /// server `dest` (`daddr:dport`, forwarding `fwd`). `one_packet` applies
    /// to UDP only (the kernel strips it for other protocols).
    pub fn new(
        flow: &Flow,
        daddr: IpAddr,
        dport: u16,
        dest: Option<DestId>,
        fwd: FwdMethod,
        one_packet: bool,
    ) -> Conn {
        let mut flags = ConnFlags(ConnFlags::INACTIVE);
        if fwd != FwdMethod::Masq {
            flags.set(ConnFlags::NO_OUTPUT);
        }
        if one_packet && flow.protocol == Protocol::Udp {
            flags.set(ConnFlags::ONE_PACKET);
        }
        Conn {
            caddr: flow.src,
            vaddr: flow.dst,
            daddr,
            cport: flow.sport,
            vport: flow.dport,
            dport,
            proto: flow.protocol.number(),
            state: ConnState::initial(flow.protocol),
            flags,
            fwd,
            dest,
            timeout: INITIAL_TIMEOUT_SECS,
            expires: Time::ZERO,
            control: None,
            n_control: 0,
        }
    }

    /// A persistence template for `key`, bound to `dest` at `daddr:dport`
    /// (see [`crate::persist::template_dport`]), living `timeout` seconds (the
    /// service's persistence timeout).
    pub fn template(
        key: &TemplateKey,
        daddr: IpAddr,
        dport: u16,
        dest: DestId,
        fwd: FwdMethod,
        timeout: u32,
    ) -> Conn {
        let mut flags = ConnFlags(ConnFlags::INACTIVE | ConnFlags::TEMPLATE);
        if fwd != FwdMethod::Masq {
            flags.set(ConnFlags::NO_OUTPUT);
        }
        Conn {
            caddr: key.caddr,
            vaddr: key.vaddr,
            daddr,
            cport: 0,
            vport: key.vport,
            dport,
            proto: key.proto,
            state: ConnState::Template,
            flags,
            fwd,
            dest: Some(dest),
            timeout,
            expires: Time::ZERO,
            control: None,
            n_control: 0,
        }
    }

    pub fn protocol(&self) -> Option<Protocol> {
        Protocol::from_number(self.proto)
    }

    pub fn is_template(&self) -> bool {
        self.flags.has(ConnFlags::TEMPLATE)
    }

    pub fn is_inactive(&self) -> bool {
        self.flags.has(ConnFlags::INACTIVE)
    }

    /// The template key this entry is filed under (templates only).
    pub fn template_key(&self) -> TemplateKey {
        TemplateKey {
            proto: self.proto,
            caddr: self.caddr,
            vaddr: self.vaddr,
            vport: self.vport,
        }
    }

    /// Counts added by `ip_vs_bind_dest()`: PersistConn for a template,
    /// else ActiveConn or InActConn by the INACTIVE flag (new connections
    /// always start inactive).
    pub fn bind_change(&self) -> CountChange {
        let mut c = CountChange {
            dest: self.dest,
            ..CountChange::default()
        };
        if self.dest.is_none() {
            return c;
        }
        if self.is_template() {
            c.persist = 1;
        } else if self.is_inactive() {
            c.inactive = 1;
        } else {
            c.active = 1;
        }
        c
    }

    /// Counts removed by `ip_vs_unbind_dest()` when the entry is freed.
    pub fn unbind_change(&self) -> CountChange {
        -self.bind_change()
    }

    /// The protocol's state transition for one packet (`ip_vs_set_state()`):
    /// updates state, flags and `timeout`, returns the count change. The
    /// caller (normally [`ConnTable::packet`]) restarts the timer.
    pub fn transition(&mut self, dir: Dir, pkt: Pkt, t: &Timeouts) -> CountChange {
        let mut change = CountChange {
            dest: self.dest,
            ..CountChange::default()
        };
        if self.is_template() {
            return change;
        }
        match (self.state, pkt) {
            (ConnState::Tcp(cur), Pkt::Tcp(flags)) => {
                let table = self.pick_table(dir);
                let new = tcp::next_state(table, flags, cur);
                if new != cur {
                    self.set_activity(new.is_active(), &mut change);
                }
                self.state = ConnState::Tcp(new);
                self.timeout = t.tcp(new);
            }
            (ConnState::Udp, Pkt::Udp) => {
                // No state change; UDP connections stay inactive.
                self.timeout = t.udp;
            }
            (
                ConnState::Sctp(cur),
                Pkt::Sctp {
                    first_chunk,
                    abort_follows,
                },
            ) => {
                // INPUT-ONLY and NO_OUTPUT as for TCP.
                let table = self.pick_table(dir);
                let ev = sctp::SctpEvent::of(first_chunk, abort_follows);
                let new = sctp::next_state(table, ev, cur);
                if new != cur {
                    self.set_activity(new.is_active(), &mut change);
                }
                self.state = ConnState::Sctp(new);
                self.timeout = t.sctp(new);
            }
            _ => debug_assert!(false, "packet protocol does not match connection"),
        }
        change
    }

    /// NO_OUTPUT handling of set_tcp_state(): an output packet clears the
    /// flag for good; while it is set, input packets use INPUT-ONLY.
    fn pick_table(&mut self, dir: Dir) -> tcp::TcpTable {
        match dir {
            Dir::Output => {
                self.flags.clear(ConnFlags::NO_OUTPUT);
                tcp::TcpTable::Output
            }
            Dir::Input if self.flags.has(ConnFlags::NO_OUTPUT) => tcp::TcpTable::InputOnly,
            Dir::Input => tcp::TcpTable::Input,
        }
    }

    fn set_activity(&mut self, active: bool, change: &mut CountChange) {
        if self.dest.is_none() {
            return;
        }
        if !self.is_inactive() && !active {
            change.active -= 1;
            change.inactive += 1;
            self.flags.set(ConnFlags::INACTIVE);
        } else if self.is_inactive() && active {
            change.active += 1;
            change.inactive -= 1;
            self.flags.clear(ConnFlags::INACTIVE);
        }
    }
}

/// The kernel's `is_new_conn_expected()`: the entry is finished, so a new
/// connection attempt on the same tuple may replace it. Never for an entry
/// under a template (persistence, FTP data); TCP: TIME_WAIT or CLOSE, or
/// (conn_reuse_mode bit 1) FIN_WAIT of a connection that never showed output
/// (DR/TUN); SCTP: CLOSED; UDP: never.
pub fn is_new_conn_expected(conn: &Conn, conn_reuse_mode: u32) -> bool {
    if conn.control.is_some() {
        return false;
    }
    match conn.state {
        ConnState::Tcp(s) => {
            s == TcpState::TimeWait
                || s == TcpState::Close
                || (conn_reuse_mode & 2 != 0
                    && s == TcpState::FinWait
                    && conn.flags.has(ConnFlags::NO_OUTPUT))
        }
        ConnState::Sctp(s) => s == SctpState::Closed,
        _ => false,
    }
}

/// What to do when an input packet finds an existing connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reuse {
    /// Use the existing connection.
    Keep,
    /// Schedule the packet as a new connection. If `expire_old`, expire the
    /// old entry now (`ConnTable::expire_now`, or `remove`); otherwise it
    /// still controls other entries and is left to its timer.
    Reschedule { expire_old: bool },
}

/// The port-reuse check at the top of `ip_vs_in_hook()` (kernel 5.16+),
/// without conntrack (so the "old conntrack" drop case never arises):
/// for a new-connection packet (SYN, SCTP INIT) hitting an entry:
/// * with `expire_nodest_conn`, if the entry's server has weight 0 →
///   reschedule (also for entries under a template);
/// * else with `conn_reuse_mode != 0` and [`is_new_conn_expected`] (which
///   excludes entries under a template) → reschedule.
///
/// `dest_weight` is the current weight of the entry's real server, `None`
/// if it has none.
pub fn reuse_decision(conn: &Conn, pkt: Pkt, dest_weight: Option<u32>, sysctls: &Sysctls) -> Reuse {
    if !pkt.is_new_conn() {
        return Reuse::Keep;
    }
    let resched = (sysctls.expire_nodest_conn && dest_weight == Some(0))
        || (sysctls.conn_reuse_mode != 0 && is_new_conn_expected(conn, sysctls.conn_reuse_mode));
    if resched {
        Reuse::Reschedule {
            expire_old: conn.n_control == 0,
        }
    } else {
        Reuse::Keep
    }
}

#[cfg(test)]
mod tests;
