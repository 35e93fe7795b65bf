/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * Inspection pools configured (l3/inspect.c sends to their appliances):
 * added, their appliances set (a pool is immutable, replaced whole with
 * RCU), listed, removed; and the workers' flow tables, made with the first
 * pool.
 */
#include <stdio.h>

#include <rte_cycles.h>
#include <rte_malloc.h>

#include "ctl/ctl.h"
#include "l3/inspect.h"

#define POOL_IDLE_DEFAULT	350	/* seconds: AWS GWLB's TCP idle timeout */
#define POOL_IDLE_MAX		(7 * 86400)

static void
inspect_table_free(struct pylb_inspect *in)
{
	if (in != NULL) {
		rte_free(in->buckets);
		rte_free(in->flows);
		rte_free(in->free);
		rte_free(in);
	}
}

/* Each worker's inspected flows: made once, kept until the dataplane goes;
 * every place free. */
static int
inspect_tables(struct pylb_dp *dp)
{
	for (uint32_t i = 0; i < dp->n_slots; i++) {
		struct pylb_lcore *lc = &dp->lcores[i];
		int socket = (int)rte_lcore_to_socket_id(lc->lcore_id);
		struct pylb_inspect *in;

		if (lc->inspect != NULL)
			continue;
		in = rte_zmalloc_socket("inspect", sizeof(*in), RTE_CACHE_LINE_SIZE, socket);
		if (in != NULL) {
			in->buckets = rte_zmalloc_socket("inspect buckets",
				PYLB_INSPECT_BUCKETS * sizeof(*in->buckets), RTE_CACHE_LINE_SIZE,
				socket);
			in->flows = rte_zmalloc_socket("inspect flows",
				PYLB_INSPECT_FLOWS * sizeof(*in->flows), RTE_CACHE_LINE_SIZE, socket);
			in->free = rte_malloc_socket("inspect free",
				PYLB_INSPECT_FLOWS * sizeof(*in->free), 0, socket);
		}
		if (in == NULL || in->buckets == NULL || in->flows == NULL || in->free == NULL) {
			inspect_table_free(in);
			return pylb_fail(-PYLB_E_NOMEM,
				"inspection: cannot allocate %d flows per worker; reserve more hugepages",
				PYLB_INSPECT_FLOWS);
		}
		for (uint32_t f = 0; f < PYLB_INSPECT_FLOWS; f++)
			in->free[f] = PYLB_INSPECT_FLOWS - 1 - f;
		in->n_free = PYLB_INSPECT_FLOWS;
		__atomic_store_n(&lc->inspect, in, __ATOMIC_RELEASE);
	}
	return 0;
}

void
pylb_pool_free_all(struct pylb_dp *dp)
{
	for (int i = 0; i < PYLB_MAX_POOLS; i++) {
		rte_free(dp->inspect_pools[i]);
		dp->inspect_pools[i] = NULL;
	}
	for (uint32_t i = 0; dp->lcores != NULL && i < dp->n_slots; i++) {
		inspect_table_free(dp->lcores[i].inspect);
		dp->lcores[i].inspect = NULL;
	}
}

static int
pool_named(struct pylb_dp *dp, const char *name)
{
	int slot = pylb_pool_find(dp, name);

	if (slot < 0)
		return pylb_fail(-PYLB_E_NOENT, "no inspection pool %.*s", PYLB_NAME_LEN, name);
	return slot;
}

static int
pool_new(struct pylb_dp *dp, struct pylb_pool **out, const struct pylb_pool_conf *conf,
	 uint32_t birth, const struct pylb_backend *b, uint32_t n)
{
	int rc = pylb_balance_new((void **)out, "pool", sizeof(**out),
				  offsetof(struct pylb_pool, bal), b, n, conf->table_size,
				  dp->n_slots);

	if (rc != 0)
		return rc;
	(*out)->conf = *conf;
	(*out)->birth = birth;
	(*out)->serial = ++dp->pool_serial;
	(*out)->idle_tsc = (uint64_t)conf->idle_timeout * rte_get_timer_hz();
	return 0;
}

