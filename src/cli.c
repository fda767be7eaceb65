/* cli.c - sendmail-compatible option parsing (see cli.h). */
#include "config.h"
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* How a letter takes its argument: none, required (attached "-fa@b" or the next
 * word "-f a@b"), the rest of the word only ("-oi", "-q15m", "-bp"). */
enum arg_rule { ARG_NONE, ARG_REQUIRED, ARG_ATTACHED };

enum action {
	A_IGNORE, A_EXTRACT, A_VERBOSE, A_FROM, A_FULLNAME, A_CONFIG, A_ACCOUNT,
	A_OPTION, A_MODE, A_BODY, A_NOTIFY, A_RET, A_ENVID, A_QUEUE, A_TAG,
	A_TRANSCRIPT, A_NEWALIASES,
};

struct letter {
	char ch;
	enum arg_rule rule;
	enum action act;
};

static const struct letter letters[] = {
	{ 't', ARG_NONE, A_EXTRACT },
	{ 'i', ARG_NONE, A_IGNORE },      /* a lone "." never ends input anyway */
	{ 'v', ARG_NONE, A_VERBOSE },
	{ 'm', ARG_NONE, A_IGNORE },      /* "me too": meaningless for a relay client */
	{ 'n', ARG_NONE, A_IGNORE },      /* no aliasing */
	{ 'G', ARG_NONE, A_IGNORE },      /* gateway submission */
	{ 'U', ARG_NONE, A_IGNORE },      /* initial user submission */
	{ 'f', ARG_REQUIRED, A_FROM },
	{ 'r', ARG_REQUIRED, A_FROM },    /* old name of -f */
	{ 'F', ARG_REQUIRED, A_FULLNAME },
	{ 'C', ARG_REQUIRED, A_CONFIG },
	{ 'a', ARG_REQUIRED, A_ACCOUNT },
	{ 'N', ARG_REQUIRED, A_NOTIFY },
	{ 'R', ARG_REQUIRED, A_RET },
	{ 'V', ARG_REQUIRED, A_ENVID },
	{ 'L', ARG_REQUIRED, A_TAG },
	{ 'X', ARG_REQUIRED, A_TRANSCRIPT }, /* -X FILE; -XV, -XVxy: Postfix VERP */
	{ 'I', ARG_NONE, A_NEWALIASES },  /* Postfix: same as -bi */
	{ 'h', ARG_REQUIRED, A_IGNORE },  /* hop count */
	{ 'A', ARG_REQUIRED, A_IGNORE },  /* -Ac / -Am: which sendmail.cf */
	{ 'O', ARG_REQUIRED, A_IGNORE },  /* -O option=value */
	{ 'o', ARG_REQUIRED, A_OPTION },  /* -oi, -oem, -odi, -o i, -o x value */
	{ 'B', ARG_ATTACHED, A_BODY },    /* -B8BITMIME, -BBINARYMIME */
	{ 'b', ARG_ATTACHED, A_MODE },    /* -bm, -bp, -bs, -bi */
	{ 'q', ARG_ATTACHED, A_QUEUE },   /* -q, -q15m */
};

enum long_kind { L_FLAG, L_VALUE, L_MODE_VALUE, L_LIST };

struct long_opt {
	const char *name;
	enum long_kind kind;
	size_t off;        /* offsetof the field in struct options */
	int mode;          /* a mode to select (flags, L_MODE_VALUE), or -1 to set an
			    * int field */
};

#define OFF(f) offsetof(struct options, f)

