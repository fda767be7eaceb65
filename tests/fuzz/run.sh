#!/bin/sh
# run.sh - run libFuzzer targets for a bounded time (CI and `make fuzz-run`).
#
#   run.sh SRCDIR BUILDDIR NAME...
#
# SRCDIR is tests/fuzz in the source tree (corpus/, regress/, *.dict: only
# read); BUILDDIR holds the fuzz_NAME binaries and gets, per target,
# NAME.log, NAME.trs (automake's format, so CI counts it like a test) and
# work/NAME/ (the scratch corpus and any crash artifacts).  Each target
# first replays its regress/ seeds once, then fuzzes for FUZZ_SECONDS over
# a scratch copy of its corpus; new inputs never go into the source tree.
# Any crash, leak, UB report, timeout or OOM fails the target.
#
# Environment: FUZZ_SECONDS (60), FUZZ_JOBS (2: targets run in parallel),
# FUZZ_RSS_MB (2048), FUZZ_TIMEOUT (10: seconds per input).
set -u

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_JOBS=${FUZZ_JOBS:-2}
FUZZ_RSS_MB=${FUZZ_RSS_MB:-2048}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-10}
export FUZZ_SECONDS FUZZ_RSS_MB FUZZ_TIMEOUT

# Longest input worth trying: lines over REPLY_LINE_MAX for the reply and
# session targets, a few KiB elsewhere.
max_len() {
	case $1 in
	reply|session|bsdata) echo 20000 ;;
	cfg|aliases) echo 8192 ;;
	*) echo 4096 ;;
	esac
}

dict_for() {
	case $1 in
	reply|session) echo smtp ;;
	*) echo "$1" ;;
	esac
}

one() {
	src=$1 build=$2 t=$3
	bin=$build/fuzz_$t
	log=$build/$t.log
	trs=$build/$t.trs
	work=$build/work/$t
	status=0

	rm -rf "$work"
	mkdir -p "$work/corpus" "$work/artifacts"
	: >"$log"
	if [ -d "$src/corpus/$t" ]; then
		cp "$src/corpus/$t"/* "$work/corpus/" 2>/dev/null
	fi
	set -- -rss_limit_mb="$FUZZ_RSS_MB" -timeout="$FUZZ_TIMEOUT" \
		-max_len="$(max_len "$t")" -artifact_prefix="$work/artifacts/"
	d=$src/$(dict_for "$t").dict
	[ -f "$d" ] && set -- "$@" -dict="$d"

	if [ ! -x "$bin" ]; then
		echo "fuzz_$t: not built" >>"$log"
		status=1
	fi
	# stderr of the code under test (log_err) would flood the log: closed
	# (-close_fd_mask=2); libFuzzer and the sanitizers report on a dup.
	if [ $status -eq 0 ] && [ -d "$src/regress/$t" ] &&
	   [ -n "$(ls -A "$src/regress/$t" 2>/dev/null)" ]; then
		echo "=== regress seeds" >>"$log"
		timeout -k 10 300 "$bin" "$@" -close_fd_mask=2 \
			"$src/regress/$t"/* >>"$log" 2>&1 || status=1
	fi
	if [ $status -eq 0 ]; then
		echo "=== fuzzing for ${FUZZ_SECONDS}s" >>"$log"
		# -max_total_time bounds the fuzzing; timeout(1) the rest
		# (loading the corpus, a hang outside any one input).
		timeout -k 10 $((FUZZ_SECONDS + 300)) "$bin" "$@" -close_fd_mask=2 \
			-max_total_time="$FUZZ_SECONDS" -print_final_stats=1 \
			"$work/corpus" >>"$log" 2>&1 || status=$?
	fi

	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | sed 's/cov: //')
	if [ $status -eq 0 ]; then res=PASS; else res=FAIL; fi
	printf ':test-result: %s fuzz_%s (%s runs, cov %s)\n:global-test-result: %s\n:recheck: %s\n:copy-in-global-log: %s\n' \
		$res "$t" "${runs:-?}" "${cov:-?}" $res \
		"$([ $res = PASS ] && echo no || echo yes)" \
		"$([ $res = PASS ] && echo no || echo yes)" >"$trs"
	echo "$res: fuzz_$t: ${runs:-?} runs, cov ${cov:-?}, corpus $(ls "$work/corpus" | wc -l) files"
	if [ $res = FAIL ]; then
		ls "$work/artifacts" | sed "s|^|  artifact: $work/artifacts/|"
	fi
	[ $res = PASS ]
}

if [ "${1:-}" = --one ]; then
	shift
	one "$@"
	exit
fi
if [ $# -lt 3 ]; then
	echo "usage: $0 SRCDIR BUILDDIR NAME..." >&2
	exit 2
fi
src=$(cd "$1" && pwd) || exit 2
mkdir -p "$2" && build=$(cd "$2" && pwd) || exit 2
shift 2
for t in "$@"; do
	echo "$t"
done | xargs -P "$FUZZ_JOBS" -I{} sh "$src/run.sh" --one "$src" "$build" {}
