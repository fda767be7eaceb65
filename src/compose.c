/* compose.c - a message from command-line arguments (see compose.h).
 *
 * Layout: one text/plain part when there is no attachment, else
 * multipart/mixed with the text (when there is any) first and one base64
 * part per attachment.  Text is UTF-8: 7bit when it is plain ASCII in short
 * lines, quoted-printable otherwise -- the message is composed before the
 * relay says whether it offers 8BITMIME, so it is 7-bit clean throughout.
 */
#include "config.h"
#include "compose.h"
#include "address.h"
#include "log.h"
#include "mime.h"
#include "sbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <magic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define MAGIC_PEEK 65536        /* bytes libmagic looks at */
#define B64_BLOCK (3 * 16384)   /* input block: whole base64 groups */

struct part {
	const char *path;          /* as given (for messages) */
	char *name;                /* its last component, the file name sent */
	char type[256], cs[64];    /* Content-Type and charset ("" if none) */
	int fd;
	unsigned long long size;
	char *head;                /* delimiter and part header block */
	size_t headlen;
};

struct build {
	const struct options *o;
	int stdin_open;            /* fd 0 was open when composing began */
	struct sbuf head;          /* message head (and the text part) */
	struct sbuf text;          /* body text, then its encoded form */
	char charset[64];          /* of the body text: utf-8 unless it is not */
	struct part *parts;
	size_t nparts;
	char boundary[48];
	const char *tail;          /* close-delimiter */
	char tailbuf[64];
};

int compose_wanted(const struct options *o)
{
	return o->subject || o->body || o->body_file || o->reply_to ||
	       o->attach.n || o->headers.n || o->cc.n || o->bcc.n;
}

/* ---- checking the arguments -------------------------------------------- */

/* RFC 2045 section 5.1: token, tspecials excluded. */
static int is_token(const char *s, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 32 || (unsigned char)s[i] >= 127 ||
		    strchr("()<>@,;:\\\"/[]?=", s[i]))
			return 0;
	return 1;
}

static int is_type(const char *s)
{
	const char *slash = strchr(s, '/');

	return slash && is_token(s, (size_t)(slash - s)) && is_token(slash + 1, strlen(slash + 1));
}

/* Fields whose value is an address list: written with mime_header_addrs. */
static int is_address_field(const char *name, size_t n)
{
	static const char *const names[] = { "From", "To", "Cc", "Bcc", "Reply-To",
					     "Sender" };

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strlen(names[i]) == n && strncasecmp(name, names[i], n) == 0)
			return 1;
	return 0;
}

static int parse_addrs(const char *what, const char *v, struct addrlist *l,
		       struct result *r)
{
	char err[256];

	if (addr_parse_list(v, strlen(v), l, err, sizeof err) < 0)
		return result_fail(r, EX_USAGE, "%s '%s': %s", what, v, err);
	return 0;
}

/* --header 'Name: value' */
static int add_header(struct build *b, const char *h, struct result *r)
{
	const char *colon = strchr(h, ':');
	size_t n = colon ? (size_t)(colon - h) : 0;
	char name[128];

	for (size_t i = 0; i < n; i++)
		if ((unsigned char)h[i] <= 32 || (unsigned char)h[i] >= 127)
			n = 0;
	if (n == 0 || n >= sizeof name)
		return result_fail(r, EX_USAGE, "--header '%s': not 'Name: value'", h);
	/* the MIME structure is pushmail's to write */
	if (strncasecmp(h, "Content-", 8) == 0 || (n == 12 && !strncasecmp(h, "MIME-Version", 12)))
		return result_fail(r, EX_USAGE, "--header '%.*s' cannot be set when "
				   "composing", (int)n, h);
	memcpy(name, h, n);
	name[n] = '\0';
	if (is_address_field(name, n)) {
		struct addrlist l = { 0 };
		if (parse_addrs("--header", colon + 1, &l, r) < 0)
			return -1;
		mime_header_addrs(&b->head, name, &l);
		addrlist_free(&l);
	} else {
		mime_header_text(&b->head, name, colon + 1);
	}
	return 0;
}

static int has_header(const struct options *o, const char *name)
{
	size_t n = strlen(name);

	for (int i = 0; i < o->headers.n; i++)
		if (!strncasecmp(o->headers.v[i], name, n) && o->headers.v[i][n] == ':')
			return 1;
	return 0;
}

