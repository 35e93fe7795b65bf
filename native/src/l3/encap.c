/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * Encapsulation: a packet in an outer IP header towards a backend or an
 * appliance, with nothing between (IPIP), a GRE header, UDP (GUE), or UDP
 * and a GENEVE header (inspect.c's); the egress MTU checked. Each is a
 * struct pylb_tun bound when configured: no packet compares kinds. The
 * Ethernet and outer IP headers are made once per backend and lcore, in
 * its remembered output (struct pylb_out_memo), and copied into each
 * packet. Used by L3 VIPs (vip.c), inspection (inspect.c) and L4 tunnel
 * services.
 */
#include <rte_geneve.h>
#include <rte_gre.h>
#include <rte_udp.h>

#include "l3/l3.h"

/* Writes what goes between the outer IP header (at o: its end) and the
 * packet, of family inner_af, in m; `len`: the bytes from o to the end;
 * `opt`: what the packet's flow puts there (GENEVE: pylb's option), else
 * NULL. */
typedef void pylb_tun_fn(struct rte_mbuf *m, char *o, uint32_t len, uint8_t inner_af,
			 uint8_t outer_af, uint32_t flow, const void *opt);

/* What an encapsulation puts between its outer IP header and the packet
 * it carries: nothing (IPIP), a GRE header, UDP (GUE variant 1, FOU: the
 * packet's version tells IPv4 from IPv6), or UDP and a GENEVE header whose
 * option holds an inspection pool's slot and the flow's cookie
 * (inspect.c); and the drop reason of a packet too big once in it. UDP's
 * source port comes from the flow's hash, so that the far end's NIC
 * spreads the flows over its queues. */
struct pylb_tun {
	uint8_t proto;		/* the outer protocol; 0: the packet's family's (IPIP) */
	uint8_t len;		/* bytes between the outer header and the packet */
	pylb_tun_fn *write;	/* writes them; NULL: none */
	enum pylb_counter too_big;
};

static inline uint32_t
encap_len(const struct pylb_tun *tun, uint8_t outer_af)
{
	return (outer_af == 4 ? sizeof(struct rte_ipv4_hdr) : sizeof(struct rte_ipv6_hdr)) +
		tun->len;
}

static inline rte_be16_t
ether_type(uint8_t af)
{
	return af == 4 ? RTE_BE16(RTE_ETHER_TYPE_IPV4) : RTE_BE16(RTE_ETHER_TYPE_IPV6);
}

static __rte_always_inline void
write_gre(struct rte_mbuf *m __rte_unused, char *o, uint32_t len __rte_unused,
	  uint8_t inner_af, uint8_t outer_af __rte_unused, uint32_t flow __rte_unused,
	  const void *opt __rte_unused)
{
	struct rte_gre_hdr *g = (struct rte_gre_hdr *)o;

	memset(g, 0, sizeof(*g));
	g->proto = ether_type(inner_af);
}

/* The UDP checksum of datagram u in IPv6 (its header just before u). Out
 * of line: inlined, its vector code has every UDP output realign its stack
 * to 32 bytes, IPv4's too. */
static __rte_noinline uint16_t
udp6_cksum(const struct rte_mbuf *m, const char *u)
{
	return rte_ipv6_udptcp_cksum_mbuf(m, (const void *)(u - sizeof(struct rte_ipv6_hdr)),
					  (uint16_t)(u - rte_pktmbuf_mtod(m, const char *)));
}

/* A UDP header to `dport` (a datagram of `len` bytes), its source port
 * from the flow (the far end's NIC spreads the flows over its queues),
 * once what follows it is written: IPv6's checksum computed (RFC 8200),
 * IPv4's 0. */
static inline void
write_udp(struct rte_mbuf *m, char *o, uint32_t len, uint8_t outer_af, uint32_t flow,
	  rte_be16_t dport)
{
	struct rte_udp_hdr *u = (struct rte_udp_hdr *)o;

	u->src_port = rte_cpu_to_be_16((uint16_t)(0xc000 | (flow & 0x3fff)));
	u->dst_port = dport;
	u->dgram_len = rte_cpu_to_be_16((uint16_t)len);
	u->dgram_cksum = 0;
	if (outer_af == 6)
		u->dgram_cksum = udp6_cksum(m, o);
}

static __rte_always_inline void
write_gue(struct rte_mbuf *m, char *o, uint32_t len, uint8_t inner_af __rte_unused,
	  uint8_t outer_af, uint32_t flow, const void *opt __rte_unused)
{
	write_udp(m, o, len, outer_af, flow, RTE_BE16(PYLB_GUE_PORT));
}

/* GENEVE with pylb's option: the pool slot and cookie of `opt`, a struct
 * pylb_geneve_send. */
static __rte_always_inline void
write_geneve(struct rte_mbuf *m, char *o, uint32_t len, uint8_t inner_af, uint8_t outer_af,
	     uint32_t flow, const void *opt)
{
	const struct pylb_geneve_send *gs = opt;
	struct rte_geneve_hdr *g = (struct rte_geneve_hdr *)(o + sizeof(struct rte_udp_hdr));
	struct pylb_geneve_opt *po = (struct pylb_geneve_opt *)(g + 1);

	memset(g, 0, sizeof(*g));
	g->opt_len = sizeof(*po) / 4;
	g->proto = ether_type(inner_af);
	po->cls = RTE_BE16(PYLB_GENEVE_CLASS);
	po->type = PYLB_GENEVE_TYPE;
	po->len = (sizeof(*po) - 4) / 4;
	po->pool = rte_cpu_to_be_16(gs->pool);
	po->zero = 0;
	memcpy(po->cookie, &gs->cookie, sizeof(gs->cookie));
	write_udp(m, o, len, outer_af, flow, RTE_BE16(PYLB_GENEVE_PORT));
}

/* The encapsulations, each with its own output below. */
static const struct pylb_tun tun_ipip = { .too_big = PYLB_D_VIP_TOO_BIG };
static const struct pylb_tun tun_gre = {
	.proto = IPPROTO_GRE, .len = sizeof(struct rte_gre_hdr), .write = write_gre,
	.too_big = PYLB_D_VIP_TOO_BIG,
};
static const struct pylb_tun tun_gue = {
	.proto = IPPROTO_UDP, .len = sizeof(struct rte_udp_hdr), .write = write_gue,
	.too_big = PYLB_D_VIP_TOO_BIG,
};
static const struct pylb_tun tun_geneve = {
	.proto = IPPROTO_UDP, .len = sizeof(struct rte_udp_hdr) + PYLB_GENEVE_LEN,
	.write = write_geneve, .too_big = PYLB_D_INSPECT_TOO_BIG,
};

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
static __rte_noinline void
hdr_make(struct pylb_out_memo *o, const struct pylb_cfg *cfg, const struct pylb_encap_src *src,
	 const struct pylb_ip *to)
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

/* Put m (an Ethernet frame carrying an IP packet of family inner_af) in
 * tun's encapsulation (with the flow's `opt`: tun->write's) towards `dst`:
 * h's headers (hdr_fill's) copied in front, then what is the packet's own
 * written: the outer length; TOS and DF as the inner packet has them (DF
 * so that a hop too small answers "fragmentation needed", which comes back
 * here and goes on to the inner packet's sender, icmperr.c; IPv6 inside:
 * always); IPIP's protocol; the source's bits from `flow`; the IPv4
 * checksum from h's sum (not read back from the header just written: a
 * store-forwarding stall); the header tun->write makes. 0 or the drop
 * reason. */
static __rte_always_inline int
encap(const struct pylb_out_memo *h, const struct pylb_tun *tun, const void *opt,
      const struct pylb_encap_src *src, uint32_t flow, const struct pylb_ip *dst,
      struct rte_mbuf *m, uint8_t inner_af, uint32_t olen)
{
	const void *inner = rte_pktmbuf_mtod_offset(m, void *, sizeof(struct rte_ether_hdr));
	uint32_t inner_len = rte_pktmbuf_pkt_len(m) - sizeof(struct rte_ether_hdr);
	uint8_t tos = inner_af == 4 ? ((const struct rte_ipv4_hdr *)inner)->type_of_service :
		(uint8_t)(rte_be_to_cpu_32(((const struct rte_ipv6_hdr *)inner)->vtc_flow) >> 20);
	uint8_t proto = tun->proto != 0 ? tun->proto :
		inner_af == 4 ? IPPROTO_IPIP : IPPROTO_IPV6;
	char *eth = rte_pktmbuf_prepend(m, (uint16_t)olen), *ip;

	if (unlikely(eth == NULL))
		return PYLB_D_VIP_NO_HEADROOM;
	ip = eth + sizeof(struct rte_ether_hdr);
	if (dst->af == 4) {
		struct rte_ipv4_hdr *ip4 = (struct rte_ipv4_hdr *)ip;
		rte_be16_t frag = inner_af == 6 ? RTE_BE16(RTE_IPV4_HDR_DF_FLAG) :
			((const struct rte_ipv4_hdr *)inner)->fragment_offset &
			RTE_BE16(RTE_IPV4_HDR_DF_FLAG);
		uint32_t tot = olen + inner_len;
		uint32_t sum = h->sum + tos + tot + rte_be_to_cpu_16(frag) + proto;

		memcpy(eth, h->hdr, sizeof(struct rte_ether_hdr) + sizeof(*ip4));
		ip4->type_of_service = tos;
		ip4->total_length = rte_cpu_to_be_16((uint16_t)tot);
		ip4->fragment_offset = frag;
		ip4->next_proto_id = proto;
		if (src->vary != 0 && src->base.af == 4) {
			uint32_t s4 = *(const unaligned_uint32_t *)src->base.ip | (flow & src->vary);

			ip4->src_addr = s4;
			s4 = rte_be_to_cpu_32(s4);
			sum += (s4 >> 16) + (s4 & 0xffff);
		}
		sum = (sum & 0xffff) + (sum >> 16);
		sum = (sum & 0xffff) + (sum >> 16);
		ip4->hdr_checksum = rte_cpu_to_be_16((uint16_t)~sum);
		ip += sizeof(*ip4);
	} else {
		struct rte_ipv6_hdr *ip6 = (struct rte_ipv6_hdr *)ip;

		memcpy(eth, h->hdr, sizeof(struct rte_ether_hdr) + sizeof(*ip6));
		ip6->vtc_flow = rte_cpu_to_be_32(6u << 28 | (uint32_t)tos << 20);
		ip6->payload_len = rte_cpu_to_be_16((uint16_t)(olen - sizeof(*ip6) + inner_len));
		ip6->proto = proto;
		if (src->vary != 0 && src->base.af == 6)
			*(unaligned_uint32_t *)&ip6->src_addr[12] |= flow & src->vary;
		ip += sizeof(*ip6);
	}
	if (tun->write != NULL)
		tun->write(m, ip, tun->len + inner_len, inner_af, dst->af, flow, opt);
	return 0;
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
	return encap(&h, tun, opt, src, flow, to, m, af, olen);
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

/* The output towards `to` by hop, in tun's encapsulation (with `opt`)
 * from `src` (encap), the egress MTU checked: with the headers o (the
 * backend's remembered output) keeps when it has them (its hop is then
 * `hop`), made again for a new configuration; else made for the packet.
 * Inlined into each kind's output, with that kind's constants. */
static __rte_always_inline void
out_encap(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port, struct rte_mbuf *m,
	  const struct pylb_hop *hop, struct pylb_out_memo *o, const struct pylb_tun *tun,
	  const void *opt, const struct pylb_encap_src *src, uint32_t flow,
	  const struct pylb_ip *to, uint8_t af)
{
	uint32_t olen = encap_len(tun, to->af);
	uint32_t mtu;
	int reason;

	if (likely(o != NULL)) {
		if (unlikely(o->cfg != cfg))
			hdr_make(o, cfg, src, to);
		if (likely(o->hlen != 0) &&
		    likely(rte_pktmbuf_pkt_len(m) - sizeof(struct rte_ether_hdr) + olen <= o->mtu)) {
			reason = encap(o, tun, opt, src, flow, to, m, af, olen);
			if (unlikely(reason != 0))
				return drop(lc, m, (enum pylb_counter)reason);
			CNT(lc, FORWARDED);
			return tx(lc, o->hop.nh->port, m);
		}
	}
	mtu = cfg->ports[hop->nh->port].mtu;
	if (unlikely(rte_pktmbuf_pkt_len(m) - sizeof(struct rte_ether_hdr) + olen > mtu))
		return out_encap_too_big(lc, cfg, in_port, m, hop, tun, opt, src, flow, to, af,
					 olen);
	reason = encap_by(cfg, hop, tun, opt, src, flow, to, m, af, olen);
	if (reason != 0)
		return drop(lc, m, (enum pylb_counter)reason);
	hop_output(lc, cfg, hop, to->ip, to->af, m);
}

/* Each kind's output of a packet, and of a VIP's packets (one call, its
 * loop with the output inlined). */
#define OUT_ENCAP(kind) \
void \
pylb_out_##kind(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port, \
		struct rte_mbuf *m, const struct pylb_hop *hop, struct pylb_out_memo *o, \
		const struct pylb_encap_src *src, uint32_t flow, const struct pylb_ip *to, \
		uint8_t af) \
{ \
	out_encap(lc, cfg, in_port, m, hop, o, &tun_##kind, NULL, src, flow, to, af); \
} \
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
