/* What scx_autotune.bpf.c shares with user space (scx/loader.c, autotune/actuators/scx.py).
 *
 * Two pinned hash maps drive the scheduler's weights:
 *   roles:   struct autotune_member (a tgid or a cgroup v2 id)  -> __u32 role
 *   weights: __u32 role                                         -> struct autotune_weight
 * A role's weight changes with one update of `weights`; a process joins a role with one update of
 * `roles`. Tasks in neither map keep the kernel's own weight for their nice value.
 * Python packs these layouts by hand (struct module): change both together.
 */
#ifndef SCX_AUTOTUNE_H
#define SCX_AUTOTUNE_H

/* kind of an autotune_member */
#define AUTOTUNE_MEMBER_TGID 1
#define AUTOTUNE_MEMBER_CGROUP 2

/* sched_ext's weight scale: 100 is nice 0 (as cgroup v2 cpu.weight), 1..10000 */
#define AUTOTUNE_WEIGHT_DEFAULT 100
#define AUTOTUNE_WEIGHT_MIN 1
#define AUTOTUNE_WEIGHT_MAX 10000

/* a role's slice is clamped to this range; 0 means the scheduler's default slice */
#define AUTOTUNE_SLICE_MIN_US 100
#define AUTOTUNE_SLICE_MAX_US 100000

#define AUTOTUNE_MAX_ROLES 16
#define AUTOTUNE_MAX_MEMBERS 4096

struct autotune_member {
	__u64 id;   /* tgid, or cgroup v2 id (kernfs node id) */
	__u32 kind; /* AUTOTUNE_MEMBER_* */
	__u32 pad;  /* zero: hash keys compare every byte */
};

struct autotune_weight {
	__u32 weight;   /* AUTOTUNE_WEIGHT_MIN..MAX; 0 = the task's nice weight */
	__u32 slice_us; /* 0 = default slice */
};

/* Why the scheduler stopped (ops.exit), for user space to report after a watchdog ejection. */
struct autotune_exit {
	__s64 kind; /* enum scx_exit_kind; 0 while running */
	char reason[128];
};

#endif
