/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The kernel/user ABI of weir's datapath: every struct and constant the eBPF programs share
 * with the agent. Written once here; mirrored in Rust by probes/src/abi.rs, whose sizes and
 * field offsets a test checks against the BTF of the compiled object.
 *
 * Rules: fixed-width types only, explicit padding, no bool, no bitfields. Retired fields stay
 * as reserved_*. Any layout change bumps WEIR_ABI_VERSION (the pin directory is versioned).
 */
#ifndef WEIR_ABI_H
#define WEIR_ABI_H

#include <linux/types.h>

#define WEIR_ABI_VERSION 9

/* ---- Events (ring buffer weir_events) ------------------------------------------------- */

/* Event types: the numbering of Cilium's monitor API (Hubble's CiliumEventType.type). */
#define WEIR_EVENT_DROP           1
#define WEIR_EVENT_TRACE          4
#define WEIR_EVENT_POLICY_VERDICT 5
#define WEIR_EVENT_L7             129 /* struct weir_l7_event */

#define WEIR_EVENT_VERSION 1

/* Drop reasons: values of Hubble's flow.DropReason. */
#define WEIR_DROP_INVALID_SOURCE_IP   132
#define WEIR_DROP_POLICY_DENIED       133 /* default deny: no allow rule matched */
#define WEIR_DROP_INVALID_PACKET      134
#define WEIR_DROP_CT_INVALID_HDR      135 /* truncated or invalid header */
#define WEIR_DROP_FRAG_NOT_FOUND      175 /* first fragment of a datagram not seen */
#define WEIR_DROP_POLICY_DENY         181 /* explicit deny rule */
#define WEIR_DROP_SOCKET_LOOKUP_FAILED 178 /* L7 proxy: no listener registered (the agent is down) */
#define WEIR_DROP_SOCKET_ASSIGN_FAILED 179 /* L7 proxy: the hand-over to its listener failed */
#define WEIR_DROP_PROXY_UNSUPPORTED   180 /* L7: a protocol or feature the parser does not police (fails closed) */
#define WEIR_DROP_EP_NOT_READY        203 /* no policy computed for this endpoint yet */

/* Trace observation points: the monitor's sub_type numbering (not the proto enum). */
#define WEIR_OBS_TO_ENDPOINT   0
#define WEIR_OBS_TO_PROXY      1
#define WEIR_OBS_TO_STACK      3
#define WEIR_OBS_FROM_ENDPOINT 5

/* Trace reasons: Hubble's flow.TraceReason. */
#define WEIR_TRACE_NEW         1
#define WEIR_TRACE_ESTABLISHED 2
#define WEIR_TRACE_REPLY       3
#define WEIR_TRACE_RELATED     4

/* Traffic direction, from the endpoint's point of view (Hubble's TrafficDirection). */
#define WEIR_DIR_INGRESS 1
#define WEIR_DIR_EGRESS  2

/* weir_flow_event.flags */
#define WEIR_EVF_IPV6     0x01 /* addresses are IPv6 (else IPv4 in the first 4 bytes) */
#define WEIR_EVF_REPLY    0x02 /* packet travels in the reply direction of its connection */
#define WEIR_EVF_AUDIT    0x04 /* policy verdict in audit mode: would drop, forwarded */
#define WEIR_EVF_FRAGMENT 0x08 /* non-first fragment; ports come from the fragment map */

/* Verdict of a policy-verdict event (weir_flow_event.verdict). */
#define WEIR_VERDICT_ALLOWED 0
#define WEIR_VERDICT_DENIED  1

/* One event per connection verdict, trace or drop. 96 bytes. */
struct weir_flow_event {
	__u8 type;          /* WEIR_EVENT_* */
	__u8 version;       /* WEIR_EVENT_VERSION */
	__u8 obs_point;     /* trace: WEIR_OBS_*; others: the point the event was taken at */
	__u8 flags;         /* WEIR_EVF_* */
	__u8 direction;     /* WEIR_DIR_* of the connection */
	__u8 trace_reason;  /* WEIR_TRACE_* */
	__u8 match_type;    /* policy match type (Hubble policy_match_type) */
	__u8 protocol;      /* IP protocol number */
	__u8 tcp_flags;     /* FIN 0x01 SYN 0x02 RST 0x04 PSH 0x08 ACK 0x10 URG 0x20 ECE 0x40 CWR 0x80 */
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 verdict;       /* policy-verdict: WEIR_VERDICT_* */
	__u16 drop_reason;  /* WEIR_DROP_* (drops and denied policy verdicts), else 0 */
	__u16 reserved_0;
	__u32 ifindex;      /* host-side interface of the endpoint */
	__u32 ep_id;        /* local endpoint id */
	__u32 src_identity;
	__u32 dst_identity;
	__u32 rule_set;     /* deciding rule set (0 = none) */
	__u32 count;        /* packets this event stands for (aggregation) */
	__u32 pkt_len;      /* length of the packet that triggered the event */
	__u32 reserved_1;
	__u64 ts_boot_ns;   /* bpf_ktime_get_boot_ns() */
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;        /* host byte order; ICMP echo: identifier */
	__u16 dport;        /* host byte order */
	__u32 l7_ref;       /* reserved (0); L7 records are struct weir_l7_event */
};

