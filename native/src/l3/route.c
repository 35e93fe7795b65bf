/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * Routes: one DPDK FIB per family (DIR24-8 for IPv4, a trie for IPv6) whose
 * 16-bit values name a next-hop group, a VIP or a local address. The FIBs
 * are updated in place by the control side while workers look up; a next
 * hop or group is reused only after an RCU grace period, so a worker that
 * read an old value still finds what it pointed at.
 */
#include <stdio.h>

#include <rte_errno.h>
#include <rte_fib.h>
#include <rte_fib6.h>
#include <rte_malloc.h>
#include <rte_rib.h>
#include <rte_rib6.h>
#include <rte_vect.h>

#include "l3/fib.h"

static uint32_t fib_seq;

/* The FIBs' bulk lookups in AVX-512 where the CPU has it (16 addresses a
 * step instead of one: the pipeline looks up a burst's destinations and
 * sources in bulk). DPDK picks those only when the largest SIMD width
 * allowed is 512 bits, which it is not by default (so that other
 * libraries keep their narrower code): allowed for the choice alone, then
 * put back. An EAL forced to a narrower width (--force-max-simd-bitwidth)
 * refuses, and the scalar lookups stay; so do CPUs without AVX-512.
 * Either fib may be NULL. */
void
pylb_fib_vectorize(struct rte_fib *fib4, struct rte_fib6 *fib6)
{
	uint16_t was = rte_vect_get_max_simd_bitwidth();

	if (was >= RTE_VECT_SIMD_512 || rte_vect_set_max_simd_bitwidth(RTE_VECT_SIMD_512) == 0) {
		if (fib4 != NULL)
			(void)rte_fib_select_lookup(fib4, RTE_FIB_LOOKUP_DIR24_8_VECTOR_AVX512);
		if (fib6 != NULL)
			(void)rte_fib6_select_lookup(fib6, RTE_FIB6_LOOKUP_TRIE_VECTOR_AVX512);
		(void)rte_vect_set_max_simd_bitwidth(was);
	}
}

int
pylb_route_init(struct pylb_dp *dp)
{
	char name[64];
	uint32_t max = dp->conf.max_routes ? dp->conf.max_routes : PYLB_ROUTES_DEFAULT;
	struct rte_fib_conf c4 = {
		.type = RTE_FIB_DIR24_8,
		.default_nh = 0,
		.max_routes = (int)max,
		.dir24_8 = {
			.nh_sz = RTE_FIB_DIR24_8_2B,
			.num_tbl8 = dp->conf.fib_tbl8 ? dp->conf.fib_tbl8 : PYLB_TBL8_DEFAULT,
		},
	};
	struct rte_fib6_conf c6 = {
		.type = RTE_FIB6_TRIE,
		.default_nh = 0,
		.max_routes = (int)max,
		.trie = {
			.nh_sz = RTE_FIB6_TRIE_2B,
			.num_tbl8 = PYLB_TBL8_6_DEFAULT,
		},
	};

	if (c4.dir24_8.num_tbl8 > PYLB_TBL8_MAX)
		return pylb_fail(-PYLB_E_INVAL, "fib_tbl8 %u is above %u",
				 c4.dir24_8.num_tbl8, PYLB_TBL8_MAX);
	fib_seq++;
	snprintf(name, sizeof(name), "pylb_f4_%u", fib_seq);
	dp->fib4 = rte_fib_create(name, (int)rte_socket_id(), &c4);
	if (dp->fib4 == NULL)
		return pylb_fail(-PYLB_E_NOMEM,
			"cannot create the IPv4 FIB for %u routes (%s); reserve more hugepages or lower max_routes",
			max, rte_strerror(rte_errno));
	snprintf(name, sizeof(name), "pylb_f6_%u", fib_seq);
	dp->fib6 = rte_fib6_create(name, (int)rte_socket_id(), &c6);
	if (dp->fib6 == NULL)
		return pylb_fail(-PYLB_E_NOMEM,
			"cannot create the IPv6 FIB for %u routes (%s); reserve more hugepages or lower max_routes",
			max, rte_strerror(rte_errno));
	pylb_fib_vectorize(dp->fib4, dp->fib6);
	dp->nh = rte_zmalloc("pylb_nh", PYLB_MAX_NEXTHOPS * sizeof(*dp->nh),
			     RTE_CACHE_LINE_SIZE);
	dp->nhg = rte_zmalloc("pylb_nhg", (PYLB_MAX_GROUPS + 1) * sizeof(*dp->nhg),
			      RTE_CACHE_LINE_SIZE);
	dp->nh_refs = rte_zmalloc("pylb_nh_refs",
				  PYLB_MAX_NEXTHOPS * sizeof(uint32_t), 0);
	dp->nhg_refs = rte_zmalloc("pylb_nhg_refs",
				   (PYLB_MAX_GROUPS + 1) * sizeof(uint32_t), 0);
	if (dp->nh == NULL || dp->nhg == NULL || dp->nh_refs == NULL ||
	    dp->nhg_refs == NULL)
		return pylb_fail(-PYLB_E_NOMEM, "cannot allocate the next-hop tables");
	return 0;
}