/* conf as a pool takes it (defaults filled in), or an error. */
static int
pool_conf_check(const struct pylb_pool_conf *conf, struct pylb_pool_conf *out)
{
	struct pylb_pool_conf c = *conf;

	c.name[PYLB_NAME_LEN - 1] = '\0';
	if (c.name[0] == '\0')
		return pylb_fail(-PYLB_E_INVAL, "an inspection pool needs a name");
	if (c.stickiness > PYLB_STICK_2 || c.failover > PYLB_FAILOVER_STAY)
		return pylb_fail(-PYLB_E_INVAL, "pool %s: unknown stickiness %u or failover %u",
				 c.name, c.stickiness, c.failover);
	if (c.table_size == 0)
		c.table_size = PYLB_MAGLEV_DEFAULT;
	if (!pylb_is_prime(c.table_size) || c.table_size > PYLB_MAGLEV_MAX)
		return pylb_fail(-PYLB_E_INVAL,
			"pool %s: lookup table size %u must be a prime no larger than %u (e.g. 65537)",
			c.name, c.table_size, PYLB_MAGLEV_MAX);
	if (c.idle_timeout == 0)
		c.idle_timeout = POOL_IDLE_DEFAULT;
	if (c.idle_timeout > POOL_IDLE_MAX)
		return pylb_fail(-PYLB_E_INVAL, "pool %s: idle timeout %u s is above %d s",
				 c.name, c.idle_timeout, POOL_IDLE_MAX);
	*out = c;
	return 0;
}

static int
pool_add_unlocked(struct pylb_dp *dp, const struct pylb_pool_conf *conf)
{
	struct pylb_pool_conf c;
	struct pylb_pool *p;
	int slot, rc = pool_conf_check(conf, &c);

	if (rc != 0)
		return rc;
	if (pylb_pool_find(dp, c.name) >= 0)
		return pylb_fail(-PYLB_E_EXIST, "inspection pool %s already exists", c.name);
	for (slot = 0; slot < PYLB_MAX_POOLS && dp->inspect_pools[slot] != NULL; slot++)
		;
	if (slot == PYLB_MAX_POOLS)
		return pylb_fail(-PYLB_E_FULL, "at most %d inspection pools", PYLB_MAX_POOLS);
	rc = inspect_tables(dp);
	if (rc != 0)
		return rc;
	rc = pool_new(dp, &p, &c, dp->pool_serial + 1, NULL, 0);
	if (rc != 0)
		return rc;
	__atomic_store_n(&dp->inspect_pools[slot], p, __ATOMIC_RELEASE);
	dp->n_pools++;
	return 0;
}

static int
pool_del_unlocked(struct pylb_dp *dp, const char *name)
{
	int slot = pool_named(dp, name);

	if (slot < 0)
		return slot;
	if (dp->pool_refs[slot] != 0)
		return pylb_fail(-PYLB_E_STATE,
			"inspection pool %s inspects %u routes or VIPs; unmark them first",
			dp->inspect_pools[slot]->conf.name, dp->pool_refs[slot]);
	dp->n_pools--;
	pylb_rcu_replace(dp, (void **)&dp->inspect_pools[slot], NULL);
	return 0;
}

static int
pool_set_unlocked(struct pylb_dp *dp, const struct pylb_pool_conf *conf,
		  const struct pylb_backend *b, uint32_t n)
{
	struct pylb_pool_conf c;
	int slot = pool_named(dp, conf->name), rc;
	const struct pylb_pool *cur;
	struct pylb_pool *next;

	if (slot < 0)
		return slot;
	rc = pool_conf_check(conf, &c);
	if (rc != 0)
		return rc;
	cur = dp->inspect_pools[slot];
	if (n > PYLB_MAX_APPLIANCES)
		return pylb_fail(-PYLB_E_FULL, "pool %s: %u appliances, at most %d",
				 cur->conf.name, n, PYLB_MAX_APPLIANCES);
	for (uint32_t i = 0; i < n; i++) {
		static const uint8_t zero[16];

		if ((b[i].addr.af != 4 && b[i].addr.af != 6) ||
		    memcmp(b[i].addr.ip, zero, 16) == 0)
			return pylb_fail(-PYLB_E_INVAL, "pool %s: appliance %u has no address",
					 cur->conf.name, i);
		if (b[i].weight > 65535)
			return pylb_fail(-PYLB_E_INVAL,
				"pool %s: appliance weight %u is above 65535", cur->conf.name,
				b[i].weight);
		for (uint32_t j = 0; j < i; j++)
			if (memcmp(&b[i].addr, &b[j].addr, sizeof(b[i].addr)) == 0)
				return pylb_fail(-PYLB_E_EXIST,
					"pool %s: appliance listed twice", cur->conf.name);
	}
	rc = pool_new(dp, &next, &c, cur->birth, b, n);
	if (rc != 0)
		return rc;
	pylb_rcu_replace(dp, (void **)&dp->inspect_pools[slot], next);
	return 0;
}

static int
pool_get_unlocked(struct pylb_dp *dp, const char *name, struct pylb_pool_conf *conf,
		  struct pylb_backend *b, uint32_t max_b, uint32_t *n_b,
		  struct pylb_pool_stats *stats)
{
	int slot = pool_named(dp, name);
	const struct pylb_pool *p;

