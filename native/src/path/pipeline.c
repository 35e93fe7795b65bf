/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * The burst pipeline for frames from the wire, the same stages for IPv4
 * and IPv6:
 *   1. parse: Ethernet, then ARP (handled at once) or IPv4/IPv6, validated;
 *   2. classify: one bulk FIB lookup per family for the whole burst, of
 *      the destinations and of the sources (spoofed sources are dropped);
 *   3. key: the connection-table hash of each packet that will look one
 *      up (the L4 side says which: l4.h);
 *   4. dispatch: the burst split into sub-bursts by what the FIB said
 *      (routed, L3 VIP, local, L4 service, no route; SIMD compares), each
 *      handed to its handler, which walks it fetching connection buckets and entries a
 *      few packets ahead (L3 VIPs: every packet's lookup-table slot first);
 *   5. TX: the handlers queue into per-port buffers the worker flushes.
 * Every packet is either sent on or dropped under a named reason.
 */
#include <rte_prefetch.h>
#include <rte_vect.h>

#include "l4/l4.h"
#include "path/pipeline.h"

#define STAGE_NO_ROUTE	4	/* sub-burst of packets the FIB has no value for */
#define STAGE_SPOOFED	5	/* of packets whose source is refused (the reason: fib[]) */
#define STAGE_KINDS	6

/* Is the frame to MAC `mac`? Each one's first 6 bytes in one 8-byte
 * compare: what follows (the frame's source MAC, the next field of the
 * port's configuration) is read, not compared. */
static inline bool
frame_to(const struct rte_ether_hdr *eth, const struct rte_ether_addr *mac)
{
	uint64_t x = *(const unaligned_uint64_t *)eth ^ *(const unaligned_uint64_t *)mac;

	RTE_BUILD_BUG_ON(offsetof(struct pylb_port_cfg, mac) + 8 > sizeof(struct pylb_port_cfg));
	return (x & RTE_BE64(0xffffffffffff0000)) == 0;
}

static inline void
parse_one(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
	  struct rte_mbuf *m, struct pylb_burst *b)
{
	const struct pylb_port_cfg *pc = &cfg->ports[port];
	uint32_t len = rte_pktmbuf_data_len(m);
	uint32_t l2 = sizeof(struct rte_ether_hdr);
	struct rte_ether_hdr *eth;
	bool mcast = false;
	uint16_t i = b->n;

	m->hash.fdir.hi = 0;	/* no fragment's ports yet (frag.c) */
	if (unlikely(len < l2))
		return drop(lc, m, PYLB_D_ETH_TRUNCATED);
	eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	if (unlikely(!frame_to(eth, &pc->mac))) {
		mcast = rte_is_multicast_ether_addr(&eth->dst_addr);
		if (!mcast)
			return drop(lc, m, PYLB_D_ETH_OTHER_HOST);
	}

	switch (eth->ether_type) {
	case RTE_BE16(RTE_ETHER_TYPE_IPV4): {
		const struct rte_ipv4_hdr *ip = (const void *)(eth + 1);

		if (!pylb_ipv4_parse(lc, m, l2, mcast))
			return;
		b->af[i] = 4;
		b->proto[i] = ip->next_proto_id;
		b->at4[b->n4] = (uint8_t)i;
		b->src4[b->n4] = rte_be_to_cpu_32(ip->src_addr);
		b->dst4[b->n4++] = rte_be_to_cpu_32(ip->dst_addr);
		break;
	}
	case RTE_BE16(RTE_ETHER_TYPE_IPV6): {
		const struct rte_ipv6_hdr *ip = (const void *)(eth + 1);

		if (!pylb_ipv6_parse(lc, cfg, port, m, l2, mcast, &b->proto[i]))
			return;
		b->af[i] = 6;
		b->at6[b->n6] = (uint8_t)i;
		memcpy(b->src6[b->n6], ip->src_addr, 16);
		memcpy(b->dst6[b->n6++], ip->dst_addr, 16);
		break;
	}
	case RTE_BE16(RTE_ETHER_TYPE_ARP):
		return pylb_arp_input(lc, pc, port, m);
	case RTE_BE16(RTE_ETHER_TYPE_VLAN):
	case RTE_BE16(RTE_ETHER_TYPE_QINQ):
		if (len < l2 + sizeof(struct rte_vlan_hdr))
			return drop(lc, m, PYLB_D_ETH_TRUNCATED);
		return drop(lc, m, PYLB_D_VLAN_UNKNOWN);
	default:
		return drop(lc, m, PYLB_D_ETHERTYPE_UNSUPPORTED);
	}
	b->m[i] = m;
	b->n++;
}

/* Stage 1. */
static inline void
parse(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
      struct rte_mbuf **pkts, uint16_t n, struct pylb_burst *b)
{
	uint64_t bytes = 0;
	uint16_t i;

	b->n = b->n4 = b->n6 = 0;
	for (i = 0; i < n && i < PYLB_PREFETCH_AHEAD; i++)
		rte_prefetch0(rte_pktmbuf_mtod(pkts[i], void *));
	for (i = 0; i < n; i++) {
		if (i + PYLB_PREFETCH_AHEAD < n)
			rte_prefetch0(rte_pktmbuf_mtod(pkts[i + PYLB_PREFETCH_AHEAD], void *));
		bytes += rte_pktmbuf_pkt_len(pkts[i]);
		parse_one(lc, cfg, port, pkts[i], b);
	}
	lc->stats->c[PYLB_C_RX_BYTES] += bytes;
}

/* Is IPv4 source s (host order; its FIB value: a port's network, g) the
 * broadcast address of that network? */
static inline bool
broadcast4(const struct pylb_cfg *cfg, const struct pylb_nhg *g, uint32_t s)
{
	uint32_t ports = g->ports;

	while (ports != 0) {
		const struct pylb_port_cfg *pc = &cfg->ports[__builtin_ctz(ports)];

		ports &= ports - 1;
		for (uint16_t i = 0; i < pc->n_addrs4; i++) {
			uint32_t mask = rte_be_to_cpu_32(pc->addrs4[i].mask);

			if (pc->addrs4[i].prefix_len < 31 &&
			    (s & mask) == (rte_be_to_cpu_32(pc->addrs4[i].ip) & mask) &&
			    (s | mask) == UINT32_MAX)
				return true;
		}
	}
	return false;
}

/* The next-hop group of FIB value v (of kind PYLB_FIB_GROUP). */
static inline const struct pylb_nhg *
group_of(const struct pylb_lcore *lc, uint32_t v)
{
	return &lc->dp->nhg[fib_id(v)];
}

/* Why a packet from port `port` with source FIB value sv (destination:
 * dv) is refused; 0: it is not. Our own addresses as sources are
 * reflections; a VIP's, to a VIP, a LAND packet or a reflection (a VIP's
 * to anywhere else is a DR or tunnel backend's answer routed through us,
 * or a data-path probe's answer); a network's broadcast draws answers from
 * every host on it; a source the port does not route to (strict), or no
 * port does (loose), is spoofed, or comes the wrong way: on to a service,
 * a VIP or a route. Packets for our own addresses are not held to the
 * routes (FullNAT replies may come back by another port than the one
 * that leads to their backend: an upstream router that learnt the pool
 * by BGP); neither are IPv6 link-local sources, the link's own. */
static inline uint32_t
source_refused(const struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
	       uint32_t sv, uint32_t dv, uint8_t af, const uint8_t *src6, uint32_t src4)
{
	uint32_t rp_ports = cfg->ports[port].rp_ports;

	/* The usual source first: one a next-hop group routes. */
	if (likely(sv != 0 && fib_kind(sv) == PYLB_FIB_GROUP)) {
		/* (A broadcast source has its two lowest bits set: broadcast4
		 * skips /31 and /32. The group is read only by a test that
		 * asks.) */
		if (af == 4 && (src4 & 3) == 3 && group_of(lc, sv)->connected &&
		    broadcast4(cfg, group_of(lc, sv), src4))
			return PYLB_D_SOURCE_BROADCAST;
		return rp_ports != 0 && !(group_of(lc, sv)->ports & rp_ports) &&
			!fib_is_local(dv) ? PYLB_D_SOURCE_REVERSE_PATH : 0;
	}
	if (sv == 0)
		return rp_ports != 0 && !fib_is_local(dv) && !(af == 6 && ip6_is_link_local(src6)) ?
			PYLB_D_SOURCE_REVERSE_PATH : 0;
	if (fib_kind(sv) == PYLB_FIB_LOCAL)
		return PYLB_D_SOURCE_OWN;
	return fib_is_vip(dv) ? PYLB_D_SOURCE_OWN : 0;	/* a VIP's */
}

/* Packet i's FIB value v and sub-burst, or refused (why: a drop reason,
 * in v's place). */
static inline void
settle(struct pylb_burst *b, uint16_t i, uint32_t v, uint32_t why)
{
	if (unlikely(why != 0)) {
		b->kind[i] = STAGE_SPOOFED;
		b->fib[i] = why;
	} else {
		b->kind[i] = v == 0 ? STAGE_NO_ROUTE : (uint8_t)fib_kind(v);
		b->fib[i] = v;
	}
}

/* Stages 2 and 3. */
static inline void
classify(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
	 struct pylb_burst *b)
{
	const struct pylb_dp *dp = lc->dp;
	bool keyed = dp->n_services != 0 && lc->ct->nb != 0;
	uint16_t i;

	if (b->n4 != 0) {
		rte_fib_lookup_bulk(dp->fib4, b->dst4, b->val, b->n4);
		rte_fib_lookup_bulk(dp->fib4, b->src4, b->sval, b->n4);
		for (i = 0; i < b->n4; i++) {
			uint32_t v = (uint32_t)b->val[i];

			settle(b, b->at4[i], v, source_refused(lc, cfg, port, (uint32_t)b->sval[i],
								v, 4, NULL, b->src4[i]));
		}
	}
	if (b->n6 != 0) {
		rte_fib6_lookup_bulk(dp->fib6, b->dst6, b->val, b->n6);
		rte_fib6_lookup_bulk(dp->fib6, b->src6, b->sval, b->n6);
		for (i = 0; i < b->n6; i++) {
			uint32_t v = (uint32_t)b->val[i];

			settle(b, b->at6[i], v, source_refused(lc, cfg, port, (uint32_t)b->sval[i],
								v, 6, b->src6[i], 0));
		}
	}
	b->keyed = 0;
	if (!keyed)
		return;
	for (i = 0; i < b->n; i++) {
		b->key[i].h = pylb_l4_key(dp, b->m[i], b->af[i], b->proto[i], b->kind[i]);
		b->key[i].hint = 0;
		b->keyed |= (uint32_t)(b->key[i].h != 0) << i;
	}
}

/* One packet of a sub-burst: its FIB value, its connection-table key (NULL:
 * it looks up no connection). */
typedef void stage_one_fn(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
			  struct rte_mbuf *m, uint8_t af, uint8_t proto, uint32_t v,
			  const struct pylb_ct_key *k);

static inline uint32_t
pop(uint32_t *mask)
{
	uint32_t i = (uint32_t)__builtin_ctz(*mask);

	*mask &= *mask - 1;
	return i;
}

/* Walk a sub-burst (bit i of `mask`: packet i, in arrival order): the bulk
 * connection lookup. A connection's bucket is fetched PYLB_CT_BUCKET_AHEAD
 * packets before it is needed, and PYLB_CT_AHEAD before, the entry the
 * bucket names for it (the key's hint, which the lookup tries first): a
 * few misses in flight at a time rather than a burst's worth at once. */
static __rte_always_inline void
each(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
     struct pylb_burst *b, uint32_t mask, stage_one_fn *one)
{
	const struct pylb_conntrack *ct = lc->ct;
	uint32_t bucket = mask & b->keyed, entry = bucket;
	int j;

	for (j = 0; j < PYLB_CT_BUCKET_AHEAD && bucket != 0; j++)
		pylb_ct_prefetch_bucket(ct, &b->key[pop(&bucket)]);
	for (j = 0; j < PYLB_CT_AHEAD && entry != 0; j++)
		pylb_ct_prefetch_entry(ct, &b->key[pop(&entry)]);
	while (mask != 0) {
		uint32_t i = pop(&mask);

		if (bucket != 0)
			pylb_ct_prefetch_bucket(ct, &b->key[pop(&bucket)]);
		if (entry != 0)
			pylb_ct_prefetch_entry(ct, &b->key[pop(&entry)]);
		one(lc, cfg, port, b->m[i], b->af[i], b->proto[i], b->fib[i],
		    b->keyed & (1u << i) ? &b->key[i] : NULL);
	}
}

/* A packet to route: false if it was taken (an IPv6 link-local address,
 * not forwarded; a NAT backend's reply, or an ICMP error about a packet
 * sent to one, given its VIP back and sent on). */
static inline bool
route_ready(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
	    struct rte_mbuf *m, uint8_t af, uint8_t proto, const struct pylb_ct_key *k)
{
	if (af == 6) {
		const struct rte_ipv6_hdr *ip = rte_pktmbuf_mtod_offset(m,
			const struct rte_ipv6_hdr *, sizeof(struct rte_ether_hdr));

		/* Link-local addresses are never forwarded. */
		if (ip6_is_link_local(ip->dst_addr) || ip6_is_link_local(ip->src_addr)) {
			pylb_icmp6_error(lc, cfg, port, m, ICMP6_DEST_UNREACH, 0, 0);
			drop(lc, m, PYLB_D_NO_ROUTE);
			return false;
		}
	}
	return likely(lc->dp->n_nat == 0) ||
		(proto == (af == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6) ?
		 pylb_icmp_error_nat(lc, cfg, port, m, af) : pylb_nat_reverse(lc, cfg, port, m, af, k));
}

/* Routed: forwarding; first through an appliance where the route's pool
 * says (inspect.c). (FIB values are 15 bits: a kind of its own for an
 * inspected route would halve the ids of groups and VIPs.) */
static inline void
routed_one(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
	   struct rte_mbuf *m, uint8_t af, uint8_t proto, uint32_t v,
	   const struct pylb_ct_key *k)
{
	uint16_t pool = group_of(lc, v)->pool;

	if (!route_ready(lc, cfg, port, m, af, proto, k))
		return;
	if (unlikely(pool != 0))
		return pylb_inspect_out(lc, m, pool - 1, af);
	if (af == 4)
		pylb_fwd4(lc, cfg, port, m, fib_id(v));
	else
		pylb_fwd6(lc, cfg, port, m, fib_id(v));
}


/* One of our addresses: a FullNAT backend's reply (or an ICMP error about
 * a packet sent to one, or one we tunnelled), else local delivery. */
static inline void
local_one(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
	  struct rte_mbuf *m, uint8_t af, uint8_t proto, uint32_t v __rte_unused,
	  const struct pylb_ct_key *k)
{
	if (unlikely(lc->dp->n_fullnat != 0) &&
	    (proto == (af == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6) ?
	     pylb_icmp_error_fullnat(lc, cfg, port, m, af) :
	     pylb_fullnat_reply(lc, cfg, port, m, af, k)))
		return;
	if (proto == (af == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6) &&
	    pylb_icmp_error_tunnel(lc, cfg, port, m, af))
		return;
	if (unlikely(lc->dp->n_pools != 0) && proto == IPPROTO_UDP &&
	    pylb_inspect_return(lc, cfg, port, m, af))
		return;
	pylb_l4_local(lc, cfg, port, m, af);
}

/* An address with L4 services: TCP/UDP to L4; ICMP errors about its
 * connections to their backends (icmperr.c); echo answered. */
static inline void
service_one(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
	    struct rte_mbuf *m, uint8_t af, uint8_t proto, uint32_t v __rte_unused,
	    const struct pylb_ct_key *k)
{
	if (af == 4 && proto == IPPROTO_ICMP) {
		if (!pylb_icmp_error_in(lc, cfg, port, m, af))
			pylb_ipv4_icmp(lc, cfg, port, m);
		return;
	}
	if (af == 6 && proto == IPPROTO_ICMPV6) {
		if (!pylb_icmp_error_in(lc, cfg, port, m, af))
			pylb_ipv6_icmp(lc, cfg, port, m);
		return;
	}
	pylb_l4_input(lc, cfg, port, m, af, k);
}

static inline void
spoofed_one(struct pylb_lcore *lc, const struct pylb_cfg *cfg __rte_unused,
	    uint16_t port __rte_unused, struct rte_mbuf *m, uint8_t af __rte_unused,
	    uint8_t proto __rte_unused, uint32_t why, const struct pylb_ct_key *k __rte_unused)
{
	drop(lc, m, (enum pylb_counter)why);
}

static inline void
no_route_one(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
	     struct rte_mbuf *m, uint8_t af, uint8_t proto __rte_unused,
	     uint32_t v __rte_unused, const struct pylb_ct_key *k __rte_unused)
{
	if (af == 4)
		pylb_icmp4_error(lc, cfg, port, m, ICMP_DEST_UNREACH, 0, 0);
	else
		pylb_icmp6_error(lc, cfg, port, m, ICMP6_DEST_UNREACH, 0, 0);
	drop(lc, m, PYLB_D_NO_ROUTE);
}

typedef void stage_fn(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
		      struct pylb_burst *b, uint32_t mask);

#define SUB_BURST(name) \
static void \
name##_sub(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port, \
	   struct pylb_burst *b, uint32_t mask) \
{ \
	each(lc, cfg, port, b, mask, name##_one); \
}
SUB_BURST(routed)
SUB_BURST(local)
SUB_BURST(service)
SUB_BURST(no_route)
SUB_BURST(spoofed)

/* L3 VIPs: to their backends, together (vip.c); first through an
 * appliance where a VIP's pool says (inspect.c). They look up no
 * connection. */
static void
vip_sub(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
	struct pylb_burst *b, uint32_t mask)
{
	pylb_vip_burst(lc, cfg, port, b->m, b->fib, b->af, mask);
}

static stage_fn *const sub_bursts[STAGE_KINDS] = {
	[PYLB_FIB_GROUP] = routed_sub,
	[PYLB_FIB_VIP] = vip_sub,
	[PYLB_FIB_LOCAL] = local_sub,
	[PYLB_FIB_SERVICE] = service_sub,
	[STAGE_NO_ROUTE] = no_route_sub,
	[STAGE_SPOOFED] = spoofed_sub,
};

/* Stage 4: the burst's sub-bursts as bit masks (bit i: packet i), one per
 * kind, found 16 packets at a time; then one call per sub-burst. Packets of
 * one flow share a kind, so each flow keeps its order. */
static inline void
dispatch(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
	 struct pylb_burst *b)
{
	uint32_t all = b->n == 32 ? UINT32_MAX : (1u << b->n) - 1;
	int k;

