/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * L3's entry points for the packet path (path/pipeline.c): ARP, IPv4 and
 * IPv6 parsing and the appliance's own addresses, L3 VIPs.
 */
#ifndef PYLB_L3_H
#define PYLB_L3_H

#include "l3/fib.h"

/* IPv4 validation, inline: every IPv4 packet (and an appliance's answer's
 * inner one) passes it. */

/* The first octets of the addresses no IPv4 packet may have as source or
 * destination here: 0/8, 127/8, multicast and reserved (224/3 covers
 * 255.255.255.255). One load each. */
static const bool ipv4_martian_octet[256] = { [0] = 1, [127] = 1, [224 ... 255] = 1 };

static inline bool
ipv4_martian(uint32_t be)
{
	return ipv4_martian_octet[*(const uint8_t *)&be];
}

/* The header sum of a 20-byte header in two 64-bit adds and a 32-bit one,
 * their carries added back in (2^64 = 1 modulo 2^64 - 1, a multiple of
 * 0xffff); others the long way. A 20-byte one is right when that sum is a
 * multiple of 0xffff (2^16 = 1 modulo 0xffff: the end-around carries of
 * the 16-bit sum change nothing modulo it), and not 0: one division by a
 * constant, which the compiler makes a multiply, instead of folding the
 * carries in. */
static inline bool
ipv4_cksum_ok(const void *hdr, uint32_t ihl)
{
	if (likely(ihl == sizeof(struct rte_ipv4_hdr))) {
		const unaligned_uint64_t *q = hdr;
		uint64_t s;
		bool c1 = __builtin_add_overflow(q[0], q[1], &s);
		bool c2 = __builtin_add_overflow(s, (uint64_t)((const unaligned_uint32_t *)hdr)[4] + c1,
						 &s);

		s += c2;	/* no carry: where c2 is 1, s wrapped to below 2^33 */
		return s % 0xffff == 0 && s != 0;
	}
	return rte_raw_cksum(hdr, ihl) == 0xffff;
}

/* Validate an IPv4 packet (its Ethernet header is l2 bytes): true if it
 * goes on to the FIB, false if it was dropped under its reason. */
static inline bool
pylb_ipv4_parse(struct pylb_lcore *lc, struct rte_mbuf *m, uint32_t l2, bool l2_multicast)
{
	uint32_t len = rte_pktmbuf_data_len(m);
	struct rte_ipv4_hdr *ip;
	uint32_t ihl, tot;

	if (len < l2 + sizeof(*ip))
		return dropped(lc, m, PYLB_D_IPV4_TRUNCATED);
	ip = rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *, l2);
	if (likely(ip->version_ihl == RTE_IPV4_VHL_DEF)) {
		ihl = sizeof(*ip);	/* no options: the usual header */
	} else {
		if ((ip->version_ihl >> 4) != 4)
			return dropped(lc, m, PYLB_D_IPV4_BAD_VERSION);
		ihl = rte_ipv4_hdr_len(ip);
		if (ihl < sizeof(*ip))
			return dropped(lc, m, PYLB_D_IPV4_BAD_IHL);
		if (len < l2 + ihl)
			return dropped(lc, m, PYLB_D_IPV4_TRUNCATED);
	}
	tot = rte_be_to_cpu_16(ip->total_length);
	if (tot < ihl || l2 + tot > len)
		return dropped(lc, m, PYLB_D_IPV4_BAD_TOTAL_LENGTH);
	switch (m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) {
	case RTE_MBUF_F_RX_IP_CKSUM_GOOD:
		break;
	case RTE_MBUF_F_RX_IP_CKSUM_BAD:
		return dropped(lc, m, PYLB_D_IPV4_BAD_CHECKSUM);
	default:	/* not checked by the NIC */
		if (!ipv4_cksum_ok(ip, ihl))
			return dropped(lc, m, PYLB_D_IPV4_BAD_CHECKSUM);
	}
	if ((ipv4_martian(ip->dst_addr) | ipv4_martian(ip->src_addr)) || l2_multicast)
		return dropped(lc, m, PYLB_D_IPV4_MARTIAN);
	/* Ethernet padding is not part of the datagram: do not carry it. */
	if (rte_pktmbuf_pkt_len(m) > l2 + tot)
		rte_pktmbuf_trim(m, rte_pktmbuf_pkt_len(m) - (l2 + tot));
	return true;
}

/* ipv4.c */
void pylb_arp_input(struct pylb_lcore *lc, const struct pylb_port_cfg *pc, uint16_t port,
		    struct rte_mbuf *m);
void pylb_ipv4_local(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
		     struct rte_mbuf *m);
void pylb_ipv4_icmp(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
		    struct rte_mbuf *m);

/* ipv6.c */
bool pylb_ipv6_parse(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
		     struct rte_mbuf *m, uint32_t l2, bool l2_multicast, uint8_t *proto);
void pylb_ipv6_local(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
		     struct rte_mbuf *m);
void pylb_ipv6_icmp(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
		    struct rte_mbuf *m);

/* vip.c: packets to L3 VIPs, to their backends: a burst's (bit i of
 * `mask`: m[i], family af[i], to the VIP of FIB value id[i]), through an
 * inspected VIP's appliance first (inspect.c); and one packet that comes
 * back from an appliance or from the kernel, never inspected. */
void pylb_vip_burst(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		    struct rte_mbuf *const *m, const uint32_t *id, const uint8_t *af,
		    uint32_t mask);
void pylb_vip_input(struct pylb_lcore *lc, const struct pylb_cfg *cfg,
		    int in_port, struct rte_mbuf *m, uint32_t vip_id, uint8_t af);

/* inspect.c: to an inspection pool's appliance (pool slot `pool`):
 * gathered over a burst, then sent by pylb_inspect_flush (each burst's
 * packets come in by one port, in_port); an appliance's GENEVE answer
 * (false: m is not one); flows aged. */
static inline void
pylb_inspect_out(struct pylb_lcore *lc, struct rte_mbuf *m, uint16_t pool, uint8_t af)
{
	struct pylb_inspect *in = lc->inspect;

	if (unlikely(in == NULL))
		return drop(lc, m, PYLB_D_INSPECT_NO_APPLIANCE);
	in->pending[in->n_pending++] = (struct pylb_inspect_pending){ m, pool, af };
}
void pylb_inspect_flush(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port);
bool pylb_inspect_return(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
			 struct rte_mbuf *m, uint8_t af);
void pylb_inspect_age(struct pylb_lcore *lc, uint64_t now, uint32_t step);

#endif /* PYLB_L3_H */
