/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * In-kernel HTTP/1.x: a streaming parser for both directions of a connection whose policy entry
 * carries HTTP rules, and the decision of each request against the rule set's DFA tables
 * (weir_policy::http builds them; docs/l7.md describes the whole path).
 *
 * The parser keeps its state per connection (struct weir_http_conn) and resumes wherever a
 * segment ended, so a request head split over segments needs no buffering. A packet is parsed on
 * a per-CPU working copy of that state, which is written back when the packet is forwarded or its
 * request denied: a segment dropped for a gap leaves the state as it was, and its retransmission
 * is parsed again.
 *
 * The byte loop (weir_http_step) handles every byte in any phase; a fast path (weir_http_scan)
 * runs through the fields themselves, and weir_http_edge takes the well-formed bytes between a
 * request's fields, so that a common request head (curl's, wrk's) never enters the byte loop.
 *
 * The byte loop is a global function, verified once on its own. Every value it carries from one
 * byte to the next lives in the per-CPU scratch map, so the verifier's states converge at the
 * loop head and the cost of verification grows with the loop bound, not with the state machine.
 */
#ifndef WEIR_HTTP_H
#define WEIR_HTTP_H

#include "common.h"
#include "maps.h"

/* Parser phases. */
#define HP_METHOD        0  /* request line: method (also: between requests) */
#define HP_TARGET        1
#define HP_VERSION       2
#define HP_LINE_LF       3  /* CR of a start or header line seen */
#define HP_HSTART        4  /* start of a header line or of the final empty line */
#define HP_NAME          5
#define HP_VLEAD         6  /* OWS before a value */
#define HP_VALUE         7
#define HP_END_LF        8  /* CR of the empty line seen */
#define HP_BODY          9  /* Content-Length body */
#define HP_CHUNK_SIZE    10
#define HP_CHUNK_EXT     11
#define HP_CHUNK_SIZE_LF 12
#define HP_CHUNK_DATA    13
#define HP_CHUNK_DATA_CR 14
#define HP_CHUNK_DATA_LF 15
#define HP_TRAILER_START 16
#define HP_TRAILER_NAME  17
#define HP_TRAILER_VALUE 18
#define HP_TRAILER_LF    19
#define HP_TRAILER_END_LF 20
#define HP_STATUS        21 /* response status line: "HTTP/1.x NNN" */
#define HP_STATUS_REST   22 /* reason phrase */
#define HP_UNTIL_CLOSE   23 /* response body delimited by the connection's end: not followed */

/* Results of one run of the byte loop. */
#define HTTP_CONSUMED  0 /* every byte of the packet is parsed */
#define HTTP_HEAD_DONE 1 /* a head completed; sc->off is just past it */
#define HTTP_INVALID   2 /* sc->reason says why */
#define HTTP_STEPS     3 /* the step budget of one run is spent: run again */
#define HTTP_ERROR     4 /* tables missing or the packet unreadable */
#define HTTP_DENIED    5 /* a request was denied (sc->deny_number, sc->deny_reason) */
#define HTTP_STATUS    6 /* a response's status line is read (up to its code) */
#define HTTP_FALLBACK  7 /* weir_http_edge: the general loop takes the next byte */
#define HTTP_LINE      8 /* weir_http_edge: at a header line's start, for weir_http_hline */

/* Why a request could not be policed (weir_policy::http::Invalid). */
#define HTTP_BAD_MALFORMED   1
#define HTTP_BAD_TOO_LONG    2
#define HTTP_BAD_UNSUPPORTED 3

#define HTTP_STEP_BYTES 32 /* bytes (or body runs) one call of weir_http_step handles */
#define HTTP_RUN_STEPS 32  /* steps per weir_http_run: a fast run, then weir_http_edge or
			    * weir_http_step up to the next field */
#define HTTP_BUF 256
#define HTTP_SHORT_DATA 128 /* a short request's record (http_policy.h, emit_l7) is written
			     * straight onto the ring: the header, then this many bytes, the Host's
			     * room and the line's first 64 bytes, or the line's first 128 */
#define HTTP_EDGE_BYTES 32 /* at most the bytes one call of weir_http_edge takes */
#define HTTP_SCAN_VALUE 32 /* the fast path's bytes of a value whose bytes do more than a
			    * well-formedness check (the general loop takes the rest of a longer one:
			    * a larger bound, or handing back to the fast path, costs the verifier
			    * 200 k more instructions) */

struct http_scratch {
	struct weir_http_conn conn;   /* working copy of the connection's state */
	__u8 buf[HTTP_BUF];           /* payload bytes at [buf_start, buf_start + buf_len) */
	__u32 buf_start;
	__u32 buf_len;
	__u32 off;                    /* next byte to parse (offset in the packet) */
	__u32 end;                    /* end of the payload */
	__u32 set_index;              /* weir_http_sets index of the connection's set */
	__u32 response;               /* 1: parsing the response direction */
	__u32 reason;                 /* HTTP_BAD_* when HTTP_INVALID */
	__u32 l7_set;                 /* the connection's set id (for events) */
	__u32 allowed_here;           /* requests allowed in this packet */
	__u32 deny_number;            /* number of the denied request */
	struct weir_flow_event tmpl;  /* flow part of this packet's L7 events */
	struct pkt pkt;               /* the packet, for answering a denied request */
	__u32 dir;                    /* WEIR_DIR_* of the hook */
	__u32 answer;                 /* 1: answer with a 403, 0: with a RST */
	__u32 client_seq;
	__u32 server_seq;
	__u32 ack;                    /* the packet's acknowledgment number */
	__u32 seq;                    /* the packet's sequence number */
	struct weir_ct_entry ct;      /* a new connection's CT entry while it is built */
	__u32 carry_slot;             /* http_slot of the entry a policy change replaces (pkt.carry_http) */
	__u32 line_value;             /* weir_http_hline: where the line's value starts (from sc->off) */
	__u32 line_host;              /* weir_http_hline: the line is the Host */
	__u32 line_declined;          /* weir_http_hline: 1 + the offset of the line it last declined */
	struct weir_l7_event rec;     /* a request's record while it is built */
	__u8 rec_slack[192];          /* room past rec.data for the bounds the verifier knows of
				       * the lengths (their byte masks), above the caps they keep to */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct http_scratch);
} weir_http_scratch SEC(".maps");

static __always_inline int is_tchar(__u8 c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return 1;
	switch (c) {
	case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
	case '-': case '.': case '^': case '_': case '`': case '|': case '~':
		return 1;
	}
	return 0;
}

static __always_inline int is_ctl(__u8 c)
{
	return (c < 0x20 && c != '\t') || c == 0x7f;
}

