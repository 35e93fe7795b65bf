/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * Inspection's decision, shared by the fast path (inspect.c) and the
 * control side (ctl/pool.c: what a flow's first packet would pick): a
 * flow's key, the same whichever way it goes, and its cookie.
 */
#ifndef PYLB_INSPECT_H
#define PYLB_INSPECT_H

#include <rte_vect.h>

#include "core/mac.h"
#include "l3/fib.h"

/* A flow as a packet has it: family, protocol, addresses, ports (0: none,
 * e.g. a fragment). */
struct inspect_flow_of {
	uint8_t af, proto;
	const uint8_t *src, *dst;
	uint16_t sport, dport;
};

/* Is (a, pa) before (b, pb)? The lower side goes first in a key. */
static inline bool
inspect_lower(const uint8_t *a, uint16_t pa, const uint8_t *b, uint16_t pb, uint8_t af)
{
	int c;

	if (af == 4) {
		/* In network order as numbers: memcmp's order, without the call. */
		uint32_t x = rte_be_to_cpu_32(*(const unaligned_uint32_t *)a);
		uint32_t y = rte_be_to_cpu_32(*(const unaligned_uint32_t *)b);

		c = x < y ? -1 : x > y;
	} else {
		c = memcmp(a, b, 16);
	}
	return c < 0 || (c == 0 && rte_be_to_cpu_16(pa) <= rte_be_to_cpu_16(pb));
}

/* The key of flow f in pool slot `pool` under `stick` (enum
 * pylb_stickiness): ports kept for the 5-tuple, the protocol for 5 and 3;
 * and its hash (keyed: every appliance of a fleet picks alike). */
static inline uint32_t
inspect_key(const uint64_t *hk, const struct inspect_flow_of *f, uint16_t pool, uint8_t stick,
	    struct pylb_inspect_key *k)
{
	bool fwd = inspect_lower(f->src, f->sport, f->dst, f->dport, f->af);
	uint8_t proto = stick == PYLB_STICK_2 ? 0 : f->proto;
	uint16_t plo = 0, phi = 0;
	uint64_t tail;
	uint32_t h;

	memset(k, 0, sizeof(*k));
	if (f->af == 4) {
		*(unaligned_uint32_t *)k->lo = *(const unaligned_uint32_t *)(fwd ? f->src : f->dst);
		*(unaligned_uint32_t *)k->hi = *(const unaligned_uint32_t *)(fwd ? f->dst : f->src);
	} else {
		memcpy(k->lo, fwd ? f->src : f->dst, 16);
		memcpy(k->hi, fwd ? f->dst : f->src, 16);
	}
	if (stick == PYLB_STICK_5) {
		plo = fwd ? f->sport : f->dport;
		phi = fwd ? f->dport : f->sport;
	}
	/* The tag, family, protocol, slot and ports (struct pylb_inspect_key)
	 * in one store: the cookie reads them back as one word, which a load
	 * gets straight from a store of its size (from five smaller ones, it
	 * waits for them to reach the cache). */
	tail = 'G' | (uint64_t)f->af << 8 | (uint64_t)proto << 16 | (uint64_t)(uint8_t)pool << 24 |
		(uint64_t)plo << 32 | (uint64_t)phi << 48;
	memcpy(&k->tag, &tail, sizeof(tail));
	h = flow_hash(hk, k->lo, k->hi, f->af);
	return flow_hash_ports(hk, h, plo, phi, proto);
}

/* A flow's cookie: the MAC (core/mac.h) of its key (the pool, family,
 * protocol, addresses and ports its pool's stickiness keeps): an appliance
 * must give it back, and nobody without the dataplane's key can make one
 * for another flow. The input: 'G', the family, the protocol, the pool's
 * slot, the two ports (network order) as one little-endian word (the key
 * holds it so: one load), then IPv4's two addresses (one block), or 8
 * zero bytes and IPv6's two (three blocks). */
static inline uint64_t
inspect_cookie(const struct pylb_mac_key *key, const struct pylb_inspect_key *k)
{
	uint64_t w[6];

	RTE_BUILD_BUG_ON(PYLB_MAX_POOLS > 256);	/* the slot in one byte */
	RTE_BUILD_BUG_ON(RTE_BYTE_ORDER != RTE_LITTLE_ENDIAN ||
			 offsetof(struct pylb_inspect_key, phi) != offsetof(struct pylb_inspect_key, tag) + 6);
	memcpy(&w[0], &k->tag, 8);
	if (k->af == 4) {
		w[1] = *(const unaligned_uint32_t *)k->lo |
			(uint64_t)*(const unaligned_uint32_t *)k->hi << 32;
		return pylb_mac(key, w, 1);
	}
	w[1] = 0;
	memcpy(&w[2], k->lo, 16);
	memcpy(&w[4], k->hi, 16);
	return pylb_mac(key, w, 3);
}

/* The workers' flow tables (struct pylb_inspect): a flow is in the first
 * bucket its key's hash names, or else in the second; a way holds the hash
 * and the flow's place. Only its worker writes a table: a flow is filled
 * in before its way is published, and a way is emptied before its place is
 * reused. Readers on other threads (Trace) can read a place reused under
 * them as another flow's, never as freed memory. */
static inline struct pylb_inspect_bucket *
inspect_bucket(const struct pylb_inspect *in, uint32_t h, int which)
{
	uint32_t x = which == 0 ? h : hk_mix(h ^ 0x9e3779b9);

	return &in->buckets[((uint64_t)x * PYLB_INSPECT_BUCKETS) >> 32];
}

/* The ways of bucket b whose hash is h (bit i: way i). */
static inline uint32_t
inspect_ways(const struct pylb_inspect_bucket *b, uint32_t h)
{
#ifdef RTE_ARCH_X86
	const __m128i want = _mm_set1_epi32((int)h);
	__m128i lo = _mm_cmpeq_epi32(_mm_load_si128((const __m128i *)(const void *)b->hash), want);
	__m128i hi = _mm_cmpeq_epi32(_mm_load_si128((const __m128i *)(const void *)&b->hash[4]),
				     want);

	return (uint32_t)_mm_movemask_ps(_mm_castsi128_ps(lo)) |
		(uint32_t)_mm_movemask_ps(_mm_castsi128_ps(hi)) << 4;
#else
	uint32_t mask = 0;

	for (int i = 0; i < PYLB_INSPECT_WAYS; i++)
		mask |= (uint32_t)(b->hash[i] == h) << i;
	return mask;
#endif
}

/* Are keys a and b the same? Their three 16-byte blocks compared at once. */
static inline bool
inspect_key_eq(const struct pylb_inspect_key *a, const struct pylb_inspect_key *b)
{
	RTE_BUILD_BUG_ON(sizeof(*a) != 48);
#ifdef RTE_ARCH_X86
	const __m128i *x = (const void *)a, *y = (const void *)b;
	__m128i d = _mm_or_si128(
		_mm_or_si128(_mm_xor_si128(_mm_loadu_si128(x), _mm_loadu_si128(y)),
			     _mm_xor_si128(_mm_loadu_si128(x + 1), _mm_loadu_si128(y + 1))),
		_mm_xor_si128(_mm_loadu_si128(x + 2), _mm_loadu_si128(y + 2)));

	return _mm_testz_si128(d, d);
#else
	const unaligned_uint64_t *x = (const void *)a, *y = (const void *)b;

	return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]) |
		(x[4] ^ y[4]) | (x[5] ^ y[5])) == 0;
