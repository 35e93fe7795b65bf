/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * L4 load balancing: virtual services VIP:port/proto. A packet for a
 * service VIP is matched against this lcore's connection table; a new
 * connection (TCP SYN, first UDP packet) is scheduled by the service's
 * consistent-hash table and tracked, so it keeps its backend whatever the
 * configuration does next. Forwarding: NAT (DNAT, replies reverse-
 * translated), FullNAT, DR (MAC rewrite) or tunnel (IPIP). Each lcore
 * counts, per backend, its traffic and its connections open now (active:
 * established or UDP; inactive: other TCP states) as they open, move and
 * end: the control side sums them, never scanning the tables. The
 * backends' side is reply.c; service control is service.c; SYN cookies
 * synproxy.c; ACLs acl.c (checked here, where connections open); the
 * services' limits are here.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <rte_hash.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "l4/scheduler.h"
#include "l4/forward.h"

/* The forwarding methods, by enum pylb_l4_method: a connection stores its
 * method when it opens, and its packets call or read this descriptor. */
const struct l4_method *const pylb_l4_methods[PYLB_L4_GUE + 1] = {
	[PYLB_L4_NAT] = &pylb_l4_nat,
	[PYLB_L4_FULLNAT] = &pylb_l4_fullnat,
	[PYLB_L4_DR] = &pylb_l4_dr,
	[PYLB_L4_TUNNEL] = &pylb_l4_tunnel,
	[PYLB_L4_GUE] = &pylb_l4_gue,
};

/* A packet the control side built (a data-path probe, its RST), sent to
 * backend `to` by the method's output (DR, tunnel). */
void
pylb_l4_method_out(struct pylb_lcore *lc, const struct pylb_cfg *cfg, struct rte_mbuf *m,
		   uint8_t method, const uint8_t *to, uint8_t af)
{
	struct l4_dest d = { .to = to, .to_af = af, .af = af, .src = &l4_port_src };

	pylb_l4_methods[method]->out(lc, cfg, -1, m, &d);
}

/* Where a NAT connection's packets go, resolved once and cached in the
 * entry: port and next-hop MAC, as a backend's output is resolved (an
 * ECMP route, or a MAC not known yet: not cached). */
bool
pylb_conn_resolve(struct pylb_lcore *lc, struct pylb_conn *c)
{
	struct pylb_ip be = { .af = c->af };
	struct pylb_out_memo o;

	memcpy(be.ip, conn_addr(lc->ct, c, CONN_BACKEND), c->af == 4 ? 4 : 16);
	pylb_out_memo_make(lc, &o, &be, __atomic_load_n(&lc->dp->gen, __ATOMIC_ACQUIRE));
	if (o.hop.nh == NULL || !(o.hop.mac & PYLB_MAC_VALID))
		return false;
	c->out_port = o.hop.nh->port;
	c->out_mac = o.hop.mac;
	c->flags |= CONN_F_OUT_OK;
	return true;
}


static inline bool
tcp_flags_valid(uint8_t f)
{
	if ((f & RTE_TCP_SYN_FLAG) && (f & (RTE_TCP_FIN_FLAG | RTE_TCP_RST_FLAG)))
		return false;
	return f != 0;
}

/* TCP that nothing will take: with `rst`, answer RST in place (as a host
 * with no listener would); count the reason either way. */
void
pylb_l4_refuse(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	       struct rte_mbuf *m, uint8_t af, uint8_t proto, uint16_t *ports,
	       enum pylb_counter reason, bool rst)
{
	struct rte_tcp_hdr *t = (struct rte_tcp_hdr *)ports;
	uint32_t plen, seq, ack;

	if (!rst || proto != IPPROTO_TCP || in_port < 0 || (t->tcp_flags & RTE_TCP_RST_FLAG))
		return drop(lc, m, reason);
	lc->stats->c[reason]++;
	plen = tcp_payload_len(m, af, t);
	seq = rte_be_to_cpu_32(t->sent_seq);
	ack = rte_be_to_cpu_32(t->recv_ack);
	/* RFC 793: to a packet with ACK, RST with seq = its ack; else RST|ACK
	 * acknowledging what it carried (a SYN counts one). */
	if (t->tcp_flags & RTE_TCP_ACK_FLAG) {
		t->sent_seq = rte_cpu_to_be_32(ack);
		t->recv_ack = 0;
		t->tcp_flags = RTE_TCP_RST_FLAG;
	} else {
		t->sent_seq = 0;
		t->recv_ack = rte_cpu_to_be_32(seq + plen +
			!!(t->tcp_flags & RTE_TCP_SYN_FLAG) + !!(t->tcp_flags & RTE_TCP_FIN_FLAG));
		t->tcp_flags = RTE_TCP_RST_FLAG | RTE_TCP_ACK_FLAG;
	}
	t->data_off = 5 << 4;
	t->rx_win = 0;
	CNT(lc, TCP_RESETS_SENT);
	tcp_answer(lc, cfg, in_port, m, af, t, sizeof(*t));
}


