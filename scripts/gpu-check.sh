#!/usr/bin/env bash
# One call on the GPU machine (device tool): build kiln with CUDA and the
# Python extension, run the C tests (CUDA backend included) and the Python
# tests (GPU variants included), the seed example on the GPU, then the GPU
# benchmarks; a short summary table comes last.  Logs go to $OUT when set.
#   usage: bash scripts/gpu-check.sh [quick|aot|llama|llama8b|families|multi|conv|resize]
#     aot: build, C tests, AOT steps only; llama: build, test_llama.py, the 1B bench only;
#     families: build, test_llm_families.py and test_llama.py, the Qwen2.5-1.5B, Qwen3-8B and
#     Mistral-7B benches only;
#     llama8b: build, the 8B bench only (kiln AOT graph beside transformers eager and torch.compile);
#     multi: build, then the multi-GPU section only (collectives across processes);
#     conv: build, the CUDA backend's C test, test_conv.py, bench_gpu_conv.py --path igemm im2col-batched im2col-flat
#           (conv.cu's default choice and each forced path vs cuDNN)
#     resize: build, the CUDA backend's C test, test_resize.py, bench_gpu_resize.py (resize.cu vs torch)
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# NVLink multicast stays off in every NCCL/PyTorch/NVSHMEM this script starts
# (torchrun, pytest's worker processes, the C two-rank test inherit these):
# a program that uses it can take the host's shared GPUs out of service.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
out=$root/build/gpu-logs
mkdir -p "$out"
declare -a summary
step() {   # step NAME COMMAND...: run, log, record pass/fail
  local name=$1; shift
  local t0=$(date +%s%N)
  if "$@" >"$out/$name.log" 2>&1; then status=pass; else status=FAIL; fi
  local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  summary+=("$(printf '| %-22s | %-6s | %4d.%01d s |' "$name" "$status" $((ms / 1000)) $((ms % 1000 / 100)))")
  echo "---- $name: $status"; tail -n 25 "$out/$name.log"
}
no_skips() {   # no_skips PYTEST...: fail when a test that needs 2 GPUs skipped on this 2-GPU machine
  local log; log=$(mktemp)
  "$@" 2>&1 | tee "$log"; local rc=${PIPESTATUS[0]}
  if grep -E '^SKIPPED.*(2 GPUs|two GPUs|NCCL)' "$log"; then echo "multi-GPU tests skipped on a multi-GPU machine"; rc=1; fi
  rm -f "$log"; return "$rc"
}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
build=$root/build/gpu
step configure cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DKILN_WERROR=ON -DKILN_CUDA=ON -DKILN_PYTHON=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DPython3_EXECUTABLE="$(command -v python3)"
step build cmake --build "$build" -j"$(nproc)"
case "${1:-}" in llama|llama8b|families|multi|conv|resize) ;; *) step ctest ctest --test-dir "$build" --output-on-failure ;; esac
export KILN_BUILD_DIR=$build PYTHONPATH=$root/python${PYTHONPATH:+:$PYTHONPATH}
case "${1:-}" in aot|llama|llama8b|families|multi|conv|resize) ;; *) step pytest python3 -m pytest -q -p no:cacheprovider tests/python ;; esac
case "${1:-}" in aot|llama|llama8b|families|multi|conv|resize) ;; *) step seed-example bash -c "cd examples/python_plugin && python3 build_lookup.py && python3 run_lookup.py" ;; esac
# Multi-GPU: collective layers across processes over NCCL (docs/distributed.md):
# Python: two ranks against torch.distributed, a CUDA graph replay, a dead
# peer; C: two forked ranks through the C API.  (multi mode adds the CUDA
# backend test and the NCCL ABI check.)  Skipped with fewer than 2 GPUs.
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
if [ "${gpus:-0}" -ge 2 ]; then
  case "${1:-}" in aot|llama|llama8b|families|conv|resize) ;; *)
    step multi-gpu no_skips python3 -m pytest -v -rs -p no:cacheprovider tests/python/test_collectives.py
    # The C test finds NCCL by dlopen("libnccl.so.2"): when the loader has none, torch's wheel copy.
    nccl_lib=${KILN_NCCL_LIBRARY:-}
    if [ -z "$nccl_lib" ] && ! ldconfig -p 2>/dev/null | grep -q 'libnccl\.so\.2 '; then
      nccl_lib=$(python3 -c "import glob, os, nvidia.nccl as n; print((glob.glob(os.path.join(list(n.__path__)[0], 'lib', 'libnccl.so*')) or [''])[0])" 2>/dev/null || true)
    fi
    step multi-gpu-c timeout -k 10 300 env KILN_TEST_NO_SKIP=1 ${nccl_lib:+KILN_NCCL_LIBRARY="$nccl_lib"} \
      KILN_CUDA_BACKEND="$build/libkiln-cuda.so" "$build/tests/test_collectives_ranks"
    step multi-gpu-llama no_skips python3 -m pytest -v -rs -p no:cacheprovider tests/python/test_llama.py -k gpu_tensor_parallel
    # Benchmarks (full runs only): all-reduce vs torch.distributed; 8B decode at TP=1 and TP=2.
    if [ -z "${1:-}" ]; then
      step bench_collectives timeout -k 10 400 torchrun --nproc-per-node=2 bench/bench_collectives.py
      step bench_llama_tp1 torchrun --nproc-per-node=1 bench/bench_llama_tp.py --shape 8b --batch 1 16
      step bench_llama_tp2 torchrun --nproc-per-node=2 bench/bench_llama_tp.py --shape 8b --batch 1 16
    fi
    [ "${1:-}" = multi ] && step cuda-backend env KILN_CUDA_BACKEND="$build/libkiln-cuda.so" "$build/tests/test_cuda_backend"
    [ "${1:-}" = multi ] && [ -x "$build/tests/test_nccl_abi" ] && \
      step nccl-abi ctest --test-dir "$build" -R '^test_nccl_abi$' --output-on-failure   # with CMake's KILN_NCCL_LIBRARY
    ;;
  esac
