#!/usr/bin/env bash
# Runs a Windows bt.exe under Wine on this machine's Vulkan driver (lavapipe
# where there is no GPU): bt devices with its whole kernel self-check, which
# must pass on the adapter bt chooses by itself. Wine 8.0 lacks
# bcryptprimitives.dll (ProcessPrng, which Rust's standard library inside
# wgpu-native calls), so a shim built here from scripts/wine/processprng.c
# goes beside a copy of bt.exe; and Wine's Vulkan needs a display, so it
# runs under xvfb-run. scripts/setup.sh installs wine64, xvfb and mingw-w64.
#
#   scripts/wine-check.sh BT.EXE [bt arguments...]   (default: devices)
set -euo pipefail
exe=$(realpath "$1")
shift
[ $# -gt 0 ] || set -- devices
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cp "$exe" "$dir/bt.exe"
x86_64-w64-mingw32-gcc -shared -O2 -o "$dir/bcryptprimitives.dll" \
  "$(dirname "$0")/wine/processprng.c" -ladvapi32
export WINEPREFIX=${WINEPREFIX:-$HOME/.cache/bt-wine} WINEDEBUG=${WINEDEBUG:--all}
# A new prefix is set up in the background after wineboot returns; bt.exe
# started before that ends finds no Vulkan adapter, so wait for it.
if [ ! -d "$WINEPREFIX" ]; then
  /usr/lib/wine/wine64 wineboot -i >/dev/null 2>&1
  /usr/lib/wine/wineserver -w
fi
cd "$dir"
xvfb-run -a /usr/lib/wine/wine64 ./bt.exe "$@"
