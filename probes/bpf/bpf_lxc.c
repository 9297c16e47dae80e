// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The endpoint datapath: attached by TCX to the host side of every local endpoint's veth.
 *
 *   from_container  TC ingress of the host-side veth: packets the endpoint sends (its egress)
 *   to_container    TC egress of the host-side veth: packets delivered to it (its ingress)
 *   from_netdev     TC ingress of the node's own devices (--devices): hands connections from
 *                   other nodes to proxied ports of local endpoints to the L7 proxy (lib/netdev.h)
 *
 * Both identify the endpoint by ifindex, parse the packet, follow connection tracking for
 * established connections and replies, evaluate policy for new connections, and report
 * verdicts on the weir_events ring buffer. docs/life-of-a-flow.md walks through it.
 */
#include "lib/common.h"
#include "lib/conntrack.h"
#include "lib/events.h"
#include "lib/http_policy.h"
#include "lib/ipcache.h"
#include "lib/maps.h"
#include "lib/netdev.h"
#include "lib/parse.h"
#include "lib/policy.h"
#include "lib/proxy.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline int drop(const struct pkt *p, struct verdict_ctx *v, __u16 reason, __u8 dir, __u64 now,
				struct weir_ct_key *flow)
{
	__u32 count;

	ct_key_fwd(flow, p, dir, v->ifindex);
	count = drop_aggregate(flow, now);
	if (count)
		emit_event(p, v, WEIR_EVENT_DROP, WEIR_VERDICT_DENIED, reason, count);
	return TC_ACT_SHOT;
}

/* Reports a packet of a tracked connection (established, reply or related) as a trace. The
 * endpoint is looked up only here, when a trace is due, so the common path needs no lookup. */
static __always_inline void trace_tracked(const struct pkt *p, struct verdict_ctx *v, const struct weir_ct_entry *e,
					  __u8 dir, __u8 slot, __u32 count)
{
	if (tracked_parties(v, e, dir, slot))
		emit_event(p, v, WEIR_EVENT_TRACE, WEIR_VERDICT_ALLOWED, 0, count);
}

/* A packet of a connection that goes through the agent's L7 proxy (WEIR_CT_PROXY): what the
 * client sends (the entry's original direction at its egress) is handed to the proxy, what the
 * server replies to the proxy's upstream (reply direction at its egress) is marked for local
 * delivery; the other two directions pass. */
static __always_inline int proxy_tracked(struct __sk_buff *skb, const struct pkt *p, struct verdict_ctx *v, __u8 dir,
					 int reply, __u64 now, struct weir_ct_key *keyp)
{
	int reason;

	if (dir != WEIR_DIR_EGRESS)
		return TC_ACT_OK;
	if (reply || midstream(p)) {
		mark_to_proxy(skb);
		return TC_ACT_OK;
	}
	/* A SYN again (retransmitted, or after a drop for want of a listener). */
	reason = proxy_pkt(p) ? WEIR_DROP_SOCKET_ASSIGN_FAILED : weir_proxy_assign(skb);
	if (reason)
		return drop(p, v, reason, dir, now, keyp);
	return TC_ACT_OK;
}

/* Connection tracking first: established packets, replies and related ICMP errors of
 * connections decided in the current policy generation are handled here (connections with HTTP
 * rules go through the HTTP parser). Returns the TC action, or -1 when the packet must be
 * decided as a new connection. */
