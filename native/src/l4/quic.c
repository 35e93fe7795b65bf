/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * QUIC connection-ID routing (draft-ietf-quic-load-balancers): the backend
 * a QUIC packet's destination connection ID names. A backend chooses its
 * connection IDs as: a first octet whose 3 high bits are the service's
 * config id, then its server id and a nonce, in plaintext, or the two
 * encrypted together with AES-128-ECB (one pass, when they make 16 bytes).
 * A long header carries the ID's length; a short header does not, so the
 * service's IDs have one length (1 + server id + nonce). A client's Initial
 * (its own random ID) names none: the scheduler decides, as for any new
 * flow; the backend's IDs name it from then on, whatever the client's
 * address and port become.
 */
#include "l4/l4.h"

int32_t
pylb_quic_backend(const struct pylb_service *svc, const struct pylb_tuple *t)
{
	const struct pylb_quic_conf *q = &svc->conf.quic;
	uint32_t len = 1u + q->sid_len + q->nonce_len;
	const uint8_t *p = t->payload, *cid, *sid;
	uint8_t plain[16];

	if (p == NULL || t->plen == 0)
		return -1;
	if (p[0] & 0x80) {
		/* Long header: flags, version (4 bytes), DCID length, DCID. */
		if (t->plen < 6 + len || p[5] != len)
			return -1;
		cid = p + 6;
	} else {
		if (t->plen < 1 + len)
			return -1;
		cid = p + 1;
	}
	if (cid[0] >> 5 != q->config_id)
		return -1;
	sid = cid + 1;
	if (q->encrypted) {
		AES_decrypt(cid + 1, plain, &svc->quic_key);
		sid = plain;
	}
	for (uint32_t i = 0; i < svc->bal.n_backends; i++) {
		const struct pylb_backend *b = &svc->bal.backends[i];

		if (b->sid_len == q->sid_len && memcmp(b->sid, sid, q->sid_len) == 0)
			return b->state == PYLB_BACKEND_DOWN ? -1 : (int32_t)i;
	}
	return -1;
}
