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

#include "l4/l4.h"

static uint32_t conn_seq;

/* The per-source counts: their prefixes' masks, budget and rate. */
static void
src_init(const struct pylb_dp *dp, struct pylb_conntrack *ct)
{
	const struct pylb_dp_conf *conf = &dp->conf;
	uint32_t plen4 = conf->source_prefix4 ? conf->source_prefix4 : 24;
	uint32_t plen6 = conf->source_prefix6 ? conf->source_prefix6 : 64;

	ct->src_mask[0] = rte_cpu_to_be_32(plen4 >= 32 ? UINT32_MAX : ~(UINT32_MAX >> plen4));
	for (uint32_t i = 0; i < 4; i++) {
		uint32_t bits = plen6 > 32 * i ? RTE_MIN(plen6 - 32 * i, 32u) : 0;

		ct->src_mask[1 + i] = rte_cpu_to_be_32(bits == 0 ? 0 : bits == 32 ? UINT32_MAX :
						       ~(UINT32_MAX >> bits));
	}
	ct->src_budget = conf->source_half_open_budget ? conf->source_half_open_budget :
		RTE_MAX(ct->half_open_budget / 8, 64u);
	/* Only below the worker's budget does a prefix's budget bind first. */
	if (ct->src_budget < ct->half_open_budget)
		ct->src_ho = rte_zmalloc("pylb_src_half_open", PYLB_SRC_SLOTS * sizeof(*ct->src_ho), 0);
	else
		ct->src_budget = 0;		/* none: not counted */
	if (conf->source_new_per_second != 0) {
		ct->src_cost = RTE_MAX(rte_get_timer_hz() /
				       pylb_worker_share(conf, conf->source_new_per_second), 1u);
		ct->src_rate = rte_zmalloc("pylb_src_rate", PYLB_SRC_SLOTS * sizeof(*ct->src_rate), 0);
	}
}

