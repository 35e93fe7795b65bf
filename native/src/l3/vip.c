/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * Stateless L3 load balancing: a VIP prefix in the FIB points at a VIP whose
 * lookup table picks a backend from the flow hash; the packet is then
 * encapsulated (IPIP, GRE) or sent unchanged to the backend's MAC (direct
 * routing), along the route to the backend. The VIPs are configured by
 * ctl/vip.c.
 */
#include <stddef.h>
#include <stdio.h>

#include <rte_gre.h>
#include <rte_malloc.h>

#include "l3/l3.h"
#include "l3/quote.h"

uint32_t
pylb_encap_len(bool gre, uint8_t outer_af)
{
	return (outer_af == 4 ? sizeof(struct rte_ipv4_hdr) :
		sizeof(struct rte_ipv6_hdr)) + (gre ? sizeof(struct rte_gre_hdr) : 0);
}

/* Put m (an Ethernet frame carrying an IP packet of family inner_af) in an
 * IPIP or GRE header towards `dst`, from `src` (its varying bits from
 * `flow`; af 0, or not dst's family: the egress port's address). Returns 0
 * or the drop reason. */
int
pylb_encap(const struct pylb_cfg *cfg, bool gre, const struct pylb_encap_src *src,
	   uint32_t flow, const struct pylb_ip *dst, const struct pylb_nh *nh,
	   struct rte_mbuf *m, uint8_t inner_af, uint32_t olen)
{
	const struct pylb_ip *source = &src->base;
	const struct pylb_port_cfg *pc = &cfg->ports[nh->port];
	uint8_t inner_proto = inner_af == 4 ? IPPROTO_IPIP : IPPROTO_IPV6;
	uint32_t inner_len = rte_pktmbuf_pkt_len(m) - sizeof(struct rte_ether_hdr);
	const void *inner = rte_pktmbuf_mtod_offset(m, void *, sizeof(struct rte_ether_hdr));
	uint8_t tos = inner_af == 4 ? ((const struct rte_ipv4_hdr *)inner)->type_of_service :
		(uint8_t)(rte_be_to_cpu_32(((const struct rte_ipv6_hdr *)inner)->vtc_flow) >> 20);
	struct rte_ether_hdr *eth;
	char *o;

	if (rte_pktmbuf_headroom(m) < olen)
		return PYLB_D_VIP_NO_HEADROOM;
	eth = (struct rte_ether_hdr *)rte_pktmbuf_prepend(m, (uint16_t)olen);
	memmove(eth, (char *)eth + olen, sizeof(*eth));
	o = (char *)(eth + 1);
	if (dst->af == 4) {
		struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)o;
		uint32_t s4;

		memset(ip, 0, sizeof(*ip));
		if (source->af == 4)
			s4 = *(const unaligned_uint32_t *)source->ip | (flow & src->vary);
		else if (!port_src4(pc, *(const uint32_t *)dst->ip, &s4))
			return PYLB_D_VIP_NO_ROUTE;
		ip->src_addr = s4;
		memcpy(&ip->dst_addr, dst->ip, 4);
		ip->version_ihl = RTE_IPV4_VHL_DEF;
		ip->type_of_service = tos;
		ip->total_length = rte_cpu_to_be_16((uint16_t)(olen + inner_len));
		/* DF as the inner packet has it (IPv6: always), so that a hop
		 * too small answers "fragmentation needed", which comes back
		 * here and goes on to the inner packet's sender (icmperr.c). */
		ip->fragment_offset = inner_af == 6 ? RTE_BE16(RTE_IPV4_HDR_DF_FLAG) :
			((const struct rte_ipv4_hdr *)inner)->fragment_offset &
			RTE_BE16(RTE_IPV4_HDR_DF_FLAG);
		ip->time_to_live = IPDEFTTL;
		ip->next_proto_id = gre ? IPPROTO_GRE : inner_proto;
		ip->hdr_checksum = rte_ipv4_cksum(ip);
		eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV4);
		o += sizeof(*ip);
	} else {
		struct rte_ipv6_hdr *ip = (struct rte_ipv6_hdr *)o;
		const uint8_t *s6 = source->af == 6 ? source->ip : port_src6(pc, dst->ip);
		unaligned_uint32_t *last = (unaligned_uint32_t *)&ip->src_addr[12];

		if (s6 == NULL)
			return PYLB_D_VIP_NO_ROUTE;
		ip->vtc_flow = rte_cpu_to_be_32(6u << 28 | (uint32_t)tos << 20);
		ip->payload_len = rte_cpu_to_be_16((uint16_t)(olen - sizeof(*ip) + inner_len));
		ip->proto = gre ? IPPROTO_GRE : inner_proto;
		ip->hop_limits = IPDEFTTL;
		memcpy(ip->src_addr, s6, 16);
		if (source->af == 6)
			*last |= flow & src->vary;
		memcpy(ip->dst_addr, dst->ip, 16);
		eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV6);
		o += sizeof(*ip);
	}
	if (gre) {
		struct rte_gre_hdr *g = (struct rte_gre_hdr *)o;

		memset(g, 0, sizeof(*g));
		g->proto = inner_af == 4 ? RTE_BE16(RTE_ETHER_TYPE_IPV4) :
			RTE_BE16(RTE_ETHER_TYPE_IPV6);
	}
	return 0;
}

/* Too big for nh's port once encapsulated: an IPv4 packet without DF in
 * IPv4 goes out with the outer packet in fragments (RFC 2003 5.1: the
 * tunnel's far end reassembles it); else the sender is told the MTU less
 * the overhead (fragmentation needed, packet too big), m dropped. */
