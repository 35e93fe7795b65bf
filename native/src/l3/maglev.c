/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * The L3 VIP lookup table and the flow hash.
 *
 * The table has a prime number of slots; a packet's slot is its flow hash
 * modulo the size, as in Maglev. Each slot is given to the backend that
 * ranks highest for it (weighted rendezvous ranking of slot and backend
 * address). So the table is a pure function of the backend set: every
 * appliance builds the same one, removing a backend moves exactly the slots
 * it had, and adding one moves only the slots it wins (1/(N+1) on
 * average). Maglev's permutation fill balances a little more evenly but
 * also moves some slots between the remaining backends on a change; the
 * ranking keeps every other source on its backend, which is what stateless
 * balancing across appliances needs.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <rte_malloc.h>

#include "l3/fib.h"

/* The permutation of a backend is a function of its address and port
 * alone: the table is a pure function of the configuration, the same on
 * every appliance. The flow hash that reads it is keyed (hash.h). */
#define MAGLEV_SEED	0x9e3779b9

static inline uint64_t
mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

/* A backend's identity: its address and port, whatever its position. */
static uint64_t
backend_key(const struct pylb_backend *b)
{
	uint64_t lo = rte_hash_crc(b->addr.ip, 16, MAGLEV_SEED + b->addr.af);
	uint64_t hi = rte_hash_crc(b->addr.ip, 16, ~(uint32_t)MAGLEV_SEED);

	return mix64((hi << 32 | lo) ^ ((uint64_t)b->port << 48));
}

bool
pylb_is_prime(uint32_t n)
{
	if (n < 2)
		return false;
	for (uint32_t d = 2; (uint64_t)d * d <= n; d++)
		if (n % d == 0)
			return false;
	return true;
}

/* 32-bit mixing (murmur3's finaliser): a bijection whose output bits each
 * depend on every input bit. */
static inline uint32_t
mix32(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x85ebca6bu;
	x ^= x >> 13;
	x *= 0xc2b2ae35u;
	x ^= x >> 16;
	return x;
}

/* log2(u) for u in (0, 1]: the exponent plus a cubic of the mantissa's
 * fraction t that is exact, with the right slope, at t = 0 and t = 1 (error
 * under 0.005 between). Increasing, and exact in relative terms as u nears
 * 1, where a light backend's winning ranks lie. */
static inline float
fast_log2(float u)
{
	union { float f; uint32_t i; } v = { .f = u };
	float e = (float)(int32_t)((v.i >> 23) & 0xff) - 127.0f;
	float t;

	v.i = (v.i & 0x007fffffu) | 0x3f800000u;	/* mantissa in [1, 2) */
	t = v.f - 1.0f;
	return e + t * (1.4426950f + t * (-0.6066975f + t * 0.1640025f));
}

