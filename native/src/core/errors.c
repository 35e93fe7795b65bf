/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * Error codes and the last error's detail, per thread.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>

#include "core/dp.h"

static RTE_DEFINE_PER_LCORE(char, errmsg)[PYLB_ERRMSG_LEN];

const char *
pylb_strerror(int rc)
{
	static const char *const msgs[] = {
		[PYLB_OK] = "success",
#define PYLB_X_ERR(n, m) [PYLB_E_##n] = m,
		PYLB_ERRORS(PYLB_X_ERR)
#undef PYLB_X_ERR
	};

	if (rc > 0 || -rc >= PYLB_E__END)
		return "unknown error";
	return msgs[-rc];
}

const char *
pylb_last_error(void)
{
	return RTE_PER_LCORE(errmsg);
}

void
pylb_clear_error(void)
{
	RTE_PER_LCORE(errmsg)[0] = '\0';
}

int
pylb_fail(int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(RTE_PER_LCORE(errmsg), PYLB_ERRMSG_LEN, fmt, ap);
	va_end(ap);
	return rc;
}

const char *
pylb_fmt_ip(const struct pylb_ip *a, char *buf, size_t len)
{
	if (inet_ntop(a->af == 6 ? AF_INET6 : AF_INET, a->ip, buf, (socklen_t)len) == NULL)
		snprintf(buf, len, "?");
	return buf;
}

const char *
pylb_fmt_prefix(const struct pylb_prefix *p, char *buf, size_t len)
{
	size_t n;

	pylb_fmt_ip(&p->addr, buf, len);
	n = strlen(buf);
	snprintf(buf + n, len - n, "/%u", p->len);
	return buf;
}
