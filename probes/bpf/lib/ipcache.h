/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Identity of an address: longest-prefix match in the active slot of weir_ipcache. */
#ifndef WEIR_IPCACHE_H
#define WEIR_IPCACHE_H

#include "common.h"
#include "maps.h"

#define WEIR_IDENTITY_WORLD 2

static __always_inline struct weir_ipcache_value *ipcache_lookup(__u8 slot, __u8 family, const __u32 *addr)
{
	struct weir_ipcache_key k = {
		.prefixlen = WEIR_IPCACHE_FIXED_BITS + (family == 4 ? 32 : 128),
		.slot = slot,
		.family = family,
	};

	copy_addr(k.addr, addr);
	return bpf_map_lookup_elem(&weir_ipcache, &k);
}

/* Does the packet's source address belong to this endpoint? The primary addresses are
 * compared in place; further addresses are found through the ipcache. */
static __always_inline int source_is_endpoint(const struct weir_endpoint *ep, const struct pkt *p, __u8 slot)
{
	struct weir_ipcache_value *v;

	if (p->family == 4) {
		if (p->saddr[0] == *(const __u32 *)ep->ipv4)
			return 1;
	} else if (addr_eq(p->saddr, ep->ipv6)) {
		return 1;
	}
	v = ipcache_lookup(slot, p->family, p->saddr);
	return v && v->ep_id == ep->ep_id;
}

#endif /* WEIR_IPCACHE_H */
