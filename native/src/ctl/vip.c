/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * L3 VIPs configured (l3/vip.c forwards to them): added, their backends
 * set (a VIP is immutable, replaced whole with RCU), listed, removed; and
 * the outer source an encapsulation is bound to (VIPs, tunnel services).
 */
#include <stddef.h>
#include <stdio.h>

#include <rte_malloc.h>

#include "ctl/ctl.h"

int
pylb_encap_src_bind(struct pylb_encap_src *out, const struct pylb_prefix *p, const char *what)
{
	uint32_t host;
	int rc;

	memset(out, 0, sizeof(*out));
	if (p->addr.af == 0)
		return 0;
	rc = pylb_route_check_prefix(p, what);
	if (rc != 0)
		return rc;
	if (p->len == 0)
		return pylb_fail(-PYLB_E_INVAL, "%s: an outer source prefix of length 0", what);
	host = (p->addr.af == 4 ? 32u : 128u) - p->len;
	out->base = p->addr;
	out->vary = rte_cpu_to_be_32(host >= 32 ? UINT32_MAX : (1u << host) - 1);
	return 0;
}

static int
vip_find(struct pylb_dp *dp, const struct pylb_prefix *p)
{
	for (int i = 0; i < PYLB_MAX_VIPS; i++) {
		const struct pylb_vip *v = dp->vips[i];

		if (v != NULL && v->conf.prefix.len == p->len &&
		    v->conf.prefix.addr.af == p->addr.af &&
		    memcmp(v->conf.prefix.addr.ip, p->addr.ip, 16) == 0)
			return i;
	}
	return -1;
}

static int
vip_new(struct pylb_dp *dp, struct pylb_vip **out, const struct pylb_vip_conf *conf,
	const struct pylb_backend *b, uint32_t n)
{
	int rc = pylb_balance_new((void **)out, "VIP", sizeof(**out),
				  offsetof(struct pylb_vip, bal), b, n, conf->table_size,
				  dp->n_slots);

	int slot = conf->inspect[0] != '\0' ? pylb_pool_find(dp, conf->inspect) : -1;

	if (rc == 0) {
		(*out)->conf = *conf;
		(*out)->out = pylb_vip_outs[conf->method];
		(*out)->pool = (uint16_t)(slot + 1);
		rc = pylb_encap_src_bind(&(*out)->src, &conf->source, "VIP");
		if (rc == 0 && conf->inspect[0] != '\0' && slot < 0)
			rc = pylb_fail(-PYLB_E_NOENT, "VIP: no inspection pool %.*s",
				       PYLB_NAME_LEN, conf->inspect);
		if (rc != 0)
			rte_free(*out);
	}
	return rc;
}

static int
vip_add_unlocked(struct pylb_dp *dp, const struct pylb_vip_conf *conf)
{
	struct pylb_vip_conf c = *conf;
	struct pylb_vip *v;
	char name[PYLB_ADDR_STRLEN];
	int id, rc;

	rc = pylb_route_check_prefix(&c.prefix, "VIP");
	if (rc != 0)
		return rc;
	pylb_fmt_prefix(&c.prefix, name, sizeof(name));
	if (c.method > PYLB_FWD_GUE)
		return pylb_fail(-PYLB_E_INVAL, "VIP %s: unknown forwarding method %u",
				 name, c.method);
	if (c.table_size == 0)
		c.table_size = PYLB_MAGLEV_DEFAULT;
	if (vip_find(dp, &c.prefix) >= 0)
		return pylb_fail(-PYLB_E_EXIST, "VIP %s already exists", name);
	for (id = 0; id < PYLB_MAX_VIPS && dp->vips[id] != NULL; id++)
		;
	if (id == PYLB_MAX_VIPS)
		return pylb_fail(-PYLB_E_FULL, "at most %d VIPs", PYLB_MAX_VIPS);
	if (!pylb_is_prime(c.table_size) || c.table_size > PYLB_MAGLEV_MAX)
		return pylb_fail(-PYLB_E_INVAL,
			"VIP %s: lookup table size %u must be a prime no larger than %u (e.g. 65537)",
			name, c.table_size, PYLB_MAGLEV_MAX);
	rc = vip_new(dp, &v, &c, NULL, 0);
	if (rc != 0)
		return rc;
	__atomic_store_n(&dp->vips[id], v, __ATOMIC_RELEASE);
	rc = pylb_route_add_special(dp, &c.prefix, PYLB_FIB_VAL(PYLB_FIB_VIP, id));
	if (rc != 0) {
		dp->vips[id] = NULL;
		rte_free(v);
		return rc;
	}
	if (v->pool != 0)
		dp->pool_refs[v->pool - 1]++;
	return 0;
}

