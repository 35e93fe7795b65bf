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
#include <rte_cycles.h>
#include <rte_ether.h>
#include <rte_tcp.h>

#include "pylb_dp.h"
#include "core/tunables.h"

struct rte_mempool;
struct rte_ring;
struct rte_hash;
struct rte_rcu_qsbr;
struct rte_fib;
struct rte_fib6;

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

/* FIB values (16 bits): a kind and an id. 0 is "no route". */
#define PYLB_FIB_KIND_SHIFT	13
#define PYLB_FIB_ID_MASK	0x1fff
#define PYLB_FIB_GROUP		0	/* id: next-hop group, 1.. */
#define PYLB_FIB_VIP		1	/* id: VIP slot */
#define PYLB_FIB_LOCAL		2	/* id: port owning the address */
#define PYLB_FIB_SERVICE	3	/* the address has L4 services */
#define PYLB_FIB_VAL(kind, id)	((uint64_t)(kind) << PYLB_FIB_KIND_SHIFT | (id))
#define PYLB_MAX_GROUPS		PYLB_FIB_ID_MASK	/* ids 1..8191 */
#define PYLB_MAX_NEXTHOPS	4096

/* The ACLs as published (acl.c): a FIB per family whose value indexes
 * `masks` (the lists matching an address; 0: none), the lists' kinds and
 * actions, and per service id the lists that apply. */
#define PYLB_ACL_SETS_MAX	32767
struct pylb_acls {
	struct rte_fib *fib4;
	struct rte_fib6 *fib6;
	uint64_t *masks;
	uint32_t n_masks;
	uint64_t deny, allow;
	uint8_t action[PYLB_MAX_ACLS];
	uint64_t svc[PYLB_MAX_SERVICES];
};

/* A next hop (adjacency): written once before any route points at it; only
 * `mac` changes afterwards, atomically, when its neighbour resolves. */
#define PYLB_MAC_VALID		(1ULL << 63)
struct pylb_nh {
	uint64_t mac;		/* MAC bytes in the low 48 bits | PYLB_MAC_VALID */
	uint16_t port;
	uint8_t af;		/* of the route */
	uint8_t connected;	/* no gateway: the packet's destination */
	uint8_t gw[16];
};

struct pylb_nhg {
	uint16_t n;
	uint16_t nh[PYLB_MAX_ECMP];
	uint32_t ports;		/* bit p: a next hop out of port p */
	bool connected;		/* a port's network */
};

/* A backend set and its consistent-hash lookup table, as L3 VIPs and L4
 * services hold them (in the same allocation, after the owner). */
struct pylb_balance {
	uint32_t n_backends;
	uint32_t table_size;
	struct pylb_backend *backends;
	uint16_t *table;	/* table_size entries; NULL: no backend with weight */
};

/* Does backend b take new connections? */
static inline bool
pylb_backend_live(const struct pylb_backend *b)
{
	return b->weight != 0 && b->state == PYLB_BACKEND_UP;
}

/* An L3 VIP: immutable, replaced whole through dp->vips[] with RCU. */
struct pylb_vip;
struct pylb_nh;
struct pylb_lcore;
struct pylb_cfg;
struct rte_mbuf;
/* A VIP's output towards backend `to` through next hop nh (vip.c). */
typedef void pylb_vip_out_fn(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
			     struct rte_mbuf *m, const struct pylb_nh *nh,
			     const struct pylb_vip *vip, const struct pylb_ip *to, uint8_t af);

struct pylb_vip {
	struct pylb_vip_conf conf;
	pylb_vip_out_fn *out;		/* conf.method's, bound when configured */
	struct pylb_balance bal;
};

struct pylb_sched_ops;

/* An L4 service: immutable, replaced whole through dp->svcs[] with RCU. */
struct pylb_service {
	struct pylb_service_conf conf;
	uint16_t id;		/* index in dp->svcs[] */
	const struct pylb_sched_ops *sched;	/* conf.sched's (scheduler.h) */
	const uint64_t *key;	/* the dataplane's flow-hash key (hash.h) */
	uint8_t synproxy;	/* enum pylb_syn_proxy, OFF where it cannot */
	/* WRR: each lcore's current weights; WLC: each lcore's connections
	 * per backend. One cache-line-aligned row per lcore slot (the only
	 * part an lcore writes). */
	int32_t *rows;
	uint32_t row_stride;	/* int32s per row */
	/* Per backend: each lcore slot's traffic (a row of bstride, written
	 * by that lcore only), and what the same backends counted in the
	 * service's earlier backend sets (written before publishing). */
	struct pylb_svc_stats *bstats;
	uint32_t bstride;
	struct pylb_svc_stats *bbase;
	struct pylb_balance bal;
};

