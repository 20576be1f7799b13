#!/usr/bin/env bash
# Installs Minerva's build and test dependencies from Debian 12 packages. Idempotent: does
# nothing (and prints nothing) when everything is already present.
set -euo pipefail
pkgs=(build-essential cmake pkg-config ninja-build
      libvulkan-dev glslang-dev glslang-tools libshaderc-dev glslc
      libopenblas-dev nlohmann-json3-dev libspdlog-dev
      libfmt-dev libgtest-dev libpcre2-dev mesa-vulkan-drivers vulkan-tools
      clang libclang-rt-14-dev nodejs npm haproxy chromium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# nodejs/npm may come from outside Debian (e.g. nodesource); accept any working node + npm.
if command -v node >/dev/null && command -v npm >/dev/null; then
  filtered=(); for p in "${missing[@]}"; do [[ $p == nodejs || $p == npm ]] || filtered+=("$p"); done
  missing=("${filtered[@]}")
fi
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
