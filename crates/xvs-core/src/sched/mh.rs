//! Maglev hashing (net/netfilter/ipvs/ip_vs_mh.c).
//!
//! A 4093-slot lookup table (`CONFIG_IP_VS_MH_TAB_INDEX` = 12 selects the
//! prime 4093) is filled Maglev-style: each server walks its own permutation
//! of the slots (start `offset`, stride `skip`, both from hsiphash of its
//! address and port) and the servers take turns claiming their next free slot.
//! Servers take `turns` slots per round, derived from `last_weight` (so a
//! quiescent weight-0 server keeps its slots): divided by the gcd of all
//! non-zero last weights, then shifted right so the largest fits in 6 bits.
//! The table is rebuilt on every add, delete and edit.
//!
//! A flow is looked up by `hsiphash(fold(saddr) + port) % 4093`; with the
//! `mh-fallback` flag (SCHED1) an unusable server (weight 0 or overloaded)
//! makes it probe further slots, with `mh-port` (SCHED2) the source port is
//! mixed into the hash.

use std::net::IpAddr;

use super::hash::{fold_addr, hsiphash_u32, HsipKey};
use super::{SchedCtx, Scheduler, SchedulerKind, SvcView};
use crate::model::{Dest, DestId, Family, Flow};

/// The table size: `primes[CONFIG_IP_VS_MH_TAB_INDEX - 8]` with the default index 12.
pub const MH_TAB_SIZE: usize = 4093;
/// `IP_VS_MH_TAB_BITS` = `CONFIG_IP_VS_MH_TAB_INDEX / 2`: the number of bits
/// the largest reduced weight may keep.
pub const MH_TAB_BITS: u32 = 6;

/// `generate_hash_secret()`: the fixed keys (not random) for the lookup /
/// offset hash and the skip hash. On 64-bit each key word is an
/// `unsigned long` holding the constant, zero-extended.
pub const MH_HASH1: HsipKey = HsipKey([2_654_435_761, 2_654_435_761]);
pub const MH_HASH2: HsipKey = HsipKey([2_654_446_892, 2_654_446_892]);

/// The kernel's `ip_vs_mh_hashkey()`: hsiphash of the 32-bit host value
/// `offset + port + fold(addr)` (wrapping), not yet reduced modulo the size.
pub fn mh_hashkey(af: Family, addr: &IpAddr, port: u16, key: &HsipKey, offset: u32) -> u32 {
    let v = offset
        .wrapping_add(port as u32)
        .wrapping_add(fold_addr(af, addr));
    hsiphash_u32(v, key)
}

/// Where a server's permutation starts and its stride, as
/// `ip_vs_mh_permutate()` computes them from the server's address and port.
pub fn mh_offset_skip(af: Family, addr: &IpAddr, port: u16) -> (usize, usize) {
    let size = MH_TAB_SIZE as u32;
    let offset = mh_hashkey(af, addr, port, &MH_HASH1, 0) % size;
    let skip = mh_hashkey(af, addr, port, &MH_HASH2, 0) % (size - 1) + 1;
    (offset as usize, skip as usize)
}