else
  echo "---- multi-gpu: skipped (${gpus:-0} GPU visible; needs 2)"
  summary+=("$(printf '| %-22s | %-6s | %8s |' multi-gpu skip -)")
fi
if [ "${1:-}" = multi ]; then
  echo; echo "| step                   | result | time     |"; echo "|------------------------|------|----------|"
  printf '%s\n' "${summary[@]}"
  [ -n "${OUT:-}" ] && for f in "$out"/*.log; do echo "===== $(basename "$f")"; cat "$f"; done > "$OUT/gpu-check.log"
  exit 0
fi
# kiln.models.llama (Triton plugins), the Llama-3.2-1B shape in bfloat16: kiln
# with JIT and AOT plugins, eager and replayed, beside transformers (eager,
# SDPA, SDPA + static cache + torch.compile) and generate.c, in one table.
llama_1b=(python3 bench/bench_llama.py --shape 1b --batch 1 16 --kiln aot-graph jit-graph jit-eager
          --peers eager sdpa compile --c-generate "$build/kiln_llama_generate")
if [ "${1:-}" = conv ]; then
  # The convolution kernels (src/backend/cuda/conv.cu): against the CPU backend in C, against torch in
  # Python, then timed beside cuDNN with the implicit-GEMM kernels and each im2col form forced as columns
  # (im2col-batched leaves 1x1 stride-1 layers to the plain 1x1 cuBLAS path: the old default there).
  step cuda-backend env KILN_CUDA_BACKEND="$build/libkiln-cuda.so" "$build/tests/test_cuda_backend"
  step pytest-conv python3 -m pytest -q -p no:cacheprovider tests/python/test_conv.py
  step bench_gpu_conv python3 bench/bench_gpu_conv.py --path igemm im2col-batched im2col-flat
elif [ "${1:-}" = resize ]; then
  # The resize kernel (src/backend/cuda/resize.cu): against the CPU backend in C, against torch in Python
  # (the GPU variants of test_resize.py), then timed beside torch.
  step cuda-backend env KILN_CUDA_BACKEND="$build/libkiln-cuda.so" "$build/tests/test_cuda_backend"
  step pytest-resize python3 -m pytest -q -p no:cacheprovider tests/python/test_resize.py
  step bench_gpu_resize python3 bench/bench_gpu_resize.py
elif [ "${1:-}" = llama ]; then
  step pytest-llama python3 -m pytest -q -p no:cacheprovider tests/python/test_llama.py
  step bench_llama "${llama_1b[@]}"
elif [ "${1:-}" = families ]; then
  # Llama's relatives on the same engines (docs/plugin-guide.md, "The Llama family").
  step pytest-families python3 -m pytest -q -p no:cacheprovider tests/python/test_llm_families.py \
    tests/python/test_llama.py
  step bench_qwen2_1.5b python3 bench/bench_llama.py --arch qwen2 --shape 1.5b --batch 1 16 \
    --kiln aot-graph jit-graph --peers eager compile --repeat 2
  step bench_qwen3_8b python3 bench/bench_llama.py --arch qwen3 --shape 8b --batch 1 16 --kiln aot-graph \
    --peers eager compile --repeat 2
  step bench_mistral_7b python3 bench/bench_llama.py --arch mistral --shape 7b --batch 1 16 --kiln aot-graph \
    --peers eager compile --repeat 2
elif [ "${1:-}" = llama8b ]; then
  step bench_llama8b python3 bench/bench_llama.py --shape 8b --batch 1 16 --kiln aot-graph --peers eager compile \
    --repeat 2
else
# Ahead-of-time plugin: build the AOT engine (checked against torch on this
# GPU), then run it from C with no Python in the process.
step aot-example bash -c "cd examples/python_plugin && python3 build_lookup_aot.py --out '$build/aot' --tokens 37 --vocab 100 --hidden 200"
step aot-c-test env KILN_AOT_DIR="$build/aot" KILN_CUDA_BACKEND="$build/libkiln-cuda.so" "$build/tests/test_aot_engine"
fi
if [ "${1:-}" = llama ] || [ "${1:-}" = llama8b ] || [ "${1:-}" = families ] || [ "${1:-}" = conv ] ||
   [ "${1:-}" = resize ]; then
  :
elif [ "${1:-}" = aot ]; then
  step bench_gpu_aot python3 bench/bench_gpu_aot.py
elif [ "${1:-}" != quick ]; then
  for b in bench/bench_gpu_*.py; do
    [ -f "$b" ] && step "$(basename "$b" .py)" python3 "$b"
  done
  step bench_python_plugin python3 bench/bench_python_plugin.py
  # ONNX-exported transformers models (GPT-2, BERT, Llama; base size): kiln CUDA eager/graph vs torch eager
  step bench_onnx_models python3 bench/bench_onnx_models.py --device cuda --batch 1 8 --seq 128 --models gpt2 bert llama resnet50
  step bench_llama "${llama_1b[@]}"
  step bench_run_overhead "$build/bench/bench_run_overhead"
  step bench_cpu_matmul "$build/bench/bench_cpu_matmul"
  # kiln's float32 CPU matmul through a BLAS beside numpy: the system's
  # OpenBLAS when there is one, else the copy numpy ships (KILN_BLAS).
  blas=$(ldconfig -p 2>/dev/null | grep -q 'libopenblas\.so\.0' && echo "" || python3 -c \
    "import glob, os, numpy; print((glob.glob(os.path.join(os.path.dirname(numpy.__file__), '..', 'numpy.libs', '*openblas*.so')) or [''])[0])")
  step bench_cpu_matmul_blas env KILN_BLAS="$blas" python3 bench/bench_cpu_matmul_blas.py
  step bench_cpu_elementwise "$build/bench/bench_cpu_elementwise"
  step bench_load "$build/bench/bench_load" "$build/bench_load.engine"
fi
# $OUT (device tool) takes few files: one combined log.
if [ -n "${OUT:-}" ]; then
  for f in "$out"/*.log; do echo "===== $(basename "$f")"; cat "$f"; done > "$OUT/gpu-check.log"
fi
# The headline numbers, then the step table.
for b in bench_gpu_lookup bench_gpu_overhead bench_gpu_aot bench_gpu_gemv bench_gpu_conv bench_gpu_resize bench_llama bench_llama8b \
         bench_onnx_models bench_qwen2_1.5b bench_qwen3_8b bench_mistral_7b; do
  if [ -f "$out/$b.log" ]; then
    echo; echo "$b:"; grep -E '^\||^kiln from C|^torch.compile' "$out/$b.log" | grep -v -- '---' | head -n 24
  fi
done
echo
echo "| step                   | result | time     |"
echo "|------------------------|------|----------|"
printf '%s\n' "${summary[@]}"
