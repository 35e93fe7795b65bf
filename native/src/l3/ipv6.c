/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * IPv6 from the wire: validation, neighbour discovery (answer solicitations
 * for our addresses, learn from solicitations and advertisements), ICMPv6
 * echo. The pipeline (pipeline.c) calls them, as it calls ipv4.c.
 */
#include <rte_icmp.h>

#include "l3/l3.h"

#define ICMP6_ECHO_REQUEST	128
#define ICMP6_ECHO_REPLY	129
#define ND_NEIGHBOR_SOLICIT	135
#define ND_NEIGHBOR_ADVERT	136
#define ND_OPT_SOURCE_LLADDR	1
#define ND_OPT_TARGET_LLADDR	2
#define ND_NA_ROUTER_SOLICITED_OVERRIDE	RTE_BE32(0xe0000000)

struct nd_msg {
	uint8_t type;
	uint8_t code;
	uint16_t cksum;
	uint32_t flags;
	uint8_t target[16];
} __rte_packed;

struct nd_opt_lla {
	uint8_t type;
	uint8_t len;		/* in units of 8 bytes */
	uint8_t mac[RTE_ETHER_ADDR_LEN];
};

/* The link-layer address option of type `want`, if present and valid. */
static const struct rte_ether_addr *
nd_lla(const uint8_t *opt, uint32_t len, uint8_t want, bool *bad)
{
	const struct rte_ether_addr *found = NULL;

	while (len >= 2) {
		uint32_t olen = opt[1] * 8u;

		if (olen == 0 || olen > len) {
			*bad = true;
			return NULL;
		}
		if (opt[0] == want && olen == sizeof(struct nd_opt_lla))
			found = (const struct rte_ether_addr *)((const struct nd_opt_lla *)opt)->mac;
		opt += olen;
		len -= olen;
	}
	return found;
}

static void
nd_input(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
	 struct rte_mbuf *m, struct rte_ipv6_hdr *ip, uint32_t plen)
{
	const struct pylb_port_cfg *pc = &cfg->ports[port];
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct nd_msg *nd = (struct nd_msg *)(ip + 1);
	static const uint8_t unspec[16];
	const struct rte_ether_addr *lla;
	struct pylb_neigh_key k;
	struct nd_opt_lla *opt;
	bool bad = false;

	if (plen < sizeof(*nd) || ip->hop_limits != 255 || nd->code != 0 ||
	    nd->target[0] == 0xff)
		return drop(lc, m, PYLB_D_ND_INVALID);
	if (nd->type == ND_NEIGHBOR_ADVERT) {
		lla = nd_lla((uint8_t *)(nd + 1), plen - sizeof(*nd),
			     ND_OPT_TARGET_LLADDR, &bad);
		if (bad)
			return drop(lc, m, PYLB_D_ND_INVALID);
		CNT(lc, ND_ADVERTS_RECEIVED);
		neigh_key6(&k, nd->target, port);
		pylb_neigh_queue(lc, &k, lla ? lla : &eth->src_addr);
		rte_pktmbuf_free(m);
		return;
	}

	lla = nd_lla((uint8_t *)(nd + 1), plen - sizeof(*nd),
		     ND_OPT_SOURCE_LLADDR, &bad);
	if (bad)
		return drop(lc, m, PYLB_D_ND_INVALID);
	/* Ours: the port's addresses, and VIPs on its networks (as ARP). */
	if (!port_owns6(pc, nd->target) &&
	    !(port_connected6(pc, nd->target) && vip_addr6(lc->dp, nd->target)))
		return drop(lc, m, PYLB_D_ND_NOT_OURS);
	/* Duplicate address detection for our own address: not answered. */
	if (memcmp(ip->src_addr, unspec, 16) == 0)
		return drop(lc, m, PYLB_D_ND_INVALID);
	CNT(lc, ND_SOLICITS);
	if (lla != NULL) {
		neigh_key6(&k, ip->src_addr, port);
		pylb_neigh_queue(lc, &k, lla);
		rte_ether_addr_copy(lla, &eth->dst_addr);
	} else {
		rte_ether_addr_copy(&eth->src_addr, &eth->dst_addr);
	}

