/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * Tunnel: the client's packet as it is, encapsulated in IPIP (or
 * IPv6-in-IPv6) to the backend, which decapsulates it, holds the VIP and
 * answers the client itself. The outer source is the service's (an
 * address, or a prefix varied per flow), else the egress port's address.
 */
#include "l4/forward.h"

static void
out_tunnel(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port, struct rte_mbuf *m,
	   const uint8_t *to, uint8_t af, uint32_t hash, const struct pylb_encap_src *src,
	   uint32_t flow)
{
	struct pylb_ip b = { .af = af };
	uint32_t g;

	if (!l4_backend_group(lc, m, to, af, &g))
		return;
	memcpy(b.ip, to, af == 4 ? 4 : 16);
	pylb_out_encap(lc, cfg, in_port, m, nhg_pick(lc->dp, g, hash), false, src, flow, &b, af);
}

static void
untracked_tunnel(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		 struct rte_mbuf *m, uint16_t *ports __rte_unused, const struct pylb_tuple *t,
		 const struct pylb_service *svc, const struct pylb_backend *b, uint32_t hash)
{
	out_tunnel(lc, cfg, in_port, m, b->addr.ip, t->af, hash, &svc->tunnel_src,
		   l4_flow(hash, t->sport));
}

const struct l4_method pylb_l4_tunnel = {
	.name = "tunnel",
	.forward = l4_forward_as_is,
	.untracked = untracked_tunnel,
	.replies = L4_REPLIES_NONE,
	.quote = L4_QUOTE_AS_IS,
	.out = out_tunnel,
};