/* The index of c's backend in svc, or PYLB_BIDX_NONE. */
uint16_t
pylb_backend_index(const struct pylb_conntrack *ct, const struct pylb_service *svc,
	      const struct pylb_conn *c)
{
	const uint8_t *be = conn_backend(ct, c);
	uint8_t af = conn_backend_af(c);

	if (svc == NULL)
		return PYLB_BIDX_NONE;
	for (uint32_t i = 0; i < svc->bal.n_backends; i++) {
		const struct pylb_backend *b = &svc->bal.backends[i];

		if (b->addr.af == af && memcmp(b->addr.ip, be, af == 4 ? 4 : 16) == 0 &&
		    (b->port == 0 ? c->bport == c->vport : c->bport == rte_cpu_to_be_16(b->port)))
			return (uint16_t)i;
	}
	return PYLB_BIDX_NONE;
}


/* This lcore's counters of c's backend in its service as it is now; NULL
 * if the backend left it. */
static struct pylb_svc_stats *
conn_backend_stats(struct pylb_lcore *lc, const struct pylb_conn *c)
{
	const struct pylb_service *svc = __atomic_load_n(&lc->dp->svcs[c->svc], __ATOMIC_ACQUIRE);
	uint16_t bidx;

	if (svc == NULL)
		return NULL;
	bidx = c->gen == __atomic_load_n(&lc->dp->gen, __ATOMIC_ACQUIRE) ? c->bidx :
		pylb_backend_index(lc->ct, svc, c);
	return bidx < svc->bal.n_backends ?
		&svc->bstats[(size_t)lc->slot * svc->bstride + bidx] : NULL;
}


/* c is open (not closing or closed) or not: its service's and its
 * client's counts of open connections follow. */
void
pylb_conn_counted(struct pylb_lcore *lc, struct pylb_conn *c, bool open)
{
	int d = open ? 1 : -1;

	if (open == !!(c->flags & CONN_F_COUNTED))
		return;
	c->flags ^= CONN_F_COUNTED;
	lc->svc_conns[c->svc] += (uint32_t)d;
	if (c->flags & CONN_F_CLIENT) {
		struct pylb_persist_key k;
		void *data = NULL;
		uintptr_t v;

		pylb_client_key(&k, c->svc, conn_addr(lc->ct, c, CONN_CLIENT), c->af);
		if (rte_hash_lookup_data(lc->ct->clients, &k, &data) < 0 && d < 0)
			return;
		v = (uintptr_t)data + (uintptr_t)(intptr_t)d;
		if (v == 0)
			rte_hash_del_key(lc->ct->clients, &k);
		else
			rte_hash_add_key_data(lc->ct->clients, &k, (void *)v);
	}
}

/* A connection ends: its backend has one fewer. */
void
pylb_conn_released(struct pylb_lcore *lc, const struct pylb_conn *c)
{
	struct pylb_svc_stats *bs = conn_backend_stats(lc, c);

	if (bs != NULL)
		(*conn_gauge(bs, c->state))--;
}

/* A connection moved between active and inactive (from state `was`). */
void
pylb_conn_moved(struct pylb_lcore *lc, const struct pylb_conn *c, uint8_t was)
{
	struct pylb_svc_stats *bs = conn_backend_stats(lc, c);

	if (bs != NULL) {
		(*conn_gauge(bs, was))--;
		(*conn_gauge(bs, c->state))++;
	}
}


static inline void
conn_forward(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	     struct rte_mbuf *m, uint16_t *ports, struct pylb_conn *c)
{
	count_packet(lc, __atomic_load_n(&lc->dp->svcs[c->svc], __ATOMIC_ACQUIRE), c->svc,
		     c->bidx, m, false);
	pylb_l4_methods[c->method]->forward(lc, cfg, in_port, m, ports, c);
}

