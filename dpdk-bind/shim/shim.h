/* SPDX-License-Identifier: MIT OR Apache-2.0
 *
 * The C side of dpdk-bind: the DPDK headers that bindgen reads, and the
 * rvs_* wrappers that export DPDK's static inline functions as real symbols
 * (Rust cannot call an inline function from a header).
 */
#ifndef RVS_DPDK_SHIM_H
#define RVS_DPDK_SHIM_H

#include <stdint.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_malloc.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_ethdev.h>

/* rte_errno of the calling thread (a per-lcore TLS variable). */
int rvs_errno(void);

/* rte_lcore_id(): LCORE_ID_ANY on threads that are not EAL lcores. */
unsigned int rvs_lcore_id(void);

/* rte_rdtsc(), for architectures where Rust has no rdtsc intrinsic. */
uint64_t rvs_rdtsc(void);

struct rte_mbuf *rvs_pktmbuf_alloc(struct rte_mempool *mp);
int rvs_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
			   unsigned int count);
void rvs_pktmbuf_free(struct rte_mbuf *m);

uint16_t rvs_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
			  struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t rvs_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
			  struct rte_mbuf **tx_pkts, uint16_t nb_pkts);

unsigned int rvs_ring_sp_enqueue_burst(struct rte_ring *r,
				       struct rte_mbuf *const *mbufs,
				       unsigned int n);
unsigned int rvs_ring_sc_dequeue_burst(struct rte_ring *r,
				       struct rte_mbuf **mbufs,
				       unsigned int n);
unsigned int rvs_ring_count(const struct rte_ring *r);

/* RSS hash functions rvs asks for: IP, TCP and UDP over IPv4 and IPv6
 * (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP; function-like
 * macros that bindgen cannot evaluate). */
extern const uint64_t rvs_eth_rss_ip_tcp_udp;
/* RTE_ETH_RX_OFFLOAD_RSS_HASH: deliver the RSS hash in mbuf->hash.rss. */
extern const uint64_t rvs_eth_rx_offload_rss_hash;

#endif /* RVS_DPDK_SHIM_H */
