/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * L4 service control: the service and connection tables, adding,
 * deleting and listing services, replacing a service's backend set (a new
 * immutable object published with RCU, the per-lcore counters carried
 * over), reading their counters, and the trace (what the workers would do
 * with a packet). The workers' side is l4.c and reply.c; the schedulers
 * are scheduler.c.
 */
#include <stdio.h>
#include <stdlib.h>

#include <rte_hash.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>
#include <rte_tcp.h>

#include "ctl/ctl.h"

static uint32_t svc_seq;

int
pylb_l4_init(struct pylb_dp *dp)
{
	char name[RTE_HASH_NAMESIZE];
	struct rte_hash_parameters hp = {
		.name = name,
		.entries = PYLB_MAX_SERVICES,
		.key_len = sizeof(struct svc_key),
		.hash_func = rte_hash_crc,
		.socket_id = (int)rte_socket_id(),
		.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF,
	};
	struct rte_hash_rcu_config rcu = { .v = dp->qsv, .mode = RTE_HASH_QSBR_MODE_SYNC };

	pylb_timeouts_apply(dp, &dp->conf.timeouts);
	snprintf(name, sizeof(name), "pylb_svc%u", ++svc_seq);
	dp->svc_hash = rte_hash_create(&hp);
	if (dp->svc_hash == NULL || rte_hash_rcu_qsbr_add(dp->svc_hash, &rcu) != 0)
		return pylb_fail(-PYLB_E_NOMEM, "cannot create the service table");
	snprintf(name, sizeof(name), "pylb_natb%u", svc_seq);
	hp.key_len = sizeof(struct svc_key);
	dp->nat_backends = rte_hash_create(&hp);
	if (dp->nat_backends == NULL || rte_hash_rcu_qsbr_add(dp->nat_backends, &rcu) != 0)
		return pylb_fail(-PYLB_E_NOMEM, "cannot create the NAT backend table");
	for (uint32_t i = 0; i < dp->n_slots; i++) {
		struct pylb_lcore *lc = &dp->lcores[i];

		int rc = pylb_conn_init(dp, lc);

		if (rc == 0)
			rc = pylb_frag_init(lc);
		if (rc != 0)
			return rc;
		if (i < dp->conf.n_workers && dp->conf.n_workers > 1) {
			snprintf(name, sizeof(name), "pylb_rd%u_%u", svc_seq, i);
			lc->redirect = rte_ring_create(name, PYLB_REDIRECT_RING,
						       (int)rte_socket_id(), RING_F_SC_DEQ);
			if (lc->redirect == NULL)
				return pylb_fail(-PYLB_E_NOMEM, "cannot create the hand-over rings");
		}
	}
	return 0;
}

void
pylb_l4_free(struct pylb_dp *dp)
{
	for (int i = 0; i < PYLB_MAX_SERVICES; i++) {
		rte_free(dp->svcs[i]);
		dp->svcs[i] = NULL;
	}
	rte_hash_free(dp->svc_hash);
	rte_hash_free(dp->nat_backends);
	dp->svc_hash = NULL;
	dp->nat_backends = NULL;
	if (dp->lcores != NULL)
		for (uint32_t i = 0; i < dp->n_slots; i++) {
			struct pylb_lcore *lc = &dp->lcores[i];
			struct rte_mbuf *m;

			if (lc->ct != NULL)	/* NULL: the dataplane failed before */
				pylb_conn_free(lc);
			pylb_frag_free(lc);
			while (lc->redirect != NULL && rte_ring_dequeue(lc->redirect, (void **)&m) == 0)
				rte_pktmbuf_free(m);
			rte_ring_free(lc->redirect);
			lc->redirect = NULL;
		}
}


static uint16_t
backend_find(const struct pylb_balance *bal, const struct pylb_backend *b)
{
	for (uint32_t i = 0; i < bal->n_backends; i++)
		if (memcmp(&bal->backends[i].addr, &b->addr, sizeof(b->addr)) == 0 &&
		    bal->backends[i].port == b->port)
			return (uint16_t)i;
	return PYLB_BIDX_NONE;
}

static int
svc_key_make(const struct pylb_ip *vip, uint8_t proto, uint16_t port,
	     struct svc_key *k)
{
	static const uint8_t zero[16];

	if ((vip->af != 4 && vip->af != 6) || memcmp(vip->ip, zero, 16) == 0)
		return pylb_fail(-PYLB_E_INVAL, "a service needs an IPv4 or IPv6 VIP");
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return pylb_fail(-PYLB_E_INVAL, "a service's protocol is TCP (6) or UDP (17), not %u",
				 proto);
	memset(k, 0, sizeof(*k));
	memcpy(k->ip, vip->ip, 16);
	k->port = rte_cpu_to_be_16(port);
	k->proto = proto;
	k->af = vip->af;
	return 0;
}

