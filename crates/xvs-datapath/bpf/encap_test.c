// SPDX-License-Identifier: GPL-2.0-only
/*
 * Test-only director for LVS-TUN: exercises include/encap.h in
 * BPF_PROG_TEST_RUN fixtures and stands in for the director in the
 * end-to-end tests (tests/tun_*.rs). Not used by xvs itself.
 *
 * Every IPv4/IPv6 frame (or, when cfg.vip is set, every IPv4 TCP/UDP frame to
 * cfg.vip:cfg.vport) is encapsulated with cfg.tun, gets cfg.dmac/cfg.smac as
 * its MACs and is sent: XDP_TX (or bpf_redirect to cfg.ifindex), tc
 * bpf_redirect to cfg.ifindex (0: the ingress device). Other frames pass.
 * When cfg.tun.sport is 0 and the tunnel is GUE, the source port comes from
 * a flow hash (tc: bpf_get_hash_recalc; XDP: a hash of the addresses).
 * The encap helpers' return value is stored in the last_ret map.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "include/encap.h"

char _license[] SEC("license") = "GPL";

struct tun_test_cfg {
	struct xvs_tun tun; /* 40 bytes */
	__u8 dmac[6];
	__u8 smac[6];
	__u32 ifindex;
	__be32 vip;  /* 0: encapsulate every IP frame */
	__be16 vport;
	__u16 reserved;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tun_test_cfg);
} tun_test_cfg SEC(".maps");

/*
 * [0] packets encapsulated, [1] last helper return value (signed),
 * [2] longest frame encapsulated (tc: a GSO skb can exceed the MTU),
 * [3] helper failures.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __s64);
} tun_test_stats SEC(".maps");

static __always_inline void note(int ret)
{
	__u32 k = 1;
	__s64 *v = bpf_map_lookup_elem(&tun_test_stats, &k);

	if (v)
		*v = ret;
	k = ret == XVS_ENCAP_OK ? 0 : 3;
	{
		v = bpf_map_lookup_elem(&tun_test_stats, &k);
		if (v)
			__sync_fetch_and_add(v, 1);
	}
}

/* 1 if the frame is to be encapsulated, with *hash a flow hash for XDP. */
static __always_inline int selected(const struct tun_test_cfg *c, void *data, void *data_end,
				    __u32 *hash)
{
	struct ethhdr *eth = data;
	struct iphdr *iph = (void *)(eth + 1);
	__be16 *ports;

	if ((void *)(eth + 1) > data_end)
		return 0;
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return !c->vip;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return 0;
	if ((void *)(iph + 1) > data_end)
		return 0;
	*hash = iph->saddr * 2654435761u ^ iph->daddr;
	if (!c->vip)
		return 1;
	if (iph->daddr != c->vip || iph->ihl != 5 ||
	    (iph->protocol != IPPROTO_TCP && iph->protocol != IPPROTO_UDP))
		return 0;
	ports = (void *)(iph + 1);
	if ((void *)(ports + 2) > data_end)
		return 0;
	*hash ^= ((__u32)ports[0] << 16 | ports[1]) * 2246822519u;
	return ports[1] == c->vport;
}

/* Notes ret and turns it into the XDP verdict: out of c->ifindex (or back
 * out) when the frame was encapsulated. */
static __always_inline int xdp_finish(const struct tun_test_cfg *c, int ret)
{
	note(ret);
	if (ret == XVS_ENCAP_NO_ROOM)
		return XDP_DROP;
	if (ret != XVS_ENCAP_OK)
		return XDP_PASS;
	if (!c->ifindex)
		return XDP_TX;
	return bpf_redirect(c->ifindex, 0);
}

static __always_inline void set_macs(void *data, void *data_end, const struct tun_test_cfg *c)
{
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return;
	__builtin_memcpy(eth->h_dest, c->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, c->smac, ETH_ALEN);
}

