/* fuzz_qenv.c - the queue envelope reader, qenv_parse, and its writer.
 *
 * Envelope files are input pushmail must not trust: anyone who can write
 * the queue (or, in the system mode, drop a file for the daemon) chooses
 * every byte.  Oracles:
 *   - an accepted envelope has a queue id of the one fixed shape: no '/',
 *     no "..", nothing a path could be made of (the traversal that made
 *     --queue-delete remove files outside the queue);
 *   - it has an account, a sender and at least one recipient, and no value
 *     holds a control byte;
 *   - qenv_format writes it (never refuses a parsed envelope), and parsing
 *     that text gives the same envelope, whose text is the same again. */
#include "config.h"
#include "fuzz.h"
#include "queue.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void check_value(const char *v)
{
	if (!v)
		return;
	for (const char *p = v; *p; p++)
		CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
}

static void check_accepted(const struct qenv *e)
{
	CHECK(queue_id_valid(e->id));
	CHECK(!strchr(e->id, '/') && !strstr(e->id, ".."));
	CHECK(e->account && e->from && e->nrcpt > 0);
	check_value(e->account);
	check_value(e->from);
	check_value(e->error);
	check_value(e->notify);
	check_value(e->ret);
	check_value(e->envid);
	for (size_t i = 0; i < e->nrcpt; i++) {
		CHECK(e->rcpt[i] && e->rcpt[i][0]);
		check_value(e->rcpt[i]);
	}
	CHECK(e->tries >= 0 && e->created >= 0 && e->next_try >= 0);
}

static void check_same(const struct qenv *a, const struct qenv *b)
{
	CHECK(strcmp(a->id, b->id) == 0);
	CHECK(same_str(a->account, b->account) && same_str(a->from, b->from));
	CHECK(a->nrcpt == b->nrcpt);
	for (size_t i = 0; i < a->nrcpt; i++)
		CHECK(strcmp(a->rcpt[i], b->rcpt[i]) == 0);
	CHECK(a->created == b->created && a->next_try == b->next_try);
	CHECK(a->tries == b->tries && a->size == b->size);
	CHECK(a->eightbit == b->eightbit && a->nul == b->nul && a->notice == b->notice);
	CHECK(strcmp(a->error, b->error) == 0);
	CHECK(same_str(a->notify, b->notify) && same_str(a->ret, b->ret));
	CHECK(same_str(a->envid, b->envid));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct qenv zero;
	struct qenv e, again;
	char *text, *text2;

	if (qenv_parse((const char *)data, size, &e) < 0) {
		CHECK(memcmp(&e, &zero, sizeof e) == 0);   /* nothing left allocated */
		return 0;
	}
	check_accepted(&e);
	text = qenv_format(&e);
	CHECK(text != NULL);
	CHECK(qenv_parse(text, strlen(text), &again) == 0);
	check_same(&e, &again);
	text2 = qenv_format(&again);
	CHECK(text2 && strcmp(text, text2) == 0);
	free(text);
	free(text2);
	qenv_free(&again);
	qenv_free(&e);
	CHECK(memcmp(&e, &zero, sizeof e) == 0);
	return 0;
}
