/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * pylb_dp.h - the one public header of the pylb dataplane.
 *
 * Opaque handles, plain structs and int return codes: 0 on success, a
 * negative PYLB_E_* code on failure, with pylb_last_error() describing what
 * went wrong in words an operator can act on.
 */
#ifndef PYLB_DP_H
#define PYLB_DP_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct pylb_dp;
struct rte_mbuf;

#define PYLB_MAX_PORTS		16
#define PYLB_MAX_WORKERS	32
#define PYLB_MAX_ADDRS		16	/* addresses per port and family */
#define PYLB_MAX_ECMP		16	/* next hops per route */
#define PYLB_MAX_VIPS		8191
#define PYLB_MAX_BACKENDS	4096	/* per VIP */
#define PYLB_MAGLEV_DEFAULT	65537	/* lookup table size, a prime */
#define PYLB_MAGLEV_MAX		1048573
#define PYLB_MAX_LIPS		8	/* FullNAT local addresses per service */
#define PYLB_MAX_POOLS		64	/* inspection pools (GENEVE appliances) */
#define PYLB_MAX_APPLIANCES	64	/* per pool */
#define PYLB_INSPECT_FLOWS	65536	/* inspected flows tracked per lcore */
#define PYLB_GENEVE_PORT	6081	/* RFC 8926's UDP port */
#define PYLB_GUE_PORT		6080	/* GUE's (Katran's): backends listen here */
#define PYLB_QUIC_SID_MAX	15	/* QUIC-LB: server id bytes, at most */
#define PYLB_NAME_LEN		32
#define PYLB_HASH_KEY_WORDS	27	/* the flow hash's and SYN cookies' key, 64-bit words */
#define PYLB_DEVARGS_LEN	256
#define PYLB_ERRMSG_LEN		512

/* Error codes: X(name, message). */
#define PYLB_ERRORS(X) \
	X(INVAL, "invalid argument") \
	X(NOMEM, "out of memory") \
	X(EXIST, "already exists") \
	X(NOENT, "not found") \
	X(FULL, "capacity exhausted") \
	X(EAL, "EAL failure") \
	X(PORT, "port failure") \
	X(STATE, "wrong state for this operation")

enum pylb_err {
	PYLB_OK = 0,
	PYLB_E__BASE = 0,
#define PYLB_X_ERR(n, m) PYLB_E_##n,
	PYLB_ERRORS(PYLB_X_ERR)
#undef PYLB_X_ERR
	PYLB_E__END,
};
/* Codes are returned negated: -PYLB_E_INVAL etc. */

/* Counters that are not drops: X(ENUM, name). */
#define PYLB_COUNTERS(X) \
	X(RX_PACKETS, rx_packets) \
	X(RX_BYTES, rx_bytes) \
	X(TX_PACKETS, tx_packets) \
	X(TX_BYTES, tx_bytes) \
	X(ARP_REQUESTS, arp_requests) \
	X(ARP_REPLIES_RECEIVED, arp_replies_received) \
	X(ARP_REPLIES_SENT, arp_replies_sent) \
	X(ICMP_ECHO_REQUESTS, icmp_echo_requests) \
	X(ICMP_ECHO_REPLIES, icmp_echo_replies) \
	X(ICMP_ERRORS_SENT, icmp_errors_sent) \
	X(ICMP_ERRORS_RATELIMITED, icmp_errors_ratelimited) \
	X(ICMP_ERRORS_TRANSLATED, icmp_errors_translated) \
	X(ICMP_ERRORS_UNMATCHED, icmp_errors_unmatched) \
	X(IPV4_FRAGMENTED, ipv4_fragmented) \
	X(PROBES_SENT, probes_sent) \
	X(PROXY_HEADERS_SENT, proxy_headers_sent) \
	X(PROBE_ANSWERS, probe_answers) \
	X(INSPECT_SENT, inspect_sent) \
	X(INSPECT_RETURNED, inspect_returned) \
	X(INSPECT_FLOWS_NEW, inspect_flows_new) \
	X(INSPECT_FLOWS_MOVED, inspect_flows_moved) \
	X(INSPECT_FLOWS_STAYED, inspect_flows_stayed) \
	X(INSPECT_FLOWS_EXPIRED, inspect_flows_expired) \
	X(INSPECT_UNTRACKED, inspect_untracked) \
	X(QUIC_ROUTED, quic_routed) \
	X(QUIC_UNROUTED, quic_unrouted) \
	X(FRAGMENTS_FOLLOWED, fragments_followed) \
	X(FRAGMENTS_HELD, fragments_held) \
	X(ND_SOLICITS, nd_solicits) \
	X(ND_ADVERTS_SENT, nd_adverts_sent) \
	X(ND_ADVERTS_RECEIVED, nd_adverts_received) \
	X(NEIGH_LEARN_QUEUED, neigh_learn_queued) \
	X(NEIGH_LEARNED, neigh_learned) \
	X(NEIGH_LEARN_OVERFLOW, neigh_learn_overflow) \
	X(NEIGH_REQUESTS_SENT, neigh_requests_sent) \
	X(NEIGH_ANNOUNCEMENTS_SENT, neigh_announcements_sent) \
	X(NEIGH_HELD, neigh_held) \
	X(NEIGH_RELEASED, neigh_released) \
	X(NEIGH_EXPIRED, neigh_expired) \
	X(FORWARDED, forwarded) \
	X(VIP_PACKETS, vip_packets) \
	X(TO_KERNEL, to_kernel) \
	X(L4_PACKETS, l4_packets) \
	X(CONN_CREATED, conn_created) \
	X(CONN_EXPIRED, conn_expired) \
	X(CONN_REUSED, conn_reused) \
	X(CONN_TABLE_FULL, conn_table_full) \
	X(CONN_UNTRACKED, conn_untracked) \
	X(CONN_PICKED_UP, conn_picked_up) \
	X(CONN_RESTORED, conn_restored) \
	X(CONN_SYNCED, conn_synced) \
	X(CONN_RESET_DOWN, conn_reset_down) \
	X(NAT_TUPLE_MOVED, nat_tuple_moved) \
	X(NAT_REPLIES, nat_replies) \
	X(NAT_REPLIES_UNTRACKED, nat_replies_untracked) \
	X(REDIRECTED, redirected) \
	X(TCP_RESETS_SENT, tcp_resets_sent) \
	X(SYN_COOKIES_SENT, syn_cookies_sent) \
	X(SYN_PROXY_OPENED, syn_proxy_opened) \
	X(SYN_PROXY_ESTABLISHED, syn_proxy_established) \
	X(SYN_PROXY_REFUSED, syn_proxy_refused) \
	X(SYN_PROXY_HELD, syn_proxy_held) \
	X(SYN_PROXY_RESENT, syn_proxy_resent) \
	X(SYN_PROXY_UNANSWERED, syn_proxy_unanswered) \
	X(HALF_OPEN_EVICTED, half_open_evicted) \
	X(HALF_OPEN_FULL, half_open_full) \
	X(SOURCE_HALF_OPEN_FULL, source_half_open_full) \
	X(FROM_KERNEL, from_kernel) \
	X(BUSY_CYCLES, busy_cycles) \
	X(BUSY_POLLS, busy_polls) \
	X(POLLS, polls)

