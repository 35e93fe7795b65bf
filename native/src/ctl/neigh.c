/* SPDX-License-Identifier: BSD-3-Clause
 * Copyright(c) 2026 pylb authors
 *
 * Neighbours (ARP and NDP). Workers only read the table (a lock-free hash
 * whose data word is the MAC) and hand the control side what they learn
 * and the packets they cannot send yet. The control side owns the table:
 * it records, asks (ARP request / neighbour solicitation), holds a few
 * packets per neighbour while asking, refreshes and ages entries.
 */
#include <stdio.h>

#include <rte_arp.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_hash.h>
#include <rte_icmp.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include "ctl/ctl.h"

static uint32_t neigh_seq;

int
pylb_neigh_init(struct pylb_dp *dp)
{
	char name[RTE_HASH_NAMESIZE];
	struct rte_hash_parameters hp = {
		.name = name,
		.entries = dp->conf.neigh_capacity,
		.key_len = sizeof(struct pylb_neigh_key),
		.hash_func = rte_hash_crc,
		.socket_id = (int)rte_socket_id(),
		.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF,
	};
	struct rte_hash_rcu_config rcu = {
		.v = dp->qsv,
		.mode = RTE_HASH_QSBR_MODE_SYNC,
	};

	neigh_seq++;
	snprintf(name, sizeof(name), "pylb_nh%u", neigh_seq);
	dp->neigh_hash = rte_hash_create(&hp);
	snprintf(name, sizeof(name), "pylb_nl%u", neigh_seq);
	dp->neigh_learn = rte_ring_create_elem(name,
		sizeof(struct pylb_neigh_learn), PYLB_NEIGH_RING,
		(int)rte_socket_id(), RING_F_SC_DEQ);
	snprintf(name, sizeof(name), "pylb_ct%u", neigh_seq);
	dp->ctl_tx = rte_ring_create(name, PYLB_NEIGH_MISS_RING, (int)rte_socket_id(),
				     RING_F_SP_ENQ | RING_F_SC_DEQ);
	snprintf(name, sizeof(name), "pylb_nm%u", neigh_seq);
	dp->neigh_miss = rte_ring_create_elem(name,
		sizeof(struct pylb_neigh_miss), PYLB_NEIGH_MISS_RING,
		(int)rte_socket_id(), RING_F_SC_DEQ);
	dp->neigh_ctl = rte_zmalloc("pylb_nh_ctl",
		sizeof(*dp->neigh_ctl) * dp->conf.neigh_capacity * 2, 0);
	if (dp->neigh_hash == NULL || dp->neigh_learn == NULL ||
	    dp->neigh_miss == NULL || dp->neigh_ctl == NULL || dp->ctl_tx == NULL ||
	    rte_hash_rcu_qsbr_add(dp->neigh_hash, &rcu) != 0)
		return pylb_fail(-PYLB_E_NOMEM,
			"cannot create the neighbour table (%u entries); reserve more hugepages",
			dp->conf.neigh_capacity);
	dp->neigh_timeout_tsc = rte_get_timer_hz() *
		(dp->conf.neigh_timeout_ms ? dp->conf.neigh_timeout_ms :
		 PYLB_NEIGH_TIMEOUT_MS) / 1000;
	return 0;
}

static void
hold_drop(struct pylb_dp *dp, struct pylb_neigh_ctl *c)
{
	struct pylb_lcore *lc = pylb_control_lcore(dp);

	for (uint8_t i = 0; i < c->n_hold; i++)
		drop(lc, c->hold[i], PYLB_D_NEIGH_UNRESOLVED);
	c->n_hold = 0;
}

