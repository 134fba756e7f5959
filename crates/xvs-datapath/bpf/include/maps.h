/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * BPF maps of the xvs datapath. User space finds them by these names
 * (src/maps.rs). Maps whose values user space replaces while packets flow
 * (lists, reals, hash tables) are BPF_F_NO_PREALLOC hashes: an update swaps
 * in a new element and RCU frees the old one, so a program always sees a
 * whole old or a whole new value, never a half-written one.
 */
#ifndef XVS_MAPS_H
#define XVS_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "structs.h"

#ifndef XVS_MAX_SERVICES
#define XVS_MAX_SERVICES 16384
#endif
#ifndef XVS_MAX_REALS
#define XVS_MAX_REALS 262144
#endif
#ifndef XVS_MAX_CONNS
#define XVS_MAX_CONNS 10000000
#endif

/* Virtual services: svc_key -> svc_info. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_SERVICES);
	__type(key, struct svc_key);
	__type(value, struct svc_info);
} xvs_services SEC(".maps");

/* Service id -> its real servers in kernel list order. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_SERVICES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct dest_list);
} xvs_dest_lists SEC(".maps");

/* Real server id -> configuration (kept, unavailable, while in the trash). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_REALS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct real);
} xvs_reals SEC(".maps");

/*
 * Real server id -> XVS_LIVE_* flags: what an established connection's
 * packet needs to know of its real server, in one word (an array: looked
 * up without a helper call). User space writes it after xvs_reals when a
 * server is listed, before xvs_reals when it is taken out.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XVS_MAX_REALS);
	__type(key, __u32);
	__type(value, __u32);
} xvs_real_live SEC(".maps");

/* Real server id -> connection counts (atomic, shared by all CPUs). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_REALS);
	__type(key, __u32);
	__type(value, struct real_state);
} xvs_real_state SEC(".maps");

/* Service id -> rr/wrr state, under its spin lock. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct sched_state);
} xvs_sched_state SEC(".maps");

/* Service id -> sh/dh/mh table computed by xvs-core. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_SERVICES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct htab);
} xvs_htab SEC(".maps");

/* Connections: client -> VIP tuple -> connection. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_CONNS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct conn_key);
	__type(value, struct conn);
} xvs_conns SEC(".maps");

/*
 * Datagrams whose first fragment was forwarded (or replied): where
 * their later fragments go. Shared by the CPUs (a NIC may spread one
 * datagram's fragments), least recently used first out; an entry is
 * trusted for XVS_FRAG_TIMEOUT, the kernel's ipfrag_time. Not pinned.
 */
#ifndef XVS_MAX_FRAGS
#define XVS_MAX_FRAGS 65536
#endif
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XVS_MAX_FRAGS);
	__type(key, struct frag_key);
	__type(value, struct frag_val);
} xvs_frags SEC(".maps");

/* NAT reply index: real server -> client tuple -> the connection's key. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_CONNS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct conn_key);
	__type(value, struct conn_key);
} xvs_conns_out SEC(".maps");

#ifndef XVS_MAX_TEMPLATES
#define XVS_MAX_TEMPLATES 1048576
#endif
#ifndef XVS_MAX_LBL
#define XVS_MAX_LBL 65536
#endif

/* Valid persistence templates: template key -> template id. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_TEMPLATES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct tpl_key);
	__type(value, __u32);
} xvs_tpl_index SEC(".maps");

/* Persistence templates (valid or invalidated): id -> template. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_TEMPLATES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct tpl);
} xvs_tpls SEC(".maps");

/*
 * Sequence numbers: [0] last template id, [1] next twos test draw; user
 * space only: [2] last service id, [3] last real server slot (pinned, so a
 * restarted daemon never hands out an id still in use).
 */
#define XVS_SEQ_TPL 0
#define XVS_SEQ_RAND 1
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} xvs_seq SEC(".maps");

/* twos test hook: the draws to use when xvs_config.rand_fixed is set. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XVS_RAND_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} xvs_rand SEC(".maps");

/* lblc cache: (service, destination address) -> real server. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_LBL);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lbl_key);
	__type(value, struct lblc_entry);
} xvs_lblc SEC(".maps");

/* lblcr cache: (service, destination address) -> server set. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_LBL);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lbl_key);
	__type(value, struct lblcr_set);
} xvs_lblcr SEC(".maps");

/* Per-CPU scratch copy of an lblcr set, edited then written back whole. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lblcr_set);
} xvs_lblcr_scratch SEC(".maps");

/*
 * Per-CPU scratch space for values too big for the 512-byte BPF stack on
 * the scheduling path (a program runs to completion on its CPU).
 */
