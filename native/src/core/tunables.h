/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * Fast-path tunables, in one place.
 */
#ifndef PYLB_TUNABLES_H
#define PYLB_TUNABLES_H

#define PYLB_BURST		32	/* packets per RX burst */
#define PYLB_PREFETCH_AHEAD	3	/* packets prefetched ahead in a burst */
#define PYLB_CT_AHEAD		8	/* connection entries fetched ahead */
#define PYLB_CT_BUCKET_AHEAD	16	/* connection buckets fetched ahead */
#define PYLB_IPV6_EXT_MAX	8	/* IPv6 extension headers walked, at most */
#define PYLB_TX_BUF		256	/* per port TX buffer: a burst from every port */
#define PYLB_NEIGH_RING		1024	/* learn events queued to control */
#define PYLB_NEIGH_DEFAULT	4096	/* neighbour table entries */
#define PYLB_NEIGH_MISS_RING	1024	/* packets queued for resolution */
#define PYLB_NEIGH_HOLD		4	/* packets held per resolving neighbour */
#define PYLB_NEIGH_TIMEOUT_MS	60000	/* learned entries live this long */
#define PYLB_NEIGH_RETRY_MS	1000	/* between requests while resolving */
#define PYLB_NEIGH_TRIES	3	/* requests before giving up */
#define PYLB_NEIGH_SWEEP_MS	100	/* aging pass period */
#define PYLB_ICMP_RATE		1000	/* ICMP errors per second per lcore */
#define PYLB_MAX_FRAGMENTS	64	/* an IPv4 packet cut for a smaller egress MTU */
#define PYLB_FRAG_ENTRIES	1024	/* datagrams whose fragments are followed, per lcore */
#define PYLB_FRAG_TIMEOUT_MS	1000	/* an entry lives this long from its first fragment seen */
#define PYLB_FRAG_HELD		8	/* fragments held per datagram until its first */
#define PYLB_FRAG_HELD_MAX	256	/* and per lcore */
#define PYLB_PROBES		256	/* data-path health probes in flight */
#define PYLB_PROBE_PORT		61000	/* their source ports: PYLB_PROBE_PORT + slot
					 * (above Linux's ephemeral range) */
#define PYLB_ICMP_BURST		100
#define PYLB_ICMP_RELAY_SLOTS	256	/* per lcore, for each of the two below */
#define PYLB_ICMP_RELAY_TO	100	/* ICMP errors relayed a second to one host */
#define PYLB_ICMP_RELAY_FROM	200	/* and from one network (/24, /64) */
#define PYLB_ROUTES_DEFAULT	(1 << 16)	/* per family */
#define PYLB_TBL8_DEFAULT	8192	/* IPv4 FIB tbl8 groups (longer than /24) */
#define PYLB_TBL8_6_DEFAULT	16384	/* IPv6 FIB tbl8 groups */
#define PYLB_TBL8_MAX		32767	/* 16-bit FIB values */
#define PYLB_CONN_DEFAULT	65536	/* tracked connections per lcore */
#define PYLB_CONN_MIN		16	/* ... at least */
#define PYLB_CT_IDX_BITS	24	/* an entry's index in a bucket slot: at most */
#define PYLB_CT_MAX		((1u << PYLB_CT_IDX_BITS) - 1)
#define PYLB_CONN_CONTROL	65536	/* at most, the control side's own table
					 * when workers carry the traffic */
/* Workers age their tables (connections, persistence, inspected flows) a
 * slice at a time, paced by time rather than by loops: each table swept
 * whole every PYLB_AGE_SLICE_US * PYLB_AGE_SLICES microseconds (half a
 * second), whatever the load; an entry goes at most that long after its
 * timeout. */
#define PYLB_AGE_SLICE_US	20
#define PYLB_AGE_SLICES		25000
#define PYLB_AGE_CATCH_UP	64	/* slices made up at most after a long loop */
#define PYLB_REDIRECT_RING	1024	/* packets handed to a flow's owner */
#define PYLB_SYNC_IN_RING	16384	/* a peer's records waiting for a worker */
#define PYLB_MAX_SERVICES	4096
#define PYLB_SYNPROXY_HOLD	64	/* client packets held per lcore while
					 * backends answer proxied SYNs */
#define PYLB_SYNPROXY_RTO_MS	1000	/* a proxied SYN unanswered this long
					 * is sent again (then 2x, 4x as long) */
#define PYLB_SYNPROXY_SYN_TRIES	3	/* resent at most; then the connection
					 * ends (the client's next packet
					 * opens it again) */
#define PYLB_SYNPROXY_WSCALE	7	/* the window scale cookie SYN-ACKs give */
#define PYLB_SYNPROXY_WINDOW	8192	/* their window: what a client may send
					 * before the backend has answered */
#define PYLB_COOKIE_PERIOD_S	64	/* a cookie is good for 1-2 periods */
#define PYLB_SRC_SLOTS		65536	/* per-source-prefix counts per lcore */
#define PYLB_RXD_DEFAULT	1024
#define PYLB_TXD_DEFAULT	1024

#endif /* PYLB_TUNABLES_H */