#endif
}

/* The place of flow k (hash h) in table `in`; -1: not there. */
static inline int32_t
inspect_find(const struct pylb_inspect *in, const struct pylb_inspect_key *k, uint32_t h)
{
	for (int which = 0; which < 2; which++) {
		const struct pylb_inspect_bucket *b = inspect_bucket(in, h, which);

		for (uint32_t m = inspect_ways(b, h); m != 0; m &= m - 1) {
			uint32_t at = __atomic_load_n(&b->at[__builtin_ctz(m)], __ATOMIC_ACQUIRE);

			if (at != 0 && inspect_key_eq(&in->flows[at - 1].key, k))
				return (int32_t)(at - 1);
		}
	}
	return -1;
}

/* What a flow's packet does (inspect_decide). */
enum inspect_choice {
	INSPECT_KEEP,		/* to its remembered appliance, up */
	INSPECT_STAY,		/* to it, down or gone: the pool's failover is stay */
	INSPECT_MOVE,		/* to a new one from the table: it is down or gone */
	INSPECT_NEW,		/* not remembered: to the table's */
	INSPECT_NONE,		/* no appliance up: dropped */
};

#define INSPECT_GONE	UINT16_MAX	/* an appliance's index: it left the pool */

/* The index flow fl's appliance has in the pool now. */
static inline uint16_t
inspect_where(const struct pylb_pool *pool, const struct pylb_inspect_flow *fl)
{
	if (likely(fl->serial == pool->serial))
		return fl->bidx;
	for (uint32_t i = 0; i < pool->bal.n_backends; i++)
		if (memcmp(&pool->bal.backends[i].addr, &fl->app, sizeof(fl->app)) == 0)
			return (uint16_t)i;
	return INSPECT_GONE;
}

