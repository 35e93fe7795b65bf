/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * Packet helpers every stage uses: counters and drops, TX buffers,
 * checksum updates, the ports' own addresses, the exception path, ICMP
 * errors.
 */
#ifndef PYLB_PKT_H
#define PYLB_PKT_H

#include <string.h>

#include <rte_byteorder.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf.h>

#include "core/dp.h"

#define ICMP_DEST_UNREACH	3
#define ICMP_TIME_EXCEEDED	11
#define ICMP_FRAG_NEEDED	4	/* code of destination unreachable */
#define ICMP_PKT_FILTERED	13	/* code: administratively prohibited */
#define ICMP_PORT_UNREACHABLE	3	/* code of destination unreachable */
#define ICMP6_ADMIN_PROHIBITED	1	/* code of destination unreachable */
#define ICMP6_PORT_UNREACHABLE	4
#define ICMP6_PACKET_TOO_BIG	2
#define ICMP6_DEST_UNREACH	1
#define ICMP6_TIME_EXCEEDED	3

#define CNT(lc, e) ((lc)->stats->c[PYLB_C_##e]++)

static inline void
drop(struct pylb_lcore *lc, struct rte_mbuf *m, enum pylb_counter reason)
{
	lc->stats->c[reason]++;
	rte_pktmbuf_free(m);
}

/* drop(), for a stage that answers whether the packet goes on. */
static inline bool
dropped(struct pylb_lcore *lc, struct rte_mbuf *m, enum pylb_counter reason)
{
	drop(lc, m, reason);
	return false;
}

/* Queue for TX in lcore lc's buffer b. */
static inline void
txbuf_put(struct pylb_lcore *lc, struct pylb_txbuf *b, struct rte_mbuf *m)
{
	if (unlikely(b->n == PYLB_TX_BUF)) {
		drop(lc, m, PYLB_D_TX_FULL);
		return;
	}
	b->pkts[b->n++] = m;
}

/* Queue for TX on buffer `q` (a port, or PYLB_TXQ_KERNEL(port)). */
static inline void
tx(struct pylb_lcore *lc, uint16_t q, struct rte_mbuf *m)
{
	txbuf_put(lc, &lc->tx[q], m);
}

/* A VLAN sub-interface's frame gets its tag as it leaves. False: no room
 * (m dropped). */
static inline bool
vlan_tagged(struct pylb_lcore *lc, struct rte_mbuf *m, uint16_t vlan)
{
	m->vlan_tci = vlan;
	if (rte_vlan_insert(&m) == 0)
		return true;
	drop(lc, m, PYLB_D_VLAN_NO_HEADROOM);
	return false;
}

/* The frames queued for a VLAN sub-interface (`vlan`; 0: a port's own),
 * tagged. */
static inline void
txbuf_tag(struct pylb_lcore *lc, struct pylb_txbuf *b, uint16_t vlan)
{
	uint16_t i, k = 0;

	if (vlan == 0)
		return;
	for (i = 0; i < b->n; i++)
		if (vlan_tagged(lc, b->pkts[i], vlan))
			b->pkts[k++] = b->pkts[i];
	b->n = k;
}

/* The checksum of a folded sum s. RFC 1624's eqn. 3 yields 0x0000 for
 * a sum of 0xffff, which may stand for data that sums to +0 (all zero: an
 * echo with id, sequence and payload 0), whose checksum is 0xffff; 0xffff
 * checks out either way (and UDP's 0 means "none"), so it is never 0. */
static inline uint16_t
cksum_final(uint16_t s)
{
	return s == 0xffff ? 0xffff : (uint16_t)~s;
}

/* RFC 1624 for several words at once: what replacing `len` bytes (a
 * multiple of 4) from `old` to `new` adds to a ones' complement sum, in
 * 32-bit words; cksum_apply() folds it into a checksum once. */
static inline uint64_t
cksum_delta(const void *old, const void *new, uint32_t len)
{
	const unaligned_uint32_t *o = old, *n = new;
	uint64_t s = 0;

	for (uint32_t i = 0; i < len / 4; i++)
		s += (uint64_t)(uint32_t)~o[i] + n[i];
	return s;
}

