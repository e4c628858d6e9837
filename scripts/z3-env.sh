# z3 for the prover (policy-prover, `llmsh prove`) without a system package.
#
# source it, don't run it:   . scripts/z3-env.sh
#
# it unpacks libz3 from the pinned PyPI wheel z3-solver==5.4.1.0 into
# .cache/z3-5.4.1 (gitignored) and exports what crate z3-sys needs to link
# against it. the wheel is taken from $Z3_WHEEL, .cache/wheels or /tmp/wheels,
# else fetched with `pip download`. .cargo/config.toml points cargo at the same
# directory, so once unpacked a plain `cargo build` works too, and the binaries
# carry an rpath to it (no LD_LIBRARY_PATH needed at run time).
#
# debian's libz3-dev (4.8.12) is too old for z3-sys 0.14.

z3_env_main() {
    z3_version=5.4.1
    z3_wheel_name=z3_solver-5.4.1.0-py3-none-manylinux_2_27_x86_64.whl
    # sha256 of the wheel above, as published on pypi.
    z3_wheel_sha256=e680ce083683abca5d07c3e55c2f620ff9a29cb91c548eeeea27ae29e8060522

    if [ -n "${BASH_SOURCE:-}" ]; then
        z3_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    else
        z3_root=$(git rev-parse --show-toplevel 2>/dev/null || pwd)
    fi
    z3_dir="$z3_root/.cache/z3-$z3_version"
    z3_lib="$z3_dir/z3/lib"

    if [ ! -f "$z3_lib/libz3.so" ]; then
        z3_wheel=""
        for c in "${Z3_WHEEL:-}" "$z3_root/.cache/wheels/$z3_wheel_name" "/tmp/wheels/$z3_wheel_name"; do
            if [ -n "$c" ] && [ -f "$c" ]; then z3_wheel="$c"; break; fi
        done
        if [ -z "$z3_wheel" ]; then
            echo "z3-env: fetching libz3 (the pip wheel z3-solver==5.4.1.0, about 30 MB; under a minute on a fast link)" >&2
            mkdir -p "$z3_root/.cache/wheels"
            # pip's own progress bar on stderr; stdout stays the caller's.
            python3 -m pip download --progress-bar on --no-deps --only-binary=:all: \
                -d "$z3_root/.cache/wheels" z3-solver==5.4.1.0 >&2 || {
                echo "z3-env: pip download failed; put $z3_wheel_name in .cache/wheels or set Z3_WHEEL" >&2
                return 1
            }
            z3_wheel="$z3_root/.cache/wheels/$z3_wheel_name"
        fi
        if [ "$(basename "$z3_wheel")" = "$z3_wheel_name" ]; then
            got=$(sha256sum "$z3_wheel" | cut -d' ' -f1)
            if [ "$got" != "$z3_wheel_sha256" ]; then
                echo "z3-env: $z3_wheel has sha256 $got, expected $z3_wheel_sha256" >&2
                return 1
            fi
        fi
        echo "z3-env: unpacking libz3 into $z3_dir" >&2
        rm -rf "$z3_dir.tmp" && mkdir -p "$z3_dir.tmp"
        if command -v unzip >/dev/null 2>&1; then
            unzip -q -o "$z3_wheel" 'z3/lib/*' 'z3/include/*' -d "$z3_dir.tmp" || return 1
        else
            python3 -c 'import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith(("z3/lib/", "z3/include/"))])' \
                "$z3_wheel" "$z3_dir.tmp" || return 1
        fi
        rm -rf "$z3_dir" && mv "$z3_dir.tmp" "$z3_dir" || return 1
    fi

    # z3-sys: no pkg-config probe, the version it cannot detect, the library dir.
    export Z3_NO_PKG_CONFIG=1
    export Z3_SYS_Z3_VERSION="$z3_version"
    export Z3_LIBRARY_PATH_OVERRIDE="$z3_lib"
    export Z3_SYS_Z3_HEADER="$z3_dir/z3/include/z3.h"
    case ":${LD_LIBRARY_PATH:-}:" in
        *":$z3_lib:"*) ;;
        *) export LD_LIBRARY_PATH="$z3_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
    esac
}

z3_env_main
