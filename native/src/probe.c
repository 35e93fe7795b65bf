/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * Health probes through the data path, for DR and tunnel backends. A check
 * of the backend's own address says its server runs; it does not say the
 * backend takes the VIP's traffic (DR: the VIP on its loopback; tunnel: a
 * decapsulating interface), and one that does not blackholes every
 * connection sent to it. So the control side also sends what a client's
 * packet becomes: a TCP SYN (UDP: a datagram) to the service's VIP and
 * port, from the appliance's address on the port towards the backend (a
 * source port of its own per probe), by the backend's method (DR: to its
 * MAC; tunnel: encapsulated). The backend answers the appliance's address
 * directly; the answer is caught where packets for the appliance's own
 * addresses are delivered, noted in the probe's slot (SYN-ACK or datagram:
 * answered; RST: refused) and a SYN-ACK is answered with a RST by the same
 * method. Timeouts are the caller's (pylb.health).
 */
#include <rte_random.h>

#include "l4.h"

static const char *const hello = "pylb-health\n";

/* The appliance's address towards `to` (of its route's port), in *src. */
static int
probe_source(struct pylb_dp *dp, const struct pylb_ip *to, struct pylb_ip *src)
{
	uint32_t v = to->af == 4 ? fib4_lookup(dp, *(const unaligned_uint32_t *)to->ip) :
		fib6_lookup(dp, to->ip);
	const struct pylb_port_cfg *pc;
	const uint8_t *a;

	if (v == 0 || fib_kind(v) != PYLB_FIB_GROUP)
		return pylb_fail(-PYLB_E_INVAL, "no route to the backend");
	pc = &dp->cfg->ports[nhg_pick(dp, fib_id(v), 0)->port];
	memset(src, 0, sizeof(*src));
	src->af = to->af;
	if (to->af == 4) {
		uint32_t s;

		if (!port_src4(pc, *(const uint32_t *)to->ip, &s))
			return pylb_fail(-PYLB_E_INVAL, "no IPv4 address to probe from on the backend's port");
		memcpy(src->ip, &s, 4);
		return 0;
	}
	a = port_src6(pc, to->ip);
	if (a == NULL)
		return pylb_fail(-PYLB_E_INVAL, "no IPv6 address to probe from on the backend's port");
	memcpy(src->ip, a, 16);
	return 0;
}

/* The probe's packet: IP, then a SYN or the datagram. */
static struct rte_mbuf *
probe_packet(struct pylb_dp *dp, const struct pylb_probe *p, uint16_t sport)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(pylb_pool_for(dp, (int)rte_socket_id()));
	uint32_t l4len = p->proto == IPPROTO_TCP ? sizeof(struct rte_tcp_hdr) :
		sizeof(struct rte_udp_hdr) + (uint32_t)strlen(hello);
	uint32_t hl = p->vip.af == 4 ? sizeof(struct rte_ipv4_hdr) : sizeof(struct rte_ipv6_hdr);
	uint8_t *ip, *l4;

	if (m == NULL)
		return NULL;
	ip = (uint8_t *)rte_pktmbuf_append(m, (uint16_t)(sizeof(struct rte_ether_hdr) + hl + l4len));
	if (ip == NULL) {
		rte_pktmbuf_free(m);
		return NULL;
	}
	memset(ip, 0, sizeof(struct rte_ether_hdr) + hl + l4len);
	ip += sizeof(struct rte_ether_hdr);
	l4 = ip + hl;
	if (p->vip.af == 4) {
		struct rte_ipv4_hdr *h = (struct rte_ipv4_hdr *)ip;

		rte_pktmbuf_mtod(m, struct rte_ether_hdr *)->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV4);
		h->version_ihl = RTE_IPV4_VHL_DEF;
		h->total_length = rte_cpu_to_be_16((uint16_t)(hl + l4len));
		h->fragment_offset = RTE_BE16(RTE_IPV4_HDR_DF_FLAG);
		h->time_to_live = IPDEFTTL;
		h->next_proto_id = p->proto;
		memcpy(&h->src_addr, p->src.ip, 4);
		memcpy(&h->dst_addr, p->vip.ip, 4);
		h->hdr_checksum = rte_ipv4_cksum(h);
	} else {
		struct rte_ipv6_hdr *h = (struct rte_ipv6_hdr *)ip;

		rte_pktmbuf_mtod(m, struct rte_ether_hdr *)->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV6);
		h->vtc_flow = RTE_BE32(6u << 28);
		h->payload_len = rte_cpu_to_be_16((uint16_t)l4len);
		h->proto = p->proto;
		h->hop_limits = IPDEFTTL;
		memcpy(h->src_addr, p->src.ip, 16);
		memcpy(h->dst_addr, p->vip.ip, 16);
	}
	if (p->proto == IPPROTO_TCP) {
		struct rte_tcp_hdr *t = (struct rte_tcp_hdr *)l4;

		t->src_port = sport;
		t->dst_port = p->port;
		t->sent_seq = rte_cpu_to_be_32(p->seq);
		t->data_off = sizeof(*t) << 2;
		t->tcp_flags = RTE_TCP_SYN_FLAG;
		t->rx_win = RTE_BE16(65535);
		t->cksum = l4_cksum(ip, p->vip.af, t, l4len, IPPROTO_TCP);
	} else {
		struct rte_udp_hdr *u = (struct rte_udp_hdr *)l4;

		u->src_port = sport;
		u->dst_port = p->port;
		u->dgram_len = rte_cpu_to_be_16((uint16_t)l4len);
		memcpy(u + 1, hello, strlen(hello));
		u->dgram_cksum = l4_cksum(ip, p->vip.af, u, l4len, IPPROTO_UDP);
	}
	return m;
}