/* Drop reasons: X(ENUM, reason). Every dropped packet counts under one. */
#define PYLB_DROPS(X) \
	X(ETH_TRUNCATED, eth_truncated) \
	X(ETH_OTHER_HOST, eth_other_host) \
	X(VLAN_UNKNOWN, vlan_unknown) \
	X(ETHERTYPE_UNSUPPORTED, ethertype_unsupported) \
	X(ARP_TRUNCATED, arp_truncated) \
	X(ARP_INVALID, arp_invalid) \
	X(ARP_NOT_OURS, arp_not_ours) \
	X(IPV4_TRUNCATED, ipv4_truncated) \
	X(IPV4_BAD_VERSION, ipv4_bad_version) \
	X(IPV4_BAD_IHL, ipv4_bad_ihl) \
	X(IPV4_BAD_TOTAL_LENGTH, ipv4_bad_total_length) \
	X(IPV4_BAD_CHECKSUM, ipv4_bad_checksum) \
	X(IPV4_MARTIAN, ipv4_martian) \
	X(SOURCE_OWN, source_own) \
	X(SOURCE_BROADCAST, source_broadcast) \
	X(SOURCE_REVERSE_PATH, source_reverse_path) \
	X(ICMP_TRUNCATED, icmp_truncated) \
	X(ICMP_BAD_CHECKSUM, icmp_bad_checksum) \
	X(ICMP_MTU_INVALID, icmp_mtu_invalid) \
	X(ICMP_RELAY_LIMITED, icmp_relay_limited) \
	X(IPV6_TRUNCATED, ipv6_truncated) \
	X(IPV6_BAD_VERSION, ipv6_bad_version) \
	X(IPV6_BAD_PAYLOAD_LENGTH, ipv6_bad_payload_length) \
	X(IPV6_MARTIAN, ipv6_martian) \
	X(IPV6_EXT_TRUNCATED, ipv6_ext_truncated) \
	X(IPV6_EXT_INVALID, ipv6_ext_invalid) \
	X(ICMP6_TRUNCATED, icmp6_truncated) \
	X(ICMP6_BAD_CHECKSUM, icmp6_bad_checksum) \
	X(ND_INVALID, nd_invalid) \
	X(ND_NOT_OURS, nd_not_ours) \
	X(TTL_EXCEEDED, ttl_exceeded) \
	X(NO_ROUTE, no_route) \
	X(NEIGH_QUEUE_FULL, neigh_queue_full) \
	X(NEIGH_HOLD_FULL, neigh_hold_full) \
	X(NEIGH_UNRESOLVED, neigh_unresolved) \
	X(VIP_NO_BACKEND, vip_no_backend) \
	X(VIP_NO_ROUTE, vip_no_route) \
	X(VIP_NO_HEADROOM, vip_no_headroom) \
	X(VIP_TOO_BIG, vip_too_big) \
	X(INSPECT_NO_APPLIANCE, inspect_no_appliance) \
	X(INSPECT_NO_ROUTE, inspect_no_route) \
	X(INSPECT_TOO_BIG, inspect_too_big) \
	X(INSPECT_MALFORMED, inspect_malformed) \
	X(INSPECT_BAD_COOKIE, inspect_bad_cookie) \
	X(INSPECT_UNROUTABLE, inspect_unroutable) \
	X(VLAN_NO_HEADROOM, vlan_no_headroom) \
	X(MTU_EXCEEDED, mtu_exceeded) \
	X(L4_TRUNCATED, l4_truncated) \
	X(PROXY_NO_ROOM, proxy_no_room) \
	X(PROXY_FRAGMENT, proxy_fragment) \
	X(FRAG_TABLE_FULL, frag_table_full) \
	X(FRAG_HOLD_FULL, frag_hold_full) \
	X(FRAG_TIMEOUT, frag_timeout) \
	X(FRAG_NO_CONN, frag_no_conn) \
	X(NO_SERVICE, no_service) \
	X(TCP_NO_CONN, tcp_no_conn) \
	X(TCP_BAD_FLAGS, tcp_bad_flags) \
	X(SERVICE_NO_BACKEND, service_no_backend) \
	X(BACKEND_DOWN, backend_down) \
	X(REDIRECT_FULL, redirect_full) \
	X(FULLNAT_NO_PORT, fullnat_no_port) \
	X(NAT_UNTRACKED_AMBIGUOUS, nat_untracked_ambiguous) \
	X(NAT_REPLY_AMBIGUOUS, nat_reply_ambiguous) \
	X(NAT_TUPLE_IN_USE, nat_tuple_in_use) \
	X(ACL_DENIED, acl_denied) \
	X(LIMIT_SERVICE_CONNS, limit_service_conns) \
	X(LIMIT_SERVICE_RATE, limit_service_rate) \
	X(LIMIT_CLIENT_CONNS, limit_client_conns) \
	X(LIMIT_SOURCE_RATE, limit_source_rate) \
	X(LIMIT_BACKEND_CONNS, limit_backend_conns) \
	X(SYN_COOKIE_INVALID, syn_cookie_invalid) \
	X(SYN_COOKIE_EXPIRED, syn_cookie_expired) \
	X(SYN_PROXY_UNSUPPORTED, syn_proxy_unsupported) \
	X(SYN_PROXY_NO_ENTRY, syn_proxy_no_entry) \
	X(SYN_PROXY_HOLD_FULL, syn_proxy_hold_full) \
	X(SYN_PROXY_UNEXPECTED, syn_proxy_unexpected) \
	X(LOCAL_UNHANDLED, local_unhandled) \
	X(KERNEL_INVALID, kernel_invalid) \
	X(ALLOC_FAILED, alloc_failed) \
	X(TX_FULL, tx_full)