void
pylb_neigh_free(struct pylb_dp *dp)
{
	struct pylb_neigh_miss miss;

	if (dp->neigh_ctl != NULL && dp->neigh_hash != NULL) {
		const void *key;
		void *data;
		uint32_t iter = 0;
		int32_t pos;

		while ((pos = rte_hash_iterate(dp->neigh_hash, &key, &data, &iter)) >= 0)
			hold_drop(dp, &dp->neigh_ctl[pos]);
	}
	while (dp->neigh_miss != NULL &&
	       rte_ring_dequeue_elem(dp->neigh_miss, &miss, sizeof(miss)) == 0)
		rte_pktmbuf_free(miss.m);
	while (dp->ctl_tx != NULL && rte_ring_dequeue(dp->ctl_tx, (void **)&miss.m) == 0)
		rte_pktmbuf_free(miss.m);
	rte_ring_free(dp->ctl_tx);
	dp->ctl_tx = NULL;
	rte_hash_free(dp->neigh_hash);
	rte_ring_free(dp->neigh_learn);
	rte_ring_free(dp->neigh_miss);
	rte_free(dp->neigh_ctl);
	dp->neigh_hash = NULL;
	dp->neigh_learn = NULL;
	dp->neigh_miss = NULL;
	dp->neigh_ctl = NULL;
}

/* Build and queue an ARP request or neighbour solicitation for k (a known
 * MAC, probing an entry that is aging, makes it unicast); or, announcing
 * (k is one of the port's own addresses, just moved here), a gratuitous ARP
 * or an unsolicited neighbour advertisement with the override flag: every
 * host on the link that knew another MAC for it takes the port's. */
static void
neigh_send(struct pylb_dp *dp, const struct pylb_neigh_key *k, uint64_t mac, bool announce)
{
	struct pylb_lcore *lc = pylb_control_lcore(dp);
	const struct pylb_port_cfg *pc = &dp->cfg->ports[k->port];
	struct rte_mbuf *m = rte_pktmbuf_alloc(pylb_pool_for(dp, (int)rte_socket_id()));
	struct rte_ether_hdr *eth;

	if (m == NULL)
		return drop(lc, NULL, PYLB_D_ALLOC_FAILED);
	eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
	rte_ether_addr_copy(&pc->mac, &eth->src_addr);
	if (k->af == 4) {
		struct rte_arp_hdr *arp = (struct rte_arp_hdr *)(eth + 1);
		uint32_t tip, sip;

		memcpy(&tip, k->ip, 4);
		sip = tip;
		if (!announce && !port_src4(pc, tip, &sip))
			return drop(lc, m, PYLB_D_NEIGH_UNRESOLVED);
		rte_pktmbuf_append(m, sizeof(*eth) + sizeof(*arp));
		if (mac & PYLB_MAC_VALID)
			u64_to_mac(mac, &eth->dst_addr);
		else
			memset(&eth->dst_addr, 0xff, sizeof(eth->dst_addr));
		eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_ARP);
		arp->arp_hardware = RTE_BE16(RTE_ARP_HRD_ETHER);
		arp->arp_protocol = RTE_BE16(RTE_ETHER_TYPE_IPV4);
		arp->arp_hlen = RTE_ETHER_ADDR_LEN;
		arp->arp_plen = 4;
		arp->arp_opcode = RTE_BE16(RTE_ARP_OP_REQUEST);
		rte_ether_addr_copy(&pc->mac, &arp->arp_data.arp_sha);
		arp->arp_data.arp_sip = sip;
		memset(&arp->arp_data.arp_tha, 0, sizeof(arp->arp_data.arp_tha));
		arp->arp_data.arp_tip = tip;
	} else {
		struct rte_ipv6_hdr *ip = (struct rte_ipv6_hdr *)(eth + 1);
		uint8_t *icmp = (uint8_t *)(ip + 1);
		const uint8_t *src = announce ? k->ip : port_src6(pc, k->ip);
		const uint32_t body = 8 + 16 + 8;	/* header, target, option */
		uint8_t *d = eth->dst_addr.addr_bytes;

		if (src == NULL)
			return drop(lc, m, PYLB_D_NEIGH_UNRESOLVED);
		rte_pktmbuf_append(m, sizeof(*eth) + sizeof(*ip) + body);
		eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV6);
		ip->vtc_flow = RTE_BE32(6u << 28);
		ip->payload_len = rte_cpu_to_be_16(body);
		ip->proto = IPPROTO_ICMPV6;
		ip->hop_limits = 255;
		memcpy(ip->src_addr, src, 16);
		if (announce) {
			/* All nodes. */
			static const uint8_t all[16] = { 0xff, 0x02, [15] = 1 };

			memcpy(ip->dst_addr, all, 16);
		} else if (mac & PYLB_MAC_VALID) {
			memcpy(ip->dst_addr, k->ip, 16);
		} else {
			/* Solicited-node multicast group of the target. */
			static const uint8_t sn[13] = { 0xff, 0x02, [11] = 1, [12] = 0xff };

			memcpy(ip->dst_addr, sn, sizeof(sn));
			memcpy(ip->dst_addr + 13, k->ip + 13, 3);
		}
		if (mac & PYLB_MAC_VALID) {
			u64_to_mac(mac, &eth->dst_addr);
		} else {
			d[0] = 0x33;
			d[1] = 0x33;
			memcpy(d + 2, ip->dst_addr + 12, 4);
		}
		memset(icmp, 0, body);
		icmp[0] = announce ? 136 : 135;		/* advertisement : solicitation */
		icmp[4] = announce ? 0x20 : 0;		/* override */
		memcpy(icmp + 8, k->ip, 16);
		icmp[24] = announce ? 2 : 1;		/* target : source link-layer address */
		icmp[25] = 1;
		memcpy(icmp + 26, pc->mac.addr_bytes, 6);
		((struct rte_icmp_hdr *)icmp)->icmp_cksum = rte_ipv6_udptcp_cksum(ip, icmp);
	}
	if (announce)
		CNT(lc, NEIGH_ANNOUNCEMENTS_SENT);
	else
		CNT(lc, NEIGH_REQUESTS_SENT);
	tx(lc, k->port, m);
}

