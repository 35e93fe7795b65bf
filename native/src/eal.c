/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * EAL bring-up and tear-down.
 */
#include <rte_eal.h>
#include <rte_errno.h>

#include "pylb_priv.h"

int
pylb_eal_init(int argc, char **argv)
{
	if (rte_eal_init(argc, argv) < 0)
		return pylb_fail(-PYLB_E_EAL, "EAL initialisation failed: %s",
				 rte_strerror(rte_errno));
	return 0;
}

int
pylb_eal_cleanup(void)
{
	int rc = rte_eal_cleanup();

	if (rc < 0)
		return pylb_fail(-PYLB_E_EAL, "EAL cleanup failed: %s",
				 rte_strerror(-rc));
	return 0;
}