enum pylb_counter {
#define PYLB_X_CNT(e, n) PYLB_C_##e,
	PYLB_COUNTERS(PYLB_X_CNT)
#undef PYLB_X_CNT
	PYLB_DROP_FIRST,
	PYLB_D__BASE = PYLB_DROP_FIRST - 1,
#define PYLB_X_DROP(e, n) PYLB_D_##e,
	PYLB_DROPS(PYLB_X_DROP)
#undef PYLB_X_DROP
	PYLB_CNT_MAX,
};

/* Per-slot counter rows are padded to whole cache lines. */
#define PYLB_CNT_STRIDE ((PYLB_CNT_MAX + 7) & ~7)

/* Connection timeouts in seconds; 0 takes the IPVS-like default. */
#define PYLB_TIMEOUT_MAX	(30 * 86400)
struct pylb_timeouts {
	uint32_t tcp_syn;			/* 60 */
	uint32_t tcp_established;		/* 900 */
	uint32_t tcp_fin;			/* 120 (FIN_WAIT and TIME_WAIT) */
	uint32_t tcp_close;			/* 10 */
	uint32_t udp;				/* 300 */
};

/* Change the timeouts while running (like ipvsadm --set): each connection
 * takes its new timeout at its next packet. Get: the values in force. */
int pylb_dp_timeouts_set(struct pylb_dp *dp, const struct pylb_timeouts *t);
void pylb_dp_timeouts_get(struct pylb_dp *dp, struct pylb_timeouts *t);

struct pylb_dp_conf {
	uint32_t n_workers;			/* 0: no worker, inject only */
	uint32_t worker_lcores[PYLB_MAX_WORKERS];
	uint32_t mbufs_per_socket;
	uint32_t mbuf_cache;
	uint32_t mbuf_size;			/* buffer bytes, headroom included;
						 * 0: 2176; a frame must fit in one */
	uint32_t neigh_capacity;
	uint32_t neigh_timeout_ms;		/* 0: 60 s; learned entries age out */
	uint32_t max_routes;			/* per family; 0: 65,536 */
	uint32_t fib_tbl8;			/* IPv4 groups for routes longer
						 * than /24, <= 32767; 0: 8192 */
	uint32_t conn_capacity;			/* tracked connections per lcore;
						 * 0: 65536 */
	uint8_t tcp_reset;			/* answer TCP to a VIP that has no
						 * connection or service with RST */
	uint8_t sync;				/* note opened and changed connections
						 * for connection sync */
	uint8_t mid_flow_off;			/* a TCP packet that is not a SYN and
						 * has no connection is refused; 0: it
						 * is picked up by the consistent choice */
	uint8_t clock_stopped;			/* time moves only by
						 * pylb_dp_clock_advance (tests: what
						 * depends on time is then exact) */
	uint32_t half_open_budget;		/* half-open entries per lcore (TCP
						 * syn_sent/syn_recv, NAT and FullNAT
						 * UDP not yet answered): beyond it a
						 * SYN gets a cookie (syn_proxy AUTO)
						 * or the oldest half-open entry goes;
						 * 0: an eighth of the capacity; above
						 * the capacity: no budget */
	/* Per client network (source prefix): half-open entries and new
	 * connections a second, per lcore, in PYLB_SRC_SLOTS slots (a keyed
	 * hash of the prefix; prefixes that share a slot share its counts). */
	uint8_t source_prefix4;			/* 0: /24 */
	uint8_t source_prefix6;			/* 0: /64 */
	uint32_t source_half_open_budget;	/* at it, the prefix's new half-open
						 * flows go stateless (or get cookies);
						 * 0: an eighth of half_open_budget, at
						 * least 64; none if not below it */
	uint32_t source_new_per_second;		/* across the workers; 0: no limit */
	struct pylb_timeouts timeouts;
	/* The flow hash's key (hash.h): random words, or words derived from a
	 * fleet's shared secret so that its appliances choose alike. All
	 * zero: a random key. */
	uint64_t hash_key[PYLB_HASH_KEY_WORDS];
};

struct pylb_port_conf {
	char name[PYLB_NAME_LEN];		/* operator's name, e.g. "p0" */
	/* DPDK device: vdev args ("net_tap0,iface=pylb0") probed now, or a
	 * PCI address given to EAL's allow-list. Empty: a detached port with
	 * no device, for in-process packet tests. */
	char device[PYLB_DEVARGS_LEN];
	uint8_t mac[6];				/* detached ports only */
	uint16_t rx_desc;
	uint16_t tx_desc;
	uint32_t link_wait_ms;
	/* IP MTU: 0, the device's (1500); up to what one mbuf holds (jumbo
	 * frames take large mbufs: conf.mbuf_size; frames are never chained). */
	uint16_t mtu;
	/* An 802.1Q sub-interface: VLAN `vlan` (1..4094) of port `parent`
	 * (an index; no device of its own, the parent's MAC): a port like any
	 * other (addresses, routes, neighbours, services), its frames tagged
	 * on the wire. 0: a port of its own. */
	uint16_t vlan;
	uint16_t parent;
	/* Exception path: the kernel interface carrying this port's addresses
	 * (a TAP owned by the appliance). Empty: none. Detached ports get a
	 * detached exception path when this is set. */
	char kernel_iface[PYLB_NAME_LEN];
	/* The reverse-path check of packets arriving here (enum
	 * pylb_rp_filter, like Linux's rp_filter); 0: strict. */
	uint8_t rp_filter;
};

/* A packet's source is checked against the routes: strict, it must be
 * routed back out of the port it came in by; loose, routed out of any
 * port; off, not checked. Whatever the mode, a source that is one of the
 * appliance's own addresses or VIPs, or a network's broadcast, is dropped
 * (source_own, source_broadcast). */
enum pylb_rp_filter {
	PYLB_RP_STRICT = 0,
	PYLB_RP_LOOSE = 1,
	PYLB_RP_OFF = 2,
};

/* Addresses: af is 4 or 6; IPv4 uses ip[0..3]; network byte order. */
struct pylb_ip {
	uint8_t af;
	uint8_t pad[3];
	uint8_t ip[16];
};

