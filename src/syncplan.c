/*
 * syncplan.c — the list of actions that brings a receiver's tree level with
 * the sender's, from the two sorted manifests.
 */
#include <stdlib.h>
#include <string.h>

#include "syncplan.h"

static void
add(struct ps_syncplan *p, size_t *cap, uint8_t kind, uint8_t ch,
    const struct ps_entry *src, const struct ps_entry *dst)
{
	if (p->n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		p->a = xreallocarray(p->a, *cap, sizeof(*p->a));
	}
	p->a[p->n].kind = kind;
	p->a[p->n].changes = ch;
	p->a[p->n].src = src;
	p->a[p->n].dst = dst;
	p->n++;
}

/* Is A below directory D (D a proper prefix followed by '/')? */
static int
below(const struct ps_entry *a, const struct ps_entry *d)
{
	return a->path_len > d->path_len &&
	    memcmp(a->path, d->path, d->path_len) == 0 &&
	    a->path[d->path_len] == '/';
}

static int
same_time(const struct ps_entry *a, const struct ps_entry *b)
{
	return a->mtime_sec == b->mtime_sec && a->mtime_nsec == b->mtime_nsec;
}

/* Order of the actions: by kind, deletes deepest first. */
static int
act_cmp(const void *x, const void *y)
{
	const struct ps_action *a = x, *b = y;
	const struct ps_entry *ea, *eb;

	if (a->kind != b->kind)
		return a->kind < b->kind ? -1 : 1;
	ea = a->src != NULL ? a->src : a->dst;
	eb = b->src != NULL ? b->src : b->dst;
	if (a->kind == PS_ACT_DELETE || a->kind == PS_ACT_DIRMETA)
		return -ps_path_cmp(ea->path, ea->path_len, eb->path,
		    eb->path_len);
	return ps_path_cmp(ea->path, ea->path_len, eb->path, eb->path_len);
}

/* Mark the directory of PATH (if any) in SRC as touched. */
static void
touch_parent(const struct ps_manifest *src, const struct ps_entry *e,
    unsigned char *touched)
{
	const char *slash = memrchr(e->path, '/', e->path_len);
	const struct ps_entry *d;

	if (slash == NULL)
		return;
	d = ps_manifest_find(src, e->path, (size_t)(slash - e->path));
	if (d != NULL && d->type == PS_FT_DIR)
		touched[d - src->e] = 1;
}

void
ps_syncplan_make(const struct ps_manifest *src,
    const struct ps_manifest *dst, const struct ps_plan_opts *o,
    struct ps_syncplan *p)
{
	unsigned char *touched = xcalloc(src->n + 1, 1);
	const struct ps_entry *s, *d, *gone = NULL;
	size_t i = 0, j = 0, cap = 0;
	int c;

	memset(p, 0, sizeof(*p));
	while (i < src->n || j < dst->n) {
		s = i < src->n ? &src->e[i] : NULL;
		d = j < dst->n ? &dst->e[j] : NULL;
		if (s == NULL)
			c = 1;
		else if (d == NULL)
			c = -1;
		else
			c = ps_path_cmp(s->path, s->path_len, d->path,
			    d->path_len);
		if (d != NULL && gone != NULL && below(d, gone) && c > 0 &&
		    !ps_manifest_unknown(src, d->path, d->path_len)) {
			/* Inside a receiver directory that goes: goes too. */
			add(p, &cap, PS_ACT_DELETE, 0, NULL, d);
			if (d->type == PS_FT_FILE)
				p->ndelete_files++;
			j++;
			continue;
		}
		if (c > 0 && ps_manifest_unknown(src, d->path, d->path_len)) {
			/* The sender could not read it: leave it alone. */
			j++;
			continue;
		}
		if (c > 0) {		/* only the receiver has it */
			if (o->delete) {
				add(p, &cap, PS_ACT_DELETE, 0, NULL, d);
				if (d->type == PS_FT_FILE)
					p->ndelete_files++;
				if (d->type == PS_FT_DIR)
					gone = d;
				/* Its parent's time changes: reset it. */
				touch_parent(src, d, touched);
			}
			j++;
			continue;
		}
		if (c < 0)
			d = NULL;	/* only the sender has it */
		if (d != NULL && d->type != s->type) {
			if (!o->delete) {
				p->nconflict++;
				i++;
				j++;
				continue;
			}
			add(p, &cap, PS_ACT_DELETE, 0, NULL, d);
			if (d->type == PS_FT_FILE)
				p->ndelete_files++;
			else
				gone = d;
			d = NULL;
		}
		if (s->type == PS_FT_DIR) {
			if (d == NULL) {
				add(p, &cap, PS_ACT_MKDIR, PS_CH_NEW, s, NULL);
				touched[i] = 1;
				touch_parent(src, s, touched);
			} else if (s->mode != d->mode || !same_time(s, d)) {
				touched[i] = 1;
			}
		} else if (d == NULL) {
			add(p, &cap, PS_ACT_SEND, PS_CH_NEW, s, NULL);
			p->nsend++;
			p->send_bytes += s->size;
			touch_parent(src, s, touched);
		} else {
			uint8_t ch = 0;

			if (s->size != d->size)
				ch |= PS_CH_SIZE;
			if (!same_time(s, d))
				ch |= PS_CH_TIME;
			if (s->mode != d->mode)
				ch |= PS_CH_PERMS;
			/*
			 * Both manifests hold content hashes (cached only
			 * while a file's identity is unchanged): a file
			 * changed behind our back with its size and time
			 * kept is still found.
			 */
			if (!ps_entry_same_content(s, d))
				ch |= PS_CH_CONTENT;
			if (ch & PS_CH_CONTENT) {
				add(p, &cap, PS_ACT_SEND, ch, s, d);
				p->nsend++;
				p->send_bytes += s->size;
				touch_parent(src, s, touched);
			} else if (ch & (PS_CH_TIME | PS_CH_PERMS)) {
				add(p, &cap, PS_ACT_META, ch, s, d);
			}
		}
		i++;
		if (c == 0)
			j++;
	}
	for (i = 0; i < src->n; i++)
		if (touched[i] && src->e[i].type == PS_FT_DIR)
			add(p, &cap, PS_ACT_DIRMETA, 0, &src->e[i], NULL);
	free(touched);
	if (p->n > 1)
		qsort(p->a, p->n, sizeof(*p->a), act_cmp);
}

void
ps_syncplan_free(struct ps_syncplan *p)
{
	free(p->a);
	memset(p, 0, sizeof(*p));
}

void
ps_itemize(const struct ps_action *a, char out[12])
{
	const struct ps_entry *e = a->src != NULL ? a->src : a->dst;
	char t = e->type == PS_FT_DIR ? 'd' : 'f';

	/* rsync 3.x: YXcstpoguax. */
	switch (a->kind) {
	case PS_ACT_DELETE:
		memcpy(out, "*deleting  ", 12);
		return;
	case PS_ACT_MKDIR:
		memcpy(out, "cd+++++++++", 12);
		return;
	case PS_ACT_SEND:
		if (a->changes & PS_CH_NEW) {
			memcpy(out, ">f+++++++++", 12);
			return;
		}
		memcpy(out, ">f.........", 12);
		break;
	default:
		memcpy(out, "...........", 12);
		out[1] = t;
		break;
	}
	if (a->changes & PS_CH_CONTENT)
		out[2] = 'c';
	if (a->changes & PS_CH_SIZE)
		out[3] = 's';
	if (a->changes & PS_CH_TIME)
		out[4] = 't';
	if (a->changes & PS_CH_PERMS)
		out[5] = 'p';
}