static void
solicit(struct pylb_dp *dp, const struct pylb_neigh_key *k, uint64_t mac)
{
	neigh_send(dp, k, mac, false);
}

static void
hold_release(struct pylb_dp *dp, struct pylb_neigh_ctl *c, uint64_t mac)
{
	struct pylb_lcore *lc = pylb_control_lcore(dp);

	for (uint8_t i = 0; i < c->n_hold; i++) {
		struct rte_mbuf *m = c->hold[i];
		struct rte_ether_hdr *eth = rte_pktmbuf_mtod(m, struct rte_ether_hdr *);
		uint16_t port = m->port;

		u64_to_mac(mac, &eth->dst_addr);
		CNT(lc, NEIGH_RELEASED);
		tx(lc, port, m);
	}
	c->n_hold = 0;
}

/* Record a MAC for k. Static entries are changed only by the operator. */
static void
neigh_set(struct pylb_dp *dp, const struct pylb_neigh_key *k,
	  const struct rte_ether_addr *mac, bool is_static)
{
	struct pylb_lcore *lc = pylb_control_lcore(dp);
	uint64_t v = mac_to_u64(mac) | PYLB_MAC_VALID;
	struct pylb_neigh_ctl *c;
	void *old = NULL;
	int32_t pos = rte_hash_lookup_data(dp->neigh_hash, k, &old);
	bool fresh = pos < 0;

	if (pos >= 0 && dp->neigh_ctl[pos].state == PYLB_NEIGH_STATIC && !is_static)
		return;
	pos = rte_hash_add_key_data(dp->neigh_hash, k, (void *)(uintptr_t)v);
	if (pos < 0) {
		CNT(lc, NEIGH_LEARN_OVERFLOW);
		return;
	}
	pos = rte_hash_lookup(dp->neigh_hash, k);
	c = &dp->neigh_ctl[pos];
	if (fresh)
		memset(c, 0, sizeof(*c));
	else if (c->state == PYLB_NEIGH_INCOMPLETE)
		fresh = true;
	c->state = is_static ? PYLB_NEIGH_STATIC : PYLB_NEIGH_REACHABLE;
	c->seen_tsc = rte_get_timer_cycles();
	c->tries = 0;
	if (fresh)
		CNT(lc, NEIGH_LEARNED);
	pylb_route_neigh_update(dp, k, v);
	/* After the table and the next hops changed: what the workers cached
	 * from them (their neighbour caches, the outputs they remember) goes
	 * stale. */
	if ((uint64_t)(uintptr_t)old != v)
		pylb_gen_bump(dp);
	hold_release(dp, c, v);
}

