/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Connection tracking: one weir_ct entry per connection and enforcement point, keyed by the
 * tuple in the connection's original direction and the direction of the point that created
 * it. Expired entries count as absent; the agent's GC deletes them. */
#ifndef WEIR_CONNTRACK_H
#define WEIR_CONNTRACK_H

#include "common.h"
#include "events.h"
#include "maps.h"

static __always_inline __u8 opposite(__u8 dir)
{
	return dir == WEIR_DIR_INGRESS ? WEIR_DIR_EGRESS : WEIR_DIR_INGRESS;
}

static __always_inline void ct_key_fwd(struct weir_ct_key *k, const struct pkt *p, __u8 dir, __u32 ifindex)
{
	copy_addr(k->saddr, p->saddr);
	copy_addr(k->daddr, p->daddr);
	k->sport = p->sport;
	k->dport = p->dport;
	k->protocol = p->protocol;
	k->direction = dir;
	k->family = p->family;
	k->reserved_0 = 0;
	k->ifindex = ifindex;
}

/* The key of the connection this packet would be a reply to. */
static __always_inline void ct_key_rev(struct weir_ct_key *k, const struct pkt *p, __u8 dir, __u32 ifindex)
{
	copy_addr(k->saddr, p->daddr);
	copy_addr(k->daddr, p->saddr);
	k->sport = p->dport;
	k->dport = p->sport;
	k->protocol = p->protocol;
	k->direction = opposite(dir);
	k->family = p->family;
	k->reserved_0 = 0;
	k->ifindex = ifindex;
}

static __always_inline __u64 ct_lifetime(const struct weir_ct_entry *e, __u8 protocol)
{
	if (protocol != IPPROTO_TCP)
		return weir_runtime.ct_lifetime_other_jiffies;
	if ((e->flags & WEIR_CT_RST) ||
	    (e->flags & (WEIR_CT_CLOSING_FWD | WEIR_CT_CLOSING_REV)) == (WEIR_CT_CLOSING_FWD | WEIR_CT_CLOSING_REV))
		return weir_runtime.ct_lifetime_close_jiffies;
	if (e->flags & WEIR_CT_SEEN_REPLY)
		return weir_runtime.ct_lifetime_tcp_jiffies;
	return weir_runtime.ct_lifetime_syn_jiffies;
}

/* Accounts a packet of an existing connection; d = 0 original direction, 1 reply. */
static __always_inline void ct_update(struct weir_ct_entry *e, const struct pkt *p, int d, __u64 now)
{
	d &= 1;
	e->packets[d] += 1;
	e->bytes[d] += p->len;
	e->unreported[d] += 1;
	if (d)
		e->flags |= WEIR_CT_SEEN_REPLY;
	if (p->protocol == IPPROTO_TCP) {
		e->tcp_seen[d] |= p->tcp_flags;
		if (p->tcp_flags & TCP_FIN)
			e->flags |= d ? WEIR_CT_CLOSING_REV : WEIR_CT_CLOSING_FWD;
		if (p->tcp_flags & TCP_RST)
			e->flags |= WEIR_CT_RST;
	}
	e->expires = now + ct_lifetime(e, p->protocol);
}

static __always_inline int ct_closing(const struct weir_ct_entry *e)
{
	return e->flags & (WEIR_CT_CLOSING_FWD | WEIR_CT_CLOSING_REV | WEIR_CT_RST);
}

/* The endpoint and the packet's source and destination identities of a tracked connection, for
 * its events. Returns 0 when the interface has no endpoint. */
static __always_inline int tracked_parties(struct verdict_ctx *v, const struct weir_ct_entry *e, __u8 dir, __u8 slot)
{
	struct weir_endpoint *ep;
	__u32 ifindex = v->ifindex;

	ep = bpf_map_lookup_elem(&weir_endpoints, &ifindex);
	if (!ep)
		return 0;
	v->ep_id = ep->ep_id;
	v->rule_set = e->rule_set;
	v->match_type = e->match_type;
	v->audit = (e->flags & WEIR_CT_AUDIT) != 0;
	v->obs_point = dir == WEIR_DIR_EGRESS ? WEIR_OBS_TO_STACK : WEIR_OBS_TO_ENDPOINT;
	if (dir == WEIR_DIR_EGRESS) {
		v->src_identity = ep->slot[slot & 1].identity;
		v->dst_identity = e->remote_identity;
	} else {
		v->src_identity = e->remote_identity;
		v->dst_identity = ep->slot[slot & 1].identity;
	}
	return 1;
}

/* Monitor aggregation: a trace on a connection's first packet in each direction, on SYN/FIN/RST
 * not reported yet, and otherwise at most once per trace interval. Returns the number of packets
 * the trace stands for, or 0 when none is due. */
static __always_inline __u32 ct_trace_due(struct weir_ct_entry *e, const struct pkt *p, int d, __u64 now)
{
	__u8 report = p->tcp_flags & TCP_REPORT_FLAGS;
	__u32 count;

	d &= 1;
	if (weir_runtime.trace_interval_jiffies != 0 && e->last_report[d] != 0 &&
	    !(report & ~e->tcp_reported[d]) &&
	    now - e->last_report[d] < weir_runtime.trace_interval_jiffies)
		return 0;
	count = e->unreported[d];
	e->unreported[d] = 0;
	e->last_report[d] = now;
	e->tcp_reported[d] |= report;
	return count ? count : 1;
}

#endif /* WEIR_CONNTRACK_H */
