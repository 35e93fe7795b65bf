/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * The dataplane object: memory, ports, configuration snapshots, workers,
 * and the in-process packet seam.
 */
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>

#include "ctl/ctl.h"
#include "path/pipeline.h"

static uint32_t dp_seq;

struct rte_mempool *
pylb_pool_for(struct pylb_dp *dp, int socket)
{
	char name[RTE_MEMPOOL_NAMESIZE];

	if (socket < 0 || socket >= RTE_MAX_NUMA_NODES)
		socket = (int)rte_socket_id();
	if (socket < 0 || socket >= RTE_MAX_NUMA_NODES)
		socket = 0;		/* a thread outside EAL's (SOCKET_ID_ANY) */
	if (dp->pools[socket] == NULL) {
		snprintf(name, sizeof(name), "pylb%u_mb_s%d", dp_seq, socket);
		dp->pools[socket] = rte_pktmbuf_pool_create(name,
			dp->conf.mbufs_per_socket, dp->conf.mbuf_cache, 0,
			dp->conf.mbuf_size ? dp->conf.mbuf_size : RTE_MBUF_DEFAULT_BUF_SIZE, socket);
	}
	return dp->pools[socket];
}

static bool
key_given(const struct pylb_dp_conf *conf)
{
	RTE_BUILD_BUG_ON(HK__END != PYLB_HASH_KEY_WORDS);	/* hash.h uses every word */
	for (int i = 0; i < PYLB_HASH_KEY_WORDS; i++)
		if (conf->hash_key[i] != 0)
			return true;
	return false;
}

