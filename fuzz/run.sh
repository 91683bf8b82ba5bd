#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 60), one after
# another, single process. Exits non-zero if any target found a crash (the
# input is left in artifacts/<target>/).
#
#   fuzz/run.sh [SECONDS]
#
# Needs a nightly toolchain (`rustup toolchain install nightly`); installs
# cargo-fuzz if it is missing. New corpus entries go to work/corpus/<target>
# (not committed); the committed seeds in corpus/<target> are read only.
#
# Environment: FUZZ_TOOLCHAIN (default nightly), FUZZ_SANITIZER (default
# none: the crates are safe Rust; debug assertions and overflow checks stay
# on; use `address` to add ASan), FUZZ_TARGETS (default: all four),
# FUZZ_FEATURES (cargo features of the fuzz crate, e.g. yaml-serde-norway to
# read YAML with serde_norway instead of serde-saphyr).
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
}
case ${1:-} in
    -h | --help) usage; exit 0 ;;
esac
seconds=${1:-60}
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]] || (($# > 1)); then
    echo "fuzz/run.sh: expected one argument, the seconds per target (a positive whole number), got: $*" >&2
    echo "usage: fuzz/run.sh [SECONDS]   (fuzz/run.sh --help for more)" >&2
    exit 2
fi
toolchain=${FUZZ_TOOLCHAIN:-nightly}
sanitizer=${FUZZ_SANITIZER:-none}
read -r -a targets <<<"${FUZZ_TARGETS:-decode_token claim_request authenticate_peer ops}"
features=()
if [[ -n "${FUZZ_FEATURES:-}" ]]; then
    features=(--features "$FUZZ_FEATURES")
fi

cd "$(dirname "$0")"

if ! cargo "+$toolchain" --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: no $toolchain toolchain (rustup toolchain install $toolchain)" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

cargo "+$toolchain" fuzz build -s "$sanitizer" "${features[@]}"

max_len() {
    case $1 in
        decode_token) echo 16384 ;;
        claim_request) echo 8192 ;;
        authenticate_peer) echo 4096 ;;
        ops) echo 512 ;;
        *) echo 4096 ;;
    esac
}

failed=()
for target in "${targets[@]}"; do
    mkdir -p "work/corpus/$target" "artifacts/$target"
    extra=()
    if [[ -f "dict/$target.dict" ]]; then
        extra+=("-dict=dict/$target.dict")
    fi
    echo "== $target: ${seconds}s"
    if ! cargo "+$toolchain" fuzz run -s "$sanitizer" "${features[@]}" "$target" \
        "work/corpus/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len="$(max_len "$target")" \
        -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 "${extra[@]}"; then
        failed+=("$target")
    fi
done

if ((${#failed[@]})); then
    echo "fuzz/run.sh: crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz/run.sh: ${#targets[@]} targets, ${seconds}s each, no crash"
