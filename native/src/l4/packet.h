/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * A packet as L4 reads it: its transport header (past IPv6's extension
 * headers), whether it may be a fragment, its tuple, and the address and
 * port rewrite of NAT.
 */
#ifndef PYLB_L4_PACKET_H
#define PYLB_L4_PACKET_H

#include <rte_ip.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "core/pkt.h"
#include "l4/state.h"

/* The L4 header of the IP packet after the Ethernet header; NULL if short. */
static inline void *
l4_header(struct rte_mbuf *m, uint8_t af, uint8_t *proto)
{
	uint32_t len = rte_pktmbuf_data_len(m) - sizeof(struct rte_ether_hdr);
	uint8_t *ip = rte_pktmbuf_mtod_offset(m, uint8_t *, sizeof(struct rte_ether_hdr));
	uint32_t hl, need;

	if (af == 4) {
		const struct rte_ipv4_hdr *h = (const void *)ip;

		hl = rte_ipv4_hdr_len(h);
		*proto = h->next_proto_id;
		/* Not the first fragment: no L4 header. */
		if (h->fragment_offset & RTE_BE16(RTE_IPV4_HDR_OFFSET_MASK))
			return NULL;
	} else if (pylb_ipv6_walk(m, sizeof(struct rte_ether_hdr), proto) != 0) {
		*proto = 0;
		return NULL;
	} else {
		hl = m->l3_len;		/* past the extension headers */
	}
	need = *proto == IPPROTO_TCP ? sizeof(struct rte_tcp_hdr) : sizeof(struct rte_udp_hdr);
	return len >= hl + need ? ip + hl : NULL;
}

/* Might m be a fragment (pylb_frag_gather says)? IPv4: more fragments or
 * an offset; IPv6: extension headers, or a later fragment's header (what
 * l4_header's walk found: proto). */
static inline bool
frag_suspect(const struct rte_mbuf *m, uint8_t af, uint8_t proto)
{
	const struct rte_ipv4_hdr *ip = rte_pktmbuf_mtod_offset(m, const struct rte_ipv4_hdr *,
								 sizeof(struct rte_ether_hdr));

	if (af == 4)
		return (ip->fragment_offset &
			RTE_BE16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)) != 0;
	return m->l3_len != sizeof(struct rte_ipv6_hdr) || proto == IPPROTO_FRAGMENT;
}

/* m's source address. */
static inline const uint8_t *
l4_src(const struct rte_mbuf *m, uint8_t af)
{
	return rte_pktmbuf_mtod_offset(m, const uint8_t *, sizeof(struct rte_ether_hdr) +
				       (af == 4 ? 12 : 8));
}

/* Is `ports` a later fragment's stand-in header? */
static inline bool
frag_followed(const struct pylb_lcore *lc, const uint16_t *ports)
{
	return ports == lc->frags->phantom;
}

static inline void
tuple_of(struct pylb_tuple *t, const struct rte_mbuf *m, uint8_t af, uint8_t proto,
	 const uint16_t *ports)
{
	const uint8_t *ip = rte_pktmbuf_mtod_offset(m, const uint8_t *,
						    sizeof(struct rte_ether_hdr));

	t->src = af == 4 ? ip + 12 : ip + 8;
	t->dst = af == 4 ? ip + 16 : ip + 24;
	t->sport = ports[0];
	t->dport = ports[1];
	t->proto = proto;
	t->af = af;
	t->payload = NULL;
	t->plen = 0;
	if (proto == IPPROTO_UDP) {
		const uint8_t *end = rte_pktmbuf_mtod(m, const uint8_t *) + rte_pktmbuf_data_len(m);
		const uint8_t *p = (const uint8_t *)ports + sizeof(struct rte_udp_hdr);

		/* (A later fragment's stand-in header lies outside the mbuf.) */
		if (p > (const uint8_t *)ports && p <= end && (const uint8_t *)ports >= ip) {
			t->payload = p;
			t->plen = (uint16_t)(end - p);
		}
	}
}

/* Rewrite destination (dnat) or source (reply) address and port. */
static inline void
nat_rewrite(struct rte_mbuf *m, uint8_t af, uint8_t proto, uint16_t *ports,
	    bool dst, const uint8_t *new_ip, uint16_t new_port)
{
	uint8_t *ip = rte_pktmbuf_mtod_offset(m, uint8_t *, sizeof(struct rte_ether_hdr));
	uint32_t alen = af == 4 ? 4 : 16;
	uint8_t *addr = af == 4 ? ip + (dst ? 16 : 12) : ip + (dst ? 24 : 8);
	uint16_t *port = &ports[dst ? 1 : 0];
	uint16_t *ck = (uint16_t *)((uint8_t *)ports + (proto == IPPROTO_TCP ?
		offsetof(struct rte_tcp_hdr, cksum) : offsetof(struct rte_udp_hdr, dgram_cksum)));

	/* A zero UDP checksum over IPv4 means "none": keep it so. */
	if (!(proto == IPPROTO_UDP && af == 4 && *ck == 0))
		*ck = l4_cksum_update(*ck, addr, new_ip, alen, *port, new_port);
	if (af == 4) {
		struct rte_ipv4_hdr *h = (struct rte_ipv4_hdr *)ip;

		h->hdr_checksum = cksum_apply(h->hdr_checksum, cksum_delta(addr, new_ip, 4));
	}
	memcpy(addr, new_ip, alen);
	*port = new_port;
}

#endif /* PYLB_L4_PACKET_H */
