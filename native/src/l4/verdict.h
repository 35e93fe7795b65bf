/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * The L4 decision (verdict.c) and what it shares with the act (l4.c): the
 * verdict, and the keys and costs both compute alike.
 */
#ifndef PYLB_VERDICT_H
#define PYLB_VERDICT_H

#include <rte_tcp.h>

#include "l4/ct.h"
#include "l4/service.h"

/* verdict.c: what a client's packet to a service VIP gets, decided from
 * the tables of the lcore that owns its flow, changing nothing (lc is
 * only read). l4.c acts on it; Trace reports it. */
enum l4_answer {
	L4_ANSWER_NONE,
	L4_ANSWER_RST,		/* TCP: a RST */
	L4_ANSWER_REFUSE,	/* TCP: a RST; UDP: ICMP port unreachable */
	L4_ANSWER_PROHIBITED,	/* ICMP unreachable, administratively prohibited */
};
#define L4_TAKE_SOURCE_RATE	1	/* the client network's token */
#define L4_TAKE_SERVICE_RATE	2	/* the service's new-connection token */
struct l4_verdict {
	uint8_t what;			/* enum pylb_l4_verdict */
	uint8_t answer;			/* DROP: enum l4_answer */
	uint16_t reason;		/* DROP: the drop reason */
	uint16_t ended;			/* c ended first: CONN_REUSED, CONN_RESET_DOWN */
	uint16_t full;			/* no room for an entry: the counter that says why */
	uint8_t take;			/* L4_TAKE_*: tokens the act takes */
	bool evict;			/* the entry's room is the oldest half-open one's */
	bool opens;			/* UNTRACKED: it opens a connection */
	uint16_t lport;			/* FullNAT: the local port (network order) */
	uint32_t lip;			/* FullNAT: the local address (an index) */
	struct pylb_conn *c;		/* CONN, HOLD; or the one that ended */
	const struct pylb_service *svc;
	uint32_t hash;			/* the flow's (client, VIP) */
	uint32_t bi;			/* NEW, PICK_UP, UNTRACKED, COOKIE_ACK: the backend */
	uint32_t picked;		/* NEW: the scheduler's own choice (its turn taken) */
	uint32_t src;			/* the client network's slot in per-source counts */
	struct pylb_persist *persist;	/* NEW: the persistence entry that chose bi */
	uint8_t quic;			/* NEW of a QUIC service: L4_QUIC_* */
	bool moved;			/* NEW, COOKIE_ACK: bi is not the choice, whose
					 * backend has a connection on the client's
					 * address and port (NAT: nat_tuple_free) */
};

#define L4_QUIC_ROUTED		1	/* bi: its connection ID's server id */
#define L4_QUIC_UNROUTED	2	/* its connection ID names no backend */
void pylb_l4_decide_rest(struct pylb_lcore *lc, const struct pylb_tuple *t, uint8_t flags,
			 uint32_t seq, uint32_t ack, struct pylb_conn *c, uint64_t now,
			 struct l4_verdict *v);

/* The decision for t (flags, seq, ack: TCP's; k: its table key, if the
 * pipeline made one). Its common case inline, for the fast path: a packet
 * of a connection whose backend set has not changed since it was last
 * seen, not a SYN; the rest in verdict.c. */
static inline void
pylb_l4_decide(struct pylb_lcore *lc, const struct pylb_tuple *t, uint8_t flags, uint32_t seq,
	       uint32_t ack, const struct pylb_ct_key *k, uint64_t now, struct l4_verdict *v)
{
	struct pylb_conn *c = pylb_conn_lookup(lc, t, false, k);

	v->ended = 0;
	v->full = 0;
	v->take = 0;
	v->evict = false;
	v->persist = NULL;
	v->quic = 0;
	v->moved = false;
	v->svc = NULL;
	if (likely(c != NULL) && likely(flags != RTE_TCP_SYN_FLAG) &&
	    likely(c->gen == __atomic_load_n(&lc->dp->gen, __ATOMIC_ACQUIRE))) {
		v->what = unlikely(c->flags & CONN_F_OPENING) ? PYLB_L4V_HOLD : PYLB_L4V_CONN;
		v->c = c;
		return;
	}
	pylb_l4_decide_rest(lc, t, flags, seq, ack, c, now, v);
}
void pylb_l4_decide_no_room(const struct pylb_lcore *lc, const struct pylb_tuple *t,
			    struct l4_verdict *v);

/* The key of t's client in svc's per-client counts. */
static inline void
pylb_client_key(struct pylb_persist_key *k, uint16_t svc, const uint8_t *ip, uint8_t af)
{
	memset(k, 0, sizeof(*k));
	memcpy(k->ip, ip, af == 4 ? 4 : 16);
	k->svc = svc;
	k->af = af;
}

/* The key of t's client network in svc's persistence entries. */
static inline void
pylb_persist_key(struct pylb_persist_key *pk, const struct pylb_service *svc,
		 const struct pylb_tuple *t)
{
	uint8_t len = svc->conf.persistence_prefix;
	uint32_t bits = t->af == 4 ? 32 : 128;

	memset(pk, 0, sizeof(*pk));
	pk->svc = svc->id;
	pk->af = t->af;
	memcpy(pk->ip, t->src, bits / 8);
	for (uint32_t bit = len ? len : bits; bit < bits; bit++)
		pk->ip[bit / 8] &= (uint8_t)~(0x80 >> (bit % 8));
}

/* The cycles between two of svc's new connections on one worker. */
static inline uint64_t
pylb_service_rate_cost(const struct pylb_dp_conf *conf, const struct pylb_service_conf *s)
{
	return rte_get_timer_hz() / pylb_worker_share(conf, s->max_new_per_second);
}

#endif /* PYLB_VERDICT_H */
