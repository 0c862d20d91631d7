// A guard around munmap(2) for the PMDs that unmap packet memory behind a polling lcore's back.
//
// DPDK 22.11's memif PMD handles a peer's disconnect on the interrupt thread: memif_disconnect
// clears the port's CONNECTED flag, then unmaps the shared regions (memif_free_regions). A worker
// already inside rte_eth_rx_burst/tx_burst on that port, past the flag check, then reads unmapped
// ring memory and sluiced dies of SIGSEGV in librte_net_memif (seen at load-generator and standby
// disconnects under load; docs/architecture.md "Threads and lcores"). The PMD has no hook to
// quiesce pollers first.
//
// sluiced therefore defines munmap itself (the executable's symbol interposes the PMD's call:
// the PMD is dlopen'ed, so the symbol is exported with --export-dynamic-symbol). A call from any
// thread that is not a worker waits, before unmapping, until every online worker has finished the
// loop pass it was in (the queue table's RCU grace period, TablePublisher): a pass that starts
// after the flag was cleared never touches the regions. Workers never wait (they would wait for
// themselves); sleeping workers are offline and are not waited for. glibc's own unmaps (malloc)
// call the system call directly and are not affected.
#pragma once

#include <cstdint>

namespace sluice::dataplane {

class TablePublisher;

// Turns the guard on (readers != null) or off. Off waits until no guarded munmap still uses the
// previous publisher, so the publisher may be destroyed when this returns.
void SetUnmapGuard(TablePublisher* readers);

// Called by each worker thread before its loop: its own unmaps never wait.
void MarkPollerThread();

// How many unmaps waited for the workers (for the log at exit and the tests).
uint64_t GuardedUnmaps();

}  // namespace sluice::dataplane
