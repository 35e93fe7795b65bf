/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * ACLs: allow and deny lists of source prefixes, for L4 services. Every
 * list's prefixes go into one DPDK FIB per family (DIR24_8 for IPv4, a
 * trie for IPv6) whose value names the set of lists that match an
 * address: a prefix's set is its own lists and those of every prefix
 * covering it (computed once, in an rte_rib), so the longest match is
 * the whole answer. A new connection's source is looked up once; the
 * service's lists (a bit mask) pick the lists that apply. The whole ACL
 * state is built aside and published at once (RCU): connections already
 * open are never looked at again.
 */
#include <stdio.h>

#include <rte_fib.h>
#include <rte_fib6.h>
#include <rte_malloc.h>
#include <rte_rib.h>
#include <rte_rib6.h>

#include "l3/fib.h"

static uint32_t acl_seq;

static void
acls_free(struct pylb_acls *a)
{
	if (a == NULL)
		return;
	rte_fib_free(a->fib4);
	rte_fib6_free(a->fib6);
	rte_free(a->masks);
	rte_free(a);
}

/* The index of mask m in a's set table (1..), added if new; 0 if full. */
static uint32_t
mask_index(struct pylb_acls *a, uint64_t m)
{
	for (uint32_t i = 1; i < a->n_masks; i++)
		if (a->masks[i] == m)
			return i;
	if (a->n_masks > PYLB_ACL_SETS_MAX)
		return 0;
	a->masks[a->n_masks] = m;
	return a->n_masks++;
}

/* The lists of every prefix covering node n (its own included). */
static uint64_t
lists4(const struct rte_rib_node *n)
{
	uint64_t m = 0;

	for (; n != NULL; n = rte_rib_lookup_parent((struct rte_rib_node *)(uintptr_t)n))
		m |= *(const uint64_t *)rte_rib_get_ext((struct rte_rib_node *)(uintptr_t)n);
	return m;
}

static uint64_t
lists6(const struct rte_rib6_node *n)
{
	uint64_t m = 0;

	for (; n != NULL; n = rte_rib6_lookup_parent((struct rte_rib6_node *)(uintptr_t)n))
		m |= *(const uint64_t *)rte_rib6_get_ext((struct rte_rib6_node *)(uintptr_t)n);
	return m;
}

static int
build4(struct pylb_acls *a, const struct pylb_acl_prefix *p, uint32_t n, uint32_t n4,
       uint32_t long4)
{
	char name[32];
	struct rte_rib_conf rc = { .ext_sz = sizeof(uint64_t), .max_nodes = (int)(2 * n4 + 1) };
	struct rte_fib_conf fc = {
		.type = RTE_FIB_DIR24_8, .default_nh = 0, .max_routes = (int)(n4 + 1),
		.dir24_8 = { .nh_sz = RTE_FIB_DIR24_8_2B, .num_tbl8 = long4 + 1 },
	};
	struct rte_rib_node *node = NULL;
	struct rte_rib *rib;
	int rc2 = 0;

	if (long4 + 1 > PYLB_TBL8_MAX)
		return pylb_fail(-PYLB_E_FULL,
			"ACLs: %u IPv4 prefixes longer than /24, at most %u (list shorter prefixes, or fewer)",
			long4, PYLB_TBL8_MAX - 1);
	snprintf(name, sizeof(name), "pylb_aclr%u", acl_seq);
	rib = rte_rib_create(name, (int)rte_socket_id(), &rc);
	snprintf(name, sizeof(name), "pylb_acl%u", acl_seq);
	a->fib4 = rte_fib_create(name, (int)rte_socket_id(), &fc);
	if (rib == NULL || a->fib4 == NULL) {
		rte_rib_free(rib);
		return pylb_fail(-PYLB_E_NOMEM,
			"ACLs: cannot allocate a FIB for %u IPv4 prefixes; reserve more hugepages", n4);
	}
	pylb_fib_vectorize(a->fib4, NULL);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t ip;
		struct rte_rib_node *x;

		if (p[i].prefix.addr.af != 4)
			continue;
		memcpy(&ip, p[i].prefix.addr.ip, 4);
		ip = rte_be_to_cpu_32(ip);
		x = rte_rib_lookup_exact(rib, ip, p[i].prefix.len);
		if (x == NULL)
			x = rte_rib_insert(rib, ip, p[i].prefix.len);
		if (x == NULL) {
			rte_rib_free(rib);
			return pylb_fail(-PYLB_E_NOMEM, "ACLs: cannot index IPv4 prefix %u", i);
		}
		*(uint64_t *)rte_rib_get_ext(x) |= 1ULL << p[i].list;
	}
	while ((node = rte_rib_get_nxt(rib, 0, 0, node, RTE_RIB_GET_NXT_ALL)) != NULL) {
		uint32_t ip, v;
		uint8_t depth;

		rte_rib_get_ip(node, &ip);
		rte_rib_get_depth(node, &depth);
		v = mask_index(a, lists4(node));
		if (v == 0 || rte_fib_add(a->fib4, ip, depth, v) != 0) {
			rc2 = pylb_fail(-PYLB_E_FULL, "ACLs: too many different combinations of lists");
			break;
		}
	}
	rte_rib_free(rib);
	return rc2;
}

