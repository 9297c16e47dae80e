/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * HTTP policy on a tracked connection: runs the parser (http.h) over each data segment,
 * decides every complete request head against the connection's rule set, reports requests and
 * responses as L7 events, and answers a denied request itself: the client receives
 * "403 Forbidden" with "Connection: close" and a FIN, the server a RST, so neither side keeps a
 * half-open connection and the client has nothing to retransmit.
 */
#ifndef WEIR_HTTP_POLICY_H
#define WEIR_HTTP_POLICY_H

#include "common.h"
#include "conntrack.h"
#include "events.h"
#include "http.h"
#include "maps.h"

/* Runs of the byte loop per segment: with HTTP_RUN_STEPS steps each, a segment may take 1 024
 * steps (a step ends after 32 bytes or where the fast path takes over); one that needs more is
 * refused (fail closed). */
#define HTTP_MAX_RUNS 32

const volatile struct weir_l7_event weir_l7_event_layout = { .flow = { .version = WEIR_EVENT_VERSION } };

static __always_inline __u32 lowest_bit(__u64 x)
{
	__u32 n = 0;

	if (!(x & 0xffffffffULL)) { n += 32; x >>= 32; }
	if (!(x & 0xffff)) { n += 16; x >>= 16; }
	if (!(x & 0xff)) { n += 8; x >>= 8; }
	if (!(x & 0xf)) { n += 4; x >>= 4; }
	if (!(x & 0x3)) { n += 2; x >>= 2; }
	if (!(x & 0x1)) { n += 1; }
	return n;
}

/* The rules of the set that allow the request whose head just completed. */
static __always_inline __u64 http_allowed(const struct http_scratch *sc)
{
	const struct weir_http_parser *ps = &sc->conn.req;
	struct weir_http_set *set;
	__u32 idx = sc->set_index;
	__u64 failed = 0, seen = ps->seen;
	int k;

	set = bpf_map_lookup_elem(&weir_http_sets, &idx);
	if (!set)
		return 0;
	/* Requirements are numbered from 0 without gaps and each is needed by a rule: the first
	 * empty `needs` ends them (most sets have none). */
	for (k = 0; k < WEIR_HTTP_MAX_REQS; k++) {
		__u64 rules = set->needs[k];

		if (!rules)
			break;
		failed |= rules & (((seen >> k) & 1) - 1);
	}
	return ps->method_mask & ps->path_mask & set->rule_bits & ~failed;
}

/* The header of a request's record. */
static __always_inline void l7_request_header(struct weir_l7_event *ev, const struct http_scratch *sc, __u8 verdict,
					      __u16 drop_reason, __u32 rule, __u32 number, __u16 status, __u64 now,
					      __u32 line, __u32 host, __u32 hdrs)
{
	__builtin_memcpy(&ev->flow, &sc->tmpl, sizeof(ev->flow));
	ev->flow.verdict = verdict;
	ev->flow.drop_reason = drop_reason;
	ev->flow.ts_boot_ns = now;
	ev->l7_type = WEIR_L7_REQUEST;
	ev->version = sc->conn.version;
	ev->status = status;
	ev->l7_set = sc->l7_set;
	ev->rule = rule;
	ev->number = number;
	ev->latency_ns = 0;
	ev->method_len = sc->conn.method_len;
	__builtin_memset(ev->reserved_0, 0, sizeof(ev->reserved_0));
	ev->line_len = line;
	ev->host_len = host;
	ev->hdrs_len = hdrs;
}

/* Reports a request; the flow part comes from the packet's template. A short one (no captured
 * header values, a line within what HTTP_SHORT_DATA leaves it) goes straight onto the ring; any
 * other is built in the scratch map and only its header and the captured bytes go on the ring:
 * a request with a 100-byte line and a Host makes a record of 292 bytes, not 576. */
static __always_inline void emit_l7(struct http_scratch *sc, __u8 verdict, __u16 drop_reason, __u32 rule,
				    __u32 number, __u16 status, __u64 now)
{
	struct weir_l7_event *ev = &sc->rec;
	/* Within their caps by construction (255, 64, 128); the masks are what the verifier sees,
	 * and rec_slack covers them and the values' whole copy. */
	__u32 line = sc->conn.line_len & 0xff, host = sc->conn.host_len & 0x7f, hdrs = sc->conn.hdrs_len & 0xff;

	if (!hdrs && line <= (host ? HTTP_SHORT_DATA - WEIR_HTTP_HOST_CAP : HTTP_SHORT_DATA)) {
		ev = bpf_ringbuf_reserve(&weir_events, WEIR_L7_HEADER_LEN + HTTP_SHORT_DATA, 0);
		if (!ev) {
			count_lost();
			return;
		}
		l7_request_header(ev, sc, verdict, drop_reason, rule, number, status, now, line, host, 0);
		if (host) {
			__builtin_memcpy(ev->data, sc->conn.host, WEIR_HTTP_HOST_CAP);
			__builtin_memcpy(ev->data + WEIR_HTTP_HOST_CAP, sc->conn.line,
					 HTTP_SHORT_DATA - WEIR_HTTP_HOST_CAP);
		} else {
			__builtin_memcpy(ev->data, sc->conn.line, HTTP_SHORT_DATA);
		}
		submit_event(ev, WEIR_L7_HEADER_LEN + HTTP_SHORT_DATA);
		return;
	}
	l7_request_header(ev, sc, verdict, drop_reason, rule, number, status, now, line, host, hdrs);
	/* Copies of fixed size (they cost less than a helper call, and bpf_probe_read_kernel would
	 * need CAP_PERFMON and no kernel lockdown): the Host's room when there is a Host, the line,
	 * then the captured values packed after it. */
	if (host) {
		__builtin_memcpy(ev->data, sc->conn.host, WEIR_HTTP_HOST_CAP);
		__builtin_memcpy(ev->data + WEIR_HTTP_HOST_CAP, sc->conn.line, WEIR_HTTP_LINE_CAP);
		line += WEIR_HTTP_HOST_CAP;
	} else {
		__builtin_memcpy(ev->data, sc->conn.line, WEIR_HTTP_LINE_CAP);
	}
	if (hdrs)
		/* Whole too (at an offset known only at run time: byte by byte, and only when
		 * --http-flow-headers captured something); only hdrs bytes of it are sent. */
		__builtin_memcpy(ev->data + line, sc->conn.hdrs, WEIR_HTTP_HDRS_CAP);
	output_event(ev, WEIR_L7_HEADER_LEN + line + hdrs);
}