static void
neigh_remove(struct pylb_dp *dp, const struct pylb_neigh_key *k, int32_t pos)
{
	hold_drop(dp, &dp->neigh_ctl[pos]);
	pylb_route_neigh_update(dp, k, 0);
	rte_hash_del_key(dp->neigh_hash, k);	/* frees the slot after a grace period */
	pylb_gen_bump(dp);
}

static void
neigh_miss(struct pylb_dp *dp, struct pylb_neigh_miss *ev, uint64_t now)
{
	struct pylb_lcore *lc = pylb_control_lcore(dp);
	uint64_t retry = rte_get_timer_hz() * PYLB_NEIGH_RETRY_MS / 1000;
	struct pylb_neigh_ctl *c;
	void *data = NULL;
	int32_t pos = rte_hash_lookup_data(dp->neigh_hash, &ev->key, &data);

	ev->m->port = ev->key.port;	/* where to send it once resolved */
	if (pos >= 0 && ((uint64_t)(uintptr_t)data & PYLB_MAC_VALID)) {
		struct pylb_neigh_ctl tmp = { .n_hold = 1, .hold = { ev->m } };

		hold_release(dp, &tmp, (uint64_t)(uintptr_t)data);
		return;
	}
	if (pos < 0) {
		pos = rte_hash_add_key_data(dp->neigh_hash, &ev->key, NULL);
		if (pos < 0)
			return drop(lc, ev->m, PYLB_D_NEIGH_HOLD_FULL);
		pos = rte_hash_lookup(dp->neigh_hash, &ev->key);
		memset(&dp->neigh_ctl[pos], 0, sizeof(dp->neigh_ctl[pos]));
		dp->neigh_ctl[pos].seen_tsc = now;
	}
	c = &dp->neigh_ctl[pos];
	if (c->n_hold == PYLB_NEIGH_HOLD)
		return drop(lc, ev->m, PYLB_D_NEIGH_HOLD_FULL);
	c->hold[c->n_hold++] = ev->m;
	CNT(lc, NEIGH_HELD);
	/* After the last try the sweep gives up on it (and drops what it
	 * holds); traffic after that starts a new resolution. */
	if (c->tries == 0 ||
	    (c->tries < PYLB_NEIGH_TRIES && now - c->req_tsc >= retry)) {
		solicit(dp, &ev->key, 0);
		c->tries++;
		c->req_tsc = now;
	}
}

/* Age entries: a learned entry is probed (unicast) at 3/4 of its lifetime
 * and removed at the end unless an answer refreshed it; an unanswered
 * resolution gives up after PYLB_NEIGH_TRIES requests. */