static const char *
svc_name(const struct pylb_ip *vip, uint8_t proto, uint16_t port, char *buf, size_t len)
{
	char a[PYLB_ADDR_STRLEN];

	pylb_fmt_ip(vip, a, sizeof(a));
	snprintf(buf, len, vip->af == 6 ? "[%s]:%u/%s" : "%s:%u/%s", a, port,
		 proto == IPPROTO_TCP ? "tcp" : "udp");
	return buf;
}

static int
svc_find(struct pylb_dp *dp, const struct pylb_ip *vip, uint8_t proto, uint16_t port,
	 char *name, size_t len)
{
	struct svc_key k;
	void *data;
	int rc = svc_key_make(vip, proto, port, &k);

	if (rc != 0)
		return rc;
	svc_name(vip, proto, port, name, len);
	if (rte_hash_lookup_data(dp->svc_hash, &k, &data) < 0)
		return pylb_fail(-PYLB_E_NOENT, "no service %s", name);
	return (int)(uintptr_t)data;
}

/* How many services use this VIP (the FIB entry lives while any does). */
static uint32_t
vip_users(const struct pylb_dp *dp, const struct pylb_ip *vip)
{
	uint32_t n = 0;

	for (int i = 0; i < PYLB_MAX_SERVICES; i++)
		n += dp->svcs[i] != NULL && memcmp(&dp->svcs[i]->conf.vip, vip, sizeof(*vip)) == 0;
	return n;
}

static int
svc_new(struct pylb_dp *dp, struct pylb_service **out, const struct pylb_service_conf *conf,
	uint16_t id, const struct pylb_backend *b, uint32_t n)
{
	/* Between the service and its backends: the per-lcore scheduler
	 * rows (WRR), the per-lcore backend counters, the carried ones. */
	bool rows = pylb_schedulers[conf->sched].rows;
	uint32_t stride = RTE_ALIGN_CEIL(RTE_MAX(n, 1u), RTE_CACHE_LINE_SIZE / sizeof(int32_t));
	uint32_t bstride = RTE_MAX(n, 1u);	/* each entry is a cache line */
	size_t at_rows = RTE_ALIGN_CEIL(sizeof(**out), RTE_CACHE_LINE_SIZE);
	size_t at_bstats = at_rows + (rows ? dp->n_slots * stride * sizeof(int32_t) : 0);
	size_t at_bbase = at_bstats + (size_t)dp->n_slots * bstride * sizeof(struct pylb_svc_stats);
	size_t head = at_bbase + RTE_ALIGN_CEIL(n * sizeof(struct pylb_svc_stats),
						RTE_CACHE_LINE_SIZE);
	int rc = pylb_balance_new((void **)out, "service", head,
				  offsetof(struct pylb_service, bal), b, n, conf->table_size,
				  dp->n_slots);

	RTE_BUILD_BUG_ON(sizeof(struct pylb_svc_stats) != RTE_CACHE_LINE_SIZE);

	if (rc == 0) {
		(*out)->conf = *conf;
		(*out)->id = id;
		(*out)->sched = &pylb_schedulers[conf->sched];
		(*out)->key = dp->conf.hash_key;
		/* Checked when the service was added. */
		(void)pylb_encap_src_bind(&(*out)->tunnel_src, &conf->tunnel_source, "service");
		if (conf->quic.encrypted)
			AES_set_decrypt_key(conf->quic.key, 128, &(*out)->quic_key);
		/* SYN cookies: NAT and FullNAT TCP services alone can proxy. */
		(*out)->synproxy = conf->proto == IPPROTO_TCP &&
			(conf->method == PYLB_L4_NAT || conf->method == PYLB_L4_FULLNAT) ?
			conf->syn_proxy : PYLB_SYN_PROXY_OFF;
		if (rows) {
			(*out)->rows = (int32_t *)((char *)*out + at_rows);
			(*out)->row_stride = stride;
		}
		(*out)->bstats = (struct pylb_svc_stats *)((char *)*out + at_bstats);
		(*out)->bstride = bstride;
		(*out)->bbase = (struct pylb_svc_stats *)((char *)*out + at_bbase);
	}
	return rc;
}

static void
stats_add(struct pylb_svc_stats *to, const struct pylb_svc_stats *s)
{
	to->conns += s->conns;
	to->in_packets += s->in_packets;
	to->in_bytes += s->in_bytes;
	to->out_packets += s->out_packets;
	to->out_bytes += s->out_bytes;
	to->active += s->active;
	to->inactive += s->inactive;
}

/* Backend i of s: what it counted, over all its backend sets. */
static struct pylb_svc_stats
backend_stats(const struct pylb_dp *dp, const struct pylb_service *s, uint32_t i)
{
	struct pylb_svc_stats out = s->bbase[i];

	for (uint32_t slot = 0; slot < dp->n_slots; slot++)
		stats_add(&out, &s->bstats[(size_t)slot * s->bstride + i]);
	return out;
}

