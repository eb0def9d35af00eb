#!/bin/sh
# Debian's Chromium for the browser tests (Playwright drives it over CDP; Playwright's own browser
# download is not reachable from these machines, so `playwright install` is never run).
# A no-op when a Chromium is already there; CHROMIUM may name another binary.
set -eu
if [ -n "${CHROMIUM:-}" ] && [ -x "${CHROMIUM}" ]; then exit 0; fi
for candidate in /usr/bin/chromium /usr/bin/chromium-browser; do
    if [ -x "$candidate" ]; then exit 0; fi
done
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: no chromium found and no apt-get to install it; install Chromium and set CHROMIUM=/path/to/it" >&2
    exit 1
fi
if [ "$(id -u)" = "0" ]; then
    AS_ROOT=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    AS_ROOT="sudo -n"
else
    echo "install-browser: chromium is missing; run 'sudo apt-get install chromium' (or set CHROMIUM=/path/to/it)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "install-browser: installing Debian's chromium for the browser tests"
# The package lists may be empty on a fresh machine: update only when chromium is not known yet.
if ! apt-cache show chromium >/dev/null 2>&1; then
    $AS_ROOT apt-get update -qq
fi
$AS_ROOT apt-get install -y -qq --no-install-recommends chromium >/dev/null
