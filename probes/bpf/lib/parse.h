/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Packet parsing: Ethernet, IPv4/IPv6 (extension headers, fragments), TCP/UDP/SCTP/ICMP. */
#ifndef WEIR_PARSE_H
#define WEIR_PARSE_H

#include "common.h"
#include "maps.h"

#define PARSE_OK     0
#define PARSE_NOT_IP 1 /* ARP and other non-IP frames: not ours to police */

/* Bytes made linear before parsing: enough for every header we read. */
#define PARSE_PULL_LEN 192
/* Largest offset of an L4 header we follow. */
#define PARSE_MAX_L4_OFF 256
#define IPV6_MAX_EXT_HDRS 6

#define NEXTHDR_HOP      0
#define NEXTHDR_ROUTING  43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_AUTH     51
#define NEXTHDR_DEST     60

#define ICMP_ECHOREPLY   0
#define ICMP_DEST_UNREACH 3
#define ICMP_SOURCE_QUENCH 4
#define ICMP_ECHO        8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12

#define ICMPV6_DEST_UNREACH 1
#define ICMPV6_PKT_TOOBIG   2
#define ICMPV6_TIME_EXCEED  3
#define ICMPV6_PARAMPROB    4
#define ICMPV6_ECHO_REQUEST 128
#define ICMPV6_ECHO_REPLY   129
#define ICMPV6_MLD_QUERY    130 /* multicast listener query, report, done (132) */
#define ICMPV6_MLD_DONE     132
#define ICMPV6_NDP_FIRST    133 /* router solicitation .. redirect (137) */
#define ICMPV6_NDP_LAST     137
#define ICMPV6_MLD2_REPORT  143

/* Neighbour discovery and multicast listener discovery: link-local control traffic IPv6
 * cannot work without; always allowed, never reported (as in Cilium). */
static __always_inline int is_icmpv6_control(__u8 type)
{
	return (type >= ICMPV6_MLD_QUERY && type <= ICMPV6_NDP_LAST) || type == ICMPV6_MLD2_REPORT;
}

static __always_inline int is_icmp_echo(__u8 family, __u8 type)
{
	if (family == 4)
		return type == ICMP_ECHO || type == ICMP_ECHOREPLY;
	return type == ICMPV6_ECHO_REQUEST || type == ICMPV6_ECHO_REPLY;
}

static __always_inline int is_icmp_error(__u8 family, __u8 type)
{
	if (family == 4)
		return type == ICMP_DEST_UNREACH || type == ICMP_SOURCE_QUENCH ||
		       type == ICMP_TIME_EXCEEDED || type == ICMP_PARAMETERPROB;
	return type >= ICMPV6_DEST_UNREACH && type <= ICMPV6_PARAMPROB;
}

/* Reads the first 4 bytes of an L4 header (ports, or ICMP type/code + echo id at +4). */
static __always_inline int parse_inner(void *data, void *data_end, __u32 off, struct pkt *p)
{
	struct weir_ct_key *in = &p->inner;
	__u32 l4off;
	__u8 proto;

	if (off > PARSE_MAX_L4_OFF)
		return -WEIR_DROP_CT_INVALID_HDR;
	if (p->family == 4) {
		struct iphdr *ip4 = data + off;
		if ((void *)(ip4 + 1) > data_end)
			return -WEIR_DROP_CT_INVALID_HDR;
		in->family = 4;
		__builtin_memset(in->saddr, 0, 16);
		__builtin_memset(in->daddr, 0, 16);
		__builtin_memcpy(in->saddr, &ip4->saddr, 4);
		__builtin_memcpy(in->daddr, &ip4->daddr, 4);
		proto = ip4->protocol;
		l4off = off + ((__u32)ip4->ihl & 0xf) * 4;
	} else {
		struct ipv6hdr *ip6 = data + off;
		if ((void *)(ip6 + 1) > data_end)
			return -WEIR_DROP_CT_INVALID_HDR;
		in->family = 6;
		__builtin_memcpy(in->saddr, &ip6->saddr, 16);
		__builtin_memcpy(in->daddr, &ip6->daddr, 16);
		proto = ip6->nexthdr;
		l4off = off + sizeof(*ip6);
	}
	in->protocol = proto;
	in->sport = 0;
	in->dport = 0;
	in->direction = 0;
	in->reserved_0 = 0;
	in->ifindex = 0;
	if (l4off > PARSE_MAX_L4_OFF + 60)
		return -WEIR_DROP_CT_INVALID_HDR;
	__u8 *l4 = data + l4off;
	if ((void *)(l4 + 8) > data_end)
		return PARSE_OK; /* ICMP errors may quote fewer bytes: keep the L3 tuple */
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP) {
		in->sport = ((__u16)l4[0] << 8) | l4[1];
		in->dport = ((__u16)l4[2] << 8) | l4[3];
	} else if ((proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) && is_icmp_echo(in->family, l4[0])) {
		in->sport = ((__u16)l4[4] << 8) | l4[5];
		in->dport = in->sport;
	}
	p->related = 1;
	return PARSE_OK;
}

