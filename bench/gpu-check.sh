#!/usr/bin/env bash
# bench/gpu-check.sh: the Vulkan backend on a real GPU, on a bare machine (nothing installed, no
# network). Two steps:
#
#   bench/gpu-check.sh pack [--build DIR] [--shared DIR] [--out FILE] [--budget-mib N]
#       here, after a build: packs the stripped binaries (minerva, minerva-bench, test_vulkan_ops,
#       test_vulkan_attention, test_reference), every shared library they load except glibc's own, the Vulkan loader
#       (libvulkan.so.1), a vocabulary for `minerva synth`, the shared test models smallest first
#       while the pack stays within the budget (default 48 MiB), their llama.cpp references, and
#       this script into one .tar.xz (default gpu-check.tar.xz).
#
#   tar xf gpu-check.tar.xz -C DIR && DIR/gpu-check/gpu-check.sh run [--small] [--device vulkan:N]
#       there: runs only what the pack carries (LD_LIBRARY_PATH = its lib/), finds the Vulkan
#       driver (VK_DRIVER_FILES if set; else ICD files carried in the pack's icd.d/; else the
#       NVIDIA driver's own ICD file where the container runtime mounts it; else the loader's
#       default search), then:
#         1. test_vulkan_ops, test_vulkan_attention (MINERVA_REQUIRE_VULKAN=1) and test_reference '*vulkan*' on the
#            carried models (models not carried are SKIPPED);
#         2. synthesizes 1B- and 7B-shaped models (tinyllama-1.1b, llama2-7b) in Q4_0 and Q4_K_M
#            with `minerva synth`;
#         3. runs `minerva-bench e2e` (pp512, tg128; depth 0 and 2048) on each and
#            `minerva-bench vulkan-kernels` at both shapes;
#       and prints one table: tokens/s, achieved GB/s and the fraction of the GPU's measured copy
#       bandwidth. --small uses tiny shapes and short runs (a CPU Vulkan device like lavapipe
#       finishes in a few minutes). Logs of every step are left in $GPU_CHECK_WORK (default
#       /tmp/gpu-check); the table goes to stdout and to $GPU_CHECK_WORK/table.txt.
set -euo pipefail

die() { echo "gpu-check: $*" >&2; exit 1; }
here() { cd "$(dirname "${BASH_SOURCE[0]}")" && pwd; }