/* To from the recipient arguments, Cc from --cc: each an address list. */
static int add_addr_field(struct build *b, const char *name, const char *const *v,
			  int n, struct result *r)
{
	struct addrlist l = { 0 };
	int rc = 0;

	for (int i = 0; rc == 0 && i < n; i++)
		rc = parse_addrs(name, v[i], &l, r);
	if (rc == 0 && l.n && !has_header(b->o, name))
		mime_header_addrs(&b->head, name, &l);
	addrlist_free(&l);
	return rc;
}

static int add_fields(struct build *b, struct result *r)
{
	const struct options *o = b->o;

	if (o->subject)
		mime_header_text(&b->head, "Subject", o->subject);
	if (add_addr_field(b, "To", (const char *const *)o->rcpt, o->nrcpt, r) < 0 ||
	    add_addr_field(b, "Cc", o->cc.v, o->cc.n, r) < 0 ||
	    (o->reply_to && add_addr_field(b, "Reply-To", &o->reply_to, 1, r) < 0))
		return -1;
	for (int i = 0; i < o->headers.n; i++)
		if (add_header(b, o->headers.v[i], r) < 0)
			return -1;
	sbuf_str(&b->head, "MIME-Version: 1.0\r\n");
	return 0;
}

/* ---- the body text ----------------------------------------------------- */

static int read_text(struct sbuf *t, int fd, const char *what, struct result *r)
{
	switch (sbuf_read_fd(t, fd, COMPOSE_BODY_MAX)) {
	case 0: return 0;
	case -2: return result_fail(r, EX_DATAERR, "%s: the body text is over %u MiB "
				    "(send it with --attach)", what, COMPOSE_BODY_MAX >> 20);
	case -3: return result_fail(r, EX_OSERR, "out of memory");
	default: return result_fail(r, EX_IOERR, "%s: %s", what, strerror(errno));
	}
}

/* --body TEXT, --body - or --body-file FILE; else a standard input that is
 * not a terminal (never a silent wait for someone to type).  A closed
 * standard input is an empty body. */
static int load_body(struct build *b, struct result *r)
{
	const struct options *o = b->o;
	int rc = 0;

	if (o->body && strcmp(o->body, "-") != 0) {
		sbuf_str(&b->text, o->body);
	} else if (o->body_file) {
		int fd = open(o->body_file, O_RDONLY | O_CLOEXEC);
		struct stat st;

		if (fd < 0)
			return result_fail(r, EX_NOINPUT, "--body-file %s: %s", o->body_file,
					   strerror(errno));
		if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
			rc = result_fail(r, EX_NOINPUT, "--body-file %s: a directory",
					 o->body_file);
		else
			rc = read_text(&b->text, fd, o->body_file, r);
		close(fd);
	} else if (b->stdin_open && (o->body || !isatty(0))) {
		rc = read_text(&b->text, 0, "standard input", r);
	}
	if (rc == 0 && b->text.len && b->text.s[b->text.len - 1] != '\n')
		sbuf_add(&b->text, "\n", 1);   /* mail text ends with a line break */
	return rc == 0 && b->text.nomem ? result_fail(r, EX_OSERR, "out of memory") : rc;
}

/* Text is declared UTF-8; text that is not (a Latin-1 file given to
 * --body-file) gets the charset libmagic finds, or unknown-8bit (RFC 1428),
 * rather than a label that makes it unreadable. */
static void text_charset(struct build *b)
{
	const char *s = b->text.s ? b->text.s : "";
	magic_t m;

	snprintf(b->charset, sizeof b->charset, "utf-8");
	if (mime_utf8_valid(s, b->text.len))
		return;
	snprintf(b->charset, sizeof b->charset, "unknown-8bit");
	m = magic_open(MAGIC_MIME_ENCODING);
	if (m && magic_load(m, NULL) == 0) {
		const char *e = magic_buffer(m, s, b->text.len);
		if (e && is_token(e, strlen(e)) && strcmp(e, "binary") &&
		    strcmp(e, "utf-8") && strcmp(e, "us-ascii"))
			snprintf(b->charset, sizeof b->charset, "%s", e);
	}
	if (m)
		magic_close(m);
}

/* Encode the text in place of itself; returns the transfer encoding. */
static const char *encode_text(struct build *b)
{
	struct sbuf out = { 0 };
	const char *s = b->text.s ? b->text.s : "";
	size_t n = b->text.len;

	if (mime_text_is_7bit(s, n)) {
		for (size_t i = 0; i < n; i++) {   /* CRLF for the size count */
			if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
				sbuf_add(&out, "\r", 1);
			sbuf_add(&out, s + i, 1);
		}
	} else {
		struct mime_qp q;
		char *buf = malloc(MIME_QP_OUT_MAX(n));
		size_t o;

		if (!buf) {
			out.nomem = 1;
		} else {
			mime_qp_init(&q);
			o = mime_qp_update(&q, s, n, buf);
			o += mime_qp_final(&q, buf + o);
			sbuf_add(&out, buf, o);
			free(buf);
		}
	}
	int seven = mime_text_is_7bit(s, n);
	sbuf_free(&b->text);
	b->text = out;
	return seven ? "7bit" : "quoted-printable";
}

