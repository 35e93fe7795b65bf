/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * DR (direct routing): the client's packet as it is, readdressed to the
 * backend's MAC on a connected network; the backend, which holds the VIP,
 * answers the client itself.
 */
#include "l4/forward.h"

static __rte_always_inline void
out_dr(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
       struct rte_mbuf *m, const struct l4_dest *d)
{
	const struct pylb_hop *hop;
	struct pylb_hop tmp;
	struct pylb_ip b;

	hop = l4_hop(lc, m, d, &tmp);
	if (hop == NULL)
		return;
	l4_dest_ip(d, &b);
	pylb_out_dr(lc, cfg, in_port, m, hop, &b);
}

static void
forward_dr(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port, struct rte_mbuf *m,
	   uint16_t *ports __rte_unused, struct pylb_conn *c)
{
	l4_forward_by(lc, cfg, in_port, m, c, out_dr, pylb_l4_dr.mixed);
}

static void
untracked_dr(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	     struct rte_mbuf *m, uint16_t *ports __rte_unused, const struct pylb_tuple *t,
	     const struct pylb_service *svc __rte_unused, const struct pylb_backend *b,
	     uint32_t hash)
{
	struct l4_dest d = { .to = b->addr.ip, .to_af = t->af, .af = t->af, .hash = hash };

	out_dr(lc, cfg, in_port, m, &d);
}

const struct l4_method pylb_l4_dr = {
	.name = "dr",
	.forward = forward_dr,
	.untracked = untracked_dr,
	.replies = L4_REPLIES_NONE,
	.quote = L4_QUOTE_AS_IS,
	.out = out_dr,
};
