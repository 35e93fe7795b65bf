/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * The burst-processing function for frames from the wire: Ethernet, then
 * ARP (answer, learn) or IPv4 (validate, one FIB lookup on the destination:
 * local delivery, L3 VIP, or forwarding) or IPv6 (ipv6.c). Every packet is
 * either sent on or dropped under a named reason.
 */
#include <rte_arp.h>
#include <rte_icmp.h>
#include <rte_prefetch.h>

#include "pkt.h"

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
	if (sip != 0 && port_connected4(pc, sip) && !port_owns4(pc, sip)) {
		struct pylb_neigh_key k;

		neigh_key4(&k, sip, port);
		pylb_neigh_queue(lc, &k, &a->arp_sha);
	}

	/* Ours: the port's addresses, and VIPs (L4 services, L3 VIP prefixes)
	 * on its networks, the way a director carries its VIPs. */
	if (!port_owns4(pc, tip) && !(port_connected4(pc, tip) && vip_addr4(lc->dp, tip)))
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

/* ICMP to one of our addresses: echo requests are answered here, the rest
 * (e.g. replies to the host's own pings) go to the kernel. */
static void
icmp_local(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
	   struct rte_mbuf *m, struct rte_ether_hdr *eth,
	   struct rte_ipv4_hdr *ip, uint32_t ihl, uint32_t tot)
{
	const struct pylb_port_cfg *pc = &cfg->ports[port];
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
		return to_kernel(lc, cfg, port, m);
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

static inline bool
ipv4_martian(uint32_t be)
{
	uint32_t a = rte_be_to_cpu_32(be);

	/* 0/8, 127/8, multicast and reserved (224/3 covers 255.255.255.255). */
	return (a >> 24) == 0 || (a >> 24) == 127 || (a >> 29) == 7;
}

/* IPv4 packets that passed validation wait here for one FIB lookup for
 * the whole burst. */
struct burst4 {
	uint16_t n;
	struct rte_mbuf *m[PYLB_BURST];
	uint32_t dst[PYLB_BURST];	/* host order, as rte_fib takes it */
	uint64_t val[PYLB_BURST];
	uint32_t ct[PYLB_BURST];	/* connection-table hash; 0: none */
};

/* The header sum of a 20-byte header in 32-bit adds; others the long way. */
static inline bool
ipv4_cksum_ok(const void *hdr, uint32_t ihl)
{
	if (likely(ihl == sizeof(struct rte_ipv4_hdr))) {
		const unaligned_uint32_t *w = hdr;
		uint64_t s;

		s = (uint64_t)w[0] + w[1] + w[2] + w[3] + w[4];
		s = (s & 0xffffffff) + (s >> 32);
		s = (s & 0xffff) + (s >> 16);
		s = (s & 0xffff) + (s >> 16);
		s = (s & 0xffff) + (s >> 16);
		return s == 0xffff;
	}
	return rte_raw_cksum(hdr, ihl) == 0xffff;
}

static void
ipv4_input(struct pylb_lcore *lc, const struct pylb_cfg *cfg, struct burst4 *b,
	   struct rte_mbuf *m, uint32_t l2, bool l2_multicast)
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
	switch (m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) {
	case RTE_MBUF_F_RX_IP_CKSUM_GOOD:
		break;
	case RTE_MBUF_F_RX_IP_CKSUM_BAD:
		return drop(lc, m, PYLB_D_IPV4_BAD_CHECKSUM);
	default:	/* not checked by the NIC */
		if (!ipv4_cksum_ok(ip, ihl))
			return drop(lc, m, PYLB_D_IPV4_BAD_CHECKSUM);
	}
	if (ipv4_martian(ip->dst_addr) || ipv4_martian(ip->src_addr) ||
	    l2_multicast)
		return drop(lc, m, PYLB_D_IPV4_MARTIAN);
	/* Ethernet padding is not part of the datagram: do not carry it. */
	if (rte_pktmbuf_pkt_len(m) > l2 + tot)
		rte_pktmbuf_trim(m, rte_pktmbuf_pkt_len(m) - (l2 + tot));

	b->m[b->n] = m;
	b->dst[b->n++] = rte_be_to_cpu_32(ip->dst_addr);
	(void)cfg;
}

/* Act on the FIB's answer: local delivery, L3 VIP, forwarding, or an ICMP
 * unreachable. */
static void
ipv4_dispatch(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
	      struct rte_mbuf *m, uint32_t v, uint32_t cth)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);

	switch (fib_kind(v)) {
	case PYLB_FIB_LOCAL:
		if (unlikely(lc->dp->n_fullnat != 0) &&
		    pylb_fullnat_reply(lc, cfg, port, m, 4, cth))
			return;
		if (ip->next_proto_id == IPPROTO_ICMP &&
		    !(ip->fragment_offset &
		      RTE_BE16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)))
			return icmp_local(lc, cfg, port, m, eth, ip,
					  rte_ipv4_hdr_len(ip),
					  rte_be_to_cpu_16(ip->total_length));
		return to_kernel(lc, cfg, port, m);
	case PYLB_FIB_VIP:
		return pylb_vip_input(lc, cfg, port, m, fib_id(v), 4);
	case PYLB_FIB_SERVICE:
		if (ip->next_proto_id == IPPROTO_ICMP)
			return icmp_local(lc, cfg, port, m, eth, ip, rte_ipv4_hdr_len(ip),
					  rte_be_to_cpu_16(ip->total_length));
		return pylb_l4_input(lc, cfg, port, m, 4, cth);
	default:
		if (v == 0) {
			pylb_icmp4_error(lc, cfg, port, m, ICMP_DEST_UNREACH, 0, 0);
			return drop(lc, m, PYLB_D_NO_ROUTE);
		}
		/* A backend's reply to a NAT connection leaves with the VIP. */
		if (unlikely(lc->dp->n_nat != 0) && !pylb_nat_reverse(lc, port, m, 4, cth))
			return;
		return pylb_fwd4(lc, cfg, port, m, fib_id(v));
	}
}

