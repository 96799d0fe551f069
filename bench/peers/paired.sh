#!/usr/bin/env bash
# paired.sh PEERBIN [ROUNDS] [DURATION] [PEERS] [INTERVAL] [MODE]
#
# Measures handoff against each peer at the same time: two bench/restart
# runs side by side, each with its own wrk (one thread, 25 connections)
# against its own server, both restarted every INTERVAL (default 1s; 1h
# measures serving alone). Whatever else the machine does slows both
# alike, so the ratio of their requests is steadier than two runs one
# after the other, whose totals swing by 10% and more here. Which of the
# two starts first alternates by round. Prints each round (requests,
# errors, server CPU per request, restarts that took place) and the
# median ratio handoff/peer; a
# ratio of 1 or more means handoff served at least as many requests.
# With PIN=1 each side (its server, the server's restarts and its wrk)
# runs on a CPU of its own, 0 or 1, swapped every round, so that the two
# do not compete for the same cores. The CPUs need not be alike (here
# one serves 50% more than the other): over an even number of rounds the
# geometric mean of the ratios cancels that out, but single rounds swing
# by 30% and more. With PIN=same both sides run on CPU 0: they share one
# CPU, time-sliced, so whatever slows it slows both within the same
# milliseconds; the side whose server spends less per request serves
# more. Rounds then agree to about 1%. Run it from the
# repository root. Defaults: 10 rounds
# of 15s against endless, grace, tableflip and forkshutdown, mode
# keepalive (or close: every request on a new connection).
set -uo pipefail
bin=${1:?usage: paired.sh PEERBIN [ROUNDS] [DURATION] [PEERS] [INTERVAL] [MODE]}
rounds=${2:-10}
duration=${3:-15s}
peers=${4:-endless grace tableflip forkshutdown}
interval=${5:-1s}
mode=${6:-keepalive}
go build -o /tmp/handoff-bench-restart ./bench/restart || exit 1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
run() { # run SERVER CPU: one bench run into $out/SERVER, on CPU if PIN is set
	local args=(-mode "$mode" -threads 1 -conns 25 -duration "$duration" -interval "$interval" -server "$bin/$1")
	[ "$1" = grace ] && args+=(-signal USR2)
	local pin=()
	case "${PIN:-}" in
	"") ;;
	same) pin=(taskset -c 0) ;;
	*) pin=(taskset -c "$2") ;;
	esac
	"${pin[@]}" /tmp/handoff-bench-restart "${args[@]}" >"$out/$1" 2>&1
}
get() { grep -o "$1=[0-9.]*" "$out/$2" | head -1 | cut -d= -f2; }
for peer in $peers; do
	ratios=()
	for round in $(seq 1 "$rounds"); do
		if [ $((round % 2)) = 1 ]; then
			run handoff 0 & a=$!; run "$peer" 1 & b=$!
		else
			run "$peer" 0 & b=$!; run handoff 1 & a=$!
		fi
		wait $a $b
		h=$(get requests handoff) p=$(get requests "$peer")
		he=$(( $(get connect handoff) + $(get read handoff) + $(get write handoff) + $(get timeout handoff) ))
		pe=$(( $(get connect "$peer") + $(get read "$peer") + $(get write "$peer") + $(get timeout "$peer") ))
		ratio=$(awk -v h="$h" -v p="$p" 'BEGIN { printf "%.3f", (p > 0 ? h / p : 0) }')
		ratios+=("$ratio")
		# Restarts that happened: a failed one costs the server nothing.
		hr=$(( $(get restarts handoff) - $(get failed_restarts handoff) ))
		pr=$(( $(get restarts "$peer") - $(get failed_restarts "$peer") ))
		printf 'handoff %9s req %4s errors %5sus/req %3s restarts | %-12s %9s req %4s errors %5sus/req %3s restarts | ratio %s\n' \
			"$h" "$he" "$(get server_cpu_per_request handoff)" "$hr" "$peer" "$p" "$pe" "$(get server_cpu_per_request "$peer")" "$pr" "$ratio"
	done
	printf '%s\n' "${ratios[@]}" | sort -n | awk -v peer="$peer" -v iv="$interval" -v mode="$mode" \
		'{ r[NR] = $1; lg += log($1) } END { m = (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
		printf "handoff/%s, %s, restarts every %s: median %.3f, geometric mean %.3f, lowest %.3f, highest %.3f over %d rounds\n", peer, mode, iv, m, exp(lg / NR), r[1], r[NR], NR }'
done
