#!/usr/bin/env bash
# The one test command (`npm test`): installs what the tests need when missing, then
# type-checks, lints, builds and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests drive as real clients and servers.
need=()
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

[ -d node_modules ] || npm ci --no-audit --no-fund
npm run --silent build
npm run --silent lint
mapfile -t tests < <(find dist/test -name "*.test.js" | sort)
node --test --test-concurrency=1 --test-timeout=300000 "${tests[@]}"
