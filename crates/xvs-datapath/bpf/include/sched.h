/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * In-kernel scheduling of new connections, with the semantics of
 * xvs_core::sched (which follows net/netfilter/ipvs/ip_vs_*.c):
 *
 *   rr, wrr            cursor (and wrr's cw/mw/di) in xvs_sched_state;
 *   lc, wlc, sed, nq,
 *   fo, ovf            one walk of the list, ties to the earlier server;
 *   sh, dh, mh         tables computed by xvs-core, copied into xvs_htab;
 *   twos               two walks, draws from bpf_get_prandom_u32 (or the
 *                      test hook's xvs_rand);
 *   lblc, lblcr        caches by destination address in xvs_lblc/xvs_lblcr.
 *
 * The list (struct dest_list) is in kernel order, newest first, with each
 * server's weight. Connection counts and the overload flag come from
 * xvs_real_state. Walks use bpf_loop so the verifier checks the body once.
 *
 * rr/wrr: the state is read under its spin lock, the walk runs unlocked (no
 * helper calls may be made under a bpf_spin_lock) and the new cursor is
 * written under the lock. Two CPUs scheduling the same service at the same
 * instant may therefore make the same pick; the kernel serialises them.
 */
#ifndef XVS_SCHED_H
#define XVS_SCHED_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "structs.h"
#include "maps.h"

/*
 * i & (XVS_MAX_DESTS - 1), done so that clang cannot drop the mask after a
 * range check on another copy of i (the verifier needs it on this one).
 */
static __always_inline __u64 xvs_didx(__u64 i)
{
	asm volatile("%0 &= 255" : "+r"(i));
	return i;
}

/* The same for a slot of struct htab. */
static __always_inline __u64 xvs_hidx(__u64 i)
{
	asm volatile("%0 &= 4095" : "+r"(i));
	return i;
}

struct sctx {
	struct dest_list *l;
	__u32 n;
	__u32 sched;
	__s32 best; /* index into the list, -1 = none */
	__s32 hw;   /* weight of best (lc family) or highest weight (fo/ovf) */
	__s64 loh;  /* overhead of best */
	/* rr/wrr */
	__u32 find_id;
	__s32 found;
	__s32 start;
	/* wrr, lblcr */
	__s32 pos;
	__s32 result;
	__u8 phase; /* twos: 0 = sum the weights, 1 = place the draws (lblcr: its walk's) */
	/* twos, lblcr */
	__s32 c1, c2;   /* list index, -1 = none */
	__s32 c2w;      /* weight */
	/* lblc, lblcr */
	__u32 svc_id;
	/*
	 * Each scheduler's own: one at a time, so they share the space (the
	 * frame of xvs_schedule() sits under the packet path's).
	 */
	union {
		struct { /* wrr */
			__s32 last;
			__s32 stop;
			__s32 cw;
			__s32 mw;
			__s32 di;
			__u32 cl;
			__u8 last_pass;
			__u8 restarted;
			__u8 done;
		};
		struct { /* twos */
			__s32 total;
			__s32 r1, r2;
			__s32 c1w;
			__s32 c1oh, c2oh; /* overheads */
		};
		struct { /* lblcr */
			struct lblcr_set *set; /* the set being edited (per-CPU scratch) */
			struct lblcr_set *src; /* the cached set being copied */
			__s64 oh2;
		};
	};
};

static long xvs_find_cb(__u32 i, void *arg)
{
	struct sctx *s = arg;
	struct dest_list *l = s->l;

	if (!l || i >= XVS_MAX_DESTS || i >= s->n)
		return 1;
	if (l->d[xvs_didx(i)].id == s->find_id) {
		s->found = i;
		return 1;
	}
	return 0;
}

/* Position of real server `id` in the list, -1 if absent (svc.index_of). */
static __always_inline __s32 xvs_index_of(struct sctx *s, __u32 id)
{
	if (!id)
		return -1;
	s->find_id = id;
	s->found = -1;
	bpf_loop(XVS_MAX_DESTS, xvs_find_cb, s, 0);
	return s->found;
}

/* lc, wlc, sed, nq, fo, ovf and rr: one walk over the list. */
static long xvs_scan_cb(__u32 j, void *arg)
{
	struct sctx *s = arg;
	struct dest_list *l = s->l;
	struct real_state *st;
	__u32 i = j, id, ov;
	__s32 w, act, inact;
	__s64 doh;

	if (!l || j >= XVS_MAX_DESTS || j >= s->n || !s->n)
		return 1;
	if (s->sched == XVS_SCHED_RR && s->start >= 0)
		i = ((__u32)s->start + 1 + j) % s->n;
	if (i >= XVS_MAX_DESTS)
		return 1;
	id = l->d[xvs_didx(i)].id;
	w = l->d[xvs_didx(i)].weight;
	st = bpf_map_lookup_elem(&xvs_real_state, &id);
	if (!st)
		return 0; /* not set up yet: not a candidate */
	ov = st->overloaded;
	act = st->active;
	inact = st->inactive;

	switch (s->sched) {
	case XVS_SCHED_RR:
		if (!ov && w > 0) {
			s->best = i;
			return 1;
		}
		return 0;
	case XVS_SCHED_LC: {
		/* unsigned overhead, strict < */
		__u32 uoh = ((__u32)act << 8) + (__u32)inact;

		if (ov || w == 0)
			return 0;
		if (s->best < 0 || uoh < (__u32)s->loh) {
			s->best = i;
			s->loh = uoh;
		}
		return 0;
	}
	case XVS_SCHED_WLC:
	case XVS_SCHED_SED:
		if (s->sched == XVS_SCHED_WLC)
			doh = (__s32)(((__u32)act << 8) + (__u32)inact);
		else
			doh = (__s32)((__u32)act + 1);
		if (s->best < 0) {
			if (!ov && w > 0) {
				s->best = i;
				s->loh = doh;
				s->hw = w;
			}
			return 0;
		}
		if (ov)
			return 0;
		if (s->loh * (__s64)w > doh * (__s64)s->hw) {
			s->best = i;
			s->loh = doh;
			s->hw = w;
		}
		return 0;
	case XVS_SCHED_NQ:
		if (ov || w == 0)
			return 0;
		doh = (__s32)((__u32)act + 1);
		if (act == 0) {
			s->best = i;
			return 1;
		}
		if (s->best < 0 || !(s->loh * (__s64)w <= doh * (__s64)s->hw)) {
			s->best = i;
			s->loh = doh;
			s->hw = w;
		}
		return 0;
	case XVS_SCHED_LBLC:
		/* lblc/lblcr's weighted least-connection pick: 64-bit overheads */
		if (ov)
			return 0;
		doh = (__s64)(((__u64)(__u32)act << 8) + (__u32)inact);
		if (s->best < 0) {
			if (w > 0) {
				s->best = i;
				s->loh = doh;
				s->hw = w;
			}
			return 0;
		}
		if (s->loh * (__s64)w > doh * (__s64)s->hw) {
			s->best = i;
			s->loh = doh;
			s->hw = w;
		}
		return 0;
	case XVS_SCHED_FO:
		if (!ov && w > s->hw) {
			s->best = i;
			s->hw = w;
		}
		return 0;
	case XVS_SCHED_OVF:
		if (ov || act > w || w == 0)
			return 0;
		if (s->best < 0 || w > s->hw) {
			s->best = i;
			s->hw = w;
		}
		return 0;
	}
	return 1;
}

/* One step of ip_vs_wrr_schedule(): look at the next server, or wrap. */
static long xvs_wrr_cb(__u32 iter, void *arg)
{
	struct sctx *s = arg;
	struct dest_list *l = s->l;
	struct real_state *st;
	__s32 i = s->pos + 1;
	__u32 id, ov;
	__s32 w;

	(void)iter;
	if (!l)
		return 1;
	if (i >= 0 && i < (__s32)s->n && i < XVS_MAX_DESTS) {
		id = l->d[xvs_didx(i)].id;
		w = l->d[xvs_didx(i)].weight;
		st = bpf_map_lookup_elem(&xvs_real_state, &id);
		ov = st ? st->overloaded : 1;
		if (!ov && w >= s->cw) {
			s->cl = id;
			s->result = i;
			s->done = 1;
			return 1;
		}
		if (s->stop == i) {
			/* back at the starting server on the final pass */
			s->cl = id;
			s->result = -1;
			s->done = 1;
			return 1;
		}
		s->pos = i;
		return 0;
	}
	/* ran off the end of the list: the position is the head again */
	s->pos = -1;
	s->cw -= s->di;
	if (s->cw <= 0) {
		s->cw = s->mw;
		if (s->last_pass || s->last < 0) {
			s->cl = 0;
			s->result = -1;
			s->done = 1;
			return 1;
		}
		s->restarted = 1;
	}
	s->last_pass = s->cw <= s->di;
	if (s->last_pass && s->restarted && s->last >= 0)
		s->stop = s->last;
	return 0;
}

/*
 * ip_vs_twos_schedule(): phase 0 sums the weights of the eligible servers
 * (not overloaded, weight > 0) and remembers the last one; phase 1 walks
 * them again subtracting each weight from both draws, the first server
 * where a draw reaches <= 0 is its choice. All in C int arithmetic.
 */
static long xvs_twos_cb(__u32 i, void *arg)
{
	struct sctx *s = arg;
	struct dest_list *l = s->l;
	struct real_state *st;
	__s32 w, oh;
	__u32 id;

	if (!l || i >= XVS_MAX_DESTS || i >= s->n)
		return 1;
	id = l->d[xvs_didx(i)].id;
	w = l->d[xvs_didx(i)].weight;
	st = bpf_map_lookup_elem(&xvs_real_state, &id);
	if (!st || st->overloaded || w <= 0)
		return 0;
	if (s->phase == 0) {
		s->total = (__s32)((__u32)s->total + (__u32)w);
		s->best = i; /* last eligible */
		return 0;
	}
	oh = (__s32)(((__u32)st->active << 8) + (__u32)st->inactive);
	s->r1 = (__s32)((__u32)s->r1 - (__u32)w);
	s->r2 = (__s32)((__u32)s->r2 - (__u32)w);
	if (s->r1 <= 0 && s->c1 < 0) {
		s->c1 = i;
		s->c1w = w;
		s->c1oh = oh;
	}
	if (s->r2 <= 0 && s->c2 < 0) {
		s->c2 = i;
		s->c2w = w;
		s->c2oh = oh;
	}
	return s->c1 >= 0 && s->c2 >= 0;
}

/*
 * A 32-bit random number: bpf_get_prandom_u32(), or with the test hook
 * (xvs_config.rand_fixed) the next value of xvs_rand.
 */
static __always_inline __u32 xvs_draw(void)
{
	struct xvs_config *cfg = xvs_cfg();
	__u32 k = XVS_SEQ_RAND, slot, *v;
	__u64 *pos;

	if (!cfg || !cfg->rand_fixed)
		return bpf_get_prandom_u32();
	pos = bpf_map_lookup_elem(&xvs_seq, &k);
	if (!pos)
		return 0;
	slot = (__u32)__sync_fetch_and_add(pos, 1) % XVS_RAND_SLOTS;
	v = bpf_map_lookup_elem(&xvs_rand, &slot);
	return v ? *v : 0;
}

/* get_random_u32_below(n): (draw * n) >> 32. */
static __always_inline __u32 xvs_below(__u32 n)
{
	return (__u32)(((__u64)xvs_draw() * n) >> 32);
}

static __always_inline __u32 xvs_list_id(struct dest_list *l, __s32 i)
{
	__u32 u = (__u32)i;

	if (!l || u >= XVS_MAX_DESTS)
		return 0;
	return l->d[xvs_didx(u)].id;
}

static __always_inline __u32 xvs_sched_rr(struct sctx *s, __u32 svc_id)
{
	struct sched_state *ss = bpf_map_lookup_elem(&xvs_sched_state, &svc_id);
	__u32 cl, id;

	if (!ss)
		return 0;
	bpf_spin_lock(&ss->lock);
	cl = ss->cl;
	bpf_spin_unlock(&ss->lock);
	s->start = xvs_index_of(s, cl);
	bpf_loop(XVS_MAX_DESTS, xvs_scan_cb, s, 0);
	if (s->best < 0)
		return 0; /* a miss leaves the cursor */
	id = xvs_list_id(s->l, s->best);
	bpf_spin_lock(&ss->lock);
	ss->cl = id;
	bpf_spin_unlock(&ss->lock);
	return id;
}

static __always_inline __u32 xvs_sched_wrr(struct sctx *s, __u32 svc_id)
{
	struct sched_state *ss = bpf_map_lookup_elem(&xvs_sched_state, &svc_id);
	__u32 cl;

	if (!ss)
		return 0;
	bpf_spin_lock(&ss->lock);
	cl = ss->cl;
	s->cw = ss->cw;
	s->mw = ss->mw;
	s->di = ss->di;
	bpf_spin_unlock(&ss->lock);
	s->pos = xvs_index_of(s, cl);
	if (s->mw == 0) {
		cl = xvs_list_id(s->l, s->pos);
		bpf_spin_lock(&ss->lock);
		ss->cl = cl;
		bpf_spin_unlock(&ss->lock);
		return 0;
	}
	if (s->di <= 0)
		return 0; /* never written so by user space */
	s->last = s->pos;
	s->stop = -1;
	s->result = -1;
	/* Bounded: a pathological weight spread may need more steps; then no pick. */
	bpf_loop(1 << 20, xvs_wrr_cb, s, 0);
	if (!s->done)
		return 0;
	bpf_spin_lock(&ss->lock);
	ss->cl = s->cl;
	ss->cw = s->cw;
	bpf_spin_unlock(&ss->lock);
	return s->result < 0 ? 0 : xvs_list_id(s->l, s->result);
}

/* Hashing schedulers ------------------------------------------------------ */

/* The first argument of the global scheduler functions: service id,
 * scheduler and flags in one scalar. */
static __always_inline __u64 xvs_sched_meta(struct svc_info *si)
{
	return (__u64)si->id | ((__u64)(si->sched & 0xff) << 32) | ((__u64)(si->flags & 0xffff) << 40);
}

static __always_inline int xvs_sched_is_hash(__u32 sched)
{
	return sched == XVS_SCHED_SH || sched == XVS_SCHED_DH || sched == XVS_SCHED_MH;
}

/* include/linux/hash.h hash_32() */
static __always_inline __u32 xvs_hash_32(__u32 v, __u32 bits)
{
	return (v * 0x61C88647u) >> (32 - bits);
}

static __always_inline __u64 xvs_rotl(__u64 x, int b)
{
	return (x << b) | (x >> (64 - b));
}

#define XVS_SIPROUND                                                                       \
	do {                                                                               \
		v0 += v1;                                                                  \
		v1 = xvs_rotl(v1, 13);                                                     \
		v1 ^= v0;                                                                  \
		v0 = xvs_rotl(v0, 32);                                                     \
		v2 += v3;                                                                  \
		v3 = xvs_rotl(v3, 16);                                                     \
		v3 ^= v2;                                                                  \
		v0 += v3;                                                                  \
		v3 = xvs_rotl(v3, 21);                                                     \
		v3 ^= v0;                                                                  \
		v2 += v1;                                                                  \
		v1 = xvs_rotl(v1, 17);                                                     \
		v1 ^= v2;                                                                  \
		v2 = xvs_rotl(v2, 32);                                                     \
	} while (0)

/* hsiphash_1u32(v, key) of a 64-bit kernel with both key words = k (mh's keys). */
static __always_inline __u32 xvs_hsiphash_u32(__u32 v, __u64 k)
{
	__u64 v0 = 0x736f6d6570736575ULL ^ k;
	__u64 v1 = 0x646f72616e646f6dULL ^ k;
	__u64 v2 = 0x6c7967656e657261ULL ^ k;
	__u64 v3 = 0x7465646279746573ULL ^ k;
	__u64 m = (4ULL << 56) | v;

	v3 ^= m;
	XVS_SIPROUND;
	v0 ^= m;
	v2 ^= 0xff;
	XVS_SIPROUND;
	XVS_SIPROUND;
	XVS_SIPROUND;
	return (__u32)(v0 ^ v1 ^ v2 ^ v3);
}

#define XVS_MH_HASH1 2654435761ULL
#define XVS_MH_SIZE 4093

enum { XVS_SLOT_EMPTY = 0, XVS_SLOT_UNUSABLE = 1, XVS_SLOT_FOUND = 2 };

/* is_unavailable() of sh/dh/mh: the slot's server, if usable. */
static __always_inline int xvs_slot_usable(struct htab *t, __u32 slot, __u32 svc_id, __u32 *out)
{
	struct real_state *st;
	struct real *r;
	__u32 id;

	if (slot >= XVS_HTAB_SIZE)
		return XVS_SLOT_EMPTY;
	id = t->slot[xvs_hidx(slot)];
	if (!id)
		return XVS_SLOT_EMPTY;
	r = bpf_map_lookup_elem(&xvs_reals, &id);
	st = bpf_map_lookup_elem(&xvs_real_state, &id);
	if (!r || !st || r->svc_id != svc_id || !(r->flags & XVS_REAL_F_AVAILABLE) ||
	    r->weight <= 0 || st->overloaded)
		return XVS_SLOT_UNUSABLE;
	*out = id;
	return XVS_SLOT_FOUND;
}

struct hctx {
	struct htab *t;
	__u32 svc_id;
	__u32 key;   /* port + fold(addr) */
	__u32 ihash;
	__u32 id;
	__u32 sched;
};

static long xvs_hash_fallback_cb(__u32 k, void *arg)
{
	struct hctx *h = arg;
	__u32 slot;
	int rc;

	if (!h->t)
		return 1;
	if (h->sched == XVS_SCHED_SH) {
		/* ip_vs_sh_get_fallback(): hashkey with offset (k + ihash) % 256 */
		__u32 roffset = (k + h->ihash) % XVS_SH_TAB_SIZE;

		slot = (roffset + xvs_hash_32(h->key, 8)) & (XVS_SH_TAB_SIZE - 1);
	} else {
		__u32 roffset = (k + h->ihash) % XVS_MH_SIZE;

		slot = xvs_hsiphash_u32(roffset + h->key, XVS_MH_HASH1) % XVS_MH_SIZE;
	}
	rc = xvs_slot_usable(h->t, slot, h->svc_id, &h->id);
	if (rc == XVS_SLOT_UNUSABLE)
		return 0;
	return 1; /* found, or an empty slot: stop */
}

/*
 * sh, dh, mh: a global BPF function of its own (see xvs_schedule()), called
 * directly by the packet path so that its frame is not stacked on
 * xvs_schedule()'s.
 */
/* saddr/daddr: the addresses folded to 32 bits (xvs_fold()), network order. */
__attribute__((noinline)) __u32 xvs_sched_hash(__u64 meta, __be32 saddr, __be32 daddr,
					       __be16 sport)
{
	struct hctx h = {};
	__u32 svc_id = (__u32)meta;
	__u8 sched = (meta >> 32) & 0xff;
	__u32 flags = (meta >> 40) & 0xffff;
	__u32 slot, id = 0;
	int rc;

	h.t = bpf_map_lookup_elem(&xvs_htab, &svc_id);
	if (!h.t)
		return 0;
	h.svc_id = svc_id;
	h.sched = sched;
	if (sched == XVS_SCHED_DH) {
		slot = xvs_hash_32(bpf_ntohl(daddr), 8);
		rc = xvs_slot_usable(h.t, slot, svc_id, &id);
		return rc == XVS_SLOT_FOUND ? id : 0;
	}
	h.key = ((flags & XVS_SVC_F_SCHED2) ? bpf_ntohs(sport) : 0) + bpf_ntohl(saddr);
	if (sched == XVS_SCHED_SH) {
		h.ihash = xvs_hash_32(h.key, 8) & (XVS_SH_TAB_SIZE - 1);
		slot = h.ihash;
	} else {
		h.ihash = xvs_hsiphash_u32(h.key, XVS_MH_HASH1) % XVS_MH_SIZE;
		slot = h.ihash;
	}
	rc = xvs_slot_usable(h.t, slot, svc_id, &id);
	if (rc == XVS_SLOT_FOUND)
		return id;
	if (rc == XVS_SLOT_EMPTY || !(flags & XVS_SVC_F_SCHED1))
		return 0;
	bpf_loop(sched == XVS_SCHED_SH ? XVS_SH_TAB_SIZE : XVS_MH_SIZE, xvs_hash_fallback_cb, &h, 0);
	return h.id;
}

/* lblc and lblcr ------------------------------------------------------------ */

/* Is some server of the list at less than half its weight (2 * active < weight)? */
static long xvs_half_cb(__u32 i, void *arg)
{
	struct sctx *s = arg;
	struct dest_list *l = s->l;
	struct real_state *st;
	__u32 id;
	__s32 w;

	if (!l || i >= XVS_MAX_DESTS || i >= s->n)
		return 1;
	id = l->d[xvs_didx(i)].id;
	w = l->d[xvs_didx(i)].weight;
	st = bpf_map_lookup_elem(&xvs_real_state, &id);
	if (st && (__s64)(__u32)st->active * 2 < (__s64)w) {
		s->found = 1;
		return 1;
	}
	return 0;
}

/* lblc's and lblcr's is_overloaded(): more active than its weight while some
 * server has 2 * active < weight. */
static __always_inline int xvs_lbl_overloaded(struct sctx *s, __u32 id, __s32 w)
{
	struct real_state *st = bpf_map_lookup_elem(&xvs_real_state, &id);

	if (!st || !((__s64)(__u32)st->active > (__s64)w))
		return 0;
	s->found = 0;
	bpf_loop(XVS_MAX_DESTS, xvs_half_cb, s, 0);
	return s->found;
}

/* Is real server id in service svc_id's list now? Its weight in *w. */
static __always_inline int xvs_in_list(__u32 id, __u32 svc_id, __s32 *w)
{
	struct real *r = bpf_map_lookup_elem(&xvs_reals, &id);

	if (!r || !(r->flags & XVS_REAL_F_AVAILABLE) || r->svc_id != svc_id)
		return 0;
	*w = r->weight;
	return 1;
}

/* The weighted least-connection pick over the whole list (wlc_pick()). */
static __always_inline __u32 xvs_lbl_wlc(struct sctx *s)
{
	__u32 sched = s->sched;

	s->sched = XVS_SCHED_LBLC;
	s->best = -1;
	s->loh = 0;
	s->hw = 0;
	bpf_loop(XVS_MAX_DESTS, xvs_scan_cb, s, 0);
	s->sched = sched;
	return s->best < 0 ? 0 : xvs_list_id(s->l, s->best);
}

static __always_inline __u32 xvs_sched_lblc(struct sctx *s, __u64 now)
{
	struct xvs_scratch *sc;
	struct lblc_entry *en;
	__u32 id, zero = 0;
	__s32 w;

	sc = bpf_map_lookup_elem(&xvs_scratch, &zero);
	if (!sc)
		return 0;
	__builtin_memset(&sc->lk, 0, sizeof(sc->lk));
	sc->lk.svc_id = s->svc_id;
	__builtin_memcpy(sc->lk.addr, sc->sched_daddr, 16);
	en = bpf_map_lookup_elem(&xvs_lblc, &sc->lk);
	if (en) {
		en->lastuse = now;
		id = en->real_id;
		if (xvs_in_list(id, s->svc_id, &w) && w > 0 && !xvs_lbl_overloaded(s, id, w))
			return id;
	}
	id = xvs_lbl_wlc(s);
	if (!id)
		return 0;
	/* ip_vs_lblc_new(): keep an entry already pointing there, else replace */
	if (!en || en->real_id != id) {
		sc->le.real_id = id;
		sc->le.pad = 0;
		sc->le.lastuse = now;
		bpf_map_update_elem(&xvs_lblc, &sc->lk, &sc->le, BPF_ANY);
	}
	return id;
}

enum {
	XVS_LBLCR_COPY,    /* src -> set, member i */
	XVS_LBLCR_REFRESH, /* last seen weights */
	XVS_LBLCR_MIN,     /* ip_vs_dest_set_min() */
	XVS_LBLCR_MAX,     /* ip_vs_dest_set_max() */
	XVS_LBLCR_FIND,    /* member index of find_id */
	XVS_LBLCR_LEFT,    /* erase: m[pos + i] = m[pos + i + 1] */
	XVS_LBLCR_RIGHT,   /* insert at head: m[n - i] = m[n - i - 1] */
};

static long xvs_lblcr_cb(__u32 i, void *arg)
{
	struct sctx *s = arg;
	struct lblcr_set *set = s->set, *src = s->src;
	struct real_state *st;
	__u32 n, id, j;
	__s32 w, mw;
	__s64 doh;

	if (!set || i >= XVS_MAX_DESTS)
		return 1;
	n = set->n;
	if (n > XVS_MAX_DESTS)
		n = XVS_MAX_DESTS;
	switch (s->phase) {
	case XVS_LBLCR_COPY:
		if (!src || i >= n)
			return 1;
		set->m[xvs_didx(i)] = src->m[xvs_didx(i)];
		return 0;
	case XVS_LBLCR_LEFT:
		j = (__u32)s->pos + i;
		if (j + 1 >= n || j + 1 >= XVS_MAX_DESTS)
			return 1;
		set->m[xvs_didx(j)] = set->m[xvs_didx(j + 1)];
		return 0;
	case XVS_LBLCR_RIGHT:
		if (i >= n)
			return 1;
		j = n - i; /* n < XVS_MAX_DESTS here: room for one more */
		if (j >= XVS_MAX_DESTS || j == 0)
			return 1;
		set->m[xvs_didx(j)] = set->m[xvs_didx(j - 1)];
		return 0;
	}
	if (i >= n)
		return 1;
	id = set->m[xvs_didx(i)].id;
	switch (s->phase) {
	case XVS_LBLCR_REFRESH:
		if (xvs_in_list(id, s->svc_id, &w))
			set->m[xvs_didx(i)].weight = w;
		return 0;
	case XVS_LBLCR_FIND:
		if (id == s->find_id) {
			s->found = i;
			return 1;
		}
		return 0;
	case XVS_LBLCR_MIN:
		/* not in the list (not AVAILABLE) or flagged overloaded: passed over */
		if (!xvs_in_list(id, s->svc_id, &w))
			return 0;
		st = bpf_map_lookup_elem(&xvs_real_state, &id);
		if (!st || st->overloaded)
			return 0;
		doh = (__s64)(((__u64)(__u32)st->active << 8) + (__u32)st->inactive);
		if (s->c1 < 0) {
			if (w > 0) {
				s->c1 = i;
				s->result = id;
				s->loh = doh;
				s->hw = w;
			}
		} else if (s->loh * (__s64)w > doh * (__s64)s->hw) {
			s->c1 = i;
			s->result = id;
			s->loh = doh;
			s->hw = w;
		}
		return 0;
	case XVS_LBLCR_MAX:
		/* members no longer listed: last seen weight, no connections */
		if (xvs_in_list(id, s->svc_id, &w)) {
			st = bpf_map_lookup_elem(&xvs_real_state, &id);
			doh = st ? (__s64)(((__u64)(__u32)st->active << 8) + (__u32)st->inactive) : 0;
		} else {
			w = set->m[xvs_didx(i)].weight;
			doh = 0;
		}
		mw = s->c2w;
		if (s->c2 < 0) {
			if (w > 0) {
				s->c2 = i;
				s->c2w = w;
				s->oh2 = doh;
			}
		} else if (s->oh2 * (__s64)w < doh * (__s64)mw && w > 0) {
			s->c2 = i;
			s->c2w = w;
			s->oh2 = doh;
		}
		return 0;
	}
	return 1;
}

static __always_inline void xvs_lblcr_walk(struct sctx *s, int phase)
{
	s->phase = phase;
	bpf_loop(XVS_MAX_DESTS, xvs_lblcr_cb, s, 0);
}

/* ip_vs_dest_set_insert(dest, check): at the head, unless already there. */
static __always_inline void xvs_lblcr_insert(struct sctx *s, __u32 id, __s32 w, __u64 now)
{
	struct lblcr_set *set = s->set;

	if (!set)
		return;
	s->find_id = id;
	s->found = -1;
	xvs_lblcr_walk(s, XVS_LBLCR_FIND);
	if (s->found >= 0 || set->n >= XVS_MAX_DESTS)
		return;
	xvs_lblcr_walk(s, XVS_LBLCR_RIGHT);
	set->m[0].id = id;
	set->m[0].weight = w;
	set->n++;
	set->lastmod = now;
}

static __always_inline __u32 xvs_sched_lblcr(struct sctx *s, __u64 now)
{
	struct xvs_config *cfg = xvs_cfg();
	struct lblcr_set *set, *en;
	struct xvs_scratch *sc;
	struct lbl_key *key;
	__u32 zero = 0, id, dest, pos;
	__s32 w;

	sc = bpf_map_lookup_elem(&xvs_scratch, &zero);
	set = bpf_map_lookup_elem(&xvs_lblcr_scratch, &zero);
	if (!set || !cfg || !sc)
		return 0;
	key = &sc->lk;
	__builtin_memset(key, 0, sizeof(*key));
	key->svc_id = s->svc_id;
	__builtin_memcpy(key->addr, sc->sched_daddr, 16);
	s->set = set;
	en = bpf_map_lookup_elem(&xvs_lblcr, key);
	if (!en) {
		id = xvs_lbl_wlc(s);
		if (!id)
			return 0;
		set->n = 1;
		set->pad = 0;
		set->lastuse = now;
		set->lastmod = now;
		set->m[0].id = id;
		set->m[0].weight = s->hw;
		/* a full cache takes no new entry */
		bpf_map_update_elem(&xvs_lblcr, key, set, BPF_NOEXIST);
		return id;
	}
	/* Edit a copy and swap it in whole (RCU): readers never see half a set. */
	set->n = en->n > XVS_MAX_DESTS ? XVS_MAX_DESTS : en->n;
	set->pad = 0;
	set->lastmod = en->lastmod;
	set->lastuse = now;
	s->src = en;
	xvs_lblcr_walk(s, XVS_LBLCR_COPY);
	s->src = NULL;
	xvs_lblcr_walk(s, XVS_LBLCR_REFRESH);
	s->c1 = -1;
	s->result = 0;
	xvs_lblcr_walk(s, XVS_LBLCR_MIN);
	dest = s->c1 >= 0 ? (__u32)s->result : 0;
	/* more than one member, unchanged for longer than the expiration: drop the busiest */
	if (set->n > 1 && now > set->lastmod + (__u64)cfg->lblcr_expiration * 1000000000ULL) {
		s->c2 = -1;
		s->c2w = 0;
		s->oh2 = 0;
		xvs_lblcr_walk(s, XVS_LBLCR_MAX);
		if (s->c2 >= 0) {
			pos = (__u32)s->c2;
			s->pos = pos;
			xvs_lblcr_walk(s, XVS_LBLCR_LEFT);
			if (set->n)
				set->n--;
			set->lastmod = now;
		}
	}
	/* the least loaded member is used even if it was just erased */
	if (dest && xvs_in_list(dest, s->svc_id, &w) && !xvs_lbl_overloaded(s, dest, w)) {
		bpf_map_update_elem(&xvs_lblcr, key, set, BPF_EXIST);
		return dest;
	}
	id = xvs_lbl_wlc(s);
	if (id)
		xvs_lblcr_insert(s, id, s->hw, now);
	bpf_map_update_elem(&xvs_lblcr, key, set, BPF_EXIST);
	return id;
}

/*
 * Picks the real server for a new connection (all but sh, dh, mh: see
 * xvs_sched_hash()); 0 when none can take it. lblc/lblcr read the packet's
 * destination address from xvs_scratch.sched_daddr (the caller's). A global BPF function: the verifier checks it once, on its own, rather
 * than along every path of the caller that reaches it (which made loading
 * slow), and its locals are in a frame of their own. Arguments are scalars
 * (meta: xvs_sched_meta()).
 */
__attribute__((noinline)) __u32 xvs_schedule(__u64 meta, __u64 now)
{
	struct sctx s = {};
	__u32 svc_id = (__u32)meta;
	__u32 sched = (meta >> 32) & 0xff;

	if (xvs_sched_is_hash(sched)) /* xvs_sched_hash() */
		return 0;

	s.l = bpf_map_lookup_elem(&xvs_dest_lists, &svc_id);
	if (!s.l)
		return 0;
	s.n = s.l->n;
	if (s.n > XVS_MAX_DESTS)
		s.n = XVS_MAX_DESTS;
	s.sched = sched;
	s.best = -1;
	s.start = -1;
	switch (sched) {
	case XVS_SCHED_RR:
		return xvs_sched_rr(&s, svc_id);
	case XVS_SCHED_WRR:
		return xvs_sched_wrr(&s, svc_id);
	case XVS_SCHED_LC:
	case XVS_SCHED_WLC:
	case XVS_SCHED_SED:
	case XVS_SCHED_NQ:
	case XVS_SCHED_FO:
	case XVS_SCHED_OVF:
		bpf_loop(XVS_MAX_DESTS, xvs_scan_cb, &s, 0);
		return s.best < 0 ? 0 : xvs_list_id(s.l, s.best);
	case XVS_SCHED_TWOS: {
		__u32 bound;

		bpf_loop(XVS_MAX_DESTS, xvs_twos_cb, &s, 0);
		if (s.best < 0)
			return 0;
		bound = (__u32)s.total + 1;
		s.r1 = (__s32)xvs_below(bound);
		s.r2 = (__s32)xvs_below(bound);
		s.c1 = -1;
		s.c2 = -1;
		s.phase = 1;
		bpf_loop(XVS_MAX_DESTS, xvs_twos_cb, &s, 0);
		if (s.c1 < 0) {
			/* the kernel's starting values; a draw always lands */
			s.c1 = s.best;
			s.c1w = -1;
			s.c1oh = 0;
		}
		if (s.c2 >= 0 && (__s32)((__u32)s.c2w * (__u32)s.c1oh) >
					 (__s32)((__u32)s.c1w * (__u32)s.c2oh))
			return xvs_list_id(s.l, s.c2);
		return xvs_list_id(s.l, s.c1);
	}
	case XVS_SCHED_LBLC:
		s.svc_id = svc_id;
		return xvs_sched_lblc(&s, now);
	case XVS_SCHED_LBLCR:
		s.svc_id = svc_id;
		return xvs_sched_lblcr(&s, now);
	default:
		return 0;
	}
}

#endif /* XVS_SCHED_H */
