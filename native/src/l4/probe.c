/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * A data-path probe's answer (ctl/probe.c sends the probes): caught where
 * packets for the appliance's own addresses are delivered, noted in the
 * probe's slot (SYN-ACK or datagram: answered; RST: refused); a SYN-ACK is
 * answered with a RST by the backend's method.
 */
#include "l4/l4.h"

/* The SYN-ACK m, turned into the RST that ends the probe's handshake. */
static void
reset(struct pylb_lcore *lc, const struct pylb_cfg *cfg, struct rte_mbuf *m,
      struct rte_tcp_hdr *t, const struct pylb_probe *p)
{
	uint8_t *ip = rte_pktmbuf_mtod_offset(m, uint8_t *, sizeof(struct rte_ether_hdr));
	uint32_t alen = p->vip.af == 4 ? 4 : 16;
	uint8_t *src = ip + (p->vip.af == 4 ? 12 : 8), *dst = src + alen;
	uint16_t port = t->src_port;

	memcpy(dst, p->vip.ip, alen);
	memcpy(src, p->src.ip, alen);
	t->src_port = t->dst_port;
	t->dst_port = port;
	t->sent_seq = t->recv_ack;
	t->recv_ack = 0;
	t->data_off = sizeof(*t) << 2;
	t->tcp_flags = RTE_TCP_RST_FLAG;
	t->rx_win = 0;
	if (!seg_fit(lc, m, t, sizeof(*t)))
		return;
	seg_finish(m, p->vip.af, t, sizeof(*t));
	pylb_l4_method_out(lc, cfg, m, p->method, p->backend.ip, p->backend.af);
}

/* Pending -> got, unless the probe ended meanwhile. */
static bool
settle(struct pylb_probe *p, uint8_t got)
{
	uint8_t pending = PYLB_PROBE_PENDING;

	return __atomic_compare_exchange_n(&p->state, &pending, got, false, __ATOMIC_RELEASE,
					   __ATOMIC_RELAXED);
}

bool
pylb_probe_answer(struct pylb_lcore *lc, const struct pylb_cfg *cfg, struct rte_mbuf *m,
		  uint8_t af)
{
	const uint8_t *ip = rte_pktmbuf_mtod_offset(m, const uint8_t *,
						    sizeof(struct rte_ether_hdr));
	uint32_t alen = af == 4 ? 4 : 16;
	struct pylb_probe *p;
	uint16_t *ports;
	uint32_t id;
	uint8_t proto, got;

	ports = l4_header(m, af, &proto);
	if (ports == NULL || (proto != IPPROTO_TCP && proto != IPPROTO_UDP))
		return false;
	id = (uint32_t)rte_be_to_cpu_16(ports[1]) - PYLB_PROBE_PORT;
	if (id >= PYLB_PROBES)
		return false;
	p = &lc->dp->probes[id];
	if (__atomic_load_n(&p->state, __ATOMIC_ACQUIRE) != PYLB_PROBE_PENDING ||
	    p->vip.af != af || p->proto != proto || ports[0] != p->port ||
	    memcmp(ip + (af == 4 ? 12 : 8), p->vip.ip, alen) != 0 ||
	    memcmp(ip + (af == 4 ? 16 : 24), p->src.ip, alen) != 0)
		return false;
	if (proto == IPPROTO_TCP) {
		struct rte_tcp_hdr *t = (struct rte_tcp_hdr *)ports;

		if (rte_be_to_cpu_32(t->recv_ack) != p->seq + 1 || !(t->tcp_flags & RTE_TCP_ACK_FLAG))
			return false;
		if (t->tcp_flags & RTE_TCP_RST_FLAG)
			got = PYLB_PROBE_REFUSED;
		else if ((t->tcp_flags & RTE_TCP_SYN_FLAG))
			got = PYLB_PROBE_ANSWERED;
		else
			return false;
		if (!settle(p, got))
			return false;
		CNT(lc, PROBE_ANSWERS);
		if (got == PYLB_PROBE_ANSWERED) {
			reset(lc, cfg, m, t, p);
			return true;
		}
	} else {
		if (!settle(p, PYLB_PROBE_ANSWERED))
			return false;
		CNT(lc, PROBE_ANSWERS);
	}
	rte_pktmbuf_free(m);
	return true;
}
