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
#include <string.h>

#include <rte_malloc.h>

#include "pkt.h"

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
	uint64_t lo = rte_hash_crc(b->addr.ip, 16, PYLB_HASH_SEED + b->addr.af);
	uint64_t hi = rte_hash_crc(b->addr.ip, 16, ~(uint32_t)PYLB_HASH_SEED);

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

int
pylb_maglev_build(const struct pylb_backend *b, uint32_t n, uint32_t size,
		  uint16_t *table)
{
	uint64_t keys[PYLB_MAX_BACKENDS];
	double inv_w[PYLB_MAX_BACKENDS];
	bool equal = true;
	uint32_t i, j, live = 0;

	if (!pylb_is_prime(size) || size > PYLB_MAGLEV_MAX)
		return pylb_fail(-PYLB_E_INVAL,
			"lookup table size %u must be a prime no larger than %u (e.g. 65537)",
			size, PYLB_MAGLEV_MAX);
	if (n > PYLB_MAX_BACKENDS)
		return pylb_fail(-PYLB_E_FULL, "%u backends, at most %d", n,
				 PYLB_MAX_BACKENDS);
	for (i = 0; i < n; i++) {
		keys[i] = backend_key(&b[i]);
		inv_w[i] = pylb_backend_live(&b[i]) ? 1.0 / b[i].weight : 0;
		live += pylb_backend_live(&b[i]);
		equal &= b[i].weight == b[0].weight;
	}
	if (live == 0)
		return pylb_fail(-PYLB_E_INVAL, "no backend up with a weight above 0");

	for (j = 0; j < size; j++) {
		uint64_t salt = (uint64_t)(j + 1) * 0x9e3779b97f4a7c15ULL;
		uint32_t best = UINT32_MAX;
		uint64_t best_h = 0;
		double best_s = HUGE_VAL;

		for (i = 0; i < n; i++) {
			uint64_t h;

			if (!pylb_backend_live(&b[i]))
				continue;
			h = mix64(keys[i] ^ salt);
			if (equal) {
				if (best == UINT32_MAX || h > best_h ||
				    (h == best_h && keys[i] < keys[best])) {
					best = i;
					best_h = h;
				}
			} else {
				/* -ln(u)/w is exponential with rate w: the
				 * smallest wins with probability w/sum(w). */
				double u = ((double)(h >> 11) + 0.5) * 0x1p-53;
				double s = -log(u) * inv_w[i];

				if (s < best_s) {
					best = i;
					best_s = s;
				}
			}
		}
		table[j] = (uint16_t)best;
	}
	return 0;
}

int
pylb_balance_new(void **out, const char *what, size_t head, size_t bal_offset,
		 const struct pylb_backend *b, uint32_t n, uint32_t table_size)
{
	struct pylb_balance *bal;
	uint32_t live = 0;
	void *obj;
	int rc;

	for (uint32_t i = 0; i < n; i++)
		live += pylb_backend_live(&b[i]);
	obj = rte_zmalloc(what, head + n * sizeof(*b) + (live ? table_size * sizeof(uint16_t) : 0),
			  RTE_CACHE_LINE_SIZE);
	if (obj == NULL)
		return pylb_fail(-PYLB_E_NOMEM, "cannot allocate %s", what);
	bal = (struct pylb_balance *)((char *)obj + bal_offset);
	bal->n_backends = n;
	bal->table_size = table_size;
	bal->backends = (struct pylb_backend *)((char *)obj + head);
	memcpy(bal->backends, b, n * sizeof(*b));
	if (live != 0) {
		bal->table = (uint16_t *)(bal->backends + n);
		rc = pylb_maglev_build(b, n, table_size, bal->table);
		if (rc != 0) {
			rte_free(obj);
			return rc;
		}
	}
	*out = obj;
	return 0;
}

uint32_t
pylb_flow_hash(const struct pylb_ip *src, const struct pylb_ip *dst)
{
	uint32_t s, d;

	if (src->af == 6)
		return flow_hash6(src->ip, dst->ip);
	memcpy(&s, src->ip, 4);
	memcpy(&d, dst->ip, 4);
	return flow_hash4(s, d);
}
