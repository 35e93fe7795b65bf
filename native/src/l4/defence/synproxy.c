/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * SYN cookies and the proxied handshake, for NAT and FullNAT TCP services
 * (DR and tunnel backends answer their clients directly: nothing between
 * could translate their sequence numbers).
 *
 * Under pressure (the lcore's half-open entries at the threshold), or
 * always (a service's syn_proxy), a SYN is answered here with a SYN-ACK
 * whose sequence number is a cookie, and nothing is stored. The client's
 * ACK proves its address: the cookie is checked, the connection opens
 * (scheduled like any other), and the ACK becomes the SYN to the backend,
 * with the client's own ISN and the options the cookie kept (MSS rounded
 * down to one of four, window scale, SACK permitted; not timestamps). The
 * backend's SYN-ACK is answered here with the handshake's last ACK; from
 * then on the backend's sequence numbers are shifted by the difference
 * between its ISN and the cookie, both ways (its sequence numbers towards
 * the client, the client's acknowledgements and SACK edges towards it),
 * and its windows rescaled if it chose another scale than the cookie
 * SYN-ACK announced. Client packets that arrive while the backend answers
 * are held (PYLB_SYNPROXY_HOLD per lcore) and sent after the ACK. The
 * SYN is held too, a copy: sent again by the ageing sweep while the
 * backend does not answer (after PYLB_SYNPROXY_RTO_MS, then twice and four
 * times as long: the SYN or its answer lost), PYLB_SYNPROXY_SYN_TRIES
 * times; then the connection ends, and the client's next packet (a
 * retransmission, the cookie again) opens it anew.
 *
 * A cookie is 23 bits of the cookies' MAC (core/mac.h: AES-128 under the
 * dataplane's key) over the client's and the VIP's addresses and ports,
 * the client's ISN, the time in PYLB_COOKIE_PERIOD_S periods and the 9
 * bits of data it carries: the period's low 2 bits, the MSS index (2), the
 * window scale (4, 15: none) and SACK permitted (1). It is good in its
 * period and the next.
 */
#include <rte_cycles.h>
#include <rte_tcp.h>

#include "l4/l4.h"

#define COOKIE_DATA	9			/* bits of data under the MAC */
#define COOKIE_DATA_MASK ((1u << COOKIE_DATA) - 1)
#define WS_NONE		15

static const uint16_t cookie_mss[4] = { 536, 1220, 1440, 1460 };

/* What a SYN asks for (ws WS_NONE: no window scaling; mss 0: none). */
struct syn_opts {
	uint16_t mss;
	uint8_t ws;
	bool sack;
};

/* The options of the TCP header at t, within the `avail` bytes the
 * segment has there. */
static void
syn_options(const struct rte_tcp_hdr *t, uint32_t avail, struct syn_opts *o)
{
	struct tcp_opts it;
	uint8_t kind;

	o->mss = 0;
	o->ws = WS_NONE;
	o->sack = false;
	opt_start(&it, t, avail);
	while ((kind = opt_next(&it)) != 0) {
		const uint8_t *v = it.p + it.at + 2;

		if (kind == 2 && it.ol == 4)
			o->mss = (uint16_t)(v[0] << 8 | v[1]);
		else if (kind == 3 && it.ol == 3)
			o->ws = RTE_MIN(v[0], 14);
		else if (kind == 4 && it.ol == 2)
			o->sack = true;
	}
}

/* A SYN's 12 bytes of options: MSS, SACK permitted (or NOPs), window
 * scale (or NOPs). */
static void
syn_options_write(uint8_t *p, uint16_t mss, bool sack, uint8_t ws)
{
	static const uint8_t nops[12] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 };

	memcpy(p, nops, sizeof(nops));
	p[0] = 2;
	p[1] = 4;
	p[2] = (uint8_t)(mss >> 8);
	p[3] = (uint8_t)mss;
	if (sack) {
		p[6] = 4;
		p[7] = 2;
	}
	if (ws != WS_NONE) {
		p[9] = 3;
		p[10] = 3;
		p[11] = ws;
	}
}

#define SYN_OPTS_LEN	12