/* Connection tracking, one table per lcore, written by that lcore only.
 * An entry is one cache line. Buckets of 15 slots (one cache line each)
 * index the entries by a hash of the connection's client side (address,
 * port, protocol): the client's packets carry it as their source and a NAT
 * backend's replies as their destination, so one slot serves both
 * directions. A FullNAT entry has a second slot for its local side (local
 * address and port), where the backend's replies arrive. Each key has two
 * candidate buckets. Slot: entry index (24 bits) | signature << 24; 0 is
 * empty (entry 0 is never used). */
#define PYLB_CT_SLOTS		15

struct pylb_ct_bucket {
	uint32_t slot[PYLB_CT_SLOTS];
	/* Slots whose first bucket this is, held in their second one: while
	 * 0, a key missing here is missing (one bucket read per miss). */
	uint32_t spill;
} __rte_cache_aligned;

enum { CONN_CLIENT, CONN_VIP, CONN_BACKEND, CONN_LIP };

/* The addresses of an IPv6 connection (its entry holds the index). */
struct pylb_conn6 {
	uint8_t a[4][16];	/* CONN_CLIENT ... CONN_LIP */
};

/* Ports in network order. Listing reads entries while the owner writes
 * them: a copy, checked by `af` (0: free). */
struct pylb_conn {
	uint64_t expire_tsc;
	uint64_t out_mac;		/* NAT: cached next-hop MAC | valid bit */
	uint32_t gen;			/* dp->gen when out_* and bidx were checked */
	uint32_t packets;
	uint8_t af;			/* 4 or 6; 0: free */
	uint8_t proto;
	uint8_t state;			/* enum pylb_tcp_state */
	uint8_t method;
	uint16_t cport, vport, bport, lport;
	uint16_t svc;
	uint16_t bidx;			/* backend index in svcs[svc] (at gen) */
	uint16_t out_port;
	uint16_t flags;			/* CONN_F_* */
	union {
		uint32_t a4[4];		/* IPv4: CONN_CLIENT ... CONN_LIP */
		uint32_t ext6;		/* IPv6: index in ext6 */
	};
	/* SYN proxy: the backend's ISN less the cookie (while the backend
	 * answers: the cookie). */
	uint32_t seq_delta;
} __rte_cache_aligned;

#define PYLB_BIDX_NONE	0xffff	/* the backend left the service */

#define CONN_F_OUT_OK	1	/* out_port and out_mac hold the output */
#define CONN_F_LOCAL	2	/* indexed by its local side too (FullNAT) */
#define CONN_F_SYNPROXY	4	/* opened by a SYN cookie: sequence numbers
				 * translated (synproxy.c) */
#define CONN_F_OPENING	8	/* SYN proxy: waiting for the backend */
#define CONN_F_REPLIED	16	/* a reply was seen (UDP: no longer half-open) */
#define CONN_F_CLIENT	32	/* its service limits its client's connections */
#define CONN_F_COUNTED	64	/* counted as open (limits) */
#define CONN_F_SYNCED	128	/* installed from a peer's record: its later
				 * records update it */
/* SYN proxy: window scales, 4 bits each (15: none): the backend's (while
 * opening: the client's), and the one the cookie SYN-ACK gave. */
#define CONN_WS_B(f)	(((f) >> 8) & 15)
#define CONN_WS_A(f)	(((f) >> 12) & 15)
#define CONN_WS(b, a)	((uint16_t)((b) << 8 | (a) << 12))
#define CONN_WS_MASK	0xff00

/* A packet's TCP/UDP tuple, pointing into the packet. */
struct pylb_tuple {
	const uint8_t *src, *dst;
	uint16_t sport, dport;		/* network order */
	uint8_t proto, af;
};

/* Persistence: (service, client network) -> backend, per lcore. */
struct pylb_persist_key {
	uint8_t ip[16];
	uint16_t svc;
	uint8_t af;
	uint8_t pad;
};

