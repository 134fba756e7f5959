/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The packet-rate benchmark's own programs (not part of the datapath):
 *
 *  - xvsb_gen: run with BPF_PROG_RUN and BPF_F_TEST_XDP_LIVE_FRAMES on the
 *    client's veth; gives every frame the next source port of a set of
 *    flows, or (GEN_FRESH) a client address and port no frame had before
 *    (fixing the IP and TCP/UDP checksums), and returns XDP_TX, so the
 *    frame leaves the client's veth and enters the director.
 *  - xvsb_fwd_xdp / xvsb_fwd_tc: the ceiling, a no-op forwarder: rewrites
 *    the two MAC addresses and redirects (or XDP_TX) without looking at IP
 *    (tc: at the destination address, and with several real servers at the
 *    source port, which picks one per flow, statelessly).
 *  - xvsb_ipip_xdp: the same with the TUN method's encapsulation, the
 *    ceiling of an IPIP forwarder: pushes an outer IPv4 header (a fixed
 *    tunnel source and destination, the inner DF and length) in front of
 *    the frame's IPv4 packet, then as xvsb_fwd_xdp.
 *  - xvsb_sink: counts frames (and those addressed to a real server's MAC)
 *    and drops them, on the wire in front of the real servers.
 *  - xvsb_pass: XDP_PASS, for a veth that must accept redirected frames.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

char _license[] SEC("license") = "GPL";

struct gen_cfg {
	__u32 nflows;    /* flows: source ports base .. base + nflows - 1 */
	__u32 base_port; /* host order */
	__u32 l4_off;    /* offset of the TCP/UDP header in the frame */
	__u32 csum_off;  /* offset of the L4 checksum within that header */
	__u32 mode;      /* GEN_CYCLIC, GEN_RANDOM or GEN_FRESH */
};

/* gen_cfg.mode: which flow frame n belongs to. */
#define GEN_CYCLIC 0 /* flow n % nflows */
#define GEN_RANDOM 1 /* a pseudo-random one of the nflows */
#define GEN_FRESH 2  /* a new one: source port base + n % nflows, and the
		      * template's source address + n / nflows in its low
		      * 16 bits (nflows * 65536 frames before one repeats) */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_cfg);
} xvsb_gen_cfg SEC(".maps");

/* [0]: frames generated so far (the flow index is this modulo nflows). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} xvsb_gen_seq SEC(".maps");

/*
 * The frame to send, copied over every frame before its port is set: in
 * live-frames mode a page keeps what the forwarder wrote into it (a NAT
 * rewrite, new MACs) when it comes round again.
 */
#define GEN_LEN 60
struct gen_tpl {
	__u8 b[GEN_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_tpl);
} xvsb_gen_tpl SEC(".maps");

#define XVSB_FWD_MACS 16

struct fwd_cfg {
	__u8 dmac[XVSB_FWD_MACS][6]; /* XDP: dmac[0]; tc: see nmacs */
	__u8 smac[6];
	__u8 pad[2];
	__u32 ifindex; /* 0: XDP_TX */
	__be32 vip;    /* tc: only IPv4 to this address (0: every frame) */
	__u32 nmacs;   /* tc: dmac[source port % nmacs] (TCP/UDP; else dmac[0]) */
	__be32 tun_saddr; /* xvsb_ipip_xdp: the outer header's addresses */
	__be32 tun_daddr;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fwd_cfg);
} xvsb_fwd_cfg SEC(".maps");

/* [0] frames, [1] bytes, [2] frames to a real server's MAC (02:78:76:73:1x). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} xvsb_sink_count SEC(".maps");

static __always_inline __u16 csum_replace16(__u16 check, __u16 old, __u16 new)
{
	/* RFC 1624: HC' = ~(~HC + ~m + m') */
	__u32 sum = (__u16)~check + (__u16)~old + new;
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

SEC("xdp")
int xvsb_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct gen_cfg *cfg = bpf_map_lookup_elem(&xvsb_gen_cfg, &zero);
	__u64 *seq = bpf_map_lookup_elem(&xvsb_gen_seq, &zero);
	struct gen_tpl *tpl = bpf_map_lookup_elem(&xvsb_gen_tpl, &zero);
	if (!cfg || !seq || !tpl || cfg->nflows == 0)
		return XDP_TX;
	if (data + GEN_LEN > end)
		return XDP_ABORTED;
	__builtin_memcpy(data, tpl->b, GEN_LEN);
	__u32 off = cfg->l4_off & 0xff;
	__u32 coff = cfg->csum_off & 0x1f;
	__u8 *l4 = data + off;
	if ((void *)(l4 + 20) > end)
		return XDP_ABORTED;
	/* One CPU runs the generator (BPF_PROG_RUN): no atomics needed. */
	__u64 n = *seq;
	*seq = n + 1;
	__u64 f = n;
	if (cfg->mode == GEN_RANDOM) {
		/* splitmix64's finalizer: every frame an independent-looking
		 * pick, the same sequence every run */
		f = (n + 1) * 0x9e3779b97f4a7c15ULL;
		f = (f ^ (f >> 30)) * 0xbf58476d1ce4e5b9ULL;
		f = (f ^ (f >> 27)) * 0x94d049bb133111ebULL;
		f ^= f >> 31;
	}
	__u16 port = cfg->base_port + (__u32)(f % cfg->nflows);
	__u16 new = __builtin_bswap16(port);
	__u16 old = *(__u16 *)l4;
	*(__u16 *)l4 = new;
	__u16 *check = (__u16 *)(l4 + coff);
	if ((void *)(check + 1) > end)
		return XDP_ABORTED;
	if (*check != 0)
		*check = csum_replace16(*check, old, new);
	if (cfg->mode == GEN_FRESH) {
		/* the low half of the IPv4 source address (Ethernet + IPv4
		 * without options: the template's), in the IP header's
		 * checksum and the pseudo header's */
		__u16 *lo = data + sizeof(struct ethhdr) + 14;
		__u16 *ipcheck = data + sizeof(struct ethhdr) + 10;
		__u16 a = __builtin_bswap16((__u16)(__builtin_bswap16(*lo) + n / cfg->nflows));
		*ipcheck = csum_replace16(*ipcheck, *lo, a);
		if (*check != 0)
			*check = csum_replace16(*check, *lo, a);
		*lo = a;
	}
	return XDP_TX;
}

