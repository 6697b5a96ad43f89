#!/usr/bin/env bash
# The quickstart demo (docs/quickstart.md): builds what it needs, starts the MDM server
# (mdm-host with the real .wasm components), Apple's side (the DEP simulator, an APNs
# stand-in and simulated devices) and walks a zero-touch enrollment with mdmctl,
# printing each step. Everything listens on free ports of 127.0.0.1 and keeps its state
# in a fresh temporary directory; whatever it started is stopped when it ends.
#
#   ./scripts/demo.sh [--devices N] [--keep] [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

usage() {
    cat <<'USAGE'
usage: scripts/demo.sh [--devices N] [--keep] [--no-build]
  --devices N   simulated iPhones and iPads that enroll (default 5, at most 50)
  --keep        leave everything running at the end (Ctrl-C stops it) and show how to
                go on with mdmctl
  --no-build    use the binaries and components already built under the cargo target
                directory ($CARGO_TARGET_DIR, else target/) instead of building them
USAGE
}

devices=5
keep=false
build=true
while [ $# -gt 0 ]; do
    case "$1" in
        --devices) devices=${2:-}; shift 2 || { usage >&2; exit 2; } ;;
        --devices=*) devices=${1#--devices=}; shift ;;
        --keep) keep=true; shift ;;
        --no-build) build=false; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "demo.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done
case "$devices" in
    '' | *[!0-9]*) echo "demo.sh: --devices wants a number, got '$devices'" >&2; exit 2 ;;
esac
if [ "$devices" -lt 1 ] || [ "$devices" -gt 50 ]; then
    echo "demo.sh: --devices: 1 to 50" >&2
    exit 2
fi
command -v curl >/dev/null || { echo "demo.sh: curl is missing: install it and run again" >&2; exit 1; }

# The demo is self-contained: settings meant for another server must not leak in.
for name in $(compgen -e); do
    case "$name" in SPIN_VARIABLE_* | MDM_SERVER | MDM_TOKEN | MDM_CONTEXT) unset "$name" ;; esac
done

target=${CARGO_TARGET_DIR:-target}
case "$target" in /*) ;; *) target=$root/$target ;; esac
bin=$target/debug
wasm=$target/wasm32-wasip2/release
if $build; then
    . scripts/lib/toolchain.sh
    ensure_toolchain
    rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
    echo "Building the components and the tools (the first build takes a while)..." >&2
    cargo build --release --target wasm32-wasip2 \
        -p mdm-checkin -p mdm-commands -p mdm-admin -p mdm-sync
    cargo build -p mdm-host --bin mdm-host -p mdmctl --bin mdmctl \
        -p mdm-depsim --bin depsim -p mdm-e2e --bin demo-devices
fi
for f in "$bin/mdm-host" "$bin/mdmctl" "$bin/depsim" "$bin/demo-devices" \
    "$wasm/mdm_checkin.wasm" "$wasm/mdm_commands.wasm" "$wasm/mdm_admin.wasm" "$wasm/mdm_sync.wasm"; do
    [ -e "$f" ] || { echo "demo.sh: $f is missing: run without --no-build" >&2; exit 1; }
done

# What every URL the server hands devices says, as behind a TLS-terminating proxy; the
# simulated devices send those requests to the server's local address.
server_url=https://mdm.demo.test
state=$(mktemp -d "${TMPDIR:-/tmp}/mdm-demo.XXXXXX")
pids=()
failed=true
cleanup() {
    { exec 7>&-; } 2>/dev/null || true
    for pid in ${pids[@]+"${pids[@]}"}; do kill "$pid" 2>/dev/null || true; done
    for pid in ${pids[@]+"${pids[@]}"}; do wait "$pid" 2>/dev/null || true; done
    if $failed; then
        echo "demo.sh: failed; logs and state are in $state" >&2
    else
        rm -rf "$state"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step=0
step() {
    step=$((step + 1))
    printf '\n==> %d. %s\n' "$step" "$1"
    shift
    [ $# -eq 0 ] || printf '    %s\n' "$@"
}
indent() { sed 's/^/      /'; }
fail() {
    echo "demo.sh: $*" >&2
    exit 1
}
# mdmctl as you would type it; its output indented below.
ctl() {
    printf '    $ mdmctl'
    printf ' %q' "$@"
    printf '\n'
    "$bin/mdmctl" "$@" 2>&1 | indent
}
# mdmctl -o yaml, keeping the answer in $out; shows the top-level fields named in $1
# (`a|b|c`), or all of it when $1 is empty.
ctl_yaml() {
    local fields=$1
    shift
    printf '    $ mdmctl -o yaml'
    printf ' %q' "$@"
    printf '\n'
    out=$("$bin/mdmctl" -o yaml "$@" 2>&1) || {
        printf '%s\n' "$out" | indent
        fail "mdmctl $* failed"
    }
    if [ -n "$fields" ]; then
        printf '%s\n' "$out" | grep -E "^($fields):" | indent
        printf '      ...\n'
    else
        printf '%s\n' "$out" | indent
    fi
}
# Waits until `file` has a line matching `pattern` while process `pid` runs.
await() {
    local file=$1 pattern=$2 seconds=$3 pid=$4 what=$5 i
    for ((i = 0; i < seconds * 10; i++)); do
        grep -q -- "$pattern" "$file" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$file" >&2; fail "$what ended"; }
        sleep 0.1
    done
    tail -n 20 "$file" >&2
    fail "$what: nothing like '$pattern' after $seconds s"
}
value() { sed -n "s/^$1[=:] *//p" "${2:-/dev/stdin}" | head -n 1; }
secret() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n'; }