	/* The advertisement is built in place: same headers, new body. */
	rte_pktmbuf_trim(m, (uint16_t)(plen - sizeof(*nd)));
	opt = (struct nd_opt_lla *)rte_pktmbuf_append(m, sizeof(*opt));
	if (opt == NULL)
		return drop(lc, m, PYLB_D_ALLOC_FAILED);
	opt->type = ND_OPT_TARGET_LLADDR;
	opt->len = 1;
	memcpy(opt->mac, pc->mac.addr_bytes, RTE_ETHER_ADDR_LEN);
	rte_ether_addr_copy(&pc->mac, &eth->src_addr);
	memcpy(ip->dst_addr, ip->src_addr, 16);
	memcpy(ip->src_addr, nd->target, 16);
	ip->payload_len = rte_cpu_to_be_16(sizeof(*nd) + sizeof(*opt));
	nd->type = ND_NEIGHBOR_ADVERT;
	nd->flags = ND_NA_ROUTER_SOLICITED_OVERRIDE;
	nd->cksum = 0;
	nd->cksum = rte_ipv6_udptcp_cksum(ip, nd);
	CNT(lc, ND_ADVERTS_SENT);
	tx(lc, port, m);
}

static void
icmp6_local(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
	    struct rte_mbuf *m, struct rte_ipv6_hdr *ip, uint32_t plen)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	struct rte_icmp_hdr *icmp = (struct rte_icmp_hdr *)(ip + 1);
	uint8_t tmp[16];

	if (icmp->icmp_type == ND_NEIGHBOR_SOLICIT ||
	    icmp->icmp_type == ND_NEIGHBOR_ADVERT)
		return nd_input(lc, cfg, port, m, ip, plen);
	if (icmp->icmp_type != ICMP6_ECHO_REQUEST || icmp->icmp_code != 0)
		return to_kernel(lc, cfg, port, m);
	CNT(lc, ICMP_ECHO_REQUESTS);
	icmp->icmp_type = ICMP6_ECHO_REPLY;
	/* Swapping addresses leaves the pseudo-header sum unchanged. */
	icmp->icmp_cksum = cksum_adjust16(icmp->icmp_cksum,
		RTE_BE16(ICMP6_ECHO_REQUEST << 8), RTE_BE16(ICMP6_ECHO_REPLY << 8));
	memcpy(tmp, ip->src_addr, 16);
	memcpy(ip->src_addr, ip->dst_addr, 16);
	memcpy(ip->dst_addr, tmp, 16);
	ip->hop_limits = IPDEFTTL;
	rte_ether_addr_copy(&eth->src_addr, &eth->dst_addr);
	rte_ether_addr_copy(&cfg->ports[port].mac, &eth->src_addr);
	CNT(lc, ICMP_ECHO_REPLIES);
	tx(lc, port, m);
}

static void
icmp6_input(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
	    struct rte_mbuf *m, struct rte_ipv6_hdr *ip, uint32_t plen,
	    bool multicast)
{
	struct rte_icmp_hdr *icmp = (struct rte_icmp_hdr *)(ip + 1);

	if (plen < sizeof(*icmp))
		return drop(lc, m, PYLB_D_ICMP6_TRUNCATED);
	if (rte_ipv6_udptcp_cksum_verify(ip, icmp) != 0)
		return drop(lc, m, PYLB_D_ICMP6_BAD_CHECKSUM);
	if (multicast && icmp->icmp_type != ND_NEIGHBOR_SOLICIT)
		return drop(lc, m, PYLB_D_IPV6_MARTIAN);
	return icmp6_local(lc, cfg, port, m, ip, plen);
}

