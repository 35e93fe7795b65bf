/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * The L4 schedulers, one ops table each: Maglev-style consistent hashing
 * of the 5-tuple, of the client address (source), smooth weighted
 * round-robin and weighted least-connections (per lcore). A service binds
 * its table when it is configured.
 */
#include "l4/scheduler.h"

/* The service's lookup table at the 5-tuple's hash. */
static uint32_t
tuple_consistent(const struct pylb_service *svc, const struct pylb_tuple *t, uint32_t hash)
{
	return bal_pick(&svc->bal, flow_hash_ports(svc->key, hash, t->sport, t->dport, t->proto));
}

/* The service's lookup table at the client address's hash. */
static uint32_t
source_consistent(const struct pylb_service *svc, const struct pylb_tuple *t,
		  uint32_t hash __rte_unused)
{
	return bal_pick(&svc->bal, owner_hash(svc->key, t->src, t->af));
}

static uint32_t
maglev_pick(struct pylb_lcore *lc __rte_unused, const struct pylb_service *svc,
	    const struct pylb_tuple *t, uint32_t hash)
{
	return tuple_consistent(svc, t, hash);
}

static uint32_t
source_pick(struct pylb_lcore *lc __rte_unused, const struct pylb_service *svc,
	    const struct pylb_tuple *t, uint32_t hash)
{
	return source_consistent(svc, t, hash);
}

/* Smooth weighted round-robin on this lcore's row: every backend gains its
 * weight, the highest is chosen and loses the total. The choice is read
 * (wrr_pick); the turn is taken when the connection opens (wrr_chosen). */
static uint32_t
wrr_pick(struct pylb_lcore *lc, const struct pylb_service *svc,
	 const struct pylb_tuple *t __rte_unused, uint32_t hash __rte_unused)
{
	const int32_t *cw = svc->rows + (size_t)lc->slot * svc->row_stride;
	const struct pylb_backend *b = svc->bal.backends;
	uint32_t best = UINT32_MAX;

	for (uint32_t i = 0; i < svc->bal.n_backends; i++)
		if (pylb_backend_live(&b[i]) &&
		    (best == UINT32_MAX ||
		     cw[i] + (int32_t)b[i].weight > cw[best] + (int32_t)b[best].weight))
			best = i;
	return best;
}

static void
wrr_chosen(struct pylb_lcore *lc, const struct pylb_service *svc, uint32_t best)
{
	int32_t *cw = svc->rows + (size_t)lc->slot * svc->row_stride;
	const struct pylb_backend *b = svc->bal.backends;
	int32_t total = 0;

	for (uint32_t i = 0; i < svc->bal.n_backends; i++)
		if (pylb_backend_live(&b[i])) {
			cw[i] += (int32_t)b[i].weight;
			total += (int32_t)b[i].weight;
		}
	cw[best] -= total;
}

/* Weighted least-connections on this lcore's counts (those the workers keep
 * for each backend's active and inactive connections): the smallest
 * connections / weight, compared as cross products like IPVS. */
static uint32_t
wlc_pick(struct pylb_lcore *lc, const struct pylb_service *svc,
	 const struct pylb_tuple *t __rte_unused, uint32_t hash __rte_unused)
{
	const struct pylb_svc_stats *st = svc->bstats + (size_t)lc->slot * svc->bstride;
	const struct pylb_backend *b = svc->bal.backends;
	uint32_t best = UINT32_MAX;
	uint64_t best_n = 0;

	for (uint32_t i = 0; i < svc->bal.n_backends; i++) {
		/* Briefly below 0 on a lcore after a backend-set change. */
		int64_t conns = st[i].active + st[i].inactive;
		uint64_t n = conns > 0 ? (uint64_t)conns : 0;

		if (!pylb_backend_live(&b[i]))
			continue;
		if (best == UINT32_MAX || n * b[best].weight < best_n * b[i].weight) {
			best = i;
			best_n = n;
		}
	}
	return best;
}

const struct pylb_sched_ops pylb_schedulers[PYLB_SCHED_WLC + 1] = {
	[PYLB_SCHED_MAGLEV] = {
		.pick = maglev_pick, .consistent = tuple_consistent,
		.why = "the consistent-hash table, slot of the 5-tuple hash",
	},
	[PYLB_SCHED_SOURCE] = {
		.pick = source_pick, .consistent = source_consistent,
		.why = "the consistent-hash table, slot of the client address hash",
	},
	[PYLB_SCHED_WRR] = {
		.pick = wrr_pick, .chosen = wrr_chosen, .consistent = tuple_consistent, .rows = true,
		.why = "weighted round-robin (the next turn on this lcore)",
	},
	[PYLB_SCHED_WLC] = {
		.pick = wlc_pick, .consistent = tuple_consistent,
		.why = "weighted least-connections (fewest per weight on this lcore)",
	},
};
