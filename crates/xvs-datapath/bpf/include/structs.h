/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Structures shared between the BPF programs and user space.
 *
 * Every struct here is mirrored field for field by a #[repr(C)] struct in
 * crates/xvs-datapath/src/maps.rs; the Rust side asserts the sizes at compile
 * time. Keep both in step, keep explicit padding, and never let the compiler
 * insert any: map keys are hashed byte for byte, so stray padding would make
 * equal keys differ.
 *
 * Addresses and ports are in network byte order unless a comment says
 * otherwise. An IPv4 address lives in addr[0] and addr[1..3] are zero.
 */
#ifndef XVS_STRUCTS_H
#define XVS_STRUCTS_H

#include <linux/types.h>
#include <linux/bpf.h>

/* Address families as they appear in keys. */
#define XVS_AF_INET 2
#define XVS_AF_INET6 10

/* Real servers per service (length of struct dest_list). */
#define XVS_MAX_DESTS 256
/* Slots of a hashing scheduler's table: mh uses 4093, sh and dh the first 256. */
#define XVS_HTAB_SIZE 4093
#define XVS_SH_TAB_SIZE 256

/*
 * A virtual service: (family, protocol, VIP, port), like ipvsadm -t/-u. A
 * fwmark service (-f) has proto 0, port 0 and the mark, in host order, in
 * addr[0].
 */
struct svc_key {
	__be32 addr[4];
	__be16 port;
	__u8 proto;  /* IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP, 0 for fwmark */
	__u8 family; /* XVS_AF_INET or XVS_AF_INET6 */
};

/* Scheduler kinds, numbered as xvs_core::sched::SchedulerKind::ALL. */
enum xvs_sched {
	XVS_SCHED_RR = 0,
	XVS_SCHED_WRR = 1,
	XVS_SCHED_LC = 2,
	XVS_SCHED_WLC = 3,
	XVS_SCHED_SED = 4,
	XVS_SCHED_NQ = 5,
	XVS_SCHED_DH = 6,
	XVS_SCHED_SH = 7,
	XVS_SCHED_LBLC = 8,
	XVS_SCHED_LBLCR = 9,
	XVS_SCHED_MH = 10,
	XVS_SCHED_FO = 11,
	XVS_SCHED_OVF = 12,
	XVS_SCHED_TWOS = 13,
};

/* svc_info.flags: the kernel's IP_VS_SVC_F_* values. */
#define XVS_SVC_F_PERSISTENT 0x0001
#define XVS_SVC_F_ONEPACKET 0x0004
#define XVS_SVC_F_SCHED1 0x0008 /* sh/mh: fallback */
#define XVS_SVC_F_SCHED2 0x0010 /* sh/mh: hash the source port */

/* A service's settings: value of xvs_services. */
struct svc_info {
	__u32 id;      /* stable service id, key of the per-service maps */
	__u32 sched;   /* enum xvs_sched */
	__u32 flags;   /* XVS_SVC_F_* */
	__u32 timeout; /* persistence timeout, seconds (-p) */
	__u32 netmask; /* persistence netmask, host order (-M) */
	__u32 pad;
};

/* One entry of a service's real-server list. */
struct dest_ref {
	__u32 id;     /* real server id (xvs_core DestId) */
	__s32 weight; /* its weight, copied here so schedulers read one map */
};

/* A service's real servers in kernel list order (newest first). */
struct dest_list {
	__u32 n;
	__u32 pad;
	struct dest_ref d[XVS_MAX_DESTS];
};

/* Forwarding methods: the kernel's IP_VS_CONN_F_* values. */
#define XVS_FWD_MASQ 0
#define XVS_FWD_LOCAL 1
#define XVS_FWD_TUNNEL 2
#define XVS_FWD_ROUTE 3
#define XVS_FWD_BYPASS 4

/* real.flags */
#define XVS_REAL_F_AVAILABLE 0x1 /* listed in its service (not in the trash) */

/* xvs_real_live: flags in the low byte, the service id above them */
#define XVS_LIVE_F_AVAILABLE 0x1 /* = XVS_REAL_F_AVAILABLE */
#define XVS_LIVE_F_REAL 0x2 /* forwarding needs struct real (explicit next hop, tunnel) */
#define XVS_LIVE_SVC_SHIFT 8

