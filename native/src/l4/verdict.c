/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * The L4 decision: what a client's packet to a service VIP gets (its
 * connection, a new one and its backend, a pick-up, a cookie, untracked,
 * or a drop with its reason and answer), decided from the tables of the
 * lcore that owns the flow and changing nothing. The fast path (l4.c)
 * acts on it; Trace (service.c) reports it: one decision, so the two
 * cannot disagree. What acting takes (a token, a scheduler's turn, an
 * entry, a FullNAT port) is only looked at here, and taken by the act.
 */
#include <rte_tcp.h>

#include "l4/scheduler.h"
#include "l4/l4.h"

/* How a connection opens. */
enum pylb_opening {
	PYLB_OPEN_NEW,		/* a SYN (a UDP packet) */
	PYLB_OPEN_PROVEN,	/* a cookie's ACK: not held to its network's budget */
	PYLB_OPEN_MID_FLOW,	/* a connection opened elsewhere (another
				 * appliance, before a restart): the consistent
				 * choice, no limits, never evicts */
};

static inline void
refused(struct l4_verdict *v, int reason, uint8_t answer)
{
	v->what = PYLB_L4V_DROP;
	v->reason = (uint16_t)reason;
	v->answer = answer;
}

/* Is TCP refused for `why` (a limit's) answered with a RST?
 * Limits are, so a client learns at once; not a FullNAT pool without a
 * port, nor a source's rate: that is where floods come from, and a RST
 * each would reflect them. */
static inline bool
refusal_resets(int why)
{
	return why != PYLB_D_FULLNAT_NO_PORT && why != PYLB_D_LIMIT_SOURCE_RATE;
}

/* Tokens in bucket b at `now` for one of `cost`? (pylb_tokens_take, read only.) */
static inline bool
tokens_have(const struct pylb_tokens *b, uint64_t now, uint64_t cost, uint64_t most)
{
	return RTE_MIN(b->credit + (now - b->tsc), most) >= cost;
}

/* A service's limits for a new connection of t: 0 if it may open, else
 * the drop reason. */
static int
limits_refuse(const struct pylb_lcore *lc, const struct pylb_service *svc,
	      const struct pylb_tuple *t, uint64_t now, struct l4_verdict *v)
{
	const struct pylb_service_conf *s = &svc->conf;
	const struct pylb_dp_conf *conf = &lc->dp->conf;

	if (s->max_connections != 0 &&
	    lc->svc_conns[svc->id] >= pylb_worker_share(conf, s->max_connections))
		return PYLB_D_LIMIT_SERVICE_CONNS;
	if (s->max_per_client != 0) {
		struct pylb_persist_key k;
		void *data;

		pylb_client_key(&k, svc->id, t->src, t->af);
		if (rte_hash_lookup_data(lc->ct->clients, &k, &data) >= 0 &&
		    (uintptr_t)data >= s->max_per_client)
			return PYLB_D_LIMIT_CLIENT_CONNS;
	}
	if (s->max_new_per_second != 0) {
		if (!tokens_have(&lc->svc_rate[svc->id], now, pylb_service_rate_cost(conf, s),
				 rte_get_timer_hz()))
			return PYLB_D_LIMIT_SERVICE_RATE;
		v->take |= L4_TAKE_SERVICE_RATE;
	}
	return 0;
}

/* Has backend i this worker's share of its max_conns open? Open counts
 * as IPVS's upper threshold does: active and inactive connections. */
static inline bool
backend_full(const struct pylb_lcore *lc, const struct pylb_service *svc, uint32_t i)
{
	const struct pylb_svc_stats *st = &svc->bstats[(size_t)lc->slot * svc->bstride + i];
	uint32_t max = svc->bal.backends[i].max_conns;

	return max != 0 &&
		st->active + st->inactive >= (int64_t)pylb_worker_share(&lc->dp->conf, max);
}

/* The NAT connection here that has backend i's side of t, the address
 * and port a backend knows it by (the client's own), if any. The client's
 * worker holds all of its connections (owner_hash): this table says. Not
 * the entry t's SYN ends (v->c, reused), nor a DR or tunnel one (its
 * backend sees the VIP as destination). */
