/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * The L4 fast path, backends' side: NAT replies given their VIP back,
 * FullNAT replies translated back to the client, both handed to the worker
 * that owns the connection when they land on another; and the packets
 * other workers handed over, resumed where they stopped.
 */
#include <rte_hash.h>

#include "l3/l3.h"
#include "l4/forward.h"

/* Would s's consistent choice for the client's flow of reply t (to s's
 * VIP and port vport) be t's source? */
static inline bool
nat_chose(const struct pylb_dp *dp, const struct pylb_service *s, const struct pylb_tuple *t,
	  uint16_t vport)
{
	struct pylb_tuple f = {
		.src = t->dst, .dst = s->conf.vip.ip, .sport = t->dport, .dport = vport,
		.proto = t->proto, .af = t->af,
	};
	const struct pylb_backend *b;

	if (s->bal.table == NULL)
		return false;
	b = &s->bal.backends[s->sched->consistent(s, &f, flow_hash(dp->conf.hash_key, f.src,
								    f.dst, f.af))];
	return memcmp(b->addr.ip, t->src, t->af == 4 ? 4 : 16) == 0 &&
		(b->port ? rte_cpu_to_be_16(b->port) : vport) == t->sport;
}

enum nat_reply
pylb_nat_reply_service(const struct pylb_dp *dp, const struct pylb_tuple *t,
		       const struct pylb_service **svc, uint16_t *vport)
{
	struct svc_key b = { .port = t->sport, .proto = t->proto, .af = t->af };
	void *data;
	uintptr_t v;

	*svc = NULL;
	memcpy(b.ip, t->src, t->af == 4 ? 4 : 16);
	if (rte_hash_lookup_data(dp->nat_backends, &b, &data) < 0) {
		b.port = 0;	/* a backend that keeps the client's port */
		if (rte_hash_lookup_data(dp->nat_backends, &b, &data) < 0)
			return NAT_REPLY_NONE;
	}
	v = (uintptr_t)data;
	if (!nat_listed(v))
		return NAT_REPLY_AMBIGUOUS;	/* in more services than slots */
	for (int i = 0; i < NAT_SLOTS; i++) {
		const struct pylb_service *s;
		uint16_t vp;

		if (nat_slot(v, i) < 0)
			continue;
		s = __atomic_load_n(&dp->svcs[nat_slot(v, i)], __ATOMIC_ACQUIRE);
		/* Changing under us, or an all-ports service with a fixed
		 * backend port (the client's port is not in the reply). */
		if (s == NULL || pylb_l4_methods[s->conf.method]->replies != L4_REPLIES_ROUTED ||
		    (s->conf.port == 0 && b.port != 0))
			return NAT_REPLY_AMBIGUOUS;
		if (s == *svc)
			continue;	/* listed twice while it replaces itself */
		vp = b.port == 0 ? t->sport : rte_cpu_to_be_16(s->conf.port);
		/* In several services: the one whose consistent choice it is. */
		if (nat_refs(v) > 1 && !nat_chose(dp, s, t, vp))
			continue;
		if (*svc != NULL)
			return NAT_REPLY_AMBIGUOUS;
		*svc = s;
		*vport = vp;
	}
	return *svc != NULL ? NAT_REPLY_ONE : NAT_REPLY_AMBIGUOUS;
}

/* The TCP/UDP tuple of m and the connection it replies to, if any: 1.
 * 0: not TCP or UDP, or too short to say (or a later fragment whose first
 * was not seen). -1: m was taken (a fragment, where its datagram gathers:
 * a NAT reply's at its client's owner, not held: fragments of any routed
 * datagram come here; a FullNAT reply's at its backend's owner). */
