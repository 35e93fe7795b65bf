/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * The FIB and next hops: lookups and what their values mean, the flow hash
 * and ECMP, neighbour and next-hop output, forwarding, the outputs of
 * encapsulation and direct routing.
 */
#ifndef PYLB_FIB_H
#define PYLB_FIB_H

#include <rte_fib.h>
#include <rte_fib6.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_ring.h>

#include "pkt.h"

static inline uint32_t
fib4_lookup(struct pylb_dp *dp, uint32_t be_ip)
{
	uint32_t ip = rte_be_to_cpu_32(be_ip);
	uint64_t v;

	rte_fib_lookup_bulk(dp->fib4, &ip, &v, 1);
	return (uint32_t)v;
}

static inline uint32_t
fib6_lookup(struct pylb_dp *dp, const uint8_t *ip)
{
	uint8_t a[1][RTE_FIB6_IPV6_ADDR_SIZE];
	uint64_t v;

	memcpy(a[0], ip, 16);
	rte_fib6_lookup_bulk(dp->fib6, a, &v, 1);
	return (uint32_t)v;
}

static inline uint32_t
fib_kind(uint32_t v)
{
	return v >> PYLB_FIB_KIND_SHIFT;
}

/* Is the FIB value v a VIP: an L4 service's or in an L3 VIP prefix? */
static inline bool
fib_is_vip(uint32_t v)
{
	return v != 0 && (fib_kind(v) == PYLB_FIB_SERVICE || fib_kind(v) == PYLB_FIB_VIP);
}

static inline bool
vip_addr4(struct pylb_dp *dp, uint32_t ip)
{
	return fib_is_vip(fib4_lookup(dp, ip));
}

static inline bool
vip_addr6(struct pylb_dp *dp, const uint8_t *ip)
{
	return fib_is_vip(fib6_lookup(dp, ip));
}

static inline uint32_t
fib_id(uint32_t v)
{
	return v & PYLB_FIB_ID_MASK;
}

/* The flow hash: CRC32-C with a fixed seed, the same on every appliance and
 * across restarts. Addresses are hashed as they are on the wire. */
static inline uint32_t
flow_hash4(uint32_t src, uint32_t dst)
{
	return rte_hash_crc_8byte((uint64_t)src << 32 | dst, PYLB_HASH_SEED);
}

static inline uint32_t
flow_hash6(const uint8_t *src, const uint8_t *dst)
{
	return rte_hash_crc(dst, 16, rte_hash_crc(src, 16, PYLB_HASH_SEED));
}

/* ECMP: which of `group`'s next hops a flow hash takes (its index). */
static inline uint32_t
nhg_slot(const struct pylb_dp *dp, uint32_t group, uint32_t hash)
{
	const struct pylb_nhg *g = &dp->nhg[group];

	return g->n == 1 ? 0 : hash % g->n;
}

/* ECMP: the next hop of `group` for a flow hash. */
static inline const struct pylb_nh *
nhg_pick(const struct pylb_dp *dp, uint32_t group, uint32_t hash)
{
	return &dp->nh[dp->nhg[group].nh[nhg_slot(dp, group, hash)]];
}

/* Whether `group` has a choice to make (a hash is needed only then). */
static inline bool
nhg_multi(const struct pylb_dp *dp, uint32_t group)
{
	return dp->nhg[group].n > 1;
}

static inline void
neigh_key4(struct pylb_neigh_key *k, uint32_t ip, uint16_t port)
{
	memset(k, 0, sizeof(*k));
	memcpy(k->ip, &ip, 4);
	k->port = port;
	k->af = 4;
}

static inline void
neigh_key6(struct pylb_neigh_key *k, const uint8_t *ip, uint16_t port)
{
	memcpy(k->ip, ip, 16);
	k->port = port;
	k->af = 6;
	k->pad = 0;
}

/* Send `m` (starting with its Ethernet header) to the neighbour `key` on
 * key->port: from the lcore's neighbour cache, else the neighbour table
 * (and the cache). Unresolved packets go to the control side, which holds
 * them and asks. The control side changes the table before it bumps
 * dp->gen, and gen is read before the table: an entry never outlives the
 * MAC it holds. */
static inline void
neigh_output(struct pylb_lcore *lc, const struct pylb_cfg *cfg,
	     const struct pylb_neigh_key *key, struct rte_mbuf *m)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	uint32_t gen = __atomic_load_n(&lc->dp->gen, __ATOMIC_ACQUIRE);
	uint32_t h;
	struct pylb_ncache *e;
	struct pylb_neigh_miss miss;
	void *data;

	memcpy(&h, key->ip + (key->af == 4 ? 0 : 12), 4);
	e = &lc->ncache[((h ^ key->port) * 0x9e3779b1u) >> 24 & (PYLB_NCACHE - 1)];
	rte_ether_addr_copy(&cfg->ports[key->port].mac, &eth->src_addr);
	if (e->gen == gen && memcmp(&e->key, key, sizeof(*key)) == 0) {
		u64_to_mac(e->mac, &eth->dst_addr);
		CNT(lc, FORWARDED);
		tx(lc, key->port, m);
		return;
	}
	if (rte_hash_lookup_data(lc->dp->neigh_hash, key, &data) >= 0 &&
	    ((uint64_t)(uintptr_t)data & PYLB_MAC_VALID)) {
		e->key = *key;
		e->mac = (uint64_t)(uintptr_t)data;
		e->gen = gen;
		u64_to_mac(e->mac, &eth->dst_addr);
		CNT(lc, FORWARDED);
		tx(lc, key->port, m);
		return;
	}
	miss.m = m;
	miss.key = *key;
	if (rte_ring_enqueue_elem(lc->dp->neigh_miss, &miss, sizeof(miss)) != 0)
		drop(lc, m, PYLB_D_NEIGH_QUEUE_FULL);
}