/// Index of the highest set bit counting from 1 (the kernel's `fls()`), 0 for 0.
fn fls(x: u32) -> u32 {
    32 - x.leading_zeros()
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[derive(Clone, Debug)]
pub struct Mh {
    lookup: Vec<Option<DestId>>,
    gcd: u32,
    rshift: u32,
}

impl Default for Mh {
    fn default() -> Self {
        Mh {
            lookup: vec![None; MH_TAB_SIZE],
            gcd: 0,
            rshift: 0,
        }
    }
}

impl Mh {
    /// The 4093 lookup slots, as the datapath must load them.
    pub fn table(&self) -> &[Option<DestId>] {
        &self.lookup
    }

    /// The gcd of the non-zero last weights (0 when there are none).
    pub fn gcd(&self) -> u32 {
        self.gcd
    }

    /// The right shift applied to `last_weight / gcd`.
    pub fn rshift(&self) -> u32 {
        self.rshift
    }

    /// `ip_vs_mh_dest_changed()` / the tail of `ip_vs_mh_init_svc()`.
    fn rebuild(&mut self, svc: &SvcView) {
        // ip_vs_mh_gcd_weight()
        self.gcd = svc
            .dests
            .iter()
            .map(|d| d.last_weight)
            .filter(|&w| w > 0)
            .fold(0, |g, w| if g > 0 { gcd(w, g) } else { w });
        // ip_vs_mh_shift_weight()
        self.rshift = if self.gcd < 1 {
            0
        } else {
            let max = svc.dests.iter().map(|d| d.last_weight).max().unwrap_or(0);
            fls(max / self.gcd).saturating_sub(MH_TAB_BITS)
        };
        // ip_vs_mh_reassign(): the kernel refuses more servers than slots and
        // leaves the old table in place.
        if svc.dests.len() > MH_TAB_SIZE {
            return;
        }
        self.populate(svc);
    }

    /// `ip_vs_mh_permutate()` + `ip_vs_mh_populate()`.
    fn populate(&mut self, svc: &SvcView) {
        if self.gcd < 1 {
            self.lookup.iter_mut().for_each(|s| *s = None);
            return;
        }
        struct Setup {
            perm: usize,
            skip: usize,
            turns: u32,
        }
        let mut setup: Vec<Setup> = svc
            .dests
            .iter()
            .map(|d| {
                let (offset, skip) = mh_offset_skip(svc.family, &d.cfg.addr, d.cfg.port);
                let lw = d.last_weight;
                let reduced = (lw / self.gcd) >> self.rshift;
                let turns = if reduced != 0 {
                    reduced
                } else {
                    (lw != 0) as u32
                };
                Setup {
                    perm: offset,
                    skip,
                    turns,
                }
            })
            .collect();

        let mut taken = vec![false; MH_TAB_SIZE];
        let mut filled = 0usize;
        // Rounds over the list; within a round each server claims `turns`
        // slots in a row before the next server's go. gcd >= 1 guarantees
        // some server has turns >= 1, so this terminates.
        'fill: loop {
            for (i, ds) in setup.iter_mut().enumerate() {
                for _ in 0..ds.turns {
                    let mut c = ds.perm;
                    while taken[c] {
                        ds.perm += ds.skip;
                        if ds.perm >= MH_TAB_SIZE {
                            ds.perm -= MH_TAB_SIZE;
                        }
                        c = ds.perm;
                    }
                    taken[c] = true;
                    self.lookup[c] = Some(svc.dests[i].id);
                    filled += 1;
                    if filled == MH_TAB_SIZE {
                        break 'fill;
                    }
                }
            }
        }
    }

    /// The server in `slot` if usable (weight above zero and not flagged
    /// overloaded: the kernel's `is_unavailable()`), `Err(true)` if the slot
    /// holds an unusable server, `Err(false)` if it is empty.
    fn usable(&self, svc: &SvcView, slot: usize) -> Result<usize, bool> {
        let id = self.lookup[slot].ok_or(false)?;
        match svc.index_of(id) {
            Some(i) if svc.dests[i].weight() > 0 && !svc.dests[i].overloaded => Ok(i),
            _ => Err(true),
        }
    }
}

