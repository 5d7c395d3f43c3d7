// autotune doctor's probe: counts sched_process_fork events, so that the doctor can prove a
// tracepoint program compiles, loads, attaches and fires on this kernel.
BPF_ARRAY(forks, u64, 1);

TRACEPOINT_PROBE(sched, sched_process_fork)
{
    int zero = 0;
    u64 *n = forks.lookup(&zero);
    if (n)
        __sync_fetch_and_add(n, 1);
    return 0;
}