/* Solicited-node multicast ff02::1:ffXX:XXXX, or all-nodes ff02::1. */
static inline bool
nd_multicast(const uint8_t *d)
{
	static const uint8_t sn[13] = { 0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff };
	static const uint8_t all[16] = { 0xff, 0x02, [15] = 1 };

	return memcmp(d, sn, sizeof(sn)) == 0 || memcmp(d, all, 16) == 0;
}

/* Validate an IPv6 packet and find its transport header (*proto): true if
 * it goes on to the FIB; false if it was dropped under its reason or (a
 * neighbour solicitation to a multicast address) answered here. */
bool
pylb_ipv6_parse(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
		struct rte_mbuf *m, uint32_t l2, bool l2_multicast, uint8_t *proto)
{
	int reason;
	uint32_t len = rte_pktmbuf_data_len(m);
	static const uint8_t unspec[16];
	struct rte_ipv6_hdr *ip;
	uint32_t plen;

	if (len < l2 + sizeof(*ip))
		return dropped(lc, m, PYLB_D_IPV6_TRUNCATED);
	ip = rte_pktmbuf_mtod_offset(m, struct rte_ipv6_hdr *, l2);
	if ((rte_be_to_cpu_32(ip->vtc_flow) >> 28) != 6)
		return dropped(lc, m, PYLB_D_IPV6_BAD_VERSION);
	plen = rte_be_to_cpu_16(ip->payload_len);
	if (l2 + sizeof(*ip) + plen > len)
		return dropped(lc, m, PYLB_D_IPV6_BAD_PAYLOAD_LENGTH);
	if (rte_pktmbuf_pkt_len(m) > l2 + sizeof(*ip) + plen)
		rte_pktmbuf_trim(m, rte_pktmbuf_pkt_len(m) - (l2 + sizeof(*ip) + plen));
	if (ip->src_addr[0] == 0xff)
		return dropped(lc, m, PYLB_D_IPV6_MARTIAN);

	if (ip->dst_addr[0] == 0xff) {
		/* Only neighbour solicitations are taken from multicast. */
		if (ip->proto != IPPROTO_ICMPV6 || !nd_multicast(ip->dst_addr))
			return dropped(lc, m, PYLB_D_IPV6_MARTIAN);
		icmp6_input(lc, cfg, port, m, ip, plen, true);
		return false;
	}
	if (l2_multicast || memcmp(ip->src_addr, unspec, 16) == 0)
		return dropped(lc, m, PYLB_D_IPV6_MARTIAN);
	reason = pylb_ipv6_walk(m, l2, proto);
	if (reason != 0)
		return dropped(lc, m, (enum pylb_counter)reason);
	return true;
}

/* ICMPv6 to one of our addresses or VIPs; after extension headers, the
 * kernel's. */
void
pylb_ipv6_icmp(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
	       struct rte_mbuf *m)
{
	struct rte_ipv6_hdr *ip = rte_pktmbuf_mtod_offset(m, struct rte_ipv6_hdr *,
							  sizeof(struct rte_ether_hdr));

	if (m->l3_len != sizeof(*ip))
		return to_kernel(lc, cfg, port, m);
	icmp6_input(lc, cfg, port, m, ip, rte_be_to_cpu_16(ip->payload_len), false);
}

/* An IPv6 packet for one of our addresses: ICMPv6 is answered here, the
 * rest goes to the kernel. */
void
pylb_ipv6_local(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
		struct rte_mbuf *m)
{
	const struct rte_ipv6_hdr *ip = rte_pktmbuf_mtod_offset(m, const struct rte_ipv6_hdr *,
								sizeof(struct rte_ether_hdr));

	if (ip->proto == IPPROTO_ICMPV6)
		return pylb_ipv6_icmp(lc, cfg, port, m);
	to_kernel(lc, cfg, port, m);
}
