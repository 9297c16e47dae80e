// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Utility programs: `pass` passes every packet (the baseline of the datapath benchmarks);
 * `read_jiffies`, run with BPF_PROG_TEST_RUN, stores the kernel's jiffies, the clock of
 * connection tracking, for the agent (measuring HZ, expiring connections). */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("classifier")
int pass(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} weir_jiffies SEC(".maps");

SEC("classifier")
int read_jiffies(struct __sk_buff *skb)
{
	__u32 zero = 0;
	__u64 *out = bpf_map_lookup_elem(&weir_jiffies, &zero);

	if (out)
		*out = bpf_jiffies64();
	return TC_ACT_OK;
}