static const struct long_opt long_opts[] = {
	{ "config", L_VALUE, OFF(config), 0 },
	{ "account", L_VALUE, OFF(account), 0 },
	{ "host", L_VALUE, OFF(host), 0 },
	{ "port", L_VALUE, OFF(port), 0 },
	{ "tls", L_VALUE, OFF(tls), 0 },
	{ "auth", L_VALUE, OFF(auth), 0 },
	{ "user", L_VALUE, OFF(user), 0 },
	{ "from", L_VALUE, OFF(from), 0 },
	{ "timeout", L_VALUE, OFF(timeout), 0 },
	{ "read-envelope-from", L_FLAG, OFF(read_envelope_from), -1 },
	{ "dry-run", L_FLAG, OFF(dry_run), -1 },
	{ "no-queue", L_FLAG, OFF(no_queue), -1 },
	{ "due", L_FLAG, OFF(queue_due), -1 },
	{ "verbose", L_FLAG, OFF(verbose), -1 },
	{ "serverinfo", L_FLAG, 0, MODE_SERVERINFO },
	{ "check", L_FLAG, 0, MODE_CHECK },
	{ "version", L_FLAG, 0, MODE_VERSION },
	{ "help", L_FLAG, 0, MODE_HELP },
	{ "import-msmtprc", L_FLAG, 0, MODE_IMPORT },
	{ "daemon", L_FLAG, 0, MODE_DAEMON },
	{ "setup-system", L_FLAG, 0, MODE_SETUP },
	{ "oauth2-login", L_FLAG, 0, MODE_OAUTH2_LOGIN },
	{ "queue-delete", L_MODE_VALUE, OFF(queue_id), MODE_QUEUE_DELETE },
	{ "queue-retry", L_MODE_VALUE, OFF(queue_id), MODE_QUEUE_RETRY },
	/* composing (issue 19); no sendmail option has these names */
	{ "subject", L_VALUE, OFF(subject), 0 },
	{ "body", L_VALUE, OFF(body), 0 },
	{ "body-file", L_VALUE, OFF(body_file), 0 },
	{ "reply-to", L_VALUE, OFF(reply_to), 0 },
	{ "attach", L_LIST, OFF(attach), 0 },
	{ "header", L_LIST, OFF(headers), 0 },
	{ "cc", L_LIST, OFF(cc), 0 },
	{ "bcc", L_LIST, OFF(bcc), 0 },
	/* transports (issue 16) */
	{ "proxy-host", L_VALUE, OFF(proxy_host), 0 },
	{ "proxy-port", L_VALUE, OFF(proxy_port), 0 },
	{ "source-ip", L_VALUE, OFF(source_ip), 0 },
	{ "ip-version", L_VALUE, OFF(ip_version), 0 },
	{ "protocol", L_VALUE, OFF(protocol), 0 },
};

/* -b letters.  -bv keeps MODE_SEND with o->verify; -bh and -bH (sendmail's
 * host status, which Postfix accepts and ignores) do nothing. */
static const struct {
	const char *word;
	enum cli_mode mode;
} b_modes[] = {
	{ "m", MODE_SEND }, { "p", MODE_QUEUE_LIST }, { "s", MODE_SMTP },
	{ "i", MODE_ALIASES }, { "v", MODE_SEND }, { "h", MODE_IGNORE },
	{ "H", MODE_IGNORE },
};

/* Single-letter sendmail options (-oX) that are switches; every other letter
 * names an option that takes a value (-oQ/dir, -oem, -odb), so in the
 * two-word form "-o X value" the word after X is its value (sendmail.cf(5)
 * option letters: SevenBitInput, HoldExpensive, SaveFromLine, MatchGECOS,
 * IgnoreDots, SendMimeErrors, MeToo, CheckAliases, OldStyleHeaders,
 * DontPruneRoutes, SuperSafe, Verbose, TryNullMXList, ForkEachJob). */
static const char o_switches[] = "7cfGijmnoRsvwY";

void cli_usage(FILE *f)
{
	fprintf(f, "usage: pushmail [-t] [-i] [-v] [-C file] [-a account] [-f from] "
		"[-F name] [--dry-run] [--] recipient...\n"
		"       pushmail [--subject TEXT] [--body TEXT | --body-file FILE] "
		"[--attach FILE[:TYPE]]... recipient...\n"
		"       pushmail -q[interval] | -qIid | -bp | -bs | -bi | -bv recipient...\n"
		"       pushmail --check | --serverinfo | --queue-retry id | "
		"--queue-delete id\n"
		"       pushmail --oauth2-login [-a account]\n"
		"       pushmail --help | --version | --import-msmtprc [file]\n");
}

