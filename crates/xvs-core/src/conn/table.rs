//! The connection table: entries in a slab, three hash indexes (client ->
//! VIP lookups, real server -> client lookups for NAT replies, persistence
//! templates), and a timer queue.
//!
//! Timers: a binary min-heap of `(deadline, slot, generation)` with lazy
//! deletion. A slot remembers the deadline of its earliest queued entry
//! (`timer_at`). Restarting a timer to a *later* time (the common case: every
//! packet) pushes nothing; when the old entry surfaces, `expire` sees the
//! connection's real `expires` is later and re-queues it once. Restarting to
//! an *earlier* time (e.g. ESTABLISHED 900 s -> CLOSE 10 s) pushes a new
//! entry. So each packet costs O(1) except for shortening state changes
//! (O(log n)), each connection has at most a few queued entries, and
//! `expire` is O(log n) per entry popped. A hierarchical timer wheel would
//! give O(1) too but with coarser ordering; the heap expires in exact
//! (deadline, slot) order, which keeps runs repeatable.
//!
//! Memory: a [`Conn`] is about 100 bytes, plus ~50 bytes per index entry.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

use super::{Conn, CountChange, Dir, Pkt, Timeouts, CONTROL_RETRY_SECS};
use crate::model::{DestId, Flow, Protocol};
use crate::persist::TemplateKey;
use crate::time::Time;

/// Handle to an entry; stale handles (the entry was freed) are detected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    index: u32,
    gen: u32,
}

/// An entry freed by [`ConnTable::expire`] or [`ConnTable::remove`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expired {
    pub id: ConnId,
    pub conn: Conn,
    /// The unbind counts to apply to `conn.dest` (then `update_overload(false)`).
    pub counts: CountChange,
}

/// Lookup key of `ip_vs_conn_in_get()`: a client packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct InKey {
    proto: u8,
    caddr: IpAddr,
    cport: u16,
    vaddr: IpAddr,
    vport: u16,
}

/// Lookup key of `ip_vs_conn_out_get()`: a real server's reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct OutKey {
    proto: u8,
    daddr: IpAddr,
    dport: u16,
    caddr: IpAddr,
    cport: u16,
}

const NO_TIMER: u64 = u64::MAX;

struct Slot {
    gen: u32,
    timer_at: u64,
    conn: Option<Conn>,
}

/// A small, fast, deterministic hasher (FxHash) for the indexes.
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.hash = (self.hash.rotate_left(5) ^ w).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().unwrap()));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(buf));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }
    fn write_u16(&mut self, i: u16) {
        self.add(i as u64);
    }
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.hash
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// All connection entries and templates.
#[derive(Default)]
pub struct ConnTable {
    slots: Vec<Slot>,
    free: Vec<u32>,
    by_in: FxMap<InKey, ConnId>,
    by_out: FxMap<OutKey, ConnId>,
    by_tpl: FxMap<TemplateKey, ConnId>,
    timers: BinaryHeap<Reverse<(u64, u32, u32)>>,
    live: usize,
    templates: usize,
}

fn in_key(c: &Conn) -> InKey {
    InKey {
        proto: c.proto,
        caddr: c.caddr,
        cport: c.cport,
        vaddr: c.vaddr,
        vport: c.vport,
    }
}

fn out_key(c: &Conn) -> OutKey {
    OutKey {
        proto: c.proto,
        daddr: c.daddr,
        dport: c.dport,
        caddr: c.caddr,
        cport: c.cport,
    }
}

fn secs(s: u32) -> u64 {
    s as u64 * 1000
}

impl ConnTable {
    pub fn new() -> ConnTable {
        ConnTable::default()
    }

    /// Live entries, templates included (the kernel's conn_count).
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Live templates.
    pub fn templates(&self) -> usize {
        self.templates
    }

    pub fn get(&self, id: ConnId) -> Option<&Conn> {
        let s = self.slots.get(id.index as usize)?;
        if s.gen != id.gen {
            return None;
        }
        s.conn.as_ref()
    }

