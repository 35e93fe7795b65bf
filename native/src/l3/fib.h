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

#include "core/hash.h"
#include "core/pkt.h"
#include "l3/state.h"

/* Does backend b take new connections? */
static inline bool
pylb_backend_live(const struct pylb_backend *b)
{
	return b->weight != 0 && b->state == PYLB_BACKEND_UP;
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

/* Is the FIB value v one of our own addresses? */
static inline bool
fib_is_local(uint32_t v)
{
	return v != 0 && fib_kind(v) == PYLB_FIB_LOCAL;
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

/* The next-hop group a FIB value routes by; 0: it is no route. */
static inline uint32_t
fib_group(uint32_t v)
{
	return fib_kind(v) == PYLB_FIB_GROUP ? fib_id(v) : 0;
}

/* The next-hop group the FIB routes address ip (of family af) by; 0: none. */
static inline uint32_t
route_group(struct pylb_dp *dp, const uint8_t *ip, uint8_t af)
{
	return fib_group(af == 4 ? fib4_lookup(dp, *(const unaligned_uint32_t *)ip) :
			 fib6_lookup(dp, ip));
}

/* The slot of bal's lookup table for hash h: h modulo the table's size,
 * by two multiplies instead of a divide (Lemire, Kaser and Kurz, "Faster
 * remainder by direct computation", 2019: exact for every 32-bit h and
 * size). */
static inline uint32_t
bal_slot(const struct pylb_balance *bal, uint32_t h)
{
	return (uint32_t)(((unsigned __int128)(bal->slot_m * h) * bal->table_size) >> 64);
}

/* The backend index bal's lookup table holds for hash h. */
static inline uint32_t
bal_pick(const struct pylb_balance *bal, uint32_t h)
{
	return bal->table[bal_slot(bal, h)];
}

/* The slot of the inspection pool named `name`; -1: none. */
static inline int
pylb_pool_find(const struct pylb_dp *dp, const char *name)
{
	for (int i = 0; i < PYLB_MAX_POOLS; i++)
		if (dp->inspect_pools[i] != NULL &&
		    strncmp(dp->inspect_pools[i]->conf.name, name, PYLB_NAME_LEN) == 0)
			return i;
	return -1;
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

/* The frame leaves by `port` to `mac`. */
static inline void
output_to(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port, uint64_t mac,
	  struct rte_mbuf *m)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);

	u64_to_mac(mac, &eth->dst_addr);
	rte_ether_addr_copy(&cfg->ports[port].mac, &eth->src_addr);
	CNT(lc, FORWARDED);
	tx(lc, port, m);
}

/* The lcore's neighbour cache slot for (ip, port), and whether it holds
 * that neighbour at generation gen. */
static inline struct pylb_ncache *
ncache_slot(struct pylb_lcore *lc, const uint8_t *ip, uint8_t af, uint16_t port)
{
	uint32_t h;

	memcpy(&h, ip + (af == 4 ? 0 : 12), 4);
	return &lc->ncache[((h ^ port) * 0x9e3779b1u) >> 24 & (PYLB_NCACHE - 1)];
}

static inline bool
ncache_holds(const struct pylb_ncache *e, const uint8_t *ip, uint8_t af, uint16_t port,
	     uint32_t gen)
{
	if (e->gen != gen || e->key.port != port || e->key.af != af)
		return false;
	return af == 4 ? *(const unaligned_uint32_t *)e->key.ip == *(const unaligned_uint32_t *)ip :
		memcmp(e->key.ip, ip, 16) == 0;
}

/* fwd.c: not in the cache: from the neighbour table (and into the cache),
 * else to the control side, which holds the packet and asks. */
void pylb_neigh_output_slow(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
			    const uint8_t *ip, uint8_t af, struct rte_mbuf *m,
			    struct pylb_ncache *e, uint32_t gen);

/* Send `m` (starting with its Ethernet header) to the neighbour ip (4 or
 * 16 bytes) on `port`: from the lcore's cache while it holds the neighbour
 * at the current generation. The control side changes the table before it
 * bumps dp->gen, and gen is read before the table: an entry never outlives
 * the MAC it holds. */
static inline void
neigh_output(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
	     const uint8_t *ip, uint8_t af, struct rte_mbuf *m)
{
	uint32_t gen = __atomic_load_n(&lc->dp->gen, __ATOMIC_ACQUIRE);
	struct pylb_ncache *e = ncache_slot(lc, ip, af, port);

	if (likely(ncache_holds(e, ip, af, port, gen)))
		return output_to(lc, cfg, port, e->mac, m);
	pylb_neigh_output_slow(lc, cfg, port, ip, af, m, e, gen);
}

/* Forward to the next hop `nh` towards destination `dst` (4 or 16 bytes,
 * used when the next hop is the destination itself). A gateway's resolved
 * MAC is cached in the next hop: one load, no table lookup. */
static inline void
nh_output(struct pylb_lcore *lc, const struct pylb_cfg *cfg,
	  const struct pylb_nh *nh, const void *dst, uint8_t dst_af,
	  struct rte_mbuf *m)
{
	uint64_t mac = __atomic_load_n(&nh->mac, __ATOMIC_RELAXED);

	if (nh->connected)
		return neigh_output(lc, cfg, nh->port, dst, dst_af, m);
	if (likely(mac & PYLB_MAC_VALID))
		return output_to(lc, cfg, nh->port, mac, m);
	neigh_output(lc, cfg, nh->port, nh->gw, nh->af, m);
}

/* The frame out by `hop` towards dst (nh_output's): to its MAC when the
 * hop knows it. */
static inline void
hop_output(struct pylb_lcore *lc, const struct pylb_cfg *cfg, const struct pylb_hop *hop,
	   const void *dst, uint8_t dst_af, struct rte_mbuf *m)
{
	if (likely(hop->mac & PYLB_MAC_VALID))
		return output_to(lc, cfg, hop->nh->port, hop->mac, m);
	nh_output(lc, cfg, hop->nh, dst, dst_af, m);
}

/* fwd.c: o, lcore lc's memory of the output to `to`, made at gen (also
 * what a NAT connection caches: l4.c's pylb_conn_resolve). */
void pylb_out_memo_make(struct pylb_lcore *lc, struct pylb_out_memo *o, const struct pylb_ip *to,
			uint32_t gen);

/* Backend bi of bal's output as lcore lc remembers it, made again when
 * dp->gen moved (or while it has no route): what a NAT connection keeps
 * in its entry, kept for the backends of L3 VIPs, tunnels and inspection
 * pools. The control side changes the FIB, the neighbours and the next
 * hops before it bumps dp->gen, and gen is read before them. */
static inline struct pylb_out_memo *
pylb_backend_out(struct pylb_lcore *lc, const struct pylb_balance *bal, uint32_t bi)
{
	uint32_t gen = __atomic_load_n(&lc->dp->gen, __ATOMIC_ACQUIRE);
	struct pylb_out_memo *o = &bal->outs[lc->slot * bal->n_backends + bi];

	if (unlikely(o->gen != gen || o->group == 0))
		pylb_out_memo_make(lc, o, &bal->backends[bi].addr, gen);
	return o;
}

/* The hop of group g (o: the memory of the output it leads to; NULL:
 * none) for a flow of hash h: o's when the group has one next hop, else
 * ECMP's pick, in *tmp. */
static inline const struct pylb_hop *
hop_pick(const struct pylb_dp *dp, const struct pylb_out_memo *o, uint32_t g, uint32_t h,
	 struct pylb_hop *tmp)
{
	if (o != NULL && o->hop.nh != NULL)
		return &o->hop;
	tmp->nh = nhg_pick(dp, g, h);
	tmp->mac = 0;
	return tmp;
}

/* neigh.c: worker side */
void pylb_neigh_queue(struct pylb_lcore *lc, const struct pylb_neigh_key *k,
		      const struct rte_ether_addr *mac);

/* GENEVE (RFC 8926): the option pylb sends and wants back, in a class for
 * experimental use (no vendor's): 12 bytes of data. */
#define PYLB_GENEVE_CLASS	0xfff0
#define PYLB_GENEVE_TYPE	0x01
struct pylb_geneve_opt {
	rte_be16_t cls;
	uint8_t type;
	uint8_t len;		/* 3 bits reserved, 5 bits: data length in words */
	rte_be16_t pool;	/* the pool's slot */
	rte_be16_t zero;
	uint8_t cookie[8];	/* inspect.c's MAC of the flow */
} __rte_packed;
#define PYLB_GENEVE_LEN	(8 + sizeof(struct pylb_geneve_opt))

/* A VIP's output, by enum pylb_vip_method. */
extern pylb_vip_out_fn *const pylb_vip_outs[PYLB_FWD_GUE + 1];
/* fwd.c: ICMP errors, sent back out of the port `port`. `mtu`: the next-hop MTU of "fragmentation needed" / "packet too big". */
void pylb_icmp4_error(struct pylb_lcore *lc, const struct pylb_cfg *cfg,
		      uint16_t port, struct rte_mbuf *orig, uint8_t type,
		      uint8_t code, uint16_t mtu);
void pylb_icmp6_error(struct pylb_lcore *lc, const struct pylb_cfg *cfg,
		      uint16_t port, struct rte_mbuf *orig, uint8_t type,
		      uint8_t code, uint16_t mtu);

/* fwd.c */
void pylb_too_big(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		  struct rte_mbuf *m, uint8_t af, uint16_t mtu, enum pylb_counter reason);
void pylb_nh_output_fit(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
			struct rte_mbuf *m, const struct pylb_nh *nh, const void *dst,
			uint8_t dst_af);
/* encap.c: a VIP's packets (struct pylb_send: each to `to` by hop),
 * encapsulated in IPIP, GRE or GUE (UDP to port 6080), from `src` (its
 * varying bits from the flow; af 0, or not to's family: the egress port's
 * address), UDP's source port from the flow; the egress MTU checked; and
 * inspection's, in GENEVE (UDP to 6081, with pylb's option: an inspection
 * pool's slot and the flow's cookie; from the port's address). One
 * function per kind, bound where it is configured; the L4 tunnels inline
 * encap.h's output instead. */
pylb_vip_out_fn pylb_out_ipip_burst, pylb_out_gre_burst, pylb_out_gue_burst;
/* A packet to an inspection appliance (inspect.c): its GENEVE option's
 * pool slot and flow cookie. */
struct pylb_geneve_send {
	struct pylb_send s;
	uint64_t cookie;
	uint16_t pool;
};
void pylb_out_geneve_burst(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
			   const struct pylb_geneve_send *g, uint32_t n);
/* vip.c: direct routing. */
void pylb_out_dr(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port, struct rte_mbuf *m,
		 const struct pylb_hop *hop, const struct pylb_ip *to);
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
		      flow_hash4(lc->dp->conf.hash_key, ip->src_addr, ip->dst_addr) : 0);
	if (unlikely(rte_be_to_cpu_16(ip->total_length) > cfg->ports[nh->port].mtu))
		return pylb_nh_output_fit(lc, cfg, in_port, m, nh, &ip->dst_addr, 4);
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
		      flow_hash6(lc->dp->conf.hash_key, ip->src_addr, ip->dst_addr) : 0);
	if (unlikely(sizeof(*ip) + rte_be_to_cpu_16(ip->payload_len) > cfg->ports[nh->port].mtu))
		return pylb_nh_output_fit(lc, cfg, in_port, m, nh, ip->dst_addr, 6);
	nh_output(lc, cfg, nh, ip->dst_addr, 6, m);
}


