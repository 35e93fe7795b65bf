/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * The client's address for FullNAT backends: the PROXY protocol
 * (haproxy.org's proxy-protocol.txt, v1 text or v2 binary). A FullNAT
 * backend sees pylb's local address as its peer; a service with
 * proxy_protocol puts a header naming the client and the VIP
 *   - TCP: in front of the client's first byte, once per connection: the
 *     client's segments that start at its ISN + 1 get the header inserted
 *     (the handshake's last ACK already, so a server that speaks first
 *     hears it too; every retransmission of the first data segment gets
 *     the same bytes again, and pure ACKs until the backend acknowledged
 *     the header); from then on the client's sequence numbers are the
 *     header's length ahead in the backend's terms, and the backend's
 *     acknowledgements (and SACK edges) that much behind in the client's.
 *     The backend's SYN-ACK offers an MSS that much smaller (a SYN cookie's
 *     SYN-ACK, the most a header can take), so the first segment still
 *     fits;
 *   - UDP (v2 only): in front of every datagram.
 * A connection's state (its client's first byte, the header's length) is
 * in a side table by connection index (struct pylb_pp), made for every
 * lcore when the first service with a header is added.
 */
#include <arpa/inet.h>
#include <stdio.h>

#include <rte_malloc.h>

#include "l4/l4.h"

static const uint8_t v2_sig[12] = "\r\n\r\n\0\r\nQUIT\n";

/* c's header (`version`) into buf (PYLB_PP_MAX bytes): its length. */
static uint32_t
header(const struct pylb_conntrack *ct, const struct pylb_conn *c, uint8_t version,
       uint8_t *buf)
{
	const uint8_t *client = conn_addr(ct, c, CONN_CLIENT), *vip = conn_addr(ct, c, CONN_VIP);
	uint32_t alen = c->af == 4 ? 4 : 16;

	if (version == PYLB_PROXY_V1) {
		char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN], line[PYLB_PP_MAX + 1];
		int af = c->af == 4 ? AF_INET : AF_INET6;
		int n;

		inet_ntop(af, client, a, sizeof(a));
		inet_ntop(af, vip, b, sizeof(b));
		n = snprintf(line, sizeof(line), "PROXY TCP%c %s %s %u %u\r\n",
			     c->af == 4 ? '4' : '6', a, b, rte_be_to_cpu_16(c->cport),
			     rte_be_to_cpu_16(c->vport));
		memcpy(buf, line, (size_t)n);	/* (not its NUL: buf is the payload's place) */
		return (uint32_t)n;
	}
	memcpy(buf, v2_sig, sizeof(v2_sig));
	buf[12] = 0x21;					/* version 2, PROXY */
	buf[13] = (uint8_t)((c->af == 4 ? 0x10 : 0x20) |	/* AF_INET, AF_INET6 */
			    (c->proto == IPPROTO_TCP ? 1 : 2));	/* STREAM, DGRAM */
	buf[14] = 0;
	buf[15] = (uint8_t)(2 * alen + 4);
	memcpy(buf + 16, client, alen);
	memcpy(buf + 16 + alen, vip, alen);
	memcpy(buf + 16 + 2 * alen, &c->cport, 2);
	memcpy(buf + 18 + 2 * alen, &c->vport, 2);
	return 16 + 2 * alen + 4;
}

int
pylb_pp_enable(struct pylb_dp *dp)
{
	for (uint32_t i = 0; i < dp->n_slots; i++) {
		struct pylb_conntrack *ct = dp->lcores[i].ct;
		struct pylb_pp *pp;

		if (ct->pp != NULL)
			continue;
		pp = rte_zmalloc("pylb_pp", (ct->cap + 1) * sizeof(*pp), RTE_CACHE_LINE_SIZE);
		if (pp == NULL)
			return pylb_fail(-PYLB_E_NOMEM, "cannot allocate the PROXY protocol table");
		__atomic_store_n(&ct->pp, pp, __ATOMIC_RELEASE);
	}
	return 0;
}

