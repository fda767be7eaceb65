#!/bin/bash
# Test contrib/completion/pushmail.bash without an interactive shell: source
# it, set COMP_WORDS/COMP_CWORD as bash would, call _pushmail and compare
# COMPREPLY.  Needs only bash; uses a throwaway HOME, config files and a fake
# `pushmail -bp`.  Prints TAP; exits non-zero when any case fails.
#
#   bash contrib/completion/test-bash-completion.sh
set -u

here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

export HOME=$tmp/home
unset PUSHMAIL_CONFIG XDG_CONFIG_HOME
mkdir -p "$HOME/.config/pushmail" "$tmp/xdg/pushmail" "$tmp/bin" "$tmp/dir"

# shellcheck source=pushmail.bash
. "$here/pushmail.bash" || { echo "not ok - cannot source pushmail.bash"; exit 1; }
_pushmail_system_config=$tmp/system.ini

printf '[defaults]\ntimeout = 60\n[sys1]\nhost = a\n[shared]\nhost = b\n' \
	> "$tmp/system.ini"
printf '[home1]\nhost = h\n[shared]\nhost = c\n' > "$HOME/.config/pushmail/config.ini"
printf '[xdg1]\nhost = x\n' > "$tmp/xdg/pushmail/config.ini"
printf '[env1]\nhost = e\n' > "$tmp/env.ini"
# what pushmail's reader accepts as a section line, and what it does not
printf '%s\r\n' '; comment' 'default_account = work' '[defaults]' 'timeout = 5' \
	'[work]   ; the office' '[home.lan]' '[my-relay_2]' '[x]#c' \
	'  [indented]' '[bad name]' '[junk] x' '[]' \
	'[this-name-is-far-too-long-for-pushmail]' > "$tmp/given.ini"
printf '\xef\xbb\xbf[bom]\n[second]' > "$tmp/bom.ini"   # BOM, no final newline
: > "$tmp/dir/conf.ini"
: > "$tmp/dir/cert.pem"

# A fake pushmail for -bp: records its arguments, prints a queue listing.
cat > "$tmp/bin/pushmail" <<EOF
#!/bin/sh
printf '%s\n' "\$@" > "$tmp/bp-args"
cat <<'LIST'
ID                                       AGE   SIZE TRIES  NEXT     ACCOUNT
20261130T010203.123456.4242.beef          5m   1.2K     1  in 4m    work
    from <a@example.org> to <b@example.org>
    last error: 451 4.3.0 try later
20261129T235959.000001.17.0a0b            2h    300     3  failed   home
    from <> to <c@example.org>
1 queued, 1 failed in /var/spool/pushmail
LIST
EOF
chmod +x "$tmp/bin/pushmail"
PATH=$tmp/bin:$PATH

pass=0 fail=0

