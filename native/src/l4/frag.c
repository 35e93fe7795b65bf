/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * Fragments of TCP and UDP datagrams, followed without reassembly. Only a
 * datagram's first fragment carries its ports, so the fragments of one
 * datagram (source, destination, identification, protocol) gather at one
 * worker: the owner of the client (the source of what clients send to a
 * VIP, the destination of a NAT reply) or, for a FullNAT reply (its
 * destination is ours), of the backend. There, the first fragment makes a
 * short-lived entry holding its ports; a later fragment takes them from
 * it and goes on with a stand-in transport header (the lcore's phantom):
 * looked up, handed over and translated like any packet of its flow, but
 * only its addresses change (ports and checksums are the first fragment's
 * business). The ports travel with the fragment (m->hash.fdir.hi, cleared
 * by the parse stage) when it is handed to the connection's owner. Later
 * fragments that come before their first are held (PYLB_FRAG_HELD per
 * datagram, PYLB_FRAG_HELD_MAX per lcore) until it comes, and dropped when
 * their entry expires.
 */
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_malloc.h>

#include "l4/l4.h"

static uint32_t frag_seq;

int
pylb_frag_init(struct pylb_lcore *lc)
{
	char name[RTE_HASH_NAMESIZE];
	struct rte_hash_parameters hp = {
		.name = name,
		.entries = 2 * PYLB_FRAG_ENTRIES,	/* room for the cuckoo's collisions */
		.key_len = sizeof(struct pylb_frag_key),
		.hash_func = rte_hash_crc,
		.socket_id = (int)rte_socket_id(),
	};
	struct pylb_frags *f = rte_zmalloc("pylb_frags", sizeof(*f), RTE_CACHE_LINE_SIZE);

	if (f == NULL)
		return pylb_fail(-PYLB_E_NOMEM, "cannot allocate the fragment table");
	snprintf(name, sizeof(name), "pylb_fr%u_%u", ++frag_seq, lc->slot);
	f->index = rte_hash_create(&hp);
	if (f->index == NULL) {
		rte_free(f);
		return pylb_fail(-PYLB_E_NOMEM, "cannot create the fragment table");
	}
	f->timeout_tsc = rte_get_timer_hz() * PYLB_FRAG_TIMEOUT_MS / 1000;
	lc->frags = f;
	return 0;
}

static void
drop_held(struct pylb_lcore *lc, struct pylb_frags *f, struct pylb_frag *e)
{
	for (uint8_t i = 0; i < e->n_held; i++)
		drop(lc, e->held[i], PYLB_D_FRAG_TIMEOUT);
	f->n_held -= e->n_held;
	e->n_held = 0;
}

/* The oldest entry goes. */
static void
expire_oldest(struct pylb_lcore *lc, struct pylb_frags *f)
{
	struct pylb_frag *e = &f->e[f->tail++ % PYLB_FRAG_ENTRIES];

	rte_hash_del_key(f->index, &e->key);
	drop_held(lc, f, e);
}

void
pylb_frag_age(struct pylb_lcore *lc, uint64_t now)
{
	struct pylb_frags *f = lc->frags;

	while (f->tail != f->head && f->e[f->tail % PYLB_FRAG_ENTRIES].expire_tsc <= now)
		expire_oldest(lc, f);
}

void
pylb_frag_free(struct pylb_lcore *lc)
{
	struct pylb_frags *f = lc->frags;

	if (f == NULL)
		return;
	while (f->tail != f->head)
		expire_oldest(lc, f);
	for (uint32_t i = 0; i < f->n_ready; i++)
		rte_pktmbuf_free(f->ready[i]);
	rte_hash_free(f->index);
	rte_free(f);
	lc->frags = NULL;
}

/* If m is a fragment of a TCP or UDP datagram: its datagram (*k) and
 * whether it is a later one (no transport header). */
static bool
frag_key(const struct rte_mbuf *m, uint8_t af, struct pylb_frag_key *k, bool *later)
{
	const uint8_t *ip = rte_pktmbuf_mtod_offset(m, const uint8_t *,
						    sizeof(struct rte_ether_hdr));

	memset(k, 0, sizeof(*k));
	k->af = af;
	if (af == 4) {
		const struct rte_ipv4_hdr *h = (const void *)ip;
		uint16_t frag = rte_be_to_cpu_16(h->fragment_offset);

		if (!(frag & (RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)))
			return false;
		memcpy(k->src, &h->src_addr, 4);
		memcpy(k->dst, &h->dst_addr, 4);
		k->id = h->packet_id;
		k->proto = h->next_proto_id;
		*later = (frag & RTE_IPV4_HDR_OFFSET_MASK) != 0;
	} else {
		/* The parse stage checked the chain up to the transport
		 * header or a later fragment's fragment header. */
		const struct rte_ipv6_hdr *h = (const void *)ip;
		uint32_t off = sizeof(*h), end = RTE_MIN(off + rte_be_to_cpu_16(h->payload_len),
			rte_pktmbuf_data_len(m) - (uint32_t)sizeof(struct rte_ether_hdr));
		uint8_t nh = h->proto;

		for (int n = 0; ; n++) {
			const uint8_t *x = ip + off;

			if (n > PYLB_IPV6_EXT_MAX || off + 8 > end)
				return false;
			if (nh == IPPROTO_FRAGMENT) {
				memcpy(k->src, h->src_addr, 16);
				memcpy(k->dst, h->dst_addr, 16);
				memcpy(&k->id, x + 4, 4);
				k->proto = x[0];
				*later = ((x[2] << 8 | x[3]) & 0xfff8) != 0;
				break;
			}
			if (nh != IPPROTO_HOPOPTS && nh != IPPROTO_DSTOPTS && nh != IPPROTO_ROUTING)
				return false;
			off += (x[1] + 1u) * 8;
			nh = x[0];
		}
	}
	return k->proto == IPPROTO_TCP || k->proto == IPPROTO_UDP;
}

static struct pylb_frag *
frag_find(struct pylb_frags *f, const struct pylb_frag_key *k)
{
	void *pos;

	if (rte_hash_lookup_data(f->index, k, &pos) < 0)
		return NULL;
	return &f->e[(uintptr_t)pos];
}

/* A new entry for k; NULL if the table is full of live ones. */
static struct pylb_frag *
frag_add(struct pylb_lcore *lc, struct pylb_frags *f, const struct pylb_frag_key *k)
{
	uint32_t pos = f->head % PYLB_FRAG_ENTRIES;
	struct pylb_frag *e = &f->e[pos];

	if (f->head - f->tail == PYLB_FRAG_ENTRIES) {
		if (e->expire_tsc > lc->now)
			return NULL;
		expire_oldest(lc, f);
	}
	if (rte_hash_add_key_data(f->index, k, (void *)(uintptr_t)pos) < 0)
		return NULL;
	f->head++;
	e->key = *k;
	e->expire_tsc = lc->now + f->timeout_tsc;
	e->ports = 0;
	e->n_held = 0;
	return e;
}

static uint16_t *
phantom(struct pylb_frags *f, uint32_t ports)
{
	struct rte_tcp_hdr *h = (struct rte_tcp_hdr *)f->phantom;

	memset(h, 0, sizeof(*h));
	memcpy(h, &ports, sizeof(ports));	/* source and destination port */
	h->data_off = sizeof(*h) << 2;
	return f->phantom;
}

int
pylb_frag_gather(struct pylb_lcore *lc, struct rte_mbuf *m, uint8_t af, int in_port,
		 uint32_t kind, const uint8_t *gather, bool hold, uint8_t *proto,
		 uint16_t **ports)
{
	struct pylb_frags *f = lc->frags;
	struct pylb_frag_key k;
	struct pylb_frag *e;
	bool later;

	if (!frag_key(m, af, &k, &later))
		return PYLB_FRAG_GO;
	if (m->hash.fdir.hi != 0) {	/* seen where its datagram gathers */
		if (later) {
			*proto = k.proto;
			*ports = phantom(f, m->hash.fdir.hi);
		}
		return PYLB_FRAG_GO;
	}
	if (redirect(lc, m, in_port, af, kind, gather))
		return PYLB_FRAG_TAKEN;
	e = frag_find(f, &k);
	if (!later) {
		if (*ports == NULL || *proto != k.proto)
			return PYLB_FRAG_GO;	/* the caller judges it */
		if (e == NULL && (e = frag_add(lc, f, &k)) == NULL)
			return PYLB_FRAG_GO;	/* its later fragments will not follow */
		if (e->ports == 0) {
			memcpy(&e->ports, *ports, sizeof(e->ports));
			/* Its held fragments resume after it (pylb_frag_release). */
			memcpy(&f->ready[f->n_ready], e->held, e->n_held * sizeof(e->held[0]));
			f->n_ready += e->n_held;
			f->n_held -= e->n_held;
			e->n_held = 0;
		}
		m->hash.fdir.hi = e->ports;
		return PYLB_FRAG_GO;
	}
	if (e != NULL && e->ports != 0) {
		m->hash.fdir.hi = e->ports;
		*proto = k.proto;
		*ports = phantom(f, e->ports);
		CNT(lc, FRAGMENTS_FOLLOWED);
		return PYLB_FRAG_GO;
	}
	if (!hold)
		return PYLB_FRAG_UNKNOWN;
	if (e == NULL && (e = frag_add(lc, f, &k)) == NULL) {
		drop(lc, m, PYLB_D_FRAG_TABLE_FULL);
		return PYLB_FRAG_TAKEN;
	}
	if (e->n_held == PYLB_FRAG_HELD || f->n_held + f->n_ready >= PYLB_FRAG_HELD_MAX) {
		drop(lc, m, PYLB_D_FRAG_HOLD_FULL);
		return PYLB_FRAG_TAKEN;
	}
	m->port = (uint16_t)in_port;
	m->hash.usr = kind | (uint32_t)af << 8;
	e->held[e->n_held++] = m;
	f->n_held++;
	CNT(lc, FRAGMENTS_HELD);
	return PYLB_FRAG_TAKEN;
}

void
pylb_frag_release(struct pylb_lcore *lc, const struct pylb_cfg *cfg)
{
	struct pylb_frags *f = lc->frags;
	struct rte_mbuf *ready[PYLB_FRAG_HELD_MAX];
	uint32_t n = f->n_ready;

	memcpy(ready, f->ready, n * sizeof(ready[0]));
	f->n_ready = 0;
	for (uint32_t i = 0; i < n; i++)
		pylb_resume(lc, cfg, ready[i]);
}
