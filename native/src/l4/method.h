/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * A forwarding method: everything the packet path does differently by
 * method, in one descriptor per method (nat.c, fullnat.c, dr.c,
 * tunnel.c, gue.c), bound when a connection opens (c->method indexes
 * pylb_l4_methods) or a service is configured. No packet compares a
 * method: it calls or reads its descriptor. What the methods share (the
 * output towards a backend, a reply given the VIP back) is forward.h.
 */
#ifndef PYLB_METHOD_H
#define PYLB_METHOD_H

#include "core/hash.h"
#include "l4/state.h"

struct l4_verdict;

/* Where a method's replies come back (none: past the appliance). */
enum l4_replies {
	L4_REPLIES_NONE,	/* DR, tunnel: the backend answers the client */
	L4_REPLIES_ROUTED,	/* NAT: routed through us, the client their destination */
	L4_REPLIES_LOCAL,	/* FullNAT: to one of our addresses */
};

/* What an ICMP error from the client's side quotes, translated before it
 * goes on to the backend. */
enum l4_quote {
	L4_QUOTE_AS_IS,		/* DR, tunnel: the backend sees the client's packet */
	L4_QUOTE_BACKEND,	/* NAT: the backend's address and port */
	L4_QUOTE_BACKEND_LOCAL,	/* FullNAT: and the local address and port */
};

/* Where a packet as it is goes (DR, tunnel): to backend `to`, of family
 * to_af (a tunnel's may differ from the packet's, af), the ECMP path
 * chosen by `hash`; a tunnel's outer source is `src`, its varying bits
 * from `flow` (l4_flow). */
struct l4_dest {
	const uint8_t *to;
	uint8_t to_af, af;
	uint32_t hash, flow;
	const struct pylb_encap_src *src;
	/* The output towards `to` as the lcore remembers it for its backend
	 * (fib.h: pylb_backend_out); NULL: by the FIB. */
	struct pylb_out_memo *out;
};

typedef void l4_out_fn(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		       struct rte_mbuf *m, const struct l4_dest *d);

struct l4_method {
	const char *name;
	/* A client's packet of connection c, to its backend. */
	void (*forward)(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
			struct rte_mbuf *m, uint16_t *ports, struct pylb_conn *c);
	/* Without an entry (the table full), to backend b; NULL: cannot
	 * (FullNAT: its replies need the entry). */
	void (*untracked)(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
			  struct rte_mbuf *m, uint16_t *ports, const struct pylb_tuple *t,
			  const struct pylb_service *svc, const struct pylb_backend *b,
			  uint32_t hash);
	/* Can its replies be told apart without an entry (NAT: they come
	 * back through us)? NULL: they need not be. */
	bool (*untracked_exact)(const struct pylb_dp *dp, const struct pylb_service *svc,
				const struct pylb_tuple *t, const struct pylb_backend *b);
	/* What opening a connection takes besides the entry (FullNAT: a
	 * local address and port; a tunnel's IPv4 connection to an IPv6
	 * backend: an IPv6 entry): looked for by the decision (false: none;
	 * read only) and taken by the act. NULL: nothing. */
	bool (*open_decide)(const struct pylb_lcore *lc, const struct pylb_service *svc,
			    const struct pylb_tuple *t, struct l4_verdict *v);
	bool (*open)(struct pylb_lcore *lc, const struct pylb_service *svc,
		     struct pylb_conn *c, const struct l4_verdict *v);
	/* A backend's reply of c (where `replies` says it comes): translated
	 * for the client. False: m was taken (sent on, or held). */
	bool (*reply)(struct pylb_lcore *lc, const struct pylb_cfg *cfg, int in_port,
		      struct rte_mbuf *m, const struct pylb_tuple *t, uint16_t *ports,
		      struct pylb_conn *c);
	uint8_t replies;	/* enum l4_replies */
	/* May its backends be of the other family than the VIP (4-in-6,
	 * 6-in-4)? Then a connection holds its backend's (backend_af). */
	bool mixed;
	uint8_t quote;		/* enum l4_quote */
	/* The packet as it is (DR, tunnel: client and VIP pick the ECMP
	 * path; data-path probes); NULL: translated and routed by its own
	 * header (NAT: client and backend; FullNAT: local address and
	 * backend). */
	l4_out_fn *out;
};

/* By enum pylb_l4_method (l4.c). */
extern const struct l4_method *const pylb_l4_methods[PYLB_L4_GUE + 1];
extern const struct l4_method pylb_l4_nat, pylb_l4_fullnat, pylb_l4_dr, pylb_l4_tunnel,
	pylb_l4_gue;

/* Do method's replies come back through the appliance (NAT, FullNAT)? The
 * TCP state machine then sees both directions. */
static inline bool
l4_sees_replies(uint8_t method)
{
	return pylb_l4_methods[method]->replies != L4_REPLIES_NONE;
}

/* The flow hash that chooses among the next hops to a connection's backend
 * (ECMP): a translated packet by its own header (source: the client, or
 * FullNAT's local address; destination: the backend), one sent as it is
 * by the client and the VIP. Trace takes it from here too. */
static inline uint32_t
l4_route_hash(const uint64_t *key, uint8_t method, uint8_t af, const uint8_t *client,
	      const uint8_t *vip, const uint8_t *backend, const uint8_t *lip)
{
	const struct l4_method *m = pylb_l4_methods[method];

	if (m->out != NULL)
		return flow_hash(key, client, vip, af);
	return flow_hash(key, m->replies == L4_REPLIES_LOCAL ? lip : client, backend, af);
}

#endif /* PYLB_METHOD_H */