int
pylb_conn_init(struct pylb_dp *dp, struct pylb_lcore *lc)
{
	struct pylb_conntrack *ct = lc->ct;
	uint32_t cap = dp->conf.conn_capacity ? dp->conf.conn_capacity : PYLB_CONN_DEFAULT;
	char name[RTE_HASH_NAMESIZE];
	struct rte_hash_parameters hp = {
		.name = name,
		.key_len = sizeof(struct pylb_persist_key),
		.hash_func = rte_hash_crc,
		.socket_id = (int)rte_socket_id(),
	};

	/* With workers, the control side only sees the packets the API injects:
	 * its table need not be as large as theirs. */
	if (dp->conf.n_workers != 0 && lc->slot == dp->n_slots - 1)
		cap = RTE_MIN(cap, (uint32_t)PYLB_CONN_CONTROL);
	/* 15 slots per bucket, a bucket per 7 entries: a NAT entry takes one
	 * slot, a FullNAT entry two, so even a table of FullNAT connections
	 * fits. IPv6 addresses: for a quarter of the entries. */
	ct->key = dp->conf.hash_key;
	ct->half_open_budget = dp->conf.half_open_budget ? dp->conf.half_open_budget :
		RTE_MAX(cap / 8, 1u);
	ct->ho_mask = rte_align32pow2(2 * RTE_MIN(ct->half_open_budget, cap)) - 1;
	src_init(dp, ct);
	ct->nb = RTE_MAX((cap + 6) / 7, 4u);
	ct->cap = cap;
	ct->cap6 = RTE_MAX(cap / 4, 16u);
	ct->buckets = rte_zmalloc("pylb_ct", ct->nb * sizeof(*ct->buckets), RTE_CACHE_LINE_SIZE);
	ct->conns = rte_zmalloc("pylb_conns", (cap + 1) * sizeof(*ct->conns), RTE_CACHE_LINE_SIZE);
	ct->free = rte_malloc("pylb_conn_free", cap * sizeof(*ct->free), 0);
	ct->ext6 = rte_zmalloc("pylb_conn6", ct->cap6 * sizeof(*ct->ext6), RTE_CACHE_LINE_SIZE);
	ct->free6 = rte_malloc("pylb_conn6_free", ct->cap6 * sizeof(*ct->free6), 0);
	/* Persistence entries: one per client network (clients hold several
	 * connections each): an eighth of the connections. */
	snprintf(name, sizeof(name), "pylb_pt%u_%u", ++conn_seq, lc->slot);
	hp.entries = RTE_MAX(cap / 8, 64u);
	ct->ph = rte_hash_create(&hp);
	snprintf(name, sizeof(name), "pylb_cl%u_%u", conn_seq, lc->slot);
	ct->clients = rte_hash_create(&hp);
	ct->pers = rte_zmalloc("pylb_pers", hp.entries * sizeof(*ct->pers), RTE_CACHE_LINE_SIZE);
	ct->pfree = rte_malloc("pylb_pers_free", hp.entries * sizeof(*ct->pfree), 0);
	ct->ho_ring = rte_malloc("pylb_half_open", (ct->ho_mask + 1) * sizeof(*ct->ho_ring), 0);
	if (dp->conf.sync) {
		/* Room for a table's worth of notes between two collections. */
		ct->chg_mask = rte_align32pow2(RTE_MAX(cap, 1024u)) - 1;
		ct->chg_ring = rte_malloc("pylb_sync_notes", (ct->chg_mask + 1) *
					  sizeof(*ct->chg_ring), 0);
		snprintf(name, sizeof(name), "pylb_si%u_%u", conn_seq, lc->slot);
		ct->sync_in = rte_ring_create_elem(name, sizeof(struct pylb_conn_record),
						   PYLB_SYNC_IN_RING, (int)rte_socket_id(),
						   RING_F_SP_ENQ | RING_F_SC_DEQ);
		if (ct->chg_ring == NULL || ct->sync_in == NULL)
			return pylb_fail(-PYLB_E_NOMEM, "cannot allocate connection sync's rings "
					 "(lcore slot %u); reserve more hugepages", lc->slot);
	}
	if ((ct->src_budget != 0 && ct->src_ho == NULL) ||
	    (ct->src_cost != 0 && ct->src_rate == NULL) ||
	    ct->ho_ring == NULL || ct->buckets == NULL || ct->conns == NULL || ct->free == NULL || ct->ext6 == NULL ||
	    ct->free6 == NULL || ct->ph == NULL || ct->clients == NULL || ct->pers == NULL ||
	    ct->pfree == NULL)
		return pylb_fail(-PYLB_E_NOMEM,
			"cannot allocate a connection table of %u entries (lcore slot %u); reserve more hugepages or lower the connection capacity",
			cap, lc->slot);
	for (uint32_t i = 0; i < cap; i++)
		ct->free[i] = cap - i;
	ct->n_free = cap;
	for (uint32_t i = 0; i < ct->cap6; i++)
		ct->free6[i] = ct->cap6 - 1 - i;
	ct->n_free6 = ct->cap6;
	for (uint32_t i = 0; i < hp.entries; i++)
		ct->pfree[i] = hp.entries - 1 - i;
	ct->n_pfree = ct->pcap = hp.entries;
	return 0;
}

void
pylb_conn_free(struct pylb_lcore *lc)
{
	struct pylb_conntrack *ct = lc->ct;

	for (uint32_t i = 0; i < ct->n_held; i++)
		rte_pktmbuf_free(ct->held[i].m);
	rte_free(ct->ho_ring);
	rte_free(ct->chg_ring);
	rte_ring_free(ct->sync_in);
	ct->chg_ring = NULL;
	ct->sync_in = NULL;
	rte_free(ct->src_ho);
	rte_free(ct->src_rate);
	rte_free(ct->pp);
	ct->pp = NULL;
	rte_free(ct->buckets);
	rte_free(ct->conns);
	rte_free(ct->free);
	rte_free(ct->ext6);
	rte_free(ct->free6);
	rte_hash_free(ct->ph);
	rte_hash_free(ct->clients);
	rte_free(ct->pers);
	rte_free(ct->pfree);
	memset(ct, 0, sizeof(*ct));
}

static inline bool
addr_eq(const uint8_t *a, const uint8_t *b, uint8_t af)
{
	if (af == 4)
		return *(const unaligned_uint32_t *)a == *(const unaligned_uint32_t *)b;
	return memcmp(a, b, 16) == 0;
}

