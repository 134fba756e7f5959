/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * LVS-TUN encapsulation for the director: IPIP (IPv4/IPv6 in IPv4, or in
 * IPv6) and GUE (IP in UDP with a 4-byte GUE version 0 header, as
 * ip_vs_xmit.c's ipvs_gue_encap() builds it for --tun-type gue).
 *
 * Two entry points, one per program type, same contract:
 *
 *   int xvs_encap_xdp(struct xdp_md *ctx, const struct xvs_tun *t);
 *   int xvs_encap_tc(struct __sk_buff *skb, const struct xvs_tun *t);
 *
 * Input: a frame that starts with an Ethernet header (no VLAN tag) whose
 * EtherType is IPv4 or IPv6 and whose IP header is complete. On success
 * (XVS_ENCAP_OK) the frame is
 *
 *   Ethernet | outer IPv4/IPv6 | [UDP | GUE] | inner IP packet (unchanged)
 *
 * The Ethernet MACs are left as they were (the caller sets them for the next
 * hop afterwards); h_proto becomes the outer family's EtherType. All packet
 * pointers the caller held are invalid afterwards: reload ctx->data /
 * skb->data and data_end and bounds-check again.
 *
 * On XVS_ENCAP_INVALID and XVS_ENCAP_TOO_BIG the packet is left exactly as
 * it was (pass it, drop it or answer ICMP). XVS_ENCAP_NO_ROOM means the kernel
 * refused to grow the packet (or, in theory, a store failed after it grew);
 * drop it then.
 *
 * Outer header fields:
 *   - IPv4: version 4, IHL 5, TOS = inner DSCP with the ECN bits per RFC 6040
 *     (CE becomes ECT(0)), total length from the inner header's own length
 *     (Ethernet padding after the inner packet is not counted), DF copied
 *     from an inner IPv4 header and always set for an inner IPv6 packet, ID 0
 *     when DF is set (RFC 6864) and random otherwise, TTL t->ttl or 64,
 *     protocol 4 (IPIP) / 41 (IPv6) or 17 (UDP, GUE), header checksum
 *     computed in full.
 *   - IPv6: traffic class as above, flow label = t->sport (entropy for ECMP;
 *     0 if sport is 0), payload length, next header 4/41/17, hop limit
 *     t->ttl or 64.
 *   - UDP (GUE): source port t->sport (use xvs_gue_sport() on a flow hash),
 *     destination t->dport, length 8 + 4 + inner length, checksum 0 (no
 *     checksum; RFC 6935/6936 zero checksum for IPv6, which the xvs decap
 *     program accepts; a stock Linux fou6 receiver needs udp6zerocsumrx).
 *   - GUE: version 0, C = 0, Hlen = 0, proto/ctype = 4 or 41, flags 0.
 *
 * MTU: the packet grows by XVS_ENCAP_OVERHEAD(t) bytes (IPv4 outer: 20 IPIP,
 * 32 GUE; IPv6 outer: 40 IPIP, 52 GUE). If t->mtu is non-zero and the
 * encapsulated IP packet would exceed it, XVS_ENCAP_TOO_BIG is returned and
 * nothing is changed; the director then answers ICMP "fragmentation
 * needed" / "packet too big" with mtu - overhead, as IPVS does (xvs.c:
 * xvs_too_big_mtu()). In tc, GSO skbs (skb->gso_size != 0) are not checked:
 * bpf_skb_adjust_room() shrinks gso_size by the overhead so every segment
 * still fits.
 *
 * tc specifics: bpf_skb_adjust_room(BPF_ADJ_ROOM_MAC) with
 * BPF_F_ADJ_ROOM_ENCAP_L3_IPV4/IPV6 (+ ENCAP_L4_UDP and ENCAP_L2(4) for the
 * GUE header, which the GSO code then treats as the inner "MAC" header) sets
 * skb->encapsulation, the inner header offsets and the tunnel GSO type, so
 * TSO/GSO and CHECKSUM_PARTIAL of the inner TCP/UDP checksum keep working on
 * egress. An skb that is already encapsulated is refused by the kernel
 * (-EALREADY): XVS_ENCAP_NO_ROOM.
 *
 * XDP specifics: bpf_xdp_adjust_head() by -overhead, then the Ethernet header
 * and the outer headers are written at the new front directly (with
 * bpf_xdp_store_bytes() only if the frame is too short for that). Needs
 * that much headroom (drivers give 256, generic XDP at least
 * XDP_PACKET_HEADROOM). XDP frames carry no checksum
 * offload state; the inner packet is not touched, so its checksums stay as
 * they were.
 */
