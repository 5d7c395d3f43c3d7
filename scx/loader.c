// SPDX-License-Identifier: GPL-2.0
/* scx-autotune: load, drive and unload bpf/scx_autotune.bpf.c through libbpf.
 *
 *   scx-autotune load OBJ PINDIR           attach the scheduler; pin its link and maps in PINDIR
 *   scx-autotune maps OBJ PINDIR           create and pin only the maps (no sched_ext needed)
 *   scx-autotune weight PINDIR ROLE W [US] set a role's weight (1..10000, 100 = nice 0), slice
 *   scx-autotune member PINDIR tgid|cgroup ID ROLE   put a process or cgroup in a role
 *   scx-autotune show PINDIR               print the maps and the scheduler's exit reason
 *   scx-autotune unload PINDIR             remove the pins: the scheduler detaches
 *
 * Built statically by scx/build.sh so that the same binary runs in the test VM's initramfs.
 * A mistake ends with one line on stderr and exit status 2; a kernel refusal with status 1.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/types.h>

#include "scx_autotune.h"

static const char *const MAPS[] = { "roles", "weights", "exit_info" };
#define NMAPS (sizeof(MAPS) / sizeof(MAPS[0]))

static int fail(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("scx-autotune: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	/* libbpf's warnings explain a failed load; its debug chatter does not. */
	if (level == LIBBPF_DEBUG && !getenv("SCX_AUTOTUNE_DEBUG"))
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static void pin_path(char *out, const char *dir, const char *name)
{
	snprintf(out, PATH_MAX, "%s/%s", dir, name);
}

static int parse_u64(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 0);
	return (errno || !*s || *end || *s == '-' || *out > max) ? -1 : 0;
}

static int open_pinned(const char *dir, const char *name)
{
	char path[PATH_MAX];
	int fd;

	pin_path(path, dir, name);
	fd = bpf_obj_get(path);
	if (fd < 0)
		fail(2, "%s: %s (is the scheduler loaded?)", path, strerror(errno));
	return fd;
}

static void unpin_all(const char *dir)
{
	char path[PATH_MAX];
	size_t i;

	/* The link first: the scheduler detaches as soon as its last reference goes. */
	pin_path(path, dir, "link");
	unlink(path);
	for (i = 0; i < NMAPS; i++) {
		pin_path(path, dir, MAPS[i]);
		unlink(path);
	}
	rmdir(dir);
}

static int load(const char *obj_path, const char *dir, int attach)
{
	struct bpf_object *obj;
	struct bpf_map *ops;
	struct bpf_link *link = NULL;
	char path[PATH_MAX];
	size_t i;
	int err;

	if (attach && access("/sys/kernel/sched_ext", F_OK))
		return fail(2, "this kernel has no sched_ext (no /sys/kernel/sched_ext): it needs "
			       "Linux 6.12+ built with CONFIG_SCHED_CLASS_EXT=y");
	pin_path(path, dir, attach ? "link" : "weights");
	if (access(path, F_OK) == 0)
		return fail(2, "%s exists: unload first (scx-autotune unload %s)", path, dir);
	if (mkdir(dir, 0700) && errno != EEXIST)
		return fail(2, "cannot create %s: %s (is bpffs mounted at /sys/fs/bpf?)", dir,
			    strerror(errno));

	obj = bpf_object__open_file(obj_path, NULL);
	if (!obj)
		return fail(2, "cannot open %s: %s", obj_path, strerror(errno));
	ops = bpf_object__find_map_by_name(obj, "autotune_ops");
	if (!ops) {
		bpf_object__close(obj);
		return fail(2, "%s has no autotune_ops: not scx_autotune.bpf.o", obj_path);
	}
	if (!attach)
		bpf_map__set_autocreate(ops, false); /* its programs are then not loaded either */
	err = bpf_object__load(obj);
	if (err) {
		bpf_object__close(obj);
		rmdir(dir);
		return fail(1, "loading %s failed: %s", obj_path, strerror(-err));
	}
	for (i = 0; i < NMAPS; i++) {
		pin_path(path, dir, MAPS[i]);
		err = bpf_map__pin(bpf_object__find_map_by_name(obj, MAPS[i]), path);
		if (err)
			goto out;
	}
	if (attach) {
		link = bpf_map__attach_struct_ops(ops);
		if (!link) {
			err = -errno;
			goto out;
		}
		pin_path(path, dir, "link");
		err = bpf_link__pin(link, path);
	}
out:
	if (err) {
		fail(1, "%s: %s", path, strerror(-err));
		unpin_all(dir);
	}
	/* The pinned link keeps the scheduler attached after we exit. */
	if (link && !err)
		bpf_link__disconnect(link);
	bpf_link__destroy(link);
	bpf_object__close(obj);
	return err ? 1 : 0;
}

