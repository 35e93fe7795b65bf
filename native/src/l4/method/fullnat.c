/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * FullNAT: a client's packet goes to its backend from one of the
 * service's local addresses and a port this worker owns, so the reply
 * comes back to the appliance (to that address) wherever the backend
 * routes; it gets the VIP and the client back. A PROXY protocol header
 * may name the client to the backend (proxy.c).
 */
#include "l4/forward.h"

static void
forward_fullnat(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		struct rte_mbuf *m, uint16_t *ports, struct pylb_conn *c)
{
	const uint8_t *be = conn_addr(lc->ct, c, CONN_BACKEND);
	struct pylb_pp *pp = conn_pp(lc, c);

	if (unlikely(!l4_conn_fits(lc, cfg, in_port, m, c)))
		return;

	if (unlikely(c->flags & CONN_F_SYNPROXY))
		pylb_synproxy_to_backend(c, m, ports);
	if (unlikely(pp != NULL) && !pylb_pp_to_backend(lc, m, ports, c, pp))
		return;
	nat_rewrite(m, c->af, c->proto, ports, true, be, c->bport);
	nat_rewrite(m, c->af, c->proto, ports, false, conn_addr(lc->ct, c, CONN_LIP), c->lport);
	if (!l4_conn_output(lc, cfg, c, m))
		l4_out_routed(lc, cfg, in_port, m, be, c->af, 0);
}

/* FullNAT: a local address and a port for the connection such that the
 * reply tuple is free, and the port is one this worker owns (port modulo
 * the worker count), so replies find their way back here: looked for
 * (from where this worker's search goes on) by the decision, read only. */
static bool
fullnat_port(const struct pylb_lcore *lc, const struct pylb_service *svc,
	     const struct pylb_tuple *t, struct l4_verdict *v)
{
	const struct pylb_backend *b = &svc->bal.backends[v->bi];
	uint32_t n = RTE_MAX(lc->dp->conf.n_workers, 1u);
	uint32_t me = lc->slot < n ? lc->slot : 0;
	uint32_t first = 1024 + (me + n - 1024 % n) % n;
	uint32_t next = lc->fnat_next;
	struct pylb_tuple rt = {
		.src = b->addr.ip, .sport = b->port ? rte_cpu_to_be_16(b->port) : t->dport,
		.proto = t->proto, .af = t->af,
	};

	v->lip = v->hash % svc->conf.n_lips;
	rt.dst = svc->conf.lips[v->lip].ip;
	for (int tries = 0; tries < 256; tries++, next += n) {
		if (next < first || next > 65535)
			next = first;
		rt.dport = rte_cpu_to_be_16((uint16_t)next);
		if (pylb_conn_lookup((struct pylb_lcore *)(uintptr_t)lc, &rt, true, NULL) == NULL) {
			v->lport = rt.dport;
			return true;
		}
	}
	return false;
}

/* ... and taken. */
static bool
fullnat_open(struct pylb_lcore *lc, const struct pylb_service *svc, struct pylb_conn *c,
	     const struct l4_verdict *v)
{
	lc->fnat_next = rte_be_to_cpu_16(v->lport) + RTE_MAX(lc->dp->conf.n_workers, 1u);
	pylb_conn_set_addr(lc->ct, c, CONN_LIP, svc->conf.lips[v->lip].ip);
	c->lport = v->lport;
	pylb_pp_open(lc, c, svc);
	return pylb_conn_add_local(lc, c) == 0;
}

/* The reply, to our local address: the VIP and the client back, routed
 * to the client. */
static bool
reply_fullnat(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	      struct rte_mbuf *m, const struct pylb_tuple *t, uint16_t *ports,
	      struct pylb_conn *c)
{
	struct pylb_pp *pp = conn_pp(lc, c);

	if (!l4_reply_from_vip(lc, cfg, in_port, m, t, ports, c))
		return false;
	if (unlikely(pp != NULL) && c->proto == IPPROTO_TCP)
		pylb_pp_to_client(m, ports, pp);
	nat_rewrite(m, t->af, t->proto, ports, true, conn_addr(lc->ct, c, CONN_CLIENT), c->cport);
	pylb_l4_route(lc, cfg, in_port, m, t->af);
	return false;
}

const struct l4_method pylb_l4_fullnat = {
	.name = "fullnat",
	.forward = forward_fullnat,
	.open_decide = fullnat_port,
	.open = fullnat_open,
	.reply = reply_fullnat,
	.replies = L4_REPLIES_LOCAL,
	.quote = L4_QUOTE_BACKEND_LOCAL,
};
