/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * libFuzzer target: the packet path through every entry point, on two
 * dataplanes configured with every kind of object (routes, ECMP, static
 * and learned neighbours, L3 VIPs by IPIP, GRE and DR, L4 services by NAT,
 * FullNAT (with PROXY headers), DR and tunnel, all ports, IPv4 and IPv6,
 * persistence, a small connection table that fills up, a data-path probe):
 *
 *   byte 0 & 7   entry
 *     0, 1       the wire, port 0 or 1 (pylb_host_process, the in-process seam)
 *     2, 3       the kernel side of port 0 or 1 (pylb_kernel_process)
 *     4, 5       worker 0 of a two-worker dataplane, port 0 or 1; what it
 *                hands over goes through worker 1's redirect ring
 *                (pylb_redirect_drain)
 *     6          housekeeping after the clock moved byte 1 * 100 ms
 *     7          a burst: the rest split into frames by a 1-byte length
 *   byte 0 >> 3 & 3   the frames' IPv4 checksum mark, as a NIC with RX
 *                offload sets it: 2 good, 3 bad, else none (the vdevs')
 *   the rest     the frame(s)
 *
 * ICMP errors quote what they answer, so the headers embedded in them are
 * reached from the wire. After every input every mbuf not held for a
 * neighbour (or a fragment's first) must be back in its pool: a leak
 * aborts.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_ip.h>
#include <rte_ring.h>

#include "path/pipeline.h"

static struct pylb_dp *solo;	/* no workers: the seam, kernel interfaces */
static struct pylb_dp *duo;	/* two workers (never launched): the redirect ring */

static void
must(int rc, const char *what)
{
	if (rc < 0) {
		fprintf(stderr, "fuzz setup: %s: %s\n", what, pylb_last_error());
		abort();
	}
}

static struct pylb_ip
ip(const char *text)
{
	struct pylb_ip a = { .af = strchr(text, ':') ? 6 : 4 };

	if (inet_pton(a.af == 4 ? AF_INET : AF_INET6, text, a.ip) != 1)
		abort();
	return a;
}

static struct pylb_prefix
prefix(const char *text, uint8_t len)
{
	return (struct pylb_prefix){ .addr = ip(text), .len = len };
}

static void
service(struct pylb_dp *dp, const char *vip, uint8_t proto, uint16_t port, uint8_t method,
	uint8_t sched, uint32_t persistence, const char *lip, const char *const *backends)
{
	struct pylb_service_conf c = {
		.vip = ip(vip), .proto = proto, .port = port, .method = method,
		.id = PYLB_SVC_ID_ANY, .sched = sched, .persistence = persistence,
		.down_reset = 1,
		/* FullNAT services send PROXY headers: v2 (IPv4), v1 (IPv6). */
		.proxy_protocol = method != PYLB_L4_FULLNAT ? PYLB_PROXY_OFF :
			strchr(vip, ':') ? PYLB_PROXY_V1 : PYLB_PROXY_V2,
	};
	bool translates = (method == PYLB_L4_NAT || method == PYLB_L4_FULLNAT) && port != 0;
	struct pylb_backend b[4];
	uint32_t n = 0;

	if (lip != NULL) {
		c.n_lips = 1;
		c.lips[0] = ip(lip);
	}
	must(pylb_dp_service_add(dp, &c), "service");
	for (; backends[n] != NULL; n++)
		b[n] = (struct pylb_backend){ .addr = ip(backends[n]),
					      .port = n && translates ? 8080 : 0,
					      .weight = n + 1,
					      .state = n == 3 ? PYLB_BACKEND_DOWN : PYLB_BACKEND_UP };
	must(pylb_dp_service_backends_set(dp, &c.vip, proto, port, b, n), "backends");
}

/* Both dataplanes get the same objects. */
static void
configure(struct pylb_dp *dp, const char *dev0, const char *dev1, bool kernel)
{
	static const char *const be4[] = { "10.0.1.20", "10.0.1.21", "10.0.1.22", "10.0.1.23", NULL };
	static const char *const be6[] = { "2001:db8:1::20", "2001:db8:1::21", NULL };
	static const uint8_t mac[2][6] = { { 2, 0, 0, 0, 1, 0 }, { 2, 0, 0, 0, 1, 1 } };
	/* p0 checks sources strictly (the default), p1 loosely. */
	struct pylb_port_conf pc[2] = { { .name = "p0" },
					{ .name = "p1", .rp_filter = PYLB_RP_LOOSE } };
	struct pylb_route r = { .dst = prefix("198.51.100.0", 24), .n_nh = 2 };
	struct pylb_vip_conf v = { .prefix = prefix("203.0.113.0", 24), .method = PYLB_FWD_IPIP };
	struct pylb_backend vb[2] = { { .addr = ip("10.0.1.30"), .weight = 1 },
				      { .addr = ip("10.0.1.31"), .weight = 2 } };
	uint16_t idx;

	for (int i = 0; i < 2; i++) {
		snprintf(pc[i].device, sizeof(pc[i].device), "%s", i ? dev1 : dev0);
		memcpy(pc[i].mac, mac[i], 6);
		if (kernel)
			snprintf(pc[i].kernel_iface, sizeof(pc[i].kernel_iface), "k%d", i);
		must(pylb_dp_port_add(dp, &pc[i], &idx), "port");
	}
	must(pylb_dp_addr_add(dp, 0, &(struct pylb_prefix){ ip("10.0.0.1"), 24 }), "address");
	must(pylb_dp_addr_add(dp, 1, &(struct pylb_prefix){ ip("10.0.1.1"), 24 }), "address");
	must(pylb_dp_addr_add(dp, 0, &(struct pylb_prefix){ ip("2001:db8::1"), 64 }), "address");
	must(pylb_dp_addr_add(dp, 1, &(struct pylb_prefix){ ip("2001:db8:1::1"), 64 }), "address");
	for (int i = 0; i < 4; i++) {
		struct pylb_ip a = ip(be4[i]);

		must(pylb_dp_neigh_add(dp, 1, &a, (uint8_t[6]){ 2, 0, 0, 0, 0xb, i }), "neighbour");
	}
	r.nh[0] = (struct pylb_nexthop){ .gw = ip("10.0.1.254"), .port = 1 };
	r.nh[1] = (struct pylb_nexthop){ .gw = ip("10.0.0.254"), .port = 0 };
	must(pylb_dp_route_add(dp, &r), "route");
	must(pylb_dp_vip_add(dp, &v), "vip");
	must(pylb_dp_vip_backends_set(dp, &v.prefix, vb, 2), "vip backends");
	v = (struct pylb_vip_conf){ .prefix = prefix("203.0.114.1", 32), .method = PYLB_FWD_GRE };
	must(pylb_dp_vip_add(dp, &v), "vip");
	must(pylb_dp_vip_backends_set(dp, &v.prefix, vb, 2), "vip backends");
	v = (struct pylb_vip_conf){ .prefix = prefix("10.0.0.50", 32), .method = PYLB_FWD_DR };
	must(pylb_dp_vip_add(dp, &v), "vip");
	must(pylb_dp_vip_backends_set(dp, &v.prefix, vb, 1), "vip backends");
	service(dp, "10.0.0.100", IPPROTO_TCP, 80, PYLB_L4_NAT, PYLB_SCHED_WRR, 0, NULL, be4);
	service(dp, "10.0.0.100", IPPROTO_UDP, 53, PYLB_L4_NAT, PYLB_SCHED_MAGLEV, 0, NULL, be4);
	service(dp, "10.0.0.101", IPPROTO_TCP, 80, PYLB_L4_FULLNAT, PYLB_SCHED_WLC, 0, "10.0.1.1",
		be4);
	service(dp, "10.0.0.102", IPPROTO_TCP, 0, PYLB_L4_DR, PYLB_SCHED_SOURCE, 60, NULL, be4);
	service(dp, "10.0.0.103", IPPROTO_UDP, 0, PYLB_L4_TUNNEL, PYLB_SCHED_MAGLEV, 0, NULL, be4);
	service(dp, "2001:db8::100", IPPROTO_TCP, 80, PYLB_L4_NAT, PYLB_SCHED_MAGLEV, 0, NULL, be6);
	service(dp, "2001:db8::101", IPPROTO_TCP, 443, PYLB_L4_FULLNAT, PYLB_SCHED_MAGLEV, 0,
		"2001:db8:1::1", be6);
	/* A data-path probe in flight for good (10.0.1.1:61000 -> the DR VIP
	 * at 10.0.1.20): TCP and UDP to the appliance are checked against it. */
	must(pylb_dp_probe_start(dp, &(struct pylb_probe_conf){ .vip = ip("10.0.0.102"),
		.backend = ip("10.0.1.20"), .port = 80, .proto = IPPROTO_TCP,
		.method = PYLB_L4_DR }), "probe");
}

static const char *eal_args[] = {
	"pylb-fuzz", "--no-huge", "-m", "512", "--no-pci", "--no-shconf", "--no-telemetry",
	"--lcores", "0@0,1@0,2@0",
	"--log-level", "*:error", "--vdev", "net_null0", "--vdev", "net_null1",
};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct pylb_dp_conf conf = {
		.mbufs_per_socket = 1023, .conn_capacity = 64, .max_routes = 1024,
		.timeouts = { 60, 900, 120, 10, 300 }, .tcp_reset = 1,
	};

	(void)argc;
	(void)argv;
	if (rte_eal_init(RTE_DIM(eal_args), (char **)(uintptr_t)eal_args) < 0)
		abort();
	must(pylb_dp_create(&conf, &solo), "dataplane");
	configure(solo, "", "", true);
	conf.n_workers = 2;
	conf.worker_lcores[0] = 1;
	conf.worker_lcores[1] = 2;
	must(pylb_dp_create(&conf, &duo), "dataplane");
	configure(duo, "net_null0", "net_null1", false);
	return 0;
}

/* Everything a lcore queued for TX goes back to its pool. */
static void
drain(struct pylb_lcore *lc)
{
	for (unsigned int q = 0; q < RTE_DIM(lc->tx); q++) {
		for (uint16_t i = 0; i < lc->tx[q].n; i++)
			rte_pktmbuf_free(lc->tx[q].pkts[i]);
		lc->tx[q].n = 0;
	}
}

static void
free_ring(struct rte_ring *r)
{
	struct rte_mbuf *m;

	while (rte_ring_dequeue(r, (void **)&m) == 0)
		rte_pktmbuf_free(m);
}

/* In use, apart from what waits for a neighbour (held, or on the ring to
 * the control side) and the mempool's per-lcore caches (none here). */
static void
check_leaks(struct pylb_dp *dp)
{
	static struct pylb_neigh_info nb[8192];
	uint32_t held = rte_ring_count(dp->neigh_miss);
	int n = pylb_dp_neigh_list(dp, nb, RTE_DIM(nb));

	for (int i = 0; i < n; i++)
		held += nb[i].held;
	/* Fragments waiting for their first: in their entries, none left
	 * released but not resumed. */
	for (uint32_t s = 0; s < dp->n_slots; s++) {
		const struct pylb_frags *f = dp->lcores[s].frags;
		uint32_t in_entries = 0;

		for (uint32_t p = f->tail; p != f->head; p++)
			in_entries += f->e[p % PYLB_FRAG_ENTRIES].n_held;
		if (in_entries != f->n_held || f->n_ready != 0) {
			fprintf(stderr, "fragments (%s, slot %u): %u held, %u counted, %u not resumed\n",
				dp == solo ? "no workers" : "two workers", s, in_entries, f->n_held,
				f->n_ready);
			abort();
		}
		held += f->n_held;
	}
	if (pylb_dp_mbufs_available(dp) + held != dp->conf.mbufs_per_socket) {
		fprintf(stderr, "mbuf leak (%s): %u available + %u held of %u\n",
			dp == solo ? "no workers" : "two workers", pylb_dp_mbufs_available(dp), held,
			dp->conf.mbufs_per_socket);
		abort();
	}
}

static void
run(uint8_t entry, struct rte_mbuf **pkts, uint16_t n)
{
	uint16_t port = entry & 1;

	switch (entry) {
	case 0: case 1: case 7:
		pylb_host_process(pylb_control_lcore(solo), solo->cfg, port, pkts, n);
		break;
	case 2: case 3:
		pylb_kernel_process(pylb_control_lcore(solo), solo->cfg, port, pkts, n);
		break;
	default:
		pylb_host_process(&duo->lcores[0], duo->cfg, port, pkts, n);
	}
}

/* m, marked as a NIC with RX checksum offload marks its IPv4 header:
 * `mark` 2 good, 3 bad; else not at all (the vdevs). */
static struct rte_mbuf *
nic_marked(struct rte_mbuf *m, uint8_t mark)
{
	if (m != NULL && mark >= 2)
		pylb_mbuf_rx_ip_cksum(m, mark == 2);
	return m;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rte_mbuf *pkts[PYLB_BURST];
	struct pylb_dp *dp;
	uint16_t n = 0;
	uint8_t entry, mark;

	if (size < 1)
		return 0;
	entry = data[0] & 7;
	mark = (data[0] >> 3) & 3;
	dp = entry >= 4 && entry <= 5 ? duo : solo;
	data++;
	size--;
	if (entry == 6) {
		pylb_dp_clock_advance(solo, size ? data[0] * 100u : 0);
		pylb_dp_clock_advance(duo, size ? data[0] * 100u : 0);
		pylb_dp_housekeep(solo);
		pylb_dp_housekeep(duo);
	} else if (entry == 7) {
		while (size > 0 && n < PYLB_BURST) {
			size_t len = RTE_MIN((size_t)data[0], size - 1);

			pkts[n] = nic_marked(pylb_dp_mbuf_from_bytes(dp, data + 1, (uint32_t)len),
					     mark);
			n += pkts[n] != NULL;
			data += len + 1;
			size -= len + 1;
		}
		run(entry, pkts, n);
	} else {
		pkts[0] = nic_marked(pylb_dp_mbuf_from_bytes(dp, data, (uint32_t)size), mark);
		if (pkts[0] != NULL)
			run(entry, pkts, 1);
	}
	for (uint32_t s = 0; s < solo->n_slots; s++)
		drain(&solo->lcores[s]);
	for (int again = 0; again < 4; again++) {
		for (uint32_t s = 0; s < duo->conf.n_workers; s++)
			pylb_redirect_drain(&duo->lcores[s], duo->cfg);
	}
	for (uint32_t s = 0; s < duo->n_slots; s++)
		drain(&duo->lcores[s]);
	free_ring(duo->ctl_tx);
	for (uint32_t s = 0; s < duo->n_slots; s++)
		if (duo->lcores[s].redirect != NULL)
			free_ring(duo->lcores[s].redirect);
	check_leaks(solo);
	check_leaks(duo);
	return 0;
}