/* Does entry c carry tuple t (forward: the client's packet; reply: the
 * backend's)? */
static inline bool
conn_match(const struct pylb_conntrack *ct, const struct pylb_conn *c,
	   const struct pylb_tuple *t, bool reply)
{
	if (c->af != t->af || c->proto != t->proto)
		return false;
	if (!reply)
		return c->cport == t->sport && c->vport == t->dport &&
			addr_eq(conn_addr(ct, c, CONN_CLIENT), t->src, t->af) &&
			addr_eq(conn_addr(ct, c, CONN_VIP), t->dst, t->af);
	/* A reply goes to the connection's return side: its local address
	 * and port under FullNAT, its client otherwise (pylb_conn_new). */
	return c->bport == t->sport && c->lport == t->dport &&
		addr_eq(conn_addr(ct, c, CONN_BACKEND), t->src, t->af) &&
		addr_eq(conn_addr(ct, c, CONN_LIP), t->dst, t->af);
}

struct pylb_conn *
pylb_conn_lookup(struct pylb_lcore *lc, const struct pylb_tuple *t, bool reply,
		 const struct pylb_ct_key *k)
{
	struct pylb_conntrack *ct = lc->ct;
	struct ct_pos p;
	uint32_t h;

	if (ct->nb == 0)
		return NULL;
	if (k != NULL && k->hint != 0 && conn_match(ct, &ct->conns[k->hint], t, reply))
		return &ct->conns[k->hint];
	h = k != NULL ? k->h : reply ? pylb_ct_hash(ct->key, t->dst, t->dport, t->proto, t->af) :
		pylb_ct_hash(ct->key, t->src, t->sport, t->proto, t->af);
	ct_pos(ct, h, &p);
	for (int k = 0; k < 2; k++) {
		uint32_t mask = ct_match(p.b[k], p.sig);

		while (mask != 0) {
			struct pylb_conn *c =
				&ct->conns[p.b[k]->slot[__builtin_ctz(mask)] & PYLB_CT_MAX];

			if (conn_match(ct, c, t, reply))
				return c;
			mask &= mask - 1;
		}
		if (p.b[0]->spill == 0)
			break;
	}
	return NULL;
}

/* The hash under which slot value v of bucket b was added: its entry's
 * client side, or (FullNAT) its local side. */
static uint32_t
slot_hash(const struct pylb_conntrack *ct, const struct pylb_ct_bucket *b, uint32_t v)
{
	const struct pylb_conn *c = &ct->conns[v & PYLB_CT_MAX];
	uint32_t h = pylb_ct_hash(ct->key, conn_addr(ct, c, CONN_CLIENT), c->cport, c->proto, c->af);
	struct ct_pos p;

	ct_pos(ct, h, &p);
	if (p.sig == (v & ~PYLB_CT_MAX) && (p.b[0] == b || p.b[1] == b))
		return h;
	return pylb_ct_hash(ct->key, conn_addr(ct, c, CONN_LIP), c->lport, c->proto, c->af);
}

static inline int
free_slot(const struct pylb_ct_bucket *b)
{
	for (int i = 0; i < PYLB_CT_SLOTS; i++)
		if (b->slot[i] == 0)
			return i;
	return -1;
}

/* Where a slot value for hash h goes: the first of its two buckets with
 * room (moved NULL); if both are full, the slot of one whose value can
 * move to its other bucket (one cuckoo step, which keeps the table usable
 * at high load): that value's place in `moved`, `to`. False: nowhere.
 * Read only. */
struct slot_plan {
	struct pylb_ct_bucket *b, *moved;
	int k, i, to, first;
};

static bool
slot_find(const struct pylb_conntrack *ct, uint32_t h, struct slot_plan *pl)
{
	struct ct_pos p;

	ct_pos(ct, h, &p);
	pl->moved = NULL;
	for (int k = 0; k < 2; k++) {
		pl->i = free_slot(p.b[k]);
		if (pl->i >= 0) {
			pl->b = p.b[k];
			pl->k = k;
			return true;
		}
	}
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < PYLB_CT_SLOTS; i++) {
			struct ct_pos q;
			int first, j;

			ct_pos(ct, slot_hash(ct, p.b[k], p.b[k]->slot[i]), &q);
			if (q.b[0] == q.b[1])
				continue;
			first = q.b[0] == p.b[k];	/* the value moves to its second bucket */
			j = free_slot(q.b[first]);
			if (j >= 0) {
				*pl = (struct slot_plan){ .b = p.b[k], .moved = q.b[first], .k = k,
							  .i = i, .to = j, .first = first };
				return true;
			}
		}
	return false;
}

