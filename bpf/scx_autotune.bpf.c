// SPDX-License-Identifier: GPL-2.0
/* scx_autotune: a weighted virtual-time sched_ext scheduler whose weights the agent sets.
 *
 * CO-RE libbpf program (not bcc): built with clang -target bpf against a vmlinux.h generated
 * from the target kernel's BTF, by scx/build.sh; see bpf/README.md for why that is safe.
 *
 * Each task's vtime advances by runtime * 100 / weight. The weight is the one user space put in
 * the `weights` map for the task's role (`roles` map: tgid or cgroup v2 id -> role), else the
 * kernel's weight for the task's nice value (p->scx.weight).
 *
 * Every CPU has its own vtime-ordered queue and its own vtime clock (the largest vtime that
 * started running there). Two rules make the weights hold:
 *  - when the running task's slice ends, dispatch compares it with the head of its CPU's queue
 *    and refills its slice while it still has the lowest vtime. Without this, the kernel takes
 *    the queue's head before re-queueing the running task, and two tasks sharing a CPU simply
 *    alternate whatever their weights.
 *  - running and queued tasks alike are kept within a window of their CPU's clock: at most one
 *    slice of credit behind it (a sleeper or a task on a slow CPU cannot bank time), at most one
 *    run's charge ahead. A clock that jumps (a task with a large vtime migrates in) therefore
 *    cannot leave a pinned task far behind it, owning the CPU until it catches up.
 *
 * Build-time choices (-D, from the target's BTF, by scx/build.sh):
 *   AUTOTUNE_DSQ_INSERT=1  kfuncs of 6.13+ (scx_bpf_dsq_insert*, scx_bpf_dsq_move_to_local);
 *                       0  those of 6.12 (scx_bpf_dispatch*, scx_bpf_consume).
 *   AUTOTUNE_SET_SLICE=1   scx_bpf_task_set_slice() (kernels that deprecate writing p->scx.slice).
 *   AUTOTUNE_SLICE_NS      default slice (20 ms, the kernel's SCX_SLICE_DFL).
 */
#define BPF_NO_KFUNC_PROTOTYPES /* we declare the kfuncs of the generation we build for */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "scx_autotune.h"

char _license[] SEC("license") = "GPL";

#ifndef AUTOTUNE_DSQ_INSERT
#define AUTOTUNE_DSQ_INSERT 1
#endif
#ifndef AUTOTUNE_SET_SLICE
#define AUTOTUNE_SET_SLICE 0
#endif
#ifndef AUTOTUNE_SLICE_NS
#define AUTOTUNE_SLICE_NS 20000000ULL
#endif

#define MAX_CPUS 1024 /* power of two: indexes are masked with MAX_CPUS - 1 for the verifier */

/* --- kfuncs ------------------------------------------------------------------------------- */
/* Weak, as libbpf's own: `scx-autotune maps` loads the maps alone on kernels without sched_ext. */

#if AUTOTUNE_DSQ_INSERT
extern void scx_bpf_dsq_insert(struct task_struct *p, u64 dsq_id, u64 slice, u64 enq_flags) __weak __ksym;
extern void scx_bpf_dsq_insert_vtime(struct task_struct *p, u64 dsq_id, u64 slice, u64 vtime,
				     u64 enq_flags) __weak __ksym;
extern bool scx_bpf_dsq_move_to_local(u64 dsq_id) __weak __ksym;
#define dsq_insert scx_bpf_dsq_insert
#define dsq_insert_vtime scx_bpf_dsq_insert_vtime
#define dsq_move_to_local scx_bpf_dsq_move_to_local
#else
extern void scx_bpf_dispatch(struct task_struct *p, u64 dsq_id, u64 slice, u64 enq_flags) __weak __ksym;
extern void scx_bpf_dispatch_vtime(struct task_struct *p, u64 dsq_id, u64 slice, u64 vtime,
				   u64 enq_flags) __weak __ksym;