# ------------------------------------------------------------------------------------- pack
pack() {
    local build=build shared=../shared out=gpu-check.tar.xz budget=48
    while [ $# -gt 0 ]; do
        case "$1" in
            --build) build=$2; shift 2 ;;
            --shared) shared=$2; shift 2 ;;
            --out) out=$2; shift 2 ;;
            --budget-mib) budget=$2; shift 2 ;;
            *) die "pack: unknown option $1" ;;
        esac
    done
    local bins=("$build/minerva" "$build/minerva-bench" "$build/tests/test_vulkan_ops" "$build/tests/test_vulkan_attention"
                "$build/tests/test_reference")
    for b in "${bins[@]}"; do [ -x "$b" ] || die "pack: $b missing (build first: cmake --build $build)"; done
    [ -d "$shared/models" ] || die "pack: $shared/models missing (--shared DIR)"
    local vocab="$shared/vocab/ggml-vocab-llama-spm.gguf"
    [ -f "$vocab" ] || die "pack: $vocab missing"
    local stage
    stage=$(mktemp -d)
    trap 'rm -rf "$stage"' RETURN
    local root="$stage/gpu-check"
    mkdir -p "$root/bin" "$root/lib" "$root/shared/models" "$root/shared/reference" "$root/shared/vocab"
    for b in "${bins[@]}"; do strip -o "$root/bin/$(basename "$b")" "$b"; done
    # Every library the binaries load, resolved here, except the C library's own (the target's
    # glibc must be at least as new as this machine's).
    local libs
    libs=$(for b in "${bins[@]}"; do ldd "$b"; done | awk '/=> \// {print $1 " " $3}' | sort -u)
    while read -r name path; do
        case "$name" in
            libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|ld-linux*|linux-vdso*) continue ;;
        esac
        cp -L "$path" "$root/lib/$name"
        case "$name" in libminerva.so.*) ;; *) strip --strip-unneeded "$root/lib/$name" 2>/dev/null || true ;; esac
    done <<< "$libs"
    [ -f "$root/lib/libvulkan.so.1" ] || die "pack: the binaries do not load libvulkan.so.1 (built without Vulkan?)"
    cp "$vocab" "$root/shared/vocab/"
    cp "$0" "$root/gpu-check.sh"
    chmod +x "$root/gpu-check.sh"
    for f in "$shared"/reference/*.txt "$shared"/reference/ppl-*.json; do [ -f "$f" ] && cp "$f" "$root/shared/reference/"; done
    [ -d "$shared/text" ] && cp -r "$shared/text" "$root/shared/"
    # Models smallest first while the pack stays within the budget (a model counts at its own
    # size: quantized weights hardly compress).
    local limit=$((budget * 1024 * 1024)) n_models=0 m used
    used=$(tar -C "$stage" -cf - gpu-check | xz -1 -T0 | wc -c)  # fast, and larger than the final -6
    while read -r m; do
        local stem size
        stem=$(basename "$m" .gguf)
        size=$(stat -c %s "$m")
        [ -f "$shared/reference/$stem.json" ] && size=$((size + $(stat -c %s "$shared/reference/$stem.json")))
        [ $((used + size)) -le "$limit" ] || break
        cp "$m" "$root/shared/models/"
        [ -f "$shared/reference/$stem.json" ] && cp "$shared/reference/$stem.json" "$root/shared/reference/"
        used=$((used + size))
        n_models=$((n_models + 1))
    done < <(ls -S -r "$shared"/models/*.gguf)
    tar -C "$stage" -cf - gpu-check | xz -6 -T0 > "$out"
    [ "$(stat -c %s "$out")" -le "$limit" ] || die "pack: $out is over the budget of $budget MiB"
    echo "gpu-check: packed $(ls "$root/bin" | wc -l) programs, $(ls "$root/lib" | wc -l) libraries, $n_models models:" \
         "$out, $(( $(stat -c %s "$out") / 1024 )) KiB (budget $budget MiB)" >&2
    echo "$out"
}

# -------------------------------------------------------------------------------------- run
# The NVIDIA driver's ICD file where container runtimes put it (the driver itself is the host's).
find_driver() {
    local f
    if [ -n "${VK_DRIVER_FILES:-}" ] || [ -n "${VK_ICD_FILENAMES:-}" ]; then
        echo "from the environment: ${VK_DRIVER_FILES:-$VK_ICD_FILENAMES}"
        return
    fi
    if compgen -G "$ROOT/icd.d/*.json" > /dev/null; then
        VK_DRIVER_FILES=$(ls "$ROOT"/icd.d/*.json | paste -sd:)
        export VK_DRIVER_FILES
        echo "carried in the pack: $VK_DRIVER_FILES"
        return
    fi
    for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json \
             /etc/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.x86_64.json; do
        if [ -f "$f" ]; then
            export VK_DRIVER_FILES=$f
            echo "NVIDIA: $f"
            return
        fi
    done
    echo "the loader's default search (/usr/share/vulkan/icd.d, /etc/vulkan/icd.d)"
}

json_num() { grep -o "\"$1\":[-0-9.eE+]*" <<< "$2" | tail -1 | cut -d: -f2; }

run() {
    local small=0 device=vulkan
    while [ $# -gt 0 ]; do
        case "$1" in
            --small) small=1; shift ;;
            --device) device=$2; shift 2 ;;
            *) die "run: unknown option $1" ;;
        esac
    done
    ROOT=$(here)
    [ -x "$ROOT/bin/minerva" ] || die "run: $ROOT/bin/minerva missing: run this from an unpacked pack (gpu-check.sh pack)"
    local work=${GPU_CHECK_WORK:-/tmp/gpu-check}
    mkdir -p "$work"
    export LD_LIBRARY_PATH="$ROOT/lib"
    local driver
    driver=$(find_driver)
    {
        echo "gpu-check: loader $(ldd "$ROOT/bin/minerva-bench" | awk '/libvulkan/ {print $3}'), driver: $driver"
        echo "gpu-check: libraries not from the pack: $(ldd "$ROOT/bin/minerva-bench" "$ROOT/bin/minerva" |
            awk -v r="$ROOT/lib/" '/=> \// && index($3, r) != 1 {print $3}' | sort -u | paste -sd' ')"
    } >&2
    "$ROOT/bin/minerva" devices >&2 || die "no Vulkan device found (driver: $driver); set VK_DRIVER_FILES to the GPU's ICD json"
    local threads
    threads=$(nproc)

    # 1. parity against the CPU reference and llama.cpp's outputs
    local t0=$SECONDS fails=0
    MINERVA_REQUIRE_VULKAN=1 MINERVA_SHARED="$ROOT/shared" "$ROOT/bin/test_vulkan_ops" > "$work/test_vulkan_ops.log" 2>&1 || fails=$((fails + 1))
    MINERVA_REQUIRE_VULKAN=1 "$ROOT/bin/test_vulkan_attention" > "$work/test_vulkan_attention.log" 2>&1 || fails=$((fails + 1))
    MINERVA_REQUIRE_VULKAN=1 MINERVA_SHARED="$ROOT/shared" "$ROOT/bin/test_reference" --gtest_filter='*vulkan*' \
        > "$work/test_reference.log" 2>&1 || fails=$((fails + 1))
    local parity=""
    for t in test_vulkan_ops test_vulkan_attention test_reference; do
        parity+="$t: $(awk '/^\[  PASSED  \] [0-9]+ tests?\./ {p = $4} /^\[  SKIPPED \] [0-9]+ tests?,/ {s = $4}
                             /^\[  FAILED  \] [0-9]+ tests?,/ {f = $4}
                             END {printf "%d passed, %d skipped, %d failed", p, s, f}' "$work/$t.log")  "
    done
    echo "gpu-check: parity tests done in $((SECONDS - t0)) s: $parity" >&2

    # 2. models of the 1B and 7B shapes
    local vocab="$ROOT/shared/vocab/ggml-vocab-llama-spm.gguf" shapes pp tg reps depths
    if [ $small = 1 ]; then
        shapes=("1b-small:--dims 256,2,4,2,768,0" "7b-small:--dims 512,2,8,8,1536,0")
        pp=32 tg=16 reps=1 depths="0 64"
    else
        shapes=("tinyllama-1.1b:--shape tinyllama-1.1b" "llama2-7b:--shape llama2-7b")
        pp=512 tg=128 reps=3 depths="0 2048"
    fi
    local rows=() s name spec type model
    for s in "${shapes[@]}"; do
        name=${s%%:*} spec=${s#*:}
        for type in Q4_0 Q4_K_M; do
            model="$work/$name-$type.gguf"
            if [ ! -f "$model" ]; then
                # shellcheck disable=SC2086
                "$ROOT/bin/minerva" synth -q $spec --type $type --vocab-from "$vocab" -t "$threads" "$model.part" \
                    > /dev/null 2> "$work/synth-$name-$type.log" || die "synth $name $type failed: $work/synth-$name-$type.log"
                mv "$model.part" "$model"
            fi
            local gb d line
            gb=$(awk -v b="$(stat -c %s "$model")" 'BEGIN {printf "%.2f", b / 1e9}')
            for d in $depths; do
                line=$("$ROOT/bin/minerva-bench" e2e -m "$model" --device "$device" -p $pp -n $tg --reps $reps --depth "$d" \
                       --json 2> "$work/e2e-$name-$type-$d.log" | tail -1) || die "e2e $name $type depth $d: $work/e2e-$name-$type-$d.log"
                rows+=("e2e|$name $type ($gb GB)|depth $d|$(json_num pp_tps "$line")|$(json_num tg_tps "$line")|$(json_num tg_weight_gbps "$line")")
            done
        done
    done

    # 3. kernels at the 1B and 7B layer shapes
    local bw="" kdim kffn kctx kpp
    for s in 1b 7b; do
        if [ $small = 1 ]; then kdim=256 kffn=768 kctx=128 kpp=16; [ $s = 7b ] && kdim=512 kffn=1536
        else kdim=2048 kffn=5632 kctx=2048 kpp=512; [ $s = 7b ] && kdim=4096 kffn=11008; fi
        "$ROOT/bin/minerva-bench" vulkan-kernels --device "$device" --dim $kdim --ffn $kffn --ctx $kctx --prefill $kpp \
            --reps $((small ? 2 : 20)) --types F16,Q8_0,Q4_0,Q4_K,Q6_K > "$work/kernels-$s.txt" 2> "$work/kernels-$s.log" \
            || die "vulkan-kernels $s: $work/kernels-$s.log"
        bw=$(awk '/^device copy bandwidth:/ {print $4}' "$work/kernels-$s.txt")
        while read -r op variant rest; do
            rows+=("kernel|$op $variant|$(sed -E 's/ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+%$//' <<< "$rest")|||$(awk '{print $(NF-2)}' <<< "$rest")")
        done < <(grep -E '^(matvec|matmul|attention|kv_store) ' "$work/kernels-$s.txt")
    done

    # 4. the table
    {
        echo "device:   $("$ROOT/bin/minerva" devices 2>/dev/null | head -1)"
        echo "driver:   $driver"
        echo "parity:   $parity"
        echo "copy bandwidth (vkCmdCopyBuffer, read + write): $bw GB/s"
        printf '%-7s %-40s %-26s %10s %10s %9s %8s\n' what model/kernel "depth/shape" "pp tok/s" "tg tok/s" "GB/s" "% bw"
        local r
        for r in "${rows[@]}"; do
            IFS='|' read -r what name shape ppv tgv gbs <<< "$r"
            printf '%-7s %-40s %-26s %10s %10s %9s %7s%%\n' "$what" "$name" "$shape" "${ppv:+$(printf %.1f "$ppv")}" \
                "${tgv:+$(printf %.1f "$tgv")}" "$(printf %.1f "${gbs:-0}")" \
                "$(awk -v g="${gbs:-0}" -v b="$bw" 'BEGIN {printf "%.1f", (b > 0 ? 100 * g / b : 0)}')"
        done
    } | tee "$work/table.txt"
    [ $fails = 0 ] || die "$fails parity test program(s) failed: $work/test_vulkan_ops.log, $work/test_vulkan_attention.log, $work/test_reference.log"
}

case "${1:-}" in
    pack) shift; pack "$@" ;;
    run) shift; run "$@" ;;
    *) sed -n '2,29p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