static int
key_order(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Backend by backend, each slot keeps the best rank so far (loops over
 * contiguous slots, which the compiler vectorises). A rank is a 32-bit
 * hash of the backend's key and the slot's salt: with equal weights, the
 * highest wins; weighted, the smallest -ln(u)/w (exponential with rate w:
 * it wins with probability w/sum(w)), ranked as the largest log2(u)/w. */
/* A slot's rank for a backend: its salt (already mixed) with the backend's
 * key, mixed once more (one multiplication, enough on mixed inputs). */
static inline uint32_t
rank(uint32_t k, uint32_t salt)
{
	uint32_t x = (k ^ salt) * 0x85ebca6bu;

	return x ^ (x >> 15);
}

static void
rank_slots(uint32_t k, float inv_w, const uint32_t *salt, uint32_t *best_h, float *best,
	   uint16_t *table, uint16_t i, uint32_t size)
{
	/* Branch-free (blends), so that both loops vectorise. */
	if (inv_w == 0.0f) {
		for (uint32_t j = 0; j < size; j++) {
			uint32_t h = rank(k, salt[j]);
			bool win = h > best_h[j];

			best_h[j] = win ? h : best_h[j];
			table[j] = win ? i : table[j];
		}
		return;
	}
	for (uint32_t j = 0; j < size; j++) {
		float u = ((float)(rank(k, salt[j]) >> 8) + 0.5f) * 0x1p-24f;
		float r = fast_log2(u) * inv_w;
		bool win = r > best[j];

		best[j] = win ? r : best[j];
		table[j] = win ? i : table[j];
	}
}

/* Slots ranked at a time: their salts, best ranks and table entries stay
 * in the L1 cache while every backend ranks them. */
#define RANK_BLOCK	1024

int
pylb_maglev_build(const struct pylb_backend *b, uint32_t n, uint32_t size,
		  uint16_t *table)
{
	/* (key | index) of the live backends, in key order: ties go to the
	 * smaller key, whatever the order the backends were given in. */
	uint64_t order[PYLB_MAX_BACKENDS];
	float inv_w[PYLB_MAX_BACKENDS];
	uint32_t salt[RANK_BLOCK];
	float best[RANK_BLOCK];
	uint32_t best_h[RANK_BLOCK];
	bool equal = true;
	uint32_t live = 0;

	if (!pylb_is_prime(size) || size > PYLB_MAGLEV_MAX)
		return pylb_fail(-PYLB_E_INVAL,
			"lookup table size %u must be a prime no larger than %u (e.g. 65537)",
			size, PYLB_MAGLEV_MAX);
	if (n > PYLB_MAX_BACKENDS)
		return pylb_fail(-PYLB_E_FULL, "%u backends, at most %d", n,
				 PYLB_MAX_BACKENDS);
	for (uint32_t i = 0; i < n; i++) {
		if (!pylb_backend_live(&b[i]))
			continue;
		order[live++] = (backend_key(&b[i]) & ~0xffffULL) | i;
		equal &= b[i].weight == b[0].weight;
	}
	if (live == 0)
		return pylb_fail(-PYLB_E_INVAL, "no backend up with a weight above 0");
	qsort(order, live, sizeof(order[0]), key_order);
	for (uint32_t o = 0; o < live; o++)
		inv_w[o] = equal ? 0.0f : 1.0f / (float)b[order[o] & 0xffff].weight;

	for (uint32_t j0 = 0; j0 < size; j0 += RANK_BLOCK) {
		uint32_t len = RTE_MIN((uint32_t)RANK_BLOCK, size - j0);

		for (uint32_t j = 0; j < len; j++) {
			salt[j] = mix32((j0 + j) * 0x9e3779b9u + 0x7f4a7c15u);
			best[j] = -HUGE_VALF;
			best_h[j] = 0;
			table[j0 + j] = (uint16_t)(order[0] & 0xffff);
		}
		for (uint32_t o = 0; o < live; o++)
			rank_slots((uint32_t)(order[o] >> 32), inv_w[o], salt, best_h, best, table + j0,
				   (uint16_t)(order[o] & 0xffff), len);
	}
	return 0;
}

int
pylb_balance_new(void **out, const char *what, size_t head, size_t bal_offset,
		 const struct pylb_backend *b, uint32_t n, uint32_t table_size, uint32_t n_slots)
{
	struct pylb_balance *bal;
	uint32_t live = 0;
	void *obj;
	int rc;

	for (uint32_t i = 0; i < n; i++)
		live += pylb_backend_live(&b[i]);
	/* The owner, the backends, each lcore's memory of their outputs
	 * (cache lines of its own: it writes them), the table. */
	size_t outs = RTE_ALIGN_CEIL(head + n * sizeof(*b), RTE_CACHE_LINE_SIZE);
	size_t tab = outs + (size_t)n_slots * n * sizeof(struct pylb_out_memo);

	RTE_BUILD_BUG_ON(sizeof(struct pylb_out_memo) % RTE_CACHE_LINE_SIZE != 0);

	obj = rte_zmalloc(what, tab + (live ? table_size * sizeof(uint16_t) : 0),
			  RTE_CACHE_LINE_SIZE);
	if (obj == NULL)
		return pylb_fail(-PYLB_E_NOMEM, "cannot allocate %s", what);
	bal = (struct pylb_balance *)((char *)obj + bal_offset);
	bal->n_backends = n;
	bal->table_size = table_size;
	bal->backends = (struct pylb_backend *)((char *)obj + head);
	bal->outs = (struct pylb_out_memo *)((char *)obj + outs);
	if (n != 0)	/* b may be NULL for an empty set */
		memcpy(bal->backends, b, n * sizeof(*b));
	if (live != 0) {
		bal->slot_m = UINT64_MAX / table_size + 1;
		bal->table = (uint16_t *)((char *)obj + tab);
		rc = pylb_maglev_build(b, n, table_size, bal->table);
		if (rc != 0) {
			rte_free(obj);
			return rc;
		}
	}
	*out = obj;
	return 0;
}

/* A name for the choices bal makes under hash key `key`: two appliances
 * with the same one send every flow to the same backend. Each slot is
 * named by its backend's address and port (not its index, which depends
 * on the order backends were added in), with every backend's weight,
 * state and limit (summed: in any order), and the key's words. Not a
 * secret: the key is hashed in whole. */
uint64_t
pylb_balance_fingerprint(const struct pylb_balance *bal, const uint64_t *key)
{
	uint64_t name[PYLB_MAX_BACKENDS];
	uint64_t h = 0x6a09e667f3bcc908ULL, set = 0;

	for (uint32_t i = 0; i < PYLB_HASH_KEY_WORDS; i++)
		h = mix64(h ^ key[i]);
	for (uint32_t i = 0; i < bal->n_backends; i++) {
		const struct pylb_backend *b = &bal->backends[i];

		name[i] = backend_key(b);
		set += mix64(name[i] ^ mix64((uint64_t)b->max_conns << 40 |
					     (uint64_t)b->weight << 8 | b->state));
	}
	h = mix64(h ^ set ^ mix64(bal->table_size));
	for (uint32_t j = 0; bal->table != NULL && j < bal->table_size; j++)
		h = (h ^ name[bal->table[j]]) * 0x100000001b3ULL;
	return mix64(h);
}

uint32_t
pylb_flow_hash(const struct pylb_dp *dp, const struct pylb_ip *src, const struct pylb_ip *dst)
{
	return flow_hash(dp->conf.hash_key, src->ip, dst->ip, src->af);
}
