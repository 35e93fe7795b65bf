/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * The stages of the burst pipeline (pipeline.c) and what they call: the
 * families' parsers and local delivery (ipv4.c, ipv6.c), and the handlers
 * of L3 VIPs (vip.c) and L4 services and replies (l4.c, reply.c).
 */
#ifndef PYLB_PIPELINE_H
#define PYLB_PIPELINE_H

#include "ct.h"
#include "fib.h"

/* A burst between stages: the IP packets that passed validation, in
 * arrival order, with what each stage learnt about them. */
struct pylb_burst {
	uint16_t n;
	uint16_t n4, n6;			/* FIB inputs per family */
	uint32_t keyed;				/* bit i: packet i looks up a connection */
	struct rte_mbuf *m[PYLB_BURST];
	uint8_t af[PYLB_BURST];
	uint8_t proto[PYLB_BURST];		/* the transport protocol */
	uint8_t kind[PYLB_BURST] __rte_aligned(16);		/* the sub-burst: PYLB_FIB_* or STAGE_NO_ROUTE */
	uint32_t fib[PYLB_BURST];		/* the FIB's value */
	struct pylb_ct_key key[PYLB_BURST];	/* connection-table key (h 0: none) */
	uint8_t at4[PYLB_BURST], at6[PYLB_BURST];	/* burst index of FIB input i */
	uint32_t dst4[PYLB_BURST];		/* host order, as rte_fib takes it */
	uint8_t dst6[PYLB_BURST][RTE_FIB6_IPV6_ADDR_SIZE];
	uint32_t src4[PYLB_BURST];		/* the sources, the same way */
	uint8_t src6[PYLB_BURST][RTE_FIB6_IPV6_ADDR_SIZE];
	uint64_t val[PYLB_BURST];
};

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
/* icmperr.c: an ICMP error's quoted flow, turned the way it arrived. */
bool pylb_icmp_error_flow(struct rte_mbuf *m, uint8_t af, const uint8_t **client,
			  const uint8_t **vip);
void pylb_ipv6_icmp(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
		    struct rte_mbuf *m);

/* probe.c: m, for one of our addresses, answers a data-path probe: noted
 * (a SYN-ACK answered with a RST): true, m taken. */
bool pylb_probe_answer(struct pylb_lcore *lc, const struct pylb_cfg *cfg, struct rte_mbuf *m,
		       uint8_t af);

/* vip.c */
void pylb_vip_input(struct pylb_lcore *lc, const struct pylb_cfg *cfg,
		    int in_port, struct rte_mbuf *m, uint32_t vip_id, uint8_t af);

/* l4.c, reply.c. k: the packet's connection-table key, if the pipeline
 * made one; NULL: hashed where needed. */
void pylb_l4_input(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		   struct rte_mbuf *m, uint8_t af, const struct pylb_ct_key *k);
bool pylb_nat_reverse(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		      struct rte_mbuf *m, uint8_t af, const struct pylb_ct_key *k);
bool pylb_fullnat_reply(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
			struct rte_mbuf *m, uint8_t af, const struct pylb_ct_key *k);

#endif /* PYLB_PIPELINE_H */