/* Add slot value sig|idx where slot_find says. */
static int
slot_add(struct pylb_conntrack *ct, uint32_t h, uint32_t idx)
{
	struct slot_plan pl;
	struct ct_pos p;

	if (!slot_find(ct, h, &pl))
		return -PYLB_E_FULL;
	ct_pos(ct, h, &p);
	if (pl.moved != NULL) {
		struct ct_pos q;

		ct_pos(ct, slot_hash(ct, pl.b, pl.b->slot[pl.i]), &q);
		pl.moved->slot[pl.to] = pl.b->slot[pl.i];
		q.b[0]->spill += pl.first ? 1 : (uint32_t)-1;
	}
	pl.b->slot[pl.i] = p.sig | idx;
	p.b[0]->spill += (uint32_t)pl.k;
	return 0;
}

/* Is there room for an entry of tuple t (pylb_conn_new, read only)?
 * `freeing`: an entry goes first (the oldest half-open one). */
bool
pylb_conn_room(const struct pylb_conntrack *ct, const struct pylb_tuple *t, bool freeing)
{
	struct slot_plan pl;

	return (ct->n_free != 0 || freeing) && (t->af != 6 || ct->n_free6 != 0 || freeing) &&
		slot_find(ct, pylb_ct_hash(ct->key, t->src, t->sport, t->proto, t->af), &pl);
}

static void
slot_del(struct pylb_conntrack *ct, uint32_t h, uint32_t idx)
{
	struct ct_pos p;

	ct_pos(ct, h, &p);
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < PYLB_CT_SLOTS; i++)
			if (p.b[k]->slot[i] == (p.sig | idx)) {
				p.b[k]->slot[i] = 0;
				p.b[0]->spill -= k;
				return;
			}
}

static inline uint32_t
conn_idx(const struct pylb_conntrack *ct, const struct pylb_conn *c)
{
	return (uint32_t)(c - ct->conns);
}

static inline uint32_t
client_hash(const struct pylb_conntrack *ct, const struct pylb_conn *c)
{
	return pylb_ct_hash(ct->key, conn_addr(ct, c, CONN_CLIENT), c->cport, c->proto, c->af);
}

static inline uint32_t
local_hash(const struct pylb_conntrack *ct, const struct pylb_conn *c)
{
	return pylb_ct_hash(ct->key, conn_addr(ct, c, CONN_LIP), c->lport, c->proto, c->af);
}

/* A new entry for the client's tuple t (to be filled in by the caller),
 * indexed by its client side; NULL when the table is full. */
struct pylb_conn *
pylb_conn_new(struct pylb_lcore *lc, const struct pylb_tuple *t)
{
	struct pylb_conntrack *ct = lc->ct;
	struct pylb_conn *c;
	uint32_t idx;

	if (ct->n_free == 0 || (t->af == 6 && ct->n_free6 == 0))
		return NULL;
	idx = ct->free[ct->n_free - 1];
	c = &ct->conns[idx];
	/* The next new connection's entry, on its way while this one is
	 * scheduled and sent. */
	if (ct->n_free > 1)
		rte_prefetch0_write(&ct->conns[ct->free[ct->n_free - 2]]);
	memset(c, 0, sizeof(*c));
	if (unlikely(ct->pp != NULL))
		ct->pp[idx].len = 0;
	if (t->af == 6)
		c->ext6 = ct->free6[ct->n_free6 - 1];
	c->af = t->af;
	c->proto = t->proto;
	c->cport = t->sport;
	c->vport = t->dport;
	pylb_conn_set_addr(ct, c, CONN_CLIENT, t->src);
	pylb_conn_set_addr(ct, c, CONN_VIP, t->dst);
	/* The return side: the client, until FullNAT gives it a local one. */
	pylb_conn_set_addr(ct, c, CONN_LIP, t->src);
	c->lport = t->sport;
	if (slot_add(ct, pylb_ct_hash(ct->key, t->src, t->sport, t->proto, t->af), idx) != 0) {
		c->af = 0;
		return NULL;
	}
	ct->n_free--;
	ct->n_free6 -= t->af == 6;
	return c;
}

