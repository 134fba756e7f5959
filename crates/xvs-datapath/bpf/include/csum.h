/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Internet checksum helpers (RFC 1071, incremental update per RFC 1624).
 *
 * DR forwarding rewrites only MAC addresses and needs none of this; NAT
 * (DNAT/SNAT of addresses and ports) and TUN (building an outer IPv4 header)
 * will. In tc programs prefer bpf_l3_csum_replace()/bpf_l4_csum_replace(),
 * which also handle skbs in CHECKSUM_PARTIAL state (locally generated packets
 * on veth: the TCP/UDP check field then holds only the pseudo-header sum, and
 * BPF_F_PSEUDO_HDR must be passed for address changes). XDP sees raw frames
 * and must use these.
 */
#ifndef XVS_CSUM_H
#define XVS_CSUM_H

#include <linux/types.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

/* Fold a 32-bit one's complement sum to 16 bits (not inverted). */
static __always_inline __u16 xvs_csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/*
 * RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), for a 16-bit field m -> m'.
 * All values as stored in the packet (network byte order): one's complement
 * arithmetic is byte-order independent.
 */
static __always_inline void xvs_csum_replace2(__sum16 *sum, __be16 from, __be16 to)
{
	__u32 s = (__u16)~*sum;

	s += (__u16)~from;
	s += to;
	*sum = ~xvs_csum_fold(s);
}

/* The same for a 32-bit field (an IPv4 address): two 16-bit halves. */
static __always_inline void xvs_csum_replace4(__sum16 *sum, __be32 from, __be32 to)
{
	__u32 s = (__u16)~*sum;

	s += (__u16)~(from & 0xffff);
	s += (__u16)~(from >> 16);
	s += to & 0xffff;
	s += to >> 16;
	*sum = ~xvs_csum_fold(s);
}

/* The same for an IPv4 address and a port at once (a TCP/UDP checksum
 * under NAT: pseudo header and port), with one fold. */
static __always_inline void xvs_csum_replace4_2(__sum16 *sum, __be32 from, __be32 to,
						__be16 pfrom, __be16 pto)
{
	__u32 s = (__u16)~*sum;

	s += (__u16)~(from & 0xffff);
	s += (__u16)~(from >> 16);
	s += to & 0xffff;
	s += to >> 16;
	s += (__u16)~pfrom;
	s += pto;
	*sum = ~xvs_csum_fold(s);
}

/* Sums n 16-bit words at w (n a constant: unrolled). */
#define XVS_SUM16(sum, w, n)                   \
	do {                                   \
		_Pragma("unroll")              \
		for (int i_ = 0; i_ < (n); i_++) \
			(sum) += (w)[i_];      \
	} while (0)

/* Full checksum of a 20-byte IPv4 header (no options), check field ignored. */
static __always_inline __sum16 xvs_ipv4_csum(const struct iphdr *iph)
{
	const __u16 *w = (const __u16 *)iph;
	__u32 s = 0;

#pragma unroll
	for (int i = 0; i < 10; i++)
		if (i != 5) /* word 5 is the check field */
			s += w[i];
	return ~xvs_csum_fold(s);
}

#endif /* XVS_CSUM_H */