/* ---- attachments -------------------------------------------------------- */

/* "FILE:type/subtype" forces the type, unless FILE:type/subtype is itself
 * the name of a file. */
static void split_type(const char *arg, char *path, size_t cap, char *type, size_t tcap)
{
	const char *c = strrchr(arg, ':');

	snprintf(path, cap, "%s", arg);
	type[0] = '\0';
	if (!c || !is_type(c + 1) || access(arg, F_OK) == 0 || (size_t)(c - arg) >= cap)
		return;
	path[c - arg] = '\0';
	snprintf(type, tcap, "%s", c + 1);
}

/* An attachment must be a regular file, readable now: a FIFO or device
 * would never end, a directory has no content. */
static int open_attachment(const char *path, struct part *p, struct result *r)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return result_fail(r, EX_NOINPUT, "attachment %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return result_fail(r, EX_NOINPUT, "attachment %s: %s", path,
				   S_ISDIR(st.st_mode) ? "is a directory" :
				   "not a regular file");
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	p->fd = fd;
	p->size = (unsigned long long)st.st_size;
	return 0;
}

/* The type from the content (libmagic), with the charset of text. */
static void find_type(magic_t m, int fd, char *type, size_t tcap, char *cs, size_t ccap)
{
	static char peek[MAGIC_PEEK];
	ssize_t n = pread(fd, peek, sizeof peek, 0);
	const char *t, *e;

	snprintf(type, tcap, "application/octet-stream");
	cs[0] = '\0';
	if (!m || n <= 0)
		return;
	if (n == (ssize_t)sizeof peek) {   /* do not judge a cut character */
		char *nl = memrchr(peek, '\n', (size_t)n);
		if (nl)
			n = nl - peek + 1;
	}
	magic_setflags(m, MAGIC_MIME_TYPE);
	t = magic_buffer(m, peek, (size_t)n);
	if (t && is_type(t))
		snprintf(type, tcap, "%s", t);
	if (strncmp(type, "text/", 5) != 0)
		return;
	magic_setflags(m, MAGIC_MIME_ENCODING);
	e = magic_buffer(m, peek, (size_t)n);
	if (e && is_token(e, strlen(e)) && strcmp(e, "binary") && strcmp(e, "unknown-8bit"))
		snprintf(cs, ccap, "%s", e);
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');

	return s && s[1] ? s + 1 : p;
}

static int part_head(struct build *b, struct part *p)
{
	const char *type = p->type, *cs = p->cs, *name = p->name;
	struct sbuf h = { 0 };
	struct mime_fold f = { .b = &h };

	sbuf_str(&h, "\r\n--");
	sbuf_str(&h, b->boundary);
	sbuf_str(&h, "\r\nContent-Type: ");
	sbuf_str(&h, type);
	f.col = 14 + strlen(type);
	if (cs[0])
		mime_param(&f, "charset", cs);
	mime_param(&f, "name", name);
	sbuf_str(&h, "\r\nContent-Disposition: attachment");
	f.col = 31;
	mime_param(&f, "filename", name);
	sbuf_str(&h, "\r\nContent-Transfer-Encoding: base64\r\n\r\n");
	if (h.nomem)
		return sbuf_free(&h), -1;
	p->headlen = h.len;
	p->head = sbuf_take(&h);
	return 0;
}

static int load_attachments(struct build *b, struct result *r)
{
	const struct options *o = b->o;
	magic_t m = magic_open(MAGIC_MIME_TYPE);
	int rc = 0;

	if (m && magic_load(m, NULL) < 0) {
		log_info("libmagic: %s; attachments go as application/octet-stream",
			 magic_error(m));
		magic_close(m);
		m = NULL;
	}
	b->parts = calloc((size_t)o->attach.n + 1, sizeof *b->parts);
	if (!b->parts)
		rc = result_fail(r, EX_OSERR, "out of memory");
	for (int i = 0; rc == 0 && i < o->attach.n; i++) {
		struct part *p = &b->parts[b->nparts];
		char path[4096];

		split_type(o->attach.v[i], path, sizeof path, p->type, sizeof p->type);
		if (open_attachment(path, p, r) < 0) {
			rc = -1;
			break;
		}
		b->nparts++;
		p->path = o->attach.v[i];
		if (!(p->name = strdup(base_name(path))))
			rc = result_fail(r, EX_OSERR, "out of memory");
		if (rc == 0 && !p->type[0])
			find_type(m, p->fd, p->type, sizeof p->type, p->cs, sizeof p->cs);
	}
	if (m)
		magic_close(m);
	return rc;
}