#ifndef XVS_ENCAP_H
#define XVS_ENCAP_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#ifndef XVS_AF_INET
#define XVS_AF_INET 2
#endif
#ifndef XVS_AF_INET6
#define XVS_AF_INET6 10
#endif

/* Tunnel parameters: where to send the packet and how. */
struct xvs_tun {
	__be32 saddr[4]; /* outer source (the director); IPv4 in [0] */
	__be32 daddr[4]; /* outer destination (the real server); IPv4 in [0] */
	__be16 sport;    /* GUE: UDP source port, network order */
	__be16 dport;    /* GUE: UDP destination port (--tun-port), network order; 0 = IPIP */
	__u16 mtu;       /* egress MTU to enforce, 0 = do not check */
	__u8 family;     /* outer family: XVS_AF_INET or XVS_AF_INET6 */
	__u8 ttl;        /* outer TTL / hop limit, 0 = 64 */
};

enum xvs_encap_ret {
	XVS_ENCAP_OK = 0,
	XVS_ENCAP_INVALID = -1,  /* not Ethernet + complete IPv4/IPv6, or bad tunnel params */
	XVS_ENCAP_TOO_BIG = -2,  /* would exceed t->mtu */
	XVS_ENCAP_NO_ROOM = -3,  /* adjust_head / adjust_room failed */
};

/* GUE version 0 base header (draft-ietf-intarea-gue). */
struct xvs_guehdr {
	__u8 hlen_c_ver; /* ver:2 (top), C:1, hlen:5 (bottom); 0 for a data message without options */
	__u8 proto_ctype;
	__be16 flags;
};

#define XVS_GUE_HLEN (sizeof(struct udphdr) + sizeof(struct xvs_guehdr))
#define XVS_ENCAP_MAX_HLEN (sizeof(struct ipv6hdr) + XVS_GUE_HLEN)
#define XVS_ENCAP_BUF 64 /* >= XVS_ENCAP_MAX_HLEN, a power of two for masking */
#define XVS_ENCAP_TTL 64
#ifndef XVS_IP_DF
#define XVS_IP_DF 0x4000
#endif

/* RFC 6040 / INET_ECN_encapsulate: copy ECN, but CE becomes ECT(0). */
#define XVS_ECN_MASK 3
#define XVS_ECN_CE 3
#define XVS_ECN_ECT_0 2

/* Not in Debian 12's linux-libc-dev (6.1); kernel >= 6.3. */
#define XVS_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)
#define XVS_ADJ_ROOM_DECAP_L3_IPV6 (1ULL << 8)

/* Bytes the encapsulation adds in front of the inner IP packet. */
static __always_inline __u32 xvs_encap_overhead(const struct xvs_tun *t)
{
	__u32 l3 = t->family == XVS_AF_INET6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr);

	return l3 + (t->dport ? XVS_GUE_HLEN : 0);
}
#define XVS_ENCAP_OVERHEAD(t) xvs_encap_overhead(t)

/*
 * A GUE/UDP source port from a flow hash, in the ephemeral range 49152..65535
 * (like udp_flow_src_port()), network order. The same flow always gets the
 * same port, so receivers' RSS/ECMP keep a flow on one queue/path.
 */
static __always_inline __be16 xvs_gue_sport(__u32 hash)
{
	hash ^= hash >> 16;
	return bpf_htons((__u16)(49152 + (hash & 0x3fff)));
}

/* Fold and invert a one's complement sum (RFC 1071). */
static __always_inline __u16 xvs_encap_csum_fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

/* The outer TOS for inner TOS tos: DSCP and ECN copied, CE as ECT(0). */
static __always_inline __u8 xvs_encap_tos(__u8 tos)
{
	__u8 ecn = tos & XVS_ECN_MASK;

	return (tos & ~XVS_ECN_MASK) | (ecn == XVS_ECN_CE ? XVS_ECN_ECT_0 : ecn);
}

/* What the encapsulation needs to know of the inner packet. */
struct xvs_encap_inner {
	__u32 len;     /* inner IP packet length, from its own header */
	__u8 proto;    /* IPPROTO_IPIP or IPPROTO_IPV6 */
	__u8 tos;      /* inner TOS / traffic class */
	__u8 df;       /* inner DF (IPv4) or 1 (IPv6) */
	__u8 pad;
};

/*
 * Reads the inner IP header's first 8 bytes (hdr) with the frame's
 * EtherType; avail = bytes after the Ethernet header.
 */