	RTE_BUILD_BUG_ON(PYLB_BURST != 32);
	for (k = 0; k < STAGE_KINDS; k++) {
		uint32_t mask;
#ifdef RTE_ARCH_X86
		const __m128i want = _mm_set1_epi8((char)k);
		const __m128i lo = _mm_loadu_si128((const __m128i *)(const void *)b->kind);
		const __m128i hi = _mm_loadu_si128((const __m128i *)(const void *)(b->kind + 16));

		mask = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(lo, want)) |
			(uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(hi, want)) << 16;
#else
		mask = 0;
		for (uint16_t i = 0; i < b->n; i++)
			mask |= (uint32_t)(b->kind[i] == k) << i;
#endif
		mask &= all;
		if (mask != 0)
			sub_bursts[k](lc, cfg, port, b, mask);
	}
}

/* A benchmark's build (bench/stages.py) ends the pipeline early:
 * -DPYLB_BENCH_CUT=0 after receiving, 1 after stage 1, 2 after stages 2
 * and 3; what is left is sent out of the next port as it is. What the
 * stages before cost, measured without a profiler. Other builds: the
 * whole pipeline, the branches below folded away. */
#ifndef PYLB_BENCH_CUT
#define PYLB_BENCH_CUT	3
#endif

static inline void
bench_cut(struct pylb_lcore *lc, uint16_t port, struct rte_mbuf **m, uint16_t n)
{
	for (uint16_t i = 0; i < n; i++)
		tx(lc, (uint16_t)((port + 1u) % lc->dp->n_ports), m[i]);
}

