/* What the telemetry programs (sched, pagecache, block) share with each other and with user space
 * (autotune/telemetry/{sched,pagecache,block}.py, which read these layouts with numpy).
 *
 * Sizes and counter indices come in as -D cflags from autotune/telemetry/bpfmaps.py, generated
 * from autotune.roles and autotune.telemetry.sample, so that Python stays their one definition.
 *
 * Counters are cumulative: user space keeps the previous reading and takes the difference each
 * interval. Reading and then clearing a map loses the events that land between the two calls;
 * a difference loses none.
 */
#ifndef AUTOTUNE_TELEMETRY_H
#define AUTOTUNE_TELEMETRY_H

#if !defined(N_ROLES) || !defined(N_COUNTERS) || !defined(N_SLOTS) || !defined(ROLE_OTHER) || \
	!defined(N_JOBS)
#error "telemetry.h needs N_ROLES, N_COUNTERS, N_SLOTS, N_JOBS and the role indices as -D cflags"
#endif

/* sched.bpf.c's public table autotune_roles (tid -> role), which pagecache.bpf.c imports. The
 * loader renames it for each load (autotune_roles_<n>, autotune/telemetry/bpfmaps.py): bcc's
 * registry of public tables keeps a stale fd number after a module is cleaned up. bcc refuses map
 * methods on a name that comes from a macro, hence a rename of the source and not a -D flag. */
#define MAX_TASKS 65536

/* The value of the role table: a role index in the low byte, flags, and the job's slot.
 *
 * One process loads these programs once and tunes several jobs with them (the node service):
 * each job has a slot (1 to N_JOBS - 1, given by user space when it seeds the job's threads), and
 * the counters are kept per slot and role. Slot 0 is nobody's: a task absent from the table
 * counts there, as ROLE_OTHER. A forked child inherits its parent's slot with its role. */
#define INFO_ROLE_MASK 0xffu
#define INFO_EXITING 0x200u /* sched_process_exit seen; removed at its last switch-out */
#define INFO_JOB_SHIFT 16
#define INFO_JOB(info) (((info) >> INFO_JOB_SHIFT) & 0xffu)
#define N_CELLS (N_JOBS * N_ROLES)

/* The cell of a role table value: its job's slot and its role. */
#define CELL(info) (INFO_JOB(info) * N_ROLES + ((info) & INFO_ROLE_MASK))

/* Index of one cell's counter in role_counters.c. */
#define CIDX(cell, counter) ((cell) * N_COUNTERS + (counter))

/* Per-cell counters (ROLE_COUNTERS columns), cumulative, one copy per CPU. */
struct role_counters {
	u64 c[N_CELLS * N_COUNTERS];
};

/* Per-cell run-queue latency histograms, log2 microseconds, cumulative, one copy per CPU. */
struct role_hists {
	u64 h[N_CELLS * N_SLOTS];
};

/* What runs on this CPU since when: user space credits a slice still running at read time. */
struct cpu_slot {
	u64 ts;   /* bpf_ktime_get_ns() at switch-in; 0 before the first switch seen */
	u32 tid;  /* 0 is the idle task */
	u32 info; /* role table value of tid at switch-in (ROLE_OTHER, slot 0, when absent) */
	u32 gen;  /* the role table's user-space generation at switch-in (sched.bpf.c table_gen) */
	u32 pad;
};

/* Slot of a latency in microseconds: slot 0 below 2 us, slot i in [2^i, 2^(i+1)), clamped. */
static __always_inline u32 lat_slot(u64 us)
{
	/* bpf_log2l(v) is floor(log2(v)) + 1 for v > 0, and 0 for 0. */
	u32 slot = us > 1 ? bpf_log2l(us) - 1 : 0;
	if (slot >= N_SLOTS)
		slot = N_SLOTS - 1;
	return slot;
}

#endif /* AUTOTUNE_TELEMETRY_H */
