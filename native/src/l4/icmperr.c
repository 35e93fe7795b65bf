/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * ICMP errors about the flows pylb carries: destination unreachable,
 * fragmentation needed / packet too big, time exceeded, parameter problem.
 * Path MTU discovery through a load balancer works only if they reach
 * whoever sent the packet they quote, in that sender's terms. The quoted
 * header names the flow: an L4 connection, looked up as the packet that
 * would answer the quoted one, translated like the connection's own
 * packets (the outer header, the quoted header, every checksum) and sent
 * on by its method; or an L3 VIP flow, sent to the backend the quoted flow
 * hashes to (vip.c). A "too big" about a packet pylb encapsulated (IPIP,
 * GRE, IPv6 in IPv6) becomes the same error about the packet it carried,
 * with the tunnel's overhead taken off the MTU, for that packet's sender.
 */
#include <rte_hash_crc.h>
#include <rte_icmp.h>

#include "l3/quote.h"
#include "l4/l4.h"

/* May an error be relayed to `to`? At most PYLB_ICMP_RELAY_TO a second
 * to one host and PYLB_ICMP_RELAY_FROM from one network (the error's
 * source's /24 or /64), per lcore, hosts and networks sharing a slot by
 * their hash; else m is dropped and counted. */
static bool
relay_allowed(struct pylb_lcore *lc, struct rte_mbuf *m, const struct quote *q,
	      const uint8_t *to)
{
	uint64_t hz = rte_get_tsc_hz(), now = rte_get_tsc_cycles();
	uint32_t alen = q->af == 4 ? 4 : 16;
	struct pylb_tokens *t = &lc->relay_to[rte_hash_crc(to, alen, 0) % PYLB_ICMP_RELAY_SLOTS];
	struct pylb_tokens *f = &lc->relay_from[rte_hash_crc(q->outer + (q->af == 4 ? 12 : 8),
							      q->af == 4 ? 3 : 8, 1) %
						 PYLB_ICMP_RELAY_SLOTS];
	uint64_t to_cost = hz / PYLB_ICMP_RELAY_TO, from_cost = hz / PYLB_ICMP_RELAY_FROM;

	if (pylb_tokens_take(t, now, to_cost, PYLB_ICMP_RELAY_TO * to_cost)) {
		if (pylb_tokens_take(f, now, from_cost, PYLB_ICMP_RELAY_FROM * from_cost))
			return true;
		t->credit += to_cost;	/* not spent */
	}
	drop(lc, m, PYLB_D_ICMP_RELAY_LIMITED);
	return false;
}

/* An ICMP error worth matching to a connection: its quote (TCP or UDP
 * ports, a good checksum) and *t, the tuple of the packet that would
 * answer the quoted one (as the connection table knows it). False: not
 * one (m untouched), or (*taken) a bad checksum, m dropped. */
static bool
quote_of(struct pylb_lcore *lc, struct rte_mbuf *m, uint8_t af, struct quote *q,
	 struct pylb_tuple *t, bool *taken)
{
	*taken = false;
	if (!quote_parse(m, af, q) || q->ports == NULL)
		return false;
	if (!quote_cksum_ok(q)) {
		*taken = true;
		drop(lc, m, PYLB_D_ICMP_BAD_CHECKSUM);
		return false;
	}
	if (quote_mtu_invalid(q)) {
		*taken = true;
		drop(lc, m, PYLB_D_ICMP_MTU_INVALID);
		return false;
	}
	*t = (struct pylb_tuple){ .src = quote_addr(q, QUOTE_DST), .dst = quote_addr(q, QUOTE_SRC),
		.sport = q->ports[QUOTE_DST], .dport = q->ports[QUOTE_SRC],
		.proto = q->proto, .af = af };
	return true;
}

/* The SYN proxy's connections number the backend's bytes otherwise for
 * the client: a quoted sequence number of a packet to the client goes
 * back to the backend's numbers (its stack checks it is in flight). */
static void
quote_seq_to_backend(struct quote *q, const struct pylb_conn *c)
{
	if ((c->flags & CONN_F_SYNPROXY) && q->proto == IPPROTO_TCP && q->l4 >= 8)
		quote_seq_set(q, quote_seq(q) + c->seq_delta);
}

/* An error for a service's address, from the client's side (a router on
 * the way to the client, or the client), quoting a packet of a connection
 * on its way to its client (VIP:vport -> client:cport): to the backend,
 * in its terms (NAT, FullNAT) or as it is (DR, tunnel). True if m was
 * taken; false: no connection of ours (m as it was). */
