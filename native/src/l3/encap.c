/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * Encapsulation's outputs (encap.h has the fast part): each kind's output
 * of a VIP's packets and inspection's GENEVE output, each a loop with
 * encap.h's inlined; the headers remembered per backend and lcore made
 * here, and the general way of a packet without them (ECMP, a MAC not
 * known yet, too big).
 */
#include "l3/encap.h"

/* The bytes tun's encapsulation puts before a packet in an outer header
 * of family outer_af, Ethernet left out. */
static inline uint32_t
encap_len(const struct pylb_tun *tun, uint8_t outer_af)
{
	return (outer_af == 4 ? sizeof(struct rte_ipv4_hdr) : sizeof(struct rte_ipv6_hdr)) +
		tun->len;
}

/* The UDP checksum of datagram u in IPv6 (its header just before u). Out
 * of line: inlined, its vector code has every UDP output realign its stack
 * to 32 bytes, IPv4's too. */
uint16_t
pylb_udp6_cksum(const struct rte_mbuf *m, const char *u)
{
	return rte_ipv6_udptcp_cksum_mbuf(m, (const void *)(u - sizeof(struct rte_ipv6_hdr)),
					  (uint16_t)(u - rte_pktmbuf_mtod(m, const char *)));
}

/* The headers packets to `to` from `src` leaving by port pc start with,
 * in o->hdr: Ethernet's type and source (its destination is the hop's),
 * the outer IP header with what does not change from packet to packet
 * (addresses, TTL), and for IPv4 the sum of those words; hlen set. False:
 * the port has no address to be the source. */
static inline bool
hdr_fill(struct pylb_out_memo *o, const struct pylb_port_cfg *pc,
	 const struct pylb_encap_src *src, const struct pylb_ip *to)
{
	struct rte_ether_hdr *eth = (struct rte_ether_hdr *)o->hdr;

	memset(o->hdr, 0, sizeof(o->hdr));
	rte_ether_addr_copy(&pc->mac, &eth->src_addr);
	eth->ether_type = ether_type(to->af);
	if (to->af == 4) {
		struct rte_ipv4_hdr *ip4 = (struct rte_ipv4_hdr *)(eth + 1);
		uint32_t s4, d4 = *(const unaligned_uint32_t *)to->ip;

		if (src->base.af == 4)
			s4 = *(const unaligned_uint32_t *)src->base.ip;
		else if (!port_src4(pc, d4, &s4))
			return false;
		ip4->version_ihl = RTE_IPV4_VHL_DEF;
		ip4->time_to_live = IPDEFTTL;
		ip4->src_addr = s4;
		ip4->dst_addr = d4;
		s4 = rte_be_to_cpu_32(s4);
		d4 = rte_be_to_cpu_32(d4);
		o->sum = ((uint32_t)RTE_IPV4_VHL_DEF << 8) + ((uint32_t)IPDEFTTL << 8) +
			(d4 >> 16) + (d4 & 0xffff);
		/* A source with bits from the flow is summed per packet. */
		if (src->vary == 0 || src->base.af != 4)
			o->sum += (s4 >> 16) + (s4 & 0xffff);
		o->hlen = sizeof(*eth) + sizeof(*ip4);
	} else {
		struct rte_ipv6_hdr *ip6 = (struct rte_ipv6_hdr *)(eth + 1);
		const uint8_t *s6 = src->base.af == 6 ? src->base.ip : port_src6(pc, to->ip);

		if (s6 == NULL)
			return false;
		ip6->hop_limits = IPDEFTTL;
		memcpy(ip6->src_addr, s6, 16);
		memcpy(ip6->dst_addr, to->ip, 16);
		o->hlen = sizeof(*eth) + sizeof(*ip6);
	}
	return true;
}

/* A backend's remembered output o gets its headers (struct pylb_out_memo)
 * for configuration cfg: hdr_fill's with its hop's MAC, and the port's
 * MTU. None (hlen 0) without a single hop whose MAC is known, or without
 * a source: such packets take the general way (out_encap). */
void
pylb_out_hdr_make(struct pylb_out_memo *o, const struct pylb_cfg *cfg,
		  const struct pylb_encap_src *src, const struct pylb_ip *to)
{
	const struct pylb_port_cfg *pc;

	o->cfg = cfg;
	o->hlen = 0;
	if (o->hop.nh == NULL || !(o->hop.mac & PYLB_MAC_VALID))
		return;
	pc = &cfg->ports[o->hop.nh->port];
	if (!hdr_fill(o, pc, src, to))
		return;
	u64_to_mac(o->hop.mac, &((struct rte_ether_hdr *)o->hdr)->dst_addr);
	o->mtu = pc->mtu;
}

