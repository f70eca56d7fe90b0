#!/usr/bin/env bash
# The dashboard's tools and tests.
#   .ci/ui.sh test         Vitest unit tests, then the browser tests (Debian
#                          chromium + playwright-core) against a real analyticsd;
#                          needs TEST_DATABASE_URL and TEST_REDIS_URL (make test
#                          sets them)
#   .ci/ui.sh check-build  rebuild ui/dist and fail if the committed build differs
# Node.js (>= 18.18), npm and chromium are installed from Debian's packages when
# missing and run as root; otherwise the script says what to install.
set -euo pipefail
cd "$(dirname "$0")/.."
web=ui/web

need_pkgs=()
node_ok() { command -v node >/dev/null && node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>18||(a===18&&b>=18)?0:1)'; }
node_ok && command -v npm >/dev/null || need_pkgs+=(nodejs npm)
if [ "${1:-}" = test ] && [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then need_pkgs+=(chromium); fi
if [ "${1:-}" = test ] && ! command -v psql >/dev/null; then need_pkgs+=(postgresql-client); fi
if [ "${1:-}" = test ] && ! command -v redis-cli >/dev/null; then need_pkgs+=(redis-tools); fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "installing ${need_pkgs[*]} (Debian packages)" >&2
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
	else
		echo "the dashboard's tests need: sudo apt-get install -y ${need_pkgs[*]}" >&2
		exit 1
	fi
fi
node_ok || { echo "Node.js $(node --version) is too old: 18.18 or newer is needed" >&2; exit 1; }

# Dependencies exactly as locked; reinstalled only when the lock changed.
stamp=$web/node_modules/.lock-stamp
if [ ! -f "$stamp" ] || ! cmp -s "$web/package-lock.json" "$stamp"; then
	(cd "$web" && npm ci --no-audit --no-fund --loglevel=error)
	cp "$web/package-lock.json" "$stamp"
fi

case "${1:-}" in
test)
	(cd "$web" && npx vitest run)
	bindir=$(mktemp -d)
	trap 'rm -rf "$bindir"' EXIT
	go build -o "$bindir/analyticsd" ./cmd/analyticsd
	ANALYTICSD_BIN=$bindir/analyticsd node "$web/e2e/run.mjs"
	;;
check-build)
	(cd "$web" && npm run --silent build >/dev/null)
	if ! git diff --quiet -- ui/dist || [ -n "$(git ls-files --others --exclude-standard ui/dist)" ]; then
		git status --short ui/dist >&2
		echo "ui/dist is stale: run 'cd ui/web && npm run build' and commit ui/dist" >&2
		exit 1
	fi
	echo "ui/dist matches its sources"
	;;
*)
	echo "usage: .ci/ui.sh test|check-build" >&2
	exit 2
	;;
esac
