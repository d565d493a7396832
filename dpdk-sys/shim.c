/* See shim.h: real symbols for DPDK's static-inline fast path. */
#include <rte_config.h>
#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_ring.h>
#include <stddef.h>

#include "shim.h"

/* flowgate-dpdk reads and adjusts these mbuf fields directly (mbuf.rs, `MbufHead`) rather
 * than through a call per access; the build fails here if DPDK's layout ever differs. */
_Static_assert(offsetof(struct rte_mbuf, buf_addr) == 0, "rte_mbuf.buf_addr");
_Static_assert(offsetof(struct rte_mbuf, data_off) == 16, "rte_mbuf.data_off");
_Static_assert(offsetof(struct rte_mbuf, nb_segs) == 20, "rte_mbuf.nb_segs");
_Static_assert(offsetof(struct rte_mbuf, ol_flags) == 24, "rte_mbuf.ol_flags");
_Static_assert(offsetof(struct rte_mbuf, pkt_len) == 36, "rte_mbuf.pkt_len");
_Static_assert(offsetof(struct rte_mbuf, data_len) == 40, "rte_mbuf.data_len");
_Static_assert(offsetof(struct rte_mbuf, buf_len) == 54, "rte_mbuf.buf_len");
_Static_assert(sizeof(struct rte_mbuf) == 128, "rte_mbuf size (the private area follows it)");

uint16_t fg_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_rx_burst(port, queue, pkts, n);
}

uint16_t fg_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_tx_burst(port, queue, pkts, n);
}

struct rte_mbuf *fg_pktmbuf_alloc(struct rte_mempool *pool) { return rte_pktmbuf_alloc(pool); }
void fg_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }
void fg_pktmbuf_free_bulk(struct rte_mbuf **ms, unsigned int n) { rte_pktmbuf_free_bulk(ms, n); }
uint8_t *fg_pktmbuf_mtod(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, uint8_t *); }
uint16_t fg_pktmbuf_data_len(const struct rte_mbuf *m) { return rte_pktmbuf_data_len(m); }
uint32_t fg_pktmbuf_pkt_len(const struct rte_mbuf *m) { return rte_pktmbuf_pkt_len(m); }
uint16_t fg_pktmbuf_nb_segs(const struct rte_mbuf *m) { return m->nb_segs; }
uint8_t *fg_pktmbuf_append(struct rte_mbuf *m, uint16_t len) { return (uint8_t *)rte_pktmbuf_append(m, len); }
uint8_t *fg_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len) { return (uint8_t *)rte_pktmbuf_prepend(m, len); }
uint8_t *fg_pktmbuf_adj(struct rte_mbuf *m, uint16_t len) { return (uint8_t *)rte_pktmbuf_adj(m, len); }
int fg_pktmbuf_trim(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_trim(m, len); }
uint16_t fg_pktmbuf_headroom(const struct rte_mbuf *m) { return rte_pktmbuf_headroom(m); }
uint16_t fg_pktmbuf_tailroom(const struct rte_mbuf *m) { return rte_pktmbuf_tailroom(m); }

const uint8_t *fg_pktmbuf_read(const struct rte_mbuf *m, uint32_t off, uint32_t len, uint8_t *buf)
{
	return (const uint8_t *)rte_pktmbuf_read(m, off, len, buf);
}

uint64_t fg_mbuf_rx_timestamp(const struct rte_mbuf *m, int offset, uint64_t flag, int *present)
{
	if (offset < 0 || !(m->ol_flags & flag)) {
		*present = 0;
		return 0;
	}
	*present = 1;
	return *RTE_MBUF_DYNFIELD(m, offset, const rte_mbuf_timestamp_t *);
}

void fg_mbuf_set_rx_timestamp(struct rte_mbuf *m, int offset, uint64_t flag, uint64_t ts)
{
	if (offset < 0)
		return;
	*RTE_MBUF_DYNFIELD(m, offset, rte_mbuf_timestamp_t *) = ts;
	m->ol_flags |= flag;
}

uint32_t fg_mbuf_rss_hash(const struct rte_mbuf *m, int *present)
{
	*present = (m->ol_flags & RTE_MBUF_F_RX_RSS_HASH) != 0;
	return *present ? m->hash.rss : 0;
}

struct rte_ring *fg_ring_create(const char *name, unsigned int count, int socket, int single)
{
	return rte_ring_create(name, count, socket, single ? (RING_F_SP_ENQ | RING_F_SC_DEQ) : RING_F_SC_DEQ);
}
void fg_ring_free(struct rte_ring *r) { rte_ring_free(r); }
unsigned int fg_ring_enqueue_burst(struct rte_ring *r, struct rte_mbuf **objs, unsigned int n)
{
	return rte_ring_enqueue_burst(r, (void *const *)objs, n, NULL);
}
unsigned int fg_ring_dequeue_burst(struct rte_ring *r, struct rte_mbuf **objs, unsigned int n)
{
	return rte_ring_dequeue_burst(r, (void **)objs, n, NULL);
}
unsigned int fg_ring_count(const struct rte_ring *r) { return rte_ring_count(r); }

int fg_remote_launch(int (*f)(void *), void *arg, unsigned int lcore) { return rte_eal_remote_launch(f, arg, lcore); }
int fg_wait_lcore(unsigned int lcore) { return rte_eal_wait_lcore(lcore); }
int fg_next_worker_lcore(int prev)
{
	unsigned int next = rte_get_next_lcore(prev < 0 ? (unsigned int)-1 : (unsigned int)prev, 1, 0);
	return next >= RTE_MAX_LCORE ? -1 : (int)next;
}
unsigned int fg_lcore_count(void) { return rte_lcore_count(); }

unsigned int fg_lcore_id(void) { return rte_lcore_id(); }
uint64_t fg_tsc_cycles(void) { return rte_get_tsc_cycles(); }
uint64_t fg_tsc_hz(void) { return rte_get_tsc_hz(); }
int fg_errno(void) { return rte_errno; }

uint64_t fg_eth_rss_ip(void) { return RTE_ETH_RSS_IP; }
uint64_t fg_eth_rss_tcp(void) { return RTE_ETH_RSS_TCP; }
uint64_t fg_eth_rss_udp(void) { return RTE_ETH_RSS_UDP; }
uint64_t fg_eth_rss_ipv4(void) { return RTE_ETH_RSS_IPV4; }
uint64_t fg_eth_rss_ipv6(void) { return RTE_ETH_RSS_IPV6; }
uint64_t fg_eth_rx_offload_timestamp(void) { return RTE_ETH_RX_OFFLOAD_TIMESTAMP; }
uint16_t fg_mbuf_default_buf_size(void) { return RTE_MBUF_DEFAULT_BUF_SIZE; }
uint16_t fg_pktmbuf_headroom_default(void) { return RTE_PKTMBUF_HEADROOM; }