int
pylb_dp_create(const struct pylb_dp_conf *conf, struct pylb_dp **out)
{
	struct pylb_dp *dp;
	uint32_t i, qs_threads;
	size_t sz;
	int rc;

	if (conf->n_workers > PYLB_MAX_WORKERS)
		return pylb_fail(-PYLB_E_INVAL, "%u workers requested, at most %d",
				 conf->n_workers, PYLB_MAX_WORKERS);
	if (conf->conn_capacity != 0 &&
	    (conf->conn_capacity < PYLB_CONN_MIN || conf->conn_capacity > PYLB_CT_MAX))
		return pylb_fail(-PYLB_E_INVAL, "connection capacity %u: %u to %u per lcore",
				 conf->conn_capacity, PYLB_CONN_MIN, PYLB_CT_MAX);
	if (conf->mbuf_size != 0 &&
	    (conf->mbuf_size < RTE_PKTMBUF_HEADROOM + 64 || conf->mbuf_size > UINT16_MAX))
		return pylb_fail(-PYLB_E_INVAL,
			"mbuf size %u: from %u (headroom and a 64-byte frame) to %u bytes",
			conf->mbuf_size, RTE_PKTMBUF_HEADROOM + 64, UINT16_MAX);
	if (conf->mbufs_per_socket < 2 * PYLB_BURST)
		return pylb_fail(-PYLB_E_INVAL, "mbufs per socket must be at least %d",
				 2 * PYLB_BURST);
	for (i = 0; i < conf->n_workers; i++) {
		uint32_t lc = conf->worker_lcores[i];

		if (lc >= RTE_MAX_LCORE || !rte_lcore_is_enabled(lc) ||
		    lc == rte_get_main_lcore())
			return pylb_fail(-PYLB_E_INVAL,
				"worker lcore %u is not an EAL worker lcore (pass it in the EAL lcore list, apart from the main lcore)",
				lc);
	}

	dp = rte_zmalloc("pylb_dp", sizeof(*dp), RTE_CACHE_LINE_SIZE);
	if (dp == NULL)
		return pylb_fail(-PYLB_E_NOMEM, "cannot allocate the dataplane");
	dp_seq++;
	{
		pthread_mutexattr_t a;

		/* Recursive: an API call that holds it may publish a snapshot. */
		pthread_mutexattr_init(&a);
		pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
		pthread_mutex_init(&dp->ctl_lock, &a);
		pthread_mutexattr_destroy(&a);
	}
	dp->conf = *conf;
	dp->clock_start = rte_get_timer_cycles();
	if (!key_given(conf) &&
	    getrandom(dp->conf.hash_key, sizeof(dp->conf.hash_key), 0) !=
	    (ssize_t)sizeof(dp->conf.hash_key)) {
		rte_free(dp);
		return pylb_fail(-PYLB_E_INVAL, "cannot draw a random flow-hash key (getrandom)");
	}
	pylb_mac_key_init(&dp->mac, dp->conf.hash_key);
	if (dp->conf.neigh_capacity == 0)
		dp->conf.neigh_capacity = PYLB_NEIGH_DEFAULT;
	dp->n_slots = conf->n_workers + 1;
	dp->service_error_in = pylb_icmp_error_in;
	dp->lcores = rte_zmalloc("pylb_lcores", dp->n_slots * sizeof(*dp->lcores),
				 RTE_CACHE_LINE_SIZE);
	dp->cts = rte_zmalloc("pylb_ct", dp->n_slots * sizeof(*dp->cts), RTE_CACHE_LINE_SIZE);
	dp->ncaches = rte_zmalloc("pylb_ncache", (size_t)dp->n_slots * PYLB_NCACHE *
				  sizeof(*dp->ncaches), RTE_CACHE_LINE_SIZE);
	dp->probes = rte_zmalloc("pylb_probes", PYLB_PROBES * sizeof(*dp->probes), 0);
	dp->stats = rte_zmalloc("pylb_stats", dp->n_slots * sizeof(*dp->stats),
				RTE_CACHE_LINE_SIZE);
	dp->cfg = rte_zmalloc("pylb_cfg", sizeof(*dp->cfg), RTE_CACHE_LINE_SIZE);
	dp->svc_stats = rte_zmalloc("pylb_svc_stats", (size_t)dp->n_slots * PYLB_MAX_SERVICES *
				    sizeof(*dp->svc_stats), RTE_CACHE_LINE_SIZE);
	qs_threads = RTE_MAX(conf->n_workers, 1u);
	sz = rte_rcu_qsbr_get_memsize(qs_threads);
	dp->qsv = rte_zmalloc("pylb_qsbr", sz, RTE_CACHE_LINE_SIZE);
	if (dp->lcores == NULL || dp->cts == NULL || dp->ncaches == NULL || dp->probes == NULL ||
	    dp->stats == NULL || dp->cfg == NULL || dp->svc_stats == NULL ||
	    dp->qsv == NULL || rte_rcu_qsbr_init(dp->qsv, qs_threads) != 0) {
		pylb_dp_destroy(dp);
		return pylb_fail(-PYLB_E_NOMEM, "cannot allocate dataplane state");
	}
	for (i = 0; i < dp->n_slots; i++) {
		struct pylb_lcore *lc = &dp->lcores[i];

		lc->slot = i;
		lc->queue = (uint16_t)i;
		lc->dp = dp;
		lc->ct = &dp->cts[i];
		lc->ncache = &dp->ncaches[(size_t)i * PYLB_NCACHE];
		lc->stats = &dp->stats[i];
		lc->svc_stats = &dp->svc_stats[(size_t)i * PYLB_MAX_SERVICES];
		lc->lcore_id = i < conf->n_workers ? conf->worker_lcores[i] :
			rte_lcore_id();
	}
	if (pylb_pool_for(dp, (int)rte_socket_id()) == NULL) {
		int err = rte_errno;

		pylb_dp_destroy(dp);
		return pylb_fail(-PYLB_E_NOMEM,
			"cannot create the mbuf pool (%u mbufs): %s; reserve more hugepages or lower mbufs",
			conf->mbufs_per_socket, rte_strerror(err));
	}
	/* The init functions say what failed, with their own code (a bad
	 * size is INVAL, missing memory NOMEM): kept as they are. */
	rc = pylb_neigh_init(dp);
	if (rc == 0)
		rc = pylb_route_init(dp);
	if (rc == 0)
		rc = pylb_l4_init(dp);
	if (rc != 0) {
		char msg[PYLB_ERRMSG_LEN];

		snprintf(msg, sizeof(msg), "%s", pylb_last_error());
		pylb_dp_destroy(dp);
		return pylb_fail(rc, "%s", msg);
	}
	pylb_telemetry_attach(dp);
	*out = dp;
	return 0;
}