extern bool scx_bpf_consume(u64 dsq_id) __weak __ksym;
#define dsq_insert scx_bpf_dispatch
#define dsq_insert_vtime scx_bpf_dispatch_vtime
#define dsq_move_to_local scx_bpf_consume
#endif

#if AUTOTUNE_SET_SLICE
extern void scx_bpf_task_set_slice(struct task_struct *p, u64 slice) __weak __ksym;
#endif

extern s32 scx_bpf_select_cpu_dfl(struct task_struct *p, s32 prev_cpu, u64 wake_flags,
				  bool *is_idle) __weak __ksym;
extern s32 scx_bpf_create_dsq(u64 dsq_id, s32 node) __weak __ksym;
extern s32 scx_bpf_task_cpu(const struct task_struct *p) __weak __ksym;
extern u32 scx_bpf_nr_cpu_ids(void) __weak __ksym;
extern s32 scx_bpf_pick_idle_cpu(const struct cpumask *cpus_allowed, u64 flags) __weak __ksym;
extern void scx_bpf_kick_cpu(s32 cpu, u64 flags) __weak __ksym;
extern int bpf_iter_scx_dsq_new(struct bpf_iter_scx_dsq *it, u64 dsq_id, u64 flags) __weak __ksym;
extern struct task_struct *bpf_iter_scx_dsq_next(struct bpf_iter_scx_dsq *it) __weak __ksym;
extern void bpf_iter_scx_dsq_destroy(struct bpf_iter_scx_dsq *it) __weak __ksym;

/* --- maps --------------------------------------------------------------------------------- */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AUTOTUNE_MAX_MEMBERS);
	__type(key, struct autotune_member);
	__type(value, u32);
} roles SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AUTOTUNE_MAX_ROLES);
	__type(key, u32);
	__type(value, struct autotune_weight);
} weights SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct autotune_exit);
} exit_info SEC(".maps");

struct task_ctx {
	u64 vtime;   /* our own vtime; the kernel's copy in p->scx.dsq_vtime is set on insert */
	u64 runtime; /* p->se.sum_exec_runtime when the task was last charged */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_ctx);
} task_ctxs SEC(".maps");

/* Each CPU's vtime clock. Racy updates from other CPUs only make it lag a little. */
u64 cpu_clock[MAX_CPUS];

/* --- helpers ------------------------------------------------------------------------------ */

static __always_inline bool before(u64 a, u64 b)
{
	return (s64)(a - b) < 0;
}

static __always_inline u64 *clock_of(s32 cpu)
{
	return &cpu_clock[(u32)cpu & (MAX_CPUS - 1)];
}

/* The user-space entry for @p's role, or NULL. */
static struct autotune_weight *role_weight(struct task_struct *p)
{
	struct autotune_member key = { .id = (u64)p->tgid, .kind = AUTOTUNE_MEMBER_TGID };
	u32 *role = bpf_map_lookup_elem(&roles, &key);

	if (!role) {
		key.id = BPF_CORE_READ(p, cgroups, dfl_cgrp, kn, id);
		key.kind = AUTOTUNE_MEMBER_CGROUP;
		role = bpf_map_lookup_elem(&roles, &key);
	}
	if (!role)
		return NULL;
	return bpf_map_lookup_elem(&weights, role);
}

static __always_inline u32 weight_of(struct task_struct *p, struct autotune_weight *w)
{
	u32 v = (w && w->weight) ? w->weight : p->scx.weight;

	if (v < AUTOTUNE_WEIGHT_MIN)
		return AUTOTUNE_WEIGHT_MIN;
	if (v > AUTOTUNE_WEIGHT_MAX)
		return AUTOTUNE_WEIGHT_MAX;
	return v;
}

