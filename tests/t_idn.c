/* t_idn.c - IDN domains to A-labels, and what comes out is still a mailbox
 * (issue 13: UTS #46 without STD3 rules maps fullwidth characters to '>',
 * ' ', '=', ',', ';', '@', '/', which made "RCPT TO:<b@x＞ NOTIFY=...>"). */
#include "config.h"
#include "address.h"
#include "idn.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

/* Converted: the A-label form that goes on the wire. */
static const struct {
	const char *in, *want;
} good[] = {
	{ "bob@example.test", "bob@example.test" },
	{ "bob@bücher.example", "bob@xn--bcher-kva.example" },
	{ "bob@BÜCHER.example", "bob@xn--bcher-kva.example" },
	/* U+3002 ideographic full stop is a label separator in UTS #46 */
	{ "bob@bücher\xe3\x80\x82" "example", "bob@xn--bcher-kva.example" },
	/* fullwidth letters are only letters */
	{ "bob@\xef\xbd\x85xample.test", "bob@example.test" },
	/* a non-ASCII local part stays UTF-8 (SMTPUTF8 decides later) */
	{ "jöe@example.test", "jöe@example.test" },
	{ "jöe@bücher.example", "jöe@bücher.example" },
	{ "\"john doe\"@bücher.example", "\"john doe\"@xn--bcher-kva.example" },
	/* U+200B ZERO WIDTH SPACE is mapped to nothing */
	{ "bob@ex\xe2\x80\x8b" "ample.test", "bob@example.test" },
	{ "", "" },
	{ "root", "root" },
	{ "a@under_score.example", "a@under_score.example" },
	{ "a@[192.0.2.1]", "a@[192.0.2.1]" },
	{ "a+tag=x@example.test", "a+tag=x@example.test" },
};

/* Refused: each of these maps to a byte that would end the path or start an
 * ESMTP parameter (or is not a domain character at all). */
static const char *const bad[] = {
	"bob@example.test\xef\xbc\x9e\xe3\x80\x80notify\xef\xbc\x9dsuccess", /* ＞　＝ */
	"bob@example.test\xef\xbc\x9e",                 /* ＞ FULLWIDTH GREATER-THAN */
	"bob@example.test\xe3\x80\x80" "x",             /* 　 IDEOGRAPHIC SPACE */
	"bob@ex\xef\xbc\x9d" "ample.test",              /* ＝ FULLWIDTH EQUALS */
	"bob@ex\xef\xbc\x8c" "ample.test",              /* ， FULLWIDTH COMMA */
	"bob@ex\xef\xbc\x9b" "ample.test",              /* ； FULLWIDTH SEMICOLON */
	"bob@ex\xef\xbc\xa0" "evil.test",               /* ＠ FULLWIDTH COMMERCIAL AT */
	"bob@ex\xef\xbc\x8f" "ample.test",              /* ／ FULLWIDTH SOLIDUS */
	"bob@ex\xef\xbc\x9c" "ample.test",              /* ＜ FULLWIDTH LESS-THAN */
	"bob@ex\xef\xbc\x9a" "ample.test",              /* ： FULLWIDTH COLON */
	"bob@ex\xef\xbc\x8b" "ample.test",              /* ＋ FULLWIDTH PLUS */
	"bob@ex\xef\xb9\xa5" "ample.test",              /* ﹥ SMALL GREATER-THAN */
	"bob@ex\xe2\x80\xa8" "ample.test",              /* LINE SEPARATOR */
	"bob@ex\xc2\xa0" "ample.test",                  /* NO-BREAK SPACE */
	/* the same hostile domains behind a UTF-8 local part (kept as UTF-8
	 * for SMTPUTF8, but still checked as a name) */
	"jöe@example.test\xef\xbc\x9e\xe3\x80\x80notify\xef\xbc\x9dsuccess",
	"jöe@ex\xef\xbc\xa0" "evil.test",
	/* not an RFC 5321 domain, even in ASCII */
	"bob@ex=ample.test",
	"bob@ex+ample.test",
	"j\xc3\xb6" "e@le.xn--=",
	"c@[555>]",
	"c@[1.2.3.4=x]",
	/* not a mailbox to begin with */
	"bob@exa mple.test",
	"bob@example.test>",
	"bob@",
	"bob@bücher..example",
};

int main(void)
{
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		char *out = idn_envelope_address(good[i].in);
		is_str(out ? out : "(null)", good[i].want, "good[%zu] %s", i, good[i].in);
		ok(out && addr_valid_mailbox(out), "good[%zu] result is a valid mailbox", i);
		free(out);
		ok(idn_valid_envelope(good[i].in), "good[%zu] idn_valid_envelope", i);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *out = idn_envelope_address(bad[i]);
		ok(out == NULL, "bad[%zu] refused", i);
		if (out)
			printf("#   got \"%s\"\n", out);
		free(out);
		ok(!idn_valid_envelope(bad[i]), "bad[%zu] !idn_valid_envelope", i);
	}
	return tap_done();
}
