/*
 * pool.h — a fixed set of worker threads running submitted jobs, for the
 * hashing, signature and delta work that should use every core.
 */
#ifndef PS_POOL_H
#define PS_POOL_H

struct ps_pool;

/* A pool of N worker threads (at least 1), started as jobs come. */
struct ps_pool *ps_pool_new(int n);

/* Queue FN(ARG); some worker runs it soon. Never blocks for long. */
void ps_pool_submit(struct ps_pool *p, void (*fn)(void *), void *arg);

/* Wait until every job submitted so far has finished. */
void ps_pool_wait(struct ps_pool *p);

/* Jobs queued or running now. */
unsigned ps_pool_pending(struct ps_pool *p);

/* Wait for the jobs, stop the threads and free the pool. NULL is fine. */
void ps_pool_free(struct ps_pool *p);

/* Number of CPUs we may run on (at least 1). */
int ps_ncpu(void);

#endif
