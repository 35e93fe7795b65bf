/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * Connection records: entries written out (export for a snapshot, the
 * changed ones for connection sync) and read back in (a restore before
 * the workers run, a peer's sync records on the worker that owns each).
 * Checked field by field: a record never installs what the fast path
 * could not have made.
 */
#include <stdio.h>
#include <string.h>

#include <rte_ring.h>

#include "l4/l4.h"

/* Entry i of ct as a record; false if it holds no connection, or one
 * still opening through the SYN proxy. */
static bool
conn_record(const struct pylb_conntrack *ct, uint32_t i, uint64_t now,
	    struct pylb_conn_record *o)
{
	uint64_t hz = rte_get_timer_hz();
	struct pylb_conn6 a;
	struct pylb_conn c;

	if (i == 0 || i > ct->cap || !pylb_conn_snapshot(ct, i, &c, &a) ||
	    (c.flags & CONN_F_OPENING))
		return false;
	memset(o, 0, sizeof(*o));
	o->af = c.af;
	o->proto = c.proto;
	o->state = c.state;
	o->method = c.method;
	o->cport = rte_be_to_cpu_16(c.cport);
	o->vport = rte_be_to_cpu_16(c.vport);
	o->bport = rte_be_to_cpu_16(c.bport);
	o->lport = rte_be_to_cpu_16(c.lport);
	o->flags = c.flags & PYLB_REC_FLAGS;
	/* A tunnel's backend of the other family (0: the connection's). */
	o->backend_af = conn_backend_af(&c) != c.af ? conn_backend_af(&c) : 0;
	/* (A 4-in-6 entry holds its backend's IPv6 entry there.) */
	o->seq_delta = o->backend_af == 6 ? 0 : c.seq_delta;
	o->expires_ms = c.expire_tsc > now ?
		(uint32_t)RTE_MIN((c.expire_tsc - now) * 1000 / hz, UINT32_MAX) : 0;
	memcpy(o->client, a.a[CONN_CLIENT], 16);
	memcpy(o->vip, a.a[CONN_VIP], 16);
	memcpy(o->backend, a.a[CONN_BACKEND], 16);
	memcpy(o->local, a.a[CONN_LIP], 16);
	return true;
}

int
pylb_dp_conn_export(struct pylb_dp *dp, struct pylb_conn_record *out, uint32_t max)
{
	uint64_t now = pylb_now(dp);
	uint32_t n = 0;

	for (uint32_t s = 0; s < dp->n_slots; s++)
		for (uint32_t i = 1; i <= dp->lcores[s].ct->cap && n < max; i++)
			n += conn_record(dp->lcores[s].ct, i, now, &out[n]);
	return (int)n;
}

int
pylb_dp_sync_collect(struct pylb_dp *dp, struct pylb_conn_record *out, uint32_t max)
{
	uint64_t now = pylb_now(dp);
	uint32_t n = 0;

	for (uint32_t s = 0; s < dp->n_slots; s++) {
		struct pylb_conntrack *ct = dp->lcores[s].ct;
		uint32_t head, tail;

		if (ct->chg_ring == NULL)
			continue;
		head = ct->chg_head;
		tail = __atomic_load_n(&ct->chg_tail, __ATOMIC_ACQUIRE);
		for (; head != tail && n < max; head++)
			n += conn_record(ct, ct->chg_ring[head & ct->chg_mask], now, &out[n]);
		__atomic_store_n(&ct->chg_head, head, __ATOMIC_RELEASE);
	}
	return (int)n;
}

uint64_t
pylb_dp_sync_lost(const struct pylb_dp *dp)
{
	uint64_t n = 0;

	for (uint32_t s = 0; s < dp->n_slots; s++)
		n += __atomic_load_n(&dp->lcores[s].ct->chg_lost, __ATOMIC_RELAXED);
	return n;
}

/* Restoring connections (before the workers run) and connection sync. */

/* The index of backend (addr, port) in svc; UINT32_MAX if it has none. A
 * backend port 0 keeps the client's: the record's bport is the VIP's. */
static uint32_t
backend_of(const struct pylb_service *svc, const struct pylb_conn_record *r)
{
	uint8_t af = r->backend_af ? r->backend_af : r->af;

	for (uint32_t i = 0; i < svc->bal.n_backends; i++) {
		const struct pylb_backend *b = &svc->bal.backends[i];

		if (b->addr.af == af && memcmp(b->addr.ip, r->backend, af == 4 ? 4 : 16) == 0 &&
		    (b->port ? b->port : r->vport) == r->bport)
			return i;
	}
	return UINT32_MAX;
}

/* The lcore slot whose table r belongs in (the flow's owner; FullNAT: the
 * owner of its local port, which must be the same); -1 if none can take
 * it, or it is not a record at all. */
static int
record_owner(const struct pylb_dp *dp, const struct pylb_conn_record *r)
{
	uint32_t n = dp->conf.n_workers, slot;

	if ((r->af != 4 && r->af != 6) || (r->proto != IPPROTO_TCP && r->proto != IPPROTO_UDP) ||
	    r->state >= PYLB_TCP__STATES || (r->proto == IPPROTO_UDP) != (r->state == PYLB_TCP_NONE) ||
	    r->expires_ms == 0 || r->method > PYLB_L4_GUE || (r->flags & ~PYLB_REC_FLAGS) ||
	    ((r->flags & PYLB_REC_SYNPROXY) && r->proto != IPPROTO_TCP) ||
	    (r->method == PYLB_L4_FULLNAT && r->lport == 0))
		return -1;
	if (n < 2)
		return 0;
	slot = flow_owner(dp, r->client, r->af);
	/* FullNAT replies find the worker by the local port. */
	if (r->method == PYLB_L4_FULLNAT && r->lport % n != slot)
		return -1;
	return (int)slot;
}

/* Install record r in lc's table (counted under `counter`); or, if a
 * peer's earlier record installed the connection (`synced`), bring it up
 * to date. False if r is skipped: its service (VIP, port, protocol,
 * method) or backend is not configured, or its tuple is taken by a
 * connection of this appliance's own. */
static bool
conn_install(struct pylb_dp *dp, struct pylb_lcore *lc, const struct pylb_conn_record *r,
	     uint64_t now, enum pylb_counter counter, bool synced)
{
	struct pylb_tuple t = {
		.src = r->client, .dst = r->vip, .sport = rte_cpu_to_be_16(r->cport),
		.dport = rte_cpu_to_be_16(r->vport), .proto = r->proto, .af = r->af,
	};
	const struct pylb_service *svc = service_find(dp, &t);
	/* Never longer than its state's timeout (a record is not trusted). */
	uint64_t left = RTE_MIN((uint64_t)r->expires_ms * rte_get_timer_hz() / 1000,
				__atomic_load_n(&dp->timeout_tsc[r->state], __ATOMIC_RELAXED));
	struct pylb_conn *c;
	uint32_t bi;

	if (svc == NULL || svc->conf.method != r->method ||
	    (bi = backend_of(svc, r)) == UINT32_MAX)
		return false;
	c = pylb_conn_lookup(lc, &t, false, NULL);
	if (c != NULL) {
		if (!synced || !(c->flags & CONN_F_SYNCED))
			return false;
		if (c->state != r->state)
			pylb_conn_state(lc, c, r->state);
		c->expire_tsc = now + left;
		lc->stats->c[counter]++;
		return true;
	}
	c = pylb_conn_new(lc, &t);
	if (c == NULL)
		return false;
	c->method = r->method;
	c->seq_delta = r->seq_delta;
	if (!pylb_conn_set_backend(lc->ct, c, svc->bal.backends[bi].addr.ip,
				   svc->bal.backends[bi].addr.af)) {
		pylb_conn_discard(lc, c);
		return false;
	}
	c->bport = rte_cpu_to_be_16(r->bport);
	c->svc = svc->id;
	c->bidx = (uint16_t)bi;
	c->gen = __atomic_load_n(&dp->gen, __ATOMIC_ACQUIRE);
	c->state = r->state;
	c->flags = (r->flags & PYLB_REC_FLAGS) | (synced ? CONN_F_SYNCED : 0);
	c->expire_tsc = now + left;
	if (r->method == PYLB_L4_FULLNAT) {
		pylb_conn_set_addr(lc->ct, c, CONN_LIP, r->local);
		c->lport = rte_cpu_to_be_16(r->lport);
		if (pylb_conn_add_local(lc, c) != 0) {
			pylb_conn_discard(lc, c);
			return false;
		}
	}
	/* Counted as if it had opened here: half-open, open, its backend's. */
	if (pylb_conn_half_open(c))
		pylb_conn_opened(lc, c, lc->ct->src_ho != NULL ?
				 pylb_src_slot(lc->ct, r->client, r->af) : 0);
	(*conn_gauge(&svc->bstats[(size_t)lc->slot * svc->bstride + bi], c->state))++;
	if (svc->conf.max_per_client != 0)
		c->flags |= CONN_F_CLIENT;
	pylb_conn_counted(lc, c, c->state < PYLB_TCP_TIME_WAIT);
	lc->stats->c[counter]++;
	return true;
}

static int
conn_install_unlocked(struct pylb_dp *dp, const struct pylb_conn_record *r, uint32_t n)
{
	uint64_t now = pylb_now(dp);
	int done = 0;

	if (dp->running)
		return pylb_fail(-PYLB_E_STATE, "connections are restored before the dataplane "
				 "starts (its workers own their tables once they run)");
	for (uint32_t i = 0; i < n; i++) {
		int slot = record_owner(dp, &r[i]);

		done += slot >= 0 &&
			conn_install(dp, &dp->lcores[slot], &r[i], now, PYLB_C_CONN_RESTORED, false);
	}
	return done;
}

int
pylb_dp_conn_install(struct pylb_dp *dp, const struct pylb_conn_record *r, uint32_t n)
{
	PYLB_CTL_LOCKED(dp, conn_install_unlocked(dp, r, n));
}

/* A worker's share of a peer's records (its sync_in ring). */
void
pylb_sync_drain(struct pylb_lcore *lc)
{
	struct pylb_conn_record r[PYLB_BURST];
	unsigned int n = rte_ring_dequeue_burst_elem(lc->ct->sync_in, r, sizeof(r[0]), PYLB_BURST,
						     NULL);

	for (unsigned int i = 0; i < n; i++)
		conn_install(lc->dp, lc, &r[i], pylb_now(lc->dp), PYLB_C_CONN_SYNCED, true);
}

static int
sync_apply_unlocked(struct pylb_dp *dp, const struct pylb_conn_record *r, uint32_t n)
{
	bool running = __atomic_load_n(&dp->running, __ATOMIC_ACQUIRE) && dp->conf.n_workers;
	uint64_t now = pylb_now(dp);
	int done = 0;

	if (!dp->conf.sync)
		return pylb_fail(-PYLB_E_STATE, "connection sync is off in this dataplane");
	for (uint32_t i = 0; i < n; i++) {
		int slot = record_owner(dp, &r[i]);

		if (slot < 0)
			continue;
		if (!running)
			done += conn_install(dp, &dp->lcores[slot], &r[i], now, PYLB_C_CONN_SYNCED,
					     true);
		else
			done += rte_ring_enqueue_elem(dp->lcores[slot].ct->sync_in,
						      (void *)(uintptr_t)&r[i], sizeof(r[i])) == 0;
	}
	return done;
}

int
pylb_dp_sync_apply(struct pylb_dp *dp, const struct pylb_conn_record *r, uint32_t n)
{
	PYLB_CTL_LOCKED(dp, sync_apply_unlocked(dp, r, n));
}
