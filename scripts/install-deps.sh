#!/usr/bin/env bash
# Installs what building and testing kiln needs, only what is missing:
# Debian packages (compilers, cmake, clang for the fuzzer) and Python packages
# (numpy, torch with triton, pytest, hypothesis, scikit-build-core, and
# transformers + safetensors, which tests/python/test_llama.py compares
# kiln.models.llama against; onnx, onnxruntime and ml_dtypes for kiln.onnx).
set -euo pipefail
need_apt=()
for tool in gcc cmake clang make; do command -v "$tool" >/dev/null 2>&1 || need_apt+=("$tool"); done
if ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  need_apt+=(libclang-rt-dev)
fi
# OpenBLAS: kiln's float32 CPU matmuls use it when present (found at run time,
# src/backend/cpu/cpu_blas.h); the tests run both with it and without.
ldconfig -p 2>/dev/null | grep -q 'libopenblas\.so\.0' || need_apt+=(libopenblas0-pthread)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v valgrind >/dev/null 2>&1 || need_apt+=(valgrind)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
PY=${PYTHON:-python3}
missing=()
$PY -c "import numpy" 2>/dev/null || missing+=(numpy)
$PY -c "import torch" 2>/dev/null || missing+=(torch)
$PY -c "import triton" 2>/dev/null || missing+=(triton)
$PY -c "import pytest" 2>/dev/null || missing+=(pytest)
$PY -c "import hypothesis" 2>/dev/null || missing+=(hypothesis)
$PY -c "import scikit_build_core" 2>/dev/null || missing+=(scikit-build-core)
$PY -c "import transformers" 2>/dev/null || missing+=(transformers)
$PY -c "import safetensors" 2>/dev/null || missing+=(safetensors)
# kiln.onnx's tests: ONNX (its node test cases), onnxruntime (the reference
# for exported models), ml_dtypes (bfloat16 numpy arrays)
$PY -c "import onnx" 2>/dev/null || missing+=(onnx)
$PY -c "import onnxruntime" 2>/dev/null || missing+=(onnxruntime)
$PY -c "import ml_dtypes" 2>/dev/null || missing+=(ml_dtypes)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Python packages: ${missing[*]}"
  $PY -m pip install -q "${missing[@]}"
fi
