/*
 * ffi/src/shim.c: non-inline wrappers for DPDK's static-inline fast-path API (see shim.h).
 * Each function is one call or one field access: no policy lives here. Built by ffi/build.rs with
 * the cflags of `pkg-config --cflags libdpdk` and -O2, so the wrapped inline code is optimised as
 * in a C application; the cost over C is one direct call per burst, not per packet.
 */
#include "shim.h"

uint16_t mgw_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts,
                              uint16_t nb_pkts)
{
	return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t mgw_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts,
                              uint16_t nb_pkts)
{
	return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *mgw_rte_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

int mgw_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int count)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

void mgw_rte_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

void *mgw_rte_pktmbuf_mtod(struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod(m, void *);
}

void *mgw_rte_pktmbuf_mtod_offset(struct rte_mbuf *m, uint16_t off)
{
	return rte_pktmbuf_mtod_offset(m, void *, off);
}

uint16_t mgw_rte_pktmbuf_data_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_data_len(m);
}

uint32_t mgw_rte_pktmbuf_pkt_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_pkt_len(m);
}

void mgw_rte_pktmbuf_set_data_len(struct rte_mbuf *m, uint16_t len)
{
	m->data_len = len;
}

void mgw_rte_pktmbuf_set_pkt_len(struct rte_mbuf *m, uint32_t len)
{
	m->pkt_len = len;
}

uint16_t mgw_rte_pktmbuf_headroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_headroom(m);
}

uint16_t mgw_rte_pktmbuf_tailroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_tailroom(m);
}

char *mgw_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_prepend(m, len);
}

char *mgw_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_append(m, len);
}

char *mgw_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_adj(m, len);
}

int mgw_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_trim(m, len);
}

int mgw_rte_pktmbuf_is_contiguous(const struct rte_mbuf *m)
{
	return rte_pktmbuf_is_contiguous(m);
}

uint64_t mgw_rte_mbuf_ol_flags(const struct rte_mbuf *m)
{
	return m->ol_flags;
}

void mgw_rte_mbuf_set_ol_flags(struct rte_mbuf *m, uint64_t flags)
{
	m->ol_flags = flags;
}

uint32_t mgw_rte_mbuf_rss_hash(const struct rte_mbuf *m)
{
	return m->hash.rss;
}

uint16_t mgw_rte_mbuf_port(const struct rte_mbuf *m)
{
	return m->port;
}

int mgw_rte_mempool_get_bulk(struct rte_mempool *mp, void **obj_table, unsigned int n)
{
	return rte_mempool_get_bulk(mp, obj_table, n);
}

void mgw_rte_mempool_put_bulk(struct rte_mempool *mp, void *const *obj_table, unsigned int n)
{
	rte_mempool_put_bulk(mp, obj_table, n);
}

unsigned int mgw_rte_ring_enqueue_burst(struct rte_ring *r, void *const *obj_table, unsigned int n)
{
	return rte_ring_enqueue_burst(r, obj_table, n, NULL);
}

unsigned int mgw_rte_ring_dequeue_burst(struct rte_ring *r, void **obj_table, unsigned int n)
{
	return rte_ring_dequeue_burst(r, obj_table, n, NULL);
}

unsigned int mgw_rte_ring_count(const struct rte_ring *r)
{
	return rte_ring_count(r);
}

int mgw_rte_errno(void)
{
	return rte_errno;
}

void mgw_rte_errno_set(int value)
{
	rte_errno = value;
}

unsigned int mgw_rte_lcore_id(void)
{
	return rte_lcore_id();
}