/* Publish a new configuration snapshot and free the old one once every
 * worker has passed a quiescent state. */
static void
cfg_publish(struct pylb_dp *dp, struct pylb_cfg *next)
{
	pylb_rcu_replace(dp, (void **)&dp->cfg, next);
}

static struct pylb_cfg *
cfg_copy(const struct pylb_dp *dp)
{
	struct pylb_cfg *c = rte_malloc("pylb_cfg", sizeof(*c),
					RTE_CACHE_LINE_SIZE);

	if (c != NULL)
		memcpy(c, dp->cfg, sizeof(*c));
	return c;
}

int
pylb_dp_port_add(struct pylb_dp *dp, const struct pylb_port_conf *conf,
		 uint16_t *port_out)
{
	struct pylb_port *p;
	struct pylb_cfg *next;
	struct rte_ether_addr mac;
	uint16_t i;
	int rc;

	if (dp->running)
		return pylb_fail(-PYLB_E_STATE, "ports are added before the workers start");
	if (dp->n_ports == PYLB_MAX_PORTS)
		return pylb_fail(-PYLB_E_FULL, "at most %d ports", PYLB_MAX_PORTS);
	if (conf->rp_filter > PYLB_RP_OFF)
		return pylb_fail(-PYLB_E_INVAL, "port %s: unknown rp_filter %u (strict, loose or off)",
				 conf->name, conf->rp_filter);
	if (conf->name[0] == '\0' || memchr(conf->name, 0, PYLB_NAME_LEN) == NULL)
		return pylb_fail(-PYLB_E_INVAL, "a port needs a name of 1 to %d characters",
				 PYLB_NAME_LEN - 1);
	for (i = 0; i < dp->n_ports; i++)
		if (strcmp(dp->ports[i].name, conf->name) == 0)
			return pylb_fail(-PYLB_E_EXIST, "port %s already exists", conf->name);
	if (conf->device[0] == '\0' && conf->vlan == 0 && dp->conf.n_workers > 0)
		return pylb_fail(-PYLB_E_INVAL,
			"port %s has no device; detached ports are for dataplanes without workers",
			conf->name);
	if (conf->vlan != 0) {
		if (conf->vlan > 4094)
			return pylb_fail(-PYLB_E_INVAL, "port %s: VLAN %u is not in 1..4094",
					 conf->name, conf->vlan);
		if (conf->parent >= dp->n_ports || dp->ports[conf->parent].vlan != 0)
			return pylb_fail(-PYLB_E_INVAL,
				"port %s: VLAN %u needs a parent port that is not a VLAN itself",
				conf->name, conf->vlan);
		if (conf->device[0] != '\0' || conf->kernel_iface[0] != '\0')
			return pylb_fail(-PYLB_E_INVAL,
				"port %s: a VLAN has its parent's device and no kernel interface",
				conf->name);
		for (i = 0; i < dp->cfg->ports[conf->parent].n_vlans; i++)
			if (dp->cfg->ports[conf->parent].vlans[i].vid == conf->vlan)
				return pylb_fail(-PYLB_E_EXIST, "port %s already has VLAN %u",
						 dp->ports[conf->parent].name, conf->vlan);
	}
	if (memchr(conf->kernel_iface, 0, PYLB_NAME_LEN) == NULL ||
	    strlen(conf->kernel_iface) > 15)
		return pylb_fail(-PYLB_E_INVAL,
			"port %s: kernel interface name must be at most 15 characters",
			conf->name);
	for (i = 0; conf->kernel_iface[0] != '\0' && i < dp->n_ports; i++)
		if (strcmp(dp->ports[i].kernel_iface, conf->kernel_iface) == 0)
			return pylb_fail(-PYLB_E_EXIST,
				"kernel interface %s is already port %s's",
				conf->kernel_iface, dp->ports[i].name);

	next = cfg_copy(dp);
	if (next == NULL)
		return pylb_fail(-PYLB_E_NOMEM, "cannot allocate configuration");
	p = &dp->ports[dp->n_ports];
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", conf->name);
	snprintf(p->device, sizeof(p->device), "%s", conf->device);
	snprintf(p->kernel_iface, sizeof(p->kernel_iface), "%s", conf->kernel_iface);
	p->ethdev = -1;
	p->kethdev = -1;
	if (conf->vlan != 0) {
		struct pylb_port_cfg *pc = &next->ports[conf->parent];

		char parent[PYLB_NAME_LEN];

		p->ethdev = dp->ports[conf->parent].ethdev;
		p->vlan = conf->vlan;
		memcpy(parent, dp->ports[conf->parent].name, sizeof(parent));
		parent[sizeof(parent) - 1] = '\0';
		snprintf(p->device, sizeof(p->device), "vlan %u of %s", conf->vlan, parent);
		mac = pc->mac;
		pc->vlans[pc->n_vlans].vid = conf->vlan;
		pc->vlans[pc->n_vlans++].port = dp->n_ports;
	} else if (conf->device[0] != '\0') {
		rc = pylb_port_setup(dp, p, conf, &mac);
		if (rc == 0 && p->kernel_iface[0] != '\0')
			rc = pylb_port_kernel_setup(dp, p);
		if (rc != 0) {
			pylb_port_close(p);
			rte_free(next);
			return rc;
		}
	} else {
		memcpy(mac.addr_bytes, conf->mac, RTE_ETHER_ADDR_LEN);
		if (!rte_is_unicast_ether_addr(&mac) || rte_is_zero_ether_addr(&mac)) {
			rte_free(next);
			return pylb_fail(-PYLB_E_INVAL,
				"port %s: a detached port needs a unicast MAC address",
				conf->name);
		}
	}
	next->ports[dp->n_ports].mac = mac;
	next->ports[dp->n_ports].kernel = p->kernel_iface[0] != '\0';
	next->ports[dp->n_ports].rp_ports = conf->rp_filter == PYLB_RP_STRICT ?
		1u << dp->n_ports : conf->rp_filter == PYLB_RP_LOOSE ? UINT32_MAX : 0;
	next->ports[dp->n_ports].mtu = conf->mtu ? conf->mtu : RTE_ETHER_MTU;
	if (conf->vlan != 0)
		next->ports[dp->n_ports].mtu = next->ports[conf->parent].mtu;
	else if (p->ethdev >= 0)
		rte_eth_dev_get_mtu((uint16_t)p->ethdev, &next->ports[dp->n_ports].mtu);
	next->n_ports = (uint16_t)(dp->n_ports + 1);
	*port_out = dp->n_ports++;
	cfg_publish(dp, next);
	return 0;
}

