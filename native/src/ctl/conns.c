/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * The connection tables' API: listing, counts, the test clock, timeouts.
 */
#include <stdio.h>
#include <string.h>

#include "ctl/ctl.h"

static void
ip_of(struct pylb_ip *out, const uint8_t *ip, uint8_t af)
{
	memset(out, 0, sizeof(*out));
	out->af = af;
	memcpy(out->ip, ip, af == 4 ? 4 : 16);
}

int
pylb_dp_conn_list(struct pylb_dp *dp, struct pylb_conn_info *out, uint32_t max)
{
	uint64_t now = pylb_now(dp), hz = rte_get_timer_hz();
	uint32_t n = 0;

	for (uint32_t s = 0; s < dp->n_slots; s++) {
		const struct pylb_conntrack *ct = dp->lcores[s].ct;

		for (uint32_t i = 1; i <= ct->cap && n < max; i++) {
			struct pylb_conn_info *o = &out[n];
			struct pylb_conn6 a;
			struct pylb_conn c;

			if (!pylb_conn_snapshot(ct, i, &c, &a))
				continue;
			memset(o, 0, sizeof(*o));
			ip_of(&o->client, a.a[CONN_CLIENT], c.af);
			ip_of(&o->vip, a.a[CONN_VIP], c.af);
			ip_of(&o->backend, a.a[CONN_BACKEND], conn_backend_af(&c));
			if (c.method == PYLB_L4_FULLNAT) {
				ip_of(&o->local, a.a[CONN_LIP], c.af);
				o->lport = rte_be_to_cpu_16(c.lport);
			}
			o->cport = rte_be_to_cpu_16(c.cport);
			o->vport = rte_be_to_cpu_16(c.vport);
			o->bport = rte_be_to_cpu_16(c.bport);
			o->proto = c.proto;
			o->state = c.state;
			o->lcore_slot = (uint16_t)s;
			o->expires_ms = c.expire_tsc > now ? (c.expire_tsc - now) * 1000 / hz : 0;
			o->packets = c.packets;
			n++;
		}
	}
	return (int)n;
}

uint64_t
pylb_dp_half_open(const struct pylb_dp *dp, const struct pylb_ip *source)
{
	uint64_t n = 0;

	for (uint32_t s = 0; s < dp->n_slots; s++) {
		const struct pylb_conntrack *ct = dp->lcores[s].ct;

		if (source == NULL)
			n += __atomic_load_n(&ct->half_open, __ATOMIC_RELAXED);
		else if (ct->src_ho != NULL)
			n += __atomic_load_n(&ct->src_ho[pylb_src_slot(ct, source->ip, source->af)],
					     __ATOMIC_RELAXED);
	}
	return n;
}

uint64_t
pylb_dp_conn_count(const struct pylb_dp *dp)
{
	uint64_t n = 0;

	for (uint32_t s = 0; s < dp->n_slots; s++)
		n += dp->lcores[s].ct->cap - dp->lcores[s].ct->n_free;
	return n;
}

uint64_t
pylb_dp_conn_capacity(const struct pylb_dp *dp)
{
	uint64_t n = 0;

	for (uint32_t s = 0; s < dp->n_slots; s++)
		n += dp->lcores[s].ct->cap;
	return n;
}

void
pylb_dp_clock_advance(struct pylb_dp *dp, uint64_t ms)
{
	__atomic_fetch_add(&dp->clock_offset, ms * rte_get_timer_hz() / 1000,
			   __ATOMIC_RELAXED);
}

/* Connection timeouts. */

/* IPVS-like defaults, in seconds, by TCP state (NONE: UDP). */
static const uint32_t timeout_defaults[PYLB_TCP__STATES] = {
	[PYLB_TCP_NONE] = 300, [PYLB_TCP_SYN_SENT] = 60, [PYLB_TCP_SYN_RECV] = 60,
	[PYLB_TCP_MID_FLOW] = 60,
	[PYLB_TCP_ESTABLISHED] = 900, [PYLB_TCP_FIN_WAIT] = 120,
	[PYLB_TCP_CLOSE_WAIT] = 120, [PYLB_TCP_TIME_WAIT] = 120, [PYLB_TCP_CLOSE] = 10,
};

/* Each state's timeout from t (0: the default). Workers read each one
 * whole when they refresh a connection: the new values apply from the
 * next packet of every connection. */
void
pylb_timeouts_apply(struct pylb_dp *dp, const struct pylb_timeouts *t)
{
	uint32_t secs[PYLB_TCP__STATES] = {
		[PYLB_TCP_NONE] = t->udp, [PYLB_TCP_SYN_SENT] = t->tcp_syn,
		[PYLB_TCP_SYN_RECV] = t->tcp_syn, [PYLB_TCP_MID_FLOW] = t->tcp_syn,
		[PYLB_TCP_ESTABLISHED] = t->tcp_established,
		[PYLB_TCP_FIN_WAIT] = t->tcp_fin, [PYLB_TCP_CLOSE_WAIT] = t->tcp_fin,
		[PYLB_TCP_TIME_WAIT] = t->tcp_fin, [PYLB_TCP_CLOSE] = t->tcp_close,
	};

	for (int s = 0; s < PYLB_TCP__STATES; s++)
		__atomic_store_n(&dp->timeout_tsc[s], rte_get_timer_hz() *
				 (secs[s] ? secs[s] : timeout_defaults[s]), __ATOMIC_RELAXED);
}

int
pylb_dp_timeouts_set(struct pylb_dp *dp, const struct pylb_timeouts *t)
{
	const uint32_t *v = (const uint32_t *)t;

	for (size_t i = 0; i < sizeof(*t) / sizeof(*v); i++)
		if (v[i] > PYLB_TIMEOUT_MAX)
			return pylb_fail(-PYLB_E_INVAL, "a timeout of %u s is above %u s (%u days)",
					 v[i], PYLB_TIMEOUT_MAX, PYLB_TIMEOUT_MAX / 86400);
	pthread_mutex_lock(&dp->ctl_lock);
	pylb_timeouts_apply(dp, t);
	pthread_mutex_unlock(&dp->ctl_lock);
	return 0;
}

void
pylb_dp_timeouts_get(struct pylb_dp *dp, struct pylb_timeouts *t)
{
	uint64_t hz = rte_get_timer_hz();

	t->udp = (uint32_t)(dp->timeout_tsc[PYLB_TCP_NONE] / hz);
	t->tcp_syn = (uint32_t)(dp->timeout_tsc[PYLB_TCP_SYN_RECV] / hz);
	t->tcp_established = (uint32_t)(dp->timeout_tsc[PYLB_TCP_ESTABLISHED] / hz);
	t->tcp_fin = (uint32_t)(dp->timeout_tsc[PYLB_TCP_FIN_WAIT] / hz);
	t->tcp_close = (uint32_t)(dp->timeout_tsc[PYLB_TCP_CLOSE] / hz);
}
