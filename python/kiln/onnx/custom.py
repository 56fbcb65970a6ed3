"""Custom-domain ONNX nodes as kiln plugins.

A node of domain D and op type O becomes the Python plugin registered as
namespace D, name O (kiln.plugin("O", namespace="D")), created with the
node's attributes as keyword arguments and called on the node's inputs —
the way TensorRT reaches its plugins from ONNX by op name and namespace."""
from .. import network as N
from ..plugin import registered_plugins
from .errors import UnsupportedNode
from .ops import attr


def plugin_op(imp, node, ins):
    found = [cls for (ns, name, _version), cls in registered_plugins().items()
             if ns == node.domain and name == node.op_type]
    if not found:
        known = sorted(f"{ns}::{name}" for (ns, name, _v) in registered_plugins())
        raise UnsupportedNode(node, f"no kiln plugin is registered as namespace '{node.domain}', name "
                                    f"'{node.op_type}' (registered: {', '.join(known) or 'none'}); define it with "
                                    f"@kiln.plugin(\"{node.op_type}\", namespace=\"{node.domain}\") and import "
                                    "that module before parsing")
    if len(found) > 1:
        raise UnsupportedNode(node, f"several versions of {node.domain}::{node.op_type} are registered")
    kwargs = {a.name: attr(node, a.name) for a in node.attribute}
    try:
        layer = found[0](**kwargs)
    except TypeError as e:
        raise UnsupportedNode(node, f"the plugin does not take the node's attributes {sorted(kwargs)}: {e}") from e
    with N.net_guard(imp.network):
        outs = layer(*[imp.tensor(v, node) for v in ins])
    return list(outs) if isinstance(outs, (list, tuple)) else [outs]
