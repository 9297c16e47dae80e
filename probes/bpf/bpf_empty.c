// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* A TC program that passes every packet: the baseline of the datapath benchmarks. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("classifier")
int pass(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}
