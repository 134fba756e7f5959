// SPDX-License-Identifier: GPL-2.0-only
/*
 * xvs datapath: XDP and tc (clsact ingress) programs.
 *
 * The packet path of ip_vs_in()/ip_vs_out() as xvs_core::director models it:
 *
 *   client packet   -> connection lookup (client -> VIP tuple); a SYN on a
 *                      finished entry replaces it (conn_reuse_mode); a
 *                      connection whose real server was removed is dropped
 *                      (or expired, with expire_nodest_conn); otherwise a
 *                      new connection (TCP SYN without RST, any UDP) to a
 *                      service is scheduled in kernel. The entry counts the
 *                      packet and takes its TCP state transition; then DR
 *                      rewrites the MACs and NAT also rewrites the
 *                      destination address and port; TUN encapsulates.
 *   NAT reply       -> found by the reply index (real server -> client),
 *                      counted, OUTPUT transition, source rewritten to the
 *                      VIP and port, sent to the client's next hop.
 *
 * Next hops come from user space (struct real.mac etc.) or, when it gives
 * none, from the kernel's FIB and neighbour tables (bpf_fib_lookup), which
 * needs forwarding enabled on the ingress device.
 *
 * IPv4 and IPv6 alike (a service's real servers are of its family).
 * Everything else (other traffic, ARP, ...) passes untouched.
 * Malformed and fragmented packets pass untouched and are counted.
 *
 * Expiry is lazy: an entry found past its deadline is freed on the spot and
 * the lookup misses. User space sweeps the rest (Datapath::expire) by running
 * xvs_expire for each expired key, so the counts are only ever changed by
 * BPF code, atomically, and only by whoever's delete succeeded.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "include/structs.h"
#include "include/maps.h"
#include "include/parse.h"
#include "include/csum.h"
#include "include/sched.h"
#include "include/encap.h"
#include "tcp_states.h"

char _license[] SEC("license") = "GPL";

#define XVS_NSEC 1000000000ULL
#define XVS_TCP_FIN 0x01
#define XVS_TCP_SYN 0x02
#define XVS_TCP_RST 0x04
#define XVS_TCP_ACK 0x10
/* ip_vs_conn_new(): a fresh entry's timeout until its first transition */
#define XVS_INITIAL_TIMEOUT 3
/* FTPPORT (persistent services on it get port-less templates), FTPDATA */
#define XVS_FTP_PORT 21
#define XVS_FTP_DATA_PORT 20

enum xvs_action {
	XVS_ACT_PASS,
	XVS_ACT_DROP_NODEST,
	XVS_ACT_DROP_UNAVAIL,
	XVS_ACT_DROP_FULL,
	XVS_ACT_FORWARD,
	XVS_ACT_REPLY,
};

/*
 * decision.cached for a TUN flow XDP sends from its cache entry alone (rs
 * NULL): IPIP over IPv4, the tunnel source and next hop from the FIB,
 * new_port the tunnel's MTU (host order; 0: no check).
 */
#define XVS_CACHED_TUN_FIB 2

/* What to do with a packet, besides the action. */
struct decision {
	/* FORWARD: the real server, when forwarding needs its configuration
	 * (a new connection, an explicit next hop, a tunnel); NULL: the next
	 * hop comes from the FIB for new_addr */
	struct real *rs;
	__be32 new_addr[4]; /* FORWARD: real server address; REPLY: the VIP (IPv4 in [0]) */
	__be16 new_port;    /* FORWARD: real server port; REPLY: the virtual port */
	__u8 fwd;           /* XVS_FWD_* */
	__u8 family;        /* FORWARD: of new_addr */
	__u8 steady;        /* the packet may fill the flow cache (xvs_steady()) */
	__u8 cached;        /* FORWARD: from the flow cache (1, or XVS_CACHED_TUN_FIB) */
	__u16 hz;           /* ticks of the caches' clock a second (xvs_config.hz) */
	__u64 tick;         /* the flow and hop caches' clock (xvs_tick()) at the decision */
};

/*
 * An address folded to 32 bits as the IPVS hashing schedulers do (IPv6: the
 * XOR of its four words; IPv4, whose other words are 0: itself), still in
 * network order (xvs_core::sched::hash::fold_addr before its ntohl).
 */
static __always_inline __be32 xvs_fold(const __be32 *a)
{
	return a[0] ^ a[1] ^ a[2] ^ a[3];
}

/* The clock: bpf_ktime_get_coarse_ns(), or the test hook's fixed time. */
/* Timers are in seconds: the coarse clock (CLOCK_MONOTONIC_COARSE, one
 * tick of resolution, same epoch as CLOCK_MONOTONIC) is plenty, and much
 * cheaper than reading the clocksource on every packet. */
static __always_inline __u64 xvs_now(struct xvs_config *cfg)
{
	if (cfg && cfg->now_ns)
		return cfg->now_ns;
	return bpf_ktime_get_coarse_ns();
}

/*
 * Token bucket slot (XVS_RL_*) of this CPU: 1 if one more message may go
 * now, taking cost ns of credit (at most burst messages' worth builds up);
 * 0 if not, counted in its missed. *missed (when not NULL) gets the count
 * refused since the last message allowed, which starts again from 0.
 */
static __always_inline int xvs_rl_allow(__u32 slot, __u64 burst, __u64 cost, __u64 *missed)
{
	struct xvs_config *cfg = xvs_cfg();
	struct xvs_rl *rl;
	__u64 now, credit;

	rl = bpf_map_lookup_elem(&xvs_rl, &slot);
	if (!rl || !cfg)
		return 0;
	now = xvs_now(cfg);
	credit = rl->credit + (now - rl->last);
	if (now < rl->last || credit > burst * cost)
		credit = burst * cost;
	rl->last = now;
	if (credit < cost) {
		rl->credit = credit;
		rl->missed++;
		return 0;
	}
	rl->credit = credit - cost;
	if (missed)
		*missed = rl->missed;
	rl->missed = 0;
	return 1;
}

/*
 * Events (struct xvs_event) go to user space at most XVS_EVENT_BURST in a
 * burst and then one each XVS_EVENT_COST_NS, per CPU (net_ratelimit()'s
 * 10 in 5 s, per CPU); the daemon logs each.
 */
#define XVS_EVENT_BURST 10
#define XVS_EVENT_COST_NS (XVS_NSEC / 2)

/* defined with the scheduling code below */
static __always_inline struct svc_info *xvs_find_service(struct pkt *p, __u32 mark, int *fwmark,
							 __be16 *svc_port);

/*
 * Tells user space that a new connection (packet p, firewall mark mark)
 * found no real server (XVS_ACT_DROP_NODEST), as the kernel's IPVS logs
 * it. Finds the service again: a subprogram called from the programs'
 * top, so the scheduling path's frames stay as they are, and a rare one.
 */
static __attribute__((noinline)) int xvs_event_nodest(struct pkt *p, __u32 mark)
{
	struct svc_info *si;
	struct xvs_event *e;
	__be16 svc_port = 0;
	__u64 missed = 0;
	int fwmark = 0;

	if (!p)
		return 0;
	si = xvs_find_service(p, mark, &fwmark, &svc_port);
	if (!si || !xvs_rl_allow(XVS_RL_EVENT, XVS_EVENT_BURST, XVS_EVENT_COST_NS, &missed))
		return 0;
	e = bpf_ringbuf_reserve(&xvs_events, sizeof(*e), 0);
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	e->type = XVS_EV_NO_DEST;
	e->family = p->family;
	e->proto = p->proto;
	e->svc_id = si->id;
	e->sched = (__u8)si->sched;
	e->suppressed = missed > 0xffffffff ? 0xffffffff : (__u32)missed;
	if (fwmark) {
		e->fwmark = mark;
	} else {
		e->port = svc_port;
		__builtin_memcpy(e->addr, p->daddr, sizeof(e->addr));
	}
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/*
 * The flow and hop caches' clock: jiffies, cfg->hz a second. The verifier
 * turns bpf_jiffies64() into a load (bpf_ktime_get_coarse_ns() is a call,
 * which an established flow's packet would otherwise make for nothing
 * else). Under the now_ns test hook, derived from it. User space measures
 * HZ; were it ever set too low, the caches would only keep entries for
 * less time than meant, never more.
 */
static __always_inline __u64 xvs_tick(struct xvs_config *cfg)
{
	if (cfg->now_ns)
		return cfg->now_ns / XVS_NSEC * cfg->hz +
		       (cfg->now_ns % XVS_NSEC) * cfg->hz / XVS_NSEC;
	return bpf_jiffies64();
}

/* Counters ---------------------------------------------------------------- */

static __always_inline void xvs_stats_add(struct xvs_stats *s, int in, __u32 len, __u32 pkts)
{
	if (!s)
		return;
	if (in) {
		s->inpkts += pkts;
		s->inbytes += len;
	} else {
		s->outpkts += pkts;
		s->outbytes += len;
	}
}

/* Real server id's XVS_LIVE_* flags (0: no such server). */
static __always_inline __u32 xvs_live(__u32 real_id)
{
	__u32 *v = bpf_map_lookup_elem(&xvs_real_live, &real_id);

	return v ? *v : 0;
}

/* ip_vs_in_stats()/ip_vs_out_stats(): only while the real server is listed
 * (live: its xvs_live() flags); pkts packets (0: bytes only) of len bytes. */
static __always_inline void xvs_count_io(__u32 live, __u32 real_id, __u32 svc_id, __u32 len,
					 int in, __u32 pkts)
{
	__u32 zero = 0;

	if (!(live & XVS_LIVE_F_AVAILABLE))
		return;
	xvs_stats_add(bpf_map_lookup_elem(&xvs_real_stats, &real_id), in, len, pkts);
	xvs_stats_add(bpf_map_lookup_elem(&xvs_svc_stats, &svc_id), in, len, pkts);
	xvs_stats_add(bpf_map_lookup_elem(&xvs_total_stats, &zero), in, len, pkts);
}

static __always_inline void xvs_count_pkt(__u32 live, __u32 real_id, __u32 svc_id, __u32 len,
					  int in)
{
	xvs_count_io(live, real_id, svc_id, len, in, 1);
}

/* ip_vs_conn_stats() */
static __always_inline void xvs_count_conn(__u32 real_id, __u32 svc_id)
{
	struct xvs_stats *s;
	__u32 zero = 0;

	s = bpf_map_lookup_elem(&xvs_real_stats, &real_id);
	if (s)
		s->conns++;
	s = bpf_map_lookup_elem(&xvs_svc_stats, &svc_id);
	if (s)
		s->conns++;
	s = bpf_map_lookup_elem(&xvs_total_stats, &zero);
	if (s)
		s->conns++;
}

/* Dest::update_overload(): the -x/-y rule after a bind or an unbind. */
static __always_inline void xvs_update_overload(struct real_state *st, struct real *r, int bound)
{
	__u64 total = (__u64)(__u32)st->active + (__u32)st->inactive;
	__u64 upper = r->u_threshold, lower = r->l_threshold;

	if (bound) {
		if (upper && total >= upper)
			st->overloaded = 1;
	} else if (lower) {
		if (total < lower)
			st->overloaded = 0;
	} else if (upper) {
		if (total * 4 < upper * 3)
			st->overloaded = 0;
	} else {
		st->overloaded = 0;
	}
}

/*
 * Adds to a real server's ActiveConn/InActConn; bound is 1 after a bind,
 * 0 after an unbind (the overload rule runs), -1 for a state change.
 */
static __always_inline void xvs_real_add3(__u32 id, int d_active, int d_inactive, int d_persist,
					   int bound)
{
	struct real_state *st = bpf_map_lookup_elem(&xvs_real_state, &id);
	struct real *r;

	if (!st)
		return;
	if (d_persist)
		__sync_fetch_and_add(&st->persist, d_persist);
	if (d_active)
		__sync_fetch_and_add(&st->active, d_active);
	if (d_inactive)
		__sync_fetch_and_add(&st->inactive, d_inactive);
	if (bound < 0)
		return;
	r = bpf_map_lookup_elem(&xvs_reals, &id);
	if (r)
		xvs_update_overload(st, r, bound);
}

static __always_inline void xvs_real_add(__u32 id, int d_active, int d_inactive, int bound)
{
	xvs_real_add3(id, d_active, d_inactive, 0, bound);
}

/* Templates ---------------------------------------------------------------- */

/* ip_vs_conn_expire() with CONTROL_RETRY: a template still controlling
 * connections is kept, with a 60 s timeout from then on. */
#define XVS_CONTROL_RETRY 60

/*
 * A template's timer ran out (at t->expires <= now): frees it unless it
 * still controls connections, in which case its timeout becomes 60 s and the
 * timer restarts from the deadline. force: free it anyway. catch_up: restart
 * it as often as a kernel timer firing on time would have by now (the lazy
 * path of a packet); otherwise once (the sweep, which runs the due entries
 * in deadline order and comes back to it if it is still due). Returns 1 if
 * this call freed it.
 */
static __always_inline int xvs_tpl_expire(__u32 tid, struct tpl *t, __u64 now, int force,
					  int catch_up)
{
	struct tpl_key key;
	__u32 *idx, rid;

	if (!force && t->n_control) {
		__u64 step = (__u64)XVS_CONTROL_RETRY * XVS_NSEC;

		t->timeout = XVS_CONTROL_RETRY;
		if (catch_up && t->expires <= now)
			t->expires += ((now - t->expires) / step + 1) * step;
		else
			t->expires += step;
		return 0;
	}
	key = t->key;
	rid = t->real_id;
	if (bpf_map_delete_elem(&xvs_tpls, &tid))
		return 0;
	idx = bpf_map_lookup_elem(&xvs_tpl_index, &key);
	if (idx && *idx == tid)
		bpf_map_delete_elem(&xvs_tpl_index, &key);
	xvs_real_add3(rid, 0, 0, -1, 0);
	return 1;
}

/* ip_vs_check_template() without a required dest. */
static __always_inline int xvs_tpl_valid(struct tpl *t, struct xvs_config *cfg)
{
	__u32 rid = t->real_id;
	struct real *r = bpf_map_lookup_elem(&xvs_reals, &rid);

	if (!r || !(r->flags & XVS_REAL_F_AVAILABLE))
		return 0;
	if (cfg->expire_quiescent_template && r->weight == 0)
		return 0;
	return 1;
}

/* A connection under template tid was freed: ip_vs_control_del(). */
static __always_inline void xvs_control_del(__u32 tid)
{
	struct tpl *t;

	if (!tid)
		return;
	t = bpf_map_lookup_elem(&xvs_tpls, &tid);
	if (t && t->n_control)
		__sync_fetch_and_add(&t->n_control, -1);
}

/* Connections ------------------------------------------------------------- */

static __always_inline int xvs_key_eq(const struct conn_key *a, const struct conn_key *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;
	__u64 d = 0;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*a) / 8); i++)
		d |= x[i] ^ y[i];
	return d == 0;
}

/* The flow cache ------------------------------------------------------------
 *
 * A set-associative cache (XVS_FLOW_WAYS ways), one region per CPU, in
 * front of xvs_conns for the bulk of an established IPv4 connection's
 * packets: a packet that finds its flow here is forwarded and counted
 * without a hash-map lookup (helper calls, and on a big table a TLB and
 * cache miss on its bucket array): mostly one cache line, no call. An entry is
 * filled from xvs_conns by a packet that needed no state change (UDP; TCP
 * in ESTABLISHED, a bare ACK) toward an IPv4 real server forwarded to by
 * DR, NAT or TUN, and is trusted for a second (cfg->hz ticks of
 * xvs_tick()) at most, never past its connection's deadline as it stood
 * then, and only while:
 *   - its generation is current: every connection taken out of the table
 *     before its time (replaced, its server gone, flushed), on any CPU,
 *     moves xvs_flow_gen on (see xvs_flow_forget());
 *   - its real server is listed (xvs_real_live); one whose forwarding
 *     needs its configuration (a tunnel, an explicit next hop:
 *     XVS_LIVE_F_REAL) has it looked up in xvs_reals, a small table, and
 *     must be there (in XDP, an XVS_FLOW_TUN_FIB entry carries what it
 *     needs of it instead);
 *   - the packet needs no state change either (xvs_steady()).
 * A hit skips the connection's timer restart: the next packet after the
 * entry's time is up takes the full path, which restarts it; so an active
 * connection's timer in xvs_conns lags its last packet by at most
 * a second (what ipvsadm -Lc shows can be up to a second short).
 * IPv6 connections are not cached (their key alone is 40 bytes).
 */

static __always_inline __u32 xvs_flow_generation(void)
{
	__u32 zero = 0;
	__u64 *g = bpf_map_lookup_elem(&xvs_flow_gen, &zero);

	return g ? (__u32)*(volatile __u64 *)g : 0;
}

/*
 * A connection was taken out of the table before its time (replaced, its
 * real server gone, flushed): every CPU's cached flows are retired. (One
 * freed by its timer needs nothing: an entry is never trusted past the
 * deadline its connection had when it was filled, and a deadline brought
 * forward since by a state change can only leave a late packet going, for
 * at most a second, where its connection went.)
 */
static __always_inline void xvs_flow_forget(void)
{
	__u32 zero = 0;
	__u64 *g = bpf_map_lookup_elem(&xvs_flow_gen, &zero);

	if (g)
		__sync_fetch_and_add(g, 1);
}

/* Packets that change nothing in an established connection: UDP, and TCP
 * segments with ACK and none of SYN, FIN, RST. IPv4 only (see above); not
 * SCTP (its chunks are not looked at past the first two). */
static __always_inline int xvs_steady(const struct pkt *p)
{
	if (p->family != XVS_AF_INET || p->frag)
		return 0;
	if (p->proto == IPPROTO_UDP)
		return 1;
	if (p->proto != IPPROTO_TCP)
		return 0;
	return (p->tcp_flags & (XVS_TCP_SYN | XVS_TCP_FIN | XVS_TCP_RST | XVS_TCP_ACK)) ==
	       XVS_TCP_ACK;
}

