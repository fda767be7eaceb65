/* fuzz_message.c - msg_head_end and msg_head_process.
 *
 * Input: two option bytes, optionally a line with the envelope sender or
 * the -F name, then the message.
 *   byte 0: bit 0 -t, bits 1-2 Date policy, 3-4 Message-ID, 5-6 From,
 *           bit 7: the -F name is the next input line
 *   byte 1: bits 0-1 To policy, bits 2-4 envelope sender (table below;
 *           6 and 7: the next input line), bit 5 maildomain (local names
 *           in address fields qualified in place)
 * Oracles:
 *  - msg_head_end answers the same at every split point: fed a prefix with
 *    eof = 0 it says "need more" (-1) or gives the final answer;
 *  - the rewritten block is a header block that ends exactly at its end
 *    (no header line became body, no body line became header);
 *  - it holds no Bcc/Resent-Bcc field, and exactly one From when the From
 *    policy is "on" and a From can be made;
 *  - failure fills the result; -t recipients are unique and non-empty. */
#include "config.h"
#include "fuzz.h"
#include "message.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const senders[6] = {
	"sender@example.org", "", NULL, "bad\r\nBcc: x@example.org",
	"\"q u\"@example.org", "user@[127.0.0.1]",
};

/* Next input line (up to LF) as a NUL-terminated copy; advances *p. */
static char *take_line(const char **p, const char *end)
{
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));
	size_t n = (size_t)((nl ? nl : end) - *p);
	char *s = malloc(n + 1);

	CHECK(s);
	memcpy(s, *p, n);
	s[n] = '\0';
	*p = nl ? nl + 1 : end;
	return s;
}

static void check_split(const char *m, size_t len, long full)
{
	size_t step = len <= 512 ? 1 : len / 256;

	for (size_t k = 0; k <= len; k += step) {
		long r = msg_head_end(m, k, 0);
		CHECK(r == -1 || (r == full && (size_t)r <= k));
	}
	/* the points that matter most: around every line end */
	for (size_t k = 0; k < len && len > 512; k++) {
		if (m[k] != '\r' && m[k] != '\n')
			continue;
		for (size_t j = k; j <= k + 2 && j <= len; j++) {
			long r = msg_head_end(m, j, 0);
			CHECK(r == -1 || (r == full && (size_t)r <= j));
		}
	}
}

/* Counts fields named `name` (case-insensitive, WSP allowed before ':')
 * in a header block, with the line ends msg_head_end knows. */
static size_t count_fields(const char *t, size_t len, const char *name)
{
	size_t pos = 0, count = 0, n = strlen(name);

	while (pos < len && t[pos] != '\r' && t[pos] != '\n') {
		size_t e = pos;

		if (t[pos] != ' ' && t[pos] != '\t' && len - pos > n &&
		    strncasecmp(t + pos, name, n) == 0) {
			size_t j = pos + n;
			while (j < len && (t[j] == ' ' || t[j] == '\t'))
				j++;
			count += j < len && t[j] == ':';
		}
		while (e < len && t[e] != '\r' && t[e] != '\n')
			e++;
		if (e < len && t[e] == '\r' && e + 1 < len && t[e + 1] == '\n')
			e++;
		pos = e + 1;
	}
	return count;
}

static void check_head(const struct msg_head *h, const struct msg_opts *o)
{
	int eight = 0;

	CHECK(h->text && h->text[h->len] == '\0');
	CHECK(msg_head_end(h->text, h->len, 1) == (long)h->len);
	CHECK(count_fields(h->text, h->len, "Bcc") == 0);
	CHECK(count_fields(h->text, h->len, "Resent-Bcc") == 0);
	if (o->set_from == HDR_ON && o->env_from && *o->env_from &&
	    addr_valid_mailbox(o->env_from))
		CHECK(count_fields(h->text, h->len, "From") == 1);
	for (size_t i = 0; i < h->len; i++)
		eight |= (unsigned char)h->text[i] >= 0x80;
	CHECK(eight == h->has_8bit);
	for (size_t i = 0; i < h->rcpts.n; i++) {
		CHECK(h->rcpts.v[i].mailbox[0] != '\0');
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(h->rcpts.v[i].mailbox, h->rcpts.v[j].mailbox));
	}
	if (!o->extract)
		CHECK(h->rcpts.n == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data + 2, *end = (const char *)data + size;
	char *from_line = NULL, *name_line = NULL, *m;
	struct msg_opts o = { 0 };
	struct msg_head h;
	struct result r;
	size_t len;
	long full;
	int sel;

	if (size < 2)
		return 0;
	o.extract = data[0] & 1;
	o.set_date = (enum hdr_policy)(data[0] >> 1 & 3) % 3;
	o.set_msgid = (enum hdr_policy)(data[0] >> 3 & 3) % 3;
	o.set_from = (enum hdr_policy)(data[0] >> 5 & 3) % 3;
	o.set_to = (enum hdr_policy)(data[1] & 3) % 3;
	sel = data[1] >> 2 & 7;
	if (sel >= 6)
		o.env_from = from_line = take_line(&p, end);
	else
		o.env_from = senders[sel];
	o.full_name = (data[0] & 0x80) ? (name_line = take_line(&p, end)) : "Fuzz Er";
	o.domain = "example.net";
	o.now = 1700000000;
	if (data[1] & 0x20) {
		static const char *const locals[] = { "localhost", "vm", NULL };
		o.maildomain = "q.example";
		o.local_domains = locals;
	}

	/* exact-size copy of the message so over-reads are caught */
	len = (size_t)(end - p);
	m = malloc(len ? len : 1);
	CHECK(m);
	memcpy(m, p, len);

	full = msg_head_end(m, len, 1);
	CHECK(full >= 0 && (size_t)full <= len);
	check_split(m, len, full);

	result_clear(&r);
	if (msg_head_process(m, (size_t)full, &o, &h, &r) == 0) {
		check_head(&h, &o);
		msg_head_free(&h);
	} else {
		CHECK(r.exitcode != EX_OK && r.text[0]);
		CHECK(h.text == NULL && h.rcpts.n == 0);
	}
	free(m);
	free(from_line);
	free(name_line);
	return 0;
}