static int
addr_add_unlocked(struct pylb_dp *dp, uint16_t port,
		 const struct pylb_prefix *addr)
{
	struct pylb_prefix host = *addr, net = *addr;
	uint8_t max = addr->addr.af == 6 ? 128 : 32;
	struct pylb_port_cfg *pc;
	struct pylb_cfg *next;
	uint16_t n;
	int rc;

	if (port >= dp->n_ports)
		return pylb_fail(-PYLB_E_NOENT, "no port %u", port);
	if (addr->addr.af != 4 && addr->addr.af != 6)
		return pylb_fail(-PYLB_E_INVAL, "address family must be 4 or 6");
	if (addr->len > max || addr->len == 0)
		return pylb_fail(-PYLB_E_INVAL, "prefix length %u is not in 1..%u",
				 addr->len, max);
	for (uint16_t p = 0; p < dp->n_ports; p++)
		if (addr->addr.af == 4 ? port_owns4(&dp->cfg->ports[p], *(const uint32_t *)addr->addr.ip) :
		    port_owns6(&dp->cfg->ports[p], addr->addr.ip))
			return pylb_fail(-PYLB_E_EXIST,
				"address already configured on port %s",
				dp->ports[p].name);
	pc = &dp->cfg->ports[port];
	n = addr->addr.af == 4 ? pc->n_addrs4 : pc->n_addrs6;
	if (n == PYLB_MAX_ADDRS)
		return pylb_fail(-PYLB_E_FULL, "port %s already has %d IPv%u addresses",
				 dp->ports[port].name, PYLB_MAX_ADDRS, addr->addr.af);
	/* The address itself becomes a local route: this also refuses an
	 * address that is already configured, or already routed as a host. */
	host.len = max;
	rc = pylb_route_add_special(dp, &host, PYLB_FIB_VAL(PYLB_FIB_LOCAL, port));
	if (rc != 0)
		return rc;
	next = cfg_copy(dp);
	if (next == NULL) {
		pylb_route_del_special(dp, &host, PYLB_FIB_VAL(PYLB_FIB_LOCAL, port));
		return pylb_fail(-PYLB_E_NOMEM, "cannot allocate configuration");
	}
	pc = &next->ports[port];
	if (addr->addr.af == 4) {
		struct pylb_addr4 *a = &pc->addrs4[pc->n_addrs4++];

		memcpy(&a->ip, addr->addr.ip, 4);
		a->prefix_len = addr->len;
		a->mask = rte_cpu_to_be_32((uint32_t)(~0ULL << (32 - addr->len)));
	} else {
		struct pylb_addr6 *a = &pc->addrs6[pc->n_addrs6++];

		memcpy(a->ip, addr->addr.ip, 16);
		a->prefix_len = addr->len;
	}
	cfg_publish(dp, next);
	if (addr->len == max)
		return 0;
	for (uint32_t bit = addr->len; bit < 128; bit++)
		net.addr.ip[bit / 8] &= (uint8_t)~(0x80 >> (bit % 8));
	return pylb_route_add_connected(dp, port, &net);
}

