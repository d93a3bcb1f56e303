/*
 * ffi/src/shim.h: the one header bindgen reads (ffi/build.rs).
 *
 * It pulls in the DPDK headers the data plane uses and declares the `mgw_*` C shim functions
 * (ffi/src/shim.c). The shim exists because the fast-path DPDK API is `static inline` (or a
 * macro, or a thread-local variable): rte_eth_rx_burst, rte_pktmbuf_alloc, rte_pktmbuf_mtod,
 * rte_errno, rte_lcore_id, ... have no symbol in libdpdk, so bindgen cannot bind them. Each shim is
 * a one-line, non-inline wrapper with the DPDK semantics unchanged; its doc comment says which
 * DPDK function it wraps.
 *
 * Compiled with exactly the cflags `pkg-config --cflags libdpdk` gives (bindgen and cc alike), so
 * the struct layouts bindgen sees are the ones the shim was compiled against.
 */
#ifndef MGW_DPDK_SHIM_H
#define MGW_DPDK_SHIM_H

#include <stdint.h>

#include <rte_common.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>
#include <rte_flow.h>
#include <rte_ring.h>
#include <rte_version.h>

/* ---- ethdev fast path ---- */

/** rte_eth_rx_burst(): receive up to nb_pkts mbufs from queue_id of port_id. */
uint16_t mgw_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts,
                              uint16_t nb_pkts);
/** rte_eth_tx_burst(): hand up to nb_pkts mbufs to queue_id of port_id; the driver owns (and
 *  frees) the ones it accepted, the caller keeps the rest (index >= return value). */
uint16_t mgw_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts,
                              uint16_t nb_pkts);

/* ---- mbuf ---- */

/** rte_pktmbuf_alloc(): one mbuf from mp, reset, or NULL when the pool is empty. */
struct rte_mbuf *mgw_rte_pktmbuf_alloc(struct rte_mempool *mp);
/** rte_pktmbuf_alloc_bulk(): count mbufs into mbufs, all or nothing: 0, or a negative errno
 *  when the pool cannot supply them (documented -ENOENT; 22.11's ring_mp_mc gives -ENOBUFS). */
int mgw_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int count);
/** rte_pktmbuf_free(): free a (possibly chained) mbuf back to its pool; NULL is a no-op. */
void mgw_rte_pktmbuf_free(struct rte_mbuf *m);
/** rte_pktmbuf_mtod(m, void *): pointer to the first data byte of the first segment. */
void *mgw_rte_pktmbuf_mtod(struct rte_mbuf *m);
/** rte_pktmbuf_mtod_offset(m, void *, off). */
void *mgw_rte_pktmbuf_mtod_offset(struct rte_mbuf *m, uint16_t off);
/** rte_pktmbuf_data_len(m): data bytes in this segment. */
uint16_t mgw_rte_pktmbuf_data_len(const struct rte_mbuf *m);
/** rte_pktmbuf_pkt_len(m): data bytes in the whole chain. */
uint32_t mgw_rte_pktmbuf_pkt_len(const struct rte_mbuf *m);
/** Sets m->data_len (segment length). The caller keeps pkt_len consistent. */
void mgw_rte_pktmbuf_set_data_len(struct rte_mbuf *m, uint16_t len);
/** Sets m->pkt_len (chain length). */
void mgw_rte_pktmbuf_set_pkt_len(struct rte_mbuf *m, uint32_t len);
/** rte_pktmbuf_headroom(). */
uint16_t mgw_rte_pktmbuf_headroom(const struct rte_mbuf *m);
/** rte_pktmbuf_tailroom() (of the last segment). */
uint16_t mgw_rte_pktmbuf_tailroom(const struct rte_mbuf *m);
/** rte_pktmbuf_prepend(): grow at the front; new data start, or NULL if headroom < len. */
char *mgw_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
/** rte_pktmbuf_append(): grow at the end; start of the appended bytes, or NULL. */
char *mgw_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
/** rte_pktmbuf_adj(): drop len bytes at the front; new data start, or NULL if len > data_len. */
char *mgw_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
/** rte_pktmbuf_trim(): drop len bytes at the end; 0, or -1 if len > data_len of the last seg. */
int mgw_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
/** rte_pktmbuf_is_contiguous(): 1 when the packet is one segment. */
int mgw_rte_pktmbuf_is_contiguous(const struct rte_mbuf *m);
/** m->ol_flags getter (RTE_MBUF_F_RX_* / RTE_MBUF_F_TX_*). */
uint64_t mgw_rte_mbuf_ol_flags(const struct rte_mbuf *m);
/** m->ol_flags setter. */
void mgw_rte_mbuf_set_ol_flags(struct rte_mbuf *m, uint64_t flags);
/** m->hash.rss getter: the RSS hash the NIC computed (valid if RTE_MBUF_F_RX_RSS_HASH). */
uint32_t mgw_rte_mbuf_rss_hash(const struct rte_mbuf *m);
/** m->port getter: the input port. */
uint16_t mgw_rte_mbuf_port(const struct rte_mbuf *m);

/* ---- mempool ---- */

/** rte_mempool_avail_count() is exported; this is rte_mempool_get_bulk() (all or nothing). */
int mgw_rte_mempool_get_bulk(struct rte_mempool *mp, void **obj_table, unsigned int n);
/** rte_mempool_put_bulk(). */
void mgw_rte_mempool_put_bulk(struct rte_mempool *mp, void *const *obj_table, unsigned int n);

/* ---- ring (multi-producer/multi-consumer unless the ring was made SP/SC) ---- */

/** rte_ring_enqueue_burst(): enqueue up to n pointers; returns how many were enqueued. */
unsigned int mgw_rte_ring_enqueue_burst(struct rte_ring *r, void *const *obj_table, unsigned int n);
/** rte_ring_dequeue_burst(): dequeue up to n pointers; returns how many were dequeued. */
unsigned int mgw_rte_ring_dequeue_burst(struct rte_ring *r, void **obj_table, unsigned int n);
/** rte_ring_count(). */
unsigned int mgw_rte_ring_count(const struct rte_ring *r);

/* ---- EAL per-lcore state ---- */

/** rte_errno of the calling thread (a per-lcore TLS variable in DPDK). */
int mgw_rte_errno(void);
/** Sets rte_errno of the calling thread (e.g. to 0 before a call that only sets it on error). */
void mgw_rte_errno_set(int value);
/** rte_lcore_id(): the calling thread's lcore id, or LCORE_ID_ANY (UINT32_MAX) for a thread
 *  EAL does not know. */
unsigned int mgw_rte_lcore_id(void);

#endif /* MGW_DPDK_SHIM_H */
