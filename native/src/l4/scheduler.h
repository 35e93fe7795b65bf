/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * Schedulers: one ops table each (scheduler.c), bound to a service when it is
 * configured (pylb_service.sched), so no packet compares the scheduler.
 */
#ifndef PYLB_SCHEDULER_H
#define PYLB_SCHEDULER_H

#include "l4/ct.h"
#include "l3/fib.h"

struct pylb_sched_ops {
	/* A new tracked connection's backend (an index of svc's), read
	 * only; its turn taken by `chosen` (NULL: nothing to take) once the
	 * connection opens. */
	uint32_t (*pick)(struct pylb_lcore *lc, const struct pylb_service *svc,
			 const struct pylb_tuple *t, uint32_t hash);
	void (*chosen)(struct pylb_lcore *lc, const struct pylb_service *svc, uint32_t bi);
	/* The consistent choice, from the service's lookup table: what an
	 * untracked packet takes, so all of a flow's packets agree. */
	uint32_t (*consistent)(const struct pylb_service *svc, const struct pylb_tuple *t,
			       uint32_t hash);
	bool rows;		/* a row of state per lcore (WRR's current weights) */
	const char *why;	/* how it chooses, for a trace */
};

/* By enum pylb_l4_sched. */
extern const struct pylb_sched_ops pylb_schedulers[PYLB_SCHED_WLC + 1];

#endif /* PYLB_SCHEDULER_H */