/* ---- Runtime configuration (.rodata, set by the loader) ------------------------------- */

/* Connection tracking and event aggregation run on jiffies (bpf_jiffies64 is inlined by the
 * verifier: a memory load, where reading a clock costs tens of nanoseconds). The loader
 * measures the kernel's HZ and converts durations. */
struct weir_runtime_config {
	__u64 trace_interval_jiffies;    /* at most one trace per connection direction per interval (0 = every packet) */
	__u64 drop_interval_jiffies;     /* at most one drop event per flow per interval */
	__u64 ct_lifetime_tcp_jiffies;   /* established TCP */
	__u64 ct_lifetime_syn_jiffies;   /* TCP before the handshake completes */
	__u64 ct_lifetime_close_jiffies; /* TCP after FIN from both sides or RST */
	__u64 ct_lifetime_other_jiffies; /* UDP, ICMP, other */
	__u32 policy_verdict_events; /* 1: emit policy-verdict events on new connections where enforced */
	__u32 wake_bytes;            /* the agent is woken once this many bytes of events are queued */
};

/* ---- Maps -------------------------------------------------------------------------------- */

/* weir_config (array, 1 entry): the active policy generation; slot = policy_gen & 1. */
struct weir_config {
	__u32 policy_gen;
	__u32 reserved_0;
};

/* weir_endpoints (hash): host-side ifindex -> endpoint. */
#define WEIR_EP_ENFORCE_INGRESS 0x01
#define WEIR_EP_ENFORCE_EGRESS  0x02

struct weir_endpoint_slot {
	__u32 identity;          /* 0: no policy computed in this slot (traffic is dropped) */
	__u32 flags;             /* WEIR_EP_ENFORCE_* */
	__u32 ingress_selecting; /* rule set of the policies selecting the endpoint for ingress */
	__u32 egress_selecting;  /* ... for egress */
};

struct weir_endpoint {
	__u32 ep_id;
	__u32 reserved_0;
	__u8 ipv4[4];            /* primary addresses, for source validation without a lookup */
	__u8 ipv6[16];
	struct weir_endpoint_slot slot[2];
};

/* weir_ipcache (LPM trie): (slot, family, address/prefix) -> identity. */
#define WEIR_IPCACHE_FIXED_BITS 32 /* slot, family, 2 zero bytes */

struct weir_ipcache_key {
	__u32 prefixlen;         /* WEIR_IPCACHE_FIXED_BITS + address prefix length */
	__u8 slot;
	__u8 family;             /* 4 or 6 */
	__u16 reserved_0;
	__u8 addr[16];
};

struct weir_ipcache_value {
	__u32 identity;
	__u32 ep_id;             /* local endpoint owning the address, else 0 */
};

/* weir_policy (LPM trie): (slot, direction, endpoint, identity) exactly, then
 * protocol (8 bits) and destination port (16 bits, network order) as a prefix. */
#define WEIR_POLICY_FIXED_BITS 96
#define WEIR_POLICY_FULL_BITS  120

struct weir_policy_key {
	__u32 prefixlen;
	__u8 slot;
	__u8 direction;          /* WEIR_DIR_* */
	__u16 reserved_0;
	__u32 ep_id;
	__u32 identity;          /* 0 = any */
	__u8 protocol;           /* 0 = any (prefix ends before it) */
	__u8 dport[2];           /* network byte order; ICMP: [0] = 0, [1] = type */
	__u8 reserved_1;
};

#define WEIR_POLICY_DENY  0x01
#define WEIR_POLICY_AUDIT 0x02
#define WEIR_POLICY_L7_PROXY 0x04 /* l7_rules are gRPC rules: the agent's proxy enforces them */