bool
pylb_conn_set_backend(struct pylb_conntrack *ct, struct pylb_conn *c, const uint8_t *ip,
		      uint8_t af)
{
	uint8_t *to;

	if (likely(af == c->af)) {
		pylb_conn_set_addr(ct, c, CONN_BACKEND, ip);
	} else if (c->af == 6) {	/* 6-in-4 */
		to = conn_addr(ct, c, CONN_BACKEND);
		memset(to, 0, 16);
		memcpy(to, ip, 4);
	} else {			/* 4-in-6 */
		if (ct->n_free6 == 0)
			return false;
		c->backend6 = ct->free6[--ct->n_free6];
		memcpy(ct->ext6[c->backend6].a[CONN_BACKEND], ip, 16);
	}
	if (pylb_l4_methods[c->method]->mixed)
		c->backend_af = af;
	return true;
}

/* FullNAT: index the local side too, once it is chosen. */
int
pylb_conn_add_local(struct pylb_lcore *lc, struct pylb_conn *c)
{
	if (slot_add(lc->ct, local_hash(lc->ct, c), conn_idx(lc->ct, c)) != 0)
		return -1;
	c->flags |= CONN_F_LOCAL;
	return 0;
}

/* c's client side out of the table, its entry (and IPv6 addresses) free. */
static void
conn_free(struct pylb_conntrack *ct, struct pylb_conn *c, uint32_t idx)
{
	slot_del(ct, client_hash(ct, c), idx);
	if (c->af == 6)
		ct->free6[ct->n_free6++] = c->ext6;
	else if (unlikely(conn_backend_af(c) == 6))
		ct->free6[ct->n_free6++] = c->backend6;
	__atomic_store_n(&c->af, 0, __ATOMIC_RELEASE);
	ct->free[ct->n_free++] = idx;
}

void
pylb_conn_drop(struct pylb_lcore *lc, struct pylb_conn *c)
{
	struct pylb_conntrack *ct = lc->ct;
	uint32_t idx = conn_idx(ct, c);

	pylb_conn_released(lc, c);
	pylb_conn_counted(lc, c, false);
	if (pylb_conn_half_open(c))
		pylb_half_open_add(ct, c, -1);
	if (unlikely(c->flags & CONN_F_OPENING))
		pylb_conn_unhold(lc, c, NULL);
	if (c->flags & CONN_F_LOCAL)
		slot_del(ct, local_hash(ct, c), idx);
	conn_free(ct, c, idx);
}

void
pylb_conn_discard(struct pylb_lcore *lc, struct pylb_conn *c)
{
	conn_free(lc->ct, c, conn_idx(lc->ct, c));
}

const char *
pylb_tcp_state_name(uint8_t state)
{
	static const char *const names[PYLB_TCP__STATES] = {
		[PYLB_TCP_NONE] = "udp", [PYLB_TCP_SYN_SENT] = "syn_sent",
		[PYLB_TCP_SYN_RECV] = "syn_recv", [PYLB_TCP_MID_FLOW] = "mid_flow",
		[PYLB_TCP_ESTABLISHED] = "established",
		[PYLB_TCP_FIN_WAIT] = "fin_wait", [PYLB_TCP_CLOSE_WAIT] = "close_wait",
		[PYLB_TCP_TIME_WAIT] = "time_wait", [PYLB_TCP_CLOSE] = "close",
	};

	return state < PYLB_TCP__STATES ? names[state] : "?";
}

/* The TCP state machine, seen from the middle: both directions for NAT
 * and FullNAT, the client's only for DR and tunnel (like IPVS). */