/* dp->nat_backends' key of backend b of NAT service s. */
static struct svc_key
nat_key(const struct pylb_service *s, const struct pylb_backend *b)
{
	struct svc_key k = { .port = rte_cpu_to_be_16(b->port), .proto = s->conf.proto,
			     .af = b->addr.af };

	memcpy(k.ip, b->addr.ip, 16);
	return k;
}

/* Count (delta +1/-1) the backends of a NAT service in dp->nat_backends,
 * listing it in (removing it from) a slot. The slots are a multiset: a
 * service replaced by itself is added before it is removed. */
static void
nat_backends_count(struct pylb_dp *dp, const struct pylb_service *s, int delta)
{
	if (s == NULL || s->conf.method != PYLB_L4_NAT)
		return;
	for (uint32_t i = 0; i < s->bal.n_backends; i++) {
		struct svc_key k = nat_key(s, &s->bal.backends[i]);
		void *data = NULL;
		uintptr_t v;
		int slot;

		v = rte_hash_lookup_data(dp->nat_backends, &k, &data) >= 0 ? (uintptr_t)data : 0;
		for (slot = 0; slot < NAT_SLOTS; slot++)
			if (nat_slot(v, slot) == (delta > 0 ? -1 : s->id))
				break;
		if (slot < NAT_SLOTS)
			v = nat_slot_set(v, slot, delta > 0 ? s->id : -1);
		v = (v & ~(uintptr_t)0xffff) | (nat_refs(v) + (uint32_t)delta);
		if (nat_refs(v) == 0)
			rte_hash_del_key(dp->nat_backends, &k);
		else
			rte_hash_add_key_data(dp->nat_backends, &k, (void *)v);
	}
}

/* After s's backends were counted (s published, or removed): a backend
 * with services left out of its slots while a slot is free (one that was
 * listed went) lists them again, from the services in force. */
static void
nat_backends_relist(struct pylb_dp *dp, const struct pylb_service *s)
{
	if (s == NULL || s->conf.method != PYLB_L4_NAT)
		return;
	for (uint32_t i = 0; i < s->bal.n_backends; i++) {
		struct svc_key k = nat_key(s, &s->bal.backends[i]);
		void *data = NULL;
		uintptr_t v;
		int slot = 0;

		if (rte_hash_lookup_data(dp->nat_backends, &k, &data) < 0)
			continue;
		v = (uintptr_t)data;
		if (nat_listed(v) || nat_refs(v) > NAT_SLOTS)
			continue;
		v &= 0xffff;
		for (int id = 0; id < PYLB_MAX_SERVICES && slot < NAT_SLOTS; id++) {
			const struct pylb_service *o = dp->svcs[id];

			if (o != NULL && o->conf.method == PYLB_L4_NAT && o->conf.proto == k.proto &&
			    backend_find(&o->bal, &s->bal.backends[i]) != PYLB_BIDX_NONE)
				v = nat_slot_set(v, slot++, id);
		}
		rte_hash_add_key_data(dp->nat_backends, &k, (void *)v);
	}
}

