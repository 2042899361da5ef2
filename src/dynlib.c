/*
 * dynlib.c — libraries loaded when first used (see dynlib.h).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "dynlib.h"
#include "ps.h"

static pthread_mutex_t dyn_mu = PTHREAD_MUTEX_INITIALIZER;

static void
load(struct ps_dynlib *l)
{
	const char *why;
	void *h, *p;
	size_t i;

	/* RTLD_LOCAL: its symbols are ours to look up, nobody else's. */
	if ((h = dlopen(l->soname, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		why = dlerror();
		snprintf(l->err, sizeof(l->err), "cannot load %s, needed for "
		    "%s: %s", l->soname, l->what, why != NULL ? why :
		    "unknown error");
		l->state = -1;
		return;
	}
	for (i = 0; i < l->nsyms; i++) {
		(void)dlerror();
		p = dlsym(h, l->syms[i].name);
		if (p == NULL) {
			snprintf(l->err, sizeof(l->err), "%s (needed for %s) "
			    "has no %s: a version too old", l->soname, l->what,
			    l->syms[i].name);
			l->state = -1;
			return;		/* h stays open: harmless, once */
		}
		*l->syms[i].slot = p;
	}
	l->state = 1;
}

int
ps_dynlib_need(struct ps_dynlib *l)
{
	int state;

	pthread_mutex_lock(&dyn_mu);
	if (l->state == 0)
		load(l);
	state = l->state;
	pthread_mutex_unlock(&dyn_mu);
	return state == 1 ? PS_OK : PS_EUSAGE;
}