struct weir_policy_value {
	__u8 flags;              /* WEIR_POLICY_* */
	__u8 match_type;
	__u16 reserved_0;
	__u32 rule_set;
	__u32 l7_rules;          /* reference to L7 rules (0 = none) */
	__u32 reserved_1;
};

/* weir_ct (LRU hash): one entry per connection and enforcement point. The interface is part
 * of the key: an endpoint's two hooks share it, and a packet on another endpoint's interface
 * never matches the connection (so established packets need no endpoint lookup). */
struct weir_ct_key {
	__u8 saddr[16];          /* as seen in the connection's original direction */
	__u8 daddr[16];
	__u16 sport;             /* host byte order */
	__u16 dport;
	__u8 protocol;
	__u8 direction;          /* WEIR_DIR_* of the enforcement point that created it */
	__u8 family;
	__u8 reserved_0;
	__u32 ifindex;           /* host-side interface of the endpoint */
};

#define WEIR_CT_CLOSING_FWD 0x01 /* FIN seen in the original direction */
#define WEIR_CT_CLOSING_REV 0x02 /* FIN seen in the reply direction */
#define WEIR_CT_RST         0x04
#define WEIR_CT_SEEN_REPLY  0x08
#define WEIR_CT_REMOTE_LOCAL 0x10 /* the remote address is a local endpoint: its own hook traces */
#define WEIR_CT_AUDIT       0x20 /* allowed only because the deciding entry is in audit mode */
#define WEIR_CT_PROXY       0x40 /* goes through the agent's L7 proxy: packets towards the proxy
				  * (the client's sends at its egress entry, the server's
				  * replies at its ingress entry) carry WEIR_MARK_TO_PROXY */

/* skb->mark bits of the L7 proxy hand-over (the 0x0f00 nibble, as in Cilium). */
#define WEIR_MARK_MAGIC_MASK 0x0f00
#define WEIR_MARK_TO_PROXY   0x0200 /* set by the datapath: the node delivers it locally
				      * (ip rule fwmark 0x200/0xf00 lookup 2004) */
#define WEIR_MARK_FROM_PROXY 0x0b00 /* SO_MARK of the proxy's upstream sockets */

/* weir_proxy_listener (SOCKMAP): key 0 the proxy's IPv4 listener, 1 its IPv6 listener. */
#define WEIR_PROXY_LISTENER_V4 0
#define WEIR_PROXY_LISTENER_V6 1

struct weir_ct_entry {
	__u64 created;           /* jiffies */
	__u64 expires;           /* jiffies */
	__u64 last_report[2];    /* jiffies of the last trace: [0] original direction, [1] reply */
	__u64 packets[2];
	__u64 bytes[2];
	__u32 unreported[2];     /* packets since the last trace, per direction */
	__u32 policy_gen;        /* policy generation the decision was taken in */
	__u32 rule_set;
	__u32 remote_identity;
	__u8 flags;              /* WEIR_CT_* */
	__u8 match_type;
	__u8 tcp_seen[2];        /* TCP flags seen per direction */
	__u8 tcp_reported[2];    /* TCP flags already reported per direction */
	__u8 l7_flags;           /* WEIR_CT_L7_* */
	__u8 reserved_0;
	__u32 l7_set;            /* HTTP rule set enforced on this connection (0 = none) */
	__u32 http_slot;         /* 1 + the index of the connection's HTTP state in weir_http_conn
				  * (0 = none); the slot is the connection's while its owner is this key */
	__u32 ep_id;             /* the endpoint's id and identity when the connection was decided, */
	__u32 local_identity;    /* for the HTTP records of its later packets */
};

#define WEIR_CT_L7_DENIED 0x01   /* a request was denied: the connection is being torn down */

/* weir_drop_agg (LRU hash): weir_ct_key -> last drop event of that flow. */
struct weir_drop_agg {
	__u64 last_report;       /* jiffies */
	__u32 suppressed;        /* drops since then */
	__u32 reserved_0;
};

/* weir_frag (LRU hash): fragments of one datagram -> its ports. */
struct weir_frag_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 id;
	__u8 protocol;
	__u8 family;
	__u16 reserved_0;
};

struct weir_frag_value {
	__u16 sport;
	__u16 dport;
	__u8 tcp_flags;
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 reserved_0;
};

/* ---- In-kernel HTTP/1.x ----------------------------------------------------------------- */

