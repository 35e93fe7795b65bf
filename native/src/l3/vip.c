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
	    const struct pylb_hop *hop, const struct pylb_ip *to)
{
	if (!hop->nh->connected)
		return drop(lc, m, PYLB_D_VIP_NO_ROUTE);
	if (unlikely(rte_pktmbuf_pkt_len(m) - sizeof(struct rte_ether_hdr) >
		     cfg->ports[hop->nh->port].mtu))
		return pylb_nh_output_fit(lc, cfg, in_port, m, hop->nh, to->ip, to->af);
	hop_output(lc, cfg, hop, to->ip, to->af, m);
}

/* Direct routing's VIP output. */
static void
out_dr_burst(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	     const struct pylb_encap_src *src __rte_unused, const struct pylb_send *s, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		pylb_out_dr(lc, cfg, in_port, s[i].m, &s[i].hop, s[i].to);
}

/* By enum pylb_vip_method: bound to a VIP when it is configured. */
pylb_vip_out_fn *const pylb_vip_outs[PYLB_FWD_GUE + 1] = {
	[PYLB_FWD_IPIP] = pylb_out_ipip_burst, [PYLB_FWD_GRE] = pylb_out_gre_burst,
	[PYLB_FWD_DR] = out_dr_burst, [PYLB_FWD_GUE] = pylb_out_gue_burst,
};

/* The flow hash that picks m's backend: its addresses', or for an ICMP
 * error, those of the flow it quotes (it goes where that flow went). */
static __rte_always_inline uint32_t
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

/* m (flow hash h) on its way to vip's backend bi, along the route to it,
 * in *out; false: dropped (no route). */
static inline bool
vip_ready(struct pylb_lcore *lc, struct rte_mbuf *m, const struct pylb_vip *vip, uint32_t h,
	  uint32_t bi, uint8_t af, struct pylb_send *out)
{
	struct pylb_out_memo *o = pylb_backend_out(lc, &vip->bal, bi);
	struct pylb_hop tmp;

	CNT(lc, VIP_PACKETS);
	if (o->group == 0) {
		drop(lc, m, PYLB_D_VIP_NO_ROUTE);
		return false;
	}
	out->hop = *hop_pick(lc->dp, o, o->group, h, &tmp);
	out->m = m;
	out->o = o;
	out->to = &vip->bal.backends[bi].addr;
	out->flow = h;
	out->af = af;
	return true;
}

/* Packets of L3 VIPs (bit i of `mask`: m[i], family af[i], to the VIP
 * fib_id(id[i]) names: id[i] its FIB value or its id), in order; through
 * its pool's appliance first where it has one and `inspect` says (not for
 * what an appliance sent back, or the kernel sent). Every packet's hash
 * and table slot first, the slots fetched, then each made ready and sent:
 * the lookup table's cache misses overlap instead of one per packet in
 * turn, and each run of one VIP's packets goes in one call of its output. */
static __rte_always_inline void
vip_burst(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	  struct rte_mbuf *const *m, const uint32_t *id, const uint8_t *af, uint32_t mask,
	  bool inspect)
{
	const struct pylb_vip *vip[PYLB_BURST], *run = NULL;
	uint32_t h[PYLB_BURST], slot[PYLB_BURST];
	struct pylb_send s[PYLB_BURST];
	uint32_t i, k = 0, start = 0, ready = 0;

	for (uint32_t left = mask; left != 0; left &= left - 1) {
		i = (uint32_t)__builtin_ctz(left);
		vip[i] = __atomic_load_n(&lc->dp->vips[fib_id(id[i])], __ATOMIC_ACQUIRE);
		if (inspect && unlikely(vip[i] != NULL && vip[i]->pool != 0)) {
			pylb_inspect_out(lc, m[i], vip[i]->pool - 1, af[i]);
			continue;
		}
		if (unlikely(vip[i] == NULL || vip[i]->bal.table == NULL)) {
			drop(lc, m[i], PYLB_D_VIP_NO_BACKEND);
			continue;
		}
		h[i] = vip_hash(lc, m[i], af[i]);
		slot[i] = bal_slot(&vip[i]->bal, h[i]);
		rte_prefetch0(&vip[i]->bal.table[slot[i]]);
		ready |= 1u << i;
	}
	for (; ready != 0; ready &= ready - 1) {
		i = (uint32_t)__builtin_ctz(ready);
		if (!vip_ready(lc, m[i], vip[i], h[i], vip[i]->bal.table[slot[i]], af[i], &s[k]))
			continue;
		if (vip[i] != run) {
			if (k != start)
				run->out(lc, cfg, in_port, &run->src, s + start, k - start);
			run = vip[i];
			start = k;
		}
		k++;
	}
	if (k != start)
		run->out(lc, cfg, in_port, &run->src, s + start, k - start);
}

void
pylb_vip_burst(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	       struct rte_mbuf *const *m, const uint32_t *id, const uint8_t *af, uint32_t mask)
{
	vip_burst(lc, cfg, in_port, m, id, af, mask, true);
}

void
pylb_vip_input(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	       struct rte_mbuf *m, uint32_t vip_id, uint8_t af)
{
	vip_burst(lc, cfg, in_port, &m, &vip_id, &af, 1, false);
}
