#!/usr/bin/env bash
# compare.sh PEERBIN [ROUNDS] [DURATION] [MODES]
#
# Runs bench/restart against each server built by build.sh into PEERBIN
# (handoff, endless, grace, tableflip, forkshutdown: the same routes, each
# a program of its own of the same size), one after the other, and prints
# one line per run: server, mode, round, requests, requests/s, socket
# errors, non-2xx, slow requests cut, restarts, failed restarts and the
# servers' CPU time per request. The order turns by one server each round,
# so that none is always first after a pause or always last. Run it from
# the repository root. Defaults: 3 rounds of 30s, modes "keepalive close".
#
# Runs one after the other swing with the machine's other load by 10% and
# more; paired.sh measures two servers at once, which cancels that.
set -uo pipefail
bin=${1:?usage: compare.sh PEERBIN [ROUNDS] [DURATION] [MODES]}
rounds=${2:-3}
duration=${3:-30s}
modes=${4:-keepalive close}
go build -o /tmp/handoff-bench-restart ./bench/restart || exit 1
servers=(handoff endless grace tableflip forkshutdown)
printf '%-13s %-9s %5s %10s %8s %7s %6s %8s %9s %15s %9s\n' server mode round requests req/s errors non2xx slow_cut restarts failed_restarts cpu/req
for round in $(seq 1 "$rounds"); do
	for mode in $modes; do
		for i in "${!servers[@]}"; do
			server=${servers[$(((i + round - 1) % ${#servers[@]}))]}
			args=(-mode "$mode" -duration "$duration" -server "$bin/$server")
			[ "$server" = grace ] && args+=(-signal USR2)
			out=$(/tmp/handoff-bench-restart "${args[@]}" 2>/dev/null)
			get() { grep -o "$1=[0-9.]*" <<<"$out" | head -1 | cut -d= -f2; }
			errs=$(( $(get connect) + $(get read) + $(get write) + $(get timeout) ))
			printf '%-13s %-9s %5s %10s %8s %7s %6s %8s %9s %15s %9s\n' "$server" "$mode" "$round" \
				"$(get requests)" "$(get rps)" "$errs" "$(get non2xx)" "$(get slow_cut)" "$(get restarts)" \
				"$(get failed_restarts)" "$(get server_cpu_per_request)us"
		done
	done
done
