/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * IPv4 and ARP from the wire: ARP (answer for our addresses and VIPs,
 * learn neighbours), the validation of IPv4 headers, ICMP echo for our
 * addresses. The pipeline (pipeline.c) calls them.
 */
#include <rte_arp.h>
#include <rte_icmp.h>
#include "l3/l3.h"

void
pylb_arp_input(struct pylb_lcore *lc, const struct pylb_port_cfg *pc, uint16_t port,
	       struct rte_mbuf *m)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	uint32_t l2 = sizeof(*eth);
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

/* An IPv4 packet for one of our addresses: ICMP echo is answered here, the
 * rest goes to the kernel. */
void
pylb_ipv4_local(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
		struct rte_mbuf *m)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);

	if (ip->next_proto_id == IPPROTO_ICMP &&
	    !(ip->fragment_offset & RTE_BE16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)))
		return pylb_ipv4_icmp(lc, cfg, port, m);
	to_kernel(lc, cfg, port, m);
}

/* ICMP to one of our addresses or VIPs. */
void
pylb_ipv4_icmp(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
	       struct rte_mbuf *m)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);

	icmp_local(lc, cfg, port, m, eth, ip, rte_ipv4_hdr_len(ip),
		   rte_be_to_cpu_16(ip->total_length));
}