static __always_inline int xvs_encap_inner_info(__be16 h_proto, const __u8 *hdr, __u32 avail,
						struct xvs_encap_inner *in)
{
	if (h_proto == bpf_htons(ETH_P_IP)) {
		if ((hdr[0] >> 4) != 4 || (hdr[0] & 0xf) < 5)
			return XVS_ENCAP_INVALID;
		in->len = ((__u32)hdr[2] << 8) | hdr[3];
		if (in->len < (__u32)(hdr[0] & 0xf) * 4)
			return XVS_ENCAP_INVALID;
		in->proto = IPPROTO_IPIP;
		in->tos = hdr[1];
		in->df = (hdr[6] & 0x40) ? 1 : 0;
	} else if (h_proto == bpf_htons(ETH_P_IPV6)) {
		if ((hdr[0] >> 4) != 6)
			return XVS_ENCAP_INVALID;
		in->len = sizeof(struct ipv6hdr) + (((__u32)hdr[4] << 8) | hdr[5]);
		in->proto = IPPROTO_IPV6;
		in->tos = (__u8)((hdr[0] << 4) | (hdr[1] >> 4));
		in->df = 1;
	} else {
		return XVS_ENCAP_INVALID;
	}
	if (in->len > avail)
		return XVS_ENCAP_INVALID;
	return XVS_ENCAP_OK;
}

/*
 * Builds the outer headers (IP [+ UDP + GUE]) into buf and returns their
 * length (20, 32, 40 or 52), or XVS_ENCAP_INVALID.
 */
static __always_inline int xvs_encap_build(const struct xvs_tun *t, const struct xvs_encap_inner *in,
					   __u8 *buf)
{
	__u8 tos = xvs_encap_tos(in->tos);
	__u8 ttl = t->ttl ? t->ttl : XVS_ENCAP_TTL;
	__u32 l3len, l4len = t->dport ? XVS_GUE_HLEN : 0;
	__u8 next = t->dport ? IPPROTO_UDP : in->proto;

	if (t->family == XVS_AF_INET) {
		struct iphdr *iph = (struct iphdr *)buf;
		__u16 *w = (__u16 *)buf;
		__u32 s = 0;

		l3len = sizeof(struct iphdr);
		iph->version = 4;
		iph->ihl = 5;
		iph->tos = tos;
		iph->tot_len = bpf_htons((__u16)(l3len + l4len + in->len));
		iph->id = in->df ? 0 : (__be16)bpf_get_prandom_u32();
		iph->frag_off = in->df ? bpf_htons(XVS_IP_DF) : 0;
		iph->ttl = ttl;
		iph->protocol = next;
		iph->check = 0;
		iph->saddr = t->saddr[0];
		iph->daddr = t->daddr[0];
#pragma unroll
		for (int i = 0; i < 10; i++)
			s += w[i];
		iph->check = xvs_encap_csum_fold(s);
	} else if (t->family == XVS_AF_INET6) {
		struct ipv6hdr *ip6h = (struct ipv6hdr *)buf;
		__u32 label = bpf_ntohs(t->sport);

		l3len = sizeof(struct ipv6hdr);
		/* version 6, traffic class, 20-bit flow label */
		*(__be32 *)buf = bpf_htonl((6U << 28) | ((__u32)tos << 20) | (label & 0xfffff));
		ip6h->payload_len = bpf_htons((__u16)(l4len + in->len));
		ip6h->nexthdr = next;
		ip6h->hop_limit = ttl;
		__builtin_memcpy(&ip6h->saddr, t->saddr, 16);
		__builtin_memcpy(&ip6h->daddr, t->daddr, 16);
	} else {
		return XVS_ENCAP_INVALID;
	}

	if (t->dport) {
		struct udphdr *uh = (struct udphdr *)(buf + l3len);
		struct xvs_guehdr *gh = (struct xvs_guehdr *)(uh + 1);

		uh->source = t->sport;
		uh->dest = t->dport;
		uh->len = bpf_htons((__u16)(XVS_GUE_HLEN + in->len));
		uh->check = 0;
		gh->hlen_c_ver = 0;
		gh->proto_ctype = in->proto;
		gh->flags = 0;
	}
	return (int)(l3len + l4len);
}

