#!/bin/sh
# Makes the benchmark models with `minerva synth` (seeded random weights, real shapes):
#   tinyllama-1.1b in Q4_0, Q8_0 and Q4_K_M (the CPU speed targets of issue 3),
#   llama2-7b in Q4_0 and Q4_K_M (the GPU targets of issue 4),
#   qwen3-0.6b and gemma3-1b in Q4_K_M and olmoe-1b-7b in Q4_0 (the model families, issue 10).
# Usage: models-test/make-bench-models.sh [OUT_DIR] [--small-only] [--families-only] [-t THREADS]
#   OUT_DIR defaults to models-test/out (git-ignored). Existing files are kept (delete to remake).
#   --small-only: only the TinyLlama-shaped files (the 7B files take ~3.9 GB each and minutes).
#   --families-only: only the three family files (qwen2 BPE vocabulary for the Qwen and Gemma
#   shapes, the gpt-2 one for OLMoE: the closest sizes to theirs among ../shared/vocab).
# Environment: MINERVA (the minerva binary; default build/minerva), MINERVA_SHARED (the shared
# data directory holding vocab/ggml-vocab-llama-spm.gguf; default ../shared beside the checkout).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/models-test/out"
small_only=0
families_only=0
threads=0
while [ $# -gt 0 ]; do
    case "$1" in
        --small-only) small_only=1 ;;
        --families-only) families_only=1 ;;
        -t) threads="$2"; shift ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) out="$1" ;;
    esac
    shift
done
minerva="${MINERVA:-$root/build/minerva}"
shared="${MINERVA_SHARED:-$root/../shared}"
vocab="$shared/vocab/ggml-vocab-llama-spm.gguf"  # SentencePiece, 32000 tokens: both shapes' n_vocab
seed=1234

[ -x "$minerva" ] || { echo "no minerva binary at $minerva (build first, or set MINERVA)" >&2; exit 1; }
[ -f "$vocab" ] || { echo "no vocabulary at $vocab (set MINERVA_SHARED)" >&2; exit 1; }
mkdir -p "$out"

make_model() {  # shape type file [vocab]
    if [ -f "$out/$3" ]; then echo "have $out/$3"; return; fi
    echo "making $out/$3"
    start=$(date +%s)
    "$minerva" synth --shape "$1" --type "$2" --vocab-from "${4:-$vocab}" --seed "$seed" -t "$threads" "$out/$3"
    echo "  $(wc -c <"$out/$3") bytes in $(( $(date +%s) - start )) s"
}

if [ "$families_only" -eq 1 ]; then
    make_model qwen3-0.6b Q4_K_M qwen3-0.6b-Q4_K_M.gguf "$shared/vocab/ggml-vocab-qwen2.gguf"
    make_model gemma3-1b Q4_K_M gemma3-1b-Q4_K_M.gguf "$shared/vocab/ggml-vocab-qwen2.gguf"
    make_model olmoe-1b-7b Q4_0 olmoe-1b-7b-Q4_0.gguf "$shared/vocab/ggml-vocab-gpt-2.gguf"
    echo "models in $out"
    exit 0
fi
make_model tinyllama-1.1b Q4_0 tinyllama-1.1b-Q4_0.gguf
make_model tinyllama-1.1b Q8_0 tinyllama-1.1b-Q8_0.gguf
make_model tinyllama-1.1b Q4_K_M tinyllama-1.1b-Q4_K_M.gguf
if [ "$small_only" -eq 0 ]; then
    make_model llama2-7b Q4_0 llama2-7b-Q4_0.gguf
    make_model llama2-7b Q4_K_M llama2-7b-Q4_K_M.gguf
fi
echo "models in $out"
