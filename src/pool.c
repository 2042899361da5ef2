/*
 * pool.c — worker threads and a job queue.
 */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

#include "pool.h"
#include "ps.h"

struct job {
	void (*fn)(void *);
	void *arg;
	struct job *next;
};

struct ps_pool {
	pthread_mutex_t mu;
	pthread_cond_t work;	/* a job was queued, or stop */
	pthread_cond_t idle;	/* pending dropped to 0 */
	struct job *head, *tail;
	unsigned pending;	/* queued + running */
	unsigned queued;	/* not taken yet */
	unsigned nidle;		/* threads waiting for a job */
	int stop;
	int n, max;		/* threads started, at most */
	pthread_t *tid;
};

static void *
worker(void *arg)
{
	struct ps_pool *p = arg;
	struct job *j;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->head == NULL && !p->stop) {
			p->nidle++;
			pthread_cond_wait(&p->work, &p->mu);
			p->nidle--;
		}
		if (p->head == NULL)
			break;
		j = p->head;
		p->queued--;
		p->head = j->next;
		if (p->head == NULL)
			p->tail = NULL;
		pthread_mutex_unlock(&p->mu);
		j->fn(j->arg);
		free(j);
		pthread_mutex_lock(&p->mu);
		if (--p->pending == 0)
			pthread_cond_broadcast(&p->idle);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int
ps_ncpu(void)
{
	cpu_set_t set;
	long n;

	/* The CPUs we may run on (taskset, a container's cpuset)... */
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		n = CPU_COUNT(&set);
	else	/* ...else those online. */
		n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

struct ps_pool *
ps_pool_new(int n)
{
	struct ps_pool *p = xcalloc(1, sizeof(*p));

	if (n < 1)
		n = 1;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->idle, NULL);
	p->tid = xcalloc((size_t)n, sizeof(*p->tid));
	p->max = n;
	return p;
}

/*
 * Threads start as jobs come, while more wait than threads are idle
 * (mu held): a pool that gets no work (a server with nothing to send)
 * costs no thread.
 */
static void
grow(struct ps_pool *p)
{
	if (p->queued <= p->nidle || p->n >= p->max)
		return;
	if (pthread_create(&p->tid[p->n], NULL, worker, p) == 0)
		p->n++;
	else if (p->n == 0) {
		ps_err("cannot start worker threads");
		exit(PS_EPARTIAL);
	}
}

void
ps_pool_submit(struct ps_pool *p, void (*fn)(void *), void *arg)
{
	struct job *j = xmalloc(sizeof(*j));

	j->fn = fn;
	j->arg = arg;
	j->next = NULL;
	pthread_mutex_lock(&p->mu);
	if (p->tail != NULL)
		p->tail->next = j;
	else
		p->head = j;
	p->tail = j;
	p->pending++;
	p->queued++;
	grow(p);
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->mu);
}

void
ps_pool_wait(struct ps_pool *p)
{
	pthread_mutex_lock(&p->mu);
	while (p->pending > 0)
		pthread_cond_wait(&p->idle, &p->mu);
	pthread_mutex_unlock(&p->mu);
}

unsigned
ps_pool_pending(struct ps_pool *p)
{
	unsigned n;

	pthread_mutex_lock(&p->mu);
	n = p->pending;
	pthread_mutex_unlock(&p->mu);
	return n;
}

void
ps_pool_free(struct ps_pool *p)
{
	int i;

	if (p == NULL)
		return;
	ps_pool_wait(p);
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	for (i = 0; i < p->n; i++)
		pthread_join(p->tid[i], NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->idle);
	free(p->tid);
	free(p);
}