/* Persistence: the client network's entry that chose, refreshed; or a
 * new one for the scheduler's choice. */
static void
persist_keep(struct pylb_lcore *lc, const struct pylb_service *svc, const struct pylb_tuple *t,
	     const struct l4_verdict *v, uint64_t now)
{
	struct pylb_persist *p = v->persist;

	if (p == NULL) {
		const struct pylb_backend *cb = &svc->bal.backends[v->picked];
		struct pylb_persist_key pk;

		pylb_persist_key(&pk, svc, t);
		p = pylb_persist_new(lc, &pk);
		if (p == NULL)
			return;
		memcpy(p->backend, cb->addr.ip, 16);
		p->bport = cb->port;
	}
	p->expire_tsc = now + rte_get_timer_hz() * svc->conf.persistence;
}

/* The entry the decision found room for (v: NEW, PICK_UP, COOKIE_ACK):
 * made, scheduled and counted. A connection picked up mid-flow was
 * admitted where it opened: it takes the consistent choice, no limits,
 * and is half-open until confirmed, so spoofed ACKs fill no more than the
 * budgets. NULL if it could not be made after all. */
static struct pylb_conn *
conn_start(struct pylb_lcore *lc, const struct pylb_tuple *t, const struct l4_verdict *v,
	   uint64_t now)
{
	const struct pylb_service *svc = v->svc;
	uint8_t method = svc->conf.method;
	bool mid_flow = v->what == PYLB_L4V_PICK_UP;
	const struct pylb_backend *b = &svc->bal.backends[v->bi];
	struct pylb_svc_stats *bs = &svc->bstats[(size_t)lc->slot * svc->bstride + v->bi];
	struct pylb_conn *c;

	if (v->evict)
		pylb_conn_evict_half_open(lc);
	c = pylb_conn_new(lc, t);
	if (unlikely(c == NULL))
		return NULL;
	if (!mid_flow) {
		if (svc->sched->chosen != NULL)
			svc->sched->chosen(lc, svc, v->picked);
		if (svc->conf.persistence != 0)
			persist_keep(lc, svc, t, v, now);
		lc->svc_stats[svc->id].conns++;
		bs->conns++;
	}
	c->method = method;
	/* Room for it was found by the decision (the method's open_decide). */
	(void)pylb_conn_set_backend(lc->ct, c, b->addr.ip, b->addr.af);
	/* Port translation; backend port 0 keeps the client's. */
	c->bport = b->port ? rte_cpu_to_be_16(b->port) : t->dport;
	c->svc = svc->id;
	c->bidx = (uint16_t)v->bi;
	c->gen = __atomic_load_n(&lc->dp->gen, __ATOMIC_ACQUIRE);
	c->state = t->proto != IPPROTO_TCP ? PYLB_TCP_NONE : mid_flow ? PYLB_TCP_MID_FLOW :
		l4_sees_replies(method) ? PYLB_TCP_SYN_SENT : PYLB_TCP_SYN_RECV;
	if (pylb_conn_half_open(c))
		pylb_conn_opened(lc, c, v->src);
	(*conn_gauge(bs, c->state))++;
	if (svc->conf.max_per_client != 0)
		c->flags |= CONN_F_CLIENT;
	pylb_conn_counted(lc, c, true);
	if (pylb_l4_methods[method]->open != NULL && !pylb_l4_methods[method]->open(lc, svc, c, v)) {
		pylb_conn_drop(lc, c);
		return NULL;
	}
	if (mid_flow)
		CNT(lc, CONN_PICKED_UP);
	else
		CNT(lc, CONN_CREATED);
	pylb_conn_changed(lc->ct, c);
	return c;
}

/* A client's packet sent without an entry (the table is, or was lately,
 * full; a RST of no connection): to the consistent choice, translated
 * (NAT), counted. */
static void
untracked(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	  struct rte_mbuf *m, uint16_t *ports, const struct pylb_tuple *t,
	  const struct l4_verdict *v)
{
	const struct pylb_service *svc = v->svc;

	CNT(lc, CONN_UNTRACKED);
	if (v->opens) {
		lc->svc_stats[svc->id].conns++;
		svc->bstats[(size_t)lc->slot * svc->bstride + v->bi].conns++;
	}
	count_packet(lc, svc, svc->id, (uint16_t)v->bi, m, false);
	pylb_l4_methods[svc->conf.method]->untracked(lc, cfg, in_port, m, ports, t, svc,
						    &svc->bal.backends[v->bi], v->hash);
}

