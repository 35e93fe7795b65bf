/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * The dataplane's core: its configuration snapshot, counters, token
 * buckets, TX buffers, and the composition of every layer's state (the
 * dataplane, its lcores, its ports). The layers' own types are theirs
 * (l3/state.h, l4/state.h): here they are pointers only, so this header
 * includes nothing above core/.
 */
#ifndef PYLB_CORE_DP_H
#define PYLB_CORE_DP_H

#include <pthread.h>
#include <stdbool.h>
#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_ether.h>

#include "pylb_dp.h"
#include "core/byteorder.h"
#include "core/mac.h"
#include "core/tunables.h"

struct rte_mempool;
struct rte_ring;
struct rte_hash;
struct rte_rcu_qsbr;
struct rte_fib;
struct rte_fib6;
struct rte_mbuf;
/* The layers' state (l3/state.h, l4/state.h). */
struct pylb_acls;
struct pylb_conntrack;
struct pylb_frags;
struct pylb_ncache;
struct pylb_neigh_ctl;
struct pylb_nh;
struct pylb_nhg;
struct pylb_probe;
struct pylb_service;
struct pylb_vip;
struct pylb_pool;
struct pylb_inspect;

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

struct pylb_addr6 {
	uint8_t ip[16];
	uint8_t prefix_len;
};

struct pylb_port_cfg {
	struct rte_ether_addr mac;
	bool kernel;		/* has an exception path */
	/* The reverse-path check, bound from rp_filter: a source's route
	 * must leave by one of these ports (strict: this one; loose: any;
	 * 0: off, no route needed). */
	uint32_t rp_ports;
	uint16_t mtu;
	/* Its VLAN sub-interfaces: tag (vid) -> port, n_vlans of them. */
	uint16_t n_vlans;
	struct { uint16_t vid, port; } vlans[PYLB_MAX_PORTS];
	uint16_t n_addrs4;
	uint16_t n_addrs6;
	struct pylb_addr4 addrs4[PYLB_MAX_ADDRS];
	struct pylb_addr6 addrs6[PYLB_MAX_ADDRS];
};

struct pylb_cfg {
	uint16_t n_ports;
	struct pylb_port_cfg ports[PYLB_MAX_PORTS];
};

/* A worker's share of a total across the workers (limits, rates): no
 * counter is shared between them, each takes ceil(total / workers). */
static inline uint32_t
pylb_worker_share(const struct pylb_dp_conf *conf, uint32_t total)
{
	uint32_t n = RTE_MAX(conf->n_workers, 1u);

	return (uint32_t)(((uint64_t)total + n - 1) / n);
}

/* A token bucket: credit in TSC ticks (a token costs hz / rate of them). */
struct pylb_tokens {
	uint64_t credit, tsc;
};

/* Takes `cost` ticks of credit from b, if it holds them; b holds at most
 * `most` (the burst; it starts full). */
static inline bool
pylb_tokens_take(struct pylb_tokens *b, uint64_t now, uint64_t cost, uint64_t most)
{
	b->credit = RTE_MIN(b->credit + (now - b->tsc), most);
	b->tsc = now;
	if (b->credit < cost)
		return false;
	b->credit -= cost;
	return true;
}

struct pylb_txbuf {
	uint16_t n;
	struct rte_mbuf *pkts[PYLB_TX_BUF];
};

/* TX buffers: one per port towards the wire, one per port to its kernel
 * interface. */
#define PYLB_TXQ_KERNEL(port)	(PYLB_MAX_PORTS + (port))

