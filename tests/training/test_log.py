"""TrainingLog: one line and one record per log interval, evaluations on their cadence,
the curves drawn, a rerun starting a new record."""
import io
import json

import pytest

from kerasformer.training.log import TrainingLog


def run_intervals(log, intervals, every):
    log.on_train_begin()
    for epoch in range(intervals):
        for batch in range(every):
            log.on_train_batch_end(batch)
        log.on_epoch_end(epoch, {"loss": 4.0 - epoch, "seq2seq_loss": 3.0 - epoch})
    log.on_train_end()


def test_lines_records_evaluations_and_curves(tmp_path):
    stream, calls = io.StringIO(), []

    def evaluate():
        calls.append(len(calls))
        return {"spearman/dev": 0.1 * len(calls)}

    log = TrainingLog(tmp_path / "run", total_steps=6, every=2, evaluate=evaluate,
                      evaluate_every=4, stream=stream)
    log.record(evaluate(), step=0)
    run_intervals(log, 3, 2)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "step 0 spearman/dev 0.1000"
    assert lines[1] == "step 2 loss 4.0000 seq2seq_loss 3.0000"
    assert lines[2].startswith("step 4 loss 3.0000") and "spearman/dev 0.2000" in lines[2]
    assert "spearman/dev 0.3000" in lines[3]  # the last interval is always evaluated
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert [r["step"] for r in records] == [0, 2, 4, 6] and len(calls) == 3
    assert (tmp_path / "run" / "curves.png").read_bytes()[:4] == b"\x89PNG"

    TrainingLog(tmp_path / "run", total_steps=2, every=2, stream=stream)  # a rerun
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == ""


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="every must be a positive integer"):
        TrainingLog(every=0)
    with pytest.raises(ValueError, match="multiple of every"):
        TrainingLog(every=3, evaluate_every=4)