/* encap for a packet whose hop has no headers remembered: they are made
 * for it (its output then writes the MACs: hop_output). Out of line: ECMP,
 * a MAC not known yet, a packet too big. */
static __rte_noinline int
encap_by(const struct pylb_cfg *cfg, const struct pylb_hop *hop, const struct pylb_tun *tun,
	 const void *opt, const struct pylb_encap_src *src, uint32_t flow,
	 const struct pylb_ip *to, struct rte_mbuf *m, uint8_t af, uint32_t olen)
{
	struct pylb_out_memo h;

	if (!hdr_fill(&h, &cfg->ports[hop->nh->port], src, to))
		return PYLB_D_VIP_NO_ROUTE;
	return encap(&h, tun, opt, src, flow, m, af, olen);
}

/* Too big for hop's port once encapsulated: an IPv4 packet without DF in
 * IPv4 goes out with the outer packet in fragments (RFC 2003 5.1: the
 * tunnel's far end reassembles it); else the sender is told the MTU less
 * the overhead (fragmentation needed, packet too big), m dropped. */
static __rte_noinline void
out_encap_too_big(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		  struct rte_mbuf *m, const struct pylb_hop *hop, const struct pylb_tun *tun,
		  const void *opt, const struct pylb_encap_src *src, uint32_t flow,
		  const struct pylb_ip *to, uint8_t af, uint32_t olen)
{
	const struct rte_ipv4_hdr *inner = rte_pktmbuf_mtod_offset(m,
		const struct rte_ipv4_hdr *, sizeof(struct rte_ether_hdr));
	uint32_t mtu = cfg->ports[hop->nh->port].mtu;
	int reason;

	if (af != 4 || to->af != 4 || (inner->fragment_offset & RTE_BE16(RTE_IPV4_HDR_DF_FLAG)))
		return pylb_too_big(lc, cfg, in_port, m, af, (uint16_t)(mtu - olen),
				    tun->too_big);
	reason = encap_by(cfg, hop, tun, opt, src, flow, to, m, af, olen);
	if (reason != 0)
		return drop(lc, m, (enum pylb_counter)reason);
	pylb_nh_output_fit(lc, cfg, in_port, m, hop->nh, to->ip, to->af);
}

/* out_encap without headers remembered (ECMP, a MAC not known yet, a
 * packet too big): they are made for the packet, its hop's MTU checked. */
void
pylb_out_encap_slow(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		    struct rte_mbuf *m, const struct pylb_hop *hop, const struct pylb_tun *tun,
		    const void *opt, const struct pylb_encap_src *src, uint32_t flow,
		    const struct pylb_ip *to, uint8_t af)
{
	uint32_t olen = encap_len(tun, to->af);
	uint32_t mtu;
	int reason;

	mtu = cfg->ports[hop->nh->port].mtu;
	if (unlikely(rte_pktmbuf_pkt_len(m) - sizeof(struct rte_ether_hdr) + olen > mtu))
		return out_encap_too_big(lc, cfg, in_port, m, hop, tun, opt, src, flow, to, af,
					 olen);
	reason = encap_by(cfg, hop, tun, opt, src, flow, to, m, af, olen);
	if (reason != 0)
		return drop(lc, m, (enum pylb_counter)reason);
	hop_output(lc, cfg, hop, to->ip, to->af, m);
}

/* Each kind's output of a VIP's packets: one call, its loop with the
 * output inlined. */
#define OUT_ENCAP(kind) \
void \
pylb_out_##kind##_burst(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port, \
			const struct pylb_encap_src *src, const struct pylb_send *s, uint32_t n) \
{ \
	for (uint32_t i = 0; i < n; i++) \
		out_encap(lc, cfg, in_port, s[i].m, &s[i].hop, s[i].o, &tun_##kind, NULL, src, \
			  s[i].flow, s[i].to, s[i].af); \
}
OUT_ENCAP(ipip)
OUT_ENCAP(gre)
OUT_ENCAP(gue)

/* The egress port's address as the outer source. */
static const struct pylb_encap_src port_src;

void
pylb_out_geneve_burst(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		      const struct pylb_geneve_send *g, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		out_encap(lc, cfg, in_port, g[i].s.m, &g[i].s.hop, g[i].s.o, &tun_geneve, &g[i],
			  &port_src, g[i].s.flow, g[i].s.to, g[i].s.af);
}