void
pylb_pp_open(struct pylb_lcore *lc, struct pylb_conn *c, const struct pylb_service *svc)
{
	struct pylb_conntrack *ct = lc->ct;
	uint8_t buf[PYLB_PP_MAX];
	struct pylb_pp *pp;

	if (svc->conf.proxy_protocol == PYLB_PROXY_OFF || ct->pp == NULL)
		return;
	pp = &ct->pp[c - ct->conns];
	pp->version = svc->conf.proxy_protocol;
	pp->started = 0;
	pp->acked = 0;
	pp->len = (uint8_t)header(ct, c, pp->version, buf);
}

uint32_t
pylb_pp_room(const struct pylb_service *svc, uint8_t af)
{
	switch (svc->conf.proxy_protocol) {
	case PYLB_PROXY_V1:
		return PYLB_PP_MAX;
	case PYLB_PROXY_V2:
		return 16 + 2 * (af == 4 ? 4 : 16) + 4;
	default:
		return 0;
	}
}

/* Make room for `len` bytes at `at` in m (one segment), moving what
 * follows; false if the mbuf has no room. */
static bool
open_gap(struct rte_mbuf *m, uint8_t *at, uint32_t len)
{
	uint8_t *end = rte_pktmbuf_mtod(m, uint8_t *) + rte_pktmbuf_data_len(m);

	if (m->nb_segs != 1 || rte_pktmbuf_append(m, (uint16_t)len) == NULL)
		return false;
	memmove(at + len, at, (size_t)(end - at));
	return true;
}

/* The IP header's length field (and IPv4's checksum) `len` bytes longer. */
static void
ip_grow(struct rte_mbuf *m, uint8_t af, uint32_t len)
{
	uint8_t *ip = rte_pktmbuf_mtod_offset(m, uint8_t *, sizeof(struct rte_ether_hdr));

	if (af == 4) {
		struct rte_ipv4_hdr *h = (struct rte_ipv4_hdr *)ip;

		h->total_length = rte_cpu_to_be_16((uint16_t)(rte_be_to_cpu_16(h->total_length) + len));
		h->hdr_checksum = 0;
		h->hdr_checksum = rte_ipv4_cksum(h);
	} else {
		struct rte_ipv6_hdr *h = (struct rte_ipv6_hdr *)ip;

		h->payload_len = rte_cpu_to_be_16((uint16_t)(rte_be_to_cpu_16(h->payload_len) + len));
	}
}

/* A UDP datagram with the header in front of its payload. */
static bool
udp_insert(struct pylb_lcore *lc, struct rte_mbuf *m, struct rte_udp_hdr *u,
	   const struct pylb_conn *c, const struct pylb_pp *pp)
{
	uint8_t *ip = rte_pktmbuf_mtod_offset(m, uint8_t *, sizeof(struct rte_ether_hdr));
	uint32_t ulen = rte_be_to_cpu_16(u->dgram_len);

	if (!open_gap(m, (uint8_t *)(u + 1), pp->len))
		return false;
	header(lc->ct, c, pp->version, (uint8_t *)(u + 1));
	ulen += pp->len;
	u->dgram_len = rte_cpu_to_be_16((uint16_t)ulen);
	ip_grow(m, c->af, pp->len);
	if (c->af == 6 || u->dgram_cksum != 0) {	/* IPv4's 0: none, kept */
		u->dgram_cksum = 0;
		u->dgram_cksum = l4_cksum(ip, c->af, u, ulen, IPPROTO_UDP);
	}
	return true;
}

/* The client's segment at its first byte, with data: the header in front. */
static bool
tcp_insert(struct pylb_lcore *lc, struct rte_mbuf *m, struct rte_tcp_hdr *t,
	   const struct pylb_conn *c, const struct pylb_pp *pp)
{
	uint8_t *ip = rte_pktmbuf_mtod_offset(m, uint8_t *, sizeof(struct rte_ether_hdr));
	uint32_t tlen = (uint32_t)(t->data_off >> 4) * 4 + tcp_payload_len(m, c->af, t);
	uint8_t *data = (uint8_t *)t + (t->data_off >> 4) * 4;

	if (!open_gap(m, data, pp->len))
		return false;
	header(lc->ct, c, pp->version, data);
	ip_grow(m, c->af, pp->len);
	t->cksum = 0;
	t->cksum = l4_cksum(ip, c->af, t, tlen + pp->len, IPPROTO_TCP);
	CNT(lc, PROXY_HEADERS_SENT);
	return true;
}