void
pylb_route_free(struct pylb_dp *dp)
{
	rte_fib_free(dp->fib4);
	rte_fib6_free(dp->fib6);
	rte_free(dp->nh);
	rte_free(dp->nhg);
	rte_free(dp->nh_refs);
	rte_free(dp->nhg_refs);
}

int
pylb_route_check_prefix(const struct pylb_prefix *p, const char *what)
{
	static const uint8_t zero[16];
	uint8_t max = p->addr.af == 4 ? 32 : 128;
	uint8_t masked[16];
	char buf[PYLB_ADDR_STRLEN];

	if (p->addr.af != 4 && p->addr.af != 6)
		return pylb_fail(-PYLB_E_INVAL, "%s: address family must be 4 or 6",
				 what);
	if (p->len > max)
		return pylb_fail(-PYLB_E_INVAL, "%s: prefix length %u is above %u",
				 what, p->len, max);
	memcpy(masked, p->addr.ip, 16);
	for (uint32_t bit = p->len; bit < 128; bit++)
		masked[bit / 8] &= (uint8_t)~(0x80 >> (bit % 8));
	if (memcmp(masked, p->addr.ip, 16) != 0) {
		pylb_fmt_ip(&p->addr, buf, sizeof(buf));
		return pylb_fail(-PYLB_E_INVAL,
			"%s: %s/%u has host bits set; give the network address",
			what, buf, p->len);
	}
	if (p->addr.af == 4 && memcmp(p->addr.ip + 4, zero, 12) != 0)
		return pylb_fail(-PYLB_E_INVAL, "%s: IPv4 address is longer than 4 bytes",
				 what);
	return 0;
}

static inline uint32_t
host4(const struct pylb_ip *a)
{
	uint32_t v;

	memcpy(&v, a->ip, 4);
	return rte_be_to_cpu_32(v);
}

/* The FIB value stored at exactly this prefix; 0 if none. */
static uint64_t
fib_exact(struct pylb_dp *dp, const struct pylb_prefix *p)
{
	uint64_t nh = 0;

	if (p->addr.af == 4) {
		struct rte_rib_node *n = rte_rib_lookup_exact(
			rte_fib_get_rib(dp->fib4), host4(&p->addr), p->len);

		if (n != NULL)
			rte_rib_get_nh(n, &nh);
	} else {
		struct rte_rib6_node *n = rte_rib6_lookup_exact(
			rte_fib6_get_rib(dp->fib6), p->addr.ip, p->len);

		if (n != NULL)
			rte_rib6_get_nh(n, &nh);
	}
	return nh;
}

static int
fib_set(struct pylb_dp *dp, const struct pylb_prefix *p, uint64_t val)
{
	int rc = p->addr.af == 4 ?
		rte_fib_add(dp->fib4, host4(&p->addr), p->len, val) :
		rte_fib6_add(dp->fib6, p->addr.ip, p->len, val);

	if (rc != 0)
		return pylb_fail(-PYLB_E_FULL,
			"the IPv%u FIB is full (%s); raise max_routes or the tbl8 count",
			p->addr.af, rte_strerror(-rc));
	return 0;
}