static __always_inline u64 slice_of(struct autotune_weight *w)
{
	u32 us;

	if (!w || !w->slice_us)
		return AUTOTUNE_SLICE_NS;
	us = w->slice_us;
	if (us < AUTOTUNE_SLICE_MIN_US)
		us = AUTOTUNE_SLICE_MIN_US;
	if (us > AUTOTUNE_SLICE_MAX_US)
		us = AUTOTUNE_SLICE_MAX_US;
	return (u64)us * 1000;
}

static __always_inline void set_slice(struct task_struct *p, u64 slice)
{
#if AUTOTUNE_SET_SLICE
	scx_bpf_task_set_slice(p, slice);
#else
	p->scx.slice = slice;
#endif
}

static __always_inline struct task_ctx *ctx_of(struct task_struct *p)
{
	return bpf_task_storage_get(&task_ctxs, p, 0, 0);
}

/* Charge @p's vtime for the CPU time it used since it was last charged. */
static __always_inline void charge(struct task_struct *p, struct task_ctx *c, u32 weight)
{
	u64 now = p->se.sum_exec_runtime;

	c->vtime += (now - c->runtime) * AUTOTUNE_WEIGHT_DEFAULT / weight;
	c->runtime = now;
}

/* Keep @vtime within [clock - slice, clock + one run's charge]: see the header comment. */
static __always_inline u64 bounded(u64 vtime, u64 clock, u64 slice, u32 weight)
{
	u64 ahead = slice * AUTOTUNE_WEIGHT_DEFAULT / weight + slice;

	if (before(vtime, clock - slice))
		return clock - slice;
	if (before(clock + ahead, vtime))
		return clock + ahead;
	return vtime;
}

/* The vtime of the first task queued on @dsq; false when it is empty. */
static __always_inline bool head_vtime(u64 dsq, u64 *vtime)
{
	struct bpf_iter_scx_dsq it;
	struct task_struct *head = NULL;
	bool found = false;

	if (!bpf_iter_scx_dsq_new(&it, dsq, 0)) {
		head = bpf_iter_scx_dsq_next(&it);
		if (head) {
			*vtime = head->scx.dsq_vtime;
			found = true;
		}
	}
	bpf_iter_scx_dsq_destroy(&it);
	return found;
}

/* --- sched_ext_ops ------------------------------------------------------------------------ */

SEC("struct_ops/autotune_select_cpu")
s32 BPF_PROG(autotune_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	bool is_idle = false;
	s32 cpu = scx_bpf_select_cpu_dfl(p, prev_cpu, wake_flags, &is_idle);

	/* An idle CPU has nobody to weigh against: run there at once. */
	if (is_idle)
		dsq_insert(p, SCX_DSQ_LOCAL, slice_of(role_weight(p)), 0);
	return cpu;
}

SEC("struct_ops/autotune_enqueue")
void BPF_PROG(autotune_enqueue, struct task_struct *p, u64 enq_flags)
{
	struct autotune_weight *w = role_weight(p);
	s32 cpu = scx_bpf_task_cpu(p), idle;
	u64 slice = slice_of(w), clock = *clock_of(cpu), vtime = clock;
	struct task_ctx *c = ctx_of(p);

	if (c) {
		c->vtime = bounded(c->vtime, clock, slice, weight_of(p, w));
		vtime = c->vtime;
	}
	dsq_insert_vtime(p, (u64)cpu, slice, vtime, enq_flags);

	/* Wake an idle CPU that may run @p: its dispatch steals from this queue. */
	idle = scx_bpf_pick_idle_cpu(p->cpus_ptr, 0);
	if (idle >= 0)
		scx_bpf_kick_cpu(idle, SCX_KICK_IDLE);
}

