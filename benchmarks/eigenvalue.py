"""Top Hessian eigenvalue: HVPs and time to a true relative error, against PyHessian and scipy.

The lab's default model is trained for 30 updates (10 epochs, LR 0.8,
batch 512), and the Hessian is that of the mean loss on the lab's
1,000-example probe subset. Everything runs in float64 (the model is
converted), so errors down to 1e-6 are resolvable. Ground truth is the
dense float64 Hessian from ``torch.func.hessian`` and ``eigh``.

Contenders, each with its HVP count read from an instrumented product:

- decaylab ``top_hessian_eigenvalues`` cold (seeded random start) and
  warm (started from the top eigenvector of the model 10 updates, one
  default probe interval, earlier), stopping on its own ``tol``;
- PyHessian 0.1 ``hessian(...).eigenvalues`` (power iteration), with
  ``tol`` swept from 1e-1 to 1e-9 at ``maxIter=1000``; its products are
  counted by wrapping ``pyhessian.hessian.hessian_vector_product``;
- scipy ``eigsh(which="LA", k=1)`` on a ``LinearOperator`` over decaylab's
  ``HessianOperator``, with ``tol`` swept likewise and ``ncv`` 20 (its
  default here) and 4.

For a target error, a swept contender's figure is the fewest HVPs among
its settings whose result reached the target. The "oracle" figures give
the first product count from which the estimate stays within the target,
which is the best any stopping rule could do. For decaylab they come from
Lanczos runs cut at m products, for PyHessian from the Rayleigh quotient
after each product. Each seed is one round, with all
contenders run in turn, so the seeds are the timing repeats too.

Run: ``.venv/bin/python -m benchmarks.eigenvalue``
"""

from __future__ import annotations

import copy
import sys
import time
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks._harness import Recorder, Stats, goal, parse_options
from benchmarks._lab_model import trained_model
from decaylab.torch.curvature import HessianOperator, lanczos, top_hessian_eigenvalues

COMMAND = ".venv/bin/python -m benchmarks.eigenvalue"
TARGETS = (1e-3, 1e-4, 1e-6)
SWEEP_TOLS = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6, 1e-7, 1e-8, 1e-9)
TRAIN_UPDATES = 30
WARM_GAP = 10
PYHESSIAN_MAX_ITER = 1000
ORACLE_MAX = 40


