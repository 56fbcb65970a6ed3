"""`kiln build MODEL.onnx -o MODEL.engine --shape INPUT=MIN:OPT:MAX ...`:
an engine from an ONNX file on the command line (the Python side of the
`kiln` command; the C tool runs and inspects engines).

Each --shape gives one input's smallest, usual and largest shape, dims
joined by x (trtexec's style): --shape input_ids=1x1:2x128:8x512.  Every
dynamic axis of every input needs one (axes the model names alike share
it); static axes must agree with the model.  --import MODULE imports a
module first (one that registers the plugins of custom-domain nodes)."""
import argparse
import sys


def _shape(text, what):
    try:
        return [int(d) for d in text.split("x")] if text else []
    except ValueError:
        raise SystemExit(f"kiln build: {what}: '{text}' is not a shape like 2x128") from None


def dim_ranges(model, specs):
    """{dim_param: [(min, opt, max)]} from --shape specs, naming unnamed
    dynamic axes INPUT.AXIS in the model (which is modified)."""
    given = {}
    for spec in specs:
        name, sep, rest = spec.partition("=")
        parts = rest.split(":")
        if not sep or len(parts) != 3:
            raise SystemExit(f"kiln build: --shape {spec}: expected INPUT=MIN:OPT:MAX (e.g. x=1x16:4x64:8x128)")
        given[name] = [_shape(p, f"--shape {name}") for p in parts]
    ranges = {}
    inits = {i.name for i in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        dims = inp.type.tensor_type.shape.dim
        dynamic = [a for a, d in enumerate(dims) if not d.HasField("dim_value")]
        if not dynamic:
            continue
        if inp.name not in given:
            raise SystemExit(f"kiln build: input '{inp.name}' has dynamic axes {dynamic}: give "
                             f"--shape {inp.name}=MIN:OPT:MAX")
        mins, opts, maxs = given[inp.name]
        if not len(mins) == len(opts) == len(maxs) == len(dims):
            raise SystemExit(f"kiln build: --shape {inp.name}: input '{inp.name}' has rank {len(dims)}")
        for a in dynamic:
            if not dims[a].dim_param:
                dims[a].dim_param = f"{inp.name}.{a}"
            r = (mins[a], opts[a], maxs[a])
            if not r[0] <= r[1] <= r[2]:
                raise SystemExit(f"kiln build: --shape {inp.name}: axis {a} has min {r[0]}, opt {r[1]}, max {r[2]}")
            p = dims[a].dim_param
            if p in ranges and ranges[p] != [r]:
                raise SystemExit(f"kiln build: dimension '{p}' gets two ranges ({ranges[p][0]} and {r})")
            ranges[p] = [r]
    unknown = set(given) - {i.name for i in model.graph.input}
    if unknown:
        raise SystemExit(f"kiln build: --shape names no input of the model: {', '.join(sorted(unknown))}")
    return ranges


def main(argv):
    ap = argparse.ArgumentParser(prog="kiln build", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="an ONNX file")
    ap.add_argument("-o", "--output", required=True, help="the engine file to write")
    ap.add_argument("--shape", action="append", default=[], metavar="INPUT=MIN:OPT:MAX")
    args = ap.parse_args(argv)
    try:
        import onnx
    except ImportError:
        raise SystemExit("kiln build: reading ONNX files needs the onnx package (pip install 'kiln[onnx]')") from None
    from .. import network
    from . import parse
    model = onnx.load(args.model)
    net = parse(model, dim_range=dim_ranges(model, args.shape))
    engine = network.Builder().build_engine(net)
    engine.save(args.output)
    print(f"built {args.output} ({len(bytes(engine))} bytes) from {args.model}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
