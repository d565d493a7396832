/* What bindgen sees: the DPDK APIs flowgate-dpdk uses, and the shim's prototypes. */
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_flow.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_mempool.h>
#include <rte_cycles.h>
#include <rte_ring.h>
#include "shim.h"
