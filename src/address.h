/* address.h - RFC 5322 address lists and RFC 5321 mailboxes (pure).
 *
 * Parses header values and command-line recipients such as
 *   "A. B" <a@b.example> (comment), c@d, Team: e@f, g@h;, undisclosed-recipients:;
 * into bare addr-specs suitable for MAIL FROM/RCPT TO.  Comments, CFWS and
 * folding whitespace are dropped, display names are kept separately, groups are
 * flattened (an empty group yields nothing), quoted local parts keep their
 * quotes when they need them ("john doe"@example.com).
 */
#ifndef PUSHMAIL_ADDRESS_H
#define PUSHMAIL_ADDRESS_H

#include <stddef.h>

struct addr {
	char *mailbox;   /* addr-spec as it goes on the wire, without <>; "" for <> */
	char *display;   /* display name (unquoted, comments dropped) or NULL */
};

struct addrlist {
	struct addr *v;
	size_t n, cap;
	/* addrlist_contains' hash index over v[0..indexed), built lazily:
	 * private to address.c.  Grow the list only with addrlist_add and
	 * shrink it only with addrlist_truncate. */
	size_t *slot, nslots, indexed;
};

/* Parse an address list of len bytes (may contain folded CRLF/LF + WSP) and
 * append every mailbox to *out.  A bare local name without '@' ("root") is
 * accepted and returned as is (aliases/maildomain qualify it later).
 * Returns 0, or -1 with a reason in err (errcap bytes) on a syntax error, in
 * which case nothing is appended.  Allocation failure also returns -1.
 * On -1, errno is EINVAL for a syntax error and ENOMEM for memory.  err may
 * be NULL.  A single address (or display name) over 998 bytes is an error;
 * a group left open at the end ("undisclosed-recipients:") is tolerated. */
int addr_parse_list(const char *s, size_t len, struct addrlist *out,
		    char *err, size_t errcap);

/* Append a copy of mailbox/display (display may be NULL).  Returns 0 or -1. */
int addrlist_add(struct addrlist *l, const char *mailbox, const char *display);

/* 1 if the list already holds mailbox: the local part compared exactly, the
 * domain case-insensitively (RFC 5321 2.4).  Amortised O(1) through a hash
 * index (a pairwise search made -t with 80,000 recipients take minutes);
 * 0 also when memory for the index runs out and a linear search finds
 * nothing. */
int addrlist_contains(struct addrlist *l, const char *mailbox);

/* Drop the entries from n on (n <= l->n). */
void addrlist_truncate(struct addrlist *l, size_t n);

void addrlist_free(struct addrlist *l);

/* 1 when s is acceptable inside "<...>" of MAIL/RCPT: a dot-atom or quoted
 * local part, optional @domain (dot-atom or [literal]), printable, no
 * CR/LF/NUL/space outside quotes, at most 254 bytes overall
 * (RFC 5321 section 4.5.3.1).  The empty string (null sender) is valid. */
int addr_valid_mailbox(const char *s);

/* Pointer to the domain part (after the last '@' outside quotes), or NULL. */
const char *addr_domain(const char *mailbox);

/* Whether mailbox names a user of this host: a bare local name ("root"), or
 * one whose domain is in local_domains (a NULL-terminated list, compared
 * case-insensitively: "localhost" and the host's own names).  Returns the
 * length of the local part, or 0 when mailbox is not local (or is ""). */
size_t addr_local_name(const char *mailbox, const char *const *local_domains);

/* Qualify the local names (as addr_local_name) in an address-list header
 * value s[0..len): "root" becomes "root@domain", "root@localhost" becomes
 * "root@domain".  Everything else stays byte for byte: display names,
 * comments, quoting, groups, folding, and every address already qualified
 * with another domain (and a local name too long to be a valid address once
 * qualified, over 254 bytes).  Returns 1 with *out (malloc'd, NUL-terminated,
 * *outlen bytes) when something changed; 0 when nothing needed to or the
 * value does not parse (it is then left alone); -1 when out of memory. */
int addr_qualify_list(const char *s, size_t len, const char *domain,
		      const char *const *local_domains, char **out, size_t *outlen);

#endif
