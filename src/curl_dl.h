/* curl_dl.h - libcurl, loaded the first time OAuth2 needs HTTP.
 *
 * Linked in, libcurl and the fifteen libraries it needs (Kerberos, LDAP,
 * SSH, RTMP, OpenSSL's libcrypto ...) cost every run of pushmail about
 * 10 million instructions of symbol lookups before main(), two thirds of a
 * whole small send (bench/run section 4), for a feature that only OAuth2
 * accounts use.  So it is opened with dlopen(3) by its soname, found by
 * configure, and only the functions oauth2.c calls are looked up.
 */
#ifndef PUSHMAIL_CURL_DL_H
#define PUSHMAIL_CURL_DL_H

#include <curl/curl.h>
#include "result.h"

struct curl_api {
	CURLcode (*global_init)(long flags);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *c, CURLoption opt, ...);
	CURLcode (*easy_perform)(CURL *c);
	CURLcode (*easy_getinfo)(CURL *c, CURLINFO info, ...);
	void (*easy_cleanup)(CURL *c);
	const char *(*easy_strerror)(CURLcode rc);
	struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
	void (*slist_free_all)(struct curl_slist *l);
};

/* The functions, loaded once.  NULL with r filled (EX_UNAVAILABLE) when the
 * library or one of them cannot be found: the install is broken. */
const struct curl_api *curl_api(struct result *r);

#endif