bool
pylb_icmp_error_in(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		   struct rte_mbuf *m, uint8_t af)
{
	struct quote q;
	struct pylb_tuple t;
	struct pylb_conn *c;
	const uint8_t *be;
	uint8_t quote;
	bool taken;

	if (!quote_of(lc, m, af, &q, &t, &taken))
		return taken;
	if (redirect(lc, m, in_port, af, RESUME_ICMP_IN, t.src))
		return true;
	c = pylb_conn_lookup(lc, &t, false, NULL);
	if (c == NULL) {
		CNT(lc, ICMP_ERRORS_UNMATCHED);
		return false;
	}
	be = conn_backend(lc->ct, c);
	if (!relay_allowed(lc, m, &q, be))
		return true;
	quote = pylb_l4_methods[c->method]->quote;
	if (quote != L4_QUOTE_AS_IS) {
		quote_seq_to_backend(&q, c);
		quote_set(&q, QUOTE_SRC, be, c->bport);
		if (quote == L4_QUOTE_BACKEND_LOCAL) {
			quote_set(&q, QUOTE_DST, conn_addr(lc->ct, c, CONN_LIP), c->lport);
			outer_set(&q, QUOTE_SRC, conn_addr(lc->ct, c, CONN_LIP));
		}
		outer_set(&q, QUOTE_DST, be);
		quote_seal(&q);
	}
	CNT(lc, ICMP_ERRORS_TRANSLATED);
	pylb_l4_to_backend(lc, cfg, in_port, m, c);
	return true;
}

/* An error on its way to a client's address (routed) quoting a packet a
 * NAT backend was sent (client:cport -> backend:bport): the quoted
 * destination becomes the VIP, and so does the error's source if the
 * backend sent it. False if m was taken (handed to the connection's
 * worker); true: route it on. */
bool
pylb_icmp_error_nat(struct pylb_lcore *lc, const struct pylb_cfg *cfg __rte_unused,
		    int in_port, struct rte_mbuf *m, uint8_t af)
{
	struct quote q;
	struct pylb_tuple t;
	struct pylb_conn *c;
	const uint8_t *vip;
	bool taken;

	if (!quote_of(lc, m, af, &q, &t, &taken))
		return !taken;
	if (redirect(lc, m, in_port, af, RESUME_ICMP_NAT, t.dst))
		return false;
	c = pylb_conn_lookup(lc, &t, true, NULL);
	if (c == NULL || pylb_l4_methods[c->method]->replies != L4_REPLIES_ROUTED) {
		CNT(lc, ICMP_ERRORS_UNMATCHED);
		return true;
	}
	if (!relay_allowed(lc, m, &q, t.dst))
		return false;
	vip = conn_addr(lc->ct, c, CONN_VIP);
	if (memcmp(q.outer + (af == 4 ? 12 : 8), t.src, af == 4 ? 4 : 16) == 0)
		outer_set(&q, QUOTE_SRC, vip);
	quote_set(&q, QUOTE_DST, vip, c->vport);
	quote_seal(&q);
	CNT(lc, ICMP_ERRORS_TRANSLATED);
	return true;
}

/* An error for one of our addresses (a FullNAT local address) quoting a
 * packet a FullNAT backend was sent (local:lport -> backend:bport): to the
 * client, as if about the packet it sent (client:cport -> VIP:vport), from
 * the VIP. True if m was taken. */
bool
pylb_icmp_error_fullnat(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
			struct rte_mbuf *m, uint8_t af)
{
	struct pylb_dp *dp = lc->dp;
	struct quote q;
	struct pylb_tuple t;
	struct pylb_conn *c;
	const struct pylb_pp *pp;
	const uint8_t *vip;
	uint32_t n = dp->conf.n_workers;
	bool taken;

	if (!quote_of(lc, m, af, &q, &t, &taken))
		return taken;
	/* The worker that owns the local port has it (as its replies). */
	if (n > 1 && lc->slot < n && rte_be_to_cpu_16(t.dport) % n != lc->slot) {
		hand_over(lc, m, in_port, af, RESUME_ICMP_FULLNAT, rte_be_to_cpu_16(t.dport) % n);
		return true;
	}
	c = pylb_conn_lookup(lc, &t, true, NULL);
	if (c == NULL || pylb_l4_methods[c->method]->replies != L4_REPLIES_LOCAL) {
		CNT(lc, ICMP_ERRORS_UNMATCHED);
		return false;
	}
	if (!relay_allowed(lc, m, &q, conn_addr(lc->ct, c, CONN_CLIENT)))
		return true;
	vip = conn_addr(lc->ct, c, CONN_VIP);
	/* The PROXY protocol's header shifted the client's numbers. */
	pp = conn_pp(lc, c);
	if (unlikely(pp != NULL) && q.proto == IPPROTO_TCP && q.l4 >= 8)
		quote_seq_set(&q, pp_client_seq(pp, quote_seq(&q)));
	quote_set(&q, QUOTE_SRC, conn_addr(lc->ct, c, CONN_CLIENT), c->cport);
	quote_set(&q, QUOTE_DST, vip, c->vport);
	outer_set(&q, QUOTE_SRC, vip);
	outer_set(&q, QUOTE_DST, conn_addr(lc->ct, c, CONN_CLIENT));
	quote_seal(&q);
	CNT(lc, ICMP_ERRORS_TRANSLATED);
	pylb_l4_route(lc, cfg, in_port, m, af);
	return true;
}