static void
neigh_sweep(struct pylb_dp *dp, uint64_t now)
{
	struct pylb_neigh_key gone[64];
	int32_t gone_pos[64];
	uint64_t retry = rte_get_timer_hz() * PYLB_NEIGH_RETRY_MS / 1000;
	uint64_t life = dp->neigh_timeout_tsc;
	uint32_t iter = 0, n_gone = 0;
	const struct pylb_neigh_key *k;
	void *data;
	int32_t pos;

	while ((pos = rte_hash_iterate(dp->neigh_hash, (const void **)&k, &data,
				       &iter)) >= 0) {
		struct pylb_neigh_ctl *c = &dp->neigh_ctl[pos];
		bool expired = false;

		switch (c->state) {
		case PYLB_NEIGH_INCOMPLETE:
			if (now - c->req_tsc < retry)
				break;
			if (c->tries >= PYLB_NEIGH_TRIES) {
				expired = true;
				break;
			}
			solicit(dp, k, 0);
			c->tries++;
			c->req_tsc = now;
			break;
		case PYLB_NEIGH_REACHABLE:
			if (now - c->seen_tsc >= life / 4 * 3) {
				c->state = PYLB_NEIGH_PROBING;
				solicit(dp, k, (uint64_t)(uintptr_t)data);
				c->tries = 1;
				c->req_tsc = now;
			}
			break;
		case PYLB_NEIGH_PROBING:
			if (now - c->seen_tsc >= life) {
				expired = true;
			} else if (now - c->req_tsc >= retry) {
				solicit(dp, k, c->tries < PYLB_NEIGH_TRIES ?
					(uint64_t)(uintptr_t)data : 0);
				c->tries++;
				c->req_tsc = now;
			}
			break;
		default:
			break;
		}
		if (expired && n_gone < RTE_DIM(gone)) {
			gone[n_gone] = *k;
			gone_pos[n_gone++] = pos;
		}
	}
	for (uint32_t i = 0; i < n_gone; i++) {
		pylb_control_lcore(dp)->stats->c[PYLB_C_NEIGH_EXPIRED]++;
		neigh_remove(dp, &gone[i], gone_pos[i]);
	}
}

int
pylb_neigh_housekeep(struct pylb_dp *dp)
{
	struct pylb_neigh_learn ev[PYLB_BURST];
	struct pylb_neigh_miss miss[PYLB_BURST];
	uint64_t now = rte_get_timer_cycles();
	unsigned int n, i;
	int total = 0;

	pthread_mutex_lock(&dp->ctl_lock);
	do {
		n = rte_ring_dequeue_burst_elem(dp->neigh_learn, ev, sizeof(ev[0]),
						PYLB_BURST, NULL);
		for (i = 0; i < n; i++)
			neigh_set(dp, &ev[i].key, &ev[i].mac, false);
		total += (int)n;
	} while (n == PYLB_BURST);
	do {
		n = rte_ring_dequeue_burst_elem(dp->neigh_miss, miss,
						sizeof(miss[0]), PYLB_BURST, NULL);
		for (i = 0; i < n; i++)
			neigh_miss(dp, &miss[i], now);
		total += (int)n;
	} while (n == PYLB_BURST);
	now = rte_get_timer_cycles();
	if (now - dp->neigh_sweep_tsc >=
	    rte_get_timer_hz() * PYLB_NEIGH_SWEEP_MS / 1000) {
		dp->neigh_sweep_tsc = now;
		neigh_sweep(dp, now);
	}
	pthread_mutex_unlock(&dp->ctl_lock);
	pylb_control_flush(dp);
	return total;
}

static int
neigh_key_make(struct pylb_dp *dp, uint16_t port, const struct pylb_ip *ip,
	       struct pylb_neigh_key *k)
{
	static const uint8_t zero[16];

	if (port >= dp->n_ports)
		return pylb_fail(-PYLB_E_NOENT, "no port %u", port);
	if ((ip->af != 4 && ip->af != 6) || memcmp(ip->ip, zero, 16) == 0)
		return pylb_fail(-PYLB_E_INVAL, "a neighbour needs an IPv4 or IPv6 address");
	memset(k, 0, sizeof(*k));
	memcpy(k->ip, ip->ip, 16);
	k->port = port;
	k->af = ip->af;
	return 0;
}