static int
service_add_unlocked(struct pylb_dp *dp, const struct pylb_service_conf *conf)
{
	struct pylb_service_conf c = *conf;
	struct pylb_prefix host = { .addr = conf->vip, .len = conf->vip.af == 4 ? 32 : 128 };
	struct pylb_service *s;
	struct svc_key k;
	char name[96];
	int id, rc;

	rc = svc_key_make(&c.vip, c.proto, c.port, &k);
	if (rc != 0)
		return rc;
	svc_name(&c.vip, c.proto, c.port, name, sizeof(name));
	if (c.method > PYLB_L4_GUE)
		return pylb_fail(-PYLB_E_INVAL, "service %s: unknown forwarding method %u",
				 name, c.method);
	if (c.syn_proxy > PYLB_SYN_PROXY_OFF)
		return pylb_fail(-PYLB_E_INVAL, "service %s: unknown syn_proxy mode %u", name,
				 c.syn_proxy);
	if (c.proxy_protocol > PYLB_PROXY_V2)
		return pylb_fail(-PYLB_E_INVAL, "service %s: unknown proxy_protocol %u", name,
				 c.proxy_protocol);
	if (c.proxy_protocol != PYLB_PROXY_OFF && c.method != PYLB_L4_FULLNAT)
		return pylb_fail(-PYLB_E_INVAL,
			"service %s: a PROXY protocol header is for FullNAT services (the others' backends see the client's address)",
			name);
	if (c.proxy_protocol == PYLB_PROXY_V1 && c.proto != IPPROTO_TCP)
		return pylb_fail(-PYLB_E_INVAL,
			"service %s: PROXY protocol v1 is for TCP (UDP takes v2)", name);
	if (c.sched > PYLB_SCHED_WLC)
		return pylb_fail(-PYLB_E_INVAL, "service %s: unknown scheduler %u", name, c.sched);
	if (c.tunnel_source.addr.af != 0) {
		struct pylb_encap_src src;

		if (!pylb_l4_methods[c.method]->mixed)
			return pylb_fail(-PYLB_E_INVAL,
				"service %s: an outer source is for tunnel services", name);
		rc = pylb_encap_src_bind(&src, &c.tunnel_source, name);
		if (rc != 0)
			return rc;
	}
	if (c.quic.sid_len != 0) {
		const struct pylb_quic_conf *q = &c.quic;

		if (c.proto != IPPROTO_UDP)
			return pylb_fail(-PYLB_E_INVAL, "service %s: QUIC routing is for UDP", name);
		if (q->sid_len > PYLB_QUIC_SID_MAX || q->nonce_len < 4 || q->nonce_len > 18 ||
		    q->sid_len + q->nonce_len > 19 || q->config_id > 6)
			return pylb_fail(-PYLB_E_INVAL,
				"service %s: QUIC server ids of 1 to %d bytes, nonces of 4 to 18, 19 together at most, config id 0 to 6",
				name, PYLB_QUIC_SID_MAX);
		if (q->encrypted && q->sid_len + q->nonce_len != 16)
			return pylb_fail(-PYLB_E_INVAL,
				"service %s: encrypted QUIC connection IDs (one AES block) need server id and nonce of 16 bytes together",
				name);
	}
	if (c.method == PYLB_L4_FULLNAT) {
		if (c.n_lips == 0 || c.n_lips > PYLB_MAX_LIPS)
			return pylb_fail(-PYLB_E_INVAL,
				"service %s: FullNAT needs 1 to %d local addresses (the service's local_addresses, or the profile's ports' local_addresses)",
				name, PYLB_MAX_LIPS);
		for (uint8_t i = 0; i < c.n_lips; i++) {
			struct pylb_route r;

			if (c.lips[i].af != c.vip.af || pylb_dp_route_lookup(dp, &c.lips[i], &r) != 0 ||
			    r.kind != PYLB_ROUTE_LOCAL) {
				char a[PYLB_ADDR_STRLEN];

				pylb_fmt_ip(&c.lips[i], a, sizeof(a));
				return pylb_fail(-PYLB_E_INVAL,
					"service %s: local address %s is not this appliance's (a port's addresses or local_addresses, of the VIP's family)",
					name, a);
			}
		}
	}
	if (c.persistence_prefix > (c.vip.af == 4 ? 32 : 128))
		return pylb_fail(-PYLB_E_INVAL, "service %s: persistence netmask /%u is too long",
				 name, c.persistence_prefix);
	if (c.table_size == 0)
		c.table_size = PYLB_MAGLEV_DEFAULT;
	if (!pylb_is_prime(c.table_size) || c.table_size > PYLB_MAGLEV_MAX)
		return pylb_fail(-PYLB_E_INVAL,
			"service %s: lookup table size %u must be a prime no larger than %u (e.g. 65537)",
			name, c.table_size, PYLB_MAGLEV_MAX);
	if (rte_hash_lookup(dp->svc_hash, &k) >= 0)
		return pylb_fail(-PYLB_E_EXIST, "service %s already exists", name);
	if (c.proxy_protocol != PYLB_PROXY_OFF && (rc = pylb_pp_enable(dp)) != 0)
		return rc;
	if (c.id != PYLB_SVC_ID_ANY) {
		id = c.id;
		if (id >= PYLB_MAX_SERVICES)
			return pylb_fail(-PYLB_E_INVAL, "service %s: id %d is not below %d",
					 name, id, PYLB_MAX_SERVICES);
		if (dp->svcs[id] != NULL)
			return pylb_fail(-PYLB_E_EXIST, "service %s: id %d is in use", name, id);
	} else {
		/* From the top: the domain allocates from the bottom up, so a
		 * service made without it (tests, tools) does not take an id
		 * the domain is about to give. */
		for (id = PYLB_MAX_SERVICES - 1; id >= 0 && dp->svcs[id] != NULL; id--)
			;
		if (id < 0)
			return pylb_fail(-PYLB_E_FULL, "at most %d services", PYLB_MAX_SERVICES);
		c.id = (uint16_t)id;
	}
	/* The VIP address itself: one FIB entry for all its services. */
	if (vip_users(dp, &c.vip) == 0) {
		rc = pylb_route_add_special(dp, &host, PYLB_FIB_VAL(PYLB_FIB_SERVICE, 0));
		if (rc != 0)
			return rc;
	}
	s = NULL;
	if (svc_new(dp, &s, &c, (uint16_t)id, NULL, 0) != 0 ||
	    rte_hash_add_key_data(dp->svc_hash, &k, (void *)(uintptr_t)id) < 0) {
		rte_free(s);
		if (vip_users(dp, &c.vip) == 0)
			pylb_route_del_special(dp, &host, PYLB_FIB_VAL(PYLB_FIB_SERVICE, 0));
		return pylb_fail(-PYLB_E_NOMEM, "cannot add service %s", name);
	}
	for (uint32_t slot = 0; slot < dp->n_slots; slot++)	/* a new service's own */
		memset(&dp->lcores[slot].svc_stats[id], 0, sizeof(struct pylb_svc_stats));
	__atomic_store_n(&dp->svcs[id], s, __ATOMIC_RELEASE);
	dp->n_services++;
	pylb_gen_bump(dp);
	dp->n_nat += c.method == PYLB_L4_NAT;
	dp->n_fullnat += c.method == PYLB_L4_FULLNAT;
	return 0;
}