static void
process(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
	struct rte_mbuf **pkts, uint16_t n)
{
	struct pylb_burst b;

	if (PYLB_BENCH_CUT == 0)
		return bench_cut(lc, port, pkts, n);
	parse(lc, cfg, port, pkts, n, &b);
	if (b.n == 0)
		return;
	if (PYLB_BENCH_CUT == 1)
		return bench_cut(lc, port, b.m, b.n);
	classify(lc, cfg, port, &b);
	if (PYLB_BENCH_CUT == 2)
		return bench_cut(lc, port, b.m, b.n);
	dispatch(lc, cfg, port, &b);
	if (unlikely(lc->inspect != NULL) && lc->inspect->n_pending != 0)
		pylb_inspect_flush(lc, cfg, port);
	if (unlikely(lc->frags->n_ready != 0))
		pylb_frag_release(lc, cfg);
}

/* A port with VLAN sub-interfaces: each tagged frame, its tag taken off,
 * goes with its VLAN's port, the untagged ones with the port; frames of
 * other VLANs are dropped. Then one burst per port. */
static void
vlan_demux(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
	   struct rte_mbuf **pkts, uint16_t n)
{
	const struct pylb_port_cfg *pc = &cfg->ports[port];
	struct rte_mbuf *by[PYLB_MAX_PORTS + 1][PYLB_BURST];
	uint16_t count[PYLB_MAX_PORTS + 1] = { 0 };
	uint16_t i, v;

