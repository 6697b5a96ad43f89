# `need <command> <debian package>`: makes sure a tool the scripts run is installed.
# As root on Debian/Ubuntu it installs the package; otherwise it says what to install
# and stops, rather than failing later with a less clear message.
need() {
    local cmd=$1 pkg=$2
    command -v "$cmd" >/dev/null && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing $pkg (for $cmd)" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y "$pkg" >/dev/null \
            || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y "$pkg" >/dev/null; }
        command -v "$cmd" >/dev/null && return 0
    fi
    echo "$cmd is missing: install it (Debian/Ubuntu: sudo apt-get install $pkg) and run again" >&2
    exit 1
}
