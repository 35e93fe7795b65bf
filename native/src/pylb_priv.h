/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * Internal structures shared by the dataplane's source files.
 */
#ifndef PYLB_PRIV_H
#define PYLB_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <rte_common.h>
#include <rte_ether.h>

#include "pylb_dp.h"
#include "tunables.h"

struct rte_mempool;
struct rte_ring;
struct rte_hash;
struct rte_rcu_qsbr;

struct pylb_stats {
	uint64_t c[PYLB_CNT_STRIDE];
} __rte_cache_aligned;

/* Configuration read by the workers, published as an immutable snapshot:
 * built off to the side, swapped with one atomic store, freed after an RCU
 * grace period. */
struct pylb_addr4 {
	uint32_t ip;		/* network byte order */
	uint32_t mask;		/* network byte order */
	uint8_t prefix_len;
};

struct pylb_port_cfg {
	struct rte_ether_addr mac;
	uint16_t n_addrs;
	struct pylb_addr4 addrs[PYLB_MAX_ADDRS];
};

struct pylb_cfg {
	uint16_t n_ports;
	struct pylb_port_cfg ports[PYLB_MAX_PORTS];
};

struct pylb_txbuf {
	uint16_t n;
	struct rte_mbuf *pkts[PYLB_TX_BUF];
};

/* One per worker, plus one for the control side. Written by its owner only. */
struct pylb_lcore {
	uint32_t slot;
	uint32_t lcore_id;
	uint16_t queue;
	struct pylb_dp *dp;
	struct pylb_stats *stats;
	struct pylb_txbuf tx[PYLB_MAX_PORTS];
} __rte_cache_aligned;

struct pylb_port {
	char name[PYLB_NAME_LEN];
	char device[PYLB_DEVARGS_LEN];
	int32_t ethdev;		/* -1: detached */
	bool started;
};

/* A neighbour seen by a worker, queued for the control side to record. */
struct pylb_neigh_learn {
	uint32_t ip;
	uint16_t port;
	struct rte_ether_addr mac;
};

struct pylb_neigh_key {
	uint32_t ip;
	uint16_t port;
	uint16_t pad;
};


struct pylb_dp {
	struct pylb_dp_conf conf;
	volatile bool running;
	uint32_t n_slots;		/* workers + control */
	struct pylb_lcore *lcores;	/* n_slots */
	struct pylb_stats *stats;	/* n_slots */
	struct rte_mempool *pools[RTE_MAX_NUMA_NODES];
	struct rte_rcu_qsbr *qsv;

	struct pylb_cfg *cfg;		/* current snapshot, RCU-protected */
	/* Serialises control-side writers with control-side readers on other
	 * threads (telemetry); workers never take it. */
	pthread_mutex_t ctl_lock;

	uint16_t n_ports;
	struct pylb_port ports[PYLB_MAX_PORTS];

	struct rte_ring *neigh_learn;	/* workers -> control */
	/* (ip, port) -> MAC in the data word, so readers see one atomic
	 * value; written by the control side only. */
	struct rte_hash *neigh_hash;
	uint64_t *neigh_seen_tsc;	/* by hash position, control only */
};

/* errors.c */
int pylb_fail(int rc, const char *fmt, ...) __rte_format_printf(2, 3);

/* host.c: the burst-processing function, shared by workers and inject. */
void pylb_host_process(struct pylb_lcore *lc, const struct pylb_cfg *cfg,
		       uint16_t port, struct rte_mbuf **pkts, uint16_t n);

/* dp.c */
struct rte_mempool *pylb_pool_for(struct pylb_dp *dp, int socket);

/* port.c */
int pylb_port_setup(struct pylb_dp *dp, struct pylb_port *p,
		    const struct pylb_port_conf *conf, struct rte_ether_addr *mac);
void pylb_port_close(struct pylb_port *p);

/* worker.c */
int pylb_worker_main(void *arg);

/* neigh.c */
int pylb_neigh_init(struct pylb_dp *dp);
void pylb_neigh_free(struct pylb_dp *dp);
int pylb_neigh_drain(struct pylb_dp *dp);

/* telemetry.c */
void pylb_telemetry_attach(struct pylb_dp *dp);
void pylb_telemetry_detach(struct pylb_dp *dp);

static inline struct pylb_lcore *
pylb_control_lcore(struct pylb_dp *dp)
{
	return &dp->lcores[dp->n_slots - 1];
}

#endif /* PYLB_PRIV_H */