static __always_inline int fwd_rewrite(void *data, void *end, struct fwd_cfg *cfg, __u32 i)
{
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || i >= XVSB_FWD_MACS)
		return -1;
	__builtin_memcpy(eth->h_dest, cfg->dmac[i], 6);
	__builtin_memcpy(eth->h_source, cfg->smac, 6);
	return 0;
}

SEC("xdp")
int xvsb_fwd_xdp(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct fwd_cfg *cfg = bpf_map_lookup_elem(&xvsb_fwd_cfg, &zero);
	if (!cfg)
		return XDP_PASS;
	if (fwd_rewrite((void *)(long)ctx->data, (void *)(long)ctx->data_end, cfg, 0))
		return XDP_PASS;
	if (cfg->ifindex)
		return bpf_redirect(cfg->ifindex, 0);
	return XDP_TX;
}

SEC("xdp")
int xvsb_ipip_xdp(struct xdp_md *ctx)
{
	__u32 zero = 0, sum = 0;
	struct fwd_cfg *cfg = bpf_map_lookup_elem(&xvsb_fwd_cfg, &zero);
	void *data, *end;
	struct iphdr *out, *in;
	__u16 *w;

	if (!cfg)
		return XDP_PASS;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	in = data + sizeof(struct ethhdr);
	if ((void *)(in + 1) > end || ((struct ethhdr *)data)->h_proto != __builtin_bswap16(ETH_P_IP))
		return XDP_PASS;
	if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct iphdr)))
		return XDP_PASS;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	out = data + sizeof(struct ethhdr);
	in = (void *)(out + 1);
	if ((void *)(in + 1) > end)
		return XDP_ABORTED;
	out->ihl = 5;
	out->version = 4;
	out->tos = 0;
	out->tot_len = __builtin_bswap16(__builtin_bswap16(in->tot_len) + sizeof(struct iphdr));
	out->id = 0;
	out->frag_off = in->frag_off & __builtin_bswap16(0x4000);
	out->ttl = 64;
	out->protocol = IPPROTO_IPIP;
	out->check = 0;
	out->saddr = cfg->tun_saddr;
	out->daddr = cfg->tun_daddr;
	w = (__u16 *)out;
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += w[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	out->check = ~sum;
	((struct ethhdr *)data)->h_proto = __builtin_bswap16(ETH_P_IP);
	if (fwd_rewrite(data, end, cfg, 0))
		return XDP_ABORTED;
	if (cfg->ifindex)
		return bpf_redirect(cfg->ifindex, 0);
	return XDP_TX;
}

SEC("classifier")
int xvsb_fwd_tc(struct __sk_buff *skb)
{
	__u32 zero = 0, i = 0;
	struct fwd_cfg *cfg = bpf_map_lookup_elem(&xvsb_fwd_cfg, &zero);
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	if (!cfg)
		return TC_ACT_OK;
	if (cfg->vip && ((void *)(ip + 1) > end || eth->h_proto != __builtin_bswap16(ETH_P_IP) ||
			 ip->daddr != cfg->vip))
		return TC_ACT_OK;
	/* Several real servers: one per flow, by source port (stateless). */
	if (cfg->nmacs > 1 && (void *)(ip + 1) + 4 <= end && ip->ihl == 5 &&
	    (ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP))
		i = __builtin_bswap16(*(__u16 *)(ip + 1)) % cfg->nmacs;
	if (fwd_rewrite(data, end, cfg, i))
		return TC_ACT_OK;
	return bpf_redirect(cfg->ifindex, 0);
}

SEC("xdp")
int xvsb_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&xvsb_sink_count, &k);
	if (v)
		*v += 1;
	k = 1;
	v = bpf_map_lookup_elem(&xvsb_sink_count, &k);
	if (v)
		*v += (__u64)(end - data);
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) <= end && eth->h_dest[0] == 0x02 && eth->h_dest[1] == 0x78 &&
	    eth->h_dest[2] == 0x76 && eth->h_dest[3] == 0x73 && (eth->h_dest[4] & 0xf0) == 0x10) {
		k = 2;
		v = bpf_map_lookup_elem(&xvsb_sink_count, &k);
		if (v)
			*v += 1;
	}
	return XDP_DROP;
}

SEC("xdp")
int xvsb_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}
