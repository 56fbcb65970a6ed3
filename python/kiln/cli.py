"""The `kiln` command that pip installs.

`kiln build MODEL.onnx -o ENGINE --shape INPUT=MIN:OPT:MAX` builds an engine
from an ONNX file here in Python (kiln/onnx/command.py).

Without --import it replaces itself (exec) with the C command-line tool, so
`kiln inspect|run|bench` runs with no Python in the process (docs/cli.md).

With `--import MODULE` (repeatable) or `--import-recorded`, the engine has
Python plugins: this process imports the modules — importing a plugin package
registers its plugins — and then runs the same C tool in-process
(_kiln.cli_main), so options and output are those of the tool for a native
engine.  --import-recorded imports the modules the engine file itself names
for its plugins; it runs code that the file chose, so it is never implied:
the user asks for it.

The tool is looked for where _kiln was found: in an installed package at
kiln/bin/kiln, in a source tree in $KILN_BUILD_DIR."""
import importlib
import os
import sys
from pathlib import Path


def tool_path():
    """The C tool's path, or None when this kiln has none."""
    candidates = [Path(__file__).resolve().parent / "bin" / "kiln"]
    build = os.environ.get("KILN_BUILD_DIR")
    if build:
        candidates.append(Path(build).resolve() / "kiln")
    for p in candidates:
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


def split_imports(args):
    """(modules to import, whether --import-recorded was given, the other args)."""
    modules, recorded, rest = [], False, []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--import":
            if i + 1 >= len(args):
                raise SystemExit("kiln: option --import needs a value (a module to import)")
            modules.append(args[i + 1])
            i += 2
            continue
        if a.startswith("--import="):
            modules.append(a.split("=", 1)[1])
        elif a == "--import-recorded":
            recorded = True
        else:
            rest.append(a)
        i += 1
    return modules, recorded, rest


def recorded_modules(args):
    """The modules named by the plugins of the engine files among args."""
    from .runtime import Engine
    from ._native import _kiln
    found = []
    for a in args:
        if a.startswith("-") or not os.path.isfile(a):
            continue
        try:
            engine = Engine.from_file(a, _kiln.LOAD_NO_PLUGINS)
        except Exception:
            continue
        for _ns, _name, _version, module in engine.plugins():
            if module and module not in found and module != "__main__":
                found.append(module)
    return found


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    modules, recorded, rest = split_imports(args)
    if rest[:1] == ["build"]:
        # Building from an ONNX file is Python's work (kiln.onnx); the C tool runs engines.
        sys.path.insert(0, os.getcwd())
        for m in modules:
            importlib.import_module(m)
        from .onnx.command import main as build_main
        return build_main(rest[1:])
    if not modules and not recorded:
        path = tool_path()
        if path is None:
            sys.stderr.write("kiln: the command-line tool was not built with this kiln (looked in the package's "
                             "bin/ and $KILN_BUILD_DIR); reinstall with `pip install .` or build it with CMake\n")
            return 1
        os.execv(path, [path] + rest)
    if recorded:
        modules += [m for m in recorded_modules(rest) if m not in modules]
    sys.path.insert(0, os.getcwd())   # as `python -m`: modules next to the user are importable
    for m in modules:
        try:
            importlib.import_module(m)
        except Exception as e:
            sys.stderr.write(f"kiln: --import {m}: {type(e).__name__}: {e}\n")
            return 1
    from ._native import _kiln
    sys.stdout.flush()
    sys.stderr.flush()
    return _kiln.cli_main(["kiln"] + rest)


if __name__ == "__main__":
    sys.exit(main())