/* Reports a response: a record of the header alone (the agent takes the method and URL from the
 * request). */
static __always_inline void emit_l7_response(const struct http_scratch *sc, __u8 version, __u32 number,
					     __u16 status, __u64 latency, __u64 now)
{
	struct weir_l7_event *ev;

	ev = bpf_ringbuf_reserve(&weir_events, WEIR_L7_HEADER_LEN, 0);
	if (!ev) {
		count_lost();
		return;
	}
	__builtin_memcpy(&ev->flow, &sc->tmpl, sizeof(ev->flow));
	ev->flow.verdict = WEIR_VERDICT_ALLOWED;
	ev->flow.drop_reason = 0;
	ev->flow.ts_boot_ns = now;
	ev->l7_type = WEIR_L7_RESPONSE;
	ev->version = version;
	ev->status = status;
	ev->l7_set = sc->l7_set;
	ev->rule = 0xffffffff;
	ev->number = number;
	ev->latency_ns = latency;
	ev->line_len = 0;
	ev->host_len = 0;
	ev->method_len = 0;
	ev->hdrs_len = 0;
	__builtin_memset(ev->reserved_0, 0, sizeof(ev->reserved_0));
	submit_event(ev, WEIR_L7_HEADER_LEN);
}

/* The status a denied request's event reports: 403 when the datapath answers it (http_deny's
 * rule: no earlier request on the connection awaits its response), else 0 (both sides get a RST). */
static __always_inline __u16 deny_status(const struct http_scratch *sc, __u32 number)
{
	return number == sc->conn.responses && sc->allowed_here == 0 ? 403 : 0;
}

/* ---- Answering a denied request ---------------------------------------------------------- */

#define HTTP_403_LEN 106
#define HTTP_403_BUF 108 /* padded to a multiple of 4 for the checksum */

static const char http_403[HTTP_403_BUF] =
	"HTTP/1.1 403 Forbidden\r\n"
	"content-length: 15\r\n"
	"content-type: text/plain\r\n"
	"connection: close\r\n"
	"\r\n"
	"Access denied\r\n";

static __always_inline __u16 csum_fold32(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

struct pseudo4 {
	__u32 saddr;
	__u32 daddr;
	__u8 zero;
	__u8 proto;
	__u16 len;
};

struct pseudo6 {
	__u32 saddr[4];
	__u32 daddr[4];
	__u32 len;
	__u8 zero[3];
	__u8 next;
};

struct tcp20 {
	__u16 sport;
	__u16 dport;
	__u32 seq;
	__u32 ack;
	__u8 doff;
	__u8 flags;
	__u16 window;
	__u16 check;
	__u16 urg;
};

/* Working memory of an answer (per-CPU, not the stack). */
struct http_answer_buf {
	struct iphdr ip;
	struct ipv6hdr ip6;
	struct tcp20 th;
	struct pseudo4 ph4;
	struct pseudo6 ph6;
	__u8 macs[12];
	__u8 swapped[12];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct http_answer_buf);
} weir_http_answer_buf SEC(".maps");

/* Ones'-complement sum of the pseudo header (not folded). */
static __always_inline __u32 pseudo_sum(const struct pkt *p, const __u32 *saddr, const __u32 *daddr, __u16 l4len,
				       struct http_answer_buf *w)
{
	if (p->family == 4) {
		struct pseudo4 *ph = &w->ph4;

		ph->saddr = saddr[0];
		ph->daddr = daddr[0];
		ph->zero = 0;
		ph->proto = IPPROTO_TCP;
		ph->len = bpf_htons(l4len);
		return (__u32)bpf_csum_diff(0, 0, (__be32 *)ph, sizeof(*ph), 0);
	} else {
		struct pseudo6 *ph = &w->ph6;

		__builtin_memcpy(ph->saddr, saddr, 16);
		__builtin_memcpy(ph->daddr, daddr, 16);
		ph->len = bpf_htonl(l4len);
		ph->zero[0] = 0;
		ph->zero[1] = 0;
		ph->zero[2] = 0;
		ph->next = IPPROTO_TCP;
		return (__u32)bpf_csum_diff(0, 0, (__be32 *)ph, sizeof(*ph), 0);
	}
}



