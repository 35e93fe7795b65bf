/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * Tunnel: the client's packet as it is, encapsulated in IPIP (or
 * IPv6-in-IPv6) to the backend, which decapsulates it, holds the VIP and
 * answers the client itself; IPv4 in IPv6 and IPv6 in IPv4 alike (its
 * backends may be of either family). The outer source is the service's (an
 * address, or a prefix varied per flow), else the egress port's address.
 * (gue.c: the same in UDP.)
 */
#include "l4/forward.h"

static __rte_always_inline void
out_tunnel(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port, struct rte_mbuf *m,
	   const struct l4_dest *d)
{
	l4_out_encap(lc, cfg, in_port, m, d, &tun_ipip);
}

static void
forward_tunnel(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port, struct rte_mbuf *m,
	      uint16_t *ports __rte_unused, struct pylb_conn *c)
{
	l4_forward_by(lc, cfg, in_port, m, c, out_tunnel, pylb_l4_tunnel.mixed);
}

static void
untracked_tunnel(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		 struct rte_mbuf *m, uint16_t *ports __rte_unused, const struct pylb_tuple *t,
		 const struct pylb_service *svc, const struct pylb_backend *b, uint32_t hash)
{
	l4_untracked_encap(lc, cfg, in_port, m, t, svc, b, hash, &tun_ipip);
}

const struct l4_method pylb_l4_tunnel = {
	.name = "tunnel",
	.forward = forward_tunnel,
	.untracked = untracked_tunnel,
	.open_decide = l4_open_decide_mixed,
	.replies = L4_REPLIES_NONE,
	.quote = L4_QUOTE_AS_IS,
	.mixed = true,
	.out = out_tunnel,
};