struct pylb_prefix {
	struct pylb_ip addr;
	uint8_t len;
};

struct pylb_nexthop {
	struct pylb_ip gw;			/* af 0: directly connected */
	uint16_t port;
};

enum pylb_route_kind {
	PYLB_ROUTE_GATEWAY = 0,			/* operator's route */
	PYLB_ROUTE_CONNECTED,			/* from a port address */
	PYLB_ROUTE_LOCAL,			/* the address itself */
	PYLB_ROUTE_VIP,				/* an L3 VIP prefix */
	PYLB_ROUTE_SERVICE,			/* a VIP address with L4 services */
};

struct pylb_route {
	struct pylb_prefix dst;
	uint8_t kind;				/* enum pylb_route_kind */
	uint16_t n_nh;
	struct pylb_nexthop nh[PYLB_MAX_ECMP];
	/* A gateway route's traffic first crosses an appliance of this
	 * inspection pool (GENEVE); "": none. */
	char inspect[PYLB_NAME_LEN];
};

enum pylb_vip_method {
	PYLB_FWD_IPIP = 0,			/* IP-in-IP (or 6in4 / 4in6) */
	PYLB_FWD_GRE,				/* GRE, outer family = backend's */
	PYLB_FWD_DR,				/* direct routing: MAC rewrite */
	PYLB_FWD_GUE,				/* GUE (variant 1: IP in UDP, as FOU) */
};

struct pylb_vip_conf {
	struct pylb_prefix prefix;
	uint8_t method;				/* enum pylb_vip_method */
	/* The outer source: an address (len 32 or 128), or a prefix whose
	 * host bits (the last 32 at most) vary with the flow, so that a
	 * backend's NIC spreads the flows over its queues; af 0: the egress
	 * port's address. */
	struct pylb_prefix source;
	uint32_t table_size;			/* prime; 0: PYLB_MAGLEV_DEFAULT */
	/* Its traffic first crosses an appliance of this inspection pool;
	 * "": none. */
	char inspect[PYLB_NAME_LEN];
};

/* Inspection pools: appliances (firewalls, IDS) that traffic to routes and
 * L3 VIPs marked for inspection crosses first, GENEVE-encapsulated (RFC
 * 8926) with a flow cookie they return unchanged; what they send back is
 * checked and forwarded to its destination. */
enum pylb_stickiness {
	PYLB_STICK_5 = 0,			/* addresses, protocol and ports */
	PYLB_STICK_3,				/* addresses and protocol */
	PYLB_STICK_2,				/* addresses */
};

enum pylb_failover {
	PYLB_FAILOVER_REBALANCE = 0,		/* a down or removed appliance's flows move */
	PYLB_FAILOVER_STAY,			/* they stay on it until they end */
};

struct pylb_pool_conf {
	char name[PYLB_NAME_LEN];
	uint8_t stickiness;			/* enum pylb_stickiness */
	uint8_t failover;			/* enum pylb_failover */
	uint32_t table_size;			/* prime; 0: PYLB_MAGLEV_DEFAULT */
	uint32_t idle_timeout;			/* seconds a flow is remembered idle */
};

/* A pool's state: the flows its workers remember. */
struct pylb_pool_stats {
	uint64_t flows;
};

enum pylb_backend_state {
	PYLB_BACKEND_UP = 0,
	PYLB_BACKEND_DRAIN,			/* no new connections; open ones finish */
	PYLB_BACKEND_DOWN,			/* no new connections; open ones finish or
						 * are reset (the service's down_reset) */
};

struct pylb_backend {
	struct pylb_ip addr;
	uint16_t port;				/* L4 services; 0 for L3 VIPs */
	uint8_t state;				/* enum pylb_backend_state */
	uint32_t weight;			/* 0: present but takes no traffic */
	uint32_t max_conns;			/* L4: connections open at once (the
						 * workers' shares), then no new ones;
						 * 0: no limit */
	/* A QUIC service's backend: the server id it puts in the connection
	 * IDs it chooses (pylb_quic_conf); sid_len 0: none. */
	uint8_t sid_len;
	uint8_t sid[PYLB_QUIC_SID_MAX];
};

/* QUIC connection-ID routing (draft-ietf-quic-load-balancers) for a UDP
 * service: the backends put their server id in the connection IDs they
 * choose (first octet: the config id in its 3 high bits; then the server
 * id and a nonce, in plaintext, or both encrypted with AES-128-ECB in one
 * pass when they make 16 bytes); a new flow (a client that moved to another
 * address or port) whose packet's destination connection ID decodes to a
 * backend goes to it; else the scheduler's. sid_len 0: off. */
struct pylb_quic_conf {
	uint8_t sid_len;			/* 1..PYLB_QUIC_SID_MAX */
	uint8_t nonce_len;			/* 4..18; sid + nonce <= 19 */
	uint8_t config_id;			/* 0..6 (7: unroutable) */
	uint8_t encrypted;			/* key set: sid + nonce == 16 */
	uint8_t key[16];
};

/* L4 virtual services: VIP:port/proto (port 0: every port). */
enum pylb_l4_method {
	PYLB_L4_NAT = 0,			/* DNAT, replies reverse-translated */
	PYLB_L4_DR,				/* MAC rewrite, backend has the VIP */
	PYLB_L4_TUNNEL,				/* IPIP to the backend */
	PYLB_L4_FULLNAT,			/* DNAT + SNAT to a local address */
	PYLB_L4_GUE,				/* as TUNNEL, in GUE (IP in UDP) */
};

enum pylb_l4_sched {
	PYLB_SCHED_MAGLEV = 0,			/* consistent hash of the 5-tuple */
	PYLB_SCHED_SOURCE,			/* consistent hash of the client address */
	PYLB_SCHED_WRR,				/* weighted round-robin, per lcore */
	PYLB_SCHED_WLC,				/* weighted least-connections, per lcore */
};

#define PYLB_SVC_ID_ANY	0xffff		/* pylb_service_conf.id: the highest free */