static int
probe_start_unlocked(struct pylb_dp *dp, const struct pylb_probe_conf *c)
{
	struct pylb_lcore *lc = pylb_control_lcore(dp);
	struct pylb_probe *p = NULL;
	struct rte_mbuf *m;
	uint32_t id;
	int rc;

	if (pylb_l4_methods[c->method]->out == NULL)
		return pylb_fail(-PYLB_E_INVAL, "data-path probes are for DR and tunnel backends");
	if (c->proto != IPPROTO_TCP && c->proto != IPPROTO_UDP)
		return pylb_fail(-PYLB_E_INVAL, "a probe is TCP or UDP");
	if (c->port == 0)
		return pylb_fail(-PYLB_E_INVAL, "a probe needs a port");
	if ((c->vip.af != 4 && c->vip.af != 6) || c->backend.af != c->vip.af)
		return pylb_fail(-PYLB_E_INVAL, "the VIP and the backend must be of one family");
	for (id = 0; id < PYLB_PROBES; id++)
		if (dp->probes[id].state == 0) {
			p = &dp->probes[id];
			break;
		}
	if (p == NULL)
		return pylb_fail(-PYLB_E_FULL, "%d probes are in flight already", PYLB_PROBES);
	rc = probe_source(dp, &c->backend, &p->src);
	if (rc != 0)
		return rc;
	p->vip = c->vip;
	p->backend = c->backend;
	p->port = rte_cpu_to_be_16(c->port);
	p->proto = c->proto;
	p->method = c->method;
	p->seq = (uint32_t)rte_rand();
	m = probe_packet(dp, p, rte_cpu_to_be_16((uint16_t)(PYLB_PROBE_PORT + id)));
	if (m == NULL)
		return pylb_fail(-PYLB_E_NOMEM, "no mbuf for a probe");
	__atomic_store_n(&p->state, PYLB_PROBE_PENDING, __ATOMIC_RELEASE);
	__atomic_fetch_add(&dp->probes_live, 1, __ATOMIC_RELEASE);
	lc->now = pylb_now(dp);
	CNT(lc, PROBES_SENT);
	pylb_l4_method_out(lc, dp->cfg, m, p->method, p->backend.ip, p->backend.af);
	return (int)id;
}

int
pylb_dp_probe_start(struct pylb_dp *dp, const struct pylb_probe_conf *c)
{
	int rc;

	pthread_mutex_lock(&dp->ctl_lock);
	rc = probe_start_unlocked(dp, c);
	pthread_mutex_unlock(&dp->ctl_lock);
	pylb_control_flush(dp);
	return rc;
}

int
pylb_dp_probe_state(struct pylb_dp *dp, uint32_t id)
{
	uint8_t s = id < PYLB_PROBES ? __atomic_load_n(&dp->probes[id].state, __ATOMIC_ACQUIRE) : 0;

	return s != 0 ? s : pylb_fail(-PYLB_E_NOENT, "no probe %u", id);
}

int
pylb_dp_probe_end(struct pylb_dp *dp, uint32_t id)
{
	int rc = 0;

	pthread_mutex_lock(&dp->ctl_lock);
	if (id >= PYLB_PROBES || dp->probes[id].state == 0)
		rc = pylb_fail(-PYLB_E_NOENT, "no probe %u", id);
	else {
		__atomic_store_n(&dp->probes[id].state, 0, __ATOMIC_RELEASE);
		__atomic_fetch_sub(&dp->probes_live, 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&dp->ctl_lock);
	return rc;
}

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