/* Table limits (weir_policy::http mirrors them). */
#define WEIR_HTTP_MAX_SETS      64   /* HTTP rule sets per policy slot */
#define WEIR_HTTP_MAX_RULES     48
#define WEIR_HTTP_MAX_REQS      48
#define WEIR_HTTP_MAX_SLOTS     32
#define WEIR_DFA_STATES         256
#define WEIR_DFA_CLASSES        64
#define WEIR_HTTP_MAX_HEAD      8192
#define WEIR_HTTP_BIT_WELLFORMED (1ULL << 63)
#define WEIR_HTTP_BIT_CL_VALUE   (1ULL << 62)
#define WEIR_HTTP_BIT_CHUNKED    (1ULL << 61)
#define WEIR_HTTP_SLOT_CONTENT_LENGTH    0
#define WEIR_HTTP_SLOT_TRANSFER_ENCODING 1
#define WEIR_HTTP_SLOT_HOST              2
#define WEIR_HTTP_SLOT_UPGRADE           3
/* Name DFA: bits 56..59 hold 1 + the index of a header whose values request flows carry (the
 * agent's --http-flow-headers, at most 15), 0 for other names. */
#define WEIR_HTTP_CAPTURE_SHIFT  56
#define WEIR_HTTP_CAPTURE_MASK   (0xfULL << WEIR_HTTP_CAPTURE_SHIFT)

/* The DFAs of a set, in weir_http_dfa at (slot * WEIR_HTTP_MAX_SETS + set) * 4 + kind. */
#define WEIR_DFA_METHOD 0
#define WEIR_DFA_PATH   1
#define WEIR_DFA_NAME   2
#define WEIR_DFA_VALUE  3

/* weir_http_dfa (array): one byte-class DFA. next = trans[state * WEIR_DFA_CLASSES + classes[byte]];
 * accept[state] = the patterns that match when the input ends in that state. */
struct weir_http_dfa {
	__u8 classes[256];
	__u64 accept[WEIR_DFA_STATES];
	__u8 trans[WEIR_DFA_STATES * WEIR_DFA_CLASSES];
	__u8 start;
	__u8 reserved_0[7];
};

/* weir_http_sets (array): slot * WEIR_HTTP_MAX_SETS + set id -> how the DFAs' results combine. */
struct weir_http_set {
	__u64 rule_bits;                          /* one bit per rule; 0: the set is not loaded */
	__u64 slot_reqs[WEIR_HTTP_MAX_SLOTS];     /* header requirements named by each name slot */
	__u64 needs[WEIR_HTTP_MAX_REQS];          /* rules needing each requirement: requirements are
						   * numbered from 0 without gaps, each needed by a rule,
						   * so the first 0 ends them */
};

/* Per-direction stream parser of one connection. */
struct weir_http_parser {
	__u64 remaining;         /* body or chunk bytes still to skip */
	__u64 method_mask;       /* request: rules whose method matched; response: unused */
	__u64 path_mask;
	__u64 seen;              /* header requirements met so far */
	__u64 number;            /* content-length or chunk size being read */
	__u32 next_seq;          /* TCP sequence number of the next byte to parse */
	__u32 head_len;          /* bytes of the current head so far */
	__u32 slots;             /* name slots of the current header line */
	__u16 status;            /* response: status code */
	__u8 phase;
	__u8 state;              /* current DFA state */
	__u8 value_state;        /* value DFA state after the last non-OWS byte */
	__u8 flags;              /* WEIR_HP_* */
	__u8 pos;                /* position in a fixed token (version, status line) */
	__u8 digits;
	__u32 skip_from;         /* response, WEIR_HP_SKIP: the resync_seq that was current when the
				  * skip began (a stale one, not the next response's start) */
};

#define WEIR_HP_SYNCED    0x01 /* next_seq is known */
#define WEIR_HP_HAS_CL    0x02
#define WEIR_HP_CHUNKED   0x04
#define WEIR_HP_HOST      0x08
#define WEIR_HP_LOST      0x10 /* response tracking gave up (gap, malformed or close-delimited body) */
#define WEIR_HP_CAPTURE   0x20 /* the current header line's value is captured (hdrs) */
#define WEIR_HP_SKIP      0x40 /* response: reported at its status line, the rest skipped until
				* the next response's start (weir_http_conn.resync_seq) */

