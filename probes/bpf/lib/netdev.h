/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* from_netdev: TC ingress of the node's own devices (the agent's --devices: links to other nodes,
 * the uplink to the outside world). A connection from another node or from outside the cluster
 * to a local endpoint's port whose ingress rules the agent's L7 proxy enforces (gRPC) is handed
 * to the proxy here, as a local client's from_container hands it over: the SYN is assigned to
 * the proxy's listener and every later packet of the connection is marked for local delivery to
 * the proxy's socket. Everything else is left to the next program on the device and then the
 * stack (TCX_NEXT): the endpoint's to_container polices it. Connections carry no CT entry here:
 * a handed-over connection is remembered in weir_netdev_proxy, and a mid-stream packet goes to
 * the proxy only when a proxy socket holds its tuple. */
#ifndef WEIR_NETDEV_H
#define WEIR_NETDEV_H

#include "common.h"
#include "conntrack.h"
#include "events.h"
#include "ipcache.h"
#include "maps.h"
#include "parse.h"
#include "policy.h"
#include "proxy.h"

/* TCX: leave a packet to the programs after this one (and then the stack). */
#define NETDEV_NEXT TC_ACT_UNSPEC

static __always_inline int handle_netdev(struct __sk_buff *skb)
{
	struct weir_ipcache_value *dst, *src;
	struct verdict_ctx v = {};
	struct weir_config *cfg;
	struct weir_ct_key key;
	struct pkt p;
	__u32 zero = 0, gen = 0, src_id, one = 1, count;
	__u8 slot;
	int reason, proxied;

	PKT_INIT(p);
	if (parse_packet(skb, &p) != PARSE_OK || p.protocol != IPPROTO_TCP || p.ipv6_control)
		return NETDEV_NEXT;
	cfg = bpf_map_lookup_elem(&weir_config, &zero);
	if (cfg)
		gen = cfg->policy_gen;
	slot = gen & 1;
	dst = ipcache_lookup(slot, p.family, p.daddr);
	if (!dst || !dst->ep_id)
		return NETDEV_NEXT;
	src = ipcache_lookup(slot, p.family, p.saddr);
	if (src && src->ep_id)
		return NETDEV_NEXT; /* a local endpoint: its own hook hands its connections over */
	src_id = src ? src->identity : WEIR_IDENTITY_WORLD;
	proxied = ingress_proxied(slot, dst->ep_id, src_id, p.policy_port);
	v.ifindex = skb->ifindex;
	v.ep_id = dst->ep_id;
	v.src_identity = src_id;
	v.dst_identity = dst->identity;
	v.direction = WEIR_DIR_INGRESS;
	v.trace_reason = WEIR_TRACE_NEW;
	v.obs_point = WEIR_OBS_TO_PROXY;
	ct_key_fwd(&key, &p, WEIR_DIR_INGRESS, 0);
	if (midstream(&p)) {
		/* Delivered locally when the proxy holds the connection: one handed over here (even if
		 * the policy no longer proxies its port), or found by its socket. */
		if (!proxied && !bpf_map_lookup_elem(&weir_netdev_proxy, &key))
			return NETDEV_NEXT;
		if (!proxy_pkt(&p) && weir_proxy_socket(skb)) {
			mark_to_proxy(skb);
			return TC_ACT_OK;
		}
		/* No proxy socket: a connection older than the port's gRPC rules (or whose proxy is
		 * gone). The endpoint's to_container resets it, where a reply to the endpoint's own
		 * connection (which this hook cannot tell apart) has already matched its CT entry. */
		return NETDEV_NEXT;
	}
	if (!proxied)
		return NETDEV_NEXT;
	reason = proxy_pkt(&p) ? WEIR_DROP_SOCKET_ASSIGN_FAILED : weir_proxy_assign(skb);
	if (reason) {
		/* The agent is down (no listener) or the hand-over failed: fail closed, reported once
		 * per flow and drop interval (a client retransmits its SYN). */
		ct_key_fwd(&key, &p, WEIR_DIR_INGRESS, skb->ifindex);
		count = drop_aggregate(&key, bpf_jiffies64());
		if (count)
			emit_event(&p, &v, WEIR_EVENT_DROP, WEIR_VERDICT_DENIED, reason, count);
		return TC_ACT_SHOT;
	}
	bpf_map_update_elem(&weir_netdev_proxy, &key, &one, BPF_ANY);
	emit_event(&p, &v, WEIR_EVENT_TRACE, WEIR_VERDICT_ALLOWED, 0, 1);
	return TC_ACT_OK;
}

#endif /* WEIR_NETDEV_H */
