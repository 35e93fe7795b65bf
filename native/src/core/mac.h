/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * The cookies' MAC (GENEVE flow cookies, SYN cookies): AES-128 under the
 * dataplane's cookie key (the hash key's HK_COOKIE words, as 16 bytes in
 * memory order), as a CBC-MAC of a fixed number of 16-byte blocks; its
 * first 8 bytes. Each kind of input has its own length and says its kind
 * and family in its first bytes, so no input is another's prefix (what
 * CBC-MAC needs to be a MAC).
 *
 * Why AES: a GENEVE return checks its cookie every packet, and the
 * SipHash-2-4 this replaces cost ~48 cycles of ALU work there (12 rounds of
 * 14 operations, competing with the packet's own). AES-NI's rounds run on
 * the vector units, beside the rest. Built without AES-NI (PYLB_MARCH
 * below westmere), OpenSSL's AES gives the same values, slower.
 */
#ifndef PYLB_MAC_H
#define PYLB_MAC_H

#include <stdint.h>
#include <string.h>

#ifdef __AES__
#include <wmmintrin.h>
#else
#define OPENSSL_SUPPRESS_DEPRECATED	/* AES_encrypt: the one-block API */
#include <openssl/aes.h>
#endif

#include "core/hash.h"

#define PYLB_MAC_BLOCK	16

struct pylb_mac_key {
#ifdef __AES__
	__m128i rk[11];		/* the round keys */
#else
	AES_KEY aes;
#endif
};

#ifdef __AES__
/* One step of AES-128's key expansion (FIPS-197 5.2): the previous round
 * key and SubWord(RotWord(its last word)) ^ Rcon, in each word of a. */
static inline __m128i
mac_expand(__m128i k, __m128i a)
{
	a = _mm_shuffle_epi32(a, 0xff);
	k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
	k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
	k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
	return _mm_xor_si128(k, a);
}
#endif

/* The key from the dataplane's hash key (hk: PYLB_HASH_KEY_WORDS words). */
static inline void
pylb_mac_key_init(struct pylb_mac_key *key, const uint64_t *hk)
{
	uint8_t k[16];

	memcpy(k, hk + HK_COOKIE, sizeof(k));
#ifdef __AES__
	/* aeskeygenassist takes its round constant as an immediate. */
#define MAC_ROUND(i, rcon) \
	key->rk[i] = mac_expand(key->rk[(i) - 1], _mm_aeskeygenassist_si128(key->rk[(i) - 1], rcon))
	key->rk[0] = _mm_loadu_si128((const __m128i *)(const void *)k);
	MAC_ROUND(1, 0x01); MAC_ROUND(2, 0x02); MAC_ROUND(3, 0x04); MAC_ROUND(4, 0x08);
	MAC_ROUND(5, 0x10); MAC_ROUND(6, 0x20); MAC_ROUND(7, 0x40); MAC_ROUND(8, 0x80);
	MAC_ROUND(9, 0x1b); MAC_ROUND(10, 0x36);
#undef MAC_ROUND
#else
	AES_set_encrypt_key(k, 128, &key->aes);
#endif
}

/* The MAC of n blocks, block b the words w[2b] and w[2b + 1] (its bytes
 * in memory order, little-endian: words built from values in registers,
 * not bytes stored and loaded back whole, which stalls on store
 * forwarding). */
static inline uint64_t
pylb_mac(const struct pylb_mac_key *key, const uint64_t *w, uint32_t n)
{
#ifdef __AES__
	__m128i x = _mm_setzero_si128();

	for (uint32_t b = 0; b < n; b++) {
		x = _mm_xor_si128(x, _mm_set_epi64x((long long)w[2 * b + 1], (long long)w[2 * b]));
		x = _mm_xor_si128(x, key->rk[0]);
		for (int r = 1; r < 10; r++)
			x = _mm_aesenc_si128(x, key->rk[r]);
		x = _mm_aesenclast_si128(x, key->rk[10]);
	}
	return (uint64_t)_mm_cvtsi128_si64(x);
#else
	uint8_t x[PYLB_MAC_BLOCK] = { 0 }, in[PYLB_MAC_BLOCK];
	uint64_t out;

	for (uint32_t b = 0; b < n; b++) {
		memcpy(in, w + 2 * b, sizeof(in));
		for (int i = 0; i < PYLB_MAC_BLOCK; i++)
			x[i] ^= in[i];
		AES_encrypt(x, x, &key->aes);
	}
	memcpy(&out, x, sizeof(out));
	return out;
#endif
}

#endif /* PYLB_MAC_H */
