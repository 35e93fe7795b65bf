/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * What the L4 fast path's two sides share: the clients' side (l4.c) and
 * the backends' replies and hand-overs between workers (reply.c): header
 * access, NAT rewrites, the owner of a flow, a connection's checks and
 * counters.
 */
#ifndef PYLB_L4_H
#define PYLB_L4_H

#include <rte_tcp.h>
#include <rte_udp.h>

#include "l4/ct.h"
#include "l4/packet.h"
#include "l4/tcp.h"
#include "l4/scheduler.h"
#include "l4/service.h"
#include "l4/verdict.h"

#define RESUME_L4	1	/* m->hash.usr: where the owner picks it up */
#define RESUME_REPLY	2
#define RESUME_FULLNAT	3
#define RESUME_ICMP_IN	4	/* icmperr.c */
#define RESUME_ICMP_NAT	5
#define RESUME_ICMP_FULLNAT	6


/* l4.c, for the SYN proxy: a held packet resumed; a translated packet
 * sent to c's backend; TCP refused (RST if `rst`). */
void pylb_l4_resume(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		    struct rte_mbuf *m, struct pylb_conn *c);
void pylb_l4_to_backend(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
			struct rte_mbuf *m, struct pylb_conn *c);
void pylb_l4_refuse(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		    struct rte_mbuf *m, uint8_t af, uint8_t proto, uint16_t *ports,
		    enum pylb_counter reason, bool rst);

/* reply.c: the NAT service a backend's reply t (backend -> client)
 * answers for, with no connection to say. NONE: t's source is no NAT
 * backend; ONE: *svc, replying from its service port *vport; AMBIGUOUS:
 * no single one (the backend is in several NAT services and their
 * consistent choices for the client's flow do not name exactly one; in
 * more than NAT_SLOTS; an all-ports service with a fixed backend port). */
enum nat_reply { NAT_REPLY_NONE, NAT_REPLY_ONE, NAT_REPLY_AMBIGUOUS };
enum nat_reply pylb_nat_reply_service(const struct pylb_dp *dp, const struct pylb_tuple *t,
				      const struct pylb_service **svc, uint16_t *vport);

/* quic.c: the backend index t's QUIC destination connection ID names in
 * svc (its conf.quic); -1: none. */
int32_t pylb_quic_backend(const struct pylb_service *svc, const struct pylb_tuple *t);

/* frag.c: fragments of TCP/UDP datagrams (see there). pylb_frag_gather
 * runs where a packet's ports are read, for a packet that may be a
 * fragment: a later fragment whose datagram's first was seen gets *ports
 * (a stand-in header) and *proto; GO: go on; TAKEN: m was handed to the
 * worker where its datagram gathers (the owner of `gather`), held, or
 * dropped; UNKNOWN: a later fragment whose first was not seen, not held
 * (`hold` false). */
enum { PYLB_FRAG_GO, PYLB_FRAG_TAKEN, PYLB_FRAG_UNKNOWN };
int pylb_frag_gather(struct pylb_lcore *lc, struct rte_mbuf *m, uint8_t af, int in_port,
		     uint32_t kind, const uint8_t *gather, bool hold, uint8_t *proto,
		     uint16_t **ports);

/* reply.c: a packet handed over (m->hash.usr says where it stopped),
 * resumed. */
void pylb_resume(struct pylb_lcore *lc, const struct pylb_cfg *cfg, struct rte_mbuf *m);

/* l4.c: where a NAT or FullNAT connection's packets go (port, next-hop
 * MAC), resolved and cached in the entry; false if not known yet. */
bool pylb_conn_resolve(struct pylb_lcore *lc, struct pylb_conn *c);

/* l4.c: m (built here: a data-path probe) to backend `to` by DR or tunnel. */
void pylb_l4_method_out(struct pylb_lcore *lc, const struct pylb_cfg *cfg, struct rte_mbuf *m,
			uint8_t method, const uint8_t *to, uint8_t af);