void cli_help(FILE *f)
{
	cli_usage(f);
	fprintf(f,
		"\nSubmit the message on standard input to the account's SMTP relay.\n\n"
		"  -t                  take recipients from To/Cc/Bcc (Bcc is removed)\n"
		"  -f, -r ADDR         envelope sender (<> for the null sender)\n"
		"  -F NAME             full name for a generated From header\n"
		"  -C, --config FILE   configuration file\n"
		"  -a, --account NAME  account to use\n"
		"  -v, --verbose       print the SMTP transcript on stderr\n"
		"  -X FILE             append the SMTP transcript to FILE\n"
		"  -i, -oi             accepted: a lone \".\" never ends the input\n"
		"  --dry-run           print the envelope and the DATA bytes, send nothing\n"
		"  --no-queue          send directly; a temporary failure exits 75\n"
		"  --host, --port, --tls, --auth, --user, --from, --timeout VALUE\n"
		"                      override the account's setting\n"
		"  --proxy-host HOST, --proxy-port PORT  SOCKS5 proxy (\"\": none)\n"
		"  --source-ip ADDR, --ip-version 4|6|any, --protocol smtp|lmtp\n"
		"                      override source_address, ip_version, protocol\n"
		"  --read-envelope-from  use the From header as envelope sender\n"
		"\nComposing (pushmail writes the message itself):\n"
		"  --subject TEXT      Subject (any UTF-8)\n"
		"  --body TEXT         body text (--body - reads standard input);\n"
		"                      without it, a standard input that is not a\n"
		"                      terminal is the body\n"
		"  --body-file FILE    body text from FILE\n"
		"  --attach FILE[:TYPE]  attach FILE (repeatable; type found from the\n"
		"                      content unless given)\n"
		"  --cc ADDRS, --bcc ADDRS, --reply-to ADDRS, --header 'Name: value'\n"
		"\nOther modes:\n"
		"  -q                  deliver the queued messages now (-q --due: only\n"
		"                      those whose retry time has come)\n"
		"  -qINTERVAL          keep doing so every INTERVAL (-q15m)\n"
		"  -qIID               deliver queued message ID now\n"
		"  -bp, mailq          list the queue\n"
		"  --queue-retry ID    deliver ID now (from failed/ too)\n"
		"  --queue-delete ID   remove ID from the queue\n"
		"  -bs                 speak SMTP on stdin/stdout\n"
		"  -bi, -I, newaliases check the aliases file\n"
		"  -bv RCPT...         show where each recipient would go, send nothing\n"
		"  --check             test the account: connect, TLS, AUTH; send nothing\n"
		"  --serverinfo        show the relay's greeting, capabilities, certificate\n"
		"  --oauth2-login      log the account in to its OAuth2 provider (device code)\n"
		"  --import-msmtprc [FILE]  convert an msmtp configuration\n"
		"  --daemon            the system delivery service (see SYSTEM MODE)\n"
		"  --setup-system      create the service user, groups, spool (root)\n"
		"  --version, --help\n\n"
		"Other sendmail options (-oem -odi -B8BITMIME -N -R -V -L -XV ...) are\n"
		"accepted; see pushmail(1).  Exit status follows sysexits(3).\n");
}

/* Remember an accepted-and-ignored option for -v, up to three words. */
static void note_ignored3(struct options *o, const char *a, const char *b,
			  const char *c, const char *why)
{
	char *t;

	if (o->nignored >= CLI_IGNORED_MAX)
		return;
	t = o->ignored_text[o->nignored];
	snprintf(t, sizeof o->ignored_text[0], "%s%s%s%s%s%s%s", a, b ? " " : "",
		 b ? b : "", c ? " " : "", c ? c : "", why ? " " : "", why ? why : "");
	o->ignored[o->nignored++] = t;
}

static void note_ignored(struct options *o, const char *arg)
{
	note_ignored3(o, arg, NULL, NULL, NULL);
}

static int set_mode(struct options *o, const char *word, struct result *r)
{
	for (size_t i = 0; i < sizeof b_modes / sizeof b_modes[0]; i++)
		if (strcmp(word, b_modes[i].word) == 0) {
			o->mode = b_modes[i].mode;
			o->verify = strcmp(word, "v") == 0;
			if (o->mode == MODE_IGNORE)
				note_ignored3(o, word[0] == 'h' ? "-bh" : "-bH", NULL, NULL,
					      "(sendmail host status: nothing to do)");
			return 0;
		}
	return result_fail(r, EX_USAGE, "unsupported mode -b%s", word);
}

/* Postfix's -XV and -XVxy ask for VERP, which only an MTA can do; every other
 * -X value is sendmail's transcript file (write -X ./V for a file named V). */
static int is_verp(const char *arg)
{
	return arg[0] == 'V' && (arg[1] == '\0' || strlen(arg) == 3);
}

