"""SymDim arithmetic against direct evaluation (hypothesis), symbolic and concrete."""
from collections import OrderedDict

import pytest
from hypothesis import given, settings, strategies as st

import kiln
from kiln import SymDim, sym_max, sym_min, sym_eq, sym_lt

OPS = {
    "+": (lambda a, b: a + b, lambda a, b: a + b),
    "-": (lambda a, b: a - b, lambda a, b: a - b),
    "*": (lambda a, b: a * b, lambda a, b: a * b),
    # divisors are made positive: max(b, 1)
    "//": (lambda a, b: a // sym_max(b, 1), lambda a, b: a // max(b, 1)),
    "/": (lambda a, b: a / sym_max(b, 1), lambda a, b: -((-a) // max(b, 1))),
    "min": (sym_min, min),
    "max": (sym_max, max),
    "eq": (sym_eq, lambda a, b: int(a == b)),
    "lt": (sym_lt, lambda a, b: int(a < b)),
}

leaves = st.one_of(st.sampled_from(["a", "b"]), st.integers(-6, 6))
trees = st.recursive(leaves, lambda sub: st.tuples(st.sampled_from(sorted(OPS)), sub, sub), max_leaves=6)


def build(tree, env, sym):
    if isinstance(tree, str):
        return env[tree]
    if isinstance(tree, int):
        return tree
    op, l, r = tree
    a, b = build(l, env, sym), build(r, env, sym)
    if sym and not isinstance(a, SymDim) and not isinstance(b, SymDim):
        a = SymDim(a)
    return OPS[op][0 if sym else 1](a, b)


def make_dims():
    net = kiln.Builder().create_network()
    with kiln.net_guard(net):
        x = kiln.Tensor(name="x", shape=(-1, -1), dtype="float32",
                        dim_range=OrderedDict([("a", [(1, 4, 40)]), ("b", [(1, 4, 40)])]))
    return net, x.shape


NET, (DIM_A, DIM_B) = make_dims()


@settings(max_examples=150, deadline=None)
@given(trees, st.integers(1, 40), st.integers(1, 40))
def test_symbolic_matches_direct(tree, va, vb):
    expect = build(tree, {"a": va, "b": vb}, sym=False)
    got = build(tree, {"a": DIM_A, "b": DIM_B}, sym=True)
    if isinstance(got, int):   # a tree of constants only
        assert got == expect
        return
    assert NET.exprs.eval(got._expr_in(NET.exprs), [va, vb]) == expect


@settings(max_examples=150, deadline=None)
@given(trees, st.integers(1, 40), st.integers(1, 40))
def test_concrete_matches_direct(tree, va, vb):
    """Eager calls trace with concrete SymDims: same semantics, no pool."""
    expect = build(tree, {"a": va, "b": vb}, sym=False)
    got = build(tree, {"a": SymDim(va), "b": SymDim(vb)}, sym=True)
    assert int(got) == expect


def test_symdim_basics():
    a = DIM_A
    assert a + 0 == a and a * 1 == a and (a - a) == 0
    assert str(a) == "a" and "a" in repr(a + 1)
    assert (a + 1) == (1 + a)         # hash-consed, canonical order
    assert SymDim(6) / 4 == 2 and SymDim(-7) // 2 == -4 and SymDim(7) / 2 == 4
    with pytest.raises(TypeError, match="symbolic"):
        int(a)
    assert int(SymDim(3) * 4) == 12
    with pytest.raises(TypeError):
        a + 1.5
    assert hash(SymDim(5)) == hash(5)