static int
service_del_unlocked(struct pylb_dp *dp, const struct pylb_ip *vip, uint8_t proto,
		     uint16_t port)
{
	struct pylb_prefix host = { .addr = *vip, .len = vip->af == 4 ? 32 : 128 };
	struct pylb_service *old;
	struct svc_key k;
	char name[96];
	int id = svc_find(dp, vip, proto, port, name, sizeof(name));

	if (id < 0)
		return id;
	svc_key_make(vip, proto, port, &k);
	rte_hash_del_key(dp->svc_hash, &k);	/* reclaimed after a grace period */
	dp->n_services--;
	dp->n_nat -= dp->svcs[id]->conf.method == PYLB_L4_NAT;
	dp->n_fullnat -= dp->svcs[id]->conf.method == PYLB_L4_FULLNAT;
	old = dp->svcs[id];
	nat_backends_count(dp, old, -1);
	__atomic_store_n(&dp->svcs[id], NULL, __ATOMIC_RELEASE);
	nat_backends_relist(dp, old);
	pylb_rcu_wait(dp);
	rte_free(old);
	pylb_gen_bump(dp);
	if (vip_users(dp, vip) == 0)
		pylb_route_del_special(dp, &host, PYLB_FIB_VAL(PYLB_FIB_SERVICE, 0));
	/* Tracked connections keep their backend until they end. */
	return 0;
}

static int svc_republish(struct pylb_dp *dp, int id, const struct pylb_service_conf *conf,
			 const struct pylb_backend *b, uint32_t n, const char *name);

static int
service_backends_set_unlocked(struct pylb_dp *dp, const struct pylb_ip *vip,
			      uint8_t proto, uint16_t port,
			      const struct pylb_backend *b, uint32_t n)
{
	const struct pylb_service *cur;
	char name[96];
	int id = svc_find(dp, vip, proto, port, name, sizeof(name));

	if (id < 0)
		return id;
	cur = dp->svcs[id];
	if (n > PYLB_MAX_BACKENDS)
		return pylb_fail(-PYLB_E_FULL, "service %s: %u backends, at most %d",
				 name, n, PYLB_MAX_BACKENDS);
	for (uint32_t i = 0; i < n; i++) {
		if (b[i].addr.af != vip->af && !pylb_l4_methods[cur->conf.method]->mixed)
			return pylb_fail(-PYLB_E_INVAL,
				"service %s: backend %u is not of the VIP's address family (a tunnel's may be)",
				name, i);
		if (b[i].addr.af != 4 && b[i].addr.af != 6)
			return pylb_fail(-PYLB_E_INVAL, "service %s: backend %u: address family %u",
					 name, i, b[i].addr.af);
		if (b[i].weight > 65535)
			return pylb_fail(-PYLB_E_INVAL, "service %s: backend weight %u is above 65535",
					 name, b[i].weight);
		if (b[i].sid_len != 0 && b[i].sid_len != cur->conf.quic.sid_len)
			return pylb_fail(-PYLB_E_INVAL,
				"service %s: backend %u: a server id of %u bytes (the service's QUIC ids have %u)",
				name, i, b[i].sid_len, cur->conf.quic.sid_len);
		for (uint32_t j = 0; b[i].sid_len != 0 && j < i; j++)
			if (b[j].sid_len == b[i].sid_len &&
			    memcmp(b[j].sid, b[i].sid, b[i].sid_len) == 0)
				return pylb_fail(-PYLB_E_EXIST,
					"service %s: backends %u and %u have one server id", name, j, i);
		if (b[i].state > PYLB_BACKEND_DOWN)
			return pylb_fail(-PYLB_E_INVAL,
				"service %s: backend %u: unknown state %u (up, drain or down)",
				name, i, b[i].state);
		if (cur->conf.method == PYLB_L4_DR && b[i].port != 0 && b[i].port != port)
			return pylb_fail(-PYLB_E_INVAL,
				"service %s: direct routing cannot translate ports (backend %u)",
				name, i);
		for (uint32_t j = 0; j < i; j++)
			if (memcmp(&b[i].addr, &b[j].addr, sizeof(b[i].addr)) == 0 &&
			    b[i].port == b[j].port)
				return pylb_fail(-PYLB_E_EXIST, "service %s: backend listed twice",
						 name);
	}
	return svc_republish(dp, id, &cur->conf, b, n, name);
}

/* Service id published again with conf and backends b (n): connections,
 * their counts and the backends' counters go on. */