static int
build6(struct pylb_acls *a, const struct pylb_acl_prefix *p, uint32_t n, uint32_t n6,
       uint32_t groups6)
{
	char name[32];
	struct rte_rib6_conf rc = { .ext_sz = sizeof(uint64_t), .max_nodes = (int)(2 * n6 + 1) };
	struct rte_fib6_conf fc = {
		.type = RTE_FIB6_TRIE, .default_nh = 0, .max_routes = (int)(n6 + 1),
		.trie = { .nh_sz = RTE_FIB6_TRIE_2B, .num_tbl8 = groups6 + 1 },
	};
	struct rte_rib6_node *node = NULL;
	struct rte_rib6 *rib;
	uint8_t zero[16] = { 0 };
	int rc2 = 0;

	if (groups6 + 1 > PYLB_TBL8_MAX)
		return pylb_fail(-PYLB_E_FULL,
			"ACLs: the IPv6 prefixes need %u trie groups, at most %u (list shorter prefixes, or fewer)",
			groups6, PYLB_TBL8_MAX - 1);
	snprintf(name, sizeof(name), "pylb_acl6r%u", acl_seq);
	rib = rte_rib6_create(name, (int)rte_socket_id(), &rc);
	snprintf(name, sizeof(name), "pylb_acl6%u", acl_seq);
	a->fib6 = rte_fib6_create(name, (int)rte_socket_id(), &fc);
	if (rib == NULL || a->fib6 == NULL) {
		rte_rib6_free(rib);
		return pylb_fail(-PYLB_E_NOMEM,
			"ACLs: cannot allocate a FIB for %u IPv6 prefixes; reserve more hugepages", n6);
	}
	pylb_fib_vectorize(NULL, a->fib6);
	for (uint32_t i = 0; i < n; i++) {
		struct rte_rib6_node *x;

		if (p[i].prefix.addr.af != 6)
			continue;
		x = rte_rib6_lookup_exact(rib, p[i].prefix.addr.ip, p[i].prefix.len);
		if (x == NULL)
			x = rte_rib6_insert(rib, p[i].prefix.addr.ip, p[i].prefix.len);
		if (x == NULL) {
			rte_rib6_free(rib);
			return pylb_fail(-PYLB_E_NOMEM, "ACLs: cannot index IPv6 prefix %u", i);
		}
		*(uint64_t *)rte_rib6_get_ext(x) |= 1ULL << p[i].list;
	}
	while ((node = rte_rib6_get_nxt(rib, zero, 0, node, RTE_RIB6_GET_NXT_ALL)) != NULL) {
		uint8_t ip[16], depth;
		uint32_t v;

		rte_rib6_get_ip(node, ip);
		rte_rib6_get_depth(node, &depth);
		v = mask_index(a, lists6(node));
		if (v == 0 || rte_fib6_add(a->fib6, ip, depth, v) != 0) {
			rc2 = pylb_fail(-PYLB_E_FULL, "ACLs: too many different combinations of lists");
			break;
		}
	}
	rte_rib6_free(rib);
	return rc2;
}