static struct pylb_conn *
nat_tuple_holder(struct pylb_lcore *lc, const struct pylb_service *svc,
		 const struct pylb_tuple *t, uint32_t i, const struct l4_verdict *v)
{
	const struct pylb_backend *b = &svc->bal.backends[i];
	struct pylb_tuple r = {
		.src = b->addr.ip, .dst = t->src,
		.sport = b->port ? rte_cpu_to_be_16(b->port) : t->dport, .dport = t->sport,
		.proto = t->proto, .af = t->af,
	};
	struct pylb_conn *c = pylb_conn_lookup(lc, &r, true, NULL);

	return c != NULL && c != v->c &&
		pylb_l4_methods[c->method]->replies == L4_REPLIES_ROUTED ? c : NULL;
}

/* In place of a chosen backend that cannot take t: the next live backend
 * with room (and, with `tuple`, no NAT connection on t's client side:
 * nat_tuple_holder), from a place the flow's hash picks, so that the
 * overflow spreads; UINT32_MAX if none is. */
static uint32_t
backend_next(struct pylb_lcore *lc, const struct pylb_service *svc, const struct pylb_tuple *t,
	     const struct l4_verdict *v, bool tuple)
{
	uint32_t n = svc->bal.n_backends;

	for (uint32_t i = 0, j = v->hash % n; i < n; i++, j = j + 1 == n ? 0 : j + 1)
		if (pylb_backend_live(&svc->bal.backends[j]) && !backend_full(lc, svc, j) &&
		    (!tuple || nat_tuple_holder(lc, svc, t, j, v) == NULL))
			return j;
	return UINT32_MAX;
}

/* NAT keeps the client's address and port, so a backend tells its
 * connections apart by those alone: a client that uses one port towards
 * two VIPs whose services share a backend (Linux picks a port per
 * destination) would open at that backend a second connection on the
 * first's tuple, its SYN answered with the first's ACK and never a
 * SYN-ACK, and the two's replies could not be told apart here. So the
 * chosen backend bi if its side is free, or holds a TCP connection that
 * ended (time_wait, close: it ends here, as a SYN reusing its own tuple
 * would end it); else backend_next's (v->moved); UINT32_MAX if none is. */
static uint32_t
nat_tuple_free(struct pylb_lcore *lc, const struct pylb_service *svc,
	       const struct pylb_tuple *t, uint32_t bi, struct l4_verdict *v)
{
	struct pylb_conn *c = nat_tuple_holder(lc, svc, t, bi, v);

	if (likely(c == NULL))
		return bi;
	if (t->proto == IPPROTO_TCP && v->c == NULL &&
	    (c->state == PYLB_TCP_TIME_WAIT || c->state == PYLB_TCP_CLOSE)) {
		v->ended = PYLB_C_CONN_REUSED;
		v->c = c;
		return bi;
	}
	v->moved = true;
	return backend_next(lc, svc, t, v, true);
}

/* Persistence: the client's network sticks to the backend it had, while
 * its entry lives and that backend still takes new connections (a
 * drained, down or removed backend is replaced by the scheduler's choice):
 * that backend, its entry in v->persist; else `chosen`. */
static uint32_t
persisted(struct pylb_lcore *lc, const struct pylb_service *svc, const struct pylb_tuple *t,
	  uint32_t chosen, uint64_t now, struct l4_verdict *v)
{
	struct pylb_persist_key pk;
	struct pylb_persist *p;

	pylb_persist_key(&pk, svc, t);
	p = pylb_persist_find(lc, &pk, now);
	if (p != NULL)
		for (uint32_t i = 0; i < svc->bal.n_backends; i++) {
			const struct pylb_backend *b = &svc->bal.backends[i];

			if (pylb_backend_live(b) && memcmp(b->addr.ip, p->backend, 16) == 0 &&
			    b->port == p->bport) {
				v->persist = p;
				return i;
			}
		}
	return chosen;
}

/* The ACLs refuse t's new connection to svc: v says how it is answered. */
static bool
acl_refuses(const struct pylb_lcore *lc, const struct pylb_tuple *t,
	    const struct pylb_service *svc, struct l4_verdict *v)
{
	const struct pylb_acls *acls = __atomic_load_n(&lc->dp->acls, __ATOMIC_ACQUIRE);
	uint32_t list;
	uint8_t action;

	if (likely(acls == NULL) || !pylb_acl_refuses(acls, t->src, t->af, svc->id, &list))
		return false;
	action = acls->action[list];
	refused(v, PYLB_D_ACL_DENIED,
		action == PYLB_ACL_RESET && t->proto == IPPROTO_TCP ? L4_ANSWER_RST :
		action == PYLB_ACL_UNREACHABLE ? L4_ANSWER_PROHIBITED : L4_ANSWER_NONE);
	return true;
}

