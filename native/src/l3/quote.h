/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * An ICMP error's parts: the error's own header and the IP and transport
 * headers it quotes, read and rewritten with every checksum kept right
 * (L4's translation of errors about connections, l4/icmperr.c; L3 VIPs'
 * choice of backend for an error about a flow, l3/vip.c).
 */
#ifndef PYLB_QUOTE_H
#define PYLB_QUOTE_H

#include <rte_icmp.h>
#include <rte_ip.h>

#include "core/pkt.h"

/* An ICMP error's parts, in m. */
struct quote {
	uint8_t *outer;		/* the error's IP header */
	uint8_t *icmp;		/* its ICMP header; `len` bytes with the body */
	uint32_t len;
	uint8_t *ip;		/* the quoted IP header, `hl` bytes */
	uint32_t hl;
	uint16_t *ports;	/* its TCP/UDP ports; NULL: not TCP/UDP, or cut short */
	uint32_t l4;		/* bytes of its transport header quoted */
	uint8_t proto;
	uint8_t af;
};

#define QUOTE_SRC	0
#define QUOTE_DST	1

/* Is m an ICMP error (IPv4: 3, 11, 12; ICMPv6: 1 to 4) quoting an IP
 * header of its family? Its parts in *q. */
static inline bool
quote_parse(struct rte_mbuf *m, uint8_t af, struct quote *q)
{
	uint8_t *ip = rte_pktmbuf_mtod_offset(m, uint8_t *, sizeof(struct rte_ether_hdr));
	uint32_t end = rte_pktmbuf_data_len(m) - (uint32_t)sizeof(struct rte_ether_hdr);
	uint32_t hl, tot;
	uint8_t type;

	q->outer = ip;
	q->af = af;
	q->ports = NULL;
	q->l4 = 0;
	if (af == 4) {
		const struct rte_ipv4_hdr *h = (const void *)ip;

		if (h->next_proto_id != IPPROTO_ICMP ||
		    (h->fragment_offset & RTE_BE16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)))
			return false;
		hl = rte_ipv4_hdr_len(h);
		tot = rte_be_to_cpu_16(h->total_length);
	} else {
		const struct rte_ipv6_hdr *h = (const void *)ip;

		/* No extension headers: the checksum's pseudo-header is then
		 * the fixed header's, and the quote right behind it. */
		if (h->proto != IPPROTO_ICMPV6)
			return false;
		hl = sizeof(*h);
		tot = hl + rte_be_to_cpu_16(h->payload_len);
	}
	if (tot > end || tot < hl + 8)
		return false;
	q->icmp = ip + hl;
	q->len = tot - hl;
	type = q->icmp[0];
	if (af == 4 ? type != ICMP_DEST_UNREACH && type != ICMP_TIME_EXCEEDED && type != 12 :
	    type < ICMP6_DEST_UNREACH || type > 4)
		return false;
	q->ip = q->icmp + 8;
	if (af == 4) {
		const struct rte_ipv4_hdr *in = (const void *)q->ip;

		if (q->len < 8 + sizeof(*in) || (in->version_ihl >> 4) != 4)
			return false;
		q->hl = rte_ipv4_hdr_len(in);
		q->proto = in->next_proto_id;
		if (q->hl < sizeof(*in) || q->len < 8 + q->hl)
			return false;
		if (in->fragment_offset & RTE_BE16(RTE_IPV4_HDR_OFFSET_MASK))
			return true;		/* a later fragment: no ports */
	} else {
		const struct rte_ipv6_hdr *in = (const void *)q->ip;

		if (q->len < 8 + sizeof(*in) ||
		    (in->vtc_flow & RTE_BE32(0xf0000000)) != RTE_BE32(6u << 28))
			return false;
		q->hl = sizeof(*in);
		q->proto = in->proto;
	}
	if ((q->proto == IPPROTO_TCP || q->proto == IPPROTO_UDP) && q->len >= 8 + q->hl + 4) {
		q->ports = (uint16_t *)(q->ip + q->hl);
		q->l4 = q->len - 8 - q->hl;
	}
	return true;
}

static inline uint8_t *
quote_addr(const struct quote *q, int which)
{
	return q->ip + (q->af == 4 ? 12 + 4 * which : 8 + 16 * which);
}

static inline bool
quote_cksum_ok(const struct quote *q)
{
	if (q->af == 4)
		return rte_raw_cksum(q->icmp, q->len) == 0xffff;
	return rte_ipv6_udptcp_cksum_verify((const struct rte_ipv6_hdr *)q->outer, q->icmp) == 0;
}