bool
pylb_pp_to_backend(struct pylb_lcore *lc, struct rte_mbuf *m, uint16_t *ports,
		   const struct pylb_conn *c, struct pylb_pp *pp)
{
	struct rte_tcp_hdr *t = (struct rte_tcp_hdr *)ports;
	uint32_t seq;
	uint64_t sum = 0;

	if (unlikely(frag_followed(lc, ports))) {
		/* A later fragment: its first was shifted (TCP; it goes on)
		 * or dropped (UDP: so is it). */
		if (c->proto == IPPROTO_TCP)
			return true;
		drop(lc, m, PYLB_D_PROXY_FRAGMENT);
		return false;
	}
	if (c->proto == IPPROTO_UDP) {
		if (frag_suspect(m, c->af, c->proto)) {
			drop(lc, m, PYLB_D_PROXY_FRAGMENT);
			return false;
		}
		if (udp_insert(lc, m, (struct rte_udp_hdr *)ports, c, pp)) {
			CNT(lc, PROXY_HEADERS_SENT);
			return true;
		}
		drop(lc, m, PYLB_D_PROXY_NO_ROOM);
		return false;
	}
	seq = rte_be_to_cpu_32(t->sent_seq);
	if (t->tcp_flags & RTE_TCP_SYN_FLAG) {
		pp->start = seq + 1;
		pp->started = 1;
		return true;
	}
	if (!pp->started)
		return true;	/* (not from its SYN: nothing to go by) */
	if (seq == pp->start && !(t->tcp_flags & RTE_TCP_RST_FLAG) &&
	    (!pp->acked || tcp_payload_len(m, c->af, t) != 0)) {
		if (frag_suspect(m, c->af, c->proto)) {
			drop(lc, m, PYLB_D_PROXY_FRAGMENT);
			return false;
		}
		if (!tcp_insert(lc, m, t, c, pp)) {
			drop(lc, m, PYLB_D_PROXY_NO_ROOM);
			return false;
		}
		return true;
	}
	if ((int32_t)(seq - pp->start) > 0 || (seq == pp->start && pp->acked)) {
		word_set(&t->sent_seq, seq + pp->len, &sum);
		t->cksum = cksum_apply(t->cksum, sum);
	}
	return true;
}

void
pylb_pp_to_client(struct rte_mbuf *m, uint16_t *ports, struct pylb_pp *pp)
{
	struct rte_tcp_hdr *t = (struct rte_tcp_hdr *)ports;
	struct tcp_opts it;
	uint64_t sum = 0;
	uint8_t kind;

	if (!pp->started)
		return;
	if (t->tcp_flags & RTE_TCP_ACK_FLAG) {
		uint32_t ack = rte_be_to_cpu_32(t->recv_ack);

		if ((int32_t)(ack - pp->start) >= (int32_t)pp->len)
			pp->acked = 1;
		word_set(&t->recv_ack, pp_client_seq(pp, ack), &sum);
	}
	opt_start(&it, t, seg_avail(m, t));
	while ((kind = opt_next(&it)) != 0) {
		uint8_t *o = it.p + it.at;

		if (kind == 5)		/* SACK: edges of the client's data */
			for (uint32_t e = 2; e + 4 <= it.ol; e += 4) {
				uint32_t v;

				memcpy(&v, o + e, 4);
				word_set(o + e, pp_client_seq(pp, rte_be_to_cpu_32(v)), &sum);
			}
		else if (kind == 2 && it.ol == 4 && (t->tcp_flags & RTE_TCP_SYN_FLAG)) {
			/* The MSS the backend takes, less the header. */
			uint16_t old, mss;

			memcpy(&old, o + 2, 2);
			mss = rte_be_to_cpu_16(old);
			mss = rte_cpu_to_be_16(mss > pp->len + 64 ? (uint16_t)(mss - pp->len) : mss);
			memcpy(o + 2, &mss, 2);
			t->cksum = cksum_adjust16(t->cksum, old, mss);
		}
	}
	t->cksum = cksum_apply(t->cksum, sum);
}