static inline uint64_t
cookie_period(void)
{
	return rte_get_timer_hz() * PYLB_COOKIE_PERIOD_S;
}

/* The current period's number (a division once a period, not per SYN). */
static inline uint64_t
cookie_now(struct pylb_conntrack *ct, uint64_t now)
{
	if (unlikely(now >= ct->period_end)) {
		uint64_t len = cookie_period();

		ct->period = now / len;
		ct->period_end = (ct->period + 1) * len;
	}
	return ct->period;
}

/* The MAC (core/mac.h) of 'S', the family, the ports, then the ISN and the
 * period (its low 23 bits) with the data; then the addresses: IPv4's in one
 * more block (8 zero bytes after them), IPv6's in two. */
static uint32_t
cookie_mac(const struct pylb_lcore *lc, const struct pylb_tuple *t, uint32_t isn,
	   uint64_t period, uint32_t data)
{
	uint64_t w[6];

	w[0] = 'S' | (uint64_t)t->af << 8 | (uint64_t)t->sport << 16 | (uint64_t)t->dport << 32;
	w[1] = isn | (period << COOKIE_DATA | data) << 32;
	if (t->af == 4) {
		w[2] = hk_word(t->src, 0) | (uint64_t)hk_word(t->dst, 0) << 32;
		w[3] = 0;
		return (uint32_t)pylb_mac(&lc->dp->mac, w, 2);
	}
	memcpy(&w[2], t->src, 16);
	memcpy(&w[4], t->dst, 16);
	return (uint32_t)pylb_mac(&lc->dp->mac, w, 3);
}

/* The cookie for the SYN of tuple t (client to VIP) with ISN isn. */
static uint32_t
cookie_make(struct pylb_lcore *lc, const struct pylb_tuple *t, uint32_t isn,
	    const struct syn_opts *o, uint32_t *mss_index)
{
	uint64_t period = cookie_now(lc->ct, lc->now);
	uint16_t mss = o->mss ? o->mss : t->af == 4 ? 536 : 1220;
	uint32_t mi = 0, data;

	for (uint32_t i = 3; i > 0; i--)
		if (mss >= cookie_mss[i]) {
			mi = i;
			break;
		}
	*mss_index = mi;
	data = (uint32_t)(period & 3) << 7 | mi << 5 | (uint32_t)o->ws << 1 | o->sack;
	return (cookie_mac(lc, t, isn, period, data) & ~COOKIE_DATA_MASK) | data;
}

/* The options a cookie kept. */
static inline void
cookie_options(uint32_t cookie, struct syn_opts *o)
{
	uint32_t data = cookie & COOKIE_DATA_MASK;

	o->mss = cookie_mss[(data >> 5) & 3];
	o->ws = (data >> 1) & 15;
	o->sack = data & 1;
}

/* 0 if the ACK of t (seq, ack) answers a cookie this appliance gave the
 * SYN of t in this period or the last; else the drop reason. Read only. */
int
pylb_synproxy_cookie_check(const struct pylb_lcore *lc, const struct pylb_tuple *t,
			   uint32_t seq, uint32_t ack, uint64_t now)
{
	uint32_t cookie = ack - 1;
	uint32_t data = cookie & COOKIE_DATA_MASK;
	uint64_t period = now / cookie_period();
	uint64_t age = (period - (data >> 7)) & 3;

	if (((cookie_mac(lc, t, seq - 1, period - age, data) ^ cookie) & ~COOKIE_DATA_MASK) != 0)
		return PYLB_D_SYN_COOKIE_INVALID;
	if (age > 1)
		return PYLB_D_SYN_COOKIE_EXPIRED;
	return 0;
}

static inline uint32_t
ip_header_len(const struct rte_mbuf *m, const struct rte_tcp_hdr *t)
{
	return (uint32_t)((const uint8_t *)t - rte_pktmbuf_mtod(m, const uint8_t *)) -
		(uint32_t)sizeof(struct rte_ether_hdr);
}

