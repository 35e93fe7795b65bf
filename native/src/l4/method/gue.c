/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * GUE: a tunnel (tunnel.c) in UDP: the client's packet as it is, in an
 * outer IP and UDP header to the backend's port 6080 (GUE variant 1, which
 * is FOU: the packet's version says IPv4 or IPv6), the UDP source port from
 * the flow's hash so that the backend's NIC spreads the flows over its
 * queues; crosses networks that carry UDP but not IPIP. The backend
 * decapsulates (Linux: ip fou add port 6080 gue), holds the VIP and answers
 * the client itself.
 */
#include "l4/forward.h"

static __rte_always_inline void
out_gue(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port, struct rte_mbuf *m,
	const struct l4_dest *d)
{
	l4_out_encap(lc, cfg, in_port, m, d, &tun_gue);
}

static void
forward_gue(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port, struct rte_mbuf *m,
	   uint16_t *ports __rte_unused, struct pylb_conn *c)
{
	l4_forward_by(lc, cfg, in_port, m, c, out_gue, pylb_l4_gue.mixed);
}

static void
untracked_gue(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	      struct rte_mbuf *m, uint16_t *ports __rte_unused, const struct pylb_tuple *t,
	      const struct pylb_service *svc, const struct pylb_backend *b, uint32_t hash)
{
	l4_untracked_encap(lc, cfg, in_port, m, t, svc, b, hash, &tun_gue);
}

const struct l4_method pylb_l4_gue = {
	.name = "gue",
	.forward = forward_gue,
	.untracked = untracked_gue,
	.open_decide = l4_open_decide_mixed,
	.replies = L4_REPLIES_NONE,
	.quote = L4_QUOTE_AS_IS,
	.mixed = true,
	.out = out_gue,
};
