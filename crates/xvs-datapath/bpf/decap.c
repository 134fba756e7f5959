// SPDX-License-Identifier: GPL-2.0-only
/*
 * xvs real-server decapsulation (LVS-TUN receive side), for kernels without
 * the ipip/ip6_tunnel/fou modules, or instead of them.
 *
 * xvs_decap_xdp (section "xdp") and xvs_decap_tc (section "classifier", tc
 * ingress) strip
 *   - IPIP: IPv4 or IPv6 outer header with protocol / next header 4 (inner
 *     IPv4) or 41 (inner IPv6),
 *   - GUE: outer IPv4/IPv6 + UDP to the configured port + GUE version 0 data
 *     header (C = 0; Hlen option words are skipped when flags are 0) or
 *     GUE version 1 (the IP header right after UDP),
 * from packets whose outer destination is one of the accepted addresses
 * (xvs_decap_addrs), and hand the inner packet, behind the same Ethernet
 * header (EtherType adjusted), to the stack. Everything else passes
 * untouched: other traffic, other UDP ports, tunnels to other addresses,
 * outer fragments, IPv6 outer with extension headers, GUE control messages.
 * Malformed tunnel packets addressed to us (truncated or inconsistent outer or
 * inner header) pass untouched too and are counted as malformed: the inner
 * packet is never handed up half-stripped.
 *
 * The outer UDP checksum is not verified (the inner packet has its own).
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "include/encap.h"

char _license[] SEC("license") = "GPL";

/* Accepted outer destination: user space mirrors it (src/decap.rs). */
struct decap_addr {
	__be32 addr[4]; /* IPv4 in [0], rest zero */
	__u32 family;   /* XVS_AF_INET or XVS_AF_INET6 */
};

struct decap_cfg {
	__be16 gue_port; /* network order; 0 = GUE off */
	__u16 reserved;
};

enum decap_counter {
	DECAP_CNT_PASSED = 0, /* not a tunnel packet for us: untouched */
	DECAP_CNT_IPIP = 1,   /* IPIP decapsulated */
	DECAP_CNT_GUE = 2,    /* GUE decapsulated */
	DECAP_CNT_MALFORMED = 3, /* tunnel packet for us with bad headers: untouched */
	DECAP_CNT_ERROR = 4,  /* the kernel refused to shrink the packet: untouched */
	DECAP_CNT_MAX = 5,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct decap_addr);
	__type(value, __u32);
} xvs_decap_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct decap_cfg);
} xvs_decap_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DECAP_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} xvs_decap_counters SEC(".maps");

static __always_inline void decap_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&xvs_decap_counters, &idx);

	if (v)
		*v += 1;
}

enum decap_verdict {
	DECAP_PASS = 0,
	DECAP_STRIP = 1,
	DECAP_MALFORMED = 2,
};

struct decap {
	__u32 strip;      /* bytes to remove after the Ethernet header */
	__be16 inner_proto; /* EtherType of the inner packet */
	__be16 outer_proto;
	__u32 counter;    /* DECAP_CNT_IPIP or DECAP_CNT_GUE */
};

/* Longest chain read: Ethernet + IPv4 with options (or IPv6) + UDP + GUE + inner IPv6. */
#define DECAP_MAX_HDR (sizeof(struct ethhdr) + 60 + 8 + 4 + sizeof(struct ipv6hdr))

#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

/*
 * Checks the inner header at p (avail bytes up to the outer packet's end, as
 * the outer header declares it) and fills the inner EtherType.
 */
static __always_inline int decap_inner(void *p, void *data_end, __u8 proto, __u32 avail,
				       struct decap *d)
{
	if (proto == IPPROTO_IPIP) {
		struct iphdr *iph = p;

		if ((void *)(iph + 1) > data_end)
			return DECAP_MALFORMED;
		if (iph->version != 4 || iph->ihl < 5)
			return DECAP_MALFORMED;
		if (bpf_ntohs(iph->tot_len) < (__u32)iph->ihl * 4 || bpf_ntohs(iph->tot_len) > avail)
			return DECAP_MALFORMED;
		d->inner_proto = bpf_htons(ETH_P_IP);
		return DECAP_STRIP;
	}
	if (proto == IPPROTO_IPV6) {
		struct ipv6hdr *ip6h = p;

		if ((void *)(ip6h + 1) > data_end)
			return DECAP_MALFORMED;
		if (ip6h->version != 6)
			return DECAP_MALFORMED;
		if (sizeof(*ip6h) + bpf_ntohs(ip6h->payload_len) > avail)
			return DECAP_MALFORMED;
		d->inner_proto = bpf_htons(ETH_P_IPV6);
		return DECAP_STRIP;
	}
	return DECAP_MALFORMED;
}