/* -q: -q (now), -qINTERVAL, -qIID (that message now, as --queue-retry ID);
 * -qR and -qS select by site or sender, which needs an MTA's queue. */
static int set_queue(struct options *o, const char *arg, struct result *r)
{
	if (arg[0] == 'I') {
		if (!arg[1])
			return result_fail(r, EX_USAGE, "-qI needs a queue id (-qIID, "
					   "as 'mailq' shows it)");
		o->mode = MODE_QUEUE_RETRY;
		o->queue_id = arg + 1;
		return 0;
	}
	if (arg[0] == 'R' || arg[0] == 'S')
		return result_fail(r, EX_USAGE, "-q%c is not supported: pushmail sends "
				   "no ETRN and keeps one queue per account; use -q to "
				   "deliver everything that is queued", arg[0]);
	if (arg[0] && (arg[0] < '0' || arg[0] > '9'))
		return result_fail(r, EX_USAGE, "-q%c is not supported (use -q, "
				   "-qINTERVAL or -qIID)", arg[0]);
	o->mode = MODE_QUEUE_RUN;
	o->queue_interval = *arg ? arg : NULL;
	return 0;
}

/* Apply one letter with its argument (NULL for ARG_NONE). */
static int apply(struct options *o, const struct letter *l, const char *arg,
		 const char *word, struct result *r)
{
	switch (l->act) {
	case A_IGNORE: note_ignored(o, word); return 0;
	case A_EXTRACT: o->extract = 1; return 0;
	case A_VERBOSE: o->verbose = 1; return 0;
	case A_FROM: o->from = arg; return 0;
	case A_FULLNAME: o->full_name = arg; return 0;
	case A_CONFIG: o->config = arg; return 0;
	case A_ACCOUNT: o->account = arg; return 0;
	case A_NOTIFY: o->dsn_notify = arg; return 0;
	case A_RET: o->dsn_ret = arg; return 0;
	case A_ENVID: o->dsn_envid = arg; return 0;
	case A_TAG: o->log_tag = arg; return 0;
	case A_TRANSCRIPT: {
		int attached = arg > word && arg < word + strlen(word);   /* "-XV" */

		if (!is_verp(arg))
			o->transcript = arg;
		else
			note_ignored3(o, attached ? word : "-X", attached ? NULL : arg, NULL,
				      "(Postfix VERP: the relay decides the return path)");
		return 0;
	}
	case A_NEWALIASES: o->mode = MODE_ALIASES; return 0;
	case A_BODY:   /* only BINARYMIME is used: 8-bit bytes are detected */
		o->body_type = arg;
		if (strcasecmp(arg, "BINARYMIME") != 0)
			note_ignored(o, word);
		return 0;
	case A_OPTION: return 0;   /* noted by parse_o: it may take two words */
	case A_MODE: return set_mode(o, arg, r);
	case A_QUEUE: return set_queue(o, arg, r);
	}
	return 0;
}

/* -oX[value] or "-o X [value]": sendmail options, all ignored.  A single
 * letter that takes a value and has none attached takes the next word as
 * its value ("-o x value", "-oQ /var/spool"), so that word never becomes a
 * recipient; a switch letter ("-o i") takes nothing more. */
static void parse_o(int argc, char **argv, int *i, struct options *o,
		    const char *name, int separate)
{
	const char *value = NULL;

	if (strlen(name) == 1 && !strchr(o_switches, name[0]) && *i + 1 < argc &&
	    argv[*i + 1][0] != '-') {
		value = argv[++*i];
	}
	if (separate)
		note_ignored3(o, "-o", name, value, NULL);
	else
		note_ignored3(o, argv[*i - (value != NULL)], value, NULL, NULL);
}

static const struct letter *find_letter(char ch)
{
	for (size_t i = 0; i < sizeof letters / sizeof letters[0]; i++)
		if (letters[i].ch == ch)
			return &letters[i];
	return NULL;
}

/* One "-xyz" word; may consume argv[*i + 1].  Letters without arguments may
 * be grouped ("-ti"). */
static int parse_short(int argc, char **argv, int *i, struct options *o,
		       struct result *r)
{
	const char *word = argv[*i];

