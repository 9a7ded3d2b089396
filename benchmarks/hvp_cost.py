"""Hessian-vector product cost in units of one gradient, for each HVP method of decaylab.

The lab's default model (trained 30 updates) and its 1,000-example probe
batch, in float32 as the lab runs it. One gradient is a forward pass and
``torch.autograd.grad`` of the mean loss. Each HVP method of
``HessianOperator`` is timed per product over ``products`` products on a
fresh operator per round. Building the operator is timed separately,
because for the graph-reusing methods it is itself a gradient with
``create_graph=True``.
PyHessian's ``hessian_vector_product`` on its own graph is the peer.

Run: ``.venv/bin/python -m benchmarks.hvp_cost``
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from typing import Any

import torch

from benchmarks._harness import Recorder, Stats, goal, interleaved, parse_options, time_ns
from benchmarks._lab_model import trained_model
from decaylab.torch.curvature import HVP_METHODS, HessianOperator

COMMAND = ".venv/bin/python -m benchmarks.hvp_cost"
GOAL_RATIO = 2.0
REASONS = {
    ("double_backward", True): "the product is one backward pass through the stored gradient graph",
    ("double_backward", False): "each product runs the forward pass, builds the gradient graph "
                                "and then differentiates it",
    ("reverse_over_reverse", True): "the product is one call of the stored torch.func vjp",
    ("reverse_over_reverse", False): "each product rebuilds torch.func.grad and its vjp, "
                                     "forward pass included",
    ("forward_over_reverse", False): "each product runs forward and backward with dual tensors "
                                     "(torch.func.jvp of torch.func.grad), with no graph to reuse",
}


def variants() -> list[tuple[str, str, bool]]:
    """Return ``(label, method, reuse_graph)`` for every HVP variant of ``HessianOperator``.

    ``forward_over_reverse`` has no graph to keep, so it appears once, with
    ``reuse_graph=False``.
    """
    found = []
    for method in HVP_METHODS:
        for reuse in (True, False):
            if method == "forward_over_reverse" and reuse:
                continue
            found.append((f"{method}, reuse_graph={reuse}", method, reuse))
    return found


def pyhessian_product(model: torch.nn.Module, loss_fn: torch.nn.Module,
                      batch: tuple[torch.Tensor, torch.Tensor]) -> Callable[[list[torch.Tensor]], Any]:
    """Build PyHessian's graph on ``batch``; return its product as a function of a vector list."""
    import pyhessian.hessian  # noqa: F401  (the package re-exports a class of that name)

    module = sys.modules["pyhessian.hessian"]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")
        model.zero_grad(set_to_none=True)
        hessian = module.hessian(model, loss_fn, data=batch, cuda=False)
    return lambda vector: module.hessian_vector_product(hessian.gradsH, hessian.params, vector)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; return the recorded results."""
    options = parse_options(__doc__.splitlines()[0], argv)
    recorder = Recorder("hvp_cost", COMMAND, options)
    products = 3 if options.smoke else 20
    repeats = options.repeats or (2 if options.smoke else 41)
    setup, _ = trained_model(30, 0)
    model, loss_fn = setup.model, setup.loss_fn
    inputs, targets = setup.probe
    params = list(model.parameters())
    n_params = sum(p.numel() for p in params)
    vector = torch.randn(n_params, generator=torch.Generator().manual_seed(0))
    pieces = [piece.view_as(p) for piece, p in zip(vector.split([p.numel() for p in params]), params)]
    recorder["settings"] = {"examples": len(targets), "parameters": n_params, "dtype": "float32",
                            "products_per_round": products, "rounds": repeats}

    def gradient() -> float:
        def once() -> None:
            for _ in range(products):
                torch.autograd.grad(loss_fn(model(inputs), targets), params)
        return time_ns(once) / products

    def product_of(method: str, reuse: bool) -> Callable[[], float]:
        def run() -> float:
            operator = HessianOperator(model, loss_fn, [setup.probe], method=method, reuse_graph=reuse)
            return time_ns(lambda: [operator.matvec(vector) for _ in range(products)]) / products
        return run

    def build_of(method: str, reuse: bool) -> Callable[[], float]:
        return lambda: float(time_ns(lambda: HessianOperator(model, loss_fn, [setup.probe],
                                                             method=method, reuse_graph=reuse)))

    def pyhessian() -> float:
        product = pyhessian_product(model, loss_fn, setup.probe)
        return time_ns(lambda: [product(pieces) for _ in range(products)]) / products

    contenders: dict[str, Callable[[], float]] = {"gradient": gradient, "pyhessian": pyhessian}
    for label, method, reuse in variants():
        contenders[label] = product_of(method, reuse)
        contenders[f"build: {label}"] = build_of(method, reuse)
    stats: dict[str, Stats] = interleaved(contenders, repeats, warmups=1)

    base = stats["gradient"].median
    rows = {label: {"ns": value, "gradients": value.median / base} for label, value in stats.items()}
    recorder["results"] = rows
    best_label = min((label for label, _, _ in variants()), key=lambda label: rows[label]["gradients"])
    recorder["goals"] = [
        goal(f"HVP / gradient, {label}", rows[label]["gradients"], GOAL_RATIO, "x gradient",
             reason=REASONS[(method, reuse)])
        for label, method, reuse in variants()
    ]
    recorder["best"] = best_label
    recorder.finish()
    return recorder.data


if __name__ == "__main__":
    main()