/* A real server's configuration: value of xvs_reals, keyed by its id. */
struct real {
	__be32 addr[4];
	__be16 port;
	__u8 fwd;    /* XVS_FWD_* */
	__u8 family;
	__s32 weight;
	__u32 u_threshold; /* -x, 0 = none */
	__u32 l_threshold; /* -y, 0 = none */
	__u32 flags;       /* XVS_REAL_F_* */
	__u32 svc_id;
	__u8 tun_type;  /* 0 ipip, 1 gue, 2 gre (for the TUN work) */
	__u8 tun_flags; /* 0 nocsum, 1 csum, 2 remcsum */
	__be16 tun_port;
	__u8 mac[6];     /* L2 next hop: destination MAC; all 0 = ask the FIB (bpf_fib_lookup) */
	__u8 src_mac[6]; /* source MAC of the egress interface */
	__u32 ifindex;   /* egress interface, 0 = out of the ingress one (explicit next hop only) */
	__u32 pad;
	__be32 tun_saddr[4]; /* TUN: outer source address (the director); all 0 = from the FIB (BPF_FIB_LOOKUP_SRC) when mac is 0, else none: pass to the stack */
	__u16 tun_mtu;       /* TUN: MTU toward the real server, host order; 0 = no check */
	__u16 pad2;
};

/* real.tun_type */
#define XVS_TUN_IPIP 0
#define XVS_TUN_GUE 1
#define XVS_TUN_GRE 2

/*
 * A real server's connection counts, shared by all CPUs and changed with
 * atomic adds: value of xvs_real_state, keyed by the real server id.
 */
struct real_state {
	__s32 active;
	__s32 inactive;
	__s32 persist;
	__u32 overloaded; /* IP_VS_DEST_F_OVERLOAD, by the -x/-y rule */
};

/* rr and wrr state of a service: value of xvs_sched_state. */
struct sched_state {
	struct bpf_spin_lock lock;
	__u32 cl; /* real server id picked last, 0 = list head */
	__s32 cw; /* wrr: current weight */
	__s32 mw; /* wrr: max weight - (di - 1) */
	__s32 di; /* wrr: gcd of the weights */
	__u32 pad;
};

/* Array length of struct htab: a power of two >= XVS_HTAB_SIZE, so an index can be masked. */
#define XVS_HTAB_SLOTS 4096

/* sh/dh/mh table of a service, copied from xvs-core: value of xvs_htab. */
struct htab {
	__u32 slot[XVS_HTAB_SLOTS]; /* real server id, 0 = empty; slots past the table stay 0 */
};

/*
 * A connection's tuple as seen on the wire: client -> VIP for the main
 * table, real server -> client for the NAT reply index.
 */
struct conn_key {
	__be32 saddr[4];
	__be32 daddr[4];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u16 pad;
};

/* conn.flags: the kernel's IP_VS_CONN_F_* bits this datapath keeps. */
#define XVS_CONN_F_INACTIVE 0x01
#define XVS_CONN_F_NO_OUTPUT 0x08

/*
 * A connection: value of xvs_conns. The hash map's element is an 8-byte
 * allocator link, the kernel's 48-byte header, the 40-byte key and this
 * value, in a 192-byte slab object (64-byte aligned): bytes 0-31 of the
 * value share a cache line with the key's end, which the lookup has just
 * read. What an established packet reads and writes is there (DR and TUN
 * touch nothing past it), so at millions of entries, when every element is
 * a miss to memory, such a packet touches one line of it fewer than with
 * these fields spread over the value.
 */
struct conn {
	__u64 expires; /* bpf_ktime_get_coarse_ns() deadline */
	__u32 real_id;
	__u8 state;      /* TCP (XVS_TCP_S_*) or SCTP (XVS_SCTP_S_*) state; 0 for UDP */
	__u8 flags;      /* XVS_CONN_F_* */
	__u8 fwd;        /* XVS_FWD_* */
	__u8 family;
	__be32 daddr[4]; /* real server address */
	/* the next line: */
	__be16 dport;    /* real server port (read by NAT) */
	__u16 pad;
	__u32 svc_id;
	__u32 control; /* id of the controlling template (xvs_tpls), 0 = none */
	/*
	 * Serialises state transitions (the kernel's cp->lock): the two
	 * directions of a NAT connection can be handled on two CPUs at once.
	 */
	struct bpf_spin_lock lock;
};
_Static_assert(__builtin_offsetof(struct conn, dport) == 32, "struct conn: hot fields in bytes 0-31");

