"""Strict, name-based weight loading — the one mechanism every architecture and format uses.

An architecture describes its weights as a *weight map* per layout: a dict from a Keras variable path
(`"Transformer-0-MultiHeadSelfAttention/q_dense/kernel"`) to the source tensor that
fills it and an optional transform. The map covers every part the architecture can build
(pooler, NSP, MLM head, ...); `load_weights` then checks coverage both ways before it
touches a single variable:

- every variable of the model has an entry and its source tensor exists (else
  "missing"; a `NotSaved` entry is missing with its reason);
- every source tensor is consumed, belongs to a part this model was not built with
  (reported as "skipped"), or is bookkeeping such as optimizer slots ("ignored");
  anything else is "unused";
- every (transformed) source shape equals its variable's shape.

Missing, unused and mis-shaped weights raise `WeightLoadError`, which names them,
unless `ignore_invalid_weights=True`: then they are left as initialised and a warning
says which.
"""
import dataclasses
import re
import warnings
from typing import Callable

import numpy as np

# Tensors that are not model weights: optimizer slots and counters of TF training
# checkpoints, position-id / mask buffers of PyTorch checkpoints.
IGNORED_PATTERNS = (
    r"(^|/)global_step$",
    r"/adam_[mv]$",
    r"(^|/)(Adam|AdamW|LAMB|Lamb|AdamWeightDecayOptimizer|Momentum|RMSProp)(_\d+)?(/|$)",
    r"(^|/)beta[12]_power$",
    r"(^|/)(good_steps|bad_steps|current_loss_scale|loss_scale)$",
    r"(^|\.)position_ids$",
)


@dataclasses.dataclass(frozen=True)
class Transform:
    """A named change of a source tensor on its way into a variable.

    Attributes:
        name: shown in reports.
        apply: array -> array.
        shape: source shape -> shape after `apply` (checked before anything is read).
    """

    name: str
    apply: Callable[[np.ndarray], np.ndarray]
    shape: Callable[[tuple], tuple]


TRANSPOSE = Transform("transpose", lambda a: np.ascontiguousarray(a.T), lambda s: tuple(reversed(s)))


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a variable's value comes from: a tensor name and an optional transform."""

    name: str
    transform: Transform | None = None


@dataclasses.dataclass(frozen=True)
class NotSaved:
    """Marks a variable that this layout's checkpoints genuinely never contain.

    Loading a model that has the variable fails with `reason` in the error (unless
    `ignore_invalid_weights=True`); a model without it loads as usual.
    """

    reason: str


@dataclasses.dataclass(frozen=True)
class WeightMap:
    """How one checkpoint layout fills an architecture's variables.

    Attributes:
        sources: variable path (without the model's prefix) -> `Source`, or
            `NotSaved` for a variable the layout never holds. Covers every part
            the architecture can build; parts a model was not built with mark
            their tensors as skipped rather than unused.
        ignored: regexes of tensors in this layout that are not weights (tied
            copies, buffers), on top of `IGNORED_PATTERNS`.
        prefix: for Hugging Face layouts, the model prefix (`"bert."`) under which
            tensor names are made canonical before mapping (see
            `convert.checkpoints.canonical_hf_names`); None for TF layouts.
    """

    sources: dict
    ignored: tuple = ()
    prefix: str | None = None


@dataclasses.dataclass
class LoadReport:
    """What `load_weights` did, variable by variable."""

    loaded: list = dataclasses.field(default_factory=list)
    missing: list = dataclasses.field(default_factory=list)  # (variable, source)
    mismatched: list = dataclasses.field(default_factory=list)  # (variable, source, expected, got)
    unused: list = dataclasses.field(default_factory=list)  # source names
    skipped: list = dataclasses.field(default_factory=list)  # source names of unbuilt parts
    ignored: list = dataclasses.field(default_factory=list)  # bookkeeping source names

    @property
    def ok(self):
        return not (self.missing or self.mismatched or self.unused)

    def problems(self, limit=20):
        """Human-readable lines naming every problem (capped at `limit` per kind)."""
        lines = []

        def section(title, items, fmt):
            if items:
                lines.append(f"{title} ({len(items)}):")
                lines.extend("  " + fmt(item) for item in items[:limit])
                if len(items) > limit:
                    lines.append(f"  ... and {len(items) - limit} more")

        section(
            "missing from the checkpoint",
            self.missing,
            lambda item: f"{item[0]}  <-  {item[1]}",
        )
        section(
            "shape mismatch",
            self.mismatched,
            lambda item: f"{item[0]} {tuple(item[2])}  <-  {item[1]} {tuple(item[3])}",
        )
        section("in the checkpoint but unused by this model", self.unused, str)
        return "\n".join(lines)


class WeightLoadError(ValueError):
    """Raised when a checkpoint does not fill a model exactly; `.report` has details."""

    def __init__(self, message, report):
        super().__init__(message)
        self.report = report


def source_shape(checkpoint, name):
    """Shape of a source tensor without reading its data when the reader allows."""
    if hasattr(checkpoint, "shape") and callable(checkpoint.shape):
        return tuple(checkpoint.shape(name))
    return tuple(np.shape(checkpoint[name]))


