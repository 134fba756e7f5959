//! Source hashing (net/netfilter/ipvs/ip_vs_sh.c).
//!
//! A 256-bucket table maps `hash_32(port + fold(saddr), 8)` to a real server.
//! The table is refilled from the server list on every add, delete and edit:
//! walking the buckets in order, each server (in list order, newest first)
//! takes `weight` consecutive buckets, wrapping around the list until all 256
//! are assigned. A weight-0 server still takes one bucket per pass (the kernel
//! moves on once its turn counter reaches the weight, after one assignment)
//! but lookups treat it as unavailable.
//!
//! Flags: `sh-port` (SCHED2) adds the client's source port to the folded
//! address before hashing; `sh-fallback` (SCHED1) probes other buckets when
//! the chosen server has weight 0 or is overloaded.

use super::hash::{fold_addr, hash_32};
use super::{SchedCtx, Scheduler, SchedulerKind, SvcView};
use crate::model::{DestId, Family, Flow};

/// `CONFIG_IP_VS_SH_TAB_BITS` (default 8).
pub const SH_TAB_BITS: u32 = 8;
/// Number of buckets.
pub const SH_TAB_SIZE: usize = 1 << SH_TAB_BITS;
const SH_TAB_MASK: u32 = SH_TAB_SIZE as u32 - 1;

/// The kernel's `ip_vs_sh_hashkey()`: `(offset + hash_32(port + fold(addr), 8))
/// & 255`, where `port` is the host-order source port (0 unless `sh-port`).
pub fn sh_hashkey(af: Family, addr: &std::net::IpAddr, port: u16, offset: u32) -> usize {
    let key = (port as u32).wrapping_add(fold_addr(af, addr));
    (offset.wrapping_add(hash_32(key, SH_TAB_BITS)) & SH_TAB_MASK) as usize
}

#[derive(Clone, Debug)]
pub struct Sh {
    buckets: Vec<Option<DestId>>,
}

impl Default for Sh {
    fn default() -> Self {
        Sh {
            buckets: vec![None; SH_TAB_SIZE],
        }
    }
}

impl Sh {
    /// The 256 buckets, as the datapath must load them.
    pub fn table(&self) -> &[Option<DestId>] {
        &self.buckets
    }

    /// `ip_vs_sh_reassign()`: refill every bucket from the list, each server
    /// taking `weight` consecutive buckets (at least one).
    fn reassign(&mut self, svc: &SvcView) {
        let dests = svc.dests;
        if dests.is_empty() {
            self.buckets.iter_mut().for_each(|b| *b = None);
            return;
        }
        let mut p = 0usize;
        let mut turns = 0u64;
        for bucket in self.buckets.iter_mut() {
            let d = &dests[p];
            *bucket = Some(d.id);
            turns += 1;
            if turns >= d.weight() as u64 {
                p = (p + 1) % dests.len();
                turns = 0;
            }
        }
    }

    /// The server in `bucket` and its index, if it is usable: present, weight
    /// above zero and not flagged overloaded (the kernel's `is_unavailable()`).
    fn usable(&self, svc: &SvcView, bucket: usize) -> Lookup {
        match self.buckets[bucket] {
            None => Lookup::Empty,
            Some(id) => match svc.index_of(id) {
                Some(i) if svc.dests[i].weight() > 0 && !svc.dests[i].overloaded => {
                    Lookup::Found(i)
                }
                _ => Lookup::Unavailable,
            },
        }
    }
}

enum Lookup {
    Empty,
    Unavailable,
    Found(usize),
}