void
pylb_synproxy_syn(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		  struct rte_mbuf *m, uint16_t *ports, const struct pylb_tuple *t,
		  uint32_t mss_less)
{
	struct rte_tcp_hdr *th = (struct rte_tcp_hdr *)ports;
	uint32_t isn = rte_be_to_cpu_32(th->sent_seq), cookie, mi;
	struct syn_opts o;

	/* Answered from where it arrived, so only a plain header: no IPv4
	 * options, no IPv6 extension headers (reversing them is not ours). */
	if (in_port < 0 || ip_header_len(m, th) != (t->af == 4 ? 20u : 40u))
		return drop(lc, m, PYLB_D_SYN_PROXY_UNSUPPORTED);
	syn_options(th, seg_avail(m, th), &o);
	cookie = cookie_make(lc, t, isn, &o, &mi);
	if (!seg_fit(lc, m, th, sizeof(*th) + SYN_OPTS_LEN))
		return;
	th->sent_seq = rte_cpu_to_be_32(cookie);
	th->recv_ack = rte_cpu_to_be_32(isn + 1);
	th->tcp_flags = RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG;
	th->data_off = (sizeof(*th) + SYN_OPTS_LEN) / 4 << 4;
	th->rx_win = RTE_BE16(PYLB_SYNPROXY_WINDOW);
	syn_options_write((uint8_t *)(th + 1), (uint16_t)(cookie_mss[mi] - mss_less), o.sack,
			  o.ws == WS_NONE ? WS_NONE : PYLB_SYNPROXY_WSCALE);
	CNT(lc, SYN_COOKIES_SENT);
	lc->ct->cookies_until = lc->ct->period_end + cookie_period();
	tcp_answer(lc, cfg, in_port, m, t->af, th, sizeof(*th) + SYN_OPTS_LEN);
}

/* How long the SYN to the backend waits for an answer after its
 * (tries + 1)th sending. */
static inline uint64_t
syn_rto(uint32_t tries)
{
	return (rte_get_timer_hz() * PYLB_SYNPROXY_RTO_MS / 1000) << tries;
}

/* A copy of c's SYN (m, before its translation), held with the client's
 * packets, to send again; none if the hold is full or there is no mbuf
 * (then c ends unanswered, and the client's next packet opens it anew). */
static void
keep_syn(struct pylb_lcore *lc, int in_port, const struct rte_mbuf *m, const struct pylb_conn *c)
{
	struct pylb_conntrack *ct = lc->ct;
	struct rte_mbuf *copy;

	if (ct->n_held == PYLB_SYNPROXY_HOLD)
		return;
	copy = rte_pktmbuf_copy(m, m->pool, 0, UINT32_MAX);
	if (copy == NULL)
		return;
	ct->held[ct->n_held++] = (struct pylb_held){
		.m = copy, .conn = (uint32_t)(c - ct->conns), .in_port = in_port, .syn = 1,
	};
}

bool
pylb_synproxy_again(struct pylb_lcore *lc, struct pylb_conn *c, uint64_t now)
{
	struct pylb_conntrack *ct = lc->ct;
	uint32_t idx = (uint32_t)(c - ct->conns);
	struct rte_mbuf *copy;

	for (uint32_t i = 0; i < ct->n_held; i++) {
		struct pylb_held *h = &ct->held[i];

		if (h->conn != idx || !h->syn)
			continue;
		if (h->tries == PYLB_SYNPROXY_SYN_TRIES ||
		    (copy = rte_pktmbuf_copy(h->m, h->m->pool, 0, UINT32_MAX)) == NULL)
			return false;
		h->tries++;
		CNT(lc, SYN_PROXY_RESENT);
		pylb_l4_resume(lc, __atomic_load_n(&lc->dp->cfg, __ATOMIC_ACQUIRE), h->in_port,
			       copy, c);
		c->expire_tsc = now + syn_rto(h->tries);
		return true;
	}
	return false;
}

/* c: the connection a cookie's ACK (m) opened. The ACK becomes the SYN to
 * the backend, with the client's ISN and the options the cookie kept. */
void
pylb_synproxy_open(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		   struct rte_mbuf *m, uint16_t *ports, const struct pylb_tuple *t,
		   struct pylb_conn *c)
{
	struct rte_tcp_hdr *th = (struct rte_tcp_hdr *)ports;
	uint32_t seq = rte_be_to_cpu_32(th->sent_seq);
	uint32_t cookie = rte_be_to_cpu_32(th->recv_ack) - 1;
	uint32_t win = (uint32_t)rte_be_to_cpu_16(th->rx_win);
	struct syn_opts o;

