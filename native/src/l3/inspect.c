/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * Inspection (a Gateway Load Balancer's job): packets to a route or an L3
 * VIP marked for inspection go first, GENEVE-encapsulated (RFC 8926), to
 * one appliance of the route's pool (a firewall, an IDS), which sends them
 * back encapsulated the same way; then they go on to their destination.
 *
 * - Both directions of a flow cross the same appliance: its key puts the
 *   lower side first (inspect.h), and the pool's stickiness says which of
 *   ports and protocol it keeps (5-, 3- or 2-tuple).
 * - A new flow's appliance comes from the pool's consistent table (a
 *   function of the configuration and the fleet's key: every appliance of
 *   a fleet picks alike; losing an appliance moves only its flows). Each
 *   worker remembers its flows' appliances (its table: inspect.h; aged
 *   while idle),
 *   so that adding an appliance moves no flow, and an appliance down or
 *   removed moves its flows (failover: rebalance) or keeps them until they
 *   end (stay), as the pool says.
 * - The GENEVE option carries the pool and the flow's cookie (a MAC of the
 *   flow under the dataplane's key, core/mac.h): what comes back is
 *   forwarded only if its cookie is the flow's, whichever worker (or
 *   appliance of the fleet) it reaches.
 */
#include <rte_geneve.h>
#include <rte_udp.h>

#include "l3/inspect.h"
#include "l3/l3.h"

static inline void
flow_set(struct pylb_inspect_flow *fl, const struct pylb_pool *pool, uint16_t bidx)
{
	fl->app = pool->bal.backends[bidx].addr;
	fl->bidx = bidx;
	fl->birth = pool->birth;
	fl->serial = pool->serial;
}

/* A place for new flow k (hash h), its key set, and an empty way for it
 * in one of its buckets (*way), published once the flow is filled in
 * (flow_publish). NULL: the table has no room for it. */
static struct pylb_inspect_flow *
flow_add(struct pylb_inspect *in, const struct pylb_inspect_key *k, uint32_t h, uint32_t **way)
{
	struct pylb_inspect_flow *fl;

	if (unlikely(in->n_free == 0))
		return NULL;
	for (int which = 0; which < 2; which++) {
		struct pylb_inspect_bucket *b = inspect_bucket(in, h, which);

		for (int w = 0; w < PYLB_INSPECT_WAYS; w++) {
			if (b->at[w] != 0)
				continue;
			fl = &in->flows[in->free[--in->n_free]];
			fl->key = *k;
			fl->hash = h;
			b->hash[w] = h;
			*way = &b->at[w];
			return fl;
		}
	}
	return NULL;
}

static inline void
flow_publish(const struct pylb_inspect *in, const struct pylb_inspect_flow *fl, uint32_t *way)
{
	__atomic_store_n(way, (uint32_t)(fl - in->flows) + 1, __ATOMIC_RELEASE);
}

/* The appliance flow k (hash h) crosses, as inspect_decide says: its
 * remembered one, or the table's, remembered (the table full: chosen each
 * time, counted); its index in the pool (*bidx; INSPECT_GONE: it left, the
 * flow stays on it); and its cookie (made once a flow). NULL: none. */
