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
 *
 * SCTP's CRC32c covers no pseudo header: an address change leaves it alone,
 * a port change (NAT to another port) updates it for the two bytes changed
 * (xvs_sctp_crc_delta()), where IPVS recomputes it over the whole packet.
 */
#ifndef XVS_CSUM_H
#define XVS_CSUM_H

#include <linux/types.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

#include "sctp_states.h"

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

/* a * b mod CRC32c's polynomial, both reflected (bit 31 is x^0). */
static __always_inline __u32 xvs_crc32c_mulmod(__u32 a, __u32 b)
{
	__u32 p = 0;

#pragma clang loop unroll(disable)
	for (int i = 0; i < 32; i++) {
		p ^= b & -((a >> (31 - i)) & 1);
		b = (b >> 1) ^ (XVS_CRC32C_POLY & -(b & 1));
	}
	return p;
}

/*
 * What changing two bytes of an SCTP packet does to its CRC32c: XOR the
 * returned value into the checksum (its first byte in the packet is the
 * value's low byte). bytes: the XOR of the old and new bytes, the first in
 * bits 0-7; after: how many bytes of the packet follow them. CRC32c is
 * linear: the change is the CRC register over the two changed bytes from
 * zero, carried over `after` zero bytes, which is a product by x^(8 *
 * after) mod P, taken from the table bit by bit (after < 65536). The
 * checksum stays as right, or as wrong, as it was. A global function: the
 * verifier checks it once, not at every path that reaches a call.
 */
__attribute__((noinline)) __u32 xvs_sctp_crc_delta(__u32 bytes, __u32 after)
{
	__u32 r = bytes & 0xffff;

	/* the register over the two bytes: 16 steps of the reflected CRC */
#pragma clang loop unroll(disable)
	for (int i = 0; i < 16; i++)
		r = (r >> 1) ^ (XVS_CRC32C_POLY & -(r & 1));
#pragma clang loop unroll(disable)
	for (int j = 0; j < 16; j++)
		if ((after >> j) & 1)
			r = xvs_crc32c_mulmod(xvs_crc32c_x8n[j], r);
	return r;
}

/*
 * Puts port into SCTP common header sh (12 bytes, in the packet or a copy
 * of it) as the destination (dst) or source port, and updates the CRC32c
 * for it; len: the SCTP packet's length (common header and chunks).
 */
static __always_inline void xvs_sctp_set_port(__u8 *sh, int dst, __be16 port, __u32 len)
{
	__u8 *pp = dst ? sh + 2 : sh, *np = (__u8 *)&port;
	__u32 d;

	if (pp[0] == np[0] && pp[1] == np[1])
		return;
	d = xvs_sctp_crc_delta((__u32)(pp[0] ^ np[0]) | (__u32)(pp[1] ^ np[1]) << 8,
			       len - (dst ? 4 : 2));
	pp[0] = np[0];
	pp[1] = np[1];
	sh[8] ^= d;
	sh[9] ^= d >> 8;
	sh[10] ^= d >> 16;
	sh[11] ^= d >> 24;
}

#endif /* XVS_CSUM_H */