SEC("struct_ops/autotune_dispatch")
void BPF_PROG(autotune_dispatch, s32 cpu, struct task_struct *prev)
{
	u32 nr = scx_bpf_nr_cpu_ids();
	s32 i;

	if (prev && (prev->scx.flags & SCX_TASK_QUEUED)) {
		struct autotune_weight *w = role_weight(prev);
		struct task_ctx *c = ctx_of(prev);
		u64 slice = slice_of(w), *clock = clock_of(cpu), head;

		if (c) {
			u32 weight = weight_of(prev, w);

			charge(prev, c, weight);
			c->vtime = bounded(c->vtime, *clock, slice, weight);
			/* Still the lowest vtime here: keep running, no queue round trip. */
			if (!head_vtime((u64)cpu, &head) || !before(head, c->vtime)) {
				set_slice(prev, slice);
				if (before(*clock, c->vtime))
					*clock = c->vtime;
				return;
			}
		}
	}
	if (dsq_move_to_local((u64)cpu))
		return;
	/* Nothing queued here: take work from the other CPUs' queues. */
	bpf_for(i, 0, nr)
	{
		if (i >= MAX_CPUS)
			break;
		if (i != cpu && dsq_move_to_local((u64)i))
			return;
	}
}

SEC("struct_ops/autotune_running")
void BPF_PROG(autotune_running, struct task_struct *p)
{
	struct autotune_weight *w = role_weight(p);
	struct task_ctx *c = ctx_of(p);
	u64 *clock = clock_of(scx_bpf_task_cpu(p));

	if (!c)
		return;
	/* Tasks sent straight to an idle CPU skipped enqueue: bound them here, so that one
	 * arriving with a far larger vtime cannot make this CPU's clock jump. */
	c->vtime = bounded(c->vtime, *clock, slice_of(w), weight_of(p, w));
	if (before(*clock, c->vtime))
		*clock = c->vtime;
}

SEC("struct_ops/autotune_stopping")
void BPF_PROG(autotune_stopping, struct task_struct *p, bool runnable)
{
	struct task_ctx *c = ctx_of(p);

	if (c)
		charge(p, c, weight_of(p, role_weight(p)));
}

SEC("struct_ops/autotune_enable")
void BPF_PROG(autotune_enable, struct task_struct *p)
{
	struct task_ctx *c = ctx_of(p);

	if (c) {
		c->vtime = *clock_of(scx_bpf_task_cpu(p));
		c->runtime = p->se.sum_exec_runtime;
	}
}

SEC("struct_ops/autotune_init_task")
s32 BPF_PROG(autotune_init_task, struct task_struct *p, struct scx_init_task_args *args)
{
	if (!bpf_task_storage_get(&task_ctxs, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE))
		return -12; /* -ENOMEM */
	return 0;
}

SEC("struct_ops.s/autotune_init")
s32 BPF_PROG(autotune_init)
{
	u32 nr = scx_bpf_nr_cpu_ids();
	s32 i, err;

	if (nr > MAX_CPUS)
		return -7; /* -E2BIG */
	bpf_for(i, 0, nr)
	{
		err = scx_bpf_create_dsq((u64)i, -1);
		if (err)
			return err;
	}
	return 0;
}

SEC("struct_ops/autotune_exit")
void BPF_PROG(autotune_exit, struct scx_exit_info *ei)
{
	u32 zero = 0;
	struct autotune_exit *out = bpf_map_lookup_elem(&exit_info, &zero);

	if (!out)
		return;
	out->kind = ei->kind;
	bpf_probe_read_kernel_str(out->reason, sizeof(out->reason), ei->reason);
}

SEC(".struct_ops.link")
struct sched_ext_ops autotune_ops = {
	.select_cpu = (void *)autotune_select_cpu,
	.enqueue = (void *)autotune_enqueue,
	.dispatch = (void *)autotune_dispatch,
	.running = (void *)autotune_running,
	.stopping = (void *)autotune_stopping,
	.enable = (void *)autotune_enable,
	.init_task = (void *)autotune_init_task,
	.init = (void *)autotune_init,
	.exit = (void *)autotune_exit,
	.name = "autotune",
};