static const struct pylb_ip *
appliance(struct pylb_lcore *lc, const struct pylb_pool *pool, uint16_t slot,
	  const struct pylb_inspect_key *k, uint32_t h, uint64_t *cookie, uint16_t *bidx)
{
	struct pylb_inspect *in = lc->inspect;
	int32_t pos = inspect_find(in, k, h);
	struct pylb_inspect_flow *fl = pos >= 0 ? &in->flows[pos] : NULL;
	uint32_t *way;

	switch (inspect_decide(pool, fl, h, bidx)) {
	case INSPECT_KEEP:
		if (unlikely(fl->serial != pool->serial))
			flow_set(fl, pool, *bidx);
		break;
	case INSPECT_STAY:
		CNT(lc, INSPECT_FLOWS_STAYED);
		break;
	case INSPECT_MOVE:
		CNT(lc, INSPECT_FLOWS_MOVED);
		flow_set(fl, pool, *bidx);
		break;
	case INSPECT_NEW:
		*cookie = inspect_cookie(&lc->dp->mac, k);
		fl = flow_add(in, k, h, &way);
		if (unlikely(fl == NULL)) {
			CNT(lc, INSPECT_UNTRACKED);
			return &pool->bal.backends[*bidx].addr;
		}
		flow_set(fl, pool, *bidx);
		fl->cookie = *cookie;
		fl->pool = slot;
		fl->expire_tsc = lc->now + pool->idle_tsc;
		flow_publish(in, fl, way);
		in->n_flows[slot]++;
		CNT(lc, INSPECT_FLOWS_NEW);
		return &fl->app;
	case INSPECT_NONE:
		return NULL;
	}
	fl->expire_tsc = lc->now + pool->idle_tsc;
	*cookie = fl->cookie;
	return &fl->app;
}

/* A packet gathered by pylb_inspect_out, with its flow's key k (hash h):
 * staged in *g for its appliance (true), or dropped. */
static bool
inspect_stage(struct pylb_lcore *lc, const struct pylb_inspect_pending *p,
	      const struct pylb_pool *pool, const struct pylb_inspect_key *k, uint32_t h,
	      struct pylb_geneve_send *g)
{
	struct pylb_out_memo *o = NULL;
	const struct pylb_ip *to;
	struct pylb_hop tmp;
	uint16_t bidx = 0;
	uint32_t grp;

	to = appliance(lc, pool, p->slot, k, h, &g->cookie, &bidx);
	if (unlikely(to == NULL)) {
		drop(lc, p->m, PYLB_D_INSPECT_NO_APPLIANCE);
		return false;
	}
	/* Its output as the lcore remembers it (an appliance that left: by
	 * the FIB). */
	if (likely(bidx != INSPECT_GONE)) {
		o = pylb_backend_out(lc, &pool->bal, bidx);
		grp = o->group;
	} else {
		grp = route_group(lc->dp, to->ip, to->af);
	}
	if (unlikely(grp == 0)) {
		drop(lc, p->m, PYLB_D_INSPECT_NO_ROUTE);
		return false;
	}
	CNT(lc, INSPECT_SENT);
	g->s.hop = *hop_pick(lc->dp, o, grp, h, &tmp);
	g->s.m = p->m;
	g->s.o = o;
	g->s.to = to;
	g->s.flow = h;
	g->s.af = p->af;
	g->pool = p->slot;
	return true;
}

/* The burst's gathered packets: their flows' keys made and their first
 * buckets fetched, then each staged for its appliance, and all sent in one
 * call. */
void
pylb_inspect_flush(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port)
{
	struct pylb_inspect *in = lc->inspect;
	const uint64_t *hk = lc->dp->conf.hash_key;
	const struct pylb_pool *pool[PYLB_BURST];
	struct pylb_geneve_send g[PYLB_BURST];
	struct pylb_inspect_key k[PYLB_BURST];
	uint32_t h[PYLB_BURST];
	uint8_t at[PYLB_BURST];
	uint16_t n = 0, ns = 0, i;

	for (i = 0; i < in->n_pending; i++) {
		const struct pylb_inspect_pending *p = &in->pending[i];
		struct inspect_flow_of f;

		pool[n] = __atomic_load_n(&lc->dp->inspect_pools[p->slot], __ATOMIC_ACQUIRE);
		if (unlikely(pool[n] == NULL)) {
			drop(lc, p->m, PYLB_D_INSPECT_NO_APPLIANCE);
			continue;
		}
		if (unlikely(!inspect_flow_parse(p->m, p->af, &f))) {
			drop(lc, p->m, PYLB_D_INSPECT_MALFORMED);
			continue;
		}
		h[n] = inspect_key(hk, &f, p->slot, pool[n]->conf.stickiness, &k[n]);
		rte_prefetch0(inspect_bucket(in, h[n], 0));
		at[n++] = (uint8_t)i;
	}
	for (i = 0; i < n; i++)
		ns += inspect_stage(lc, &in->pending[at[i]], pool[i], &k[i], h[i], &g[ns]);
	in->n_pending = 0;
	if (ns != 0)
		pylb_out_geneve_burst(lc, cfg, in_port, g, ns);
}