/* Rewrites the packet into a TCP segment of `plen` bytes of `payload` (NULL: none) from
 * `saddr`:`sport` to `daddr`:`dport`, with a 20-byte TCP header. `partial`: the packet's
 * checksum is completed later (CHECKSUM_PARTIAL): write the pseudo-header seed only. */
static __always_inline int rewrite_segment(struct __sk_buff *skb, const struct pkt *p, int swap, __u32 seq, __u32 ack,
					   __u8 flags, const char *payload, __u32 plen, int partial, int swap_l2,
					   struct http_answer_buf *w)
{
	const __u32 *saddr = swap ? p->daddr : p->saddr;
	const __u32 *daddr = swap ? p->saddr : p->daddr;
	__u16 l4off = p->l4_off;
	__u16 l4len = sizeof(struct tcp20) + plen;
	struct tcp20 *th = &w->th;
	__u32 sum;

	th->sport = bpf_htons(swap ? p->dport : p->sport);
	th->dport = bpf_htons(swap ? p->sport : p->dport);
	th->seq = bpf_htonl(seq);
	th->ack = bpf_htonl(ack);
	th->doff = 5 << 4;
	th->flags = flags;
	th->window = bpf_htons(0xffff);
	th->check = 0;
	th->urg = 0;

	if (bpf_skb_change_tail(skb, l4off + l4len, 0) < 0)
		return -1;

	/* Ethernet: back where the frame came from (or, the second time, as it was). */
	if (swap_l2) {
		if (bpf_skb_load_bytes(skb, 0, w->macs, 12) < 0)
			return -1;
		__builtin_memcpy(w->swapped, w->macs + 6, 6);
		__builtin_memcpy(w->swapped + 6, w->macs, 6);
		if (bpf_skb_store_bytes(skb, 0, w->swapped, 12, 0) < 0)
			return -1;
	}

	if (p->family == 4) {
		struct iphdr *ip = &w->ip;

		if (l4off != sizeof(struct ethhdr) + sizeof(struct iphdr))
			return -1;
		if (bpf_skb_load_bytes(skb, sizeof(struct ethhdr), ip, sizeof(*ip)) < 0)
			return -1;
		ip->tot_len = bpf_htons(sizeof(struct iphdr) + l4len);
		ip->id = 0;
		ip->frag_off = bpf_htons(0x4000);
		ip->ttl = 64;
		ip->protocol = IPPROTO_TCP;
		ip->saddr = saddr[0];
		ip->daddr = daddr[0];
		ip->check = 0;
		ip->check = ~csum_fold32((__u32)bpf_csum_diff(0, 0, (__be32 *)ip, sizeof(*ip), 0));
		if (bpf_skb_store_bytes(skb, sizeof(struct ethhdr), ip, sizeof(*ip), 0) < 0)
			return -1;
	} else {
		struct ipv6hdr *ip6 = &w->ip6;

		if (l4off != sizeof(struct ethhdr) + sizeof(struct ipv6hdr))
			return -1;
		if (bpf_skb_load_bytes(skb, sizeof(struct ethhdr), ip6, sizeof(*ip6)) < 0)
			return -1;
		ip6->payload_len = bpf_htons(l4len);
		ip6->nexthdr = IPPROTO_TCP;
		ip6->hop_limit = 64;
		__builtin_memcpy(&ip6->saddr, saddr, 16);
		__builtin_memcpy(&ip6->daddr, daddr, 16);
		if (bpf_skb_store_bytes(skb, sizeof(struct ethhdr), ip6, sizeof(*ip6), 0) < 0)
			return -1;
	}

	sum = pseudo_sum(p, saddr, daddr, l4len, w);
	if (partial) {
		th->check = csum_fold32(sum);
	} else {
		sum = (__u32)bpf_csum_diff(0, 0, (__be32 *)th, sizeof(*th), sum);
		if (payload)
			sum = (__u32)bpf_csum_diff(0, 0, (__be32 *)payload, HTTP_403_BUF, sum);
		th->check = ~csum_fold32(sum);
	}
	if (bpf_skb_store_bytes(skb, l4off, th, sizeof(*th), 0) < 0)
		return -1;
	if (payload && plen && bpf_skb_store_bytes(skb, l4off + sizeof(*th), payload, HTTP_403_LEN, 0) < 0)
		return -1;
	return 0;
}

/* Whether the packet's TCP checksum field holds only the pseudo-header seed (CHECKSUM_PARTIAL:
 * the sender's stack or device completes it), as Linux writes it for local senders. */
static __always_inline int checksum_partial(struct __sk_buff *skb, const struct pkt *p, struct http_answer_buf *w)
{
	__u16 check;

	if (bpf_skb_load_bytes(skb, p->l4_off + 16, &check, 2) < 0)
		return 0;
	return check == csum_fold32(pseudo_sum(p, p->saddr, p->daddr, p->l3_end - p->l4_off, w));
}

/* Answers a denied request (sc->pkt): sc->answer (1) sends the client the 403 and a FIN, else
 * a RST; the packet itself becomes a RST to the server. sc->client_seq is the server's next
 * sequence number as the client expects it, sc->server_seq the first byte of the client's data
 * the server has not received. The packet is then passed on (it is now that RST). Global: its
 * stack is its own, not added to the parser's. */