static inline uint16_t
cksum_apply(uint16_t cksum, uint64_t delta)
{
	uint64_t s = (uint16_t)~cksum + delta;

	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return cksum_final((uint16_t)s);
}

/* RFC 1624 incremental update of a ones' complement checksum for one 16-bit
 * word changing from `old` to `new` (all in network byte order). */
static inline uint16_t
cksum_adjust16(uint16_t cksum, uint16_t old, uint16_t new)
{
	uint32_t s = (uint16_t)~cksum + (uint16_t)~old + new;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return cksum_final((uint16_t)s);
}


static inline uint64_t
mac_to_u64(const struct rte_ether_addr *mac)
{
	uint64_t v = 0;

	memcpy(&v, mac->addr_bytes, RTE_ETHER_ADDR_LEN);
	return v;
}

static inline void
u64_to_mac(uint64_t v, struct rte_ether_addr *mac)
{
	memcpy(mac->addr_bytes, &v, RTE_ETHER_ADDR_LEN);
}

static inline bool
port_owns4(const struct pylb_port_cfg *pc, uint32_t ip)
{
	for (uint16_t i = 0; i < pc->n_addrs4; i++)
		if (pc->addrs4[i].ip == ip)
			return true;
	return false;
}

static inline bool
port_connected4(const struct pylb_port_cfg *pc, uint32_t ip)
{
	for (uint16_t i = 0; i < pc->n_addrs4; i++)
		if ((ip & pc->addrs4[i].mask) ==
		    (pc->addrs4[i].ip & pc->addrs4[i].mask))
			return true;
	return false;
}

static inline bool
prefix6_match(const uint8_t *a, const uint8_t *b, uint8_t len)
{
	uint8_t full = len / 8, rem = len % 8;

	if (memcmp(a, b, full) != 0)
		return false;
	return rem == 0 ||
		((a[full] ^ b[full]) & (uint8_t)(0xff << (8 - rem))) == 0;
}

static inline bool
port_owns6(const struct pylb_port_cfg *pc, const uint8_t *ip)
{
	for (uint16_t i = 0; i < pc->n_addrs6; i++)
		if (memcmp(pc->addrs6[i].ip, ip, 16) == 0)
			return true;
	return false;
}

/* Is ip on one of the port's IPv6 networks? */
static inline bool
port_connected6(const struct pylb_port_cfg *pc, const uint8_t *ip)
{
	for (uint16_t i = 0; i < pc->n_addrs6; i++)
		if (prefix6_match(pc->addrs6[i].ip, ip, pc->addrs6[i].prefix_len))
			return true;
	return false;
}

/* The port's address to speak from towards `ip`: one on the same network,
 * else the first. NULL when the port has no address of that family. */
static inline const uint8_t *
port_src6(const struct pylb_port_cfg *pc, const uint8_t *ip)
{
	for (uint16_t i = 0; i < pc->n_addrs6; i++)
		if (prefix6_match(pc->addrs6[i].ip, ip, pc->addrs6[i].prefix_len))
			return pc->addrs6[i].ip;
	return pc->n_addrs6 ? pc->addrs6[0].ip : NULL;
}

static inline bool
port_src4(const struct pylb_port_cfg *pc, uint32_t ip, uint32_t *src)
{
	for (uint16_t i = 0; i < pc->n_addrs4; i++)
		if ((ip & pc->addrs4[i].mask) ==
		    (pc->addrs4[i].ip & pc->addrs4[i].mask)) {
			*src = pc->addrs4[i].ip;
			return true;
		}
	if (pc->n_addrs4 == 0)
		return false;
	*src = pc->addrs4[0].ip;
	return true;
}

static inline bool
ip6_is_link_local(const uint8_t *ip)
{
	return ip[0] == 0xfe && (ip[1] & 0xc0) == 0x80;
}

