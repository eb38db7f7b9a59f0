#!/usr/bin/env bash
# Runs Windows builds of bt under Wine on this machine's Vulkan driver
# (lavapipe where there is no GPU).
#
#   scripts/wine-check.sh BT.EXE [bt arguments...]   (default: devices)
#     bt.exe itself: bt devices with its whole kernel self-check, which must
#     pass on the adapter bt chooses by itself.
#   scripts/wine-check.sh -tests [DIR]
#     cross-builds the test binaries of the packages whose behaviour on
#     Windows rests on its files and console (internal/rundir: the run
#     directory's lock; bt/train: checkpoints written, renamed and removed
#     while read; pipeline: reading data folders; cmd/bt: the lock, Ctrl-C,
#     refusals to overwrite) into DIR (default: a temporary folder) and runs
#     each under Wine in its package's folder, as go test does. The tests
#     Wine cannot run are skipped by name below, each with its reason.
#
# Wine 8.0 lacks bcryptprimitives.dll (ProcessPrng, which Go's runtime and
# Rust's standard library inside wgpu-native call), so a shim built here
# from scripts/wine/processprng.c goes into the Wine prefix's system32; and
# Wine's Vulkan needs a display, so everything runs under xvfb-run.
# scripts/setup.sh installs wine64, xvfb and mingw-w64.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export WINEPREFIX=${WINEPREFIX:-$HOME/.cache/bt-wine} WINEDEBUG=${WINEDEBUG:--all}
# A new prefix is set up in the background after wineboot returns; a
# program started before that ends finds no Vulkan adapter, so wait for it.
if [ ! -d "$WINEPREFIX" ]; then
  /usr/lib/wine/wine64 wineboot -i >/dev/null 2>&1
  /usr/lib/wine/wineserver -w
fi
shim=$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll
if [ ! -f "$shim" ] || [ "$root/scripts/wine/processprng.c" -nt "$shim" ]; then
  x86_64-w64-mingw32-gcc -shared -O2 -o "$shim" "$root/scripts/wine/processprng.c" -ladvapi32
fi
# bt's default data folder on Windows, %ProgramData%\bt\datasets, holds
# the data sets Debian installs (Fashion-MNIST for the tests).
mkdir -p "$WINEPREFIX/drive_c/ProgramData/bt"
ln -sfn /usr/share/datasets "$WINEPREFIX/drive_c/ProgramData/bt/datasets"

if [ "${1:-}" != -tests ]; then
  exe=$(realpath "$1")
  shift
  [ $# -gt 0 ] || set -- devices
  exec xvfb-run -a /usr/lib/wine/wine64 "$exe" "$@"
fi

# The tests that cannot run under Wine 8.0 here, by package, with why.
# (Those that cannot run on Windows at all, such as a named pipe in a
# folder, say so themselves with t.Skip.)
declare -A skip=(
  [pipeline]='TestFolderSymlinks'
  [cmd/bt]='TestServeInBrowser|TestEmbedExample|TestExportONNX|TestTune|TestSecondInterrupt|TestInterruptCheckpoint'
)
declare -A why=(
  [TestFolderSymlinks]="Wine 8.0's CreateSymbolicLinkW is a stub: os.Symlink reports success and makes no link"
  [TestServeInBrowser]='drives Chromium through chromedp; there is no Windows Chromium here'
  [TestEmbedExample]='builds examples/embed with the go command, which this machine has for Linux only'
  [TestTune]="bt tune stops with 'a timing of zero length': the GEMM's GPU timestamps read zero through Wine's Vulkan on lavapipe (not yet known on Windows)"
  [TestSecondInterrupt]="Wine 8.0's GenerateConsoleCtrlEvent fails with 'Invalid access' (ERROR_INVALID_ACCESS), with or without a console made by AllocConsole, so no Ctrl-C (Ctrl-Break) event can be sent"
  [TestInterruptCheckpoint]="as TestSecondInterrupt"
  [TestExportONNX]="needs ONNX Runtime's Windows library, which scripts/setup.sh does not install into the Wine prefix"
)
# Of bt/train and cmd/bt, CI runs the tests of files, the lock and the
# console: checkpoints written, replaced, verified and resumed; runs
# refused, contended, killed and interrupted. The rest is arithmetic on
# the adapter, the same lavapipe as on Linux, and would add some 12 minutes
# under Wine (all of it passed there on 2026-12-07, but for the tests
# named above; docs/platforms.md). WINE_TESTS=all runs every test.
declare -A only=(
  [bt/train]='TestCheckpointWriteFailure|TestCheckpointChecksum|TestBackboneRoundTrip|TestBadCheckpoints|TestContinues|TestSaveOverOpenCheckpoint|TestResume|TestStopWhileLoading|TestNonFiniteGuard|TestNonFiniteWeights'
  [cmd/bt]='TestBadFlags|TestOccupiedDir|TestConcurrentRuns|TestDamagedCheckpoint|TestKillAndResume|TestRunKeeping|TestBrokenImages|TestFIFOImage|TestEmbedNames|TestResumeForeignCheckpoint|TestOverwriteKeepsUserFiles|TestFailedFirstImage|TestBadImageMidRun|TestEvalClassesChanged|TestServeFlags'
)
[ "${WINE_TESTS:-}" != all ] || only=()
dir=${2:-$(mktemp -d)}
mkdir -p "$dir"
fail=0
for pkg in internal/rundir bt/train pipeline cmd/bt; do
  exe=$dir/$(basename "$pkg").test.exe
  (cd "$root" && GOOS=windows GOARCH=amd64 CGO_ENABLED=1 CC=x86_64-w64-mingw32-gcc \
    go test -c -tags nolibjpeg -o "$exe" "./$pkg")
  args=(-test.v -test.timeout 20m)
  [ -z "${only[$pkg]:-}" ] || args+=(-test.run "^(${only[$pkg]})\$")
  if [ -n "${skip[$pkg]:-}" ]; then
    args+=(-test.skip "^(${skip[$pkg]})")
    for t in ${skip[$pkg]//|/ }; do
      t=${t%$}
      echo "wine-check: $pkg: not run under Wine: $t: ${why[$t]}"
    done
  fi
  start=$SECONDS
  if (cd "$root/$pkg" && xvfb-run -a /usr/lib/wine/wine64 "$exe" "${args[@]}") >"$dir/$(basename "$pkg").test.log" 2>&1; then
    result=ok
  else
    result=FAIL
    fail=1
  fi
  log=$dir/$(basename "$pkg").test.log
  grep -E -B4 '^ *--- (FAIL|SKIP)' "$log" | grep -v -E '^=== |^ *--- PASS' || true
  echo "wine-check: $pkg: $result ($(grep -c '^--- PASS' "$log") passed, $(grep -c '^--- FAIL' "$log") failed, $(grep -c '^--- SKIP' "$log") skipped; $((SECONDS - start)) s)"
done
exit $fail
