/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Hand-over of connections whose rules the agent's L7 proxy enforces (gRPC, docs/l7.md).
 *
 * At the client's from_container (TC ingress of its veth, the only TC hook where bpf_sk_assign
 * works), the SYN of a proxied connection is assigned to the proxy's listener, which the agent
 * registers in weir_proxy_listener, and every packet the client sends on it is marked
 * WEIR_MARK_TO_PROXY, which the node's routing delivers locally (to the accepted socket, whose
 * local address is the original destination). The proxy connects to the server from the
 * client's address with SO_MARK WEIR_MARK_FROM_PROXY; the server's to_container allows such a
 * connection at L3/L4 without parsing it, and its from_container marks the server's replies so
 * they reach the proxy's upstream socket instead of the client. */
#ifndef WEIR_PROXY_H
#define WEIR_PROXY_H

#include "common.h"
#include "conntrack.h"
#include "events.h"
#include "http_policy.h"
#include "maps.h"

static __always_inline void mark_to_proxy(struct __sk_buff *skb)
{
	skb->mark = (skb->mark & ~WEIR_MARK_MAGIC_MASK) | WEIR_MARK_TO_PROXY;
}

static __always_inline int from_proxy(const struct __sk_buff *skb)
{
	return (skb->mark & WEIR_MARK_MAGIC_MASK) == WEIR_MARK_FROM_PROXY;
}

/* A TCP packet that is not a connection's first SYN. */
static __always_inline int midstream(const struct pkt *p)
{
	return (p->tcp_flags & (TCP_SYN | TCP_ACK)) != TCP_SYN;
}

/* An existing socket in the node's namespace with the packet's exact tuple (a retransmitted
 * SYN whose request socket exists): the stack finds it by itself. TIME_WAIT does not count. */
static __always_inline int proxy_has_socket(struct __sk_buff *skb, const struct pkt *p)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	int found;

	if (p->family == 4) {
		t.ipv4.saddr = p->saddr[0];
		t.ipv4.daddr = p->daddr[0];
		t.ipv4.sport = bpf_htons(p->sport);
		t.ipv4.dport = bpf_htons(p->dport);
		sk = bpf_skc_lookup_tcp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	} else {
		__builtin_memcpy(t.ipv6.saddr, p->saddr, 16);
		__builtin_memcpy(t.ipv6.daddr, p->daddr, 16);
		t.ipv6.sport = bpf_htons(p->sport);
		t.ipv6.dport = bpf_htons(p->dport);
		sk = bpf_skc_lookup_tcp(skb, &t, sizeof(t.ipv6), BPF_F_CURRENT_NETNS, 0);
	}
	if (!sk)
		return 0;
	found = sk->state != BPF_TCP_TIME_WAIT && sk->state != BPF_TCP_LISTEN;
	bpf_sk_release(sk);
	return found;
}

/* A packet the client sends on a proxied connection (at its from_container). Returns 0 (pass,
 * marked for local delivery) or a WEIR_DROP_* reason: no proxy listener (the agent is down:
 * fail closed), or the hand-over failed. */
static __always_inline int to_proxy(struct __sk_buff *skb, const struct pkt *p)
{
	__u32 key = p->family == 4 ? WEIR_PROXY_LISTENER_V4 : WEIR_PROXY_LISTENER_V6;
	struct bpf_sock *sk;
	long err;

	mark_to_proxy(skb);
	/* Later packets reach the proxy's socket through the local route (a packet for which the
	 * node has no socket is dropped there: the node sends no RST from an address it does not
	 * own; proxy_refuse answers connections found without one). */
	if (midstream(p))
		return 0;
	if (proxy_has_socket(skb, p))
		return 0;
	sk = bpf_map_lookup_elem(&weir_proxy_listener, &key);
	if (!sk)
		return WEIR_DROP_SOCKET_LOOKUP_FAILED;
	err = bpf_sk_assign(skb, sk, 0);
	bpf_sk_release(sk);
	return err ? WEIR_DROP_SOCKET_ASSIGN_FAILED : 0;
}

/* The proxy's socket work runs in global functions, verified once each, on the packet the
 * caller copied into the scratch map (proxy_pkt): inlined at every call site, it multiplied
 * the states the verifier follows through handle(). */
static __always_inline int proxy_pkt(const struct pkt *p)
{
	__u32 zero = 0;
	struct http_scratch *sc = bpf_map_lookup_elem(&weir_http_scratch, &zero);

	if (!sc)
		return -1;
	__builtin_memcpy(&sc->pkt, p, sizeof(sc->pkt));
	return 0;
}

/* proxy_has_socket for the packet in the scratch map. */
__attribute__((noinline)) int weir_proxy_socket(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct http_scratch *sc;

	if (!skb)
		return 0;
	sc = bpf_map_lookup_elem(&weir_http_scratch, &zero);
	if (!sc)
		return 0;
	return proxy_has_socket(skb, &sc->pkt);
}

/* to_proxy for the packet in the scratch map. */
__attribute__((noinline)) int weir_proxy_assign(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct http_scratch *sc;

	if (!skb)
		return WEIR_DROP_SOCKET_ASSIGN_FAILED;
	sc = bpf_map_lookup_elem(&weir_http_scratch, &zero);
	if (!sc)
		return WEIR_DROP_SOCKET_ASSIGN_FAILED;
	return to_proxy(skb, &sc->pkt);
}

/* Refuses a connection the proxy cannot take over mid-stream (the first packet its new CT
 * entry sees is not a SYN and no proxy socket has its tuple): the client gets a RST, the
 * packet itself becomes a RST to the server (as for an HTTP connection older than its rules),
 * and the CT entry expires soon so the client's next connection is decided afresh. A RST from
 * the client passes unchanged. `dir`: the hook's, egress at a local client's from_container
 * (the client's RST goes back to it), ingress at the server's to_container for a client
 * elsewhere (the client's RST enters the node as if the server had sent it). */
static __always_inline int proxy_refuse(struct __sk_buff *skb, const struct pkt *p, struct verdict_ctx *v,
					struct weir_ct_key *key, __u64 now, __u8 dir)
{
	struct http_scratch *sc;
	struct weir_ct_entry *e;
	__u32 zero = 0;

	if (p->tcp_flags & TCP_RST)
		return TC_ACT_OK;
	e = bpf_map_lookup_elem(&weir_ct, key);
	if (e) {
		e->flags |= WEIR_CT_RST;
		e->expires = now + weir_runtime.ct_lifetime_close_jiffies;
	}
	emit_event(p, v, WEIR_EVENT_DROP, WEIR_VERDICT_DENIED, WEIR_DROP_PROXY_UNSUPPORTED, 1);
	sc = bpf_map_lookup_elem(&weir_http_scratch, &zero);
	if (!sc)
		return TC_ACT_SHOT;
	return reset_both(skb, sc, p, dir);
}

#endif /* WEIR_PROXY_H */
