# The one extern block: declarations of native/include/pylb_dp.h.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int32_t, int64_t

cdef extern from "pylb_dp.h" nogil:
    enum:
        PYLB_MAX_PORTS
        PYLB_MAX_WORKERS
        PYLB_HASH_KEY_WORDS
        PYLB_MAX_ADDRS
        PYLB_MAX_ECMP
        PYLB_MAX_BACKENDS
        PYLB_MAGLEV_DEFAULT
        PYLB_ROUTE_GATEWAY
        PYLB_ROUTE_CONNECTED
        PYLB_ROUTE_LOCAL
        PYLB_ROUTE_VIP
        PYLB_ROUTE_SERVICE
        PYLB_FWD_IPIP
        PYLB_FWD_GRE
        PYLB_FWD_DR
        PYLB_FWD_GUE
        PYLB_MAX_APPLIANCES
        PYLB_STICK_5
        PYLB_STICK_3
        PYLB_STICK_2
        PYLB_FAILOVER_REBALANCE
        PYLB_FAILOVER_STAY
        PYLB_L4_NAT
        PYLB_L4_DR
        PYLB_L4_TUNNEL
        PYLB_L4_FULLNAT
        PYLB_L4_GUE
        PYLB_MAX_LIPS
        PYLB_SVC_ID_ANY
        PYLB_SCHED_MAGLEV
        PYLB_SCHED_SOURCE
        PYLB_SCHED_WRR
        PYLB_SCHED_WLC
        PYLB_BACKEND_UP
        PYLB_BACKEND_DRAIN
        PYLB_BACKEND_DOWN
        PYLB_SYN_PROXY_AUTO
        PYLB_SYN_PROXY_ALWAYS
        PYLB_SYN_PROXY_OFF
        PYLB_PROXY_OFF
        PYLB_PROXY_V1
        PYLB_PROXY_V2
        PYLB_RP_STRICT
        PYLB_RP_LOOSE
        PYLB_RP_OFF
        PYLB_ACL_DENY
        PYLB_ACL_ALLOW
        PYLB_ACL_DROP
        PYLB_ACL_RESET
        PYLB_ACL_UNREACHABLE
        PYLB_NEIGH_INCOMPLETE
        PYLB_NEIGH_REACHABLE
        PYLB_NEIGH_PROBING
        PYLB_NEIGH_STATIC
        PYLB_NAME_LEN
        PYLB_DEVARGS_LEN
        PYLB_CNT_MAX
        PYLB_CNT_STRIDE
        PYLB_DROP_FIRST
        PYLB_E_INVAL
        PYLB_E_NOMEM
        PYLB_E_EXIST
        PYLB_E_NOENT
        PYLB_E_FULL
        PYLB_E_EAL
        PYLB_E_PORT
        PYLB_E_STATE

    struct pylb_dp:
        pass
    struct rte_mbuf:
        pass

    struct pylb_timeouts:
        uint32_t tcp_syn
        uint32_t tcp_established
        uint32_t tcp_fin
        uint32_t tcp_close
        uint32_t udp

    struct pylb_dp_conf:
        uint32_t n_workers
        uint32_t worker_lcores[PYLB_MAX_WORKERS]
        uint32_t mbufs_per_socket
        uint32_t mbuf_cache
        uint32_t mbuf_size
        uint32_t neigh_capacity
        uint32_t neigh_timeout_ms
        uint32_t max_routes
        uint32_t fib_tbl8
        uint32_t conn_capacity
        uint8_t tcp_reset
        uint8_t mid_flow_off
        uint8_t clock_stopped
        uint8_t sync
        uint32_t half_open_budget
        uint8_t source_prefix4
        uint8_t source_prefix6
        uint32_t source_half_open_budget
        uint32_t source_new_per_second
        pylb_timeouts timeouts
        uint64_t hash_key[PYLB_HASH_KEY_WORDS]

    struct pylb_port_conf:
        char name[PYLB_NAME_LEN]
        char device[PYLB_DEVARGS_LEN]
        uint8_t mac[6]
        uint16_t rx_desc
        uint16_t tx_desc
        uint32_t link_wait_ms
        uint16_t mtu
        uint16_t vlan
        uint16_t parent
        char kernel_iface[PYLB_NAME_LEN]
        uint8_t rp_filter

    struct pylb_ip:
        uint8_t af
        uint8_t ip[16]

    enum:
        PYLB_PROBE_PENDING
        PYLB_PROBE_ANSWERED
        PYLB_PROBE_REFUSED

    struct pylb_probe_conf:
        pylb_ip vip
        pylb_ip backend
        uint16_t port
        uint8_t proto
        uint8_t method

    struct pylb_prefix:
        pylb_ip addr
        uint8_t len

    struct pylb_nexthop:
        pylb_ip gw
        uint16_t port

    struct pylb_route:
        pylb_prefix dst
        uint8_t kind
        uint16_t n_nh
        pylb_nexthop nh[PYLB_MAX_ECMP]
        char inspect[PYLB_NAME_LEN]

    struct pylb_vip_conf:
        pylb_prefix prefix
        uint8_t method
        pylb_prefix source
        uint32_t table_size
        char inspect[PYLB_NAME_LEN]

    struct pylb_pool_conf:
        char name[PYLB_NAME_LEN]
        uint8_t stickiness
        uint8_t failover
        uint32_t table_size
        uint32_t idle_timeout

    struct pylb_pool_stats:
        uint64_t flows

    struct pylb_backend:
        pylb_ip addr
        uint16_t port
        uint8_t state
        uint32_t weight
        uint32_t max_conns
        uint8_t sid_len
        uint8_t sid[15]

    struct pylb_quic_conf:
        uint8_t sid_len
        uint8_t nonce_len
        uint8_t config_id
        uint8_t encrypted
        uint8_t key[16]

    struct pylb_service_conf:
        uint16_t id
        pylb_ip vip
        uint8_t proto
        uint16_t port
        uint8_t method
        uint8_t sched
        uint32_t table_size
        uint32_t persistence
        uint8_t persistence_prefix
        uint8_t down_reset
        uint8_t syn_proxy
        uint8_t proxy_protocol
        uint32_t max_connections
        uint32_t max_new_per_second
        uint32_t max_per_client
        uint8_t n_lips
        pylb_ip lips[PYLB_MAX_LIPS]
        pylb_prefix tunnel_source
        pylb_quic_conf quic

    const char *pylb_tcp_state_name(uint8_t state)

    struct pylb_svc_stats:
        uint64_t conns, in_packets, in_bytes, out_packets, out_bytes
        int64_t active, inactive

    int pylb_dp_timeouts_set(pylb_dp *dp, const pylb_timeouts *t)
    void pylb_dp_timeouts_get(pylb_dp *dp, pylb_timeouts *t)
    int pylb_dp_service_stats(pylb_dp *dp, const pylb_ip *vip, uint8_t proto, uint16_t port,
                              pylb_svc_stats *out, pylb_svc_stats *backends, uint32_t max_b)

    struct pylb_l4_trace_query:
        pylb_ip src, dst
        uint16_t sport, dport
        uint8_t proto
        uint8_t tcp_flags
        uint32_t seq, ack
        const uint8_t *payload
        uint16_t plen

    struct pylb_l4_trace:
        uint8_t verdict
        uint8_t state
        uint16_t lcore_slot
        uint16_t reason
        pylb_service_conf service
        pylb_backend backend
        uint32_t route_hash
        char why[256]

    int pylb_dp_l4_trace(pylb_dp *dp, const pylb_l4_trace_query *q, pylb_l4_trace *out)

    struct pylb_conn_info:
        pylb_ip client, vip, backend, local
        uint16_t cport, vport, bport, lport
        uint8_t proto
        uint8_t state
        uint16_t lcore_slot
        uint64_t expires_ms
        uint64_t packets

    struct pylb_conn_record:
        uint8_t af
        uint8_t method
        uint32_t expires_ms
        uint8_t local[16]

    int pylb_dp_conn_export(pylb_dp *dp, pylb_conn_record *out, uint32_t max)
    int pylb_dp_conn_install(pylb_dp *dp, const pylb_conn_record *r, uint32_t n)
    int pylb_dp_sync_collect(pylb_dp *dp, pylb_conn_record *out, uint32_t max)
    int pylb_dp_sync_apply(pylb_dp *dp, const pylb_conn_record *r, uint32_t n)
    uint64_t pylb_dp_sync_lost(const pylb_dp *dp)

    struct pylb_port_info:
        char name[PYLB_NAME_LEN]
        char device[PYLB_DEVARGS_LEN]
        int32_t ethdev
        uint8_t mac[6]
        uint8_t link_up
        uint32_t link_speed_mbps
        uint32_t n_addrs
        pylb_prefix addrs[2 * PYLB_MAX_ADDRS]
        char kernel_iface[PYLB_NAME_LEN]
        uint16_t mtu
        uint64_t nic_rx_packets, nic_tx_packets, nic_rx_bytes, nic_tx_bytes
        uint64_t nic_rx_missed, nic_rx_errors, nic_tx_errors, nic_rx_nombuf

    struct pylb_mempool_info:
        char name[32]
        int32_t socket
        uint32_t size
        uint32_t available

    struct pylb_neigh_info:
        pylb_ip addr
        uint16_t port
        uint8_t mac[6]
        uint8_t state
        uint8_t held
        uint64_t age_ms

    const char *pylb_strerror(int rc)
    const char *pylb_last_error()
    void pylb_clear_error()

    int pylb_eal_init(int argc, char **argv)
    int pylb_eal_cleanup()

    int pylb_dp_create(const pylb_dp_conf *conf, pylb_dp **out)
    int pylb_dp_port_add(pylb_dp *dp, const pylb_port_conf *conf, uint16_t *port_out)
    int pylb_dp_addr_add(pylb_dp *dp, uint16_t port, const pylb_prefix *addr)
    int pylb_dp_addr_del(pylb_dp *dp, uint16_t port, const pylb_ip *ip)
    int pylb_dp_addr_announce(pylb_dp *dp, uint16_t port, const pylb_ip *ip)
    int pylb_dp_probe_start(pylb_dp *dp, const pylb_probe_conf *p)
    int pylb_dp_probe_state(pylb_dp *dp, uint32_t id)
    int pylb_dp_probe_end(pylb_dp *dp, uint32_t id)
    int pylb_dp_start(pylb_dp *dp)
    int pylb_dp_stop(pylb_dp *dp)
    void pylb_dp_destroy(pylb_dp *dp)
    int pylb_dp_housekeep(pylb_dp *dp)

    int pylb_dp_route_add(pylb_dp *dp, const pylb_route *r)
    int pylb_dp_route_replace(pylb_dp *dp, const pylb_route *r)
    int pylb_dp_route_del(pylb_dp *dp, const pylb_prefix *dst)
    int pylb_dp_route_get(pylb_dp *dp, const pylb_prefix *dst, pylb_route *out)
    int pylb_dp_route_list(pylb_dp *dp, uint8_t af, const pylb_prefix *after,
                           pylb_route *out, uint32_t max)
    uint32_t pylb_dp_route_count(const pylb_dp *dp, uint8_t af)
    int pylb_dp_route_lookup(pylb_dp *dp, const pylb_ip *ip, pylb_route *out)
    int pylb_dp_route_pick(pylb_dp *dp, const pylb_ip *to, uint32_t hash, pylb_route *out,
                           int32_t *chosen)

    int pylb_dp_neigh_add(pylb_dp *dp, uint16_t port, const pylb_ip *ip, const uint8_t *mac)
    int pylb_dp_neigh_del(pylb_dp *dp, uint16_t port, const pylb_ip *ip)

    int pylb_dp_pool_add(pylb_dp *dp, const pylb_pool_conf *conf)
    int pylb_dp_pool_del(pylb_dp *dp, const char *name)
    int pylb_dp_pool_set(pylb_dp *dp, const pylb_pool_conf *conf, const pylb_backend *b,
                         uint32_t n)
    int pylb_dp_pool_get(pylb_dp *dp, const char *name, pylb_pool_conf *conf, pylb_backend *b,
                         uint32_t max_b, uint32_t *n_b, pylb_pool_stats *stats)
    int pylb_dp_pool_pick(pylb_dp *dp, const char *name, uint8_t proto, const pylb_ip *src,
                          uint16_t sport, const pylb_ip *dst, uint16_t dport, pylb_ip *out,
                          uint32_t *hash)
    int pylb_dp_vip_add(pylb_dp *dp, const pylb_vip_conf *conf)
    int pylb_dp_vip_del(pylb_dp *dp, const pylb_prefix *prefix)
    int pylb_dp_vip_backends_set(pylb_dp *dp, const pylb_prefix *prefix,
                                 const pylb_backend *b, uint32_t n)
    int pylb_dp_vip_get(pylb_dp *dp, const pylb_prefix *prefix, pylb_vip_conf *conf,
                        pylb_backend *b, uint32_t max_b, uint32_t *n_b)
    int pylb_dp_vip_list(pylb_dp *dp, pylb_prefix *out, uint32_t max)
    int pylb_dp_vip_fingerprint(pylb_dp *dp, const pylb_prefix *prefix, uint64_t *out)
    int pylb_dp_vip_pick(pylb_dp *dp, const pylb_prefix *prefix, const pylb_ip *src,
                         const pylb_ip *dst)

    int pylb_dp_service_add(pylb_dp *dp, const pylb_service_conf *conf)
    int pylb_dp_service_del(pylb_dp *dp, const pylb_ip *vip, uint8_t proto, uint16_t port)
    int pylb_dp_service_backends_set(pylb_dp *dp, const pylb_ip *vip, uint8_t proto,
                                     uint16_t port, const pylb_backend *b, uint32_t n)
    int pylb_dp_service_limits_set(pylb_dp *dp, const pylb_ip *vip, uint8_t proto,
                                   uint16_t port, uint32_t max_connections,
                                   uint32_t max_new_per_second, uint32_t max_per_client)
    int pylb_dp_service_get(pylb_dp *dp, const pylb_ip *vip, uint8_t proto, uint16_t port,
                            pylb_service_conf *conf, pylb_backend *b, uint32_t max_b,
                            uint32_t *n_b)
    int pylb_dp_service_list(pylb_dp *dp, pylb_service_conf *out, uint32_t max)
    int pylb_dp_service_fingerprint(pylb_dp *dp, const pylb_ip *vip, uint8_t proto,
                                    uint16_t port, uint64_t *out)
    int pylb_dp_conn_list(pylb_dp *dp, pylb_conn_info *out, uint32_t max)
    uint64_t pylb_dp_conn_count(const pylb_dp *dp)
    uint64_t pylb_dp_conn_capacity(const pylb_dp *dp)
    uint64_t pylb_dp_half_open(const pylb_dp *dp, const pylb_ip *source)

    enum:
        PYLB_MAX_ACLS
    struct pylb_acl_conf:
        uint8_t type
        uint8_t action
    struct pylb_acl_prefix:
        pylb_prefix prefix
        uint8_t list
    int pylb_dp_acls_set(pylb_dp *dp, const pylb_acl_conf *lists, uint32_t n_lists,
                         const pylb_acl_prefix *p, uint32_t n, const uint64_t *svc_lists)
    int pylb_dp_acl_check(pylb_dp *dp, const pylb_ip *src, uint16_t svc)
    void pylb_dp_clock_advance(pylb_dp *dp, uint64_t ms)

    int pylb_maglev_build(const pylb_backend *b, uint32_t n, uint32_t size, uint16_t *table)
    uint32_t pylb_flow_hash(const pylb_dp *dp, const pylb_ip *src, const pylb_ip *dst)

    uint16_t pylb_dp_port_count(const pylb_dp *dp)
    int pylb_dp_port_info(pylb_dp *dp, uint16_t port, pylb_port_info *info)
    int pylb_dp_neigh_list(pylb_dp *dp, pylb_neigh_info *out, uint32_t max)
    uint32_t pylb_dp_mbufs_available(const pylb_dp *dp)
    int pylb_dp_mempools(const pylb_dp *dp, pylb_mempool_info *out, uint32_t max)
    const uint64_t *pylb_dp_counters(const pylb_dp *dp, uint32_t *n_slots)
    const char *pylb_counter_name(uint32_t idx)

    rte_mbuf *pylb_dp_mbuf_from_bytes(pylb_dp *dp, const void *data, uint32_t len)
    uint32_t pylb_mbuf_len(const rte_mbuf *m)
    uint32_t pylb_mbuf_copy_out(const rte_mbuf *m, void *buf, uint32_t cap)
    void pylb_mbuf_free(rte_mbuf *m)
    void pylb_mbuf_rx_ip_cksum(rte_mbuf *m, int good)
    int pylb_dp_inject(pylb_dp *dp, uint16_t port, int kernel, rte_mbuf **pkts, uint16_t n)
    uint16_t pylb_dp_collect(pylb_dp *dp, uint16_t port, int kernel, rte_mbuf **out,
                             uint16_t max)

# The record functions' shapes (export and collect; install and apply).
ctypedef int (*records_out_fn)(pylb_dp *dp, pylb_conn_record *out, uint32_t max)
ctypedef int (*records_in_fn)(pylb_dp *dp, const pylb_conn_record *r, uint32_t n)
ctypedef int (*port_address_fn)(pylb_dp *dp, uint16_t port, const pylb_ip *ip) nogil
