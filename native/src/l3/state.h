/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * The L3 layer's state: routes (FIB values, next hops and their groups),
 * L3 VIPs and the backend sets they share with L4 services, ACLs, and
 * neighbours. Types only.
 */
#ifndef PYLB_L3_STATE_H
#define PYLB_L3_STATE_H

#include "core/dp.h"

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
	uint16_t pool;		/* its traffic's inspection pool slot (+1); 0: none */
};

/* Where a frame leaves: by next hop nh, to `mac` when it is known (a
 * backend's remembered output: the MAC | PYLB_MAC_VALID); 0: nh_output
 * finds it (fib.h: hop_output). */
struct pylb_hop {
	const struct pylb_nh *nh;
	uint64_t mac;
};

/* An lcore's memory of a backend's output, made again when dp->gen moves
 * (every route or neighbour change bumps it): the next-hop group the FIB
 * routes the backend by (0: none), and when the group has one next hop,
 * the hop with the neighbour's or gateway's MAC (nh NULL: ECMP, picked
 * per flow).
 *
 * An encapsulation's packets by that hop start with the same headers:
 * Ethernet and the outer IP header, but for what each packet sets (its
 * length, TOS and DF, IPIP's protocol, the checksum, a source's bits
 * from the flow). The encapsulations (encap.c) make them once, for the
 * configuration `cfg` (the port's MAC, address and MTU), and copy them
 * into each packet. */
struct pylb_out_memo {
	uint32_t gen;
	uint32_t group;
	struct pylb_hop hop;
	struct pylb_txbuf *tx;		/* the lcore's buffer for hop's port (nh not NULL) */
	const struct pylb_cfg *cfg;	/* what hdr was made for; NULL: not made */
	uint32_t sum;		/* IPv4: the sum of hdr's outer header words that stay */
	uint16_t mtu;		/* the egress port's */
	uint8_t hlen;		/* hdr's bytes; 0: none (no known MAC, no source) */
	uint8_t hdr[14 + 40];
} __rte_cache_aligned;	/* an lcore's own lines */

/* A backend set and its consistent-hash lookup table, as L3 VIPs and L4
 * services hold them (in the same allocation, after the owner). */
struct pylb_balance {
	uint32_t n_backends;
	uint32_t table_size;
	uint64_t slot_m;	/* 2^64 / table_size, rounded up (fib.h: bal_slot) */
	struct pylb_backend *backends;
	uint16_t *table;	/* table_size entries; NULL: no backend with weight */
	/* Each lcore's memory of each backend's output (fib.h's
	 * pylb_backend_out), written by that lcore alone: lcore slot s's
	 * from outs[s * n_backends]. */
	struct pylb_out_memo *outs;
};

/* An encapsulation's outer source, bound when configured: `base`, the
 * bits `vary` of its last 32 (network order) taken from the flow's hash;
 * af 0: the egress port's address. */
struct pylb_encap_src {
	struct pylb_ip base;
	uint32_t vary;
};

/* A packet m (of family af) on its way to backend `to` by hop; `flow`: its
 * flow's hash. */
struct pylb_send {
	struct rte_mbuf *m;
	struct pylb_hop hop;
	struct pylb_out_memo *o;	/* the backend's remembered output */
	const struct pylb_ip *to;
	uint32_t flow;
	uint8_t af;
};

/* A VIP's output (fib.h: its method's): n packets of its, in order, from
 * the outer source `src`. */
typedef void pylb_vip_out_fn(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
			     const struct pylb_encap_src *src, const struct pylb_send *s,
			     uint32_t n);

/* An L3 VIP: immutable, replaced whole through dp->vips[] with RCU. */
struct pylb_vip {
	struct pylb_vip_conf conf;
	struct pylb_encap_src src;		/* conf.source's */
	pylb_vip_out_fn *out;		/* conf.method's, bound when configured */
	uint16_t pool;			/* conf.inspect's slot (+1); 0: none */
	struct pylb_balance bal;
};

/* An inspection pool: immutable, replaced whole through dp->pools[] with
 * RCU. `birth` names the pool in its slot, `serial` this version of it (a
 * flow's remembered appliance index is good while they match). */
struct pylb_pool {
	struct pylb_pool_conf conf;
	uint32_t birth, serial;
	uint64_t idle_tsc;		/* conf.idle_timeout in TSC ticks */
	struct pylb_balance bal;	/* the appliances */
};

/* An inspected flow's key: its addresses and ports in one order whichever
 * way it goes (the lower first), those the pool's stickiness keeps. The
 * eight bytes after the addresses are laid out as its cookie's first
 * word (l3/inspect.h: inspect_cookie). */
struct pylb_inspect_key {
	uint8_t lo[16], hi[16];
	uint8_t tag;		/* 'G' */
	uint8_t af, proto;
	uint8_t pool;		/* the pool's slot */
	uint16_t plo, phi;
	uint8_t pad[8];		/* 48 bytes: compared as three blocks */
};

/* The appliance a flow crosses, its key and the key's hash. */
struct pylb_inspect_flow {
	uint64_t expire_tsc;		/* 0: free */
	uint64_t cookie;		/* inspect_cookie's, made once */
	struct pylb_inspect_key key;
	struct pylb_ip app;
	uint32_t birth, serial;		/* the pool's when bidx was checked */
	uint32_t hash;			/* of its key */
	uint16_t bidx;
	uint16_t pool;
};

/* A bucket of a worker's inspected-flow table (inspect.h): eight ways,
 * each a flow's key hash and its place in `flows` plus one (0: empty), on
 * one cache line. */
#define PYLB_INSPECT_WAYS	8
#define PYLB_INSPECT_BUCKETS	(PYLB_INSPECT_FLOWS / 4)	/* half the ways used, full */
struct pylb_inspect_bucket {
	uint32_t hash[PYLB_INSPECT_WAYS];
	uint32_t at[PYLB_INSPECT_WAYS];
} __rte_cache_aligned;

/* A worker's inspected flows (made when the first pool is): each in one of
 * two buckets its hash names; written by its worker alone, read without
 * locks by the control side (Trace). */
struct pylb_inspect {
	struct pylb_inspect_bucket *buckets;	/* PYLB_INSPECT_BUCKETS */
	struct pylb_inspect_flow *flows;	/* PYLB_INSPECT_FLOWS */
	uint32_t *free;				/* free places in flows: a stack */
	uint32_t n_free;
	uint32_t age_pos;
	uint32_t n_flows[PYLB_MAX_POOLS];	/* by pool slot */
	/* A burst's packets to inspect, gathered (pylb_inspect_out) and sent
	 * together (pylb_inspect_flush): their flows' buckets fetched first. */
	uint16_t n_pending;
	struct pylb_inspect_pending {
		struct rte_mbuf *m;
		uint16_t slot;
		uint8_t af;
	} pending[PYLB_BURST];
};

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

#endif /* PYLB_L3_STATE_H */
