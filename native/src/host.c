/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * The burst-processing function: Ethernet -> ARP / IPv4 -> ICMP echo.
 * Answers ARP and ICMP echo for the appliance's own addresses, queues the
 * neighbours it sees for the control side, and drops everything else under a
 * named reason. Replies are built in place in the received mbuf.
 */
#include <rte_arp.h>
#include <rte_byteorder.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <rte_ring.h>

#include "pylb_priv.h"

#define CNT(lc, e) ((lc)->stats->c[PYLB_C_##e]++)

static inline void
drop(struct pylb_lcore *lc, struct rte_mbuf *m, enum pylb_counter reason)
{
	lc->stats->c[reason]++;
	rte_pktmbuf_free(m);
}

static inline void
tx(struct pylb_lcore *lc, uint16_t port, struct rte_mbuf *m)
{
	struct pylb_txbuf *b = &lc->tx[port];

	if (unlikely(b->n == PYLB_TX_BUF)) {
		drop(lc, m, PYLB_D_TX_FULL);
		return;
	}
	b->pkts[b->n++] = m;
}

/* RFC 1624 incremental update of a ones' complement checksum for one 16-bit
 * word changing from `old` to `new` (all in network byte order). */
static inline uint16_t
cksum_adjust16(uint16_t cksum, uint16_t old, uint16_t new)
{
	uint32_t s = (uint16_t)~cksum + (uint16_t)~old + new;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static inline bool
port_owns(const struct pylb_port_cfg *pc, uint32_t ip)
{
	for (uint16_t i = 0; i < pc->n_addrs; i++)
		if (pc->addrs[i].ip == ip)
			return true;
	return false;
}

static inline bool
port_connected(const struct pylb_port_cfg *pc, uint32_t ip)
{
	for (uint16_t i = 0; i < pc->n_addrs; i++)
		if ((ip & pc->addrs[i].mask) ==
		    (pc->addrs[i].ip & pc->addrs[i].mask))
			return true;
	return false;
}

static inline bool
owned(const struct pylb_cfg *cfg, uint32_t ip)
{
	for (uint16_t p = 0; p < cfg->n_ports; p++)
		if (port_owns(&cfg->ports[p], ip))
			return true;
	return false;
}

static void
neigh_queue(struct pylb_lcore *lc, uint16_t port, uint32_t ip,
	    const struct rte_ether_addr *mac)
{
	struct pylb_neigh_learn ev = { .ip = ip, .port = port };

	rte_ether_addr_copy(mac, &ev.mac);
	if (rte_ring_enqueue_elem(lc->dp->neigh_learn, &ev, sizeof(ev)) == 0)
		CNT(lc, NEIGH_LEARN_QUEUED);
	else
		CNT(lc, NEIGH_LEARN_OVERFLOW);
}

static void
arp_input(struct pylb_lcore *lc, const struct pylb_port_cfg *pc, uint16_t port,
	  struct rte_mbuf *m, struct rte_ether_hdr *eth, uint32_t l2)
{
	struct rte_arp_hdr *arp;
	struct rte_arp_ipv4 *a;
	uint32_t sip, tip;
	uint16_t op;

	if (rte_pktmbuf_data_len(m) < l2 + sizeof(*arp))
		return drop(lc, m, PYLB_D_ARP_TRUNCATED);
	arp = rte_pktmbuf_mtod_offset(m, struct rte_arp_hdr *, l2);
	a = &arp->arp_data;
	op = arp->arp_opcode;
	if (arp->arp_hardware != RTE_BE16(RTE_ARP_HRD_ETHER) ||
	    arp->arp_protocol != RTE_BE16(RTE_ETHER_TYPE_IPV4) ||
	    arp->arp_hlen != RTE_ETHER_ADDR_LEN || arp->arp_plen != 4 ||
	    (op != RTE_BE16(RTE_ARP_OP_REQUEST) &&
	     op != RTE_BE16(RTE_ARP_OP_REPLY)) ||
	    !rte_is_unicast_ether_addr(&a->arp_sha))
		return drop(lc, m, PYLB_D_ARP_INVALID);

	sip = a->arp_sip;
	tip = a->arp_tip;
	if (sip != 0 && port_connected(pc, sip))
		neigh_queue(lc, port, sip, &a->arp_sha);

	if (!port_owns(pc, tip))
		return drop(lc, m, PYLB_D_ARP_NOT_OURS);
	if (op == RTE_BE16(RTE_ARP_OP_REPLY)) {
		CNT(lc, ARP_REPLIES_RECEIVED);
		rte_pktmbuf_free(m);
		return;
	}

	CNT(lc, ARP_REQUESTS);
	arp->arp_opcode = RTE_BE16(RTE_ARP_OP_REPLY);
	rte_ether_addr_copy(&a->arp_sha, &a->arp_tha);
	a->arp_tip = sip;
	rte_ether_addr_copy(&pc->mac, &a->arp_sha);
	a->arp_sip = tip;
	rte_ether_addr_copy(&eth->src_addr, &eth->dst_addr);
	rte_ether_addr_copy(&pc->mac, &eth->src_addr);
	CNT(lc, ARP_REPLIES_SENT);
	tx(lc, port, m);
}

static void
icmp_input(struct pylb_lcore *lc, const struct pylb_port_cfg *pc, uint16_t port,
	   struct rte_mbuf *m, struct rte_ether_hdr *eth,
	   struct rte_ipv4_hdr *ip, uint32_t ihl, uint32_t tot)
{
	struct rte_icmp_hdr *icmp;
	uint32_t icmp_len = tot - ihl;
	uint32_t tmp;
	uint16_t old;

	if (icmp_len < sizeof(*icmp))
		return drop(lc, m, PYLB_D_ICMP_TRUNCATED);
	icmp = (struct rte_icmp_hdr *)((char *)ip + ihl);
	if (rte_raw_cksum(icmp, icmp_len) != 0xffff)
		return drop(lc, m, PYLB_D_ICMP_BAD_CHECKSUM);
	if (icmp->icmp_type != RTE_IP_ICMP_ECHO_REQUEST || icmp->icmp_code != 0)
		return drop(lc, m, PYLB_D_ICMP_TYPE_UNSUPPORTED);
	CNT(lc, ICMP_ECHO_REQUESTS);

	icmp->icmp_type = RTE_IP_ICMP_ECHO_REPLY;
	icmp->icmp_cksum = cksum_adjust16(icmp->icmp_cksum,
		RTE_BE16(RTE_IP_ICMP_ECHO_REQUEST << 8),
		RTE_BE16(RTE_IP_ICMP_ECHO_REPLY << 8));

	/* Swapping addresses leaves the header sum unchanged; the TTL does not. */
	tmp = ip->src_addr;
	ip->src_addr = ip->dst_addr;
	ip->dst_addr = tmp;
	old = *(uint16_t *)&ip->time_to_live;
	ip->time_to_live = IPDEFTTL;
	ip->hdr_checksum = cksum_adjust16(ip->hdr_checksum, old,
					  *(uint16_t *)&ip->time_to_live);

	rte_ether_addr_copy(&eth->src_addr, &eth->dst_addr);
	rte_ether_addr_copy(&pc->mac, &eth->src_addr);
	CNT(lc, ICMP_ECHO_REPLIES);
	tx(lc, port, m);
}

static void
ipv4_input(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
	   struct rte_mbuf *m, struct rte_ether_hdr *eth, uint32_t l2)
{
	uint32_t len = rte_pktmbuf_data_len(m);
	struct rte_ipv4_hdr *ip;
	uint32_t ihl, tot;

	if (len < l2 + sizeof(*ip))
		return drop(lc, m, PYLB_D_IPV4_TRUNCATED);
	ip = rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *, l2);
	if ((ip->version_ihl >> 4) != 4)
		return drop(lc, m, PYLB_D_IPV4_BAD_VERSION);
	ihl = rte_ipv4_hdr_len(ip);
	if (ihl < sizeof(*ip))
		return drop(lc, m, PYLB_D_IPV4_BAD_IHL);
	if (len < l2 + ihl)
		return drop(lc, m, PYLB_D_IPV4_TRUNCATED);
	tot = rte_be_to_cpu_16(ip->total_length);
	if (tot < ihl || l2 + tot > len)
		return drop(lc, m, PYLB_D_IPV4_BAD_TOTAL_LENGTH);
	if ((m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) !=
	    RTE_MBUF_F_RX_IP_CKSUM_GOOD && rte_raw_cksum(ip, ihl) != 0xffff)
		return drop(lc, m, PYLB_D_IPV4_BAD_CHECKSUM);
	if (!owned(cfg, ip->dst_addr))
		return drop(lc, m, PYLB_D_IPV4_NOT_LOCAL);
	if (ip->fragment_offset &
	    RTE_BE16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK))
		return drop(lc, m, PYLB_D_IPV4_FRAGMENT);
	if (ip->next_proto_id != IPPROTO_ICMP)
		return drop(lc, m, PYLB_D_IPV4_PROTO_UNSUPPORTED);

	/* Ethernet padding is not part of the datagram: do not echo it. */
	if (rte_pktmbuf_pkt_len(m) > l2 + tot)
		rte_pktmbuf_trim(m, rte_pktmbuf_pkt_len(m) - (l2 + tot));
	icmp_input(lc, &cfg->ports[port], port, m, eth, ip, ihl, tot);
}

