/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Bounds-checked header parsing for XDP and tc programs.
 *
 * Every read is preceded by a check against data_end, in a form the verifier
 * can follow: "pointer + constant size > data_end" on the very pointer that is
 * then dereferenced. Nothing here reads past data_end, whatever the packet.
 *
 * The parser fills a struct pkt with what the forwarding code needs (family,
 * protocol, addresses and ports in network byte order, header pointers) and
 * says whether the packet is:
 *   XVS_PARSE_OK         IPv4/IPv6 with a complete TCP or UDP header, or an
 *                        SCTP common header and its first chunk's header;
 *   XVS_PARSE_OTHER      well formed but nothing we handle (ARP, VLAN, ICMP,
 *                        ICMPv6, ESP, AH, ...);
 *   XVS_PARSE_MALFORMED  a header it had to read is truncated or invalid;
 *   XVS_PARSE_FRAGMENT   an IPv4 fragment, or an IPv6 packet with a Fragment
 *                        header (TCP/UDP ones: pkt.frag says which; SCTP
 *                        ones are handed on).
 *
 * IPv6 extension headers: hop-by-hop options (first only), routing and
 * destination options are walked, at most XVS_V6_MAX_EXT of them within the
 * first XVS_V6_MAX_EXT_LEN bytes after the fixed header; a Fragment header
 * is FRAGMENT; a chain that is longer, truncated, or has hop-by-hop later
 * than first is MALFORMED; any other next header (ICMPv6, ESP, AH, no next
 * header, ...) is OTHER, ICMPv6 with proto, l3_len and l4 set (the ICMPv6
 * errors about connections: xvs_icmp_decide()).
 */
#ifndef XVS_PARSE_H
#define XVS_PARSE_H

#include <linux/types.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "structs.h"
#include "sctp_states.h"

#define XVS_IP_MF 0x2000
#define XVS_IP_OFFSET 0x1fff

enum xvs_parse {
	XVS_PARSE_OK = 0,
	XVS_PARSE_OTHER = 1,
	XVS_PARSE_MALFORMED = 2,
	XVS_PARSE_FRAGMENT = 3,
};

struct pkt {
	void *l3;
	void *l4;
	__be32 saddr[4]; /* IPv4 in [0], rest zero */
	__be32 daddr[4];
	__be16 sport;
	__be16 dport;
	__u8 family; /* XVS_AF_INET / XVS_AF_INET6 */
	__u8 proto;  /* IPPROTO_TCP / IPPROTO_UDP / IPPROTO_SCTP */
	__u8 tcp_flags; /* TCP: byte 13 of the header (SYN, ACK, ...); SCTP: the packet's
			 * event (XVS_SCTP_EV_*) | XVS_SCTP_ABORT_FIRST; 0 for UDP */
	__u8 frag;     /* TCP/UDP fragment: XVS_FRAG_FIRST or XVS_FRAG_LATER; 0: none */
	__u16 tot_len; /* IP packet length in bytes, host order */
	__u16 l3_len;  /* IP header length in bytes (IPv4: with options, 20..60; IPv6: with
			* its extension headers) */
	__be32 frag_id; /* a fragment's identification (IPv4: 16 bits, the low half in memory) */
};

/* pkt.frag (IPv4, or IPv6 with one Fragment header): the first fragment
 * (offset 0: the L4 header, parsed), or a later one (payload only:
 * XVS_PARSE_FRAGMENT, ports 0; l3_len: up to the payload). */
#define XVS_FRAG_FIRST 1
#define XVS_FRAG_LATER 2

/* pkt.tcp_flags of an SCTP packet: its first chunk is an ABORT (never
 * scheduled, even with sloppy_sctp). The event is in the low four bits. */
#define XVS_SCTP_ABORT_FIRST 0x10
#define XVS_SCTP_EV_MASK 0x0f
/* Common header (ports, verification tag, CRC32c) and a chunk header. */
#define XVS_SCTP_HLEN 12
#define XVS_SCTP_MIN_LEN (XVS_SCTP_HLEN + 4)
/* How far past the first chunk the parser looks for a bundled ABORT. */
#define XVS_SCTP_MAX_LOOK 0x3ffc

/* Longest header chain parse_packet() reads: Ethernet + IPv4 with options + TCP. */
#define XVS_MAX_HDR_LEN (sizeof(struct ethhdr) + 60 + sizeof(struct tcphdr))

/* IPv6: at most this many extension headers, within this many bytes. */
#define XVS_V6_MAX_EXT 6
#define XVS_V6_MAX_EXT_LEN 512
/* ... so the longest IPv6 header chain: Ethernet + IPv6 + extensions + TCP. */
#define XVS_MAX_HDR_LEN6 \
	(sizeof(struct ethhdr) + sizeof(struct ipv6hdr) + XVS_V6_MAX_EXT_LEN + sizeof(struct tcphdr))