/* ---- the head ------------------------------------------------------------- */

static int make_boundary(struct build *b, struct result *r)
{
	unsigned char rnd[12];
	size_t o;

	if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
		return result_fail(r, EX_OSERR, "getrandom: %s", strerror(errno));
	/* "=_" never occurs in base64 or quoted-printable output (RFC 2045
	 * section 5.1 suggests such a boundary); 7bit text is checked. */
	o = (size_t)snprintf(b->boundary, sizeof b->boundary, "=_pushmail_");
	for (size_t i = 0; i < sizeof rnd; i++)
		o += (size_t)snprintf(b->boundary + o, sizeof b->boundary - o, "%02x", rnd[i]);
	if (b->text.len && memmem(b->text.s, b->text.len, b->boundary, o))
		return make_boundary(b, r);
	return 0;
}

static void text_part_head(struct sbuf *h, const char *charset, const char *cte)
{
	sbuf_str(h, "Content-Type: text/plain; charset=");
	sbuf_str(h, charset);
	sbuf_str(h, "\r\nContent-Transfer-Encoding: ");
	sbuf_str(h, cte);
	sbuf_str(h, "\r\n\r\n");
}

static int build_head(struct build *b, struct result *r)
{
	const char *cte;

	text_charset(b);
	cte = encode_text(b);

	if (b->o->attach.n == 0) {
		text_part_head(&b->head, b->charset, cte);
		sbuf_add(&b->head, b->text.s ? b->text.s : "", b->text.len);
		b->tail = "";
		return 0;
	}
	if (make_boundary(b, r) < 0)
		return -1;
	sbuf_str(&b->head, "Content-Type: multipart/mixed;\r\n boundary=\"");
	sbuf_str(&b->head, b->boundary);
	sbuf_str(&b->head, "\"\r\n\r\nThis is a multi-part message in MIME format.\r\n");
	if (b->text.len) {
		sbuf_str(&b->head, "\r\n--");
		sbuf_str(&b->head, b->boundary);
		sbuf_str(&b->head, "\r\n");
		text_part_head(&b->head, b->charset, cte);
		sbuf_add(&b->head, b->text.s, b->text.len);
	}
	snprintf(b->tailbuf, sizeof b->tailbuf, "\r\n--%s--\r\n", b->boundary);
	b->tail = b->tailbuf;
	for (size_t i = 0; i < b->nparts; i++)
		if (part_head(b, &b->parts[i]) < 0)
			return result_fail(r, EX_OSERR, "out of memory");
	return 0;
}

/* ---- the writer ------------------------------------------------------------ */

/* Exactly p->size bytes of the file through the encoder, in blocks. */
static int stream_part(int out, const struct part *p)
{
	static char in[B64_BLOCK], enc[MIME_B64_OUT_MAX(B64_BLOCK)];
	unsigned long long left = p->size;
	struct mime_b64 e;
	off_t off = 0;

	mime_b64_init(&e);
	while (left) {
		size_t want = left < sizeof in ? (size_t)left : sizeof in;
		ssize_t n = pread(p->fd, in, want, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_err("attachment %s: %s", p->path,
				n < 0 ? strerror(errno) : "shorter than when it was opened");
			return -1;
		}
		off += n;
		left -= (unsigned long long)n;
		if (fd_write_all(out, enc, mime_b64_update(&e, in, (size_t)n, enc)) < 0)
			return -1;
	}
	return fd_write_all(out, enc, mime_b64_final(&e, enc));
}

static int write_message(int out, const struct build *b)
{
	if (fd_write_all(out, b->head.s, b->head.len) < 0)
		return -1;
	for (size_t i = 0; i < b->nparts; i++)
		if (fd_write_all(out, b->parts[i].head, b->parts[i].headlen) < 0 ||
		    stream_part(out, &b->parts[i]) < 0)
			return -1;
	return fd_write_all(out, b->tail, strlen(b->tail));
}

static unsigned long long total_size(const struct build *b)
{
	unsigned long long n = b->head.len + strlen(b->tail);

	for (size_t i = 0; i < b->nparts; i++)
		n += b->parts[i].headlen + mime_b64_size(b->parts[i].size);
	return n;
}

