/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * The exception path, kernel side: what the kernel sends out of a port's
 * kernel interface (replies from SSH, BGP, health checks; connections the
 * host opens) is routed by the dataplane like any other packet, without a
 * TTL decrement since it has not crossed a hop yet. The kernel interface
 * runs without ARP (pylb resolves neighbours), so frames arrive addressed
 * to its own MAC.
 */
#include "path/pipeline.h"

static void
kernel_one(struct pylb_lcore *lc, const struct pylb_cfg *cfg, struct rte_mbuf *m)
{
	uint32_t l2 = sizeof(struct rte_ether_hdr);
	uint32_t len = rte_pktmbuf_data_len(m);
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	uint32_t v;

	CNT(lc, FROM_KERNEL);
	m->hash.fdir.hi = 0;	/* no fragment's ports yet (frag.c) */
	if (len < l2)
		return drop(lc, m, PYLB_D_KERNEL_INVALID);
	if (eth->ether_type == RTE_BE16(RTE_ETHER_TYPE_IPV4)) {
		struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);
		uint32_t tot;

		if (len < l2 + sizeof(*ip) || (ip->version_ihl >> 4) != 4 ||
		    rte_ipv4_hdr_len(ip) < sizeof(*ip))
			return drop(lc, m, PYLB_D_KERNEL_INVALID);
		tot = rte_be_to_cpu_16(ip->total_length);
		if (tot < rte_ipv4_hdr_len(ip) || l2 + tot > len)
			return drop(lc, m, PYLB_D_KERNEL_INVALID);
		if (rte_pktmbuf_pkt_len(m) > l2 + tot)
			rte_pktmbuf_trim(m, rte_pktmbuf_pkt_len(m) - (l2 + tot));
		v = fib4_lookup(lc->dp, ip->dst_addr);
		/* Locally originated: not inspected. */
		if (fib_group(v) != 0)
			return pylb_fwd4(lc, cfg, -1, m, fib_group(v));
		if (fib_kind(v) == PYLB_FIB_VIP)
			return pylb_vip_input(lc, cfg, -1, m, fib_id(v), 4);
		if (fib_kind(v) == PYLB_FIB_SERVICE)
			return pylb_l4_input(lc, cfg, -1, m, 4, NULL);
		return drop(lc, m, PYLB_D_NO_ROUTE);
	}
	if (eth->ether_type == RTE_BE16(RTE_ETHER_TYPE_IPV6)) {
		struct rte_ipv6_hdr *ip = (struct rte_ipv6_hdr *)(eth + 1);
		uint32_t plen;
		uint8_t proto;

		if (len < l2 + sizeof(*ip) ||
		    (rte_be_to_cpu_32(ip->vtc_flow) >> 28) != 6)
			return drop(lc, m, PYLB_D_KERNEL_INVALID);
		plen = rte_be_to_cpu_16(ip->payload_len);
		if (l2 + sizeof(*ip) + plen > len)
			return drop(lc, m, PYLB_D_KERNEL_INVALID);
		/* Multicast (MLD, router and neighbour discovery) stays home. */
		if (ip->dst_addr[0] == 0xff || pylb_ipv6_walk(m, l2, &proto) != 0)
			return drop(lc, m, PYLB_D_KERNEL_INVALID);
		if (rte_pktmbuf_pkt_len(m) > l2 + sizeof(*ip) + plen)
			rte_pktmbuf_trim(m, rte_pktmbuf_pkt_len(m) -
					 (l2 + sizeof(*ip) + plen));
		v = fib6_lookup(lc->dp, ip->dst_addr);
		/* Locally originated: not inspected. */
		if (fib_group(v) != 0)
			return pylb_fwd6(lc, cfg, -1, m, fib_group(v));
		if (fib_kind(v) == PYLB_FIB_VIP)
			return pylb_vip_input(lc, cfg, -1, m, fib_id(v), 6);
		if (fib_kind(v) == PYLB_FIB_SERVICE)
			return pylb_l4_input(lc, cfg, -1, m, 6, NULL);
		return drop(lc, m, PYLB_D_NO_ROUTE);
	}
	return drop(lc, m, PYLB_D_KERNEL_INVALID);
}

void
pylb_kernel_process(struct pylb_lcore *lc, const struct pylb_cfg *cfg,
		    uint16_t port __rte_unused, struct rte_mbuf **pkts, uint16_t n)
{
	for (uint16_t i = 0; i < n; i++)
		kernel_one(lc, cfg, pkts[i]);
	if (unlikely(lc->frags->n_ready != 0))
		pylb_frag_release(lc, cfg);
}
