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

#include "ctl/ctl.h"

static const char *const hello = "pylb-health\n";

/* The appliance's address towards `to` (of its route's port), in *src. */
static int
probe_source(struct pylb_dp *dp, const struct pylb_ip *to, struct pylb_ip *src)
{
	uint32_t g = route_group(dp, to->ip, to->af);
	const struct pylb_port_cfg *pc;
	const uint8_t *a;

	if (g == 0)
		return pylb_fail(-PYLB_E_INVAL, "no route to the backend");
	pc = &dp->cfg->ports[nhg_pick(dp, g, 0)->port];
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
