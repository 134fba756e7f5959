/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * BPF maps of the xvs datapath. User space finds them by these names.
 */
#ifndef XVS_MAPS_H
#define XVS_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "structs.h"

#ifndef XVS_MAX_SERVICES
#define XVS_MAX_SERVICES 4096
#endif

/* Virtual services: svc_key -> where DR sends the frame. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_SERVICES);
	__type(key, struct svc_key);
	__type(value, struct svc_dr);
} xvs_services SEC(".maps");

/* Packet counters, one slot per enum xvs_counter, one copy per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XVS_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} xvs_counters SEC(".maps");

static __always_inline void xvs_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&xvs_counters, &idx);

	if (v)
		*v += 1; /* per-CPU slot: no atomics needed */
}

#endif /* XVS_MAPS_H */