/* A packet the decision refused: answered as it says, counted by its
 * reason. */
static void
refused(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port, struct rte_mbuf *m,
	uint16_t *ports, const struct pylb_tuple *t, const struct l4_verdict *v)
{
	if (in_port >= 0 && (v->answer == L4_ANSWER_PROHIBITED ||
			     (v->answer == L4_ANSWER_REFUSE && t->proto == IPPROTO_UDP))) {
		bool no = v->answer == L4_ANSWER_PROHIBITED;

		if (t->af == 4)
			pylb_icmp4_error(lc, cfg, (uint16_t)in_port, m, ICMP_DEST_UNREACH,
					 no ? ICMP_PKT_FILTERED : ICMP_PORT_UNREACHABLE, 0);
		else
			pylb_icmp6_error(lc, cfg, (uint16_t)in_port, m, ICMP6_DEST_UNREACH,
					 no ? ICMP6_ADMIN_PROHIBITED : ICMP6_PORT_UNREACHABLE, 0);
	}
	pylb_l4_refuse(lc, cfg, in_port, m, t->af, t->proto, ports, (enum pylb_counter)v->reason,
		       v->answer == L4_ANSWER_RST || v->answer == L4_ANSWER_REFUSE);
}

/* What the decision (verdict.c) says, done: the one place a client's
 * packet to a service changes the tables. */
static void
act(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port, struct rte_mbuf *m,
    uint16_t *ports, const struct pylb_tuple *t, uint8_t flags, struct l4_verdict *v,
    uint64_t now)
{
	struct pylb_conn *c = v->c;

	if (unlikely(v->ended != 0)) {
		pylb_conn_drop(lc, c);
		lc->stats->c[v->ended]++;
	}
	if (unlikely(v->take != 0)) {
		if (v->take & L4_TAKE_SOURCE_RATE)
			pylb_tokens_take(&lc->ct->src_rate[v->src], now, lc->ct->src_cost,
					 rte_get_timer_hz());
		if (v->take & L4_TAKE_SERVICE_RATE)
			pylb_tokens_take(&lc->svc_rate[v->svc->id], now,
					 pylb_service_rate_cost(&lc->dp->conf, &v->svc->conf),
					 rte_get_timer_hz());
	}
	if (unlikely(v->full != 0)) {
		lc->stats->c[v->full]++;
		if (v->opens)
			lc->untracked_until = now + __atomic_load_n(
				&lc->dp->timeout_tsc[PYLB_TCP_ESTABLISHED], __ATOMIC_RELAXED);
	}
	switch (v->what) {
	case PYLB_L4V_CONN:
		pylb_conn_update(lc, c, flags, false, now);
		return conn_forward(lc, cfg, in_port, m, ports, c);
	case PYLB_L4V_HOLD:
		return pylb_synproxy_hold(lc, in_port, m, c);
	case PYLB_L4V_COOKIE:
		return pylb_synproxy_syn(lc, cfg, in_port, m, ports, t, pylb_pp_room(v->svc, t->af));
	case PYLB_L4V_UNTRACKED:
		return untracked(lc, cfg, in_port, m, ports, t, v);
	case PYLB_L4V_NEW:
	case PYLB_L4V_PICK_UP:
	case PYLB_L4V_COOKIE_ACK:
		c = conn_start(lc, t, v, now);
		if (unlikely(c == NULL)) {
			pylb_l4_decide_no_room(lc, t, v);
			return act(lc, cfg, in_port, m, ports, t, flags, v, now);
		}
		if (unlikely(v->moved))
			CNT(lc, NAT_TUPLE_MOVED);
		if (v->what == PYLB_L4V_COOKIE_ACK)
			return pylb_synproxy_open(lc, cfg, in_port, m, ports, t, c);
		if (v->what == PYLB_L4V_NEW) {
			if (unlikely(v->quic != 0))
				lc->stats->c[v->quic == L4_QUIC_ROUTED ? PYLB_C_QUIC_ROUTED :
					     PYLB_C_QUIC_UNROUTED]++;
			pylb_conn_update(lc, c, flags, false, now);
		} else {
			/* (Not confirmed by its own packet: only a FIN moves it.) */
			if (flags & RTE_TCP_FIN_FLAG)
				pylb_conn_state(lc, c, PYLB_TCP_FIN_WAIT);
			c->packets++;
			c->expire_tsc = now +
				__atomic_load_n(&lc->dp->timeout_tsc[c->state], __ATOMIC_RELAXED);
		}
		return conn_forward(lc, cfg, in_port, m, ports, c);
	default:
		return refused(lc, cfg, in_port, m, ports, t, v);
	}
}

