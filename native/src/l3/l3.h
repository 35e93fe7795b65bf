/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * L3's entry points for the packet path (path/pipeline.c): ARP, IPv4 and
 * IPv6 parsing and the appliance's own addresses, L3 VIPs.
 */
#ifndef PYLB_L3_H
#define PYLB_L3_H

#include "l3/fib.h"

/* ipv4.c */
void pylb_arp_input(struct pylb_lcore *lc, const struct pylb_port_cfg *pc, uint16_t port,
		    struct rte_mbuf *m);
bool pylb_ipv4_parse(struct pylb_lcore *lc, struct rte_mbuf *m, uint32_t l2,
		     bool l2_multicast);
void pylb_ipv4_local(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
		     struct rte_mbuf *m);
void pylb_ipv4_icmp(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
		    struct rte_mbuf *m);

/* ipv6.c */
bool pylb_ipv6_parse(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
		     struct rte_mbuf *m, uint32_t l2, bool l2_multicast, uint8_t *proto);
void pylb_ipv6_local(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
		     struct rte_mbuf *m);
void pylb_ipv6_icmp(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
		    struct rte_mbuf *m);

/* vip.c: a packet to an L3 VIP, to its backend (path/pipeline.c sends
 * an inspected VIP's through its appliance first). */
void pylb_vip_input(struct pylb_lcore *lc, const struct pylb_cfg *cfg,
		    int in_port, struct rte_mbuf *m, uint32_t vip_id, uint8_t af);

/* inspect.c: to an inspection pool's appliance (pool slot `pool`):
 * gathered over a burst, then sent by pylb_inspect_flush (each burst's
 * packets come in by one port, in_port); an appliance's GENEVE answer
 * (false: m is not one); flows aged. */
static inline void
pylb_inspect_out(struct pylb_lcore *lc, struct rte_mbuf *m, uint16_t pool, uint8_t af)
{
	struct pylb_inspect *in = lc->inspect;

	if (unlikely(in == NULL))
		return drop(lc, m, PYLB_D_INSPECT_NO_APPLIANCE);
	in->pending[in->n_pending++] = (struct pylb_inspect_pending){ m, pool, af };
}
void pylb_inspect_flush(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port);
bool pylb_inspect_return(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
			 struct rte_mbuf *m, uint8_t af);
void pylb_inspect_age(struct pylb_lcore *lc, uint64_t now, uint32_t step);

#endif /* PYLB_L3_H */
