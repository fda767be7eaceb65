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

/* A converted domain goes through the same gate as the original address:
 * every address that reaches the wire is a mailbox after every change. */
static char *checked(char *out)
{
	if (out && !addr_valid_mailbox(out)) {
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

	if (!addr_valid_mailbox(mbox))
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
