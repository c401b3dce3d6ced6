#!/bin/sh
# check.sh SRCROOT EMBEDDIR - embed jobq as a meson subproject in a fresh temp project, build
# it and run the example; then install jobq (from the same subproject build) and build the
# example again with only pkg-config. Exit 0 on success, 77 (skip) without meson/ninja.
set -eu
src=$1
embed=$2
command -v meson >/dev/null 2>&1 || { echo "meson not found: skipped"; exit 77; }
command -v ninja >/dev/null 2>&1 || { echo "ninja not found: skipped"; exit 77; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/jobq-embed.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/proj/subprojects"
cp "$embed/meson.build" "$tmp/proj/"
cp "$src/examples/embed.c" "$tmp/proj/"
# The tree without build directories: meson refuses a source dir that holds a build dir.
mkdir "$tmp/proj/subprojects/jobq"
for f in meson.build meson_options.txt include src examples tests subprojects; do
    [ -e "$src/$f" ] && cp -R "$src/$f" "$tmp/proj/subprojects/jobq/"
done
# Sanitizer settings of the calling build must not leak into this plain build.
unset ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS LD_PRELOAD || true
cd "$tmp/proj"
meson setup build -Dprefix="$tmp/prefix" -Dlibdir=lib >"$tmp/setup.log" 2>&1 ||
    { cat "$tmp/setup.log"; exit 1; }
meson compile -C build >"$tmp/compile.log" 2>&1 || { cat "$tmp/compile.log"; exit 1; }
./build/embed
echo "subproject embedding: ok"

# Installed: headers, library and jobq.pc, then a plain compiler call driven by pkg-config.
meson install -C build --no-rebuild >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; exit 1; }
if command -v pkg-config >/dev/null 2>&1 && [ -f "$tmp/prefix/lib/pkgconfig/jobq.pc" ]; then
    export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
    # shellcheck disable=SC2046
    cc -std=c11 -Wall -Wextra -Werror -o "$tmp/embed-pc" "$src/examples/embed.c" \
        $(pkg-config --cflags --libs jobq) -pthread
    "$tmp/embed-pc"
    echo "pkg-config embedding: ok"
else
    echo "jobq.pc not installed at $tmp/prefix/lib/pkgconfig" >&2
    exit 1
fi