static __always_inline int handle_tracked(struct __sk_buff *skb, struct pkt *p, struct verdict_ctx *v, __u8 dir,
					  __u32 gen, __u64 now, struct weir_ct_key *keyp)
{
#define key (*keyp)
	struct weir_ct_entry *e;
	__u8 slot = gen & 1;
	__u32 count;

	ct_key_fwd(&key, p, dir, v->ifindex);
	e = bpf_map_lookup_elem(&weir_ct, &key);
	if (e && e->expires > now) {
		int reopen = p->protocol == IPPROTO_TCP && (p->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN && ct_closing(e);

		if (e->policy_gen == gen && !reopen) {
			ct_update(e, p, 0, now);
			if (dir == WEIR_DIR_INGRESS || !(e->flags & WEIR_CT_REMOTE_LOCAL)) {
				count = ct_trace_due(e, p, 0, now);
				if (count) {
					v->trace_reason = WEIR_TRACE_ESTABLISHED;
					trace_tracked(p, v, e, dir, slot, count);
				}
			}
			if (e->flags & WEIR_CT_PROXY)
				return proxy_tracked(skb, p, v, dir, 0, now, keyp);
			if (e->l7_set)
				return http_packet(skb, p, v, e, &key, dir, 0, 0);
			return TC_ACT_OK;
		}
		/* Policy changed since the decision (or the port is reused): decide again. The HTTP
		 * state of the connection carries over to its new entry (a SYN resets it). */
		p->was_proxied = !reopen && (e->flags & WEIR_CT_PROXY) != 0;
		if (e->http_slot) {
			__u32 zero = 0;
			struct http_scratch *sc = bpf_map_lookup_elem(&weir_http_scratch, &zero);

			if (sc) {
				sc->carry_slot = e->http_slot;
				p->carry_http = 1;
			}
		}
		bpf_map_delete_elem(&weir_ct, &key);
	}

	ct_key_rev(&key, p, dir, v->ifindex);
	e = bpf_map_lookup_elem(&weir_ct, &key);
	if (e && e->expires > now) {
		ct_update(e, p, 1, now);
		if (dir == WEIR_DIR_INGRESS || !(e->flags & WEIR_CT_REMOTE_LOCAL)) {
			count = ct_trace_due(e, p, 1, now);
			if (count) {
				v->direction = opposite(dir);
				v->reply = 1;
				v->trace_reason = WEIR_TRACE_REPLY;
				trace_tracked(p, v, e, dir, slot, count);
			}
		}
		if (e->flags & WEIR_CT_PROXY)
			return proxy_tracked(skb, p, v, dir, 1, now, keyp);
		if (e->l7_set) {
			v->direction = dir;
			v->reply = 0;
			return http_packet(skb, p, v, e, &key, dir, 1, 0);
		}
		return TC_ACT_OK;
	}

	if (p->related) {
		p->inner.direction = opposite(dir);
		p->inner.ifindex = v->ifindex;
		e = bpf_map_lookup_elem(&weir_ct, &p->inner);
		if (e && e->expires > now) {
			if (dir == WEIR_DIR_INGRESS || !(e->flags & WEIR_CT_REMOTE_LOCAL)) {
				v->direction = opposite(dir);
				v->reply = 1;
				v->trace_reason = WEIR_TRACE_RELATED;
				trace_tracked(p, v, e, dir, slot, 1);
			}
			return TC_ACT_OK;
		}
	}
	return -1;
#undef key
}

static __always_inline int handle(struct __sk_buff *skb, __u8 dir)
{
	struct pkt p;
	struct verdict_ctx v = {};
	struct policy_result r;
	struct weir_ct_key key;
	struct weir_endpoint *ep;
	struct weir_endpoint_slot *eps;
	struct weir_config *cfg;
	struct weir_ipcache_value *ipc;
	__u32 ifindex = skb->ifindex;
	__u32 zero0 = 0, gen = 0, local_id, remote_id, count;
	__u64 now;
	__u8 slot, remote_local, proxy = 0, has_socket = 0;
	int ret;

	PKT_INIT(p);
	ret = parse_packet(skb, &p);
	if (ret == PARSE_NOT_IP)
		return TC_ACT_OK;
	if (p.ipv6_control)
		return TC_ACT_OK;

	/* Connection tracking and aggregation run on jiffies: one tick of resolution is plenty,
	 * and the verifier turns bpf_jiffies64() into a load. */
	now = bpf_jiffies64();
	v.ifindex = ifindex;
	v.direction = dir;
	v.obs_point = dir == WEIR_DIR_EGRESS ? WEIR_OBS_FROM_ENDPOINT : WEIR_OBS_TO_ENDPOINT;

	cfg = bpf_map_lookup_elem(&weir_config, &zero0);
	if (cfg)
		gen = cfg->policy_gen;
	slot = gen & 1;

	if (ret == PARSE_OK) {
		int action = handle_tracked(skb, &p, &v, dir, gen, now, &key);

		if (action >= 0)
			return action;
	}

	/* Fail closed: an interface we are attached to but know nothing about drops. */
	ep = bpf_map_lookup_elem(&weir_endpoints, &ifindex);
	if (!ep)
		return drop(&p, &v, WEIR_DROP_EP_NOT_READY, dir, now, &key);
	eps = &ep->slot[slot];
	v.ep_id = ep->ep_id;
	local_id = eps->identity;
	if (dir == WEIR_DIR_EGRESS)
		v.src_identity = local_id;
	else
		v.dst_identity = local_id;
	if (local_id == 0)
		return drop(&p, &v, WEIR_DROP_EP_NOT_READY, dir, now, &key);
	if (ret < 0)
		return drop(&p, &v, -ret, dir, now, &key);
	if (dir == WEIR_DIR_EGRESS && !source_is_endpoint(ep, &p, slot))
		return drop(&p, &v, WEIR_DROP_INVALID_SOURCE_IP, dir, now, &key);

	/* New connection: resolve the remote identity and evaluate policy. */
	ipc = ipcache_lookup(slot, p.family, dir == WEIR_DIR_EGRESS ? p.daddr : p.saddr);
	remote_id = ipc ? ipc->identity : WEIR_IDENTITY_WORLD;
	remote_local = ipc && ipc->ep_id != 0;
	if (dir == WEIR_DIR_EGRESS)
		v.dst_identity = remote_id;
	else
		v.src_identity = remote_id;

	policy_lookup(slot, dir, ep->ep_id, eps, remote_id, p.protocol, p.policy_port, &r);
	v.rule_set = r.rule_set;
	v.match_type = r.match_type;
	v.trace_reason = WEIR_TRACE_NEW;

	if (r.drop_reason && !r.audit) {
		ct_key_fwd(&key, &p, dir, ifindex);
		count = drop_aggregate(&key, now);
		if (count) {
			if (r.enforced && weir_runtime.policy_verdict_events)
				emit_event(&p, &v, WEIR_EVENT_POLICY_VERDICT, WEIR_VERDICT_DENIED, r.drop_reason, count);
			emit_event(&p, &v, WEIR_EVENT_DROP, WEIR_VERDICT_DENIED, r.drop_reason, count);
		}
		return TC_ACT_SHOT;
	}

	/* The L7 proxy (gRPC rules): a client's connection goes to the proxy when its own egress
	 * rules or the destination endpoint's ingress rules say so. At the server, a connection
	 * from the proxy (its mark) is allowed at L3/L4 and not parsed, and one that should have
	 * come through the proxy but did not (a client without weir's hook) is refused. */
	if (p.protocol == IPPROTO_TCP) {
		/* A connection that went through the proxy stays with it (the proxy decides its calls
		 * with the new policy); its packets have nowhere else to go. */
		if (dir == WEIR_DIR_EGRESS) {
			proxy = r.proxy || p.was_proxied ||
				(ipc && ipc->ep_id && ingress_proxied(slot, ipc->ep_id, local_id, p.policy_port));
			/* Mid-stream with no CT entry (a policy change, an evicted or expired entry): if
			 * a proxy socket has this tuple (the accepted socket of a client's connection,
			 * or the upstream socket a server answers), the connection is a proxied one. */
			if (midstream(&p) && !p.was_proxied) {
				has_socket = !proxy_pkt(&p) && weir_proxy_socket(skb);
				proxy |= has_socket;
			}
		} else if (from_proxy(skb))
			proxy = 1;
		else if (r.proxy && (p.tcp_flags & TCP_RST))
			return TC_ACT_OK; /* a RST opens nothing: let it end a connection older than the rules */
		else if (r.proxy && midstream(&p)) {
			/* A connection older than the port's gRPC rules from a client whose hook could
			 * not hand it over (another node's, outside the cluster): reset both sides. (A
			 * reply to the endpoint's own connection matched its CT entry before this.) */
			ct_key_fwd(&key, &p, dir, ifindex);
			return proxy_refuse(skb, &p, &v, &key, now, dir);
		} else if (r.proxy)
			return drop(&p, &v, WEIR_DROP_PROXY_UNSUPPORTED, dir, now, &key);
	}

	v.audit = r.drop_reason != 0;
	if (r.enforced && weir_runtime.policy_verdict_events)
		emit_event(&p, &v, WEIR_EVENT_POLICY_VERDICT,
			   r.drop_reason ? WEIR_VERDICT_DENIED : WEIR_VERDICT_ALLOWED, r.drop_reason, 1);

	{
		/* Built in per-CPU scratch memory: the program's stack is needed by the HTTP parser's
		 * calls (512 bytes for the whole call chain). */
		__u32 zero = 0;
		struct http_scratch *sc = bpf_map_lookup_elem(&weir_http_scratch, &zero);
		struct weir_ct_entry *fresh;

		if (!sc)
			return TC_ACT_SHOT;
		fresh = &sc->ct;
		__builtin_memset(fresh, 0, sizeof(*fresh));
		fresh->created = now;
		fresh->last_report[0] = now;
		fresh->packets[0] = 1;
		fresh->bytes[0] = p.len;
		fresh->policy_gen = gen;
		fresh->rule_set = r.rule_set;
		fresh->remote_identity = remote_id;
		fresh->flags = (remote_local ? WEIR_CT_REMOTE_LOCAL : 0) | (v.audit ? WEIR_CT_AUDIT : 0) |
			       (proxy ? WEIR_CT_PROXY : 0);
		fresh->match_type = r.match_type;
		fresh->ep_id = ep->ep_id;
		fresh->local_identity = local_id;
		/* On a proxied connection the proxy enforces the HTTP rules of both ends. */
		fresh->l7_set = p.protocol == IPPROTO_TCP && !proxy ? r.l7_rules : 0;
		fresh->tcp_seen[0] = p.tcp_flags;
		fresh->tcp_reported[0] = p.tcp_flags & TCP_REPORT_FLAGS;
		fresh->expires = now + ct_lifetime(fresh, p.protocol);
		if (p.carry_http)
			fresh->http_slot = sc->carry_slot;
		ct_key_fwd(&key, &p, dir, ifindex);
		bpf_map_update_elem(&weir_ct, &key, fresh, BPF_ANY);
	}

	/* To the proxy: mid-stream, with no proxy socket for it, a connection that began before its
	 * port's rules were gRPC rules (or whose proxy is gone) cannot be handed over now. */
	if (proxy && dir == WEIR_DIR_EGRESS && midstream(&p) && !p.was_proxied && !has_socket)
		return proxy_refuse(skb, &p, &v, &key, now, dir);
	if (dir == WEIR_DIR_INGRESS || !remote_local || proxy) {
		v.obs_point = dir == WEIR_DIR_INGRESS ? WEIR_OBS_TO_ENDPOINT : proxy ? WEIR_OBS_TO_PROXY : WEIR_OBS_TO_STACK;
		emit_event(&p, &v, WEIR_EVENT_TRACE, WEIR_VERDICT_ALLOWED, 0, 1);
	}
	if (proxy && dir == WEIR_DIR_EGRESS) {
		int reason = proxy_pkt(&p) ? WEIR_DROP_SOCKET_ASSIGN_FAILED : weir_proxy_assign(skb);

		if (reason)
			return drop(&p, &v, reason, dir, now, &key);
		return TC_ACT_OK;
	}
	if (p.protocol == IPPROTO_TCP && r.l7_rules && !proxy) {
		/* HTTP rules: the SYN starts the request stream; data on a connection first seen
		 * mid-stream is parsed as the start of a request. */
		struct weir_ct_entry *e = bpf_map_lookup_elem(&weir_ct, &key);

		if (!e)
			return TC_ACT_SHOT;
		return http_packet(skb, &p, &v, e, &key, dir, 0, 1);
	}
	return TC_ACT_OK;
}

SEC("classifier")
int from_container(struct __sk_buff *skb)
{
	return handle(skb, WEIR_DIR_EGRESS);
}

SEC("classifier")
int to_container(struct __sk_buff *skb)
{
	return handle(skb, WEIR_DIR_INGRESS);
}

SEC("classifier")
int from_netdev(struct __sk_buff *skb)
{
	return handle_netdev(skb);
}
