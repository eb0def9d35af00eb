#!/bin/sh
# The console's one third-party script, Chart.js, taken from the npm registry at a pinned version
# and checked against the digest recorded here; its output is committed, so `make run` and
# `make test` need no Node.js. Run this only to update it (change both lines below).
set -eu
VERSION=4.6.2
SHA256=3f288f4f26882c26b58931fb586a9b4f30370b5de38d69dc005b0bd05b08e113
DEST="$(dirname "$0")/../services/gateway/src/crm_gateway/console/static/vendor"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && npm pack --silent "chart.js@$VERSION" >/dev/null && tar xzf "chart.js-$VERSION.tgz")
echo "$SHA256  $WORK/package/dist/chart.umd.min.js" | sha256sum -c -
cp "$WORK/package/dist/chart.umd.min.js" "$DEST/chart.umd.min.js"
cp "$WORK/package/LICENSE.md" "$DEST/chart.js-LICENSE.md"