static int
acls_set_unlocked(struct pylb_dp *dp, const struct pylb_acl_conf *lists, uint32_t n_lists,
		  const struct pylb_acl_prefix *p, uint32_t n, const uint64_t *svc_lists)
{
	struct pylb_acls *a = NULL, *old;
	uint32_t n4 = 0, n6 = 0, long4 = 0, groups6 = 0;
	int rc = 0;

	if (n_lists > PYLB_MAX_ACLS)
		return pylb_fail(-PYLB_E_INVAL, "%u ACLs, at most %u", n_lists, PYLB_MAX_ACLS);
	for (uint32_t i = 0; i < n_lists; i++)
		if (lists[i].type > PYLB_ACL_ALLOW || lists[i].action > PYLB_ACL_UNREACHABLE)
			return pylb_fail(-PYLB_E_INVAL, "ACL %u: unknown type %u or action %u", i,
					 lists[i].type, lists[i].action);
	for (uint32_t i = 0; i < n; i++) {
		const struct pylb_prefix *x = &p[i].prefix;

		if (p[i].list >= n_lists || (x->addr.af != 4 && x->addr.af != 6) ||
		    x->len > (x->addr.af == 4 ? 32 : 128))
			return pylb_fail(-PYLB_E_INVAL, "ACL prefix %u: list %u, family %u, length %u",
					 i, p[i].list, x->addr.af, x->len);
		if (x->addr.af == 4) {
			n4++;
			long4 += x->len > 24;
		} else {
			n6++;
			groups6 += x->len > 24 ? (x->len - 24 + 7) / 8 : 0;
		}
	}
	if (n_lists != 0) {
		a = rte_zmalloc("pylb_acls", sizeof(*a), RTE_CACHE_LINE_SIZE);
		if (a != NULL)
			a->masks = rte_zmalloc("pylb_acl_sets", (PYLB_ACL_SETS_MAX + 1) * sizeof(uint64_t),
					       RTE_CACHE_LINE_SIZE);
		if (a == NULL || a->masks == NULL) {
			acls_free(a);
			return pylb_fail(-PYLB_E_NOMEM, "ACLs: cannot allocate their tables");
		}
		a->n_masks = 1;			/* 0: matches no list */
		for (uint32_t i = 0; i < n_lists; i++) {
			a->action[i] = lists[i].action;
			if (lists[i].type == PYLB_ACL_DENY)
				a->deny |= 1ULL << i;
			else
				a->allow |= 1ULL << i;
		}
		memcpy(a->svc, svc_lists, sizeof(a->svc));
		acl_seq++;
		if (n4 != 0)
			rc = build4(a, p, n, n4, long4);
		if (rc == 0 && n6 != 0)
			rc = build6(a, p, n, n6, groups6);
		if (rc != 0) {
			acls_free(a);
			return rc;
		}
	}
	old = dp->acls;
	__atomic_store_n(&dp->acls, a, __ATOMIC_RELEASE);
	pylb_rcu_wait(dp);
	acls_free(old);
	return 0;
}

int
pylb_dp_acls_set(struct pylb_dp *dp, const struct pylb_acl_conf *lists, uint32_t n_lists,
		 const struct pylb_acl_prefix *p, uint32_t n, const uint64_t *svc_lists)
{
	PYLB_CTL_LOCKED(dp, acls_set_unlocked(dp, lists, n_lists, p, n, svc_lists));
}

void
pylb_acls_free(struct pylb_dp *dp)
{
	acls_free(dp->acls);
	dp->acls = NULL;
}

static int
acl_check_unlocked(struct pylb_dp *dp, const struct pylb_ip *src, uint16_t svc)
{
	const struct pylb_acls *a = dp->acls;
	uint32_t list;

	if (svc >= PYLB_MAX_SERVICES)
		return pylb_fail(-PYLB_E_INVAL, "service id %u out of range", svc);
	return a != NULL && pylb_acl_refuses(a, src->ip, src->af, svc, &list) ? (int)list + 1 : 0;
}

int
pylb_dp_acl_check(struct pylb_dp *dp, const struct pylb_ip *src, uint16_t svc)
{
	PYLB_CTL_LOCKED(dp, acl_check_unlocked(dp, src, svc));
}
