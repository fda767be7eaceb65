/* submit.c - pushmail's main job: read a message on standard input, build its
 * envelope, and hand it to the relay, through the queue unless queue = never,
 * so that a message that cannot go now is kept (SPEC 5, 6). */
#include "config.h"
#include "address.h"
#include "aliases.h"
#include "body.h"
#include "compose.h"
#include "idn.h"
#include "log.h"
#include "message.h"
#include "progress.h"
#include "oauth2.h"
#include "modes.h"
#include "notice.h"
#include "runq.h"
#include "smtp.h"
#include "sysmode.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* One submission; freed by job_free. */
struct job {
	struct ctx *c;
	const struct submit_req *req;
	const struct account *acct;   /* NULL when there is no configuration */
	char *raw;                    /* header block + body bytes read with it */
	size_t rawlen, headlen;
	struct msg_head head;
	char *msgbuf;                 /* rewritten head + those body bytes */
	size_t msglen;
	char *from;                   /* envelope sender */
	struct addrlist rcpts;
	char ehlo[256];
	char notify[64], ret[8];      /* RFC 3461 values, "" when not asked for */
	const char *envid;
	struct aliases *aliases;      /* the account's aliases file, loaded lazily */
	int aliases_loaded;
	char host[256], fqdn[256];    /* this host's names, for local_domains */
	const char *local_domains[5]; /* "localhost", ..., NULL (addr_local_name) */
	char unqualified[256];        /* a local name that no maildomain qualified */
};

static const char *acct_str(const struct job *j, enum cfg_key k)
{
	return j->acct ? cfg_str(j->acct, k) : NULL;
}

/* user@localhost and user@<this host> are local users, as a bare name is:
 * aliases apply, then maildomain (a relay would refuse root@vm). */
static void find_local_domains(struct job *j)
{
	size_t n = 0;

	j->local_domains[n++] = "localhost";
	j->local_domains[n++] = "localhost.localdomain";
	if (gethostname(j->host, sizeof j->host - 1) == 0 && j->host[0])
		j->local_domains[n++] = j->host;
	relay_default_ehlo(j->fqdn, sizeof j->fqdn);
	if (strcasecmp(j->fqdn, j->host) != 0)
		j->local_domains[n++] = j->fqdn;
	j->local_domains[n] = NULL;
}

/* The local part of a local name, qualified with maildomain when the account
 * has one; without it the bare name is kept (the queue runner qualifies it
 * once maildomain is set) and remembered for the notice. */
static void qualify(struct job *j, const char *mbox, char *out, size_t cap)
{
	const char *md = acct_str(j, K_MAILDOMAIN);
	size_t n = addr_local_name(mbox, j->local_domains);

	if (!n) {
		snprintf(out, cap, "%s", mbox);
	} else if (md) {
		snprintf(out, cap, "%.*s@%s", (int)n, mbox, md);
	} else {
		snprintf(out, cap, "%.*s", (int)n, mbox);
		if (!j->unqualified[0])
			snprintf(j->unqualified, sizeof j->unqualified, "%s", mbox);
	}
}

static void job_free(struct job *j)
{
	msg_head_free(&j->head);
	addrlist_free(&j->rcpts);
	aliases_free(j->aliases);
	free(j->raw);
	free(j->msgbuf);
	free(j->from);
}

/* Sanitised: the address may come from a header. */
static int bad_address(struct result *r, int exitcode, const char *what,
		       const char *mbox)
{
	char shown[300];

	result_sanitise(shown, sizeof shown, mbox, strlen(mbox));
	return result_fail(r, exitcode, "invalid %s address '%s' (not a mailbox, "
			   "or its domain is not a valid internationalised name)",
			   what, shown);
}

/* Envelope sender: -f > --read-envelope-from > the submitter of a dropped
 * message (SPEC 9: its owner, user@maildomain) > account from > login name,
 * a local name qualified with maildomain.  "<>" is the null sender.  A sender that is not a mailbox once its domain
 * is in A-labels is the fault of where it came from: the command line
 * (EX_USAGE), the From header (EX_DATAERR) or the account (EX_CONFIG). */
