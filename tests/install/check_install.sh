#!/usr/bin/env bash
# Installs the build tree into a fresh temporary prefix and builds and runs a small C consumer
# against it twice: through find_package(mlakv 0.1 CONFIG) and through pkg-config. Also checks
# the installed files and the library's SONAME. Usage: check_install.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
work=$(mktemp -d /tmp/mlakv-install.XXXXXX)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(dirname "$(find "$prefix" -name 'libmlakv.so' | head -n 1)")
for f in "$prefix/include/mlakv/mlakv.h" "$libdir/libmlakv.so" "$libdir/pkgconfig/mlakv.pc" \
         "$libdir/cmake/mlakv/mlakvConfig.cmake" "$libdir/cmake/mlakv/mlakvConfigVersion.cmake"; do
  [ -e "$f" ] || { echo "check_install: missing ${f#$prefix/}"; exit 1; }
done
soname=$(objdump -p "$libdir/libmlakv.so" | awk '/SONAME/ {print $2}')
[ "$soname" = "libmlakv.so.0" ] || { echo "check_install: SONAME is '$soname', expected libmlakv.so.0"; exit 1; }
[ -e "$libdir/libmlakv.so.0" ] && ls "$libdir"/libmlakv.so.0.* >/dev/null || { echo "check_install: versioned names missing"; exit 1; }
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# 1. CMake: find_package(mlakv 0.1 CONFIG REQUIRED) -> mlakv::mlakv
cmake -S "$src/tests/install" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" >"$work/cmake.log" 2>&1 ||
  { cat "$work/cmake.log"; exit 1; }
cmake --build "$work/cmake-build" >>"$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; exit 1; }
echo "find_package: $("$work/cmake-build/consumer")"
# a major version this package does not provide is refused (SameMajorVersion)
mkdir -p "$work/v1" && cp "$src/tests/install/consumer.c" "$work/v1/"
sed 's/find_package(mlakv 0.1/find_package(mlakv 1.0/' "$src/tests/install/CMakeLists.txt" > "$work/v1/CMakeLists.txt"
if cmake -S "$work/v1" -B "$work/v1/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null 2>&1; then
  echo "check_install: find_package(mlakv 1.0) accepted this 0.x package"; exit 1
fi

# 2. pkg-config (the .pc file is relocatable: its prefix comes from its own place)
export PKG_CONFIG_PATH="$libdir/pkgconfig"
[ "$(pkg-config --modversion mlakv)" = "$(sed -n 's/^project(mlakv VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")" ] ||
  { echo "check_install: pkg-config --modversion disagrees with the project version"; exit 1; }
# shellcheck disable=SC2046
cc -std=c99 -Wall -Wextra -pedantic -Werror "$src/tests/install/consumer.c" -o "$work/consumer-pc" $(pkg-config --cflags --libs mlakv)
echo "pkg-config: $("$work/consumer-pc")"
echo "check_install: ok"