/* The GENEVE header of a datagram to our port 6081 (at g, `len` bytes on):
 * its length (options included), the inner family and pylb's option;
 * 0: not one pylb sent. */
static uint32_t
geneve_parse(const struct rte_geneve_hdr *g, uint32_t len, uint8_t *af,
	     const struct pylb_geneve_opt **opt)
{
	uint32_t hl, at = sizeof(*g);

	if (len < sizeof(*g))
		return 0;
	hl = sizeof(*g) + 4u * g->opt_len;
	if (len < hl || g->ver != 0 || g->oam)
		return 0;
	if (g->proto == RTE_BE16(RTE_ETHER_TYPE_IPV4))
		*af = 4;
	else if (g->proto == RTE_BE16(RTE_ETHER_TYPE_IPV6))
		*af = 6;
	else
		return 0;
	*opt = NULL;
	while (at + 4 <= hl) {
		const struct pylb_geneve_opt *o = (const void *)((const uint8_t *)g + at);
		uint32_t olen = 4 + 4u * (o->len & 0x1f);

		if (at + olen > hl)
			return 0;
		if (o->cls == RTE_BE16(PYLB_GENEVE_CLASS) && o->type == PYLB_GENEVE_TYPE &&
		    olen == sizeof(*o))
			*opt = o;
		at += olen;
	}
	return *opt != NULL ? hl : 0;
}

/* A datagram to one of our addresses (after m's Ethernet header, family
 * af): if it is GENEVE, it is an appliance's answer, taken (true): its
 * inner packet forwarded if its cookie is its flow's, else dropped. */
