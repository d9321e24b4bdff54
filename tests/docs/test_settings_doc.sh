#!/bin/bash
# test_settings_doc.sh TRLC SRCDIR — docs/settings.md's generated section (between its BEGIN / END
# blocks-and-settings markers) is what `trlc check --settings` prints now: fails when the schema
# (compiler/schema.c) changed and the section was not regenerated.
set -u
trlc=$1 src=$2
doc=$src/docs/settings.md
want=$(mktemp) got=$(mktemp)
trap 'rm -f "$want" "$got"' EXIT
if ! grep -q '^<!-- BEGIN blocks-and-settings' "$doc" || ! grep -q '^<!-- END blocks-and-settings' "$doc"; then
    echo "docs/settings.md has no BEGIN / END blocks-and-settings markers"; exit 1
fi
awk '/^<!-- BEGIN blocks-and-settings/ { f = 1; next } /^<!-- END blocks-and-settings/ { f = 0 } f' "$doc" >"$want"
"$trlc" check --settings >"$got" || { echo "trlc check --settings failed"; exit 1; }
[ -s "$got" ] || { echo "trlc check --settings printed nothing"; exit 1; }
if diff -u "$want" "$got"; then
    echo "docs.settings: 1 passed, 0 failed"
else
    echo "docs/settings.md's generated section is stale: replace it with \`trlc check --settings\`"; exit 1
fi
