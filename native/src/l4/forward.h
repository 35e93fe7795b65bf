/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * What the forwarding methods (nat.c, fullnat.c, dr.c, tunnel.c) share:
 * the output towards a backend,
 * a reply given the VIP back, a packet sent as it is.
 */
#ifndef PYLB_FORWARD_H
#define PYLB_FORWARD_H

#include "l3/encap.h"
#include "l4/l4.h"

/* The next-hop group the workers route `to` (a backend) by (`group`, when
 * known); false (m dropped) if there is none. */
static inline bool
l4_backend_group(struct pylb_lcore *lc, struct rte_mbuf *m, const uint8_t *to, uint8_t af,
		 uint32_t *group)
{
	if (*group == 0)
		*group = route_group(lc->dp, to, af);
	if (*group == 0) {
		drop(lc, m, PYLB_D_VIP_NO_ROUTE);
		return false;
	}
	return true;
}

/* The hop towards d->to for d->hash's flow (in *tmp, or d->out's); NULL
 * (m dropped): no route. */
static __rte_always_inline const struct pylb_hop *
l4_hop(struct pylb_lcore *lc, struct rte_mbuf *m, const struct l4_dest *d, struct pylb_hop *tmp)
{
	uint32_t g = d->out != NULL ? d->out->group : 0;

	if (!l4_backend_group(lc, m, d->to, d->to_af, &g))
		return NULL;
	return hop_pick(lc->dp, d->out, g, d->hash, tmp);
}

/* d's backend as an address (a constant size copied: no call). */
static inline void
l4_dest_ip(const struct l4_dest *d, struct pylb_ip *b)
{
	memset(b, 0, sizeof(*b));
	b->af = d->to_af;
	if (d->to_af == 4)
		memcpy(b->ip, d->to, 4);
	else
		memcpy(b->ip, d->to, 16);
}

/* A translated packet (NAT, FullNAT) towards backend `to`, routed like
 * any other: its own header picks the ECMP path. */
static inline void
l4_out_routed(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port, struct rte_mbuf *m,
	   const uint8_t *to, uint8_t af, uint32_t hash __rte_unused)
{
	uint32_t g = 0;

	if (!l4_backend_group(lc, m, to, af, &g))
		return;
	if (af == 4)
		return pylb_fwd4(lc, cfg, in_port, m, g);
	pylb_fwd6(lc, cfg, in_port, m, g);
}

/* An established NAT or FullNAT packet, already translated, through the
 * cached output: TTL, MACs, TX. False: take the full path. */
static inline bool
l4_conn_output(struct pylb_lcore *lc, const struct pylb_cfg *cfg, struct pylb_conn *c,
	    struct rte_mbuf *m)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);

	if (!(c->flags & CONN_F_OUT_OK) && !pylb_conn_resolve(lc, c))
		return false;
	if (unlikely(rte_pktmbuf_pkt_len(m) - sizeof(*eth) > cfg->ports[c->out_port].mtu))
		return false;	/* the full path fragments it (IPv4 without DF) */
	if (c->af == 4) {
		struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);

		if (ip->time_to_live <= 1)
			return false;	/* the full path sends the ICMP error */
		ip->time_to_live--;
		ip->hdr_checksum = cksum_adjust16(ip->hdr_checksum, RTE_BE16(0x0100), 0);
	} else {
		struct rte_ipv6_hdr *ip = (struct rte_ipv6_hdr *)(eth + 1);

		if (ip->hop_limits <= 1)
			return false;
		ip->hop_limits--;
	}
	u64_to_mac(c->out_mac, &eth->dst_addr);
	rte_ether_addr_copy(&cfg->ports[c->out_port].mac, &eth->src_addr);
	CNT(lc, FORWARDED);
	tx(lc, c->out_port, m);
	return true;
}

/* Does m fit its connection's egress? Asked before translation, so that
 * "fragmentation needed" or "packet too big" quotes the packet as its
 * sender sent it. IPv4 without DF fits: the output fragments it. */
static inline bool
l4_conn_fits(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port, struct rte_mbuf *m,
	  const struct pylb_conn *c)
{
	const struct rte_ipv4_hdr *ip = rte_pktmbuf_mtod_offset(m,
		const struct rte_ipv4_hdr *, sizeof(struct rte_ether_hdr));
	uint16_t mtu;

	if (unlikely(!(c->flags & CONN_F_OUT_OK)))
		return true;	/* not resolved yet: the output checks */
	mtu = cfg->ports[c->out_port].mtu;
	if (likely(rte_pktmbuf_pkt_len(m) - sizeof(struct rte_ether_hdr) <= mtu) ||
	    (c->af == 4 && !(ip->fragment_offset & RTE_BE16(RTE_IPV4_HDR_DF_FLAG))))
		return true;
	pylb_too_big(lc, cfg, in_port, m, c->af, mtu, PYLB_D_MTU_EXCEEDED);
	return false;
}

static inline uint8_t
l4_tcp_flags(const struct pylb_tuple *t, const uint16_t *ports)
{
	return t->proto == IPPROTO_TCP ? ((const struct rte_tcp_hdr *)ports)->tcp_flags : 0;
}


/* A backend's reply of c given the VIP back as its source (NAT, and
 * FullNAT before it gives the client back): counted, its connection
 * moved on. False: m was taken (the SYN proxy's). */