/* m's transport header, past its extension headers (hop-by-hop first only,
 * routing, destination options, fragment; at most PYLB_IPV6_EXT_MAX, within
 * the 511 bytes m->l3_len holds): *proto is its protocol and m->l3_len its
 * offset from the IPv6 header. A non-first fragment, or a routing header
 * with segments left, has no transport header for this hop: the walk stops
 * there (*proto: that header). 0, or the reason to drop m. */
static inline int
pylb_ipv6_walk(struct rte_mbuf *m, uint32_t l2, uint8_t *proto)
{
	const struct rte_ipv6_hdr *ip = rte_pktmbuf_mtod_offset(m, const struct rte_ipv6_hdr *, l2);
	const uint8_t *base = (const uint8_t *)ip;
	uint32_t end = sizeof(*ip) + rte_be_to_cpu_16(ip->payload_len);
	uint32_t off = sizeof(*ip), len;
	uint8_t nh = ip->proto;

	for (int n = 0; ; n++) {
		const uint8_t *h = base + off;
		bool last = false;

		switch (nh) {
		case IPPROTO_HOPOPTS:
			if (n != 0)
				return PYLB_D_IPV6_EXT_INVALID;
			/* fall through */
		case IPPROTO_DSTOPTS:
		case IPPROTO_ROUTING:
			if (off + 8 > end)
				return PYLB_D_IPV6_EXT_TRUNCATED;
			len = (h[1] + 1u) * 8;
			last = nh == IPPROTO_ROUTING && h[3] != 0;	/* segments left */
			break;
		case IPPROTO_FRAGMENT:
			if (off + 8 > end)
				return PYLB_D_IPV6_EXT_TRUNCATED;
			len = 8;
			last = ((h[2] << 8 | h[3]) & 0xfff8) != 0;	/* offset */
			break;
		default:
			last = true;
		}
		if (last) {
			*proto = nh;
			m->l3_len = off;
			return 0;
		}
		if (n == PYLB_IPV6_EXT_MAX || off + len > 511)
			return PYLB_D_IPV6_EXT_INVALID;
		if (off + len > end)
			return PYLB_D_IPV6_EXT_TRUNCATED;
		nh = h[0];
		off += len;
	}
}

/* Hand a packet for one of the appliance's addresses to the kernel through
 * the exception path of the port it arrived on. */
static inline void
to_kernel(struct pylb_lcore *lc, const struct pylb_cfg *cfg, uint16_t port,
	  struct rte_mbuf *m)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);

	if (!cfg->ports[port].kernel)
		return drop(lc, m, PYLB_D_LOCAL_UNHANDLED);
	/* The kernel interface has the port's MAC: address the frame to it. */
	rte_ether_addr_copy(&cfg->ports[port].mac, &eth->dst_addr);
	CNT(lc, TO_KERNEL);
	tx(lc, PYLB_TXQ_KERNEL(port), m);
}



/* Replace a 4- or 16-byte address and a port in a TCP/UDP checksum. */
static inline uint16_t
l4_cksum_update(uint16_t ck, const void *old_ip, const void *new_ip, uint32_t len,
		uint16_t old_port, uint16_t new_port)
{
	return cksum_apply(ck, cksum_delta(old_ip, new_ip, len) +
			   (uint16_t)~old_port + new_port);
}

/* The TCP or UDP checksum of the `len` bytes at l4, computed afresh (a
 * header rebuilt here), with the pseudo-header of the IP header at ip
 * (IPv6: whatever extension headers lie between). */
static inline uint16_t
l4_cksum(const uint8_t *ip, uint8_t af, const void *l4, uint32_t len, uint8_t proto)
{
	uint32_t s = __rte_raw_cksum(ip + (af == 4 ? 12 : 8), af == 4 ? 8 : 32, 0);
	uint16_t ck;

	s += rte_cpu_to_be_16(proto) + rte_cpu_to_be_16((uint16_t)len);
	ck = (uint16_t)~__rte_raw_cksum_reduce(__rte_raw_cksum(l4, len, s));
	return proto == IPPROTO_UDP && ck == 0 ? 0xffff : ck;
}

#endif /* PYLB_PKT_H */