bool
pylb_inspect_return(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		    struct rte_mbuf *m, uint8_t af)
{
	const uint32_t l2 = sizeof(struct rte_ether_hdr);
	uint8_t *ip = rte_pktmbuf_mtod_offset(m, uint8_t *, l2);
	uint32_t len = rte_pktmbuf_data_len(m) - l2, l3, hl;
	const struct pylb_geneve_opt *opt;
	const struct pylb_pool *pool;
	const struct rte_udp_hdr *u;
	struct pylb_inspect_key k;
	struct inspect_flow_of f;
	struct rte_ether_hdr *eth;
	const uint8_t *from;
	uint64_t cookie;
	uint16_t slot;
	uint8_t inner;
	uint32_t v;

	if (af == 4) {
		const struct rte_ipv4_hdr *h = (const void *)ip;

		if (h->next_proto_id != IPPROTO_UDP ||
		    (h->fragment_offset & RTE_BE16(RTE_IPV4_HDR_OFFSET_MASK)))
			return false;
		l3 = rte_ipv4_hdr_len(h);
	} else {
		if (((const struct rte_ipv6_hdr *)ip)->proto != IPPROTO_UDP)
			return false;
		l3 = sizeof(struct rte_ipv6_hdr);
	}
	if (len < l3 + sizeof(*u))
		return false;
	u = (const void *)(ip + l3);
	if (u->dst_port != RTE_BE16(PYLB_GENEVE_PORT))
		return false;
	/* Ours from here. Fragments are not reassembled: the appliances'
	 * network carries whole packets (docs: its MTU). */
	if (af == 4 && (((const struct rte_ipv4_hdr *)ip)->fragment_offset &
			RTE_BE16(RTE_IPV4_HDR_MF_FLAG))) {
		drop(lc, m, PYLB_D_INSPECT_MALFORMED);
		return true;
	}
	hl = geneve_parse((const void *)(u + 1), len - l3 - (uint32_t)sizeof(*u), &inner, &opt);
	if (hl == 0) {
		drop(lc, m, PYLB_D_INSPECT_MALFORMED);
		return true;
	}
	slot = rte_be_to_cpu_16(opt->pool);
	memcpy(&cookie, opt->cookie, 8);
	/* The inner packet after the Ethernet header: its MACs moved up over
	 * the outer headers (more than their 12 bytes: no overlap; what
	 * geneve_parse took is in the segment, so adj has the bytes). */
	from = rte_pktmbuf_mtod(m, const uint8_t *);
	eth = (struct rte_ether_hdr *)(void *)rte_pktmbuf_adj(m, (uint16_t)(l3 + sizeof(*u) + hl));
	memcpy(eth, from, 2 * RTE_ETHER_ADDR_LEN);
	eth->ether_type = inner == 4 ? RTE_BE16(RTE_ETHER_TYPE_IPV4) :
		RTE_BE16(RTE_ETHER_TYPE_IPV6);
	/* What a NIC checked was the outer header: the inner one is checked
	 * here. */
	m->ol_flags &= ~(RTE_MBUF_F_RX_IP_CKSUM_MASK | RTE_MBUF_F_RX_L4_CKSUM_MASK);
	if (inner == 4 ? !pylb_ipv4_parse(lc, m, l2, false) :
	    !pylb_ipv6_parse(lc, cfg, (uint16_t)in_port, m, l2, false, &f.proto))
		return true;	/* dropped, counted */
	pool = slot < PYLB_MAX_POOLS ?
		__atomic_load_n(&lc->dp->inspect_pools[slot], __ATOMIC_ACQUIRE) : NULL;
	if (pool == NULL || !inspect_flow_parse(m, inner, &f)) {
		drop(lc, m, PYLB_D_INSPECT_BAD_COOKIE);
		return true;
	}
	(void)inspect_key(lc->dp->conf.hash_key, &f, slot, pool->conf.stickiness, &k);
	if (cookie != inspect_cookie(&lc->dp->mac, &k)) {
		drop(lc, m, PYLB_D_INSPECT_BAD_COOKIE);
		return true;
	}
	CNT(lc, INSPECT_RETURNED);
	v = inner == 4 ? fib4_lookup(lc->dp, *(const unaligned_uint32_t *)f.dst) :
		fib6_lookup(lc->dp, f.dst);
	if (fib_group(v) != 0) {
		if (inner == 4)
			pylb_fwd4(lc, cfg, in_port, m, fib_group(v));
		else
			pylb_fwd6(lc, cfg, in_port, m, fib_group(v));
	} else if (v != 0 && fib_kind(v) == PYLB_FIB_VIP) {
		pylb_vip_input(lc, cfg, in_port, m, fib_id(v), inner);
	} else {
		drop(lc, m, PYLB_D_INSPECT_UNROUTABLE);
	}
	return true;
}

/* Forget up to `step` flows idle past their pool's timeout: each one's way
 * emptied, then its place freed. */
void
pylb_inspect_age(struct pylb_lcore *lc, uint64_t now, uint32_t step)
{
	struct pylb_inspect *in = lc->inspect;

	if (in == NULL)
		return;
	for (uint32_t i = 0; i < step; i++) {
		struct pylb_inspect_flow *fl = &in->flows[in->age_pos];

		if (fl->expire_tsc != 0 && fl->expire_tsc < now) {
			for (int which = 0; which < 2; which++) {
				struct pylb_inspect_bucket *b = inspect_bucket(in, fl->hash, which);

				for (int w = 0; w < PYLB_INSPECT_WAYS; w++)
					if (b->at[w] == in->age_pos + 1)
						__atomic_store_n(&b->at[w], 0, __ATOMIC_RELEASE);
			}
			in->free[in->n_free++] = in->age_pos;
			in->n_flows[fl->pool]--;
			fl->expire_tsc = 0;
			CNT(lc, INSPECT_FLOWS_EXPIRED);
		}
		in->age_pos = (in->age_pos + 1) % PYLB_INSPECT_FLOWS;
	}
}