static uint8_t
tcp_next(uint8_t state, uint8_t f, bool reply, bool sees_replies)
{
	bool syn = (f & (RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG)) == RTE_TCP_SYN_FLAG;
	bool fin = f & RTE_TCP_FIN_FLAG;

	if (f & RTE_TCP_RST_FLAG)
		return PYLB_TCP_CLOSE;
	switch (state) {
	case PYLB_TCP_SYN_SENT:
		if (reply && (f & RTE_TCP_SYN_FLAG))
			return PYLB_TCP_SYN_RECV;
		/* An ACK from the client completes it as well. */
		/* fall through */
	case PYLB_TCP_SYN_RECV:
		if (fin)
			return reply ? PYLB_TCP_CLOSE_WAIT : PYLB_TCP_FIN_WAIT;
		if (!reply && (f & RTE_TCP_ACK_FLAG) && !(f & RTE_TCP_SYN_FLAG))
			return PYLB_TCP_ESTABLISHED;
		return state;
	case PYLB_TCP_MID_FLOW:
		/* Confirmed by the backend's answer, or (it is not seen) by
		 * the client's next packet. */
		if (fin)
			return reply ? PYLB_TCP_CLOSE_WAIT : PYLB_TCP_FIN_WAIT;
		return reply || !sees_replies ? PYLB_TCP_ESTABLISHED : state;
	case PYLB_TCP_ESTABLISHED:
		if (fin)
			return reply ? PYLB_TCP_CLOSE_WAIT : PYLB_TCP_FIN_WAIT;
		return state;
	case PYLB_TCP_FIN_WAIT:
		return fin && reply ? PYLB_TCP_TIME_WAIT : state;
	case PYLB_TCP_CLOSE_WAIT:
		return fin && !reply ? PYLB_TCP_TIME_WAIT : state;
	case PYLB_TCP_CLOSE:
	case PYLB_TCP_TIME_WAIT:
		/* The tuple is reused by a new connection. */
		if (syn && !reply)
			return sees_replies ? PYLB_TCP_SYN_SENT : PYLB_TCP_SYN_RECV;
		return state;
	default:
		return state;
	}
}

void
pylb_conn_state(struct pylb_lcore *lc, struct pylb_conn *c, uint8_t state)
{
	uint8_t was = c->state;

	c->state = state;
	if (pylb_tcp_half_open(state) != pylb_tcp_half_open(was))
		pylb_half_open_add(lc->ct, c, pylb_tcp_half_open(state) ? 1 : -1);
	/* Closing or closed: no longer open for the limits. */
	pylb_conn_counted(lc, c, state < PYLB_TCP_TIME_WAIT);
	/* Its backend's active/inactive counts follow (rare: a connection
	 * moves at most a few times). */
	if (unlikely((was == PYLB_TCP_ESTABLISHED) != (state == PYLB_TCP_ESTABLISHED)))
		pylb_conn_moved(lc, c, was);
}

void
pylb_conn_update(struct pylb_lcore *lc, struct pylb_conn *c, uint8_t tcp_flags,
		 bool reply, uint64_t now)
{
	c->packets++;
	if (c->proto == IPPROTO_TCP) {
		uint8_t next = tcp_next(c->state, tcp_flags, reply,
					l4_sees_replies(c->method));

		if (unlikely(next != c->state)) {
			pylb_conn_state(lc, c, next);
			pylb_conn_changed(lc->ct, c);
		}
	}
	c->expire_tsc = now + __atomic_load_n(&lc->dp->timeout_tsc[c->state], __ATOMIC_RELAXED);
}

/* Note c (just opened, half-open) as the newest half-open entry. */
void
pylb_conn_opened(struct pylb_lcore *lc, const struct pylb_conn *c, uint32_t src)
{
	struct pylb_conntrack *ct = lc->ct;

	pylb_half_open_at(ct, src, 1);
	if (ct->ho_tail - ct->ho_head > ct->ho_mask)
		ct->ho_head++;		/* forget the oldest note: full of stale ones */
	ct->ho_ring[ct->ho_tail++ & ct->ho_mask] = conn_idx(ct, c);
}

/* Make room under the half-open budget: the oldest entry still half-open
 * goes (like IPVS's drop_entry; established entries never do). False if
 * there is none. */