impl Scheduler for Sh {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Sh
    }

    fn init_service(&mut self, svc: &SvcView) {
        self.reassign(svc);
    }

    fn add_dest(&mut self, svc: &SvcView, _dest: DestId) {
        self.reassign(svc);
    }

    fn del_dest(&mut self, svc: &SvcView, _removed: &crate::model::Dest, _former_index: usize) {
        self.reassign(svc);
    }

    fn upd_dest(&mut self, svc: &SvcView, _dest: DestId) {
        self.reassign(svc);
    }

    fn schedule(&mut self, svc: &SvcView, flow: &Flow, _ctx: &mut SchedCtx) -> Option<usize> {
        // TCP, UDP and SCTP all carry the source port first.
        let port = if svc.flags.port() { flow.sport } else { 0 };
        let addr = &flow.src;
        let ihash = sh_hashkey(svc.family, addr, port, 0);
        match self.usable(svc, ihash) {
            Lookup::Found(i) => return Some(i),
            Lookup::Empty => return None,
            Lookup::Unavailable if !svc.flags.fallback() => return None,
            Lookup::Unavailable => {}
        }
        // ip_vs_sh_get_fallback(): probe hashkey(offset = ihash + k) for k in
        // 0..256; the probed bucket is (ihash + k + ihash) & 255.
        for k in 0..SH_TAB_SIZE as u32 {
            let roffset = (k + ihash as u32) % SH_TAB_SIZE as u32;
            match self.usable(svc, sh_hashkey(svc.family, addr, port, roffset)) {
                Lookup::Found(i) => return Some(i),
                Lookup::Empty => return None,
                Lookup::Unavailable => {}
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
    use crate::sched::testutil::{dests, flow, view};
    use crate::time::Time;

    fn pick(s: &mut Sh, svc: &SvcView, client: u16, sport: u16) -> Option<usize> {
        let mut rng = SplitMix64::new(1);
        let mut ctx = SchedCtx {
            now: Time::ZERO,
            rng: &mut rng,
        };
        s.schedule(svc, &flow(client, sport), &mut ctx)
    }

    #[test]
    fn bucket_of_known_address() {
        // Client 198.19.0.1 = 0xC6130001, port 0:
        //   0xC6130001 * 0x61C88647 = 0x4BA859BD_430D8647
        //   low 32 bits 0x430D8647, top 8 bits 0x43 = 67.
        let a = flow(1, 0).src;
        assert_eq!(sh_hashkey(Family::Inet, &a, 0, 0), 67);
        // With port 1234 added: 0xC6130001 + 1234 = 0xC61304D3
        //   0xC61304D3 * 0x61C88647 mod 2^32 = 0x9BA4C885, top byte 0x9B = 155.
        assert_eq!(sh_hashkey(Family::Inet, &a, 1234, 0), 155);
        // The offset is added after hashing.
        assert_eq!(sh_hashkey(Family::Inet, &a, 0, 200), (67 + 200) & 255);
    }

    #[test]
    fn table_fill_round_robin_with_weights() {
        let d = dests(&[2, 1, 3]);
        let svc = view(&d);
        let mut s = Sh::default();
        s.init_service(&svc);
        let ids: Vec<u32> = s.table().iter().take(12).map(|b| b.unwrap().0).collect();
        assert_eq!(ids, [1, 1, 2, 3, 3, 3, 1, 1, 2, 3, 3, 3]);
        // 256 = 42 full passes of 6 + 4 more (1, 1, 2, 3).
        let count = |id| s.table().iter().filter(|b| **b == Some(DestId(id))).count();
        assert_eq!((count(1), count(2), count(3)), (86, 43, 127));
    }

    #[test]
    fn schedules_by_source_address() {
        let d = dests(&[1, 1, 1]);
        let svc = view(&d);
        let mut s = Sh::default();
        s.init_service(&svc);
        // Bucket 67 holds list entry 67 % 3 = 1.
        assert_eq!(pick(&mut s, &svc, 1, 1000), Some(1));
        // The source port does not matter without sh-port.
        assert_eq!(pick(&mut s, &svc, 1, 1234), Some(1));
        // Another client (198.19.0.2): 0xC6130002 * 0x61C88647 mod 2^32 =
        // 0xA4D60C8E, bucket 0xA4 = 164, list entry 164 % 3 = 2.
        assert_eq!(pick(&mut s, &svc, 2, 1000), Some(2));
    }

    #[test]
    fn sh_port_changes_the_bucket() {
        let d = dests(&[1, 1, 1]);
        let mut svc = view(&d);
        svc.flags = SchedFlags(SchedFlags::SCHED2);
        let mut s = Sh::default();
        s.init_service(&svc);
        // Bucket 155 (see bucket_of_known_address): entry 155 % 3 = 2.
        assert_eq!(pick(&mut s, &svc, 1, 1234), Some(2));
        // Port 0 hashes like plain sh.
        assert_eq!(pick(&mut s, &svc, 1, 0), Some(1));
    }

    #[test]
    fn fallback_skips_overloaded_plain_returns_none() {
        let mut d = dests(&[1, 1, 1]);
        d[1].overloaded = true;
        let mut s = Sh::default();
        s.init_service(&view(&d));
        let svc = view(&d);
        assert_eq!(pick(&mut s, &svc, 1, 0), None);
        let mut fb = view(&d);
        fb.flags = SchedFlags(SchedFlags::SCHED1);
        // First probe: offset 67, bucket (67 + 67) & 255 = 134, entry 134 % 3 = 2.
        assert_eq!(pick(&mut s, &fb, 1, 0), Some(2));
    }

    #[test]
    fn weight_zero_takes_one_bucket_but_is_never_picked() {
        let d = dests(&[0, 1]);
        let svc = view(&d);
        let mut s = Sh::default();
        s.init_service(&svc);
        // Alternating: even buckets server 1 (weight 0), odd buckets server 2.
        assert_eq!(s.table()[0], Some(DestId(1)));
        assert_eq!(s.table()[1], Some(DestId(2)));
        // Client 1 hashes to bucket 67 (odd), client 2 to 164 (even).
        assert_eq!(pick(&mut s, &svc, 1, 0), Some(1));
        assert_eq!(pick(&mut s, &svc, 2, 0), None);
        let mut fb = view(&d);
        fb.flags = SchedFlags(SchedFlags::SCHED1);
        // Fallback from 164: bucket (164 + 164) & 255 = 72 (even, weight 0),
        // then 73 (odd) -> server 2 at index 1.
        assert_eq!(pick(&mut s, &fb, 2, 0), Some(1));
    }

    #[test]
    fn empty_service_and_rebuild_on_hooks() {
        let mut s = Sh::default();
        s.init_service(&view(&[]));
        assert!(s.table().iter().all(|b| b.is_none()));
        assert_eq!(pick(&mut s, &view(&[]), 1, 0), None);
        let d = dests(&[1]);
        s.add_dest(&view(&d), DestId(1));
        assert!(s.table().iter().all(|b| *b == Some(DestId(1))));
        let removed = d[0].clone();
        s.del_dest(&view(&[]), &removed, 0);
        assert!(s.table().iter().all(|b| b.is_none()));
    }

    #[test]
    fn ipv6_source_is_folded() {
        use std::net::{IpAddr, Ipv6Addr};
        let a = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        // fold = 0x20010db8 ^ 0 ^ 0 ^ 0x00000001 = 0x20010db9
        let want = (0x2001_0db9u32.wrapping_mul(0x61C8_8647) >> 24) as usize;
        assert_eq!(sh_hashkey(Family::Inet6, &a, 0, 0), want);
    }
}