static void
fib_unset(struct pylb_dp *dp, const struct pylb_prefix *p)
{
	if (p->addr.af == 4)
		rte_fib_delete(dp->fib4, host4(&p->addr), p->len);
	else
		rte_fib6_delete(dp->fib6, p->addr.ip, p->len);
}

static uint16_t
nh_get(struct pylb_dp *dp, const struct pylb_nexthop *x, uint8_t af)
{
	uint8_t connected = x->gw.af == 0;
	uint16_t i, free_id = 0;
	struct pylb_nh *nh;

	for (i = 1; i < PYLB_MAX_NEXTHOPS; i++) {
		nh = &dp->nh[i];
		if (dp->nh_refs[i] == 0) {
			if (free_id == 0)
				free_id = i;
			continue;
		}
		if (nh->port == x->port && nh->af == af &&
		    nh->connected == connected &&
		    (connected || memcmp(nh->gw, x->gw.ip, 16) == 0)) {
			dp->nh_refs[i]++;
			return i;
		}
	}
	if (free_id == 0)
		return 0;
	nh = &dp->nh[free_id];
	memset(nh, 0, sizeof(*nh));
	nh->port = x->port;
	nh->af = af;
	nh->connected = connected;
	if (!connected) {
		struct pylb_neigh_key k = { .port = x->port, .af = af };
		void *data;

		memcpy(nh->gw, x->gw.ip, 16);
		memcpy(k.ip, x->gw.ip, 16);
		if (rte_hash_lookup_data(dp->neigh_hash, &k, &data) >= 0)
			nh->mac = (uint64_t)(uintptr_t)data;
	}
	dp->nh_refs[free_id] = 1;
	return free_id;
}

static void
nh_put(struct pylb_dp *dp, uint16_t id)
{
	if (id != 0 && dp->nh_refs[id] > 0)
		dp->nh_refs[id]--;
}

/* Does group `id` hold exactly the next hops of r (and its pool)? */
static bool
group_is(const struct pylb_dp *dp, uint16_t id, const struct pylb_route *r, uint16_t pool)
{
	const struct pylb_nhg *g = &dp->nhg[id];

	if (dp->nhg_refs[id] == 0 || g->n != r->n_nh || g->pool != pool)
		return false;
	for (uint16_t i = 0; i < g->n; i++) {
		const struct pylb_nh *nh = &dp->nh[g->nh[i]];
		const struct pylb_nexthop *x = &r->nh[i];

		if (nh->port != x->port || nh->af != r->dst.addr.af ||
		    nh->connected != (x->gw.af == 0) ||
		    (!nh->connected && memcmp(nh->gw, x->gw.ip, 16) != 0))
			return false;
	}
	return true;
}

/* Find or make the group for these next hops. */
static uint16_t
nhg_get(struct pylb_dp *dp, const struct pylb_route *r, uint16_t pool)
{
	struct pylb_nhg g = { .n = r->n_nh, .pool = pool };
	uint16_t id, free_id = 0;

	/* Bulk loads use one group over and over: try the last one first. */
	if (dp->nhg_last != 0 && group_is(dp, dp->nhg_last, r, pool)) {
		dp->nhg_refs[dp->nhg_last]++;
		return dp->nhg_last;
	}
	for (id = 1; id <= PYLB_MAX_GROUPS; id++) {
		if (dp->nhg_refs[id] == 0) {
			if (free_id == 0)
				free_id = id;
		} else if (group_is(dp, id, r, pool)) {
			dp->nhg_refs[id]++;
			dp->nhg_last = id;
			return id;
		}
	}
	if (free_id == 0)
		return 0;
	g.connected = r->n_nh != 0;
	for (uint16_t i = 0; i < r->n_nh; i++) {
		g.nh[i] = nh_get(dp, &r->nh[i], r->dst.addr.af);
		if (g.nh[i] == 0) {
			while (i-- > 0)
				nh_put(dp, g.nh[i]);
			return 0;
		}
		g.ports |= 1u << r->nh[i].port;
		g.connected &= r->nh[i].gw.af == 0;
	}
	dp->nhg[free_id] = g;
	dp->nhg_refs[free_id] = 1;
	dp->nhg_last = free_id;
	return free_id;
}