/*
 * A persistence template's key (ip_vs_ct_in_get()): the masked client, the
 * VIP (fwmark templates: the mark, network order, in vaddr[0], proto 0) and
 * the service port or 0.
 */
struct tpl_key {
	__be32 caddr[4];
	__be32 vaddr[4];
	__be16 vport;
	__u8 proto;
	__u8 family;
};

/* tpl.flags */
#define XVS_TPL_F_INVALID 0x1 /* failed ip_vs_check_template(): no longer indexed */

/*
 * A persistence template: value of xvs_tpls, keyed by a template id. The
 * index xvs_tpl_index maps its key to the id while it is valid; an
 * invalidated template stays (PersistConn, timer, controlled connections)
 * until it expires.
 */
struct tpl {
	__u64 expires; /* bpf ns deadline */
	__u32 real_id;
	__u32 svc_id;
	__be32 daddr[4];
	__be16 dport; /* template_dport(); 0xffff once invalidated */
	__u8 fwd;
	__u8 flags;     /* XVS_TPL_F_* */
	__u32 timeout;   /* seconds: -p, or 60 after a delayed expiry */
	__u32 n_control; /* live connections it controls (atomic) */
	struct tpl_key key;
	__u32 id; /* its own id (key in xvs_tpls) */
	__u32 pad;
};

/* lblc/lblcr cache key: service id and destination address. */
struct lbl_key {
	__u32 svc_id;
	__be32 addr[4];
};

/* lblc cache entry: value of xvs_lblc. */
struct lblc_entry {
	__u32 real_id;
	__u32 pad;
	__u64 lastuse; /* bpf ns */
};

/* A member of an lblcr server set: its id and the weight last seen. */
struct lblcr_member {
	__u32 id;
	__s32 weight;
};

/* lblcr cache entry: value of xvs_lblcr. Members most recently added first. */
struct lblcr_set {
	__u64 lastuse; /* bpf ns */
	__u64 lastmod; /* bpf ns */
	__u32 n;
	__u32 pad;
	struct lblcr_member m[XVS_MAX_DESTS];
};

/* Draws of the twos test hook (xvs_config.rand_fixed): xvs_rand's size. */
#define XVS_RAND_SLOTS 65536

/* Datapath settings: the single value of xvs_config. */
struct xvs_config {
	__u32 tcp_timeout[16]; /* seconds, by TCP state */
	__u32 udp_timeout;
	__u32 conn_reuse_mode;
	__u32 expire_nodest_conn;
	__u32 sloppy_tcp;
	__u32 expire_quiescent_template;
	__u32 rand_fixed;     /* test hook: twos draws from xvs_rand, not bpf_get_prandom_u32 */
	__u32 lblcr_expiration; /* seconds (lblcr_expiration sysctl, default 24 h) */
	__u32 flow_sets;      /* sets of xvs_flow_cache (a power of two; 0: no flow cache) */
	__u64 now_ns;         /* test hook: if not 0, the clock (instead of bpf_ktime_get_coarse_ns) */
	__u32 hz;             /* the kernel's HZ, measured by user space: the caches' clock (xvs_tick) */
	__u32 sloppy_sctp;
};

/*
 * A TCP/UDP datagram's fragments after the first: they carry no ports, and
 * go where the first went (IPVS reassembles the datagram and forwards it
 * whole; xvs forwards each fragment, and the real server or the client
 * reassembles). Keyed as the kernel's reassembly keys them.
 */
struct frag_key {
	__be32 saddr[4]; /* IPv4 in [0], rest zero */
	__be32 daddr[4];
	__be32 id;       /* IPv4: 16 bits (struct pkt.frag_id) */
	__u8 proto;
	__u8 family;
	__u8 pad[2];
};

struct frag_val {
	__u64 expires;      /* xvs_now() + XVS_FRAG_TIMEOUT */
	__be32 new_addr[4]; /* as struct decision's: the real server (FORWARD) or VIP (REPLY) */
	__be16 new_port;
	__u8 fwd;           /* XVS_FWD_* */
	__u8 reply;         /* 1: a NAT reply (REPLY), 0: toward the real server (FORWARD) */
	__u8 family;        /* of new_addr */
	__u8 pad[3];
	__u32 real_id;
	__be16 sport;       /* the datagram's ports, as its first fragment had them */
	__be16 dport;
};

