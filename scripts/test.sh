#!/usr/bin/env bash
# Runs dnsight's test suite on a fresh Debian machine with only the Rust toolchain:
# installs the real DNS tools the tests drive (when missing), then runs every test.
# Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pair in dig:dnsutils tshark:tshark unbound:unbound nsd:nsd dnsperf:dnsperf dnsmasq:dnsmasq \
            iodined:iodine dns2tcpd:dns2tcp ip:iproute2 ldns-signzone:ldnsutils chromium:chromium \
            chromedriver:chromium-driver promtool:prometheus \
            named:bind9 pdns_recursor:pdns-recursor rsyslogd:rsyslog openssl:openssl logger:bsdutils \
            nats-server:nats-server; do
  bin=${pair%%:*}; pkg=${pair##*:}
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || need+=("$pkg")
done
# rsyslog's TLS network stream driver (the syslog-over-TLS test forwards through it)
for d in /usr/lib/*/rsyslog /usr/lib/rsyslog; do [ -e "$d/lmnsd_ossl.so" ] && ossl=1; done
[ -n "${ossl:-}" ] || need+=(rsyslog-openssl)
# PostgreSQL (the triage store's second backend; its binaries live outside PATH on Debian)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || need+=(postgresql)
# the SMTP server the notification tests send e-mail to (Debian's, run with Debian's python3)
/usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1 || need+=(python3-aiosmtpd)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "scripts/test.sh: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "scripts/test.sh: missing ${need[*]} (not root or no apt-get): tests that need them will say they skipped"
  fi
fi
export PATH="$PATH:/usr/sbin:/sbin"
# the PostgreSQL and NATS tests fail instead of skipping when their server is missing here
export DNSIGHT_REQUIRE_PG=1 DNSIGHT_REQUIRE_NATS=1
cargo test --workspace "$@"