struct pylb_service_conf {
	uint16_t id;				/* 0..PYLB_MAX_SERVICES-1, chosen by the
						 * caller (the domain), or PYLB_SVC_ID_ANY */
	struct pylb_ip vip;
	uint8_t proto;				/* IPPROTO_TCP or IPPROTO_UDP */
	uint16_t port;				/* 0: all ports */
	uint8_t method;				/* enum pylb_l4_method */
	uint8_t sched;				/* enum pylb_l4_sched */
	uint32_t table_size;			/* prime; 0: PYLB_MAGLEV_DEFAULT */
	uint32_t persistence;			/* seconds a client sticks to its
						 * backend (ipvsadm -p); 0: off */
	uint8_t persistence_prefix;		/* client netmask; 0: host */
	uint8_t down_reset;			/* a down backend's connections are reset
						 * (TCP RST to the client); 0: they finish */
	uint8_t syn_proxy;			/* enum pylb_syn_proxy (NAT and FullNAT
						 * TCP services) */
	uint8_t proxy_protocol;			/* enum pylb_proxy_protocol (FullNAT) */
	/* Limits (0: none), refused TCP answered with RST: connections open
	 * at once and new ones a second (each worker takes its share of
	 * both), connections open at once per client address (exact: a
	 * client's connections are all on one worker). */
	uint32_t max_connections;
	uint32_t max_new_per_second;
	uint32_t max_per_client;
	/* FullNAT: the appliance's own addresses used as sources towards
	 * the backends (each one a port address the backends can reach). */
	uint8_t n_lips;
	struct pylb_ip lips[PYLB_MAX_LIPS];
	/* Tunnel: the outer source, as a VIP's (pylb_vip_conf.source). */
	struct pylb_prefix tunnel_source;
	struct pylb_quic_conf quic;
};

/* ACLs (acl.c): lists of source prefixes; a deny list refuses the sources
 * it lists, an allow list those it does not; refusing drops, answers TCP
 * with RST, or answers with ICMP unreachable (administratively
 * prohibited; rate limited). Checked when a connection opens. */
#define PYLB_MAX_ACLS	64
enum pylb_acl_type { PYLB_ACL_DENY = 0, PYLB_ACL_ALLOW };
enum pylb_acl_action { PYLB_ACL_DROP = 0, PYLB_ACL_RESET, PYLB_ACL_UNREACHABLE };

struct pylb_acl_conf {
	uint8_t type;				/* enum pylb_acl_type */
	uint8_t action;				/* enum pylb_acl_action */
};

struct pylb_acl_prefix {
	struct pylb_prefix prefix;
	uint8_t list;				/* index in the lists */
};

/* SYN cookies (synproxy.c): under pressure (the lcore's half-open entries
 * at the threshold), always, or never. */
/* The client's address for FullNAT backends: a PROXY protocol header
 * (haproxy.org's proxy-protocol.txt) at the start of each TCP connection,
 * or (v2) of each UDP datagram. */
enum pylb_proxy_protocol {
	PYLB_PROXY_OFF = 0,
	PYLB_PROXY_V1,				/* text (TCP only) */
	PYLB_PROXY_V2,				/* binary */
};

enum pylb_syn_proxy {
	PYLB_SYN_PROXY_AUTO = 0,
	PYLB_SYN_PROXY_ALWAYS,
	PYLB_SYN_PROXY_OFF,
};

enum pylb_tcp_state {
	PYLB_TCP_NONE = 0,			/* UDP */
	PYLB_TCP_SYN_SENT,			/* NAT: the client's SYN went to the backend */
	PYLB_TCP_SYN_RECV,			/* the backend answered (DR: SYN seen) */
	PYLB_TCP_MID_FLOW,			/* picked up mid-flow (no SYN seen here):
						 * half-open until the backend answers
						 * (DR, tunnel: the client's next packet) */
	PYLB_TCP_ESTABLISHED,
	PYLB_TCP_FIN_WAIT,			/* the client closed first */
	PYLB_TCP_CLOSE_WAIT,			/* the backend closed first */
	PYLB_TCP_TIME_WAIT,
	PYLB_TCP_CLOSE,
	PYLB_TCP__STATES,
};

/* A service's traffic (like ipvsadm --stats), summed over lcores. In: the
 * clients' packets; out: the replies that come back through the appliance.
 * Per backend as well: what each counted while it was in the service (kept
 * across backend-set changes, gone when the backend is removed). */
struct pylb_svc_stats {
	uint64_t conns;
	uint64_t in_packets, in_bytes;
	uint64_t out_packets, out_bytes;
	/* Tracked connections now (per backend; 0 for a service's total):
	 * active = established (TCP) or tracked (UDP), inactive = the other
	 * TCP states, like ipvsadm -L -n. Kept by the workers as they open,
	 * move and end connections; never a table scan. */
	int64_t active, inactive;
	uint64_t reserved;			/* one cache line per entry */
};

/* Fills out and backends[0..max_b) (in the service's backend order);
 * returns the number of backends. */
int pylb_dp_service_stats(struct pylb_dp *dp, const struct pylb_ip *vip, uint8_t proto,
			  uint16_t port, struct pylb_svc_stats *out,
			  struct pylb_svc_stats *backends, uint32_t max_b);

/* What the L4 path does with a packet: the fast path's decision, which
 * pylb_dp_l4_trace reports. */
enum pylb_l4_verdict {
	PYLB_L4V_DROP = 0,			/* dropped: a drop reason (and an answer) */
	PYLB_L4V_CONN,				/* its connection: on to its backend */
	PYLB_L4V_HOLD,				/* its connection opens through the SYN
						 * proxy: held until the backend answers */
	PYLB_L4V_NEW,				/* opens a connection: the scheduler's backend */
	PYLB_L4V_PICK_UP,			/* of a connection opened elsewhere: tracked
						 * from here, the consistent choice */
	PYLB_L4V_UNTRACKED,			/* no entry: to the consistent choice */
	PYLB_L4V_COOKIE,			/* a SYN answered with a SYN cookie */
	PYLB_L4V_COOKIE_ACK,			/* a cookie's ACK: the connection opens */
};

struct pylb_l4_trace_query {
	struct pylb_ip src, dst;
	uint16_t sport, dport;			/* host order */
	uint8_t proto;
	uint8_t tcp_flags;
	uint32_t seq, ack;			/* TCP: the segment's numbers (a cookie's ACK) */
	const uint8_t *payload;			/* UDP: what follows its header (QUIC's
						 * connection ID); NULL: none */
	uint16_t plen;
};

