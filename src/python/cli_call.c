/* cli_call.c — _kiln.cli_main(argv): the kiln command-line tool (tools/), run
 * in this Python process.
 *
 * `kiln run --import plugin_lib ENGINE` (python/kiln/cli.py) imports the
 * modules, whose Python plugins register themselves, then calls this: the
 * tool is the same C code as the `kiln` executable, so its options and
 * output are the same by construction.  The GIL is released while the tool
 * runs; a Python plugin's enqueue takes it back as always. */
#include "kiln_py.h"

#ifdef KILN_PY_HAVE_CLI
#include <stdio.h>
#include <stdlib.h>

int kiln_cli_main(int argc, char **argv, bool with_python);   /* tools/cli.h */

PyObject *kiln_py_cli_main(PyObject *module, PyObject *arg) {
    PyObject *seq = PySequence_Fast(arg, "cli_main: argv must be a sequence of str");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    char **argv = calloc((size_t)n + 1, sizeof *argv);
    if (!argv) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *s = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, i));   /* valid while seq lives */
        if (!s) {
            free(argv);
            Py_DECREF(seq);
            return NULL;
        }
        argv[i] = (char *)s;
    }
    int code;
    Py_BEGIN_ALLOW_THREADS
    code = kiln_cli_main((int)n, argv, true);
    fflush(stdout);
    fflush(stderr);
    Py_END_ALLOW_THREADS
    free(argv);
    Py_DECREF(seq);
    return PyLong_FromLong(code);
}
#else
PyObject *kiln_py_cli_main(PyObject *module, PyObject *arg) {
    PyErr_SetString(PyExc_RuntimeError, "this _kiln was built without the kiln command-line tool");
    return NULL;
}
#endif