SEC("xdp")
int tun_test_xdp(struct xdp_md *ctx)
{
	__u32 zero = 0, hash = 0;
	struct tun_test_cfg *c = bpf_map_lookup_elem(&tun_test_cfg, &zero);
	struct xvs_tun t;
	int ret;

	if (!c)
		return XDP_ABORTED;
	if (!selected(c, (void *)(long)ctx->data, (void *)(long)ctx->data_end, &hash))
		return XDP_PASS;
	t = c->tun;
	if (t.dport && !t.sport)
		t.sport = xvs_gue_sport(hash);
	ret = xvs_encap_xdp(ctx, &t);
	if (ret == XVS_ENCAP_OK)
		set_macs((void *)(long)ctx->data, (void *)(long)ctx->data_end, c);
	return xdp_finish(c, ret);
}

/*
 * The same through xvs_encap_ipip4_xdp(), the flow cache's one-pass IPIP,
 * where it applies (IPv4 in IPv4, no GUE): it writes the MACs itself.
 * Anything it hands back untouched goes to xvs_encap_xdp() as above.
 */
SEC("xdp")
int tun_test_xdp_ipip4(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 zero = 0, hash = 0;
	struct tun_test_cfg *c = bpf_map_lookup_elem(&tun_test_cfg, &zero);
	struct xvs_tun t;
	int ret = XVS_ENCAP_GENERAL;

	if (!c)
		return XDP_ABORTED;
	if (!selected(c, data, data_end, &hash))
		return XDP_PASS;
	t = c->tun;
	if ((void *)(eth + 1) <= data_end && eth->h_proto == bpf_htons(ETH_P_IP) &&
	    t.family == XVS_AF_INET && !t.dport)
		ret = xvs_encap_ipip4_xdp(ctx, t.saddr[0], t.daddr[0], c->dmac, t.mtu);
	if (ret == XVS_ENCAP_GENERAL) {
		if (t.dport && !t.sport)
			t.sport = xvs_gue_sport(hash);
		ret = xvs_encap_xdp(ctx, &t);
		if (ret == XVS_ENCAP_OK)
			set_macs((void *)(long)ctx->data, (void *)(long)ctx->data_end, c);
	}
	return xdp_finish(c, ret);
}
_Static_assert(__builtin_offsetof(struct tun_test_cfg, smac) ==
		       __builtin_offsetof(struct tun_test_cfg, dmac) + ETH_ALEN,
	       "xvs_encap_ipip4_xdp: smac right after dmac");

SEC("classifier")
int tun_test_tc(struct __sk_buff *skb)
{
	__u32 zero = 0, hash = 0;
	struct tun_test_cfg *c = bpf_map_lookup_elem(&tun_test_cfg, &zero);
	struct xvs_tun t;
	int ret;

	if (!c)
		return TC_ACT_SHOT;
	if (skb->data + sizeof(struct ethhdr) + sizeof(struct iphdr) + 4 > skb->data_end)
		bpf_skb_pull_data(skb, sizeof(struct ethhdr) + sizeof(struct iphdr) + 4);
	if (!selected(c, (void *)(long)skb->data, (void *)(long)skb->data_end, &hash))
		return TC_ACT_OK;
	t = c->tun;
	if (t.dport && !t.sport)
		t.sport = xvs_gue_sport(bpf_get_hash_recalc(skb));
	if (1) {
		__u32 k = 2;
		__s64 *max = bpf_map_lookup_elem(&tun_test_stats, &k);

		if (max && skb->len > *max)
			*max = skb->len;
	}
	ret = xvs_encap_tc(skb, &t);
	note(ret);
	if (ret == XVS_ENCAP_NO_ROOM)
		return TC_ACT_SHOT;
	if (ret != XVS_ENCAP_OK)
		return TC_ACT_OK;
	set_macs((void *)(long)skb->data, (void *)(long)skb->data_end, c);
	return bpf_redirect(c->ifindex ? c->ifindex : skb->ifindex, 0);
}
