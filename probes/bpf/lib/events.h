/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Events on the weir_events ring buffer; a failed reservation is counted in weir_lost. */
#ifndef WEIR_EVENTS_H
#define WEIR_EVENTS_H

#include "common.h"
#include "maps.h"

/* Set by the loader (struct weir_runtime_config in weir/abi.h); these defaults assume HZ=250. */
const volatile struct weir_runtime_config weir_runtime = {
	.trace_interval_jiffies = 5 * 250,
	.drop_interval_jiffies = 5 * 250,
	.ct_lifetime_tcp_jiffies = 21600 * 250,
	.ct_lifetime_syn_jiffies = 60 * 250,
	.ct_lifetime_close_jiffies = 10 * 250,
	.ct_lifetime_other_jiffies = 60 * 250,
	.policy_verdict_events = 1,
	.wake_bytes = 32 << 10,
};

/* Events are written through a ring-buffer reservation, which gives the type no BTF of its
 * own; this read-only instance puts it there for the ABI layout check and for bpftool. */
const volatile struct weir_flow_event weir_event_layout = { .version = WEIR_EVENT_VERSION };

/* What the enforcement point knows when it reports. */
struct verdict_ctx {
	__u32 ifindex;
	__u32 ep_id;
	__u32 src_identity;
	__u32 dst_identity;
	__u32 rule_set;
	__u8 direction;     /* of the connection */
	__u8 obs_point;
	__u8 match_type;
	__u8 reply;
	__u8 audit;
	__u8 trace_reason;
	__u8 reserved[2];
};

static __always_inline void count_lost(void)
{
	__u32 zero = 0;
	__u64 *lost = bpf_map_lookup_elem(&weir_lost, &zero);

	if (lost)
		*lost += 1;
}

/* The flow part of an event, from the packet and what the enforcement point knows (all but the
 * time stamp). Also the template of L7 events (http_policy.h). */
static __always_inline void fill_flow_event(struct weir_flow_event *ev, const struct pkt *p, const struct verdict_ctx *v,
					    __u8 type, __u8 verdict, __u16 drop_reason, __u32 count)
{
	ev->type = type;
	ev->version = WEIR_EVENT_VERSION;
	ev->obs_point = v->obs_point;
	ev->flags = (p->family == 6 ? WEIR_EVF_IPV6 : 0) | (v->reply ? WEIR_EVF_REPLY : 0) |
		    (v->audit ? WEIR_EVF_AUDIT : 0) | (p->fragment == 1 ? WEIR_EVF_FRAGMENT : 0);
	ev->direction = v->direction;
	ev->trace_reason = v->trace_reason;
	ev->match_type = v->match_type;
	ev->protocol = p->protocol;
	ev->tcp_flags = p->tcp_flags;
	ev->icmp_type = p->icmp_type;
	ev->icmp_code = p->icmp_code;
	ev->verdict = verdict;
	ev->drop_reason = drop_reason;
	ev->reserved_0 = 0;
	ev->ifindex = v->ifindex;
	ev->ep_id = v->ep_id;
	ev->src_identity = v->src_identity;
	ev->dst_identity = v->dst_identity;
	ev->rule_set = v->rule_set;
	ev->count = count;
	ev->pkt_len = p->len;
	ev->reserved_1 = 0;
	ev->ts_boot_ns = 0;
	copy_addr(ev->saddr, p->saddr);
	copy_addr(ev->daddr, p->daddr);
	ev->sport = p->sport;
	ev->dport = p->dport;
	ev->l7_ref = 0;
}

/* The agent is woken once weir_runtime.wake_bytes of events are queued (the loader's choice,
 * WAKE_BYTES in flow-agent/src/datapath/mod.rs: 32 KiB); below that it finds the events at its
 * next poll (every 100 ms). Only the event that makes the queue cross the threshold wakes the
 * agent (a wakeup is an interrupt, an exit to the hypervisor in a VM); until the agent drains
 * the queue, later events do not, and its poll timeout covers a wakeup it missed. `queued`: the
 * bytes queued before this event; `size`: the event's. */
static __always_inline __u64 wake_flags(__u64 queued, __u64 size)
{
	/* A record takes its size plus an 8-byte header, rounded up to 8 bytes. */
	__u64 taken = (size + 8 + 7) & ~7ULL;
	__u64 threshold = weir_runtime.wake_bytes;

	return queued < threshold && queued + taken >= threshold ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

/* Submits a reserved event (queued bytes count from the reservation: they include it). */
static __always_inline void submit_event(void *ev, __u64 size)
{
	__u64 queued = bpf_ringbuf_query(&weir_events, BPF_RB_AVAIL_DATA);
	__u64 taken = (size + 8 + 7) & ~7ULL;

	bpf_ringbuf_submit(ev, wake_flags(queued > taken ? queued - taken : 0, size));
}

/* Copies a record built elsewhere onto the ring (a record whose size is known only at run time:
 * bpf_ringbuf_reserve takes a constant). */
static __always_inline void output_event(void *rec, __u64 size)
{
	__u64 flags = wake_flags(bpf_ringbuf_query(&weir_events, BPF_RB_AVAIL_DATA), size);

	if (bpf_ringbuf_output(&weir_events, rec, size, flags) < 0)
		count_lost();
}

/* Events carry a fine-grained boot-time stamp, read only when an event is written. */
static __always_inline void emit_event(const struct pkt *p, const struct verdict_ctx *v, __u8 type,
				       __u8 verdict, __u16 drop_reason, __u32 count)
{
	struct weir_flow_event *ev;

	ev = bpf_ringbuf_reserve(&weir_events, sizeof(*ev), 0);
	if (!ev) {
		count_lost();
		return;
	}
	fill_flow_event(ev, p, v, type, verdict, drop_reason, count);
	ev->ts_boot_ns = bpf_ktime_get_boot_ns();
	submit_event(ev, sizeof(*ev));
}

/* Drops of one flow are reported once per drop interval; the event carries how many
 * drops it stands for. Returns the count to report, or 0 to stay silent. */
static __always_inline __u32 drop_aggregate(const struct weir_ct_key *flow, __u64 now)
{
	struct weir_drop_agg *agg = bpf_map_lookup_elem(&weir_drop_agg, flow);
	__u32 count;

	if (!agg) {
		struct weir_drop_agg fresh = { .last_report = now };
		bpf_map_update_elem(&weir_drop_agg, flow, &fresh, BPF_ANY);
		return 1;
	}
	if (now - agg->last_report < weir_runtime.drop_interval_jiffies) {
		__sync_fetch_and_add(&agg->suppressed, 1);
		return 0;
	}
	count = agg->suppressed + 1;
	agg->suppressed = 0;
	agg->last_report = now;
	return count;
}

#endif /* WEIR_EVENTS_H */