static void
nhg_put(struct pylb_dp *dp, uint16_t id)
{
	if (--dp->nhg_refs[id] != 0)
		return;
	/* A worker may still hold the old FIB value: wait before reuse. */
	pylb_rcu_wait(dp);
	for (uint16_t i = 0; i < dp->nhg[id].n; i++)
		nh_put(dp, dp->nhg[id].nh[i]);
}

static bool
connected_on(const struct pylb_dp *dp, uint16_t port, const struct pylb_ip *gw)
{
	const struct pylb_port_cfg *pc = &dp->cfg->ports[port];
	uint32_t v;

	if (gw->af == 4) {
		memcpy(&v, gw->ip, 4);
		return port_connected4(pc, v) && !port_owns4(pc, v);
	}
	if (ip6_is_link_local(gw->ip))
		return true;
	for (uint16_t i = 0; i < pc->n_addrs6; i++)
		if (prefix6_match(pc->addrs6[i].ip, gw->ip, pc->addrs6[i].prefix_len))
			return !port_owns6(pc, gw->ip);
	return false;
}

/* Point r->dst at a next-hop group for r's next hops (new or shared),
 * inspected first if r names a pool. */
static int
group_install(struct pylb_dp *dp, const struct pylb_route *r)
{
	int slot = r->inspect[0] != '\0' ? pylb_pool_find(dp, r->inspect) : -1;
	uint16_t g;
	int rc;

	if (r->inspect[0] != '\0' && slot < 0)
		return pylb_fail(-PYLB_E_NOENT, "no inspection pool %.*s", PYLB_NAME_LEN,
				 r->inspect);
	g = nhg_get(dp, r, (uint16_t)(slot + 1));
	if (g == 0)
		return pylb_fail(-PYLB_E_FULL,
			"out of next hops (%d) or next-hop groups (%d)",
			PYLB_MAX_NEXTHOPS - 1, PYLB_MAX_GROUPS);
	rc = fib_set(dp, &r->dst, PYLB_FIB_VAL(PYLB_FIB_GROUP, g));
	if (rc != 0) {
		nhg_put(dp, g);
		return rc;
	}
	if (slot >= 0)
		dp->pool_refs[slot]++;
	return 0;
}

/* A route's FIB value v goes: its group, and its pool's reference. */
static void
group_release(struct pylb_dp *dp, uint64_t v)
{
	uint16_t g = (uint16_t)fib_group((uint32_t)v);

	if (dp->nhg[g].pool != 0)
		dp->pool_refs[dp->nhg[g].pool - 1]--;
	nhg_put(dp, g);		/* after a grace period */
}

static int
route_insert(struct pylb_dp *dp, const struct pylb_route *r)
{
	int rc = group_install(dp, r);

	if (rc != 0)
		return rc;
	dp->n_routes[r->dst.addr.af == 6]++;
	pylb_gen_bump(dp);
	return 0;
}

/* Is r a route pylb can install (prefix, next hops, gateways)? */
static int
route_check(struct pylb_dp *dp, const struct pylb_route *r)
{
	char buf[PYLB_ADDR_STRLEN];
	int rc;

	rc = pylb_route_check_prefix(&r->dst, "route");
	if (rc != 0)
		return rc;
	if (r->n_nh == 0 || r->n_nh > PYLB_MAX_ECMP)
		return pylb_fail(-PYLB_E_INVAL, "a route needs 1 to %d next hops",
				 PYLB_MAX_ECMP);
	for (uint16_t i = 0; i < r->n_nh; i++) {
		const struct pylb_nexthop *x = &r->nh[i];

		if (x->port >= dp->n_ports)
			return pylb_fail(-PYLB_E_NOENT, "next hop %u: no port %u",
					 i, x->port);
		if (x->gw.af == 0) {
			if (r->n_nh != 1)
				return pylb_fail(-PYLB_E_INVAL,
					"a route to a port without a gateway has only that next hop");
			continue;
		}
		if (x->gw.af != r->dst.addr.af)
			return pylb_fail(-PYLB_E_INVAL,
				"next hop %u: gateway family differs from the route's", i);
		if (!connected_on(dp, x->port, &x->gw)) {
			pylb_fmt_ip(&x->gw, buf, sizeof(buf));
			return pylb_fail(-PYLB_E_INVAL,
				"gateway %s is on no connected network of port %s; add an address on its network to that port first",
				buf, dp->ports[x->port].name);
		}
		for (uint16_t j = 0; j < i; j++)
			if (r->nh[j].port == x->port &&
			    memcmp(&r->nh[j].gw, &x->gw, sizeof(x->gw)) == 0)
				return pylb_fail(-PYLB_E_INVAL,
					"next hop %u is listed twice", i);
	}
	return 0;
}