static int
svc_republish(struct pylb_dp *dp, int id, const struct pylb_service_conf *conf,
	      const struct pylb_backend *b, uint32_t n, const char *name)
{
	const struct pylb_service *cur = dp->svcs[id];
	struct pylb_service *next;
	struct pylb_svc_stats *taken;	/* the counts the new set started from */
	int rc = svc_new(dp, &next, conf, (uint16_t)id, b, n);

	if (rc != 0)
		return rc;
	taken = calloc(RTE_MAX(n, 1u), sizeof(*taken));
	if (taken == NULL) {
		rte_free(next);
		return pylb_fail(-PYLB_E_NOMEM, "service %s: no memory for %u backends", name, n);
	}
	/* Each lcore's connection counts go on in the new set as they are
	 * (WLC chooses by them); what changes while it is published is
	 * carried below. */
	for (uint32_t i = 0; i < n; i++) {
		uint16_t j = backend_find(&cur->bal, &next->bal.backends[i]);

		for (uint32_t slot = 0; slot < dp->n_slots && j != PYLB_BIDX_NONE; slot++) {
			const struct pylb_svc_stats *o = &cur->bstats[(size_t)slot * cur->bstride + j];
			struct pylb_svc_stats *to = &next->bstats[(size_t)slot * next->bstride + i];

			to->active = __atomic_load_n(&o->active, __ATOMIC_RELAXED);
			to->inactive = __atomic_load_n(&o->inactive, __ATOMIC_RELAXED);
			taken[i].active += to->active;
			taken[i].inactive += to->inactive;
		}
	}
	nat_backends_count(dp, next, +1);
	nat_backends_count(dp, cur, -1);
	__atomic_store_n(&dp->svcs[id], next, __ATOMIC_RELEASE);
	nat_backends_relist(dp, cur);
	/* Connections check their backend (state, index) again. */
	pylb_gen_bump(dp);
	pylb_rcu_wait(dp);
	/* No worker counts on cur any more: its backends' counters carry over. */
	for (uint32_t i = 0; i < n; i++) {
		uint16_t j = backend_find(&cur->bal, &next->bal.backends[i]);

		if (j != PYLB_BIDX_NONE) {
			struct pylb_svc_stats old = backend_stats(dp, cur, j);

			old.active -= taken[i].active;
			old.inactive -= taken[i].inactive;
			stats_add(&next->bbase[i], &old);
		}
	}
	free(taken);
	rte_free((void *)(uintptr_t)cur);
	return 0;
}

/* New limits in place: open connections, their counts and the backends
 * stay. */
static int
service_limits_set_unlocked(struct pylb_dp *dp, const struct pylb_ip *vip, uint8_t proto,
			    uint16_t port, uint32_t max_connections,
			    uint32_t max_new_per_second, uint32_t max_per_client)
{
	struct pylb_service_conf conf;
	char name[96];
	int id = svc_find(dp, vip, proto, port, name, sizeof(name));

	if (id < 0)
		return id;
	conf = dp->svcs[id]->conf;
	conf.max_connections = max_connections;
	conf.max_new_per_second = max_new_per_second;
	conf.max_per_client = max_per_client;
	return svc_republish(dp, id, &conf, dp->svcs[id]->bal.backends,
			     dp->svcs[id]->bal.n_backends, name);
}

static int
service_get_unlocked(struct pylb_dp *dp, const struct pylb_ip *vip, uint8_t proto,
		     uint16_t port, struct pylb_service_conf *conf,
		     struct pylb_backend *b, uint32_t max_b, uint32_t *n_b)
{
	char name[96];
	int id = svc_find(dp, vip, proto, port, name, sizeof(name));
	const struct pylb_service *s;

	if (id < 0)
		return id;
	s = dp->svcs[id];
	*conf = s->conf;
	*n_b = s->bal.n_backends;
	memcpy(b, s->bal.backends, RTE_MIN(max_b, s->bal.n_backends) * sizeof(*b));
	return 0;
}

static int
service_list_unlocked(struct pylb_dp *dp, struct pylb_service_conf *out, uint32_t max)
{
	uint32_t n = 0;

	for (int i = 0; i < PYLB_MAX_SERVICES && n < max; i++)
		if (dp->svcs[i] != NULL)
			out[n++] = dp->svcs[i]->conf;
	return (int)n;
}

static int
service_stats_unlocked(struct pylb_dp *dp, const struct pylb_ip *vip, uint8_t proto,
		       uint16_t port, struct pylb_svc_stats *out,
		       struct pylb_svc_stats *backends, uint32_t max_b)
{
	char name[96];
	int id = svc_find(dp, vip, proto, port, name, sizeof(name));
	const struct pylb_service *s;