/*
 * After the outer IP header (at l4, with l4_avail bytes of outer payload):
 * IPIP or GUE. strip already holds the outer IP header length.
 */
static __always_inline int decap_l4(void *l4, void *data_end, __u8 proto, __u32 l4_avail,
				    struct decap *d)
{
	if (proto == IPPROTO_IPIP || proto == IPPROTO_IPV6) {
		d->counter = DECAP_CNT_IPIP;
		return decap_inner(l4, data_end, proto, l4_avail, d);
	}
	if (proto == IPPROTO_UDP) {
		struct udphdr *uh = l4;
		struct decap_cfg *cfg;
		__u32 zero = 0, ulen;
		__u8 *g;

		if ((void *)(uh + 1) > data_end)
			return DECAP_PASS; /* not provably ours: let UDP deal with it */
		cfg = bpf_map_lookup_elem(&xvs_decap_config, &zero);
		if (!cfg || !cfg->gue_port || uh->dest != cfg->gue_port)
			return DECAP_PASS;
		d->counter = DECAP_CNT_GUE;
		ulen = bpf_ntohs(uh->len);
		if (ulen < sizeof(*uh) + 1 || ulen > l4_avail)
			return DECAP_MALFORMED;
		g = (__u8 *)(uh + 1);
		if ((void *)(g + 1) > data_end)
			return DECAP_MALFORMED;
		switch (g[0] >> 6) {
		case 0: {
			struct xvs_guehdr *gh = (struct xvs_guehdr *)g;
			__u32 glen;

			if ((void *)(gh + 1) > data_end)
				return DECAP_MALFORMED;
			if (gh->hlen_c_ver & 0x20)
				return DECAP_PASS; /* control message: not data */
			if (gh->flags)
				return DECAP_MALFORMED; /* optional fields: not supported */
			glen = sizeof(*gh) + (__u32)(gh->hlen_c_ver & 0x1f) * 4;
			if (sizeof(*uh) + glen > ulen)
				return DECAP_MALFORMED;
			d->strip += sizeof(*uh) + glen;
			/* glen <= 4 + 124: the verifier follows the pointer sum. */
			return decap_inner((void *)gh + glen, data_end, gh->proto_ctype,
					   ulen - sizeof(*uh) - glen, d);
		}
		case 1:
			/* GUE version 1: the inner IP header directly (first nibble 4 or 6). */
			d->strip += sizeof(*uh);
			return decap_inner(g, data_end,
					   (g[0] >> 4) == 6 ? IPPROTO_IPV6 : IPPROTO_IPIP,
					   ulen - sizeof(*uh), d);
		default:
			return DECAP_MALFORMED;
		}
	}
	return DECAP_PASS;
}

