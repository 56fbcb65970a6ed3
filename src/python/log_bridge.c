/* log_bridge.c — kiln's C log (core/log.h) into Python's logging.
 *
 * _kiln._set_log_handler(fn): every message the C library logs at an enabled
 * level becomes fn(level, message) (python/kiln/log.py passes it to the
 * "kiln" logger).  The C side may log from any thread, with or without the
 * GIL: the callback takes it.  None restores stderr. */
#include "kiln_py.h"

static PyObject *log_handler;   /* the Python callable; owned; process-wide like the C sink */

static void forward_to_python(kiln_log_level level, const char *message, void *user) {
    if (!Py_IsInitialized()) return;
    PyGILState_STATE g = PyGILState_Ensure();
    if (log_handler) {
        PyObject *r = PyObject_CallFunction(log_handler, "is", (int)level, message);
        if (!r) PyErr_WriteUnraisable(log_handler);   /* a logging failure must not become a kiln failure */
        Py_XDECREF(r);
    }
    PyGILState_Release(g);
}

PyObject *kiln_py_set_log_handler(PyObject *module, PyObject *fn) {
    if (fn != Py_None && !PyCallable_Check(fn)) {
        PyErr_SetString(PyExc_TypeError, "_set_log_handler: expected a callable or None");
        return NULL;
    }
    kiln_log_set_callback(NULL, NULL);
    Py_XSETREF(log_handler, fn == Py_None ? NULL : Py_NewRef(fn));
    if (log_handler) kiln_log_set_callback(forward_to_python, NULL);
    Py_RETURN_NONE;
}

PyObject *kiln_py_set_log_level(PyObject *module, PyObject *arg) {
    long v = PyLong_AsLong(arg);
    if (v == -1 && PyErr_Occurred()) return NULL;
    if (v < KILN_LOG_ERROR || v > KILN_LOG_DEBUG) {
        PyErr_Format(PyExc_ValueError, "log level %ld is outside 0 (error) .. 3 (debug)", v);
        return NULL;
    }
    kiln_log_set_level((kiln_log_level)v);
    Py_RETURN_NONE;
}

PyObject *kiln_py_get_log_level(PyObject *module, PyObject *unused) {
    return PyLong_FromLong((long)kiln_log_get_level());
}