/* The first entry of packet p's set, in this CPU's region. */
static __always_inline __u32 xvs_flow_base(const struct pkt *p, __u32 sets)
{
	__u32 h = p->saddr[0] * 0x9e3779b1;

	h ^= p->daddr[0];
	h ^= (((__u32)p->sport << 16) | p->dport) * 0x85ebca6b;
	h ^= p->proto;
	h ^= h >> 16;
	h *= 0x7feb352d;
	h ^= h >> 15;
	return (bpf_get_smp_processor_id() * sets + (h & (sets - 1))) * XVS_FLOW_WAYS;
}

static __always_inline int xvs_flow_is(const struct xvs_flow *f, const struct pkt *p)
{
	return f->saddr == p->saddr[0] && f->daddr == p->daddr[0] && f->sport == p->sport &&
	       f->dport == p->dport && f->proto == p->proto;
}

/* The largest HZ Linux is built with (user space never sets more). */
#define XVS_HZ_MAX 1000

/* Whether entry f may be used at tick t, generation gen: its time left is
 * 1 to XVS_HZ_MAX + 1 ticks (a fill gives it at most hz, +1 for the bit
 * that keeps until from 0). Not "until is ahead of t" by a signed
 * difference, which an entry left alone for 2^31 ticks (25 days at
 * HZ=1000) would pass again, for as long; this one only for a second or
 * so once the clock has gone round 2^32. */
static __always_inline int xvs_flow_live(const struct xvs_flow *f, __u32 t, __u32 gen)
{
	return f->until && f->until - t - 1 <= XVS_HZ_MAX && f->gen == gen;
}

/* The entry of packet p's flow in this CPU's region, live or not, or NULL
 * (a flow has one at most: xvs_flow_fill() reuses it). */
static __always_inline struct xvs_flow *xvs_flow_entry(const struct pkt *p,
						       struct xvs_config *cfg)
{
	__u32 base = xvs_flow_base(p, cfg->flow_sets);

#pragma unroll
	for (int w = 0; w < XVS_FLOW_WAYS; w++) {
		__u32 i = base + w;
		struct xvs_flow *f = bpf_map_lookup_elem(&xvs_flow_cache, &i);

		if (!f)
			return NULL;
		if (xvs_flow_is(f, p))
			return f;
	}
	return NULL;
}

/* The cached flow of steady packet p at tick t, or NULL. */
static __always_inline struct xvs_flow *xvs_flow_find(const struct pkt *p, struct xvs_config *cfg,
						      __u64 t, __u32 gen)
{
	struct xvs_flow *f = xvs_flow_entry(p, cfg);

	return f && xvs_flow_live(f, (__u32)t, gen) ? f : NULL;
}

/* The real server id of packet p's flow in this CPU's region, 0 if it has
 * none: for an XVS_CACHED_TUN_FIB hit that needs the general path after
 * all (same program run, same CPU: the entry is still there). A
 * subprogram: the rare path's ways stay off xvs_xdp's frame. */
static __attribute__((noinline)) __u32 xvs_flow_real_id(const struct pkt *p)
{
	struct xvs_config *cfg = xvs_cfg();
	struct xvs_flow *f;

	if (!cfg)
		return 0;
	f = xvs_flow_entry(p, cfg);
	return f ? f->real_id : 0;
}

/* Forgets packet p's flow in this CPU's region (p: IPv4). */
static __always_inline void xvs_flow_drop(const struct pkt *p, struct xvs_config *cfg)
{
	struct xvs_flow *f = xvs_flow_entry(p, cfg);

	if (f)
		f->until = 0;
}

static __always_inline int xvs_mac_zero(const __u8 *m)
{
	return !(m[0] | m[1] | m[2] | m[3] | m[4] | m[5]);
}

/*
 * A cached TUN flow that XDP sends with nothing but the entry and the FIB
 * (see xvs_flow_tun_fib()): the flag is in xvs_flow.fwd, the tunnel's MTU
 * in xvs_flow.rport (a tunnel leaves the ports as they are).
 */
#define XVS_FLOW_TUN_FIB 0x80

/*
 * What connection c's cache entry may carry of real server r's tunnel,
 * for xvs_flow_fill(): XVS_FLOW_TUN_FIB << 16 | the MTU when r is an IPv4
 * IPIP tunnel whose source and next hop come from the FIB (no tunnel
 * source, no MAC configured), else 0. The entry then stands for r's
 * configuration as it was: user space retires every cached flow
 * (XVS_CTL_FORGET_FLOWS) when it changes a real server's.
 */
static __always_inline __u32 xvs_flow_tun_fib(const struct conn *c, const struct real *r)
{
	if (c->fwd != XVS_FWD_TUNNEL || !r || r->family != XVS_AF_INET ||
	    r->tun_type != XVS_TUN_IPIP || r->tun_saddr[0] || !xvs_mac_zero(r->mac))
		return 0;
	return XVS_FLOW_TUN_FIB << 16 | r->tun_mtu;
}

/* Caches connection c of packet p (r: its real server's configuration,
 * or NULL) as of now (ns) and tick_gen (the caches' clock in the high 32
 * bits, the flow generation read before c was looked up in the low ones:
 * five arguments at most), in the way of its set it already has, else an
 * empty or stale one, else one picked by the clock's low bits. Trusted
 * for a second, and never past c's deadline as it stands. A subprogram:
 * its ways unrolled in xvs_decide_slow() took the scheduler's call chain
 * past the verifier's 512-byte stack. */
static __attribute__((noinline)) void xvs_flow_fill(const struct pkt *p, const struct conn *c,
						   const struct real *r, __u64 now,
						   __u64 tick_gen)
{
	struct xvs_config *cfg = xvs_cfg();
	__u32 gen = (__u32)tick_gen, t = (__u32)(tick_gen >> 32), base, victim, tun;
	__u32 stale = ~0U;
	__u64 ticks;
	struct xvs_flow *f;

	if (!cfg || c->expires <= now)
		return;
	ticks = cfg->hz;
	if (c->expires - now < XVS_NSEC)
		ticks = (c->expires - now) * cfg->hz / XVS_NSEC;
	if (!ticks)
		return;
	base = xvs_flow_base(p, cfg->flow_sets);
	victim = base + (t & (XVS_FLOW_WAYS - 1));
	tun = xvs_flow_tun_fib(c, r);

#pragma unroll
	for (int w = 0; w < XVS_FLOW_WAYS; w++) {
		__u32 i = base + w;

		f = bpf_map_lookup_elem(&xvs_flow_cache, &i);
		if (!f)
			return;
		if (xvs_flow_is(f, p)) {
			stale = i;
			break;
		}
		if (stale == ~0U && !xvs_flow_live(f, t, gen))
			stale = i;
	}
	if (stale != ~0U)
		victim = stale;
	f = bpf_map_lookup_elem(&xvs_flow_cache, &victim);
	if (!f)
		return;
	f->saddr = p->saddr[0];
	f->daddr = p->daddr[0];
	f->sport = p->sport;
	f->dport = p->dport;
	f->proto = p->proto;
	f->fwd = c->fwd | (__u8)(tun >> 16);
	f->rport = tun ? (__u16)tun : c->dport;
	f->raddr = c->daddr[0];
	f->until = (t + (__u32)ticks) | 1; /* never 0 (empty) */
	f->gen = gen;
	f->real_id = c->real_id;
}

/* The reply-index key of connection (k, c): real server -> client. */
static __always_inline void xvs_out_key(struct conn_key *ok, const struct conn_key *k,
					const struct conn *c)
{
	__builtin_memcpy(ok->saddr, c->daddr, 16);
	__builtin_memcpy(ok->daddr, k->saddr, 16);
	ok->sport = c->dport;
	ok->dport = k->sport;
	ok->proto = k->proto;
	ok->family = k->family;
	ok->pad = 0;
}

/*
 * Frees a connection and unbinds it from its real server. Only the caller
 * whose delete succeeded changes the counts, so a packet on another CPU and
 * the user-space sweep can race on the same entry without double counting.
 * Returns 1 if this call freed it.
 */
static __always_inline void xvs_unbind(struct unbind *u)
{
	if (!u->real_id)
		return;
	xvs_control_del(u->control);
	u->control = 0;
	if (u->flags & XVS_CONN_F_INACTIVE)
		xvs_real_add(u->real_id, 0, -1, 0);
	else
		xvs_real_add(u->real_id, -1, 0, 0);
	u->real_id = 0;
}

/*
 * Takes a connection out of the table. If this call's delete succeeded, *u
 * says what to unbind (xvs_unbind) and 1 is returned; the caller may unbind
 * later, as the kernel's ip_vs_conn_expire_now() leaves an entry counted
 * until its timer runs.
 * now: the clock; one taken out before its deadline retires the flow
 * cache (xvs_flow_forget()).
 */
static __always_inline int xvs_conn_unlink(struct conn_key *k, struct conn *c, struct unbind *u,
					   __u64 now)
{
	struct conn_key *idx, *ok;
	struct xvs_scratch *sc;
	__u32 real_id = c->real_id, control = c->control, zero = 0;
	__u8 flags = c->flags, fwd = c->fwd;
	__u64 c_expires = c->expires;

	sc = bpf_map_lookup_elem(&xvs_scratch, &zero);
	if (!sc)
		return 0;
	ok = &sc->uk;
	xvs_out_key(ok, k, c);
	if (bpf_map_delete_elem(&xvs_conns, k))
		return 0;
	if (c_expires > now)
		xvs_flow_forget(); /* before its time */
	if (fwd == XVS_FWD_MASQ) {
		idx = bpf_map_lookup_elem(&xvs_conns_out, ok);
		if (idx && xvs_key_eq(idx, k))
			bpf_map_delete_elem(&xvs_conns_out, ok);
	}
	u->real_id = real_id;
	u->control = control;
	u->flags = flags;
	return 1;
}

static __always_inline int xvs_conn_free(struct conn_key *k, struct conn *c, __u64 now)
{
	struct unbind u = {};

	if (!xvs_conn_unlink(k, c, &u, now))
		return 0;
	xvs_unbind(&u);
	return 1;
}

/* A TCP segment's row of xvs_tcp_next (-1: none of RST, SYN, FIN, ACK);
 * an SCTP packet's: its event. */
static __always_inline int xvs_state_row(int sctp, __u8 tcp_flags)
{
	if (sctp)
		return tcp_flags & XVS_SCTP_EV_MASK;
	if (tcp_flags & XVS_TCP_RST)
		return 3;
	if (tcp_flags & XVS_TCP_SYN)
		return 0;
	if (tcp_flags & XVS_TCP_FIN)
		return 1;
	if (tcp_flags & XVS_TCP_ACK)
		return 2;
	return -1;
}

/* The next state (TCP: CLOSE for a segment without a row or from a state
 * out of range; SCTP: CLOSED likewise). */
static __always_inline __u8 xvs_state_next(int sctp, int table, int row, __u8 cur)
{
	if (sctp) {
		if (row < 0 || row >= XVS_SCTP_EVENTS || cur >= XVS_SCTP_STATES)
			return XVS_SCTP_S_CLOSED;
		return xvs_sctp_next[table][row][cur];
	}
	if (row < 0 || row > 3 || cur >= XVS_TCP_STATES)
		return XVS_TCP_S_CLOSE;
	return xvs_tcp_next[table][row][cur];
}

/* A state's timeout in seconds (TCP's are set by ipvsadm --set). */
static __always_inline __u32 xvs_state_timeout(int sctp, struct xvs_config *cfg, __u8 st)
{
	if (sctp)
		return st < XVS_SCTP_STATES ? xvs_sctp_timeout[st] : 2;
	return cfg->tcp_timeout[st & 15];
}

/*
 * ip_vs_set_state(): the protocol's transition for one packet, with the
 * active/inactive accounting, and the timer restarted at now + timeout.
 * TCP and SCTP have their tables; UDP one state.
 */
static __always_inline void xvs_conn_transition(struct conn *c, struct xvs_config *cfg, int output,
						__u8 proto, __u8 tcp_flags, __u64 now)
{
	int d_active = 0, d_inactive = 0;
	__u32 real_id = c->real_id;
	int sctp = proto == IPPROTO_SCTP;
	__u32 timeout;

	/* UDP has one state: only the timer moves, and racing writers of the
	 * same kind of value need no lock. */
	if (proto != IPPROTO_TCP && !sctp) {
		c->expires = now + (__u64)cfg->udp_timeout * XVS_NSEC;
		return;
	}
	/* Fast path: a segment that leaves the state as it is (the bulk of an
	 * established flow) only restarts the timer, without the lock. If
	 * another CPU changed the state meanwhile, the locked path below runs
	 * this segment again after its change, as if the two were serialized
	 * in that order. */
	{
		__u8 cur = *(volatile __u8 *)&c->state;
		__u8 flags = *(volatile __u8 *)&c->flags;
		int table = output ? 1 : ((flags & XVS_CONN_F_NO_OUTPUT) ? 2 : 0);
		int row = xvs_state_row(sctp, tcp_flags);

		if (row >= 0 && !(output && (flags & XVS_CONN_F_NO_OUTPUT)) &&
		    xvs_state_next(sctp, table, row, cur) == cur) {
			timeout = xvs_state_timeout(sctp, cfg, cur);
			c->expires = now + (__u64)timeout * XVS_NSEC;
			if (*(volatile __u8 *)&c->state == cur)
				return;
		}
	}

	/* No helper calls inside: the counts change after the unlock. */
	bpf_spin_lock(&c->lock);
	{
		int table, row = xvs_state_row(sctp, tcp_flags);
		__u8 cur = c->state, nw;

		if (output) {
			c->flags &= ~XVS_CONN_F_NO_OUTPUT;
			table = 1;
		} else {
			table = (c->flags & XVS_CONN_F_NO_OUTPUT) ? 2 : 0;
		}
		nw = xvs_state_next(sctp, table, row, cur);
		if (nw != c->state) {
			int active = sctp ? (nw < XVS_SCTP_STATES && xvs_sctp_active[nw])
					  : (nw < XVS_TCP_STATES && xvs_tcp_active[nw]);

			if (!(c->flags & XVS_CONN_F_INACTIVE) && !active) {
				d_active = -1;
				d_inactive = 1;
				c->flags |= XVS_CONN_F_INACTIVE;
			} else if ((c->flags & XVS_CONN_F_INACTIVE) && active) {
				d_active = 1;
				d_inactive = -1;
				c->flags &= ~XVS_CONN_F_INACTIVE;
			}
		}
		c->state = nw;
		timeout = xvs_state_timeout(sctp, cfg, nw);
	}
	c->expires = now + (__u64)timeout * XVS_NSEC;
	bpf_spin_unlock(&c->lock);
	if (d_active || d_inactive)
		xvs_real_add(real_id, d_active, d_inactive, -1);
}

/* is_new_conn(): a packet that opens a connection, a TCP SYN or an SCTP
 * INIT (never UDP). */
static __always_inline int xvs_is_new_conn(const struct pkt *p)
{
	if (p->proto == IPPROTO_TCP)
		return !!(p->tcp_flags & XVS_TCP_SYN);
	if (p->proto == IPPROTO_SCTP)
		return (p->tcp_flags & XVS_SCTP_EV_MASK) == XVS_SCTP_EV_INIT;
	return 0;
}

/* ip_vs_service_find(): fwmark first, then <proto, VIP, port>, then port 0. */
static __always_inline struct svc_info *xvs_find_service(struct pkt *p, __u32 mark, int *fwmark,
							 __be16 *svc_port)
{
	struct svc_key sk = {};
	struct svc_info *si;

	*fwmark = 0;
	if (mark) {
		sk.addr[0] = mark;
		sk.family = p->family;
		si = bpf_map_lookup_elem(&xvs_services, &sk);
		if (si) {
			*fwmark = 1;
			*svc_port = 0;
			return si;
		}
	}
	__builtin_memcpy(sk.addr, p->daddr, 16);
	sk.port = p->dport;
	sk.proto = p->proto;
	sk.family = p->family;
	si = bpf_map_lookup_elem(&xvs_services, &sk);
	if (si) {
		*svc_port = sk.port;
		return si;
	}
	sk.port = 0;
	*svc_port = 0;
	return bpf_map_lookup_elem(&xvs_services, &sk);
}

/* The template key ip_vs_sched_persist() builds for a packet (template_key()). */
static __always_inline void xvs_tpl_key(struct tpl_key *tk, struct pkt *p, struct svc_info *si,
					__u32 mark, int fwmark, __be16 svc_port)
{
	if (p->family == XVS_AF_INET6) {
		/* -M is a prefix length for IPv6 (mask_client()) */
		__u32 plen = si->netmask;

#pragma unroll
		for (int i = 0; i < 4; i++) {
			__u32 lo = 32 * (__u32)i, m;
			__u32 bits = plen > lo ? plen - lo : 0;

			if (bits > 32)
				bits = 32;
			m = bits == 0 ? 0 : (bits == 32 ? 0xffffffffU : ~0U << (32 - bits));
			tk->caddr[i] = p->saddr[i] & bpf_htonl(m);
		}
		__builtin_memcpy(tk->vaddr, p->daddr, 16);
	} else {
		tk->caddr[0] = p->saddr[0] & bpf_htonl(si->netmask);
		tk->vaddr[0] = p->daddr[0];
	}
	tk->proto = p->proto;
	tk->family = p->family;
	if (p->dport == svc_port) {
		if (svc_port != bpf_htons(XVS_FTP_PORT))
			tk->vport = p->dport;
	} else if (fwmark) {
		tk->proto = 0; /* IPPROTO_IP */
		__builtin_memset(tk->vaddr, 0, sizeof(tk->vaddr));
		tk->vaddr[0] = bpf_htonl(mark);
	}
}

/*
 * ip_vs_ct_in_get() + ip_vs_check_template(): the valid template for tk, or
 * NULL. A template past its deadline gets what its timer would have done; an
 * invalid one is taken out of the index (it keeps its count and timer).
 */
