#!/usr/bin/env bash
# Side-by-side speed of Minerva and llama.cpp on the same machine, model and thread count, in one
# run: for each model, alternates llama.cpp (../shared/tools/llamacpp-bench.mjs over the prebuilt
# node-llama-cpp@3.22.1 binaries) and `minerva-bench e2e`, ROUNDS times each, and prints the
# medians and the ratios as a Markdown table, with Minerva's decode GB/s of the weights one token
# reads (for a mixture of experts: the chosen experts' share of the expert tensors).
#
# usage: bench/compare-llamacpp.sh [-t THREADS] [-r ROUNDS] [-p N_PROMPT] [-n N_GEN] [-d DEPTH] [-a avx2] MODEL...
#   -d DEPTH: a context of DEPTH tokens is evaluated first (not timed) and pp and tg are measured
#   after it, on both engines (bench/llamacpp-depth.mjs for llama.cpp, minerva-bench e2e --depth).
#   -a avx2: both engines as on a CPU without AVX-512: Minerva with MINERVA_CPU=avx2, llama.cpp
#   from a copy of node-llama-cpp ($LLAMACPP_DIR-avx2) without its AVX-512 CPU variants, so that
#   ggml loads libggml-cpu-haswell.so.
# needs: build/minerva-bench, node, and node-llama-cpp installed in $LLAMACPP_DIR
#        (default ./build/llamacpp; `npm install node-llama-cpp@3.22.1` there, done if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=2 rounds=3 n_prompt=128 n_gen=64 depth=0 isa=
while getopts "t:r:p:n:d:a:" o; do
  case $o in t) threads=$OPTARG;; r) rounds=$OPTARG;; p) n_prompt=$OPTARG;; n) n_gen=$OPTARG;; d) depth=$OPTARG;; a) isa=$OPTARG;; *) exit 2;; esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { echo "usage: $0 [-t T] [-r R] [-p P] [-n N] MODEL..." >&2; exit 2; }
shared="${MINERVA_SHARED:-$PWD/../shared}"
lc="${LLAMACPP_DIR:-$PWD/build/llamacpp}"
if [ ! -d "$lc/node_modules/node-llama-cpp" ]; then
  mkdir -p "$lc" && (cd "$lc" && npm init -y >/dev/null && npm install --no-audit --no-fund node-llama-cpp@3.22.1 >/dev/null)
fi
if [ -n "$isa" ]; then
  [ "$isa" = avx2 ] || { echo "$0: -a takes avx2" >&2; exit 2; }
  if [ ! -d "$lc-avx2" ]; then
    cp -a "$lc" "$lc-avx2"
    rm -f "$lc-avx2"/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-cpu-{zen4,cannonlake,cascadelake,skylakex,icelake,sapphirerapids,cooperlake,alderlake}.so
  fi
  lc="$lc-avx2"
  export MINERVA_CPU=avx2
fi
cp "$shared/tools/llamacpp-bench.mjs" "$lc/llamacpp-bench.mjs"
cp bench/llamacpp-depth.mjs "$lc/llamacpp-depth.mjs"

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
field() { python3 -c "import json,sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])['$1'])"; }

echo "| model | depth | llama.cpp pp t/s | minerva pp t/s | pp ratio | llama.cpp tg t/s | minerva tg t/s | tg ratio | minerva tg GB/s |"
echo "|---|---|---|---|---|---|---|---|---|"
for model in "$@"; do
  lpp=() ltg=() mpp=() mtg=() mgb=()
  for ((r = 0; r < rounds; r++)); do
    if [ "$depth" -gt 0 ]; then
      out=$(cd "$lc" && node llamacpp-depth.mjs "$model" "$threads" "$n_prompt" "$n_gen" "$depth" 2>/dev/null | tail -1)
    else
      out=$(cd "$lc" && node llamacpp-bench.mjs "$model" "$threads" "$n_prompt" "$n_gen" 2>/dev/null | tail -1)
    fi
    lpp+=("$(echo "$out" | field pp_tps)"); ltg+=("$(echo "$out" | field tg_tps)")
    out=$(./build/minerva-bench e2e -m "$model" -t "$threads" -p "$n_prompt" -n "$n_gen" --depth "$depth" --device cpu --json 2>/dev/null | tail -1)
    mpp+=("$(echo "$out" | field pp_tps)"); mtg+=("$(echo "$out" | field tg_tps)")
    mgb+=("$(echo "$out" | field tg_active_gbps)")
  done
  Lpp=$(printf '%s\n' "${lpp[@]}" | median); Ltg=$(printf '%s\n' "${ltg[@]}" | median)
  Mpp=$(printf '%s\n' "${mpp[@]}" | median); Mtg=$(printf '%s\n' "${mtg[@]}" | median)
  Mgb=$(printf '%s\n' "${mgb[@]}" | median)
  awk -v m="$(basename "$model")" -v z="$depth" -v a="$Lpp" -v b="$Mpp" -v c="$Ltg" -v d="$Mtg" -v g="$Mgb" \
    'BEGIN {printf "| %s | %d | %.1f | %.1f | %.2fx | %.2f | %.2f | %.2fx | %.1f |\n", m, z, a, b, b/a, c, d, d/c, g}'
done
