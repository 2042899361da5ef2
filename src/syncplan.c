/*
 * syncplan.c — the list of actions that brings a receiver's tree level with
 * the sender's, from the two sorted manifests.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "syncplan.h"

/* A copy of E that the plan keeps until it is freed. */
static const struct ps_entry *
keep(struct ps_syncplan *p, const struct ps_entry *e)
{
	struct ps_entry *c;

	if (e == NULL)
		return NULL;
	if (p->nown == p->capown) {
		p->capown = p->capown ? p->capown * 2 : 64;
		p->own = xreallocarray(p->own, p->capown, sizeof(*p->own));
	}
	c = xmalloc(sizeof(*c));
	ps_entry_copy(c, e);
	p->own[p->nown++] = c;
	return c;
}

/* Add an action on copies of SRC and DST. */
static const struct ps_action *
add(struct ps_syncplan *p, uint8_t kind, uint8_t ch,
    const struct ps_entry *src, const struct ps_entry *dst)
{
	struct ps_action *a;

	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 64;
		p->a = xreallocarray(p->a, p->cap, sizeof(*p->a));
	}
	a = &p->a[p->n++];
	a->kind = kind;
	a->changes = ch;
	a->early = 0;
	a->src = keep(p, src);
	a->dst = keep(p, dst);
	return a;
}

/* Is path A below directory path D? */
static int
below(const char *a, size_t alen, const char *d, size_t dlen)
{
	return alen > dlen && memcmp(a, d, dlen) == 0 && a[dlen] == '/';
}

/*
 * Is the receiver's time B the sender's A, as the receiver's filesystem
 * keeps times? Linux cuts a time off below the filesystem's granularity
 * (100 ns on CIFS and NTFS, 1 us, 10 ms on exFAT, 1 s on ext4 with small
 * inodes or HFS+, 2 s on FAT): A set there comes back so, and would be
 * set again at every push. A time that differs otherwise is a change.
 */
static int
same_time(const struct ps_entry *a, const struct ps_entry *b)
{
	static const uint32_t gran[] = { 100, 1000, 10000000 };
	size_t i;

	if (a->mtime_sec == b->mtime_sec && a->mtime_nsec == b->mtime_nsec)
		return 1;
	if (b->mtime_nsec == 0 && (a->mtime_sec == b->mtime_sec ||
	    ((b->mtime_sec & 1) == 0 && a->mtime_sec == b->mtime_sec + 1)))
		return 1;	/* 1 s or 2 s */
	if (a->mtime_sec != b->mtime_sec)
		return 0;
	for (i = 0; i < sizeof(gran) / sizeof(gran[0]); i++)
		if (b->mtime_nsec == a->mtime_nsec - a->mtime_nsec % gran[i])
			return 1;
	return 0;
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

/*
 * The sender's directories around the merge's position: those whose
 * subtree it is in, outermost first, each with whether its mode and time
 * must be set at the end (a DIRMETA).
 */
struct dirs {
	struct ps_entry *e;
	unsigned char *touched;
	size_t n, cap;
};

/* Leave every directory PATH is not inside of. */
static void
dirs_leave(struct ps_syncplan *p, struct dirs *d, const char *path,
    size_t len)
{
	while (d->n > 0) {
		struct ps_entry *top = &d->e[d->n - 1];

		if (path != NULL && below(path, len, top->path, top->path_len))
			break;
		if (d->touched[d->n - 1])
			add(p, PS_ACT_DIRMETA, 0, top, NULL);
		ps_entry_free(top);
		d->n--;
	}
}

static void
dirs_enter(struct dirs *d, const struct ps_entry *e, int touched)
{
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 16;
		d->e = xreallocarray(d->e, d->cap, sizeof(*d->e));
		d->touched = xreallocarray(d->touched, d->cap, 1);
	}
	ps_entry_copy(&d->e[d->n], e);
	d->touched[d->n] = (unsigned char)touched;
	d->n++;
}