	cookie_options(cookie, &o);
	/* Until the backend answers: the cookie, the client's window scale
	 * and the one the cookie SYN-ACK gave. */
	c->seq_delta = cookie;
	c->flags |= CONN_F_SYNPROXY | CONN_F_OPENING |
		CONN_WS(o.ws, o.ws == WS_NONE ? WS_NONE : PYLB_SYNPROXY_WSCALE);
	CNT(lc, SYN_PROXY_OPENED);
	/* The window it offered, unscaled. */
	if (!seg_fit(lc, m, th, sizeof(*th) + SYN_OPTS_LEN))
		return;
	if (o.ws != WS_NONE)
		win <<= o.ws;
	th->sent_seq = rte_cpu_to_be_32(seq - 1);
	th->recv_ack = 0;
	th->tcp_flags = RTE_TCP_SYN_FLAG;
	th->data_off = (sizeof(*th) + SYN_OPTS_LEN) / 4 << 4;
	th->rx_win = rte_cpu_to_be_16((uint16_t)RTE_MIN(win, 65535u));
	syn_options_write((uint8_t *)(th + 1), o.mss, o.sack, o.ws);
	seg_finish(m, t->af, th, sizeof(*th) + SYN_OPTS_LEN);
	keep_syn(lc, in_port, m, c);
	pylb_l4_resume(lc, cfg, in_port, m, c);
	c->expire_tsc = lc->now + syn_rto(0);
}

void
pylb_synproxy_hold(struct pylb_lcore *lc, int in_port, struct rte_mbuf *m,
		   const struct pylb_conn *c)
{
	struct pylb_conntrack *ct = lc->ct;

	if (ct->n_held == PYLB_SYNPROXY_HOLD)
		return drop(lc, m, PYLB_D_SYN_PROXY_HOLD_FULL);
	ct->held[ct->n_held++] = (struct pylb_held){
		.m = m, .conn = (uint32_t)(c - ct->conns), .in_port = in_port,
	};
	CNT(lc, SYN_PROXY_HELD);
}

void
pylb_synproxy_to_backend(const struct pylb_conn *c, struct rte_mbuf *m, uint16_t *ports)
{
	struct rte_tcp_hdr *th = (struct rte_tcp_hdr *)ports;
	uint32_t d = c->seq_delta;
	struct tcp_opts it;
	uint64_t sum = 0;
	uint8_t kind;

	if (c->flags & CONN_F_OPENING)
		return;		/* the SYN to the backend */
	if (th->tcp_flags & RTE_TCP_ACK_FLAG)
		word_set(&th->recv_ack, rte_be_to_cpu_32(th->recv_ack) + d, &sum);
	/* SACK blocks: edges of the backend's data, in its numbers. */
	opt_start(&it, th, seg_avail(m, th));
	while ((kind = opt_next(&it)) != 0)
		for (uint32_t e = 2; kind == 5 && e + 4 <= it.ol; e += 4) {
			uint32_t v;

			memcpy(&v, it.p + it.at + e, 4);
			word_set(it.p + it.at + e, rte_be_to_cpu_32(v) + d, &sum);
		}
	th->cksum = cksum_apply(th->cksum, sum);
}

/* A backend's packet of an open proxied connection: its numbers in the
 * cookie's terms, its window in the scale the client was given. */
static void
to_client(const struct pylb_conn *c, struct rte_tcp_hdr *th)
{
	uint32_t b = CONN_WS_B(c->flags), a = CONN_WS_A(c->flags);
	uint64_t sum = 0;

	word_set(&th->sent_seq, rte_be_to_cpu_32(th->sent_seq) - c->seq_delta, &sum);
	th->cksum = cksum_apply(th->cksum, sum);
	b = b == WS_NONE ? 0 : b;
	a = a == WS_NONE ? 0 : a;
	if (unlikely(b != a)) {
		uint16_t old = th->rx_win;
		uint32_t w = ((uint32_t)rte_be_to_cpu_16(old) << b) >> a;

		if (w == 0 && old != 0)
			w = 1;	/* never a zero window that was not one */
		th->rx_win = rte_cpu_to_be_16((uint16_t)RTE_MIN(w, 65535u));
		th->cksum = cksum_adjust16(th->cksum, old, th->rx_win);
	}
}

