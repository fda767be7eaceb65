/* idn.h - internationalised domain names in envelope addresses (issue 5):
 * an address whose local part is ASCII but whose domain is not goes out with
 * the domain as A-labels (RFC 5891), so it needs no SMTPUTF8. */
#ifndef PUSHMAIL_IDN_H
#define PUSHMAIL_IDN_H

/* Returns a malloc'd copy of mbox with its domain converted to A-labels when
 * that is all that keeps it from being ASCII; otherwise an unchanged copy
 * (a UTF-8 local part keeps its U-labels for SMTPUTF8, once they convert).
 * The conversion uses the STD3 rules and the result must pass
 * addr_valid_mailbox, so no mapping can produce '>', ' ', '=', ... on the
 * wire (issue 13).  NULL when mbox is not a valid mailbox, the domain is
 * not a valid IDN or not an RFC 5321 domain, or memory runs out. */
char *idn_envelope_address(const char *mbox);

/* 1 when idn_envelope_address(mbox) would succeed. */
int idn_valid_envelope(const char *mbox);

#endif
