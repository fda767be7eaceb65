/* idn.c - IDN domains to A-labels with libidn2 (see idn.h). */
#include "config.h"
#include "idn.h"

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

char *idn_envelope_address(const char *mbox)
{
	const char *at = strrchr(mbox, '@');
	char *alabel = NULL, *out = NULL;

	if (!at || ascii(at + 1, strlen(at + 1)) || !ascii(mbox, (size_t)(at - mbox)))
		return strdup(mbox);
	/* IDNA2008 with UTS #46 mapping, as browsers and MTAs resolve names. */
	if (idn2_to_ascii_8z(at + 1, &alabel, IDN2_NONTRANSITIONAL) != IDN2_OK)
		return NULL;
	if (asprintf(&out, "%.*s@%s", (int)(at - mbox), mbox, alabel) < 0)
		out = NULL;
	idn2_free(alabel);
	return out;
}