struct pylb_l4_trace {
	uint8_t verdict;			/* enum pylb_l4_verdict */
	uint8_t state;				/* PYLB_L4V_CONN: enum pylb_tcp_state */
	uint16_t lcore_slot;			/* the lcore whose tables decided */
	uint16_t reason;			/* PYLB_L4V_DROP: the drop reason (a counter) */
	struct pylb_service_conf service;	/* when there is one */
	struct pylb_backend backend;		/* when there is one */
	uint32_t route_hash;			/* the flow hash the output to the
						 * backend is chosen by (ECMP) */
	char why[256];
};

/* Read only: what the L4 fast path would do with a packet now, decided by
 * the same code on the tables of the lcore that would take it. */
int pylb_dp_l4_trace(struct pylb_dp *dp, const struct pylb_l4_trace_query *q,
		     struct pylb_l4_trace *out);

/* "established", ... ("udp" for PYLB_TCP_NONE; "?" out of range). */
const char *pylb_tcp_state_name(uint8_t state);

struct pylb_conn_info {
	struct pylb_ip client, vip, backend, local;	/* local: FullNAT source */
	uint16_t cport, vport, bport, lport;
	uint8_t proto;
	uint8_t state;				/* enum pylb_tcp_state */
	uint16_t lcore_slot;
	uint64_t expires_ms;			/* from now */
	uint64_t packets;
};

struct pylb_port_info {
	char name[PYLB_NAME_LEN];
	char device[PYLB_DEVARGS_LEN];
	int32_t ethdev;				/* -1 when detached */
	uint8_t mac[6];
	uint8_t link_up;
	uint32_t link_speed_mbps;
	uint32_t n_addrs;
	struct pylb_prefix addrs[2 * PYLB_MAX_ADDRS];
	char kernel_iface[PYLB_NAME_LEN];	/* empty: no exception path */
	uint16_t mtu;				/* IP MTU */
	/* The NIC's counters (rte_eth_stats); 0 for a detached port. */
	uint64_t nic_rx_packets, nic_tx_packets, nic_rx_bytes, nic_tx_bytes;
	uint64_t nic_rx_missed, nic_rx_errors, nic_tx_errors, nic_rx_nombuf;
};

enum pylb_neigh_state {
	PYLB_NEIGH_INCOMPLETE = 0,		/* resolving; packets held */
	PYLB_NEIGH_REACHABLE,
	PYLB_NEIGH_PROBING,			/* aging; refresh request sent */
	PYLB_NEIGH_STATIC,
};

struct pylb_neigh_info {
	struct pylb_ip addr;
	uint16_t port;
	uint8_t mac[6];
	uint8_t state;				/* enum pylb_neigh_state */
	uint8_t held;				/* packets waiting */
	uint64_t age_ms;
};

/* Errors */
const char *pylb_strerror(int rc);
const char *pylb_last_error(void);
void pylb_clear_error(void);	/* after reading it: the next failure's own */

/* EAL: once per process. Blocks; call without holding other locks. */
int pylb_eal_init(int argc, char **argv);
int pylb_eal_cleanup(void);

/* Lifecycle */
int pylb_dp_create(const struct pylb_dp_conf *conf, struct pylb_dp **out);
int pylb_dp_port_add(struct pylb_dp *dp, const struct pylb_port_conf *conf,
		     uint16_t *port_out);
/* Adds the address (a local route) and its network (a connected route). */
int pylb_dp_addr_add(struct pylb_dp *dp, uint16_t port,
		     const struct pylb_prefix *addr);
/* Removes a host address (/32, /128) pylb_dp_addr_add gave the port: an
 * address that moves between appliances (a fleet's gateway, a peer's
 * FullNAT pool address held as a backup). */
int pylb_dp_addr_del(struct pylb_dp *dp, uint16_t port, const struct pylb_ip *ip);
/* Tells the port's link that the address is here now (a gratuitous ARP,
 * an unsolicited neighbour advertisement). */
int pylb_dp_addr_announce(struct pylb_dp *dp, uint16_t port, const struct pylb_ip *ip);

/* Health probes through the data path (DR and tunnel backends): a TCP SYN
 * (UDP: a datagram) to the service's VIP and port, from the appliance's
 * address towards the backend, sent by the backend's method, so only a
 * backend that takes the VIP's traffic answers. */
enum pylb_probe_state {
	PYLB_PROBE_PENDING = 1,		/* no answer yet */
	PYLB_PROBE_ANSWERED,		/* SYN-ACK (answered with a RST); a datagram */
	PYLB_PROBE_REFUSED,		/* RST */
};
struct pylb_probe_conf {
	struct pylb_ip vip;
	struct pylb_ip backend;
	uint16_t port;			/* host order */
	uint8_t proto;			/* IPPROTO_TCP, IPPROTO_UDP */
	uint8_t method;			/* PYLB_L4_DR, PYLB_L4_TUNNEL */
};
/* Sends a probe: its id (>= 0), or an error. */
int pylb_dp_probe_start(struct pylb_dp *dp, const struct pylb_probe_conf *p);
/* A probe's enum pylb_probe_state, or an error. */
int pylb_dp_probe_state(struct pylb_dp *dp, uint32_t id);
/* Forgets a probe (answered or not). */
int pylb_dp_probe_end(struct pylb_dp *dp, uint32_t id);
int pylb_dp_start(struct pylb_dp *dp);
int pylb_dp_stop(struct pylb_dp *dp);
void pylb_dp_destroy(struct pylb_dp *dp);

/* Control-side housekeeping: neighbour learning, resolution, held packets,
 * aging. Call from one thread, often (every few ms). */
int pylb_dp_housekeep(struct pylb_dp *dp);

/* Routes (both families). Changes apply while workers forward. */
int pylb_dp_route_add(struct pylb_dp *dp, const struct pylb_route *r);
/* An existing gateway route to r->dst, atomically given r's next hops. */
int pylb_dp_route_replace(struct pylb_dp *dp, const struct pylb_route *r);
int pylb_dp_route_del(struct pylb_dp *dp, const struct pylb_prefix *dst);
int pylb_dp_route_get(struct pylb_dp *dp, const struct pylb_prefix *dst,
		      struct pylb_route *out);
/* Routes of family af in prefix order, starting after *after (len 0xff or
 * NULL: from the start). Returns how many were written. */
int pylb_dp_route_list(struct pylb_dp *dp, uint8_t af,
		       const struct pylb_prefix *after, struct pylb_route *out,
		       uint32_t max);