int
pylb_dp_start(struct pylb_dp *dp)
{
	uint32_t i;
	int rc;

	if (dp->running)
		return pylb_fail(-PYLB_E_STATE, "the dataplane is already running");
	if (dp->conf.n_workers == 0)
		return pylb_fail(-PYLB_E_STATE, "this dataplane has no worker lcores");
	dp->running = true;
	for (i = 0; i < dp->conf.n_workers; i++) {
		struct pylb_lcore *lc = &dp->lcores[i];

		rc = rte_eal_remote_launch(pylb_worker_main, lc, lc->lcore_id);
		if (rc != 0) {
			pylb_dp_stop(dp);
			return pylb_fail(-PYLB_E_STATE,
				"cannot launch a worker on lcore %u: %s",
				lc->lcore_id, rte_strerror(-rc));
		}
	}
	return 0;
}

int
pylb_dp_stop(struct pylb_dp *dp)
{
	uint32_t i;

	if (!dp->running)
		return 0;
	__atomic_store_n(&dp->running, false, __ATOMIC_RELEASE);
	for (i = 0; i < dp->conf.n_workers; i++)
		rte_eal_wait_lcore(dp->lcores[i].lcore_id);
	return 0;
}

void
pylb_dp_destroy(struct pylb_dp *dp)
{
	uint32_t i;
	uint16_t p;

	if (dp == NULL)
		return;
	pylb_dp_stop(dp);
	pylb_telemetry_detach(dp);
	for (p = 0; p < dp->n_ports; p++)
		pylb_port_close(&dp->ports[p]);
	if (dp->lcores != NULL)
		for (i = 0; i < dp->n_slots; i++)
			for (p = 0; p < 2 * PYLB_MAX_PORTS; p++) {
				struct pylb_txbuf *b = &dp->lcores[i].tx[p];

				rte_pktmbuf_free_bulk(b->pkts, b->n);
				b->n = 0;
			}
	pylb_neigh_free(dp);
	pylb_vip_free_all(dp);
	pylb_pool_free_all(dp);
	pylb_l4_free(dp);
	pylb_acls_free(dp);
	pylb_route_free(dp);
	for (i = 0; i < RTE_MAX_NUMA_NODES; i++)
		rte_mempool_free(dp->pools[i]);
	rte_free(dp->qsv);
	rte_free(dp->cfg);
	rte_free(dp->stats);
	rte_free(dp->svc_stats);
	rte_free(dp->lcores);
	rte_free(dp->cts);
	rte_free(dp->ncaches);
	rte_free(dp->probes);
	rte_free(dp);
}

