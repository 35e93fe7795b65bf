/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * Port bring-up: probe, one RX and one TX queue per worker, RSS with a
 * symmetric key when there are several, start, wait for link. And each
 * port's exception-path TAP.
 */
#include <string.h>

#include <rte_cycles.h>
#include <rte_dev.h>
#include <rte_ethdev.h>

#include "ctl/ctl.h"

/* A repeating 16-bit pattern makes the Toeplitz hash symmetric: both
 * directions of a flow land on the same queue, hence the same worker. */
static void
symmetric_rss_key(uint8_t *key, uint8_t len)
{
	for (uint8_t i = 0; i < len; i++)
		key[i] = (i & 1) ? 0x5a : 0x6d;
}

static int
find_or_probe(const char *port, const char *device, uint16_t *id)
{
	char name[PYLB_DEVARGS_LEN];
	char *comma;
	int rc;

	snprintf(name, sizeof(name), "%s", device);
	comma = strchr(name, ',');
	if (comma != NULL)
		*comma = '\0';
	/* PCI devices were probed by EAL from its allow-list. */
	if (rte_eth_dev_get_port_by_name(name, id) == 0)
		return 0;
	rc = rte_dev_probe(device);
	if (rc != 0)
		return pylb_fail(-PYLB_E_PORT,
			"port %s: device '%s' did not probe (%s); check the device arguments, or give a PCI device to EAL's allow-list",
			port, device, rte_strerror(-rc));
	if (rte_eth_dev_get_port_by_name(name, id) != 0)
		return pylb_fail(-PYLB_E_PORT,
			"port %s: device '%s' probed but is not an ethernet port",
			port, device);
	return 0;
}

/* Configure nrx RX and ntx TX queues and start the device. */
static int
queues_start(struct pylb_dp *dp, uint16_t id, const char *port,
	     const struct rte_eth_conf *ec, uint16_t nrx, uint16_t ntx,
	     uint16_t nrxd, uint16_t ntxd)
{
	struct rte_mempool *pool;
	int socket, rc;
	uint16_t q;

	rc = rte_eth_dev_configure(id, nrx, ntx, ec);
	if (rc != 0)
		return pylb_fail(-PYLB_E_PORT, "port %s: configure failed: %s",
				 port, rte_strerror(-rc));
	rc = rte_eth_dev_adjust_nb_rx_tx_desc(id, &nrxd, &ntxd);
	if (rc != 0)
		return pylb_fail(-PYLB_E_PORT, "port %s: descriptor counts rejected: %s",
				 port, rte_strerror(-rc));
	socket = rte_eth_dev_socket_id(id);
	pool = pylb_pool_for(dp, socket);
	if (pool == NULL)
		return pylb_fail(-PYLB_E_NOMEM,
			"port %s: cannot create an mbuf pool on socket %d",
			port, socket);
	for (q = 0; q < RTE_MAX(nrx, ntx); q++) {
		rc = 0;
		if (q < nrx)
			rc = rte_eth_rx_queue_setup(id, q, nrxd, (unsigned int)socket,
						    NULL, pool);
		if (rc == 0 && q < ntx)
			rc = rte_eth_tx_queue_setup(id, q, ntxd, (unsigned int)socket, NULL);
		if (rc != 0)
			return pylb_fail(-PYLB_E_PORT, "port %s: queue %u setup failed: %s",
					 port, q, rte_strerror(-rc));
	}
	rc = rte_eth_dev_start(id);
	if (rc != 0)
		return pylb_fail(-PYLB_E_PORT, "port %s: start failed: %s",
				 port, rte_strerror(-rc));
	return 0;
}

/* The exception path: a TAP device whose kernel side is the port's kernel
 * interface. One RX and one TX queue per worker. */
int
pylb_port_kernel_setup(struct pylb_dp *dp, struct pylb_port *p)
{
	static uint32_t seq;
	uint16_t nq = (uint16_t)RTE_MAX(dp->conf.n_workers, 1u);
	char dev[PYLB_DEVARGS_LEN];
	struct rte_eth_conf ec;
	uint16_t id;
	int rc;

	snprintf(dev, sizeof(dev), "net_tap_pylbk%u,iface=%s", ++seq, p->kernel_iface);
	rc = find_or_probe(p->name, dev, &id);
	if (rc != 0)
		return pylb_fail(-PYLB_E_PORT,
			"port %s: cannot create kernel interface %s (is the name taken or longer than 15 characters?)",
			p->name, p->kernel_iface);
	p->kethdev = id;
	memset(&ec, 0, sizeof(ec));
	return queues_start(dp, id, p->name, &ec, nq, nq, 256, 256);
}

