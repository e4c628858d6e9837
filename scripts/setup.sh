#!/usr/bin/env bash
# installs what llm-os needs on a fresh debian/ubuntu machine with rust.
# idempotent and quiet when everything is there; safe to run before every
# command. needs root (or sudo) only for missing apt packages.
#
#   apt:    cmake clang g++ libclang-dev (llama.cpp for the local model), unzip,
#           python3-pip (pip download of the pinned wheels)
#   rustup: the toolchain of rust-toolchain.toml + target aarch64-unknown-none
#   z3:     libz3 from the pinned PyPI wheel z3-solver==5.4.1.0 (scripts/z3-env.sh)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

need_apt=()
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
command -v clang >/dev/null 2>&1 || need_apt+=(clang)
command -v g++ >/dev/null 2>&1 || need_apt+=(g++)
# bindgen needs libclang itself (libclang-dev's unversioned libclang.so);
# libclang-cpp.so of a plain clang install is another library.
ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1 || need_apt+=(libclang-dev)
command -v unzip >/dev/null 2>&1 || need_apt+=(unzip)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: installing ${need_apt[*]} with apt (a minute or two)" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y "${need_apt[@]}" >&2
fi

# the pinned toolchain and the seL4 target (the toolchain file alone does not
# install targets on every rustup).
toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
if ! rustup target list --installed --toolchain "$toolchain" 2>/dev/null | grep -q aarch64-unknown-none; then
    echo "setup: installing the rust toolchain $toolchain + aarch64-unknown-none with rustup (a minute or two)" >&2
    rustup toolchain install "$toolchain" --profile minimal -c rustfmt -c clippy >&2
    rustup target add aarch64-unknown-none --toolchain "$toolchain" >&2
fi

# libz3 for the prover.
# shellcheck source=scripts/z3-env.sh
. "$root/scripts/z3-env.sh"
