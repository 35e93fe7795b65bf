/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * DPDK telemetry commands, so dpdk-telemetry.py and `pylb stats` can read a
 * running appliance: /pylb/stats (counters and drops summed over lcores),
 * /pylb/ports, /pylb/neigh, /pylb/routes and /pylb/vips.
 */
#include <pthread.h>
#include <inttypes.h>
#include <stdio.h>

#include <rte_ether.h>
#include <rte_telemetry.h>
#include <netinet/in.h>

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
		snprintf(key, sizeof(key), "%s_size", pools[i].name);
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
			char a[PYLB_ADDR_STRLEN];

			rte_tel_data_add_array_string(addrs,
				pylb_fmt_prefix(&info.addrs[i], a, sizeof(a)));
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
	char buf[PYLB_ADDR_STRLEN];
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
		pylb_fmt_ip(&nb[i].addr, buf, sizeof(buf));
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

#define TEL_MAX_ENTRIES 200	/* telemetry replies are bounded (22.11: 256) */
/* A reply must fit DPDK's 16 KiB output buffer, or the client gets cut-off
 * JSON: listings stop adding lines once their text reaches this budget. */
#define TEL_TEXT_BUDGET 10000

/* Add a line to a listing if the budget allows; false once it is spent. */
static bool
tel_line(struct rte_tel_data *d, const char *key, const char *line, size_t *spent)
{
	size_t need = strlen(key) + strlen(line) + 8;	/* quotes, colon, comma */

	if (*spent + need > TEL_TEXT_BUDGET)
		return false;
	*spent += need;
	rte_tel_data_add_dict_string(d, key, line);
	return true;
}

static void
fmt_route(const struct pylb_dp *dp, const struct pylb_route *r, char *buf, size_t len)
{
	static const char *const kinds[] = { "via", "connected", "local", "vip", "service" };
	size_t off = (size_t)snprintf(buf, len, "%s", kinds[r->kind % RTE_DIM(kinds)]);

	for (uint16_t i = 0; i < r->n_nh && off < len; i++) {
		char gw[PYLB_ADDR_STRLEN] = "";

		if (r->nh[i].gw.af != 0) {
			pylb_fmt_ip(&r->nh[i].gw, gw, sizeof(gw) - 1);
			strcat(gw, "@");
		}
		off += (size_t)snprintf(buf + off, len - off, "%s %s%s", i ? "," : "", gw,
					dp->ports[r->nh[i].port].name);
	}
}

/* Routes of one family ("4" or "6", default 4): the count and the first
 * TEL_MAX_ENTRIES in prefix order, "r<i>": "prefix via gw@port,..." (22.11
 * telemetry names cannot hold '.' or '/'). */
static int
tel_routes(const char *cmd __rte_unused, const char *params,
	   struct rte_tel_data *d)
{
	static struct pylb_route rt[TEL_MAX_ENTRIES];
	uint8_t af = (params != NULL && params[0] == '6') ? 6 : 4;
	struct rte_tel_data *list = rte_tel_data_alloc();
	size_t spent = 0;
	int n = 0;

	rte_tel_data_start_dict(d);
	if (list == NULL)
		return 0;
	rte_tel_data_start_dict(list);
	if (tel_begin() != NULL) {
		rte_tel_data_add_dict_u64(d, "count", pylb_dp_route_count(tel_dp, af));
		n = pylb_dp_route_list(tel_dp, af, NULL, rt, TEL_MAX_ENTRIES);
		for (int i = 0; i < n; i++) {
			char line[RTE_TEL_MAX_STRING_LEN], key[16];
			size_t off;

			pylb_fmt_prefix(&rt[i].dst, line, sizeof(line));
			off = strlen(line);
			line[off++] = ' ';
			fmt_route(tel_dp, &rt[i], line + off, sizeof(line) - off);
			snprintf(key, sizeof(key), "r%d", i);
			if (!tel_line(list, key, line, &spent))
				break;
		}
	}
	tel_end();
	rte_tel_data_add_dict_container(d, "routes", list, 0);
	return 0;
}

/* VIPs: "v<i>": {prefix, method, table_size, backends: "ip*weight ..."} */
static int
tel_vips(const char *cmd __rte_unused, const char *params __rte_unused,
	 struct rte_tel_data *d)
{
	static const char *const methods[] = { "ipip", "gre", "dr" };
	static struct pylb_prefix vips[TEL_MAX_ENTRIES];
	static struct pylb_backend b[PYLB_MAX_BACKENDS];
	int n = 0;

	rte_tel_data_start_dict(d);
	if (tel_begin() != NULL)
		n = pylb_dp_vip_list(tel_dp, vips, 64);
	for (int i = 0; i < n; i++) {
		struct rte_tel_data *e = rte_tel_data_alloc();
		char pfx[PYLB_ADDR_STRLEN], list[RTE_TEL_MAX_STRING_LEN] = "";
		struct pylb_vip_conf c;
		uint32_t nb = 0;
		size_t off = 0;

		if (e == NULL || pylb_dp_vip_get(tel_dp, &vips[i], &c, b, PYLB_MAX_BACKENDS, &nb) != 0) {
			rte_tel_data_free(e);
			continue;
		}
		for (uint32_t j = 0; j < nb && off + 48 < sizeof(list); j++) {
			char a[PYLB_ADDR_STRLEN];

			pylb_fmt_ip(&b[j].addr, a, sizeof(a));
			off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s*%u",
						j ? " " : "", a, b[j].weight);
		}
		rte_tel_data_start_dict(e);
		rte_tel_data_add_dict_string(e, "prefix",
			pylb_fmt_prefix(&vips[i], pfx, sizeof(pfx)));
		rte_tel_data_add_dict_string(e, "method", methods[c.method % 3]);
		rte_tel_data_add_dict_u64(e, "table_size", c.table_size);
		rte_tel_data_add_dict_u64(e, "n_backends", nb);
		rte_tel_data_add_dict_string(e, "backends", list);
		snprintf(pfx, sizeof(pfx), "v%d", i);
		rte_tel_data_add_dict_container(d, pfx, e, 0);
	}
	tel_end();
	return 0;
}