printf 'MDM server quickstart demo: %d simulated iPhones and iPads enroll zero-touch and\n' "$devices"
printf 'answer a command, with Apple stood in for by simulators (state: %s).\n' "$state"

# --- Apple's side --------------------------------------------------------------------
org=$((devices * 3 + 5))
step "Start the DEP simulator: Apple's Device Assignment API for an organisation of $org devices (tests/depsim)"
"$bin/depsim" --listen 127.0.0.1:0 --devices "$org" --seed 1 \
    --org-name "Demo Organisation" --server-name "Demo MDM server" >"$state/depsim.log" 2>&1 &
depsim_pid=$!
pids+=("$depsim_pid")
await "$state/depsim.log" '^base_url=' 30 "$depsim_pid" depsim
dep_url=$(value base_url "$state/depsim.log")
printf '    %s\n' "$(head -n 1 "$state/depsim.log")"

step "Start the devices' side: an APNs stand-in (tests/apnssim) and Apple's device CA (demo-devices)"
mkfifo "$state/devices.in"
"$bin/demo-devices" --dep "$dep_url" --dir "$state/devices" --devices "$devices" \
    <"$state/devices.in" >"$state/devices.log" 2>&1 &
devices_pid=$!
pids+=("$devices_pid")
exec 7>"$state/devices.in"
await "$state/devices.log" '^ready$' 60 "$devices_pid" demo-devices
apns_url=$(value apns_base_url "$state/devices.log")
apns_topic=$(value apns_topic "$state/devices.log")
printf '    APNs stand-in at %s, push topic %s\n' "$apns_url" "$apns_topic"

# --- the server ----------------------------------------------------------------------
step "Start the MDM server: mdm-host serving the four .wasm components (checkin, commands, admin, sync)"
umask 077
admin_key_file=$state/admin-api-key
secret >"$admin_key_file"
manifest=$root/spin.toml
if [ "$wasm" != "$root/target/wasm32-wasip2/release" ]; then
    # spin.toml names the components under target/: point a copy at this target dir.
    manifest=$state/spin.toml
    sed "s#source = \"target/wasm32-wasip2/release/#source = \"$wasm/#" spin.toml >"$manifest"