uint32_t pylb_dp_route_count(const struct pylb_dp *dp, uint8_t af);
/* Longest-prefix match as the workers see it. */
/* Read only: what the workers do to reach `to` for a flow hash (from
 * pylb_flow_hash, or a trace's route_hash): the route, and in *chosen the
 * index of the next hop their ECMP choice takes (-1: none). */
int pylb_dp_route_pick(struct pylb_dp *dp, const struct pylb_ip *to, uint32_t hash,
		       struct pylb_route *out, int32_t *chosen);
int pylb_dp_route_lookup(struct pylb_dp *dp, const struct pylb_ip *ip,
			 struct pylb_route *out);

/* Neighbours: static entries never age and are not overridden. */
int pylb_dp_neigh_add(struct pylb_dp *dp, uint16_t port,
		      const struct pylb_ip *ip, const uint8_t mac[6]);
int pylb_dp_neigh_del(struct pylb_dp *dp, uint16_t port,
		      const struct pylb_ip *ip);

/* L3 VIPs: a prefix balanced over backends by a consistent hash of
 * (source, destination) through a lookup table of prime size. */
int pylb_dp_vip_add(struct pylb_dp *dp, const struct pylb_vip_conf *conf);
int pylb_dp_vip_del(struct pylb_dp *dp, const struct pylb_prefix *prefix);
/* Replace the VIP's backend set (the table is rebuilt off to the side). */
int pylb_dp_vip_backends_set(struct pylb_dp *dp, const struct pylb_prefix *prefix,
			     const struct pylb_backend *b, uint32_t n);
int pylb_dp_vip_get(struct pylb_dp *dp, const struct pylb_prefix *prefix,
		    struct pylb_vip_conf *conf, struct pylb_backend *b,
		    uint32_t max_b, uint32_t *n_b);
int pylb_dp_vip_list(struct pylb_dp *dp, struct pylb_prefix *out, uint32_t max);
/* A name for the choices a VIP's (a service's) lookup table makes under
 * the flow-hash key: equal on two appliances when every flow goes to the
 * same backend on both (a fleet's divergence shows as a difference). */
int pylb_dp_vip_fingerprint(struct pylb_dp *dp, const struct pylb_prefix *prefix,
			    uint64_t *out);
/* The backend index the workers choose for (src, dst); -1 if none. */
int pylb_dp_vip_pick(struct pylb_dp *dp, const struct pylb_prefix *prefix,
		     const struct pylb_ip *src, const struct pylb_ip *dst);

/* Inspection pools, by name; their appliances are backends (address,
 * weight, state). A pool in use by a route or a VIP cannot be deleted.
 * pylb_dp_pool_set replaces a pool's settings and appliances in one step
 * (its flows keep their appliances, as its failover says). */
int pylb_dp_pool_add(struct pylb_dp *dp, const struct pylb_pool_conf *conf);
int pylb_dp_pool_del(struct pylb_dp *dp, const char *name);
int pylb_dp_pool_set(struct pylb_dp *dp, const struct pylb_pool_conf *conf,
		     const struct pylb_backend *b, uint32_t n);
int pylb_dp_pool_get(struct pylb_dp *dp, const char *name, struct pylb_pool_conf *conf,
		     struct pylb_backend *b, uint32_t max_b, uint32_t *n_b,
		     struct pylb_pool_stats *stats);
int pylb_dp_pool_list(struct pylb_dp *dp, char (*names)[PYLB_NAME_LEN], uint32_t max);
/* Read only (Trace): the appliance the workers send a flow's packet to
 * (proto, addresses and ports as the packet has them) in *out, and in
 * *hash the flow hash their ECMP choice towards it takes. Returns
 * what they do: 0 its remembered appliance, 1 the same, down or gone but
 * the pool's failover is stay, 2 a new one (its own down or gone), 3 the
 * table's (a flow not remembered), 4 none (no appliance up: dropped); or a
 * negative PYLB_E_* code. */
int pylb_dp_pool_pick(struct pylb_dp *dp, const char *name, uint8_t proto,
		      const struct pylb_ip *src, uint16_t sport, const struct pylb_ip *dst,
		      uint16_t dport, struct pylb_ip *out, uint32_t *hash);

/* L4 services: VIP:port/proto with backends IP:port (weights; 0 drains:
 * established connections continue, no new ones). */
int pylb_dp_service_add(struct pylb_dp *dp, const struct pylb_service_conf *conf);
int pylb_dp_service_del(struct pylb_dp *dp, const struct pylb_ip *vip,
			uint8_t proto, uint16_t port);
int pylb_dp_service_backends_set(struct pylb_dp *dp, const struct pylb_ip *vip,
				 uint8_t proto, uint16_t port,
				 const struct pylb_backend *b, uint32_t n);
/* The service's limits (struct pylb_service_conf's) changed in place: open
 * connections stay (a per-client limit counts the connections opened
 * while it is set). */
int pylb_dp_service_limits_set(struct pylb_dp *dp, const struct pylb_ip *vip,
			       uint8_t proto, uint16_t port, uint32_t max_connections,
			       uint32_t max_new_per_second, uint32_t max_per_client);
int pylb_dp_service_get(struct pylb_dp *dp, const struct pylb_ip *vip,
			uint8_t proto, uint16_t port, struct pylb_service_conf *conf,
			struct pylb_backend *b, uint32_t max_b, uint32_t *n_b);
int pylb_dp_service_list(struct pylb_dp *dp, struct pylb_service_conf *out,
			 uint32_t max);
int pylb_dp_service_fingerprint(struct pylb_dp *dp, const struct pylb_ip *vip,
				uint8_t proto, uint16_t port, uint64_t *out);
/* Tracked connections (all lcores); a snapshot read without stopping the
 * workers. */
int pylb_dp_conn_list(struct pylb_dp *dp, struct pylb_conn_info *out, uint32_t max);

/* A tracked connection as a record: what a restart restores (and what
 * connection sync is to carry). Host byte order; IPv4 addresses in the
 * first 4 bytes. The service and backend are named by address, never by
 * index: another run (or appliance) numbers them otherwise. */