/* Is p the network of one of the ports' addresses (its connected route)? */
static bool
address_network(const struct pylb_dp *dp, const struct pylb_prefix *p)
{
	for (uint16_t i = 0; i < dp->cfg->n_ports; i++) {
		const struct pylb_port_cfg *pc = &dp->cfg->ports[i];
		uint32_t net;

		memcpy(&net, p->addr.ip, 4);
		for (uint16_t j = 0; p->addr.af == 4 && j < pc->n_addrs4; j++)
			if (pc->addrs4[j].prefix_len == p->len &&
			    (pc->addrs4[j].ip & pc->addrs4[j].mask) == net)
				return true;
		for (uint16_t j = 0; p->addr.af == 6 && j < pc->n_addrs6; j++)
			if (pc->addrs6[j].prefix_len == p->len &&
			    prefix6_match(pc->addrs6[j].ip, p->addr.ip, p->len))
				return true;
	}
	return false;
}

/* Connected routes go with their port's address: refused as routes. */
static int
not_address_network(const struct pylb_dp *dp, const struct pylb_prefix *p, const char *ip)
{
	if (!address_network(dp, p))
		return 0;
	return pylb_fail(-PYLB_E_STATE,
		"%s/%u is the connected network of a port address: it goes with the address, not as a route",
		ip, p->len);
}

static int
route_add_unlocked(struct pylb_dp *dp, const struct pylb_route *r)
{
	char buf[PYLB_ADDR_STRLEN];
	int rc = route_check(dp, r);

	if (rc != 0)
		return rc;
	pylb_fmt_ip(&r->dst.addr, buf, sizeof(buf));
	rc = not_address_network(dp, &r->dst, buf);
	if (rc != 0)
		return rc;
	if (fib_exact(dp, &r->dst) != 0) {
		return pylb_fail(-PYLB_E_EXIST,
			"a route to %s/%u already exists; delete it first, or replace it", buf,
			r->dst.len);
	}
	return route_insert(dp, r);
}

/* Point an existing gateway route at new next hops in one FIB write: every
 * packet takes the old or the new ones, none finds no route. */
static int
route_replace_unlocked(struct pylb_dp *dp, const struct pylb_route *r)
{
	char buf[PYLB_ADDR_STRLEN];
	uint64_t old;
	int rc = route_check(dp, r);

	if (rc != 0)
		return rc;
	old = fib_exact(dp, &r->dst);
	pylb_fmt_ip(&r->dst.addr, buf, sizeof(buf));
	if (old == 0)
		return pylb_fail(-PYLB_E_NOENT, "no route to %s/%u to replace", buf, r->dst.len);
	if (fib_group((uint32_t)old) == 0)
		return pylb_fail(-PYLB_E_INVAL,
			"%s/%u is a VIP, a service or a port address, not a route", buf,
			r->dst.len);
	rc = not_address_network(dp, &r->dst, buf);
	if (rc != 0)
		return rc;
	rc = group_install(dp, r);
	if (rc != 0)
		return rc;
	pylb_gen_bump(dp);
	group_release(dp, old);
	return 0;
}

static bool
group_connected(const struct pylb_dp *dp, uint16_t g)
{
	return dp->nhg[g].n == 1 && dp->nh[dp->nhg[g].nh[0]].connected;
}

