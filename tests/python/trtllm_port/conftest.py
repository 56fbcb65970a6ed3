"""Reports which example plugin package the ported test imported (its path
must be TensorRT-LLM's example, examples/trtllm_python_plugin)."""


def pytest_terminal_summary(terminalreporter):
    import sys
    lib = sys.modules.get("plugin_lib")
    terminalreporter.write_line(f"plugin_lib: {getattr(lib, '__file__', None)}")