static int set_weight(const char *dir, int argc, char **argv)
{
	struct autotune_weight w = { 0 };
	unsigned long long role, weight, slice = 0;
	__u32 key;
	int fd, err;

	if (parse_u64(argv[0], AUTOTUNE_MAX_ROLES - 1, &role))
		return fail(2, "role %s: want 0..%d", argv[0], AUTOTUNE_MAX_ROLES - 1);
	if (parse_u64(argv[1], AUTOTUNE_WEIGHT_MAX, &weight) || weight < AUTOTUNE_WEIGHT_MIN)
		return fail(2, "weight %s: want %d..%d", argv[1], AUTOTUNE_WEIGHT_MIN,
			    AUTOTUNE_WEIGHT_MAX);
	if (argc > 2 && parse_u64(argv[2], AUTOTUNE_SLICE_MAX_US, &slice))
		return fail(2, "slice %s: want 0..%d us", argv[2], AUTOTUNE_SLICE_MAX_US);
	fd = open_pinned(dir, "weights");
	if (fd < 0)
		return 2;
	key = role;
	w.weight = weight;
	w.slice_us = slice;
	err = bpf_map_update_elem(fd, &key, &w, BPF_ANY);
	close(fd);
	return err ? fail(1, "updating weights: %s", strerror(errno)) : 0;
}

static int set_member(const char *dir, char **argv)
{
	struct autotune_member m = { 0 };
	unsigned long long id, role;
	__u32 value;
	int fd, err;

	if (!strcmp(argv[0], "tgid"))
		m.kind = AUTOTUNE_MEMBER_TGID;
	else if (!strcmp(argv[0], "cgroup"))
		m.kind = AUTOTUNE_MEMBER_CGROUP;
	else
		return fail(2, "member kind %s: want tgid or cgroup", argv[0]);
	if (parse_u64(argv[1], ULLONG_MAX, &id))
		return fail(2, "member id %s: want a number", argv[1]);
	if (parse_u64(argv[2], AUTOTUNE_MAX_ROLES - 1, &role))
		return fail(2, "role %s: want 0..%d", argv[2], AUTOTUNE_MAX_ROLES - 1);
	fd = open_pinned(dir, "roles");
	if (fd < 0)
		return 2;
	m.id = id;
	value = role;
	err = bpf_map_update_elem(fd, &m, &value, BPF_ANY);
	close(fd);
	return err ? fail(1, "updating roles: %s", strerror(errno)) : 0;
}

static int show(const char *dir)
{
	struct autotune_member m, *mp = NULL;
	struct autotune_weight w;
	struct autotune_exit ex;
	__u32 role, *rp = NULL, zero = 0;
	int fd;

	fd = open_pinned(dir, "weights");
	if (fd < 0)
		return 2;
	while (!bpf_map_get_next_key(fd, rp, &role)) {
		rp = &role;
		if (!bpf_map_lookup_elem(fd, &role, &w))
			printf("weight role=%u weight=%u slice_us=%u\n", role, w.weight, w.slice_us);
	}
	close(fd);
	fd = open_pinned(dir, "roles");
	if (fd < 0)
		return 2;
	while (!bpf_map_get_next_key(fd, mp, &m)) {
		mp = &m;
		if (!bpf_map_lookup_elem(fd, &m, &role))
			printf("member %s=%llu role=%u\n",
			       m.kind == AUTOTUNE_MEMBER_CGROUP ? "cgroup" : "tgid",
			       (unsigned long long)m.id, role);
	}
	close(fd);
	fd = open_pinned(dir, "exit_info");
	if (fd < 0)
		return 2;
	if (!bpf_map_lookup_elem(fd, &zero, &ex) && ex.kind)
		printf("exit kind=%lld reason=%.*s\n", (long long)ex.kind, (int)sizeof(ex.reason),
		       ex.reason);
	close(fd);
	return 0;
}

static int usage(void)
{
	return fail(2, "usage: scx-autotune load|maps OBJ PINDIR | weight PINDIR ROLE WEIGHT "
		       "[SLICE_US] | member PINDIR tgid|cgroup ID ROLE | show PINDIR | unload PINDIR");
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	libbpf_set_print(quiet);
	if (!strcmp(cmd, "load") && argc == 4)
		return load(argv[2], argv[3], 1);
	if (!strcmp(cmd, "maps") && argc == 4)
		return load(argv[2], argv[3], 0);
	if (!strcmp(cmd, "weight") && (argc == 5 || argc == 6))
		return set_weight(argv[2], argc - 3, argv + 3);
	if (!strcmp(cmd, "member") && argc == 6)
		return set_member(argv[2], argv + 3);
	if (!strcmp(cmd, "show") && argc == 3)
		return show(argv[2]);
	if (!strcmp(cmd, "unload") && argc == 3) {
		unpin_all(argv[2]);
		return 0;
	}
	return usage();
}
