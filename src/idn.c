/* idn.c - IDN domains to A-labels with libidn2 (see idn.h). */
#include "config.h"
#include "idn.h"
#include "address.h"

#include <idn2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ascii(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return 0;
	return 1;
}

/* IDNA2008 with UTS #46 mapping, as browsers and MTAs resolve names.
 * Without the STD3 rules the mapping turns fullwidth and compatibility
 * characters into '>', ' ', '=', ',', ';', '@', '/' (U+FF1E -> '>'), which
 * would end the path of RCPT TO:<...> and add ESMTP parameters of the
 * sender's choosing (issue 13); with them, libidn2 drops such characters
 * silently, which would send the mail to another domain.  So the name is
 * converted both ways and taken only when both agree: a name that needs
 * neither trick.  NULL when refused. */
static char *to_alabels(const char *domain)
{
	char *std3 = NULL, *plain = NULL;
	int ok = idn2_to_ascii_8z(domain, &std3, IDN2_NONTRANSITIONAL |
				  IDN2_USE_STD3_ASCII_RULES) == IDN2_OK &&
		 idn2_to_ascii_8z(domain, &plain, IDN2_NONTRANSITIONAL) == IDN2_OK &&
		 strcmp(std3, plain) == 0;

	idn2_free(plain);
	if (!ok) {
		idn2_free(std3);
		return NULL;
	}
	return std3;
}

/* RFC 5321 4.1.2 Domain: letters, digits and hyphens in dot-separated
 * labels (and '_', which real names have), U-labels for SMTPUTF8, or an
 * address literal of letters, digits, '.', ':' and '-'.  RFC 5322's dot-atom would also let '=', '/', '+' ...
 * through, none of which is in any host name. */
static int domain_chars_ok(const char *d)
{
	int literal = *d == '[';

	/* a literal is IPv4, "IPv6:..." or "tag:..." (RFC 5321 4.1.3); the
	 * brackets themselves were checked by addr_valid_mailbox */
	for (d += literal; *d && !(literal && *d == ']'); d++) {
		unsigned char c = (unsigned char)*d;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.')
			continue;
		if (literal ? c != ':' : c < 0x80 && c != '_')
			return 0;
	}
	return 1;
}

/* A converted domain goes through the same gate as the original address:
 * every address that reaches the wire is a mailbox after every change. */
static char *checked(char *out)
{
	const char *dom = out ? addr_domain(out) : NULL;

	if (out && (!addr_valid_mailbox(out) || (dom && !domain_chars_ok(dom)))) {
		free(out);
		return NULL;
	}
	return out;
}

char *idn_envelope_address(const char *mbox)
{
	const char *dom = addr_domain(mbox);
	char *alabel, *out = NULL;
	size_t local;

	if (!addr_valid_mailbox(mbox) || (dom && !domain_chars_ok(dom)))
		return NULL;
	if (!dom || ascii(dom, strlen(dom)))
		return strdup(mbox);
	alabel = to_alabels(dom);
	if (!alabel)
		return NULL;
	local = (size_t)(dom - 1 - mbox);
	if (!ascii(mbox, local)) {
		/* SMTPUTF8 keeps the U-labels, but only those of a real name. */
		idn2_free(alabel);
		return checked(strdup(mbox));
	}
	if (asprintf(&out, "%.*s@%s", (int)local, mbox, alabel) < 0)
		out = NULL;
	idn2_free(alabel);
	return checked(out);
}

int idn_valid_envelope(const char *mbox)
{
	char *out = idn_envelope_address(mbox);

	free(out);
	return out != NULL;
}