static int choose_from(struct job *j, const char *header_from, struct result *r)
{
	const char *f = j->req->from;
	char buf[1024];
	int bad = EX_USAGE;

	/* allow_from_override = no: the account's sender, whatever the caller says */
	if (j->acct && acct_str(j, K_FROM) && !cfg_bool(j->acct, K_ALLOW_FROM_OVERRIDE, 1)) {
		f = acct_str(j, K_FROM);
		bad = EX_CONFIG;
	}
	if (!f && j->c->o.read_envelope_from && header_from) {
		f = header_from;
		bad = EX_DATAERR;
	}
	if (!f && j->req->user)
		f = j->req->user;   /* qualified below, like a login name */
	if (!f) {
		f = acct_str(j, K_FROM);
		bad = EX_CONFIG;
	}
	if (!f) {
		struct passwd *pw = getpwuid(getuid());
		f = pw ? pw->pw_name : "root";
	}
	if (strcmp(f, "<>") == 0)
		f = "";
	/* cronie's "-f alice", or root@vm: maildomain, as for recipients */
	qualify(j, f, buf, sizeof buf);
	f = buf;
	j->from = idn_envelope_address(f);
	return j->from ? 0 : bad_address(r, bad, "sender", f);
}

/* Each recipient once, in the A-label form that goes on the wire; `bad` is
 * the exit status when it cannot go (see choose_from). */
static int add_rcpt(struct job *j, const char *mbox, int bad, struct result *r)
{
	char buf[600];
	char *ace;
	int rc = 0;

	qualify(j, mbox, buf, sizeof buf);   /* cron's "root" -> root@maildomain */
	mbox = buf;
	ace = *mbox ? idn_envelope_address(mbox) : NULL;
	if (!ace)
		return bad_address(r, bad, "recipient", mbox);
	if (!addrlist_contains(&j->rcpts, ace) && addrlist_add(&j->rcpts, ace, NULL) < 0)
		rc = result_fail(r, EX_OSERR, "out of memory");
	free(ace);
	return rc;
}

static void skipped(void *arg, const struct aliases_skipped *sk)
{
	char entry[256];

	(void)arg;
	result_sanitise(entry, sizeof entry, sk->entry, strlen(sk->entry));
	log_err("warning: %s:%u: alias %s: skipping '%s': %s", sk->file, sk->line,
		sk->alias, entry, sk->why);
}

/* A bare name (cron's "root") goes through the aliases file when the account
 * names one; what comes out is qualified with maildomain by add_rcpt. */
static int add_local(struct job *j, const char *name, int bad, struct result *r)
{
	const char *path = acct_str(j, K_ALIASES);
	struct addrlist out = { 0 };
	int rc = 0;

	if (!path)
		return add_rcpt(j, name, bad, r);
	if (!j->aliases_loaded && aliases_load_file(&j->aliases, path, r) < 0)
		return -1;
	j->aliases_loaded = 1;
	if (aliases_expand(j->aliases, name, &out, skipped, NULL, r) < 0)
		rc = -1;
	for (size_t k = 0; rc == 0 && k < out.n; k++)
		rc = add_rcpt(j, out.v[k].mailbox, bad, r);
	addrlist_free(&out);
	return rc;
}

static int add_one(struct job *j, const char *mbox, int bad, struct result *r)
{
	size_t n = addr_local_name(mbox, j->local_domains);
	char local[600];

	if (!n)
		return add_rcpt(j, mbox, bad, r);
	snprintf(local, sizeof local, "%.*s", (int)n, mbox);   /* root@localhost */
	return add_local(j, local, bad, r);
}

static int add_list(struct job *j, const char *a, struct result *r)
{
	struct addrlist l = { 0 };
	char err[256];
	int rc = 0;

	if (addr_parse_list(a, strlen(a), &l, err, sizeof err) < 0)
		rc = result_fail(r, EX_USAGE, "bad recipient '%s': %s", a, err);
	for (size_t k = 0; rc == 0 && k < l.n; k++)
		rc = add_one(j, l.v[k].mailbox, EX_USAGE, r);
	addrlist_free(&l);
	return rc;
}

static int collect_rcpts(struct job *j, struct result *r)
{
	for (size_t i = 0; i < j->req->nrcpt; i++)
		if (add_list(j, j->req->rcpt[i], r) < 0)
			return -1;
	for (size_t k = 0; k < j->head.rcpts.n; k++)
		if (add_one(j, j->head.rcpts.v[k].mailbox, EX_DATAERR, r) < 0)
			return -1;
	if (j->rcpts.n == 0)
		return result_fail(r, EX_USAGE, "no recipients%s",
				   j->req->extract ? " (none in To, Cc or Bcc either)" :
				   " given (use -t to take them from the headers)");
	return 0;
}

