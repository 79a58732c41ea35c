#!/usr/bin/env bash
# Installs Debian's Chromium for the browser test. Playwright drives it through executablePath; nothing downloads a
# browser of its own.
set -euo pipefail
if command -v chromium >/dev/null; then exit 0; fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
