// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The endpoint datapath: attached by TCX to the host side of every local endpoint's veth.
 *
 *   from_container  TC ingress of the host-side veth: packets the endpoint sends (its egress)
 *   to_container    TC egress of the host-side veth: packets delivered to it (its ingress)
 *
 * Both identify the endpoint by ifindex, parse the packet, follow connection tracking for
 * established connections and replies, evaluate policy for new connections, and report
 * verdicts on the weir_events ring buffer. docs/life-of-a-flow.md walks through it.
 */
#include "lib/common.h"
#include "lib/conntrack.h"
#include "lib/events.h"
#include "lib/ipcache.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/policy.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline int drop(const struct pkt *p, struct verdict_ctx *v, __u16 reason, __u8 dir, __u64 now)
{
	struct weir_ct_key flow;
	__u32 count;

	ct_key_fwd(&flow, p, dir);
	count = drop_aggregate(&flow, now);
	if (count)
		emit_event(p, v, WEIR_EVENT_DROP, WEIR_VERDICT_DENIED, reason, count, now);
	return TC_ACT_SHOT;
}

static __always_inline int handle(struct __sk_buff *skb, __u8 dir)
{
	struct pkt p = {};
	struct verdict_ctx v = {};
	struct policy_result r = {};
	struct weir_ct_key key;
	struct weir_ct_entry *e;
	struct weir_endpoint *ep;
	struct weir_endpoint_slot *eps;
	struct weir_config *cfg;
	struct weir_ipcache_value *ipc;
	__u32 ifindex = skb->ifindex;
	__u32 zero = 0, gen = 0, local_id, remote_id, count;
	__u64 now;
	__u8 slot, remote_local;
	int ret;

	ret = parse_packet(skb, &p);
	if (ret == PARSE_NOT_IP)
		return TC_ACT_OK;
	if (p.ndp)
		return TC_ACT_OK;

	now = bpf_ktime_get_boot_ns();
	v.ifindex = ifindex;
	v.direction = dir;
	v.obs_point = dir == WEIR_DIR_EGRESS ? WEIR_OBS_FROM_ENDPOINT : WEIR_OBS_TO_ENDPOINT;

	cfg = bpf_map_lookup_elem(&weir_config, &zero);
	if (cfg)
		gen = cfg->policy_gen;
	slot = gen & 1;

	/* Fail closed: an interface we are attached to but know nothing about drops. */
	ep = bpf_map_lookup_elem(&weir_endpoints, &ifindex);
	if (!ep)
		return drop(&p, &v, WEIR_DROP_EP_NOT_READY, dir, now);
	eps = &ep->slot[slot];
	v.ep_id = ep->ep_id;
	local_id = eps->identity;
	if (dir == WEIR_DIR_EGRESS)
		v.src_identity = local_id;
	else
		v.dst_identity = local_id;
	if (local_id == 0)
		return drop(&p, &v, WEIR_DROP_EP_NOT_READY, dir, now);
	if (ret < 0)
		return drop(&p, &v, -ret, dir, now);
	if (dir == WEIR_DIR_EGRESS && !source_is_endpoint(ep, &p, slot))
		return drop(&p, &v, WEIR_DROP_INVALID_SOURCE_IP, dir, now);

	/* Established: an entry in this direction, taken in the current policy generation. */
	ct_key_fwd(&key, &p, dir);
	e = bpf_map_lookup_elem(&weir_ct, &key);
	if (e && e->expires_ns > now) {
		int reopen = p.protocol == IPPROTO_TCP && (p.tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN && ct_closing(e);

		if (e->policy_gen == gen && !reopen) {
			ct_update(e, &p, 0, now);
			if (dir == WEIR_DIR_INGRESS || !(e->flags & WEIR_CT_REMOTE_LOCAL)) {
				count = ct_trace_due(e, &p, 0, now);
				if (count) {
					v.rule_set = e->rule_set;
					v.match_type = e->match_type;
					v.audit = (e->flags & WEIR_CT_AUDIT) != 0;
					v.trace_reason = WEIR_TRACE_ESTABLISHED;
					v.obs_point = dir == WEIR_DIR_EGRESS ? WEIR_OBS_TO_STACK : WEIR_OBS_TO_ENDPOINT;
					if (dir == WEIR_DIR_EGRESS)
						v.dst_identity = e->remote_identity;
					else
						v.src_identity = e->remote_identity;
					emit_event(&p, &v, WEIR_EVENT_TRACE, WEIR_VERDICT_ALLOWED, 0, count, now);
				}
			}
			return TC_ACT_OK;
		}
		/* Policy changed since the decision (or the port is reused): decide again. */
		bpf_map_delete_elem(&weir_ct, &key);
	}

	/* Reply: an entry of the opposite direction, created for the packet's peer. */
	ct_key_rev(&key, &p, dir);
	e = bpf_map_lookup_elem(&weir_ct, &key);
	if (e && e->expires_ns > now) {
		ct_update(e, &p, 1, now);
		if (dir == WEIR_DIR_INGRESS || !(e->flags & WEIR_CT_REMOTE_LOCAL)) {
			count = ct_trace_due(e, &p, 1, now);
			if (count) {
				v.rule_set = e->rule_set;
				v.match_type = e->match_type;
				v.direction = opposite(dir);
				v.reply = 1;
				v.trace_reason = WEIR_TRACE_REPLY;
				v.obs_point = dir == WEIR_DIR_EGRESS ? WEIR_OBS_TO_STACK : WEIR_OBS_TO_ENDPOINT;
				if (dir == WEIR_DIR_EGRESS)
					v.dst_identity = e->remote_identity;
				else
					v.src_identity = e->remote_identity;
				emit_event(&p, &v, WEIR_EVENT_TRACE, WEIR_VERDICT_ALLOWED, 0, count, now);
			}
		}
		return TC_ACT_OK;
	}

	/* Related: an ICMP error about a tracked connection. */
	if (p.related) {
		p.inner.direction = opposite(dir);
		e = bpf_map_lookup_elem(&weir_ct, &p.inner);
		if (e && e->expires_ns > now) {
			if (dir == WEIR_DIR_INGRESS || !(e->flags & WEIR_CT_REMOTE_LOCAL)) {
				v.rule_set = e->rule_set;
				v.direction = opposite(dir);
				v.reply = 1;
				v.trace_reason = WEIR_TRACE_RELATED;
				v.obs_point = dir == WEIR_DIR_EGRESS ? WEIR_OBS_TO_STACK : WEIR_OBS_TO_ENDPOINT;
				if (dir == WEIR_DIR_EGRESS)
					v.dst_identity = e->remote_identity;
				else
					v.src_identity = e->remote_identity;
				emit_event(&p, &v, WEIR_EVENT_TRACE, WEIR_VERDICT_ALLOWED, 0, 1, now);
			}
			return TC_ACT_OK;
		}
	}

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
		ct_key_fwd(&key, &p, dir);
		count = drop_aggregate(&key, now);
		if (count) {
			if (r.enforced && weir_runtime.policy_verdict_events)
				emit_event(&p, &v, WEIR_EVENT_POLICY_VERDICT, WEIR_VERDICT_DENIED, r.drop_reason, count, now);
			emit_event(&p, &v, WEIR_EVENT_DROP, WEIR_VERDICT_DENIED, r.drop_reason, count, now);
		}
		return TC_ACT_SHOT;
	}

	v.audit = r.drop_reason != 0;
	if (r.enforced && weir_runtime.policy_verdict_events)
		emit_event(&p, &v, WEIR_EVENT_POLICY_VERDICT,
			   r.drop_reason ? WEIR_VERDICT_DENIED : WEIR_VERDICT_ALLOWED, r.drop_reason, 1, now);

	{
		struct weir_ct_entry fresh = {
			.created_ns = now,
			.last_report_ns = { now, 0 },
			.packets = { 1, 0 },
			.bytes = { p.len, 0 },
			.policy_gen = gen,
			.rule_set = r.rule_set,
			.remote_identity = remote_id,
			.flags = (remote_local ? WEIR_CT_REMOTE_LOCAL : 0) | (v.audit ? WEIR_CT_AUDIT : 0),
			.match_type = r.match_type,
			.tcp_seen = { p.tcp_flags, 0 },
			.tcp_reported = { p.tcp_flags & TCP_REPORT_FLAGS, 0 },
		};

		fresh.expires_ns = now + ct_lifetime(&fresh, p.protocol);
		ct_key_fwd(&key, &p, dir);
		bpf_map_update_elem(&weir_ct, &key, &fresh, BPF_ANY);
	}

	if (dir == WEIR_DIR_INGRESS || !remote_local) {
		v.obs_point = dir == WEIR_DIR_EGRESS ? WEIR_OBS_TO_STACK : WEIR_OBS_TO_ENDPOINT;
		emit_event(&p, &v, WEIR_EVENT_TRACE, WEIR_VERDICT_ALLOWED, 0, 1, now);
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