/* The backend's SYN-ACK to the SYN the proxy sent: the difference of the
 * numbers noted, the handshake's last ACK sent back in its place, the
 * client's held packets after it. */
static void
backend_answered(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		 struct rte_mbuf *m, struct rte_tcp_hdr *th, struct pylb_conn *c)
{
	uint32_t isn = rte_be_to_cpu_32(th->sent_seq);
	uint32_t ws_c = CONN_WS_B(c->flags), ws_a = CONN_WS_A(c->flags);
	struct pylb_held held[PYLB_SYNPROXY_HOLD];
	struct syn_opts o;
	uint32_t n;

	syn_options(th, seg_avail(m, th), &o);
	c->seq_delta = isn - c->seq_delta;
	c->flags = (uint16_t)((c->flags & ~(CONN_F_OPENING | CONN_WS_MASK)) |
		CONN_WS(ws_c != WS_NONE ? o.ws : WS_NONE, ws_a));
	pylb_conn_state(lc, c, PYLB_TCP_ESTABLISHED);
	pylb_conn_changed(lc->ct, c);
	c->expire_tsc = lc->now + __atomic_load_n(&lc->dp->timeout_tsc[PYLB_TCP_ESTABLISHED],
						  __ATOMIC_RELAXED);
	if (!seg_fit(lc, m, th, sizeof(*th)))
		return;
	th->sent_seq = th->recv_ack;
	th->recv_ack = rte_cpu_to_be_32(isn + 1);
	th->tcp_flags = RTE_TCP_ACK_FLAG;
	th->data_off = sizeof(*th) / 4 << 4;
	th->rx_win = rte_cpu_to_be_16((uint16_t)(ws_c == WS_NONE ? 65535 : 65535 >> ws_c));
	seg_turn(m, c->af, th);
	seg_finish(m, c->af, th, sizeof(*th));
	CNT(lc, SYN_PROXY_ESTABLISHED);
	pylb_l4_to_backend(lc, cfg, in_port, m, c);
	n = pylb_conn_unhold(lc, c, held);
	for (uint32_t i = 0; i < n; i++)
		pylb_l4_resume(lc, cfg, held[i].in_port, held[i].m, c);
}

bool
pylb_synproxy_reply(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		    struct rte_mbuf *m, uint16_t *ports, struct pylb_conn *c)
{
	struct rte_tcp_hdr *th = (struct rte_tcp_hdr *)ports;
	uint8_t f = th->tcp_flags & (RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG | RTE_TCP_RST_FLAG);

	if (likely(!(c->flags & CONN_F_OPENING))) {
		to_client(c, th);
		return true;
	}
	if (f == (RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG)) {
		backend_answered(lc, cfg, in_port, m, th, c);
		return false;
	}
	if (f & RTE_TCP_RST_FLAG) {
		/* Refused: the client hears it in the cookie's numbers. */
		uint64_t sum = 0;

		word_set(&th->sent_seq, c->seq_delta + 1, &sum);
		word_set(&th->recv_ack, 0, &sum);
		th->cksum = cksum_apply(th->cksum, sum);
		th->cksum = cksum_adjust16(th->cksum, rte_cpu_to_be_16(th->data_off << 8 | th->tcp_flags),
					   rte_cpu_to_be_16(th->data_off << 8 | RTE_TCP_RST_FLAG));
		th->tcp_flags = RTE_TCP_RST_FLAG;
		c->seq_delta = 0;
		c->flags = (uint16_t)((c->flags & ~(CONN_F_OPENING | CONN_WS_MASK)) |
			CONN_WS(WS_NONE, WS_NONE));
		pylb_conn_unhold(lc, c, NULL);
		CNT(lc, SYN_PROXY_REFUSED);
		return true;
	}
	drop(lc, m, PYLB_D_SYN_PROXY_UNEXPECTED);
	return false;
}
