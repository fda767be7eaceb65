/* idn.h - internationalised domain names in envelope addresses (issue 5):
 * an address whose local part is ASCII but whose domain is not goes out with
 * the domain as A-labels (RFC 5891), so it needs no SMTPUTF8. */
#ifndef PUSHMAIL_IDN_H
#define PUSHMAIL_IDN_H

/* Returns a malloc'd copy of mbox with its domain converted to A-labels when
 * that is all that keeps it from being ASCII; otherwise an unchanged copy.
 * NULL when the domain is not a valid IDN or memory runs out. */
char *idn_envelope_address(const char *mbox);

#endif