static int
vip_del_unlocked(struct pylb_dp *dp, const struct pylb_prefix *prefix)
{
	char name[PYLB_ADDR_STRLEN];
	int id = vip_find(dp, prefix);

	if (id < 0) {
		pylb_fmt_prefix(prefix, name, sizeof(name));
		return pylb_fail(-PYLB_E_NOENT, "no VIP %s", name);
	}
	pylb_route_del_special(dp, prefix, PYLB_FIB_VAL(PYLB_FIB_VIP, id));
	if (dp->vips[id]->pool != 0)
		dp->pool_refs[dp->vips[id]->pool - 1]--;
	pylb_rcu_replace(dp, (void **)&dp->vips[id], NULL);
	return 0;
}

static int
vip_backends_set_unlocked(struct pylb_dp *dp, const struct pylb_prefix *prefix,
			 const struct pylb_backend *b, uint32_t n)
{
	const struct pylb_vip *cur;
	struct pylb_vip *next;
	uint32_t i, j;
	char name[PYLB_ADDR_STRLEN];
	int id, rc;

	pylb_fmt_prefix(prefix, name, sizeof(name));
	id = vip_find(dp, prefix);
	if (id < 0)
		return pylb_fail(-PYLB_E_NOENT, "no VIP %s", name);
	cur = dp->vips[id];
	if (n > PYLB_MAX_BACKENDS)
		return pylb_fail(-PYLB_E_FULL, "VIP %s: %u backends, at most %d",
				 name, n, PYLB_MAX_BACKENDS);
	for (i = 0; i < n; i++) {
		static const uint8_t zero[16];

		if ((b[i].addr.af != 4 && b[i].addr.af != 6) ||
		    memcmp(b[i].addr.ip, zero, 16) == 0)
			return pylb_fail(-PYLB_E_INVAL,
				"VIP %s: backend %u has no address", name, i);
		if (b[i].weight > 65535)
			return pylb_fail(-PYLB_E_INVAL,
				"VIP %s: backend weight %u is above 65535", name,
				b[i].weight);
		if (cur->conf.method == PYLB_FWD_DR) {
			struct pylb_route r;

			if (b[i].addr.af != prefix->addr.af)
				return pylb_fail(-PYLB_E_INVAL,
					"VIP %s: direct routing needs backends of the VIP's address family",
					name);
			if (pylb_dp_route_lookup(dp, &b[i].addr, &r) != 0 ||
			    r.kind != PYLB_ROUTE_CONNECTED)
				return pylb_fail(-PYLB_E_INVAL,
					"VIP %s: backend %u is on no connected network; direct routing sends to the backend's MAC, so give a port an address on its network (or use ipip/gre)",
					name, i);
		}
		for (j = 0; j < i; j++)
			if (memcmp(&b[i].addr, &b[j].addr, sizeof(b[i].addr)) == 0)
				return pylb_fail(-PYLB_E_EXIST,
					"VIP %s: backend listed twice", name);
	}
	rc = vip_new(dp, &next, &cur->conf, b, n);
	if (rc != 0)
		return rc;
	pylb_rcu_replace(dp, (void **)&dp->vips[id], next);
	return 0;
}