static __always_inline struct tpl *xvs_tpl_find(struct tpl_key *tk, struct xvs_config *cfg,
						 __u64 now, __u32 *tidp)
{
	struct tpl *t;
	__u32 *idp, tid;

	idp = bpf_map_lookup_elem(&xvs_tpl_index, tk);
	if (!idp)
		return NULL;
	tid = *idp;
	t = bpf_map_lookup_elem(&xvs_tpls, &tid);
	if (t && t->expires <= now && xvs_tpl_expire(tid, t, now, 0, 1))
		t = NULL;
	if (t && !xvs_tpl_valid(t, cfg)) {
		t->dport = 0xffff;
		t->flags |= XVS_TPL_F_INVALID;
		bpf_map_delete_elem(&xvs_tpl_index, tk);
		t = NULL;
	}
	*tidp = tid;
	return t;
}

/* A new template for tk bound to real server r (PersistConn +1). */
static __always_inline struct tpl *xvs_tpl_create(struct xvs_scratch *sc, struct svc_info *si,
						   struct real *r, __u32 rid, __u64 now)
{
	struct tpl_key *tk = &sc->tk;
	struct tpl *ntp = &sc->nt;
	__u32 tid, k = XVS_SEQ_TPL;
	__u64 *seq;

	seq = bpf_map_lookup_elem(&xvs_seq, &k);
	if (!seq)
		return NULL;
	__builtin_memset(ntp, 0, sizeof(*ntp));
	tid = (__u32)__sync_fetch_and_add(seq, 1) + 1;
	if (!tid)
		tid = (__u32)__sync_fetch_and_add(seq, 1) + 1;
	ntp->expires = now + (__u64)si->timeout * XVS_NSEC;
	ntp->real_id = rid;
	ntp->svc_id = si->id;
	__builtin_memcpy(ntp->daddr, r->addr, 16);
	/* template_dport(): the server's port if vport is kept */
	ntp->dport = tk->vport ? r->port : 0;
	ntp->fwd = r->fwd;
	ntp->timeout = si->timeout;
	ntp->key = *tk;
	ntp->id = tid;
	if (bpf_map_update_elem(&xvs_tpls, &tid, ntp, BPF_NOEXIST))
		return NULL;
	bpf_map_update_elem(&xvs_tpl_index, tk, &tid, BPF_ANY);
	xvs_real_add3(rid, 0, 0, 1, 1);
	return bpf_map_lookup_elem(&xvs_tpls, &tid);
}

/*
 * tcp/udp_conn_schedule() + ip_vs_schedule(): a new connection for the
 * packet, or why not. On XVS_ACT_FORWARD *cp is the inserted entry, or NULL
 * for a one-packet (-o) UDP datagram, which is never inserted and whose
 * decision is filled in here.
 */
static __always_inline int xvs_new_conn(struct pkt *p, __u32 mark, struct conn_key *k,
					struct xvs_config *cfg, __u64 now, struct conn **cp,
					struct real **rp)
{
	struct xvs_scratch *sc;
	struct conn *ncp;
	struct svc_info *si;
	struct tpl *t = NULL;
	struct real *r;
	__be16 svc_port = 0, dport;
	__u32 rid = 0, svc_id, tid = 0;
	int fwmark, first;
	__u32 zero = 0;

	if (p->proto == IPPROTO_TCP)
		first = (xvs_is_new_conn(p) || cfg->sloppy_tcp) && !(p->tcp_flags & XVS_TCP_RST);
	else if (p->proto == IPPROTO_SCTP) /* sloppy: anything but an ABORT */
		first = (xvs_is_new_conn(p) || cfg->sloppy_sctp) &&
			!(p->tcp_flags & XVS_SCTP_ABORT_FIRST);
	else
		first = 1; /* UDP: any datagram */
	if (!first)
		return XVS_ACT_PASS;
	si = xvs_find_service(p, mark, &fwmark, &svc_port);
	if (!si)
		return XVS_ACT_PASS;
	/* ip_vs_schedule(): active FTP data (client port 20) is never scheduled. */
	if (p->sport == bpf_htons(XVS_FTP_DATA_PORT))
		return XVS_ACT_PASS;
	svc_id = si->id;
	sc = bpf_map_lookup_elem(&xvs_scratch, &zero);
	if (!sc)
		return XVS_ACT_DROP_FULL;
	if (si->flags & XVS_SVC_F_PERSISTENT) {
		__builtin_memset(&sc->tk, 0, sizeof(sc->tk));
		xvs_tpl_key(&sc->tk, p, si, mark, fwmark, svc_port);
		t = xvs_tpl_find(&sc->tk, cfg, now, &tid);
		if (t)
			rid = t->real_id;
	} else if (!fwmark && p->dport != svc_port) {
		/* Port-zero services schedule only with persistence. */
		return XVS_ACT_DROP_NODEST;
	}
	if (!t) {
		if (xvs_sched_is_hash(si->sched)) {
			rid = xvs_sched_hash(xvs_sched_meta(si), xvs_fold(p->saddr),
					     xvs_fold(p->daddr), p->sport);
		} else {
			/* lblc/lblcr key their cache by the whole destination */
			__builtin_memcpy(sc->sched_daddr, p->daddr, 16);
			rid = xvs_schedule(xvs_sched_meta(si), now);
		}
		if (!rid)
			return XVS_ACT_DROP_NODEST;
	}
	r = bpf_map_lookup_elem(&xvs_reals, &rid);
	if (!r)
		return XVS_ACT_DROP_NODEST;
	if (si->flags & XVS_SVC_F_PERSISTENT) {
		if (!t) {
			t = xvs_tpl_create(sc, si, r, rid, now);
			if (!t)
				return XVS_ACT_DROP_FULL;
		}
		tid = t->id;
		/* persistent_conn_dport() */
		dport = (p->dport == svc_port && r->port) ? r->port : p->dport;
	} else {
		dport = r->port ? r->port : p->dport; /* conn_dport() */
	}

	ncp = (struct conn *)sc->nc;
	__builtin_memset(ncp, 0, sizeof(*ncp));
	ncp->real_id = rid;
	ncp->svc_id = svc_id;
	__builtin_memcpy(ncp->daddr, r->addr, 16);
	ncp->dport = dport;
	ncp->fwd = r->fwd;
	ncp->family = r->family;
	ncp->flags = XVS_CONN_F_INACTIVE;
	if (r->fwd != XVS_FWD_MASQ)
		ncp->flags |= XVS_CONN_F_NO_OUTPUT;
	ncp->state = XVS_TCP_S_NONE;
	ncp->expires = now + XVS_INITIAL_TIMEOUT * XVS_NSEC;
	ncp->control = tid;
	xvs_count_conn(rid, svc_id);
	/* The template's timer restarts with each connection through it. */
	if (t)
		t->expires = now + (__u64)t->timeout * XVS_NSEC;
	*rp = r;

	if ((si->flags & XVS_SVC_F_ONEPACKET) && p->proto == IPPROTO_UDP) {
		/* Bound, used for this one packet, and freed. */
		xvs_real_add(rid, 0, 1, 1);
		xvs_count_pkt(xvs_live(rid), rid, svc_id, p->tot_len, 1);
		xvs_real_add(rid, 0, -1, 0);
		*cp = NULL;
		return XVS_ACT_FORWARD;
	}
	if (bpf_map_update_elem(&xvs_conns, k, ncp, BPF_NOEXIST))
		return XVS_ACT_DROP_FULL;
	if (t)
		__sync_fetch_and_add(&t->n_control, 1);
	if (ncp->fwd == XVS_FWD_MASQ) {
		xvs_out_key(&sc->ok, k, ncp);
		bpf_map_update_elem(&xvs_conns_out, &sc->ok, k, BPF_ANY);
	}
	xvs_real_add(rid, 0, 1, 1);
	*cp = bpf_map_lookup_elem(&xvs_conns, k);
	if (!*cp)
		return XVS_ACT_DROP_FULL;
	return XVS_ACT_FORWARD;
}

/* FORWARD the way connection c's packets go (r: its real server's
 * configuration when forwarding needs it, else NULL). */
static __always_inline int xvs_forward_as(struct decision *d, const struct conn *c,
					  struct real *r)
{
	d->rs = r;
	__builtin_memcpy(d->new_addr, c->daddr, 16);
	d->fwd = c->fwd;
	/* only NAT reads the port: DR and TUN leave the entry's second line alone */
	d->new_port = d->fwd == XVS_FWD_MASQ ? c->dport : 0;
	d->family = c->family;
	return XVS_ACT_FORWARD;
}

/* REPLY of the NAT connection whose key is ik: toward the client, from
 * VIP:vport. */
static __always_inline int xvs_reply_as(struct decision *d, const struct conn_key *ik)
{
	__builtin_memcpy(d->new_addr, ik->daddr, 16);
	d->new_port = ik->dport;
	d->fwd = XVS_FWD_MASQ;
	return XVS_ACT_REPLY;
}

/* Fragments ----------------------------------------------------------------
 *
 * The kernel's IPVS reassembles a fragmented datagram before it looks at it
 * and sends it on whole (fragmented again on the way out). xvs forwards each
 * fragment instead, and the receiver reassembles: the first fragment, which
 * carries the ports, is decided as any packet (never from the flow cache),
 * and its decision noted in xvs_frags under the datagram's source,
 * destination, protocol and identification (IPv4's, or the IPv6 Fragment
 * header's); the later ones, which carry none, go the same way: to the
 * same real server (DR, TUN; NAT with the destination address rewritten,
 * IPv4's header checksum updated, the payload left alone: the TCP/UDP
 * checksum is in the first fragment), or back to the client as the first
 * one did (a NAT reply: the source address rewritten). A later fragment
 * that arrives before its first one is handed on, as are all fragments of
 * other protocols. Counted as IPVS counts the datagram: one packet, its
 * bytes (the later fragments' payload only, so that the sum is the
 * reassembled datagram's length; IPv6: and the first's Fragment header).
 */
#define XVS_FRAG_TIMEOUT 30 /* s: the kernel's ipfrag_time */

static __always_inline void xvs_frag_key(struct frag_key *fk, const struct pkt *p)
{
	__builtin_memcpy(fk->saddr, p->saddr, 16);
	__builtin_memcpy(fk->daddr, p->daddr, 16);
	fk->id = p->frag_id;
	fk->proto = p->proto;
	fk->family = p->family;
	fk->pad[0] = 0;
	fk->pad[1] = 0;
}

/* First fragment p went as d says (reply: a NAT reply), by real server
 * rid, at now: its datagram's later fragments will go the same way. */
static __attribute__((noinline)) void xvs_frag_note(const struct pkt *p, const struct decision *d,
						    __u32 rid, int reply, __u64 now)
{
	struct frag_key fk;
	struct frag_val fv = {};

	xvs_frag_key(&fk, p);
	fv.expires = now + (__u64)XVS_FRAG_TIMEOUT * XVS_NSEC;
	__builtin_memcpy(fv.new_addr, d->new_addr, 16);
	fv.new_port = d->new_port;
	fv.fwd = d->fwd;
	fv.family = d->family;
	fv.reply = reply;
	fv.real_id = rid;
	fv.sport = p->sport;
	fv.dport = p->dport;
	bpf_map_update_elem(&xvs_frags, &fk, &fv, BPF_ANY);
}

/*
 * A later fragment p, whole in its frame (xvs_classify_rc()): FORWARD or
 * REPLY (d filled in) as its first fragment went; DROP_UNAVAIL when that
 * real server is gone (as its connection's packets); PASS, counted
 * `fragment`, when no first fragment of its datagram went anywhere. p
 * takes the datagram's ports (never written to the packet: it has none),
 * so that what hashes them (a GUE source port) answers as for the first.
 */
static __attribute__((noinline)) int xvs_frag_decide(struct pkt *p, struct decision *d)
{
	struct xvs_config *cfg = xvs_cfg();
	struct frag_key fk;
	struct frag_val *fv;
	struct real *r = NULL;
	__u32 rid, live;

	xvs_frag_key(&fk, p);
	fv = bpf_map_lookup_elem(&xvs_frags, &fk);
	if (!cfg || !fv || fv->expires <= xvs_now(cfg)) {
		xvs_count(XVS_CNT_FRAGMENT);
		return XVS_ACT_PASS;
	}
	rid = fv->real_id;
	p->sport = fv->sport;
	p->dport = fv->dport;
	live = xvs_live(rid);
	d->tick = xvs_tick(cfg);
	d->hz = cfg->hz;
	__builtin_memcpy(d->new_addr, fv->new_addr, 16);
	d->new_port = fv->new_port;
	d->fwd = fv->fwd;
	d->family = fv->family;
	xvs_count_io(live, rid, live >> XVS_LIVE_SVC_SHIFT, p->tot_len - p->l3_len, !fv->reply,
		     0);
	if (fv->reply)
		return XVS_ACT_REPLY;
	if (!(live & XVS_LIVE_F_AVAILABLE))
		return XVS_ACT_DROP_UNAVAIL;
	if ((live & XVS_LIVE_F_REAL) || fv->fwd == XVS_FWD_TUNNEL) {
		r = bpf_map_lookup_elem(&xvs_reals, &rid);
		if (!r)
			return XVS_ACT_DROP_UNAVAIL;
	}
	d->rs = r;
	return XVS_ACT_FORWARD;
}

/*
 * The decision past the flow cache: d->tick and d->steady are set, gen is
 * the flow cache's generation read before anything was looked up. A
 * subprogram, so that its frame and the scheduler's call chain under it
 * are not the fast path's.
 */
static __attribute__((noinline)) int xvs_decide_slow(struct pkt *p, __u32 mark,
						      struct decision *d, __u32 gen)
{
	struct xvs_config *cfg = xvs_cfg();
	struct xvs_scratch *sc;
	struct conn_key *k;
	struct conn *c, *cc;
	struct conn_key *ik;
	struct real *r = NULL;
	struct unbind *old;
	__u32 zero = 0, live = 0;
	__u64 now;
	int act;

	if (!cfg)
		return XVS_ACT_PASS;
	now = xvs_now(cfg);
	sc = bpf_map_lookup_elem(&xvs_scratch, &zero);
	if (!sc)
		return XVS_ACT_PASS;
	/* the keys live off the stack: the scheduler's call chain leaves it short */
	k = &sc->ck;
	__builtin_memset(k, 0, sizeof(*k));
	__builtin_memcpy(k->saddr, p->saddr, 16);
	__builtin_memcpy(k->daddr, p->daddr, 16);
	k->sport = p->sport;
	k->dport = p->dport;
	k->proto = p->proto;
	k->family = p->family;
	old = &sc->old;
	__builtin_memset(old, 0, sizeof(*old));

	c = bpf_map_lookup_elem(&xvs_conns, k);
	if (c && c->expires <= now) {
		xvs_conn_free(k, c, now);
		c = NULL;
	}
	/* ip_vs_out(): a NAT real server's reply? Not a bare SYN, which
	 * opens a connection: a new connection's SYN skips this lookup, a
	 * miss on a bucket of a big table. */
	if (!c && (p->proto != IPPROTO_TCP ||
		   (p->tcp_flags & (XVS_TCP_SYN | XVS_TCP_ACK)) != XVS_TCP_SYN)) {
		ik = bpf_map_lookup_elem(&xvs_conns_out, k);
		if (ik) {
			struct conn_key *ikc = &sc->ik;

			__builtin_memcpy(ikc, ik, sizeof(*ikc));
			cc = bpf_map_lookup_elem(&xvs_conns, ikc);
			if (cc && cc->expires <= now) {
				xvs_conn_free(ikc, cc, now);
				cc = NULL;
			}
			if (cc) {
				if (cc->fwd != XVS_FWD_MASQ)
					return XVS_ACT_PASS;
				xvs_count_pkt(xvs_live(cc->real_id), cc->real_id, cc->svc_id,
					      p->tot_len, 0);
				xvs_conn_transition(cc, cfg, 1, p->proto, p->tcp_flags, now);
				act = xvs_reply_as(d, ikc);
				if (p->frag)
					xvs_frag_note(p, d, cc->real_id, 1, now);
				return act;
			}
		}
	}

	/* A new connection attempt on a finished entry (conn_reuse_mode). */
	if (c && xvs_is_new_conn(p)) {
		__u32 rid = c->real_id;
		int resched = 0;

		r = bpf_map_lookup_elem(&xvs_reals, &rid);
		if (cfg->expire_nodest_conn && r && r->weight == 0)
			resched = 1;
		/* is_new_conn_expected(): never for a connection under a template */
		if (!resched && cfg->conn_reuse_mode && !c->control) {
			__u8 s = c->state;

			if (p->proto == IPPROTO_SCTP)
				resched = s == XVS_SCTP_S_CLOSED;
			else
				resched = s == XVS_TCP_S_TIME_WAIT || s == XVS_TCP_S_CLOSE ||
					  ((cfg->conn_reuse_mode & 2) && s == XVS_TCP_S_FIN_WAIT &&
					   (c->flags & XVS_CONN_F_NO_OUTPUT));
		}
		if (resched) {
			/* Replaced: the old entry still counts while its
			 * successor is scheduled (unbound below). */
			xvs_conn_unlink(k, c, old, now);
			c = NULL;
		}
	}

	/* The connection's real server has been removed. */
	if (c) {
		__u32 rid = c->real_id;

		live = xvs_live(rid);
		r = NULL;
		if (!(live & XVS_LIVE_F_AVAILABLE)) {
			if (!cfg->expire_nodest_conn)
				return XVS_ACT_DROP_UNAVAIL;
			xvs_conn_unlink(k, c, old, now);
			c = NULL;
		} else if ((live & XVS_LIVE_F_REAL) || c->fwd == XVS_FWD_TUNNEL) {
			/* the next hop or the tunnel is in its configuration */
			r = bpf_map_lookup_elem(&xvs_reals, &rid);
			if (!r)
				return XVS_ACT_DROP_UNAVAIL;
		}
	}

	if (!c) {
		act = xvs_new_conn(p, mark, k, cfg, now, &c, &r);
		xvs_unbind(old);
		if (act != XVS_ACT_FORWARD)
			return act;
		if (!c) {
			/* one-packet: counted and transitioned in xvs_new_conn */
			if (!r)
				return XVS_ACT_DROP_NODEST;
			d->rs = r;
			__builtin_memcpy(d->new_addr, r->addr, 16);
			d->new_port = r->port ? r->port : p->dport;
			d->fwd = r->fwd;
			d->family = r->family;
			if (p->frag)
				xvs_frag_note(p, d, ((struct conn *)sc->nc)->real_id, 0, now);
			return XVS_ACT_FORWARD;
		}
		live = xvs_live(c->real_id);
	}

