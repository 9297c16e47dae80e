/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Policy lookup: the identity's longest match, else the any-identity longest match, else the
 * endpoint's default for the direction (weir_policy::compiled documents the contract). */
#ifndef WEIR_POLICY_H
#define WEIR_POLICY_H

#include "common.h"
#include "maps.h"

struct policy_result {
	__u32 rule_set;
	__u32 l7_rules;
	__u16 drop_reason;   /* 0: allowed */
	__u8 match_type;
	__u8 audit;          /* the deciding entry is in audit mode: report, forward */
	__u8 enforced;       /* the endpoint has policy in this direction */
	__u8 proxy;          /* l7_rules are enforced by the agent's L7 proxy (gRPC) */
	__u8 reserved[2];
};

static __always_inline void policy_lookup(__u8 slot, __u8 dir, __u32 ep_id, const struct weir_endpoint_slot *eps,
					  __u32 identity, __u8 protocol, __u16 port, struct policy_result *r)
{
	struct weir_policy_key k = {
		.prefixlen = WEIR_POLICY_FULL_BITS,
		.slot = slot,
		.direction = dir,
		.ep_id = ep_id,
		.identity = identity,
		.protocol = protocol,
		.dport = { port >> 8, port & 0xff },
	};
	struct weir_policy_value *v;
	__u32 enforce_flag = dir == WEIR_DIR_INGRESS ? WEIR_EP_ENFORCE_INGRESS : WEIR_EP_ENFORCE_EGRESS;

	r->enforced = (eps->flags & enforce_flag) != 0;
	v = bpf_map_lookup_elem(&weir_policy, &k);
	if (!v) {
		k.identity = 0;
		v = bpf_map_lookup_elem(&weir_policy, &k);
	}
	if (v) {
		r->rule_set = v->rule_set;
		r->l7_rules = v->l7_rules;
		r->match_type = v->match_type;
		r->audit = (v->flags & WEIR_POLICY_AUDIT) != 0;
		r->drop_reason = (v->flags & WEIR_POLICY_DENY) ? WEIR_DROP_POLICY_DENY : 0;
		r->proxy = (v->flags & WEIR_POLICY_L7_PROXY) != 0;
		return;
	}
	r->l7_rules = 0;
	r->match_type = 0;
	r->audit = 0;
	r->proxy = 0;
	if (r->enforced) {
		r->rule_set = dir == WEIR_DIR_INGRESS ? eps->ingress_selecting : eps->egress_selecting;
		r->drop_reason = WEIR_DROP_POLICY_DENIED;
	} else {
		r->rule_set = 0;
		r->drop_reason = 0;
	}
}

/* Whether local endpoint `ep_id` sends new TCP connections from `identity` to `port` through the
 * L7 proxy at its ingress: the decision is taken at the client's hook, where the connection can
 * be handed over (bpf_sk_assign works at TC ingress only). */
static __always_inline int ingress_proxied(__u8 slot, __u32 ep_id, __u32 identity, __u16 port)
{
	struct weir_policy_key k = {
		.prefixlen = WEIR_POLICY_FULL_BITS,
		.slot = slot,
		.direction = WEIR_DIR_INGRESS,
		.ep_id = ep_id,
		.identity = identity,
		.protocol = IPPROTO_TCP,
		.dport = { port >> 8, port & 0xff },
	};
	struct weir_policy_value *v = bpf_map_lookup_elem(&weir_policy, &k);

	if (!v) {
		k.identity = 0;
		v = bpf_map_lookup_elem(&weir_policy, &k);
	}
	return v && (v->flags & (WEIR_POLICY_L7_PROXY | WEIR_POLICY_DENY)) == WEIR_POLICY_L7_PROXY;
}

#endif /* WEIR_POLICY_H */
