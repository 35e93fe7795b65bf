/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * Stateless L3 load balancing: a VIP prefix in the FIB points at a VIP whose
 * lookup table picks a backend from the flow hash; the packet is then
 * encapsulated (IPIP, GRE: encap.c) or sent unchanged to the backend's MAC
 * (direct routing), along the route to the backend. The VIPs are
 * configured by ctl/vip.c.
 */
#include <stddef.h>
#include <stdio.h>

#include <rte_malloc.h>
#include <rte_prefetch.h>

#include "l3/l3.h"
#include "l3/quote.h"

/* Direct routing: the backend on a connected network, the frame readdressed
 * to its MAC. */
void
pylb_out_dr(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port, struct rte_mbuf *m,
	    const struct pylb_nh *nh, const struct pylb_ip *to)
{
	if (!nh->connected)
		return drop(lc, m, PYLB_D_VIP_NO_ROUTE);
	if (unlikely(rte_pktmbuf_pkt_len(m) - sizeof(struct rte_ether_hdr) >
		     cfg->ports[nh->port].mtu))
		return pylb_nh_output_fit(lc, cfg, in_port, m, nh, to->ip, to->af);
	nh_output(lc, cfg, nh, to->ip, to->af, m);
}

/* A VIP's output, one per method, bound when the VIP is configured. */
static void
vip_ipip(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port, struct rte_mbuf *m,
	 const struct pylb_nh *nh, const struct pylb_vip *vip, const struct pylb_ip *to,
	 uint8_t af, uint32_t flow)
{
	pylb_out_ipip(lc, cfg, in_port, m, nh, &vip->src, flow, to, af);
}

static void
vip_gre(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port, struct rte_mbuf *m,
	const struct pylb_nh *nh, const struct pylb_vip *vip, const struct pylb_ip *to,
	uint8_t af, uint32_t flow)
{
	pylb_out_gre(lc, cfg, in_port, m, nh, &vip->src, flow, to, af);
}

static void
vip_gue(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port, struct rte_mbuf *m,
	const struct pylb_nh *nh, const struct pylb_vip *vip, const struct pylb_ip *to,
	uint8_t af, uint32_t flow)
{
	pylb_out_gue(lc, cfg, in_port, m, nh, &vip->src, flow, to, af);
}

static void
vip_dr(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port __rte_unused,
       struct rte_mbuf *m, const struct pylb_nh *nh, const struct pylb_vip *vip __rte_unused,
       const struct pylb_ip *to, uint8_t af __rte_unused, uint32_t flow __rte_unused)
{
	pylb_out_dr(lc, cfg, in_port, m, nh, to);
}

/* By enum pylb_vip_method: bound to a VIP when it is configured. */
pylb_vip_out_fn *const pylb_vip_outs[PYLB_FWD_GUE + 1] = {
	[PYLB_FWD_IPIP] = vip_ipip, [PYLB_FWD_GRE] = vip_gre, [PYLB_FWD_DR] = vip_dr,
	[PYLB_FWD_GUE] = vip_gue,
};

/* The flow hash that picks m's backend: its addresses', or for an ICMP
 * error, those of the flow it quotes (it goes where that flow went). */
static inline uint32_t
vip_hash(const struct pylb_lcore *lc, struct rte_mbuf *m, uint8_t af)
{
	const void *inner = rte_pktmbuf_mtod_offset(m, void *, sizeof(struct rte_ether_hdr));
	const uint8_t *client, *to;

	if (af == 4) {
		const struct rte_ipv4_hdr *ip = inner;

		if (unlikely(ip->next_proto_id == IPPROTO_ICMP) &&
		    icmp_error_flow(m, 4, &client, &to))
			return flow_hash4(lc->dp->conf.hash_key,
					  *(const unaligned_uint32_t *)client,
					  *(const unaligned_uint32_t *)to);
		return flow_hash4(lc->dp->conf.hash_key, ip->src_addr, ip->dst_addr);
	}
	const struct rte_ipv6_hdr *ip = inner;

	if (unlikely(ip->proto == IPPROTO_ICMPV6) && icmp_error_flow(m, 6, &client, &to))
		return flow_hash6(lc->dp->conf.hash_key, client, to);
	return flow_hash6(lc->dp->conf.hash_key, ip->src_addr, ip->dst_addr);
}

/* m (flow hash h) to vip's backend bi, along the route to it. */
static inline void
vip_send(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port, struct rte_mbuf *m,
	 const struct pylb_vip *vip, uint32_t h, uint32_t bi, uint8_t af)
{
	uint32_t g;

	CNT(lc, VIP_PACKETS);
	g = pylb_backend_group(lc->dp, &vip->bal, bi);
	if (g == 0)
		return drop(lc, m, PYLB_D_VIP_NO_ROUTE);
	vip->out(lc, cfg, in_port, m, nhg_pick(lc->dp, g, h), vip, &vip->bal.backends[bi].addr,
		 af, h);
}

static inline const struct pylb_vip *
vip_get(struct pylb_lcore *lc, uint32_t vip_id)
{
	const struct pylb_vip *vip = __atomic_load_n(&lc->dp->vips[vip_id], __ATOMIC_ACQUIRE);

	return likely(vip != NULL && vip->bal.table != NULL) ? vip : NULL;
}

/* Every packet's hash and table slot first, the slots fetched, then each
 * sent: the lookup table's cache misses overlap instead of one per packet
 * in turn. */
void
pylb_vip_burst(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	       struct rte_mbuf **m, const uint32_t *ids, const uint8_t *af, uint32_t n)
{
	const struct pylb_vip *vip[PYLB_BURST];
	uint32_t h[PYLB_BURST], slot[PYLB_BURST];
	uint32_t i;

	for (i = 0; i < n; i++) {
		vip[i] = vip_get(lc, ids[i]);
		if (unlikely(vip[i] == NULL))
			continue;
		h[i] = vip_hash(lc, m[i], af[i]);
		slot[i] = bal_slot(&vip[i]->bal, h[i]);
		rte_prefetch0(&vip[i]->bal.table[slot[i]]);
	}
	for (i = 0; i < n; i++) {
		if (unlikely(vip[i] == NULL))
			drop(lc, m[i], PYLB_D_VIP_NO_BACKEND);
		else
			vip_send(lc, cfg, in_port, m[i], vip[i], h[i], vip[i]->bal.table[slot[i]],
				 af[i]);
	}
}

void
pylb_vip_input(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	       struct rte_mbuf *m, uint32_t vip_id, uint8_t af)
{
	pylb_vip_burst(lc, cfg, in_port, &m, &vip_id, &af, 1);
}
