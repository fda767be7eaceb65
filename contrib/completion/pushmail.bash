# bash completion for pushmail(1)                          -*- shell-script -*-
#
# Install as /usr/share/bash-completion/completions/pushmail (bash-completion
# loads it on first use), or source it from ~/.bashrc.  Self-contained: it does
# not need the bash-completion package's helpers.
#
# Completes the sendmail letters and pushmail's long options; file names
# after -C/--config/-X and for the operand of --import-msmtprc; account names
# after -a/--account: the section names, except [defaults], of the files
# pushmail would read (the -C/--config given earlier on the line, else
# $PUSHMAIL_CONFIG, else /etc/pushmail.ini and
# ${XDG_CONFIG_HOME:-~/.config}/pushmail/config.ini); queue ids after
# --queue-delete/--queue-retry: the first word of the `pushmail -bp` lines
# that start with a digit, except the all-digit count of the summary line.

# The system file; a package built with another --sysconfdir may change it,
# and tests point it elsewhere.
: "${_pushmail_system_config:=/etc/pushmail.ini}"

_pushmail_short_opts='-t -i -v -m -n -G -U -f -r -F -C -a -N -R -V -L -X -h -A -O
 -oi -oem -odi -odb -B8BITMIME -BBINARYMIME -bm -bp -bs -bi -bv -I -q'
_pushmail_long_opts='--config --account --host --port --tls --auth --user --from
 --timeout --read-envelope-from --serverinfo --check --dry-run --no-queue --due
 --verbose --queue-delete --queue-retry --import-msmtprc --version --help'
_pushmail_auth_values='auto off plain login cram-md5 scram-sha-1 scram-sha-256
 scram-sha-1-plus scram-sha-256-plus xoauth2 oauthbearer external gssapi'

