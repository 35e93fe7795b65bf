/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * The connection table: the hash of a connection's side, its two buckets
 * and signature, the SIMD bucket match, prefetching for a burst, and the
 * table's operations (conn.c).
 */
#ifndef PYLB_CT_H
#define PYLB_CT_H

#include <rte_hash_crc.h>
#include <rte_prefetch.h>
#include <rte_vect.h>

#include <rte_ring.h>

#include "core/hash.h"
#include "l4/method.h"
#include "core/pkt.h"

static inline uint8_t *
conn_addr(const struct pylb_conntrack *ct, const struct pylb_conn *c, int which)
{
	if (c->af == 4)
		return (uint8_t *)(uintptr_t)&c->a4[which];
	return ct->ext6[c->ext6].a[which];
}

static inline void
pylb_conn_set_addr(struct pylb_conntrack *ct, struct pylb_conn *c, int which,
		   const uint8_t *ip)
{
	memcpy(conn_addr(ct, c, which), ip, c->af == 4 ? 4 : 16);
}

/* c's backend's family: the connection's, but where its method's backends
 * may be of the other family (a tunnel's: 4-in-6, 6-in-4). */
static inline uint8_t
conn_backend_af(const struct pylb_conn *c)
{
	return pylb_l4_methods[c->method]->mixed ? (uint8_t)c->backend_af : c->af;
}

/* c's backend's address, of family baf (conn_backend_af's). */
static inline const uint8_t *
conn_backend_at(const struct pylb_conntrack *ct, const struct pylb_conn *c, uint8_t baf)
{
	if (unlikely(c->af == 4 && baf == 6))
		return ct->ext6[c->backend6].a[CONN_BACKEND];
	return conn_addr(ct, c, CONN_BACKEND);
}

static inline const uint8_t *
conn_backend(const struct pylb_conntrack *ct, const struct pylb_conn *c)
{
	return conn_backend_at(ct, c, conn_backend_af(c));
}

/* c (its method set) goes to backend ip of family af; an IPv4 connection
 * to an IPv6 backend takes an IPv6 entry (false: none left). */
bool pylb_conn_set_backend(struct pylb_conntrack *ct, struct pylb_conn *c, const uint8_t *ip,
			   uint8_t af);

/* The finaliser (hash.h) derives the two buckets and the signature from
 * one keyed hash. */
static inline uint32_t
ct_mix(uint32_t h)
{
	return hk_mix(h);
}

/* The two buckets and the signature of a side's hash h. */
struct ct_pos {
	struct pylb_ct_bucket *b[2];
	uint32_t sig;
};

/* The bucket a mixed hash x names (its share of the table). */
static inline uint32_t
ct_bucket_of(const struct pylb_conntrack *ct, uint32_t x)
{
	return (uint32_t)(((uint64_t)x * ct->nb) >> 32);
}

/* The index of h's first bucket. */
static inline uint32_t
ct_first(const struct pylb_conntrack *ct, uint32_t h)
{
	return ct_bucket_of(ct, ct_mix(h));
}

/* What names h's second bucket and its signature. */
static inline uint32_t
ct_mix2(uint32_t h)
{
	return ct_mix(h ^ 0x9e3779b9);
}

static inline uint32_t
ct_sig(uint32_t h2)
{
	return (h2 & 0xff) << PYLB_CT_IDX_BITS;
}

static inline void
ct_pos(const struct pylb_conntrack *ct, uint32_t h, struct ct_pos *p)
{
	uint32_t h2 = ct_mix2(h);

	p->b[0] = &ct->buckets[ct_first(ct, h)];
	p->b[1] = &ct->buckets[ct_bucket_of(ct, h2)];
	p->sig = ct_sig(h2);
}

