/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * EAL bring-up and tear-down.
 */
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_pdump.h>

#include "core/dp.h"

int
pylb_eal_init(int argc, char **argv)
{
	if (rte_eal_init(argc, argv) < 0)
		return pylb_fail(-PYLB_E_EAL, "EAL initialisation failed: %s",
				 rte_strerror(rte_errno));
	/* Packet capture by dpdk-dumpcap / dpdk-pdump (secondary processes);
	 * unavailable without multi-process (--in-memory), which is fine. */
	if (rte_eal_process_type() == RTE_PROC_PRIMARY)
		(void)rte_pdump_init();
	return 0;
}

int
pylb_eal_cleanup(void)
{
	int rc;

	rte_pdump_uninit();
	rc = rte_eal_cleanup();

	if (rc < 0)
		return pylb_fail(-PYLB_E_EAL, "EAL cleanup failed: %s",
				 rte_strerror(-rc));
	return 0;
}
