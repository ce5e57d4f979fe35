#!/usr/bin/env bash
# The one test command (`npm test`): installs what the tests need when missing, then
# type-checks, lints, builds and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests drive as real clients and servers: curl and python3 (proxy and
# `trellis run` tests), redis (redis-cli through the mesh), the benchmark's peers for its
# quick-mode test (stunnel, HAProxy, redis-benchmark, iperf3), ip and iptables (network
# namespaces as the hosts and clouds of the multi-host tests, test/support/netns.ts),
# tinyproxy (a real HTTP proxy in those tests) and etcd (the etcd store's tests start their
# own, test/support/etcd.ts), chromium and firefox-esr (the dashboard's browser tests: Chromium
# through playwright-core, Firefox through puppeteer-core over WebDriver BiDi; neither library
# downloads a browser), faketime (libfaketime moves the control plane's wall clock in the chaos
# run's clock-jump). Command:package pairs.
need=()
for pair in curl:curl openssl:openssl python3:python3 redis-server:redis-server redis-cli:redis-tools \
  redis-benchmark:redis-tools stunnel4:stunnel4 haproxy:haproxy iperf3:iperf3 \
  ip:iproute2 iptables:iptables tinyproxy:tinyproxy etcd:etcd-server chromium:chromium firefox-esr:firefox-esr \
  faketime:faketime; do
  command -v "${pair%%:*}" >/dev/null || [ -x "/usr/sbin/${pair%%:*}" ] || need+=("${pair##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(printf "%s\n" "${need[@]}" | sort -u) >/dev/null
fi

[ -d node_modules ] || npm ci --no-audit --no-fund
npm run --silent build
npm run --silent lint
mapfile -t tests < <(find dist/test -name "*.test.js" | sort)
node --test --test-concurrency=1 --test-timeout=300000 "${tests[@]}"
