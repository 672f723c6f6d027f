# Sourced by scripts/run, scripts/test and .ci/run: installs what a fresh machine lacks and
# points cargo at a target directory that outlives the clone (a cold RocksDB build takes
# 15-25 minutes on 2 cores).

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo is missing; install Rust with rustup (https://rustup.rs) and retry" >&2
    exit 2
fi

# RocksDB's bindings need libclang.
if ! dpkg -s libclang-dev >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "setup: installing libclang-dev (needed to build RocksDB's bindings)" >&2
    $SUDO apt-get update && $SUDO apt-get install -y libclang-dev
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kalamdb-target}"
mkdir -p "$CARGO_TARGET_DIR"
