#!/usr/bin/env bash
# update_settings_doc.sh — rewrites the blocks-and-settings section of docs/settings.md (between
# its BEGIN/END markers) from `trlc check --settings`; the rest of the file is kept.
# usage: tests/check/update_settings_doc.sh TRLC
set -euo pipefail
trlc=$1
doc=$(dirname "$0")/../../docs/settings.md
export new=$("$trlc" check --settings)   # through the environment: awk -v would expand `\n`
awk '
    /^<!-- BEGIN blocks-and-settings/ { print; print ENVIRON["new"]; print ""; skip = 1; next }
    /^<!-- END blocks-and-settings/   { skip = 0 }
    !skip { print }' "$doc" > "$doc.tmp"
mv "$doc.tmp" "$doc"