/* The writer's channel is a Unix stream socket, not a pipe, so that a
 * writer that fails half-way (an attachment cut short, a crash) cannot look
 * like the end of a complete message: the parent leaves one byte unread in
 * the writer's receive queue, and Linux reports ECONNRESET instead of end
 * of file to the reader of a socket whose peer closed with data unread.
 * The reader (submit: DATA, BDAT, the queue) then fails with EX_IOERR and
 * no end of data is sent, nothing is queued.  The writer reads the byte
 * only after the last one of the message went out. */
static void writer(int fd, const struct build *b)
{
	char token;
	int ok = write_message(fd, b) == 0 && read(fd, &token, 1) == 1;

	_exit(ok ? 0 : 1);
}

static int start_writer(struct build *b, struct compose *cm, struct result *r)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return result_fail(r, EX_OSERR, "socketpair: %s", strerror(errno));
	if (write(sv[0], "!", 1) != 1 || (pid = fork()) < 0) {
		close(sv[0]);
		close(sv[1]);
		return result_fail(r, EX_OSERR, "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		close(sv[0]);
		writer(sv[1], b);
	}
	close(sv[1]);
	shutdown(sv[0], SHUT_WR);
	cm->fd = sv[0];
	cm->pid = pid;
	cm->size = total_size(b);
	return 0;
}

/* ---- the whole -------------------------------------------------------------- */

static int collect_rcpts(const struct options *o, struct compose *cm, struct result *r)
{
	size_t n = (size_t)o->nrcpt + (size_t)o->cc.n + (size_t)o->bcc.n;

	cm->rcpt = calloc(n + 1, sizeof *cm->rcpt);
	if (!cm->rcpt)
		return result_fail(r, EX_OSERR, "out of memory");
	for (int i = 0; i < o->nrcpt; i++)
		cm->rcpt[cm->nrcpt++] = o->rcpt[i];
	for (int i = 0; i < o->cc.n; i++)
		cm->rcpt[cm->nrcpt++] = (char *)o->cc.v[i];
	for (int i = 0; i < o->bcc.n; i++)   /* envelope only: never a header */
		cm->rcpt[cm->nrcpt++] = (char *)o->bcc.v[i];
	return 0;
}

static void build_free(struct build *b)
{
	for (size_t i = 0; i < b->nparts; i++) {
		close(b->parts[i].fd);
		free(b->parts[i].head);
		free(b->parts[i].name);
	}
	free(b->parts);
	sbuf_free(&b->head);
	sbuf_free(&b->text);
}

int compose_start(const struct options *o, struct compose *cm, struct result *r)
{
	/* checked before anything is opened: a closed fd 0 would be reused */
	struct build b = { .o = o, .stdin_open = fcntl(0, F_GETFD) >= 0 };
	int rc;

	memset(cm, 0, sizeof *cm);
	cm->fd = -1;
	if (o->body && o->body_file)
		return result_fail(r, EX_USAGE, "--body and --body-file: give one of them");
	for (int i = 0; i < o->attach.n; i++)
		if (!o->attach.v[i][0])
			return result_fail(r, EX_USAGE, "--attach needs a file name");
	rc = add_fields(&b, r) < 0 || load_attachments(&b, r) < 0 ||
	     load_body(&b, r) < 0 || build_head(&b, r) < 0 ||
	     collect_rcpts(o, cm, r) < 0 ? -1 : 0;
	if (rc == 0 && (b.head.nomem || b.text.nomem))
		rc = result_fail(r, EX_OSERR, "out of memory");
	if (rc == 0)
		rc = start_writer(&b, cm, r);
	if (rc < 0) {
		free(cm->rcpt);
		cm->rcpt = NULL;
	}
	build_free(&b);
	return rc;
}

int compose_finish(struct compose *cm, int rc, struct result *r)
{
	int st = 0;

	if (cm->fd >= 0)
		close(cm->fd);
	cm->fd = -1;
	while (cm->pid > 0 && waitpid(cm->pid, &st, 0) < 0 && errno == EINTR)
		;
	/* The writer said why on stderr; the reader only saw the reset. */
	if (cm->pid > 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0) &&
	    rc < 0 && r->exitcode == EX_IOERR) {
		result_clear(r);
		rc = result_fail(r, EX_IOERR, "the message could not be composed to its "
				 "end; nothing was sent or queued");
	}
	cm->pid = 0;
	free(cm->rcpt);
	cm->rcpt = NULL;
	return rc;
}