/* One per worker, plus one for the control side. Written by its owner only. */
struct pylb_lcore {
	uint32_t slot;
	uint32_t lcore_id;
	uint16_t queue;
	struct pylb_dp *dp;
	struct pylb_stats *stats;
	struct pylb_svc_stats *svc_stats;	/* PYLB_MAX_SERVICES, by service id */
	struct pylb_conntrack *ct;	/* the L4 layer's (l4/state.h) */
	struct pylb_frags *frags;
	struct rte_ring *redirect;	/* packets of flows this lcore owns */
	uint32_t fnat_next;		/* next FullNAT local port to try */
	uint64_t now;			/* the clock at the start of the poll (or injected burst) */
	/* Until then, TCP packets with no connection are sent by the
	 * service's table: the table was full, so they may belong to a
	 * connection opened untracked (an established timeout after). */
	uint64_t untracked_until;
	struct pylb_tokens icmp;	/* ICMP errors' rate limit */
	/* ICMP errors relayed (icmperr.c): by a hash of whom they go to, and
	 * of the network they come from. */
	struct pylb_tokens relay_to[PYLB_ICMP_RELAY_SLOTS];
	struct pylb_tokens relay_from[PYLB_ICMP_RELAY_SLOTS];
	/* Services' limits, this worker's share: connections open, and a
	 * token bucket of new ones (credit in TSC ticks, at most a second). */
	uint32_t svc_conns[PYLB_MAX_SERVICES];
	struct pylb_tokens svc_rate[PYLB_MAX_SERVICES];
	struct pylb_txbuf tx[2 * PYLB_MAX_PORTS];
	struct pylb_ncache *ncache;	/* PYLB_NCACHE entries (l3/state.h) */
	/* Inspected flows (l3/state.h); NULL until the first pool. */
	struct pylb_inspect *inspect;
	uint64_t aged_tsc;		/* the worker's last ageing slice (TSC) */
} __rte_cache_aligned;

struct pylb_port {
	char name[PYLB_NAME_LEN];
	char device[PYLB_DEVARGS_LEN];
	char kernel_iface[PYLB_NAME_LEN];
	int32_t ethdev;		/* -1: detached */
	int32_t kethdev;	/* exception path TAP; -1: none or detached */
	bool started;
	uint16_t vlan;		/* a VLAN sub-interface's tag (its parent's
				 * ethdev); 0: none */
};

struct pylb_dp {
	struct pylb_dp_conf conf;
	volatile bool running;
	uint32_t n_slots;		/* workers + control */
	struct pylb_lcore *lcores;	/* n_slots */
	struct pylb_conntrack *cts;	/* n_slots: each lcore's ct */
	struct pylb_ncache *ncaches;	/* n_slots x PYLB_NCACHE */
	struct pylb_stats *stats;	/* n_slots */
	struct pylb_svc_stats *svc_stats;	/* n_slots x PYLB_MAX_SERVICES */
	struct rte_mempool *pools[RTE_MAX_NUMA_NODES];
	struct rte_rcu_qsbr *qsv;

	struct pylb_cfg *cfg;		/* current snapshot, RCU-protected */
	/* Serialises control-side writers (the API, housekeeping) with
	 * control-side readers on other threads (telemetry); recursive; workers
	 * never take it. */
	pthread_mutex_t ctl_lock;

	uint16_t n_ports;
	struct pylb_port ports[PYLB_MAX_PORTS];

	/* Routing: DPDK FIBs updated in place (single writer, lock-free
	 * readers); next hops and groups are reused only after a grace period. */
	struct rte_fib *fib4;
	struct rte_fib6 *fib6;
	struct pylb_nh *nh;		/* PYLB_MAX_NEXTHOPS */
	struct pylb_nhg *nhg;		/* PYLB_MAX_GROUPS + 1 */
	uint32_t *nh_refs;		/* control only */
	uint32_t *nhg_refs;
	uint32_t n_routes[2];		/* IPv4, IPv6 */
	/* Bumped by every route, neighbour or service change: connections
	 * cache their output (port, next-hop MAC) and their backend's index,
	 * and check them again when this moves. */
	uint32_t gen;
	uint16_t nhg_last;		/* the group used last: bulk loads */
	struct pylb_vip *vips[PYLB_MAX_VIPS];
	struct pylb_pool *inspect_pools[PYLB_MAX_POOLS];
	uint32_t pool_refs[PYLB_MAX_POOLS];	/* routes and VIPs inspected by each */
	uint32_t pool_serial;
	uint32_t n_pools;
	struct pylb_acls *acls;		/* NULL: none; RCU-protected (acl.c) */

