/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * What the L4 fast path (l4.c) and service control (service.c) share: the
 * service table's key and the NAT backend table's encoding.
 */
#ifndef PYLB_SERVICE_H
#define PYLB_SERVICE_H

#include <stdint.h>

/* dp->svc_hash's key: a service's VIP, port and protocol. */
struct svc_key {
	uint8_t ip[16];
	uint16_t port;		/* network order; 0: all ports */
	uint8_t proto;
	uint8_t af;
};

/* dp->nat_backends maps a NAT backend (address, port, protocol) to the
 * number of NAT services that have it (low 16 bits) and the sum of their
 * ids + 1 (above): with one service, that sum names it. */
#define NAT_REFS_BITS	16

#endif /* PYLB_SERVICE_H */
