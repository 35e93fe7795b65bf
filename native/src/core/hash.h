/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * The keyed flow hash. Every choice made from a packet's addresses and
 * ports (connection-table buckets, ECMP next hops, lookup-table slots,
 * backends, the owning worker) is a hash keyed by the dataplane's secret
 * (struct pylb_dp_conf's hash_key: random, or derived from a fleet's
 * shared secret), so nobody who lacks it can aim at one bucket or one
 * backend.
 *
 * The family is multilinear hashing (Lemire and Kaser, "Strongly universal
 * string hashing is fast", 2014): with 64-bit random keys k and 32-bit
 * words w, (k0 + k1 w1 + ... + kn wn) mod 2^64, high 32 bits, is strongly
 * universal: any two different inputs collide with probability 2^-32 over
 * the key. A CRC with a secret seed is not: it is linear, so inputs that
 * collide under one seed collide under every seed. A multiply costs what a
 * CRC step costs, so the fast path pays nothing for the key.
 *
 * Strong universality is about pairs. A set of inputs that differ in one
 * byte only (a /24 of clients) makes the low output bits functions of a
 * few key bits, so `hash % n` could send them all one way for a key in
 * fifty: a bijective finaliser (murmur3's) spreads every output bit over
 * all of them, and leaves the collisions as they were.
 */
#ifndef PYLB_HASH_H
#define PYLB_HASH_H

#include <stdint.h>

#include <rte_common.h>

/* Where each function's key words start in the key (PYLB_HASH_KEY_WORDS). */
enum {
	HK_FLOW = 0,		/* (source, destination): 1 + 8 words */
	HK_CT = 9,		/* a connection side (address, port, proto): 1 + 5 */
	HK_OWNER = 15,		/* a client address: 1 + 4 (+ 1 unused) */
	HK_TUPLE = 21,		/* a flow hash, its ports and proto: 1 + 3 */
	HK_COOKIE = 25,		/* the cookies' MAC's (core/mac.h): 2 */
	HK__END = 27,
};

static inline uint32_t
hk_mix(uint32_t h)
{
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	return h ^ (h >> 16);
}

static inline uint32_t
hk_word(const uint8_t *p, int i)
{
	return ((const unaligned_uint32_t *)p)[i];
}

/* The hash of an address (af 4: 1 word, 6: 4 words) plus one more word,
 * keyed by k[0..5]. */
static inline uint32_t
hk_addr(const uint64_t *k, const uint8_t *ip, uint8_t af, uint32_t more)
{
	uint64_t s = k[0] + k[5] * more + k[1] * hk_word(ip, 0);

	if (af != 4)
		s += k[2] * hk_word(ip, 1) + k[3] * hk_word(ip, 2) + k[4] * hk_word(ip, 3);
	return (uint32_t)(s >> 32);
}

/* The flow hash of (source, destination) addresses as on the wire. */
static inline uint32_t
flow_hash4(const uint64_t *key, uint32_t src, uint32_t dst)
{
	const uint64_t *k = key + HK_FLOW;

	return hk_mix((uint32_t)((k[0] + k[1] * src + k[5] * dst) >> 32));
}

static inline uint32_t
flow_hash6(const uint64_t *key, const uint8_t *src, const uint8_t *dst)
{
	const uint64_t *k = key + HK_FLOW;
	uint64_t s = k[0];

	for (int i = 0; i < 4; i++)
		s += k[1 + i] * hk_word(src, i) + k[5 + i] * hk_word(dst, i);
	return hk_mix((uint32_t)(s >> 32));
}

/* The flow hash of two addresses of family af. */
static inline uint32_t
flow_hash(const uint64_t *key, const uint8_t *src, const uint8_t *dst, uint8_t af)
{
	return af == 4 ? flow_hash4(key, *(const unaligned_uint32_t *)src,
				    *(const unaligned_uint32_t *)dst) :
		flow_hash6(key, src, dst);
}

/* A flow hash extended by a flow's ports and protocol (a backend per
 * connection rather than per client). */
static inline uint32_t
flow_hash_ports(const uint64_t *key, uint32_t hash, uint16_t sport, uint16_t dport,
		uint8_t proto)
{
	const uint64_t *k = key + HK_TUPLE;

	return hk_mix((uint32_t)((k[0] + k[1] * hash + k[2] * ((uint32_t)sport << 16 | dport) +
				  k[3] * proto) >> 32));
}

/* The connection-table hash of one side of a tuple (address, port): not
 * finalised here, ct_pos() does it. */
static inline uint32_t
pylb_ct_hash(const uint64_t *key, const uint8_t *ip, uint16_t port, uint8_t proto, uint8_t af)
{
	return hk_addr(key + HK_CT, ip, af, (uint32_t)port | (uint32_t)proto << 16 |
		       (uint32_t)af << 24);
}

/* The hash that picks a client's worker. */
static inline uint32_t
owner_hash(const uint64_t *key, const uint8_t *client, uint8_t af)
{
	return hk_mix(hk_addr(key + HK_OWNER, client, af, 0));
}

#endif /* PYLB_HASH_H */
