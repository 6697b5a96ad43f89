# Makes the toolchain rust-toolchain.toml pins usable before any cargo call: when rustup
# does not have it but its stable toolchain is that very version (machines without
# access to Rust's release server), the stable one is linked under the pinned name;
# otherwise rustup installs it.
ensure_toolchain() {
    command -v rustup >/dev/null || {
        echo "rustup is missing: install Rust with rustup (https://rustup.rs) and run again" >&2
        exit 1
    }
    local pinned stable
    pinned=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
    if RUSTUP_AUTO_INSTALL=0 rustup run "$pinned" rustc --version >/dev/null 2>&1; then
        return 0
    fi
    stable=$(rustup run stable rustc --version 2>/dev/null | cut -d' ' -f2 || true)
    if [ "$stable" = "$pinned" ]; then
        rustup +stable target add wasm32-wasip2 >/dev/null
        rustup +stable component add rustfmt clippy >/dev/null
        # `rustup toolchain link` refuses release names: the same link, made directly.
        local host
        host=$(rustup run stable rustc -vV | sed -n 's/^host: //p')
        ln -sfn "$(rustup run stable rustc --print sysroot)" \
            "$(rustup show home)/toolchains/$pinned-$host"
    else
        rustup toolchain install "$pinned" --profile minimal \
            --component rustfmt,clippy --target wasm32-wasip2
    fi
}
