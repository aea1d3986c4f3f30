/* SPDX-License-Identifier: MIT OR Apache-2.0
 *
 * Non-inline wrappers for the DPDK static inline functions that rvs calls.
 * Each wrapper does nothing but forward its arguments, so the semantics and
 * the thread-safety rules are exactly DPDK's.
 */
#include "shim.h"

int rvs_errno(void)
{
	return rte_errno;
}

unsigned int rvs_lcore_id(void)
{
	return rte_lcore_id();
}

uint64_t rvs_rdtsc(void)
{
	return rte_rdtsc();
}

struct rte_mbuf *rvs_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

int rvs_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
			   unsigned int count)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

void rvs_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

uint16_t rvs_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
			  struct rte_mbuf **rx_pkts, uint16_t nb_pkts)
{
	return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t rvs_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
			  struct rte_mbuf **tx_pkts, uint16_t nb_pkts)
{
	return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

unsigned int rvs_ring_sp_enqueue_burst(struct rte_ring *r,
				       struct rte_mbuf *const *mbufs,
				       unsigned int n)
{
	return rte_ring_sp_enqueue_burst(r, (void *const *)mbufs, n, NULL);
}

unsigned int rvs_ring_sc_dequeue_burst(struct rte_ring *r,
				       struct rte_mbuf **mbufs,
				       unsigned int n)
{
	return rte_ring_sc_dequeue_burst(r, (void **)mbufs, n, NULL);
}

unsigned int rvs_ring_count(const struct rte_ring *r)
{
	return rte_ring_count(r);
}

const uint64_t rvs_eth_rss_ip_tcp_udp =
	RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP;
const uint64_t rvs_eth_rx_offload_rss_hash = RTE_ETH_RX_OFFLOAD_RSS_HASH;
