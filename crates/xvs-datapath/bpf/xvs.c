// SPDX-License-Identifier: GPL-2.0-only
/*
 * xvs datapath: XDP and tc (clsact ingress) programs.
 *
 * For now a minimal direct-routing (DR) forwarder: a TCP/UDP packet whose
 * (family, protocol, destination address, destination port) is a service in
 * xvs_services has its Ethernet destination rewritten to the real server's MAC
 * and its source to the director's, and is sent on; the IP packet is left
 * byte for byte as it was. Everything else goes on to the kernel untouched.
 *
 * IPv6 is parsed but not looked up yet (always passed).
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "include/structs.h"
#include "include/maps.h"
#include "include/parse.h"
#include "include/csum.h"

char _license[] SEC("license") = "GPL";

enum xvs_verdict {
	XVS_PASS = 0,
	XVS_FORWARD = 1,
	XVS_MALFORMED = 2,
};

/*
 * Parse, look up, rewrite. On XVS_FORWARD *dr points at the service's map
 * value. Shared by both program types: it only uses direct packet access.
 */
static __always_inline int xvs_process(void *data, void *data_end, struct svc_dr **dr)
{
	struct pkt p = {};
	struct svc_key key = {};
	struct svc_dr *v;
	int rc;

	rc = parse_packet(&p, data, data_end);
	if (rc == XVS_PARSE_MALFORMED)
		return XVS_MALFORMED;
	if (rc != XVS_PARSE_OK)
		return XVS_PASS;
	if (p.family != XVS_AF_INET)
		return XVS_PASS; /* IPv6 services: not yet */

	key.addr[0] = p.daddr[0];
	key.port = p.dport;
	key.proto = p.proto;
	key.family = p.family;
	v = bpf_map_lookup_elem(&xvs_services, &key);
	if (!v)
		return XVS_PASS;

	/* DR: only the MACs change; no checksum covers them. */
	__builtin_memcpy(p.eth->h_dest, v->rs_mac, ETH_ALEN);
	__builtin_memcpy(p.eth->h_source, v->src_mac, ETH_ALEN);
	*dr = v;
	return XVS_FORWARD;
}

SEC("xdp")
int xvs_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct svc_dr *dr = NULL;

	switch (xvs_process(data, data_end, &dr)) {
	case XVS_FORWARD:
		xvs_count(XVS_CNT_FORWARDED);
		if (!dr->ifindex || dr->ifindex == ctx->ingress_ifindex)
			return XDP_TX;
		return bpf_redirect(dr->ifindex, 0);
	case XVS_MALFORMED:
		xvs_count(XVS_CNT_MALFORMED);
		return XDP_PASS;
	default:
		xvs_count(XVS_CNT_PASSED);
		return XDP_PASS;
	}
}

/*
 * aya 0.14 recognises SchedClassifier programs by the "classifier" section
 * name (libbpf's "tc" is not accepted).
 */
SEC("classifier")
int xvs_tc(struct __sk_buff *skb)
{
	struct svc_dr *dr = NULL;
	void *data, *data_end;
	__u32 want;

	/*
	 * Direct packet access only covers the linear part of the skb. Make sure
	 * the headers we may read are in it (GRO/GSO skbs can be paged early).
	 */
	want = skb->len < XVS_MAX_HDR_LEN ? skb->len : XVS_MAX_HDR_LEN;
	if ((long)skb->data + want > (long)skb->data_end)
		bpf_skb_pull_data(skb, want);
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;

	switch (xvs_process(data, data_end, &dr)) {
	case XVS_FORWARD:
		xvs_count(XVS_CNT_FORWARDED);
		/* To the egress of dr->ifindex, or back out of the ingress device. */
		return bpf_redirect(dr->ifindex ? dr->ifindex : skb->ifindex, 0);
	case XVS_MALFORMED:
		xvs_count(XVS_CNT_MALFORMED);
		return TC_ACT_OK;
	default:
		xvs_count(XVS_CNT_PASSED);
		return TC_ACT_OK;
	}
}