	/* the service as xvs_real_live has it, like a cached flow's packet
	 * (c->svc_id is on the entry's second line) */
	xvs_count_pkt(live, c->real_id, live >> XVS_LIVE_SVC_SHIFT, p->tot_len, 1);
	xvs_conn_transition(c, cfg, 0, p->proto, p->tcp_flags, now);
	/* Cached while nothing but the timer changes; forgotten here once
	 * something else does (a FIN, an RST: the state machine runs here). */
	if (d->steady && (live & XVS_LIVE_F_AVAILABLE) &&
	    (c->fwd == XVS_FWD_MASQ || c->fwd == XVS_FWD_ROUTE || c->fwd == XVS_FWD_TUNNEL) &&
	    c->family == XVS_AF_INET &&
	    (p->proto != IPPROTO_TCP || c->state == XVS_TCP_S_ESTABLISHED))
		xvs_flow_fill(p, c, r, now, (d->tick << 32) | gen);
	else if (cfg->flow_sets && p->family == XVS_AF_INET)
		xvs_flow_drop(p, cfg);
	act = xvs_forward_as(d, c, r);
	if (p->frag)
		xvs_frag_note(p, d, c->real_id, 0, now);
	return act;
}

/* The whole decision for a parsed IPv4/IPv6 TCP/UDP packet; xdp: for the
 * XDP program, which sends a cached XVS_FLOW_TUN_FIB flow without its real
 * server's configuration (XVS_CACHED_TUN_FIB). */
static __always_inline int xvs_decide(struct pkt *p, __u32 mark, struct decision *d, int xdp)
{
	struct xvs_config *cfg = xvs_cfg();
	struct xvs_flow *f;
	__u32 live, gen = 0;

	if (!cfg)
		return XVS_ACT_PASS;
	d->tick = xvs_tick(cfg);
	d->hz = cfg->hz;

	/* An established flow's packet, cached: forwarded from here. */
	d->steady = cfg->flow_sets && xvs_steady(p);
	if (d->steady) {
		gen = xvs_flow_generation();
		f = xvs_flow_find(p, cfg, d->tick, gen);
		if (f) {
			__u32 rid = f->real_id;
			struct real *r = NULL;

			/* (in d at once: one value fewer held across the calls) */
			d->cached = xdp && (f->fwd & XVS_FLOW_TUN_FIB) ? XVS_CACHED_TUN_FIB : 1;
			live = xvs_live(rid);
			/* a tunnel or an explicit next hop: the server's
			 * configuration (not there: the full path decides),
			 * unless the entry has what XDP needs of it */
			if ((live & XVS_LIVE_F_REAL) && d->cached == 1)
				r = bpf_map_lookup_elem(&xvs_reals, &rid);
			if ((live & XVS_LIVE_F_AVAILABLE) &&
			    (r || d->cached != 1 || !(live & XVS_LIVE_F_REAL))) {
				xvs_count_pkt(live, rid, live >> XVS_LIVE_SVC_SHIFT, p->tot_len,
					      1);
				d->rs = r;
				d->new_addr[0] = f->raddr;
				d->new_addr[1] = 0;
				d->new_addr[2] = 0;
				d->new_addr[3] = 0;
				d->new_port = f->rport;
				d->fwd = f->fwd & ~XVS_FLOW_TUN_FIB;
				d->family = XVS_AF_INET;
				return XVS_ACT_FORWARD;
			}
			d->cached = 0;
		}
	}
	return xvs_decide_slow(p, mark, d, gen);
}

/* Counts a non-forwarding action; returns 1 for drop, 0 for pass. */
static __always_inline int xvs_account(int act)
{
	switch (act) {
	case XVS_ACT_DROP_NODEST:
		xvs_count(XVS_CNT_NO_DEST);
		return 1;
	case XVS_ACT_DROP_UNAVAIL:
		xvs_count(XVS_CNT_UNAVAILABLE);
		return 1;
	case XVS_ACT_DROP_FULL:
		xvs_count(XVS_CNT_CONN_FULL);
		return 1;
	default:
		xvs_count(XVS_CNT_PASSED);
		return 0;
	}
}

/* Parses and classifies; returns -1 when the packet is to be decided on (a
 * later fragment, p->frag, by xvs_frag_decide()). */
static __always_inline int xvs_classify_rc(struct pkt *p, int rc, __u32 pkt_len)
{
	if (rc == XVS_PARSE_MALFORMED) {
		xvs_count(XVS_CNT_MALFORMED);
		return 1;
	}
	if (rc == XVS_PARSE_FRAGMENT && p->frag != XVS_FRAG_LATER) {
		xvs_count(XVS_CNT_FRAGMENT);
		return 1;
	}
	if (rc != XVS_PARSE_OK && rc != XVS_PARSE_FRAGMENT) {
		xvs_count(XVS_CNT_PASSED);
		return 1;
	}
	if ((__u32)p->tot_len + sizeof(struct ethhdr) > pkt_len) {
		/* the IP header claims more bytes than the frame has */
		xvs_count(XVS_CNT_MALFORMED);
		return 1;
	}
	return -1;
}

/* ICMP errors about connections (ip_vs_in_icmp()) ---------------------------
 *
 * An ICMP error sent to a VIP about a packet "from the VIP" to a client,
 * which by DR or TUN a real server sent: destination unreachable (among
 * them fragmentation needed, path MTU discovery's), source quench, time
 * exceeded. Its quoted headers name a tracked connection, reversed; the
 * error goes to that connection's real server the way the connection's
 * packets go, and counts as one of them (its real server's and service's
 * in-packets, the forwarded counter), so that the server's TCP learns the
 * path MTU, as with the kernel's IPVS. A NAT connection's error is
 * rewritten on the way (ip_vs_nat_icmp(): xdp_nat_icmp(), tc_nat_icmp()):
 * one to the VIP goes to the real server with the outer destination and
 * the quoted source made the server's; one from the real server about a
 * packet to the client (client -> RIP:rport quoted, found in the reply
 * index) goes to the client with the outer source and the quoted
 * destination made VIP:vport, as a reply. ICMPv6 errors (destination
 * unreachable, packet too big, time exceeded, parameter problem:
 * ip_vs_in_icmp_v6()) about a DR or TUN connection likewise, when the
 * quoted IPv6 header is followed by its TCP/UDP header. Left to the stack:
 * no such live connection, an IPv6 NAT one (its rewrite would move ICMPv6's
 * pseudo-header checksum too: not done), a quote cut short before its
 * ports or with extension headers.
 */
#define XVS_ICMP_DEST_UNREACH 3
#define XVS_ICMP_SOURCE_QUENCH 4
#define XVS_ICMP_TIME_EXCEEDED 11

/* Whether parsed packet p (rc: parse_packet()'s answer, len: the frame's
 * length) is an ICMP (IPv4) or ICMPv6 message, whole, for
 * xvs_icmp_decide(). */
static __always_inline int xvs_icmp_is(const struct pkt *p, int rc, __u32 len)
{
	return rc == XVS_PARSE_OTHER &&
	       ((p->family == XVS_AF_INET && p->proto == IPPROTO_ICMP) ||
		(p->family == XVS_AF_INET6 && p->proto == XVS_NEXTHDR_ICMP6)) &&
	       (__u32)p->tot_len + sizeof(struct ethhdr) <= len;
}

/*
 * The key of the connection an ICMP error (p, IPv4) quotes, reversed, into
 * k; -1 when it is not one to handle (not such an error, its quote short,
 * not TCP/UDP/SCTP, or a fragment but the first).
 */
static __always_inline int xvs_icmp4_key(const struct pkt *p, void *data_end, struct conn_key *k)
{
	const __u8 *ic = p->l4;
	struct iphdr *in;
	__be16 *ports;

	if ((void *)(ic + 8) > data_end)
		return -1;
	if (ic[0] != XVS_ICMP_DEST_UNREACH && ic[0] != XVS_ICMP_SOURCE_QUENCH &&
	    ic[0] != XVS_ICMP_TIME_EXCEEDED)
		return -1;
	in = (void *)(ic + 8);
	if ((void *)(in + 1) > data_end || in->version != 4 || in->ihl < 5 ||
	    (in->frag_off & bpf_htons(XVS_IP_OFFSET)) ||
	    (in->protocol != IPPROTO_TCP && in->protocol != IPPROTO_UDP &&
	     in->protocol != IPPROTO_SCTP))
		return -1;
	ports = (void *)in + (__u32)in->ihl * 4;
	if ((void *)(ports + 2) > data_end)
		return -1;
	__builtin_memset(k, 0, sizeof(*k));
	k->saddr[0] = in->daddr;
	k->daddr[0] = in->saddr;
	k->sport = ports[1];
	k->dport = ports[0];
	k->proto = in->protocol;
	k->family = XVS_AF_INET;
	return 0;
}

/*
 * The key of the connection an ICMPv6 error (p) quotes, reversed, into k;
 * -1 when it is not one to handle (not an error, its quote short or with
 * extension headers before TCP/UDP/SCTP).
 */
static __always_inline int xvs_icmp6_key(const struct pkt *p, void *data_end, struct conn_key *k)
{
	const __u8 *ic = p->l4;
	struct ipv6hdr *in;
	__be16 *ports;

	if ((void *)(ic + 8) > data_end || ic[0] >= 128) /* informational (echo, ND, ...) */
		return -1;
	in = (void *)(ic + 8);
	ports = (void *)(in + 1);
	if ((void *)(ports + 2) > data_end ||
	    (in->nexthdr != IPPROTO_TCP && in->nexthdr != IPPROTO_UDP &&
	     in->nexthdr != IPPROTO_SCTP))
		return -1;
	__builtin_memset(k, 0, sizeof(*k));
	__builtin_memcpy(k->saddr, &in->daddr, 16);
	__builtin_memcpy(k->daddr, &in->saddr, 16);
	k->sport = ports[1];
	k->dport = ports[0];
	k->proto = in->nexthdr;
	k->family = XVS_AF_INET6;
	return 0;
}

/* XVS_ACT_FORWARD or XVS_ACT_REPLY with d filled in (as for the
 * connection's packets, or a NAT reply), or XVS_ACT_PASS. A subprogram:
 * off the fast path's frame. */
static __attribute__((noinline)) int xvs_icmp_decide(const struct pkt *p, void *data_end,
						      struct decision *d)
{
	struct xvs_config *cfg = xvs_cfg();
	struct xvs_scratch *sc;
	struct real *r = NULL;
	struct conn_key *k, *ik;
	struct conn *c;
	__u32 zero = 0, rid, live;
	__u64 now;

	if (!cfg)
		return XVS_ACT_PASS;
	sc = bpf_map_lookup_elem(&xvs_scratch, &zero);
	if (!sc)
		return XVS_ACT_PASS;
	d->tick = xvs_tick(cfg);
	d->hz = cfg->hz;
	/* the connection the quoted packet (VIP -> client) belongs to, or
	 * (client -> RIP) the reply-index key of a NAT one */
	k = &sc->ck;
	if (p->family == XVS_AF_INET6 ? xvs_icmp6_key(p, data_end, k)
				      : xvs_icmp4_key(p, data_end, k))
		return XVS_ACT_PASS;
	now = xvs_now(cfg);
	c = bpf_map_lookup_elem(&xvs_conns, k);
	if (!c) {
		if (p->family == XVS_AF_INET6)
			return XVS_ACT_PASS;
		ik = bpf_map_lookup_elem(&xvs_conns_out, k);
		if (!ik)
			return XVS_ACT_PASS;
		__builtin_memcpy(&sc->ik, ik, sizeof(sc->ik));
		c = bpf_map_lookup_elem(&xvs_conns, &sc->ik);
		if (!c || c->expires <= now || c->fwd != XVS_FWD_MASQ)
			return XVS_ACT_PASS;
		xvs_count_pkt(xvs_live(c->real_id), c->real_id, c->svc_id, p->tot_len, 0);
		return xvs_reply_as(d, &sc->ik);
	}
	if (c->expires <= now ||
	    (c->fwd != XVS_FWD_ROUTE && c->fwd != XVS_FWD_TUNNEL && c->fwd != XVS_FWD_MASQ) ||
	    (c->fwd == XVS_FWD_MASQ && p->family == XVS_AF_INET6))
		return XVS_ACT_PASS;
	rid = c->real_id;
	live = xvs_live(rid);
	if (!(live & XVS_LIVE_F_AVAILABLE))
		return XVS_ACT_PASS;
	if ((live & XVS_LIVE_F_REAL) || c->fwd == XVS_FWD_TUNNEL) {
		r = bpf_map_lookup_elem(&xvs_reals, &rid);
		if (!r)
			return XVS_ACT_PASS;
	}
	xvs_count_pkt(live, rid, c->svc_id, p->tot_len, 1);
	return xvs_forward_as(d, c, r);
}

/* XDP ---------------------------------------------------------------------- */

/* An SCTP port rewrite in XDP (NAT, either family): only a change of port
 * touches the CRC32c. */
static __always_inline int xdp_sctp_port(struct pkt *p, void *data_end, int dst, __be16 port)
{
	__u8 *sh = p->l4;

	if ((void *)(sh + XVS_SCTP_HLEN) > data_end)
		return -1;
	xvs_sctp_set_port(sh, dst, port, (__u32)p->tot_len - p->l3_len);
	return 0;
}

/* NAT in XDP: rewrite one address and port with incremental checksums. */
static __always_inline int xdp_nat(struct pkt *p, void *data_end, int dst, __be32 addr,
				   __be16 port)
{
	struct iphdr *iph = p->l3;
	__be32 old;
	__be16 oldp;

	if ((void *)(iph + 1) > data_end)
		return -1;
	old = dst ? iph->daddr : iph->saddr;
	xvs_csum_replace4(&iph->check, old, addr);
	if (dst)
		iph->daddr = addr;
	else
		iph->saddr = addr;
	if (p->frag == XVS_FRAG_LATER)
		return 0; /* no L4 header: its checksum was the first fragment's */
	if (p->proto == IPPROTO_SCTP)
		return xdp_sctp_port(p, data_end, dst, port);
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *th = p->l4;

		if ((void *)(th + 1) > data_end)
			return -1;
		oldp = dst ? th->dest : th->source;
		xvs_csum_replace4_2(&th->check, old, addr, oldp, port);
		if (dst)
			th->dest = port;
		else
			th->source = port;
	} else {
		struct udphdr *uh = p->l4;

		if ((void *)(uh + 1) > data_end)
			return -1;
		oldp = dst ? uh->dest : uh->source;
		if (uh->check) { /* 0: no checksum, stays 0 */
			xvs_csum_replace4_2(&uh->check, old, addr, oldp, port);
			if (!uh->check)
				uh->check = 0xffff;
		}
		if (dst)
			uh->dest = port;
		else
			uh->source = port;
	}
	return 0;
}

/* An IPv6 fragment's address alone (no header checksum; the TCP/UDP one,
 * which covers it, is in the first fragment). */
static __always_inline int xdp_nat6_addr(struct pkt *p, void *data_end, int dst,
					 const __be32 *addr)
{
	struct ipv6hdr *ip6h = p->l3;
	__be32 *a;

	if ((void *)(ip6h + 1) > data_end)
		return -1;
	a = dst ? ip6h->daddr.in6_u.u6_addr32 : ip6h->saddr.in6_u.u6_addr32;
	__builtin_memcpy(a, addr, 16);
	return 0;
}

/*
 * NAT of an IPv6 packet in XDP: no header checksum, but the TCP/UDP one
 * covers the addresses through the pseudo header. The parser refused UDP
 * checksum 0 (not allowed over IPv6), and an updated one that comes out 0
 * is written as 0xffff.
 */
static __always_inline int xdp_nat6(struct pkt *p, void *data_end, int dst, const __be32 *addr,
				    __be16 port)
{
	struct ipv6hdr *ip6h = p->l3;
	__sum16 *check;
	__be16 *pp;
	__be32 *a;
	int udp = p->proto == IPPROTO_UDP;

	if ((void *)(ip6h + 1) > data_end)
		return -1;
	a = dst ? ip6h->daddr.in6_u.u6_addr32 : ip6h->saddr.in6_u.u6_addr32;
	if (p->proto == IPPROTO_SCTP) {
		__builtin_memcpy(a, addr, 16);
		return xdp_sctp_port(p, data_end, dst, port);
	}
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *th = p->l4;

		if ((void *)(th + 1) > data_end)
			return -1;
		check = &th->check;
		pp = dst ? &th->dest : &th->source;
	} else {
		struct udphdr *uh = p->l4;

		if ((void *)(uh + 1) > data_end)
			return -1;
		check = &uh->check;
		pp = dst ? &uh->dest : &uh->source;
	}
#pragma unroll
	for (int i = 0; i < 4; i++) {
		xvs_csum_replace4(check, a[i], addr[i]);
		a[i] = addr[i];
	}
	xvs_csum_replace2(check, *pp, port);
	*pp = port;
	if (udp && !*check)
		*check = 0xffff;
	return 0;
}

/*
 * The NAT of an ICMP error about a NAT connection (ip_vs_nat_icmp()): dst
 * (toward the real server) the outer destination VIP -> addr and, in the
 * quoted packet (VIP:vport -> client), the source -> addr:port; !dst
 * (toward the client) the outer source RIP -> addr and, in the quote
 * (client -> RIP:rport), the destination -> addr:port. The outer and the
 * quoted IP header checksums follow, and ICMP's, which covers the quote;
 * the quoted TCP/UDP checksum is left as it is, as IPVS leaves it. The
 * quote was checked by xvs_icmp_decide(); -1 if it is not there now.
 */