/*
 * An entry of the flow cache (xvs_flow_cache): where an established IPv4
 * connection's packets go, as read from xvs_conns not long ago. A packet
 * that finds its flow here is forwarded without touching xvs_conns (see
 * xvs_flow_find() in xvs.c). 32 bytes, so that many flows stay in a CPU's
 * own cache. Times are the caches' clock (xvs_tick(): jiffies), modulo
 * 2^32.
 */
struct xvs_flow {
	__be32 saddr; /* the connection: client, */
	__be32 daddr; /* VIP, */
	__be16 sport; /* ports, */
	__be16 dport;
	__u8 proto; /* protocol */
	__u8 fwd;   /* XVS_FWD_MASQ, XVS_FWD_ROUTE or XVS_FWD_TUNNEL */
	__be16 rport; /* real server port */
	__be32 raddr; /* real server address */
	__u32 until;  /* usable while the clock is before it (0: empty) */
	__u32 gen;    /* xvs_flow_gen when filled (low 32 bits) */
	__u32 real_id;
};

/* What a freed connection still owes its real server: the unbind. */
struct unbind {
	__u32 real_id; /* 0: nothing owed */
	__u32 control; /* template to release */
	__u8 flags;
};

/* Packet, byte and connection counters (per CPU). */
struct xvs_stats {
	__u64 conns;
	__u64 inpkts;
	__u64 outpkts;
	__u64 inbytes;
	__u64 outbytes;
};

/* Indexes of the per-CPU counter array. Each packet is counted exactly once. */
enum xvs_counter {
	XVS_CNT_PASSED = 0,      /* not for a service: handed on untouched */
	XVS_CNT_FORWARDED = 1,   /* client -> real server, rewritten and sent on */
	XVS_CNT_MALFORMED = 2,   /* truncated or invalid headers: handed on untouched */
	XVS_CNT_NO_DEST = 3,     /* new connection, no real server: dropped */
	XVS_CNT_UNAVAILABLE = 4, /* connection's real server removed: dropped */
	XVS_CNT_REPLIED = 5,     /* NAT reply, source rewritten to the VIP, sent to the client's next hop */
	XVS_CNT_FRAGMENT = 6,    /* IP fragment of no tracked datagram (its first fragment not seen), or not TCP/UDP: handed on untouched */
	XVS_CNT_CONN_FULL = 7,   /* connection table full: dropped */
	XVS_CNT_LOCAL = 8,       /* tracked, but local (or TUN without a tunnel source): handed to the stack */
	XVS_CNT_TUN_DROP = 9,    /* TUN: encapsulation failed (over the MTU, no room, GRE, no GUE port): dropped */
	XVS_CNT_NO_NEIGH = 10,   /* FIB next hop without a neighbour entry: tc bpf_redirect_neigh; XDP passes it, with metadata, to tc */
	XVS_CNT_NO_ROUTE = 11,   /* FIB lookup failed (no route, forwarding off, no source), or DR/NAT (and NAT replies) over the route's MTU: dropped; NAT replies to the stack */
	XVS_CNT_MAX = 12,
};

/*
 * Events for user space, on the xvs_events ring buffer (maps.h): what the
 * kernel's IPVS writes to its log (IP_VS_ERR_RL), rate-limited per CPU.
 */
enum xvs_event_type {
	/* a new connection for the service found no real server: the
	 * scheduler had none (ip_vs_scheduler_err(): "no destination
	 * available") */
	XVS_EV_NO_DEST = 1,
};

struct xvs_event {
	__u16 type;       /* enum xvs_event_type */
	__u8 family;      /* the service's: XVS_AF_INET or XVS_AF_INET6 */
	__u8 proto;       /* IPPROTO_TCP, IPPROTO_UDP (the packet's) */
	__u32 svc_id;     /* svc_info.id */
	__u32 fwmark;     /* a firewall-mark service's mark, else 0 */
	__be16 port;      /* an address service's port (0: a port-zero one) */
	__u8 sched;       /* enum xvs_sched */
	__u8 pad;
	__u32 suppressed; /* events this CPU left out since its last one */
	__be32 addr[4];   /* an address service's address (the packet's destination) */
};

#endif /* XVS_STRUCTS_H */
