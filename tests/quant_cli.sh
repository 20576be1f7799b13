#!/bin/sh
# CLI checks for `minerva quantize` and `minerva synth`: bad input exits 1 with a clear message;
# a synth -> quantize round trip works. Usage: quant_cli.sh MINERVA_BINARY [SHARED_DIR]
# (SHARED_DIR defaults to $MINERVA_SHARED, as ctest runs it)
set -u
bin="$1"
shared="${2:-${MINERVA_SHARED:-}}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

# expect_fail "message substring" command...
expect_fail() {
    want="$1"; shift
    "$@" >"$tmp/out" 2>&1
    rc=$?
    if [ "$rc" -ne 1 ]; then echo "FAIL (exit $rc, want 1): $*"; cat "$tmp/out"; fails=$((fails + 1)); return; fi
    if ! grep -qF -- "$want" "$tmp/out"; then echo "FAIL (no '$want'): $*"; cat "$tmp/out"; fails=$((fails + 1)); return; fi
    echo "ok: $* -> $(head -n 1 "$tmp/out" | cut -c1-120)"
}

expect_fail "expected IN OUT TYPE" "$bin" quantize onlyone
expect_fail "unknown type 'Q7_0'" "$bin" quantize in.gguf out.gguf Q7_0
expect_fail "cannot open" "$bin" quantize "$tmp/missing.gguf" "$tmp/o.gguf" Q8_0
expect_fail "option -t expects an integer from 0 to 1024" "$bin" quantize a b Q8_0 -t -3
expect_fail "unknown option" "$bin" quantize a b Q8_0 --bogus
expect_fail "exactly one of --shape and --dims" "$bin" synth --type Q8_0 --vocab-from v.gguf "$tmp/x.gguf"
expect_fail "exactly one of --shape and --dims" "$bin" synth --shape tinyllama-1.1b --dims 1,2,3,4,5,6 --type Q8_0 --vocab-from v.gguf "$tmp/x.gguf"
expect_fail "unknown shape 'llama-99b'" "$bin" synth --shape llama-99b --type Q8_0 --vocab-from v.gguf "$tmp/x.gguf"
expect_fail "--dims expects 6" "$bin" synth --dims 64,2,2 --type Q8_0 --vocab-from v.gguf "$tmp/x.gguf"
expect_fail "'x' is not an integer" "$bin" synth --dims 64,2,2,x,96,0 --type Q8_0 --vocab-from v.gguf "$tmp/x.gguf"
expect_fail "unknown type 'Q9'" "$bin" synth --dims 64,2,2,1,96,0 --type Q9 --vocab-from v.gguf "$tmp/x.gguf"
expect_fail "missing required option --vocab-from" "$bin" synth --dims 64,2,2,1,96,0 --type Q8_0 "$tmp/x.gguf"
expect_fail "cannot open" "$bin" synth --dims 64,2,2,1,96,0 --type Q8_0 --vocab-from "$tmp/nope.gguf" "$tmp/x.gguf"
expect_fail "expected one output file" "$bin" synth --dims 64,2,2,1,96,0 --type Q8_0 --vocab-from v.gguf
expect_fail "unknown architecture 'mamba' (known: llama, qwen2, qwen3, qwen3moe, gemma2, gemma3, phi3)" "$bin" synth --shape qwen3-0.6b --arch mamba --type Q8_0 --vocab-from v.gguf "$tmp/x.gguf"
expect_fail "unknown shape 'qwen9' (known: tinyllama-1.1b," "$bin" synth --shape qwen9 --type Q8_0 --vocab-from v.gguf "$tmp/x.gguf"
expect_fail "--head-dim applies to --dims only" "$bin" synth --shape qwen3-0.6b --head-dim 64 --type Q8_0 --vocab-from v.gguf "$tmp/x.gguf"
expect_fail "--experts expects N_EXPERT,N_USED" "$bin" synth --dims 64,2,2,1,96,0 --arch qwen3moe --experts 8 --type Q8_0 --vocab-from v.gguf "$tmp/x.gguf"
[ -e "$tmp/x.gguf" ] && { echo "FAIL: a failed synth left $tmp/x.gguf"; fails=$((fails + 1)); }

if [ -n "$shared" ] && [ -f "$shared/models/stories260K-f32.gguf" ]; then
    vocab="$shared/models/stories260K-f32.gguf"
    expect_fail "not a multiple of n_head" "$bin" synth --dims 64,2,3,1,96,0 --type Q8_0 --vocab-from "$vocab" "$tmp/x.gguf"
    expect_fail "qwen3moe: needs experts" "$bin" synth --dims 64,2,2,1,96,0 --arch qwen3moe --type Q8_0 --vocab-from "$vocab" "$tmp/x.gguf"
    if "$bin" synth --dims 128,2,4,2,256,0 --arch qwen3moe --head-dim 64 --experts 8,2,128 --tied --type Q4_0 \
            --vocab-from "$vocab" -t 2 "$tmp/m.gguf" >"$tmp/out" 2>&1 &&
        "$bin" inspect -m "$tmp/m.gguf" >"$tmp/insp" 2>&1 &&
        grep -q 'qwen3moe.expert_count *uint32 *8' "$tmp/insp" && grep -q 'blk.1.ffn_down_exps.weight *Q4_0 *\[128, 128, 8\]' "$tmp/insp"; then
        echo "ok: synth --arch qwen3moe --experts 8,2,128 (inspect shows the expert tensors)"
    else
        echo "FAIL: synth --arch qwen3moe"; cat "$tmp/out" "$tmp/insp"; fails=$((fails + 1))
    fi
    if "$bin" synth --dims 256,2,4,2,512,0 --type F16 --vocab-from "$vocab" --seed 5 -t 2 "$tmp/s.gguf" >"$tmp/out" 2>&1 &&
        "$bin" quantize "$tmp/s.gguf" "$tmp/q.gguf" Q4_K_M -t 2 --log-level debug >"$tmp/out2" 2>&1 &&
        [ -s "$tmp/q.gguf" ] && grep -q "blk.1.ffn_down.weight F16 -> Q6_K" "$tmp/out2"; then
        echo "ok: synth F16 -> quantize Q4_K_M ($(wc -c <"$tmp/q.gguf") bytes)"
    else
        echo "FAIL: synth -> quantize round trip"; cat "$tmp/out" "$tmp/out2"; fails=$((fails + 1))
    fi
elif [ "${MINERVA_REQUIRE_SHARED:-0}" = 1 ]; then
    echo "FAIL: shared data missing"; fails=$((fails + 1))
else
    echo "skipping the round trip: no shared data"
fi

[ "$fails" -eq 0 ] && echo "all quantize/synth CLI checks passed"
exit "$fails"