bool
pylb_conn_evict_half_open(struct pylb_lcore *lc)
{
	struct pylb_conntrack *ct = lc->ct;

	while (ct->ho_head != ct->ho_tail) {
		struct pylb_conn *c = &ct->conns[ct->ho_ring[ct->ho_head++ & ct->ho_mask]];

		if (c->af != 0 && pylb_conn_half_open(c)) {
			pylb_conn_drop(lc, c);
			CNT(lc, HALF_OPEN_EVICTED);
			return true;
		}
	}
	return false;
}

/* Would pylb_conn_evict_half_open find an entry to evict (read only)? */
bool
pylb_conn_evictable(const struct pylb_conntrack *ct)
{
	for (uint32_t h = ct->ho_head; h != ct->ho_tail; h++) {
		const struct pylb_conn *c = &ct->conns[ct->ho_ring[h & ct->ho_mask]];

		if (c->af != 0 && pylb_conn_half_open(c))
			return true;
	}
	return false;
}

/* The client packets held for c (opening through the SYN proxy), in
 * arrival order: moved to `out` (PYLB_SYNPROXY_HOLD of them at most), or
 * freed if out is NULL (c ends); the SYN's copy freed. Returns how many
 * were in out. */
uint32_t
pylb_conn_unhold(struct pylb_lcore *lc, const struct pylb_conn *c, struct pylb_held *out)
{
	struct pylb_conntrack *ct = lc->ct;
	uint32_t idx = conn_idx(ct, c), n = 0, taken = 0;

	for (uint32_t i = 0; i < ct->n_held; i++) {
		struct pylb_held h = ct->held[i];

		if (h.conn != idx)
			ct->held[n++] = h;
		else if (out != NULL && !h.syn)
			out[taken++] = h;
		else
			rte_pktmbuf_free(h.m);
	}
	ct->n_held = n;
	return taken;
}

/* The backend a client network sticks to, if any (refreshed by the caller). */
struct pylb_persist *
pylb_persist_find(struct pylb_lcore *lc, const struct pylb_persist_key *k, uint64_t now)
{
	void *data;
	struct pylb_persist *p;

	if (rte_hash_lookup_data(lc->ct->ph, k, &data) < 0)
		return NULL;
	p = &lc->ct->pers[(uintptr_t)data];
	return (int64_t)(now - p->expire_tsc) < 0 ? p : NULL;
}

struct pylb_persist *
pylb_persist_new(struct pylb_lcore *lc, const struct pylb_persist_key *k)
{
	struct pylb_conntrack *ct = lc->ct;
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
	struct pylb_conntrack *ct = lc->ct;

	if (ct->pcap != 0)
		persist_age(ct, now, RTE_MIN(step, ct->pcap));
	if (ct->cap == 0 || ct->n_free == ct->cap)
		return;
	for (uint32_t i = 0; i < step; i++) {
		struct pylb_conn *c = &ct->conns[ct->sweep + 1];

		if (++ct->sweep == ct->cap)
			ct->sweep = 0;
		if (c->af != 0 && (int64_t)(now - c->expire_tsc) >= 0) {
			if (unlikely(c->flags & CONN_F_OPENING)) {
				if (pylb_synproxy_again(lc, c, now))
					continue;
				CNT(lc, SYN_PROXY_UNANSWERED);
			}
			pylb_conn_drop(lc, c);
			CNT(lc, CONN_EXPIRED);
		}
	}
}

/* A copy of entry i of a table another lcore writes, with its addresses;
 * false if it is free. */
bool
pylb_conn_snapshot(const struct pylb_conntrack *ct, uint32_t i, struct pylb_conn *c,
		   struct pylb_conn6 *a)
{
	*c = ct->conns[i];
	if (c->af == 4) {
		memset(a, 0, sizeof(*a));
		for (int k = 0; k < 4; k++)
			memcpy(a->a[k], &c->a4[k], 4);
		if (conn_backend_af(c) == 6)
			memcpy(a->a[CONN_BACKEND], ct->ext6[c->backend6 < ct->cap6 ?
							  c->backend6 : 0].a[CONN_BACKEND], 16);
	} else if (c->af == 6) {
		*a = ct->ext6[c->ext6 < ct->cap6 ? c->ext6 : 0];
	} else {
		return false;
	}
	return true;
}
