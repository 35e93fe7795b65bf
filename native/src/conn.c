/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * Connection tracking: one table per lcore, written by that lcore only (no
 * locks, no atomics), aged incrementally a few entries per loop. The
 * control side lists connections by reading the entry arrays: a snapshot
 * that never stops a worker.
 */
#include <stdio.h>

#include <rte_hash.h>
#include <rte_malloc.h>
#include <rte_tcp.h>

#include "pkt.h"

static uint32_t conn_seq;

int
pylb_conn_init(struct pylb_dp *dp, struct pylb_lcore *lc)
{
	struct pylb_conntrack *ct = &lc->ct;
	uint32_t cap = dp->conf.conn_capacity ? dp->conf.conn_capacity : PYLB_CONN_DEFAULT;
	char name[RTE_HASH_NAMESIZE];
	struct rte_hash_parameters hp = {
		.name = name,
		.entries = 2 * cap,	/* client and reply tuples */
		.key_len = sizeof(struct pylb_conn_key),
		.hash_func = rte_hash_crc,
		.socket_id = (int)rte_socket_id(),
	};

	snprintf(name, sizeof(name), "pylb_ct%u_%u", ++conn_seq, lc->slot);
	ct->h = rte_hash_create(&hp);
	/* Persistence entries: one per client network, at most one per
	 * connection; a quarter of the connections is plenty. */
	snprintf(name, sizeof(name), "pylb_pt%u_%u", conn_seq, lc->slot);
	hp.entries = RTE_MAX(cap / 4, 64u);
	hp.key_len = sizeof(struct pylb_persist_key);
	ct->ph = rte_hash_create(&hp);
	ct->conns = rte_zmalloc("pylb_conns", cap * sizeof(*ct->conns), RTE_CACHE_LINE_SIZE);
	ct->free = rte_malloc("pylb_conn_free", cap * sizeof(*ct->free), 0);
	ct->pers = rte_zmalloc("pylb_pers", hp.entries * sizeof(*ct->pers), RTE_CACHE_LINE_SIZE);
	ct->pfree = rte_malloc("pylb_pers_free", hp.entries * sizeof(*ct->pfree), 0);
	if (ct->h == NULL || ct->ph == NULL || ct->conns == NULL || ct->free == NULL ||
	    ct->pers == NULL || ct->pfree == NULL)
		return -PYLB_E_NOMEM;
	ct->cap = cap;
	for (uint32_t i = 0; i < cap; i++)
		ct->free[i] = cap - 1 - i;
	ct->n_free = cap;
	for (uint32_t i = 0; i < hp.entries; i++)
		ct->pfree[i] = hp.entries - 1 - i;
	ct->n_pfree = ct->pcap = hp.entries;
	return 0;
}

void
pylb_conn_free(struct pylb_lcore *lc)
{
	rte_hash_free(lc->ct.h);
	rte_hash_free(lc->ct.ph);
	rte_free(lc->ct.conns);
	rte_free(lc->ct.free);
	rte_free(lc->ct.pers);
	rte_free(lc->ct.pfree);
	memset(&lc->ct, 0, sizeof(lc->ct));
}

/* The reply tuple of a NAT connection: backend -> client. */
void
pylb_conn_reply_key(const struct pylb_conn *c, struct pylb_conn_key *k)
{
	memset(k, 0, sizeof(*k));
	memcpy(k->src, c->backend, 16);
	k->sport = c->bport;
	if (c->method == PYLB_L4_FULLNAT) {
		memcpy(k->dst, c->lip, 16);
		k->dport = c->lport;
	} else {
		memcpy(k->dst, c->key.src, 16);
		k->dport = c->key.sport;
	}
	k->proto = c->key.proto;
	k->af = c->key.af;
}

struct pylb_conn *
pylb_conn_new(struct pylb_lcore *lc, const struct pylb_conn_key *k)
{
	struct pylb_conntrack *ct = &lc->ct;
	struct pylb_conn *c;
	uint32_t idx;

	if (ct->n_free == 0)
		return NULL;
	idx = ct->free[--ct->n_free];
	c = &ct->conns[idx];
	memset(c, 0, sizeof(*c));
	c->key = *k;
	if (rte_hash_add_key_data(ct->h, k, (void *)(uintptr_t)idx) < 0) {
		ct->free[ct->n_free++] = idx;
		return NULL;
	}
	c->in_use = 1;
	return c;
}