static inline int
reply_lookup(struct pylb_lcore *lc, struct rte_mbuf *m, uint8_t af, int in_port,
	     uint32_t kind, struct pylb_tuple *t, uint16_t **ports, struct pylb_conn **c,
	     const struct pylb_ct_key *k)
{
	uint8_t proto;

	*ports = l4_header(m, af, &proto);
	if (unlikely(frag_suspect(m, af, proto))) {
		const uint8_t *src = l4_src(m, af);

		switch (pylb_frag_gather(lc, m, af, in_port, kind,
					 kind == RESUME_REPLY ? src + (af == 4 ? 4 : 16) : src,
					 kind != RESUME_REPLY, &proto, ports)) {
		case PYLB_FRAG_TAKEN:
			return -1;
		case PYLB_FRAG_UNKNOWN:
			return 0;
		}
	}
	if (*ports == NULL || (proto != IPPROTO_TCP && proto != IPPROTO_UDP))
		return 0;
	tuple_of(t, m, af, proto, *ports);
	*c = pylb_conn_lookup(lc, t, true, k);
	return 1;
}

/* A NAT backend's reply with no connection here: handed to the worker
 * that owns the client, or (a connection opened untracked while the table
 * was full; one of another appliance's before sync brought it) given its
 * service's VIP and port back. A reply that cannot be told to be exactly
 * one service's (its backend in several NAT services whose consistent
 * choices do not name one) is dropped, never sent on with the backend's
 * address; a SYN from a backend is no reply: it goes on as it is. */
static bool
nat_reverse_untracked(struct pylb_lcore *lc, int in_port, struct rte_mbuf *m, uint8_t af,
		      const struct pylb_tuple *t, uint16_t *ports)
{
	const struct pylb_service *svc;
	uint16_t vport;
	enum nat_reply r = pylb_nat_reply_service(lc->dp, t, &svc, &vport);

	if (r == NAT_REPLY_NONE ||
	    (t->proto == IPPROTO_TCP && (l4_tcp_flags(t, ports) &
					 (RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG)) == RTE_TCP_SYN_FLAG))
		return true;
	if (redirect(lc, m, in_port, af, RESUME_REPLY, t->dst))
		return false;
	if (r == NAT_REPLY_AMBIGUOUS) {
		drop(lc, m, PYLB_D_NAT_REPLY_AMBIGUOUS);
		return false;
	}
	nat_rewrite(m, af, t->proto, ports, false, svc->conf.vip.ip, vport);
	CNT(lc, NAT_REPLIES_UNTRACKED);
	count_packet(lc, svc, svc->id, UINT16_MAX, m, true);
	return true;
}

/* Route m (a translated reply) towards its new destination. */
void
pylb_l4_route(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	      struct rte_mbuf *m, uint8_t af)
{
	const uint8_t *ip = rte_pktmbuf_mtod_offset(m, const uint8_t *,
						    sizeof(struct rte_ether_hdr));
	uint32_t g = route_group(lc->dp, ip + (af == 4 ? 16 : 24), af);

	if (g == 0)
		return drop(lc, m, PYLB_D_NO_ROUTE);
	if (af == 4)
		pylb_fwd4(lc, cfg, in_port, m, g);
	else
		pylb_fwd6(lc, cfg, in_port, m, g);
}



/* A packet on its way to be routed: if it is a backend's reply of a NAT
 * connection, give it the VIP back as its source. Returns false if it was
 * handed to the worker that owns the connection. */
bool
pylb_nat_reverse(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		 struct rte_mbuf *m, uint8_t af, const struct pylb_ct_key *k)
{
	struct pylb_tuple t;
	struct pylb_conn *c;
	uint16_t *ports;

	switch (reply_lookup(lc, m, af, in_port, RESUME_REPLY, &t, &ports, &c, k)) {
	case -1:
		return false;
	case 0:
		return true;
	}
	if (c == NULL)
		return nat_reverse_untracked(lc, in_port, m, af, &t, ports);
	if (pylb_l4_methods[c->method]->replies == L4_REPLIES_ROUTED)
		return pylb_l4_methods[c->method]->reply(lc, cfg, in_port, m, &t, ports, c);
	return true;
}

/* A TCP or UDP packet for one of the appliance's own addresses: if it is a
 * backend's reply to a FullNAT connection, give it the VIP as source and
 * the client as destination, and route it. False if it is not one. */
