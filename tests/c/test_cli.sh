#!/bin/sh
# test_cli.sh — end-to-end tests of the `kiln` command-line tool.
#
#   sh test_cli.sh KILN KILN_DEMO EXAMPLE_PLUGIN_LIB CLI_TEST_ENGINES WORKDIR
#
# Registered as the ctest test `test_cli` (tools/CMakeLists.txt).  Builds a
# demo engine (dynamic batch, two native plugins) with kiln_demo and two more
# with cli_test_engines (a plugin that needs Python; every dtype), then runs
# the tool on them: inspect (text, --json, --dot), run (random and .npy
# inputs, outputs checked by shape and value), bench, and every error case
# with its exit code and its one "kiln: " line.  numpy, when python3 has it,
# checks values exactly; without it the .npy headers are checked.

set -u
if [ $# -ne 5 ]; then
    echo "usage: test_cli.sh KILN KILN_DEMO PLUGIN_LIB CLI_TEST_ENGINES WORKDIR" >&2
    exit 2
fi
KILN=$1 DEMO=$2 PLUGIN=$3 ENGINES=$4 W=$5
rm -rf "$W" && mkdir -p "$W" || exit 1
E=$W/demo.engine PY=$W/python.engine DT=$W/dtypes.engine
P="--plugin-lib $PLUGIN"

passed=0 failed=0
ok()   { passed=$((passed + 1)); }
bad()  { failed=$((failed + 1)); echo "FAIL: $*" >&2; }
check() { # check DESCRIPTION COMMAND...: the command must succeed
    d=$1; shift
    if "$@"; then ok; else bad "$d"; fi
}

HAVE_NUMPY=0
if command -v python3 >/dev/null 2>&1 && python3 -c "import numpy" >/dev/null 2>&1; then HAVE_NUMPY=1; fi
HAVE_PYTHON=0
if command -v python3 >/dev/null 2>&1; then HAVE_PYTHON=1; fi

# kiln ARGS...: runs the tool, output in $W/out.txt and $W/err.txt, exit code in $rc.
kiln() { "$KILN" "$@" >"$W/out.txt" 2>"$W/err.txt"; rc=$?; }
out_has() { grep -q -e "$1" "$W/out.txt" || { echo "  stdout lacks: $1" >&2; return 1; }; }

# expect_error CODE PATTERN ARGS...: fails with CODE and exactly one stderr line "kiln: ..." matching PATTERN.
expect_error() {
    code=$1 pattern=$2; shift 2
    kiln "$@"
    lines=$(wc -l <"$W/err.txt")
    if [ "$rc" -ne "$code" ]; then bad "kiln $*: exit $rc, wanted $code ($(cat "$W/err.txt"))"; return; fi
    if [ "$lines" -ne 1 ]; then bad "kiln $*: $lines lines on stderr, wanted 1"; return; fi
    if ! grep -q "^kiln: " "$W/err.txt"; then bad "kiln $*: stderr lacks the 'kiln: ' prefix"; return; fi
    if ! grep -q -e "$pattern" "$W/err.txt"; then bad "kiln $*: stderr '$(cat "$W/err.txt")' lacks '$pattern'"; return; fi
    ok
}

# npy_shape FILE: the shape tuple from a .npy header, e.g. "(3, 2)".
npy_shape() { head -c 256 "$1" | LC_ALL=C tr -d '\000' | LC_ALL=C sed -n "s/.*'shape': \(([^)]*)\).*/\1/p" | head -n 1; }
npy_descr() { head -c 256 "$1" | LC_ALL=C tr -d '\000' | LC_ALL=C sed -n "s/.*'descr': '\([^']*\)'.*/\1/p" | head -n 1; }

# ---- engines -------------------------------------------------------------------
"$DEMO" "$PLUGIN" "$E" >/dev/null || { echo "FAIL: kiln_demo could not build $E" >&2; exit 1; }
"$ENGINES" "$PY" "$DT" "$W/escapes.engine" || { echo "FAIL: cli_test_engines could not build the engines" >&2; exit 1; }

# ---- help and version ------------------------------------------------------------
kiln --help;          check "--help exits 0" [ "$rc" -eq 0 ]; check "--help lists commands" out_has "inspect"
kiln help run;        check "help run exits 0" [ "$rc" -eq 0 ]; check "help run shows --output-dir" out_has "--output-dir"
kiln bench --help;    check "bench --help exits 0" [ "$rc" -eq 0 ]; check "bench --help shows --iterations" out_has "--iterations"
kiln --version;       check "--version exits 0" [ "$rc" -eq 0 ]; check "--version prints it" out_has "^kiln [0-9]"

# ---- inspect -----------------------------------------------------------------------
kiln inspect "$E"
check "inspect exits 0 without the plugin library" [ "$rc" -eq 0 ]
check "inspect: format version" out_has "^format version  *[0-9]"
check "inspect: size" out_has "^size  *[0-9][0-9]* bytes"
check "inspect: input x" out_has "^  x  *float32  *\[batch, 6\]"
check "inspect: output lo" out_has "^  lo  *float32  *\[batch, 2\]"
check "inspect: batch range" out_has "batch  *profile 0: (1, 4, 16)"
check "inspect: matmul layer" out_has "0  matmul  .*x, W -> "
check "inspect: binary add layer" out_has "1  binary add "
check "inspect: plugin layer" out_has "4  plugin example::SplitHalves v1 .*-> lo float32 \[batch, 2\], hi float32 \[batch, 2\]"
check "inspect: plugin list" out_has "example::ScaleShift version 1"
check "inspect: a plugin layer's attributes" out_has "^      layer 3: scale=2, shift=1$"
check "inspect: plugin does not need Python" out_has "needs Python: no"
check "inspect: plugin not registered" out_has "registered here: no"
check "inspect: arena" out_has "activation arena  *[0-9][0-9]* bytes"
check "inspect: weights" out_has "weights  *192 bytes"
check "inspect: activations at opt and max" out_has "activations  *[0-9][0-9]* bytes at profile 0's opt shapes, [0-9][0-9]* at its max"
kiln inspect "$E" $P
check "inspect --plugin-lib: registered" out_has "registered here: yes"
kiln inspect "$PY"
check "inspect python engine exits 0" [ "$rc" -eq 0 ]
check "inspect: python plugin" out_has "pytest::Echo version 1"
check "inspect: needs Python" out_has "module kiln_test_pyplugins, needs Python: yes"

kiln inspect "$E" --json
check "inspect --json exits 0" [ "$rc" -eq 0 ]
cp "$W/out.txt" "$W/demo.json"
if [ $HAVE_PYTHON = 1 ]; then
    check "inspect --json parses" python3 -m json.tool "$W/demo.json" >/dev/null
    check "inspect --json content" python3 - "$W/demo.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["format_version"] >= 1 and d["size_bytes"] > 0, d
assert d["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["batch", 6]}], d["inputs"]
assert [o["name"] for o in d["outputs"]] == ["lo", "hi"], d["outputs"]
assert d["outputs"][0]["shape"] == ["batch", 2]
assert d["dimensions"] == [{"name": "batch", "profiles": [{"min": 1, "opt": 4, "max": 16}]}], d["dimensions"]
assert [(l["kind"], l["detail"]) for l in d["layers"]] == [
    ("matmul", ""), ("binary", "add"), ("unary", "relu"),
    ("plugin", "example::ScaleShift v1"), ("plugin", "example::SplitHalves v1")], d["layers"]
assert d["layers"][0]["inputs"] == ["x", "W"] and d["layers"][4]["outputs"] == ["lo", "hi"]
p = d["plugins"][0]
assert (p["namespace"], p["name"], p["version"], p["needs_python"], p["supports_cpu"]) == \
    ("example", "ScaleShift", "1", False, True), p
assert d["memory"]["weight_bytes"] == 192 and d["memory"]["arena_bytes"] > 0
assert any(t["name"] == "W" and t["shape"] == [6, 4] for t in d["tensors"])
EOF
    kiln inspect "$PY" --json
    check "python engine json: needs_python" python3 -c "
import json, sys
d = json.load(open(sys.argv[1]))
assert d['plugins'][0]['needs_python'] is True and d['plugins'][0]['module'] == 'kiln_test_pyplugins'
" "$W/out.txt"
else
    check "inspect --json looks like JSON" out_has '"layers": \['
fi

kiln inspect "$E" --dot "$W/demo.dot"
check "inspect --dot exits 0" [ "$rc" -eq 0 ]
check "--dot file written" [ -s "$W/demo.dot" ]
check "--dot is a digraph" grep -q "^digraph " "$W/demo.dot"
check "--dot has the input edge" grep -q 'input0 -> layer0 \[label="x\\nfloat32"\]' "$W/demo.dot"
check "--dot has an output edge" grep -q 'layer4 -> output1 \[label="lo\\nfloat32"\]' "$W/demo.dot"
check "--dot has the weights" grep -q 'label="W\\nfloat32 \[6, 4\]"' "$W/demo.dot"
check "--dot closes the graph" grep -q "^}" "$W/demo.dot"
if command -v dot >/dev/null 2>&1; then check "--dot renders" dot -Tsvg -o "$W/demo.svg" "$W/demo.dot"; fi

# ---- run -----------------------------------------------------------------------------
kiln run "$E" $P --output-dir "$W/r1"
check "run (random) exits 0" [ "$rc" -eq 0 ]
check "run prints output lo" out_has "^output lo: float32 \[4, 2\] \["
check "run says the input is random" out_has "^input  x: float32 \[4, 6\] .*(random, seed 0)"
check "run writes lo.npy" [ -s "$W/r1/lo.npy" ]
check "run writes hi.npy" [ -s "$W/r1/hi.npy" ]
check "lo.npy shape (default batch = opt 4)" [ "$(npy_shape "$W/r1/lo.npy")" = "(4, 2)" ]
check "lo.npy dtype" [ "$(npy_descr "$W/r1/lo.npy")" = "<f4" ]

kiln run "$E" $P --shape x=3x6 --seed 7 --output-dir "$W/r2"
check "run --shape exits 0" [ "$rc" -eq 0 ]
check "run --shape: output shape" [ "$(npy_shape "$W/r2/hi.npy")" = "(3, 2)" ]
kiln run "$E" $P --shape x=3x6 --seed 7 --output-dir "$W/r3"
check "same seed, same outputs" cmp -s "$W/r2/lo.npy" "$W/r3/lo.npy"
kiln run "$E" $P --shape x=3x6 --seed 8 --output-dir "$W/r4"
check "another seed, other outputs" sh -c "! cmp -s '$W/r2/hi.npy' '$W/r4/hi.npy'"
kiln run "$E" $P --shape x=1x6 --output-dir "$W/r5"
check "batch 1: output shape" [ "$(npy_shape "$W/r5/lo.npy")" = "(1, 2)" ]

# An input file reproduces a known run: f_f32 = cast(f) is f itself, so feeding it back must give the same file.
kiln run "$DT" --shape f=6 --seed 3 --output-dir "$W/d1"
check "dtypes engine runs" [ "$rc" -eq 0 ]
check "every dtype: output shape" [ "$(npy_shape "$W/d1/i64_copy.npy")" = "(6,)" ]
check "int64 output dtype" [ "$(npy_descr "$W/d1/i64_copy.npy")" = "<i8" ]
check "bfloat16 output written as float32" [ "$(npy_descr "$W/d1/f_bf16.npy")" = "<f4" ]
check "bfloat16 output note" out_has "f_bf16.npy (bfloat16 written as float32)"
kiln run "$DT" --input "f=$W/d1/f_f32.npy" --seed 99 --output-dir "$W/d2"
check "run --input exits 0" [ "$rc" -eq 0 ]
check "run --input names the file" out_has "^input  f: float32 \[6\] .* from $W/d1/f_f32.npy"
check "run --input reproduces the data" cmp -s "$W/d1/f_f32.npy" "$W/d2/f_f32.npy"
check "run --input reproduces bfloat16 rounding" cmp -s "$W/d1/f_bf16.npy" "$W/d2/f_bf16.npy"
check "run --input: the file's shape sets n" [ "$(npy_shape "$W/d2/i32_f32.npy")" = "(6,)" ]
kiln run "$DT" --input "i64=$W/d1/i64_copy.npy" --output-dir "$W/d3"
check "int64 input round trip" cmp -s "$W/d1/i64_copy.npy" "$W/d3/i64_copy.npy"

if [ $HAVE_NUMPY = 1 ]; then
    # Values against numpy: the demo computes relu(x @ W + b) * 2 + 1, split in halves.
    check "numpy: demo outputs match a reference" python3 - "$KILN" "$E" "$PLUGIN" "$W" <<'EOF'
import subprocess, sys
import numpy as np
kiln, engine, plugin, w = sys.argv[1:]
x = (np.arange(30, dtype=np.float32).reshape(5, 6) % 7 - 3) / 4
np.save(w + "/x.npy", x)
subprocess.run([kiln, "run", engine, "--plugin-lib", plugin, "--input", "x=" + w + "/x.npy",
                "--output-dir", w + "/np"], check=True, stdout=subprocess.DEVNULL)
W = np.array([((i * 7) % 11 - 5) / 8 for i in range(24)], np.float32).reshape(6, 4)
b = np.array([i / 4 - 0.5 for i in range(4)], np.float32)
z = np.maximum(x @ W + b, 0) * 2 + 1
lo, hi = np.load(w + "/np/lo.npy"), np.load(w + "/np/hi.npy")
assert lo.shape == (5, 2) and hi.shape == (5, 2), (lo.shape, hi.shape)
assert np.allclose(lo, z[:, :2], atol=1e-5) and np.allclose(hi, z[:, 2:], atol=1e-5), (lo, hi, z)
EOF
    check "numpy: every dtype from .npy files (v1, v2, v3 headers)" python3 - "$KILN" "$DT" "$W" <<'EOF'
import subprocess, sys
import numpy as np
kiln, engine, w = sys.argv[1:]
vals = {"f": np.array([0.5, -1.25, 3, 1e-3], np.float32), "h": np.array([0.5, -1.25, 3, 1e-3], np.float16),
        "i8": np.array([-128, 127, 0, -1], np.int8), "u8": np.array([0, 255, 3, 4], np.uint8),
        "i32": np.array([2**31 - 1, -2**31, 0, 7], np.int32), "i64": np.array([2**40, -2**40, 0, 1], np.int64),
        "b": np.array([True, False, True, True])}
args = [kiln, "run", engine, "--output-dir", w + "/nd"]
for i, (k, v) in enumerate(vals.items()):
    with open(f"{w}/{k}.npy", "wb") as f:
        np.lib.format.write_array(f, v, version=[(1, 0), (2, 0), (3, 0)][i % 3])
    args += ["--input", f"{k}={w}/{k}.npy"]
bf = np.array([1.5, -2.0, 0.1, 3.0], np.float32)
np.save(w + "/bf.npy", bf)                      # a bfloat16 input takes float32, rounded to nearest even
subprocess.run(args + ["--input", "bf=" + w + "/bf.npy"], check=True, stdout=subprocess.DEVNULL)
for k, v in vals.items():
    got = np.load(f"{w}/nd/{k}_f32.npy")
    assert got.dtype == np.float32 and np.array_equal(got, v.astype(np.float32)), (k, got, v)
u = bf.view(np.uint32).astype(np.uint64)
want = ((((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16).astype(np.uint32)).view(np.float32)
assert np.array_equal(np.load(w + "/nd/bf_f32.npy"), want)
assert np.array_equal(np.load(w + "/nd/i64_copy.npy"), vals["i64"])
EOF
fi

# ---- bench ---------------------------------------------------------------------------
kiln bench "$E" $P --shape x=8x6 --iterations 50 --warmup 5
check "bench exits 0" [ "$rc" -eq 0 ]
check "bench table header" out_has "p50 (.s) *p90 (.s) *p99 (.s)"
check "bench throughput column" out_has "runs/s"
check "bench counts runs" out_has "^runs  *50 timed after 5 warm-up"
check "bench numbers" sh -c "tail -n 1 '$W/out.txt' | grep -q '^ *[0-9][0-9.]* *[0-9][0-9.]* *[0-9][0-9.]* *[0-9][0-9.]*'"

# ---- errors: exit 2 for usage, 1 for failures, one "kiln: " line ----------------------
expect_error 2 "no command given"                  
expect_error 2 "unknown command 'frobnicate'"      frobnicate
expect_error 2 "unknown option '--bogus'"          --bogus
expect_error 2 "help: unknown command 'nope'"      help nope
expect_error 2 "no engine file given"              run
expect_error 2 "no engine file given"              inspect
expect_error 2 "unknown option '--frob'"           inspect "$E" --frob
expect_error 2 "unknown option '--frob'"           run "$E" --frob
expect_error 2 "unexpected argument 'extra'"       run "$E" extra
expect_error 2 "--output-dir needs a value"        run "$E" $P --output-dir
expect_error 2 "expected NAME=VALUE"               run "$E" $P --shape x
expect_error 2 "expected sizes"                    run "$E" $P --shape x=3xq
expect_error 2 "no input named 'nope'"             run "$E" $P --shape nope=3x6
expect_error 2 "no input named 'y'"                run "$E" $P --input "y=$W/x.npy"
expect_error 2 "'lo' is an output"                 run "$E" $P --input "lo=$W/d1/f_f32.npy"
expect_error 2 "given twice"                       run "$E" $P --shape x=2x6 --shape x=3x6
expect_error 2 "expected cpu, cuda or cuda:N"      run "$E" $P --device tpu
expect_error 2 "expected a non-negative integer"   run "$E" $P --seed -3
expect_error 2 "--iterations '0'"                  bench "$E" $P --iterations 0
expect_error 2 "--warmup 'x'"                      bench "$E" $P --warmup x
expect_error 2 "requires a CUDA device"            bench "$E" $P --graphs
expect_error 2 "says \[2\] but"                    run "$DT" --input "f=$W/d1/f_f32.npy" --shape f=2
expect_error 1 "cannot open engine '$W/missing.engine'" run "$W/missing.engine"
expect_error 1 "cannot open engine"                inspect "$W/missing.engine"
printf 'not an engine' >"$W/garbage.engine"
expect_error 1 "not a kiln engine"                 inspect "$W/garbage.engine"
expect_error 1 "not registered: pass --plugin-lib" run "$E"
expect_error 1 "example::ScaleShift version 1"     bench "$E"
expect_error 1 "needs Python: plugin pytest::Echo version 1" run "$PY"
expect_error 1 "import kiln_test_pyplugins"        bench "$PY"
expect_error 2 "--import imports Python modules, which this program cannot" run "$PY" --import kiln_test_pyplugins
expect_error 1 "cannot load plugin library"        run "$E" --plugin-lib "$W/missing.so"
expect_error 1 "cannot open '$W/missing.npy'"      run "$E" $P --input "x=$W/missing.npy"
expect_error 1 "is not a .npy file"                run "$E" $P --input "x=$W/garbage.engine"
head -c $(($(wc -c <"$W/d1/f_f32.npy") - 1)) "$W/d1/f_f32.npy" >"$W/short.npy"
expect_error 1 "is truncated"                      run "$DT" --input "f=$W/short.npy"
expect_error 1 "input 'i32' is int32 but"          run "$DT" --input "i32=$W/d1/f_f32.npy"
expect_error 1 "outside the profile range"         run "$E" $P --shape x=17x6
expect_error 1 "axis 1 must be 6, got 5"           run "$E" $P --shape x=2x5
expect_error 1 "has rank 2, not 3"                 run "$E" $P --shape x=2x6x1
expect_error 1 "exists and is not a directory"     run "$E" $P --output-dir "$W/garbage.engine"
# Engine strings with terminal escapes are printed escaped, never raw.
kiln inspect "$W/escapes.engine"
check "inspect of an engine with escapes in its names exits 0" [ "$rc" -eq 0 ]
check "inspect prints no raw control byte" sh -c "! LC_ALL=C grep -q \"\$(printf '[\\001-\\010\\013-\\037\\177]')\" '$W/out.txt'"
check "inspect: escaped dim name" grep -qF 'b\x1b[2J' "$W/out.txt"
check "inspect: escaped input name" grep -qF 'x\x1b]0;owned\x07' "$W/out.txt"
check "inspect: escaped C1 control in a module" grep -qF 'mod\xc2\x9b31m' "$W/out.txt"
check "inspect: escaped non-UTF-8 byte" grep -qF 'z\xff' "$W/out.txt"
kiln inspect "$W/escapes.engine" --json
check "inspect --json of escaped names exits 0" [ "$rc" -eq 0 ]
check "inspect --json prints no raw ESC" sh -c "! LC_ALL=C grep -q \"\$(printf '\\033')\" '$W/out.txt'"
check "inspect --json escapes ESC as JSON does" grep -qF 'x\u001b]0;owned\u0007' "$W/out.txt"
expect_error 1 "module 'mod.xc2.x9b31m'" run "$W/escapes.engine"
check "an error naming an engine string has no raw ESC" sh -c "! LC_ALL=C grep -q \"\$(printf '\\033')\" '$W/err.txt'"

# A FIFO is refused at once, not waited on (timeout: a hang fails the check
# instead of the whole run).
if command -v mkfifo >/dev/null 2>&1 && command -v timeout >/dev/null 2>&1 && mkfifo "$W/fifo"; then
    timeout 10 "$KILN" inspect "$W/fifo" >"$W/out.txt" 2>"$W/err.txt"; rc=$?
    check "inspect of a FIFO fails at once" [ "$rc" -eq 1 ]
    check "inspect of a FIFO says why" grep -q "not a regular file" "$W/err.txt"
    timeout 10 "$KILN" run "$E" $P --input "x=$W/fifo" >"$W/out.txt" 2>"$W/err.txt"; rc=$?
    check "run --input FIFO fails at once" [ "$rc" -eq 1 ]
    check "run --input FIFO says why" grep -q "'$W/fifo' is not a regular file" "$W/err.txt"
fi
if ! "$KILN" run "$E" $P --device cuda:0 >/dev/null 2>&1; then
    expect_error 1 "cuda:0"                        run "$E" $P --device cuda:0
fi

echo "test_cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