static __always_inline int parse_l4(void *data, void *data_end, __u32 off, struct pkt *p)
{
	__u8 *l4;

	if (off > PARSE_MAX_L4_OFF)
		return -WEIR_DROP_CT_INVALID_HDR;
	l4 = data + off;
	switch (p->protocol) {
	case IPPROTO_TCP:
		if ((void *)(l4 + 20) > data_end)
			return -WEIR_DROP_CT_INVALID_HDR;
		p->sport = ((__u16)l4[0] << 8) | l4[1];
		p->dport = ((__u16)l4[2] << 8) | l4[3];
		p->tcp_flags = l4[13];
		p->policy_port = p->dport;
		p->seq = ((__u32)l4[4] << 24) | ((__u32)l4[5] << 16) | ((__u32)l4[6] << 8) | l4[7];
		p->ack = ((__u32)l4[8] << 24) | ((__u32)l4[9] << 16) | ((__u32)l4[10] << 8) | l4[11];
		p->l4_off = off;
		p->payload_off = off + ((__u32)(l4[12] >> 4)) * 4;
		if (((__u32)(l4[12] >> 4)) < 5 || p->payload_off > p->l3_end)
			return -WEIR_DROP_CT_INVALID_HDR;
		p->payload_len = p->l3_end - p->payload_off;
		break;
	case IPPROTO_UDP:
	case IPPROTO_SCTP:
		if ((void *)(l4 + 8) > data_end)
			return -WEIR_DROP_CT_INVALID_HDR;
		p->sport = ((__u16)l4[0] << 8) | l4[1];
		p->dport = ((__u16)l4[2] << 8) | l4[3];
		p->policy_port = p->dport;
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		if ((p->protocol == IPPROTO_ICMP) != (p->family == 4))
			return -WEIR_DROP_INVALID_PACKET;
		if ((void *)(l4 + 8) > data_end)
			return -WEIR_DROP_CT_INVALID_HDR;
		p->icmp_type = l4[0];
		p->icmp_code = l4[1];
		p->policy_port = p->icmp_type;
		if (is_icmp_echo(p->family, p->icmp_type)) {
			p->sport = ((__u16)l4[4] << 8) | l4[5];
			p->dport = p->sport;
		} else if (p->family == 6 && is_icmpv6_control(p->icmp_type)) {
			p->ipv6_control = 1;
		} else if (is_icmp_error(p->family, p->icmp_type)) {
			return parse_inner(data, data_end, off + 8, p);
		}
		break;
	default:
		/* Other protocols carry no ports: only L3 and protocol-wide rules can match. */
		break;
	}
	return PARSE_OK;
}

/* Non-first fragments carry no L4 header: take the ports the first fragment recorded. */
static __always_inline int frag_key(struct weir_frag_key *k, const struct pkt *p)
{
	copy_addr(k->saddr, p->saddr);
	copy_addr(k->daddr, p->daddr);
	k->id = p->frag_id;
	k->protocol = p->protocol;
	k->family = p->family;
	k->reserved_0 = 0;
	return 0;
}

static __always_inline int parse_fragment(struct pkt *p)
{
	struct weir_frag_key k;
	struct weir_frag_value *v;

	frag_key(&k, p);
	if (p->fragment == 2) {
		struct weir_frag_value nv = {
			.sport = p->sport,
			.dport = p->dport,
			.tcp_flags = p->tcp_flags,
			.icmp_type = p->icmp_type,
			.icmp_code = p->icmp_code,
		};
		bpf_map_update_elem(&weir_frag, &k, &nv, BPF_ANY);
		return PARSE_OK;
	}
	v = bpf_map_lookup_elem(&weir_frag, &k);
	if (!v)
		return -WEIR_DROP_FRAG_NOT_FOUND;
	p->sport = v->sport;
	p->dport = v->dport;
	p->icmp_type = v->icmp_type;
	p->icmp_code = v->icmp_code;
	p->policy_port = (p->protocol == IPPROTO_ICMP || p->protocol == IPPROTO_ICMPV6) ? v->icmp_type : v->dport;
	return PARSE_OK;
}