int
pylb_dp_neigh_add(struct pylb_dp *dp, uint16_t port, const struct pylb_ip *ip,
		  const uint8_t mac[6])
{
	struct rte_ether_addr a;
	struct pylb_neigh_key k;
	int rc = neigh_key_make(dp, port, ip, &k);

	if (rc != 0)
		return rc;
	memcpy(a.addr_bytes, mac, 6);
	if (!rte_is_unicast_ether_addr(&a) || rte_is_zero_ether_addr(&a))
		return pylb_fail(-PYLB_E_INVAL, "a neighbour's MAC must be unicast and not zero");
	pthread_mutex_lock(&dp->ctl_lock);
	neigh_set(dp, &k, &a, true);
	rc = rte_hash_lookup(dp->neigh_hash, &k) >= 0 ? 0 :
		pylb_fail(-PYLB_E_FULL, "the neighbour table is full (%u entries)",
			  dp->conf.neigh_capacity);
	pthread_mutex_unlock(&dp->ctl_lock);
	pylb_control_flush(dp);
	return rc;
}

int
pylb_dp_neigh_del(struct pylb_dp *dp, uint16_t port, const struct pylb_ip *ip)
{
	struct pylb_neigh_key k;
	int32_t pos;
	int rc = neigh_key_make(dp, port, ip, &k);

	if (rc != 0)
		return rc;
	pthread_mutex_lock(&dp->ctl_lock);
	pos = rte_hash_lookup(dp->neigh_hash, &k);
	if (pos >= 0)
		neigh_remove(dp, &k, pos);
	pthread_mutex_unlock(&dp->ctl_lock);
	return pos >= 0 ? 0 : pylb_fail(-PYLB_E_NOENT, "no such neighbour on port %s",
					dp->ports[port].name);
}

int
pylb_dp_neigh_list(struct pylb_dp *dp, struct pylb_neigh_info *out, uint32_t max)
{
	const struct pylb_neigh_key *key;
	uint64_t now = rte_get_timer_cycles();
	uint64_t hz = rte_get_timer_hz();
	uint32_t iter = 0, n = 0;
	void *data;
	int32_t pos;

	while (n < max &&
	       (pos = rte_hash_iterate(dp->neigh_hash, (const void **)&key,
				       &data, &iter)) >= 0) {
		const struct pylb_neigh_ctl *c = &dp->neigh_ctl[pos];
		uint64_t mac = (uint64_t)(uintptr_t)data;

		memset(&out[n], 0, sizeof(out[n]));
		out[n].addr.af = key->af;
		memcpy(out[n].addr.ip, key->ip, 16);
		out[n].port = key->port;
		memcpy(out[n].mac, &mac, RTE_ETHER_ADDR_LEN);
		out[n].state = c->state;
		out[n].held = c->n_hold;
		out[n].age_ms = (now - c->seen_tsc) * 1000 / hz;
		n++;
	}
	return (int)n;
}

static int
addr_announce_unlocked(struct pylb_dp *dp, uint16_t port, const struct pylb_ip *ip)
{
	struct pylb_neigh_key k;

	if (port >= dp->n_ports)
		return pylb_fail(-PYLB_E_NOENT, "no port %u", port);
	if (ip->af == 4 ? !port_owns4(&dp->cfg->ports[port], *(const uint32_t *)ip->ip) :
	    !port_owns6(&dp->cfg->ports[port], ip->ip))
		return pylb_fail(-PYLB_E_INVAL, "the address is not one of port %s's",
				 dp->ports[port].name);
	memset(&k, 0, sizeof(k));
	k.port = port;
	k.af = ip->af;
	memcpy(k.ip, ip->ip, ip->af == 4 ? 4 : 16);
	neigh_send(dp, &k, 0, true);
	return 0;
}

int
pylb_dp_addr_announce(struct pylb_dp *dp, uint16_t port, const struct pylb_ip *ip)
{
	int rc;

	pthread_mutex_lock(&dp->ctl_lock);
	rc = addr_announce_unlocked(dp, port, ip);
	pthread_mutex_unlock(&dp->ctl_lock);
	pylb_control_flush(dp);
	return rc;
}