struct pylb_conn_record {
	uint8_t af, proto, state, method;
	uint16_t cport, vport, bport, lport;	/* lport: FullNAT's local port */
	uint16_t flags;				/* PYLB_REC_* */
	uint8_t backend_af;			/* 0: af (a tunnel's may differ) */
	uint8_t reserved;
	uint32_t seq_delta;			/* SYN proxy: backend ISN less cookie */
	uint32_t expires_ms;			/* from the export */
	uint8_t client[16], vip[16], backend[16], local[16];
};
#define PYLB_REC_SYNPROXY	0x0004	/* sequence numbers translated */
#define PYLB_REC_REPLIED	0x0010	/* a reply was seen */
#define PYLB_REC_WSCALES	0xff00	/* the SYN proxy's window scales */
#define PYLB_REC_FLAGS		(PYLB_REC_SYNPROXY | PYLB_REC_REPLIED | PYLB_REC_WSCALES)

/* Every tracked connection as a record (a snapshot read while the workers
 * run; one still opening through the SYN proxy is left out). */
int pylb_dp_conn_export(struct pylb_dp *dp, struct pylb_conn_record *out, uint32_t max);
/* Install records in the tables of the workers that own them, before the
 * dataplane starts (the workers own their tables once they run). A record
 * whose service (VIP, port, protocol, method) or backend is not
 * configured, that another worker count would own otherwise (FullNAT), or
 * that finds its tuple taken or the table full, is skipped. Returns how
 * many were installed, or a negative PYLB_E_* code. */
int pylb_dp_conn_install(struct pylb_dp *dp, const struct pylb_conn_record *r, uint32_t n);

/* Connection sync (conf.sync). The connections opened or moved to another
 * state since the last call, as records (at most max; each worker's
 * notes are read by this one caller). */
int pylb_dp_sync_collect(struct pylb_dp *dp, struct pylb_conn_record *out, uint32_t max);
/* A peer's records, for the workers that own them to install (or, if it
 * has one already from an earlier record, update); before the dataplane
 * runs, installed at once. Returns how many were queued or installed; a
 * record whose service or backend is not configured is skipped there. */
int pylb_dp_sync_apply(struct pylb_dp *dp, const struct pylb_conn_record *r, uint32_t n);
/* Notes lost to a full ring, summed over lcores. */
uint64_t pylb_dp_sync_lost(const struct pylb_dp *dp);
uint64_t pylb_dp_conn_count(const struct pylb_dp *dp);
/* The entries the tables hold at most, summed over the lcores. */
uint64_t pylb_dp_conn_capacity(const struct pylb_dp *dp);
/* Replace every ACL at once: n_lists lists, n prefixes, and per service
 * id (PYLB_MAX_SERVICES of them) the lists that apply to it (bit i: list
 * i). Built aside, then published; open connections are not looked at.
 * n_lists 0: no ACL. */
int pylb_dp_acls_set(struct pylb_dp *dp, const struct pylb_acl_conf *lists, uint32_t n_lists,
		     const struct pylb_acl_prefix *p, uint32_t n, const uint64_t *svc_lists);
/* Would a new connection from src to service id svc be refused? 0: no;
 * else 1 + the index of the list that refuses it. */
int pylb_dp_acl_check(struct pylb_dp *dp, const struct pylb_ip *src, uint16_t svc);

/* Half-open entries (the budget's count), all lcores. */
/* source NULL: all; else what its source prefix's slot counts (0 when
 * prefixes are not counted). */
uint64_t pylb_dp_half_open(const struct pylb_dp *dp, const struct pylb_ip *source);
/* Test clock: move the dataplane's notion of time forward (timeouts). */
void pylb_dp_clock_advance(struct pylb_dp *dp, uint64_t ms);

/* Pure functions. The lookup table: table[j] is the backend for slot j;
 * size must be a prime. The flow hash picks the slot and the ECMP path. */
int pylb_maglev_build(const struct pylb_backend *b, uint32_t n, uint32_t size,
		      uint16_t *table);
/* The dataplane's (keyed) flow hash of (src, dst). */
uint32_t pylb_flow_hash(const struct pylb_dp *dp, const struct pylb_ip *src,
			const struct pylb_ip *dst);

/* Introspection */
uint16_t pylb_dp_port_count(const struct pylb_dp *dp);
int pylb_dp_port_info(struct pylb_dp *dp, uint16_t port,
		      struct pylb_port_info *info);
int pylb_dp_neigh_list(struct pylb_dp *dp, struct pylb_neigh_info *out,
		       uint32_t max);
uint32_t pylb_dp_mbufs_available(const struct pylb_dp *dp);

/* A packet buffer pool (one per NUMA socket in use). */
struct pylb_mempool_info {
	char name[32];
	int32_t socket;
	uint32_t size;				/* mbufs */
	uint32_t available;			/* in the pool or a per-lcore cache */
};
/* Up to max pools into out; returns how many. */
int pylb_dp_mempools(const struct pylb_dp *dp, struct pylb_mempool_info *out, uint32_t max);

/* Counters: n_slots rows of PYLB_CNT_STRIDE uint64 each, one row per
 * worker plus a last row for the control side (inject, housekeeping). */
const uint64_t *pylb_dp_counters(const struct pylb_dp *dp, uint32_t *n_slots);
const char *pylb_counter_name(uint32_t idx);

/* Packet seam: run the real burst-processing function on frames received
 * on `port`, in the control slot, without touching any device. Output
 * frames wait in the control slot's TX buffers until collected. */
struct rte_mbuf *pylb_dp_mbuf_from_bytes(struct pylb_dp *dp, const void *data,
					 uint32_t len);
/* m's IPv4 header marked checked, good or bad, as a NIC with RX checksum
 * offload marks it (tests: what the dataplane takes the mark for). */
void pylb_mbuf_rx_ip_cksum(struct rte_mbuf *m, int good);
uint32_t pylb_mbuf_len(const struct rte_mbuf *m);
uint32_t pylb_mbuf_copy_out(const struct rte_mbuf *m, void *buf, uint32_t cap);
void pylb_mbuf_free(struct rte_mbuf *m);
/* `kernel` selects the port's exception path: frames the kernel sent
 * (inject) and frames sent up to the kernel (collect). */
int pylb_dp_inject(struct pylb_dp *dp, uint16_t port, int kernel,
		   struct rte_mbuf **pkts, uint16_t n);
uint16_t pylb_dp_collect(struct pylb_dp *dp, uint16_t port, int kernel,
			 struct rte_mbuf **out, uint16_t max);

#ifdef __cplusplus
}
#endif

#endif /* PYLB_DP_H */