/* proxy.c: the PROXY protocol for FullNAT (see there). */
#define PYLB_PP_MAX	108	/* a header's bytes, at most (v1, IPv6) */
int pylb_pp_enable(struct pylb_dp *dp);
void pylb_pp_open(struct pylb_lcore *lc, struct pylb_conn *c, const struct pylb_service *svc);
/* The bytes svc's header may take for a client of family af (0: none). */
uint32_t pylb_pp_room(const struct pylb_service *svc, uint8_t af);
/* A client's packet of c (before translation): false if m was dropped. */
bool pylb_pp_to_backend(struct pylb_lcore *lc, struct rte_mbuf *m, uint16_t *ports,
			const struct pylb_conn *c, struct pylb_pp *pp);
/* A backend's TCP packet of c (any time before routing). */
void pylb_pp_to_client(struct rte_mbuf *m, uint16_t *ports, struct pylb_pp *pp);

/* A client sequence number as the backend has it (the header counted) in
 * the client's terms: inside the header, the client's first byte. */
static inline uint32_t
pp_client_seq(const struct pylb_pp *pp, uint32_t v)
{
	int32_t d = (int32_t)(v - pp->start);

	return d > (int32_t)pp->len ? v - pp->len : d > 0 ? pp->start : v;
}

/* c's PROXY protocol state, if it sends a header. */
static inline struct pylb_pp *
conn_pp(const struct pylb_lcore *lc, const struct pylb_conn *c)
{
	struct pylb_pp *pp = __atomic_load_n(&lc->ct->pp, __ATOMIC_RELAXED);

	if (likely(pp == NULL))
		return NULL;
	pp = &pp[c - lc->ct->conns];
	return pp->len != 0 ? pp : NULL;
}

/* reply.c: route m (a translated reply) towards its new destination. */
void pylb_l4_route(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		   struct rte_mbuf *m, uint8_t af);

/* icmperr.c: ICMP errors about connections (see there). */
bool pylb_icmp_error_in(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
			struct rte_mbuf *m, uint8_t af);
bool pylb_icmp_error_nat(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
			 struct rte_mbuf *m, uint8_t af);
bool pylb_icmp_error_fullnat(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
			     struct rte_mbuf *m, uint8_t af);
bool pylb_icmp_error_tunnel(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
			    struct rte_mbuf *m, uint8_t af);

/* synproxy.c: a SYN answered with a cookie (the MSS it offers mss_less
 * smaller: room for a PROXY header); an ACK checked as one (0, or the
 * drop reason; read only); the connection a cookie's ACK opened, c, sent
 * its SYN to the backend; a client packet held while its backend
 * answers; an opening connection's SYN, unanswered, sent again (false:
 * no more, c ends); a proxied connection's backend packet (false:
 * taken); a client packet's numbers translated towards the backend. */
void pylb_synproxy_syn(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		       struct rte_mbuf *m, uint16_t *ports, const struct pylb_tuple *t,
		       uint32_t mss_less);
int pylb_synproxy_cookie_check(const struct pylb_lcore *lc, const struct pylb_tuple *t,
			       uint32_t seq, uint32_t ack, uint64_t now);
void pylb_synproxy_open(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
			struct rte_mbuf *m, uint16_t *ports, const struct pylb_tuple *t,
			struct pylb_conn *c);
void pylb_synproxy_hold(struct pylb_lcore *lc, int in_port, struct rte_mbuf *m,
			const struct pylb_conn *c);
bool pylb_synproxy_again(struct pylb_lcore *lc, struct pylb_conn *c, uint64_t now);
bool pylb_synproxy_reply(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
			 struct rte_mbuf *m, uint16_t *ports, struct pylb_conn *c);
void pylb_synproxy_to_backend(const struct pylb_conn *c, struct rte_mbuf *m, uint16_t *ports);

/* The gauge of backend counts bs a connection in `state` counts in:
 * active (established, UDP) or inactive. */
static inline int64_t *
conn_gauge(struct pylb_svc_stats *bs, uint8_t state)
{
	return state == PYLB_TCP_ESTABLISHED || state == PYLB_TCP_NONE ?
		&bs->active : &bs->inactive;
}

/* The index of c's backend in svc, or PYLB_BIDX_NONE (l4.c). */
uint16_t pylb_backend_index(const struct pylb_conntrack *ct, const struct pylb_service *svc,
			    const struct pylb_conn *c);

/* The service of t's destination (VIP, protocol, port), or its VIP's
 * all-ports service; NULL if none. */
