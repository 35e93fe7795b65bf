/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * NAT (DNAT): a client's packet goes to its backend with the backend's
 * address and port as destination; the backend's reply, routed back
 * through the appliance, gets the VIP and its port back as source.
 */
#include "l4/forward.h"

static void
forward_nat(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	    struct rte_mbuf *m, uint16_t *ports, struct pylb_conn *c)
{
	const uint8_t *be = conn_addr(lc->ct, c, CONN_BACKEND);

	if (unlikely(!l4_conn_fits(lc, cfg, in_port, m, c)))
		return;

	if (unlikely(c->flags & CONN_F_SYNPROXY))
		pylb_synproxy_to_backend(c, m, ports);
	nat_rewrite(m, c->af, c->proto, ports, true, be, c->bport);
	if (!l4_conn_output(lc, cfg, c, m))
		l4_out_routed(lc, cfg, in_port, m, be, c->af, 0);
}

/* Without an entry: translated, routed by the flow hash of (client, VIP). */
static void
untracked_nat(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	      struct rte_mbuf *m, uint16_t *ports, const struct pylb_tuple *t,
	      const struct pylb_service *svc __rte_unused, const struct pylb_backend *b,
	      uint32_t hash)
{
	nat_rewrite(m, t->af, t->proto, ports, true, b->addr.ip,
		    b->port ? rte_cpu_to_be_16(b->port) : t->dport);
	l4_out_routed(lc, cfg, in_port, m, b->addr.ip, t->af, hash);
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

const struct l4_method pylb_l4_nat = {
	.name = "nat",
	.forward = forward_nat,
	.untracked = untracked_nat,
	.untracked_exact = untracked_nat_exact,
	.reply = l4_reply_from_vip,
	.replies = L4_REPLIES_ROUTED,
	.quote = L4_QUOTE_BACKEND,
};
