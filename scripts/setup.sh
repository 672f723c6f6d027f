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

# The backup benchmark compares kalamctl with restic, the tool an operator would pick instead.
if ! command -v restic >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "setup: installing restic (the backup benchmark's peer)" >&2
    $SUDO apt-get install -y restic || { $SUDO apt-get update && $SUDO apt-get install -y restic; }
fi

# The object-storage tests run a real S3-compatible server on loopback (moto's) and read the
# objects kalamd writes there with pyarrow (scripts/read-s3-parquet.py), both from PyPI.
if ! python3 -c 'import moto.server, flask, pyarrow.fs' >/dev/null 2>&1; then
    echo "setup: installing moto and pyarrow (the object-storage tests' S3 server and reader)" >&2
    python3 -m pip install --quiet 'moto[server]==5.2.1' 'pyarrow==26.0.1'
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kalamdb-target}"
mkdir -p "$CARGO_TARGET_DIR"
