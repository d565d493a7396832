/*
 * flowgate's shim over DPDK's static-inline functions and function-like macros: bindgen
 * cannot bind those (they have no symbol in any library), so each gets a real function
 * here, built by the cc crate with the same flags as libdpdk's users.
 */
#ifndef FLOWGATE_DPDK_SHIM_H
#define FLOWGATE_DPDK_SHIM_H

#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;

uint16_t fg_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t fg_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);

struct rte_mbuf *fg_pktmbuf_alloc(struct rte_mempool *pool);
void fg_pktmbuf_free(struct rte_mbuf *m);
/* Free `n` mbufs in one call (rte_pktmbuf_free_bulk). */
void fg_pktmbuf_free_bulk(struct rte_mbuf **ms, unsigned int n);
/* Start of the data of the first segment (rte_pktmbuf_mtod). */
uint8_t *fg_pktmbuf_mtod(struct rte_mbuf *m);
uint16_t fg_pktmbuf_data_len(const struct rte_mbuf *m);
uint32_t fg_pktmbuf_pkt_len(const struct rte_mbuf *m);
uint16_t fg_pktmbuf_nb_segs(const struct rte_mbuf *m);
/* NULL when the room is missing, as in DPDK. */
uint8_t *fg_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
uint8_t *fg_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
uint8_t *fg_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int fg_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
uint16_t fg_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t fg_pktmbuf_tailroom(const struct rte_mbuf *m);
/* Copy of a (possibly multi-segment) packet's bytes into `buf` (rte_pktmbuf_read). */
const uint8_t *fg_pktmbuf_read(const struct rte_mbuf *m, uint32_t off, uint32_t len, uint8_t *buf);
/* The RX timestamp dynamic field at `offset` if `flag` is set in ol_flags; else 0 and
 * *present = 0. */
uint64_t fg_mbuf_rx_timestamp(const struct rte_mbuf *m, int offset, uint64_t flag, int *present);
/* Store `ts` in the RX timestamp dynamic field at `offset` and set `flag`, as a PMD does. */
void fg_mbuf_set_rx_timestamp(struct rte_mbuf *m, int offset, uint64_t flag, uint64_t ts);
/* NIC RSS hash if the PMD set RTE_MBUF_F_RX_RSS_HASH. */
uint32_t fg_mbuf_rss_hash(const struct rte_mbuf *m, int *present);

/* Rings of mbuf pointers between lcores. `single` = one producer and one consumer. */
struct rte_ring;
struct rte_ring *fg_ring_create(const char *name, unsigned int count, int socket, int single);
void fg_ring_free(struct rte_ring *r);
unsigned int fg_ring_enqueue_burst(struct rte_ring *r, struct rte_mbuf **objs, unsigned int n);
unsigned int fg_ring_dequeue_burst(struct rte_ring *r, struct rte_mbuf **objs, unsigned int n);
unsigned int fg_ring_count(const struct rte_ring *r);

/* Launch `f(arg)` on worker lcore `lcore` / wait for it (returns f's result). */
int fg_remote_launch(int (*f)(void *), void *arg, unsigned int lcore);
int fg_wait_lcore(unsigned int lcore);
/* The worker lcores in order: the first after `prev` (-1 to start), or -1. */
int fg_next_worker_lcore(int prev);
unsigned int fg_lcore_count(void);

unsigned int fg_lcore_id(void);
uint64_t fg_tsc_cycles(void);
uint64_t fg_tsc_hz(void);
int fg_errno(void);

/* Macro constants built from RTE_BIT64 (bindgen's macro evaluator skips those). */
uint64_t fg_eth_rss_ip(void);
uint64_t fg_eth_rss_tcp(void);
uint64_t fg_eth_rss_udp(void);
uint64_t fg_eth_rss_ipv4(void);
uint64_t fg_eth_rss_ipv6(void);
uint64_t fg_eth_rx_offload_timestamp(void);
uint16_t fg_mbuf_default_buf_size(void);
uint16_t fg_pktmbuf_headroom_default(void);

#endif
