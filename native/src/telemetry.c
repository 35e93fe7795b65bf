/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * DPDK telemetry commands, so dpdk-telemetry.py and `pylb stats` can read a
 * running appliance: /pylb/stats (counters and drops summed over lcores),
 * /pylb/ports and /pylb/neigh.
 */
#include <pthread.h>
#include <stdio.h>

#include <rte_ether.h>
#include <rte_telemetry.h>

#include <arpa/inet.h>
#include <string.h>

#include "pylb_priv.h"

static pthread_mutex_t tel_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pylb_dp *tel_dp;
static bool tel_registered;

/* Hold the attached dataplane (NULL if none) steady for a callback. */
static struct pylb_dp *
tel_begin(void)
{
	pthread_mutex_lock(&tel_lock);
	if (tel_dp != NULL)
		pthread_mutex_lock(&tel_dp->ctl_lock);
	return tel_dp;
}

static void
tel_end(void)
{
	if (tel_dp != NULL)
		pthread_mutex_unlock(&tel_dp->ctl_lock);
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
	}
	tel_end();
	return 0;
}

static void
fmt_addr(const struct pylb_ip *a, char *buf, size_t len)
{
	if (inet_ntop(a->af == 6 ? AF_INET6 : AF_INET, a->ip, buf,
		      (socklen_t)len) == NULL)
		snprintf(buf, len, "?");
}

static int
tel_ports(const char *cmd __rte_unused, const char *params __rte_unused,
	  struct rte_tel_data *d)
{
	rte_tel_data_start_dict(d);
	tel_begin();
	for (uint16_t p = 0; tel_dp != NULL && p < tel_dp->n_ports; p++) {
		struct rte_tel_data *port = rte_tel_data_alloc();
		struct rte_tel_data *addrs = rte_tel_data_alloc();
		struct pylb_port_info info;
		char buf[RTE_ETHER_ADDR_FMT_SIZE + 8];

		if (port == NULL || addrs == NULL ||
		    pylb_dp_port_info(tel_dp, p, &info) != 0) {
			rte_tel_data_free(port);
			rte_tel_data_free(addrs);
			continue;
		}
		rte_tel_data_start_dict(port);
		rte_tel_data_add_dict_string(port, "device", info.device);
		rte_tel_data_add_dict_int(port, "ethdev", info.ethdev);
		rte_ether_format_addr(buf, sizeof(buf),
				      (struct rte_ether_addr *)info.mac);
		rte_tel_data_add_dict_string(port, "mac", buf);
		rte_tel_data_add_dict_int(port, "link_up", info.link_up);
		rte_tel_data_add_dict_u64(port, "link_speed_mbps", info.link_speed_mbps);
		rte_tel_data_start_array(addrs, RTE_TEL_STRING_VAL);
		for (uint32_t i = 0; i < info.n_addrs; i++) {
			char a[INET6_ADDRSTRLEN + 8];

			fmt_addr(&info.addrs[i].addr, a, sizeof(a));
			snprintf(a + strlen(a), 8, "/%u", info.addrs[i].len);
			rte_tel_data_add_array_string(addrs, a);
		}
		rte_tel_data_add_dict_container(port, "addresses", addrs, 0);
		rte_tel_data_add_dict_string(port, "kernel_iface", info.kernel_iface);
		rte_tel_data_add_dict_container(d, info.name, port, 0);
	}
	tel_end();
	return 0;
}

static int
tel_neigh(const char *cmd __rte_unused, const char *params __rte_unused,
	  struct rte_tel_data *d)
{
	struct pylb_neigh_info nb[64];
	static const char *const states[] = {
		"incomplete", "reachable", "probing", "static" };
	char buf[INET6_ADDRSTRLEN];
	int n = 0;

	/* 22.11 arrays cannot hold dicts: a dict of entries named n0, n1, ... */
	rte_tel_data_start_dict(d);
	if (tel_begin() != NULL)
		n = pylb_dp_neigh_list(tel_dp, nb, RTE_DIM(nb));
	for (int i = 0; i < n; i++) {
		struct rte_tel_data *e = rte_tel_data_alloc();

		if (e == NULL)
			break;
		rte_tel_data_start_dict(e);
		rte_tel_data_add_dict_string(e, "port", tel_dp->ports[nb[i].port].name);
		fmt_addr(&nb[i].addr, buf, sizeof(buf));
		rte_tel_data_add_dict_string(e, "ip", buf);
		rte_tel_data_add_dict_string(e, "state", states[nb[i].state & 3]);
		rte_tel_data_add_dict_u64(e, "held", nb[i].held);
		rte_ether_format_addr(buf, sizeof(buf),
				      (struct rte_ether_addr *)nb[i].mac);
		rte_tel_data_add_dict_string(e, "mac", buf);
		rte_tel_data_add_dict_u64(e, "age_ms", nb[i].age_ms);
		snprintf(buf, sizeof(buf), "n%d", i);
		rte_tel_data_add_dict_container(d, buf, e, 0);
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
			"pylb counters and drops by reason, summed over lcores. No parameters");
		rte_telemetry_register_cmd("/pylb/ports", tel_ports,
			"pylb ports: device, MAC, link, addresses. No parameters");
		rte_telemetry_register_cmd("/pylb/neigh", tel_neigh,
			"pylb neighbour table (first 64): port, ip, mac, age. No parameters");
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
