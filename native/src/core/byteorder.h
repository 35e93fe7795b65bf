/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * Byte swaps the compiler can see. DPDK 22.11's x86 rte_bswap16/32/64 are
 * `asm volatile` (xchgb, bswap): the compiler may neither fold them into a
 * load (movbe) or a compare, nor move or merge them, and xchgb wants one of
 * four registers. Its generic header's definitions, which DPDK itself uses
 * under RTE_FORCE_INTRINSICS, are the compiler's builtins: the same
 * results, constants still folded. They replace the asm in every file that
 * includes this one (core/dp.h does), from here on.
 */
#ifndef PYLB_CORE_BYTEORDER_H
#define PYLB_CORE_BYTEORDER_H

#include <rte_byteorder.h>

#undef rte_bswap16
#undef rte_bswap32
#undef rte_bswap64
#define rte_bswap16(x) ((uint16_t)__builtin_bswap16(x))
#define rte_bswap32(x) ((uint32_t)__builtin_bswap32(x))
#define rte_bswap64(x) ((uint64_t)__builtin_bswap64(x))

#endif /* PYLB_CORE_BYTEORDER_H */