/* The quoted transport checksum, if the quote holds it (TCP's at 16,
 * UDP's at 6; IPv4 UDP's zero means none). */
static inline uint16_t *
quote_l4_cksum(const struct quote *q)
{
	uint32_t at = q->proto == IPPROTO_TCP ? 16 : 6;
	uint16_t *ck = (uint16_t *)((uint8_t *)q->ports + at);

	if (q->l4 < at + 2 || (q->proto == IPPROTO_UDP && q->af == 4 && *ck == 0))
		return NULL;
	return ck;
}

/* The quoted packet's source or destination becomes ip:port; its
 * checksums follow. */
static inline void
quote_set(struct quote *q, int which, const uint8_t *ip, uint16_t port)
{
	uint32_t alen = q->af == 4 ? 4 : 16;
	uint8_t *addr = quote_addr(q, which);
	uint16_t *ck = quote_l4_cksum(q);

	if (ck != NULL)
		*ck = l4_cksum_update(*ck, addr, ip, alen, q->ports[which], port);
	if (q->af == 4) {
		struct rte_ipv4_hdr *h = (struct rte_ipv4_hdr *)q->ip;

		h->hdr_checksum = cksum_apply(h->hdr_checksum, cksum_delta(addr, ip, 4));
	}
	memcpy(addr, ip, alen);
	q->ports[which] = port;
}

/* The error's own source or destination becomes ip. */
static inline void
outer_set(struct quote *q, int which, const uint8_t *ip)
{
	uint32_t alen = q->af == 4 ? 4 : 16;
	uint8_t *addr = q->outer + (q->af == 4 ? 12 + 4 * which : 8 + 16 * which);

	if (q->af == 4) {
		struct rte_ipv4_hdr *h = (struct rte_ipv4_hdr *)q->outer;

		h->hdr_checksum = cksum_apply(h->hdr_checksum, cksum_delta(addr, ip, 4));
	}
	memcpy(addr, ip, alen);
}

/* The ICMP checksum over what changed (the quote is at most 576 or 1,280
 * bytes: summed again). */
static inline void
quote_seal(struct quote *q)
{
	struct rte_icmp_hdr *icmp = (struct rte_icmp_hdr *)q->icmp;

	icmp->icmp_cksum = 0;
	if (q->af == 4)
		icmp->icmp_cksum = (uint16_t)~rte_raw_cksum(icmp, q->len);
	else
		icmp->icmp_cksum = rte_ipv6_udptcp_cksum((const struct rte_ipv6_hdr *)q->outer, icmp);
}

/* "Fragmentation needed" / "packet too big" with an MTU below its
 * protocol's minimum (68, 1280): forged, or broken; never relayed. */
static inline bool
quote_mtu_invalid(const struct quote *q)
{
	if (q->af == 4)
		return q->icmp[0] == ICMP_DEST_UNREACH && q->icmp[1] == ICMP_FRAG_NEEDED &&
			rte_be_to_cpu_16(*(const unaligned_uint16_t *)(q->icmp + 6)) < 68;
	return q->icmp[0] == ICMP6_PACKET_TOO_BIG &&
		rte_be_to_cpu_32(*(const unaligned_uint32_t *)(q->icmp + 4)) < 1280;
}

/* The quoted TCP sequence number, and setting it (its checksum follows). */
static inline void
quote_seq_set(struct quote *q, uint32_t v)
{
	uint16_t *ck = quote_l4_cksum(q);
	uint32_t *seq = (uint32_t *)(q->ports + 2);
	uint32_t now = rte_cpu_to_be_32(v);

	if (ck != NULL)
		*ck = cksum_apply(*ck, cksum_delta(seq, &now, 4));
	*seq = now;
}

static inline uint32_t
quote_seq(const struct quote *q)
{
	return rte_be_to_cpu_32(*(const uint32_t *)(q->ports + 2));
}

/* An ICMP error's quoted flow, turned the way it arrived (the quoted
 * packet left the VIP for the client): *client and *vip. False: m is
 * not an error quoting a header of its family. */
static inline bool
icmp_error_flow(struct rte_mbuf *m, uint8_t af, const uint8_t **client,
		     const uint8_t **vip)
{
	struct quote q;

	if (!quote_parse(m, af, &q))
		return false;
	*vip = quote_addr(&q, QUOTE_SRC);
	*client = quote_addr(&q, QUOTE_DST);
	return true;
}

#endif /* PYLB_QUOTE_H */