static __always_inline int xdp_nat_icmp(struct pkt *p, void *data_end, int dst, __be32 addr,
					__be16 port)
{
	struct iphdr *iph = p->l3, *in;
	__u8 *ic = p->l4;
	__be16 *ports, oldp, oldcheck;
	__sum16 *icheck;
	__be32 old;

	if ((void *)(iph + 1) > data_end || (void *)(ic + 8) > data_end)
		return -1;
	in = (void *)(ic + 8);
	if ((void *)(in + 1) > data_end)
		return -1;
	ports = (void *)in + (__u32)in->ihl * 4;
	if ((void *)(ports + 2) > data_end)
		return -1;
	icheck = (__sum16 *)(ic + 2);
	old = dst ? iph->daddr : iph->saddr;
	xvs_csum_replace4(&iph->check, old, addr);
	if (dst)
		iph->daddr = addr;
	else
		iph->saddr = addr;
	old = dst ? in->saddr : in->daddr;
	oldcheck = in->check;
	xvs_csum_replace4(&in->check, old, addr);
	if (dst)
		in->saddr = addr;
	else
		in->daddr = addr;
	xvs_csum_replace4(icheck, old, addr);
	xvs_csum_replace2(icheck, oldcheck, in->check);
	oldp = dst ? ports[0] : ports[1];
	xvs_csum_replace2(icheck, oldp, port);
	if (dst)
		ports[0] = port;
	else
		ports[1] = port;
	return 0;
}

/* NAT in XDP, either family (ICMP errors too): addr is 4 words (IPv4 in
 * [0]). */
static __always_inline int xdp_nat_any(struct pkt *p, void *data_end, int dst, const __be32 *addr,
				       __be16 port)
{
	if (p->frag == XVS_FRAG_LATER) /* TCP or UDP, no L4 header */
		return p->family == XVS_AF_INET6 ? xdp_nat6_addr(p, data_end, dst, addr)
						 : xdp_nat(p, data_end, dst, addr[0], port);
	if (p->proto == IPPROTO_ICMP)
		return xdp_nat_icmp(p, data_end, dst, addr[0], port);
	if (p->family == XVS_AF_INET6)
		return xdp_nat6(p, data_end, dst, addr, port);
	return xdp_nat(p, data_end, dst, addr[0], port);
}

/* Next hops ------------------------------------------------------------------ */

/*
 * Where a rewritten frame goes. A real server with an explicit next hop
 * (struct real.mac not all zero, from user space's L2) uses it as it is;
 * otherwise the kernel's FIB and neighbour tables are asked with
 * bpf_fib_lookup(), as a forwarded packet that came in on the ingress
 * device: the lookup answers FWD_DISABLED unless forwarding is enabled on
 * that device (net.ipv4.conf.<if>.forwarding=1). NAT replies always ask the
 * FIB (their next hop is the client's).
 */
enum xvs_hop_rc {
	XVS_HOP_OK = 0,       /* dmac/smac/ifindex filled in */
	XVS_HOP_NO_NEIGH = 1, /* route found (ifindex, nh), no valid neighbour entry */
	XVS_HOP_FAIL = 2,     /* no usable route */
};

struct xvs_hop {
	struct bpf_fib_lookup f; /* the lookup's parameters and results */
	struct bpf_redir_neigh nh; /* NO_NEIGH: the next hop for bpf_redirect_neigh */
	__u8 dmac[ETH_ALEN]; /* in the frame's order (xvs_tc_macs()) */
	__u8 smac[ETH_ALEN];
	__u32 ifindex;   /* egress device */
	__be32 saddr[4]; /* the source address the FIB chose (BPF_FIB_LOOKUP_SRC); IPv4 in [0] */
	__u32 mtu;  /* the route's MTU (the FIB's mtu_result); 0: not known (explicit next hop) */
	__u64 tick; /* xvs_fib(): the caches' clock, for xvs_fib_lookup()'s entry */
};

/* Per CPU, off the stack (the scheduler's call chain leaves it short). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xvs_hop);
} xvs_hop_scratch SEC(".maps");

static __always_inline struct xvs_hop *xvs_hop_slot(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&xvs_hop_scratch, &zero);
}

/* xvs_fib()'s flags: the family, and whether to derive the source. */
#define XVS_FIB_WANT_SRC 0x100
#define XVS_FIB_REPLY 0x200 /* a NAT reply toward the client (cache key only) */

/*
 * The FIB's successful answers, per CPU, reused for a second: a
 * direct-mapped cache of XVS_HOP_CACHE_SLOTS entries, each holding its full
 * key (destination, ingress device, xvs_fib()'s flags) so a collision only
 * costs a lookup. Like the kernel's IPVS, which keeps a route per real
 * server (ip_vs_dest_dst), an entry ignores the packet's source address
 * (no per-client policy routing within its lifetime); route, neighbour and
 * forwarding changes are picked up when it expires. Misses (no neighbour
 * entry, no route) are never cached: a neighbour that appears is used at
 * once.
 */
#define XVS_HOP_CACHE_SLOTS 256

struct xvs_hop_cached {
	__be32 dst[4];
	__u32 in_ifindex;
	__u16 fl;  /* xvs_fib()'s flags; 0 = empty */
	__u16 mtu; /* the route's MTU */
	__u64 at;  /* xvs_tick() of the lookup */
	__u8 dmac[ETH_ALEN]; /* the frame's first 12 bytes, in order: */
	__u8 smac[ETH_ALEN]; /* xvs_tc_macs() stores them from here */
	__u32 ifindex;
	__be32 saddr[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XVS_HOP_CACHE_SLOTS);
	__type(key, __u32);
	__type(value, struct xvs_hop_cached);
} xvs_hop_cache SEC(".maps");

/* xvs_hop_cache's slot for a lookup. */
static __always_inline __u32 xvs_hop_cache_slot(__u32 in_ifindex, __u32 fl, const __be32 *dst)
{
	__u32 slot = dst[0] ^ dst[1] ^ dst[2] ^ dst[3] ^ in_ifindex ^ fl;

	slot ^= slot >> 16;
	slot ^= slot >> 8;
	return slot & (XVS_HOP_CACHE_SLOTS - 1);
}

/*
 * xvs_fib() past its cache: bpf_fib_lookup(), and a successful answer
 * stored in xvs_hop_cache as of h->tick. A separate subprogram: the
 * lookup's parameters and its branches stay off the packet's fast path.
 */
static __attribute__((noinline)) int xvs_fib_lookup(void *ctx, __u32 in_ifindex, __u32 fl,
						    const __be32 *src, const __be32 *dst)
{
	struct xvs_hop *h = xvs_hop_slot();
	struct xvs_hop_cached *e;
	int v6 = (fl & 0xff) == XVS_AF_INET6;
	__u32 slot = xvs_hop_cache_slot(in_ifindex, fl, dst);
	int rc;

	if (!h)
		return XVS_HOP_FAIL;
	e = bpf_map_lookup_elem(&xvs_hop_cache, &slot);
	__builtin_memset(&h->f, 0, sizeof(h->f));
	h->f.ifindex = in_ifindex;
	/* a length that fits any route: the lookup then reports the route's
	 * MTU (mtu_result) in XDP and tc alike and judges no packet (tc with 0
	 * would check the skb against the device's MTU instead); the callers
	 * judge what they send against it */
	h->f.tot_len = 1;
	if (v6) {
		h->f.family = XVS_AF_INET6;
		__builtin_memcpy(h->f.ipv6_src, src, 16);
		__builtin_memcpy(h->f.ipv6_dst, dst, 16);
	} else {
		h->f.family = XVS_AF_INET;
		h->f.ipv4_src = src[0];
		h->f.ipv4_dst = dst[0];
	}
	rc = bpf_fib_lookup(ctx, &h->f, sizeof(h->f),
			    (fl & XVS_FIB_WANT_SRC) ? BPF_FIB_LOOKUP_SRC : 0);
	h->ifindex = h->f.ifindex;
	/* the route's MTU (a PMTU exception's, a locked route MTU, else the
	 * device's); were it not reported, none */
	h->mtu = h->f.mtu_result >= 68 ? h->f.mtu_result : 0;
	if (v6) {
		__builtin_memcpy(h->saddr, h->f.ipv6_src, 16);
	} else {
		__builtin_memset(h->saddr, 0, sizeof(h->saddr));
		h->saddr[0] = h->f.ipv4_src;
	}
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		__builtin_memcpy(h->dmac, h->f.dmac, ETH_ALEN);
		__builtin_memcpy(h->smac, h->f.smac, ETH_ALEN);
		if (e) {
			__builtin_memcpy(e->dst, dst, sizeof(e->dst));
			e->in_ifindex = in_ifindex;
			e->fl = fl;
			e->at = h->tick;
			__builtin_memcpy(e->dmac, h->dmac, ETH_ALEN);
			__builtin_memcpy(e->smac, h->smac, ETH_ALEN);
			e->ifindex = h->ifindex;
			e->mtu = (__u16)h->mtu;
			__builtin_memcpy(e->saddr, h->saddr, sizeof(e->saddr));
		}
		return XVS_HOP_OK;
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		/* the destination is now the gateway, if the route has one */
		if (v6) {
			h->nh.nh_family = XVS_AF_INET6;
			__builtin_memcpy(h->nh.ipv6_nh, h->f.ipv6_dst, 16);
		} else {
			h->nh.nh_family = XVS_AF_INET;
			h->nh.ipv4_nh = h->f.ipv4_dst;
		}
		return XVS_HOP_NO_NEIGH;
	}
	return XVS_HOP_FAIL;
}

/*
 * The next hop for a packet from src to dst (4 words each, IPv4 in [0])
 * that came in on in_ifindex (ctx: the XDP or skb context), into the
 * per-CPU struct xvs_hop. fl: the family (XVS_AF_INET / XVS_AF_INET6),
 * plus XVS_FIB_WANT_SRC to also derive the source address the director
 * would use (BPF_FIB_LOOKUP_SRC, kernel >= 6.7), plus XVS_FIB_REPLY for a
 * NAT reply (its own cache entries). d: the decision (its clock). Answered
 * from xvs_hop_cache (inline: no call on an established flow's packet)
 * when it can be, else by xvs_fib_lookup().
 */
static __always_inline struct xvs_hop_cached *xvs_hop_cached(__u32 in_ifindex, __u32 fl,
							     const __be32 *dst, __u64 tick, __u32 hz)
{
	__u32 slot = xvs_hop_cache_slot(in_ifindex, fl, dst);
	struct xvs_hop_cached *e = bpf_map_lookup_elem(&xvs_hop_cache, &slot);

	if (e && e->fl == fl && e->in_ifindex == in_ifindex && e->dst[0] == dst[0] &&
	    e->dst[1] == dst[1] && e->dst[2] == dst[2] && e->dst[3] == dst[3] &&
	    tick - e->at < hz)
		return e;
	return NULL;
}

static __always_inline int xvs_fib(void *ctx, __u32 in_ifindex, __u32 fl, const __be32 *src,
				   const __be32 *dst, const struct decision *d)
{
	struct xvs_hop *h = xvs_hop_slot();
	struct xvs_hop_cached *e = xvs_hop_cached(in_ifindex, fl, dst, d->tick, d->hz);

	if (!h)
		return XVS_HOP_FAIL;
	if (e) {
		__builtin_memcpy(h->dmac, e->dmac, ETH_ALEN);
		__builtin_memcpy(h->smac, e->smac, ETH_ALEN);
		h->ifindex = e->ifindex;
		h->mtu = e->mtu;
		__builtin_memcpy(h->saddr, e->saddr, sizeof(h->saddr));
		return XVS_HOP_OK;
	}
	h->tick = d->tick;
	return xvs_fib_lookup(ctx, in_ifindex, fl, src, dst);
}

/*
 * The next hop toward real server r for a packet from src (4 words: the
 * client; for TUN the tunnel source, 0 to have the FIB choose it). Fills the
 * per-CPU struct xvs_hop.
 */
static __always_inline int xvs_real_hop(void *ctx, __u32 in_ifindex, const struct real *r,
					const __be32 *src, int want_src, const struct decision *d)
{
	struct xvs_hop *h;

	if (xvs_mac_zero(r->mac))
		return xvs_fib(ctx, in_ifindex, r->family | (want_src ? XVS_FIB_WANT_SRC : 0), src,
			       r->addr, d);
	h = xvs_hop_slot();
	if (!h)
		return XVS_HOP_FAIL;
	__builtin_memcpy(h->dmac, r->mac, ETH_ALEN);
	__builtin_memcpy(h->smac, r->src_mac, ETH_ALEN);
	h->ifindex = r->ifindex ? r->ifindex : in_ifindex;
	h->mtu = 0;
	__builtin_memset(h->saddr, 0, sizeof(h->saddr));
	return XVS_HOP_OK;
}

/*
 * XDP: out of ifindex; XDP_TX when that is where the frame came in. (A
 * redirect by ifindex is queued and flushed in bulk as one through a
 * DEVMAP is, and costs one helper call where a DEVMAP that may not hold
 * the device would cost two.)
 */
static __always_inline int xvs_xdp_out(struct xdp_md *ctx, __u32 ifindex)
{
	if (ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(ifindex, 0);
}

/* XDP: writes the hop's MACs into the frame; -1 if it is too short. */
static __always_inline int xvs_xdp_macs(struct xdp_md *ctx, const __u8 *dmac, const __u8 *smac)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return -1;
	__builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, smac, ETH_ALEN);
	return 0;
}

/*
 * tc: the same with one bpf_skb_store_bytes, straight from macs: the
 * destination MAC then the source MAC, side by side as the frame has them
 * (xvs_hop's and xvs_hop_cached's dmac and smac; no copy on the stack,
 * which xvs_tc's frame cannot spare).
 */
static __always_inline int xvs_tc_macs(struct __sk_buff *skb, const __u8 *macs)
{
	return bpf_skb_store_bytes(skb, 0, macs, 2 * ETH_ALEN, 0) ? -1 : 0;
}
_Static_assert(__builtin_offsetof(struct xvs_hop, smac) ==
		       __builtin_offsetof(struct xvs_hop, dmac) + ETH_ALEN,
	       "xvs_tc_macs: smac right after dmac");
_Static_assert(__builtin_offsetof(struct xvs_hop_cached, smac) ==
		       __builtin_offsetof(struct xvs_hop_cached, dmac) + ETH_ALEN,
	       "xvs_tc_macs: smac right after dmac");
_Static_assert(__builtin_offsetof(struct real, src_mac) ==
		       __builtin_offsetof(struct real, mac) + ETH_ALEN,
	       "xvs_xdp_tun_cached: src_mac right after mac");

/*
 * XDP cannot resolve a neighbour. A frame whose next hop has no neighbour
 * entry is handed on (XDP_PASS) with XDP metadata for the tc program on the
 * same device, which sends it with bpf_redirect_neigh (the kernel resolves
 * the MAC). Without that program the stack gets it: a DNATed packet it
 * forwards (resolving the neighbour itself); a SNATed reply or a TUN packet,
 * with a local source, it drops as a martian unless accept_local. A DR frame
 * (for the VIP, which the stack would take as its own) gets a destination
 * MAC of zero (not ours: PACKET_OTHERHOST, dropped by ip_rcv): clear_dst.
 */
#define XVS_META_MAGIC 0x31737678 /* "xvs1" in memory */

struct xvs_meta {
	__u32 magic;
	__u32 ifindex; /* egress device */
	__be32 nh;     /* next hop */
};

/* The same for an IPv6 next hop (magic "xvs6"); the IPv4 layout is unchanged. */
#define XVS_META6_MAGIC 0x36737678

struct xvs_meta6 {
	__u32 magic;
	__u32 ifindex;
	__be32 nh[4];
};

static __always_inline int xvs_xdp_to_tc(struct xdp_md *ctx, const struct xvs_hop *h,
					 int clear_dst)
{
	void *data, *data_end;
	struct xvs_meta *m;
	struct ethhdr *eth;

	if (h->nh.nh_family == XVS_AF_INET6) {
		struct xvs_meta6 *m6;

		if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(*m6)))
			return clear_dst ? XDP_DROP : XDP_PASS;
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		m6 = (void *)(long)ctx->data_meta;
		eth = data;
		if ((void *)(m6 + 1) > data || (void *)(eth + 1) > data_end)
			return XDP_DROP;
		m6->magic = XVS_META6_MAGIC;
		m6->ifindex = h->ifindex;
		__builtin_memcpy(m6->nh, h->nh.ipv6_nh, 16);
		if (clear_dst)
			__builtin_memset(eth->h_dest, 0, ETH_ALEN);
		return XDP_PASS;
	}
	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(*m)))
		return clear_dst ? XDP_DROP : XDP_PASS;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	m = (void *)(long)ctx->data_meta;
	eth = data;
	if ((void *)(m + 1) > data || (void *)(eth + 1) > data_end)
		return XDP_DROP;
	m->magic = XVS_META_MAGIC;
	m->ifindex = h->ifindex;
	m->nh = h->nh.ipv4_nh;
	if (clear_dst)
		__builtin_memset(eth->h_dest, 0, ETH_ALEN);
	return XDP_PASS;
}

/*
 * No real server for a new connection (ip_vs_leave()): like the kernel's
 * IPVS, tell the client with a port unreachable, for TCP as for UDP (no
 * socket exists to send a RST from). The packet is turned into the
 * message in place, as the director's stack would send it, from the VIP
 * with TTL (hop limit) 64, and sent back out of the device it came in on,
 * to the MAC it came from (XDP and tc alike). IPv4: ICMP 3/3, the quoted packet's TOS bits under
 * precedence 0xc0, no DF. IPv6: ICMPv6 1/4. Both quote the IP header and
 * the TCP/UDP header through its checksum (XVS_QUOTE_L4: what the client's
 * stack needs to find the socket; the kernel quotes more, up to 576 bytes
 * for IPv4 and 1280 for IPv6, which a fixed-size checksum here does not). Not
 * for IPv4 options or IPv6 extension headers, nor from a source that is no
 * unicast host (IPv4 0/8, 127/8, 224/3; IPv6 ::, ::1, ff00::/8), and at
 * most XVS_ICMP_PER_SEC a second per CPU, in bursts of XVS_ICMP_BURST (the
 * kernel's icmp_msgs_per_sec and icmp_msgs_burst); otherwise the packet
 * is only dropped. Either way it counts as no_dest. In tc the skb keeps
 * its checksum state: a CHECKSUM_PARTIAL one (a local stack's, on a veth)
 * points at the quote's checksum field, which is why the quote runs to its
 * end (tc cannot cut it off, and the receiving stack would not trim it
 * off: it drops the packet instead); that stack takes such a packet as
 * checked. One from a NIC is not partial.
 */
