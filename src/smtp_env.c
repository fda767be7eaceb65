/* smtp_env.c - MAIL FROM and RCPT TO with their ESMTP parameters:
 * SIZE (RFC 1870), BODY=8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531) and DSN
 * (RFC 3461: RET, ENVID, NOTIFY, ORCPT).  A parameter goes out only when the
 * relay offers its extension. */
#include "config.h"
#include "session.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

/* RFC 3461 4: xtext, "+HH" for '+', '=', and anything outside 33..126. */
static void xtext(const char *in, char *out, size_t cap)
{
	size_t o = 0;

	for (; *in && o + 4 < cap; in++) {
		unsigned char ch = (unsigned char)*in;
		if (ch < 33 || ch > 126 || ch == '+' || ch == '=')
			o += (size_t)snprintf(out + o, cap - o, "+%02X", ch);
		else
			out[o++] = (char)ch;
	}
	out[o] = '\0';
}

static int non_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

static int any_utf8(const struct smtp_envelope *env)
{
	if (non_ascii(env->from))
		return 1;
	for (size_t i = 0; i < env->nrcpt; i++)
		if (non_ascii(env->rcpt[i]))
			return 1;
	return 0;
}

static int wants_dsn(const struct smtp_envelope *env)
{
	return env->dsn_notify || env->dsn_ret || env->dsn_envid;
}

/* DSN only where offered; asking is a wish, not a requirement (warn once). */
static int dsn_ok(struct smtp_session *s, const struct smtp_envelope *env)
{
	if (!wants_dsn(env))
		return 0;
	if (s->caps.flags & CAP_DSN)
		return 1;
	if (!s->dsn_warned)
		log_err("warning: %s does not offer DSN; delivery status notification "
			"options ignored", s->p->host);
	s->dsn_warned = 1;
	return 0;
}

/* An address that is not ASCII needs SMTPUTF8 (RFC 6531) or cannot go. */
static int check_utf8(struct smtp_session *s, const struct smtp_envelope *env)
{
	const char *bad = non_ascii(env->from) ? env->from : NULL;

	for (size_t i = 0; !bad && i < env->nrcpt; i++)
		if (non_ascii(env->rcpt[i]))
			bad = env->rcpt[i];
	if (!bad || (s->caps.flags & CAP_SMTPUTF8))
		return 0;
	s->e.io.r->phase = PHASE_MAIL;
	return result_fail(s->e.io.r, EX_DATAERR, "the address <%s> is not ASCII and %s does "
			   "not offer SMTPUTF8", bad, s->p->host);
}

int ss_send_mail(struct smtp_session *s, const struct smtp_envelope *env,
		 unsigned item, int binary)
{
	struct pending rec = { .phase = PHASE_MAIL, .item = item };
	char params[512] = "", tmp[300];
	size_t o = 0;
	int utf8 = any_utf8(env);

	if (check_utf8(s, env) < 0)
		return -1;
	if (env->binary && !binary) {
		s->e.io.r->phase = PHASE_MAIL;
		return result_fail(s->e.io.r, EX_DATAERR, "the message contains NUL bytes (or "
				   "was given as -BBINARYMIME) and %s does not %s", s->p->host,
				   s->no_bdat ? "take BDAT, which BINARYMIME needs" :
				   "offer BINARYMIME with CHUNKING");
	}
#define ADD(...) (o += (size_t)snprintf(params + o, sizeof params - o, __VA_ARGS__))
	if ((s->caps.flags & CAP_SIZE) && env->size > 0)
		ADD(" SIZE=%llu", env->size);
	if (binary)
		ADD(" BODY=BINARYMIME");
	else if ((env->eightbit || utf8) && (s->caps.flags & CAP_8BITMIME))
		ADD(" BODY=8BITMIME");
	else if (env->eightbit == 1)
		log_info("%s does not offer 8BITMIME; sending the 8-bit message as it is",
			 s->p->host);
	if (utf8)
		ADD(" SMTPUTF8");
	if (dsn_ok(s, env) && env->dsn_ret)
		ADD(" RET=%s", env->dsn_ret);
	if (dsn_ok(s, env) && env->dsn_envid) {
		xtext(env->dsn_envid, tmp, sizeof tmp);
		ADD(" ENVID=%s", tmp);
	}
#undef ADD
	if (o >= sizeof params)
		return result_fail(s->e.io.r, EX_USAGE, "MAIL parameters too long");
	return eng_sendf(&s->e, rec, "MAIL FROM:<%s>%s", env->from, params);
}

int ss_send_rcpt(struct smtp_session *s, const struct smtp_envelope *env, size_t i,
		 unsigned item)
{
	struct pending rec = { .phase = PHASE_RCPT, .item = item, .arg = (unsigned)i };
	char orcpt[700];

	if (!dsn_ok(s, env) || !env->dsn_notify)
		return eng_sendf(&s->e, rec, "RCPT TO:<%s>", env->rcpt[i]);
	/* ORCPT keeps the address as the sender wrote it for the DSN report.
	 * A non-ASCII one would need RFC 6533's utf-8-addr-xtext: leave it out. */
	if (non_ascii(env->rcpt[i]))
		return eng_sendf(&s->e, rec, "RCPT TO:<%s> NOTIFY=%s", env->rcpt[i],
				   env->dsn_notify);
	xtext(env->rcpt[i], orcpt, sizeof orcpt);
	return eng_sendf(&s->e, rec, "RCPT TO:<%s> NOTIFY=%s ORCPT=rfc822;%s", env->rcpt[i],
			   env->dsn_notify, orcpt);
}

/* ---- recipients' verdicts -------------------------------------------------- */

void ss_tally(struct rcpt_tally *t, const struct reply *rp, const char *rcpt)
{
	struct result one;
	size_t n = strlen(t->list);

	if (rp->code / 100 == 2) {
		t->accepted++;
		return;
	}
	t->refused++;
	result_clear(&one);
	result_reply(&one, t->phase ? t->phase : PHASE_RCPT, rp->code, rp->enh, rp->text);
	snprintf(one.arg, sizeof one.arg, "%s", rcpt);
	if (t->refused == 1 || (t->worst.code / 100 == 4 && one.code / 100 == 5))
		t->worst = one;
	snprintf(t->list + n, sizeof t->list - n, "%s<%.200s>: %d %.200s", n ? "; " : "",
		 rcpt, one.code, one.text);
}

int ss_tally_verdict(const struct rcpt_tally *t, int partial, struct result *r)
{
	if (t->refused && (t->accepted == 0 || !partial)) {
		*r = t->worst;
		return -1;
	}
	if (t->refused)
		log_err("partial delivery: %zu recipient(s) refused: %s", t->refused,
			t->list);
	return 0;
}
