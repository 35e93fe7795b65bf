/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * The stages of the burst pipeline (pipeline.c) and what they call: the
 * families' parsers and local delivery (ipv4.c, ipv6.c), and the handlers
 * of L3 VIPs (vip.c) and L4 services and replies (l4.c, reply.c).
 */
#ifndef PYLB_PIPELINE_H
#define PYLB_PIPELINE_H

#include "l3/l3.h"
#include "l4/l4.h"

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
	uint64_t val[PYLB_BURST], sval[PYLB_BURST];	/* the FIB's, destinations' and sources' */
};

/* pipeline.c, kernel.c: the burst-processing functions, shared by workers and inject:
 * frames from the wire, and frames the kernel sent on the exception path;
 * the caller sets lc->now (a worker once per poll). */
void pylb_host_process(struct pylb_lcore *lc, const struct pylb_cfg *cfg,
		       uint16_t port, struct rte_mbuf **pkts, uint16_t n);
void pylb_kernel_process(struct pylb_lcore *lc, const struct pylb_cfg *cfg,
			 uint16_t port, struct rte_mbuf **pkts, uint16_t n);
/* worker.c */
int pylb_worker_main(void *arg);

#endif /* PYLB_PIPELINE_H */
