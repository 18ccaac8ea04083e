#!/usr/bin/env bash
# Fuzzes every parser and matcher of the request path (fuzz/fuzz_targets/*.rs) with cargo-fuzz
# (libFuzzer, AddressSanitizer), each target asserting its properties on every input.
#
#   fuzz/fuzz.sh [--merge] [SECONDS_PER_TARGET] [TARGET...]
#
# Default: 10 s per target (WCS_LONG=1: 300 s), every target, starting from the committed
# corpus in fuzz/corpus/<target>/ and writing new inputs to a scratch directory. --merge adds
# the new inputs to fuzz/corpus/ and minimises it (cargo fuzz cmin with libFuzzer's
# -set_cover_merge=1: the fewest inputs that keep every coverage feature), for committing.
# A failure leaves the input in fuzz/artifacts/<target>/; replay it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run -O <target> fuzz/artifacts/<target>/<file>   (in fuzz/)
source "$(dirname "$0")/../scripts/common.sh"

merge=0
if [ "${1:-}" = "--merge" ]; then
    merge=1
    shift
fi
seconds=${1:-$([ "${WCS_LONG:-0}" = 1 ] && echo 300 || echo 10)}
[[ "$seconds" =~ ^[0-9]+$ ]] || die "usage: fuzz/fuzz.sh [--merge] [SECONDS_PER_TARGET] [TARGET...]"
shift $(($# > 0 ? 1 : 0))

ensure_packages "${BUILD_PACKAGES[@]}" g++
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address, sanitizer coverage). The stable
# toolchain accepts them with RUSTC_BOOTSTRAP=1; no nightly toolchain is needed.
export RUSTC_BOOTSTRAP=1
CARGO_FUZZ_VERSION=0.13.2
if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
    say "installing cargo-fuzz $CARGO_FUZZ_VERSION from crates.io"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --quiet
fi

cd "$ROOT/fuzz"
cargo fmt -- --check
if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi
say "building ${#targets[@]} fuzz targets"
cargo fuzz build -O

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
total=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    if [ "$merge" = 1 ]; then dirs=("corpus/$t"); else dirs=("$scratch/$t" "corpus/$t"); fi
    mkdir -p "${dirs[0]}"
    say "fuzzing $t for ${seconds}s"
    # libFuzzer writes new inputs to the first directory and only reads the others. TMPDIR:
    # the authorize target makes its token directory there.
    if ! TMPDIR="$scratch" cargo fuzz run -O "$t" "${dirs[@]}" -- -max_total_time="$seconds" -dict=dict \
        -print_final_stats=1 >"$scratch/$t.log" 2>&1; then
        grep -E 'panicked|ERROR|SUMMARY|Test unit written' "$scratch/$t.log" >&2 || tail -30 "$scratch/$t.log" >&2
        die "fuzz target $t failed: the input is in fuzz/artifacts/$t/"
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch/$t.log")
    [ -n "$execs" ] || { tail -20 "$scratch/$t.log" >&2; die "fuzz target $t printed no statistics"; }
    if [ "$merge" = 1 ]; then
        cargo fuzz cmin -O "$t" "corpus/$t" -- -set_cover_merge=1 >"$scratch/$t.cmin.log" 2>&1 || { tail -20 "$scratch/$t.cmin.log" >&2; die "cmin $t failed"; }
    fi
    corpus=$(find "corpus/$t" -type f | wc -l)
    printf 'fuzz: %-10s %10d executions in %ss, 0 failures, corpus %d inputs\n' "$t" "$execs" "$seconds" "$corpus"
    total=$((total + execs))
done
printf 'fuzz: %d targets, %d executions, 0 failures\n' "${#targets[@]}" "$total"