/* No entry for t (no room, or a RST): sent to the consistent choice
 * unless its replies could not be told from another service's. */
static void
untracked(const struct pylb_lcore *lc, const struct pylb_tuple *t,
	  const struct pylb_service *svc, bool opens, struct l4_verdict *v)
{
	const struct l4_method *method = pylb_l4_methods[svc->conf.method];

	v->bi = svc->sched->consistent(svc, t, v->hash);
	if (method->untracked_exact != NULL &&
	    !method->untracked_exact(lc->dp, svc, t, &svc->bal.backends[v->bi]))
		return refused(v, PYLB_D_NAT_UNTRACKED_AMBIGUOUS, L4_ANSWER_REFUSE);
	v->what = PYLB_L4V_UNTRACKED;
	v->opens = opens;
}

/* No room for t's entry (`full`: the counter that says why): a cookie's
 * ACK is refused; else the packet goes untracked (not FullNAT: its replies
 * need the entry). */
static void
no_room(const struct pylb_lcore *lc, const struct pylb_tuple *t,
	const struct pylb_service *svc, enum pylb_opening how, uint16_t full,
	struct l4_verdict *v)
{
	v->full = full;
	v->evict = false;
	if (how == PYLB_OPEN_PROVEN)
		return refused(v, PYLB_D_SYN_PROXY_NO_ENTRY, L4_ANSWER_NONE);
	if (pylb_l4_methods[svc->conf.method]->untracked == NULL)
		return refused(v, PYLB_D_FULLNAT_NO_PORT, L4_ANSWER_NONE);
	untracked(lc, t, svc, how == PYLB_OPEN_NEW, v);
}

/* The act found no room after all (a bucket the decision could not
 * foresee): v (NEW, PICK_UP, COOKIE_ACK) decided again as no room. */
void
pylb_l4_decide_no_room(const struct pylb_lcore *lc, const struct pylb_tuple *t,
		       struct l4_verdict *v)
{
	v->take = 0;
	v->ended = 0;
	no_room(lc, t, v->svc, v->what == PYLB_L4V_NEW ? PYLB_OPEN_NEW :
		v->what == PYLB_L4V_COOKIE_ACK ? PYLB_OPEN_PROVEN : PYLB_OPEN_MID_FLOW,
		PYLB_C_CONN_TABLE_FULL, v);
}

/* Can t open a connection to svc (`how`), and to which backend? The
 * limits (not for a connection picked up: it was admitted where it
 * opened), the room for its entry (the client network's and the worker's
 * half-open budgets, the table), the backend's max_conns, FullNAT's port. */
