/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * Neighbour table. Workers queue what they learn from ARP on a ring; the
 * control side drains it into a hash that workers can read lock-free.
 */
#include <stdio.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_hash.h>
#include <rte_jhash.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_ring.h>

#include "pylb_priv.h"

static uint32_t neigh_seq;

static inline uint64_t
mac_to_u64(const struct rte_ether_addr *mac)
{
	uint64_t v = 0;

	memcpy(&v, mac->addr_bytes, RTE_ETHER_ADDR_LEN);
	return v;
}

int
pylb_neigh_init(struct pylb_dp *dp)
{
	char name[RTE_HASH_NAMESIZE];
	struct rte_hash_parameters hp = {
		.name = name,
		.entries = dp->conf.neigh_capacity,
		.key_len = sizeof(struct pylb_neigh_key),
		.hash_func = rte_jhash,
		.socket_id = (int)rte_socket_id(),
		.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF,
	};

	neigh_seq++;
	snprintf(name, sizeof(name), "pylb_nh%u", neigh_seq);
	dp->neigh_hash = rte_hash_create(&hp);
	snprintf(name, sizeof(name), "pylb_nl%u", neigh_seq);
	dp->neigh_learn = rte_ring_create_elem(name,
		sizeof(struct pylb_neigh_learn), PYLB_NEIGH_RING,
		(int)rte_socket_id(), RING_F_SC_DEQ);
	dp->neigh_seen_tsc = rte_zmalloc("pylb_nh_seen",
		sizeof(uint64_t) * dp->conf.neigh_capacity * 2, 0);
	if (dp->neigh_hash == NULL || dp->neigh_learn == NULL ||
	    dp->neigh_seen_tsc == NULL)
		return -PYLB_E_NOMEM;
	return 0;
}

void
pylb_neigh_free(struct pylb_dp *dp)
{
	rte_hash_free(dp->neigh_hash);
	rte_ring_free(dp->neigh_learn);
	rte_free(dp->neigh_seen_tsc);
	dp->neigh_hash = NULL;
	dp->neigh_learn = NULL;
	dp->neigh_seen_tsc = NULL;
}

int
pylb_neigh_drain(struct pylb_dp *dp)
{
	struct pylb_neigh_learn ev[PYLB_BURST];
	struct pylb_lcore *lc = pylb_control_lcore(dp);
	uint64_t now = rte_get_timer_cycles();
	unsigned int n, i;
	int total = 0;

	pthread_mutex_lock(&dp->ctl_lock);
	do {
		n = rte_ring_dequeue_burst_elem(dp->neigh_learn, ev, sizeof(ev[0]),
						PYLB_BURST, NULL);
		for (i = 0; i < n; i++) {
			struct pylb_neigh_key key = { .ip = ev[i].ip, .port = ev[i].port };
			void *old = NULL;
			bool known = rte_hash_lookup_data(dp->neigh_hash, &key, &old) >= 0;
			int32_t pos;

			pos = rte_hash_add_key_data(dp->neigh_hash, &key,
				(void *)(uintptr_t)mac_to_u64(&ev[i].mac));
			if (pos < 0) {
				lc->stats->c[PYLB_C_NEIGH_LEARN_OVERFLOW]++;
				continue;
			}
			pos = rte_hash_lookup(dp->neigh_hash, &key);
			if (pos >= 0)
				dp->neigh_seen_tsc[pos] = now;
			if (!known)
				lc->stats->c[PYLB_C_NEIGH_LEARNED]++;
		}
		total += (int)n;
	} while (n == PYLB_BURST);
	pthread_mutex_unlock(&dp->ctl_lock);
	return total;
}

int
pylb_dp_housekeep(struct pylb_dp *dp)
{
	return pylb_neigh_drain(dp);
}

int
pylb_dp_neigh_list(struct pylb_dp *dp, struct pylb_neigh_info *out, uint32_t max)
{
	const struct pylb_neigh_key *key;
	uint64_t now = rte_get_timer_cycles();
	uint64_t hz = rte_get_timer_hz();
	uint32_t iter = 0, n = 0;
	void *data;
	int32_t pos;

	while (n < max &&
	       (pos = rte_hash_iterate(dp->neigh_hash, (const void **)&key,
				       &data, &iter)) >= 0) {
		uint64_t mac = (uint64_t)(uintptr_t)data;

		out[n].ip = key->ip;
		out[n].port = key->port;
		memcpy(out[n].mac, &mac, RTE_ETHER_ADDR_LEN);
		out[n].age_ms = (now - dp->neigh_seen_tsc[pos]) * 1000 / hz;
		n++;
	}
	return (int)n;
}
