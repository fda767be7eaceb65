/* curl_dl.c - libcurl, loaded the first time OAuth2 needs HTTP (see
 * curl_dl.h). */
#include "config.h"
#include "curl_dl.h"

#include <dlfcn.h>
#include <string.h>

static struct curl_api api;
static int loaded;

/* dlsym returns void *; POSIX guarantees it converts to a function pointer */
static int sym(void *h, void *field, const char *name, const char **missing)
{
	void *f = dlsym(h, name);

	if (!f) {
		*missing = name;
		return -1;
	}
	memcpy(field, &f, sizeof f);
	return 0;
}

static int look_up(void *h, const char **missing)
{
	return sym(h, &api.global_init, "curl_global_init", missing) |
	       sym(h, &api.easy_init, "curl_easy_init", missing) |
	       sym(h, &api.easy_setopt, "curl_easy_setopt", missing) |
	       sym(h, &api.easy_perform, "curl_easy_perform", missing) |
	       sym(h, &api.easy_getinfo, "curl_easy_getinfo", missing) |
	       sym(h, &api.easy_cleanup, "curl_easy_cleanup", missing) |
	       sym(h, &api.easy_strerror, "curl_easy_strerror", missing) |
	       sym(h, &api.slist_append, "curl_slist_append", missing) |
	       sym(h, &api.slist_free_all, "curl_slist_free_all", missing);
}

const struct curl_api *curl_api(struct result *r)
{
	const char *missing = NULL;
	void *h;

	if (loaded)
		return &api;
	h = dlopen(CURL_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		result_fail(r, EX_UNAVAILABLE, "OAuth2 needs %s, which cannot be loaded: %s",
			    CURL_SONAME, dlerror());
		return NULL;
	}
	if (look_up(h, &missing) < 0) {
		result_fail(r, EX_UNAVAILABLE, "OAuth2: %s has no %s", CURL_SONAME, missing);
		dlclose(h);
		return NULL;
	}
	loaded = 1;
	return &api;
}