#define WEIR_HTTP_PENDING 8
#define WEIR_HTTP_LINE_CAP 256
#define WEIR_HTTP_HOST_CAP 64
/* Captured header values of a request: each is WEIR_HTTP_HDR_MARK + the name's index, the value
 * from its first non-OWS byte, then WEIR_HTTP_HDR_END (values cannot hold these control bytes).
 * A value that does not fit has no end mark (and is not reported). */
#define WEIR_HTTP_HDRS_CAP 128
#define WEIR_HTTP_HDR_MARK 0x10
#define WEIR_HTTP_HDR_END  0x1f

/* The HTTP state of one connection: a slot's `conn` in weir_http_conn. */
struct weir_http_conn {
	struct weir_http_parser req;
	struct weir_http_parser resp;
	__u64 pending_ts[WEIR_HTTP_PENDING]; /* boot ns of requests awaiting their response (FIFO) */
	__u32 requests;          /* requests parsed on the connection */
	__u32 responses;         /* responses parsed */
	__u8 pending_head_flags; /* bit n: pending request n was HEAD */
	__u8 line_len;           /* captured bytes of the current request line (method SP target), capped */
	__u8 host_len;           /* captured Host value up to its last non-OWS byte */
	__u8 host_raw;           /* captured Host bytes, OWS included */
	__u8 method_len;         /* bytes of the method; line[method_len] is the space before the target */
	__u8 version;            /* 0: HTTP/1.0, 1: HTTP/1.1 */
	__u8 hdrs_len;           /* captured bytes of the current request's header values */
	__u8 reserved_0;
	__u32 resync_seq;        /* the ACK of the latest request's first segment, sent with no
				  * response outstanding: where that request's response starts */
	__u32 reserved_1;
	__u8 line[WEIR_HTTP_LINE_CAP];
	__u8 host[WEIR_HTTP_HOST_CAP];
	__u8 hdrs[WEIR_HTTP_HDRS_CAP]; /* last: loaded only when hdrs_len says it holds something */
};

/* weir_http_conn (array, WEIR_HTTP_SLOTS entries): slot index -> the HTTP state of the connection
 * that claimed the slot with its SYN. The connection's CT entry names the slot (http_slot), the
 * slot names its owner, so that a connection whose slot was taken over finds its state gone. */
#define WEIR_HTTP_SLOTS 16384
struct weir_http_slot {
	struct weir_ct_key owner; /* CT key (original direction) of the connection owning the slot */
	__u32 claim;              /* bumped by each claim, compare-and-swap: one claimer wins */
	__u64 expires;            /* jiffies: the owner's CT expiry as of its latest segment parsed, FIN
				   * or RST; from then on (and while 0: never used) the slot is free */
	struct weir_http_conn conn;
};

/* L7 record types (Hubble's L7FlowType). */
#define WEIR_L7_REQUEST  1
#define WEIR_L7_RESPONSE 2
/* An L7 record is struct weir_l7_event up to `data` (this many bytes), then `data` up to the end
 * of the header values: a response's record is this header alone. */
#define WEIR_L7_HEADER_LEN 128
#define WEIR_L7_DATA_CAP 448 /* WEIR_HTTP_LINE_CAP + WEIR_HTTP_HOST_CAP + WEIR_HTTP_HDRS_CAP */

/* An HTTP request or response (type WEIR_EVENT_L7). The flow part is that of the connection in
 * the packet's direction; rule_set is the policy rule set of the connection. */
struct weir_l7_event {
	struct weir_flow_event flow;
	__u8 l7_type;            /* WEIR_L7_* */
	__u8 version;            /* 0: HTTP/1.0, 1: HTTP/1.1 */
	__u16 status;            /* response status; 403 for a request the datapath answered */
	__u32 l7_set;
	__u32 rule;              /* index of the allowing rule in the set, or 0xffffffff */
	__u32 number;            /* request number on the connection (responses: of their request) */
	__u64 latency_ns;        /* response: time since the request */
	__u16 line_len;          /* method SP target, capped at WEIR_HTTP_LINE_CAP - 1 (255) */
	__u16 host_len;
	__u8 method_len;         /* bytes of the method; line[method_len] is the space before the target */
	__u8 hdrs_len;           /* requests: captured header values (WEIR_HTTP_HDRS_CAP) */
	__u8 reserved_0[2];
	/* When host_len > 0, the Host value in the first WEIR_HTTP_HOST_CAP bytes; then the request
	 * line (method SP target), line_len bytes; then the captured header values, hdrs_len bytes.
	 * The record ends there. */
	__u8 data[WEIR_L7_DATA_CAP];
};

#endif /* WEIR_ABI_H */