def load_weights(
    variables,
    checkpoint,
    weight_map,
    *,
    ignore_invalid_weights=False,
    ignored_patterns=IGNORED_PATTERNS,
    source_description="the checkpoint",
    hint=None,
    progress=None,
):
    """Assigns `checkpoint` tensors to `variables` as `weight_map` says, strictly.

    Args:
        variables: dict, Keras variable path -> variable (all weights of the model).
        checkpoint: mapping, tensor name -> array (a `TFCheckpoint`, a dict, ...).
        weight_map: a `WeightMap`, or a dict variable path -> `Source` / `NotSaved`,
            covering every part the architecture can build; entries for variables
            the model lacks mark their sources as belonging to unbuilt parts.
        ignore_invalid_weights: bool. Leave missing / mis-shaped variables as they
            are and tolerate unused tensors, with a warning, instead of raising.
        ignored_patterns: regexes of source names that are never model weights.
        source_description: how to name the checkpoint in messages.
        hint: optional callable `(report) -> str | None` adding advice to the error
            (e.g. which architecture the checkpoint looks like).
        progress: optional label of a progress bar over the assignments
            (`kerasformer.progress`: off when HF_HUB_DISABLE_PROGRESS_BARS is set or
            stderr is not a terminal).

    Returns:
        A `LoadReport`.

    Raises:
        WeightLoadError: on missing, unused or mis-shaped weights.
        LookupError: if a model variable has no entry in `weight_map` (a bug in the
            architecture's map, not in the checkpoint).
    """
    report, planned = plan_weights(
        variables, checkpoint, weight_map, ignore_invalid_weights=ignore_invalid_weights,
        ignored_patterns=ignored_patterns, source_description=source_description, hint=hint)
    for path, source in _progress(planned, progress):
        value = read_source(checkpoint, source)
        variables[path].assign(_as_variable_dtype(value, variables[path].dtype))
        report.loaded.append(path)
    return report


def plan_weights(
    variables,
    checkpoint,
    weight_map,
    *,
    ignore_invalid_weights=False,
    ignored_patterns=IGNORED_PATTERNS,
    source_description="the checkpoint",
    hint=None,
):
    """The checks of `load_weights`, before any tensor is read: `(LoadReport, [(variable
    path, Source)])` of what to load. `variables` needs only `.shape` (variables
    without values do: `Transformer.abstract_variables`). Raises as `load_weights`."""
    if isinstance(weight_map, WeightMap):
        ignored_patterns = tuple(ignored_patterns) + tuple(weight_map.ignored)
        weight_map = weight_map.sources
    unmapped = sorted(set(variables) - set(weight_map))
    if unmapped:
        raise LookupError(
            "no weight-map entry for model variables: " + ", ".join(unmapped)
        )
    report = LoadReport()
    available = set(checkpoint.keys())
    consumed, planned = set(), []
    for path, source in weight_map.items():
        if path not in variables:
            continue
        if isinstance(source, NotSaved):
            report.missing.append((path, f"<never saved: {source.reason}>"))
            continue
        consumed.add(source.name)
        if source.name not in available:
            report.missing.append((path, source.name))
            continue
        shape = source_shape(checkpoint, source.name)
        if source.transform is not None:
            shape = source.transform.shape(shape)
        expected = tuple(variables[path].shape)
        if shape != expected:
            report.mismatched.append((path, source.name, expected, shape))
            continue
        planned.append((path, source))

    unbuilt = {
        s.name for p, s in weight_map.items() if p not in variables and isinstance(s, Source)
    }
    for name in sorted(available - consumed):
        if name in unbuilt:
            report.skipped.append(name)
        elif any(re.search(pattern, name) for pattern in ignored_patterns):
            report.ignored.append(name)
        else:
            report.unused.append(name)

    if not report.ok:
        message = (
            f"{source_description} does not match the model:\n{report.problems()}"
        )
        advice = hint(report) if hint else None
        if advice:
            message += "\n" + advice
        if not ignore_invalid_weights:
            raise WeightLoadError(
                message
                + "\n(pass ignore_invalid_weights=True to load the rest and keep "
                "the missing weights at their random initialisation)",
                report,
            )
        warnings.warn(
            message + "\nignore_invalid_weights=True: the variables above keep "
            "their random initialisation.",
            stacklevel=4,
        )
    return report, planned


def read_source(checkpoint, source):
    """The array `source` names in `checkpoint`, transformed."""
    value = np.asarray(checkpoint[source.name])
    if source.transform is not None:
        value = source.transform.apply(value)
    return value


def read_source_blocks(checkpoint, source, block_bytes):
    """`(first row, rows)` blocks of the array `source` names, each about `block_bytes`
    or one row: a tensor taken as it is is read block by block where the reader can
    (`read_rows`), so converting it never holds it whole; a transformed tensor is read
    whole (at most the size of one tensor)."""
    if source.transform is not None or not hasattr(checkpoint, "read_rows"):
        yield 0, read_source(checkpoint, source)
        return
    shape = source_shape(checkpoint, source.name)
    if len(shape) < 2:
        yield 0, np.asarray(checkpoint[source.name])
        return
    row_bytes = max(1, int(np.prod(shape[1:])) * 4)
    rows = max(1, block_bytes // row_bytes)
    for start in range(0, shape[0], rows):
        yield start, np.asarray(checkpoint.read_rows(source.name, start, min(shape[0], start + rows)))


def _as_variable_dtype(value, dtype):
    """Casts in numpy where numpy knows the dtype (bfloat16 is left to Keras)."""
    try:
        return value.astype(np.dtype(dtype), copy=False)
    except TypeError:
        return value.astype(np.float32, copy=False)


def _progress(items, label):
    if not label:
        return items
    from kerasformer.progress import progress

    return progress(items, label, unit="tensor")
