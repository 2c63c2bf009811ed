#!/usr/bin/env bash
# sidebyside.sh runs the load tool against several servers in one
# interleaved run, each round on fresh data directories, and prints the
# medians and ratios (redoubt-bench -compare). This machine's figures drift
# 15-20% between runs an hour apart, so only ratios from one run count.
#
#   SERVERS="redoubt=./redoubt dendrite=$HOME/go/bin/dendrite" ROUNDS=3 \
#     cmd/redoubt-bench/sidebyside.sh [load tool flags, e.g. -only send]
#
# A server named dendrite* is Dendrite v0.13.8 on SQLite (generate-keys and
# generate-config beside its binary: `go install
# github.com/matrix-org/dendrite/cmd/{dendrite,generate-keys,generate-config}@v0.13.8`),
# federation off, rate limits off, logging at warn; any other name is a
# Redoubt binary on its defaults with rate limits off. Each round starts
# each server on an empty directory (the first cold start), runs the load
# tool, restarts it on what the run left (the second) and stops it; the
# order of the servers alternates between rounds. Tables go to OUT
# (NAME.ROUND.md), logs beside them. With EXTRA=DIR, DIR/NAME.yaml (if
# there) is added to that Redoubt's configuration: one binary under two
# names compares two configurations.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${SERVERS:?SERVERS=\"name=binary ...\"}"
ROUNDS=${ROUNDS:-3}
OUT=${OUT:-$(mktemp -d)}
PORT=${PORT:-18008}
url=http://127.0.0.1:$PORT
mkdir -p "$OUT"
if [ -z "${BENCH:-}" ]; then
	BENCH=$OUT/redoubt-bench
	(cd "$here/../.." && go build -o "$BENCH" ./cmd/redoubt-bench)
fi

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# configure NAME BIN DIR writes a server's configuration into DIR.
configure() {
	local name=$1 bin=$2 dir=$3
	case $name in
	dendrite*)
		"$(dirname "$bin")/generate-keys" --private-key "$dir/matrix_key.pem" >/dev/null
		"$(dirname "$bin")/generate-config" -dir "$dir" -server bench |
			sed -e 's/disable_federation: false/disable_federation: true/' \
				-e 's/registration_shared_secret: ""/registration_shared_secret: "sidebyside"/' \
				-e '/rate_limiting:/,/enabled:/ s/enabled: true/enabled: false/' \
				-e 's/level: info/level: warn/' >"$dir/dendrite.yaml"
		;;
	*)
		cat >"$dir/redoubt.yaml" <<-YAML
			server_name: bench
			listen: 127.0.0.1:$PORT
			database: $dir/redoubt.db
			registration_shared_secret: sidebyside
			rate_limits:
			  enabled: false
		YAML
		# EXTRA=DIR: DIR/NAME.yaml, if there, is added to NAME's configuration.
		if [ -n "${EXTRA:-}" ] && [ -f "$EXTRA/$name.yaml" ]; then cat "$EXTRA/$name.yaml" >>"$dir/redoubt.yaml"; fi
		;;
	esac
}

# start NAME BIN DIR starts a server and waits until it answers; it sets pid,
# db (what the load tool measures the disk of) and started (milliseconds
# from exec to the first answer of /versions).
start() {
	local name=$1 bin=$2 dir=$3 t0
	t0=$(now_ms)
	case $name in
	dendrite*)
		(cd "$dir" && exec "$bin" -config dendrite.yaml -http-bind-address "127.0.0.1:$PORT") >>"$dir/server.log" 2>&1 &
		db=$dir
		;;
	*)
		"$bin" serve --config "$dir/redoubt.yaml" >>"$dir/server.log" 2>&1 &
		db=$dir/redoubt.db
		;;
	esac
	pid=$!
	until curl -sf -o /dev/null "$url/_matrix/client/versions"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "$name did not start; see $dir/server.log" >&2
			return 1
		fi
		sleep 0.005
	done
	started=$(($(now_ms) - t0))
}

stop() {
	kill "$pid"
	wait "$pid" || true
}

read -ra servers <<<"$SERVERS"
for s in "${servers[@]}"; do echo "${s%%=*}"; done >"$OUT/servers"
for round in $(seq 1 "$ROUNDS"); do
	order=("${servers[@]}")
	if ((round % 2 == 0)); then
		order=()
		for ((i = ${#servers[@]} - 1; i >= 0; i--)); do order+=("${servers[i]}"); done
	fi
	for s in "${order[@]}"; do
		name=${s%%=*} bin=${s#*=}
		dir=$(mktemp -d "$OUT/$name.$round.XXXX")
		table=$OUT/$name.$round.md
		configure "$name" "$bin" "$dir"
		start "$name" "$bin" "$dir"
		empty=$started
		echo "round $round: $name (cold start $empty ms)" >&2
		"$BENCH" -url "$url" -secret sidebyside -pid "$pid" -db "$db" -keep-going "$@" >"$table" 2>"$OUT/$name.$round.log" || true
		stop
		start "$name" "$bin" "$dir"
		stop
		printf '| server | cold start, empty (ms) | %s |\n| server | cold start, after the run (ms) | %s |\n' "$empty" "$started" >>"$table"
		rm -rf "$dir"
	done
done
"$BENCH" -compare "$OUT"
