/* fuzz_drop.c - drop_parse on a drop file's head (the set-gid helper copies
 * the caller's bytes verbatim, so the delivery service parses hostile input).
 *
 * Oracles (drop.h): an accepted head ends inside the input with "\n\n", its
 * values hold no control byte, at most DROP_RCPT_MAX recipients; formatting
 * it and parsing again gives the same fields; drop_ready_name never accepts
 * a name with '/' or a leading '.'. */
#include "config.h"
#include "fuzz.h"
#include "drop.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_value(const char *v)
{
	for (const char *p = v; p && *p; p++)
		CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
}

static int same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void round_trip(const struct drop_head *h)
{
	struct drop_head g;
	char err[200], *text;
	size_t len;

	text = drop_format(h, &len);
	if (!text)
		return;   /* a value too long for the writer: allowed */
	CHECK(drop_parse(text, len, &g, err, sizeof err) == 0);
	CHECK(g.len == len && g.nrcpt == h->nrcpt && g.extract == h->extract);
	for (size_t i = 0; i < h->nrcpt; i++)
		CHECK(strcmp(g.rcpt[i], h->rcpt[i]) == 0);
	CHECK(same(g.from, h->from) && same(g.name, h->name) &&
	      same(g.notify, h->notify) && same(g.ret, h->ret) && same(g.envid, h->envid));
	drop_head_free(&g);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct drop_head h;
	char err[200], name[DROP_ID_MAX + 8], id[DROP_ID_MAX];
	int rc = drop_parse((const char *)data, size, &h, err, sizeof err);

	if (rc == 0) {
		CHECK(h.len >= 2 && h.len <= size && h.len <= DROP_HEAD_MAX);
		CHECK(data[h.len - 1] == '\n' && data[h.len - 2] == '\n');
		CHECK(h.nrcpt <= DROP_RCPT_MAX);
		for (size_t i = 0; i < h.nrcpt; i++)
			check_value(h.rcpt[i]);
		check_value(h.from);
		check_value(h.name);
		round_trip(&h);
		drop_head_free(&h);
	} else if (rc < 0) {
		CHECK(err[0] != '\0');
	}
	/* the first bytes as a file name */
	size_t n = size < sizeof name - 1 ? size : sizeof name - 1;
	memcpy(name, data, n);
	name[n] = '\0';
	if (drop_ready_name(name, id))
		CHECK(!strchr(id, '/') && id[0] != '.' && strlen(id) < DROP_ID_MAX);
	return 0;
}
