#!/usr/bin/env bash
# C users outside the wheel: install kiln with `cmake --install` into a
# temporary prefix, then build examples/native_plugin against the installed
# tree twice — through find_package(kiln) (the kiln::kiln target) and through
# pkg-config (kiln.pc) — and run each demo.  Part of scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
cmake -S . -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DKILN_CUDA=OFF -DKILN_TESTS=OFF -DKILN_BENCH=OFF \
  -DKILN_WERROR=ON -DCMAKE_INSTALL_PREFIX="$prefix" ${CMAKE_C_COMPILER_LAUNCHER:+-DCMAKE_C_COMPILER_LAUNCHER=$CMAKE_C_COMPILER_LAUNCHER} >/dev/null
cmake --build "$work/build" -j"$(nproc)" >/dev/null
cmake --install "$work/build" >/dev/null
libdir=$(ls -d "$prefix"/lib*/ | head -n 1)
echo "installed: $(cd "$prefix" && find . -type f -o -type l | sort | tr '\n' ' ')"
test -f "$prefix/include/kiln/kiln.h" && test -f "$prefix/include/kiln/plugin.h"
ls "$libdir"/libkiln.so.* >/dev/null
test -x "$prefix/bin/kiln"
"$prefix/bin/kiln" --version

# 1. CMake: find_package(kiln) → kiln::kiln
cmake -S examples/native_plugin -B "$work/with-cmake" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/with-cmake" >/dev/null
"$work/with-cmake/kiln_demo" "$work/with-cmake/libkiln_example_plugin.so" "$work/cmake.engine" | tail -n 3

# 2. pkg-config: kiln.pc
export PKG_CONFIG_PATH=$libdir/pkgconfig
cc=${CC:-cc}
flags=$(pkg-config --cflags --libs kiln)
$cc -std=c11 -Wall -Werror -fPIC -shared -o "$work/libplugin.so" examples/native_plugin/scale_plugin.c $flags
$cc -std=c11 -Wall -Werror -o "$work/demo" examples/native_plugin/demo.c $flags -Wl,-rpath,"$libdir"
"$work/demo" "$work/libplugin.so" "$work/pc.engine" | tail -n 3
echo "install test passed: find_package(kiln) and pkg-config both build and run the example"