/* Decides what to do with the frame [data, data_end). Shared by XDP and tc. */
static __always_inline int decap_parse(void *data, void *data_end, struct decap *d)
{
	struct ethhdr *eth = data;
	struct decap_addr key = {};

	if ((void *)(eth + 1) > data_end)
		return DECAP_PASS;
	d->outer_proto = eth->h_proto;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = (void *)(eth + 1);
		__u32 ihl_len, tot;

		if ((void *)(iph + 1) > data_end)
			return DECAP_PASS;
		if (iph->protocol != IPPROTO_IPIP && iph->protocol != IPPROTO_IPV6 &&
		    iph->protocol != IPPROTO_UDP)
			return DECAP_PASS;
		key.addr[0] = iph->daddr;
		key.family = XVS_AF_INET;
		if (!bpf_map_lookup_elem(&xvs_decap_addrs, &key))
			return DECAP_PASS;
		/* Fragments: the stack reassembles them, we cannot. */
		if (iph->frag_off & bpf_htons(IP_MF | IP_OFFSET))
			return DECAP_PASS;
		if (iph->version != 4 || iph->ihl < 5)
			return DECAP_MALFORMED;
		ihl_len = (__u32)iph->ihl * 4;
		tot = bpf_ntohs(iph->tot_len);
		if (tot < ihl_len)
			return DECAP_MALFORMED;
		if ((void *)iph + ihl_len > data_end)
			return DECAP_MALFORMED;
		d->strip = ihl_len;
		return decap_l4((void *)iph + ihl_len, data_end, iph->protocol, tot - ihl_len, d);
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6h = (void *)(eth + 1);

		if ((void *)(ip6h + 1) > data_end)
			return DECAP_PASS;
		if (ip6h->nexthdr != IPPROTO_IPIP && ip6h->nexthdr != IPPROTO_IPV6 &&
		    ip6h->nexthdr != IPPROTO_UDP)
			return DECAP_PASS;
		__builtin_memcpy(key.addr, &ip6h->daddr, 16);
		key.family = XVS_AF_INET6;
		if (!bpf_map_lookup_elem(&xvs_decap_addrs, &key))
			return DECAP_PASS;
		if (ip6h->version != 6)
			return DECAP_MALFORMED;
		d->strip = sizeof(*ip6h);
		return decap_l4(ip6h + 1, data_end, ip6h->nexthdr, bpf_ntohs(ip6h->payload_len), d);
	}
	return DECAP_PASS;
}

SEC("xdp")
int xvs_decap_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct decap d = {};
	struct ethhdr eth;
	int v;

	v = decap_parse(data, data_end, &d);
	if (v == DECAP_MALFORMED) {
		decap_count(DECAP_CNT_MALFORMED);
		return XDP_PASS;
	}
	if (v != DECAP_STRIP) {
		decap_count(DECAP_CNT_PASSED);
		return XDP_PASS;
	}
	if ((void *)((struct ethhdr *)data + 1) > data_end)
		return XDP_PASS;
	__builtin_memcpy(&eth, data, sizeof(eth));
	eth.h_proto = d.inner_proto;
	if (bpf_xdp_adjust_head(ctx, (int)(d.strip & 0xff))) {
		decap_count(DECAP_CNT_ERROR);
		return XDP_PASS;
	}
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if ((void *)((struct ethhdr *)data + 1) > data_end) {
		/* Cannot happen: the inner header was checked to be there. */
		decap_count(DECAP_CNT_ERROR);
		return XDP_DROP;
	}
	__builtin_memcpy(data, &eth, sizeof(eth));
	decap_count(d.counter);
	return XDP_PASS;
}

SEC("classifier")
int xvs_decap_tc(struct __sk_buff *skb)
{
	struct decap d = {};
	__u64 flags = 0;
	__u32 want;
	int v;

	want = skb->len < DECAP_MAX_HDR ? skb->len : DECAP_MAX_HDR;
	if ((long)skb->data + want > (long)skb->data_end)
		bpf_skb_pull_data(skb, want);

	v = decap_parse((void *)(long)skb->data, (void *)(long)skb->data_end, &d);
	if (v == DECAP_MALFORMED) {
		decap_count(DECAP_CNT_MALFORMED);
		return TC_ACT_OK;
	}
	if (v != DECAP_STRIP) {
		decap_count(DECAP_CNT_PASSED);
		return TC_ACT_OK;
	}
	/* Tell the kernel the new L3 protocol when the family changes (>= 6.3). */
	if (d.inner_proto != d.outer_proto)
		flags = d.inner_proto == bpf_htons(ETH_P_IPV6) ? XVS_ADJ_ROOM_DECAP_L3_IPV6
							      : XVS_ADJ_ROOM_DECAP_L3_IPV4;
	if (bpf_skb_adjust_room(skb, -(int)(d.strip & 0xff), BPF_ADJ_ROOM_MAC, flags)) {
		decap_count(DECAP_CNT_ERROR);
		return TC_ACT_OK;
	}
	if (d.inner_proto != d.outer_proto &&
	    bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_proto), &d.inner_proto,
				sizeof(d.inner_proto), 0)) {
		decap_count(DECAP_CNT_ERROR);
		return TC_ACT_SHOT; /* half done: never hand up a mangled packet */
	}
	decap_count(d.counter);
	return TC_ACT_OK;
}