static int
route_del_unlocked(struct pylb_dp *dp, const struct pylb_prefix *dst)
{
	uint64_t v;
	char buf[PYLB_ADDR_STRLEN];
	int rc;

	rc = pylb_route_check_prefix(dst, "route");
	if (rc != 0)
		return rc;
	v = fib_exact(dp, dst);
	pylb_fmt_ip(&dst->addr, buf, sizeof(buf));
	if (v == 0)
		return pylb_fail(-PYLB_E_NOENT, "no route to %s/%u", buf, dst->len);
	if (fib_is_vip((uint32_t)v))
		return pylb_fail(-PYLB_E_INVAL, "%s/%u is a VIP; delete the VIP or its services",
				 buf, dst->len);
	if (fib_kind((uint32_t)v) == PYLB_FIB_LOCAL)
		return pylb_fail(-PYLB_E_INVAL,
			"%s/%u is a port address; it cannot be deleted as a route",
			buf, dst->len);
	rc = not_address_network(dp, dst, buf);
	if (rc != 0)
		return rc;
	fib_unset(dp, dst);
	dp->n_routes[dst->addr.af == 6]--;
	pylb_gen_bump(dp);
	group_release(dp, v);
	return 0;
}

/* Connected routes are added with the port's address. */
int
pylb_route_add_connected(struct pylb_dp *dp, uint16_t port,
			 const struct pylb_prefix *net)
{
	struct pylb_route r = { .dst = *net, .n_nh = 1 };

	if (fib_exact(dp, net) != 0)
		return 0;	/* already reachable: keep the first */
	r.nh[0].port = port;
	return route_insert(dp, &r);
}

int
pylb_route_add_special(struct pylb_dp *dp, const struct pylb_prefix *p,
		       uint64_t val)
{
	char buf[PYLB_ADDR_STRLEN];
	int rc;

	if (fib_exact(dp, p) != 0) {
		pylb_fmt_ip(&p->addr, buf, sizeof(buf));
		return pylb_fail(-PYLB_E_EXIST,
			"%s/%u is already routed; delete that route first", buf, p->len);
	}
	rc = fib_set(dp, p, val);
	if (rc == 0) {
		dp->n_routes[p->addr.af == 6]++;
		pylb_gen_bump(dp);
	}
	return rc;
}

int
pylb_route_del_special(struct pylb_dp *dp, const struct pylb_prefix *p,
		       uint64_t val)
{
	if (fib_exact(dp, p) != val)
		return pylb_fail(-PYLB_E_NOENT, "the special route to remove is not there");
	fib_unset(dp, p);
	dp->n_routes[p->addr.af == 6]--;
	pylb_gen_bump(dp);
	return 0;
}

static void
route_fill(const struct pylb_dp *dp, uint64_t v, struct pylb_route *out)
{
	uint32_t kind = fib_kind((uint32_t)v), id = fib_id((uint32_t)v);

	out->n_nh = 0;
	out->inspect[0] = '\0';
	if (kind == PYLB_FIB_VIP) {
		out->kind = PYLB_ROUTE_VIP;
	} else if (kind == PYLB_FIB_SERVICE) {
		out->kind = PYLB_ROUTE_SERVICE;
	} else if (kind == PYLB_FIB_LOCAL) {
		out->kind = PYLB_ROUTE_LOCAL;
		out->n_nh = 1;
		memset(&out->nh[0], 0, sizeof(out->nh[0]));
		out->nh[0].port = (uint16_t)id;
	} else {
		const struct pylb_nhg *g = &dp->nhg[id];

		if (g->pool != 0 && dp->inspect_pools[g->pool - 1] != NULL)
			memcpy(out->inspect, dp->inspect_pools[g->pool - 1]->conf.name, PYLB_NAME_LEN);
		/* Connected: a port address's network. A route out of a port
		 * that an operator added is theirs (listed as such). */
		out->kind = group_connected(dp, (uint16_t)id) && address_network(dp, &out->dst) ?
			PYLB_ROUTE_CONNECTED : PYLB_ROUTE_GATEWAY;
		out->n_nh = g->n;
		for (uint16_t i = 0; i < g->n; i++) {
			const struct pylb_nh *nh = &dp->nh[g->nh[i]];

			memset(&out->nh[i], 0, sizeof(out->nh[i]));
			out->nh[i].port = nh->port;
			if (!nh->connected) {
				out->nh[i].gw.af = nh->af;
				memcpy(out->nh[i].gw.ip, nh->gw, 16);
			}
		}
	}
}