static __always_inline __u8 dfa_step(const struct weir_http_dfa *d, __u8 state, __u8 c)
{
	__u32 cls = d->classes[c] & (WEIR_DFA_CLASSES - 1);

	return d->trans[(((__u32)state << 6) | cls) & (WEIR_DFA_STATES * WEIR_DFA_CLASSES - 1)];
}

/* dfa_step for a fast run's loop. The state is replaced only when it changes: where a DFA
 * stays in one state (a pattern's trailing ".*", a name that no slot starts with), the next
 * byte's lookup then does not wait for this one's, and the bytes' lookups overlap. (The branch
 * keeps it so: an assignment of an equal value would be folded into a plain one.) */
static __always_inline __u32 dfa_next(const struct weir_http_dfa *d, __u32 state, __u8 c)
{
	__u32 next = dfa_step(d, state, c);

	if (next != state) {
		state = next;
		asm volatile("" : "+r"(state));
	}
	return state;
}

static __always_inline __u64 dfa_accept(const struct weir_http_dfa *d, __u8 state)
{
	return d->accept[state];
}

static __always_inline int hexval(__u8 c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* "HTTP/1.0" or "HTTP/1.1" at `b`. */
static __always_inline int http1_version(const __u8 *b)
{
	return b[0] == 'H' && b[1] == 'T' && b[2] == 'T' && b[3] == 'P' && b[4] == '/' && b[5] == '1' &&
	       b[6] == '.' && (b[7] == '0' || b[7] == '1');
}

static __always_inline int is_digit(__u8 c)
{
	return c >= '0' && c <= '9';
}

/* A status line's first 12 bytes at `b`: "HTTP/1.x NNN". */
static __always_inline int status_line(const __u8 *b)
{
	return http1_version(b) && b[8] == ' ' && is_digit(b[9]) && is_digit(b[10]) && is_digit(b[11]);
}

/* "HTTP/1." */
static __always_inline __u8 version_char(__u32 pos)
{
	switch (pos) {
	case 0: return 'H';
	case 1: return 'T';
	case 2: return 'T';
	case 3: return 'P';
	case 4: return '/';
	case 5: return '1';
	default: return '.';
	}
}

/* The end of a header line (at its CR): framing headers, Host, Upgrade and the requirements
 * the line meets. Returns 0 or HTTP_BAD_*. Global: verified once, on its own. */
__attribute__((noinline)) int weir_http_line(struct __sk_buff *skb)
{
	struct weir_http_parser *ps;
	struct weir_http_dfa *vd;
	struct weir_http_set *set;
	struct http_scratch *sc;
	__u32 zero = 0, idx, slots, s;
	__u64 v;

	if (!skb)
		return HTTP_BAD_MALFORMED;
	sc = bpf_map_lookup_elem(&weir_http_scratch, &zero);
	if (!sc)
		return HTTP_BAD_MALFORMED;
	idx = sc->set_index;
	set = bpf_map_lookup_elem(&weir_http_sets, &idx);
	idx = idx * 4 + WEIR_DFA_VALUE;
	vd = bpf_map_lookup_elem(&weir_http_dfa, &idx);
	if (!set || !vd)
		return HTTP_BAD_MALFORMED;
	ps = sc->response ? &sc->conn.resp : &sc->conn.req;
	v = dfa_accept(vd, ps->value_state);
	slots = ps->slots;

	if (!(v & WEIR_HTTP_BIT_WELLFORMED))
		return HTTP_BAD_MALFORMED;
	if (slots & (1u << WEIR_HTTP_SLOT_CONTENT_LENGTH)) {
		if (!(v & WEIR_HTTP_BIT_CL_VALUE) || (ps->flags & (WEIR_HP_HAS_CL | WEIR_HP_CHUNKED)) ||
		    ps->digits == 0xff)
			return HTTP_BAD_MALFORMED;
		ps->flags |= WEIR_HP_HAS_CL;
		ps->remaining = ps->number;
	}
	if (slots & (1u << WEIR_HTTP_SLOT_TRANSFER_ENCODING)) {
		if (ps->flags & (WEIR_HP_HAS_CL | WEIR_HP_CHUNKED))
			return HTTP_BAD_MALFORMED;
		if (!(v & WEIR_HTTP_BIT_CHUNKED))
			return HTTP_BAD_UNSUPPORTED;
		ps->flags |= WEIR_HP_CHUNKED;
	}
	if (sc->response)
		return 0;
	if (slots & (1u << WEIR_HTTP_SLOT_HOST)) {
		if (ps->flags & WEIR_HP_HOST)
			return HTTP_BAD_MALFORMED;
		ps->flags |= WEIR_HP_HOST;
	}
	if (slots & (1u << WEIR_HTTP_SLOT_UPGRADE))
		return HTTP_BAD_UNSUPPORTED;
	/* A name matches at most one slot (slots are distinct names): find it in five steps. */
	if (slots) {
		s = 0;
		if (!(slots & 0xffff)) { s += 16; slots >>= 16; }
		if (!(slots & 0xff)) { s += 8; slots >>= 8; }
		if (!(slots & 0xf)) { s += 4; slots >>= 4; }
		if (!(slots & 0x3)) { s += 2; slots >>= 2; }
		if (!(slots & 0x1)) { s += 1; }
		ps->seen |= set->slot_reqs[s & (WEIR_HTTP_MAX_SLOTS - 1)] & v;
	}
	return 0;
}

int weir_http_head(struct __sk_buff *skb);
int weir_http_status(struct __sk_buff *skb);

/* A byte a header value may hold (the value DFA's well-formed bytes). */
static __always_inline int is_value_byte(__u8 c)
{
	return (c >= 0x20 || c == '\t') && c != 0x7f;
}

/* Appends a byte to the request's captured header values, while they fit. */
static __always_inline void hdr_put(struct http_scratch *sc, __u8 c)
{
	__u8 n = sc->conn.hdrs_len;

	if (n < WEIR_HTTP_HDRS_CAP) {
		sc->conn.hdrs[n & (WEIR_HTTP_HDRS_CAP - 1)] = c;
		sc->conn.hdrs_len = n + 1;
	}
}

/* The DFA of `kind` of the scratch's set (looked up where used: keeping four map pointers live
 * across the loop would spill them to the stack). */
static __always_inline struct weir_http_dfa *set_dfa(const struct http_scratch *sc, __u32 kind)
{
	__u32 idx = sc->set_index * 4 + kind;

	return bpf_map_lookup_elem(&weir_http_dfa, &idx);
}

/* A new request begins: the per-request parts of the state start afresh. */
static __always_inline void start_request(struct http_scratch *sc, struct weir_http_parser *ps,
					  const struct weir_http_dfa *method)
{
	ps->state = method->start;
	ps->method_mask = 0;
	ps->path_mask = 0;
	ps->seen = 0;
	ps->flags &= WEIR_HP_SYNCED;
	ps->number = 0;
	sc->conn.line_len = 0;
	sc->conn.host_len = 0;
	sc->conn.host_raw = 0;
	sc->conn.method_len = 0;
	sc->conn.hdrs_len = 0;
	/* The Host's room goes whole into the request's record, and a short request's record holds
	 * its line's first bytes whole: nothing of an earlier Host or line. */
	__builtin_memset(sc->conn.host, 0, sizeof(sc->conn.host));
	__builtin_memset(sc->conn.line, 0, HTTP_SHORT_DATA);
	/* With no response outstanding, this request's response starts at what the client
	 * acknowledges now. (Pipelined: unknown, left as it was.) */
	if (sc->conn.requests == sc->conn.responses)
		sc->conn.resync_seq = sc->ack;
}

/* A new response begins. */
static __always_inline void start_response(struct weir_http_parser *ps)
{
	ps->phase = HP_STATUS;
	ps->pos = 0;
	ps->status = 0;
	ps->head_len = 0;
	ps->flags &= WEIR_HP_SYNCED;
}

/* Appends a byte to the captured Host, while it fits (its length leaves out trailing OWS). */
static __always_inline void host_put(struct http_scratch *sc, __u8 c)
{
	__u8 n = sc->conn.host_raw;

	if (n < WEIR_HTTP_HOST_CAP) {
		sc->conn.host[n & (WEIR_HTTP_HOST_CAP - 1)] = c;
		sc->conn.host_raw = n + 1;
		if (c != ' ' && c != '\t')
			sc->conn.host_len = n + 1;
	}
}

/* One byte of a header value (phase HP_VALUE): the value DFA, the number a Content-Length
 * would hold, and the captures (flow headers, Host). */
static __always_inline void value_byte(struct http_scratch *sc, struct weir_http_parser *ps,
				       const struct weir_http_dfa *d, __u8 c)
{
	ps->state = dfa_step(d, ps->state, c);
	if (c != ' ' && c != '\t')
		ps->value_state = ps->state;
	if (c >= '0' && c <= '9' && ps->digits != 0xff) {
		ps->number = ps->number * 10 + (c - '0');
		if (ps->number > 0xffffffffULL)
			ps->digits = 0xff;
	}
	/* Only bytes a value may hold: the line is checked at its end, but a request refused then
	 * is still reported, and must not carry forged marks. */
	if ((ps->flags & WEIR_HP_CAPTURE) && is_value_byte(c))
		hdr_put(sc, c);
	if (!sc->response && (ps->slots & (1u << WEIR_HTTP_SLOT_HOST)))
		host_put(sc, c);
}

/* Buffers the payload from `off` (up to HTTP_BUF bytes; off < sc->end). */
static __always_inline int load_buf(struct __sk_buff *skb, struct http_scratch *sc, __u32 off)
{
	__u32 len = sc->end - off;

	if (len > HTTP_BUF)
		len = HTTP_BUF;
	if (len < 1)
		return -1;
	if (bpf_skb_load_bytes(skb, off, sc->buf, len) < 0)
		return -1;
	sc->buf_start = off;
	sc->buf_len = len;
	return 0;
}

/* Where the next byte to parse (sc->off) is in the buffer, in *rel, and how many buffered bytes
 * follow from there, in *avail (1 to HTTP_BUF); 0 when it is not buffered. */
static __always_inline int buffered_at(const struct http_scratch *sc, __u32 *rel, __u32 *avail)
{
	__u32 off = sc->off, r;

	if (off >= sc->end || off < sc->buf_start)
		return 0;
	r = off - sc->buf_start;
	if (r >= sc->buf_len || r >= HTTP_BUF)
		return 0;
	*rel = r;
	*avail = sc->buf_len - r;
	return 1;
}

/* The DFA `d` from *state over b[0, avail) up to a space: the bytes taken, the state reached in
 * *state. (A pointer to the bytes and a 32-bit state: the loop's values then fit in registers,
 * none spilled to the stack.) */
static __always_inline __u32 run_to_space(const struct weir_http_dfa *d, const __u8 *b, __u32 avail, __u8 *state)
{
	__u32 j, st = *state;

	for (j = 0; j < HTTP_BUF; j++) {
		__u8 c;

		if (j >= avail)
			break;
		c = b[j];
		if (c == ' ')
			break;
		st = dfa_next(d, st, c);
	}
	*state = st;
	return j;
}

/* Whether weir_http_scan runs through the current field. */
static __always_inline int scannable(const struct http_scratch *sc, const struct weir_http_parser *ps)
{
	switch (ps->phase) {
	case HP_METHOD:
		return 1;
	case HP_TARGET:
		return !sc->response;
	case HP_VERSION:
		return ps->pos == 0;
	case HP_NAME:
		return 1;
	case HP_VALUE:
		return 1;
	default:
		return 0;
	}
}

/* Whether the captured line's method, `method_len` bytes, is CONNECT. */
static __always_inline int method_is_connect(const struct http_scratch *sc, __u32 method_len)
{
	const __u8 *l = sc->conn.line;

	return method_len == 7 && l[0] == 'C' && l[1] == 'O' && l[2] == 'N' && l[3] == 'N' && l[4] == 'E' &&
	       l[5] == 'C' && l[6] == 'T';
}

/* Parses the packet's payload from sc->off until the payload ends, a request is denied, the input
 * is invalid or HTTP_STEP_BYTES steps are done. Global: the verifier checks it once, on its own
 * (its cost grows with the loop bound, so the bound is small and weir_http_run repeats it). */
__attribute__((noinline)) int weir_http_step(struct __sk_buff *skb)
{
	struct weir_http_parser *ps;
	struct weir_http_dfa *d;
	struct http_scratch *sc;
	__u32 zero = 0, i;
	int bad;

	if (!skb)
		return HTTP_ERROR;
	sc = bpf_map_lookup_elem(&weir_http_scratch, &zero);
	if (!sc)
		return HTTP_ERROR;
	ps = sc->response ? &sc->conn.resp : &sc->conn.req;

	for (i = 0; i < HTTP_STEP_BYTES; i++) {
		__u32 off = sc->off, rel;
		__u8 phase = ps->phase, c;
		int in_head;

		if (off >= sc->end)
			return HTTP_CONSUMED;

		/* Bodies are skipped in bulk. */
		if (phase == HP_BODY || phase == HP_CHUNK_DATA || phase == HP_UNTIL_CLOSE) {
			__u64 n = sc->end - off;

			if (phase == HP_UNTIL_CLOSE) {
				sc->off = sc->end;
				return HTTP_CONSUMED;
			}
			if (n > ps->remaining)
				n = ps->remaining;
			sc->off = off + (__u32)n;
			ps->remaining -= n;
			if (ps->remaining == 0)
				ps->phase = phase == HP_BODY ? HP_METHOD : HP_CHUNK_DATA_CR;
			continue;
		}

		rel = off - sc->buf_start;
		if (off < sc->buf_start || rel >= sc->buf_len) {
			if (load_buf(skb, sc, off) < 0)
				return HTTP_ERROR;
			rel = 0;
		}
		c = sc->buf[rel & (HTTP_BUF - 1)];
		sc->off = off + 1;

		if (sc->response && phase == HP_METHOD) {
			phase = HP_STATUS;
			start_response(ps);
		}
		in_head = phase <= HP_END_LF || phase == HP_STATUS || phase == HP_STATUS_REST;
		if (in_head) {
			if (ps->head_len == 0 && phase == HP_METHOD && !sc->response) {
				d = set_dfa(sc, WEIR_DFA_METHOD);
				if (!d)
					return HTTP_ERROR;
				start_request(sc, ps, d);
			}
			ps->head_len += 1;
			/* A head may not reach the limit without completing on its last byte. */
			if (ps->head_len >= WEIR_HTTP_MAX_HEAD && !(phase == HP_END_LF && c == '\n')) {
				sc->reason = HTTP_BAD_TOO_LONG;
				return HTTP_INVALID;
			}
		}
		if (!sc->response && phase <= HP_TARGET && (phase == HP_METHOD || c != ' ')) {
			/* Capture "method SP target" for the flow. */
			__u8 n = sc->conn.line_len;

			if (n < 255) {
				sc->conn.line[n] = c;
				sc->conn.line_len = n + 1;
			}
		}

		/* Read phase and byte afresh: the tests above narrowed the old values, and the
		 * verifier would follow each narrowing separately through the switch below. */
		phase = *(volatile __u8 *)&ps->phase;
		c = *(volatile __u8 *)&sc->buf[rel & (HTTP_BUF - 1)];
		bad = 0;
		switch (phase) {
		case HP_METHOD:
			d = set_dfa(sc, WEIR_DFA_METHOD);
			if (!d)
				return HTTP_ERROR;
			if (c == ' ') {
				__u64 m = dfa_accept(d, ps->state);

				if (!(m & WEIR_HTTP_BIT_WELLFORMED)) {
					bad = HTTP_BAD_MALFORMED;
					break;
				}
				ps->method_mask = m;
				/* The line holds the method and this space. */
				sc->conn.method_len = sc->conn.line_len - 1;
				if (method_is_connect(sc, sc->conn.method_len)) {
					bad = HTTP_BAD_UNSUPPORTED;
					break;
				}
				d = set_dfa(sc, WEIR_DFA_PATH);
				if (!d)
					return HTTP_ERROR;
				ps->state = d->start;
				ps->phase = HP_TARGET;
			} else {
				ps->state = dfa_step(d, ps->state, c);
			}
			break;
		case HP_TARGET:
			d = set_dfa(sc, WEIR_DFA_PATH);
			if (!d)
				return HTTP_ERROR;
			if (c == ' ') {
				__u64 m = dfa_accept(d, ps->state);

				if (!(m & WEIR_HTTP_BIT_WELLFORMED)) {
					bad = HTTP_BAD_MALFORMED;
					break;
				}
				ps->path_mask = m;
				ps->phase = HP_VERSION;
				ps->pos = 0;
			} else {
				ps->state = dfa_step(d, ps->state, c);
			}
			break;
		case HP_VERSION:
			if (ps->pos < 7) {
				if (ps->pos == 5 && c == '2') {
					/* HTTP/2 (the h2c preface): not HTTP/1.x. */
					bad = HTTP_BAD_UNSUPPORTED;
					break;
				}
				if (c != version_char(ps->pos))
					bad = HTTP_BAD_MALFORMED;
			} else if (ps->pos == 7) {
				if (c != '0' && c != '1')
					bad = HTTP_BAD_MALFORMED;
				sc->conn.version = c - '0';
			} else if (c == '\r') {
				ps->phase = HP_LINE_LF;
			} else {
				bad = HTTP_BAD_MALFORMED;
			}
			ps->pos += 1;
			break;
		case HP_LINE_LF:
			if (c != '\n')
				bad = HTTP_BAD_MALFORMED;
			ps->phase = HP_HSTART;
			break;
		case HP_HSTART:
			if (c == '\r') {
				ps->phase = HP_END_LF;
				break;
			}
			if (c == ':') {
				bad = HTTP_BAD_MALFORMED;
				break;
			}
			d = set_dfa(sc, WEIR_DFA_NAME);
			if (!d)
				return HTTP_ERROR;
			ps->state = dfa_step(d, d->start, c);
			ps->phase = HP_NAME;
			break;
		case HP_NAME:
			d = set_dfa(sc, WEIR_DFA_NAME);
			if (!d)
				return HTTP_ERROR;
			if (c == ':') {
				__u64 n = dfa_accept(d, ps->state);

				if (!(n & WEIR_HTTP_BIT_WELLFORMED)) {
					bad = HTTP_BAD_MALFORMED;
					break;
				}
				ps->slots = (__u32)n;
				ps->flags &= ~WEIR_HP_CAPTURE;
				if (!sc->response && (n & WEIR_HTTP_CAPTURE_MASK)) {
					/* A header whose values flows carry: its mark, then its value. */
					ps->flags |= WEIR_HP_CAPTURE;
					hdr_put(sc, WEIR_HTTP_HDR_MARK - 1 + ((n >> WEIR_HTTP_CAPTURE_SHIFT) & 0xf));
				}
				d = set_dfa(sc, WEIR_DFA_VALUE);
				if (!d)
					return HTTP_ERROR;
				ps->state = d->start;
				ps->value_state = d->start;
				ps->number = 0;
				ps->digits = 0;
				ps->phase = HP_VLEAD;
			} else if (c == '\r' || c == '\n') {
				bad = HTTP_BAD_MALFORMED;
			} else {
				ps->state = dfa_step(d, ps->state, c);
			}
			break;
		case HP_VLEAD:
		case HP_VALUE:
			if (c == '\r') {
				bad = weir_http_line(skb);
				/* A value ends (and is reported) only on a line that passed its checks. */
				if (!bad && (ps->flags & WEIR_HP_CAPTURE))
					hdr_put(sc, WEIR_HTTP_HDR_END);
				ps->phase = HP_LINE_LF;
				break;
			}
			if (c == '\n') {
				bad = HTTP_BAD_MALFORMED;
				break;
			}
			if (phase == HP_VLEAD && (c == ' ' || c == '\t'))
				break;
			ps->phase = HP_VALUE;
			d = set_dfa(sc, WEIR_DFA_VALUE);
			if (!d)
				return HTTP_ERROR;
			value_byte(sc, ps, d, c);
			break;
		case HP_END_LF:
			if (c != '\n') {
				bad = HTTP_BAD_MALFORMED;
				break;
			}
			ps->head_len = 0;
			ps->phase = HP_METHOD;
			return HTTP_HEAD_DONE;
		case HP_CHUNK_SIZE: {
			int h = hexval(c);

			if (h >= 0) {
				if (ps->digits >= 8) {
					bad = HTTP_BAD_MALFORMED;
					break;
				}
				ps->number = (ps->number << 4) | (__u64)h;
				ps->digits += 1;
			} else if (ps->digits == 0) {
				bad = HTTP_BAD_MALFORMED;
			} else if (c == ';') {
				ps->phase = HP_CHUNK_EXT;
			} else if (c == '\r') {
				ps->phase = HP_CHUNK_SIZE_LF;
			} else {
				bad = HTTP_BAD_MALFORMED;
			}
			break;
		}
		case HP_CHUNK_EXT:
			if (c == '\r')
				ps->phase = HP_CHUNK_SIZE_LF;
			else if (is_ctl(c))
				bad = HTTP_BAD_MALFORMED;
			break;
		case HP_CHUNK_SIZE_LF:
			if (c != '\n') {
				bad = HTTP_BAD_MALFORMED;
				break;
			}
			if (ps->number == 0) {
				ps->phase = HP_TRAILER_START;
			} else {
				ps->remaining = ps->number;
				ps->phase = HP_CHUNK_DATA;
			}
			break;
		case HP_CHUNK_DATA_CR:
			if (c != '\r')
				bad = HTTP_BAD_MALFORMED;
			ps->phase = HP_CHUNK_DATA_LF;
			break;
		case HP_CHUNK_DATA_LF:
			if (c != '\n')
				bad = HTTP_BAD_MALFORMED;
			ps->phase = HP_CHUNK_SIZE;
			ps->number = 0;
			ps->digits = 0;
			break;
		case HP_TRAILER_START:
			if (c == '\r') {
				ps->phase = HP_TRAILER_END_LF;
				break;
			}
			if (!is_tchar(c)) {
				bad = HTTP_BAD_MALFORMED;
				break;
			}
			ps->phase = HP_TRAILER_NAME;
			break;
		case HP_TRAILER_NAME:
			if (c == ':')
				ps->phase = HP_TRAILER_VALUE;
			else if (!is_tchar(c))
				bad = HTTP_BAD_MALFORMED;
			break;
		case HP_TRAILER_VALUE:
			if (c == '\r')
				ps->phase = HP_TRAILER_LF;
			else if (is_ctl(c))
				bad = HTTP_BAD_MALFORMED;
			break;
		case HP_TRAILER_LF:
			if (c != '\n')
				bad = HTTP_BAD_MALFORMED;
			ps->phase = HP_TRAILER_START;
			break;
		case HP_TRAILER_END_LF:
			if (c != '\n')
				bad = HTTP_BAD_MALFORMED;
			ps->phase = HP_METHOD;
			break;
		case HP_STATUS:
			/* "HTTP/1.x NNN" */
			if (ps->pos < 7) {
				if (c != version_char(ps->pos))
					bad = HTTP_BAD_MALFORMED;
			} else if (ps->pos == 7) {
				if (c != '0' && c != '1')
					bad = HTTP_BAD_MALFORMED;
			} else if (ps->pos == 8) {
				if (c != ' ')
					bad = HTTP_BAD_MALFORMED;
			} else if (ps->pos < 12) {
				if (c < '0' || c > '9')
					bad = HTTP_BAD_MALFORMED;
				ps->status = ps->status * 10 + (c - '0');
				if (ps->pos == 11 && !bad) {
					ps->phase = HP_STATUS_REST;
					ps->pos += 1;
					return HTTP_STATUS;
				}
			}
			ps->pos += 1;
			break;
		case HP_STATUS_REST:
			if (c == '\r')
				ps->phase = HP_LINE_LF;
			else if (c == '\n')
				bad = HTTP_BAD_MALFORMED;
			break;
		default:
			bad = HTTP_BAD_MALFORMED;
			break;
		}

		if (bad) {
			sc->reason = bad;
			return HTTP_INVALID;
		}
		/* Entering a field the fast path runs through: hand over to it. */
		if (ps->phase != phase && scannable(sc, ps))
			return HTTP_STEPS;
	}
	return HTTP_STEPS;
}

/* A request line's version and its end, "HTTP/1.x" CR LF, at `b` (10 buffered bytes): taken as
 * the general loop would take them, up to the next line's start. Returns 0, changing nothing,
 * for anything else. */
static __always_inline int request_version(struct http_scratch *sc, struct weir_http_parser *ps, const __u8 *b)
{
	if (!http1_version(b) || b[8] != '\r' || b[9] != '\n')
		return 0;
	sc->conn.version = b[7] - '0';
	ps->pos = 9;
	ps->phase = HP_HSTART;
	return 1;
}

/* The fast path of the byte loop, over the buffered payload (http_packet buffers a packet's
 * start; the general loop buffers the rest): a method (from a request's first byte) or a
 * request-target, with a DFA step and the line's capture per byte; a header name, with a DFA step
 * per byte; the value of a header no rule or framing check looks at, whose bytes are only
 * checked; up to HTTP_SCAN_VALUE bytes of any other value, each taken as the general loop takes
 * it; a well-formed version with its line end at once; and a status line up to the code's last
 * digit. It runs up to the byte that ends the field (which the general loop then handles exactly
 * as it would have) or the end of the buffered payload, and stops one byte short of the head
 * limit so that the general loop reports a head that is too long. Global: verified once. Returns
 * the bytes consumed. */
__attribute__((noinline)) int weir_http_scan(struct __sk_buff *skb)
{
	struct weir_http_parser *ps;
	struct weir_http_dfa *d;
	struct http_scratch *sc;
	__u32 zero = 0, off, rel, avail, room, i, j, k;
	__u8 phase, st, n;

	if (!skb)
		return 0;
	sc = bpf_map_lookup_elem(&weir_http_scratch, &zero);
	if (!sc)
		return 0;
	ps = sc->response ? &sc->conn.resp : &sc->conn.req;
	phase = ps->phase;
	off = sc->off;
	if (!buffered_at(sc, &rel, &avail))
		return 0;
	room = ps->head_len < WEIR_HTTP_MAX_HEAD - 1 ? WEIR_HTTP_MAX_HEAD - 1 - ps->head_len : 0;
	if (avail > room)
		avail = room;
	st = ps->state;

	if (sc->response && phase == HP_METHOD) {
		/* A status line, "HTTP/1.x NN", up to the code's last digit (the general loop reads
		 * that one and reports the response); anything else is left to the general loop. */
		__u32 at = rel & (HTTP_BUF - 1);
		const __u8 *b = sc->buf + at;

		if (avail < 12 || at > HTTP_BUF - 12)
			return 0;
		if (!http1_version(b) || b[8] != ' ' || !is_digit(b[9]) || !is_digit(b[10]))
			return 0;
		start_response(ps);
		ps->status = (b[9] - '0') * 10 + (b[10] - '0');
		ps->pos = 11;
		j = 11;
	} else if (!sc->response && (phase == HP_TARGET || phase == HP_METHOD)) {
		/* A method or a target: both go into the captured request line. */
		d = set_dfa(sc, phase == HP_METHOD ? WEIR_DFA_METHOD : WEIR_DFA_PATH);
		if (!d)
			return 0;
		if (phase == HP_METHOD && ps->head_len == 0) {
			/* The first byte of a request. */
			start_request(sc, ps, d);
			st = d->start;
		}
		j = run_to_space(d, sc->buf + rel, avail, &st);
		/* Then the bytes taken into the line, while it has room (a loop of its own: with
		 * the DFA's, the two spill their values to the stack). Their count is read back
		 * from memory: followed from each of the first loop's exits, the second loop would
		 * cost the verifier each of its iterations again per exit. */
		sc->off = off + j;
		n = sc->conn.line_len;
		k = *(volatile __u32 *)&sc->off - off;
		if (k > 255 - n)
			k = 255 - n;
		for (i = 0; i < HTTP_BUF; i++) {
			if (i >= k)
				break;
			sc->conn.line[(n + i) & (HTTP_BUF - 1)] = sc->buf[(rel + i) & (HTTP_BUF - 1)];
		}
		sc->conn.line_len = n + k;
	} else if (phase == HP_VERSION && ps->pos == 0) {
		/* "HTTP/1.x" CR LF in one go; anything else is left to the general loop. */
		__u32 at = rel & (HTTP_BUF - 1);
		const __u8 *b = sc->buf + at;

		if (avail < 10 || at > HTTP_BUF - 10 || !request_version(sc, ps, b))
			return 0;
		j = 10;
	} else if (phase == HP_NAME) {
		d = set_dfa(sc, WEIR_DFA_NAME);
		if (!d)
			return 0;
		for (j = 0; j < HTTP_BUF; j++) {
			__u8 c;

			if (j >= avail)
				break;
			c = sc->buf[(rel + j) & (HTTP_BUF - 1)];
			if (c == ':' || c == '\r' || c == '\n')
				break;
			st = dfa_next(d, st, c);
		}
	} else if (phase == HP_VALUE && ps->slots == 0 && !(ps->flags & WEIR_HP_CAPTURE)) {
		/* Only well-formedness matters: the line's check reads the DFA state of the value's
		 * first byte, which the general loop stepped; the rest is checked here. */
		for (j = 0; j < HTTP_BUF; j++) {
			if (j >= avail)
				break;
			if (!is_value_byte(sc->buf[(rel + j) & (HTTP_BUF - 1)]))
				break;
		}
	} else if (phase == HP_VALUE) {
		/* A value a rule, a framing check, the Host or a flow header looks at: each byte as
		 * the general loop takes it. */
		d = set_dfa(sc, WEIR_DFA_VALUE);
		if (!d)
			return 0;
		for (j = 0; j < HTTP_SCAN_VALUE; j++) {
			__u8 c;

			if (j >= avail)
				break;
			c = sc->buf[(rel + j) & (HTTP_BUF - 1)];
			if (c == '\r' || c == '\n')
				break;
			value_byte(sc, ps, d, c);
		}
		st = ps->state;
	} else {
		return 0;
	}
	ps->state = st;
	ps->head_len += j;
	sc->off = off + j;
	return j;
}

#define HTTP_PLAIN_LINES 16 /* header lines weir_http_run has weir_http_hline take in a row */
#define HTTP_LINE_BYTES 128 /* weir_http_hline: the longest name, and value with its OWS, it takes
			     * (a longer line takes the general path: a larger bound costs the
			     * verifier more) */

/* weir_http_hline's second half: the value of the header line that starts at sc->off, from
 * sc->line_value to CR LF, all bytes a value may hold; the Host captured as the general loop
 * captures it (sc->line_host). Commits the line and returns 1, or returns 0 changing nothing of
 * the parse. A function of its own: after each exit of the name's loop, its loop would cost the
 * verifier all its iterations again. */
__attribute__((noinline)) int weir_http_hvalue(struct __sk_buff *skb)
{
	struct weir_http_parser *ps;
	struct http_scratch *sc;
	__u32 zero = 0, off, rel, avail, start, i;
	const __u8 *b;
	int host;

	if (!skb)
		return 0;
	sc = bpf_map_lookup_elem(&weir_http_scratch, &zero);
	if (!sc)
		return 0;
	ps = &sc->conn.req;
	off = sc->off;
	if (!buffered_at(sc, &rel, &avail))
		return 0;
	b = sc->buf + rel;
	start = sc->line_value;
	host = sc->line_host;
	for (i = 0; i < HTTP_LINE_BYTES; i++) {
		__u32 k = start + i;
		__u8 c;

		if (k >= avail)
			break;
		c = b[k & (HTTP_BUF - 1)];
		if (c == '\r') {
			if (k + 1 >= avail || b[(k + 1) & (HTTP_BUF - 1)] != '\n')
				break;
			if (host)
				ps->flags |= WEIR_HP_HOST;
			ps->slots = 0;
			ps->flags &= ~WEIR_HP_CAPTURE;
			ps->head_len += k + 2;
			sc->off = off + k + 2;
			return 1;
		}
		if (!is_value_byte(c))
			break;
		if (!host)
			continue;
		/* The Host from its first non-OWS byte, as value_byte captures it (the counts in
		 * memory, not in registers: the verifier would follow each count apart). */
		if (sc->conn.host_raw == 0 && (c == ' ' || c == '\t'))
			continue;
		host_put(sc, c);
	}
	/* Declined: the general path captures the Host again, from its start. */
	if (host) {
		sc->conn.host_raw = 0;
		sc->conn.host_len = 0;
	}
	return 0;
}

/* A whole header line of a request, from its first byte (phase HP_HSTART), when no more than
 * its well-formedness and the Host's capture matter: a name no rule, framing check or flow
 * header names, or the Host when no rule reads it; then ':', the value, CR LF, all buffered.
 * Taken as the general loop would take it, up to the next line's first byte: returns 1.
 * Returns 0, changing nothing of the parse, for anything else (another phase, a line that names
 * another slot, a malformed or unusual byte, a line longer than HTTP_LINE_BYTES or not wholly
 * buffered, a head near its limit), noting the line as declined: weir_http_edge takes it.
 * Global: verified once. */
__attribute__((noinline)) int weir_http_hline(struct __sk_buff *skb)
{
	struct weir_http_parser *ps;
	struct weir_http_set *set;
	struct weir_http_dfa *d;
	struct http_scratch *sc;
	__u32 zero = 0, off, rel, avail, st, j, slots, idx;
	const __u8 *b;
	__u64 m;

	if (!skb)
		return 0;
	sc = bpf_map_lookup_elem(&weir_http_scratch, &zero);
	if (!sc || sc->response)
		return 0;
	ps = &sc->conn.req;
	if (ps->phase != HP_HSTART)
		return 0;
	off = sc->off;
	/* Declined unless taken (weir_http_edge then takes the line's first byte). A whole line is
	 * at most the buffer: one taken below the limit keeps the head below it. */
	sc->line_declined = off + 1;
	if (ps->head_len > WEIR_HTTP_MAX_HEAD - 1 - HTTP_BUF || !buffered_at(sc, &rel, &avail))
		return 0;
	b = sc->buf + rel;
	d = set_dfa(sc, WEIR_DFA_NAME);
	if (!d)
		return 0;
	st = d->start;
	for (j = 0; j < HTTP_LINE_BYTES; j++) {
		__u8 c;

		if (j >= avail)
			return 0;
		c = b[j];
		if (c == ':')
			break;
		if (c == '\r' || c == '\n')
			return 0;
		st = dfa_next(d, st, c);
	}
	m = dfa_accept(d, st);
	slots = (__u32)m;
	if (j == 0 || j >= HTTP_LINE_BYTES || !(m & WEIR_HTTP_BIT_WELLFORMED) || (m & WEIR_HTTP_CAPTURE_MASK))
		return 0;
	sc->line_host = 0;
	if (slots == 1u << WEIR_HTTP_SLOT_HOST) {
		idx = sc->set_index;
		set = bpf_map_lookup_elem(&weir_http_sets, &idx);
		if (!set || set->slot_reqs[WEIR_HTTP_SLOT_HOST] || (ps->flags & WEIR_HP_HOST))
			return 0;
		sc->line_host = 1;
	} else if (slots) {
		return 0;
	}
	sc->line_value = j + 1;
	return weir_http_hvalue(skb);
}

/* The request's next byte, when it is buffered: EDGE_END when the payload ends, EDGE_LOAD when
 * the byte is not buffered. */
#define EDGE_END  (-1)
#define EDGE_LOAD (-2)

static __always_inline int buffered_byte(const struct http_scratch *sc)
{
	__u32 off = sc->off, rel;

	if (off >= sc->end)
		return EDGE_END;
	if (off < sc->buf_start)
		return EDGE_LOAD;
	rel = off - sc->buf_start;
	if (rel >= sc->buf_len)
		return EDGE_LOAD;
	return sc->buf[rel & (HTTP_BUF - 1)];
}

/* What weir_http_edge returns when it cannot take the next byte. */
static __always_inline int edge_stop(int c)
{
	return c == EDGE_END ? HTTP_CONSUMED : HTTP_FALLBACK;
}

/* Whether the field `kind`'s DFA reads ends, well formed, at `c` (its separator `sep`): 0, with
 * its accepting bits in *m; HTTP_FALLBACK when not, HTTP_ERROR without tables. */
static __always_inline int edge_field_end(const struct http_scratch *sc, const struct weir_http_parser *ps, int c,
					  int sep, __u32 kind, __u64 *m)
{
	struct weir_http_dfa *d;

	if (c != sep)
		return HTTP_FALLBACK;
	d = set_dfa(sc, kind);
	if (!d)
		return HTTP_ERROR;
	*m = dfa_accept(d, ps->state);
	return (*m & WEIR_HTTP_BIT_WELLFORMED) ? 0 : HTTP_FALLBACK;
}

/* A byte of the head is taken. */
static __always_inline void edge_take(struct http_scratch *sc, struct weir_http_parser *ps)
{
	sc->off += 1;
	ps->head_len += 1;
}

/* The fast path's counterpart at the end of a request's field, where weir_http_scan stops: the
 * bytes between one field a fast run takes and the next (the spaces of the request line, the
 * version, the line ends, a header's colon and the spaces before its value, the head's end),
 * taken as weir_http_step takes them when they are well formed, without its general machinery.
 * Returns HTTP_STEPS when the next field is reached, HTTP_HEAD_DONE, HTTP_INVALID (a header line
 * that fails its checks), HTTP_CONSUMED when the payload ends, HTTP_ERROR, or HTTP_FALLBACK,
 * with the state as the general loop would have left it at that byte, for anything else (a
 * response, a malformed or unusual byte, a byte not buffered, a head near its limit): the
 * general loop then takes that byte. Global: verified once (no loop, so cheaply). */
__attribute__((noinline)) int weir_http_edge(struct __sk_buff *skb)
{
	struct weir_http_parser *ps;
	struct weir_http_dfa *d;
	struct http_scratch *sc;
	__u32 zero = 0, n, i;
	__u64 m = 0;
	__u8 phase;
	int c, r;

	if (!skb)
		return HTTP_ERROR;
	sc = bpf_map_lookup_elem(&weir_http_scratch, &zero);
	if (!sc)
		return HTTP_ERROR;
	if (sc->off >= sc->end)
		return HTTP_CONSUMED;
	ps = &sc->conn.req;
	/* A request's first byte starts it (the general loop's work), bodies are skipped in bulk,
	 * and the general loop reports a head that reaches the limit. */
	if (sc->response || ps->head_len == 0 || ps->head_len > WEIR_HTTP_MAX_HEAD - 1 - HTTP_EDGE_BYTES)
		return HTTP_FALLBACK;
	phase = ps->phase;
	c = buffered_byte(sc);
	if (c == EDGE_LOAD) {
		/* A fast run stopped at the buffer's end, inside a field: buffer the next bytes for
		 * the next run rather than hand them to the general loop. */
		if (load_buf(skb, sc, sc->off) < 0)
			return HTTP_FALLBACK;
		return HTTP_STEPS;
	}
	if (c < 0)
		return edge_stop(c);

	if (phase == HP_METHOD) {
		r = edge_field_end(sc, ps, c, ' ', WEIR_DFA_METHOD, &m);
		if (r)
			return r;
		n = sc->conn.line_len;
		/* (CONNECT: the general loop refuses it.) */
		if (method_is_connect(sc, n))
			return HTTP_FALLBACK;
		d = set_dfa(sc, WEIR_DFA_PATH);
		if (!d)
			return HTTP_ERROR;
		edge_take(sc, ps);
		/* The line holds the method and this space. */
		if (n < 255) {
			sc->conn.line[n & 0xff] = ' ';
			n += 1;
			sc->conn.line_len = n;
		}
		sc->conn.method_len = n - 1;
		ps->method_mask = m;
		ps->state = d->start;
		ps->phase = HP_TARGET;
		return HTTP_STEPS;
	}

	if (phase == HP_TARGET) {
		__u32 rel;

		r = edge_field_end(sc, ps, c, ' ', WEIR_DFA_PATH, &m);
		if (r)
			return r;
		edge_take(sc, ps);
		ps->path_mask = m;
		ps->phase = HP_VERSION;
		ps->pos = 0;
		/* The version and the line's end, when buffered (else the fast path's run). */
		rel = sc->off - sc->buf_start;
		if (sc->off < sc->buf_start || sc->off + 10 > sc->end || rel > HTTP_BUF - 10 || rel + 10 > sc->buf_len ||
		    !request_version(sc, ps, sc->buf + (rel & (HTTP_BUF - 1))))
			return HTTP_STEPS;
		sc->off += 10;
		ps->head_len += 10;
		phase = HP_HSTART;
	} else if (phase == HP_NAME) {
		r = edge_field_end(sc, ps, c, ':', WEIR_DFA_NAME, &m);
		if (r)
			return r;
		d = set_dfa(sc, WEIR_DFA_VALUE);
		if (!d)
			return HTTP_ERROR;
		edge_take(sc, ps);
		ps->slots = (__u32)m;
		ps->flags &= ~WEIR_HP_CAPTURE;
		if (m & WEIR_HTTP_CAPTURE_MASK) {
			/* A header whose values flows carry: its mark, then its value. */
			ps->flags |= WEIR_HP_CAPTURE;
			hdr_put(sc, WEIR_HTTP_HDR_MARK - 1 + ((m >> WEIR_HTTP_CAPTURE_SHIFT) & 0xf));
		}
		ps->state = d->start;
		ps->value_state = d->start;
		ps->number = 0;
		ps->digits = 0;
		ps->phase = HP_VLEAD;
		/* The spaces before the value, then its first byte. */
		for (i = 0; i < 4; i++) {
			c = buffered_byte(sc);
			if (c < 0)
				return edge_stop(c);
			if (c != ' ' && c != '\t')
				break;
			edge_take(sc, ps);
		}
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			return HTTP_FALLBACK;
		edge_take(sc, ps);
		ps->phase = HP_VALUE;
		value_byte(sc, ps, d, c);
		return HTTP_STEPS;
	} else if (phase == HP_VALUE) {
		int bad;

		if (c != '\r')
			return HTTP_FALLBACK;
		edge_take(sc, ps);
		bad = weir_http_line(skb);
		ps->phase = HP_LINE_LF;
		if (bad) {
			sc->reason = bad;
			return HTTP_INVALID;
		}
		/* A value ends (and is reported) only on a line that passed its checks. */
		if (ps->flags & WEIR_HP_CAPTURE)
			hdr_put(sc, WEIR_HTTP_HDR_END);
		c = buffered_byte(sc);
		if (c < 0)
			return edge_stop(c);
		if (c != '\n')
			return HTTP_FALLBACK;
		edge_take(sc, ps);
		ps->phase = HP_HSTART;
		phase = HP_HSTART;
	} else if (phase != HP_HSTART) {
		return HTTP_FALLBACK;
	}

	/* The start of a header line (offered to weir_http_hline first: weir_http_run calls it on
	 * HTTP_LINE; a line it declined is taken here), or the head's end. */
	c = buffered_byte(sc);
	if (c < 0)
		return edge_stop(c);
	if (c != '\r' && sc->line_declined != sc->off + 1)
		return HTTP_LINE;
	if (c == '\r') {
		edge_take(sc, ps);
		ps->phase = HP_END_LF;
		c = buffered_byte(sc);
		if (c < 0)
			return edge_stop(c);
		if (c != '\n')
			return HTTP_FALLBACK;
		sc->off += 1;
		ps->head_len = 0;
		ps->phase = HP_METHOD;
		return HTTP_HEAD_DONE;
	}
	if (c == ':')
		return HTTP_FALLBACK;
	d = set_dfa(sc, WEIR_DFA_NAME);
	if (!d)
		return HTTP_ERROR;
	edge_take(sc, ps);
	ps->state = dfa_step(d, d->start, c);
	ps->phase = HP_NAME;
	return HTTP_STEPS;
}

/* Whether the payload ends where the head that just completed ends (the common case: the
 * parser then has nothing left to do in this segment). */
static __always_inline int head_consumed(void)
{
	struct http_scratch *sc;
	__u32 zero = 0;

	sc = bpf_map_lookup_elem(&weir_http_scratch, &zero);
	return sc && sc->off >= sc->end;
}

/* Up to HTTP_STEP_BYTES * HTTP_RUN_STEPS steps, each after a fast run where one applies. */
__attribute__((noinline)) int weir_http_run(struct __sk_buff *skb)
{
	int i, k, r = HTTP_STEPS;

	if (!skb)
		return HTTP_ERROR;
	for (i = 0; i < HTTP_RUN_STEPS; i++) {
		weir_http_scan(skb);
		r = weir_http_edge(skb);
		if (r == HTTP_LINE) {
			/* Header lines taken whole while they can be; the first one that cannot be
			 * (or the head's end) is the next run's. */
			for (k = 0; k < HTTP_PLAIN_LINES; k++) {
				if (!weir_http_hline(skb))
					break;
			}
			r = HTTP_STEPS;
			continue;
		}
		if (r == HTTP_FALLBACK)
			r = weir_http_step(skb);
		if (r == HTTP_STATUS) {
			/* A response reported at its status line stops being parsed. */
			if (weir_http_status(skb))
				return HTTP_CONSUMED;
			r = HTTP_STEPS;
			continue;
		}
		if (r == HTTP_HEAD_DONE) {
			/* Called from here, not from the byte loop: the stack of the call chain stays
			 * within the verifier's 512 bytes. */
			if (weir_http_head(skb))
				return HTTP_DENIED;
			/* The common end: one head, the segment's last bytes. */
			if (head_consumed())
				return HTTP_CONSUMED;
			r = HTTP_STEPS;
			continue;
		}
		if (r != HTTP_STEPS)
			break;
	}
	return r;
}

#endif /* WEIR_HTTP_H */