	if (slot < 0)
		return slot;
	p = dp->inspect_pools[slot];
	*conf = p->conf;
	*n_b = p->bal.n_backends;
	memcpy(b, p->bal.backends, RTE_MIN(max_b, p->bal.n_backends) * sizeof(*b));
	if (stats != NULL) {
		memset(stats, 0, sizeof(*stats));
		for (uint32_t i = 0; i < dp->n_slots; i++) {
			const struct pylb_inspect *in = dp->lcores[i].inspect;

			if (in != NULL)
				stats->flows += __atomic_load_n(&in->n_flows[slot],
								__ATOMIC_RELAXED);
		}
	}
	return 0;
}

static int
pool_list_unlocked(struct pylb_dp *dp, char (*names)[PYLB_NAME_LEN], uint32_t max)
{
	uint32_t n = 0;

	for (int i = 0; i < PYLB_MAX_POOLS && n < max; i++)
		if (dp->inspect_pools[i] != NULL)
			memcpy(names[n++], dp->inspect_pools[i]->conf.name, PYLB_NAME_LEN);
	return (int)n;
}

/* What the workers do with a flow's packet (Trace): its remembered
 * appliance on whichever worker remembers it (read without locks), else the
 * table's; inspect_decide, as the fast path. */
static int
pool_pick_unlocked(struct pylb_dp *dp, const char *name, uint8_t proto,
		   const struct pylb_ip *src, uint16_t sport, const struct pylb_ip *dst,
		   uint16_t dport, struct pylb_ip *out, uint32_t *hash)
{
	int slot = pool_named(dp, name);
	const struct pylb_inspect_flow *fl = NULL;
	struct inspect_flow_of f = {
		.af = src->af, .proto = proto, .src = src->ip, .dst = dst->ip,
		.sport = rte_cpu_to_be_16(sport), .dport = rte_cpu_to_be_16(dport),
	};
	struct pylb_inspect_flow copy;
	const struct pylb_pool *p;
	struct pylb_inspect_key k;
	enum inspect_choice choice;
	uint16_t bidx = 0;
	uint32_t h;

	if (slot < 0)
		return slot;
	if (src->af != dst->af)
		return pylb_fail(-PYLB_E_INVAL, "a flow's addresses are of one family");
	p = dp->inspect_pools[slot];
	h = *hash = inspect_key(dp->conf.hash_key, &f, (uint16_t)slot, p->conf.stickiness, &k);
	for (uint32_t i = 0; i < dp->n_slots && fl == NULL; i++) {
		const struct pylb_inspect *in = dp->lcores[i].inspect;
		int32_t pos = in != NULL ? inspect_find(in, &k, h) : -1;

		if (pos >= 0) {
			copy = in->flows[pos];
			fl = &copy;
		}
	}
	choice = inspect_decide(p, fl, h, &bidx);
	if (choice == INSPECT_KEEP || choice == INSPECT_STAY)
		*out = fl->app;
	else if (choice != INSPECT_NONE)
		*out = p->bal.backends[bidx].addr;
	return choice;
}

/* The API: serialised with the telemetry thread's readers. */

int
pylb_dp_pool_add(struct pylb_dp *dp, const struct pylb_pool_conf *conf)
{
	PYLB_CTL_LOCKED(dp, pool_add_unlocked(dp, conf));
}

int
pylb_dp_pool_del(struct pylb_dp *dp, const char *name)
{
	PYLB_CTL_LOCKED(dp, pool_del_unlocked(dp, name));
}

int
pylb_dp_pool_set(struct pylb_dp *dp, const struct pylb_pool_conf *conf,
		 const struct pylb_backend *b, uint32_t n)
{
	PYLB_CTL_LOCKED(dp, pool_set_unlocked(dp, conf, b, n));
}

int
pylb_dp_pool_get(struct pylb_dp *dp, const char *name, struct pylb_pool_conf *conf,
		 struct pylb_backend *b, uint32_t max_b, uint32_t *n_b,
		 struct pylb_pool_stats *stats)
{
	PYLB_CTL_LOCKED(dp, pool_get_unlocked(dp, name, conf, b, max_b, n_b, stats));
}

int
pylb_dp_pool_list(struct pylb_dp *dp, char (*names)[PYLB_NAME_LEN], uint32_t max)
{
	PYLB_CTL_LOCKED(dp, pool_list_unlocked(dp, names, max));
}

int
pylb_dp_pool_pick(struct pylb_dp *dp, const char *name, uint8_t proto,
		  const struct pylb_ip *src, uint16_t sport, const struct pylb_ip *dst,
		  uint16_t dport, struct pylb_ip *out, uint32_t *hash)
{
	PYLB_CTL_LOCKED(dp, pool_pick_unlocked(dp, name, proto, src, sport, dst, dport, out,
					       hash));
}