	for (const char *p = word + 1; *p; p++) {
		const struct letter *l = find_letter(*p);
		const char *arg = NULL;

		if (!l) {
			o->bad_option = 1;
			return result_fail(r, EX_USAGE, "unknown option -%c", *p);
		}
		if (l->rule == ARG_ATTACHED) {
			arg = p + 1;
		} else if (l->rule == ARG_REQUIRED) {
			if (p[1])
				arg = p + 1;
			else if (*i + 1 < argc)
				arg = argv[++*i];
			else {
				o->bad_option = 1;
				return result_fail(r, EX_USAGE,
						   "option -%c needs an argument", *p);
			}
		}
		if (l->act == A_OPTION)
			parse_o(argc, argv, i, o, arg, !p[1]);
		if (apply(o, l, arg, word, r) < 0)
			return -1;
		if (l->rule != ARG_NONE)
			break;
	}
	return 0;
}

/* Room for every argument, allocated on first use. */
static int list_add(struct cli_list *l, const char *val, int argc, struct result *r)
{
	if (!l->v && !(l->v = calloc((size_t)argc + 1, sizeof *l->v)))
		return result_fail(r, EX_OSERR, "out of memory");
	l->v[l->n++] = val;
	return 0;
}

static int parse_long(int argc, char **argv, int *i, struct options *o,
		      struct result *r)
{
	const char *name = argv[*i] + 2, *eq = strchr(name, '=');
	size_t nlen = eq ? (size_t)(eq - name) : strlen(name);

	for (size_t k = 0; k < sizeof long_opts / sizeof long_opts[0]; k++) {
		const struct long_opt *lo = &long_opts[k];
		if (strlen(lo->name) != nlen || strncmp(lo->name, name, nlen) != 0)
			continue;
		if (lo->kind == L_FLAG) {
			if (eq)
				return result_fail(r, EX_USAGE,
						   "option --%s takes no value", lo->name);
			if (lo->mode >= 0)
				o->mode = (enum cli_mode)lo->mode;
			else
				*(int *)((char *)o + lo->off) = 1;
			return 0;
		}
		const char *val = eq ? eq + 1 : NULL;
		if (!val && *i + 1 < argc)
			val = argv[++*i];
		if (!val)
			return o->bad_option = 1, result_fail(r, EX_USAGE, "option --%s needs a value",
					   lo->name);
		if (lo->kind == L_LIST)
			return list_add((struct cli_list *)((char *)o + lo->off), val,
					argc, r);
		*(const char **)((char *)o + lo->off) = val;
		if (lo->kind == L_MODE_VALUE)
			o->mode = (enum cli_mode)lo->mode;
		return 0;
	}
	o->bad_option = 1;
	return result_fail(r, EX_USAGE, "unknown option --%.*s", (int)nlen, name);
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');

	return s ? s + 1 : p;
}

int cli_parse(int argc, char **argv, struct options *o, struct result *r)
{
	int i, only_rcpt = 0;

	memset(o, 0, sizeof *o);
	o->rcpt = calloc((size_t)argc + 1, sizeof *o->rcpt);
	if (!o->rcpt)
		return result_fail(r, EX_OSERR, "out of memory");
	if (argc > 0 && strcmp(base_name(argv[0]), "mailq") == 0)
		o->mode = MODE_QUEUE_LIST;
	if (argc > 0 && strcmp(base_name(argv[0]), "newaliases") == 0)
		o->mode = MODE_ALIASES;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (only_rcpt || a[0] != '-' || a[1] == '\0') {
			o->rcpt[o->nrcpt++] = argv[i];
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_rcpt = 1;
			continue;
		}
		if ((a[1] == '-' ? parse_long(argc, argv, &i, o, r) :
				   parse_short(argc, argv, &i, o, r)) < 0)
			return -1;
	}
	/* SPEC 1: a line break in any argument could end up on the wire or in a
	 * header; refuse before anything happens.  (argv cannot hold a NUL.)
	 * The one exception is the text of --body, which is a message body. */
	for (i = 1; i < argc; i++)
		if (strpbrk(argv[i], "\r\n") && argv[i] != o->body &&
		    !(o->body == argv[i] + 7 && strncmp(argv[i], "--body=", 7) == 0))
			return result_fail(r, EX_USAGE,
					   "argument %d contains a line break", i);
	return 0;
}

void cli_free(struct options *o)
{
	free(o->rcpt);
	o->rcpt = NULL;
	free(o->attach.v);
	free(o->headers.v);
	free(o->cc.v);
	free(o->bcc.v);
}
