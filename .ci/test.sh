#!/usr/bin/env bash
# `make test`: every test, then a check that the run left the machine as it
# found it.
#
#   1. the Go tests (race detector), then the dashboard's (Vitest, browser),
#      on the PostgreSQL and Redis that .ci/services.sh finds or starts;
#   2. the leftovers check, which fails the run when
#      - a Redis key is left under this run's root, TEST_KEY_ROOT
#        ("test:run-<id>:", new for each run): every test's key prefix and the
#        browser tests' prefix live under it, so other runs on the same Redis
#        (other developers' tests) are never looked at. The keys found are
#        listed, then deleted;
#      - a server .ci/services.sh started for this run would stay up: it is
#        stopped (.ci/services.sh stop), and its directory removed when this
#        run created it;
#      - a process this run started is still running: every process the run
#        starts inherits TEST_RUN_ID=<id> in its environment
#        (/proc/<pid>/environ). The ones found are listed, then stopped by pid;
#      - a tracked file changed, or a file appeared that git does not ignore
#        (compared with `git status` and the files' contents before the run,
#        so work in progress is not counted).
#
# `.ci/test.sh COMMAND…` runs COMMAND instead of the whole suite, with the
# same services and the same check (e.g. one package's tests).
set -uo pipefail
cd "$(dirname "$0")/.."

id=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
export TEST_RUN_ID=$id
export TEST_KEY_ROOT="test:run-$id:"

# git_state lists every changed or untracked file with its content's hash.
git_state() {
	git status --porcelain=v1 --untracked-files=all | while IFS= read -r line; do
		printf '%s %s\n' "$line" "$(git hash-object -- "${line:3}" 2>/dev/null || echo -)"
	done
}
before=$(git_state)

services=$(.ci/services.sh) || exit 1
eval "$services"

status=0
if [ $# -gt 0 ]; then
	"$@" || status=1
else
	go test -race -count=1 ./... && .ci/ui.sh test || status=1
fi

echo
echo "=== leftovers of this run (TEST_RUN_ID=$id)"
left=0

# Redis keys under this run's root (before the services stop: a private
# Redis forgets them).
if ! command -v redis-cli >/dev/null; then
	echo "cannot look for Redis keys: redis-cli is missing (Debian package redis-tools)"
	left=1
else
	keys=$(redis-cli -u "$TEST_REDIS_URL" --scan --pattern "${TEST_KEY_ROOT}*" 2>&1) || {
		echo "cannot look for Redis keys: $keys"
		keys="" left=1
	}
	if [ -n "$keys" ]; then
		echo "$(wc -l <<<"$keys") Redis key(s) left under $TEST_KEY_ROOT, e.g.:"
		head -n 10 <<<"$keys" | sed 's/^/  /'
		xargs -r -d '\n' -n 500 redis-cli -u "$TEST_REDIS_URL" UNLINK <<<"$keys" >/dev/null
		echo "  (deleted now)"
		left=1
	fi
fi

.ci/services.sh stop

# Processes carrying this run's marker. The marker was exported after this
# shell started, so neither it nor its subshells carry it (environ is what a
# process was exec'd with); the greps below start after the list is made.
procs=()
for env in /proc/[0-9]*/environ; do
	pid=${env#/proc/}
	pid=${pid%/environ}
	if grep -qzxF "TEST_RUN_ID=$id" "$env" 2>/dev/null; then
		procs+=("$pid")
	fi
done
if [ ${#procs[@]} -gt 0 ]; then
	echo "${#procs[@]} process(es) started by this run still running:"
	for pid in "${procs[@]}"; do
		printf '  %s %s\n' "$pid" "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-160)"
	done
	kill "${procs[@]}" 2>/dev/null
	echo "  (sent SIGTERM)"
	left=1
fi

after=$(git_state)
if [ "$before" != "$after" ]; then
	echo "the run changed the working tree (< before, > after: git status and content hash):"
	diff <(sed '/^$/d' <<<"$before") <(sed '/^$/d' <<<"$after") | grep '^[<>]' | sed 's/^/  /'
	left=1
fi

if [ $left = 0 ]; then
	echo "none: no Redis key, no process, no changed file"
else
	echo "FAIL: the run left a trace (above)"
	status=1
fi
exit $status
