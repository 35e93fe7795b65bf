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

#include "scheduler.h"
#include "l4.h"

/* The next-hop group the workers route `to` (a backend) by; false (m
 * dropped) if there is none. */
static inline bool
backend_group(struct pylb_lcore *lc, struct rte_mbuf *m, const uint8_t *to, uint8_t af,
	      uint32_t *group)
{
	uint32_t v = af == 4 ? fib4_lookup(lc->dp, *(const unaligned_uint32_t *)to) :
		fib6_lookup(lc->dp, to);

	if (v == 0 || fib_kind(v) != PYLB_FIB_GROUP) {
		drop(lc, m, PYLB_D_VIP_NO_ROUTE);
		return false;
	}
	*group = fib_id(v);
	return true;
}

/* The outputs towards a backend `to`, one per forwarding method: NAT and
 * FullNAT route the translated packet like any other (its own header
 * picks the ECMP path), DR readdresses the frame on a connected network,
 * tunnel encapsulates in IPIP. */
static void
out_routed(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port, struct rte_mbuf *m,
	   const uint8_t *to, uint8_t af, uint32_t hash __rte_unused)
{
	uint32_t g;

	if (!backend_group(lc, m, to, af, &g))
		return;
	if (af == 4)
		return pylb_fwd4(lc, cfg, in_port, m, g);
	pylb_fwd6(lc, cfg, in_port, m, g);
}

static void
out_dr(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
       struct rte_mbuf *m, const uint8_t *to, uint8_t af, uint32_t hash)
{
	struct pylb_ip b = { .af = af };
	uint32_t g;

	if (!backend_group(lc, m, to, af, &g))
		return;
	memcpy(b.ip, to, af == 4 ? 4 : 16);
	pylb_out_dr(lc, cfg, in_port, m, nhg_pick(lc->dp, g, hash), &b);
}

static void
out_tunnel(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port, struct rte_mbuf *m,
	   const uint8_t *to, uint8_t af, uint32_t hash)
{
	static const struct pylb_ip any;
	struct pylb_ip b = { .af = af };
	uint32_t g;

	if (!backend_group(lc, m, to, af, &g))
		return;
	memcpy(b.ip, to, af == 4 ? 4 : 16);
	pylb_out_encap(lc, cfg, in_port, m, nhg_pick(lc->dp, g, hash), false, &any, &b, af);
}

/* A packet the control side built (a data-path probe, its RST), sent to
 * backend `to` by the method's output. */
void
pylb_l4_method_out(struct pylb_lcore *lc, const struct pylb_cfg *cfg, struct rte_mbuf *m,
		   uint8_t method, const uint8_t *to, uint8_t af)
{
	(method == PYLB_L4_DR ? out_dr : out_tunnel)(lc, cfg, -1, m, to, af, 0);
}

static inline bool
tcp_flags_valid(uint8_t f)
{
	if ((f & RTE_TCP_SYN_FLAG) && (f & (RTE_TCP_FIN_FLAG | RTE_TCP_RST_FLAG)))
		return false;
	return f != 0;
}

/* Persistence: the client's network sticks to the backend it had, while
 * the entry lives and that backend still takes new connections (a drained,
 * down or removed backend is replaced by the scheduler's choice). */