uint16_t
pylb_dp_port_count(const struct pylb_dp *dp)
{
	return dp->n_ports;
}

/* A TAP's link, as its PMD reads it, is the admin state of its kernel
 * interface looked up by name in this network namespace: once that
 * interface moved to another namespace (a client's, in tests and demos)
 * the PMD finds nothing and says down, though the TAP carries traffic
 * while it is started. True for such a TAP. */
static bool
tap_elsewhere(const struct pylb_port *p)
{
	const char *at = strstr(p->device, "iface=");
	char name[IF_NAMESIZE];
	size_t n;

	if (strncmp(p->device, "net_tap", 7) != 0 || at == NULL)
		return false;
	at += strlen("iface=");
	n = strcspn(at, ",");
	if (n == 0 || n >= sizeof(name))
		return false;
	memcpy(name, at, n);
	name[n] = '\0';
	return if_nametoindex(name) == 0;
}

int
pylb_dp_port_info(struct pylb_dp *dp, uint16_t port, struct pylb_port_info *info)
{
	const struct pylb_port_cfg *pc;
	const struct pylb_port *p;
	struct rte_eth_link link;
	struct rte_eth_stats st;
	uint16_t i;

	if (port >= dp->n_ports)
		return pylb_fail(-PYLB_E_NOENT, "no port %u", port);
	p = &dp->ports[port];
	pc = &dp->cfg->ports[port];
	memset(info, 0, sizeof(*info));
	memcpy(info->name, p->name, sizeof(info->name));
	memcpy(info->device, p->device, sizeof(info->device));
	memcpy(info->kernel_iface, p->kernel_iface, sizeof(info->kernel_iface));
	info->mtu = dp->cfg->ports[port].mtu;
	info->ethdev = p->ethdev;
	memcpy(info->mac, pc->mac.addr_bytes, RTE_ETHER_ADDR_LEN);
	if (p->ethdev >= 0 && rte_eth_link_get_nowait((uint16_t)p->ethdev, &link) == 0) {
		info->link_up = link.link_status == RTE_ETH_LINK_UP ||
			(p->started && tap_elsewhere(p));
		info->link_speed_mbps = link.link_speed;
	}
	if (p->ethdev >= 0 && rte_eth_stats_get((uint16_t)p->ethdev, &st) == 0) {
		info->nic_rx_packets = st.ipackets;
		info->nic_tx_packets = st.opackets;
		info->nic_rx_bytes = st.ibytes;
		info->nic_tx_bytes = st.obytes;
		info->nic_rx_missed = st.imissed;
		info->nic_rx_errors = st.ierrors;
		info->nic_tx_errors = st.oerrors;
		info->nic_rx_nombuf = st.rx_nombuf;
	}
	for (i = 0; i < pc->n_addrs4; i++) {
		struct pylb_prefix *a = &info->addrs[info->n_addrs++];

		a->addr.af = 4;
		memcpy(a->addr.ip, &pc->addrs4[i].ip, 4);
		a->len = pc->addrs4[i].prefix_len;
	}
	for (i = 0; i < pc->n_addrs6; i++) {
		struct pylb_prefix *a = &info->addrs[info->n_addrs++];

		a->addr.af = 6;
		memcpy(a->addr.ip, pc->addrs6[i].ip, 16);
		a->len = pc->addrs6[i].prefix_len;
	}
	return 0;
}