/* The parent of E, when the sender has it, changes: reset its time. */
static void
touch_parent(struct dirs *d, const struct ps_entry *e)
{
	const char *slash = memrchr(e->path, '/', e->path_len);
	size_t plen = slash != NULL ? (size_t)(slash - e->path) : 0;

	if (slash != NULL && d->n > 0 && d->e[d->n - 1].path_len == plen)
		d->touched[d->n - 1] = 1;
}

/* Offer the action just added to the early hook. */
static void
offer(struct ps_syncplan *p, const struct ps_plan_opts *o)
{
	if (o->early != NULL && o->early(o->early_arg, &p->a[p->n - 1]))
		p->a[p->n - 1].early = 1;
}

static int
unknown_path(const struct ps_manifest *u, const struct ps_entry *e)
{
	return u != NULL && ps_manifest_unknown(u, e->path, e->path_len);
}

void
ps_syncplan_stream(struct ps_eiter *src, const struct ps_manifest *unknown,
    struct ps_eiter *dst, const struct ps_plan_opts *o,
    struct ps_syncplan *p)
{
	const struct ps_entry *s, *d;
	struct dirs dirs = { 0 };
	char *gone = NULL;	/* a receiver directory being deleted */
	size_t gone_len = 0;
	/*
	 * A sender directory where the receiver has a file: nothing inside
	 * it goes early (the file must be deleted first, after the plan).
	 */
	char *late = NULL;
	size_t late_len = 0;
	/*
	 * A receiver file kept (no --delete) where the sender has a
	 * directory: nothing inside that directory can go.
	 */
	char *kept = NULL;
	size_t kept_len = 0;
	int c, early;