/* Which slots of bucket b hold an entry with signature sig (bit i: slot i). */
static inline uint32_t
ct_match(const struct pylb_ct_bucket *b, uint32_t sig)
{
	uint32_t mask = 0;
#ifdef RTE_ARCH_X86
	const __m128i hi = _mm_set1_epi32((int)~PYLB_CT_MAX);
	const __m128i want = _mm_set1_epi32((int)sig);
	const __m128i zero = _mm_setzero_si128();

	/* Four lanes at a time over the line; the 16th lane is `spill`. */
	for (int i = 0; i < 4; i++) {
		__m128i v = _mm_load_si128((const __m128i *)(const void *)&b->slot[4 * i]);
		__m128i hit = _mm_andnot_si128(_mm_cmpeq_epi32(v, zero),
					       _mm_cmpeq_epi32(_mm_and_si128(v, hi), want));

		mask |= (uint32_t)_mm_movemask_ps(_mm_castsi128_ps(hit)) << (4 * i);
	}
	mask &= (1u << PYLB_CT_SLOTS) - 1;
#else
	for (int i = 0; i < PYLB_CT_SLOTS; i++)
		mask |= (uint32_t)((b->slot[i] & ~PYLB_CT_MAX) == sig && b->slot[i] != 0) << i;
#endif
	return mask;
}

/* A packet's key into the table, from the pipeline's key stage: the hash
 * of its side; once its bucket is fetched, that bucket's index; once the
 * bucket was read, the entry it points to for it (0: none), which the
 * lookup tries first. */
struct pylb_ct_key {
	uint32_t h;
	uint32_t hint;
	uint32_t first;
};

/* Prefetch, for a burst, what a lookup of key k reads: first its bucket,
 * then (once the bucket is in: the pipeline fetches every key's bucket
 * before its entry) the entry the bucket points to. */
static inline void
pylb_ct_prefetch_bucket(const struct pylb_conntrack *ct, struct pylb_ct_key *k)
{
	k->first = ct_first(ct, k->h);
	rte_prefetch0(&ct->buckets[k->first]);
}

static inline void
pylb_ct_prefetch_entry(const struct pylb_conntrack *ct, struct pylb_ct_key *k)
{
	const struct pylb_ct_bucket *b = &ct->buckets[k->first];
	uint32_t mask = ct_match(b, ct_sig(ct_mix2(k->h)));

	k->hint = mask != 0 ? b->slot[__builtin_ctz(mask)] & PYLB_CT_MAX : 0;
	if (k->hint != 0)
		rte_prefetch0(&ct->conns[k->hint]);
}

/* k: the packet's key, if the pipeline made one; NULL: hashed here. */
struct pylb_conn *pylb_conn_lookup(struct pylb_lcore *lc, const struct pylb_tuple *t,
				   bool reply, const struct pylb_ct_key *k);
struct pylb_conn *pylb_conn_new(struct pylb_lcore *lc, const struct pylb_tuple *t);
int pylb_conn_add_local(struct pylb_lcore *lc, struct pylb_conn *c);
void pylb_conn_drop(struct pylb_lcore *lc, struct pylb_conn *c);
/* An entry from pylb_conn_new given up before it was set up. */
void pylb_conn_discard(struct pylb_lcore *lc, struct pylb_conn *c);
void pylb_conn_released(struct pylb_lcore *lc, const struct pylb_conn *c);
void pylb_conn_moved(struct pylb_lcore *lc, const struct pylb_conn *c, uint8_t was);
/* c is open or not (closing, closed, gone): the limits' counts (l4.c). */
void pylb_conn_counted(struct pylb_lcore *lc, struct pylb_conn *c, bool open);
/* c moves to TCP state `state`; its counts follow. */
void pylb_conn_state(struct pylb_lcore *lc, struct pylb_conn *c, uint8_t state);
uint32_t pylb_conn_unhold(struct pylb_lcore *lc, const struct pylb_conn *c,
			  struct pylb_held *out);

/* Connection sync: note that entry c opened or changed state (a store;
 * nothing if sync is off). */
