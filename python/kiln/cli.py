"""The `kiln` command that pip installs: it replaces itself (exec) with the C
command-line tool, so `kiln inspect|run|bench` runs with no Python in the
process (docs/cli.md).

The tool is looked for where _kiln was found: in an installed package at
kiln/bin/kiln, in a source tree in $KILN_BUILD_DIR."""
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


def main():
    path = tool_path()
    if path is None:
        sys.stderr.write("kiln: the command-line tool was not built with this kiln (looked in the package's bin/ "
                         "and $KILN_BUILD_DIR); reinstall with `pip install .` or build it with CMake\n")
        return 1
    os.execv(path, [path] + sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