	if (id < 0)
		return id;
	s = dp->svcs[id];
	memset(out, 0, sizeof(*out));
	for (uint32_t slot = 0; slot < dp->n_slots; slot++)
		stats_add(out, &dp->lcores[slot].svc_stats[id]);
	for (uint32_t i = 0; i < s->bal.n_backends; i++) {
		struct pylb_svc_stats b = backend_stats(dp, s, i);

		/* A connection of a backend that left the set and came back
		 * ends in the new set without having counted there. */
		b.active = RTE_MAX(b.active, (int64_t)0);
		b.inactive = RTE_MAX(b.inactive, (int64_t)0);
		out->active += b.active;
		out->inactive += b.inactive;
		if (i < max_b)
			backends[i] = b;
	}
	return (int)s->bal.n_backends;
}

int
pylb_dp_service_stats(struct pylb_dp *dp, const struct pylb_ip *vip, uint8_t proto,
		      uint16_t port, struct pylb_svc_stats *out,
		      struct pylb_svc_stats *backends, uint32_t max_b)
{
	PYLB_CTL_LOCKED(dp, service_stats_unlocked(dp, vip, proto, port, out, backends, max_b));
}

int
pylb_dp_service_add(struct pylb_dp *dp, const struct pylb_service_conf *conf)
{
	PYLB_CTL_LOCKED(dp, service_add_unlocked(dp, conf));
}

int
pylb_dp_service_del(struct pylb_dp *dp, const struct pylb_ip *vip, uint8_t proto,
		    uint16_t port)
{
	PYLB_CTL_LOCKED(dp, service_del_unlocked(dp, vip, proto, port));
}

int
pylb_dp_service_backends_set(struct pylb_dp *dp, const struct pylb_ip *vip,
			     uint8_t proto, uint16_t port,
			     const struct pylb_backend *b, uint32_t n)
{
	PYLB_CTL_LOCKED(dp, service_backends_set_unlocked(dp, vip, proto, port, b, n));
}

int
pylb_dp_service_limits_set(struct pylb_dp *dp, const struct pylb_ip *vip, uint8_t proto,
			   uint16_t port, uint32_t max_connections, uint32_t max_new_per_second,
			   uint32_t max_per_client)
{
	PYLB_CTL_LOCKED(dp, service_limits_set_unlocked(dp, vip, proto, port, max_connections,
							max_new_per_second, max_per_client));
}

int
pylb_dp_service_get(struct pylb_dp *dp, const struct pylb_ip *vip, uint8_t proto,
		    uint16_t port, struct pylb_service_conf *conf,
		    struct pylb_backend *b, uint32_t max_b, uint32_t *n_b)
{
	PYLB_CTL_LOCKED(dp, service_get_unlocked(dp, vip, proto, port, conf, b, max_b, n_b));
}

static int
service_fingerprint_unlocked(struct pylb_dp *dp, const struct pylb_ip *vip, uint8_t proto,
			     uint16_t port, uint64_t *out)
{
	char name[96];
	int id = svc_find(dp, vip, proto, port, name, sizeof(name));

	if (id < 0)
		return id;
	*out = pylb_balance_fingerprint(&dp->svcs[id]->bal, dp->conf.hash_key);
	return 0;
}

int
pylb_dp_service_fingerprint(struct pylb_dp *dp, const struct pylb_ip *vip, uint8_t proto,
			    uint16_t port, uint64_t *out)
{
	PYLB_CTL_LOCKED(dp, service_fingerprint_unlocked(dp, vip, proto, port, out));
}

int
pylb_dp_service_list(struct pylb_dp *dp, struct pylb_service_conf *out, uint32_t max)
{
	PYLB_CTL_LOCKED(dp, service_list_unlocked(dp, out, max));
}

/* The lcore whose tables decide t's packets: the flow's owner among
 * several workers, the one worker, or the control side when none runs
 * (packets injected). */
static struct pylb_lcore *
trace_lcore(struct pylb_dp *dp, const struct pylb_tuple *t)
{
	uint32_t n = dp->conf.n_workers;

	return n == 0 ? pylb_control_lcore(dp) :
		&dp->lcores[n == 1 ? 0 : flow_owner(dp, t->src, t->af)];
}

static const char *const answers[] = {
	[L4_ANSWER_NONE] = "",
	[L4_ANSWER_RST] = ", answered with RST",
	[L4_ANSWER_REFUSE] = ", answered with RST (TCP) or ICMP port unreachable (UDP)",
	[L4_ANSWER_PROHIBITED] = ", answered with ICMP unreachable (administratively prohibited)",
};

/* What the fast path would do with the packet of q: the same decision
 * (pylb_l4_decide) on the tables of the lcore that would take it. */
static int
l4_trace_unlocked(struct pylb_dp *dp, const struct pylb_l4_trace_query *q,
		  struct pylb_l4_trace *out)
{
	uint8_t af = q->src.af;
	struct pylb_tuple t = {
		.src = q->src.ip, .dst = q->dst.ip, .sport = rte_cpu_to_be_16(q->sport),
		.dport = rte_cpu_to_be_16(q->dport), .proto = q->proto, .af = af,
		.payload = q->proto == IPPROTO_UDP ? q->payload : NULL, .plen = q->plen,
	};
	const struct pylb_service *svc;
	struct pylb_lcore *lc;
	struct l4_verdict v;
	const char *ended = "";
	char *why = out->why;
	size_t len = sizeof(out->why);