#define XVS_ICMP_PER_SEC 1000
#define XVS_ICMP_BURST 50
#define XVS_ICMP_COST_NS (XVS_NSEC / XVS_ICMP_PER_SEC)
#define XVS_ICMP_PORT_UNREACH 3
#define XVS_ICMP6_DEST_UNREACH 1
#define XVS_ICMP6_PORT_UNREACH 4
#define XVS_ICMP_FRAG_NEEDED 4
#define XVS_ICMP6_PKT_TOOBIG 2
/* what the message adds in front of the quote: IP + ICMP headers */
#define XVS_UNREACH_GROW (sizeof(struct iphdr) + 8)
#define XVS_UNREACH6_GROW (sizeof(struct ipv6hdr) + 8)
/* the quote past the IP header: UDP's 8 bytes, TCP's 18 (through the
 * checksum field, where a CHECKSUM_PARTIAL skb's checksum state points:
 * tc may neither cut it off nor have the receiver trim it away) */
#define XVS_QUOTE_L4(tcp) ((tcp) ? 18 : 8)
/* the ICMP message: its header and the quote */
#define XVS_UNREACH_MSG(tcp) (8 + sizeof(struct iphdr) + XVS_QUOTE_L4(tcp))
#define XVS_UNREACH6_MSG(tcp) (8 + sizeof(struct ipv6hdr) + XVS_QUOTE_L4(tcp))
/* the whole frame */
#define XVS_UNREACH_LEN(tcp) (sizeof(struct ethhdr) + sizeof(struct iphdr) + XVS_UNREACH_MSG(tcp))
#define XVS_UNREACH6_LEN(tcp) \
	(sizeof(struct ethhdr) + sizeof(struct ipv6hdr) + XVS_UNREACH6_MSG(tcp))

static __always_inline int xvs_icmp_allow(void)
{
	return xvs_rl_allow(XVS_RL_ICMP, XVS_ICMP_BURST, XVS_ICMP_COST_NS, NULL);
}

/* Whether p's source may be told (see above). */
static __always_inline int xvs_unreach_to(const struct pkt *p)
{
	__u8 a = (__u8)p->saddr[0]; /* the first octet (network order) */

	if (p->family == XVS_AF_INET)
		return p->l3_len == sizeof(struct iphdr) && a != 0 && a != 127 && a < 224;
	return p->l3_len == sizeof(struct ipv6hdr) && a != 0xff &&
	       (p->saddr[0] | p->saddr[1] | p->saddr[2] ||
		(p->saddr[3] != 0 && p->saddr[3] != bpf_htonl(1)));
}

/*
 * The message, written over the frame at data..data_end: the Ethernet
 * header (back to where the frame came from: oeth, its old header, which
 * XDP finds in front of the quote and tc where it was), the IP and ICMP
 * headers, in front of the quote already in place (the packet's IP header
 * and its TCP/UDP header through the checksum field, at data + ETH_HLEN +
 * XVS_UNREACH(6)_GROW); tcp: the packet is TCP. -1: too short.
 */
static __always_inline int xvs_unreach_eth(void *data, void *data_end, const struct ethhdr *oeth,
					   __be16 proto)
{
	struct ethhdr *eth = data;
	__u8 macs[2 * ETH_ALEN];

	if ((void *)(eth + 1) > data_end || (void *)(oeth + 1) > data_end)
		return -1;
	__builtin_memcpy(macs, oeth->h_source, ETH_ALEN);
	__builtin_memcpy(macs + ETH_ALEN, oeth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth, macs, sizeof(macs));
	eth->h_proto = proto;
	return 0;
}

/*
 * The ICMP(v6) header at icmp (type, code, its second word: mtu, or 0) and
 * its checksum: sum (the pseudo header's, ICMPv6; 0 for ICMP) plus the
 * message, msg0 bytes (header and quote with UDP's 8 bytes), and for TCP
 * the 10 bytes more of its quote. -1: too short.
 */
static __always_inline int xvs_unreach_icmp(__u8 *icmp, void *data_end, __u8 type, __u8 code,
					    __u32 mtu, __u32 sum, int msg0, int tcp)
{
	__be32 word;

	if ((void *)(icmp + msg0) > data_end)
		return -1;
	icmp[0] = type;
	icmp[1] = code;
	/* IPv4: unused, then the next-hop MTU; ICMPv6: the MTU (through
	 * memcpy: type-based alias analysis need not keep a __be32 store
	 * ahead of the __u16 loads that sum it) */
	word = bpf_htonl(mtu);
	*(__u16 *)(icmp + 2) = 0;
	__builtin_memcpy(icmp + 4, &word, sizeof(word));
	XVS_SUM16(sum, (__u16 *)icmp, msg0 / 2);
	if (tcp) {
		if ((void *)(icmp + msg0 + 10) > data_end)
			return -1;
		XVS_SUM16(sum, (__u16 *)(icmp + msg0), 5);
	}
	*(__u16 *)(icmp + 2) = ~xvs_csum_fold(sum);
	return 0;
}

static __always_inline int xvs_unreach4_fill(void *data, void *data_end, const struct ethhdr *oeth,
					     int tcp, __u32 mtu, const __be32 *from)
{
	struct iphdr *iph, *oiph;
	__u8 *icmp;

	if (data + XVS_UNREACH_LEN(0) > data_end)
		return -1;
	iph = data + sizeof(struct ethhdr);
	icmp = (__u8 *)(iph + 1);
	oiph = (void *)(icmp + 8);
	if (xvs_unreach_eth(data, data_end, oeth, bpf_htons(ETH_P_IP)))
		return -1;
	iph->version = 4;
	iph->ihl = 5;
	iph->tos = (oiph->tos & 0x1e) | 0xc0; /* its TOS bits, IPTOS_PREC_INTERNETCONTROL */
	iph->tot_len = bpf_htons(XVS_UNREACH_LEN(tcp) - sizeof(struct ethhdr));
	iph->id = 0;
	iph->frag_off = 0;
	iph->ttl = 64;
	iph->protocol = IPPROTO_ICMP;
	iph->daddr = oiph->saddr;
	iph->saddr = from ? from[0] : oiph->daddr;
	iph->check = xvs_ipv4_csum(iph);
	return xvs_unreach_icmp(icmp, data_end, XVS_ICMP_DEST_UNREACH,
				mtu ? XVS_ICMP_FRAG_NEEDED : XVS_ICMP_PORT_UNREACH, mtu, 0,
				XVS_UNREACH_MSG(0), tcp);
}

static __always_inline int xvs_unreach6_fill(void *data, void *data_end, const struct ethhdr *oeth,
					     int tcp, __u32 mtu, const __be32 *from)
{
	struct ipv6hdr *ip6h, *oip6h;
	__u8 *icmp;
	__u32 sum;

	if (data + XVS_UNREACH6_LEN(0) > data_end)
		return -1;
	ip6h = data + sizeof(struct ethhdr);
	icmp = (__u8 *)(ip6h + 1);
	oip6h = (void *)(icmp + 8);
	if (xvs_unreach_eth(data, data_end, oeth, bpf_htons(ETH_P_IPV6)))
		return -1;
	*(__be32 *)ip6h = bpf_htonl(0x60000000); /* version 6, class 0, no flow label */
	ip6h->payload_len = bpf_htons(XVS_UNREACH6_MSG(tcp));
	ip6h->nexthdr = XVS_NEXTHDR_ICMP6;
	ip6h->hop_limit = 64;
	ip6h->daddr = oip6h->saddr;
	if (from)
		__builtin_memcpy(&ip6h->saddr, from, 16);
	else
		ip6h->saddr = oip6h->daddr;
	/* the pseudo header: addresses, length, next header */
	sum = bpf_htons(XVS_UNREACH6_MSG(tcp)) + bpf_htons(XVS_NEXTHDR_ICMP6);
	XVS_SUM16(sum, (__u16 *)&ip6h->saddr, 16);
	return xvs_unreach_icmp(icmp, data_end, mtu ? XVS_ICMP6_PKT_TOOBIG : XVS_ICMP6_DEST_UNREACH,
				mtu ? 0 : XVS_ICMP6_PORT_UNREACH, mtu, sum, XVS_UNREACH6_MSG(0), tcp);
}

/* The message for p's family, over the frame at data (see above); mtu:
 * 0 for a port unreachable, else a fragmentation needed / packet too big
 * with it; from: its source (4 words, IPv4 in [0]), NULL for the quoted
 * packet's destination (the VIP). */
static __always_inline int xvs_unreach_fill(void *data, void *data_end, const struct ethhdr *oeth,
					    const struct pkt *p, __u32 mtu, const __be32 *from)
{
	int tcp = p->proto == IPPROTO_TCP;

	if (p->family == XVS_AF_INET6)
		return xvs_unreach6_fill(data, data_end, oeth, tcp, mtu, from);
	return xvs_unreach4_fill(data, data_end, oeth, tcp, mtu, from);
}

/* What p's message puts in front of its quote, and its whole length. */
static __always_inline __u32 xvs_unreach_grow(const struct pkt *p)
{
	return p->family == XVS_AF_INET6 ? XVS_UNREACH6_GROW : XVS_UNREACH_GROW;
}

static __always_inline __u32 xvs_unreach_len(const struct pkt *p)
{
	int tcp = p->proto == IPPROTO_TCP;

	return p->family == XVS_AF_INET6 ? XVS_UNREACH6_LEN(tcp) : XVS_UNREACH_LEN(tcp);
}

/* XDP: the headers grow in front (the old Ethernet header ends up in front
 * of the quote), the tail is cut, and the frame goes back out: XDP_TX.
 * mtu, from: as for xvs_unreach_fill(); only port unreachables are
 * rate-limited (as the kernel exempts path MTU messages from
 * icmp_ratemask). */
static __attribute__((noinline)) int xvs_xdp_unreach(struct xdp_md *ctx, const struct pkt *p,
						      __u32 mtu, const __be32 *from)
{
	int grow = (int)xvs_unreach_grow(p), want = (int)xvs_unreach_len(p);
	void *data, *data_end;
	int len;

	if (!xvs_unreach_to(p) || (!mtu && !xvs_icmp_allow()))
		return XDP_DROP;
	if (bpf_xdp_adjust_head(ctx, -grow))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	len = (int)(data_end - data);
	if (xvs_unreach_fill(data, data_end, data + grow, p, mtu, from) ||
	    (len > want && bpf_xdp_adjust_tail(ctx, want - len)))
		return XDP_DROP;
	return XDP_TX;
}

/* tc: the tail is cut to the Ethernet header and the quote, room for the
 * headers is made after the Ethernet header (which stays: its MACs are
 * swapped in place), and the packet goes back out of the device it came
 * in on. */
static __attribute__((noinline)) int xvs_tc_unreach(struct __sk_buff *skb, const struct pkt *p,
						     __u32 mtu, const __be32 *from)
{
	__u32 grow = xvs_unreach_grow(p), want = xvs_unreach_len(p);

	if (!xvs_unreach_to(p) || (!mtu && !xvs_icmp_allow()))
		return TC_ACT_SHOT;
	if (skb->len > want - grow && bpf_skb_change_tail(skb, want - grow, 0))
		return TC_ACT_SHOT;
	if (bpf_skb_adjust_room(skb, (__s32)grow, BPF_ADJ_ROOM_MAC, 0) ||
	    bpf_skb_pull_data(skb, want))
		return TC_ACT_SHOT;
	if (xvs_unreach_fill((void *)(long)skb->data, (void *)(long)skb->data_end,
			     (void *)(long)skb->data, p, mtu, from))
		return TC_ACT_SHOT;
	return bpf_redirect(skb->ifindex, 0);
}

/*
 * A packet too big for its path (the kernel's IPVS:
 * ensure_mtu_is_adequate()): mtu is the largest IP packet the path takes,
 * the route's MTU toward the real server (DR, NAT) or the tunnel's less
 * its overhead (TUN). An IPv4 packet with DF, and an IPv6 one, is answered
 * as the director's stack answers it, with a fragmentation needed (ICMP
 * 3/4, the next-hop MTU) or a packet too big (ICMPv6 2/0) carrying mtu,
 * built as the port unreachable above but not rate-limited (nor does the
 * kernel limit path MTU messages), so the client's TCP lowers its segments
 * for the VIP (path MTU discovery) instead of retransmitting into a black
 * hole. Not for ICMP messages (forwarded errors), nor under the family's
 * minimum MTU (68, 1280), nor without DF: the kernel's IPVS has those
 * fragmented; XDP and tc cannot, so they are only dropped. The callers
 * count them (no_route for DR and NAT, tun_dropped for TUN). Returns the
 * size to tell, 0 for none; frag_off: the IPv4 header's.
 */
static __always_inline __u32 xvs_too_big_tell(const struct pkt *p, __u32 mtu, __be16 frag_off)
{
	if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP && p->proto != IPPROTO_SCTP)
		return 0;
	if (p->family == XVS_AF_INET6)
		return mtu >= 1280 ? mtu : 0;
	return mtu >= 68 && (frag_off & bpf_htons(XVS_IP_DF)) ? mtu : 0;
}

/* Whether p is over mtu (the path's, 0: not known). */
static __always_inline int xvs_over_mtu(const struct pkt *p, __u32 mtu)
{
	return mtu && p->tot_len > mtu;
}

/* from: as for xvs_unreach_fill() */
static __always_inline int xvs_xdp_too_big(struct xdp_md *ctx, const struct pkt *p, __u32 mtu,
					   const __be32 *from)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *iph = (void *)(long)ctx->data + sizeof(struct ethhdr);
	__be16 frag_off = 0;

	if (p->family == XVS_AF_INET) {
		if ((void *)(iph + 1) > data_end)
			return XDP_DROP;
		frag_off = iph->frag_off;
	}
	mtu = xvs_too_big_tell(p, mtu, frag_off);
	return mtu ? xvs_xdp_unreach(ctx, p, mtu, from) : XDP_DROP;
}

static __always_inline int xvs_tc_too_big(struct __sk_buff *skb, const struct pkt *p, __u32 mtu,
					  const __be32 *from)
{
	__be16 frag_off = 0;

	if (p->family == XVS_AF_INET &&
	    bpf_skb_load_bytes(skb, sizeof(struct ethhdr) + offsetof(struct iphdr, frag_off),
			       &frag_off, sizeof(frag_off)))
		return TC_ACT_SHOT;
	mtu = xvs_too_big_tell(p, mtu, frag_off);
	return mtu ? xvs_tc_unreach(skb, p, mtu, from) : TC_ACT_SHOT;
}

/*
 * LVS-TUN: the tunnel toward real server r for packet p, with outer source
 * saddr. Returns -1 for what the datapath cannot send (GRE, GUE without a
 * port), 0 with *t filled in. The GUE source port comes from a hash of the
 * flow's tuple, so a connection keeps one port in XDP and tc alike.
 */
/*
 * The tunnel being built, per CPU: kept off the stack, which the scheduler's
 * frame leaves short (the verifier's 512-byte limit is for the whole chain).
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xvs_tun);
} xvs_tun_scratch SEC(".maps");

/* A zeroed per-CPU struct xvs_tun, or NULL. */
static __always_inline struct xvs_tun *xvs_tun_slot(void)
{
	__u32 zero = 0;
	struct xvs_tun *t = bpf_map_lookup_elem(&xvs_tun_scratch, &zero);

	if (t)
		__builtin_memset(t, 0, sizeof(*t));
	return t;
}

static __always_inline int xvs_addr_zero(const __be32 *a)
{
	return !(a[0] | a[1] | a[2] | a[3]);
}

/* The lower of two MTUs, 0 standing for none. */
static __always_inline __u32 xvs_mtu_min(__u32 a, __u32 b)
{
	return !a || (b && b < a) ? b : a;
}

/* t->saddr (the tunnel source) is set already (xvs_tun_hop()), and the
 * hop's route MTU (its per-CPU struct xvs_hop). The tunnel's MTU is the
 * lower of that and r's configured one. */
static __always_inline int xvs_tun_of(const struct real *r, const struct pkt *p,
				      struct xvs_tun *t)
{
	struct xvs_hop *hop = xvs_hop_slot();
	__u32 h;

	if (!t || !hop || xvs_addr_zero(t->saddr))
		return -1;
	__builtin_memcpy(t->daddr, r->addr, sizeof(t->daddr));
	t->family = r->family;
	t->mtu = (__u16)xvs_mtu_min(r->tun_mtu, hop->mtu);
	if (r->tun_type == XVS_TUN_IPIP)
		return 0;
	if (r->tun_type != XVS_TUN_GUE || !r->tun_port)
		return -1;
	t->dport = r->tun_port;
	/* IPv4: the addresses themselves (their other words are 0) */
	h = xvs_fold(p->saddr) ^ xvs_fold(p->daddr) ^ (((__u32)p->sport << 16) | p->dport) ^
	    p->proto;
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	t->sport = xvs_gue_sport(h);
	return 0;
}

/*
 * The tunnel source for r into t->saddr: its configured one, or (next hop
 * from the FIB) the one the FIB chose; all 0 = none.
 */
static __always_inline int xvs_tun_hop(void *ctx, __u32 in_ifindex, const struct real *r,
				       struct xvs_tun *t, const struct decision *d)
{
	struct xvs_hop *h;
	int fib = xvs_mac_zero(r->mac), rc, none;

	__builtin_memcpy(t->saddr, r->tun_saddr, sizeof(t->saddr));
	none = xvs_addr_zero(t->saddr);
	if (none && !fib)
		return -1; /* explicit next hop, no tunnel source: the stack's */
	rc = xvs_real_hop(ctx, in_ifindex, r, t->saddr, fib && none, d);
	if (rc != XVS_HOP_FAIL && none) {
		h = xvs_hop_slot();
		if (h)
			__builtin_memcpy(t->saddr, h->saddr, sizeof(t->saddr));
		if (xvs_addr_zero(t->saddr))
			rc = XVS_HOP_FAIL;
	}
	return rc;
}

