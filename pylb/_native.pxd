# The one extern block: declarations of native/include/pylb_dp.h.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int32_t

cdef extern from "pylb_dp.h" nogil:
    enum:
        PYLB_MAX_PORTS
        PYLB_MAX_WORKERS
        PYLB_MAX_ADDRS
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

    struct pylb_dp_conf:
        uint32_t n_workers
        uint32_t worker_lcores[PYLB_MAX_WORKERS]
        uint32_t mbufs_per_socket
        uint32_t mbuf_cache
        uint32_t neigh_capacity

    struct pylb_port_conf:
        char name[PYLB_NAME_LEN]
        char device[PYLB_DEVARGS_LEN]
        uint8_t mac[6]
        uint16_t rx_desc
        uint16_t tx_desc
        uint32_t link_wait_ms

    struct pylb_port_info:
        char name[PYLB_NAME_LEN]
        char device[PYLB_DEVARGS_LEN]
        int32_t ethdev
        uint8_t mac[6]
        uint8_t link_up
        uint32_t link_speed_mbps
        uint32_t n_addrs
        uint32_t addrs[PYLB_MAX_ADDRS]
        uint8_t prefix_lens[PYLB_MAX_ADDRS]

    struct pylb_neigh_info:
        uint32_t ip
        uint16_t port
        uint8_t mac[6]
        uint64_t age_ms

    const char *pylb_strerror(int rc)
    const char *pylb_last_error()

    int pylb_eal_init(int argc, char **argv)
    int pylb_eal_cleanup()

    int pylb_dp_create(const pylb_dp_conf *conf, pylb_dp **out)
    int pylb_dp_port_add(pylb_dp *dp, const pylb_port_conf *conf, uint16_t *port_out)
    int pylb_dp_addr_add(pylb_dp *dp, uint16_t port, uint32_t ip, uint8_t prefix_len)
    int pylb_dp_start(pylb_dp *dp)
    int pylb_dp_stop(pylb_dp *dp)
    void pylb_dp_destroy(pylb_dp *dp)
    int pylb_dp_housekeep(pylb_dp *dp)

    uint16_t pylb_dp_port_count(const pylb_dp *dp)
    int pylb_dp_port_info(pylb_dp *dp, uint16_t port, pylb_port_info *info)
    int pylb_dp_neigh_list(pylb_dp *dp, pylb_neigh_info *out, uint32_t max)
    uint32_t pylb_dp_mbufs_available(const pylb_dp *dp)
    const uint64_t *pylb_dp_counters(const pylb_dp *dp, uint32_t *n_slots)
    const char *pylb_counter_name(uint32_t idx)

    rte_mbuf *pylb_dp_mbuf_from_bytes(pylb_dp *dp, const void *data, uint32_t len)
    uint32_t pylb_mbuf_len(const rte_mbuf *m)
    uint32_t pylb_mbuf_copy_out(const rte_mbuf *m, void *buf, uint32_t cap)
    void pylb_mbuf_free(rte_mbuf *m)
    int pylb_dp_inject(pylb_dp *dp, uint16_t port, rte_mbuf **pkts, uint16_t n)
    uint16_t pylb_dp_collect(pylb_dp *dp, uint16_t port, rte_mbuf **out, uint16_t max)