static __rte_noinline void
out_encap_too_big(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		  struct rte_mbuf *m, const struct pylb_nh *nh, bool gre,
		  const struct pylb_encap_src *src, uint32_t flow, const struct pylb_ip *to,
		  uint8_t af, uint32_t olen)
{
	const struct rte_ipv4_hdr *inner = rte_pktmbuf_mtod_offset(m,
		const struct rte_ipv4_hdr *, sizeof(struct rte_ether_hdr));
	uint32_t mtu = cfg->ports[nh->port].mtu;
	int reason;

	if (af != 4 || to->af != 4 || (inner->fragment_offset & RTE_BE16(RTE_IPV4_HDR_DF_FLAG)))
		return pylb_too_big(lc, cfg, in_port, m, af, (uint16_t)(mtu - olen),
				    PYLB_D_VIP_TOO_BIG);
	reason = pylb_encap(cfg, gre, src, flow, to, nh, m, af, olen);
	if (reason != 0)
		return drop(lc, m, (enum pylb_counter)reason);
	pylb_nh_output_fit(lc, cfg, in_port, m, nh, to->ip, to->af);
}

/* The output towards backend `to` through nh, encapsulated (IPIP, or GRE)
 * from `src` (pylb_encap), the egress MTU checked. */
void
pylb_out_encap(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	       struct rte_mbuf *m, const struct pylb_nh *nh, bool gre,
	       const struct pylb_encap_src *src, uint32_t flow, const struct pylb_ip *to,
	       uint8_t af)
{
	uint32_t olen = pylb_encap_len(gre, to->af);
	uint32_t mtu = cfg->ports[nh->port].mtu;
	int reason;

	if (unlikely(rte_pktmbuf_pkt_len(m) - sizeof(struct rte_ether_hdr) + olen > mtu))
		return out_encap_too_big(lc, cfg, in_port, m, nh, gre, src, flow, to, af, olen);
	reason = pylb_encap(cfg, gre, src, flow, to, nh, m, af, olen);
	if (reason != 0)
		return drop(lc, m, (enum pylb_counter)reason);
	nh_output(lc, cfg, nh, to->ip, to->af, m);
}

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
	pylb_out_encap(lc, cfg, in_port, m, nh, false, &vip->src, flow, to, af);
}

static void
vip_gre(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port, struct rte_mbuf *m,
	const struct pylb_nh *nh, const struct pylb_vip *vip, const struct pylb_ip *to,
	uint8_t af, uint32_t flow)
{
	pylb_out_encap(lc, cfg, in_port, m, nh, true, &vip->src, flow, to, af);
}

static void
vip_dr(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port __rte_unused,
       struct rte_mbuf *m, const struct pylb_nh *nh, const struct pylb_vip *vip __rte_unused,
       const struct pylb_ip *to, uint8_t af __rte_unused, uint32_t flow __rte_unused)
{
	pylb_out_dr(lc, cfg, in_port, m, nh, to);
}

/* By enum pylb_vip_method: bound to a VIP when it is configured. */
pylb_vip_out_fn *const pylb_vip_outs[PYLB_FWD_DR + 1] = {
	[PYLB_FWD_IPIP] = vip_ipip, [PYLB_FWD_GRE] = vip_gre, [PYLB_FWD_DR] = vip_dr,
};

void
pylb_vip_input(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	       struct rte_mbuf *m, uint32_t vip_id, uint8_t af)
{
	const struct pylb_vip *vip = __atomic_load_n(&lc->dp->vips[vip_id],
						     __ATOMIC_ACQUIRE);
	const void *inner = rte_pktmbuf_mtod_offset(m, void *, sizeof(struct rte_ether_hdr));
	const struct pylb_backend *b;
	const uint8_t *client, *to;
	uint32_t h, v;

	if (unlikely(vip == NULL || vip->bal.table == NULL))
		return drop(lc, m, PYLB_D_VIP_NO_BACKEND);
	if (af == 4) {
		const struct rte_ipv4_hdr *ip = inner;

		/* An ICMP error goes where the flow it quotes went. */
		if (unlikely(ip->next_proto_id == IPPROTO_ICMP) &&
		    icmp_error_flow(m, 4, &client, &to))
			h = flow_hash4(lc->dp->conf.hash_key, *(const unaligned_uint32_t *)client,
				       *(const unaligned_uint32_t *)to);
		else
			h = flow_hash4(lc->dp->conf.hash_key, ip->src_addr, ip->dst_addr);
	} else {
		const struct rte_ipv6_hdr *ip = inner;

		if (unlikely(ip->proto == IPPROTO_ICMPV6) &&
		    icmp_error_flow(m, 6, &client, &to))
			h = flow_hash6(lc->dp->conf.hash_key, client, to);
		else
			h = flow_hash6(lc->dp->conf.hash_key, ip->src_addr, ip->dst_addr);
	}
	b = &vip->bal.backends[vip->bal.table[h % vip->conf.table_size]];
	CNT(lc, VIP_PACKETS);

	v = b->addr.af == 4 ? fib4_lookup(lc->dp, *(const uint32_t *)b->addr.ip) :
		fib6_lookup(lc->dp, b->addr.ip);
	if (v == 0 || fib_kind(v) != PYLB_FIB_GROUP)
		return drop(lc, m, PYLB_D_VIP_NO_ROUTE);
	vip->out(lc, cfg, in_port, m, nhg_pick(lc->dp, fib_id(v), h), vip, &b->addr, af, h);
}