static inline bool
l4_reply_from_vip(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		  struct rte_mbuf *m, const struct pylb_tuple *t, uint16_t *ports,
		  struct pylb_conn *c)
{
	if (unlikely(c->flags & CONN_F_SYNPROXY) &&
	    !pylb_synproxy_reply(lc, cfg, in_port, m, ports, c))
		return false;
	if (unlikely(!(c->flags & CONN_F_REPLIED))) {
		if (pylb_conn_half_open(c) && c->proto == IPPROTO_UDP)
			pylb_half_open_add(lc->ct, c, -1);
		c->flags |= CONN_F_REPLIED;
	}
	pylb_conn_update(lc, c, l4_tcp_flags(t, ports), true, lc->now);
	nat_rewrite(m, t->af, t->proto, ports, false, conn_addr(lc->ct, c, CONN_VIP), c->vport);
	CNT(lc, NAT_REPLIES);
	conn_check(lc, c);	/* its backend's index (a reset waits for the client) */
	count_packet(lc, __atomic_load_n(&lc->dp->svcs[c->svc], __ATOMIC_ACQUIRE), c->svc,
		     c->bidx, m, true);
	return true;
}

/* An outer source that is the egress port's address. */
static const struct pylb_encap_src l4_port_src;

/* A flow's hash for a tunnel's outer source: (client, VIP)'s `hash` and
 * the client's port, so each of a client's connections has its own. */
static inline uint32_t
l4_flow(uint32_t hash, uint16_t cport)
{
	return rte_hash_crc_4byte(cport, hash);
}

/* A tunnel's output (tunnel.c, gue.c): to backend d->to in tun's
 * encapsulation (encap.h's output, inlined), by the ECMP path of d->hash;
 * and without an entry, to backend b (its method's `untracked`). */
static __rte_always_inline void
l4_out_encap(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port, struct rte_mbuf *m,
	     const struct l4_dest *d, const struct pylb_tun *tun)
{
	const struct pylb_hop *hop;
	struct pylb_hop tmp;
	struct pylb_ip b;

	hop = l4_hop(lc, m, d, &tmp);
	if (hop == NULL)
		return;
	l4_dest_ip(d, &b);
	out_encap(lc, cfg, in_port, m, hop, d->out, tun, NULL, d->src, d->flow, &b, d->af);
}

static inline void
l4_untracked_encap(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		   struct rte_mbuf *m, const struct pylb_tuple *t, const struct pylb_service *svc,
		   const struct pylb_backend *b, uint32_t hash, const struct pylb_tun *tun)
{
	struct l4_dest d = {
		.to = b->addr.ip, .to_af = b->addr.af, .af = t->af, .hash = hash,
		.flow = l4_flow(hash, t->sport), .src = &svc->tunnel_src,
		.out = pylb_backend_out(lc, &svc->bal, (uint32_t)(b - svc->bal.backends)),
	};

	l4_out_encap(lc, cfg, in_port, m, &d, tun);
}

/* A tunnel's open_decide: an IPv4 connection to an IPv6 backend holds it
 * in an IPv6 entry (pylb_conn_set_backend): is one left? */
static inline bool
l4_open_decide_mixed(const struct pylb_lcore *lc, const struct pylb_service *svc,
		     const struct pylb_tuple *t, struct l4_verdict *v)
{
	return t->af == 6 || svc->bal.backends[v->bi].addr.af == 4 || lc->ct->n_free6 != 0;
}

/* Where a client's packet of c goes as it is (DR, tunnel): its backend
 * (`mixed`: its method's), by the flow hash of (client, VIP), with the
 * backend's remembered output while c's index of it holds (checked at
 * this generation: conn_check). */
static __rte_always_inline void
l4_dest_of(struct pylb_lcore *lc, const struct pylb_conn *c, bool mixed, struct l4_dest *d)
{
	const struct pylb_service *svc = __atomic_load_n(&lc->dp->svcs[c->svc],
							 __ATOMIC_ACQUIRE);
	uint32_t hash = flow_hash(lc->dp->conf.hash_key, conn_addr(lc->ct, c, CONN_CLIENT),
				  conn_addr(lc->ct, c, CONN_VIP), c->af);
	uint8_t baf = mixed ? (uint8_t)c->backend_af : c->af;

	*d = (struct l4_dest){
		.to = conn_backend_at(lc->ct, c, baf), .to_af = baf, .af = c->af,
		.hash = hash, .flow = l4_flow(hash, c->cport), .src = &l4_port_src,
	};
	if (likely(svc != NULL)) {
		d->src = &svc->tunnel_src;
		if (likely(c->bidx < svc->bal.n_backends &&
			   c->gen == __atomic_load_n(&lc->dp->gen, __ATOMIC_ACQUIRE)))
			d->out = pylb_backend_out(lc, &svc->bal, c->bidx);
	}
}

/* DR and tunnel: a client's packet of c as it is, to its backend through
 * `out`; each method's forward binds its own output and `mixed` (no
 * lookup of the method's). */
static __rte_always_inline void
l4_forward_by(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
	      struct rte_mbuf *m, struct pylb_conn *c, l4_out_fn *out, bool mixed)
{
	struct l4_dest d;

	l4_dest_of(lc, c, mixed, &d);
	out(lc, cfg, in_port, m, &d);
}

/* The same through c's method's output, whichever it is (l4.c: a packet
 * about a connection, not a client's). */
static inline void
l4_forward_as_is(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		 struct rte_mbuf *m, struct pylb_conn *c)
{
	const struct l4_method *method = pylb_l4_methods[c->method];

	l4_forward_by(lc, cfg, in_port, m, c, method->out, method->mixed);
}

#endif /* PYLB_FORWARD_H */
