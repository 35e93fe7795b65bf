/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * The worker poll loop: one per worker lcore, never calls Python.
 */
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include "path/pipeline.h"

static void
flush(struct pylb_lcore *lc, uint16_t q, uint16_t ethdev, uint16_t vlan)
{
	struct pylb_txbuf *b = &lc->tx[q];
	uint64_t bytes = 0;
	uint16_t sent, i;

	txbuf_tag(lc, b, vlan);

	/* Counted before they go: the driver owns (and may free) what it
	 * took. */
	for (i = 0; i < b->n; i++)
		bytes += rte_pktmbuf_pkt_len(b->pkts[i]);
	sent = rte_eth_tx_burst(ethdev, lc->queue, b->pkts, b->n);
	if (unlikely(sent < b->n)) {
		for (i = sent; i < b->n; i++)
			bytes -= rte_pktmbuf_pkt_len(b->pkts[i]);
		lc->stats->c[PYLB_D_TX_FULL] += b->n - sent;
		rte_pktmbuf_free_bulk(b->pkts + sent, b->n - sent);
	}
	lc->stats->c[PYLB_C_TX_PACKETS] += sent;
	lc->stats->c[PYLB_C_TX_BYTES] += bytes;
	b->n = 0;
}

/* The slices of ageing due since the last (tunables.h: PYLB_AGE_*), by the
 * TSC (`now` may be a stopped clock). */
static inline void
age(struct pylb_lcore *lc, uint64_t now, uint64_t tsc, uint64_t slice_tsc)
{
	uint64_t due;

	if (likely(tsc - lc->aged_tsc < slice_tsc))
		return;
	due = (tsc - lc->aged_tsc) / slice_tsc;
	lc->aged_tsc += due * slice_tsc;
	due = RTE_MIN(due, (uint64_t)PYLB_AGE_CATCH_UP);
	pylb_conn_age(lc, now, (uint32_t)(due * (lc->ct->cap / PYLB_AGE_SLICES + 1)));
	pylb_inspect_age(lc, now, (uint32_t)(due * (PYLB_INSPECT_FLOWS / PYLB_AGE_SLICES + 1)));
}

int
pylb_worker_main(void *arg)
{
	struct pylb_lcore *lc = arg;
	struct pylb_dp *dp = lc->dp;
	struct rte_mbuf *pkts[PYLB_BURST];
	uint16_t n_ports = dp->n_ports;
	uint64_t slice_tsc = RTE_MAX(rte_get_tsc_hz() / (1000000 / PYLB_AGE_SLICE_US), (uint64_t)1);

	rte_rcu_qsbr_thread_register(dp->qsv, lc->slot);
	rte_rcu_qsbr_thread_online(dp->qsv, lc->slot);
	lc->aged_tsc = rte_rdtsc();
	while (__atomic_load_n(&dp->running, __ATOMIC_ACQUIRE)) {
		const struct pylb_cfg *cfg =
			__atomic_load_n(&dp->cfg, __ATOMIC_ACQUIRE);
		uint64_t t0 = rte_rdtsc();
		uint32_t got = 0;

		lc->now = pylb_now_at(dp, t0);	/* the poll's time: one TSC read */

		for (uint16_t p = 0; p < n_ports; p++) {
			uint16_t ethdev = (uint16_t)dp->ports[p].ethdev;
			int32_t kethdev = dp->ports[p].kethdev;
			uint16_t n;

			if (dp->ports[p].vlan != 0)
				continue;	/* received by its parent */
			n = rte_eth_rx_burst(ethdev, lc->queue, pkts, PYLB_BURST);

			if (n != 0) {
				pylb_host_process(lc, cfg, p, pkts, n);
				got += n;
			}
			if (kethdev >= 0) {
				n = rte_eth_rx_burst((uint16_t)kethdev, lc->queue,
						     pkts, PYLB_BURST);
				if (n != 0) {
					pylb_kernel_process(lc, cfg, p, pkts, n);
					got += n;
				}
			}
		}
		if (lc->redirect != NULL && !rte_ring_empty(lc->redirect))
			pylb_redirect_drain(lc, cfg);
		if (unlikely(lc->ct->sync_in != NULL) && !rte_ring_empty(lc->ct->sync_in))
			pylb_sync_drain(lc);
		/* What the control side has to send (neighbour requests,
		 * released packets) leaves through the first worker. */
		if (lc->slot == 0 && !rte_ring_empty(dp->ctl_tx)) {
			uint16_t n = (uint16_t)rte_ring_dequeue_burst(dp->ctl_tx,
				(void **)pkts, PYLB_BURST, NULL);

			for (uint16_t i = 0; i < n; i++) {
				struct pylb_txbuf *b = &lc->tx[pkts[i]->port];

				if (b->n < PYLB_TX_BUF)
					b->pkts[b->n++] = pkts[i];
				else
					rte_pktmbuf_free(pkts[i]);
			}
		}
		/* A packet may leave by any port: flush them all. */
		for (uint16_t p = 0; p < n_ports; p++) {
			if (lc->tx[p].n != 0)
				flush(lc, p, (uint16_t)dp->ports[p].ethdev, dp->ports[p].vlan);
			if (lc->tx[PYLB_TXQ_KERNEL(p)].n != 0)
				flush(lc, PYLB_TXQ_KERNEL(p),
				      (uint16_t)dp->ports[p].kethdev, 0);
		}
		if (got != 0) {
			lc->stats->c[PYLB_C_BUSY_CYCLES] += rte_rdtsc() - t0;
			lc->stats->c[PYLB_C_BUSY_POLLS]++;
		}
		lc->stats->c[PYLB_C_POLLS]++;	/* alive (metrics: a stalled worker) */
		age(lc, lc->now, t0, slice_tsc);
		pylb_frag_age(lc, lc->now);
		rte_rcu_qsbr_quiescent(dp->qsv, lc->slot);
	}
	rte_rcu_qsbr_thread_offline(dp->qsv, lc->slot);
	rte_rcu_qsbr_thread_unregister(dp->qsv, lc->slot);
	return 0;
}
