#!/usr/bin/env bash
# Debian packages the end-to-end tests need: GDAL's command-line clients (ogrinfo, ogr2ogr);
# Chromium, its WebDriver and a CJK font for the /map viewer test; wrk for `make bench`;
# redis-server for the shared rate limit store test (tests/test_ratelimit.py);
# npm, then the root package.json's packages (MapLibre's style validator) for the style tests;
# curl for the documentation's examples (tests/test_docs_examples.py) and test_request_lines;
# nginx for the shipped proxy config (tests/test_nginx.py, the tile benchmark; never as a service);
# QGIS and its Python bindings for the system python3 (tests/e2e/test_qgis.py).
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v ogrinfo >/dev/null || missing+=(gdal-bin)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
fc-list 2>/dev/null | grep -qi "WenQuanYi Zen Hei" || missing+=(fonts-wqy-zenhei)
command -v wrk >/dev/null || missing+=(wrk)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v npm >/dev/null || missing+=(npm)
command -v curl >/dev/null || missing+=(curl)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v pgbackrest >/dev/null || missing+=(pgbackrest)
command -v pg_autoctl >/dev/null || missing+=(postgresql-15-auto-failover)
/usr/bin/python3 -c "import qgis.core" 2>/dev/null || missing+=(qgis python3-qgis)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing ${missing[*]}: install them (apt-get install ${missing[*]})" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if [[ " ${missing[*]} " == *" nginx "* ]] && [ ! -e /usr/sbin/policy-rc.d ]; then
    # nginx runs only with its own prefix (bench/nginx_proxy.py): its package must not start it.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}"
fi
if [ ! -x node_modules/.bin/gl-style-validate ] || [ package-lock.json -nt node_modules ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