/* An error for one of our addresses: "fragmentation needed" / "packet too
 * big" about a packet we encapsulated (its quoted header: from this very
 * address, IPIP, IPv6 in IP, or GRE) becomes the error about the packet
 * inside, for its sender (the client), from the address it was sent to,
 * the MTU less the encapsulation. True if m was taken. */
bool
pylb_icmp_error_tunnel(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		       struct rte_mbuf *m, uint8_t af)
{
	struct quote q;
	uint32_t alen = af == 4 ? 4 : 16, over, inner_hl, mtu;
	uint8_t *inner;

	if (!quote_parse(m, af, &q) || !quote_cksum_ok(&q))
		return false;
	if (af == 4 ? q.icmp[0] != ICMP_DEST_UNREACH || q.icmp[1] != ICMP_FRAG_NEEDED :
	    q.icmp[0] != ICMP6_PACKET_TOO_BIG)
		return false;
	if (quote_mtu_invalid(&q)) {
		drop(lc, m, PYLB_D_ICMP_MTU_INVALID);
		return true;
	}
	/* Ours: from the address the error is for, carrying IP of the same
	 * family (an error of the other family would have to be built). */
	if (memcmp(quote_addr(&q, QUOTE_SRC), q.outer + (af == 4 ? 16 : 24), alen) != 0)
		return false;
	over = q.hl + (q.proto == IPPROTO_GRE ? 4 : 0);
	if (af == 4 ? q.proto != IPPROTO_IPIP && q.proto != IPPROTO_GRE :
	    q.proto != IPPROTO_IPV6 && q.proto != IPPROTO_GRE)
		return false;
	inner = q.ip + over;
	inner_hl = af == 4 ? (uint32_t)(inner[0] & 0x0f) * 4 : 40;
	if (q.len < 8 + over + inner_hl + 8 || (inner[0] >> 4) != (af == 4 ? 4 : 6))
		return false;
	if (!relay_allowed(lc, m, &q, inner + (af == 4 ? 12 : 8)))
		return true;
	/* The quote becomes the inner packet (read from q.ip from here on);
	 * the error shrinks by `over`. */
	memmove(q.ip, inner, q.len - 8 - over);
	q.len -= over;
	if (af == 4) {
		struct rte_ipv4_hdr *h = (struct rte_ipv4_hdr *)q.outer;
		uint16_t v;

		memcpy(&v, q.icmp + 6, 2);
		mtu = rte_be_to_cpu_16(v);
		v = rte_cpu_to_be_16((uint16_t)RTE_MAX(mtu > over ? mtu - over : 0, 68u));
		memcpy(q.icmp + 6, &v, 2);
		h->total_length = rte_cpu_to_be_16((uint16_t)(rte_be_to_cpu_16(h->total_length) - over));
		memcpy(&h->src_addr, q.ip + 16, 4);	/* the address it was sent to */
		memcpy(&h->dst_addr, q.ip + 12, 4);	/* its sender */
		h->hdr_checksum = 0;
		h->hdr_checksum = rte_ipv4_cksum(h);
	} else {
		struct rte_ipv6_hdr *h = (struct rte_ipv6_hdr *)q.outer;
		uint32_t v;

		memcpy(&v, q.icmp + 4, 4);
		mtu = rte_be_to_cpu_32(v);
		v = rte_cpu_to_be_32(RTE_MAX(mtu > over ? mtu - over : 0, 1280u));
		memcpy(q.icmp + 4, &v, 4);
		h->payload_len = rte_cpu_to_be_16((uint16_t)(rte_be_to_cpu_16(h->payload_len) - over));
		memcpy(h->src_addr, q.ip + 24, 16);
		memcpy(h->dst_addr, q.ip + 8, 16);
	}
	rte_pktmbuf_trim(m, (uint16_t)over);
	quote_seal(&q);
	CNT(lc, ICMP_ERRORS_TRANSLATED);
	pylb_l4_route(lc, cfg, in_port, m, af);
	return true;
}