/* Does an ACL refuse a new connection from src (af, network order) to
 * service id svc? The list that does in *list. */
static inline bool
pylb_acl_refuses(const struct pylb_acls *a, const uint8_t *src, uint8_t af, uint16_t svc,
		 uint32_t *list)
{
	uint64_t lists = a->svc[svc], v = 0, m, hit;

	if (lists == 0)
		return false;
	if (af == 4) {
		if (a->fib4 != NULL) {
			uint32_t ip = rte_be_to_cpu_32(*(const unaligned_uint32_t *)src);

			rte_fib_lookup_bulk(a->fib4, &ip, &v, 1);
		}
	} else if (a->fib6 != NULL) {
		rte_fib6_lookup_bulk(a->fib6, (uint8_t (*)[16])(uintptr_t)src, &v, 1);
	}
	m = a->masks[v];
	hit = lists & ((m & a->deny) | (~m & a->allow));
	if (hit == 0)
		return false;
	*list = (uint32_t)__builtin_ctzll(hit);
	return true;
}

/* route.c */
int pylb_route_init(struct pylb_dp *dp);
void pylb_fib_vectorize(struct rte_fib *fib4, struct rte_fib6 *fib6);
void pylb_route_free(struct pylb_dp *dp);
/* Called by neigh.c when (ip, port) resolves or expires: refresh the
 * next hops that use it. mac 0: unresolved. */