#define XVS_NEXTHDR_HOP 0
#define XVS_NEXTHDR_ROUTING 43
#define XVS_NEXTHDR_FRAGMENT 44
#define XVS_NEXTHDR_DEST 60
#define XVS_NEXTHDR_ICMP6 58

/* An SCTP packet: the common header and the first chunk's header, whose
 * type makes the event (pkt.tcp_flags). */
static __always_inline int parse_sctp(struct pkt *p, void *l4, void *data_end)
{
	__u8 *sh = l4, *next;
	__u8 first, ev;
	__u32 clen;

	if ((void *)(sh + XVS_SCTP_MIN_LEN) > data_end)
		return XVS_PARSE_MALFORMED;
	p->sport = *(__be16 *)sh;
	p->dport = *(__be16 *)(sh + 2);
	first = sh[XVS_SCTP_HLEN];
	ev = first < XVS_SCTP_CID_KNOWN ? xvs_sctp_event[first] : XVS_SCTP_EV_DATA;
	if (first == XVS_SCTP_CID_ABORT)
		ev |= XVS_SCTP_ABORT_FIRST;
	/* set_sctp_state(): an ABORT after a COOKIE ECHO or COOKIE ACK
	 * is the packet's event (within the first XVS_SCTP_MAX_LOOK
	 * bytes of the packet, here) */
	if (first == XVS_SCTP_CID_COOKIE_ECHO || first == XVS_SCTP_CID_COOKIE_ACK) {
		clen = bpf_ntohs(*(__be16 *)(sh + XVS_SCTP_HLEN + 2));
		clen = (clen + 3) & ~3U;
		if (clen >= 4 && clen <= XVS_SCTP_MAX_LOOK) {
			next = sh + XVS_SCTP_HLEN + clen;
			if ((void *)(next + 1) <= data_end && next[0] == XVS_SCTP_CID_ABORT)
				ev = XVS_SCTP_EV_ABORT;
		}
	}
	p->tcp_flags = ev;
	return XVS_PARSE_OK;
}

static __always_inline int parse_l4(struct pkt *p, void *l4, void *data_end)
{
	p->l4 = l4;
	if (p->proto == IPPROTO_SCTP)
		return parse_sctp(p, l4, data_end);
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;

		if ((void *)(th + 1) > data_end)
			return XVS_PARSE_MALFORMED;
		if (th->doff < 5)
			return XVS_PARSE_MALFORMED;
		p->sport = th->source;
		p->dport = th->dest;
		p->tcp_flags = ((__u8 *)th)[13];
		return XVS_PARSE_OK;
	}
	if (p->proto == IPPROTO_UDP) {
		struct udphdr *uh = l4;

		if ((void *)(uh + 1) > data_end)
			return XVS_PARSE_MALFORMED;
		/* A UDP checksum of 0 is not allowed over IPv6 (RFC 8200 8.1). */
		if (p->family == XVS_AF_INET6 && uh->check == 0)
			return XVS_PARSE_MALFORMED;
		p->sport = uh->source;
		p->dport = uh->dest;
		return XVS_PARSE_OK;
	}
	return XVS_PARSE_OTHER;
}

static __always_inline int parse_ipv4(struct pkt *p, void *data_end)
{
	struct iphdr *iph = p->l3;
	__u32 ihl_len;

	if ((void *)(iph + 1) > data_end)
		return XVS_PARSE_MALFORMED;
	if (iph->version != 4 || iph->ihl < 5)
		return XVS_PARSE_MALFORMED;
	ihl_len = (__u32)iph->ihl * 4; /* 20..60: the verifier knows ihl is 4 bits */
	if (bpf_ntohs(iph->tot_len) < ihl_len)
		return XVS_PARSE_MALFORMED;
	if ((void *)iph + ihl_len > data_end)
		return XVS_PARSE_MALFORMED;

	p->family = XVS_AF_INET;
	p->proto = iph->protocol;
	p->l3_len = ihl_len;
	p->tot_len = bpf_ntohs(iph->tot_len);
	p->saddr[0] = iph->saddr;
	p->daddr[0] = iph->daddr;
	/* A TCP/UDP fragment: the first carries the L4 header, the others
	 * follow its decision (by source, destination, protocol and
	 * identification); any other protocol's are handed on. */
	if (iph->frag_off & bpf_htons(XVS_IP_MF | XVS_IP_OFFSET)) {
		if (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP)
			return XVS_PARSE_FRAGMENT;
		p->frag_id = iph->id;
		if (iph->frag_off & bpf_htons(XVS_IP_OFFSET)) {
			/* l4: the payload, a packet pointer as on every path
			 * (never read as a header: p->frag says so) */
			p->l4 = (void *)iph + ihl_len;
			p->frag = XVS_FRAG_LATER;
			return XVS_PARSE_FRAGMENT;
		}
		p->frag = XVS_FRAG_FIRST;
	}
	/* SCTP: the length must cover what the NAT's CRC32c update counts on */
	if (p->proto == IPPROTO_SCTP && (__u32)p->tot_len < ihl_len + XVS_SCTP_MIN_LEN)
		return XVS_PARSE_MALFORMED;
	return parse_l4(p, (void *)iph + ihl_len, data_end);
}

