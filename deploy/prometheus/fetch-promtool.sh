#!/bin/sh
# Best effort: put Debian's promtool into the virtualenv's bin/ (argument 1), for the test that runs
# `promtool check rules` and `promtool test rules` on deploy/prometheus/. Without apt (not Debian,
# no package lists, no root for the cache) it says so and succeeds: the tests then still check the
# rules' structure and parse every PromQL expression.
set -u
bin_dir=$1
[ -x "$bin_dir/promtool" ] && exit 0
command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1 || {
    echo "note: no apt-get/dpkg-deb here; promtool checks of the alert rules will be skipped"; exit 0; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if (cd "$work" && apt-get download prometheus >/dev/null 2>&1) && dpkg-deb -x "$work"/prometheus_*.deb "$work/x"; then
    cp "$work/x/usr/bin/promtool" "$bin_dir/promtool" && echo "installed promtool into $bin_dir"
else
    echo "note: could not download Debian's prometheus package; promtool checks will be skipped"
fi
exit 0