/* The largest packet tunnel t takes: its MTU less its overhead (0: none). */
static __always_inline __u32 xvs_tun_fit(const struct xvs_tun *t)
{
	__u32 over = xvs_encap_overhead(t);

	return t->mtu > over ? t->mtu - over : 0;
}

/*
 * LVS-TUN: IPIP/GUE toward the real server, then on like DR. These are
 * separate (non-inlined) subprograms so their locals do not sit on the main
 * frame, which the scheduler's call chain already fills close to the
 * verifier's 512-byte limit.
 */
static __attribute__((noinline)) int xvs_xdp_tun(struct xdp_md *ctx, const struct pkt *p,
						  const struct decision *d)
{
	const struct real *r = d->rs;
	struct xvs_tun *t = xvs_tun_slot();
	struct xvs_hop *h;
	int rc, enc;

	if (!r || !t)
		return XDP_DROP;
	rc = xvs_tun_hop(ctx, ctx->ingress_ifindex, r, t, d);
	if (rc < 0) {
		xvs_count(XVS_CNT_LOCAL);
		return XDP_PASS;
	}
	if (rc == XVS_HOP_FAIL) {
		xvs_count(XVS_CNT_NO_ROUTE);
		return XDP_DROP;
	}
	enc = xvs_tun_of(r, p, t) < 0 ? XVS_ENCAP_INVALID : xvs_encap_xdp(ctx, t);
	if (enc != XVS_ENCAP_OK) {
		xvs_count(XVS_CNT_TUN_DROP);
		return enc == XVS_ENCAP_TOO_BIG ? xvs_xdp_too_big(ctx, p, xvs_tun_fit(t), NULL)
						: XDP_DROP;
	}
	h = xvs_hop_slot();
	if (!h) {
		xvs_count(XVS_CNT_TUN_DROP);
		return XDP_DROP;
	}
	if (rc == XVS_HOP_NO_NEIGH) {
		xvs_count(XVS_CNT_NO_NEIGH);
		return xvs_xdp_to_tc(ctx, h, 0);
	}
	if (xvs_xdp_macs(ctx, h->dmac, h->smac)) {
		xvs_count(XVS_CNT_TUN_DROP);
		return XDP_DROP;
	}
	xvs_count(XVS_CNT_FORWARDED);
	return xvs_xdp_out(ctx, h->ifindex);
}

static __attribute__((noinline)) int xvs_tc_tun(struct __sk_buff *skb, const struct pkt *p,
						 const struct decision *d)
{
	const struct real *r = d->rs;
	struct xvs_tun *t = xvs_tun_slot();
	struct xvs_hop *h;
	int rc, enc;

	if (!r || !t)
		return TC_ACT_SHOT;
	rc = xvs_tun_hop(skb, skb->ifindex, r, t, d);
	if (rc < 0) {
		xvs_count(XVS_CNT_LOCAL);
		return TC_ACT_OK;
	}
	if (rc == XVS_HOP_FAIL) {
		xvs_count(XVS_CNT_NO_ROUTE);
		return TC_ACT_SHOT;
	}
	/* adjust_room keeps GSO and CHECKSUM_PARTIAL right (encap.h) */
	enc = xvs_tun_of(r, p, t) < 0 ? XVS_ENCAP_INVALID : xvs_encap_tc(skb, t);
	if (enc != XVS_ENCAP_OK) {
		xvs_count(XVS_CNT_TUN_DROP);
		return enc == XVS_ENCAP_TOO_BIG ? xvs_tc_too_big(skb, p, xvs_tun_fit(t), NULL)
						: TC_ACT_SHOT;
	}
	h = xvs_hop_slot();
	if (!h) {
		xvs_count(XVS_CNT_TUN_DROP);
		return TC_ACT_SHOT;
	}
	if (rc == XVS_HOP_NO_NEIGH) {
		/* the kernel resolves the next hop and sends it */
		xvs_count(XVS_CNT_NO_NEIGH);
		return bpf_redirect_neigh(h->ifindex, &h->nh, sizeof(h->nh), 0);
	}
	if (xvs_tc_macs(skb, h->dmac)) {
		xvs_count(XVS_CNT_TUN_DROP);
		return TC_ACT_SHOT;
	}
	xvs_count(XVS_CNT_FORWARDED);
	return bpf_redirect(h->ifindex, 0);
}

/*
 * A TUN flow from the flow cache toward an IPv4 real server by IPIP, its
 * next hop known without a call (explicit, or the FIB's answer cached):
 * encapsulated here (xvs_encap_ipip4_xdp()), not through xvs_xdp_tun().
 * Returns the device to send the frame out of (>= 0), XVS_TUN_DROP when it
 * is to be dropped (counted), or XVS_TUN_GENERAL for anything else,
 * untouched, which xvs_xdp_tun() takes as it is. (Not a verdict: once the
 * frame's head has moved, the verifier must see that no path goes on to
 * code holding the old packet pointers, and a helper's verdict could be
 * anything.) A subprogram of its own: inlined, its locals took xvs_xdp's
 * frame past what the scheduler's call chain leaves of the verifier's
 * 512 bytes.
 */
#define XVS_TUN_GENERAL (-1)
#define XVS_TUN_DROP (-2)
static __attribute__((noinline)) int xvs_xdp_tun_cached(struct xdp_md *ctx,
							 const struct decision *d)
{
	const struct real *r = d->rs;
	__u32 in_ifindex = ctx->ingress_ifindex;
	struct xvs_hop_cached *e;
	__be32 saddr;
	const __u8 *macs;
	__u32 ifindex;
	__u16 mtu;
	int rc, fib;

	if (d->cached == XVS_CACHED_TUN_FIB) {
		/* the entry's: no tunnel source, next hop from the FIB */
		saddr = 0;
		mtu = d->new_port;
		fib = 1;
	} else {
		if (!r || r->family != XVS_AF_INET || r->tun_type != XVS_TUN_IPIP)
			return XVS_TUN_GENERAL;
		saddr = r->tun_saddr[0];
		mtu = r->tun_mtu;
		fib = xvs_mac_zero(r->mac);
	}
	if (fib) {
		/* the key xvs_tun_hop() gives the FIB's answer (d->new_addr is
		 * the server's address) */
		e = xvs_hop_cached(in_ifindex, XVS_AF_INET | (saddr ? 0 : XVS_FIB_WANT_SRC),
				   d->new_addr, d->tick, d->hz);
		if (!e)
			return XVS_TUN_GENERAL;
		if (!saddr)
			saddr = e->saddr[0];
		macs = e->dmac;
		ifindex = e->ifindex;
		mtu = (__u16)xvs_mtu_min(mtu, e->mtu);
	} else {
		macs = r->mac; /* and src_mac: side by side, as the frame has them */
		ifindex = r->ifindex ? r->ifindex : in_ifindex;
	}
	if (!saddr)
		return XVS_TUN_GENERAL;
	rc = xvs_encap_ipip4_xdp(ctx, saddr, d->new_addr[0], macs, mtu);
	/* too big: xvs_xdp_tun() answers it (rare; the frame is as it was) */
	if (rc == XVS_ENCAP_GENERAL || rc == XVS_ENCAP_TOO_BIG)
		return XVS_TUN_GENERAL;
	if (rc != XVS_ENCAP_OK) {
		xvs_count(XVS_CNT_TUN_DROP);
		return XVS_TUN_DROP;
	}
	xvs_count(XVS_CNT_FORWARDED);
	return (int)(ifindex & 0x7fffffff); /* ifindexes are positive ints */
}

/*
 * DR and NAT toward the real server (XDP): the next hop first, so nothing is
 * rewritten for a packet that goes nowhere; then the DNAT (NAT) and MACs.
 * Without a neighbour entry a DNATed packet is handed to the stack, which
 * forwards it and resolves the neighbour; a DR one is dropped (to the stack
 * it is a packet for the VIP, its own).
 */
static __attribute__((noinline)) int xvs_xdp_fwd(struct xdp_md *ctx, struct pkt *p,
						  const struct decision *d)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct xvs_hop *h;
	int rc;

	if (d->rs)
		rc = xvs_real_hop(ctx, ctx->ingress_ifindex, d->rs, p->saddr, 0, d);
	else
		rc = xvs_fib(ctx, ctx->ingress_ifindex, d->family, p->saddr, d->new_addr, d);
	if (rc == XVS_HOP_FAIL) {
		xvs_count(XVS_CNT_NO_ROUTE);
		return XDP_DROP;
	}
	h = xvs_hop_slot();
	if (!h)
		return XDP_ABORTED;
	/* over the route's MTU: told before the DNAT, about what it sent */
	if (xvs_over_mtu(p, h->mtu)) {
		xvs_count(XVS_CNT_NO_ROUTE);
		return xvs_xdp_too_big(ctx, p, h->mtu, NULL);
	}
	if (d->fwd == XVS_FWD_MASQ && xdp_nat_any(p, data_end, 1, d->new_addr, d->new_port))
		return XDP_ABORTED; /* cannot happen: checked by the parser */
	if (rc == XVS_HOP_NO_NEIGH) {
		xvs_count(XVS_CNT_NO_NEIGH);
		return xvs_xdp_to_tc(ctx, h, d->fwd != XVS_FWD_MASQ);
	}
	if (xvs_xdp_macs(ctx, h->dmac, h->smac))
		return XDP_ABORTED;
	xvs_count(XVS_CNT_FORWARDED);
	return xvs_xdp_out(ctx, h->ifindex);
}

/*
 * A NAT reply over the route's MTU toward the client is answered as the
 * kernel's forwarding answers it (ip_forward(), ahead of IPVS's SNAT): a
 * fragmentation needed / packet too big to the real server, about its own
 * packet, from the director's address toward it (the source the FIB picks
 * for the route back to the server, BPF_FIB_LOOKUP_SRC), counted as
 * no_route. Returns the hop holding that address, or NULL (none: the
 * packet is only dropped).
 */
static __always_inline struct xvs_hop *xvs_reply_too_big_from(void *ctx, __u32 in_ifindex,
							      const struct pkt *p,
							      const struct decision *d)
{
	__be32 none[4] = {};
	struct xvs_hop *h;
	int rc;

	rc = xvs_fib(ctx, in_ifindex, p->family | XVS_FIB_WANT_SRC, none, p->saddr, d);
	h = xvs_hop_slot();
	if (rc == XVS_HOP_FAIL || !h || xvs_addr_zero(h->saddr))
		return NULL;
	return h;
}

/*
 * A NAT reply (XDP): SNAT to the VIP, then straight to the client's next hop
 * from the FIB. Without one it goes to the stack, as the kernel's IPVS
 * would route it (which, arriving with a local source, needs accept_local).
 */
static __attribute__((noinline)) int xvs_xdp_reply(struct xdp_md *ctx, struct pkt *p,
						    const struct decision *d)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct xvs_hop *h;
	__u32 mtu;
	int rc;

	rc = xvs_fib(ctx, ctx->ingress_ifindex, p->family | XVS_FIB_REPLY, d->new_addr, p->daddr, d);
	h = xvs_hop_slot();
	mtu = rc == XVS_HOP_OK && h ? h->mtu : 0;
	if (xvs_over_mtu(p, mtu)) {
		/* told as the director's forwarding would tell it, before the
		 * SNAT, from its own address toward the server */
		xvs_count(XVS_CNT_NO_ROUTE);
		h = xvs_reply_too_big_from(ctx, ctx->ingress_ifindex, p, d);
		return h ? xvs_xdp_too_big(ctx, p, mtu, h->saddr) : XDP_DROP;
	}
	if (xdp_nat_any(p, data_end, 0, d->new_addr, d->new_port))
		return XDP_ABORTED; /* cannot happen: checked by the parser */
	if (rc == XVS_HOP_FAIL || !h) {
		xvs_count(XVS_CNT_NO_ROUTE);
		return XDP_PASS;
	}
	if (rc == XVS_HOP_NO_NEIGH) {
		xvs_count(XVS_CNT_NO_NEIGH);
		return xvs_xdp_to_tc(ctx, h, 0);
	}
	if (xvs_xdp_macs(ctx, h->dmac, h->smac))
		return XDP_ABORTED;
	xvs_count(XVS_CNT_REPLIED);
	return xvs_xdp_out(ctx, h->ifindex);
}

SEC("xdp")
int xvs_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct decision d = {};
	struct pkt p = {};
	int act, rc;

	rc = parse_packet(&p, data, data_end);
	if (xvs_icmp_is(&p, rc, (__u32)(data_end - data))) {
		act = xvs_icmp_decide(&p, data_end, &d);
		if (act == XVS_ACT_REPLY)
			return xvs_xdp_reply(ctx, &p, &d);
		if (act != XVS_ACT_FORWARD) {
			xvs_count(XVS_CNT_PASSED);
			return XDP_PASS;
		}
		if (d.fwd == XVS_FWD_TUNNEL)
			return xvs_xdp_tun(ctx, &p, &d);
		return xvs_xdp_fwd(ctx, &p, &d);
	}
	if (xvs_classify_rc(&p, rc, (__u32)(data_end - data)) >= 0)
		return XDP_PASS;
	if (p.frag == XVS_FRAG_LATER) {
		act = xvs_frag_decide(&p, &d);
		if (act == XVS_ACT_PASS)
			return XDP_PASS; /* counted */
	} else {
		act = xvs_decide(&p, 0, &d, 1);
	}
	if (act == XVS_ACT_FORWARD && d.cached == 1 && !d.rs) {
		/* From the flow cache, DR or NAT, next hop from the FIB (IPv4):
		 * with the hop cached too, sent from here, no call but the
		 * redirect's. */
		struct xvs_hop_cached *e =
			xvs_hop_cached(ctx->ingress_ifindex, XVS_AF_INET, d.new_addr, d.tick, d.hz);

		/* (over the route's MTU: xvs_xdp_fwd() answers it) */
		if (e && !xvs_over_mtu(&p, e->mtu)) {
			if (d.fwd == XVS_FWD_MASQ &&
			    xdp_nat(&p, data_end, 1, d.new_addr[0], d.new_port))
				return XDP_ABORTED; /* cannot happen: checked by the parser */
			if (xvs_xdp_macs(ctx, e->dmac, e->smac))
				return XDP_ABORTED;
			xvs_count(XVS_CNT_FORWARDED);
			return xvs_xdp_out(ctx, e->ifindex);
		}
	}
	if (act == XVS_ACT_FORWARD && d.cached && d.fwd == XVS_FWD_TUNNEL) {
		int rc = xvs_xdp_tun_cached(ctx, &d);

		if (rc >= 0)
			return xvs_xdp_out(ctx, rc);
		if (rc == XVS_TUN_DROP)
			return XDP_DROP;
		if (d.cached == XVS_CACHED_TUN_FIB) {
			/* its hop no longer cached: the general path, which
			 * needs the server's configuration after all */
			__u32 rid = xvs_flow_real_id(&p);

			d.rs = rid ? bpf_map_lookup_elem(&xvs_reals, &rid) : NULL;
			if (!d.rs) {
				xvs_count(XVS_CNT_UNAVAILABLE);
				return XDP_DROP;
			}
		}
	}
	if (act == XVS_ACT_REPLY)
		return xvs_xdp_reply(ctx, &p, &d);
	if (act != XVS_ACT_FORWARD) {
		if (!xvs_account(act))
			return XDP_PASS;
		if (act != XVS_ACT_DROP_NODEST)
			return XDP_DROP;
		xvs_event_nodest(&p, 0);
		return xvs_xdp_unreach(ctx, &p, 0, NULL);
	}
	switch (d.fwd) {
	case XVS_FWD_MASQ:
	case XVS_FWD_ROUTE:
		return xvs_xdp_fwd(ctx, &p, &d);
	case XVS_FWD_TUNNEL:
		return xvs_xdp_tun(ctx, &p, &d);
	default:
		xvs_count(XVS_CNT_LOCAL);
		return XDP_PASS;
	}
}

/* tc ----------------------------------------------------------------------- */

/*
 * NAT in tc: the checksum helpers keep CHECKSUM_PARTIAL skbs right (address
 * changes touch the pseudo header: BPF_F_PSEUDO_HDR). UDP checksum 0 stays 0
 * (BPF_F_MARK_MANGLED_0).
 */
static __always_inline int tc_nat(struct __sk_buff *skb, __u32 l4off, __u8 proto, int dst,
				  __be32 old, __be32 addr, __be16 oldp, __be16 port)
{
	__u32 csum_off = l4off + (proto == IPPROTO_TCP ? 16 : 6);
	__u64 mflag = proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	__u32 ip_off = sizeof(struct ethhdr);

	if (bpf_l4_csum_replace(skb, csum_off, old, addr, BPF_F_PSEUDO_HDR | mflag | sizeof(addr)))
		return -1;
	if (bpf_l3_csum_replace(skb, ip_off + 10, old, addr, sizeof(addr)))
		return -1;
	if (bpf_skb_store_bytes(skb, ip_off + (dst ? 16 : 12), &addr, sizeof(addr), 0))
		return -1;
	if (oldp != port) {
		if (bpf_l4_csum_replace(skb, csum_off, oldp, port, mflag | sizeof(port)))
			return -1;
		if (bpf_skb_store_bytes(skb, l4off + (dst ? 2 : 0), &port, sizeof(port), 0))
			return -1;
	}
	return 0;
}

/*
 * The same for IPv6: no header checksum; the four address words go into the
 * TCP/UDP checksum through the pseudo header. old and addr: 4 words each.
 */