/* fwd.c: the next hop is the destination itself, or its MAC is unknown. */
void pylb_nh_output_slow(struct pylb_lcore *lc, const struct pylb_cfg *cfg,
			 const struct pylb_nh *nh, const void *dst, uint8_t dst_af,
			 struct rte_mbuf *m);

/* Forward to the next hop `nh` towards destination `dst` (4 or 16 bytes,
 * used when the next hop is the destination itself). A gateway's resolved
 * MAC is cached in the next hop: one load, no table lookup. */
static inline void
nh_output(struct pylb_lcore *lc, const struct pylb_cfg *cfg,
	  const struct pylb_nh *nh, const void *dst, uint8_t dst_af,
	  struct rte_mbuf *m)
{
	uint64_t mac = __atomic_load_n(&nh->mac, __ATOMIC_RELAXED);

	if (likely(!nh->connected && (mac & PYLB_MAC_VALID))) {
		struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);

		u64_to_mac(mac, &eth->dst_addr);
		rte_ether_addr_copy(&cfg->ports[nh->port].mac, &eth->src_addr);
		CNT(lc, FORWARDED);
		tx(lc, nh->port, m);
		return;
	}
	pylb_nh_output_slow(lc, cfg, nh, dst, dst_af, m);
}

/* neigh.c: worker side */
void pylb_neigh_queue(struct pylb_lcore *lc, const struct pylb_neigh_key *k,
		      const struct rte_ether_addr *mac);

/* vip.c */
uint32_t pylb_encap_len(bool gre, uint8_t outer_af);
int pylb_encap(const struct pylb_cfg *cfg, bool gre, const struct pylb_ip *source,
	       const struct pylb_ip *dst, const struct pylb_nh *nh, struct rte_mbuf *m,
	       uint8_t inner_af, uint32_t olen);
void pylb_too_big(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		  struct rte_mbuf *m, uint8_t af, uint16_t mtu);
void pylb_out_encap(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		    struct rte_mbuf *m, const struct pylb_nh *nh, bool gre,
		    const struct pylb_ip *src, const struct pylb_ip *to, uint8_t af);
void pylb_out_dr(struct pylb_lcore *lc, const struct pylb_cfg *cfg, struct rte_mbuf *m,
		 const struct pylb_nh *nh, const struct pylb_ip *to);
/* Forward along next-hop group `group` (in_port < 0: from the kernel): the
 * same shape for both families. */
static inline void
pylb_fwd4(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	  struct rte_mbuf *m, uint32_t group)
{
	struct rte_ipv4_hdr *ip = rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *,
		sizeof(struct rte_ether_hdr));
	const struct pylb_nh *nh;

	/* Packets from the kernel are locally originated: no hop taken yet. */
	if (in_port >= 0) {
		if (ip->time_to_live <= 1) {
			pylb_icmp4_error(lc, cfg, (uint16_t)in_port, m,
					 ICMP_TIME_EXCEEDED, 0, 0);
			return drop(lc, m, PYLB_D_TTL_EXCEEDED);
		}
		/* TTL is the high byte of its 16-bit word: the sum rises by
		 * 0x0100 (RFC 1141), computed in registers. */
		ip->time_to_live--;
		ip->hdr_checksum = cksum_adjust16(ip->hdr_checksum,
						  RTE_BE16(0x0100), 0);
	}
	nh = nhg_pick(lc->dp, group, nhg_multi(lc->dp, group) ?
		      flow_hash4(ip->src_addr, ip->dst_addr) : 0);
	nh_output(lc, cfg, nh, &ip->dst_addr, 4, m);
}

static inline void
pylb_fwd6(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	  struct rte_mbuf *m, uint32_t group)
{
	struct rte_ipv6_hdr *ip = rte_pktmbuf_mtod_offset(m, struct rte_ipv6_hdr *,
		sizeof(struct rte_ether_hdr));
	const struct pylb_nh *nh;

	if (in_port >= 0) {
		if (ip->hop_limits <= 1) {
			pylb_icmp6_error(lc, cfg, (uint16_t)in_port, m,
					 ICMP6_TIME_EXCEEDED, 0, 0);
			return drop(lc, m, PYLB_D_TTL_EXCEEDED);
		}
		ip->hop_limits--;	/* no header checksum in IPv6 */
	}
	nh = nhg_pick(lc->dp, group, nhg_multi(lc->dp, group) ?
		      flow_hash6(ip->src_addr, ip->dst_addr) : 0);
	nh_output(lc, cfg, nh, ip->dst_addr, 6, m);
}


#endif /* PYLB_FIB_H */