/* L4 services, ipvsadm -L -n style: "s<i>": {service, method, b<j>:
 * "ip:port weight W active A inactive I"} */
static int
tel_services(const char *cmd __rte_unused, const char *params __rte_unused,
	     struct rte_tel_data *d)
{
	static const char *const methods[] = { "nat", "dr", "tunnel", "fullnat" };
	static struct pylb_service_conf svcs[64];
	static struct pylb_backend b[TEL_MAX_ENTRIES];
	static struct pylb_svc_stats st[TEL_MAX_ENTRIES];
	struct pylb_svc_stats total;
	size_t spent = 0;
	int n = 0;

	rte_tel_data_start_dict(d);
	if (tel_begin() != NULL)
		n = pylb_dp_service_list(tel_dp, svcs, RTE_DIM(svcs));
	for (int i = 0; i < n; i++) {
		struct rte_tel_data *e = rte_tel_data_alloc();
		const struct pylb_service_conf *c = &svcs[i];
		char line[RTE_TEL_MAX_STRING_LEN], a[PYLB_ADDR_STRLEN], key[16];
		struct pylb_service_conf conf;
		uint32_t nb = 0;

		if (e == NULL || pylb_dp_service_get(tel_dp, &c->vip, c->proto, c->port, &conf, b,
						     RTE_DIM(b), &nb) != 0) {
			rte_tel_data_free(e);
			continue;
		}
		nb = RTE_MIN(nb, (uint32_t)RTE_DIM(b));
		pylb_dp_service_stats(tel_dp, &c->vip, c->proto, c->port, &total, st, nb);
		rte_tel_data_start_dict(e);
		snprintf(line, sizeof(line), "%s %s:%u", c->proto == IPPROTO_TCP ? "TCP" : "UDP",
			 pylb_fmt_ip(&c->vip, a, sizeof(a)), c->port);
		rte_tel_data_add_dict_string(e, "service", line);
		rte_tel_data_add_dict_string(e, "method", methods[c->method % RTE_DIM(methods)]);
		for (uint32_t j = 0; j < nb; j++) {
			snprintf(line, sizeof(line), "%s:%u%s weight %u active %" PRId64 " inactive %" PRId64,
				 pylb_fmt_ip(&b[j].addr, a, sizeof(a)), b[j].port,
				 b[j].state == PYLB_BACKEND_DOWN ? " down" :
				 b[j].state == PYLB_BACKEND_DRAIN ? " drain" : "", b[j].weight,
				 st[j].active, st[j].inactive);
			snprintf(key, sizeof(key), "b%u", j);
			if (!tel_line(e, key, line, &spent))
				break;
		}
		snprintf(key, sizeof(key), "s%d", i);
		rte_tel_data_add_dict_container(d, key, e, 0);
	}
	tel_end();
	return 0;
}

/* Tracked connections, like ipvsadm -L -c: the count and the first
 * TEL_MAX_ENTRIES, "c<i>": "TCP established 12s client -> vip -> backend". */
static int
tel_conns(const char *cmd __rte_unused, const char *params __rte_unused,
	  struct rte_tel_data *d)
{
	static struct pylb_conn_info conns[TEL_MAX_ENTRIES];
	struct rte_tel_data *list = rte_tel_data_alloc();
	size_t spent = 0;
	int n = 0;

	rte_tel_data_start_dict(d);
	if (list == NULL)
		return 0;
	rte_tel_data_start_dict(list);
	if (tel_begin() != NULL) {
		rte_tel_data_add_dict_u64(d, "count", pylb_dp_conn_count(tel_dp));
		n = pylb_dp_conn_list(tel_dp, conns, TEL_MAX_ENTRIES);
	}
	for (int i = 0; i < n; i++) {
		const struct pylb_conn_info *c = &conns[i];
		char cl[PYLB_ADDR_STRLEN], v[PYLB_ADDR_STRLEN], b[PYLB_ADDR_STRLEN];
		char line[RTE_TEL_MAX_STRING_LEN], key[16];

		snprintf(line, sizeof(line), "%s %s %lus %s:%u -> %s:%u -> %s:%u",
			 c->proto == IPPROTO_TCP ? "TCP" : "UDP",
			 c->proto == IPPROTO_TCP ? pylb_tcp_state_name(c->state) : "-",
			 (unsigned long)(c->expires_ms / 1000),
			 pylb_fmt_ip(&c->client, cl, sizeof(cl)), c->cport,
			 pylb_fmt_ip(&c->vip, v, sizeof(v)), c->vport,
			 pylb_fmt_ip(&c->backend, b, sizeof(b)), c->bport);
		snprintf(key, sizeof(key), "c%d", i);
		if (!tel_line(list, key, line, &spent))
			break;
	}
	tel_end();
	rte_tel_data_add_dict_container(d, "connections", list, 0);
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
		rte_telemetry_register_cmd("/pylb/routes", tel_routes,
			"pylb routes: count and the first ones (up to 200). Parameters: 4 or 6");
		rte_telemetry_register_cmd("/pylb/services", tel_services,
			"pylb L4 services with active/inactive connections per backend. No parameters");
		rte_telemetry_register_cmd("/pylb/conns", tel_conns,
			"pylb tracked connections: count and the first ones (about 100). No parameters");
		rte_telemetry_register_cmd("/pylb/vips", tel_vips,
			"pylb L3 VIPs: method, table size, backends. No parameters");
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