/* The decision, without side effects (the fast path acts on it, Trace
 * reports it): for a flow of `pool` with key hash h, remembered as fl
 * (NULL: not), where it goes: its remembered appliance (KEEP, STAY), or
 * the table's, index *bidx (MOVE, NEW). *bidx is also the remembered one's
 * index now where it is still in the pool. */
static inline enum inspect_choice
inspect_decide(const struct pylb_pool *pool, const struct pylb_inspect_flow *fl, uint32_t h,
	       uint16_t *bidx)
{
	if (fl != NULL && likely(fl->birth == pool->birth)) {
		*bidx = inspect_where(pool, fl);
		if (likely(*bidx != INSPECT_GONE && pylb_backend_live(&pool->bal.backends[*bidx])))
			return INSPECT_KEEP;
		if (pool->conf.failover == PYLB_FAILOVER_STAY)
			return INSPECT_STAY;
	}
	if (pool->bal.table == NULL)
		return INSPECT_NONE;
	*bidx = (uint16_t)bal_pick(&pool->bal, h);
	return fl != NULL ? INSPECT_MOVE : INSPECT_NEW;
}

/* The flow of the IP packet after m's Ethernet header (ports: TCP and UDP,
 * not fragmented); false if its header is short. */
static inline bool
inspect_flow_parse(struct rte_mbuf *m, uint8_t af, struct inspect_flow_of *f)
{
	uint8_t *ip = rte_pktmbuf_mtod_offset(m, uint8_t *, sizeof(struct rte_ether_hdr));
	uint32_t len = rte_pktmbuf_data_len(m) - sizeof(struct rte_ether_hdr);
	uint32_t hl;
	bool whole;

	f->af = af;
	f->proto = 0;
	f->sport = f->dport = 0;
	if (af == 4) {
		const struct rte_ipv4_hdr *h = (const void *)ip;

		if (len < sizeof(*h))
			return false;
		f->proto = h->next_proto_id;
		f->src = ip + 12;
		f->dst = ip + 16;
		hl = rte_ipv4_hdr_len(h);
		whole = !(h->fragment_offset &
			  RTE_BE16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK));
	} else {
		if (len < sizeof(struct rte_ipv6_hdr))
			return false;
		f->src = ip + 8;
		f->dst = ip + 24;
		whole = pylb_ipv6_walk(m, sizeof(struct rte_ether_hdr), &f->proto) == 0 &&
			f->proto != IPPROTO_FRAGMENT;
		hl = m->l3_len;
	}
	if (whole && (f->proto == IPPROTO_TCP || f->proto == IPPROTO_UDP) && len >= hl + 4) {
		const rte_be16_t *p = (const rte_be16_t *)(ip + hl);

		f->sport = p[0];
		f->dport = p[1];
	}
	return true;
}

#endif /* PYLB_INSPECT_H */