static __always_inline int xvs_encap_check(const struct xvs_tun *t, const struct xvs_encap_inner *in)
{
	if (t->family != XVS_AF_INET && t->family != XVS_AF_INET6)
		return XVS_ENCAP_INVALID;
	if (in->len + xvs_encap_overhead(t) > 0xffff)
		return XVS_ENCAP_TOO_BIG;
	if (t->mtu && in->len + xvs_encap_overhead(t) > t->mtu)
		return XVS_ENCAP_TOO_BIG;
	return XVS_ENCAP_OK;
}

static __always_inline int xvs_encap_xdp(struct xdp_md *ctx, const struct xvs_tun *t)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u8 buf[XVS_ENCAP_BUF] = {};
	struct xvs_encap_inner in = {};
	struct ethhdr eth;
	__u8 *hdr = data + sizeof(struct ethhdr);
	int hlen, rc;

	if ((void *)(hdr + 8) > data_end)
		return XVS_ENCAP_INVALID;
	__builtin_memcpy(&eth, data, sizeof(eth));
	rc = xvs_encap_inner_info(eth.h_proto, hdr, bpf_xdp_get_buff_len(ctx) - sizeof(eth), &in);
	if (rc)
		return rc;
	rc = xvs_encap_check(t, &in);
	if (rc)
		return rc;
	hlen = xvs_encap_build(t, &in, buf);
	if (hlen < 0)
		return hlen;
	/* Tell the verifier what hlen is: 20..52, within buf. */
	hlen &= XVS_ENCAP_BUF - 1;
	if (hlen < (int)sizeof(struct iphdr))
		return XVS_ENCAP_INVALID;

	if (bpf_xdp_adjust_head(ctx, -hlen))
		return XVS_ENCAP_NO_ROOM;
	eth.h_proto = bpf_htons(t->family == XVS_AF_INET6 ? ETH_P_IPV6 : ETH_P_IP);
	/* The new front is in the linear part: written directly, no helper
	 * call (each costs its return's mitigations), one length at a time
	 * so the verifier sees each copy's bounds. */
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
#define XVS_ENCAP_PUT(n)                                                              \
	case n:                                                                       \
		if (data + sizeof(eth) + (n) > data_end)                              \
			break;                                                        \
		__builtin_memcpy(data, &eth, sizeof(eth));                            \
		__builtin_memcpy(data + sizeof(eth), buf, (n));                       \
		return XVS_ENCAP_OK
	switch (hlen) {
		XVS_ENCAP_PUT(sizeof(struct iphdr));
		XVS_ENCAP_PUT(sizeof(struct iphdr) + XVS_GUE_HLEN);
		XVS_ENCAP_PUT(sizeof(struct ipv6hdr));
		XVS_ENCAP_PUT(sizeof(struct ipv6hdr) + XVS_GUE_HLEN);
	}
#undef XVS_ENCAP_PUT
	if (bpf_xdp_store_bytes(ctx, 0, &eth, sizeof(eth)) ||
	    bpf_xdp_store_bytes(ctx, sizeof(eth), buf, hlen)) {
		/* Cannot happen after a successful adjust_head; undo it anyway. */
		bpf_xdp_adjust_head(ctx, hlen);
		return XVS_ENCAP_NO_ROOM;
	}
	return XVS_ENCAP_OK;
}

/* xvs_encap_ipip4_xdp(): not a frame it takes (a multi-buffer one); the
 * general xvs_encap_xdp() does. Nothing was changed. */
#define XVS_ENCAP_GENERAL 1

/*
 * IPIP for a frame carrying IPv4, in XDP, in one pass: the new Ethernet
 * header (macs: destination then source, 12 bytes in the frame's order)
 * and the outer IPv4 header (saddr -> daddr) written straight into the
 * frame, the header checksum summed from the values, not read back. The
 * same bytes xvs_encap_xdp() with an IPv4 IPIP tunnel and a MAC rewrite
 * give, without the header built on the stack, copied and summed there.
 */
