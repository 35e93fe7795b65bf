/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * The dataplane's housekeeping, run by the control side every few
 * milliseconds: the control slot's own connections and fragments age,
 * neighbours are learnt, resolved and swept (ctl/neigh.c), and what the
 * control side queued goes out through a worker.
 */
#include <rte_ethdev.h>
#include <rte_ring.h>

#include "ctl/ctl.h"
#include "l3/l3.h"

/* Hand what the control side queued (requests, released packets) to the
 * first worker, which sends it with its own (it owns the TX queues). With no
 * worker running, send directly. Detached ports keep it for collect. */
void
pylb_control_flush(struct pylb_dp *dp)
{
	struct pylb_lcore *lc = pylb_control_lcore(dp);
	bool running = __atomic_load_n(&dp->running, __ATOMIC_ACQUIRE);

	for (uint16_t p = 0; p < dp->n_ports; p++) {
		struct pylb_txbuf *b = &lc->tx[p];
		uint16_t sent;

		if (dp->ports[p].ethdev < 0 || b->n == 0)
			continue;
		for (uint16_t i = 0; i < b->n; i++)
			b->pkts[i]->port = p;
		if (!running)
			txbuf_tag(lc, b, dp->ports[p].vlan);
		if (running)
			sent = (uint16_t)rte_ring_enqueue_burst(dp->ctl_tx,
				(void **)b->pkts, b->n, NULL);
		else
			sent = rte_eth_tx_burst((uint16_t)dp->ports[p].ethdev, 0,
						b->pkts, b->n);
		if (sent < b->n) {
			lc->stats->c[PYLB_D_TX_FULL] += b->n - sent;
			rte_pktmbuf_free_bulk(b->pkts + sent, b->n - sent);
		}
		b->n = 0;
	}
}

int
pylb_dp_housekeep(struct pylb_dp *dp)
{
	struct pylb_lcore *lc = pylb_control_lcore(dp);

	/* The control slot's own connections (injected packets), at the
	 * time a worker's poll would give them. */
	lc->now = pylb_now(dp);
	pylb_conn_age(lc, lc->now, lc->ct->cap);
	pylb_inspect_age(lc, lc->now, PYLB_INSPECT_FLOWS);
	if (lc->frags != NULL)
		pylb_frag_age(lc, lc->now);
	return pylb_neigh_housekeep(dp);
}

