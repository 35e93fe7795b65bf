/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * TCP segments built or rebuilt in place (the SYN proxy's answers, the
 * PROXY protocol's header, RSTs): their payload, options, sequence words,
 * lengths and checksums, sent back where they came from.
 */
#ifndef PYLB_L4_TCP_H
#define PYLB_L4_TCP_H

#include <rte_ip.h>
#include <rte_tcp.h>

#include "core/pkt.h"
#include "l4/state.h"

/* The bytes a TCP segment carries after its header. */
static inline uint32_t
tcp_payload_len(const struct rte_mbuf *m, uint8_t af, const struct rte_tcp_hdr *t)
{
	const uint8_t *ip = rte_pktmbuf_mtod_offset(m, const uint8_t *,
						    sizeof(struct rte_ether_hdr));
	uint32_t end = af == 4 ? rte_be_to_cpu_16(((const struct rte_ipv4_hdr *)ip)->total_length) :
		sizeof(struct rte_ipv6_hdr) +
		rte_be_to_cpu_16(((const struct rte_ipv6_hdr *)ip)->payload_len);

	return end - (uint32_t)((const uint8_t *)t - ip) - (uint32_t)((t->data_off >> 4) * 4);
}

/* Make m's TCP segment at t `len` bytes long (a header rebuilt in place,
 * its payload cut); false (m dropped) if it cannot grow to len. */
static inline bool
seg_fit(struct pylb_lcore *lc, struct rte_mbuf *m, const struct rte_tcp_hdr *t, uint32_t len)
{
	uint32_t have = rte_pktmbuf_pkt_len(m);
	uint32_t want = (uint32_t)((const uint8_t *)t - rte_pktmbuf_mtod(m, const uint8_t *)) + len;

	if (have > want)
		rte_pktmbuf_trim(m, (uint16_t)(have - want));
	else if (have < want && rte_pktmbuf_append(m, (uint16_t)(want - have)) == NULL) {
		drop(lc, m, PYLB_D_ALLOC_FAILED);
		return false;
	}
	return true;
}

/* TCP header helpers (synproxy.c, proxy.c). */
/* The options of a TCP header, one at a time: opt_start, then opt_next
 * while it returns a kind (the option's bytes at o->p + o->at, o->ol of
 * them); a malformed list ends the walk. */
struct tcp_opts {
	uint8_t *p;
	uint32_t len, at, ol;
};

static inline void
opt_start(struct tcp_opts *o, const struct rte_tcp_hdr *t, uint32_t avail)
{
	uint32_t len = RTE_MIN((uint32_t)(t->data_off >> 4) * 4, avail);

	o->p = (uint8_t *)(uintptr_t)(t + 1);
	o->len = len > sizeof(*t) ? len - (uint32_t)sizeof(*t) : 0;
	o->at = 0;
	o->ol = 0;
}

static inline uint8_t
opt_next(struct tcp_opts *o)
{
	o->at += o->ol;
	while (o->at < o->len && o->p[o->at] == 1)	/* NOP */
		o->at++;
	if (o->at + 1 >= o->len || o->p[o->at] == 0)	/* the end */
		return 0;
	o->ol = o->p[o->at + 1];
	if (o->ol < 2 || o->at + o->ol > o->len)
		return 0;
	return o->p[o->at];
}

/* The bytes m holds from t on. */
static inline uint32_t
seg_avail(const struct rte_mbuf *m, const struct rte_tcp_hdr *t)
{
	return rte_pktmbuf_data_len(m) -
		(uint32_t)((const uint8_t *)t - rte_pktmbuf_mtod(m, const uint8_t *));
}

/* Replace the 32-bit word at p (network order) by v, noting the checksum
 * change in *sum. */
static inline void
word_set(void *p, uint32_t v, uint64_t *sum)
{
	uint32_t old, new = rte_cpu_to_be_32(v);

	memcpy(&old, p, 4);
	*sum += cksum_delta(&old, &new, 4);
	memcpy(p, &new, 4);
}

/* The IP length, TTL and checksums of m, a TCP segment of `len` bytes at
 * t (rebuilt in place), made afresh. */
static inline void
seg_finish(struct rte_mbuf *m, uint8_t af, struct rte_tcp_hdr *t, uint32_t len)
{
	uint8_t *ip = rte_pktmbuf_mtod_offset(m, uint8_t *, sizeof(struct rte_ether_hdr));
	uint32_t hl = (uint32_t)((uint8_t *)t - ip);

	t->tcp_urp = 0;
	t->cksum = 0;
	if (af == 4) {
		struct rte_ipv4_hdr *h = (struct rte_ipv4_hdr *)ip;

		h->total_length = rte_cpu_to_be_16((uint16_t)(hl + len));
		h->time_to_live = IPDEFTTL;
		h->fragment_offset = 0;
		h->hdr_checksum = 0;
		h->hdr_checksum = rte_ipv4_cksum(h);
	} else {
		struct rte_ipv6_hdr *h = (struct rte_ipv6_hdr *)ip;

		h->payload_len = rte_cpu_to_be_16((uint16_t)(hl - sizeof(*h) + len));
		h->hop_limits = IPDEFTTL;
	}
	t->cksum = l4_cksum(ip, af, t, len, IPPROTO_TCP);
}

/* m's addresses and ports swapped: back to where it came from. */
static inline void
seg_turn(struct rte_mbuf *m, uint8_t af, struct rte_tcp_hdr *t)
{
	uint8_t *ip = rte_pktmbuf_mtod_offset(m, uint8_t *, sizeof(struct rte_ether_hdr));
	uint8_t tmp[16];
	uint32_t alen = af == 4 ? 4 : 16;
	uint8_t *src = ip + (af == 4 ? 12 : 8);

	RTE_SWAP(t->src_port, t->dst_port);
	memcpy(tmp, src, alen);
	memcpy(src, src + alen, alen);
	memcpy(src + alen, tmp, alen);
}

/* Send m back where it came from as a TCP segment of `len` bytes (a
 * header rebuilt in place: flags, numbers, options), out of its port. */
static inline void
tcp_answer(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port, struct rte_mbuf *m,
	   uint8_t af, struct rte_tcp_hdr *t, uint32_t len)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);

	if (!seg_fit(lc, m, t, len))
		return;
	seg_turn(m, af, t);
	seg_finish(m, af, t, len);
	rte_ether_addr_copy(&eth->src_addr, &eth->dst_addr);
	rte_ether_addr_copy(&cfg->ports[in_port].mac, &eth->src_addr);
	tx(lc, (uint16_t)in_port, m);
}

#endif /* PYLB_L4_TCP_H */
