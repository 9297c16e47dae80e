/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Every map of the endpoint datapath. Sizes here are defaults: the loader may override
 * max_entries, and pins each map under <bpffs-dir>/v<ABI version>/maps/ (docs/maps.md). */
#ifndef WEIR_MAPS_H
#define WEIR_MAPS_H

#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct weir_config);
} weir_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32); /* ifindex */
	__type(value, struct weir_endpoint);
} weir_endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 131072);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct weir_ipcache_key);
	__type(value, struct weir_ipcache_value);
} weir_ipcache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 131072);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct weir_policy_key);
	__type(value, struct weir_policy_value);
} weir_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct weir_ct_key);
	__type(value, struct weir_ct_entry);
} weir_ct SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct weir_ct_key);
	__type(value, struct weir_drop_agg);
} weir_drop_agg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct weir_frag_key);
	__type(value, struct weir_frag_value);
} weir_frag SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} weir_events SEC(".maps");

/* Ring-buffer reservations that failed (events lost in the kernel), per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} weir_lost SEC(".maps");

/* In-kernel HTTP: DFA tables and rule sets of both policy slots, per-connection parser state. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * WEIR_HTTP_MAX_SETS * 4);
	__type(key, __u32);
	__type(value, struct weir_http_dfa);
} weir_http_dfa SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * WEIR_HTTP_MAX_SETS);
	__type(key, __u32);
	__type(value, struct weir_http_set);
} weir_http_sets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, WEIR_HTTP_SLOTS);
	__type(key, __u32);
	__type(value, struct weir_http_slot);
} weir_http_conn SEC(".maps");

/* The agent's L7 proxy listeners (WEIR_PROXY_LISTENER_V4/V6), registered by the agent. The
 * kernel removes an entry when its socket closes: with no agent, connections to proxied ports
 * find no listener and are dropped (docs/l7.md). A 4-byte value is what userspace writes (a
 * socket fd). */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, 2);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} weir_proxy_listener SEC(".maps");

/* Connections from_netdev handed to the L7 proxy: weir_ct_key (direction ingress, ifindex 0) ->
 * 1. A later packet of one stays with the proxy even when the policy no longer proxies its port
 * (as a local client's connection keeps WEIR_CT_PROXY on its CT entry). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct weir_ct_key);
	__type(value, __u32);
} weir_netdev_proxy SEC(".maps");

#endif /* WEIR_MAPS_H */
