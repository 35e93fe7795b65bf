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
#define PYLB_MAX_ADDRS		16	/* IPv4 addresses per port */
#define PYLB_NAME_LEN		32
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
	X(NEIGH_LEARN_QUEUED, neigh_learn_queued) \
	X(NEIGH_LEARNED, neigh_learned) \
	X(NEIGH_LEARN_OVERFLOW, neigh_learn_overflow) \
	X(BUSY_CYCLES, busy_cycles) \
	X(BUSY_POLLS, busy_polls)

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
	X(IPV4_FRAGMENT, ipv4_fragment) \
	X(IPV4_NOT_LOCAL, ipv4_not_local) \
	X(IPV4_PROTO_UNSUPPORTED, ipv4_proto_unsupported) \
	X(ICMP_TRUNCATED, icmp_truncated) \
	X(ICMP_BAD_CHECKSUM, icmp_bad_checksum) \
	X(ICMP_TYPE_UNSUPPORTED, icmp_type_unsupported) \
	X(IPV6_UNSUPPORTED, ipv6_unsupported) \
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

struct pylb_dp_conf {
	uint32_t n_workers;			/* 0: no worker, inject only */
	uint32_t worker_lcores[PYLB_MAX_WORKERS];
	uint32_t mbufs_per_socket;
	uint32_t mbuf_cache;
	uint32_t neigh_capacity;
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
};

struct pylb_port_info {
	char name[PYLB_NAME_LEN];
	char device[PYLB_DEVARGS_LEN];
	int32_t ethdev;				/* -1 when detached */
	uint8_t mac[6];
	uint8_t link_up;
	uint32_t link_speed_mbps;
	uint32_t n_addrs;
	uint32_t addrs[PYLB_MAX_ADDRS];		/* network byte order */
	uint8_t prefix_lens[PYLB_MAX_ADDRS];
};

struct pylb_neigh_info {
	uint32_t ip;				/* network byte order */
	uint16_t port;
	uint8_t mac[6];
	uint64_t age_ms;
};

/* Errors */
const char *pylb_strerror(int rc);
const char *pylb_last_error(void);

/* EAL: once per process. Blocks; call without holding other locks. */
int pylb_eal_init(int argc, char **argv);
int pylb_eal_cleanup(void);

/* Lifecycle */
int pylb_dp_create(const struct pylb_dp_conf *conf, struct pylb_dp **out);
int pylb_dp_port_add(struct pylb_dp *dp, const struct pylb_port_conf *conf,
		     uint16_t *port_out);
int pylb_dp_addr_add(struct pylb_dp *dp, uint16_t port, uint32_t ip,
		     uint8_t prefix_len);
int pylb_dp_start(struct pylb_dp *dp);
int pylb_dp_stop(struct pylb_dp *dp);
void pylb_dp_destroy(struct pylb_dp *dp);

/* Control-side housekeeping (neighbour learning); one thread only. */
int pylb_dp_housekeep(struct pylb_dp *dp);

/* Introspection */
uint16_t pylb_dp_port_count(const struct pylb_dp *dp);
int pylb_dp_port_info(struct pylb_dp *dp, uint16_t port,
		      struct pylb_port_info *info);
int pylb_dp_neigh_list(struct pylb_dp *dp, struct pylb_neigh_info *out,
		       uint32_t max);
uint32_t pylb_dp_mbufs_available(const struct pylb_dp *dp);

/* Counters: n_slots rows of PYLB_CNT_STRIDE uint64 each, one row per
 * worker plus a last row for the control side (inject, housekeeping). */
const uint64_t *pylb_dp_counters(const struct pylb_dp *dp, uint32_t *n_slots);
const char *pylb_counter_name(uint32_t idx);

/* Packet seam: run the real burst-processing function on frames received
 * on `port`, in the control slot, without touching any device. Output
 * frames wait in the control slot's TX buffers until collected. */
struct rte_mbuf *pylb_dp_mbuf_from_bytes(struct pylb_dp *dp, const void *data,
					 uint32_t len);
uint32_t pylb_mbuf_len(const struct rte_mbuf *m);
uint32_t pylb_mbuf_copy_out(const struct rte_mbuf *m, void *buf, uint32_t cap);
void pylb_mbuf_free(struct rte_mbuf *m);
int pylb_dp_inject(struct pylb_dp *dp, uint16_t port, struct rte_mbuf **pkts,
		   uint16_t n);
uint16_t pylb_dp_collect(struct pylb_dp *dp, uint16_t port,
			 struct rte_mbuf **out, uint16_t max);

#ifdef __cplusplus
}
#endif

#endif /* PYLB_DP_H */
