/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * Read-copy-update between the control side and the workers: what the
 * workers read is replaced whole and freed once every worker has passed a
 * quiescent state (between two bursts).
 */
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>

#include "core/dp.h"

/* Wait until every worker has passed a quiescent state. */
void
pylb_rcu_wait(struct pylb_dp *dp)
{
	rte_rcu_qsbr_synchronize(dp->qsv, RTE_QSBR_THRID_INVALID);
}

/* Swap an RCU-protected pointer; free what it pointed to once every worker
 * has passed a quiescent state. */
void
pylb_rcu_replace(struct pylb_dp *dp, void **slot, void *next)
{
	void *old = *slot;

	__atomic_store_n(slot, next, __ATOMIC_RELEASE);
	pylb_rcu_wait(dp);
	rte_free(old);
}
