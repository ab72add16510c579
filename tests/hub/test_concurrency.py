"""Two processes converting the same Hub checkpoint at once: both succeed, one preset
stays (the first rename wins), no temporary copy is left."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np

from kerasformer import presets

# Each child pauses just before renaming its finished preset into place until the other
# has got there too, so both renames race for a target that neither saw when it
# started to write: the interleaving that fails with "Directory not empty".
CHILD = """
import json, os, pathlib, sys, time

barrier, me = pathlib.Path(sys.argv[1]), sys.argv[2]
rename = os.replace


def paused(source, target, *args, **kwargs):
    if str(source).endswith(".partial"):
        (barrier / me).touch()
        deadline = time.monotonic() + 300
        while len(list(barrier.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    return rename(source, target, *args, **kwargs)


os.replace = paused
import kerasformer as kf

task = kf.models.load("hf://someone/my-roformer-sim")
print("VECTOR " + json.dumps(task.encode("今天天气不错").tolist()))
"""


def test_two_processes_convert_the_same_checkpoint_at_once(hub, tmp_path):
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    environment = {**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).parents[2])}
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(barrier), str(index)],
                                 env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for index in range(2)]
    outputs = [child.communicate(timeout=600) for child in children]
    for child, (out, err) in zip(children, outputs):
        assert child.returncode == 0, err[-3000:]
    assert sorted(p.name for p in barrier.iterdir()) == ["0", "1"]  # both reached the rename
    vectors = [json.loads(out.split("VECTOR ", 1)[1]) for out, _ in outputs]
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)
    parent = pathlib.Path(os.environ["KERASFORMER_HOME"]) / "converted" / "someone--my-roformer-sim"
    [entry] = list(parent.iterdir())  # the winner's preset, no temporary copy
    assert entry.name == "c" * 40 + "-roformer-sim" and presets.is_preset(entry)