/* The connection-table hash an IPv4 TCP/UDP packet will look up (0: none):
 * of its client side for a service, of its destination side for what may
 * be a reply (NAT: routed; FullNAT: to a local address). */
static inline uint32_t
ct_hash4(const struct pylb_dp *dp, struct rte_mbuf *m, uint32_t v)
{
	const struct rte_ipv4_hdr *ip = rte_pktmbuf_mtod_offset(m, const struct rte_ipv4_hdr *,
								sizeof(struct rte_ether_hdr));
	uint32_t hl = rte_ipv4_hdr_len(ip);
	const uint16_t *ports = (const uint16_t *)((const uint8_t *)ip + hl);
	bool reply;

	if ((ip->next_proto_id != IPPROTO_TCP && ip->next_proto_id != IPPROTO_UDP) ||
	    (ip->fragment_offset & RTE_BE16(RTE_IPV4_HDR_OFFSET_MASK)) ||
	    rte_pktmbuf_data_len(m) < sizeof(struct rte_ether_hdr) + hl + 4 || v == 0)
		return 0;
	switch (fib_kind(v)) {
	case PYLB_FIB_SERVICE:
		reply = false;
		break;
	case PYLB_FIB_LOCAL:
		if (dp->n_fullnat == 0)
			return 0;
		reply = true;
		break;
	case PYLB_FIB_GROUP:
		if (dp->n_nat == 0)
			return 0;
		reply = true;
		break;
	default:
		return 0;
	}
	return pylb_ct_hash(reply ? (const uint8_t *)&ip->dst_addr : (const uint8_t *)&ip->src_addr,
			    ports[reply], ip->next_proto_id, 4);
}

static inline void
process_one(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
	    struct rte_mbuf *m, struct burst4 *b)
{
	const struct pylb_port_cfg *pc = &cfg->ports[port];
	uint32_t len = rte_pktmbuf_data_len(m);
	struct rte_ether_hdr *eth;
	uint32_t l2 = sizeof(*eth);
	bool mcast;

	lc->stats->c[PYLB_C_RX_BYTES] += rte_pktmbuf_pkt_len(m);
	if (unlikely(len < l2))
		return drop(lc, m, PYLB_D_ETH_TRUNCATED);
	eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	mcast = rte_is_multicast_ether_addr(&eth->dst_addr);
	if (!mcast && !rte_is_same_ether_addr(&eth->dst_addr, &pc->mac))
		return drop(lc, m, PYLB_D_ETH_OTHER_HOST);

	switch (eth->ether_type) {
	case RTE_BE16(RTE_ETHER_TYPE_IPV4):
		return ipv4_input(lc, cfg, b, m, l2, mcast);
	case RTE_BE16(RTE_ETHER_TYPE_ARP):
		return arp_input(lc, pc, port, m, eth, l2);
	case RTE_BE16(RTE_ETHER_TYPE_IPV6):
		return pylb_ipv6_input(lc, cfg, port, m, mcast);
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
	struct burst4 b;
	uint16_t i;

	b.n = 0;
	lc->now = pylb_now(lc->dp);
	lc->stats->c[PYLB_C_RX_PACKETS] += n;
	for (i = 0; i < n && i < PYLB_PREFETCH_AHEAD; i++)
		rte_prefetch0(rte_pktmbuf_mtod(pkts[i], void *));
	for (i = 0; i < n; i++) {
		if (i + PYLB_PREFETCH_AHEAD < n)
			rte_prefetch0(rte_pktmbuf_mtod(
				pkts[i + PYLB_PREFETCH_AHEAD], void *));
		process_one(lc, cfg, port, pkts[i], &b);
	}
	if (b.n == 0)
		return;
	rte_fib_lookup_bulk(lc->dp->fib4, b.dst, b.val, b.n);
	/* Connection lookups: a packet's bucket is fetched PYLB_CT_BUCKET_AHEAD
	 * packets before it is processed, its entry (found in the bucket by
	 * then) PYLB_CT_AHEAD packets before; a few misses in flight at a
	 * time rather than a burst's worth at once. */
	if (lc->dp->n_services != 0 && lc->ct.nb != 0)
		for (i = 0; i < b.n; i++)
			b.ct[i] = ct_hash4(lc->dp, b.m[i], (uint32_t)b.val[i]);
	else
		memset(b.ct, 0, b.n * sizeof(b.ct[0]));
	for (i = 0; i < b.n && i < PYLB_CT_BUCKET_AHEAD; i++)
		if (b.ct[i] != 0)
			pylb_ct_prefetch_bucket(&lc->ct, b.ct[i]);
	for (i = 0; i < b.n && i < PYLB_CT_AHEAD; i++)
		if (b.ct[i] != 0)
			pylb_ct_prefetch_entry(&lc->ct, b.ct[i]);
	for (i = 0; i < b.n; i++) {
		if (i + PYLB_CT_BUCKET_AHEAD < b.n && b.ct[i + PYLB_CT_BUCKET_AHEAD] != 0)
			pylb_ct_prefetch_bucket(&lc->ct, b.ct[i + PYLB_CT_BUCKET_AHEAD]);
		if (i + PYLB_CT_AHEAD < b.n && b.ct[i + PYLB_CT_AHEAD] != 0)
			pylb_ct_prefetch_entry(&lc->ct, b.ct[i + PYLB_CT_AHEAD]);
		ipv4_dispatch(lc, cfg, port, b.m[i], (uint32_t)b.val[i], b.ct[i]);
	}
}