static inline void
process_one(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
	    struct rte_mbuf *m)
{
	const struct pylb_port_cfg *pc = &cfg->ports[port];
	uint32_t len = rte_pktmbuf_data_len(m);
	struct rte_ether_hdr *eth;
	uint32_t l2 = sizeof(*eth);

	CNT(lc, RX_PACKETS);
	lc->stats->c[PYLB_C_RX_BYTES] += rte_pktmbuf_pkt_len(m);
	if (unlikely(len < l2))
		return drop(lc, m, PYLB_D_ETH_TRUNCATED);
	eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	if (!rte_is_same_ether_addr(&eth->dst_addr, &pc->mac) &&
	    !rte_is_multicast_ether_addr(&eth->dst_addr))
		return drop(lc, m, PYLB_D_ETH_OTHER_HOST);

	switch (eth->ether_type) {
	case RTE_BE16(RTE_ETHER_TYPE_ARP):
		return arp_input(lc, pc, port, m, eth, l2);
	case RTE_BE16(RTE_ETHER_TYPE_IPV4):
		return ipv4_input(lc, cfg, port, m, eth, l2);
	case RTE_BE16(RTE_ETHER_TYPE_IPV6):
		return drop(lc, m, PYLB_D_IPV6_UNSUPPORTED);
	case RTE_BE16(RTE_ETHER_TYPE_VLAN):
	case RTE_BE16(RTE_ETHER_TYPE_QINQ):
		if (len < l2 + sizeof(struct rte_vlan_hdr))
			return drop(lc, m, PYLB_D_ETH_TRUNCATED);
		return drop(lc, m, PYLB_D_VLAN_UNKNOWN);
	default:
		return drop(lc, m, PYLB_D_ETHERTYPE_UNSUPPORTED);
	}
}

void
pylb_host_process(struct pylb_lcore *lc, const struct pylb_cfg *cfg,
		  uint16_t port, struct rte_mbuf **pkts, uint16_t n)
{
	uint16_t i;

	for (i = 0; i < n && i < PYLB_PREFETCH_AHEAD; i++)
		rte_prefetch0(rte_pktmbuf_mtod(pkts[i], void *));
	for (i = 0; i < n; i++) {
		if (i + PYLB_PREFETCH_AHEAD < n)
			rte_prefetch0(rte_pktmbuf_mtod(
				pkts[i + PYLB_PREFETCH_AHEAD], void *));
		process_one(lc, cfg, port, pkts[i]);
	}
}
