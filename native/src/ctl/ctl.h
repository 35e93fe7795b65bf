/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * What the control side's files (the API, ctl/) call of one another: the
 * dataplane's mempools, ports, neighbour table, services' tables,
 * timeouts, encapsulations' sources, housekeeping and telemetry.
 */
#ifndef PYLB_CTL_H
#define PYLB_CTL_H

#include "l4/l4.h"

/* dp.c */
struct rte_mempool *pylb_pool_for(struct pylb_dp *dp, int socket);
/* port.c */
int pylb_port_setup(struct pylb_dp *dp, struct pylb_port *p,
		    const struct pylb_port_conf *conf, struct rte_ether_addr *mac);
int pylb_port_kernel_setup(struct pylb_dp *dp, struct pylb_port *p);
void pylb_port_close(struct pylb_port *p);
/* neigh.c */
int pylb_neigh_init(struct pylb_dp *dp);
void pylb_neigh_free(struct pylb_dp *dp);
int pylb_neigh_housekeep(struct pylb_dp *dp);
/* service.c: the services' tables. */
int pylb_l4_init(struct pylb_dp *dp);
void pylb_l4_free(struct pylb_dp *dp);
/* conns.c: each TCP state's timeout from t (0: the default), from the next packet. */
void pylb_timeouts_apply(struct pylb_dp *dp, const struct pylb_timeouts *t);
/* housekeep.c: what the control side queued, sent (or handed to worker 0). */
void pylb_control_flush(struct pylb_dp *dp);
/* vip.c */
void pylb_vip_free_all(struct pylb_dp *dp);
/* pool.c */
void pylb_pool_free_all(struct pylb_dp *dp);
/* vip.c: `p` (af 0: none) bound as an outer source; `what` names it in
 * the error. */
int pylb_encap_src_bind(struct pylb_encap_src *out, const struct pylb_prefix *p,
			const char *what);
/* telemetry.c */
void pylb_telemetry_attach(struct pylb_dp *dp);
void pylb_telemetry_detach(struct pylb_dp *dp);

#endif /* PYLB_CTL_H */