impl Scheduler for Mh {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Mh
    }

    fn init_service(&mut self, svc: &SvcView) {
        self.lookup.iter_mut().for_each(|s| *s = None);
        self.rebuild(svc);
    }

    fn add_dest(&mut self, svc: &SvcView, _dest: DestId) {
        self.rebuild(svc);
    }

    fn del_dest(&mut self, svc: &SvcView, _removed: &Dest, _former_index: usize) {
        self.rebuild(svc);
    }

    fn upd_dest(&mut self, svc: &SvcView, _dest: DestId) {
        self.rebuild(svc);
    }

    fn schedule(&mut self, svc: &SvcView, flow: &Flow, _ctx: &mut SchedCtx) -> Option<usize> {
        // TCP, UDP and SCTP all carry the source port first.
        let port = if svc.flags.port() { flow.sport } else { 0 };
        let addr = &flow.src;
        let size = MH_TAB_SIZE as u32;
        let ihash = mh_hashkey(svc.family, addr, port, &MH_HASH1, 0) % size;
        match self.usable(svc, ihash as usize) {
            Ok(i) => return Some(i),
            Err(false) => return None,
            Err(true) if !svc.flags.fallback() => return None,
            Err(true) => {}
        }
        // ip_vs_mh_get_fallback(): rehash with offsets ihash, ihash+1, ...
        for k in 0..size {
            let roffset = (k + ihash) % size;
            let slot = mh_hashkey(svc.family, addr, port, &MH_HASH1, roffset) % size;
            match self.usable(svc, slot as usize) {
                Ok(i) => return Some(i),
                Err(false) => return None,
                Err(true) => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SchedFlags;
    use crate::rng::SplitMix64;
    use crate::sched::testutil::{dest, dests, flow, view};
    use crate::time::Time;

    fn pick(s: &mut Mh, svc: &SvcView, f: &Flow) -> Option<usize> {
        let mut rng = SplitMix64::new(1);
        let mut ctx = SchedCtx {
            now: Time::ZERO,
            rng: &mut rng,
        };
        s.schedule(svc, f, &mut ctx)
    }

    fn count(s: &Mh, id: u32) -> usize {
        s.table().iter().filter(|x| **x == Some(DestId(id))).count()
    }

    #[test]
    fn keys_are_the_kernel_constants() {
        assert_eq!(MH_HASH1.0, [0x9E37_79B1, 0x9E37_79B1]);
        assert_eq!(MH_HASH2.0, [0x9E37_A52C, 0x9E37_A52C]);
    }

    #[test]
    fn golden_offsets_skips_and_lookup_slots() {
        // Values from an independent SipHash-1-3 implementation (checked
        // against the kernel KUnit vector hsiphash(00 01 02 03) = 0x88d38328),
        // keys 0x9E3779B1 / 0x9E37A52C in both 64-bit key words.
        // Server 198.18.1.1:80: v = 80 + 0xC6120101,
        //   hash1 = 0x25fb90ae -> offset 303, hash2 = 0xe40affd4 -> skip 217.
        let d = dests(&[1, 1, 1]);
        let addr = |i: usize| d[i].cfg.addr;
        assert_eq!(
            mh_hashkey(Family::Inet, &addr(0), 80, &MH_HASH1, 0),
            0x25fb_90ae
        );
        assert_eq!(
            mh_hashkey(Family::Inet, &addr(0), 80, &MH_HASH2, 0),
            0xe40a_ffd4
        );
        assert_eq!(mh_offset_skip(Family::Inet, &addr(0), 80), (303, 217));
        assert_eq!(mh_offset_skip(Family::Inet, &addr(1), 80), (1852, 1910));
        assert_eq!(mh_offset_skip(Family::Inet, &addr(2), 80), (2630, 2095));
        let mut s = Mh::default();
        s.init_service(&view(&d));
        // Round 1 claims each server's offset; round 2 server 1 steps to 303 + 217.
        assert_eq!(s.table()[303], Some(DestId(1)));
        assert_eq!(s.table()[1852], Some(DestId(2)));
        assert_eq!(s.table()[2630], Some(DestId(3)));
        assert_eq!(s.table()[520], Some(DestId(1)));
        // Client 198.19.0.1 (port 0): hsiphash(0xC6130001) = 0xee7423e9 -> slot 531.
        let c1 = flow(1, 0).src;
        assert_eq!(mh_hashkey(Family::Inet, &c1, 0, &MH_HASH1, 0), 0xee74_23e9);
        let want = view(&d).index_of(s.table()[531].unwrap());
        assert_eq!(pick(&mut s, &view(&d), &flow(1, 5555)), want);
    }

    #[test]
    fn permutation_of_a_single_server_fills_the_table_in_its_order() {
        let d = dests(&[1]);
        let svc = view(&d);
        let mut s = Mh::default();
        s.init_service(&svc);
        assert!(s.table().iter().all(|x| *x == Some(DestId(1))));
        let (offset, skip) = mh_offset_skip(Family::Inet, &d[0].cfg.addr, 80);
        assert!(offset < MH_TAB_SIZE && (1..MH_TAB_SIZE).contains(&skip));
        // Recompute from the raw hash: v = 0 + 80 + 0xC6120101 (198.18.1.1).
        let v = 80u32 + 0xC612_0101;
        assert_eq!(
            offset as u32,
            super::super::hash::hsiphash_u32(v, &MH_HASH1) % 4093
        );
        assert_eq!(
            skip as u32,
            super::super::hash::hsiphash_u32(v, &MH_HASH2) % 4092 + 1
        );
    }

    #[test]
    fn small_table_follows_the_maglev_fill() {
        // Two servers: replay the fill by hand from their (offset, skip) and
        // check every slot.
        let d = dests(&[1, 1]);
        let svc = view(&d);
        let mut s = Mh::default();
        s.init_service(&svc);
        let perms: Vec<(usize, usize)> = d
            .iter()
            .map(|x| mh_offset_skip(Family::Inet, &x.cfg.addr, x.cfg.port))
            .collect();
        let mut want = vec![None; MH_TAB_SIZE];
        let mut next = [0usize; 2]; // index into each server's permutation
        let mut n = 0;
        'outer: loop {
            for (k, &(off, skip)) in perms.iter().enumerate() {
                loop {
                    let c = (off + next[k] * skip) % MH_TAB_SIZE;
                    if want[c].is_none() {
                        want[c] = Some(DestId(k as u32 + 1));
                        break;
                    }
                    next[k] += 1;
                }
                n += 1;
                if n == MH_TAB_SIZE {
                    break 'outer;
                }
            }
        }
        assert_eq!(s.table(), &want[..]);
        // Equal weights: 2047 and 2046 slots.
        let (a, b) = (count(&s, 1), count(&s, 2));
        assert_eq!(a + b, MH_TAB_SIZE);
        assert!(a.abs_diff(b) <= 1, "{a} {b}");
    }

    #[test]
    fn weights_reduce_by_gcd_and_shift() {
        // last weights 300 and 100: gcd 100, max/gcd = 3, fls(3) = 2 < 6, shift 0.
        let d = dests(&[300, 100]);
        let mut s = Mh::default();
        s.init_service(&view(&d));
        assert_eq!((s.gcd(), s.rshift()), (100, 0));
        // Server 1 takes 3 slots per round, server 2 one: about 3/4 and 1/4.
        let (a, b) = (count(&s, 1), count(&s, 2));
        assert_eq!(a + b, MH_TAB_SIZE);
        assert!((3068..=3072).contains(&a), "{a}");
        // 1000 and 1: gcd 1, fls(1000) = 10, shift 4: turns 62 and (0 -> 1).
        let d = dests(&[1000, 1]);
        s.init_service(&view(&d));
        assert_eq!((s.gcd(), s.rshift()), (1, 4));
        assert!(count(&s, 2) >= 1);
    }

    #[test]
    fn quiescent_server_keeps_slots_but_is_skipped() {
        let mut d = dests(&[1, 1, 1]);
        let mut s = Mh::default();
        s.init_service(&view(&d));
        let before = s.table().to_vec();
        // Weight set to 0 (last_weight stays 1): table unchanged after upd_dest.
        d[0].cfg.weight = 0;
        s.upd_dest(&view(&d), DestId(1));
        assert_eq!(s.table(), &before[..]);
        // Find a client whose slot is server 1: plain mh gives None, fallback another.
        let svc = view(&d);
        let f = (0..1000u16)
            .map(|c| flow(c, 1000))
            .find(|f| {
                let h = mh_hashkey(Family::Inet, &f.src, 0, &MH_HASH1, 0) % 4093;
                s.table()[h as usize] == Some(DestId(1))
            })
            .unwrap();
        assert_eq!(pick(&mut s, &svc, &f), None);
        let mut fb = view(&d);
        fb.flags = SchedFlags(SchedFlags::SCHED1);
        let got = pick(&mut s, &fb, &f).unwrap();
        assert_ne!(got, 0);
    }

    #[test]
    fn mh_port_changes_the_hash() {
        let d = dests(&[1, 1, 1, 1, 1, 1, 1, 1]);
        let mut svc = view(&d);
        svc.flags = SchedFlags(SchedFlags::SCHED2);
        let mut s = Mh::default();
        s.init_service(&svc);
        // Same client, different source ports: the slot follows hash(addr + port).
        let client = flow(7, 0);
        let mut seen = std::collections::BTreeSet::new();
        for port in 1000..1040u16 {
            let f = flow(7, port);
            let slot = mh_hashkey(Family::Inet, &client.src, port, &MH_HASH1, 0) % 4093;
            let want = svc.index_of(s.table()[slot as usize].unwrap());
            assert_eq!(pick(&mut s, &svc, &f), want);
            seen.insert(want);
        }
        assert!(seen.len() > 1);
        // Without the flag the port is ignored.
        let plain = view(&d);
        let first = pick(&mut s, &plain, &flow(7, 1000));
        for port in 1001..1040u16 {
            assert_eq!(pick(&mut s, &plain, &flow(7, port)), first);
        }
    }

    #[test]
    fn no_servers_or_all_zero_last_weight_empties_the_table() {
        let mut s = Mh::default();
        s.init_service(&view(&dests(&[1])));
        let mut d = vec![dest(1, 0)];
        d[0].last_weight = 0;
        s.upd_dest(&view(&d), DestId(1));
        assert!(s.table().iter().all(|x| x.is_none()));
        assert_eq!(pick(&mut s, &view(&d), &flow(1, 1)), None);
    }
}