	memset(p, 0, sizeof(*p));
	s = src->next(src->arg);
	d = dst->next(dst->arg);
	while (s != NULL || d != NULL) {
		if (s == NULL)
			c = 1;
		else if (d == NULL)
			c = -1;
		else
			c = ps_path_cmp(s->path, s->path_len, d->path,
			    d->path_len);
		if (c <= 0)
			dirs_leave(p, &dirs, s->path, s->path_len);
		else
			dirs_leave(p, &dirs, d->path, d->path_len);
		if (c < 0 && kept != NULL &&
		    below(s->path, s->path_len, kept, kept_len)) {
			s = src->next(src->arg);
			continue;
		}
		if (c > 0 && gone != NULL &&
		    below(d->path, d->path_len, gone, gone_len) &&
		    !unknown_path(unknown, d)) {
			/* Inside a receiver directory that goes: goes too. */
			add(p, PS_ACT_DELETE, 0, NULL, d);
			if (d->type == PS_FT_FILE)
				p->ndelete_files++;
			d = dst->next(dst->arg);
			continue;
		}
		if (c > 0 && unknown_path(unknown, d)) {
			/* The sender could not read it: leave it alone. */
			d = dst->next(dst->arg);
			continue;
		}
		if (c > 0) {		/* only the receiver has it */
			if (o->delete) {
				add(p, PS_ACT_DELETE, 0, NULL, d);
				if (d->type == PS_FT_FILE)
					p->ndelete_files++;
				if (d->type == PS_FT_DIR) {
					free(gone);
					gone = xstrndup(d->path, d->path_len);
					gone_len = d->path_len;
				}
				/* Its parent's time changes: reset it. */
				touch_parent(&dirs, d);
			}
			d = dst->next(dst->arg);
			continue;
		}
		{
			const struct ps_entry *dd = c == 0 ? d : NULL;

			early = late == NULL ||
			    !below(s->path, s->path_len, late, late_len);
			if (dd != NULL && dd->type != s->type) {
				early = 0;
				if (s->type == PS_FT_DIR && (late == NULL ||
				    !below(s->path, s->path_len, late,
				    late_len))) {
					free(late);
					late = xstrndup(s->path, s->path_len);
					late_len = s->path_len;
				}
				if (!o->delete) {
					p->nconflict++;
					if (s->type == PS_FT_DIR) {
						p->nconflict_file++;
						free(kept);
						kept = xstrndup(s->path,
						    s->path_len);
						kept_len = s->path_len;
					}
					s = src->next(src->arg);
					d = dst->next(dst->arg);
					continue;
				}
				add(p, PS_ACT_DELETE, 0, NULL, dd);
				if (dd->type == PS_FT_FILE) {
					p->ndelete_files++;
				} else {
					free(gone);
					gone = xstrndup(dd->path,
					    dd->path_len);
					gone_len = dd->path_len;
				}
				dd = NULL;
			}
			if (s->type == PS_FT_DIR) {
				int touched = 0;

				if (dd == NULL) {
					add(p, PS_ACT_MKDIR, PS_CH_NEW, s,
					    NULL);
					if (early)
						offer(p, o);
					touched = 1;
					touch_parent(&dirs, s);
				} else if ((s->mode ^ dd->mode) &
				    PS_MODE_APPLIED || !same_time(s, dd)) {
					touched = 1;
				}
				dirs_enter(&dirs, s, touched);
			} else if (dd == NULL) {
				add(p, PS_ACT_SEND, PS_CH_NEW, s, NULL);
				if (early)
					offer(p, o);
				p->nsend++;
				p->send_bytes += s->size;
				touch_parent(&dirs, s);
			} else {
				uint8_t ch = 0;

				if (s->size != dd->size)
					ch |= PS_CH_SIZE;
				if (!same_time(s, dd))
					ch |= PS_CH_TIME;
				if ((s->mode ^ dd->mode) & PS_MODE_APPLIED)
					ch |= PS_CH_PERMS;
				/*
				 * Both manifests hold content hashes
				 * (cached only while a file's identity is
				 * unchanged): a file changed behind our
				 * back with its size and time kept is
				 * still found.
				 */
				if (!ps_entry_same_content(s, dd))
					ch |= PS_CH_CONTENT;
				if (ch & PS_CH_CONTENT) {
					add(p, PS_ACT_SEND, ch, s, dd);
					if (early)
						offer(p, o);
					p->nsend++;
					p->send_bytes += s->size;
					touch_parent(&dirs, s);
				} else if (ch & (PS_CH_TIME | PS_CH_PERMS)) {
					add(p, PS_ACT_META, ch, s, dd);
				}
			}
		}
		s = src->next(src->arg);
		if (c == 0)
			d = dst->next(dst->arg);
	}
	dirs_leave(p, &dirs, NULL, 0);
	free(dirs.e);
	free(dirs.touched);
	free(gone);
	free(late);
	free(kept);
	if (p->n > 1)
		qsort(p->a, p->n, sizeof(*p->a), act_cmp);
}

void
ps_syncplan_make(const struct ps_manifest *src,
    const struct ps_manifest *dst, const struct ps_plan_opts *o,
    struct ps_syncplan *p)
{
	struct ps_arr_pos ps, pd;
	struct ps_eiter s, d;

	ps_eiter_array(&s, &ps, src);
	ps_eiter_array(&d, &pd, dst);
	ps_syncplan_stream(&s, src, &d, o, p);
}

void
ps_syncplan_free(struct ps_syncplan *p)
{
	size_t i;

	for (i = 0; i < p->nown; i++) {
		ps_entry_free(p->own[i]);
		free(p->own[i]);
	}
	free(p->own);
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

char *
ps_conflicts_text(size_t ndir, size_t nfile, char *buf, size_t n)
{
	if (nfile == 0)
		snprintf(buf, n, "%zu directories stand where the console has "
		    "files", ndir);
	else if (ndir == 0)
		snprintf(buf, n, "%zu files stand where the console has "
		    "directories (nothing inside those is sent)", nfile);
	else
		snprintf(buf, n, "%zu directories stand where the console has "
		    "files, and %zu files where it has directories (nothing "
		    "inside those is sent)", ndir, nfile);
	return buf;
}