	/* L4 services: (VIP, proto, port) -> index in svcs[] (lock-free
	 * readers); services are immutable, swapped with RCU. */
	struct rte_hash *svc_hash;
	struct pylb_service *svcs[PYLB_MAX_SERVICES];
	uint32_t n_services;
	uint32_t n_nat;			/* NAT services: replies need a lookup */
	uint32_t probes_live;		/* data-path probes in flight (probe.c) */
	struct pylb_probe *probes;	/* PYLB_PROBES */
	uint32_t n_fullnat;		/* FullNAT services */
	/* NAT backends (address, port; refcount in the data word): a reply
	 * from one that lands on another worker goes to the owner. */
	struct rte_hash *nat_backends;
	uint64_t timeout_tsc[PYLB_TCP__STATES];
	uint64_t clock_offset;		/* test clock */
	uint64_t clock_start;		/* conf.clock_stopped: the time it stopped at */

	struct rte_ring *neigh_learn;	/* workers -> control */
	struct rte_ring *neigh_miss;	/* workers -> control, with mbufs */
	struct rte_ring *ctl_tx;	/* control -> first worker: mbufs to send
					 * (m->port is the port) */
	/* (ip, port) -> MAC | PYLB_MAC_VALID in the data word, so readers see
	 * one atomic value (0 while resolving); written by control only. */
	struct rte_hash *neigh_hash;
	struct pylb_neigh_ctl *neigh_ctl;	/* by hash position */
	uint64_t neigh_timeout_tsc;
	uint64_t neigh_sweep_tsc;

	/* An ICMP error L3 made for a packet whose source is a service's
	 * address (a translated reply too big for its egress): L4's to
	 * translate for the backend (icmperr.c), bound when the dataplane is
	 * made, so that L3 calls nothing above it. False: not taken. */
	bool (*service_error_in)(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
				 struct rte_mbuf *m, uint8_t af);
	struct pylb_mac_key mac;	/* the cookies' key, from conf.hash_key */
};

/* An API entry point's body: `call` under the control lock, so telemetry
 * readers never see a change half made. */
#define PYLB_CTL_LOCKED(dp, call) do {			\
	int rc_;					\
							\
	pthread_mutex_lock(&(dp)->ctl_lock);		\
	rc_ = (call);					\
	pthread_mutex_unlock(&(dp)->ctl_lock);		\
	return rc_;					\
} while (0)

/* errors.c */
int pylb_fail(int rc, const char *fmt, ...) __rte_format_printf(2, 3);
#define PYLB_ADDR_STRLEN 48	/* an IPv6 address with a prefix length */
const char *pylb_fmt_ip(const struct pylb_ip *a, char *buf, size_t len);
const char *pylb_fmt_prefix(const struct pylb_prefix *p, char *buf, size_t len);








static inline void
pylb_gen_bump(struct pylb_dp *dp)
{
	__atomic_fetch_add(&dp->gen, 1, __ATOMIC_RELEASE);
}

/* The clock at TSC reading `tsc` (a stopped clock: where it stopped). */
static inline uint64_t
pylb_now_at(const struct pylb_dp *dp, uint64_t tsc)
{
	return (unlikely(dp->conf.clock_stopped) ? dp->clock_start : tsc) +
		__atomic_load_n(&dp->clock_offset, __ATOMIC_RELAXED);
}

static inline uint64_t
pylb_now(const struct pylb_dp *dp)
{
	return pylb_now_at(dp, rte_get_timer_cycles());
}



/* rcu.c: swap *slot to `next` and free the old object after a grace
 * period; wait until every worker has passed a quiescent state. */
void pylb_rcu_replace(struct pylb_dp *dp, void **slot, void *next);
void pylb_rcu_wait(struct pylb_dp *dp);

static inline struct pylb_lcore *
pylb_control_lcore(struct pylb_dp *dp)
{
	return &dp->lcores[dp->n_slots - 1];
}

#endif /* PYLB_CORE_DP_H */