static void
open_decide(struct pylb_lcore *lc, const struct pylb_tuple *t, const struct pylb_service *svc,
	    uint64_t now, enum pylb_opening how, struct l4_verdict *v)
{
	const struct pylb_conntrack *ct = lc->ct;
	const struct l4_method *method = pylb_l4_methods[svc->conf.method];
	bool half_open = t->proto == IPPROTO_TCP || method->replies != L4_REPLIES_NONE;
	bool mid_flow = how == PYLB_OPEN_MID_FLOW;
	uint32_t bi;
	int why;

	v->src = ct->src_ho != NULL || ct->src_rate != NULL ? pylb_src_slot(ct, t->src, t->af) : 0;
	if (unlikely(ct->src_rate != NULL) && !mid_flow) {
		if (!tokens_have(&ct->src_rate[v->src], now, ct->src_cost, rte_get_timer_hz()))
			return refused(v, PYLB_D_LIMIT_SOURCE_RATE, L4_ANSWER_NONE);
		v->take |= L4_TAKE_SOURCE_RATE;
	}
	if (unlikely(svc->conf.max_connections | svc->conf.max_new_per_second |
		     svc->conf.max_per_client) && !mid_flow &&
	    (why = limits_refuse(lc, svc, t, now, v)) != 0)
		return refused(v, why, refusal_resets(why) ? L4_ANSWER_RST : L4_ANSWER_NONE);
	/* The client's network has its budget of half-open entries (a client
	 * proven by a cookie is not held to it); the worker's is made room
	 * in by the oldest half-open entry, never by an established one. */
	v->evict = half_open && ct->half_open >= ct->half_open_budget;
	if (half_open && how != PYLB_OPEN_PROVEN && pylb_src_full(ct, v->src))
		return no_room(lc, t, svc, how, PYLB_C_SOURCE_HALF_OPEN_FULL, v);
	if (v->evict && (mid_flow || !pylb_conn_evictable(ct)))
		return no_room(lc, t, svc, how, PYLB_C_HALF_OPEN_FULL, v);
	if (!pylb_conn_room(ct, t, v->evict))
		return no_room(lc, t, svc, how, PYLB_C_CONN_TABLE_FULL, v);
	if (mid_flow) {
		bi = svc->sched->consistent(svc, t, v->hash);
	} else {
		bi = v->picked = svc->sched->pick(lc, svc, t, v->hash);
		if (svc->conf.persistence != 0)
			bi = persisted(lc, svc, t, bi, now, v);
		/* A full backend: the next with room. */
		if (unlikely(svc->bal.backends[bi].max_conns != 0) && backend_full(lc, svc, bi) &&
		    (bi = backend_next(lc, svc, t, v, false)) == UINT32_MAX)
			return refused(v, PYLB_D_LIMIT_BACKEND_CONNS, L4_ANSWER_RST);
		/* QUIC: a client that moved (NAT rebinding, migration) is a
		 * new flow here; its connection ID names its backend. */
		if (unlikely(svc->conf.quic.sid_len != 0)) {
			int32_t q = pylb_quic_backend(svc, t);

			v->quic = q >= 0 ? L4_QUIC_ROUTED : L4_QUIC_UNROUTED;
			if (q >= 0)
				bi = (uint32_t)q;
		}
		/* (Not a QUIC connection's backend: only it can serve it.) */
		if (method->replies == L4_REPLIES_ROUTED && v->quic != L4_QUIC_ROUTED &&
		    (bi = nat_tuple_free(lc, svc, t, bi, v)) == UINT32_MAX)
			return refused(v, PYLB_D_NAT_TUPLE_IN_USE, L4_ANSWER_RST);
	}
	v->bi = bi;
	/* No room for what the method takes besides the entry: FullNAT has
	 * no port (and cannot go untracked); else as no room for the entry. */
	if (method->open_decide != NULL && !method->open_decide(lc, svc, t, v))
		return method->untracked == NULL ?
			refused(v, PYLB_D_FULLNAT_NO_PORT, L4_ANSWER_NONE) :
			no_room(lc, t, svc, how, PYLB_C_CONN_TABLE_FULL, v);
	v->what = how == PYLB_OPEN_NEW ? PYLB_L4V_NEW : how == PYLB_OPEN_PROVEN ?
		PYLB_L4V_COOKIE_ACK : PYLB_L4V_PICK_UP;
}

/* A TCP packet, not a SYN, of no connection here. Perhaps the answer to
 * a cookie: while this lcore sends them, or from a service that always
 * does. Else a connection opened elsewhere (ECMP moved it from another
 * appliance; this one restarted; the table was full when it opened):
 * picked up by the consistent choice and tracked from here, or sent
 * statelessly if there is no room; a RST is passed on, never tracked.
 * Not FullNAT (its backend knows the connection by a local address and
 * port chosen where it opened: connection sync carries those), nor a
 * connection proxied through cookies (its sequence numbers are shifted by
 * the cookie), nor with mid-flow pick-up off (but a connection opened
 * untracked while the table was full still goes on). */
static void
mid_flow(struct pylb_lcore *lc, const struct pylb_tuple *t, uint8_t flags, uint32_t seq,
	 uint32_t ack, uint64_t now, struct l4_verdict *v)
{
	const struct pylb_dp *dp = lc->dp;
	const struct pylb_service *svc = v->svc;
	/* The true reason: no service on the port, none of its backends
	 * live, or no connection to pick up. */
	int why = svc == NULL ? PYLB_D_NO_SERVICE : svc->bal.table == NULL ?
		PYLB_D_SERVICE_NO_BACKEND : PYLB_D_TCP_NO_CONN;

	if (svc != NULL && svc->bal.table != NULL) {
		if ((flags & (RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG | RTE_TCP_RST_FLAG)) ==
		    RTE_TCP_ACK_FLAG && svc->synproxy != PYLB_SYN_PROXY_OFF &&
		    (svc->synproxy == PYLB_SYN_PROXY_ALWAYS || now < lc->ct->cookies_until) &&
		    (why = pylb_synproxy_cookie_check(lc, t, seq, ack, now)) == 0) {
			/* The ACLs again: they may have changed since the SYN. */
			if (!acl_refuses(lc, t, svc, v))
				open_decide(lc, t, svc, now, PYLB_OPEN_PROVEN, v);
			return;
		}
		if (svc->synproxy != PYLB_SYN_PROXY_ALWAYS &&
		    pylb_l4_methods[svc->conf.method]->untracked != NULL &&
		    (!dp->conf.mid_flow_off || now < lc->untracked_until)) {
			if (acl_refuses(lc, t, svc, v))
				return;
			if (flags & RTE_TCP_RST_FLAG)
				return untracked(lc, t, svc, false, v);
			return open_decide(lc, t, svc, now, PYLB_OPEN_MID_FLOW, v);
		}
	}
	refused(v, why, dp->conf.tcp_reset ? L4_ANSWER_RST : L4_ANSWER_NONE);
}

