#!/usr/bin/env bash
# compare.sh PEERBIN [ROUNDS] [DURATION] [MODES]
#
# Runs bench/restart against handoff and against each peer built by
# build.sh into PEERBIN, in interleaved rounds (handoff, endless, grace,
# tableflip, forkshutdown, then again), and prints one line per run:
# server, mode, requests, requests/s, socket errors, non-2xx, slow
# requests cut, restarts and failed restarts. Run it from the repository
# root. Defaults: 3 rounds of 30s, modes "keepalive close".
set -uo pipefail
bin=${1:?usage: compare.sh PEERBIN [ROUNDS] [DURATION] [MODES]}
rounds=${2:-3}
duration=${3:-30s}
modes=${4:-keepalive close}
go build -o /tmp/handoff-bench-restart ./bench/restart || exit 1
printf '%-13s %-9s %5s %10s %8s %7s %6s %8s %9s %15s\n' server mode round requests req/s errors non2xx slow_cut restarts failed_restarts
for round in $(seq 1 "$rounds"); do
	for mode in $modes; do
		for server in handoff endless grace tableflip forkshutdown; do
			args=(-mode "$mode" -duration "$duration")
			case $server in
			handoff) ;;
			grace) args+=(-server "$bin/grace" -signal USR2) ;;
			*) args+=(-server "$bin/$server") ;;
			esac
			out=$(/tmp/handoff-bench-restart "${args[@]}" 2>/dev/null)
			get() { grep -o "$1=[0-9.]*" <<<"$out" | head -1 | cut -d= -f2; }
			errs=$(( $(get connect) + $(get read) + $(get write) + $(get timeout) ))
			printf '%-13s %-9s %5s %10s %8s %7s %6s %8s %9s %15s\n' "$server" "$mode" "$round" \
				"$(get requests)" "$(get rps)" "$errs" "$(get non2xx)" "$(get slow_cut)" "$(get restarts)" "$(get failed_restarts)"
		done
	done
done
