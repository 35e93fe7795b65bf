/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * Hot-path helpers shared by the packet-processing files.
 */
#ifndef PYLB_PKT_H
#define PYLB_PKT_H

#include <string.h>

#include <rte_byteorder.h>
#include <rte_fib.h>
#include <rte_fib6.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_vect.h>

#include "pylb_priv.h"

#define ICMP_DEST_UNREACH	3
#define ICMP_TIME_EXCEEDED	11
#define ICMP_FRAG_NEEDED	4	/* code of destination unreachable */
#define ICMP6_PACKET_TOO_BIG	2
#define ICMP6_DEST_UNREACH	1
#define ICMP6_TIME_EXCEEDED	3

#define CNT(lc, e) ((lc)->stats->c[PYLB_C_##e]++)

static inline void
drop(struct pylb_lcore *lc, struct rte_mbuf *m, enum pylb_counter reason)
{
	lc->stats->c[reason]++;
	rte_pktmbuf_free(m);
}

/* Queue for TX on buffer `q` (a port, or PYLB_TXQ_KERNEL(port)). */
static inline void
tx(struct pylb_lcore *lc, uint16_t q, struct rte_mbuf *m)
{
	struct pylb_txbuf *b = &lc->tx[q];

	if (unlikely(b->n == PYLB_TX_BUF)) {
		drop(lc, m, PYLB_D_TX_FULL);
		return;
	}
	b->pkts[b->n++] = m;
}

/* RFC 1624 incremental update of a ones' complement checksum for one 16-bit
 * word changing from `old` to `new` (all in network byte order). */
static inline uint16_t
cksum_adjust16(uint16_t cksum, uint16_t old, uint16_t new)
{
	uint32_t s = (uint16_t)~cksum + (uint16_t)~old + new;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

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

static inline uint64_t
mac_to_u64(const struct rte_ether_addr *mac)
{
	uint64_t v = 0;

	memcpy(&v, mac->addr_bytes, RTE_ETHER_ADDR_LEN);
	return v;
}

static inline void
u64_to_mac(uint64_t v, struct rte_ether_addr *mac)
{
	memcpy(mac->addr_bytes, &v, RTE_ETHER_ADDR_LEN);
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

static inline bool
port_owns4(const struct pylb_port_cfg *pc, uint32_t ip)
{
	for (uint16_t i = 0; i < pc->n_addrs4; i++)
		if (pc->addrs4[i].ip == ip)
			return true;
	return false;
}

static inline bool
port_connected4(const struct pylb_port_cfg *pc, uint32_t ip)
{
	for (uint16_t i = 0; i < pc->n_addrs4; i++)
		if ((ip & pc->addrs4[i].mask) ==
		    (pc->addrs4[i].ip & pc->addrs4[i].mask))
			return true;
	return false;
}

static inline bool
prefix6_match(const uint8_t *a, const uint8_t *b, uint8_t len)
{
	uint8_t full = len / 8, rem = len % 8;

	if (memcmp(a, b, full) != 0)
		return false;
	return rem == 0 ||
		((a[full] ^ b[full]) & (uint8_t)(0xff << (8 - rem))) == 0;
}

static inline bool
port_owns6(const struct pylb_port_cfg *pc, const uint8_t *ip)
{
	for (uint16_t i = 0; i < pc->n_addrs6; i++)
		if (memcmp(pc->addrs6[i].ip, ip, 16) == 0)
			return true;
	return false;
}

/* Is ip on one of the port's IPv6 networks? */
static inline bool
port_connected6(const struct pylb_port_cfg *pc, const uint8_t *ip)
{
	for (uint16_t i = 0; i < pc->n_addrs6; i++)
		if (prefix6_match(pc->addrs6[i].ip, ip, pc->addrs6[i].prefix_len))
			return true;
	return false;
}

/* The port's address to speak from towards `ip`: one on the same network,
 * else the first. NULL when the port has no address of that family. */
static inline const uint8_t *
port_src6(const struct pylb_port_cfg *pc, const uint8_t *ip)
{
	for (uint16_t i = 0; i < pc->n_addrs6; i++)
		if (prefix6_match(pc->addrs6[i].ip, ip, pc->addrs6[i].prefix_len))
			return pc->addrs6[i].ip;
	return pc->n_addrs6 ? pc->addrs6[0].ip : NULL;
}

static inline bool
port_src4(const struct pylb_port_cfg *pc, uint32_t ip, uint32_t *src)
{
	for (uint16_t i = 0; i < pc->n_addrs4; i++)
		if ((ip & pc->addrs4[i].mask) ==
		    (pc->addrs4[i].ip & pc->addrs4[i].mask)) {
			*src = pc->addrs4[i].ip;
			return true;
		}
	if (pc->n_addrs4 == 0)
		return false;
	*src = pc->addrs4[0].ip;
	return true;
}

static inline bool
ip6_is_link_local(const uint8_t *ip)
{
	return ip[0] == 0xfe && (ip[1] & 0xc0) == 0x80;
}

/* Hand a packet for one of the appliance's addresses to the kernel through
 * the exception path of the port it arrived on. */
static inline void
to_kernel(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
	  struct rte_mbuf *m)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);

	if (!cfg->ports[port].kernel)
		return drop(lc, m, PYLB_D_LOCAL_UNHANDLED);
	/* The kernel interface has the port's MAC: address the frame to it. */
	rte_ether_addr_copy(&cfg->ports[port].mac, &eth->dst_addr);
	CNT(lc, TO_KERNEL);
	tx(lc, PYLB_TXQ_KERNEL(port), m);
}

