#!/bin/bash
# Container health check for syncd without curl: an HTTP/1.1 GET over bash's /dev/tcp.
#   syncd-healthcheck [/healthz|/readyz]
# Exit 0 when syncd answers 200, 1 otherwise. The port comes from SYNCD_LISTEN (default 8787).
set -u
path=${1:-/healthz}
port=${SYNCD_LISTEN##*:}
case $port in ''|*[!0-9]*) port=8787 ;; esac
exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
printf 'GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$path" >&3
IFS= read -r -t 4 status <&3 || exit 1
case $status in
  "HTTP/1."[01]" 200 "*) exit 0 ;;
  *) echo "syncd-healthcheck: $path: ${status%$'\r'}" >&2; exit 1 ;;
esac