bool
pylb_fullnat_reply(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		   struct rte_mbuf *m, uint8_t af, const struct pylb_ct_key *k)
{
	struct pylb_dp *dp = lc->dp;
	struct pylb_tuple t;
	struct pylb_conn *c;
	uint16_t *ports;

	switch (reply_lookup(lc, m, af, in_port, RESUME_FULLNAT, &t, &ports, &c, k)) {
	case -1:
		return true;
	case 0:
		return false;
	}
	if (c == NULL) {
		/* The worker that owns the local port has it, if anyone. */
		uint32_t n = dp->conf.n_workers;
		uint32_t owner = n > 1 ? rte_be_to_cpu_16(t.dport) % n : lc->slot;

		if (n > 1 && lc->slot < n && owner != lc->slot) {
			hand_over(lc, m, in_port, af, RESUME_FULLNAT, owner);
			return true;
		}
		return false;
	}
	if (pylb_l4_methods[c->method]->replies != L4_REPLIES_LOCAL)
		return false;
	pylb_l4_methods[c->method]->reply(lc, cfg, in_port, m, &t, ports, c);
	return true;
}

/* A packet for one of our addresses that no connection took: a data-path
 * probe's answer (probe.c), else L3's own (ICMP, the kernel interface). */
void
pylb_l4_local(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	      struct rte_mbuf *m, uint8_t af)
{
	if (unlikely(__atomic_load_n(&lc->dp->probes_live, __ATOMIC_RELAXED) != 0) &&
	    pylb_probe_answer(lc, cfg, m, af))
		return;
	if (af == 4)
		pylb_ipv4_local(lc, cfg, (uint16_t)in_port, m);
	else
		pylb_ipv6_local(lc, cfg, (uint16_t)in_port, m);
}

void
pylb_resume(struct pylb_lcore *lc, const struct pylb_cfg *cfg, struct rte_mbuf *m)
{
	uint8_t af = (uint8_t)(m->hash.usr >> 8);
	int in_port = m->port == UINT16_MAX ? -1 : m->port;	/* -1: from the kernel */

	switch (m->hash.usr & 0xff) {
	case RESUME_L4:
		pylb_l4_input(lc, cfg, in_port, m, af, NULL);
		break;
	case RESUME_FULLNAT:
		if (!pylb_fullnat_reply(lc, cfg, in_port, m, af, NULL))
			pylb_l4_local(lc, cfg, in_port, m, af);
		break;
	case RESUME_ICMP_IN:
		if (!pylb_icmp_error_in(lc, cfg, in_port, m, af))
			af == 4 ? pylb_ipv4_icmp(lc, cfg, in_port, m) :
				pylb_ipv6_icmp(lc, cfg, in_port, m);
		break;
	case RESUME_ICMP_NAT:
		if (pylb_icmp_error_nat(lc, cfg, in_port, m, af))
			pylb_l4_route(lc, cfg, in_port, m, af);
		break;
	case RESUME_ICMP_FULLNAT:
		if (!pylb_icmp_error_fullnat(lc, cfg, in_port, m, af))
			pylb_l4_local(lc, cfg, in_port, m, af);
		break;
	default:
		if (pylb_nat_reverse(lc, cfg, in_port, m, af, NULL))
			pylb_l4_route(lc, cfg, in_port, m, af);
	}
}

/* Packets other workers handed over: continue where they stopped. */
void
pylb_redirect_drain(struct pylb_lcore *lc, const struct pylb_cfg *cfg)
{
	struct rte_mbuf *pkts[PYLB_BURST];
	unsigned int n = rte_ring_dequeue_burst(lc->redirect, (void **)pkts, PYLB_BURST, NULL);

	if (n == 0)
		return;
	for (unsigned int i = 0; i < n; i++)
		pylb_resume(lc, cfg, pkts[i]);
	if (unlikely(lc->frags->n_ready != 0))
		pylb_frag_release(lc, cfg);
}