__attribute__((noinline)) int weir_http_answer(struct __sk_buff *skb)
{
	struct http_answer_buf *w;
	struct http_scratch *sc;
	const struct pkt *p;
	__u32 zero = 0, ifindex, client_seq, server_seq;
	int partial, ret, answer;
	__u8 dir;

	if (!skb)
		return TC_ACT_SHOT;
	sc = bpf_map_lookup_elem(&weir_http_scratch, &zero);
	w = bpf_map_lookup_elem(&weir_http_answer_buf, &zero);
	if (!sc || !w)
		return TC_ACT_SHOT;
	p = &sc->pkt;
	dir = sc->dir;
	answer = sc->answer;
	client_seq = sc->client_seq;
	server_seq = sc->server_seq;
	partial = checksum_partial(skb, p, w);
	ifindex = skb->ifindex;

	if (answer)
		ret = rewrite_segment(skb, p, 1, client_seq, p->seq + p->payload_len, TCP_FIN | TCP_ACK | 0x08,
				      http_403, HTTP_403_LEN, partial, 1, w);
	else
		ret = rewrite_segment(skb, p, 1, client_seq, p->seq + p->payload_len, TCP_RST | TCP_ACK, 0, 0,
				      partial, 1, w);
	if (ret < 0)
		return TC_ACT_SHOT;
	/* At the server's hook the answer enters the node as if the server had sent it; at the
	 * client's hook it leaves towards the client. */
	bpf_clone_redirect(skb, ifindex, dir == WEIR_DIR_INGRESS ? BPF_F_INGRESS : 0);

	if (rewrite_segment(skb, p, 0, server_seq, p->ack, TCP_RST | TCP_ACK, 0, 0, partial, 1, w) < 0)
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

/* ---- Per packet ---------------------------------------------------------------------------- */

static __always_inline int is_head_request(const struct http_scratch *sc)
{
	return sc->conn.method_len == 4 && sc->conn.line[0] == 'H' && sc->conn.line[1] == 'E' &&
	       sc->conn.line[2] == 'A' && sc->conn.line[3] == 'D';
}

/* A request head completed: how its body is framed. */
static __always_inline void body_phase(struct weir_http_parser *ps)
{
	if (ps->flags & WEIR_HP_CHUNKED) {
		ps->phase = HP_CHUNK_SIZE;
		ps->number = 0;
		ps->digits = 0;
	} else if ((ps->flags & WEIR_HP_HAS_CL) && ps->remaining) {
		ps->phase = HP_BODY;
	} else {
		ps->phase = HP_METHOD;
	}
}

/* A request was denied: the server gets a RST, the connection is over. Like a RST it may be
 * reopened by a new SYN on the same ports (the client's next connection) and expires soon. */
static __always_inline void ct_denied(struct weir_ct_entry *e)
{
	e->l7_flags |= WEIR_CT_L7_DENIED;
	e->flags |= WEIR_CT_RST;
	e->expires = bpf_jiffies64() + weir_runtime.ct_lifetime_close_jiffies;
}

/* The denied request is answered with a 403 only when the client expects nothing else from the
 * server before it: no earlier request awaits its response. Otherwise both sides get a RST. */
static __always_inline int http_deny(struct __sk_buff *skb, const struct pkt *p, __u8 dir, struct http_scratch *sc,
				     __u32 number, __u32 first_seq)
{
	const struct weir_http_parser *resp = &sc->conn.resp;
	__u32 client_seq = p->ack;
	int answer = deny_status(sc, number) != 0;

	if ((resp->flags & WEIR_HP_SYNCED) && !(resp->flags & WEIR_HP_LOST) &&
	    (__s32)(resp->next_seq - p->ack) > 0)
		client_seq = resp->next_seq;
	__builtin_memcpy(&sc->pkt, p, sizeof(sc->pkt));
	sc->dir = dir;
	sc->answer = answer;
	sc->client_seq = client_seq;
	sc->server_seq = first_seq;
	return weir_http_answer(skb);
}

/* The flow part of this packet's L7 events (sc->tmpl), in the direction of the connection's
 * requests (`reply`: a response). The endpoint, identities and rule set are those the
 * connection's CT entry recorded when it was decided. (Written into the template rather than
 * `v`: values kept on the stack across the parse cost the verifier ~230 000 instructions.) */
static __always_inline void l7_template(struct http_scratch *sc, const struct pkt *p, struct verdict_ctx *v,
					const struct weir_ct_entry *e, __u8 dir, int reply)
{
	struct weir_flow_event *t = &sc->tmpl;

	v->trace_reason = 0;
	if (reply) {
		v->direction = opposite(dir);
		v->reply = 1;
	}
	fill_flow_event(t, p, v, WEIR_EVENT_L7, 0, 0, 1);
	t->obs_point = dir == WEIR_DIR_EGRESS ? WEIR_OBS_TO_STACK : WEIR_OBS_TO_ENDPOINT;
	if (e->flags & WEIR_CT_AUDIT)
		t->flags |= WEIR_EVF_AUDIT;
	t->match_type = e->match_type;
	t->rule_set = e->rule_set;
	t->ep_id = e->ep_id;
	if (dir == WEIR_DIR_EGRESS) {
		t->src_identity = e->local_identity;
		t->dst_identity = e->remote_identity;
	} else {
		t->src_identity = e->remote_identity;
		t->dst_identity = e->local_identity;
	}
}

/* A response's status line is read (into `conn`: the parser's working copy, or the
 * connection's entry). When it is the final response (not 1xx) to the only request
 * outstanding, it is reported now and the rest of it is skipped: the response side
 * resumes where the next request's first segment says the client has read up to
 * (resync_seq), which for a client that waits for each response is where the next response
 * starts. Its headers and body need no parsing: nothing is enforced on responses, and the
 * next response is found without framing. Otherwise (1xx, pipelined requests) the head is
 * parsed to its end and the response reported there, framing followed. Returns 1 when the
 * rest of the response is skipped. */
static __always_inline int skip_final_response(const struct http_scratch *sc, struct weir_http_conn *conn,
					       __u16 status)
{
	__u32 number = conn->responses, idx = number & (WEIR_HTTP_PENDING - 1);
	__u64 now;

	if (status < 200 || conn->requests != number + 1)
		return 0;
	now = bpf_ktime_get_boot_ns();
	emit_l7_response(sc, conn->version, number, status, now - conn->pending_ts[idx], now);
	conn->responses = number + 1;
	conn->resp.flags |= WEIR_HP_SKIP;
	conn->resp.skip_from = conn->resync_seq;
	return 1;
}

/* The status line of a response the parser follows is read (up to its code): skip_final_response
 * on the working copy. Global: verified once. */
__attribute__((noinline)) int weir_http_status(struct __sk_buff *skb)
{
	struct http_scratch *sc;
	__u32 zero = 0;

	if (!skb)
		return 0;
	sc = bpf_map_lookup_elem(&weir_http_scratch, &zero);
	if (!sc || !sc->response)
		return 0;
	return skip_final_response(sc, &sc->conn, sc->conn.resp.status);
}

/* A response's first segment, when it holds the whole status line of a final response to the
 * only request outstanding (sc->off and sc->end delimit the payload, sc->seq is its sequence
 * number, sc->tmpl and sc->l7_set are set): reported and the rest of the response skipped as
 * weir_http_status does, written straight into `stored` with none of the parser's machinery.
 * Returns 0, changing nothing, for anything else (the general path then parses the segment).
 * Global: verified once. */
__attribute__((noinline)) int weir_http_response_start(struct __sk_buff *skb, struct weir_http_conn *stored)
{
	struct http_scratch *sc;
	__u32 zero = 0, len;
	__u16 status;
	__u8 *b;

	if (!skb || !stored)
		return 0;
	sc = bpf_map_lookup_elem(&weir_http_scratch, &zero);
	if (!sc || sc->end <= sc->off)
		return 0;
	len = sc->end - sc->off;
	if (len < 12)
		return 0;
	b = sc->buf;
	/* (The buffer then no longer holds what sc->buf_start and sc->buf_len say.) */
	sc->buf_len = 0;
	if (bpf_skb_load_bytes(skb, sc->off, b, 12) < 0 || !status_line(b))
		return 0;
	status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
	if (!skip_final_response(sc, stored, status))
		return 0;
	/* As the parser leaves a response it reported at its status line. */
	stored->resp.status = status;
	stored->resp.phase = HP_STATUS_REST;
	stored->resp.pos = 12;
	stored->resp.head_len = 12;
	stored->resp.flags &= WEIR_HP_SYNCED | WEIR_HP_SKIP;
	stored->resp.next_seq = sc->seq + len;
	return 1;
}

/* A request or response head completed (called by the byte loop, global: verified once).
 * Decides a request and reports it; reports a response. Returns 1 when the request is denied. */
__attribute__((noinline)) int weir_http_head(struct __sk_buff *skb)
{
	struct http_scratch *sc;
	struct weir_http_parser *ps;
	__u32 zero = 0, number, idx;

	if (!skb)
		return 1;
	sc = bpf_map_lookup_elem(&weir_http_scratch, &zero);
	if (!sc)
		return 1;
	if (!sc->response) {
		__u64 allowed = http_allowed(sc);
		__u64 now = bpf_ktime_get_boot_ns();

		ps = &sc->conn.req;
		number = sc->conn.requests;
		idx = number & (WEIR_HTTP_PENDING - 1);
		sc->conn.requests = number + 1;
		sc->conn.pending_ts[idx] = now;
		if (is_head_request(sc))
			sc->conn.pending_head_flags |= 1 << idx;
		else
			sc->conn.pending_head_flags &= ~(1 << idx);
		if (!allowed) {
			sc->deny_number = number;
			emit_l7(sc, WEIR_VERDICT_DENIED, WEIR_DROP_POLICY_DENIED, 0xffffffff, number, deny_status(sc, number),
				now);
			return 1;
		}
		emit_l7(sc, WEIR_VERDICT_ALLOWED, 0, lowest_bit(allowed), number, 0, now);
		sc->allowed_here += 1;
		body_phase(ps);
		return 0;
	}

	ps = &sc->conn.resp;
	number = sc->conn.responses;
	idx = number & (WEIR_HTTP_PENDING - 1);
	{
		__u16 status = ps->status;
		int no_body = 1;

		if (status >= 200) {
			__u64 now = bpf_ktime_get_boot_ns(), latency = 0;

			if (number < sc->conn.requests)
				latency = now - sc->conn.pending_ts[idx];
			emit_l7_response(sc, sc->conn.version, number, status, latency, now);
			sc->conn.responses = number + 1;
			no_body = ((sc->conn.pending_head_flags >> idx) & 1) || status == 204 || status == 304;
		}
		if (no_body)
			ps->phase = HP_METHOD;
		else if (ps->flags & (WEIR_HP_CHUNKED | WEIR_HP_HAS_CL))
			body_phase(ps);
		else
			ps->phase = HP_UNTIL_CLOSE;
	}
	return 0;
}

/* Resets a connection from its hook (`dir`): the client gets a RST, the packet itself becomes a
 * RST to the server (weir_http_answer with no 403). */
static __always_inline int reset_both(struct __sk_buff *skb, struct http_scratch *sc, const struct pkt *p, __u8 dir)
{
	__builtin_memcpy(&sc->pkt, p, sizeof(sc->pkt));
	sc->dir = dir;
	sc->answer = 0;
	sc->client_seq = p->ack;
	sc->server_seq = p->seq;
	return weir_http_answer(skb);
}

#define HTTP_CLAIM_PROBES 16 /* slots weir_http_claim looks at */

static __always_inline int same_owner(const struct weir_ct_key *a, const struct weir_ct_key *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;
	__u32 d = 0, i;

#pragma unroll
	for (i = 0; i < sizeof(*a) / 4; i++)
		d |= x[i] ^ y[i];
	return d == 0;
}

/* The connection's slot in weir_http_conn, while the connection owns it. */
static __always_inline struct weir_http_slot *http_slot(const struct weir_ct_entry *e, const struct weir_ct_key *key)
{
	__u32 idx = e->http_slot - 1;
	struct weir_http_slot *s;

	if (!e->http_slot)
		return NULL;
	s = bpf_map_lookup_elem(&weir_http_conn, &idx);
	if (!s || !same_owner(&s->owner, key))
		return NULL;
	return s;
}

/* Claims a slot of weir_http_conn for the connection `key` (at its SYN), its CT entry expiring
 * at `expires`: the first free slot (never used, or its owner's connection expired) among
 * HTTP_CLAIM_PROBES from a random start; when none is free, the one whose owner expires first,
 * whose connection then finds its state gone (its next request is refused, as with no state).
 * Returns 1 + the slot's index, or 0 when another CPU took the slot at the same moment (the
 * connection then has no state either). Global: verified once. */
__attribute__((noinline)) int weir_http_claim(const struct weir_ct_key *key, __u64 expires)
{
	__u32 start = bpf_get_prandom_u32(), i, idx, pick = 0, claim;
	__u64 now = bpf_jiffies64(), soonest = ~0ULL;
	struct weir_http_slot *s;

	if (!key)
		return 0;
	for (i = 0; i < HTTP_CLAIM_PROBES; i++) {
		/* Probes spread over the table: consecutive slots would cluster. */
		idx = (start + i * 0x9e3779b1u) & (WEIR_HTTP_SLOTS - 1);
		s = bpf_map_lookup_elem(&weir_http_conn, &idx);
		if (!s)
			return 0;
		if (s->expires <= now) {
			claim = s->claim;
			if (__sync_val_compare_and_swap(&s->claim, claim, claim + 1) == claim)
				goto take;
		} else if (s->expires < soonest) {
			soonest = s->expires;
			pick = idx;
		}
	}
	/* No live slot seen either (every free one was taken by another CPU meanwhile): none. */
	if (soonest == ~0ULL)
		return 0;
	idx = pick;
	s = bpf_map_lookup_elem(&weir_http_conn, &idx);
	if (!s)
		return 0;
	claim = s->claim;
	if (__sync_val_compare_and_swap(&s->claim, claim, claim + 1) != claim)
		return 0;
take:
	__builtin_memcpy(&s->owner, key, sizeof(s->owner));
	s->expires = expires;
	return idx + 1;
}

/* Writes back the part of a connection's state the packet's direction owns (its parser, and for
 * requests the pending requests and the captured line; for responses the response count): the
 * two directions run on different CPUs and must not overwrite each other's progress. Into the
 * connection's slot if it still owns it (another connection may have claimed it since the packet
 * began); `whole`: a new connection, everything. The slot is kept until the CT entry expires. */
static __always_inline void conn_store(const struct weir_ct_entry *e, const struct weir_ct_key *key,
				       const struct weir_http_conn *conn, int reply, int whole)
{
	struct weir_http_slot *s = http_slot(e, key);
	struct weir_http_conn *now;

	if (!s)
		return;
	s->expires = e->expires;
	now = &s->conn;
	if (whole) {
		__builtin_memcpy(now, conn, sizeof(*conn));
	} else if (reply) {
		__builtin_memcpy(&now->resp, &conn->resp, sizeof(conn->resp));
		now->responses = conn->responses;
	} else {
		__builtin_memcpy(&now->req, &conn->req, sizeof(conn->req));
		__builtin_memcpy(now->pending_ts, conn->pending_ts, sizeof(conn->pending_ts));
		now->requests = conn->requests;
		now->pending_head_flags = conn->pending_head_flags;
		now->line_len = conn->line_len;
		now->host_len = conn->host_len;
		now->host_raw = conn->host_raw;
		now->method_len = conn->method_len;
		now->version = conn->version;
		now->hdrs_len = conn->hdrs_len;
		now->resync_seq = conn->resync_seq;
		__builtin_memcpy(now->line, conn->line, sizeof(conn->line));
		__builtin_memcpy(now->host, conn->host, sizeof(conn->host));
		if (conn->hdrs_len)
			__builtin_memcpy(now->hdrs, conn->hdrs, sizeof(conn->hdrs));
	}
}

/* A TCP packet of a connection with HTTP rules, in its original (`reply` 0: requests) or reply
 * direction (responses). `key` is the connection's CT key; `fresh`: the packet just created the
 * connection's CT entry (its SYN). Returns the TC action. */
static __always_inline int http_packet(struct __sk_buff *skb, struct pkt *p, struct verdict_ctx *v,
				       struct weir_ct_entry *e, const struct weir_ct_key *key, __u8 dir, int reply,
				       int fresh)
{
	struct weir_http_conn *stored = NULL;
	struct weir_http_slot *slot_of;
	struct weir_http_parser *ps;
	struct http_scratch *sc;
	__u32 zero = 0, runs, skip = 0, first_seq, l7_set = e->l7_set, resync = 0;
	int resyncing = 0;
	__u8 slot = e->policy_gen & 1;
	__s32 diff;
	int r = HTTP_ERROR;

	if (p->protocol != IPPROTO_TCP)
		return TC_ACT_OK;
	if (p->fragment)
		return reply ? TC_ACT_OK : TC_ACT_SHOT; /* a fragmented request cannot be read */
	if (!(p->tcp_flags & TCP_SYN) && p->payload_len == 0) {
		/* Nothing to parse. A FIN or RST may have brought the connection's expiry closer:
		 * its slot is free from then on. */
		if (p->tcp_flags & (TCP_FIN | TCP_RST)) {
			slot_of = http_slot(e, key);
			if (slot_of)
				slot_of->expires = e->expires;
		}
		return TC_ACT_OK;
	}
	sc = bpf_map_lookup_elem(&weir_http_scratch, &zero);
	if (!sc)
		return reply ? TC_ACT_OK : TC_ACT_SHOT;
	slot_of = http_slot(e, key);
	if (slot_of)
		stored = &slot_of->conn;
	if (reply && stored && (stored->resp.flags & WEIR_HP_SKIP) && !(p->tcp_flags & TCP_SYN)) {
		/* The rest of a response reported at its status line: skipped with no state loaded,
		 * only how far the server has sent (where a 403 to a request pipelined meanwhile goes),
		 * until a segment reaches the next response's start. */
		__u32 next = *(volatile __u32 *)&stored->resync_seq, end = p->seq + p->payload_len;

		if (next == stored->resp.skip_from || (__s32)(end - next) <= 0) {
			if ((__s32)(end - stored->resp.next_seq) > 0)
				stored->resp.next_seq = end;
			return TC_ACT_OK;
		}
		resync = next;
		resyncing = 1;
	}
	if (reply && stored && !(p->tcp_flags & TCP_SYN) && p->payload_len >= 12 &&
	    (stored->resp.flags & (WEIR_HP_SYNCED | WEIR_HP_LOST)) == WEIR_HP_SYNCED &&
	    (resyncing ? p->seq == resync
		       : !(stored->resp.flags & WEIR_HP_SKIP) && stored->resp.phase == HP_METHOD &&
				 stored->resp.head_len == 0 && p->seq == stored->resp.next_seq)) {
		/* The common response: its first segment starts with its status line. */
		sc->off = p->payload_off;
		sc->end = p->payload_off + p->payload_len;
		sc->seq = p->seq;
		sc->l7_set = l7_set;
		l7_template(sc, p, v, e, dir, reply);
		if (weir_http_response_start(skb, stored))
			return TC_ACT_OK;
	}
	if (stored) {
		/* The captured header values (the struct's tail) only when there are some. */
		__builtin_memcpy(&sc->conn, stored, __builtin_offsetof(struct weir_http_conn, hdrs));
		if (sc->conn.hdrs_len)
			__builtin_memcpy(sc->conn.hdrs, stored->hdrs, sizeof(sc->conn.hdrs));
		else if (!reply)
			/* Nothing of another connection's values in the per-CPU copy: what is
			 * captured next is copied whole into the event and the map. */
			__builtin_memset(sc->conn.hdrs, 0, sizeof(sc->conn.hdrs));
	} else
		__builtin_memset(&sc->conn, 0, sizeof(sc->conn));
	ps = reply ? &sc->conn.resp : &sc->conn.req;
	if (resyncing) {
		/* The next response starts at `resync`: parse from there. */
		ps->next_seq = resync;
		ps->phase = HP_METHOD;
		ps->flags &= ~WEIR_HP_SKIP;
	}

	if ((p->tcp_flags & TCP_SYN) && p->payload_len && !reply) {
		/* Data on a SYN (TCP Fast Open) would reach the server before any parser state
		 * exists: refused (the client sends its SYN again without data). */
		emit_event(p, v, WEIR_EVENT_DROP, WEIR_VERDICT_DENIED, WEIR_DROP_PROXY_UNSUPPORTED, 1);
		return TC_ACT_SHOT;
	}
	if (p->tcp_flags & TCP_SYN) {
		/* The SYN of a new connection starts its state afresh (nothing of an earlier connection
		 * on the same ports carries over); the first SYN-ACK starts the responses. Any other SYN
		 * (a retransmission, or one inside the connection, which the server answers with an
		 * ACK) changes nothing: it must not move where parsing resumes. */
		if (fresh) {
			__builtin_memset(&sc->conn, 0, sizeof(sc->conn));
		} else if (ps->flags & WEIR_HP_SYNCED) {
			return TC_ACT_OK;
		} else if (reply) {
			__builtin_memset(ps, 0, sizeof(*ps));
			sc->conn.responses = 0;
		}
		ps->next_seq = p->seq + 1;
		ps->flags |= WEIR_HP_SYNCED;
		if (!slot_of)
			e->http_slot = weir_http_claim(key, e->expires);
		conn_store(e, key, &sc->conn, reply, fresh || !slot_of);
		return TC_ACT_OK;
	}
	if (!reply && !(ps->flags & WEIR_HP_SYNCED) && !(e->l7_flags & WEIR_CT_L7_DENIED)) {
		/* Request data on a connection whose HTTP state is unknown: it began before HTTP rules
		 * applied to it, or its state was evicted. Where the next request starts cannot be
		 * known (this may be a body), so the connection is refused: both sides get a RST and
		 * the client reconnects under the rules. */
		e->l7_flags |= WEIR_CT_L7_DENIED;
		e->flags |= WEIR_CT_RST;
		e->expires = bpf_jiffies64() + weir_runtime.ct_lifetime_close_jiffies;
	}
	if (!reply && (e->l7_flags & WEIR_CT_L7_DENIED)) {
		/* Data after a denied request (a body, pipelined requests): the server was reset
		 * already; reset the client too rather than let it retransmit into the void. */
		return reset_both(skb, sc, p, dir);
	}
	if (reply && (ps->flags & WEIR_HP_LOST))
		return TC_ACT_OK;
	if (!(ps->flags & WEIR_HP_SYNCED)) {
		/* Responses followed from mid-connection (requests were refused above): the next
		 * response starts here. */
		ps->next_seq = p->seq;
		ps->flags |= WEIR_HP_SYNCED;
	}
	diff = (__s32)(p->seq - ps->next_seq);
	if (diff > 0) {
		/* Bytes are missing before this segment: a request is parsed in order, so wait for the
		 * retransmission of what is missing. A response gap ends response tracking. */
		if (!reply)
			return TC_ACT_SHOT;
		ps->flags |= WEIR_HP_LOST;
		conn_store(e, key, &sc->conn, reply, 0);
		return TC_ACT_OK;
	}
	if (diff < 0) {
		skip = (__u32)(-diff);
		if (skip >= p->payload_len)
			return TC_ACT_OK; /* a retransmission of bytes already parsed */
	}
	first_seq = ps->next_seq;
	sc->off = p->payload_off + skip;
	sc->end = p->payload_off + p->payload_len;
	sc->buf_start = 0;
	sc->buf_len = 0;
	sc->set_index = (__u32)slot * WEIR_HTTP_MAX_SETS + (l7_set & (WEIR_HTTP_MAX_SETS - 1));
	sc->response = reply;
	sc->l7_set = l7_set;
	sc->allowed_here = 0;
	sc->ack = p->ack;
	l7_template(sc, p, v, e, dir, reply);
	/* weir_http_scan reads buffered bytes only: buffer the payload's start for it (if this
	 * fails, so does the byte loop's own attempt, which fails closed). */
	load_buf(skb, sc, sc->off);

	for (runs = 0; runs < HTTP_MAX_RUNS; runs++) {
		r = weir_http_run(skb);
		if (r != HTTP_STEPS)
			break;
	}

	if (r == HTTP_CONSUMED) {
		ps->next_seq = p->seq + p->payload_len;
		conn_store(e, key, &sc->conn, reply, 0);
		return TC_ACT_OK;
	}
	if (reply) {
		/* Responses are only observed: stop following this connection's. */
		ps->flags |= WEIR_HP_LOST;
		ps->next_seq = p->seq + p->payload_len;
		conn_store(e, key, &sc->conn, reply, 0);
		return TC_ACT_OK;
	}
	if (r != HTTP_DENIED) {
		/* The request cannot be read (or the budget is spent): fail closed. */
		__u32 number = sc->conn.requests;
		__u16 reason = r == HTTP_INVALID && sc->reason == HTTP_BAD_UNSUPPORTED ? WEIR_DROP_PROXY_UNSUPPORTED
										      : WEIR_DROP_INVALID_PACKET;

		sc->conn.requests = number + 1;
		sc->deny_number = number;
		emit_l7(sc, WEIR_VERDICT_DENIED, reason, 0xffffffff, number, deny_status(sc, number), bpf_ktime_get_boot_ns());
	}
	ct_denied(e);
	conn_store(e, key, &sc->conn, reply, 0);
	return http_deny(skb, p, dir, sc, sc->deny_number, first_seq);
}

#endif /* WEIR_HTTP_POLICY_H */
