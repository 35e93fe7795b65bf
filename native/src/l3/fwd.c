/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * The slow side of output (a neighbour not in the lcore's cache), the
 * egress MTU (IPv4 without DF fragmented, the rest refused with an ICMP
 * error), and the ICMP errors a router owes: time exceeded, unreachable,
 * fragmentation needed / packet too big.
 */
#include <rte_cycles.h>
#include <rte_icmp.h>

#include "l3/l3.h"

#define ICMP4_QUOTE_MAX	(576 - 20 - 8)	/* RFC 1812 4.3.2.3 */
#define ICMP6_QUOTE_MAX	(1280 - 40 - 8)	/* RFC 4443 2.4(c) */

void
pylb_neigh_output_slow(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
		       const uint8_t *ip, uint8_t af, struct rte_mbuf *m,
		       struct pylb_ncache *e, uint32_t gen)
{
	struct pylb_neigh_miss miss;
	void *data;

	if (af == 4)
		neigh_key4(&miss.key, *(const unaligned_uint32_t *)ip, port);
	else
		neigh_key6(&miss.key, ip, port);
	if (rte_hash_lookup_data(lc->dp->neigh_hash, &miss.key, &data) >= 0 &&
	    ((uint64_t)(uintptr_t)data & PYLB_MAC_VALID)) {
		e->key = miss.key;
		e->mac = (uint64_t)(uintptr_t)data;
		e->gen = gen;
		return output_to(lc, cfg, port, e->mac, m);
	}
	/* The control side sets only the destination MAC when it sends it. */
	rte_ether_addr_copy(&cfg->ports[port].mac,
			    &rte_pktmbuf_mtod(m, struct rte_ether_hdr *)->src_addr);
	miss.m = m;
	if (rte_ring_enqueue_elem(lc->dp->neigh_miss, &miss, sizeof(miss)) != 0)
		drop(lc, m, PYLB_D_NEIGH_QUEUE_FULL);
}

/* Token bucket per lcore: at most PYLB_ICMP_RATE errors a second, bursts
 * of PYLB_ICMP_BURST. */
static bool
icmp_allowed(struct pylb_lcore *lc)
{
	uint64_t cost = rte_get_tsc_hz() / PYLB_ICMP_RATE;

	if (pylb_tokens_take(&lc->icmp, rte_get_tsc_cycles(), cost, PYLB_ICMP_BURST * cost))
		return true;
	CNT(lc, ICMP_ERRORS_RATELIMITED);
	return false;
}

static struct rte_ether_hdr *
error_frame(struct rte_mbuf *orig, struct rte_mbuf **out, uint32_t len,
	    const struct pylb_port_cfg *pc, uint16_t type)
{
	const struct rte_ether_hdr *oeth =
		rte_pktmbuf_mtod(orig, const struct rte_ether_hdr *);
	struct rte_ether_hdr *eth;
	struct rte_mbuf *n = rte_pktmbuf_alloc(orig->pool);

	if (n == NULL)
		return NULL;
	eth = (struct rte_ether_hdr *)rte_pktmbuf_append(n,
		(uint16_t)(sizeof(*eth) + len));
	if (eth == NULL) {
		rte_pktmbuf_free(n);
		return NULL;
	}
	rte_ether_addr_copy(&oeth->src_addr, &eth->dst_addr);
	rte_ether_addr_copy(&pc->mac, &eth->src_addr);
	eth->ether_type = rte_cpu_to_be_16(type);
	*out = n;
	return eth;
}

/* ICMP errors go back out of the port the packet came in on, to the
 * previous hop's MAC: the way back to the source. Built (NULL: none owed,
 * or none allowed now), then sent. */
static struct rte_mbuf *
icmp4_build(struct pylb_lcore *lc, const struct pylb_cfg *cfg,
	    uint16_t port, struct rte_mbuf *orig, uint8_t type, uint8_t code,
	    uint16_t mtu)
{
	const struct pylb_port_cfg *pc = &cfg->ports[port];
	const struct rte_ipv4_hdr *oip = rte_pktmbuf_mtod_offset(orig,
		const struct rte_ipv4_hdr *, sizeof(struct rte_ether_hdr));
	uint32_t osrc = rte_be_to_cpu_32(oip->src_addr);
	uint32_t quote, ihl = rte_ipv4_hdr_len(oip), src;
	struct rte_ipv4_hdr *ip;
	struct rte_icmp_hdr *icmp;
	struct rte_mbuf *n;

	/* Never about a non-first fragment, an ICMP error, or a source that
	 * is not one host (RFC 1812 4.3.2.7). */
	if (osrc == 0 || (osrc >> 28) >= 0xe ||
	    (oip->fragment_offset & RTE_BE16(RTE_IPV4_HDR_OFFSET_MASK)))
		return NULL;
	if (oip->next_proto_id == IPPROTO_ICMP) {
		const struct rte_icmp_hdr *oi = (const void *)((const char *)oip + ihl);

		if (rte_be_to_cpu_16(oip->total_length) < ihl + 1 ||
		    (oi->icmp_type != RTE_IP_ICMP_ECHO_REQUEST &&
		     oi->icmp_type != RTE_IP_ICMP_ECHO_REPLY))
			return NULL;
	}
	if (!port_src4(pc, oip->src_addr, &src) || !icmp_allowed(lc))
		return NULL;
	quote = RTE_MIN((uint32_t)rte_be_to_cpu_16(oip->total_length),
			(uint32_t)ICMP4_QUOTE_MAX);
	if (error_frame(orig, &n, sizeof(*ip) + sizeof(*icmp) + quote, pc,
			RTE_ETHER_TYPE_IPV4) == NULL)
		return drop(lc, NULL, PYLB_D_ALLOC_FAILED), NULL;
	ip = rte_pktmbuf_mtod_offset(n, struct rte_ipv4_hdr *,
				     sizeof(struct rte_ether_hdr));
	memset(ip, 0, sizeof(*ip));
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->type_of_service = 0xc0;	/* internetwork control */
	ip->total_length = rte_cpu_to_be_16((uint16_t)(sizeof(*ip) + sizeof(*icmp) + quote));
	ip->time_to_live = IPDEFTTL;
	ip->next_proto_id = IPPROTO_ICMP;
	ip->src_addr = src;
	ip->dst_addr = oip->src_addr;
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	icmp = (struct rte_icmp_hdr *)(ip + 1);
	memset(icmp, 0, sizeof(*icmp));
	icmp->icmp_type = type;
	icmp->icmp_code = code;
	icmp->icmp_seq_nb = rte_cpu_to_be_16(mtu);
	memcpy(icmp + 1, oip, quote);
	icmp->icmp_cksum = (uint16_t)~rte_raw_cksum(icmp, sizeof(*icmp) + quote);
	return n;
}

static void
icmp_send(struct pylb_lcore *lc, uint16_t port, struct rte_mbuf *n)
{
	if (n != NULL) {
		CNT(lc, ICMP_ERRORS_SENT);
		tx(lc, port, n);
	}
}

void
pylb_icmp4_error(struct pylb_lcore *lc, const struct pylb_cfg *cfg,
		 uint16_t port, struct rte_mbuf *orig, uint8_t type, uint8_t code,
		 uint16_t mtu)
{
	icmp_send(lc, port, icmp4_build(lc, cfg, port, orig, type, code, mtu));
}

static struct rte_mbuf *
icmp6_build(struct pylb_lcore *lc, const struct pylb_cfg *cfg,
	    uint16_t port, struct rte_mbuf *orig, uint8_t type, uint8_t code,
	    uint16_t mtu)
{
	const struct pylb_port_cfg *pc = &cfg->ports[port];
	const struct rte_ipv6_hdr *oip = rte_pktmbuf_mtod_offset(orig,
		const struct rte_ipv6_hdr *, sizeof(struct rte_ether_hdr));
	static const uint8_t unspec[16];
	struct rte_ipv6_hdr *ip;
	struct rte_icmp_hdr *icmp;
	const uint8_t *src;
	struct rte_mbuf *n;
	uint32_t quote;

	if (oip->src_addr[0] == 0xff || memcmp(oip->src_addr, unspec, 16) == 0)
		return NULL;
	/* Not about an ICMPv6 error (types below 128). */
	if (oip->proto == IPPROTO_ICMPV6 &&
	    (rte_be_to_cpu_16(oip->payload_len) < 1 ||
	     *((const uint8_t *)(oip + 1)) < 128))
		return NULL;
	src = port_src6(pc, oip->src_addr);
	if (src == NULL || !icmp_allowed(lc))
		return NULL;
	quote = RTE_MIN((uint32_t)sizeof(*oip) + rte_be_to_cpu_16(oip->payload_len),
			(uint32_t)ICMP6_QUOTE_MAX);
	if (error_frame(orig, &n, sizeof(*ip) + sizeof(*icmp) + quote, pc,
			RTE_ETHER_TYPE_IPV6) == NULL)
		return drop(lc, NULL, PYLB_D_ALLOC_FAILED), NULL;
	ip = rte_pktmbuf_mtod_offset(n, struct rte_ipv6_hdr *,
				     sizeof(struct rte_ether_hdr));
	ip->vtc_flow = RTE_BE32(6u << 28);
	ip->payload_len = rte_cpu_to_be_16((uint16_t)(sizeof(*icmp) + quote));
	ip->proto = IPPROTO_ICMPV6;
	ip->hop_limits = IPDEFTTL;
	memcpy(ip->src_addr, src, 16);
	memcpy(ip->dst_addr, oip->src_addr, 16);
	icmp = (struct rte_icmp_hdr *)(ip + 1);
	memset(icmp, 0, sizeof(*icmp));
	icmp->icmp_type = type;
	icmp->icmp_code = code;
	icmp->icmp_seq_nb = rte_cpu_to_be_16(mtu);
	memcpy(icmp + 1, oip, quote);
	icmp->icmp_cksum = rte_ipv6_udptcp_cksum(ip, icmp);
	return n;
}

void
pylb_icmp6_error(struct pylb_lcore *lc, const struct pylb_cfg *cfg,
		 uint16_t port, struct rte_mbuf *orig, uint8_t type, uint8_t code,
		 uint16_t mtu)
{
	icmp_send(lc, port, icmp6_build(lc, cfg, port, orig, type, code, mtu));
}

/* Too big for the egress (`mtu`: what is left for it): the source is told
 * (IPv4 with DF, IPv6) so path MTU discovery adapts; m is dropped for
 * `reason`. */
void
pylb_too_big(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	     struct rte_mbuf *m, uint8_t af, uint16_t mtu, enum pylb_counter reason)
{
	const struct rte_ipv4_hdr *ip = rte_pktmbuf_mtod_offset(m,
		const struct rte_ipv4_hdr *, sizeof(struct rte_ether_hdr));
	const struct rte_ipv6_hdr *ip6 = (const void *)ip;
	struct rte_mbuf *n = NULL;
	uint32_t v;

	if (in_port >= 0 && af == 4 && (ip->fragment_offset & RTE_BE16(RTE_IPV4_HDR_DF_FLAG)))
		n = icmp4_build(lc, cfg, (uint16_t)in_port, m, ICMP_DEST_UNREACH,
				ICMP_FRAG_NEEDED, mtu);
	else if (in_port >= 0 && af == 6)
		n = icmp6_build(lc, cfg, (uint16_t)in_port, m, ICMP6_PACKET_TOO_BIG, 0, mtu);
	/* A backend's reply, translated already (its source is a service's
	 * address): the error goes to the backend in its own terms, as a
	 * router's beyond would (icmperr.c). */
	v = af == 4 ? fib4_lookup(lc->dp, ip->src_addr) : fib6_lookup(lc->dp, ip6->src_addr);
	drop(lc, m, reason);
	if (n == NULL)
		return;
	CNT(lc, ICMP_ERRORS_SENT);
	if (v != 0 && fib_kind(v) == PYLB_FIB_SERVICE) {
		if (!lc->dp->service_error_in(lc, cfg, in_port, n, af))
			drop(lc, n, reason);
		return;
	}
	tx(lc, (uint16_t)in_port, n);
}

/* IPv4 without DF: m cut into fragments of at most `mtu` bytes (each
 * payload but the last a multiple of 8; a fragment's own offset and MF
 * kept), in out[]; m freed. Their count; 0: m dropped. */
static uint16_t
fragment4(struct pylb_lcore *lc, struct rte_mbuf *m, uint16_t mtu, struct rte_mbuf **out)
{
	const uint32_t l2 = sizeof(struct rte_ether_hdr);
	const uint8_t *frame = rte_pktmbuf_mtod(m, const uint8_t *);
	const struct rte_ipv4_hdr *ip = (const void *)(frame + l2);
	uint32_t hl = rte_ipv4_hdr_len(ip), data = rte_be_to_cpu_16(ip->total_length) - hl;
	uint16_t frag = rte_be_to_cpu_16(ip->fragment_offset);
	uint32_t step = (mtu - hl) & ~7u, n = step ? (data + step - 1) / step : 0, i;

	if (n == 0 || n > PYLB_MAX_FRAGMENTS || rte_pktmbuf_data_len(m) < l2 + hl + data) {
		drop(lc, m, PYLB_D_MTU_EXCEEDED);
		return 0;
	}
	for (i = 0; i < n; i++) {
		uint32_t len = RTE_MIN(step, data - i * step);
		struct rte_mbuf *f = rte_pktmbuf_alloc(m->pool);
		uint8_t *p = f != NULL ? (uint8_t *)rte_pktmbuf_append(f, (uint16_t)(l2 + hl + len)) :
			NULL;
		struct rte_ipv4_hdr *h;

		if (p == NULL) {
			rte_pktmbuf_free(f);
			rte_pktmbuf_free_bulk(out, i);
			drop(lc, m, PYLB_D_ALLOC_FAILED);
			return 0;
		}
		memcpy(p, frame, l2 + hl);
		memcpy(p + l2 + hl, frame + l2 + hl + i * step, len);
		h = (struct rte_ipv4_hdr *)(p + l2);
		h->total_length = rte_cpu_to_be_16((uint16_t)(hl + len));
		h->fragment_offset = rte_cpu_to_be_16((uint16_t)(
			((frag & RTE_IPV4_HDR_OFFSET_MASK) + i * step / 8) |
			(i + 1 < n ? RTE_IPV4_HDR_MF_FLAG : frag & RTE_IPV4_HDR_MF_FLAG)));
		h->hdr_checksum = 0;
		h->hdr_checksum = rte_ipv4_cksum(h);
		f->port = m->port;
		out[i] = f;
	}
	rte_pktmbuf_free(m);
	lc->stats->c[PYLB_C_IPV4_FRAGMENTED]++;
	return (uint16_t)n;
}

/* m is too big for nh's port: IPv4 without DF goes out in fragments, the
 * rest is refused (fragmentation needed, packet too big). */
void
pylb_nh_output_fit(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		   struct rte_mbuf *m, const struct pylb_nh *nh, const void *dst, uint8_t dst_af)
{
	const struct rte_ipv4_hdr *ip = rte_pktmbuf_mtod_offset(m,
		const struct rte_ipv4_hdr *, sizeof(struct rte_ether_hdr));
	uint16_t mtu = cfg->ports[nh->port].mtu;
	struct rte_mbuf *frags[PYLB_MAX_FRAGMENTS];
	uint8_t to[16];
	uint16_t n;

	if ((ip->version_ihl >> 4) != 4 || (ip->fragment_offset & RTE_BE16(RTE_IPV4_HDR_DF_FLAG)))
		return pylb_too_big(lc, cfg, in_port, m, (ip->version_ihl >> 4) == 4 ? 4 : 6, mtu,
				    PYLB_D_MTU_EXCEEDED);
	memcpy(to, dst, dst_af == 4 ? 4 : 16);	/* in m, which goes */
	n = fragment4(lc, m, mtu, frags);
	for (uint16_t i = 0; i < n; i++)
		nh_output(lc, cfg, nh, to, dst_af, frags[i]);
}

/* nh's MAC towards dst (of family af) at generation gen: a gateway's,
 * cached in nh, or the neighbour's, from the lcore's cache or the table;
 * without PYLB_MAC_VALID: not resolved. */
static uint64_t
nh_mac(struct pylb_lcore *lc, const struct pylb_nh *nh, const uint8_t *dst, uint8_t af,
       uint32_t gen)
{
	const struct pylb_ncache *e;
	struct pylb_neigh_key k;
	void *data;

	if (!nh->connected)
		return __atomic_load_n(&nh->mac, __ATOMIC_RELAXED);
	/* The lcore's neighbour cache first, as packet output does. */
	e = ncache_slot(lc, dst, af, nh->port);
	if (ncache_holds(e, dst, af, nh->port, gen))
		return e->mac;
	if (af == 4)
		neigh_key4(&k, *(const unaligned_uint32_t *)dst, nh->port);
	else
		neigh_key6(&k, dst, nh->port);
	return rte_hash_lookup_data(lc->dp->neigh_hash, &k, &data) < 0 ? 0 :
		(uint64_t)(uintptr_t)data;
}

void
pylb_out_memo_make(struct pylb_lcore *lc, struct pylb_out_memo *o, const struct pylb_ip *to,
		   uint32_t gen)
{
	struct pylb_dp *dp = lc->dp;
	uint32_t g = route_group(dp, to->ip, to->af);

	o->gen = gen;
	o->group = g;
	o->hop.nh = NULL;
	o->hop.mac = 0;
	o->cfg = NULL;
	if (g == 0 || nhg_multi(dp, g))
		return;
	o->hop.nh = nhg_pick(dp, g, 0);
	o->hop.mac = nh_mac(lc, o->hop.nh, to->ip, to->af, gen);
	o->tx = &lc->tx[o->hop.nh->port];
}

/* A neighbour a worker saw (an ARP or ND packet), queued for the control
 * side to record (ctl/neigh.c). */
void
pylb_neigh_queue(struct pylb_lcore *lc, const struct pylb_neigh_key *k,
		 const struct rte_ether_addr *mac)
{
	struct pylb_neigh_learn ev = { .key = *k };

	rte_ether_addr_copy(mac, &ev.mac);
	if (rte_ring_enqueue_elem(lc->dp->neigh_learn, &ev, sizeof(ev)) == 0)
		CNT(lc, NEIGH_LEARN_QUEUED);
	else
		CNT(lc, NEIGH_LEARN_OVERFLOW);
}
