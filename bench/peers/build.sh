#!/usr/bin/env bash
# build.sh CHECKOUTS OUT
#
# Builds the servers of the restart comparison into OUT: handoff (this
# checkout, the size of a program that uses it), endless,
# grace, tableflip (from checkouts of their repositories, which the Go
# module proxy does not serve), forkshutdown (the standard library
# only) and endlessburn (endless with a known cost added). CHECKOUTS holds clones named endless (fvbock/endless), grace,
# httpdown, clock, stats (facebookgo/...) and tableflip
# (cloudflare/tableflip). Modules without a go.mod get one in the copy.
set -euo pipefail
src=${1:?usage: build.sh CHECKOUTS OUT}
out=${2:?usage: build.sh CHECKOUTS OUT}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "$here/src"
mkdir -p "$here/src"
trap 'rm -rf "$here/src"' EXIT
declare -A module=(
	[endless]=github.com/fvbock/endless [grace]=github.com/facebookgo/grace
	[httpdown]=github.com/facebookgo/httpdown [clock]=github.com/facebookgo/clock
	[stats]=github.com/facebookgo/stats [tableflip]=github.com/cloudflare/tableflip
)
for name in "${!module[@]}"; do
	[ -d "$src/$name" ] || { echo "build.sh: $src/$name is missing (a clone of ${module[$name]})" >&2; exit 1; }
	cp -r "$src/$name" "$here/src/$name"
	rm -rf "$here/src/$name/.git"
	[ -f "$here/src/$name/go.mod" ] || printf 'module %s\n\ngo 1.16\n' "${module[$name]}" > "$here/src/$name/go.mod"
done
cd "$here"
for peer in handoff endless grace tableflip forkshutdown endlessburn; do
	GOFLAGS=-mod=mod go build -o "$out/$peer" "./$peer"
	echo "built $out/$peer"
done
