/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * Fast-path tunables, in one place.
 */
#ifndef PYLB_TUNABLES_H
#define PYLB_TUNABLES_H

#define PYLB_BURST		32	/* packets per RX burst */
#define PYLB_PREFETCH_AHEAD	3	/* packets prefetched ahead in a burst */
#define PYLB_TX_BUF		64	/* per port TX buffer, >= PYLB_BURST */
#define PYLB_NEIGH_RING		1024	/* learn events queued to control */
#define PYLB_NEIGH_DEFAULT	4096	/* neighbour table entries */
#define PYLB_RXD_DEFAULT	1024
#define PYLB_TXD_DEFAULT	1024

#endif /* PYLB_TUNABLES_H */
