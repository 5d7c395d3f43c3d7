// Scheduler telemetry per role: on-CPU time, run-queue latency (histogram and sum), voluntary and
// involuntary switches, migrations, major faults, and the number of threads in each role.
//
// Tracepoint arguments and helper results only (bpf/README.md): no task_struct is read.
//
// Roles: autotune_roles maps tid -> role and job slot for the jobs' threads; everything absent is
// ROLE_OTHER in slot 0 (telemetry.h). User space seeds it from /proc (autotune.target.Members), one
// slot per job, and counts a job's "other" as every cell but its own. A child takes its role when
// it is created: task_newtask fires in the parent's context and says from the clone flags whether
// the child is a thread or a process (sched_process_fork does not). A thread of a trainer process
// is trainer, anything else is loader, and a new process joins `procs`. (Until December 2026 a
// child was provisional until its first switch-out; a worker with a CPU to itself could run for
// seconds unswitched and unknown.)
//
// Run-queue latency as bcc's runqlat measures it: wakeup/wakeup_new -> switch-in, and
// switched out while still runnable (preempted or yielding) -> switch-in.
#include "telemetry.h"

#ifndef C_ONCPU_NS
#error "sched.bpf.c needs the counter indices as -D cflags (autotune/telemetry/bpfmaps.py)"
#endif

// prev_state as sched_switch reports it: the task state bits (TASK_REPORT, 0x7f, S D T t X Z P)
// and I (0x80), or TASK_REPORT_MAX (0x100, printed "R+") for a preempted task, or 0 ("R") for a
// runnable task that gave up the CPU itself. Runnable is therefore "no bit below 0x100".
#define PREV_STATE_BLOCKED_MASK 0xffL

#define MAX_PROCS 8192
#define MAX_TRAINERS 64

BPF_TABLE_PUBLIC("hash", u32, u32, autotune_roles, MAX_TASKS);
BPF_HASH(trainer_tgids, u32, u32, MAX_TRAINERS); // tgids of the trainer processes -> job slot
BPF_HASH(procs, u32, u32, MAX_PROCS);            // tgid -> job slot and role of the processes
BPF_HASH(runq_start, u32, u64, MAX_TASKS);       // tid -> when it became runnable, or 0
BPF_PERCPU_ARRAY(counters, struct role_counters, 1);
BPF_PERCPU_ARRAY(runq_hist, struct role_hists, 1);
BPF_PERCPU_ARRAY(oncpu, struct cpu_slot, 1);
// Bumped by user space after it changes autotune_roles (seeds a running thread, clears a job):
// a slot cached under an older generation may hold a stale role and is looked up again.
BPF_ARRAY(table_gen, u32, 1);

// Count v in the cell of `info` (a role table value: role and job slot).
static __always_inline void add(struct role_counters *rc, u32 info, u32 counter, u64 v)
{
	u32 i = CIDX(CELL(info), counter);
	if (i < N_CELLS * N_COUNTERS)
		rc->c[i] += v;
}

#define INFO_KEEP (INFO_ROLE_MASK | (0xffu << INFO_JOB_SHIFT)) /* role and slot, no flags */

// A thread's entry stays from its first wakeup to its exit, 0 while it is not runnable: storing
// into it costs a lookup, where an update and a delete per switch cost an allocation each.
static __always_inline void mark_runnable(u32 tid, u64 now)
{
	u64 *tsp = runq_start.lookup(&tid);
	if (tsp)
		*tsp = now;
	else
		runq_start.update(&tid, &now);
}

static __always_inline int enqueue(u32 tid)
{
	if (tid != 0)
		mark_runnable(tid, bpf_ktime_get_ns());
	return 0;
}

TRACEPOINT_PROBE(sched, sched_wakeup)
{
	return enqueue(args->pid);
}

TRACEPOINT_PROBE(sched, sched_wakeup_new)
{
	return enqueue(args->pid);
}