static __always_inline int parse_packet(struct __sk_buff *skb, struct pkt *p)
{
	void *data, *data_end;
	struct ethhdr *eth;
	__u32 off = sizeof(struct ethhdr);
	int ret;

	if (skb->data_end - skb->data < PARSE_PULL_LEN && skb->len > skb->data_end - skb->data)
		bpf_skb_pull_data(skb, skb->len < PARSE_PULL_LEN ? skb->len : PARSE_PULL_LEN);
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return -WEIR_DROP_CT_INVALID_HDR;
	p->len = skb->len;

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip4 = data + off;
		__u16 frag;
		__u32 ihl;

		if ((void *)(ip4 + 1) > data_end)
			return -WEIR_DROP_CT_INVALID_HDR;
		ihl = ((__u32)ip4->ihl & 0xf) * 4;
		if (ip4->version != 4 || ihl < sizeof(*ip4))
			return -WEIR_DROP_INVALID_PACKET;
		p->family = 4;
		p->protocol = ip4->protocol;
		p->l3_end = off + bpf_ntohs(ip4->tot_len);
		p->saddr[0] = ip4->saddr;
		p->daddr[0] = ip4->daddr;
		frag = bpf_ntohs(ip4->frag_off);
		if (frag & 0x1fff) {
			p->fragment = 1;
			p->frag_id = ip4->id;
			return parse_fragment(p);
		}
		ret = parse_l4(data, data_end, off + ihl, p);
		if (ret == PARSE_OK && (frag & 0x2000)) {
			p->fragment = 2;
			p->frag_id = ip4->id;
			return parse_fragment(p);
		}
		return ret;
	}

	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + off;
		__u8 nexthdr;
		int i;

		if ((void *)(ip6 + 1) > data_end)
			return -WEIR_DROP_CT_INVALID_HDR;
		if (ip6->version != 6)
			return -WEIR_DROP_INVALID_PACKET;
		p->family = 6;
		p->l3_end = off + sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
		__builtin_memcpy(p->saddr, &ip6->saddr, 16);
		__builtin_memcpy(p->daddr, &ip6->daddr, 16);
		nexthdr = ip6->nexthdr;
		off += sizeof(*ip6);

		for (i = 0; i < IPV6_MAX_EXT_HDRS; i++) {
			__u8 *h;

			if (nexthdr != NEXTHDR_HOP && nexthdr != NEXTHDR_ROUTING &&
			    nexthdr != NEXTHDR_DEST && nexthdr != NEXTHDR_AUTH &&
			    nexthdr != NEXTHDR_FRAGMENT)
				break;
			if (off > PARSE_MAX_L4_OFF)
				return -WEIR_DROP_CT_INVALID_HDR;
			h = data + off;
			if ((void *)(h + 8) > data_end)
				return -WEIR_DROP_CT_INVALID_HDR;
			if (nexthdr == NEXTHDR_FRAGMENT) {
				__u16 fo = ((__u16)h[2] << 8) | h[3];
				__u32 id;

				__builtin_memcpy(&id, h + 4, 4);
				nexthdr = h[0];
				off += 8;
				p->frag_id = id;
				if (fo & 0xfff8) {
					p->protocol = nexthdr;
					p->fragment = 1;
					return parse_fragment(p);
				}
				if (fo & 1)
					p->fragment = 2;
				continue;
			}
			if (nexthdr == NEXTHDR_AUTH)
				off += ((__u32)h[1] + 2) * 4;
			else
				off += ((__u32)h[1] + 1) * 8;
			nexthdr = h[0];
		}
		p->protocol = nexthdr;
		ret = parse_l4(data, data_end, off, p);
		if (ret == PARSE_OK && p->fragment == 2)
			return parse_fragment(p);
		return ret;
	}

	return PARSE_NOT_IP;
}

#endif /* WEIR_PARSE_H */
