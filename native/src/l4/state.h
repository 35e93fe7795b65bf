/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * The L4 layer's state: services, the connection table and what hangs
 * off it (persistence, SYN proxy, limits, sync), fragments, probes and
 * PROXY protocol headers. Types only.
 */
#ifndef PYLB_L4_STATE_H
#define PYLB_L4_STATE_H

/* OpenSSL's AES (QUIC-LB's encrypted connection IDs): its one-block calls
 * with a key schedule made once, shared read-only by the workers. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/aes.h>
#include <rte_tcp.h>

#include "l3/state.h"

struct pylb_sched_ops;

/* An L4 service: immutable, replaced whole through dp->svcs[] with RCU. */
struct pylb_service {
	struct pylb_service_conf conf;
	uint16_t id;		/* index in dp->svcs[] */
	const struct pylb_sched_ops *sched;	/* conf.sched's (scheduler.h) */
	const uint64_t *key;	/* the dataplane's flow-hash key (hash.h) */
	struct pylb_encap_src tunnel_src;	/* conf.tunnel_source's */
	AES_KEY quic_key;	/* conf.quic.key's, to decrypt (encrypted CIDs) */
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
	union {
		uint16_t out_port;	/* NAT, FullNAT: the cached output's port */
		/* A method whose backends may be of the other family (its
		 * descriptor's `mixed`: tunnel): the backend's, 4 or 6. */
		uint16_t backend_af;
	};
	uint16_t flags;			/* CONN_F_* */
	union {
		uint32_t a4[4];		/* IPv4: CONN_CLIENT ... CONN_LIP */
		uint32_t ext6;		/* IPv6: index in ext6 */
	};
	union {
		/* SYN proxy: the backend's ISN less the cookie (while the
		 * backend answers: the cookie). */
		uint32_t seq_delta;
		/* An IPv4 connection's IPv6 backend (4-in-6): its index in
		 * ext6, whose CONN_BACKEND holds it. (6-in-4: the IPv6
		 * connection's CONN_BACKEND starts with the IPv4 backend.) */
		uint32_t backend6;
	};
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
	/* UDP: what follows the header (QUIC's connection ID); NULL: none
	 * seen (a later fragment, a trace without one). */
	const uint8_t *payload;
	uint16_t plen;
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
		/* m: a copy of the SYN sent to the backend (sent again while
		 * unanswered: pylb_synproxy_again), sent `tries` times. */
		uint8_t syn, tries;
	} held[PYLB_SYNPROXY_HOLD];
	/* Connection sync: how far the control side has read chg_ring. */
	uint32_t chg_head __rte_cache_aligned;
};

#endif /* PYLB_L4_STATE_H */