static inline const struct pylb_service *
service_find(const struct pylb_dp *dp, const struct pylb_tuple *t)
{
	struct svc_key sk = { .port = t->dport, .proto = t->proto, .af = t->af };
	void *data;

	memcpy(sk.ip, t->dst, t->af == 4 ? 4 : 16);
	if (rte_hash_lookup_data(dp->svc_hash, &sk, &data) < 0) {
		sk.port = 0;	/* the VIP's all-ports service */
		if (rte_hash_lookup_data(dp->svc_hash, &sk, &data) < 0)
			return NULL;
	}
	return __atomic_load_n(&dp->svcs[(uintptr_t)data], __ATOMIC_ACQUIRE);
}

/* The pipeline's key stage asks L4: the connection-table hash a packet
 * will look up (0: none), given its FIB sub-burst `kind`. A service's
 * packet is looked up by its source (the client side); what may be a
 * backend's reply (routed: NAT; to one of our addresses: FullNAT) by its
 * destination. */
static inline uint32_t
pylb_l4_key(const struct pylb_dp *dp, struct rte_mbuf *m, uint8_t af, uint8_t proto,
	    uint8_t kind)
{
	const uint8_t *ip = rte_pktmbuf_mtod_offset(m, const uint8_t *,
						    sizeof(struct rte_ether_hdr));
	const uint16_t *ports;
	uint32_t hl;
	bool reply;

	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return 0;
	switch (kind) {
	case PYLB_FIB_SERVICE:
		reply = false;
		break;
	case PYLB_FIB_LOCAL:
		if (dp->n_fullnat == 0)
			return 0;
		reply = true;
		break;
	case PYLB_FIB_GROUP:
		if (dp->n_nat == 0)
			return 0;
		reply = true;
		break;
	default:
		return 0;
	}
	if (af == 4) {
		const struct rte_ipv4_hdr *h = (const void *)ip;

		if (h->fragment_offset & RTE_BE16(RTE_IPV4_HDR_OFFSET_MASK))
			return 0;
		hl = rte_ipv4_hdr_len(h);
	} else {
		hl = m->l3_len;		/* past the extension headers (the parse stage) */
	}
	if (rte_pktmbuf_data_len(m) < sizeof(struct rte_ether_hdr) + hl + 4)
		return 0;
	ports = (const uint16_t *)(ip + hl);
	/* Source and destination: at 12 and 16 in IPv4, 8 and 24 in IPv6. */
	return pylb_ct_hash(dp->conf.hash_key, ip + (af == 4 ? 12 + 4 * reply : 8 + 16 * reply), ports[reply],
			    proto, af);
}



/* The worker that owns a connection: a function of the client's address,
 * which both directions carry (as source, or as destination of the
 * backend's reply), so either direction finds the same owner; and every
 * connection of a client is on one worker, where its persistence lives. */
static inline uint32_t
flow_owner(const struct pylb_dp *dp, const uint8_t *client, uint8_t af)
{
	return owner_hash(dp->conf.hash_key, client, af) % dp->conf.n_workers;
}

/* Queue m for worker `owner`, noting where it resumes. */
static inline void
hand_over(struct pylb_lcore *lc, struct rte_mbuf *m, int in_port, uint8_t af, uint32_t kind,
	  uint32_t owner)
{
	m->port = (uint16_t)in_port;
	m->hash.usr = kind | (uint32_t)af << 8;
	if (rte_ring_enqueue(lc->dp->lcores[owner].redirect, m) != 0)
		drop(lc, m, PYLB_D_REDIRECT_FULL);
	else
		CNT(lc, REDIRECTED);
}

/* Hand m to the worker that owns its flow. True if it was handed over. */
static inline bool
redirect(struct pylb_lcore *lc, struct rte_mbuf *m, int in_port, uint8_t af,
	 uint32_t kind, const uint8_t *client)
{
	struct pylb_dp *dp = lc->dp;
	uint32_t owner;

	if (dp->conf.n_workers < 2 || lc->slot >= dp->conf.n_workers)
		return false;
	owner = flow_owner(dp, client, af);
	if (owner == lc->slot)
		return false;
	hand_over(lc, m, in_port, af, kind, owner);
	return true;
}

/* Count m as traffic of service svc_id (svc: its current object) and of
 * its backend bi: in (a client's packet) or out (a reply). bi is checked
 * against svc: while a backend set is being replaced, a packet may count
 * with an index of the previous set. */
