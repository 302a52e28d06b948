/* Test-only work-around, loaded with LD_PRELOAD into `antfly standalone` (antfly-cli 0.2.5).
 *
 * On a machine that gives the process fewer than 6 CPUs (CI's 2-core runners; 4 fails too, 6 works),
 * standalone's embedded inference worker never becomes ready: about 60 s after start it logs
 * "standalone inference bridge failed operation=configure err=error.ResourceTemporarilyUnavailable"
 * and exits ("startup failed").  No option of 0.2.5 sets that worker's size or turns it off
 * (--process-memory-budget-mb, --storage-engine lite and ANTFLY_INFERENCE_URL were tried).  This
 * answers the CPU-count questions Zig's std.Thread.getCpuCount and glibc ask with ANTFLY_TEST_CPUS
 * (default 8); mediasearch does not use Antfly's inference at all.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cpus(void) {
    const char *wanted = getenv("ANTFLY_TEST_CPUS");
    int n = wanted ? atoi(wanted) : 8;
    return n > 0 && n <= 1024 ? n : 8;
}

int sched_getaffinity(pid_t pid, size_t size, cpu_set_t *set) {
    (void)pid;
    memset(set, 0, size);
    for (int i = 0; i < cpus(); i++) CPU_SET_S(i, size, set);
    return 0;
}

long sysconf(int name) {
    static long (*real)(int);
    if (name == _SC_NPROCESSORS_ONLN || name == _SC_NPROCESSORS_CONF) return cpus();
    if (!real) real = (long (*)(int))dlsym(RTLD_NEXT, "sysconf");
    return real(name);
}