/* Index the reply tuple once the backend is known (NAT). */
int
pylb_conn_add_reply(struct pylb_lcore *lc, struct pylb_conn *c)
{
	struct pylb_conn_key rk;
	uint32_t idx = (uint32_t)(c - lc->ct.conns);

	pylb_conn_reply_key(c, &rk);
	return rte_hash_add_key_data(lc->ct.h, &rk,
				     (void *)(uintptr_t)(idx | PYLB_CONN_REPLY));
}

void
pylb_conn_drop(struct pylb_lcore *lc, struct pylb_conn *c)
{
	struct pylb_conntrack *ct = &lc->ct;

	rte_hash_del_key(ct->h, &c->key);
	if (c->method == PYLB_L4_NAT || c->method == PYLB_L4_FULLNAT) {
		struct pylb_conn_key rk;

		pylb_conn_reply_key(c, &rk);
		rte_hash_del_key(ct->h, &rk);
	}
	c->in_use = 0;
	ct->free[ct->n_free++] = (uint32_t)(c - ct->conns);
}

/* Look a 5-tuple up; *reply says which direction it matched. */
struct pylb_conn *
pylb_conn_find(struct pylb_lcore *lc, const struct pylb_conn_key *k, bool *reply)
{
	void *data;

	if (lc->ct.h == NULL || rte_hash_lookup_data(lc->ct.h, k, &data) < 0)
		return NULL;
	*reply = ((uintptr_t)data & PYLB_CONN_REPLY) != 0;
	return &lc->ct.conns[(uintptr_t)data & ~(uintptr_t)PYLB_CONN_REPLY];
}

/* The TCP state machine, seen from the middle (both directions for NAT,
 * the client's only for DR and tunnel). */
void
pylb_conn_update(struct pylb_lcore *lc, struct pylb_conn *c, uint8_t tcp_flags,
		 bool reply, uint64_t now)
{
	const struct pylb_dp *dp = lc->dp;

	c->packets++;
	if (c->key.proto == IPPROTO_TCP) {
		if (tcp_flags & RTE_TCP_RST_FLAG) {
			c->state = PYLB_TCP_CLOSE;
		} else {
			switch (c->state) {
			case PYLB_TCP_SYN_RECV:
				if (tcp_flags & RTE_TCP_FIN_FLAG)
					c->state = PYLB_TCP_FIN_WAIT;
				else if (!reply && (tcp_flags & RTE_TCP_ACK_FLAG) &&
					 !(tcp_flags & RTE_TCP_SYN_FLAG))
					c->state = PYLB_TCP_ESTABLISHED;
				break;
			case PYLB_TCP_ESTABLISHED:
				if (tcp_flags & RTE_TCP_FIN_FLAG)
					c->state = PYLB_TCP_FIN_WAIT;
				break;
			case PYLB_TCP_FIN_WAIT:
				if ((tcp_flags & RTE_TCP_FIN_FLAG) && reply)
					c->state = PYLB_TCP_TIME_WAIT;
				break;
			case PYLB_TCP_CLOSE:
			case PYLB_TCP_TIME_WAIT:
				/* The tuple is reused by a new connection. */
				if ((tcp_flags & (RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG)) ==
				    RTE_TCP_SYN_FLAG && !reply)
					c->state = PYLB_TCP_SYN_RECV;
				break;
			default:
				break;
			}
		}
	}
	c->expire_tsc = now + dp->timeout_tsc[c->state];
}

/* The backend a client network sticks to, if any (refreshed by the caller). */
struct pylb_persist *
pylb_persist_find(struct pylb_lcore *lc, const struct pylb_persist_key *k, uint64_t now)
{
	void *data;
	struct pylb_persist *p;

	if (rte_hash_lookup_data(lc->ct.ph, k, &data) < 0)
		return NULL;
	p = &lc->ct.pers[(uintptr_t)data];
	return (int64_t)(now - p->expire_tsc) < 0 ? p : NULL;
}

