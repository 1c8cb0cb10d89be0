#!/bin/sh
# Put Debian's OpenBLAS (libopenblas0-pthread) in benchmarks/.openblas/ without installing it,
# for `run.py --lme4-openblas benchmarks/.openblas`: apt-get download fetches the package
# and dpkg -x unpacks it there, so R's system-wide BLAS (update-alternatives) stays as it
# is and only the benchmark's second R process loads OpenBLAS.
set -eu
dest="$(cd "$(dirname "$0")" && pwd)/.openblas"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download libopenblas0-pthread
dpkg -x libopenblas0-pthread_*.deb root
mkdir -p "$dest"
cp -a root/usr/lib/*/openblas-pthread/. "$dest/"
ls "$dest"
