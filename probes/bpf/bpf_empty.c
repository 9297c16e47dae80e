// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Utility programs: `pass` passes every packet (the baseline of the datapath benchmarks);
 * `clone_ingress` and `read_bytes` are the benchmarks' floors: the least that answering a
 * packet, or reading every byte of one, costs a TC program on this kernel; `read_jiffies`, run
 * with BPF_PROG_TEST_RUN, stores the kernel's jiffies, the clock of connection tracking, for
 * the agent (measuring HZ, expiring connections). */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("classifier")
int pass(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

/* A copy of the packet into its device's ingress, as a denial's answer is sent
 * (http_policy.h), and nothing else. */
SEC("classifier")
int clone_ingress(struct __sk_buff *skb)
{
	bpf_clone_redirect(skb, skb->ifindex, BPF_F_INGRESS);
	return TC_ACT_OK;
}

/* Every byte of the payload of an IPv4 TCP segment without options (from offset 54), up to
 * 2 KiB, loaded once straight from the packet and summed: the least that any matcher reading a
 * request byte by byte must do. The sum decides the verdict, so the loads stay. */
#define READ_BYTES_FROM 54 /* Ethernet, IPv4 and TCP headers without options */
#define READ_BYTES_MAX 2048

SEC("classifier")
int read_bytes(struct __sk_buff *skb)
{
	const __u8 *data = (const __u8 *)(long)skb->data + READ_BYTES_FROM;
	const __u8 *end = (const __u8 *)(long)skb->data_end;
	__u32 sum = 0, i;

	for (i = 0; i < READ_BYTES_MAX; i++) {
		if (data + i + 1 > end)
			break;
		sum += data[i];
	}
	return sum == 0xffffffff ? TC_ACT_SHOT : TC_ACT_OK;
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