static uint32_t
persist(struct pylb_lcore *lc, const struct pylb_service *svc,
	const struct pylb_tuple *t, uint32_t chosen, uint64_t now)
{
	uint8_t len = svc->conf.persistence_prefix;
	struct pylb_persist_key pk = { .svc = svc->id, .af = t->af };
	const struct pylb_backend *cb = &svc->bal.backends[chosen];
	struct pylb_persist *p;
	uint32_t bits = t->af == 4 ? 32 : 128;

	memcpy(pk.ip, t->src, bits / 8);
	for (uint32_t bit = len ? len : bits; bit < bits; bit++)
		pk.ip[bit / 8] &= (uint8_t)~(0x80 >> (bit % 8));
	p = pylb_persist_find(lc, &pk, now);
	if (p != NULL)
		for (uint32_t i = 0; i < svc->bal.n_backends; i++) {
			const struct pylb_backend *b = &svc->bal.backends[i];

			if (pylb_backend_live(b) && memcmp(b->addr.ip, p->backend, 16) == 0 &&
			    b->port == p->bport) {
				p->expire_tsc = now + rte_get_timer_hz() * svc->conf.persistence;
				return i;
			}
		}
	p = pylb_persist_new(lc, &pk);
	if (p != NULL) {
		memcpy(p->backend, cb->addr.ip, 16);
		p->bport = cb->port;
		p->expire_tsc = now + rte_get_timer_hz() * svc->conf.persistence;
	}
	return chosen;
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


/* Where a NAT connection's packets go, resolved once and cached in the
 * entry: port and next-hop MAC. */
static bool
conn_resolve(struct pylb_lcore *lc, struct pylb_conn *c)
{
	struct pylb_dp *dp = lc->dp;
	const uint8_t *be = conn_addr(&lc->ct, c, CONN_BACKEND);
	uint32_t v = c->af == 4 ? fib4_lookup(dp, *(const unaligned_uint32_t *)be) :
		fib6_lookup(dp, be);
	const struct pylb_nh *nh;
	uint64_t mac;

	if (v == 0 || fib_kind(v) != PYLB_FIB_GROUP || nhg_multi(dp, fib_id(v)))
		return false;
	nh = nhg_pick(dp, fib_id(v), 0);
	if (nh->connected) {
		/* The lcore's neighbour cache first, as packet output does. */
		uint32_t gen = __atomic_load_n(&dp->gen, __ATOMIC_ACQUIRE);
		const struct pylb_ncache *e = ncache_slot(lc, be, c->af, nh->port);
		struct pylb_neigh_key k;
		void *data;

		if (ncache_holds(e, be, c->af, nh->port, gen)) {
			mac = e->mac;
		} else {
			if (c->af == 4)
				neigh_key4(&k, *(const unaligned_uint32_t *)be, nh->port);
			else
				neigh_key6(&k, be, nh->port);
			if (rte_hash_lookup_data(dp->neigh_hash, &k, &data) < 0)
				return false;
			mac = (uint64_t)(uintptr_t)data;
		}
	} else {
		mac = __atomic_load_n(&nh->mac, __ATOMIC_RELAXED);
	}
	if (!(mac & PYLB_MAC_VALID))
		return false;
	c->out_port = nh->port;
	c->out_mac = mac;
	c->flags |= CONN_F_OUT_OK;
	return true;
}

/* The index of c's backend in svc, or PYLB_BIDX_NONE. */
uint16_t
pylb_backend_index(const struct pylb_conntrack *ct, const struct pylb_service *svc,
	      const struct pylb_conn *c)
{
	const uint8_t *be = conn_addr(ct, c, CONN_BACKEND);

	if (svc == NULL)
		return PYLB_BIDX_NONE;
	for (uint32_t i = 0; i < svc->bal.n_backends; i++) {
		const struct pylb_backend *b = &svc->bal.backends[i];

		if (memcmp(b->addr.ip, be, c->af == 4 ? 4 : 16) == 0 &&
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
		pylb_backend_index(&lc->ct, svc, c);
	return bidx < svc->bal.n_backends ?
		&svc->bstats[(size_t)lc->slot * svc->bstride + bidx] : NULL;
}

static inline int64_t *
conn_gauge(struct pylb_svc_stats *bs, uint8_t state)
{
	return state == PYLB_TCP_ESTABLISHED || state == PYLB_TCP_NONE ?
		&bs->active : &bs->inactive;
}

/* The key of t's client in svc's per-client counts. */
static inline void
client_key(struct pylb_persist_key *k, uint16_t svc, const uint8_t *ip, uint8_t af)
{
	memset(k, 0, sizeof(*k));
	memcpy(k->ip, ip, af == 4 ? 4 : 16);
	k->svc = svc;
	k->af = af;
}

/* A service's limits for a new connection of t: 0 if it may open, else
 * the drop reason. The rate's token is taken here. */
static int
limits_check(struct pylb_lcore *lc, const struct pylb_service *svc, const struct pylb_tuple *t,
	     uint64_t now)
{
	const struct pylb_service_conf *s = &svc->conf;
	const struct pylb_dp_conf *conf = &lc->dp->conf;

	if (s->max_connections != 0 &&
	    lc->svc_conns[svc->id] >= pylb_worker_share(conf, s->max_connections))
		return PYLB_D_LIMIT_SERVICE_CONNS;
	if (s->max_per_client != 0) {
		struct pylb_persist_key k;
		void *data;

		client_key(&k, svc->id, t->src, t->af);
		if (rte_hash_lookup_data(lc->ct.clients, &k, &data) >= 0 &&
		    (uintptr_t)data >= s->max_per_client)
			return PYLB_D_LIMIT_CLIENT_CONNS;
	}
	if (s->max_new_per_second != 0 &&
	    !pylb_tokens_take(&lc->svc_rate[svc->id], now,
			      rte_get_timer_hz() / pylb_worker_share(conf, s->max_new_per_second),
			      rte_get_timer_hz()))
		return PYLB_D_LIMIT_SERVICE_RATE;
	return 0;
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

		client_key(&k, c->svc, conn_addr(&lc->ct, c, CONN_CLIENT), c->af);
		if (rte_hash_lookup_data(lc->ct.clients, &k, &data) < 0 && d < 0)
			return;
		v = (uintptr_t)data + (uintptr_t)(intptr_t)d;
		if (v == 0)
			rte_hash_del_key(lc->ct.clients, &k);
		else
			rte_hash_add_key_data(lc->ct.clients, &k, (void *)v);
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

/* An established NAT or FullNAT packet, already translated, through the
 * cached output: TTL, MACs, TX. False: take the full path. */
static inline bool
conn_output(struct pylb_lcore *lc, const struct pylb_cfg *cfg, struct pylb_conn *c,
	    struct rte_mbuf *m)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);

	if (!(c->flags & CONN_F_OUT_OK) && !conn_resolve(lc, c))
		return false;
	if (unlikely(rte_pktmbuf_pkt_len(m) - sizeof(*eth) > cfg->ports[c->out_port].mtu))
		return false;	/* the full path fragments it (IPv4 without DF) */
	if (c->af == 4) {
		struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);

		if (ip->time_to_live <= 1)
			return false;	/* the full path sends the ICMP error */
		ip->time_to_live--;
		ip->hdr_checksum = cksum_adjust16(ip->hdr_checksum, RTE_BE16(0x0100), 0);
	} else {
		struct rte_ipv6_hdr *ip = (struct rte_ipv6_hdr *)(eth + 1);

		if (ip->hop_limits <= 1)
			return false;
		ip->hop_limits--;
	}
	u64_to_mac(c->out_mac, &eth->dst_addr);
	rte_ether_addr_copy(&cfg->ports[c->out_port].mac, &eth->src_addr);
	CNT(lc, FORWARDED);
	tx(lc, c->out_port, m);
	return true;
}


/* A client's packet for its connection, one handler per forwarding method
 * (l4_methods, indexed by the method the connection was opened with). */
/* Does m fit its connection's egress? Asked before translation, so that
 * "fragmentation needed" or "packet too big" quotes the packet as its
 * sender sent it. IPv4 without DF fits: the output fragments it. */
static inline bool
conn_fits(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port, struct rte_mbuf *m,
	  const struct pylb_conn *c)
{
	const struct rte_ipv4_hdr *ip = rte_pktmbuf_mtod_offset(m,
		const struct rte_ipv4_hdr *, sizeof(struct rte_ether_hdr));
	uint16_t mtu;

	if (unlikely(!(c->flags & CONN_F_OUT_OK)))
		return true;	/* not resolved yet: the output checks */
	mtu = cfg->ports[c->out_port].mtu;
	if (likely(rte_pktmbuf_pkt_len(m) - sizeof(struct rte_ether_hdr) <= mtu) ||
	    (c->af == 4 && !(ip->fragment_offset & RTE_BE16(RTE_IPV4_HDR_DF_FLAG))))
		return true;
	pylb_too_big(lc, cfg, in_port, m, c->af, mtu, PYLB_D_MTU_EXCEEDED);
	return false;
}

static void
forward_nat(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	    struct rte_mbuf *m, uint16_t *ports, struct pylb_conn *c)
{
	const uint8_t *be = conn_addr(&lc->ct, c, CONN_BACKEND);

	if (unlikely(!conn_fits(lc, cfg, in_port, m, c)))
		return;

	if (unlikely(c->flags & CONN_F_SYNPROXY))
		pylb_synproxy_to_backend(c, m, ports);
	nat_rewrite(m, c->af, c->proto, ports, true, be, c->bport);
	if (!conn_output(lc, cfg, c, m))
		out_routed(lc, cfg, in_port, m, be, c->af, 0);
}

static void
forward_fullnat(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		struct rte_mbuf *m, uint16_t *ports, struct pylb_conn *c)
{
	const uint8_t *be = conn_addr(&lc->ct, c, CONN_BACKEND);
	struct pylb_pp *pp = conn_pp(lc, c);

	if (unlikely(!conn_fits(lc, cfg, in_port, m, c)))
		return;

	if (unlikely(c->flags & CONN_F_SYNPROXY))
		pylb_synproxy_to_backend(c, m, ports);
	if (unlikely(pp != NULL) && !pylb_pp_to_backend(lc, m, ports, c, pp))
		return;
	nat_rewrite(m, c->af, c->proto, ports, true, be, c->bport);
	nat_rewrite(m, c->af, c->proto, ports, false, conn_addr(&lc->ct, c, CONN_LIP), c->lport);
	if (!conn_output(lc, cfg, c, m))
		out_routed(lc, cfg, in_port, m, be, c->af, 0);
}

/* DR and tunnel: the packet as it is, to its backend through the method's
 * output, by the flow hash of (client, VIP). */
static inline void
forward_as_is(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	      struct rte_mbuf *m, struct pylb_conn *c, uint8_t method,
	      void (*out)(struct pylb_lcore *, const struct pylb_cfg *, int, struct rte_mbuf *,
			  const uint8_t *, uint8_t, uint32_t))
{
	const uint8_t *be = conn_addr(&lc->ct, c, CONN_BACKEND);

	out(lc, cfg, in_port, m, be, c->af,
	    l4_route_hash(lc->dp->conf.hash_key, method, c->af, conn_addr(&lc->ct, c, CONN_CLIENT),
			  conn_addr(&lc->ct, c, CONN_VIP), be, NULL));
}

static void
forward_dr(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	   struct rte_mbuf *m, uint16_t *ports __rte_unused, struct pylb_conn *c)
{
	forward_as_is(lc, cfg, in_port, m, c, PYLB_L4_DR, out_dr);
}

static void
forward_tunnel(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	       struct rte_mbuf *m, uint16_t *ports __rte_unused, struct pylb_conn *c)
{
	forward_as_is(lc, cfg, in_port, m, c, PYLB_L4_TUNNEL, out_tunnel);
}

/* A client's packet with no entry (the table is, or lately was, full) to
 * backend b, per method: NAT translates it, DR and tunnel send it as it is
 * by the flow hash of (client, VIP). FullNAT has none: its replies need
 * the entry. */
static void
untracked_nat(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	      struct rte_mbuf *m, uint16_t *ports, const struct pylb_tuple *t,
	      const struct pylb_backend *b, uint32_t hash)
{
	nat_rewrite(m, t->af, t->proto, ports, true, b->addr.ip,
		    b->port ? rte_cpu_to_be_16(b->port) : t->dport);
	out_routed(lc, cfg, in_port, m, b->addr.ip, t->af, hash);
}

/* Would a reply of the untracked NAT connection t -> b come back to its
 * own service (svc) alone? Not if b is in other NAT services whose
 * consistent choice for the same client would also be b. */
static bool
untracked_nat_exact(const struct pylb_dp *dp, const struct pylb_service *svc,
		    const struct pylb_tuple *t, const struct pylb_backend *b)
{
	const struct pylb_service *owner;
	uint16_t vport;
	struct pylb_tuple r = {
		.src = b->addr.ip, .dst = t->src,
		.sport = b->port ? rte_cpu_to_be_16(b->port) : t->dport, .dport = t->sport,
		.proto = t->proto, .af = t->af,
	};

	return pylb_nat_reply_service(dp, &r, &owner, &vport) == NAT_REPLY_ONE && owner == svc;
}

static void
untracked_dr(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	     struct rte_mbuf *m, uint16_t *ports __rte_unused, const struct pylb_tuple *t,
	     const struct pylb_backend *b, uint32_t hash)
{
	out_dr(lc, cfg, in_port, m, b->addr.ip, t->af, hash);
}

static void
untracked_tunnel(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		 struct rte_mbuf *m, uint16_t *ports __rte_unused, const struct pylb_tuple *t,
		 const struct pylb_backend *b, uint32_t hash)
{
	out_tunnel(lc, cfg, in_port, m, b->addr.ip, t->af, hash);
}

/* FullNAT: a local address and a port for the connection such that the
 * reply tuple is free, and the port is one this worker owns (port modulo
 * the worker count), so replies find their way back here. */
static bool
fullnat_alloc(struct pylb_lcore *lc, const struct pylb_service *svc,
	      struct pylb_conn *c, uint32_t hash)
{
	uint32_t n = RTE_MAX(lc->dp->conf.n_workers, 1u);
	uint32_t me = lc->slot < n ? lc->slot : 0;
	uint32_t first = 1024 + (me + n - 1024 % n) % n;
	const uint8_t *lip = svc->conf.lips[hash % svc->conf.n_lips].ip;
	struct pylb_tuple rt = {
		.src = conn_addr(&lc->ct, c, CONN_BACKEND), .dst = lip,
		.sport = c->bport, .proto = c->proto, .af = c->af,
	};

	for (int tries = 0; tries < 256; tries++) {
		if (lc->fnat_next < first || lc->fnat_next > 65535)
			lc->fnat_next = first;
		rt.dport = rte_cpu_to_be_16((uint16_t)lc->fnat_next);
		lc->fnat_next += n;
		if (pylb_conn_lookup(lc, &rt, true, NULL) == NULL) {
			pylb_conn_set_addr(&lc->ct, c, CONN_LIP, lip);
			c->lport = rt.dport;
			pylb_pp_open(lc, c, svc);
			return pylb_conn_add_local(lc, c) == 0;
		}
	}
	return false;
}

/* The forwarding methods' handlers, by enum pylb_l4_method: a connection
 * stores its method when it opens, and its packets index this table. */
static const struct {
	void (*forward)(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
			struct rte_mbuf *m, uint16_t *ports, struct pylb_conn *c);
	/* Without an entry (the table full); NULL: cannot (FullNAT). */
	void (*untracked)(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
			  struct rte_mbuf *m, uint16_t *ports, const struct pylb_tuple *t,
			  const struct pylb_backend *b, uint32_t hash);
	/* Can its replies be told apart without an entry (NAT: they come
	 * back through us)? NULL: they need not be. */
	bool (*untracked_exact)(const struct pylb_dp *dp, const struct pylb_service *svc,
				const struct pylb_tuple *t, const struct pylb_backend *b);
	/* What opening a connection takes besides the entry (FullNAT: a
	 * local address and port); NULL: nothing. False: it cannot open. */
	bool (*open)(struct pylb_lcore *lc, const struct pylb_service *svc,
		     struct pylb_conn *c, uint32_t hash);
} l4_methods[PYLB_L4_FULLNAT + 1] = {
	[PYLB_L4_NAT] = { forward_nat, untracked_nat, untracked_nat_exact, NULL },
	[PYLB_L4_FULLNAT] = { forward_fullnat, NULL, NULL, fullnat_alloc },
	[PYLB_L4_DR] = { forward_dr, untracked_dr, NULL, NULL },
	[PYLB_L4_TUNNEL] = { forward_tunnel, untracked_tunnel, NULL, NULL },
};

static inline void
conn_forward(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	     struct rte_mbuf *m, uint16_t *ports, struct pylb_conn *c)
{
	count_packet(lc, __atomic_load_n(&lc->dp->svcs[c->svc], __ATOMIC_ACQUIRE), c->svc,
		     c->bidx, m, false);
	l4_methods[c->method].forward(lc, cfg, in_port, m, ports, c);
}

/* The backend (index) for a new connection of t. */
static inline uint32_t
schedule(struct pylb_lcore *lc, const struct pylb_service *svc, const struct pylb_tuple *t,
	 uint32_t hash, uint64_t now)
{
	uint32_t b = svc->sched->pick(lc, svc, t, hash);

	return svc->conf.persistence != 0 ? persist(lc, svc, t, b, now) : b;
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

/* The scheduler chose backend bi: it if it has room, else the next live
 * backend that has, from a place the flow's hash picks (so the overflow
 * spreads); UINT32_MAX if none has. */
static uint32_t
backend_with_room(const struct pylb_lcore *lc, const struct pylb_service *svc, uint32_t bi,
		  uint32_t hash)
{
	uint32_t n = svc->bal.n_backends;

	if (!backend_full(lc, svc, bi))
		return bi;
	for (uint32_t i = 0, j = hash % n; i < n; i++, j = j + 1 == n ? 0 : j + 1)
		if (pylb_backend_live(&svc->bal.backends[j]) && !backend_full(lc, svc, j))
			return j;
	return UINT32_MAX;
}

/* A client's packet sent without an entry (the table is, or was lately,
 * full): to the consistent choice, translated (NAT), counted. `opens`: it
 * opens a connection (a SYN, a UDP packet). Never FullNAT: its replies
 * need the entry. A NAT connection whose replies could not be told from
 * another service's (pylb_nat_reply_service) is refused: TCP with a RST. */
static void
untracked(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	  struct rte_mbuf *m, uint16_t *ports, const struct pylb_tuple *t,
	  const struct pylb_service *svc, uint32_t hash, bool opens)
{
	uint32_t bi = svc->sched->consistent(svc, t, hash);
	const struct pylb_backend *b = &svc->bal.backends[bi];

	if (l4_methods[svc->conf.method].untracked_exact != NULL &&
	    !l4_methods[svc->conf.method].untracked_exact(lc->dp, svc, t, b)) {
		if (t->proto == IPPROTO_UDP && in_port >= 0)
			t->af == 4 ? pylb_icmp4_error(lc, cfg, (uint16_t)in_port, m,
						      ICMP_DEST_UNREACH, ICMP_PORT_UNREACHABLE, 0) :
				pylb_icmp6_error(lc, cfg, (uint16_t)in_port, m, ICMP6_DEST_UNREACH,
						 ICMP6_PORT_UNREACHABLE, 0);
		return pylb_l4_refuse(lc, cfg, in_port, m, t->af, t->proto, ports,
				      PYLB_D_NAT_UNTRACKED_AMBIGUOUS, true);
	}
	CNT(lc, CONN_UNTRACKED);
	if (opens) {
		lc->svc_stats[svc->id].conns++;
		svc->bstats[(size_t)lc->slot * svc->bstride + bi].conns++;
	}
	count_packet(lc, svc, svc->id, (uint16_t)bi, m, false);
	l4_methods[svc->conf.method].untracked(lc, cfg, in_port, m, ports, t, b, hash);
}

/* A new entry for tuple t, scheduled to a backend of svc and counted;
 * NULL if it may not open: *why is CONN_NO_ROOM (the table, the worker's
 * or the client network's half-open budget: the stateless path may take
 * it) or the drop reason. A connection picked up mid-flow was admitted
 * where it opened: it takes the consistent choice (what every appliance
 * with this configuration chose, if the scheduler is Maglev), with no
 * limits, and is half-open until confirmed, so spoofed ACKs fill no more
 * than the budgets; past them it goes stateless, evicting nobody. */
struct pylb_conn *
pylb_l4_conn_start(struct pylb_lcore *lc, const struct pylb_tuple *t,
		   const struct pylb_service *svc, uint32_t hash, uint64_t now,
		   enum pylb_opening how, int *why)
{
	struct pylb_conntrack *ct = &lc->ct;
	uint8_t method = svc->conf.method;
	bool half_open = t->proto == IPPROTO_TCP || pylb_l4_sees_replies[method];
	bool mid_flow = how == PYLB_OPEN_MID_FLOW;
	/* The client's network's slot in the per-source counts. */
	uint32_t src = ct->src_ho != NULL || ct->src_rate != NULL ?
		pylb_src_slot(ct, t->src, t->af) : 0;
	struct pylb_conn *c;
	const struct pylb_backend *b;
	uint32_t bi;

	if (unlikely(ct->src_rate != NULL) && !mid_flow &&
	    !pylb_tokens_take(&ct->src_rate[src], now, ct->src_cost, rte_get_timer_hz())) {
		*why = PYLB_D_LIMIT_SOURCE_RATE;
		return NULL;
	}
	if (unlikely(svc->conf.max_connections | svc->conf.max_new_per_second |
		     svc->conf.max_per_client) && !mid_flow &&
	    (*why = limits_check(lc, svc, t, now)) != 0)
		return NULL;
	*why = CONN_NO_ROOM;
	/* The client's network has its budget of half-open entries: its new
	 * ones go stateless (a client proven by a cookie is not held to it). */
	if (half_open && how != PYLB_OPEN_PROVEN && pylb_src_full(ct, src)) {
		CNT(lc, SOURCE_HALF_OPEN_FULL);
		return NULL;
	}
	/* The worker's budget: room is made by the oldest half-open entry,
	 * never by an established one. */
	if (half_open && ct->half_open >= ct->half_open_budget &&
	    (mid_flow || !pylb_conn_evict_half_open(lc))) {
		CNT(lc, HALF_OPEN_FULL);
		return NULL;
	}
	c = pylb_conn_new(lc, t);
	if (c == NULL) {
		CNT(lc, CONN_TABLE_FULL);
		return NULL;
	}
	if (mid_flow) {
		bi = svc->sched->consistent(svc, t, hash);
	} else {
		bi = schedule(lc, svc, t, hash, now);
		if (unlikely(svc->bal.backends[bi].max_conns != 0) &&
		    (bi = backend_with_room(lc, svc, bi, hash)) == UINT32_MAX) {
			pylb_conn_discard(lc, c);
			*why = PYLB_D_LIMIT_BACKEND_CONNS;
			return NULL;
		}
		lc->svc_stats[svc->id].conns++;
		svc->bstats[(size_t)lc->slot * svc->bstride + bi].conns++;
	}
	b = &svc->bal.backends[bi];
	pylb_conn_set_addr(&lc->ct, c, CONN_BACKEND, b->addr.ip);
	/* Port translation; backend port 0 keeps the client's. */
	c->bport = b->port ? rte_cpu_to_be_16(b->port) : t->dport;
	c->svc = svc->id;
	c->bidx = (uint16_t)bi;
	c->gen = __atomic_load_n(&lc->dp->gen, __ATOMIC_ACQUIRE);
	c->method = method;
	c->state = t->proto != IPPROTO_TCP ? PYLB_TCP_NONE : mid_flow ? PYLB_TCP_MID_FLOW :
		pylb_l4_sees_replies[method] ? PYLB_TCP_SYN_SENT : PYLB_TCP_SYN_RECV;
	if (pylb_conn_half_open(c))
		pylb_conn_opened(lc, c, src);
	(*conn_gauge(&svc->bstats[(size_t)lc->slot * svc->bstride + bi], c->state))++;
	if (svc->conf.max_per_client != 0)
		c->flags |= CONN_F_CLIENT;
	pylb_conn_counted(lc, c, true);
	if (l4_methods[method].open != NULL && !l4_methods[method].open(lc, svc, c, hash)) {
		pylb_conn_drop(lc, c);
		*why = PYLB_D_FULLNAT_NO_PORT;
		return NULL;
	}
	if (mid_flow)
		CNT(lc, CONN_PICKED_UP);
	else
		CNT(lc, CONN_CREATED);
	pylb_conn_changed(ct, c);
	return c;
}

/* A new connection for tuple t to svc: tracked and sent to the
 * scheduler's choice, or, if the table is full, sent untracked (NAT, DR,
 * tunnel; FullNAT is dropped). No entry is ever evicted. */
static void
conn_open(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	  struct rte_mbuf *m, uint16_t *ports, const struct pylb_tuple *t,
	  const struct pylb_service *svc, uint32_t hash, uint8_t flags, uint64_t now)
{
	int why;
	struct pylb_conn *c = pylb_l4_conn_start(lc, t, svc, hash, now, PYLB_OPEN_NEW, &why);

	if (c == NULL) {
		if (why != CONN_NO_ROOM)
			return pylb_l4_refuse(lc, cfg, in_port, m, t->af, t->proto, ports,
					      (enum pylb_counter)why, pylb_l4_refusal_resets(why));
		if (l4_methods[svc->conf.method].untracked == NULL)
			return drop(lc, m, PYLB_D_FULLNAT_NO_PORT);
		lc->untracked_until = now + __atomic_load_n(
			&lc->dp->timeout_tsc[PYLB_TCP_ESTABLISHED], __ATOMIC_RELAXED);
		return untracked(lc, cfg, in_port, m, ports, t, svc, hash, true);
	}
	pylb_conn_update(lc, c, flags, false, now);
	conn_forward(lc, cfg, in_port, m, ports, c);
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
	if (c->method == PYLB_L4_DR || c->method == PYLB_L4_TUNNEL)
		return l4_methods[c->method].forward(lc, cfg, in_port, m, NULL, c);
	if (!conn_output(lc, cfg, c, m))
		out_routed(lc, cfg, in_port, m, conn_addr(&lc->ct, c, CONN_BACKEND), c->af, 0);
}

/* Do the ACLs refuse t's new connection to svc? If so, m is answered by
 * the list's action: RST (TCP), ICMP unreachable (administratively
 * prohibited, rate limited), or nothing; dropped and counted either way. */
bool
pylb_l4_acl_refused(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		    struct rte_mbuf *m, const struct pylb_tuple *t, uint16_t *ports,
		    const struct pylb_service *svc)
{
	const struct pylb_acls *acls = __atomic_load_n(&lc->dp->acls, __ATOMIC_ACQUIRE);
	uint32_t list;
	uint8_t action;

	if (likely(acls == NULL) || !pylb_acl_refuses(acls, t->src, t->af, svc->id, &list))
		return false;
	action = acls->action[list];
	if (action == PYLB_ACL_RESET && t->proto == IPPROTO_TCP) {
		pylb_l4_refuse(lc, cfg, in_port, m, t->af, t->proto, ports, PYLB_D_ACL_DENIED, true);
		return true;
	}
	if (action == PYLB_ACL_UNREACHABLE && in_port >= 0) {
		if (t->af == 4)
			pylb_icmp4_error(lc, cfg, (uint16_t)in_port, m, ICMP_DEST_UNREACH,
					 ICMP_PKT_FILTERED, 0);
		else
			pylb_icmp6_error(lc, cfg, (uint16_t)in_port, m, ICMP6_DEST_UNREACH,
					 ICMP6_ADMIN_PROHIBITED, 0);
	}
	drop(lc, m, PYLB_D_ACL_DENIED);
	return true;
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
 * the cookie), nor with mid-flow pick-up off. */
static void
pick_up(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port, struct rte_mbuf *m,
	uint16_t *ports, const struct pylb_tuple *t, uint32_t hash, uint8_t flags)
{
	struct pylb_dp *dp = lc->dp;
	const struct pylb_service *svc = service_find(dp, t);
	struct pylb_conn *c;
	/* The true reason: no service on the port, none of its backends
	 * live, or no connection to pick up. */
	int why = svc == NULL ? PYLB_D_NO_SERVICE : svc->bal.table == NULL ?
		PYLB_D_SERVICE_NO_BACKEND : PYLB_D_TCP_NO_CONN;

	if (svc != NULL && svc->bal.table != NULL) {
		if ((flags & (RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG | RTE_TCP_RST_FLAG)) ==
		    RTE_TCP_ACK_FLAG && svc->synproxy != PYLB_SYN_PROXY_OFF &&
		    (svc->synproxy == PYLB_SYN_PROXY_ALWAYS || lc->now < lc->ct.cookies_until) &&
		    (why = pylb_synproxy_ack(lc, cfg, in_port, m, ports, t, svc, hash)) == 0)
			return;
		/* (With pick-up off, a connection opened untracked while
		 * the table was full still goes on.) */
		if (svc->synproxy != PYLB_SYN_PROXY_ALWAYS &&
		    l4_methods[svc->conf.method].untracked != NULL &&
		    (!dp->conf.mid_flow_off || lc->now < lc->untracked_until)) {
			if (pylb_l4_acl_refused(lc, cfg, in_port, m, t, ports, svc))
				return;
			c = flags & RTE_TCP_RST_FLAG ? NULL :
				pylb_l4_conn_start(lc, t, svc, hash, lc->now, PYLB_OPEN_MID_FLOW,
						   &why);
			if (c == NULL)
				return untracked(lc, cfg, in_port, m, ports, t, svc, hash, false);
			/* (Not confirmed by its own packet: only a FIN moves it.) */
			if (flags & RTE_TCP_FIN_FLAG)
				pylb_conn_state(lc, c, PYLB_TCP_FIN_WAIT);
			c->packets++;
			c->expire_tsc = lc->now +
				__atomic_load_n(&dp->timeout_tsc[c->state], __ATOMIC_RELAXED);
			return conn_forward(lc, cfg, in_port, m, ports, c);
		}
	}
	pylb_l4_refuse(lc, cfg, in_port, m, t->af, IPPROTO_TCP, ports, (enum pylb_counter)why,
		       dp->conf.tcp_reset);
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
	struct pylb_dp *dp = lc->dp;
	const struct pylb_service *svc;
	struct pylb_tuple t;
	struct pylb_conn *c;
	uint64_t now = lc->now;
	uint8_t proto, flags = 0;
	uint16_t *ports;
	uint32_t hash;

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
	c = pylb_conn_lookup(lc, &t, false, k);
	/* A SYN reusing the tuple of a connection that ended (time_wait,
	 * close) opens a new one, scheduled afresh (IPVS's conn_reuse_mode):
	 * the old backend may be down or gone. */
	if (c != NULL && unlikely(flags == RTE_TCP_SYN_FLAG) &&
	    (c->state == PYLB_TCP_TIME_WAIT || c->state == PYLB_TCP_CLOSE)) {
		CNT(lc, CONN_REUSED);
		pylb_conn_drop(lc, c);
		c = NULL;
	}
	if (c != NULL && unlikely(!conn_check(lc, c))) {
		/* Its backend is down: the flow ends here. TCP is reset; a
		 * UDP packet starts a new flow. */
		pylb_conn_drop(lc, c);
		CNT(lc, CONN_RESET_DOWN);
		if (proto == IPPROTO_TCP)
			return pylb_l4_refuse(lc, cfg, in_port, m, af, proto, ports,
				      PYLB_D_BACKEND_DOWN, true);
		c = NULL;
	}
	if (c != NULL) {
		if (unlikely(c->flags & CONN_F_OPENING))
			return pylb_synproxy_hold(lc, in_port, m, c);
		pylb_conn_update(lc, c, flags, false, now);
		return conn_forward(lc, cfg, in_port, m, ports, c);
	}

	hash = flow_hash(dp->conf.hash_key, t.src, t.dst, af);
	/* Only a SYN opens a TCP connection; another packet is of one opened
	 * elsewhere: picked up mid-flow. */
	if (proto == IPPROTO_TCP &&
	    (flags & (RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG)) != RTE_TCP_SYN_FLAG)
		return pick_up(lc, cfg, in_port, m, ports, &t, hash, flags);
	svc = service_find(dp, &t);
	if (svc == NULL)
		return pylb_l4_refuse(lc, cfg, in_port, m, af, proto, ports, PYLB_D_NO_SERVICE,
			      dp->conf.tcp_reset);
	if (svc->bal.table == NULL)
		return drop(lc, m, PYLB_D_SERVICE_NO_BACKEND);
	/* ACLs, where a connection opens (open ones are not looked at again). */
	if (pylb_l4_acl_refused(lc, cfg, in_port, m, &t, ports, svc))
		return;
	/* A SYN (or UDP). Under pressure, or always, a cookie answers it. */
	if (svc->synproxy != PYLB_SYN_PROXY_OFF && (svc->synproxy == PYLB_SYN_PROXY_ALWAYS ||
						    lc->ct.half_open >= lc->ct.half_open_budget ||
						    pylb_src_over(&lc->ct, t.src, af)))
		return pylb_synproxy_syn(lc, cfg, in_port, m, ports, &t, pylb_pp_room(svc, af));
	conn_open(lc, cfg, in_port, m, ports, &t, svc, hash, flags, now);
}



/* The API: serialised with the telemetry thread's readers. */

/* Restoring connections (before the workers run) and connection sync. */

/* The index of backend (addr, port) in svc; UINT32_MAX if it has none. A
 * backend port 0 keeps the client's: the record's bport is the VIP's. */
static uint32_t
backend_of(const struct pylb_service *svc, const struct pylb_conn_record *r)
{
	for (uint32_t i = 0; i < svc->bal.n_backends; i++) {
		const struct pylb_backend *b = &svc->bal.backends[i];

		if (memcmp(b->addr.ip, r->backend, r->af == 4 ? 4 : 16) == 0 &&
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
	    r->expires_ms == 0 || r->method > PYLB_L4_FULLNAT || (r->flags & ~PYLB_REC_FLAGS) ||
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
	pylb_conn_set_addr(&lc->ct, c, CONN_BACKEND, r->backend);
	c->bport = rte_cpu_to_be_16(r->bport);
	c->svc = svc->id;
	c->bidx = (uint16_t)bi;
	c->gen = __atomic_load_n(&dp->gen, __ATOMIC_ACQUIRE);
	c->method = r->method;
	c->state = r->state;
	c->flags = (r->flags & PYLB_REC_FLAGS) | (synced ? CONN_F_SYNCED : 0);
	c->seq_delta = r->seq_delta;
	c->expire_tsc = now + left;
	if (r->method == PYLB_L4_FULLNAT) {
		pylb_conn_set_addr(&lc->ct, c, CONN_LIP, r->local);
		c->lport = rte_cpu_to_be_16(r->lport);
		if (pylb_conn_add_local(lc, c) != 0) {
			pylb_conn_discard(lc, c);
			return false;
		}
	}
	/* Counted as if it had opened here: half-open, open, its backend's. */
	if (pylb_conn_half_open(c))
		pylb_conn_opened(lc, c, lc->ct.src_ho != NULL ?
				 pylb_src_slot(&lc->ct, r->client, r->af) : 0);
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
	unsigned int n = rte_ring_dequeue_burst_elem(lc->ct.sync_in, r, sizeof(r[0]), PYLB_BURST,
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
			done += rte_ring_enqueue_elem(dp->lcores[slot].ct.sync_in,
						      (void *)(uintptr_t)&r[i], sizeof(r[i])) == 0;
	}
	return done;
}

int
pylb_dp_sync_apply(struct pylb_dp *dp, const struct pylb_conn_record *r, uint32_t n)
{
	PYLB_CTL_LOCKED(dp, sync_apply_unlocked(dp, r, n));
}