    fn get_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        let s = self.slots.get_mut(id.index as usize)?;
        if s.gen != id.gen {
            return None;
        }
        s.conn.as_mut()
    }

    /// All live entries, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (ConnId, &Conn)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.conn.as_ref().map(|c| {
                (
                    ConnId {
                        index: i as u32,
                        gen: s.gen,
                    },
                    c,
                )
            })
        })
    }

    /// Live entries bound to `dest` (for flushing a removed server).
    pub fn ids_for_dest(&self, dest: DestId) -> Vec<ConnId> {
        self.iter()
            .filter(|(_, c)| c.dest == Some(dest))
            .map(|(id, _)| id)
            .collect()
    }

    /// Adds an entry and starts its timer at `now + conn.timeout`. If
    /// `conn.control` names a live template, that template's `n_control`
    /// grows by one (`ip_vs_control_add()`); a stale control link is dropped.
    /// Returns the bind counts (apply them, then `update_overload(true)`).
    ///
    /// Indexing: templates by [`Conn::template_key`]; other entries by the
    /// client->VIP tuple and the server->client tuple. As in the kernel, a new
    /// entry shadows an older one with the same tuple (the kernel hashes at the
    /// chain head); the older one stays until it expires. One-packet entries
    /// are not indexed.
    pub fn insert(&mut self, mut conn: Conn, now: Time) -> (ConnId, CountChange) {
        if let Some(ct) = conn.control {
            match self.get_mut(ct) {
                Some(t) => t.n_control += 1,
                None => conn.control = None,
            }
        }
        let counts = conn.bind_change();
        conn.expires = Time(now.0 + secs(conn.timeout));
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    gen: 0,
                    timer_at: NO_TIMER,
                    conn: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let gen = self.slots[index as usize].gen;
        let id = ConnId { index, gen };
        if conn.is_template() {
            self.by_tpl.insert(conn.template_key(), id);
            self.templates += 1;
        } else if !conn.flags.has(super::ConnFlags::ONE_PACKET) {
            self.by_in.insert(in_key(&conn), id);
            self.by_out.insert(out_key(&conn), id);
        }
        let deadline = conn.expires.0;
        let slot = &mut self.slots[index as usize];
        slot.conn = Some(conn);
        slot.timer_at = deadline;
        self.timers.push(Reverse((deadline, index, gen)));
        self.live += 1;
        (id, counts)
    }

    /// `ip_vs_conn_in_get()`: the entry for a client packet
    /// `caddr:cport -> vaddr:vport`.
    pub fn find_in(
        &self,
        proto: Protocol,
        caddr: IpAddr,
        cport: u16,
        vaddr: IpAddr,
        vport: u16,
    ) -> Option<ConnId> {
        let k = InKey {
            proto: proto.number(),
            caddr,
            cport,
            vaddr,
            vport,
        };
        self.by_in.get(&k).copied()
    }

    /// [`ConnTable::find_in`] for a client packet's flow (src = client).
    pub fn find_in_flow(&self, f: &Flow) -> Option<ConnId> {
        self.find_in(f.protocol, f.src, f.sport, f.dst, f.dport)
    }

    /// `ip_vs_conn_out_get()`: the entry for a reply packet
    /// `daddr:dport (real server) -> caddr:cport (client)`.
    pub fn find_out(
        &self,
        proto: Protocol,
        daddr: IpAddr,
        dport: u16,
        caddr: IpAddr,
        cport: u16,
    ) -> Option<ConnId> {
        let k = OutKey {
            proto: proto.number(),
            daddr,
            dport,
            caddr,
            cport,
        };
        self.by_out.get(&k).copied()
    }

    /// [`ConnTable::find_out`] for a reply packet's flow (src = real server).
    pub fn find_out_flow(&self, f: &Flow) -> Option<ConnId> {
        self.find_out(f.protocol, f.src, f.sport, f.dst, f.dport)
    }

    /// `ip_vs_ct_in_get()`: the current template for `key`.
    pub fn find_template(&self, key: &TemplateKey) -> Option<ConnId> {
        self.by_tpl.get(key).copied()
    }

    /// One packet on a connection: the protocol state transition, then the
    /// timer restarts at `now + new timeout` (`ip_vs_set_state()` followed by
    /// `ip_vs_conn_put()`). Returns the counts delta (zero if `id` is stale).
    pub fn packet(
        &mut self,
        id: ConnId,
        dir: Dir,
        pkt: Pkt,
        now: Time,
        timeouts: &Timeouts,
    ) -> CountChange {
        let Some(c) = self.get_mut(id) else {
            return CountChange::default();
        };
        let change = c.transition(dir, pkt, timeouts);
        self.touch(id, now);
        change
    }

    /// Restarts the timer at `now + conn.timeout` without a state change
    /// (`ip_vs_conn_put()`): what the kernel does to a template each time it
    /// schedules a connection through it.
    pub fn touch(&mut self, id: ConnId, now: Time) {
        let Some(c) = self.get_mut(id) else {
            return;
        };
        c.expires = Time(now.0 + secs(c.timeout));
        let deadline = c.expires.0;
        self.arm(id, deadline);
    }

    /// `ip_vs_conn_expire_now()`: make the timer fire at `now` (if it would
    /// fire later). The entry is freed by the next [`ConnTable::expire`] call
    /// with a time >= `now`, unless it still controls others.
    pub fn expire_now(&mut self, id: ConnId, now: Time) {
        let Some(c) = self.get_mut(id) else {
            return;
        };
        if c.expires > now {
            c.expires = now;
            self.arm(id, now.0);
        }
    }

    /// Frees an entry at once if it controls nothing; returns `None` (and
    /// leaves it) if the handle is stale or the entry still controls others.
    pub fn remove(&mut self, id: ConnId) -> Option<Expired> {
        let c = self.get(id)?;
        if c.n_control > 0 {
            return None;
        }
        Some(self.unlink(id))
    }

    /// `ip_vs_check_template()` failure: the template stops being found by
    /// [`ConnTable::find_template`] (so a new one can be created) and its
    /// dport becomes 0xffff; it keeps its timer (not restarted), its
    /// PersistConn count and its controlled connections until it expires.
    pub fn invalidate_template(&mut self, id: ConnId) {
        let Some(c) = self.get_mut(id) else {
            return;
        };
        c.dport = 0xffff;
        let key = c.template_key();
        if self.by_tpl.get(&key) == Some(&id) {
            self.by_tpl.remove(&key);
        }
    }

    /// The earliest queued timer (may be a stale entry: then `expire` at that
    /// time frees nothing). Useful to know when to call [`ConnTable::expire`].
    pub fn next_deadline(&self) -> Option<Time> {
        self.timers.peek().map(|Reverse((t, _, _))| Time(*t))
    }

    /// Runs every timer due at or before `now`, in (deadline, slot) order
    /// (`ip_vs_conn_expire()`): an entry that still controls others
    /// (`n_control > 0`) is not freed; its timeout becomes 60 s and its timer
    /// restarts (the kernel keeps that 60 s as the template's timeout from
    /// then on). A freed entry leaves the indexes and drops its template's
    /// `n_control`. Returns the freed entries with their unbind counts.
    pub fn expire(&mut self, now: Time) -> Vec<Expired> {
        let mut out = Vec::new();
        while let Some(&Reverse((t, index, gen))) = self.timers.peek() {
            if t > now.0 {
                break;
            }
            self.timers.pop();
            let slot = &mut self.slots[index as usize];
            if slot.gen != gen || slot.timer_at != t || slot.conn.is_none() {
                continue; // stale queue entry
            }
            slot.timer_at = NO_TIMER;
            let id = ConnId { index, gen };
            let c = slot.conn.as_mut().unwrap();
            if c.expires.0 > t {
                // Restarted since this entry was queued: re-queue at the real
                // deadline (which may still be <= now; it then pops in order).
                let d = c.expires.0;
                self.arm(id, d);
            } else if c.n_control > 0 {
                // Counted from when the timer was due, as a kernel timer
                // firing on time would (independent of how late we are called).
                c.timeout = CONTROL_RETRY_SECS;
                c.expires = Time(t + secs(CONTROL_RETRY_SECS));
                let d = c.expires.0;
                self.arm(id, d);
            } else {
                out.push(self.unlink(id));
            }
        }
        out
    }

    /// Queues a timer entry at `deadline` unless one at or before it exists.
    fn arm(&mut self, id: ConnId, deadline: u64) {
        let slot = &mut self.slots[id.index as usize];
        if deadline < slot.timer_at {
            slot.timer_at = deadline;
            self.timers.push(Reverse((deadline, id.index, id.gen)));
        }
    }

    fn unlink(&mut self, id: ConnId) -> Expired {
        let slot = &mut self.slots[id.index as usize];
        let conn = slot.conn.take().expect("live entry");
        slot.gen = slot.gen.wrapping_add(1);
        slot.timer_at = NO_TIMER;
        self.free.push(id.index);
        self.live -= 1;
        if conn.is_template() {
            self.templates -= 1;
            let k = conn.template_key();
            if self.by_tpl.get(&k) == Some(&id) {
                self.by_tpl.remove(&k);
            }
        } else {
            let k = in_key(&conn);
            if self.by_in.get(&k) == Some(&id) {
                self.by_in.remove(&k);
            }
            let k = out_key(&conn);
            if self.by_out.get(&k) == Some(&id) {
                self.by_out.remove(&k);
            }
        }
        if let Some(ct) = conn.control {
            if let Some(t) = self.get_mut(ct) {
                t.n_control = t.n_control.saturating_sub(1);
            }
        }
        let counts = conn.unbind_change();
        Expired { id, conn, counts }
    }
}
