/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * The slow side of output (a neighbour not in the lcore's cache) and the
 * ICMP errors a router owes: time exceeded, unreachable.
 */
#include <rte_cycles.h>
#include <rte_icmp.h>

#include "fib.h"

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
 * previous hop's MAC: the way back to the source. */
void
pylb_icmp4_error(struct pylb_lcore *lc, const struct pylb_cfg *cfg,
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
		return;
	if (oip->next_proto_id == IPPROTO_ICMP) {
		const struct rte_icmp_hdr *oi = (const void *)((const char *)oip + ihl);

		if (rte_be_to_cpu_16(oip->total_length) < ihl + 1 ||
		    (oi->icmp_type != RTE_IP_ICMP_ECHO_REQUEST &&
		     oi->icmp_type != RTE_IP_ICMP_ECHO_REPLY))
			return;
	}
	if (!port_src4(pc, oip->src_addr, &src) || !icmp_allowed(lc))
		return;
	quote = RTE_MIN((uint32_t)rte_be_to_cpu_16(oip->total_length),
			(uint32_t)ICMP4_QUOTE_MAX);
	if (error_frame(orig, &n, sizeof(*ip) + sizeof(*icmp) + quote, pc,
			RTE_ETHER_TYPE_IPV4) == NULL)
		return drop(lc, NULL, PYLB_D_ALLOC_FAILED);
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
	CNT(lc, ICMP_ERRORS_SENT);
	tx(lc, port, n);
}

void
pylb_icmp6_error(struct pylb_lcore *lc, const struct pylb_cfg *cfg,
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
		return;
	/* Not about an ICMPv6 error (types below 128). */
	if (oip->proto == IPPROTO_ICMPV6 &&
	    (rte_be_to_cpu_16(oip->payload_len) < 1 ||
	     *((const uint8_t *)(oip + 1)) < 128))
		return;
	src = port_src6(pc, oip->src_addr);
	if (src == NULL || !icmp_allowed(lc))
		return;
	quote = RTE_MIN((uint32_t)sizeof(*oip) + rte_be_to_cpu_16(oip->payload_len),
			(uint32_t)ICMP6_QUOTE_MAX);
	if (error_frame(orig, &n, sizeof(*ip) + sizeof(*icmp) + quote, pc,
			RTE_ETHER_TYPE_IPV6) == NULL)
		return drop(lc, NULL, PYLB_D_ALLOC_FAILED);
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
	CNT(lc, ICMP_ERRORS_SENT);
	tx(lc, port, n);
}
