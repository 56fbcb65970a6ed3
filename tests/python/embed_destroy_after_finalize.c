/* embed_destroy_after_finalize.c — a C program embedding Python that destroys
 * a Python plugin instance after Py_FinalizeEx (as an application that owns
 * its kiln contexts may): the bridge must still free its wrapper arrays.
 * Built and run under valgrind by test_reliability.py.
 * Usage: embed_destroy_after_finalize PYTHON_DIR ENGINE_PATH */
#include <Python.h>
#include <kiln/kiln.h>
#include <stdio.h>

static const char *script =
    "import sys\n"
    "sys.path.insert(0, sys.argv[1])\n"
    "import numpy as np, kiln\n"
    "@kiln.plugin('Copy', namespace='leak')\n"
    "class Copy(kiln.PluginBase):\n"
    "    def shape_dtype_inference(self, inputs) -> kiln.SymTensor:\n"
    "        return kiln.SymTensor(inputs[0].dtype, inputs[0].shape)\n"
    "    def forward(self, inputs, outputs):\n"
    "        kiln.convert_to_numpy(outputs[0])[...] = kiln.convert_to_numpy(inputs[0])\n"
    "net = kiln.Builder().create_network()\n"
    "with kiln.net_guard(net):\n"
    "    Copy()(kiln.Tensor(name='x', shape=(4,), dtype='float32')).mark_output('y')\n"
    "kiln.Builder().build_engine(net).save(sys.argv[2])\n";

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    Py_Initialize();
    wchar_t *wargv[3];
    for (int i = 0; i < 3; i++) wargv[i] = Py_DecodeLocale(argv[i], NULL);
    PySys_SetArgvEx(3, wargv, 0);
    if (PyRun_SimpleString(script) != 0) return 1;
    kiln_engine *e;
    kiln_context *ctx;
    if (kiln_engine_load_file(argv[2], 0, &e) || kiln_context_create(e, NULL, &ctx)) {
        fprintf(stderr, "%s\n", kiln_last_error());
        return 1;
    }
    float x[4] = {1, 2, 3, 4}, y[4] = {0};
    int64_t shape[1] = {4};
    PyThreadState *ts = PyEval_SaveThread();   /* as a C caller would: the bridge takes the GIL */
    if (kiln_context_set_input_shape(ctx, "x", 1, shape) || kiln_context_set_tensor(ctx, "x", x) ||
        kiln_context_set_tensor(ctx, "y", y) || kiln_context_enqueue(ctx, NULL)) {
        fprintf(stderr, "%s\n", kiln_last_error());
        return 1;
    }
    PyEval_RestoreThread(ts);
    printf("y = %g %g %g %g\n", y[0], y[1], y[2], y[3]);
    Py_FinalizeEx();
    kiln_context_free(ctx);   /* destroys the plugin instance after the interpreter */
    kiln_engine_free(e);
    for (int i = 0; i < 3; i++) PyMem_RawFree(wargv[i]);
    return 0;
}
