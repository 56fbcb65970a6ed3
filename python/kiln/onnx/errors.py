"""The importer's error: which node, which op, what would make it work."""


class UnsupportedNode(ValueError):
    """An ONNX node kiln cannot import, named by node, op type and opset."""

    def __init__(self, node, reason, opset=None):
        name = getattr(node, "name", "") or "(unnamed)"
        op = getattr(node, "op_type", "?")
        domain = getattr(node, "domain", "") or "ai.onnx"
        where = f"node '{name}' ({domain}::{op}" + (f", opset {opset})" if opset else ")")
        hint = ("; a custom-domain node becomes a kiln plugin registered as namespace=<domain>, name=<op type> "
                "(import the module that defines it first); for a standard op, see docs/onnx.md for the list "
                "kiln supports")
        super().__init__(f"kiln.onnx: {where}: {reason}" + (hint if "no importer" in reason else ""))
        self.node = node


class NeedsKnown(UnsupportedNode):
    """An input that sets a shape or axes (a shape tensor) holds data computed
    at run time.  input_names: the node's inputs it came from, so that a
    caller who has their values (kiln.onnx.backend) can supply them."""

    def __init__(self, node, reason, value):
        super().__init__(node, reason)
        self.value = value
        self.input_names = []