struct pylb_persist {
	struct pylb_persist_key key;
	uint8_t backend[16];
	uint16_t bport;
	uint8_t in_use;
	uint64_t expire_tsc;
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

/* frag.c: the datagrams whose fragments an lcore follows. An entry is made
 * by a datagram's first fragment seen, lives PYLB_FRAG_TIMEOUT_MS, and
 * holds the ports the datagram's first fragment carries (0: not seen yet;
 * the later fragments that came before it wait in held[]). Entries live
 * in a FIFO (one lifetime for all: the oldest expires first), found by a
 * hash of their key. */
struct pylb_frag_key {
	uint8_t src[16];
	uint8_t dst[16];
	uint32_t id;		/* the datagram's identification */
	uint8_t proto;		/* IPv4's, or what IPv6's fragment header says */
	uint8_t af;
	uint16_t pad;
};

struct pylb_frag {
	struct pylb_frag_key key;
	uint64_t expire_tsc;
	uint32_t ports;		/* source and destination as on the wire; 0: unknown */
	uint8_t n_held;
	struct rte_mbuf *held[PYLB_FRAG_HELD];
};

struct pylb_frags {
	struct rte_hash *index;		/* key -> FIFO position */
	uint32_t head, tail;		/* FIFO positions (modulo PYLB_FRAG_ENTRIES) */
	uint32_t n_held;
	uint64_t timeout_tsc;
	uint32_t n_ready;		/* released by their first fragment */
	struct rte_mbuf *ready[PYLB_FRAG_HELD_MAX];
	/* A later fragment's stand-in transport header: the ports its
	 * datagram's first fragment taught; what the methods write to it
	 * (ports, checksum, sequence numbers) is the first fragment's
	 * business and goes nowhere. */
	uint16_t phantom[sizeof(struct rte_tcp_hdr) / 2];
	struct pylb_frag e[PYLB_FRAG_ENTRIES];
};

/* probe.c: a data-path health probe in flight. */
struct pylb_probe {
	struct pylb_ip vip, backend;
	struct pylb_ip src;		/* the appliance's address it is sent from */
	uint16_t port;			/* the service's, network order */
	uint8_t proto, method;
	uint32_t seq;			/* TCP: the SYN's sequence number */
	uint8_t state;			/* 0: free, enum pylb_probe_state */
};

/* proxy.c: a FullNAT connection's PROXY protocol state (a side table,
 * by connection index, made when a service first asks for it). */
struct pylb_pp {
	uint32_t start;			/* TCP: the client's first data byte (ISN + 1) */
	uint8_t len;			/* the header's bytes; 0: no header */
	uint8_t version;		/* enum pylb_proxy_protocol */
	uint8_t started;		/* TCP: start is known (the SYN was seen) */
	uint8_t acked;			/* TCP: the backend acknowledged the header */
};

struct pylb_conntrack {
	struct pylb_pp *pp;		/* NULL until a service has a PROXY header */
	struct pylb_ct_bucket *buckets;
	const uint64_t *key;		/* the flow-hash key (hash.h) */
	uint32_t nb;			/* buckets */
	uint32_t cap;			/* entries 1..cap */
	struct pylb_conn *conns;
	uint32_t *free;			/* stack of free entry indices */
	uint32_t n_free;
	uint32_t sweep;			/* aging cursor */
	struct pylb_conn6 *ext6;	/* IPv6 addresses: cap6 of them */
	uint32_t *free6;
	uint32_t n_free6;
	uint32_t cap6;
	struct rte_hash *ph;		/* persistence */
	struct rte_hash *clients;	/* (service, client) -> connections open */
	struct pylb_persist *pers;
	uint32_t *pfree;
	uint32_t n_pfree;
	uint32_t pcap;
	uint32_t psweep;
	/* SYN proxy */
	uint32_t half_open;		/* entries half-open (pylb_conn_half_open) */
	uint32_t half_open_budget;	/* the most: then cookies, or eviction */
	/* Half-open entries in the order they opened (oldest at head), for
	 * eviction; a slot whose entry moved on is skipped then. */
	uint32_t *ho_ring;
	uint32_t ho_mask, ho_head, ho_tail;
	/* Per source prefix (the profile's per_source): half-open entries and
	 * a token bucket of new connections in PYLB_SRC_SLOTS slots, picked
	 * by a keyed hash of the prefix (pylb_src_slot). NULL: not counted. */
	uint32_t *src_ho;
	struct pylb_tokens *src_rate;
	uint32_t src_budget;		/* half-open entries per slot, at most */
	uint64_t src_cost;		/* TSC ticks of credit per new connection */
	uint32_t src_mask[5];		/* IPv4's prefix mask, IPv6's (network order) */
	uint64_t cookies_until;		/* ACKs are checked as cookies until then */
	uint64_t period, period_end;	/* the cookies' time, and when it moves on */
	/* Connection sync (conf.sync): the entries that opened or changed
	 * state, by index, for the control side to send; this lcore writes
	 * the tail, the control side the head (chg_head, on a line of its
	 * own; chg_seen: its last value read here). NULL: sync is off. */
	uint32_t *chg_ring;
	uint32_t chg_mask, chg_tail, chg_seen;
	uint64_t chg_lost;		/* noted with the ring full */
	/* Records from peers, for this lcore's table (struct
	 * pylb_conn_record elements; the control side enqueues). */
	struct rte_ring *sync_in;
	uint32_t n_held;
	struct pylb_held {		/* client packets waiting for a backend */
		struct rte_mbuf *m;
		uint32_t conn;
		int32_t in_port;
	} held[PYLB_SYNPROXY_HOLD];
	/* Connection sync: how far the control side has read chg_ring. */
	uint32_t chg_head __rte_cache_aligned;
};

struct pylb_txbuf {
	uint16_t n;
	struct rte_mbuf *pkts[PYLB_TX_BUF];
};

/* TX buffers: one per port towards the wire, one per port to its kernel
 * interface. */
#define PYLB_TXQ_KERNEL(port)	(PYLB_MAX_PORTS + (port))

struct pylb_neigh_key {
	uint8_t ip[16];
	uint16_t port;
	uint8_t af;
	uint8_t pad;
};

/* A worker's memory of resolved neighbours on connected networks (the MACs
 * of gateways are cached in their next hops): direct-mapped, valid while
 * dp->gen is what it was when the entry was filled. */
#define PYLB_NCACHE	256
struct pylb_ncache {
	struct pylb_neigh_key key;
	uint32_t gen;
	uint64_t mac;		/* | PYLB_MAC_VALID */
};

/* One per worker, plus one for the control side. Written by its owner only. */
struct pylb_lcore {
	uint32_t slot;
	uint32_t lcore_id;
	uint16_t queue;
	struct pylb_dp *dp;
	struct pylb_stats *stats;
	struct pylb_svc_stats *svc_stats;	/* PYLB_MAX_SERVICES, by service id */
	struct pylb_conntrack ct;
	struct pylb_frags *frags;
	struct rte_ring *redirect;	/* packets of flows this lcore owns */
	uint32_t fnat_next;		/* next FullNAT local port to try */
	uint64_t now;			/* pylb_now() at the start of the burst */
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
	struct pylb_ncache ncache[PYLB_NCACHE];
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

/* A neighbour seen by a worker, queued for the control side to record. */
struct pylb_neigh_learn {
	struct pylb_neigh_key key;
	struct rte_ether_addr mac;
	uint16_t pad;		/* ring elements are multiples of 4 bytes */
};

/* A packet waiting for its neighbour, handed to the control side. */
struct pylb_neigh_miss {
	struct rte_mbuf *m;
	struct pylb_neigh_key key;
};

/* Control-side state of a neighbour entry, by hash position. */
struct pylb_neigh_ctl {
	uint64_t seen_tsc;
	uint64_t req_tsc;
	uint8_t state;		/* enum pylb_neigh_state */
	uint8_t tries;
	uint8_t n_hold;
	struct rte_mbuf *hold[PYLB_NEIGH_HOLD];
};

struct pylb_dp {
	struct pylb_dp_conf conf;
	volatile bool running;
	uint32_t n_slots;		/* workers + control */
	struct pylb_lcore *lcores;	/* n_slots */
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
	struct pylb_acls *acls;		/* NULL: none; RCU-protected (acl.c) */

	/* L4 services: (VIP, proto, port) -> index in svcs[] (lock-free
	 * readers); services are immutable, swapped with RCU. */
	struct rte_hash *svc_hash;
	struct pylb_service *svcs[PYLB_MAX_SERVICES];
	uint32_t n_services;
	uint32_t n_nat;			/* NAT services: replies need a lookup */
	uint32_t probes_live;		/* data-path probes in flight (probe.c) */
	struct pylb_probe probes[PYLB_PROBES];
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

static inline uint64_t
pylb_now(const struct pylb_dp *dp)
{
	return (unlikely(dp->conf.clock_stopped) ? dp->clock_start : rte_get_timer_cycles()) +
		__atomic_load_n(&dp->clock_offset, __ATOMIC_RELAXED);
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

#endif /* PYLB_PRIV_H */
