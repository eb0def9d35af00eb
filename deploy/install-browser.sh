#!/bin/sh
# Debian's Chromium for the browser tests (Playwright drives it; Playwright's own browser download
# is not reachable from these machines, so `playwright install` is never run), and a Chinese font
# so that zh-CN pages render as text, not boxes, in the tests' screenshots.
# A no-op when both are there; CHROMIUM may name another browser binary.
set -eu
PACKAGES=""
have_chromium=""
if [ -n "${CHROMIUM:-}" ] && [ -x "${CHROMIUM}" ]; then have_chromium=1; fi
for candidate in /usr/bin/chromium /usr/bin/chromium-browser; do
    if [ -x "$candidate" ]; then have_chromium=1; fi
done
[ -n "$have_chromium" ] || PACKAGES="chromium"
# Only on Debian-like machines: elsewhere the font is nice to have, not needed.
if command -v dpkg >/dev/null 2>&1 && ! dpkg -s fonts-wqy-microhei >/dev/null 2>&1; then
    PACKAGES="$PACKAGES fonts-wqy-microhei"
fi
[ -n "$PACKAGES" ] || exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    [ -n "$have_chromium" ] && exit 0
    echo "install-browser: no chromium found and no apt-get to install it; install Chromium and set CHROMIUM=/path/to/it" >&2
    exit 1
fi
if [ "$(id -u)" = "0" ]; then
    AS_ROOT=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    AS_ROOT="sudo -n"
else
    [ -n "$have_chromium" ] && exit 0
    echo "install-browser: chromium is missing; run 'sudo apt-get install chromium' (or set CHROMIUM=/path/to/it)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "install-browser: installing$PACKAGES for the browser tests"
# The package lists may be empty on a fresh machine: update only when a package is not known yet.
for package in $PACKAGES; do
    if ! apt-cache show "$package" >/dev/null 2>&1; then
        $AS_ROOT apt-get update -qq
        break
    fi
done
# shellcheck disable=SC2086  # the list is meant to split into packages
$AS_ROOT apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
