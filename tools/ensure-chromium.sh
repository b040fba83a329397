#!/usr/bin/env bash
# The browser tests drive Debian's Chromium through playwright-core (never a
# downloaded browser). Install it when missing; needs root, as CI and the dev
# machines have.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
echo "installing Debian's chromium for the browser tests (first time only)..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