static inline void
pylb_conn_changed(struct pylb_conntrack *ct, const struct pylb_conn *c)
{
	if (likely(ct->chg_ring == NULL))
		return;
	/* The control side's head is read only when the ring looks full. */
	if (unlikely(ct->chg_tail - ct->chg_seen > ct->chg_mask)) {
		ct->chg_seen = __atomic_load_n(&ct->chg_head, __ATOMIC_ACQUIRE);
		if (ct->chg_tail - ct->chg_seen > ct->chg_mask) {
			ct->chg_lost++;
			return;
		}
	}
	ct->chg_ring[ct->chg_tail & ct->chg_mask] = (uint32_t)(c - ct->conns);
	__atomic_store_n(&ct->chg_tail, ct->chg_tail + 1, __ATOMIC_RELEASE);
}

static inline uint32_t
pylb_tcp_half_open(uint8_t state)
{
	return state == PYLB_TCP_SYN_SENT || state == PYLB_TCP_SYN_RECV ||
		state == PYLB_TCP_MID_FLOW;
}

/* Half-open: TCP before its handshake completes; UDP of a method that sees
 * replies (NAT, FullNAT) before the first one. What floods from spoofed
 * sources create, so what the half-open budget counts. */
static inline uint32_t
pylb_conn_half_open(const struct pylb_conn *c)
{
	if (c->proto == IPPROTO_TCP)
		return pylb_tcp_half_open(c->state);
	return l4_sees_replies(c->method) && !(c->flags & CONN_F_REPLIED);
}

/* The slot of the source prefix of address ip in the per-source counts:
 * the prefix's keyed hash (the owner's key, told apart by `more`). */
static inline uint32_t
pylb_src_slot(const struct pylb_conntrack *ct, const uint8_t *ip, uint8_t af)
{
	uint32_t w[4];

	if (af == 4)
		w[0] = hk_word(ip, 0) & ct->src_mask[0];
	else
		for (int i = 0; i < 4; i++)
			w[i] = hk_word(ip, i) & ct->src_mask[1 + i];
	return hk_mix(hk_addr(ct->key + HK_OWNER, (const uint8_t *)w, af, 0x100u | af)) &
		(PYLB_SRC_SLOTS - 1);
}

/* Has the source prefix in slot src its budget of half-open entries? */
static inline bool
pylb_src_full(const struct pylb_conntrack *ct, uint32_t src)
{
	return ct->src_ho != NULL && ct->src_ho[src] >= ct->src_budget;
}

/* The same for the source prefix of address ip. */
static inline bool
pylb_src_over(const struct pylb_conntrack *ct, const uint8_t *ip, uint8_t af)
{
	return ct->src_ho != NULL && pylb_src_full(ct, pylb_src_slot(ct, ip, af));
}

/* An entry of the source prefix in slot src becomes half-open (d 1) or
 * stops being (d -1): the worker's count and the prefix's follow. */
static inline void
pylb_half_open_at(struct pylb_conntrack *ct, uint32_t src, int32_t d)
{
	ct->half_open += (uint32_t)d;
	if (ct->src_ho != NULL)
		ct->src_ho[src] += (uint32_t)d;
}

/* The same for entry c. */
static inline void
pylb_half_open_add(struct pylb_conntrack *ct, const struct pylb_conn *c, int32_t d)
{
	pylb_half_open_at(ct, ct->src_ho != NULL ?
			  pylb_src_slot(ct, conn_addr(ct, c, CONN_CLIENT), c->af) : 0, d);
}

/* c just opened half-open, its source prefix in slot src. */
void pylb_conn_opened(struct pylb_lcore *lc, const struct pylb_conn *c, uint32_t src);
bool pylb_conn_evict_half_open(struct pylb_lcore *lc);
bool pylb_conn_evictable(const struct pylb_conntrack *ct);
bool pylb_conn_room(const struct pylb_conntrack *ct, const struct pylb_tuple *t, bool freeing);

struct pylb_persist *pylb_persist_find(struct pylb_lcore *lc,
				       const struct pylb_persist_key *k, uint64_t now);
struct pylb_persist *pylb_persist_new(struct pylb_lcore *lc, const struct pylb_persist_key *k);
void pylb_conn_update(struct pylb_lcore *lc, struct pylb_conn *c, uint8_t tcp_flags,
		      bool reply, uint64_t now);


#endif /* PYLB_CT_H */