static __always_inline int xvs_encap_ipip4_xdp(struct xdp_md *ctx, __be32 saddr, __be32 daddr,
					       const __u8 *macs, __u16 mtu)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct iphdr *in = data + sizeof(struct ethhdr), *out;
	struct xvs_encap_inner inner = {};
	struct ethhdr *eth;
	__u32 len, s, a = bpf_ntohl(saddr), b = bpf_ntohl(daddr);
	__u16 id = 0, frag = 0;
	__u8 tos;

	if ((void *)(in + 1) > data_end)
		return XVS_ENCAP_INVALID;
	/* the inner header as xvs_encap_xdp() reads it; its length against
	 * the linear part here */
	if (xvs_encap_inner_info(bpf_htons(ETH_P_IP), (const __u8 *)in, 0xffff, &inner))
		return XVS_ENCAP_INVALID;
	len = inner.len;
	if (len > (__u32)(data_end - (void *)in))
		return XVS_ENCAP_GENERAL; /* in fragments, or short: theirs to tell */
	if (len + sizeof(struct iphdr) > 0xffff ||
	    (mtu && len + sizeof(struct iphdr) > mtu))
		return XVS_ENCAP_TOO_BIG;
	tos = xvs_encap_tos(inner.tos);
	if (inner.df)
		frag = XVS_IP_DF;
	else
		id = (__u16)bpf_get_prandom_u32();
	len += sizeof(struct iphdr);
	/* the ten header words, host order, check 0 */
	s = (0x4500 | tos) + len + id + frag + ((XVS_ENCAP_TTL << 8) | IPPROTO_IPIP) + (a >> 16) +
	    (a & 0xffff) + (b >> 16) + (b & 0xffff);

	if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct iphdr)))
		return XVS_ENCAP_NO_ROOM;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	out = data + sizeof(struct ethhdr);
	if ((void *)(out + 1) > data_end)
		return XVS_ENCAP_NO_ROOM; /* cannot happen: the inner header is there */
	__builtin_memcpy(eth, macs, 2 * ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IP);
	*(__u8 *)out = 0x45; /* version 4, ihl 5 */
	out->tos = tos;
	out->tot_len = bpf_htons((__u16)len);
	out->id = bpf_htons(id);
	out->frag_off = bpf_htons(frag);
	out->ttl = XVS_ENCAP_TTL;
	out->protocol = IPPROTO_IPIP;
	out->check = bpf_htons(xvs_encap_csum_fold(s));
	out->saddr = saddr;
	out->daddr = daddr;
	return XVS_ENCAP_OK;
}

static __always_inline int xvs_encap_tc(struct __sk_buff *skb, const struct xvs_tun *t)
{
	__u8 buf[XVS_ENCAP_BUF] = {};
	struct xvs_encap_inner in = {};
	__u8 hdr[8];
	__be16 h_proto, outer_proto;
	__u64 flags;
	int hlen, rc;

	if (bpf_skb_load_bytes(skb, offsetof(struct ethhdr, h_proto), &h_proto, sizeof(h_proto)) ||
	    bpf_skb_load_bytes(skb, sizeof(struct ethhdr), hdr, sizeof(hdr)))
		return XVS_ENCAP_INVALID;
	rc = xvs_encap_inner_info(h_proto, hdr, skb->len - sizeof(struct ethhdr), &in);
	if (rc)
		return rc;
	if (skb->gso_size) {
		struct xvs_tun nomtu = *t;

		nomtu.mtu = 0;
		rc = xvs_encap_check(&nomtu, &in);
	} else {
		rc = xvs_encap_check(t, &in);
	}
	if (rc)
		return rc;
	hlen = xvs_encap_build(t, &in, buf);
	if (hlen < 0)
		return hlen;
	/* Tell the verifier what hlen is: 20..52, within buf. */
	hlen &= XVS_ENCAP_BUF - 1;
	if (hlen < (int)sizeof(struct iphdr))
		return XVS_ENCAP_INVALID;

	if (t->family == XVS_AF_INET6) {
		flags = BPF_F_ADJ_ROOM_ENCAP_L3_IPV6;
		outer_proto = bpf_htons(ETH_P_IPV6);
	} else {
		flags = BPF_F_ADJ_ROOM_ENCAP_L3_IPV4;
		outer_proto = bpf_htons(ETH_P_IP);
	}
	if (t->dport)
		flags |= BPF_F_ADJ_ROOM_ENCAP_L4_UDP |
			 BPF_F_ADJ_ROOM_ENCAP_L2(sizeof(struct xvs_guehdr));
	if (bpf_skb_adjust_room(skb, hlen, BPF_ADJ_ROOM_MAC, flags))
		return XVS_ENCAP_NO_ROOM;
	if (bpf_skb_store_bytes(skb, sizeof(struct ethhdr), buf, hlen, 0) ||
	    (outer_proto != h_proto &&
	     bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_proto), &outer_proto,
				 sizeof(outer_proto), 0))) {
		/* Should not happen: the room is there. Undo the growth. */
		bpf_skb_adjust_room(skb, -hlen, BPF_ADJ_ROOM_MAC, 0);
		return XVS_ENCAP_NO_ROOM;
	}
	return XVS_ENCAP_OK;
}

#endif /* XVS_ENCAP_H */