/* how: protocol | dst << 8 | l4off << 16; ports: old | new << 16 (five arguments at most) */
static __attribute__((noinline)) int tc_nat6(struct __sk_buff *skb, __u32 how, const __be32 *old,
					     const __be32 *addr, __u32 ports)
{
	__u8 proto = how & 0xff;
	int dst = (how >> 8) & 1;
	__u32 l4off = how >> 16;
	__u32 csum_off = l4off + (proto == IPPROTO_TCP ? 16 : 6);
	__u64 mflag = proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	__u32 ip_off = sizeof(struct ethhdr);
	__be16 oldp = ports & 0xffff, port = ports >> 16;
	__be32 w[4];

	__builtin_memcpy(w, addr, sizeof(w));
#pragma unroll
	for (int i = 0; i < 4; i++)
		if (bpf_l4_csum_replace(skb, csum_off, old[i], w[i],
					BPF_F_PSEUDO_HDR | mflag | sizeof(w[i])))
			return -1;
	if (bpf_skb_store_bytes(skb, ip_off + (dst ? 24 : 8), w, sizeof(w), 0))
		return -1;
	if (oldp != port) {
		if (bpf_l4_csum_replace(skb, csum_off, oldp, port, mflag | sizeof(port)))
			return -1;
		if (bpf_skb_store_bytes(skb, l4off + (dst ? 2 : 0), &port, sizeof(port), 0))
			return -1;
	}
	return 0;
}

/* xdp_nat_icmp() in tc: the checksum helpers keep a CHECKSUM_COMPLETE skb
 * right. A subprogram: the tc frame has no room for it inline. */
static __attribute__((noinline)) int tc_nat_icmp(struct __sk_buff *skb, __u32 icmp_off, int dst,
						  __be32 addr, __be16 port)
{
	__u32 in_off = icmp_off + 8, csum_off = icmp_off + 2, aoff, poff;
	__u8 vihl;
	__be32 old;
	__be16 oldp, oldcheck, newcheck;

	if (bpf_skb_load_bytes(skb, in_off, &vihl, 1))
		return -1;
	aoff = in_off + (dst ? 12 : 16);
	poff = in_off + (vihl & 0xf) * 4 + (dst ? 0 : 2);
	/* outer address and header checksum */
	if (bpf_skb_load_bytes(skb, sizeof(struct ethhdr) + (dst ? 16 : 12), &old, 4) ||
	    bpf_l3_csum_replace(skb, sizeof(struct ethhdr) + 10, old, addr, 4) ||
	    bpf_skb_store_bytes(skb, sizeof(struct ethhdr) + (dst ? 16 : 12), &addr, 4, 0))
		return -1;
	/* quoted address, its header checksum, ICMP's over both */
	if (bpf_skb_load_bytes(skb, aoff, &old, 4) ||
	    bpf_skb_load_bytes(skb, in_off + 10, &oldcheck, 2) ||
	    bpf_l3_csum_replace(skb, in_off + 10, old, addr, 4) ||
	    bpf_skb_store_bytes(skb, aoff, &addr, 4, 0) ||
	    bpf_skb_load_bytes(skb, in_off + 10, &newcheck, 2) ||
	    bpf_l4_csum_replace(skb, csum_off, old, addr, 4) ||
	    bpf_l4_csum_replace(skb, csum_off, oldcheck, newcheck, 2))
		return -1;
	/* quoted port */
	if (bpf_skb_load_bytes(skb, poff, &oldp, 2) ||
	    bpf_l4_csum_replace(skb, csum_off, oldp, port, 2) ||
	    bpf_skb_store_bytes(skb, poff, &port, 2, 0))
		return -1;
	return 0;
}

/* The address alone (dst: the destination, else the source; IPv4: and
 * the header checksum), in tc: what a NAT rewrite is to a packet whose L4
 * checksum does not cover it (SCTP) or that has no L4 header (a later
 * fragment). addr: 4 words, IPv4 in [0]. */
static __always_inline int tc_nat_addr(struct __sk_buff *skb, const struct pkt *p, int dst,
				       const __be32 *addr)
{
	__u32 ip_off = sizeof(struct ethhdr);
	__be32 old = dst ? p->daddr[0] : p->saddr[0], a = addr[0];

	if (p->family == XVS_AF_INET6)
		return bpf_skb_store_bytes(skb, ip_off + (dst ? 24 : 8), addr, 16, 0) ? -1 : 0;
	if (bpf_l3_csum_replace(skb, ip_off + 10, old, a, sizeof(a)) ||
	    bpf_skb_store_bytes(skb, ip_off + (dst ? 16 : 12), &a, sizeof(a), 0))
		return -1;
	return 0;
}

/* NAT of an SCTP packet in tc, either family: the address, then a changed
 * port with the CRC32c's update. */
static __attribute__((noinline)) int tc_nat_sctp(struct __sk_buff *skb, const struct pkt *p,
						  int dst, const __be32 *addr, __be16 port)
{
	__u32 l4off = sizeof(struct ethhdr) + p->l3_len;
	__u8 sh[XVS_SCTP_HLEN];

	if (tc_nat_addr(skb, p, dst, addr))
		return -1;
	if ((dst ? p->dport : p->sport) == port)
		return 0;
	if (bpf_skb_load_bytes(skb, l4off, sh, sizeof(sh)))
		return -1;
	xvs_sctp_set_port(sh, dst, port, (__u32)p->tot_len - p->l3_len);
	return bpf_skb_store_bytes(skb, l4off, sh, sizeof(sh), 0) ? -1 : 0;
}

/* NAT in tc, either family (ICMP errors too): addr is 4 words (IPv4 in
 * [0]). */
static __always_inline int tc_nat_any(struct __sk_buff *skb, const struct pkt *p, int dst,
				      const __be32 *addr, __be16 port)
{
	__u32 l4off = sizeof(struct ethhdr) + p->l3_len;
	__be16 oldp = dst ? p->dport : p->sport;

	if (p->frag == XVS_FRAG_LATER) /* no L4 header here */
		return tc_nat_addr(skb, p, dst, addr);
	if (p->proto == IPPROTO_ICMP)
		return tc_nat_icmp(skb, l4off, dst, addr[0], port);
	if (p->proto == IPPROTO_SCTP)
		return tc_nat_sctp(skb, p, dst, addr, port);

	if (p->family == XVS_AF_INET6)
		return tc_nat6(skb, p->proto | (dst << 8) | (l4off << 16), dst ? p->daddr : p->saddr, addr,
			       (__u32)oldp | ((__u32)port << 16));
	return tc_nat(skb, l4off, p->proto, dst, dst ? p->daddr[0] : p->saddr[0], addr[0], oldp,
		      port);
}

/*
 * DR and NAT toward the real server (tc). Without a neighbour entry the
 * kernel resolves it: bpf_redirect_neigh().
 */
static __attribute__((noinline)) int xvs_tc_fwd(struct __sk_buff *skb, const struct pkt *p,
						 const struct decision *d)
{
	struct xvs_hop *h;
	int rc;

	if (d->rs)
		rc = xvs_real_hop(skb, skb->ifindex, d->rs, p->saddr, 0, d);
	else
		rc = xvs_fib(skb, skb->ifindex, d->family, p->saddr, d->new_addr, d);
	if (rc == XVS_HOP_FAIL) {
		xvs_count(XVS_CNT_NO_ROUTE);
		return TC_ACT_SHOT;
	}
	h = xvs_hop_slot();
	if (!h)
		return TC_ACT_SHOT;
	/* over the route's MTU (a GSO skb's segments are cut to fit): told
	 * before the DNAT, about what it sent */
	if (!skb->gso_size && xvs_over_mtu(p, h->mtu)) {
		xvs_count(XVS_CNT_NO_ROUTE);
		return xvs_tc_too_big(skb, p, h->mtu, NULL);
	}
	if (d->fwd == XVS_FWD_MASQ && tc_nat_any(skb, p, 1, d->new_addr, d->new_port))
		return TC_ACT_SHOT; /* half rewritten: never let it out */
	if (rc == XVS_HOP_NO_NEIGH) {
		xvs_count(XVS_CNT_NO_NEIGH);
		return bpf_redirect_neigh(h->ifindex, &h->nh, sizeof(h->nh), 0);
	}
	if (xvs_tc_macs(skb, h->dmac))
		return TC_ACT_SHOT;
	xvs_count(XVS_CNT_FORWARDED);
	/* To the egress of ifindex (the ingress device itself for one-armed DR). */
	return bpf_redirect(h->ifindex, 0);
}

/*
 * A NAT reply (tc): SNAT to the VIP, then to the client's next hop from the
 * FIB (bpf_redirect, or bpf_redirect_neigh when the neighbour is not
 * resolved yet). No route: handed to the stack.
 */
static __attribute__((noinline)) int xvs_tc_reply(struct __sk_buff *skb, const struct pkt *p,
						   const struct decision *d)
{
	struct xvs_hop *h;
	__u32 mtu;
	int rc;

	rc = xvs_fib(skb, skb->ifindex, p->family | XVS_FIB_REPLY, d->new_addr, p->daddr, d);
	h = xvs_hop_slot();
	mtu = rc == XVS_HOP_OK && h && !skb->gso_size ? h->mtu : 0;
	if (xvs_over_mtu(p, mtu)) {
		/* as in XDP */
		xvs_count(XVS_CNT_NO_ROUTE);
		h = xvs_reply_too_big_from(skb, skb->ifindex, p, d);
		return h ? xvs_tc_too_big(skb, p, mtu, h->saddr) : TC_ACT_SHOT;
	}
	if (tc_nat_any(skb, p, 0, d->new_addr, d->new_port))
		return TC_ACT_SHOT; /* half rewritten: never let it out */
	if (rc == XVS_HOP_FAIL || !h) {
		xvs_count(XVS_CNT_NO_ROUTE);
		return TC_ACT_OK;
	}
	if (rc == XVS_HOP_NO_NEIGH) {
		xvs_count(XVS_CNT_NO_NEIGH);
		return bpf_redirect_neigh(h->ifindex, &h->nh, sizeof(h->nh), 0);
	}
	if (xvs_tc_macs(skb, h->dmac))
		return TC_ACT_SHOT;
	xvs_count(XVS_CNT_REPLIED);
	return bpf_redirect(h->ifindex, 0);
}

/* Whether the skb carries xvs_xdp's metadata (xvs_xdp_to_tc). */
static __always_inline int xvs_tc_from_xdp(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	struct xvs_meta *m = (void *)(long)skb->data_meta;

	return (void *)(m + 1) <= data &&
	       (m->magic == XVS_META_MAGIC || m->magic == XVS_META6_MAGIC);
}

/* Sends it as xvs_xdp decided (already counted there, as no_neigh). */
static __attribute__((noinline)) int xvs_tc_redirect_meta(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	struct xvs_meta *m = (void *)(long)skb->data_meta;
	struct xvs_hop *h = xvs_hop_slot();
	__u32 ifindex;

	if ((void *)(m + 1) > data || !h)
		return TC_ACT_SHOT;
	if (m->magic == XVS_META6_MAGIC) {
		struct xvs_meta6 *m6 = (void *)m;

		if ((void *)(m6 + 1) > data)
			return TC_ACT_SHOT;
		h->nh.nh_family = XVS_AF_INET6;
		__builtin_memcpy(h->nh.ipv6_nh, m6->nh, 16);
	} else {
		h->nh.nh_family = XVS_AF_INET;
		h->nh.ipv4_nh = m->nh;
	}
	ifindex = m->ifindex;
	m->magic = 0; /* used up: no later hook takes it for ours */
	return bpf_redirect_neigh(ifindex, &h->nh, sizeof(h->nh), 0);
}

SEC("classifier")
int xvs_tc(struct __sk_buff *skb)
{
	struct decision d = {};
	struct pkt p = {};
	void *data, *data_end;
	__u32 want;
	int act, rc;

	/* A frame xvs_xdp already handled and left for bpf_redirect_neigh. */
	if (xvs_tc_from_xdp(skb))
		return xvs_tc_redirect_meta(skb);

	/*
	 * Direct packet access only covers the linear part of the skb, which
	 * usually holds the headers and nothing more (a local stack's TCP
	 * segments carry their payload in page fragments; GRO/GSO skbs can be
	 * paged early). Only when the headers parse_packet() reads run past it
	 * are they pulled in: bpf_skb_pull_data() copies, and on a cloned skb
	 * (every TCP segment a local stack sends is one) reallocates its head.
	 */
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	rc = parse_packet(&p, data, data_end);
	want = skb->protocol == bpf_htons(ETH_P_IPV6) ? XVS_MAX_HDR_LEN6 : XVS_MAX_HDR_LEN;
	if (want > skb->len)
		want = skb->len;
	if (rc == XVS_PARSE_MALFORMED && data + want > data_end) {
		bpf_skb_pull_data(skb, want);
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
		__builtin_memset(&p, 0, sizeof(p));
		rc = parse_packet(&p, data, data_end);
	}
	if (xvs_icmp_is(&p, rc, skb->len)) {
		act = xvs_icmp_decide(&p, data_end, &d);
		if (act == XVS_ACT_REPLY)
			return xvs_tc_reply(skb, &p, &d);
		if (act != XVS_ACT_FORWARD) {
			xvs_count(XVS_CNT_PASSED);
			return TC_ACT_OK;
		}
		if (d.fwd == XVS_FWD_TUNNEL)
			return xvs_tc_tun(skb, &p, &d);
		return xvs_tc_fwd(skb, &p, &d);
	}
	if (xvs_classify_rc(&p, rc, skb->len) >= 0)
		return TC_ACT_OK;
	if (p.frag == XVS_FRAG_LATER) {
		act = xvs_frag_decide(&p, &d);
		if (act == XVS_ACT_PASS)
			return TC_ACT_OK; /* counted */
	} else {
		act = xvs_decide(&p, skb->mark, &d, 0);
	}
	if (act == XVS_ACT_FORWARD && d.cached && !d.rs && d.fwd == XVS_FWD_ROUTE) {
		/* From the flow cache, DR, next hop from the FIB (IPv4): with
		 * the hop cached too, sent from here, without the call into
		 * (and return from) xvs_tc_fwd(). (NAT's rewrite inline would
		 * take this frame past the verifier's stack limit.) */
		struct xvs_hop_cached *e =
			xvs_hop_cached(skb->ifindex, XVS_AF_INET, d.new_addr, d.tick, d.hz);

		/* (over the route's MTU: xvs_tc_fwd() answers it) */
		if (e && (skb->gso_size || !xvs_over_mtu(&p, e->mtu))) {
			if (xvs_tc_macs(skb, e->dmac))
				return TC_ACT_SHOT;
			xvs_count(XVS_CNT_FORWARDED);
			return bpf_redirect(e->ifindex, 0);
		}
	}
	if (act == XVS_ACT_REPLY)
		return xvs_tc_reply(skb, &p, &d);
	if (act != XVS_ACT_FORWARD) {
		if (!xvs_account(act))
			return TC_ACT_OK;
		if (act != XVS_ACT_DROP_NODEST)
			return TC_ACT_SHOT;
		xvs_event_nodest(&p, skb->mark);
		return xvs_tc_unreach(skb, &p, 0, NULL);
	}
	switch (d.fwd) {
	case XVS_FWD_MASQ:
	case XVS_FWD_ROUTE:
		return xvs_tc_fwd(skb, &p, &d);
	case XVS_FWD_TUNNEL:
		return xvs_tc_tun(skb, &p, &d);
	default:
		xvs_count(XVS_CNT_LOCAL);
		return TC_ACT_OK;
	}
}

/* Expiry ------------------------------------------------------------------- */

/*
 * Control operations, run by user space through BPF_PROG_TEST_RUN so that
 * counts are only ever changed by BPF code, atomically. The "packet" is:
 *   byte 0  op: XVS_CTL_EXPIRE, XVS_CTL_CLEAR_OVERLOAD or XVS_CTL_EXPIRE_TPL
 *   byte 4  EXPIRE: a struct conn_key, then one byte: 1 = free it whatever
 *           its deadline; CLEAR_OVERLOAD: a real server id (u32);
 *           EXPIRE_TPL: a template id (u32), then the force byte at 4 + 40
 * EXPIRE returns 0 if there is no such entry, 1 if it is still live, 2 if
 * this run freed it. EXPIRE_TPL the same (1 also when the template is kept
 * because it still controls connections: its timer then restarts, 60 s).
 * CLEAR_OVERLOAD returns 1 if the real server exists. JIFFIES returns the
 * low 32 bits of the kernel's jiffies (user space measures HZ with it).
 * FORGET_FLOWS retires every CPU's cached flows (a real server's
 * configuration changed: see xvs_flow_tun_fib()) and returns 1.
 */
#define XVS_CTL_EXPIRE 1
#define XVS_CTL_CLEAR_OVERLOAD 2
#define XVS_CTL_EXPIRE_TPL 3
#define XVS_CTL_JIFFIES 4
#define XVS_CTL_FORGET_FLOWS 5

SEC("xdp")
int xvs_ctl(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct xvs_config *cfg = xvs_cfg();
	struct real_state *st;
	struct conn_key k;
	struct conn *c;
	struct tpl *t;
	__u64 now = xvs_now(cfg);
	__u32 id;
	__u8 op, force;

	if (data + 4 + sizeof(k) + 1 > data_end)
		return 0;
	op = *(__u8 *)data;
	if (op == XVS_CTL_JIFFIES)
		return (__u32)bpf_jiffies64();
	if (op == XVS_CTL_FORGET_FLOWS) {
		xvs_flow_forget();
		return 1;
	}
	force = *(__u8 *)(data + 4 + sizeof(k));
	if (op == XVS_CTL_EXPIRE_TPL) {
		id = *(__u32 *)(data + 4);
		t = bpf_map_lookup_elem(&xvs_tpls, &id);
		if (!t)
			return 0;
		if (!force && t->expires > now)
			return 1;
		return xvs_tpl_expire(id, t, now, force, 0) ? 2 : 1;
	}
	if (op == XVS_CTL_CLEAR_OVERLOAD) {
		id = *(__u32 *)(data + 4);
		st = bpf_map_lookup_elem(&xvs_real_state, &id);
		if (!st)
			return 0;
		st->overloaded = 0;
		return 1;
	}
	if (op != XVS_CTL_EXPIRE)
		return 0;
	__builtin_memcpy(&k, data + 4, sizeof(k));
	c = bpf_map_lookup_elem(&xvs_conns, &k);
	if (!c)
		return 0;
	if (!force && c->expires > now)
		return 1;
	return xvs_conn_free(&k, c, now) ? 2 : 0;
}
