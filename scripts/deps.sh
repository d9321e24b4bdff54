#!/usr/bin/env bash
# deps.sh — installs what trlc needs to build and test on Debian 12, with apt-get.
# Idempotent: does nothing when every package is already there. Needs root (or sudo).
set -euo pipefail
pkgs=(build-essential cmake pkg-config flex bison
      libopenblas-dev libjansson-dev libpcre2-dev libutf8proc-dev libcsv-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