/* Is c's backend down with its service resetting connections to a down
 * backend (conn_check, read only)? */
static bool
conn_down(const struct pylb_lcore *lc, const struct pylb_conn *c)
{
	const struct pylb_service *svc;

	if (likely(c->gen == __atomic_load_n(&lc->dp->gen, __ATOMIC_ACQUIRE)))
		return false;
	svc = __atomic_load_n(&lc->dp->svcs[c->svc], __ATOMIC_ACQUIRE);
	return conn_reset_down(svc, pylb_backend_index(lc->ct, svc, c));
}

/* What pylb_l4_decide (verdict.h) does not decide inline: c, t's entry
 * (NULL: none), is a SYN's, or its backend set changed since it was
 * last seen, or there is none. */
void
pylb_l4_decide_rest(struct pylb_lcore *lc, const struct pylb_tuple *t, uint8_t flags,
		    uint32_t seq, uint32_t ack, struct pylb_conn *c, uint64_t now,
		    struct l4_verdict *v)
{
	const struct pylb_dp *dp = lc->dp;
	const struct pylb_service *svc;

	v->c = NULL;
	/* A SYN reusing the tuple of a connection that ended (time_wait,
	 * close) opens a new one, scheduled afresh (IPVS's conn_reuse_mode):
	 * the old backend may be down or gone. */
	if (c != NULL && unlikely(flags == RTE_TCP_SYN_FLAG) &&
	    (c->state == PYLB_TCP_TIME_WAIT || c->state == PYLB_TCP_CLOSE)) {
		v->ended = PYLB_C_CONN_REUSED;
		v->c = c;
		c = NULL;
	}
	/* Its backend is down: the flow ends here. TCP is reset; a UDP
	 * packet starts a new flow. */
	if (c != NULL && unlikely(conn_down(lc, c))) {
		v->ended = PYLB_C_CONN_RESET_DOWN;
		v->c = c;
		if (t->proto == IPPROTO_TCP)
			return refused(v, PYLB_D_BACKEND_DOWN, L4_ANSWER_RST);
		c = NULL;
	}
	if (c != NULL) {
		v->what = unlikely(c->flags & CONN_F_OPENING) ? PYLB_L4V_HOLD : PYLB_L4V_CONN;
		v->c = c;
		return;
	}
	v->hash = flow_hash(dp->conf.hash_key, t->src, t->dst, t->af);
	v->svc = svc = service_find(dp, t);
	/* Only a SYN opens a TCP connection; another packet is of one opened
	 * elsewhere. */
	if (t->proto == IPPROTO_TCP &&
	    (flags & (RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG)) != RTE_TCP_SYN_FLAG)
		return mid_flow(lc, t, flags, seq, ack, now, v);
	if (svc == NULL)
		return refused(v, PYLB_D_NO_SERVICE,
			       dp->conf.tcp_reset ? L4_ANSWER_RST : L4_ANSWER_NONE);
	if (svc->bal.table == NULL)
		return refused(v, PYLB_D_SERVICE_NO_BACKEND, L4_ANSWER_NONE);
	/* ACLs, where a connection opens (open ones are not looked at again). */
	if (acl_refuses(lc, t, svc, v))
		return;
	/* A SYN (or UDP). Under pressure, or always, a cookie answers it. */
	if (svc->synproxy != PYLB_SYN_PROXY_OFF &&
	    (svc->synproxy == PYLB_SYN_PROXY_ALWAYS || lc->ct->half_open >= lc->ct->half_open_budget ||
	     pylb_src_over(lc->ct, t->src, t->af))) {
		v->what = PYLB_L4V_COOKIE;
		return;
	}
	open_decide(lc, t, svc, now, PYLB_OPEN_NEW, v);
}