	for (i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];
		struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
		const struct rte_vlan_hdr *tag = (const void *)(eth + 1);
		uint16_t vid;

		if (eth->ether_type != RTE_BE16(RTE_ETHER_TYPE_VLAN) ||
		    rte_pktmbuf_data_len(m) < sizeof(*eth) + sizeof(*tag)) {
			by[0][count[0]++] = m;	/* the parsers judge them */
			continue;
		}
		vid = rte_be_to_cpu_16(tag->vlan_tci) & 0xfff;
		for (v = 0; v < pc->n_vlans && pc->vlans[v].vid != vid; v++)
			;
		if (v == pc->n_vlans) {
			lc->stats->c[PYLB_C_RX_BYTES] += rte_pktmbuf_pkt_len(m);
			drop(lc, m, PYLB_D_VLAN_UNKNOWN);
			continue;
		}
		/* The MACs move up over the tag. */
		memmove((uint8_t *)eth + sizeof(*tag), eth, 2 * RTE_ETHER_ADDR_LEN);
		rte_pktmbuf_adj(m, sizeof(*tag));
		by[v + 1][count[v + 1]++] = m;
	}
	if (count[0] != 0)
		process(lc, cfg, port, by[0], count[0]);
	for (v = 0; v < pc->n_vlans; v++)
		if (count[v + 1] != 0)
			process(lc, cfg, pc->vlans[v].port, by[v + 1], count[v + 1]);
}

void
pylb_host_process(struct pylb_lcore *lc, const struct pylb_cfg *cfg,
		  uint16_t port, struct rte_mbuf **pkts, uint16_t n)
{
	lc->stats->c[PYLB_C_RX_PACKETS] += n;
	if (unlikely(cfg->ports[port].n_vlans != 0))
		return vlan_demux(lc, cfg, port, pkts, n);
	process(lc, cfg, port, pkts, n);
}
