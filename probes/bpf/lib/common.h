/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Includes, helpers and the parsed-packet type shared by every weir program. */
#ifndef WEIR_COMMON_H
#define WEIR_COMMON_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "weir/abi.h"

#ifndef IPPROTO_ICMPV6
#define IPPROTO_ICMPV6 58
#endif

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10
/* Flags that always produce a trace, whatever the aggregation interval (Cilium's default
 * monitor-aggregation-flags). */
#define TCP_REPORT_FLAGS (TCP_SYN | TCP_FIN | TCP_RST)

/* A parsed packet. Addresses are kept as 4 words so copies and compares stay cheap. */
struct pkt {
	__u32 saddr[4];
	__u32 daddr[4];
	__u16 sport;          /* host order; ICMP echo: identifier */
	__u16 dport;          /* host order */
	__u16 policy_port;    /* port used for the policy lookup: dport, or ICMP type */
	__u8 family;          /* 4 or 6 */
	__u8 protocol;
	__u8 tcp_flags;
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 fragment;        /* 1: non-first fragment, 2: first fragment of several */
	__u8 related;         /* ICMP error: `inner` holds the offending packet's tuple */
	__u8 ipv6_control;    /* ICMPv6 NDP/MLD: always allowed, never reported */
	__u8 was_proxied;     /* connection tracking dropped a stale entry that went through the
			       * L7 proxy (set by handle_tracked) */
	__u8 carry_http;      /* ... and that entry's HTTP slot is in weir_http_scratch's carry_slot */
	__u32 frag_id;
	__u32 len;
	/* TCP only: sequence numbers and where the payload lies in the packet. */
	__u32 seq;            /* host order */
	__u32 ack;            /* host order */
	__u32 l3_end;         /* end of the IP datagram (Ethernet padding excluded) */
	__u16 l4_off;
	__u16 payload_off;
	__u32 payload_len;
	/* Only written (completely) by the parser for ICMP errors, when `related` is set: left
	 * out of the initialisation of the rest. */
	struct weir_ct_key inner; /* for ICMP errors: original tuple, in the sender's view */
};

/* A packet before parsing: everything but `inner` is zero. */
#define PKT_INIT(p) __builtin_memset(&(p), 0, __builtin_offsetof(struct pkt, inner))

static __always_inline void copy_addr(__u8 *dst, const __u32 *src)
{
	__builtin_memcpy(dst, src, 16);
}

static __always_inline int addr_eq(const __u32 *a, const __u8 *b)
{
	const __u32 *w = (const __u32 *)b;
	return a[0] == w[0] && a[1] == w[1] && a[2] == w[2] && a[3] == w[3];
}

#endif /* WEIR_COMMON_H */
