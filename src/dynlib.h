/*
 * dynlib.h — libraries loaded when first used.
 *
 * libpq (a PostgreSQL state database) and libarchive (bundles) bring
 * about 35 more shared libraries with them (TLS, Kerberos, LDAP, SASL,
 * ICU, XML, C++): linked in, every start of patchsync paid about 6 ms
 * of CPU to map and relocate them, twice per push (console and server)
 * and once per server of a fan-out, though a push, a report and the
 * server role never call them. They are opened with dlopen instead, by
 * the file name configure found them under (`PS_SONAME_*`, from
 * pkg-config's link flags), the first time a caller needs them.
 */
#ifndef PS_DYNLIB_H
#define PS_DYNLIB_H

#include <stddef.h>

struct ps_dynsym {
	const char *name;
	void **slot;		/* where the function's address goes */
};

struct ps_dynlib {
	const char *soname;	/* e.g. "libpq.so.5" */
	const char *what;	/* what needs it, for the error message */
	const struct ps_dynsym *syms;
	size_t nsyms;
	int state;		/* 0 not tried, 1 loaded, -1 failed */
	char err[256];
};

/*
 * Load L once (any thread; later calls return the first outcome) and
 * fill every slot of its symbols. PS_OK, or PS_EUSAGE with the reason in
 * L->err ("cannot load libpq.so.5, needed for ...: ...") for the caller
 * to report.
 */
int ps_dynlib_need(struct ps_dynlib *l);

#endif