uint32_t
pylb_dp_mbufs_available(const struct pylb_dp *dp)
{
	uint32_t n = 0;

	for (int i = 0; i < RTE_MAX_NUMA_NODES; i++)
		if (dp->pools[i] != NULL)
			n += rte_mempool_avail_count(dp->pools[i]);
	return n;
}

int
pylb_dp_mempools(const struct pylb_dp *dp, struct pylb_mempool_info *out, uint32_t max)
{
	uint32_t n = 0;

	for (int i = 0; i < RTE_MAX_NUMA_NODES && n < max; i++) {
		const struct rte_mempool *mp = dp->pools[i];

		if (mp == NULL)
			continue;
		memset(&out[n], 0, sizeof(out[n]));
		snprintf(out[n].name, sizeof(out[n].name), "%s", mp->name);
		out[n].socket = i;
		out[n].size = mp->size;
		out[n].available = rte_mempool_avail_count(mp);
		n++;
	}
	return (int)n;
}

const uint64_t *
pylb_dp_counters(const struct pylb_dp *dp, uint32_t *n_slots)
{
	*n_slots = dp->n_slots;
	return dp->stats[0].c;
}

const char *
pylb_counter_name(uint32_t idx)
{
	static const char *const names[PYLB_CNT_MAX] = {
#define PYLB_X_NAME(e, n) [PYLB_C_##e] = #n,
		PYLB_COUNTERS(PYLB_X_NAME)
#undef PYLB_X_NAME
#define PYLB_X_NAME(e, n) [PYLB_D_##e] = #n,
		PYLB_DROPS(PYLB_X_NAME)
#undef PYLB_X_NAME
	};

	return idx < PYLB_CNT_MAX && names[idx] != NULL ? names[idx] : NULL;
}

struct rte_mbuf *
pylb_dp_mbuf_from_bytes(struct pylb_dp *dp, const void *data, uint32_t len)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(pylb_pool_for(dp, (int)rte_socket_id()));
	char *dst;

	if (m == NULL)
		return NULL;
	dst = len <= UINT16_MAX ? rte_pktmbuf_append(m, (uint16_t)len) : NULL;
	if (dst == NULL) {
		rte_pktmbuf_free(m);
		return NULL;
	}
	memcpy(dst, data, len);
	return m;
}

void
pylb_mbuf_rx_ip_cksum(struct rte_mbuf *m, int good)
{
	m->ol_flags = (m->ol_flags & ~RTE_MBUF_F_RX_IP_CKSUM_MASK) |
		(good ? RTE_MBUF_F_RX_IP_CKSUM_GOOD : RTE_MBUF_F_RX_IP_CKSUM_BAD);
}

uint32_t
pylb_mbuf_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_pkt_len(m);
}

uint32_t
pylb_mbuf_copy_out(const struct rte_mbuf *m, void *buf, uint32_t cap)
{
	uint32_t len = RTE_MIN(rte_pktmbuf_pkt_len(m), cap);
	const void *src = rte_pktmbuf_read(m, 0, len, buf);

	if (src != NULL && src != buf)
		memcpy(buf, src, len);
	return len;
}

void
pylb_mbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

int
pylb_dp_inject(struct pylb_dp *dp, uint16_t port, int kernel,
	       struct rte_mbuf **pkts, uint16_t n)
{
	struct pylb_lcore *lc = pylb_control_lcore(dp);

	if (port >= dp->n_ports)
		return pylb_fail(-PYLB_E_NOENT, "no port %u", port);
	if (n > PYLB_BURST)
		return pylb_fail(-PYLB_E_INVAL, "inject at most %d packets at a time",
				 PYLB_BURST);
	if (kernel && !dp->cfg->ports[port].kernel)
		return pylb_fail(-PYLB_E_INVAL, "port %s has no kernel interface",
				 dp->ports[port].name);
	lc->now = pylb_now(dp);		/* as a worker's poll sets it */
	if (kernel) {
		pylb_kernel_process(lc, dp->cfg, port, pkts, n);
	} else {
		pylb_frag_age(lc, lc->now);
		pylb_host_process(lc, dp->cfg, port, pkts, n);
	}
	return 0;
}

