# Sourced by the scripts in tests/perf: starts a gateway the way they all
# measure one.
#
#   start_gateway BIN DIR [ARGS...]
#
# runs `BIN serve [ARGS...]` (warnings only in its log) on the data dir DIR/data,
# listening on a free loopback port (unless ARGS give --listen: a
# federation's gateway listens where its registry says), its output in
# DIR/serve.out and DIR/serve.err; sets gateway_pid, gateway_url and
# public_url (the tlog-tiles listener, also on a free port). If it is not
# listening within 10 s, prints its errors and exits 1.
start_gateway() {
  local bin=$1 dir=$2
  shift 2
  local listen=(--listen 127.0.0.1:0)
  case " $* " in *" --listen "*) listen=() ;; esac
  mkdir -p "$dir"
  XGATE_LOG=warn "$bin" serve --data-dir "$dir/data" "${listen[@]}" --public-listen 127.0.0.1:0 "$@" > "$dir/serve.out" 2> "$dir/serve.err" &
  gateway_pid=$!
  for _ in $(seq 100); do grep -q listening "$dir/serve.out" 2>/dev/null && break; sleep 0.1; done
  gateway_url=$(awk '/listening on/ {print $4; exit}' "$dir/serve.out")
  public_url=$(awk '/tlog-tiles on/ {print $4; exit}' "$dir/serve.out")
  [ -n "$gateway_url" ] || { echo "$bin serve did not start:" >&2; cat "$dir/serve.err" >&2; exit 1; }
}
