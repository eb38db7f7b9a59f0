#!/usr/bin/env bash
# Release builds: writes release/bt-VERSION-OS-ARCH[.exe] for linux/amd64,
# linux/arm64 and windows/amd64, and release/SHA256SUMS. (release/, not
# dist/: dist/ is bt's package for runs over several processes.)
#
#   scripts/release.sh [OUT]       OUT defaults to release
#   TARGETS="linux/amd64" scripts/release.sh   builds a subset
#
# VERSION is the git tag on HEAD, else 0.0.0-<12 digits of the commit>;
# a tree with uncommitted changes to tracked files is refused, so that the
# version names what was built (RELEASE_DIRTY_OK=1 builds it as
# VERSION-dirty: scripts/test.sh, on a working tree). The builds are reproducible: -trimpath
# drops this machine's paths, -buildvcs=false leaves out the VCS stamp
# (whose time and "modified" flag depend on the checkout; version and
# commit are set with -X instead), and the C toolchains are Debian's, whose
# linkers write no timestamps here (--no-insert-timestamp for PE files).
#
# Every binary uses Go's JPEG decoder (-tags nolibjpeg): linked against
# libjpeg-turbo, a binary would need the very SONAME it was built with
# (libjpeg.so.62 on Debian, .8 on Ubuntu), and there is no mingw build of
# it in Debian. Build from source for libjpeg-turbo's speed on JPEG folders.
# The binaries need only the C library and, at run time, a Vulkan, Metal
# or DX12 driver: wgpu-native is linked in statically and loads the driver
# itself. scripts/setup.sh installs the cross compilers.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-release}
targets=${TARGETS:-linux/amd64 linux/arm64 windows/amd64}

commit=$(git rev-parse HEAD)
version=$(git describe --tags --exact-match 2>/dev/null || echo "0.0.0-${commit:0:12}")
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  if [ -z "${RELEASE_DIRTY_OK:-}" ]; then
    echo "release: uncommitted changes to tracked files; commit them first (RELEASE_DIRTY_OK=1 builds them as VERSION-dirty):" >&2
    git status --short --untracked-files=no >&2
    exit 1
  fi
  version+=-dirty commit+=-dirty
fi

declare -A cc=([linux/amd64]=gcc [linux/arm64]=aarch64-linux-gnu-gcc [windows/amd64]=x86_64-w64-mingw32-gcc)
mkdir -p "$out"
files=()
for t in $targets; do
  os=${t%/*} arch=${t#*/}
  [ -n "${cc[$t]:-}" ] || { echo "release: no toolchain known for $t" >&2; exit 1; }
  command -v "${cc[$t]}" >/dev/null || { echo "release: ${cc[$t]} not found; run scripts/setup.sh" >&2; exit 1; }
  name=bt-$version-$os-$arch
  ldflags="-s -w -X main.version=$version -X main.commit=$commit"
  if [ "$os" = windows ]; then
    name+=.exe
    ldflags+=" -extldflags=-Wl,--no-insert-timestamp"
  fi
  echo "release: $name" >&2
  GOOS=$os GOARCH=$arch CGO_ENABLED=1 CC=${cc[$t]} \
    go build -trimpath -buildvcs=false -tags nolibjpeg -ldflags "$ldflags" -o "$out/$name" ./cmd/bt
  files+=("$name")
done
(cd "$out" && sha256sum "${files[@]}" > SHA256SUMS && cat SHA256SUMS)