/* fwd.c */
void pylb_fwd6(struct pylb_lcore *lc, const struct pylb_cfg *cfg,
	       int in_port, struct rte_mbuf *m, uint32_t group);
/* `mtu`: the next-hop MTU of "fragmentation needed" / "packet too big". */
void pylb_icmp4_error(struct pylb_lcore *lc, const struct pylb_cfg *cfg,
		      uint16_t port, struct rte_mbuf *orig, uint8_t type,
		      uint8_t code, uint16_t mtu);
void pylb_icmp6_error(struct pylb_lcore *lc, const struct pylb_cfg *cfg,
		      uint16_t port, struct rte_mbuf *orig, uint8_t type,
		      uint8_t code, uint16_t mtu);

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
void pylb_vip_input(struct pylb_lcore *lc, const struct pylb_cfg *cfg,
		    int in_port, struct rte_mbuf *m, uint32_t vip_id, uint8_t af);

/* ipv6.c */
void pylb_ipv6_input(struct pylb_lcore *lc, const struct pylb_cfg *cfg,
		     uint16_t port, struct rte_mbuf *m, bool l2_multicast);

/* l4.c, conn.c */
/* cth: the connection-table hash of the packet's side, if the caller has
 * it (prefetching a burst); 0: computed here. */
void pylb_l4_input(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		   struct rte_mbuf *m, uint8_t af, uint32_t cth);
bool pylb_nat_reverse(struct pylb_lcore *lc, int in_port, struct rte_mbuf *m, uint8_t af,
		      uint32_t cth);
bool pylb_fullnat_reply(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
			struct rte_mbuf *m, uint8_t af, uint32_t cth);
/* The connection-table hash of one side of a tuple (address, port). */
static inline uint32_t
pylb_ct_hash(const uint8_t *ip, uint16_t port, uint8_t proto, uint8_t af)
{
	uint32_t h = PYLB_HASH_SEED ^ proto;

	h = af == 4 ? rte_hash_crc_4byte(*(const unaligned_uint32_t *)ip, h) :
		rte_hash_crc(ip, 16, h);
	return rte_hash_crc_4byte(port, h);
}

static inline uint8_t *
conn_addr(const struct pylb_conntrack *ct, const struct pylb_conn *c, int which)
{
	if (c->af == 4)
		return (uint8_t *)(uintptr_t)&c->a4[which];
	return ct->ext6[c->ext6].a[which];
}

static inline void
pylb_conn_set_addr(struct pylb_conntrack *ct, struct pylb_conn *c, int which,
		   const uint8_t *ip)
{
	memcpy(conn_addr(ct, c, which), ip, c->af == 4 ? 4 : 16);
}

/* CRC is linear: a finaliser (murmur3's) makes the bucket choices and the
 * signature of structured tuples (a client's consecutive ports)
 * independent. */
