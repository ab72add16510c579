"""What a training run shows and leaves behind: `step N loss X` lines, a progress bar,
every logged value in `metrics.jsonl`, and the curves as `curves.png`.

`fit` is run in short "epochs" of `every` steps (`steps_per_epoch=every`), so that
Keras' metrics, which average since the start of an epoch, average over one log
interval; `TrainingLog` turns each of those epochs into one line and one record.
People would rather look at a curve than read logs: the picture is redrawn after
every evaluation and at the end (matplotlib, an optional extra: without it the records
are still written and a note says how to get the picture).
"""
import json
import math
import os
import pathlib
import sys
import tempfile
import time

import keras

from kerasformer.checks import check_integer

METRICS = "metrics.jsonl"
CURVES = "curves.png"
# Where a run's logs live in the preset it saved.
TRAINING = "training"


def logs_beside(preset_directory):
    """`OUT.training`: where a run that will save the preset OUT keeps its logs while it
    trains (a preset is written only when complete; `TrainingLog.move_into` then
    moves the logs inside it)."""
    path = pathlib.Path(preset_directory)
    return path.with_name(path.name + ".training")


class TrainingLog(keras.callbacks.Callback):
    """Logs a `fit` run of `total_steps` optimizer steps in intervals of `every`.

    Args:
        directory: where `metrics.jsonl` and `curves.png` go (None: print only).
        total_steps: int, the steps of the whole run (`epochs × every`).
        every: int, the steps per log line; must equal `fit`'s `steps_per_epoch`.
        evaluate: optional callable `() -> dict` of evaluation values (e.g.
            `{"spearman": 0.61}`), run every `evaluate_every` steps and at the end.
        evaluate_every: int, a multiple of `every` (default: every log line).
        stream: where lines are printed (default stdout).

    Attributes:
        records: the list of logged dicts, each with its `step`.
    """

    def __init__(self, directory=None, total_steps=None, every=10, evaluate=None,
                 evaluate_every=None, stream=None):
        super().__init__()
        for name, value in (("every", every), ("total_steps", total_steps),
                            ("evaluate_every", evaluate_every)):
            check_integer(value, name, optional=True)
        if evaluate_every is not None and evaluate_every % every:
            raise ValueError(f"evaluate_every ({evaluate_every}) must be a multiple of "
                             f"every ({every})")
        self.directory = os.fspath(directory) if directory is not None else None
        self.total_steps = total_steps
        self.every = every
        self.evaluate = evaluate
        self.evaluate_every = evaluate_every or every
        self.stream = stream
        self.records = []
        self._bar = None
        self._step = 0
        self._started = None
        if self.directory is not None:
            os.makedirs(self.directory, exist_ok=True)
            # A rerun into the same directory starts a new record, not a mixed one.
            with open(os.path.join(self.directory, METRICS), "w", encoding="utf-8"):
                pass

    def on_train_begin(self, logs=None):
        from kerasformer.progress import progress

        self._started = time.perf_counter()
        bar = progress(range(self.total_steps or 0), "training", unit="step", minimum=2)
        self._bar = bar if hasattr(bar, "update") else None

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self._bar is not None:
            self._bar.update(1)

    def on_epoch_end(self, epoch, logs=None):
        values = {name: float(value) for name, value in (logs or {}).items()}
        final = self.total_steps is not None and self._step >= self.total_steps
        evaluated = self.evaluate is not None and (
            self._step % self.evaluate_every == 0 or final)
        if evaluated:
            values.update(self.evaluate())
        self.record(values, draw=evaluated)

    def record(self, values, step=None, draw=False):
        """Logs `values` (a dict of numbers) at `step` (default: the steps run so far):
        one printed line, one record in metrics.jsonl, and the picture when `draw`.
        Also for values measured outside `fit`, such as an evaluation before it."""
        record = {"step": self._step if step is None else step}
        record.update({name: float(value) for name, value in values.items()})
        if self._started is not None:
            record["seconds"] = round(time.perf_counter() - self._started, 3)
        self.records.append(record)
        line = " ".join(f"{name} {value:.4f}" for name, value in record.items()
                        if name not in ("step", "seconds"))
        self._print(f"step {record['step']} {line}")
        if self.directory is not None:
            with open(os.path.join(self.directory, METRICS), "a", encoding="utf-8") as file:
                file.write(json.dumps(record, ensure_ascii=False) + "\n")
            if draw:
                self.draw()
        return record

    def on_train_end(self, logs=None):
        if self._bar is not None:
            self._bar.close()
        if self.directory is not None and self.records:
            self.draw()

    def move_into(self, preset_directory):
        """Moves the logs into `preset_directory/training` in one rename (all of them
        or none) and returns that path."""
        target = pathlib.Path(preset_directory) / TRAINING
        os.replace(self.directory, target)
        self.directory = os.fspath(target)
        return target

    def _print(self, line):
        stream = self.stream or sys.stdout
        if self._bar is not None:
            self._bar.write(line, file=stream)
        else:
            print(line, file=stream, flush=True)

    def draw(self, path=None):
        """Draws every logged value against the step (one panel per value) to
        `path` (default `directory/curves.png`), atomically; returns the path, or
        None when matplotlib is not installed."""
        path = path or os.path.join(self.directory, CURVES)
        return draw_curves(self.records, path)


def draw_curves(records, path):
    """One panel per logged value (losses first, then evaluation values) of a list of
    records with a `step`, written to `path` as PNG; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"(no {os.path.basename(path)}: pip install matplotlib to draw the curves)",
              file=sys.stderr)
        return None
    names = []
    for record in records:
        names.extend(name for name in record if name not in ("step", "seconds")
                     and name not in names)
    names.sort(key=lambda name: ("loss" not in name, name))
    if not names:
        return None
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows),
                                squeeze=False)
    for axis, name in zip(axes.flat, names):
        points = [(r["step"], r[name]) for r in records if name in r]
        axis.plot(*zip(*points), marker="o" if len(points) < 30 else None, markersize=3)
        axis.set_title(name)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(names):]:
        axis.axis("off")
    figure.tight_layout()
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(suffix=".png", dir=directory, prefix=".curves-")
    os.close(handle)
    try:
        figure.savefig(temporary, dpi=110)
        os.replace(temporary, path)
    finally:
        plt.close(figure)
        if os.path.exists(temporary):
            os.remove(temporary)
    return path
