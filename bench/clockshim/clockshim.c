/*
 * clockshim: an LD_PRELOAD library for sipp in sipd's benchmarks.
 *
 * sipp 3.6 reads CLOCK_MONOTONIC_COARSE (and CLOCK_REALTIME_COARSE), which
 * tick at the kernel's jiffy (4 ms on a HZ=250 kernel), so every response
 * time it records is a multiple of 4 ms. This shim maps the coarse clocks
 * to their precise counterparts; everything else passes through.
 *
 * Build: gcc -O2 -shared -fPIC -o clockshim.so clockshim.c -ldl
 * Use:   LD_PRELOAD=/path/to/clockshim.so sipp ...
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <time.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

static clock_gettime_fn next_clock_gettime;

static clockid_t precise(clockid_t id)
{
	switch (id) {
#ifdef CLOCK_MONOTONIC_COARSE
	case CLOCK_MONOTONIC_COARSE:
		return CLOCK_MONOTONIC;
#endif
#ifdef CLOCK_REALTIME_COARSE
	case CLOCK_REALTIME_COARSE:
		return CLOCK_REALTIME;
#endif
	default:
		return id;
	}
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
	if (!next_clock_gettime)
		next_clock_gettime = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
	return next_clock_gettime(precise(id), ts);
}
