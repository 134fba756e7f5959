//! Destination hashing (net/netfilter/ipvs/ip_vs_dh.c).
//!
//! A 256-bucket table maps `hash_32(fold(daddr), 8)` (the packet's
//! destination address) to a real server. The table is refilled when a
//! server is added or deleted: bucket i gets list entry `i % n` (list order,
//! newest first). Weights play no part in the fill; the kernel registers no
//! upd_dest hook, so editing a server leaves the table alone. A server with
//! weight 0, flagged overloaded or no longer available gets nothing: there
//! is no fallback.

use std::net::IpAddr;

use super::hash::{fold_addr, hash_32};
use super::{SchedCtx, Scheduler, SchedulerKind, SvcView};
use crate::model::{Dest, DestId, Family, Flow};

/// `CONFIG_IP_VS_DH_TAB_BITS` (default 8).
pub const DH_TAB_BITS: u32 = 8;
/// Number of buckets.
pub const DH_TAB_SIZE: usize = 1 << DH_TAB_BITS;

/// The kernel's `ip_vs_dh_hashkey()`: `hash_32(fold(addr), 8)`.
pub fn dh_hashkey(af: Family, addr: &IpAddr) -> usize {
    hash_32(fold_addr(af, addr), DH_TAB_BITS) as usize
}

#[derive(Clone, Debug)]
pub struct Dh {
    buckets: Vec<Option<DestId>>,
}

impl Default for Dh {
    fn default() -> Self {
        Dh {
            buckets: vec![None; DH_TAB_SIZE],
        }
    }
}

impl Dh {
    /// The 256 buckets, as the datapath must load them.
    pub fn table(&self) -> &[Option<DestId>] {
        &self.buckets
    }

    /// `ip_vs_dh_reassign()`: one bucket per server, cycling through the list.
    fn reassign(&mut self, svc: &SvcView) {
        let n = svc.dests.len();
        for (i, bucket) in self.buckets.iter_mut().enumerate() {
            *bucket = if n == 0 {
                None
            } else {
                Some(svc.dests[i % n].id)
            };
        }
    }
}

impl Scheduler for Dh {
    fn kind(&self) -> SchedulerKind {
        SchedulerKind::Dh
    }

    fn init_service(&mut self, svc: &SvcView) {
        self.reassign(svc);
    }

    fn add_dest(&mut self, svc: &SvcView, _dest: DestId) {
        self.reassign(svc);
    }

    fn del_dest(&mut self, svc: &SvcView, _removed: &Dest, _former_index: usize) {
        self.reassign(svc);
    }

    fn schedule(&mut self, svc: &SvcView, flow: &Flow, _ctx: &mut SchedCtx) -> Option<usize> {
        let id = self.buckets[dh_hashkey(svc.family, &flow.dst)]?;
        let i = svc.index_of(id)?;
        let d = &svc.dests[i];
        (d.available && d.weight() > 0 && !d.overloaded).then_some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;
    use crate::sched::testutil::{dests, flow, view};
    use crate::time::Time;
    use std::net::Ipv4Addr;

    fn pick(s: &mut Dh, svc: &SvcView, f: &Flow) -> Option<usize> {
        let mut rng = SplitMix64::new(1);
        let mut ctx = SchedCtx {
            now: Time::ZERO,
            rng: &mut rng,
        };
        s.schedule(svc, f, &mut ctx)
    }

    #[test]
    fn hashes_the_destination_address() {
        // VIP 198.18.0.1 = 0xC6120001:
        //   0xC6120001 * 0x61C88647 = 0x4BA7F7F4_BCC68647
        //   low 32 bits 0xBCC68647, top 8 bits 0xBC = 188.
        let vip = flow(1, 1000).dst;
        let want = (0xC612_0001u32.wrapping_mul(0x61C8_8647) >> 24) as usize;
        assert_eq!(dh_hashkey(Family::Inet, &vip), want);
        assert_eq!(want, 188);

        let d = dests(&[1, 1, 1]);
        let svc = view(&d);
        let mut s = Dh::default();
        s.init_service(&svc);
        // Bucket 188 holds list entry 188 % 3 = 2, whatever the client.
        for client in 1..50 {
            assert_eq!(pick(&mut s, &svc, &flow(client, 1000 + client)), Some(2));
        }
        // Another destination address moves the flow.
        let mut f = flow(1, 1000);
        f.dst = Ipv4Addr::new(10, 0, 0, 1).into();
        // 0x0A000001 * 0x61C88647 mod 2^32 = 0x27C88647 -> bucket 0x27 = 39, entry 39 % 3 = 0.
        assert_eq!(dh_hashkey(Family::Inet, &f.dst), 39);
        assert_eq!(pick(&mut s, &svc, &f), Some(0));
    }

    #[test]
    fn weights_are_ignored_in_fill_and_zero_weight_is_unavailable() {
        let d = dests(&[5, 0]);
        let svc = view(&d);
        let mut s = Dh::default();
        s.init_service(&svc);
        let ids: Vec<u32> = s.table().iter().take(4).map(|b| b.unwrap().0).collect();
        assert_eq!(ids, [1, 2, 1, 2]);
        let mut f = flow(1, 1000);
        f.dst = Ipv4Addr::new(10, 0, 0, 1).into(); // bucket 39 -> entry 39 % 2 = 1 (weight 0)
        assert_eq!(pick(&mut s, &svc, &f), None);
    }

    #[test]
    fn overloaded_or_unavailable_gives_none() {
        let mut d = dests(&[1, 1, 1]);
        let mut s = Dh::default();
        s.init_service(&view(&d));
        let f = flow(1, 1000); // bucket 188 -> entry 2
        d[2].overloaded = true;
        assert_eq!(pick(&mut s, &view(&d), &f), None);
        d[2].overloaded = false;
        d[2].available = false;
        assert_eq!(pick(&mut s, &view(&d), &f), None);
    }

    #[test]
    fn edit_does_not_rebuild_but_add_and_delete_do() {
        let d = dests(&[1, 1]);
        let mut s = Dh::default();
        s.init_service(&view(&d));
        let before = s.table().to_vec();
        let d3 = dests(&[1, 1, 1]);
        s.upd_dest(&view(&d3), DestId(1));
        assert_eq!(s.table(), &before[..]);
        s.add_dest(&view(&d3), DestId(3));
        assert_eq!(s.table()[2], Some(DestId(3)));
        let removed = d3[2].clone();
        s.del_dest(&view(&d3[..2]), &removed, 2);
        assert_eq!(s.table(), &before[..]);
    }
}