	memset(out, 0, sizeof(*out));
	if ((af != 4 && af != 6) || q->dst.af != af)
		return pylb_fail(-PYLB_E_INVAL, "source and destination must be of one family");
	lc = trace_lcore(dp, &t);
	pylb_l4_decide(lc, &t, q->proto == IPPROTO_TCP ? q->tcp_flags : 0, q->seq, q->ack, NULL,
		       pylb_now(dp), &v);
	out->verdict = v.what;
	out->lcore_slot = lc->slot;
	if (v.ended != 0)
		ended = v.ended == PYLB_C_CONN_REUSED ?
			"its connection ended (a SYN reusing its tuple); " :
			"its connection's backend is down (down_reset); ";
	if (v.c != NULL && v.ended == 0) {
		struct pylb_conn copy;
		struct pylb_conn6 a;

		if (!pylb_conn_snapshot(lc->ct, (uint32_t)(v.c - lc->ct->conns), &copy, &a))
			return pylb_fail(-PYLB_E_STATE, "the connection changed while traced: ask again");
		out->state = copy.state;
		out->backend.addr.af = conn_backend_af(&copy);
		memcpy(out->backend.addr.ip, a.a[CONN_BACKEND], out->backend.addr.af == 4 ? 4 : 16);
		out->backend.port = rte_be_to_cpu_16(copy.bport);
		svc = dp->svcs[copy.svc];
		if (svc != NULL)
			out->service = svc->conf;
		out->route_hash = l4_route_hash(dp->conf.hash_key, copy.method, af, a.a[CONN_CLIENT],
						a.a[CONN_VIP], a.a[CONN_BACKEND], a.a[CONN_LIP]);
		if (v.what == PYLB_L4V_HOLD)
			snprintf(why, len, "a connection opening through the SYN proxy (lcore %u): "
				 "held until its backend answers", lc->slot);
		else
			snprintf(why, len, "a tracked connection (%s, lcore %u): it keeps its backend",
				 copy.proto == IPPROTO_TCP ? pylb_tcp_state_name(copy.state) : "udp",
				 lc->slot);
		return 0;
	}
	svc = v.svc;
	if (svc != NULL)
		out->service = svc->conf;
	if (v.what == PYLB_L4V_DROP) {
		out->reason = v.reason;
		snprintf(why, len, "%sdropped (%s)%s", ended, pylb_counter_name(v.reason),
			 answers[v.answer]);
		return 0;
	}
	if (v.what == PYLB_L4V_COOKIE) {
		snprintf(why, len, "%sa SYN answered with a SYN cookie (syn_proxy %s)", ended,
			 svc->synproxy == PYLB_SYN_PROXY_ALWAYS ? "always" : "under pressure");
		return 0;
	}
	out->backend = svc->bal.backends[v.bi];
	out->route_hash = v.what == PYLB_L4V_UNTRACKED ? v.hash :
		l4_route_hash(dp->conf.hash_key, svc->conf.method, af, t.src, t.dst,
			      out->backend.addr.ip,
			      svc->conf.method == PYLB_L4_FULLNAT ? svc->conf.lips[v.lip].ip : t.src);
	if (v.what == PYLB_L4V_NEW)
		snprintf(why, len, "%sa new connection: %s%s", ended,
			 v.moved ? "the next backend without a connection on the client's "
			 "address and port (the choice has one: NAT could not tell them apart)" :
			 v.quic == L4_QUIC_ROUTED ? "the backend its QUIC connection ID names" :
			 v.persist != NULL ? "the backend the client's network persists on" :
			 svc->sched->why,
			 v.quic == L4_QUIC_UNROUTED ?
			 " (its QUIC connection ID names no backend: a client's Initial, or unknown)" :
			 "");
	else if (v.what == PYLB_L4V_COOKIE_ACK)
		snprintf(why, len, "the ACK of a SYN cookie: the connection opens (%s)",
			 v.persist != NULL ? "the backend the client's network persists on" :
			 svc->sched->why);
	else if (v.what == PYLB_L4V_PICK_UP)
		snprintf(why, len, "a connection opened elsewhere, picked up mid-flow: the "
			 "consistent choice");
	else
		snprintf(why, len, "%sno entry (%s): sent untracked to the consistent choice",
			 ended, v.full != 0 ? pylb_counter_name(v.full) : "a RST is never tracked");
	return 0;
}

int
pylb_dp_l4_trace(struct pylb_dp *dp, const struct pylb_l4_trace_query *q,
		 struct pylb_l4_trace *out)
{
	PYLB_CTL_LOCKED(dp, l4_trace_unlocked(dp, q, out));
}