struct pylb_persist *
pylb_persist_new(struct pylb_lcore *lc, const struct pylb_persist_key *k)
{
	struct pylb_conntrack *ct = &lc->ct;
	struct pylb_persist *p;
	void *data;
	uint32_t idx;

	if (rte_hash_lookup_data(ct->ph, k, &data) >= 0)
		return &ct->pers[(uintptr_t)data];	/* expired, not yet swept */
	if (ct->n_pfree == 0)
		return NULL;
	idx = ct->pfree[--ct->n_pfree];
	p = &ct->pers[idx];
	memset(p, 0, sizeof(*p));
	p->key = *k;
	if (rte_hash_add_key_data(ct->ph, k, (void *)(uintptr_t)idx) < 0) {
		ct->pfree[ct->n_pfree++] = idx;
		return NULL;
	}
	p->in_use = 1;
	return p;
}

static void
persist_age(struct pylb_conntrack *ct, uint64_t now, uint32_t step)
{
	if (ct->n_pfree == ct->pcap)
		return;
	for (uint32_t i = 0; i < step; i++) {
		struct pylb_persist *p = &ct->pers[ct->psweep];

		if (++ct->psweep == ct->pcap)
			ct->psweep = 0;
		if (p->in_use && (int64_t)(now - p->expire_tsc) >= 0) {
			rte_hash_del_key(ct->ph, &p->key);
			p->in_use = 0;
			ct->pfree[ct->n_pfree++] = (uint32_t)(p - ct->pers);
		}
	}
}

void
pylb_conn_age(struct pylb_lcore *lc, uint64_t now, uint32_t step)
{
	struct pylb_conntrack *ct = &lc->ct;

	if (ct->pcap != 0)
		persist_age(ct, now, RTE_MIN(step, ct->pcap));
	if (ct->cap == 0 || ct->n_free == ct->cap)
		return;
	for (uint32_t i = 0; i < step; i++) {
		struct pylb_conn *c = &ct->conns[ct->sweep];

		if (++ct->sweep == ct->cap)
			ct->sweep = 0;
		if (c->in_use && (int64_t)(now - c->expire_tsc) >= 0) {
			pylb_conn_drop(lc, c);
			CNT(lc, CONN_EXPIRED);
		}
	}
}

static void
ip_of(struct pylb_ip *out, const uint8_t *ip, uint8_t af)
{
	memset(out, 0, sizeof(*out));
	out->af = af;
	memcpy(out->ip, ip, af == 4 ? 4 : 16);
}

int
pylb_dp_conn_list(struct pylb_dp *dp, struct pylb_conn_info *out, uint32_t max)
{
	uint64_t now = pylb_now(dp), hz = rte_get_timer_hz();
	uint32_t n = 0;

	for (uint32_t s = 0; s < dp->n_slots; s++) {
		const struct pylb_conntrack *ct = &dp->lcores[s].ct;

		for (uint32_t i = 0; i < ct->cap && n < max; i++) {
			struct pylb_conn c = ct->conns[i];	/* a copy: the worker moves on */
			struct pylb_conn_info *o = &out[n];

			if (!c.in_use)
				continue;
			memset(o, 0, sizeof(*o));
			ip_of(&o->client, c.key.src, c.key.af);
			ip_of(&o->vip, c.key.dst, c.key.af);
			ip_of(&o->backend, c.backend, c.key.af);
			if (c.method == PYLB_L4_FULLNAT) {
				ip_of(&o->local, c.lip, c.key.af);
				o->lport = rte_be_to_cpu_16(c.lport);
			}
			o->cport = rte_be_to_cpu_16(c.key.sport);
			o->vport = rte_be_to_cpu_16(c.key.dport);
			o->bport = rte_be_to_cpu_16(c.bport);
			o->proto = c.key.proto;
			o->state = c.state;
			o->lcore_slot = (uint16_t)s;
			o->expires_ms = c.expire_tsc > now ? (c.expire_tsc - now) * 1000 / hz : 0;
			o->packets = c.packets;
			n++;
		}
	}
	return (int)n;
}

uint64_t
pylb_dp_conn_count(const struct pylb_dp *dp)
{
	uint64_t n = 0;

	for (uint32_t s = 0; s < dp->n_slots; s++)
		n += dp->lcores[s].ct.cap - dp->lcores[s].ct.n_free;
	return n;
}

void
pylb_dp_clock_advance(struct pylb_dp *dp, uint64_t ms)
{
	__atomic_fetch_add(&dp->clock_offset, ms * rte_get_timer_hz() / 1000,
			   __ATOMIC_RELAXED);
}