/* NOTIFY: "never" alone, or a list of success, failure, delay. */
static int parse_notify(const char *v, char *out, size_t cap)
{
	static const char *const words[] = { "never", "success", "failure", "delay" };
	char buf[64], *save = NULL;
	size_t o = 0;

	if (snprintf(buf, sizeof buf, "%s", v) >= (int)sizeof buf)
		return -1;
	out[0] = '\0';
	for (char *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
		size_t k = 0;
		while (k < 4 && strcasecmp(w, words[k]) != 0)
			k++;
		if (k == 4 || (k == 0 && (o || strchr(v, ','))))
			return -1;
		o += (size_t)snprintf(out + o, cap - o, "%s%s", o ? "," : "", words[k]);
	}
	for (char *p = out; *p; p++)
		*p = (char)toupper((unsigned char)*p);
	return o ? 0 : -1;
}

/* -N, -R, -V (sendmail) over dsn_notify and dsn_return (the account). */
static int choose_dsn(struct job *j, struct result *r)
{
	const char *n = j->c->o.dsn_notify ? j->c->o.dsn_notify : acct_str(j, K_DSN_NOTIFY);
	const char *ret = j->c->o.dsn_ret ? j->c->o.dsn_ret : acct_str(j, K_DSN_RETURN);
	const char *id = j->c->o.dsn_envid;

	if (n && strcasecmp(n, "off") != 0 && parse_notify(n, j->notify, sizeof j->notify) < 0)
		return result_fail(r, EX_USAGE, "bad DSN notify '%s' (never, or a list of "
				   "success, failure, delay)", n);
	if (ret && (!strcasecmp(ret, "hdrs") || !strcasecmp(ret, "headers")))
		strcpy(j->ret, "HDRS");
	else if (ret && !strcasecmp(ret, "full"))
		strcpy(j->ret, "FULL");
	else if (ret)
		return result_fail(r, EX_USAGE, "bad DSN return '%s' (hdrs or full)", ret);
	for (const char *p = id; p && *p; p++)
		if ((unsigned char)*p < 33 || (unsigned char)*p > 126 || p - id >= 100)
			return result_fail(r, EX_USAGE, "bad DSN envelope id (-V): printable "
					   "ASCII, at most 100 characters");
	j->envid = id;
	return 0;
}

static void set_dsn(const struct job *j, struct smtp_envelope *env)
{
	env->dsn_notify = j->notify[0] ? j->notify : NULL;
	env->dsn_ret = j->ret[0] ? j->ret : NULL;
	env->dsn_envid = j->envid;
}

static enum hdr_policy policy(const struct job *j, enum cfg_key k)
{
	const char *v = acct_str(j, k);

	if (!v || strcmp(v, "auto") == 0)
		return HDR_AUTO;
	return strcmp(v, "on") == 0 ? HDR_ON : HDR_OFF;
}

static int select_account(struct job *j, const char *sel, struct result *r)
{
	if (j->c->cfg_found) {
		j->acct = cfg_select(&j->c->cfg, j->c->o.account, sel, r);
		if (!j->acct)
			return -1;
		j->c->acct = j->acct;
		j->c->host = j->c->o.host ? j->c->o.host : cfg_host(j->acct);
	}
	if (acct_str(j, K_DOMAIN))
		snprintf(j->ehlo, sizeof j->ehlo, "%s", acct_str(j, K_DOMAIN));
	else
		relay_default_ehlo(j->ehlo, sizeof j->ehlo);
	return 0;
}

/* Read the header block, pick the account (which may depend on the From
 * header), then rewrite the block for that account. */
static int prepare_message(struct job *j, struct result *r)
{
	struct msg_opts mo = { .extract = j->req->extract, .now = time(NULL),
			       .set_date = HDR_OFF, .set_msgid = HDR_OFF,
			       .set_from = HDR_OFF, .set_to = HDR_OFF };
	struct msg_head probe = { 0 };
	const char *sel;
	int rc;

	if (msg_read_head(j->req->infd, &j->raw, &j->rawlen, &j->headlen, r) < 0 ||
	    msg_head_process(j->raw, j->headlen, &mo, &probe, r) < 0)
		return -1;
	sel = j->req->from ? j->req->from :
	      j->c->o.read_envelope_from ? probe.from_mailbox : NULL;
	rc = select_account(j, sel, r) < 0 ? -1 : choose_from(j, probe.from_mailbox, r);
	msg_head_free(&probe);
	if (rc < 0)
		return -1;
	mo.env_from = j->from;
	mo.full_name = j->c->o.full_name;
	mo.domain = j->ehlo;
	mo.set_date = policy(j, K_SET_DATE_HEADER);
	mo.set_msgid = policy(j, K_SET_MSGID_HEADER);
	mo.set_from = policy(j, K_SET_FROM_HEADER);
	mo.set_to = policy(j, K_SET_TO_HEADER);
	mo.maildomain = acct_str(j, K_MAILDOMAIN);
	mo.local_domains = j->local_domains;
	return msg_head_process(j->raw, j->headlen, &mo, &j->head, r);
}