static int
route_get_unlocked(struct pylb_dp *dp, const struct pylb_prefix *dst,
		  struct pylb_route *out)
{
	uint64_t v;
	char buf[PYLB_ADDR_STRLEN];
	int rc = pylb_route_check_prefix(dst, "route");

	if (rc != 0)
		return rc;
	v = fib_exact(dp, dst);
	if (v == 0) {
		pylb_fmt_ip(&dst->addr, buf, sizeof(buf));
		return pylb_fail(-PYLB_E_NOENT, "no route to %s/%u", buf, dst->len);
	}
	memset(out, 0, sizeof(*out));
	out->dst = *dst;
	route_fill(dp, v, out);
	return 0;
}

static int
route_lookup_unlocked(struct pylb_dp *dp, const struct pylb_ip *ip,
		     struct pylb_route *out)
{
	uint64_t v = 0;
	char buf[PYLB_ADDR_STRLEN];

	memset(out, 0, sizeof(*out));
	if (ip->af == 4) {
		struct rte_rib_node *n = rte_rib_lookup(rte_fib_get_rib(dp->fib4),
							host4(ip));
		uint32_t a;

		if (n != NULL) {
			rte_rib_get_nh(n, &v);
			rte_rib_get_ip(n, &a);
			rte_rib_get_depth(n, &out->dst.len);
			a = rte_cpu_to_be_32(a);
			memcpy(out->dst.addr.ip, &a, 4);
		}
	} else if (ip->af == 6) {
		struct rte_rib6_node *n = rte_rib6_lookup(rte_fib6_get_rib(dp->fib6),
							  ip->ip);

		if (n != NULL) {
			rte_rib6_get_nh(n, &v);
			rte_rib6_get_ip(n, out->dst.addr.ip);
			rte_rib6_get_depth(n, &out->dst.len);
		}
	} else {
		return pylb_fail(-PYLB_E_INVAL, "address family must be 4 or 6");
	}
	if (v == 0) {
		pylb_fmt_ip(ip, buf, sizeof(buf));
		return pylb_fail(-PYLB_E_NOENT, "no route to %s", buf);
	}
	out->dst.addr.af = ip->af;
	route_fill(dp, v, out);
	return 0;
}

/* What the workers do to reach `to` with a flow hash: the route, and the
 * next hop their ECMP choice (nhg_slot, the fast path's) takes. */
static int
route_pick_unlocked(struct pylb_dp *dp, const struct pylb_ip *to, uint32_t hash,
		    struct pylb_route *out, int32_t *chosen)
{
	int rc = route_lookup_unlocked(dp, to, out);
	uint32_t g;

	*chosen = -1;
	if (rc != 0)
		return rc;
	g = route_group(dp, to->ip, to->af);
	if (g != 0)
		*chosen = (int32_t)nhg_slot(dp, g, hash);
	else if (out->n_nh == 1)
		*chosen = 0;
	return 0;
}

