/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * What the L4 fast path (l4.c) and service control (service.c) share: the
 * service table's key and the NAT backend table's encoding.
 */
#ifndef PYLB_SERVICE_H
#define PYLB_SERVICE_H

#include <stdbool.h>
#include <stdint.h>

/* dp->svc_hash's key: a service's VIP, port and protocol. */
struct svc_key {
	uint8_t ip[16];
	uint16_t port;		/* network order; 0: all ports */
	uint8_t proto;
	uint8_t af;
};

/* dp->nat_backends maps a NAT backend (address, port, protocol) to the
 * number of NAT services that have it (low 16 bits) and up to NAT_SLOTS of
 * them (16 bits each above: id + 1; 0: empty). More services than slots:
 * a reply without a connection cannot be told apart (reply.c). */
#define NAT_SLOTS	3

static inline uint32_t
nat_refs(uintptr_t v)
{
	return (uint32_t)(v & 0xffff);
}

/* The service id in slot i (0..NAT_SLOTS-1); -1: empty. */
static inline int
nat_slot(uintptr_t v, int i)
{
	return (int)((v >> (16 * (i + 1))) & 0xffff) - 1;
}

static inline uintptr_t
nat_slot_set(uintptr_t v, int i, int id)
{
	v &= ~((uintptr_t)0xffff << (16 * (i + 1)));
	return v | (uintptr_t)(id + 1) << (16 * (i + 1));
}

/* Are all its services in the slots? */
static inline bool
nat_listed(uintptr_t v)
{
	uint32_t n = 0;

	for (int i = 0; i < NAT_SLOTS; i++)
		n += nat_slot(v, i) >= 0;
	return n == nat_refs(v);
}

#endif /* PYLB_SERVICE_H */