static inline void
count_packet(struct pylb_lcore *lc, const struct pylb_service *svc, uint16_t svc_id,
	     uint16_t bi, const struct rte_mbuf *m, bool out)
{
	uint32_t len = rte_pktmbuf_pkt_len(m) - sizeof(struct rte_ether_hdr);
	struct pylb_svc_stats *st = &lc->svc_stats[svc_id];
	struct pylb_svc_stats *bs = svc != NULL && bi < svc->bal.n_backends ?
		&svc->bstats[(size_t)lc->slot * svc->bstride + bi] : NULL;

	if (out) {
		st->out_packets++;
		st->out_bytes += len;
		if (bs != NULL) {
			bs->out_packets++;
			bs->out_bytes += len;
		}
	} else {
		st->in_packets++;
		st->in_bytes += len;
		if (bs != NULL) {
			bs->in_packets++;
			bs->in_bytes += len;
		}
	}
}

/* Does svc reset the connections of its backend bi, which is down
 * (down_reset)? */
static inline bool
conn_reset_down(const struct pylb_service *svc, uint16_t bi)
{
	return svc != NULL && svc->conf.down_reset && bi != PYLB_BIDX_NONE &&
		svc->bal.backends[bi].state == PYLB_BACKEND_DOWN;
}

/* Bring c up to date with dp->gen: its backend's index, and (NAT) its
 * output. False: its backend is down and the service resets such flows. */
static inline bool
conn_check(struct pylb_lcore *lc, struct pylb_conn *c)
{
	uint32_t gen = __atomic_load_n(&lc->dp->gen, __ATOMIC_ACQUIRE);
	const struct pylb_service *svc;

	if (likely(c->gen == gen))
		return true;
	svc = __atomic_load_n(&lc->dp->svcs[c->svc], __ATOMIC_ACQUIRE);
	c->bidx = pylb_backend_index(lc->ct, svc, c);
	c->gen = gen;
	c->flags &= (uint16_t)~CONN_F_OUT_OK;
	return !conn_reset_down(svc, c->bidx);
}

/* The packet path's entry points (path/pipeline.c). */
void pylb_l4_local(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		   struct rte_mbuf *m, uint8_t af);

/* probe.c: m, for one of our addresses, answers a data-path probe: noted
 * (a SYN-ACK answered with a RST): true, m taken. */
bool pylb_probe_answer(struct pylb_lcore *lc, const struct pylb_cfg *cfg, struct rte_mbuf *m,
		       uint8_t af);

/* l4.c, reply.c. k: the packet's connection-table key, if the pipeline
 * made one; NULL: hashed where needed. */
void pylb_l4_input(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		   struct rte_mbuf *m, uint8_t af, const struct pylb_ct_key *k);
bool pylb_nat_reverse(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		      struct rte_mbuf *m, uint8_t af, const struct pylb_ct_key *k);
bool pylb_fullnat_reply(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
			struct rte_mbuf *m, uint8_t af, const struct pylb_ct_key *k);

/* conn.c */
int pylb_conn_init(struct pylb_dp *dp, struct pylb_lcore *lc);
/* records.c: install the peer's records waiting in lc's sync_in ring. */
void pylb_sync_drain(struct pylb_lcore *lc);
void pylb_conn_free(struct pylb_lcore *lc);
void pylb_conn_age(struct pylb_lcore *lc, uint64_t now, uint32_t step);
bool pylb_conn_snapshot(const struct pylb_conntrack *ct, uint32_t i, struct pylb_conn *c,
			struct pylb_conn6 *a);
void pylb_redirect_drain(struct pylb_lcore *lc, const struct pylb_cfg *cfg);
/* frag.c: the fragment table; held fragments whose first came, resumed
 * (at the end of a burst); entries past their time, with what they hold,
 * dropped. */
int pylb_frag_init(struct pylb_lcore *lc);
void pylb_frag_free(struct pylb_lcore *lc);
void pylb_frag_release(struct pylb_lcore *lc, const struct pylb_cfg *cfg);
void pylb_frag_age(struct pylb_lcore *lc, uint64_t now);
/* acl.c */
void pylb_acls_free(struct pylb_dp *dp);

#endif /* PYLB_L4_H */