fi
# Compiling the components takes seconds; the host's cache (named by the wasm's hash) is
# kept beside the build for the next run.
cache=$target/demo/compiled
mkdir -p "$state/server/compiled"
cp "$cache"/*.cwasm "$state/server/compiled/" 2>/dev/null || true
SPIN_VARIABLE_ADMIN_API_KEY=$(cat "$admin_key_file") \
    SPIN_VARIABLE_SYNC_API_KEY=$(secret) \
    SPIN_VARIABLE_STORAGE_KEY=$(secret) \
    SPIN_VARIABLE_APPLE_DEVICE_CA=$(cat "$state/devices/apple-device-ca.pem") \
    "$bin/mdm-host" --from "$manifest" --listen 127.0.0.1:0 --quiet --state-dir "$state/server" \
    --runtime-config-file "$(value runtime_config "$state/devices.log")" \
    --variable "server_url=$server_url" --variable "dep_base_url=$dep_url" \
    --variable "apns_base_url=$apns_url" --variable "apns_topic=$apns_topic" \
    >"$state/server.log" 2>&1 &
server_pid=$!
pids+=("$server_pid")
await "$state/server.log" '^Serving http://' 300 "$server_pid" mdm-host
addr=$(sed -n 's#^Serving http://##p' "$state/server.log" | head -n 1)
server=http://$addr
mkdir -p "$cache"
rm -f "$cache"/*.cwasm
cp "$state/server/compiled/"*.cwasm "$cache/" 2>/dev/null || true
printf '    serving %s; devices are told %s; component logs in %s\n' \
    "$server" "$server_url" "$state/server/logs"
printf '    DEP API: %s, APNs: %s\n' "$dep_url" "$apns_url"

# --- the admin's walk ----------------------------------------------------------------
export MDMCTL_CONFIG=$state/mdmctl.yaml
step "Point mdmctl at the server (a context in a config file of the demo's own)"
ctl config set-context demo --server "$server" --token-file "$admin_key_file"
ctl health

step "Create a server-token slot: the server makes a key pair for Apple Business Manager"
ctl_yaml 'id|name|status|next' tokens create "Demo ABM"
token=$(printf '%s\n' "$out" | value id)

step "Download its public key, to upload in Apple Business Manager"
ctl tokens public-key "$token" -f "$state/demo-public-key.pem"

step "Apple Business Manager (here the DEP simulator) makes the server token for that key"
printf '    $ curl --data-binary @demo-public-key.pem %s/_depsim/server-token -o demo-token.p7m\n' "$dep_url"
curl -fsS --data-binary @"$state/demo-public-key.pem" "$dep_url/_depsim/server-token" \
    -o "$state/demo-token.p7m"
printf '      %s bytes of S/MIME that only the slot'"'"'s private key opens\n' \
    "$(wc -c <"$state/demo-token.p7m" | tr -d ' ')"

step "Upload the server token: the server decrypts it and seals the OAuth secrets"
ctl_yaml 'status|org_name|server_name|access_token_expiry' tokens upload "$token" "$state/demo-token.p7m"

step "Sync: fetch the devices the organisation assigned to this MDM server"
ctl tokens sync "$token" --wait --interval 1

step "Create the enrollment profile (docs/examples/zero-touch.yaml); the server defines it with Apple"
ctl_yaml 'id|apple_uuid|token' profiles create -f docs/examples/zero-touch.yaml
profile=$(printf '%s\n' "$out" | value id)
apple_uuid=$(printf '%s\n' "$out" | value apple_uuid)

step "Make it the default profile: devices Apple assigns later get it at their sync"
ctl profiles default set "$profile"

step "Assign it to the devices already synced that have no profile yet"
ctl profiles assign "$profile" --filter unassigned
ctl dep-devices list

step "Turn on $devices iPhones and iPads: each asks Apple for its cloud configuration and enrolls zero-touch" \
    "(signed MachineInfo -> enrollment profile -> SCEP identity -> Authenticate, TokenUpdate -> setup)"
kill -0 "$devices_pid" 2>/dev/null || fail "demo-devices ended: $(tail -n 5 "$state/devices.log")"
echo "enroll $addr $apple_uuid" >&7
await "$state/devices.log" '^enrolled ' 300 "$devices_pid" "the enrollment"
grep '^device ' "$state/devices.log" | sed 's/^device /      /'

step "The server's view of its devices"
ctl devices list

udid=$(grep -m 1 '^device ' "$state/devices.log" | cut -d' ' -f3)
step "Send the first device a command (docs/examples/device-information.yaml): the server queues it and pushes the device through APNs"
ctl_yaml '' commands send "$udid" -f docs/examples/device-information.yaml
command_uuid=$(printf '%s\n' "$out" | value command_uuid)
[ -n "$command_uuid" ] || fail "no command_uuid in the answer"

step "The device wakes on the push, fetches the command and answers it"
await "$state/devices.log" "^answered $udid DeviceInformation $command_uuid " 60 "$devices_pid" "the answer"
grep -E "^(pushed|answered) $udid" "$state/devices.log" | tail -n 2 | sed 's/^/      /'

step "The command's history on the server"
ctl commands history "$udid"

enrolled=$("$bin/mdmctl" -o csv devices list --enrolled true | tail -n +2 | grep -c . || true)
[ "$enrolled" = 1 ] && noun=device || noun=devices
cat <<SUMMARY

Done: a server token connected, an enrollment profile defined with Apple and assigned,
$enrolled $noun enrolled zero-touch, and command $command_uuid
(DeviceInformation) pushed to $udid and answered.
SUMMARY
failed=false

if $keep; then
    cat <<KEEP

Everything keeps running until you press Ctrl-C. In another terminal:
  export MDMCTL_CONFIG=$MDMCTL_CONFIG
  $bin/mdmctl devices list
  $bin/mdmctl commands send $udid --request-type InstalledApplicationList
  $bin/mdmctl commands history $udid
(cargo run -q -p mdmctl -- ... works as well.) docs/quickstart.md lists more to try.
KEEP
    wait "$server_pid" || true
fi