void pylb_route_neigh_update(struct pylb_dp *dp, const struct pylb_neigh_key *k,
			     uint64_t mac);
/* Install a FIB entry of another kind (local, VIP) at a free prefix. */
int pylb_route_add_special(struct pylb_dp *dp, const struct pylb_prefix *p,
			   uint64_t val);
int pylb_route_del_special(struct pylb_dp *dp, const struct pylb_prefix *p,
			   uint64_t val);
int pylb_route_check_prefix(const struct pylb_prefix *p, const char *what);
int pylb_route_add_connected(struct pylb_dp *dp, uint16_t port,
			     const struct pylb_prefix *net);
/* maglev.c */
bool pylb_is_prime(uint32_t n);
/* Allocate *out: an object of `head` bytes whose struct pylb_balance (at
 * `bal_offset`) gets the backends, the memory of their outputs for n_slots
 * lcores and, if any has weight, the lookup table built, all in one
 * allocation. 0 or a negative PYLB_E_* code. */
int pylb_balance_new(void **out, const char *what, size_t head, size_t bal_offset,
		     const struct pylb_backend *b, uint32_t n, uint32_t table_size,
		     uint32_t n_slots);
uint64_t pylb_balance_fingerprint(const struct pylb_balance *bal, const uint64_t *key);

#endif /* PYLB_FIB_H */