static __always_inline int parse_ipv6(struct pkt *p, void *data_end)
{
	struct ipv6hdr *ip6h = p->l3;
	__u32 off = sizeof(*ip6h), i;
	__u8 nh;
	int rc;

	if ((void *)(ip6h + 1) > data_end)
		return XVS_PARSE_MALFORMED;
	if (ip6h->version != 6)
		return XVS_PARSE_MALFORMED;

	p->family = XVS_AF_INET6;
	p->tot_len = bpf_ntohs(ip6h->payload_len) + sizeof(*ip6h);
	__builtin_memcpy(p->saddr, &ip6h->saddr, 16);
	__builtin_memcpy(p->daddr, &ip6h->daddr, 16);
	nh = ip6h->nexthdr;

#pragma unroll
	for (i = 0; i < XVS_V6_MAX_EXT; i++) {
		__u8 *eh;

		if (nh == IPPROTO_TCP || nh == IPPROTO_UDP || nh == IPPROTO_SCTP)
			break;
		if (nh == XVS_NEXTHDR_FRAGMENT) {
			/* next header, reserved, offset << 3 | M, identification;
			 * one per packet (a second: handed on) */
			if (p->frag || off > sizeof(*ip6h) + XVS_V6_MAX_EXT_LEN)
				return XVS_PARSE_FRAGMENT;
			eh = (__u8 *)ip6h + off;
			if ((void *)(eh + 8) > data_end)
				return XVS_PARSE_MALFORMED;
			nh = eh[0];
			p->proto = nh;
			if (nh != IPPROTO_TCP && nh != IPPROTO_UDP)
				return XVS_PARSE_FRAGMENT; /* the stack's (other headers after it too) */
			p->frag_id = *(__be32 *)(eh + 4);
			off += 8;
			if (*(__be16 *)(eh + 2) & bpf_htons(0xfff8)) {
				if ((__u32)p->tot_len < off)
					return XVS_PARSE_MALFORMED;
				/* l4: the payload, a packet pointer as on every path */
				p->frag = XVS_FRAG_LATER;
				p->l3_len = off;
				p->l4 = (void *)ip6h + off;
				return XVS_PARSE_FRAGMENT;
			}
			p->frag = XVS_FRAG_FIRST;
			continue;
		}
		if (nh == XVS_NEXTHDR_ICMP6 && off <= sizeof(*ip6h) + XVS_V6_MAX_EXT_LEN) {
			/* OTHER, with where its header is (for ICMPv6 errors) */
			p->proto = nh;
			p->l3_len = off;
			p->l4 = (void *)ip6h + off;
			return XVS_PARSE_OTHER;
		}
		if (nh != XVS_NEXTHDR_ROUTING && nh != XVS_NEXTHDR_DEST && nh != XVS_NEXTHDR_HOP)
			return XVS_PARSE_OTHER; /* ESP, AH, no next header, ... */
		if (nh == XVS_NEXTHDR_HOP && i > 0)
			return XVS_PARSE_MALFORMED; /* hop-by-hop only right after the header */
		if (off > sizeof(*ip6h) + XVS_V6_MAX_EXT_LEN)
			return XVS_PARSE_MALFORMED;
		eh = (__u8 *)ip6h + off;
		if ((void *)(eh + 2) > data_end)
			return XVS_PARSE_MALFORMED;
		nh = eh[0];
		off += ((__u32)eh[1] + 1) * 8;
	}
	if (nh != IPPROTO_TCP && nh != IPPROTO_UDP && nh != IPPROTO_SCTP)
		return XVS_PARSE_MALFORMED; /* more extension headers than we walk */
	if (off > sizeof(*ip6h) + XVS_V6_MAX_EXT_LEN)
		return XVS_PARSE_MALFORMED;
	p->proto = nh;
	p->l3_len = off;
	rc = parse_l4(p, (void *)ip6h + off, data_end);
	if (rc != XVS_PARSE_OK)
		return rc;
	/* The payload length must cover the extension headers and the L4 header. */
	if ((__u32)p->tot_len < off + (nh == IPPROTO_TCP  ? sizeof(struct tcphdr)
				       : nh == IPPROTO_UDP ? sizeof(struct udphdr)
							   : XVS_SCTP_MIN_LEN))
		return XVS_PARSE_MALFORMED;
	return XVS_PARSE_OK;
}

/* Parse from the Ethernet header at data. p must be zeroed by the caller. */
static __always_inline int parse_packet(struct pkt *p, void *data, void *data_end)
{
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return XVS_PARSE_MALFORMED;
	p->l3 = eth + 1;
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return parse_ipv4(p, data_end);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return parse_ipv6(p, data_end);
	/* ARP, VLAN-tagged frames, LLDP, ...: not ours. */
	return XVS_PARSE_OTHER;
}

#endif /* XVS_PARSE_H */