/* Rewritten head followed by the body bytes already read with it. */
static int build_msgbuf(struct job *j, struct result *r)
{
	size_t rest = j->rawlen - j->headlen;

	j->msglen = j->head.len + rest;
	j->msgbuf = malloc(j->msglen + 1);
	if (!j->msgbuf)
		return result_fail(r, EX_OSERR, "out of memory");
	memcpy(j->msgbuf, j->head.text, j->head.len);
	memcpy(j->msgbuf + j->head.len, j->raw + j->headlen, rest);
	return 0;
}

static size_t bare_lfs(const char *s, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		k += s[i] == '\n' && (i == 0 || s[i - 1] != '\r');
	return k;
}

/* What a direct send declares before MAIL.  A composed message's size is
 * counted in advance (its body is CRLF and 7-bit; the header lines get
 * their CRs).  A regular file is read ahead (pread: the offset stays) for
 * its size on the wire (SIZE=) and its 8-bit bytes.  A stream cannot be:
 * no SIZE=, and its body may be 8-bit. */
static void scan_ahead(const struct job *j, struct smtp_envelope *env)
{
	static char block[64 * 1024];
	struct body_scan z;
	struct stat st;
	int fd = j->req->infd;
	off_t pos = lseek(fd, 0, SEEK_CUR);
	ssize_t n;

	body_scan_init(&z);
	body_scan_feed(&z, j->msgbuf, j->msglen);
	if (j->req->size) {
		env->size = j->req->size >= j->rawlen ? j->msglen +
			    bare_lfs(j->msgbuf, j->msglen) + (j->req->size - j->rawlen) : 0;
		env->eightbit = z.eightbit;
		return;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || pos < 0) {
		env->size = 0;
		env->eightbit = z.eightbit ? 1 : SMTP_8BIT_UNKNOWN;
		return;
	}
	while ((n = pread(fd, block, sizeof block, pos)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {   /* the send will report it */
			env->size = 0;
			env->eightbit = SMTP_8BIT_UNKNOWN;
			return;
		}
		body_scan_feed(&z, block, (size_t)n);
		pos += n;
	}
	env->size = body_scan_wire(&z);
	env->eightbit = z.eightbit;
}

static const char **rcpt_vector(const struct job *j)
{
	const char **v = calloc(j->rcpts.n + 1, sizeof *v);

	for (size_t i = 0; v && i < j->rcpts.n; i++)
		v[i] = j->rcpts.v[i].mailbox;
	return v;
}

/* ---- delivery ------------------------------------------------------------------ */

static void log_direct(const struct job *j, const struct relay *rl,
		       const char *detail, int exitcode, unsigned long long size)
{
	static const char *const tls[] = { "off", "starttls", "implicit" };
	struct log_record lr = {
		.account = j->acct->name, .host = rl->p.host, .tls = tls[rl->p.tls % 3],
		.tls_version = rl->ti.version, .cipher = rl->ti.cipher,
		.auth = rl->auth_used, .facility = acct_str(j, K_LOG_FACILITY),
		.from = j->from, .nrcpt = j->rcpts.n,
		.rcpt = j->rcpts.n ? j->rcpts.v[0].mailbox : NULL, .size = size,
		.status = exitcode ? "failed" : "sent", .detail = detail,
		.exitcode = exitcode,
	};

	log_delivery(acct_str(j, K_LOG), &lr);
}

/* -BBINARYMIME: the caller's word that the body is binary (RFC 3030).
 * (-B8BITMIME is not trusted: Debian cron passes it for every message, and
 * SPEC 4 declares BODY=8BITMIME only for bytes actually seen.) */
static int body_type_is(const struct job *j, const char *type)
{
	const char *b = j->c->o.body_type;

	return b && strcasecmp(b, type) == 0;
}

/* ---- the relay session (kept between -bs messages) ------------------------------ */

void ctx_drop_session(struct ctx *c)
{
	smtp_close(c->kept_ss);
	if (c->kept_rl) {
		relay_free(c->kept_rl);
		free(c->kept_rl);
	}
	c->kept_ss = NULL;
	c->kept_rl = NULL;
}

/* The relay for j: the kept one when it serves j's account and its session
 * is still good, else a new one (on the heap under -bs, so that its session
 * can be kept: the session points into it).  NULL with r filled. */
static struct relay *job_relay(struct job *j, struct relay *local, struct result *r)
{
	struct ctx *c = j->c;
	struct relay_overrides ov;
	struct relay *rl = local;

	if (c->kept_ss && c->kept_rl->acct == j->acct && smtp_fresh(c->kept_ss))
		return c->kept_rl;
	ctx_drop_session(c);
	if (c->keep_session && !(rl = malloc(sizeof *rl))) {
		result_fail(r, EX_OSERR, "out of memory");
		return NULL;
	}
	ctx_overrides(c, &ov);
	if (relay_init(rl, j->acct, &ov, r) == 0)
		return rl;
	if (rl != local)
		free(rl);
	return NULL;
}

/* A session on rl: the kept one, or a new one (AUTH PLAIN rides with the
 * first message, RFC 4954 4: see try_now).  NULL with r filled. */
static struct smtp_session *job_session(struct job *j, struct relay *rl, struct result *r)
{
	if (rl == j->c->kept_rl)
		return j->c->kept_ss;
	rl->p.pipeline_auth = 1;
	return relay_auth(rl, r) == 0 ? smtp_open(&rl->p, r) : NULL;
}

/* After the message: under -bs a good session is kept for the next one;
 * otherwise it is closed and rl freed. */
static void job_relay_done(struct job *j, struct relay *rl, struct relay *local,
			   struct smtp_session *ss)
{
	struct ctx *c = j->c;

	if (rl == c->kept_rl) {
		if (!smtp_usable(ss))
			ctx_drop_session(c);
		return;
	}
	if (c->keep_session && ss && smtp_usable(ss)) {
		c->kept_rl = rl;
		c->kept_ss = ss;
		return;
	}
	smtp_close(ss);
	relay_free(rl);
	if (rl != local)
		free(rl);
}

/* queue = never (or --no-queue): stream stdin straight to the relay. */
static int send_direct(struct job *j, const char **rcpt, struct result *r)
{
	struct smtp_envelope env = { .from = j->from, .rcpt = rcpt,
				     .nrcpt = j->rcpts.n,
				     .binary = body_type_is(j, "BINARYMIME") };
	struct smtp_message m = { .head = j->msgbuf, .headlen = j->msglen,
				  .fd = j->req->infd };
	struct smtp_outcome out = { 0 };
	struct smtp_session *ss;
	struct relay local, *rl;
	int rc = -1;

	set_dsn(j, &env);
	scan_ahead(j, &env);
	m.size = env.size;   /* the progress line's total */

	if (!(rl = job_relay(j, &local, r)))
		return -1;
	if ((ss = job_session(j, rl, r)))
		rc = smtp_transaction(ss, &env, &m, !j->c->keep_session, &out, r);
	log_direct(j, rl, rc == 0 ? out.final_reply : r->text, r->exitcode, out.bytes);
	job_relay_done(j, rl, &local, ss);
	return rc;
}

static void fill_qenv(struct job *j, struct qenv *qe, const char **rcpt)
{
	memset(qe, 0, sizeof *qe);
	if (j->req->queue_id)
		snprintf(qe->id, sizeof qe->id, "%s", j->req->queue_id);
	qe->account = (char *)(j->acct ? j->acct->name : "");
	qe->from = j->from;
	qe->rcpt = (char **)rcpt;
	qe->nrcpt = j->rcpts.n;
	qe->notify = j->notify[0] ? j->notify : NULL;
	qe->ret = j->ret[0] ? j->ret : NULL;
	qe->envid = (char *)j->envid;
}

/* Without maildomain a local name would go to the relay bare (RCPT TO:<root>,
 * MAIL FROM:<root>), which providers refuse: a configuration problem, which
 * SPEC 6 treats as temporary, so the message waits for the fix. */
static int maildomain_missing(const struct job *j, struct result *r)
{
	return result_fail(r, EX_CONFIG, "<%s> has no domain and account '%s' has no "
			   "maildomain: set 'maildomain = your.domain' (see "
			   "pushmail.conf(5))", j->unqualified, j->acct->name);
}

/* Try the spooled message now on relay rl (already checked); the queue
 * records the outcome. */
static enum runq_outcome try_now(struct job *j, struct relay *rl, struct queue *q,
				 struct qentry *e, struct smtp_session **used,
				 struct result *r)
{
	struct runq_policy pol;
	struct smtp_session *ss = NULL;
	enum runq_outcome oc;
	int open_failed;
	time_t due;

	runq_policy_of(j->acct, &pol);
	if (j->unqualified[0]) {
		maildomain_missing(j, r);
		return runq_record_for(q, e, j->acct, &pol, r);
	}
	if (!runq_rate_take(q, j->acct, &due))   /* kept, not refused */
		return runq_hold(q, e, j->acct, due, r);
	/* One message: AUTH rides with it (RFC 4954 4).  Queue runs do not
	 * pipeline AUTH: were it refused by a relay that takes mail from
	 * anyone, each retry would deliver the message again. */
	ss = job_session(j, rl, r);
	open_failed = !ss;
	oc = ss ? runq_attempt(q, e, ss, j->acct, &pol, r) :
		  runq_record_for(q, e, j->acct, &pol, r);
	if (ss && oc != RUNQ_DELIVERED && r->phase == PHASE_AUTH)
		open_failed = 1;   /* the pipelined AUTH's verdict */
	if (open_failed || oc == RUNQ_DELIVERED)   /* -bp's health line, failover */
		runq_note_relay(q, j->acct, open_failed ? r : NULL);
	*used = ss;
	return oc;
}

/* The account's own relay could not take the message now: its fallbacks
 * may, right away (the queue run's failover, for this one message; the
 * relay that just failed is remembered, so it is tried last).  e is
 * released for the run and locked again unless it was delivered; r is the
 * failure to report when it was not. */
static enum runq_outcome fail_over(struct job *j, struct queue *q, struct qentry *e,
				   int always, struct result *r)
{
	char id[QUEUE_ID_MAX];
	struct relay_overrides ov;
	struct runq_opts o = { .cfg = &j->c->cfg, .ov = &ov, .only_id = id, .force = 1,
			       .no_failure_notice = !always };
	struct runq_stats st;
	struct result rr;

	char why[RESULT_TEXT_MAX + 300];

	result_describe(r, why, sizeof why);
	log_err("relay '%s' (%s): %s; trying its fallback relays", j->acct->name,
		j->c->host ? j->c->host : "", why);
	snprintf(id, sizeof id, "%s", e->env.id);
	queue_release(e);
	ctx_overrides(j->c, &ov);
	result_clear(&rr);
	if (runq_flush(q, &o, &st, &rr) == 0 && st.delivered == 1) {
		snprintf(e->env.id, sizeof e->env.id, "%s", id);
		return RUNQ_DELIVERED;
	}
	if (queue_lock(q, id, st.failed ? 1 : 0, e, &rr) != 0)
		snprintf(e->env.id, sizeof e->env.id, "%s", id);
	if (!st.failed)
		return RUNQ_DEFERRED;
	result_clear(r);
	result_fail(r, st.fail_exit, "%s", e->env.error);
	return RUNQ_FAILED;
}

/* A notice queued by this submission goes now, on its own connection (it
 * waits in the queue when it cannot). */
static void send_notice(struct job *j, struct queue *q, const char *nid)
{
	struct relay_overrides ov;
	struct runq_opts o = { .cfg = &j->c->cfg, .ov = &ov, .only_id = nid, .force = 1 };
	struct runq_stats st;
	struct result ignored;

	ctx_overrides(j->c, &ov);
	result_clear(&ignored);
	runq_flush(q, &o, &st, &ignored);
}

/* After a success, whatever else this account has waiting goes too. */
static void flush_account(struct job *j, struct queue *q)
{
	struct relay_overrides ov;
	struct runq_opts o = { .cfg = &j->c->cfg, .ov = &ov,
			       .only_account = j->acct->name };
	struct runq_stats st;
	struct result ignored;

	ctx_overrides(j->c, &ov);
	result_clear(&ignored);
	runq_flush(q, &o, &st, &ignored);
	if (st.delivered)
		log_info("also delivered %zu queued message(s)", st.delivered);
}

static void notice_queued(const struct queue *q, const struct qentry *e,
			  const struct result *r)
{
	char why[RESULT_TEXT_MAX + 300];

	result_describe(r, why, sizeof why);
	log_err("queued as %s (%s); 'pushmail -q' retries it, 'mailq' lists the queue (%s)",
		e->env.id, why, q->dir);
}

/* Say what happened to a spooled message; -1 when the caller must hear a
 * failure (a permanent one, unless queue = always promised "queued"). */
static int tell(struct job *j, struct queue *q, struct qentry *e,
		enum runq_outcome oc, int always, struct result *r)
{
	char why[RESULT_TEXT_MAX + 300];

	if (oc == RUNQ_DELIVERED)
		return 0;
	if (oc == RUNQ_DEFERRED) {
		notice_queued(q, e, r);
		/* the message waits, but the user has to act: say so with 77 */
		if (oauth2_needs_login(r))
			return -1;
		result_clear(r);
		return 0;
	}
	if (!always) {
		log_info("a copy is kept in %s/failed as %s", q->dir, e->env.id);
		return -1;
	}
	result_describe(r, why, sizeof why);
	log_err("%s: failed permanently: account '%s' (%s): %s; kept in %s/failed",
		e->env.id, j->acct->name, j->c->host ? j->c->host : "", why, q->dir);
	result_clear(r);
	return 0;
}

static int send_queued(struct job *j, const char **rcpt, int always, struct result *r)
{
	struct relay local, *rl = NULL;
	struct smtp_session *ss = NULL;
	struct queue q;
	struct qentry e;
	struct qenv qe;
	enum runq_outcome oc = RUNQ_DEFERRED;
	char hint[512], nid[QUEUE_ID_MAX];
	int rc, notice = 0;

	/* Bad --tls/--timeout values are the caller's mistake: nothing is spooled. */
	if (j->acct && !(rl = job_relay(j, &local, r)))
		return -1;
	fill_qenv(j, &qe, rcpt);
	if (ctx_open_queue(j->c, &q, r) < 0) {
		if (rl)
			job_relay_done(j, rl, &local, NULL);
		return -1;
	}
	if (queue_add(&q, &qe, j->msgbuf, j->msglen, j->req->infd, &e, r) < 0) {
		queue_close(&q);
		if (rl)
			job_relay_done(j, rl, &local, NULL);
		return -1;
	}
	if (j->req->note)
		snprintf(j->req->note, j->req->notecap, "queued as %s", e.env.id);
	if (j->req->spool_only) {
		rc = 0;   /* the delivery service's own queue run sends it */
	} else if (!j->acct && j->c->cfg_error[0]) {
		log_err("%s; the message was queued as %s in %s. Fix the configuration, "
			"then run 'pushmail -q' to send it.", j->c->cfg_error,
			e.env.id, q.dir);
		rc = 0;
	} else if (!j->acct) {
		ctx_config_hint(hint, sizeof hint);
		log_err("no relay is configured, so the message was queued as %s in %s. "
			"Create %s (see pushmail.conf(5)), then run 'pushmail -q' to send it.",
			e.env.id, q.dir, hint);
		rc = 0;
	} else {
		oc = try_now(j, rl, &q, &e, &ss, r);
		if (oc == RUNQ_DEFERRED && cfg_str(j->acct, K_FALLBACK))
			oc = fail_over(j, &q, &e, always, r);
		/* queue = always promised "queued": a failure is mailed too */
		if (oc == RUNQ_FAILED && always && e.lockfd >= 0 &&
		    notice_failed(&q, &e, j->acct, r, runq_is_temporary(r), nid) == 1)
			notice = 1;
		rc = tell(j, &q, &e, oc, always, r);
	}
	if (rl)
		job_relay_done(j, rl, &local, ss);
	queue_release(&e);
	if (oc == RUNQ_DELIVERED)
		flush_account(j, &q);
	if (notice)
		send_notice(j, &q, nid);
	queue_close(&q);
	return rc;
}

/* -bv: where each recipient would go after aliases and maildomain.  Postfix
 * mails a report instead; a relay client can only say what it would send. */
static int verify_report(const struct job *j)
{
	for (size_t i = 0; i < j->rcpts.n; i++)
		if (j->acct)
			printf("<%s>: would be sent through account '%s' (%s)\n",
			       j->rcpts.v[i].mailbox, j->acct->name,
			       j->c->host ? j->c->host : "?");
		else
			printf("<%s>: would be queued (no relay is configured)\n",
			       j->rcpts.v[i].mailbox);
	return 0;
}

/* queue = never with a rate_limit: a message over the quota is queued
 * (with the usual notice) rather than refused; one under it takes its
 * place in the window here. */
static int over_quota(struct job *j)
{
	struct queue q;
	struct result ignored;
	long n, per;
	time_t due;
	int full;

	if (!cfg_rate(j->acct, &n, &per))
		return 0;
	result_clear(&ignored);
	if (ctx_open_queue(j->c, &q, &ignored) < 0)
		return 0;
	full = !runq_rate_take(&q, j->acct, &due);
	queue_close(&q);
	return full;
}

static int deliver(struct job *j, struct result *r)
{
	const char **rcpt = rcpt_vector(j);
	const char *mode = acct_str(j, K_QUEUE);
	int rc;

	if (!rcpt)
		return result_fail(r, EX_OSERR, "out of memory");
	if (!j->acct && j->c->o.no_queue && !j->c->o.dry_run) {
		free(rcpt);
		return ctx_load_config(j->c, 1, r);   /* says how to configure one */
	}
	if (j->unqualified[0] && j->acct && (j->c->o.verify || j->c->o.dry_run)) {
		struct result why;
		maildomain_missing(j, &why);
		log_err("warning: %s", why.text);
	}
	if (j->c->o.verify) {
		rc = verify_report(j);
	} else if (j->c->o.dry_run) {
		struct smtp_envelope env = { .from = j->from, .rcpt = rcpt,
					     .nrcpt = j->rcpts.n };
		struct smtp_message m = { .head = j->msgbuf, .headlen = j->msglen,
					  .fd = j->req->infd };
		rc = smtp_dry_run(stdout, &env, &m, r);
	} else if (j->acct && !j->req->spool_only &&
		   (j->c->o.no_queue ||
		    (mode && !strcmp(mode, "never") && !over_quota(j)))) {
		rc = j->unqualified[0] ? maildomain_missing(j, r) : send_direct(j, rcpt, r);
	} else {
		rc = send_queued(j, rcpt, mode && !strcmp(mode, "always"), r);
	}
	free(rcpt);
	return rc;
}

/* SPEC 9: a caller with no configuration of its own (or a broken one) that
 * may not read the system's hands the message to the delivery service. */
static int use_drop(const struct ctx *c, const struct submit_req *req)
{
	return !c->cfg_found && !c->o.dry_run && !c->o.verify && !c->o.no_queue &&
	       !req->spool_only && geteuid() != 0 && sysmode_available();
}

static int drop_message(struct ctx *c, const struct submit_req *req, struct result *r)
{
	if (req->nrcpt == 0 && !req->extract)
		return result_fail(r, EX_USAGE, "no recipients given (use -t to take "
				   "them from the headers)");
	if (c->cfg_error[0])
		log_err("%s; the message goes to the system's delivery service instead",
			c->cfg_error);
	return sysmode_drop(c, req, r);
}

int submit(struct ctx *c, const struct submit_req *req, struct result *r)
{
	struct job j = { .c = c, .req = req };
	int rc;

	if (use_drop(c, req))
		return drop_message(c, req, r);
	find_local_domains(&j);
	rc = prepare_message(&j, r) < 0 || collect_rcpts(&j, r) < 0 ||
	     choose_dsn(&j, r) < 0 || build_msgbuf(&j, r) < 0 ? -1 : deliver(&j, r);
	job_free(&j);
	return rc;
}

int mode_send(struct ctx *c, struct result *r)
{
	struct submit_req req = { .infd = 0, .from = c->o.from, .rcpt = c->o.rcpt,
				  .nrcpt = (size_t)c->o.nrcpt, .extract = c->o.extract };
	struct compose cm = { .fd = -1 };
	int rc;

	/* SPEC/issue 19: a person at a terminal sees a long send progress;
	 * -v owns standard error, --dry-run prints the message itself. */
	if (isatty(2) && !c->o.verbose && !c->o.dry_run)
		progress_enable();

	/* -bv reads no message: the recipients come from the command line. */
	if (c->o.verify && (c->o.extract || c->o.nrcpt == 0))
		return result_fail(r, EX_USAGE, "-bv needs recipients on the command "
				   "line (and no -t)");
	if (c->o.verify && (req.infd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
		return result_fail(r, EX_OSERR, "/dev/null: %s", strerror(errno));
	/* Composing: bad attachments are refused before anything else, and
	 * the message then comes from the composer as it would on stdin. */
	if (compose_wanted(&c->o)) {
		if (compose_start(&c->o, &cm, r) < 0)
			return -1;
		req.infd = cm.fd;
		req.rcpt = cm.rcpt;
		req.nrcpt = cm.nrcpt;
		req.size = cm.size;
	}
	/* No configuration is not an error here: the message is queued. */
	if (ctx_load_config(c, 0, r) < 0 && ctx_set_aside_config(c, r) < 0)
		rc = -1;
	else
		rc = submit(c, &req, r);
	if (c->o.verify)
		close(req.infd);
	return cm.fd >= 0 ? compose_finish(&cm, rc, r) : rc;
}
