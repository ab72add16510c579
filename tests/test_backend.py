"""Choosing the Keras backend before Keras is imported (kerasformer/_backend.py)."""
import json
import os
import subprocess
import sys

PROGRAM = """
import importlib.util, sys
real = importlib.util.find_spec
hidden = set(sys.argv[1].split(",")) - {""}
importlib.util.find_spec = lambda name, *a: None if name in hidden else real(name, *a)
try:
    import kerasformer
except ImportError as error:
    print("ImportError:", error)
    raise SystemExit(0)
import keras
print("backend:", keras.backend.backend())
"""


def run(tmp_path, hidden, keras_json=None, backend=None):
    home = tmp_path / "keras-home"
    home.mkdir(exist_ok=True)
    if keras_json is not None:
        (home / "keras.json").write_text(json.dumps(keras_json))
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["KERAS_HOME"] = str(home)
    if backend:
        env["KERAS_BACKEND"] = backend
    result = subprocess.run([sys.executable, "-c", PROGRAM, ",".join(hidden)], env=env,
                            capture_output=True, text=True, timeout=300)
    return result.stdout.strip().splitlines()[-1], result.stderr


def test_an_installed_backend_is_picked_and_named(tmp_path):
    # keras.json says tensorflow (Keras writes that default itself), which is missing
    out, err = run(tmp_path, ["tensorflow"], {"backend": "tensorflow"})
    assert out == "backend: jax"
    assert "using the jax backend" in err


def test_a_chosen_backend_is_kept_or_named_with_its_extra(tmp_path):
    out, err = run(tmp_path, [], {"backend": "torch"})
    assert out == "backend: torch" and "using the" not in err
    out, _ = run(tmp_path, ["torch"], backend="torch")
    assert out == 'ImportError: KERAS_BACKEND=torch but torch is not installed: pip install "kerasformer[torch]"'