# _pushmail_takes_arg WORD: print the option that makes the *next* word its
# argument ("-C", "--config", ...), or nothing.  Handles grouped letters as
# pushmail's parser does: "-tiC" takes the next word; "-Cfile", "-oi", "-bp",
# "-q15m" and "--config=FILE" do not.
_pushmail_takes_arg()
{
	local w=$1 i ch
	case $w in
	--config|--account|--host|--port|--tls|--auth|--user|--from|--timeout|\
	--queue-delete|--queue-retry)
		printf '%s\n' "$w"; return ;;
	--*|-|'') return ;;
	-*) ;;
	*) return ;;
	esac
	for ((i = 1; i < ${#w}; i++)); do
		ch=${w:i:1}
		case $ch in
		o)                               # "-o x [value]": the next word
			((i == ${#w} - 1)) && printf -- '-o\n'
			return ;;
		B|b|q) return ;;                 # the rest of the word is the value
		f|r|F|C|a|N|R|V|L|X|h|A|O)
			((i == ${#w} - 1)) && printf -- '-%s\n' "$ch"
			return ;;
		esac
	done
}

# _pushmail_scan: walk the words before the one being completed, as
# pushmail's parser would, and set (in the caller's scope)
#   _pm_pending  the option whose argument the current word is, or empty
#   _pm_config   the last -C/--config value, ~/ expanded, or empty
#   _pm_rcpt     1 after a lone "--" (every later word is a recipient)
#   _pm_import   1 after --import-msmtprc (its operand is a file)
_pushmail_scan()
{
	local i w
	_pm_pending='' _pm_config='' _pm_rcpt='' _pm_import=''
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		if [[ -n $_pm_pending ]]; then
			# COMP_WORDBREAKS splits "--config=FILE" into
			# "--config" "=" "FILE"
			if [[ $w == = && $_pm_pending == --* &&
				${COMP_WORDS[i - 1]} == "$_pm_pending" ]]; then
				continue
			fi
			[[ $_pm_pending == -C || $_pm_pending == --config ]] &&
				_pm_config=$w
			_pm_pending=
			continue
		fi
		case $w in
		--) _pm_rcpt=1; return ;;
		--import-msmtprc) _pm_import=1; continue ;;
		--config=?*) _pm_config=${w#--config=}; continue ;;
		-C?*) _pm_config=${w#-C}; continue ;;
		esac
		_pm_pending=$(_pushmail_takes_arg "$w")
	done
	# shellcheck disable=SC2088  # a literal "~/" typed on the line
	[[ $_pm_config == '~/'* ]] && _pm_config=$HOME/${_pm_config#'~/'}
}

# _pushmail_sections FILE...: the account names in these INI files.  A
# section line is "[name]" at the start of a line, optionally followed by
# blanks and a comment (as pushmail's reader requires).
_pushmail_sections()
{
	local f line re='^\[([A-Za-z0-9._-]{1,32})\][[:blank:]]*([;#].*)?$'
	for f; do
		[[ -r $f && -f $f ]] || continue
		while IFS= read -r line || [[ -n $line ]]; do
			line=${line#$'\xef\xbb\xbf'}
			line=${line%$'\r'}
			[[ $line =~ $re ]] || continue
			[[ ${BASH_REMATCH[1]} == defaults ]] && continue
			printf '%s\n' "${BASH_REMATCH[1]}"
		done < "$f"
	done
}

_pushmail_accounts()
{
	local user
	if [[ -n $_pm_config ]]; then
		_pushmail_sections "$_pm_config"
	elif [[ -n ${PUSHMAIL_CONFIG-} ]]; then
		_pushmail_sections "$PUSHMAIL_CONFIG"
	else
		if [[ ${XDG_CONFIG_HOME-} == /* ]]; then
			user=$XDG_CONFIG_HOME/pushmail/config.ini
		else
			user=$HOME/.config/pushmail/config.ini
		fi
		_pushmail_sections "$_pushmail_system_config" "$user"
	fi | sort -u
}

# Queue ids from "pushmail -bp" (with the line's -C/--config, which can name
# another queue_dir).  The program is the one being completed when it runs.
_pushmail_queue_ids()
{
	local prog=${COMP_WORDS[0]} id
	# shellcheck disable=SC2088
	[[ $prog == '~/'* ]] && prog=$HOME/${prog#'~/'}
	if [[ $prog == */* ]]; then
		[[ -x $prog ]] || prog=pushmail
	else
		command -v -- "$prog" >/dev/null 2>&1 || prog=pushmail
	fi
	"$prog" ${_pm_config:+-C "$_pm_config"} -bp 2>/dev/null </dev/null |
		while read -r id _; do
			# "1 queued, 0 failed in DIR" also starts with a digit
			[[ $id == [0-9]* && $id == *[!0-9]* ]] &&
				printf '%s\n' "$id"
		done
}

# _pushmail_reply WORDS CUR [PREFIX]: set COMPREPLY to the words that start
# with CUR, each with PREFIX put back in front ("-a" for "-awork").
_pushmail_reply()
{
	local w
	local -a m
	mapfile -t m < <(IFS=$' \t\n'; compgen -W "$1" -- "$2")
	COMPREPLY=()
	for w in "${m[@]}"; do
		COMPREPLY+=("$3$w")
	done
}

_pushmail_files()
{
	local w
	local -a m
	compopt -o filenames 2>/dev/null
	mapfile -t m < <(compgen -f -- "$1")
	COMPREPLY=()
	for w in "${m[@]}"; do
		COMPREPLY+=("$2$w")
	done
}

# Complete the value CUR of option OPT (prefix: text to keep in front).
_pushmail_value()
{
	local opt=$1 cur=$2 prefix=$3 IFS=$' \t\n'
	case $opt in
	-C|--config|-X) _pushmail_files "$cur" "$prefix" ;;
	-a|--account) _pushmail_reply "$(_pushmail_accounts)" "$cur" "$prefix" ;;
	--queue-delete|--queue-retry)
		_pushmail_reply "$(_pushmail_queue_ids)" "$cur" "$prefix" ;;
	--tls) _pushmail_reply 'starttls implicit off' "$cur" "$prefix" ;;
	--auth) _pushmail_reply "$_pushmail_auth_values" "$cur" "$prefix" ;;
	--port) _pushmail_reply '587 465 25' "$cur" "$prefix" ;;
	--host) _pushmail_reply "$(compgen -A hostname)" "$cur" "$prefix" ;;
	-R) _pushmail_reply 'full hdrs' "$cur" "$prefix" ;;
	-N)     # a comma list: complete the last element
		local head='' w words=''
		[[ $cur == *,* ]] && head=${cur%,*},
		[[ -z $head ]] && words=never
		for w in success failure delay; do
			[[ ,$head == *",$w,"* ]] || words+=" $w"
		done
		_pushmail_reply "$words" "${cur##*,}" "$prefix$head" ;;
	*) COMPREPLY=() ;;   # addresses, names, durations: nothing to offer
	esac
}

_pushmail()
{
	local cur=${COMP_WORDS[COMP_CWORD]} IFS=$' \t\n'
	local _pm_pending _pm_config _pm_rcpt _pm_import
	COMPREPLY=()
	_pushmail_scan
	if [[ -n $_pm_rcpt ]]; then        # operands only
		[[ -n $_pm_import ]] && _pushmail_files "$cur" ""
		return 0
	fi

	if [[ -n $_pm_pending ]]; then
		# "--config" "=" with the cursor on the "="
		if [[ $cur == = && $_pm_pending == --* ]]; then
			_pushmail_value "$_pm_pending" "" ""
		else
			_pushmail_value "$_pm_pending" "$cur" ""
		fi
		return 0
	fi

	case $cur in
	--*=*)  # "--opt=value" as one word ('=' not in COMP_WORDBREAKS)
		_pushmail_value "${cur%%=*}" "${cur#*=}" "${cur%%=*}=" ;;
	--*)
		_pushmail_reply "$_pushmail_long_opts" "$cur" "" ;;
	-C?*|-X?*|-a?*|-N?*|-R?*)   # value attached to the letter
		_pushmail_value "${cur:0:2}" "${cur:2}" "${cur:0:2}" ;;
	-*)
		_pushmail_reply "$_pushmail_short_opts $_pushmail_long_opts" "$cur" "" ;;
	*)      # recipients, or the msmtprc file to import
		[[ -n $_pm_import ]] && _pushmail_files "$cur" "" ;;
	esac
	return 0
}

complete -F _pushmail pushmail
