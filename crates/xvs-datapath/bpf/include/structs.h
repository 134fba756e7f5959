/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Structures shared between the BPF programs and user space.
 *
 * Every struct here is mirrored field for field by a #[repr(C)] struct in
 * crates/xvs-datapath/src/maps.rs; the Rust side asserts the sizes at compile
 * time. Keep both in step, keep explicit padding, and never let the compiler
 * insert any: map keys are hashed byte for byte, so stray padding would make
 * equal keys differ.
 */
#ifndef XVS_STRUCTS_H
#define XVS_STRUCTS_H

#include <linux/types.h>

/* Address families as they appear in struct svc_key.family. */
#define XVS_AF_INET 2
#define XVS_AF_INET6 10

/*
 * A virtual service: (family, protocol, VIP, port), like an ipvsadm -t/-u
 * service. Addresses and port are in network byte order. An IPv4 VIP lives in
 * addr[0] and addr[1..3] are zero.
 */
struct svc_key {
	__be32 addr[4];
	__be16 port;
	__u8 proto;  /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 family; /* XVS_AF_INET or XVS_AF_INET6 */
};

/*
 * What the datapath does for a service in direct-routing (DR) mode: the frame
 * goes to the real server's MAC, from the director's MAC on the egress
 * interface. ifindex 0 means "out of the interface it came in on" (XDP_TX);
 * otherwise the frame is redirected to that interface.
 */
struct svc_dr {
	__u8 rs_mac[6];  /* destination MAC: the real server */
	__u8 src_mac[6]; /* source MAC: the director's egress interface */
	__u32 ifindex;   /* egress interface, 0 = ingress interface */
	__u32 flags;     /* reserved, must be 0 */
};

/* Indexes of the per-CPU counter array. Each packet is counted exactly once. */
enum xvs_counter {
	XVS_CNT_PASSED = 0,    /* not for a service: handed on untouched */
	XVS_CNT_FORWARDED = 1, /* for a service: rewritten and sent on */
	XVS_CNT_MALFORMED = 2, /* truncated or invalid headers: handed on untouched */
	XVS_CNT_MAX = 3,
};

#endif /* XVS_STRUCTS_H */
