// The V8 flag each worker starts with for the bulk data it relays. Every socket read is a
// fresh 64 KiB ArrayBuffer, memory outside V8's heap; by default each 64 MiB or so of it starts
// a full mark-compact of the whole heap, however little of it is garbage. On the bench lab's
// bulk scenario (one iperf3 stream, each agent pinned to one core) that was about 24 full
// collections per GB relayed and 15-18% of the client agent's CPU (perf: ConcurrentMarking::
// RunMajor 11%, sweeping 4%). Counted in V8's global limit instead (heap and buffers together),
// the same runs made 1-9 per GB. Set on the command line: set at run time it did less.
export const BULK_GC_FLAG = '--external-memory-accounted-in-global-limit';