/* A client's packet for c, resumed (held while its SYN proxy opened it). */
void
pylb_l4_resume(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	       struct rte_mbuf *m, struct pylb_conn *c)
{
	uint8_t proto;
	uint16_t *ports = l4_header(m, c->af, &proto);

	pylb_conn_update(lc, c, ((struct rte_tcp_hdr *)ports)->tcp_flags, false, lc->now);
	conn_forward(lc, cfg, in_port, m, ports, c);
}

/* A packet of c's towards its backend, output: translated already (NAT,
 * FullNAT), or as it is by the method's output (DR, tunnel; an ICMP error
 * about the connection). */
void
pylb_l4_to_backend(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		   struct rte_mbuf *m, struct pylb_conn *c)
{
	if (pylb_l4_methods[c->method]->out != NULL)
		return l4_forward_as_is(lc, cfg, in_port, m, c);
	if (!l4_conn_output(lc, cfg, c, m))
		l4_out_routed(lc, cfg, in_port, m, conn_addr(lc->ct, c, CONN_BACKEND), c->af, 0);
}

/* A later fragment (frag.c; gathered at the client's owner, which owns
 * its connection): on with the connection its first fragment went with,
 * by the same method; only its addresses are translated. */
static void
follow(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port, struct rte_mbuf *m,
       uint8_t af, uint8_t proto, uint16_t *ports)
{
	struct pylb_tuple t;
	struct pylb_conn *c;

	tuple_of(&t, m, af, proto, ports);
	CNT(lc, L4_PACKETS);
	c = pylb_conn_lookup(lc, &t, false, NULL);
	if (c == NULL || (c->flags & CONN_F_OPENING) || !conn_check(lc, c))
		return drop(lc, m, PYLB_D_FRAG_NO_CONN);
	pylb_conn_update(lc, c, 0, false, lc->now);
	conn_forward(lc, cfg, in_port, m, ports, c);
}

/* A TCP or UDP packet for a service VIP. */
void
pylb_l4_input(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	      struct rte_mbuf *m, uint8_t af, const struct pylb_ct_key *k)
{
	struct l4_verdict v;
	struct pylb_tuple t;
	uint8_t proto, flags = 0;
	uint32_t seq = 0, ack = 0;
	uint16_t *ports;

	ports = l4_header(m, af, &proto);
	if (unlikely(frag_suspect(m, af, proto))) {
		if (pylb_frag_gather(lc, m, af, in_port, RESUME_L4, l4_src(m, af), true,
				     &proto, &ports) != PYLB_FRAG_GO)
			return;
		if (frag_followed(lc, ports))
			return follow(lc, cfg, in_port, m, af, proto, ports);
	}
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return drop(lc, m, PYLB_D_NO_SERVICE);
	if (ports == NULL)
		return drop(lc, m, PYLB_D_L4_TRUNCATED);
	if (proto == IPPROTO_TCP) {
		flags = ((struct rte_tcp_hdr *)ports)->tcp_flags;
		if (!tcp_flags_valid(flags))
			return drop(lc, m, PYLB_D_TCP_BAD_FLAGS);
	}
	tuple_of(&t, m, af, proto, ports);
	if (redirect(lc, m, in_port, af, RESUME_L4, t.src))
		return;
	CNT(lc, L4_PACKETS);
	if (proto == IPPROTO_TCP) {
		const struct rte_tcp_hdr *th = (const struct rte_tcp_hdr *)ports;

		seq = rte_be_to_cpu_32(th->sent_seq);
		ack = rte_be_to_cpu_32(th->recv_ack);
	}
	pylb_l4_decide(lc, &t, flags, seq, ack, k, lc->now, &v);
	if (v.what == PYLB_L4V_CONN && likely(v.ended == 0)) {
		/* The common case, without the act's switch. */
		conn_check(lc, v.c);
		pylb_conn_update(lc, v.c, flags, false, lc->now);
		return conn_forward(lc, cfg, in_port, m, ports, v.c);
	}
	if (v.c != NULL && v.ended == 0)
		conn_check(lc, v.c);	/* its cached backend, refreshed */
	act(lc, cfg, in_port, m, ports, &t, flags, &v, lc->now);
}



