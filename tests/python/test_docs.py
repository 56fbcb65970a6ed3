"""Every ```python snippet in the user docs runs, so none goes stale.

The snippets of one document run in order, in one namespace, in a fresh
process (their plugin names must not meet other tests' in one registry) with
a scratch directory as the working directory.  A document may give the names
its snippets assume in a hidden block, an HTML comment starting
`<!-- snippet-setup` whose body is Python, run where it stands.  A snippet
that cannot run here is preceded by `<!-- not-run: why -->` (sparingly)."""
import re
import subprocess
import sys

import pytest

from conftest import ROOT, subprocess_env

DOCS = ["docs/python.md", "docs/plugin-guide.md"]
BLOCK = re.compile(r"(<!-- not-run:[^>]*-->\s*)?```python\n(.*?)```|<!-- snippet-setup\n(.*?)-->", re.S)


def snippets(path):
    text = (ROOT / path).read_text()
    out = []
    for m in BLOCK.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        if m.group(3) is not None:
            out.append((line, m.group(3), "setup"))
        elif m.group(1) is None:
            out.append((line, m.group(2), "snippet"))
    return out


@pytest.mark.parametrize("doc", DOCS)
def test_doc_snippets_run(doc, tmp_path):
    parts = snippets(doc)
    assert any(kind == "snippet" for _, _, kind in parts), f"{doc} has no python snippet"
    program = ["import sys, traceback", "ns = {'__name__': 'doc_snippets'}"]
    for line, code, kind in parts:
        program.append(f"try:\n    exec(compile({code!r}, {f'{doc}:{line}'!r}, 'exec'), ns)\n"
                       f"except Exception:\n    traceback.print_exc()\n"
                       f"    sys.exit('{doc}: the {kind} at line {line} failed')")
    script = tmp_path / "run_snippets.py"
    script.write_text("\n".join(program) + "\nprint('all snippets ran')\n")
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=subprocess_env(), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "all snippets ran" in proc.stdout