def dense_spectrum(model: nn.Module, loss_fn: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> np.ndarray:
    """Return all eigenvalues (ascending) of the dense float64 Hessian of the batch loss."""
    names = [name for name, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss_of(vector: torch.Tensor) -> torch.Tensor:
        pieces = [piece.view(shape) for piece, shape in zip(vector.split(sizes), shapes)]
        outputs = torch.func.functional_call(model, dict(zip(names, pieces)), (batch[0],))
        return loss_fn(outputs, batch[1])

    hessian = torch.func.hessian(loss_of)(flat)
    hessian = 0.5 * (hessian + hessian.T)
    return torch.linalg.eigvalsh(hessian).numpy()


def relative_error(estimate: float, truth: float) -> float:
    """Return ``|estimate - truth| / |truth|``."""
    return abs(estimate - truth) / abs(truth)


def first_lasting(errors: list[float], target: float) -> int | None:
    """Return the 1-based count from which every error is <= target, or None."""
    for index in range(len(errors)):
        if all(error <= target for error in errors[index:]):
            return index + 1
    return None


def decaylab_run(model: nn.Module, loss_fn: nn.Module, batches: list, tol: float,
                 init: torch.Tensor | None, seed: int) -> tuple[float, int, float]:
    """Return (eigenvalue, HVPs, seconds) of one ``top_hessian_eigenvalues`` call."""
    start = time.perf_counter()
    eigvals, _, n_hvp = top_hessian_eigenvalues(model, loss_fn, batches, k=1, tol=tol,
                                                init=init, seed=seed)
    return float(eigvals[0]), n_hvp, time.perf_counter() - start


def lanczos_errors(model: nn.Module, loss_fn: nn.Module, batches: list, truth: float,
                   init: torch.Tensor | None, seed: int, longest: int) -> list[float]:
    """Return the true error of the top Ritz value after each product count 1 .. ``longest``."""
    operator = HessianOperator(model, loss_fn, batches)
    errors = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for length in range(1, longest + 1):
            result = lanczos(operator.matvec, operator.n_params, k=1, tol=1e-300, init=init,
                             max_iter=length, min_iter=length, seed=seed, dtype=operator.dtype)
            errors.append(relative_error(float(result.eigvals[0]), truth))
    return errors


class PyHessianCounter:
    """Count PyHessian's products and record the Rayleigh quotient after each."""

    def __init__(self) -> None:
        import pyhessian.hessian  # noqa: F401  (the package re-exports a class of that name)

        module = sys.modules["pyhessian.hessian"]
        self.module = module
        self.original = module.hessian_vector_product
        self.quotients: list[float] = []

    def __enter__(self) -> "PyHessianCounter":
        def counted(grads: Any, params: Any, vector: Any) -> Any:
            product = self.original(grads, params, vector)
            self.quotients.append(float(sum(torch.sum(a * b) for a, b in zip(product, vector))))
            return product

        self.module.hessian_vector_product = counted
        return self

    def __exit__(self, *exc: object) -> None:
        self.module.hessian_vector_product = self.original


def pyhessian_run(model: nn.Module, loss_fn: nn.Module, batch: tuple, tol: float,
                  max_iter: int, seed: int) -> tuple[float, int, float, list[float]]:
    """Return (eigenvalue, HVPs, seconds, Rayleigh quotients) of one PyHessian call."""
    from pyhessian import hessian

    model = copy.deepcopy(model)
    torch.manual_seed(seed)
    # PyHessian draws its start vector with the default dtype, so float64 is set for the call.
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        with PyHessianCounter() as counter, warnings.catch_warnings():
            # Its constructor calls backward(create_graph=True), which torch warns about.
            warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")
            start = time.perf_counter()
            eigenvalues, _ = hessian(model, loss_fn, data=batch, cuda=False).eigenvalues(
                maxIter=max_iter, tol=tol, top_n=1)
            seconds = time.perf_counter() - start
    finally:
        torch.set_default_dtype(default_dtype)
    return float(eigenvalues[0]), len(counter.quotients), seconds, counter.quotients


def eigsh_run(model: nn.Module, loss_fn: nn.Module, batches: list, tol: float, ncv: int,
              start_vector: np.ndarray) -> tuple[float, int, float]:
    """Return (eigenvalue, HVPs, seconds) of scipy's ``eigsh`` on the HVP operator."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    begin = time.perf_counter()
    operator = HessianOperator(model, loss_fn, batches)

    def matvec(vector: np.ndarray) -> np.ndarray:
        return operator.matvec(torch.from_numpy(np.ascontiguousarray(vector).reshape(-1))).numpy()

    linear = LinearOperator((operator.n_params,) * 2, matvec=matvec, dtype=np.float64)
    values = eigsh(linear, k=1, which="LA", tol=tol, ncv=ncv, v0=start_vector,
                   maxiter=PYHESSIAN_MAX_ITER, return_eigenvectors=False)
    return float(values[0]), operator.n_hvp, time.perf_counter() - begin


def best_for_target(rows: list[dict[str, Any]], target: float) -> dict[str, Any] | None:
    """Return the row with the fewest HVPs whose error is <= target, or None."""
    reached = [row for row in rows if row["error"] <= target]
    return min(reached, key=lambda row: (row["hvps"], row["seconds"])) if reached else None


def summarise(per_seed: list[dict[str, Any] | None]) -> dict[str, Any]:
    """Return median HVPs and seconds over seeds, or what failed."""
    found = [row for row in per_seed if row is not None]
    if len(found) < len(per_seed):
        return {"reached_in": f"{len(found)} of {len(per_seed)} seeds", "hvps": None}
    return {
        "hvps": Stats.of([row["hvps"] for row in found]),
        "seconds": Stats.of([row["seconds"] for row in found]),
        "settings": [row.get("setting") for row in found],
        "errors": [row["error"] for row in found],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; return the recorded results."""
    options = parse_options(__doc__.splitlines()[0], argv)
    recorder = Recorder("eigenvalue", COMMAND, options)
    seeds = list(range(options.repeats or (1 if options.smoke else 7)))
    sweep = TARGETS if options.smoke else SWEEP_TOLS
    oracle_max = 8 if options.smoke else ORACLE_MAX
    pyhessian_iters = 30 if options.smoke else PYHESSIAN_MAX_ITER

    setup, earlier = trained_model(TRAIN_UPDATES, WARM_GAP)
    # NOTE: float64 only; the lab's probe runs in float32, and its HVP counts there are not measured.
    model, earlier = setup.model.double(), earlier.double()
    batch = (setup.probe[0].double(), setup.probe[1])
    batches = [batch]
    loss_fn = setup.loss_fn
    if options.smoke:
        # The dense Hessian takes tens of seconds here; a tight Lanczos run replaces it.
        top, _, _ = top_hessian_eigenvalues(model, loss_fn, batches, k=2, tol=1e-10)
        spectrum = np.array([float("nan"), float(top[1]), float(top[0])])
    else:
        spectrum = dense_spectrum(model, loss_fn, batch)
    truth = float(spectrum[-1])
    _, previous_vecs, _ = top_hessian_eigenvalues(earlier, loss_fn, batches, k=1, tol=1e-10)
    recorder["problem"] = {
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "train_updates": TRAIN_UPDATES, "warm_start_from_updates_earlier": WARM_GAP,
        "probe_examples": len(batch[1]), "dtype": "float64",
        "lambda_1": truth, "lambda_2": float(spectrum[-2]), "lambda_min": float(spectrum[0]),
        "gap_ratio_lambda2_over_lambda1": float(spectrum[-2] / truth),
    }

    contenders = ("decaylab_cold", "decaylab_warm", "pyhessian", "eigsh_ncv20", "eigsh_ncv4",
                  "eigsh_ncv20_warm")
    rows: dict[str, list[list[dict[str, Any]]]] = {name: [] for name in contenders}
    oracle: dict[str, list[list[float]]] = {"decaylab_cold": [], "decaylab_warm": [], "pyhessian": []}
    warm_init = previous_vecs[0]
    warm_numpy = warm_init.numpy().copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for seed in seeds:
            start_vector = np.random.default_rng(seed).standard_normal(len(warm_numpy))
            per: dict[str, list[dict[str, Any]]] = {name: [] for name in contenders}
            for tol in sweep:
                for name, init in (("decaylab_cold", None), ("decaylab_warm", warm_init)):
                    value, hvps, seconds = decaylab_run(model, loss_fn, batches, tol, init, seed)
                    per[name].append({"setting": f"tol={tol:g}", "hvps": hvps, "seconds": seconds,
                                      "error": relative_error(value, truth), "tol": tol})
                value, hvps, seconds, _ = pyhessian_run(model, loss_fn, batch, tol, pyhessian_iters, seed)
                per["pyhessian"].append({"setting": f"tol={tol:g}", "hvps": hvps, "seconds": seconds,
                                         "error": relative_error(value, truth), "tol": tol})
                for name, ncv, v0 in (("eigsh_ncv20", 20, start_vector), ("eigsh_ncv4", 4, start_vector),
                                      ("eigsh_ncv20_warm", 20, warm_numpy)):
                    value, hvps, seconds = eigsh_run(model, loss_fn, batches, tol, ncv, v0)
                    per[name].append({"setting": f"tol={tol:g}", "hvps": hvps, "seconds": seconds,
                                      "error": relative_error(value, truth), "tol": tol})
            for name in contenders:
                rows[name].append(per[name])
            oracle["decaylab_cold"].append(lanczos_errors(model, loss_fn, batches, truth, None, seed, oracle_max))
            oracle["decaylab_warm"].append(lanczos_errors(model, loss_fn, batches, truth, warm_init, seed, oracle_max))
            _, _, _, quotients = pyhessian_run(model, loss_fn, batch, 0.0, pyhessian_iters, seed)
            oracle["pyhessian"].append([relative_error(q, truth) for q in quotients])

    by_target: dict[str, Any] = {}
    for target in TARGETS:
        entry: dict[str, Any] = {}
        for name in contenders:
            entry[name] = summarise([best_for_target(seed_rows, target) for seed_rows in rows[name]])
        for name in ("decaylab_cold", "decaylab_warm"):
            own = [next(row for row in seed_rows if row["tol"] == target) for seed_rows in rows[name]]
            entry[f"{name}_own_tol"] = {
                "hvps": Stats.of([row["hvps"] for row in own]),
                "seconds": Stats.of([row["seconds"] for row in own]),
                "errors": [row["error"] for row in own],
                "reached": all(row["error"] <= target for row in own),
            }
        for name, curves in oracle.items():
            counts = [first_lasting(curve, target) for curve in curves]
            entry[f"{name}_oracle_hvps"] = counts
        by_target[f"{target:g}"] = entry
    floors = [min(curve) for curve in oracle["pyhessian"]]
    recorder["problem"]["pyhessian_lowest_error"] = Stats.of(floors)
    recorder["problem"]["pyhessian_max_iter"] = pyhessian_iters
    warm_gaps = warm_gap_study(loss_fn, model, batches, truth)
    recorder["results"] = {"by_target": by_target, "sweeps": rows, "warm_gaps": warm_gaps}
    recorder["goals"] = make_goals(by_target, pyhessian_iters, warm_gaps[-1])
    recorder.finish()
    return recorder.data


def warm_gap_study(loss_fn: nn.Module, model: nn.Module, batches: list, truth: float) -> list[dict[str, Any]]:
    """Measure warm starts from the eigenvector 1, 3 and 10 updates earlier, at tol=1e-3.

    Returns, per gap, the overlap ``|v_earlier . v_now|`` of the unit top
    eigenvectors, the HVPs and true error of a ``tol=1e-3`` call, and the
    first product count whose Ritz value stays within 1e-3.
    """
    _, now, _ = top_hessian_eigenvalues(model, loss_fn, batches, k=1, tol=1e-10)
    study = []
    for gap in (1, 3, WARM_GAP):
        _, earlier = trained_model(TRAIN_UPDATES, gap)
        _, vecs, _ = top_hessian_eigenvalues(earlier.double(), loss_fn, batches, k=1, tol=1e-10)
        value, hvps, _ = decaylab_run(model, loss_fn, batches, 1e-3, vecs[0], 0)
        errors = lanczos_errors(model, loss_fn, batches, truth, vecs[0], 0, 10)
        study.append({
            "updates_earlier": gap,
            "overlap": abs(float(vecs[0] @ now[0])),
            "hvps_tol_1e-3": hvps,
            "error_tol_1e-3": relative_error(value, truth),
            "first_lasting_hvps_1e-3": first_lasting(errors, 1e-3),
            "rayleigh_quotient_error": errors[0],
        })
    return study


def make_goals(by_target: dict[str, Any], pyhessian_iters: int,
               warm_gap: dict[str, Any]) -> list[dict[str, Any]]:
    """Compare HVP counts: PyHessian / decaylab cold >= 2 at each target; warm <= 4 at 1e-3."""
    goals = []
    for key, entry in by_target.items():
        ours, theirs = entry["decaylab_cold_own_tol"], entry["pyhessian"]
        if theirs["hvps"] is None:
            # PyHessian never got there, so its count exceeds maxIter on some seed.
            bound = pyhessian_iters / ours["hvps"].median
            record = goal(f"PyHessian / decaylab HVPs at error {key}", bound, 2.0, "x", at_most=False,
                          reason=f"PyHessian reached this error on {theirs['reached_in']} within "
                                 f"maxIter={pyhessian_iters}, so the figure is maxIter over decaylab's "
                                 "HVPs, a lower bound")
            record["met"] = record["met"] and ours["reached"]
            record["lower_bound"] = True
            goals.append(record)
            continue
        measured = theirs["hvps"].median / ours["hvps"].median
        reason = "" if ours["reached"] else "decaylab's own tol stop missed the true error on some seed"
        record = goal(f"PyHessian / decaylab HVPs at error {key}", measured, 2.0, "x", at_most=False,
                      reason=reason)
        record["met"] = record["met"] and ours["reached"]
        goals.append(record)
    warm = by_target.get("0.001", {}).get("decaylab_warm_own_tol")
    if warm is not None:
        reason = (
            f"the top eigenvector {warm_gap['updates_earlier']} updates earlier has overlap "
            f"{warm_gap['overlap']:.2f} with the current one; the Ritz value stays within 1e-3 "
            f"from product {warm_gap['first_lasting_hvps_1e-3']}, and the residual bound stops "
            f"the iteration at {warm_gap['hvps_tol_1e-3']}"
        )
        record = goal("decaylab warm-start HVPs at error 1e-3", warm["hvps"].median, 4, "HVPs",
                      reason=reason)
        record["met"] = record["met"] and warm["reached"]
        goals.append(record)
    return goals


if __name__ == "__main__":
    main()