struct xvs_scratch {
	/*
	 * A struct conn being built. Raw bytes: a per-CPU array may not hold a
	 * struct bpf_spin_lock, which struct conn has (cast to use it).
	 */
	__u8 nc[sizeof(struct conn)] __attribute__((aligned(8)));
	struct conn_key ok;
	struct tpl_key tk;
	struct tpl nt;
	struct lbl_key lk;
	struct lblc_entry le;
	struct conn_key uk; /* reply-index key of a connection being freed */
	struct conn_key ck; /* the packet's connection key (xvs_decide) */
	struct conn_key ik; /* a NAT reply's connection key (xvs_decide) */
	struct unbind old;  /* what a connection replaced still owes (xvs_decide_slow) */
	__be32 sched_daddr[4]; /* the packet's destination, for xvs_schedule() (lblc/lblcr) */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xvs_scratch);
} xvs_scratch SEC(".maps");

/*
 * The rate of ICMP port unreachables xvs_xdp sends (no real server for a
 * new connection), per CPU: a token bucket of nanoseconds of credit, as
 * the kernel's icmp_global_allow() keeps for icmp_msgs_per_sec (1000) and
 * icmp_msgs_burst (50); and of events (xvs_events), as net_ratelimit()
 * does for the kernel's log.
 */
struct xvs_rl {
	__u64 last;   /* clock at the last refill */
	__u64 credit; /* ns, at most a burst's worth */
	__u64 missed; /* refused since the last one allowed */
};

/* Its slots: the ICMP messages', and the events' (xvs_events). */
#define XVS_RL_ICMP 0
#define XVS_RL_EVENT 1

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct xvs_rl);
} xvs_rl SEC(".maps");

/*
 * Events for the daemon (struct xvs_event). Not pinned: a new load's
 * programs write to their own, which the new daemon reads.
 */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} xvs_events SEC(".maps");

/*
 * The flow cache: one region per CPU (possible CPUs, by number), each of
 * xvs_config.flow_sets sets of XVS_FLOW_WAYS entries; user space sizes the
 * map. A plain array rather than a per-CPU one, so an entry is one load
 * away (no per-element pointer to follow), and mmapable, which makes its
 * values page-aligned: a set of eight 32-byte entries is four whole cache
 * lines, filled from the first. Eight ways over fewer sets rather than
 * four over more: as many flows overflow no set, in fewer cache lines
 * (xvs-datapath's README, "The flow cache"). Only its own CPU writes a
 * region. Not pinned: a cache.
 */
#ifndef XVS_FLOW_WAYS
#define XVS_FLOW_WAYS 8
#endif
#ifndef XVS_FLOW_CACHE
#define XVS_FLOW_CACHE 32768
#endif
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, XVS_FLOW_CACHE);
	__type(key, __u32);
	__type(value, struct xvs_flow);
} xvs_flow_cache SEC(".maps");

/*
 * The flow cache's generation: a connection taken out of the table other
 * than by its timer (replaced, its server gone, flushed) moves it on, which
 * retires every cached flow on every CPU. A map of its own, so the cache
 * line every packet reads is written only then. Not pinned.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} xvs_flow_gen SEC(".maps");

/* Timeouts and sysctls, one entry. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xvs_config);
} xvs_config SEC(".maps");

/*
 * Per-service (by service id), per-real-server (by real server id) and
 * total counters, per CPU. Arrays, so a packet reaches its counters
 * without a helper call; user space zeroes an id's counters when it hands
 * the id out.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XVS_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct xvs_stats);
} xvs_svc_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XVS_MAX_REALS);
	__type(key, __u32);
	__type(value, struct xvs_stats);
} xvs_real_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xvs_stats);
} xvs_total_stats SEC(".maps");

/* Packet counters, one slot per enum xvs_counter, one copy per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XVS_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} xvs_counters SEC(".maps");

static __always_inline struct xvs_config *xvs_cfg(void)
{
	__u32 k = 0;

	return bpf_map_lookup_elem(&xvs_config, &k);
}

static __always_inline void xvs_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&xvs_counters, &idx);

	if (v)
		*v += 1; /* per-CPU slot: no atomics needed */
}

#endif /* XVS_MAPS_H */