int
pylb_port_setup(struct pylb_dp *dp, struct pylb_port *p,
		const struct pylb_port_conf *conf, struct rte_ether_addr *mac)
{
	uint16_t nq = (uint16_t)RTE_MAX(dp->conf.n_workers, 1u);
	uint16_t nrxd = conf->rx_desc ? conf->rx_desc : PYLB_RXD_DEFAULT;
	uint16_t ntxd = conf->tx_desc ? conf->tx_desc : PYLB_TXD_DEFAULT;
	uint8_t rss_key[64];
	struct rte_eth_dev_info info;
	struct rte_eth_conf ec;
	struct rte_eth_link link;
	uint64_t deadline;
	uint16_t id;
	int rc;

	rc = find_or_probe(conf->name, conf->device, &id);
	if (rc != 0)
		return rc;
	p->ethdev = id;
	rc = rte_eth_dev_info_get(id, &info);
	if (rc != 0)
		return pylb_fail(-PYLB_E_PORT, "port %s: cannot read device info: %s",
				 conf->name, rte_strerror(-rc));
	if (nq > info.max_rx_queues || nq > info.max_tx_queues)
		return pylb_fail(-PYLB_E_PORT,
			"port %s: %u workers need %u queues but %s offers %u RX / %u TX; use fewer workers",
			conf->name, nq, nq, info.driver_name, info.max_rx_queues,
			info.max_tx_queues);

	memset(&ec, 0, sizeof(ec));
	/* Let the NIC verify IPv4 header checksums where it can: the fast path
	 * then skips its own sum for packets marked good. */
	ec.rxmode.offloads = info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
	if (nq > 1) {
		uint64_t hf = (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP) &
			info.flow_type_rss_offloads;

		if (hf != 0) {
			uint8_t klen = info.hash_key_size ? info.hash_key_size : 40;

			symmetric_rss_key(rss_key, RTE_MIN(klen, (uint8_t)sizeof(rss_key)));
			ec.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
			ec.rx_adv_conf.rss_conf.rss_hf = hf;
			ec.rx_adv_conf.rss_conf.rss_key = rss_key;
			ec.rx_adv_conf.rss_conf.rss_key_len =
				RTE_MIN(klen, (uint8_t)sizeof(rss_key));
		}
	}
	if (conf->mtu != 0) {
		struct rte_mempool *pool = pylb_pool_for(dp, rte_eth_dev_socket_id(id));
		uint32_t room = pool != NULL ? rte_pktmbuf_data_room_size(pool) -
			RTE_PKTMBUF_HEADROOM : 0;

		if (conf->mtu < info.min_mtu || conf->mtu > info.max_mtu)
			return pylb_fail(-PYLB_E_INVAL, "port %s: %s takes an MTU from %u to %u, not %u",
					 conf->name, info.driver_name, info.min_mtu,
					 info.max_mtu, conf->mtu);
		if ((uint32_t)conf->mtu + RTE_ETHER_HDR_LEN + RTE_VLAN_HLEN > room)
			return pylb_fail(-PYLB_E_INVAL,
				"port %s: an MTU of %u needs mbufs of at least %u bytes (the profile's mbuf_size): a frame is one mbuf",
				conf->name, conf->mtu,
				conf->mtu + RTE_ETHER_HDR_LEN + RTE_VLAN_HLEN + RTE_PKTMBUF_HEADROOM);
		ec.rxmode.mtu = conf->mtu;
	}
	rc = rte_eth_macaddr_get(id, mac);
	if (rc != 0)
		return pylb_fail(-PYLB_E_PORT, "port %s: cannot read the MAC: %s",
				 conf->name, rte_strerror(-rc));
	rc = queues_start(dp, id, conf->name, &ec, nq, nq, nrxd, ntxd);
	if (rc != 0)
		return rc;
	p->started = true;

	deadline = rte_get_timer_cycles() +
		rte_get_timer_hz() * conf->link_wait_ms / 1000;
	do {
		if (rte_eth_link_get_nowait(id, &link) == 0 &&
		    link.link_status == RTE_ETH_LINK_UP)
			break;
		rte_delay_ms(50);
	} while (rte_get_timer_cycles() < deadline);
	return 0;
}

void
pylb_port_close(struct pylb_port *p)
{
	if (p->kethdev >= 0) {
		rte_eth_dev_stop((uint16_t)p->kethdev);
		rte_eth_dev_close((uint16_t)p->kethdev);
		p->kethdev = -1;
	}
	if (p->ethdev < 0)
		return;
	if (p->started)
		rte_eth_dev_stop((uint16_t)p->ethdev);
	rte_eth_dev_close((uint16_t)p->ethdev);
	p->started = false;
	p->ethdev = -1;
}