static inline uint32_t
ct_mix(uint32_t h)
{
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	return h ^ (h >> 16);
}

/* The two buckets and the signature of a side's hash h. */
struct ct_pos {
	struct pylb_ct_bucket *b[2];
	uint32_t sig;
};

static inline void
ct_pos(const struct pylb_conntrack *ct, uint32_t h, struct ct_pos *p)
{
	uint32_t h1 = ct_mix(h), h2 = ct_mix(h ^ PYLB_HASH_SEED);

	p->b[0] = &ct->buckets[((uint64_t)h1 * ct->nb) >> 32];
	p->b[1] = &ct->buckets[((uint64_t)h2 * ct->nb) >> 32];
	p->sig = (h2 & 0xff) << PYLB_CT_IDX_BITS;
}

/* Which slots of bucket b hold an entry with signature sig (bit i: slot i). */
static inline uint32_t
ct_match(const struct pylb_ct_bucket *b, uint32_t sig)
{
	uint32_t mask = 0;
#ifdef RTE_ARCH_X86
	const __m128i hi = _mm_set1_epi32((int)~PYLB_CT_MAX);
	const __m128i want = _mm_set1_epi32((int)sig);
	const __m128i zero = _mm_setzero_si128();

	/* Four lanes at a time over the line; the 16th lane is `spill`. */
	for (int i = 0; i < 4; i++) {
		__m128i v = _mm_load_si128((const __m128i *)(const void *)&b->slot[4 * i]);
		__m128i hit = _mm_andnot_si128(_mm_cmpeq_epi32(v, zero),
					       _mm_cmpeq_epi32(_mm_and_si128(v, hi), want));

		mask |= (uint32_t)_mm_movemask_ps(_mm_castsi128_ps(hit)) << (4 * i);
	}
	mask &= (1u << PYLB_CT_SLOTS) - 1;
#else
	for (int i = 0; i < PYLB_CT_SLOTS; i++)
		mask |= (uint32_t)((b->slot[i] & ~PYLB_CT_MAX) == sig && b->slot[i] != 0) << i;
#endif
	return mask;
}

/* Prefetch, for a burst, what a lookup of a side's hash h reads: first its
 * bucket, then (once the bucket is in) the entries it points to. */
static inline void
pylb_ct_prefetch_bucket(const struct pylb_conntrack *ct, uint32_t h)
{
	rte_prefetch0(&ct->buckets[((uint64_t)ct_mix(h) * ct->nb) >> 32]);
}

static inline void
pylb_ct_prefetch_entry(const struct pylb_conntrack *ct, uint32_t h)
{
	struct ct_pos p;
	uint32_t mask;

	ct_pos(ct, h, &p);
	mask = ct_match(p.b[0], p.sig);
	if (mask != 0)
		rte_prefetch0(&ct->conns[p.b[0]->slot[__builtin_ctz(mask)] & PYLB_CT_MAX]);
}

struct pylb_conn *pylb_conn_lookup(struct pylb_lcore *lc, const struct pylb_tuple *t,
				   bool reply, uint32_t h);
struct pylb_conn *pylb_conn_new(struct pylb_lcore *lc, const struct pylb_tuple *t);
int pylb_conn_add_local(struct pylb_lcore *lc, struct pylb_conn *c);
void pylb_conn_drop(struct pylb_lcore *lc, struct pylb_conn *c);
void pylb_conn_released(struct pylb_lcore *lc, const struct pylb_conn *c);
void pylb_conn_moved(struct pylb_lcore *lc, const struct pylb_conn *c, uint8_t was);
struct pylb_persist *pylb_persist_find(struct pylb_lcore *lc,
				       const struct pylb_persist_key *k, uint64_t now);
struct pylb_persist *pylb_persist_new(struct pylb_lcore *lc, const struct pylb_persist_key *k);
void pylb_conn_update(struct pylb_lcore *lc, struct pylb_conn *c, uint8_t tcp_flags,
		      bool reply, uint64_t now);

/* neigh.c: worker side */
void pylb_neigh_queue(struct pylb_lcore *lc, const struct pylb_neigh_key *k,
		      const struct rte_ether_addr *mac);

/* Forward along next-hop group `group` (in_port < 0: from the kernel). */
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

#endif /* PYLB_PKT_H */
