// Block I/O per device: request latency histogram (issue -> complete, as bcc's biolatency measures
// by default), bytes and requests read and written.
//
// Tracepoint arguments and helper results only (bpf/README.md): a request is keyed by its device
// and first sector, both tracepoint arguments, instead of the struct request pointer that
// biolatency keys on. Bytes and requests are counted at completion, where /proc/diskstats counts
// them.
#include "telemetry.h"

#ifndef B_READ_BYTES
#error "block.bpf.c needs the block counter indices as -D cflags (autotune/telemetry/bpfmaps.py)"
#endif

#define MAX_INFLIGHT 16384
#define MAX_DEVICES 256

struct rq_key {
	u32 dev;
	u32 pad;
	u64 sector;
};

struct dev_stats {
	u64 c[N_BLOCK];
	u64 h[N_SLOTS];
};

BPF_HASH(issued, struct rq_key, u64, MAX_INFLIGHT);
BPF_PERCPU_HASH(devices, u32, struct dev_stats, MAX_DEVICES);

TRACEPOINT_PROBE(block, block_rq_issue)
{
	struct rq_key key = {.dev = args->dev, .sector = args->sector};
	u64 now = bpf_ktime_get_ns();
	issued.update(&key, &now);
	return 0;
}

TRACEPOINT_PROBE(block, block_rq_complete)
{
	u64 now = bpf_ktime_get_ns();
	u32 dev = args->dev;
	struct dev_stats zero = {};
	struct dev_stats *s = devices.lookup_or_try_init(&dev, &zero);
	if (!s)
		return 0;
	// rwbs: an optional F (flush) and then R, W, D (discard), E (erase) or N (none).
	char op = args->rwbs[0] == 'F' ? args->rwbs[1] : args->rwbs[0];
	u64 bytes = (u64)args->nr_sector << 9;
	if (op == 'R') {
		s->c[B_READ_BYTES] += bytes;
		s->c[B_READ_REQS] += 1;
	} else if (op == 'W') {
		s->c[B_WRITE_BYTES] += bytes;
		s->c[B_WRITE_REQS] += 1;
	}
	struct rq_key key = {.dev = dev, .sector = args->sector};
	u64 *tsp = issued.lookup(&key);
	if (tsp) {
		u64 delta = now > *tsp ? now - *tsp : 0;
		s->h[lat_slot(delta / 1000)] += 1;
		issued.delete(&key);
	}
	return 0;
}