# check DESCRIPTION "EXPECTED REPLIES (space separated, sorted)" WORD...
# The last WORD is the one being completed.
check()
{
	local desc=$1 want=$2 got
	shift 2
	COMP_WORDS=("$@")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMP_LINE="$*"
	COMP_POINT=${#COMP_LINE}
	COMPREPLY=()
	_pushmail
	got=$(printf '%s\n' "${COMPREPLY[@]}" | sed '/^$/d' | sort | tr '\n' ' ')
	got=${got% }
	if [[ $got == "$want" ]]; then
		pass=$((pass + 1))
		echo "ok - $desc"
	else
		fail=$((fail + 1))
		echo "not ok - $desc"
		echo "#   words:    $(printf '[%s]' "$@")"
		echo "#   expected: [$want]"
		echo "#   got:      [$got]"
	fi
}

# contains DESCRIPTION "WORDS THAT MUST ALL BE OFFERED" WORD...
contains()
{
	local desc=$1 w missing=
	local -a need
	read -r -d '' -a need <<< "$2" || true   # the list may span lines
	shift 2
	COMP_WORDS=("$@")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMPREPLY=()
	_pushmail
	for w in "${need[@]}"; do
		printf '%s\n' "${COMPREPLY[@]}" | grep -qxF -- "$w" || missing+=" $w"
	done
	if [[ -z $missing ]]; then
		pass=$((pass + 1))
		echo "ok - $desc"
	else
		fail=$((fail + 1))
		echo "not ok - $desc (missing:$missing)"
	fi
}

# --- options ------------------------------------------------------------------
check "long option prefix" "--config" pushmail --con
check "long options --qu" "--queue-delete --queue-retry" pushmail --qu
check "long options --re" "--read-envelope-from" pushmail --re
contains "every long option" "--config --account --host --port --tls --auth
 --user --from --timeout --read-envelope-from --serverinfo --check --dry-run
 --no-queue --queue-delete --queue-retry --import-msmtprc --version --help" pushmail --
contains "sendmail letters" "-t -i -f -r -F -C -a -N -R -V -L -X -v -oi -oem -odi
 -B8BITMIME -bp -bs -bi -bm -q --dry-run" pushmail -
check "-b modes" "-bi -bm -bp -bs -bv" pushmail -b
check "-B body types" "-B8BITMIME -BBINARYMIME" pushmail -B
check "option after recipients" "--dry-run" pushmail a@b --dr
check "nothing after --" "" pushmail -t -- -
check "recipient word: nothing" "" pushmail -t ''

# --- values -------------------------------------------------------------------
check "--tls values" "implicit off starttls" pushmail --tls ''
check "--tls i" "implicit" pushmail --tls i
check "--auth scram-sha-2" "scram-sha-256 scram-sha-256-plus" pushmail --auth scram-sha-2
contains "--auth all" "auto off plain login cram-md5 scram-sha-1 scram-sha-256
 scram-sha-1-plus scram-sha-256-plus xoauth2 oauthbearer external gssapi" pushmail --auth ''
check "--auth= split, on the =" "auto cram-md5 external gssapi login oauthbearer off plain scram-sha-1 scram-sha-1-plus scram-sha-256 scram-sha-256-plus xoauth2" \
	pushmail --auth =
check "--tls= split, value" "implicit" pushmail --tls = im
check "--auth=x as one word" "--auth=xoauth2" pushmail --auth=x
check "-N first word" "never" pushmail -N n
check "-N comma list" "success,delay success,failure" pushmail -N success,
check "-N attached list" "-Nfailure,success" pushmail -Nfailure,s
check "-R" "full" pushmail -R f
check "-f takes an address" "" pushmail -f ''
check "-f's argument is not an option" "" pushmail -f -C ''
check "--from takes an address" "" pushmail --from ''

# --- files --------------------------------------------------------------------
check "-C file" "$tmp/dir/cert.pem $tmp/dir/conf.ini" pushmail -C "$tmp/dir/c"
check "--config file" "$tmp/dir/conf.ini" pushmail --config "$tmp/dir/co"
check "--config= split file" "$tmp/dir/conf.ini" pushmail --config = "$tmp/dir/co"
check "-X file" "$tmp/dir/cert.pem" pushmail -X "$tmp/dir/ce"
check "grouped -tiC file" "$tmp/dir/conf.ini" pushmail -tiC "$tmp/dir/co"
check "--import-msmtprc FILE" "$tmp/dir/conf.ini" pushmail --import-msmtprc "$tmp/dir/co"
check "--import-msmtprc -- FILE" "$tmp/dir/conf.ini" pushmail --import-msmtprc -- "$tmp/dir/co"
check "attached -Cfile" "-C$tmp/dir/conf.ini" pushmail "-C$tmp/dir/co"

# --- accounts -----------------------------------------------------------------
check "accounts: system + user file" "home1 shared sys1" pushmail -a ''
check "accounts: prefix" "shared sys1" pushmail --account s
check "accounts: prefix sy" "sys1" pushmail --account sy
check "accounts: --account=" "home1 shared sys1" pushmail --account =
check "accounts: --account=h one word" "--account=home1" pushmail --account=h
check "accounts: attached -ah" "-ahome1" pushmail -ah
export XDG_CONFIG_HOME=$tmp/xdg
check "accounts: XDG_CONFIG_HOME" "shared sys1 xdg1" pushmail -a ''
export XDG_CONFIG_HOME=relative/ignored
check "accounts: relative XDG_CONFIG_HOME ignored" "home1 shared sys1" pushmail -a ''
unset XDG_CONFIG_HOME
export PUSHMAIL_CONFIG=$tmp/env.ini
check "accounts: \$PUSHMAIL_CONFIG" "env1" pushmail -a ''
check "accounts: -C wins over \$PUSHMAIL_CONFIG" \
	"home.lan my-relay_2 work x" pushmail -C "$tmp/given.ini" -a ''
check "accounts: --config FILE" "home.lan my-relay_2 work x" \
	pushmail -t --config "$tmp/given.ini" -i --account ''
check "accounts: --config = FILE (split)" "home.lan my-relay_2 work x" \
	pushmail --config = "$tmp/given.ini" -a ''
check "accounts: attached -CFILE" "work" pushmail "-C$tmp/given.ini" -a w
check "accounts: the last -C counts" "bom second" \
	pushmail -C "$tmp/given.ini" -C "$tmp/bom.ini" -a ''
check "accounts: -oi does not take the next word" "env1" pushmail -oi -a ''
check "accounts: -C after the cursor is not used" "env1" pushmail -a ''
unset PUSHMAIL_CONFIG
# shellcheck disable=SC2088  # the literal "~/" a user types
check "accounts: ~/ in -C" "home1 shared" \
	pushmail -C '~/.config/pushmail/config.ini' -a ''
check "accounts: missing file" "" pushmail -C "$tmp/nonexistent.ini" -a ''

# --- queue ids ----------------------------------------------------------------
check "--queue-delete ids" \
	"20261129T235959.000001.17.0a0b 20261130T010203.123456.4242.beef" \
	pushmail --queue-delete ''
check "--queue-retry prefix" "20261130T010203.123456.4242.beef" \
	pushmail --queue-retry 20261130T
check "--queue-retry=2 one word" \
	"--queue-retry=20261129T235959.000001.17.0a0b --queue-retry=20261130T010203.123456.4242.beef" \
	pushmail --queue-retry=2
rm -f "$tmp/bp-args"
check "queue ids with -C" "20261130T010203.123456.4242.beef" \
	pushmail -C "$tmp/given.ini" --queue-delete 20261130
if [[ $(tr '\n' ' ' < "$tmp/bp-args" 2>/dev/null) == "-C $tmp/given.ini -bp " ]]; then
	pass=$((pass + 1)); echo "ok - -bp run with the line's -C"
else
	fail=$((fail + 1)); echo "not ok - -bp run with the line's -C"
	echo "#   args: $(cat "$tmp/bp-args" 2>/dev/null)"
fi

# TAP: a trailing plan, so automake's tap-driver.sh can run this file too
echo "1..$((pass + fail))"
echo "# bash completion: $pass passed, $fail failed"
[[ $fail -eq 0 && $pass -gt 0 ]]
