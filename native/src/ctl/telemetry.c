/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * DPDK telemetry, for DPDK's own tools (dpdk-telemetry.py): /pylb/stats,
 * the counters and drops summed over lcores and the mbufs in use. Ports are
 * DPDK's /ethdev/ commands. Everything else an operator reads (services,
 * routes, connections...) comes from the domain over gRPC (pylbctl, and
 * `pylb services` etc.): one read path. Nothing here takes the control
 * lock: counters are read as the workers write them, and tel_lock only
 * keeps the dataplane from going away during a callback.
 */
#include <pthread.h>
#include <stdio.h>

#include <rte_telemetry.h>

#include "ctl/ctl.h"

static pthread_mutex_t tel_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pylb_dp *tel_dp;
static bool tel_registered;

/* Keep the attached dataplane (NULL if none) from being destroyed during
 * a callback. */
static struct pylb_dp *
tel_begin(void)
{
	pthread_mutex_lock(&tel_lock);
	return tel_dp;
}

static void
tel_end(void)
{
	pthread_mutex_unlock(&tel_lock);
}

static struct rte_tel_data *
sum_dict(uint32_t from, uint32_t to)
{
	struct rte_tel_data *d = rte_tel_data_alloc();

	if (d == NULL)
		return NULL;
	rte_tel_data_start_dict(d);
	for (uint32_t c = from; c < to; c++) {
		uint64_t sum = 0;

		for (uint32_t s = 0; s < tel_dp->n_slots; s++)
			sum += tel_dp->stats[s].c[c];
		rte_tel_data_add_dict_u64(d, pylb_counter_name(c), sum);
	}
	return d;
}

/* Each packet buffer pool's size and mbufs in use ("mbufs": {"NAME": in
 * use, "NAME_size": size}): a leak shows as in-use mbufs that never return. */
static void
tel_mempools(struct rte_tel_data *d)
{
	struct pylb_mempool_info pools[RTE_MAX_NUMA_NODES];
	struct rte_tel_data *m = rte_tel_data_alloc();
	char key[RTE_TEL_MAX_STRING_LEN];
	int n = pylb_dp_mempools(tel_dp, pools, RTE_DIM(pools));

	if (m == NULL)
		return;
	rte_tel_data_start_dict(m);
	for (int i = 0; i < n; i++) {
		rte_tel_data_add_dict_u64(m, pools[i].name, pools[i].size - pools[i].available);
		snprintf(key, sizeof(key), "%.*s_size", (int)sizeof(key) - 6, pools[i].name);
		rte_tel_data_add_dict_u64(m, key, pools[i].size);
	}
	rte_tel_data_add_dict_container(d, "mbufs", m, 0);
}

static int
tel_stats(const char *cmd __rte_unused, const char *params __rte_unused,
	  struct rte_tel_data *d)
{
	struct rte_tel_data *counters, *drops;

	rte_tel_data_start_dict(d);
	if (tel_begin() != NULL) {
		counters = sum_dict(0, PYLB_DROP_FIRST);
		drops = sum_dict(PYLB_DROP_FIRST, PYLB_CNT_MAX);
		if (counters != NULL)
			rte_tel_data_add_dict_container(d, "counters", counters, 0);
		if (drops != NULL)
			rte_tel_data_add_dict_container(d, "drops", drops, 0);
		tel_mempools(d);
	}
	tel_end();
	return 0;
}

void
pylb_telemetry_attach(struct pylb_dp *dp)
{
	pthread_mutex_lock(&tel_lock);
	tel_dp = dp;
	if (!tel_registered) {
		rte_telemetry_register_cmd("/pylb/stats", tel_stats,
			"pylb counters, drops by reason (summed over lcores) and mbufs in use. No parameters");
		tel_registered = true;
	}
	pthread_mutex_unlock(&tel_lock);
}

void
pylb_telemetry_detach(struct pylb_dp *dp)
{
	pthread_mutex_lock(&tel_lock);
	if (tel_dp == dp)
		tel_dp = NULL;
	pthread_mutex_unlock(&tel_lock);
}
