// Page cache and readahead per role (and job slot, telemetry.h): pages inserted into the page cache (misses), and readahead
// events, synchronous (a miss) and asynchronous (the PG_readahead marker was hit), with the pages
// of the readahead window each one submitted.
//
// Tracepoint arguments and helper results only (bpf/README.md). The role is the current task's,
// looked up in sched.bpf.c's role table (shared with BPF_TABLE "extern": load sched first).
//
// Window sizes: page_cache_{sync,async}_ra fire on entry, before the new window is computed (their
// `size` is the previous window's). The window actually submitted follows in the same task as
// page_cache_ra_order (`size`) or, on the paths that skip it, page_cache_ra_unbounded
// (`nr_to_read`); we remember which kind of event the task is in and credit the next one of those
// on the same file. Major faults are not here: user space reads majflt from /proc/<pid>/stat
// (a counter the kernel keeps per process anyway).
#include "telemetry.h"

#ifndef C_PGCACHE_MISS
#error "pagecache.bpf.c needs the counter indices as -D cflags (autotune/telemetry/bpfmaps.py)"
#endif

#define RA_SYNC 1
#define RA_ASYNC 2

struct ra_pending {
	u64 ino;
	u32 dev;
	u32 kind;
};

BPF_TABLE("extern", u32, u32, autotune_roles, MAX_TASKS);
BPF_PERCPU_ARRAY(counters, struct role_counters, 1);
// A task whose readahead decided to read nothing leaves an entry behind: LRU evicts it.
BPF_TABLE("lru_hash", u32, struct ra_pending, ra_pending, 4096);

static __always_inline u32 current_info(void)
{
	u32 tid = bpf_get_current_pid_tgid();
	u32 *infop = autotune_roles.lookup(&tid);
	return infop ? *infop : ROLE_OTHER;
}

static __always_inline void add(u32 counter, u64 v)
{
	int zero = 0;
	struct role_counters *rc = counters.lookup(&zero);
	if (!rc)
		return;
	u32 i = CIDX(CELL(current_info()), counter);
	if (i < N_CELLS * N_COUNTERS)
		rc->c[i] += v;
}

TRACEPOINT_PROBE(filemap, mm_filemap_add_to_page_cache)
{
	// A folio of 2^order pages.
	add(C_PGCACHE_MISS, 1ULL << (args->order & 31));
	return 0;
}

#ifdef HAVE_READAHEAD_TP
static __always_inline int ra_begin(u64 ino, u32 dev, u32 kind)
{
	add(kind == RA_SYNC ? C_RA_SYNC : C_RA_ASYNC, 1);
	u32 tid = bpf_get_current_pid_tgid();
	struct ra_pending p = {.ino = ino, .dev = dev, .kind = kind};
	ra_pending.update(&tid, &p);
	return 0;
}

static __always_inline int ra_window(u64 ino, u32 dev, u64 pages)
{
	u32 tid = bpf_get_current_pid_tgid();
	struct ra_pending *p = ra_pending.lookup(&tid);
	if (!p || p->ino != ino || p->dev != dev)
		return 0;
	add(p->kind == RA_SYNC ? C_RA_SYNC_PAGES : C_RA_ASYNC_PAGES, pages);
	ra_pending.delete(&tid);
	return 0;
}

TRACEPOINT_PROBE(readahead, page_cache_sync_ra)
{
	return ra_begin(args->i_ino, args->s_dev, RA_SYNC);
}

TRACEPOINT_PROBE(readahead, page_cache_async_ra)
{
	return ra_begin(args->i_ino, args->s_dev, RA_ASYNC);
}

TRACEPOINT_PROBE(readahead, page_cache_ra_order)
{
	return ra_window(args->i_ino, args->s_dev, args->size);
}

TRACEPOINT_PROBE(readahead, page_cache_ra_unbounded)
{
	return ra_window(args->i_ino, args->s_dev, args->nr_to_read);
}
#endif
