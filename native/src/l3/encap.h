/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * Encapsulation's fast part, inlined into each output that uses it (encap.c:
 * L3 VIPs' and inspection's; the L4 tunnel methods' forward handlers): a
 * packet in an outer IP header towards a backend or an appliance, with
 * nothing between (IPIP), a GRE header, UDP (GUE), or UDP and a GENEVE
 * header; the egress MTU checked. Each is a struct pylb_tun bound where it
 * is used: no packet compares kinds. The Ethernet and outer IP headers are
 * made once per backend and lcore, in its remembered output (struct
 * pylb_out_memo), and copied into each packet; what has none takes
 * encap.c's general way (pylb_out_encap_slow).
 */
#ifndef PYLB_ENCAP_H
#define PYLB_ENCAP_H

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

static inline rte_be16_t
ether_type(uint8_t af)
{
	return af == 4 ? RTE_BE16(RTE_ETHER_TYPE_IPV4) : RTE_BE16(RTE_ETHER_TYPE_IPV6);
}

/* encap.c: a backend's remembered output o gets its headers for
 * configuration cfg (hlen 0: none); IPv6's UDP checksum; the output of a
 * packet without remembered headers. */
__rte_cold void pylb_out_hdr_make(struct pylb_out_memo *o, const struct pylb_cfg *cfg,
				  const struct pylb_encap_src *src, const struct pylb_ip *to);
uint16_t pylb_udp6_cksum(const struct rte_mbuf *m, const char *u);
__rte_cold void pylb_out_encap_slow(struct pylb_lcore *lc, const struct pylb_cfg *cfg,
				    int in_port, struct rte_mbuf *m, const struct pylb_hop *hop,
				    const struct pylb_tun *tun, const void *opt,
				    const struct pylb_encap_src *src, uint32_t flow,
				    const struct pylb_ip *to, uint8_t af);

static __rte_always_inline void
write_gre(struct rte_mbuf *m __rte_unused, char *o, uint32_t len __rte_unused,
	  uint8_t inner_af, uint8_t outer_af __rte_unused, uint32_t flow __rte_unused,
	  const void *opt __rte_unused)
{
	struct rte_gre_hdr *g = (struct rte_gre_hdr *)o;

	memset(g, 0, sizeof(*g));
	g->proto = ether_type(inner_af);
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
		u->dgram_cksum = pylb_udp6_cksum(m, o);
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

/* The encapsulations. */
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

/* Put m (an Ethernet frame carrying an IP packet of family inner_af) in
 * tun's encapsulation (with the flow's `opt`: tun->write's), `olen` bytes:
 * h's headers (hdr_fill's: their length says the outer family) copied in
 * front, then what is the packet's own
 * written: the outer length; TOS and DF as the inner packet has them (DF
 * so that a hop too small answers "fragmentation needed", which comes back
 * here and goes on to the inner packet's sender, icmperr.c; IPv6 inside:
 * always); IPIP's protocol; the source's bits from `flow`; the IPv4
 * checksum from h's sum (not read back from the header just written: a
 * store-forwarding stall); the header tun->write makes. 0 or the drop
 * reason. */
static __rte_always_inline int
encap(const struct pylb_out_memo *h, const struct pylb_tun *tun, const void *opt,
      const struct pylb_encap_src *src, uint32_t flow, struct rte_mbuf *m, uint8_t inner_af,
      uint32_t olen)
{
	uint8_t outer_af = h->hlen == sizeof(struct rte_ether_hdr) + sizeof(struct rte_ipv4_hdr) ?
		4 : 6;
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
	if (outer_af == 4) {
		struct rte_ipv4_hdr *ip4 = (struct rte_ipv4_hdr *)ip;
		uint16_t df = inner_af == 6 ? RTE_IPV4_HDR_DF_FLAG :
			rte_be_to_cpu_16(((const struct rte_ipv4_hdr *)inner)->fragment_offset) &
			RTE_IPV4_HDR_DF_FLAG;
		uint32_t tot = olen + inner_len;
		uint32_t sum = h->sum + tos + tot + df + proto;

		memcpy(eth, h->hdr, sizeof(struct rte_ether_hdr) + sizeof(*ip4));
		ip4->type_of_service = tos;
		ip4->total_length = rte_cpu_to_be_16((uint16_t)tot);
		ip4->fragment_offset = rte_cpu_to_be_16(df);
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
		tun->write(m, ip, tun->len + inner_len, inner_af, outer_af, flow, opt);
	return 0;
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
	if (likely(o != NULL)) {
		uint32_t olen;
		int reason;

		if (unlikely(o->cfg != cfg))
			pylb_out_hdr_make(o, cfg, src, to);
		olen = o->hlen - sizeof(struct rte_ether_hdr) + tun->len;
		if (likely(o->hlen != 0) &&
		    likely(rte_pktmbuf_pkt_len(m) - sizeof(struct rte_ether_hdr) + olen <= o->mtu)) {
			reason = encap(o, tun, opt, src, flow, m, af, olen);
			if (unlikely(reason != 0))
				return drop(lc, m, (enum pylb_counter)reason);
			CNT(lc, FORWARDED);
			return txbuf_put(lc, o->tx, m);
		}
	}
	pylb_out_encap_slow(lc, cfg, in_port, m, hop, tun, opt, src, flow, to, af);
}

#endif /* PYLB_ENCAP_H */