uint16_t
pylb_dp_collect(struct pylb_dp *dp, uint16_t port, int kernel,
		struct rte_mbuf **out, uint16_t max)
{
	struct pylb_lcore *lc = pylb_control_lcore(dp);
	struct pylb_txbuf *b;
	uint16_t n, i, k;

	if (port >= dp->n_ports)
		return 0;
	b = &lc->tx[kernel ? PYLB_TXQ_KERNEL(port) : port];
	n = RTE_MIN(b->n, max);
	for (i = k = 0; i < n; i++) {
		if (!kernel && dp->ports[port].vlan != 0 &&
		    !vlan_tagged(lc, b->pkts[i], dp->ports[port].vlan))
			continue;
		out[k] = b->pkts[i];
		lc->stats->c[PYLB_C_TX_BYTES] += rte_pktmbuf_pkt_len(out[k++]);
	}
	lc->stats->c[PYLB_C_TX_PACKETS] += k;
	memmove(b->pkts, b->pkts + n, (b->n - n) * sizeof(b->pkts[0]));
	b->n = (uint16_t)(b->n - n);
	return k;
}

/* The API: serialised with the telemetry thread's readers. */

static int
addr_del_unlocked(struct pylb_dp *dp, uint16_t port, const struct pylb_ip *ip)
{
	struct pylb_prefix host = { .addr = *ip, .len = ip->af == 6 ? 128 : 32 };
	struct pylb_port_cfg *pc;
	struct pylb_cfg *next;
	uint16_t n, i;
	int rc;

	if (port >= dp->n_ports)
		return pylb_fail(-PYLB_E_NOENT, "no port %u", port);
	pc = &dp->cfg->ports[port];
	n = ip->af == 4 ? pc->n_addrs4 : pc->n_addrs6;
	for (i = 0; i < n; i++)
		if (ip->af == 4 ? memcmp(&pc->addrs4[i].ip, ip->ip, 4) == 0 &&
				  pc->addrs4[i].prefix_len == 32 :
		    memcmp(pc->addrs6[i].ip, ip->ip, 16) == 0 && pc->addrs6[i].prefix_len == 128)
			break;
	if (i == n)
		return pylb_fail(-PYLB_E_NOENT,
			"port %s has no such host address (/32, /128) to remove",
			dp->ports[port].name);
	next = cfg_copy(dp);
	if (next == NULL)
		return pylb_fail(-PYLB_E_NOMEM, "cannot allocate configuration");
	rc = pylb_route_del_special(dp, &host, PYLB_FIB_VAL(PYLB_FIB_LOCAL, port));
	if (rc != 0) {
		rte_free(next);
		return rc;
	}
	pc = &next->ports[port];
	if (ip->af == 4)
		memmove(&pc->addrs4[i], &pc->addrs4[i + 1],
			(size_t)(--pc->n_addrs4 - i) * sizeof(pc->addrs4[0]));
	else
		memmove(&pc->addrs6[i], &pc->addrs6[i + 1],
			(size_t)(--pc->n_addrs6 - i) * sizeof(pc->addrs6[0]));
	cfg_publish(dp, next);
	return 0;
}

int
pylb_dp_addr_del(struct pylb_dp *dp, uint16_t port, const struct pylb_ip *ip)
{
	PYLB_CTL_LOCKED(dp, addr_del_unlocked(dp, port, ip));
}

int
pylb_dp_addr_add(struct pylb_dp *dp, uint16_t port,
		 const struct pylb_prefix *addr)
{
	PYLB_CTL_LOCKED(dp, addr_add_unlocked(dp, port, addr));
}