TRACEPOINT_PROBE(sched, sched_switch)
{
	u64 now = bpf_ktime_get_ns();
	int zero = 0;
	struct role_counters *rc = counters.lookup(&zero);
	struct role_hists *rh = runq_hist.lookup(&zero);
	struct cpu_slot *slot = oncpu.lookup(&zero);
	u32 *genp = table_gen.lookup(&zero);
	if (!rc || !rh || !slot || !genp)
		return 0;
	u32 gen = *genp;
	u32 prev = args->prev_pid;
	u32 next = args->next_pid;

	if (prev != 0) {
		// The slot caches prev's role from its switch-in; only an exiting thread needs the
		// table (to drop it), or one user space may have seeded or cleared since (a newer
		// generation).
		u32 info = ROLE_OTHER;
		u32 *infop = 0;
		if (slot->tid == prev && slot->ts != 0 && slot->gen == gen) {
			info = slot->info;
			if (info & INFO_EXITING)
				infop = autotune_roles.lookup(&prev);
		} else {
			infop = autotune_roles.lookup(&prev);
		}
		if (infop)
			info = *infop;
		if (slot->tid == prev && slot->ts != 0 && now > slot->ts)
			add(rc, info, C_ONCPU_NS, now - slot->ts);
		if ((args->prev_state & PREV_STATE_BLOCKED_MASK) == 0) {
			add(rc, info, C_NIVCSW, 1);
			mark_runnable(prev, now);
		} else {
			add(rc, info, C_NVCSW, 1);
		}
		if (infop && (info & INFO_EXITING))
			autotune_roles.delete(&prev);
	}

	u32 ninfo = ROLE_OTHER;
	if (next != 0) {
		u32 *ni = autotune_roles.lookup(&next);
		if (ni)
			ninfo = *ni;
		u64 *tsp = runq_start.lookup(&next);
		if (tsp && *tsp) {
			u64 delta = now > *tsp ? now - *tsp : 0;
			add(rc, ninfo, C_RUNQ_WAIT_NS, delta);
			u32 h = CELL(ninfo) * N_SLOTS + lat_slot(delta / 1000);
			if (h < N_CELLS * N_SLOTS)
				rh->h[h] += 1;
			*tsp = 0;
		}
	}
	slot->ts = now;
	slot->tid = next;
	slot->info = ninfo;
	slot->gen = gen;
	return 0;
}

// Major page faults per role. No tracepoint tells a major fault from a minor one, but the kernel's
// software event does: autotune/telemetry/programs.py attaches this to PERF_COUNT_SW_PAGE_FAULTS_MAJ
// on every CPU with a sample period of 1, and it runs in the faulting thread's context. (User space
// otherwise reads each process's majflt from /proc/<pid>/stat every interval.) The program reads
// nothing of its context (struct bpf_perf_event_data): its header cost the compile 1 s of CPU of
// the 1.3 s, beside the job starting, and the program's type comes from how it is loaded.
int on_major_fault(void *ctx)
{
	int zero = 0;
	struct role_counters *rc = counters.lookup(&zero);
	if (!rc)
		return 0;
	u32 tid = (u32)bpf_get_current_pid_tgid();
	u32 info = ROLE_OTHER;
	u32 *infop = autotune_roles.lookup(&tid);
	if (infop)
		info = *infop;
	add(rc, info, C_MAJFLT, 1);
	return 0;
}

TRACEPOINT_PROBE(sched, sched_migrate_task)
{
	u32 tid = args->pid;
	int zero = 0;
	struct role_counters *rc = counters.lookup(&zero);
	if (!rc || tid == 0)
		return 0;
	u32 *infop = autotune_roles.lookup(&tid);
	add(rc, infop ? *infop : ROLE_OTHER, C_MIGRATIONS, 1);
	return 0;
}

#define CLONE_THREAD_FLAG 0x00010000ULL /* CLONE_THREAD, include/uapi/linux/sched.h */

// A new task of a job's thread takes its role now (see the top).
TRACEPOINT_PROBE(task, task_newtask)
{
	u64 id = bpf_get_current_pid_tgid();
	u32 parent = (u32)id;
	u32 *pinfo = autotune_roles.lookup(&parent);
	if (!pinfo)
		return 0;
	int zero = 0;
	struct role_counters *rc = counters.lookup(&zero);
	if (!rc)
		return 0;
	u32 child = args->pid;
	int thread = (args->clone_flags & CLONE_THREAD_FLAG) != 0;
	u32 tgid = id >> 32; // the child's too when it is a thread
	u32 role = *pinfo & INFO_ROLE_MASK;
	if (role == ROLE_TRAINER && !(thread && trainer_tgids.lookup(&tgid)))
		role = ROLE_LOADER;
	u32 info = (*pinfo & INFO_KEEP & ~INFO_ROLE_MASK) | role;
	if (autotune_roles.insert(&child, &info) != 0)
		return 0; // user space seeded it first
	add(rc, info, C_THREADS, 1);
	if (!thread)
		procs.update(&child, &info);
	return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exit)
{
	u32 tid = args->pid;
	runq_start.delete(&tid);
	u32 *infop = autotune_roles.lookup(&tid);
	if (!infop)
		return 0;
	int zero = 0;
	struct role_counters *rc = counters.lookup(&zero);
	if (!rc)
		return 0;
	u32 info = *infop;
	if (info & INFO_EXITING)
		return 0;
	add(rc, info, C_THREADS, (u64)-1);
	// Kept until its last switch-out, so that its last slice still counts for its role.
	*infop = info | INFO_EXITING;
	struct cpu_slot *slot = oncpu.lookup(&zero);
	if (slot && slot->tid == tid)
		slot->info |= INFO_EXITING;
#ifdef HAVE_GROUP_DEAD
	if (args->group_dead) {
		u32 tgid = bpf_get_current_pid_tgid() >> 32;
		procs.delete(&tgid);
	}
#else
	// Older kernels do not say when the group dies: drop the process when its leader exits.
	if (tid == (u32)(bpf_get_current_pid_tgid() >> 32))
		procs.delete(&tid);
#endif
	return 0;
}