static int
vip_get_unlocked(struct pylb_dp *dp, const struct pylb_prefix *prefix,
		struct pylb_vip_conf *conf, struct pylb_backend *b,
		uint32_t max_b, uint32_t *n_b)
{
	int id = vip_find(dp, prefix);
	const struct pylb_vip *v;
	char name[PYLB_ADDR_STRLEN];

	if (id < 0) {
		pylb_fmt_prefix(prefix, name, sizeof(name));
		return pylb_fail(-PYLB_E_NOENT, "no VIP %s", name);
	}
	v = dp->vips[id];
	*conf = v->conf;
	*n_b = v->bal.n_backends;
	memcpy(b, v->bal.backends, RTE_MIN(max_b, v->bal.n_backends) * sizeof(*b));
	return 0;
}

static int
vip_list_unlocked(struct pylb_dp *dp, struct pylb_prefix *out, uint32_t max)
{
	uint32_t n = 0;

	for (int i = 0; i < PYLB_MAX_VIPS && n < max; i++)
		if (dp->vips[i] != NULL)
			out[n++] = dp->vips[i]->conf.prefix;
	return (int)n;
}

static int
vip_pick_unlocked(struct pylb_dp *dp, const struct pylb_prefix *prefix,
		 const struct pylb_ip *src, const struct pylb_ip *dst)
{
	int id = vip_find(dp, prefix);
	const struct pylb_vip *v;

	if (id < 0 || dp->vips[id]->bal.table == NULL)
		return -1;
	v = dp->vips[id];
	return (int)bal_pick(&v->bal, pylb_flow_hash(dp, src, dst));
}

void
pylb_vip_free_all(struct pylb_dp *dp)
{
	for (int i = 0; i < PYLB_MAX_VIPS; i++) {
		rte_free(dp->vips[i]);
		dp->vips[i] = NULL;
	}
}

/* The API: serialised with the telemetry thread's readers. */

int
pylb_dp_vip_add(struct pylb_dp *dp, const struct pylb_vip_conf *conf)
{
	PYLB_CTL_LOCKED(dp, vip_add_unlocked(dp, conf));
}

int
pylb_dp_vip_del(struct pylb_dp *dp, const struct pylb_prefix *prefix)
{
	PYLB_CTL_LOCKED(dp, vip_del_unlocked(dp, prefix));
}

int
pylb_dp_vip_backends_set(struct pylb_dp *dp, const struct pylb_prefix *prefix,
			 const struct pylb_backend *b, uint32_t n)
{
	PYLB_CTL_LOCKED(dp, vip_backends_set_unlocked(dp, prefix, b, n));
}

int
pylb_dp_vip_get(struct pylb_dp *dp, const struct pylb_prefix *prefix,
		struct pylb_vip_conf *conf, struct pylb_backend *b,
		uint32_t max_b, uint32_t *n_b)
{
	PYLB_CTL_LOCKED(dp, vip_get_unlocked(dp, prefix, conf, b, max_b, n_b));
}

static int
vip_fingerprint_unlocked(struct pylb_dp *dp, const struct pylb_prefix *prefix, uint64_t *out)
{
	int id = vip_find(dp, prefix);
	char name[PYLB_ADDR_STRLEN];

	if (id < 0) {
		pylb_fmt_prefix(prefix, name, sizeof(name));
		return pylb_fail(-PYLB_E_NOENT, "no VIP %s", name);
	}
	*out = pylb_balance_fingerprint(&dp->vips[id]->bal, dp->conf.hash_key);
	return 0;
}

int
pylb_dp_vip_fingerprint(struct pylb_dp *dp, const struct pylb_prefix *prefix, uint64_t *out)
{
	PYLB_CTL_LOCKED(dp, vip_fingerprint_unlocked(dp, prefix, out));
}

int
pylb_dp_vip_list(struct pylb_dp *dp, struct pylb_prefix *out, uint32_t max)
{
	PYLB_CTL_LOCKED(dp, vip_list_unlocked(dp, out, max));
}

int
pylb_dp_vip_pick(struct pylb_dp *dp, const struct pylb_prefix *prefix,
		 const struct pylb_ip *src, const struct pylb_ip *dst)
{
	PYLB_CTL_LOCKED(dp, vip_pick_unlocked(dp, prefix, src, dst));
}