static int
route_list_unlocked(struct pylb_dp *dp, uint8_t af,
		   const struct pylb_prefix *after, struct pylb_route *out,
		   uint32_t max)
{
	uint32_t n = 0;
	uint64_t v;

	if (af != 4 && af != 6)
		return pylb_fail(-PYLB_E_INVAL, "address family must be 4 or 6");
	if (af == 4) {
		struct rte_rib *rib = rte_fib_get_rib(dp->fib4);
		struct rte_rib_node *node = NULL;

		if (after != NULL && after->len <= 32) {
			node = rte_rib_lookup_exact(rib, host4(&after->addr), after->len);
			if (node == NULL)
				return pylb_fail(-PYLB_E_NOENT, "the listing cursor route is gone");
		} else if ((node = rte_rib_lookup_exact(rib, 0, 0)) != NULL && max > 0) {
			struct pylb_route *r = &out[n++];

			memset(r, 0, sizeof(*r));
			r->dst.addr.af = 4;
			rte_rib_get_nh(node, &v);
			route_fill(dp, v, r);
		}
		if (after != NULL && after->len == 0)
			node = NULL;	/* the default route came first */
		while (n < max &&
		       (node = rte_rib_get_nxt(rib, 0, 0, node, RTE_RIB_GET_NXT_ALL)) != NULL) {
			struct pylb_route *r = &out[n++];
			uint32_t a;

			memset(r, 0, sizeof(*r));
			r->dst.addr.af = 4;
			rte_rib_get_ip(node, &a);
			a = rte_cpu_to_be_32(a);
			memcpy(r->dst.addr.ip, &a, 4);
			rte_rib_get_depth(node, &r->dst.len);
			rte_rib_get_nh(node, &v);
			route_fill(dp, v, r);
		}
	} else {
		static const uint8_t zero[16];
		struct rte_rib6 *rib = rte_fib6_get_rib(dp->fib6);
		struct rte_rib6_node *node = NULL;

		if (after != NULL && after->len <= 128) {
			node = rte_rib6_lookup_exact(rib, after->addr.ip, after->len);
			if (node == NULL)
				return pylb_fail(-PYLB_E_NOENT, "the listing cursor route is gone");
		} else if ((node = rte_rib6_lookup_exact(rib, zero, 0)) != NULL && max > 0) {
			struct pylb_route *r = &out[n++];

			memset(r, 0, sizeof(*r));
			r->dst.addr.af = 6;
			rte_rib6_get_nh(node, &v);
			route_fill(dp, v, r);
		}
		if (after != NULL && after->len == 0)
			node = NULL;
		while (n < max &&
		       (node = rte_rib6_get_nxt(rib, zero, 0, node, RTE_RIB6_GET_NXT_ALL)) != NULL) {
			struct pylb_route *r = &out[n++];

			memset(r, 0, sizeof(*r));
			r->dst.addr.af = 6;
			rte_rib6_get_ip(node, r->dst.addr.ip);
			rte_rib6_get_depth(node, &r->dst.len);
			rte_rib6_get_nh(node, &v);
			route_fill(dp, v, r);
		}
	}
	return (int)n;
}

uint32_t
pylb_dp_route_count(const struct pylb_dp *dp, uint8_t af)
{
	return dp->n_routes[af == 6];
}

void
pylb_route_neigh_update(struct pylb_dp *dp, const struct pylb_neigh_key *k,
			uint64_t mac)
{
	for (uint16_t i = 1; i < PYLB_MAX_NEXTHOPS; i++) {
		struct pylb_nh *nh = &dp->nh[i];

		if (dp->nh_refs[i] != 0 && !nh->connected && nh->port == k->port &&
		    nh->af == k->af && memcmp(nh->gw, k->ip, 16) == 0)
			__atomic_store_n(&nh->mac, mac, __ATOMIC_RELAXED);
	}
}

/* The API: serialised with the telemetry thread's readers. */

int
pylb_dp_route_add(struct pylb_dp *dp, const struct pylb_route *r)
{
	PYLB_CTL_LOCKED(dp, route_add_unlocked(dp, r));
}

int
pylb_dp_route_replace(struct pylb_dp *dp, const struct pylb_route *r)
{
	PYLB_CTL_LOCKED(dp, route_replace_unlocked(dp, r));
}

int
pylb_dp_route_del(struct pylb_dp *dp, const struct pylb_prefix *dst)
{
	PYLB_CTL_LOCKED(dp, route_del_unlocked(dp, dst));
}

int
pylb_dp_route_get(struct pylb_dp *dp, const struct pylb_prefix *dst,
		  struct pylb_route *out)
{
	PYLB_CTL_LOCKED(dp, route_get_unlocked(dp, dst, out));
}

int
pylb_dp_route_lookup(struct pylb_dp *dp, const struct pylb_ip *ip,
		     struct pylb_route *out)
{
	PYLB_CTL_LOCKED(dp, route_lookup_unlocked(dp, ip, out));
}

int
pylb_dp_route_pick(struct pylb_dp *dp, const struct pylb_ip *to, uint32_t hash,
		   struct pylb_route *out, int32_t *chosen)
{
	PYLB_CTL_LOCKED(dp, route_pick_unlocked(dp, to, hash, out, chosen));
}

int
pylb_dp_route_list(struct pylb_dp *dp, uint8_t af,
		   const struct pylb_prefix *after, struct pylb_route *out,
		   uint32_t max)
{
	PYLB_CTL_LOCKED(dp, route_list_unlocked(dp, af, after, out, max));
}
