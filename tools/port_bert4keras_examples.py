"""Writes tests/bert4keras_examples/: eight original bert4keras example scripts, ported.

Each port is its original, read at a pinned commit and checked against a pinned
sha256, with the exact substitutions of the table below applied in order: imports
(bert4keras -> kerasformer), paths (fixture checkpoints, tiny data, Keras 3's
`.weights.h5` suffix), sizes (epochs, steps, batch sizes, maxlen) and the few
changes a comment in the table explains (README.md lists them). Next to each port
goes `<name>.diff`, the unified diff original -> port, so a reader sees that nothing
else changed; tests/bert4keras_examples/test_examples.py reverses every diff and
checks the original's sha256, and that the table still produces the committed port.

    python tools/port_bert4keras_examples.py --bert4keras DIR --simbert DIR

DIR is a git directory or a checkout of that repository; the file is read at the
pinned commit (a checkout without git history is read as it is, and must then match
the pinned sha256).
"""
import argparse
import dataclasses
import difflib
import hashlib
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
PORTS_DIR = ROOT / "tests" / "bert4keras_examples"

SOURCES = {
    "bert4keras": {
        "repo": "bojone/bert4keras",
        "commit": "c1ae0dc5eff66d329ab3c5c7ee369124ddbb6f87",
        "licence": "Apache-2.0",
    },
    "simbert": {
        "repo": "ZhuiyiTechnology/simbert",
        "commit": "1b82070bc8cc58679d4956ac4b6fcf59d40a07f6",
        "licence": "Apache-2.0",
    },
}


def imports(lines):
    """One substitution per line of `lines` (original import lines): bert4keras -> kerasformer."""
    return [(line + "\n", line.replace("bert4keras", "kerasformer") + "\n")
            for line in lines.strip("\n").split("\n")]


def here(relative):
    """The path expression of `relative` (a path from tests/bert4keras_examples/) in a port:
    found next to the script wherever it runs from."""
    return f"os.path.join(os.path.dirname(__file__), '{relative}')"


CHECKPOINT_FILES = ("bert_config.json", "bert_model.ckpt", "vocab.txt")


def fixture_paths(original_dir, fixture, original_names=CHECKPOINT_FILES):
    """The three substitutions of config_path, checkpoint_path and dict_path (files of
    /root/kg/bert/<original_dir>) by those of tests/fixtures/models/<fixture>."""
    return [
        (f"{variable} = '/root/kg/bert/{original_dir}/{original}'\n",
         f"{variable} = {here(f'../fixtures/models/{fixture}/{name}')}\n")
        for variable, original, name in zip(("config_path", "checkpoint_path", "dict_path"),
                                            original_names, CHECKPOINT_FILES)
    ]


@dataclasses.dataclass(frozen=True)
class Port:
    name: str  # tests/bert4keras_examples/<name>.py and <name>.diff
    source: str  # a key of SOURCES
    path: str  # the original's path in its repository
    sha256: str  # of the original text
    substitutions: list  # (old, new) pairs, applied in order, each matching exactly once


# Keras 3 saves weights only to a name ending in .weights.h5; bert4keras scripts use
# `best_model.weights`, so each file name gets the suffix (a path change).
PORTS = [
    Port(
        name="sentiment",
        source="bert4keras",
        path="examples/task_sentiment_albert.py",
        sha256="7c2964cf31091b082473dee93cd826402d5f7b4bdf75934634ce2fcbed545fe8",
        substitutions=[
            ("import numpy as np\n", "import os\nimport numpy as np\n"),
            *imports("""
from bert4keras.backend import keras, set_gelu
from bert4keras.tokenizers import Tokenizer
from bert4keras.models import build_transformer_model
from bert4keras.optimizers import Adam, extend_with_piecewise_linear_lr
from bert4keras.snippets import sequence_padding, DataGenerator
from bert4keras.snippets import open
"""),
            ("maxlen = 128\n", "maxlen = 32\n"),
            ("batch_size = 32\n", "batch_size = 4\n"),
            *fixture_paths("albert_small_zh_google", "bert",
                           ("albert_config.json", "albert_model.ckpt", "vocab.txt")),
            *[(f"'datasets/sentiment/sentiment.{part}.data'",
               here(f"data/sentiment/sentiment.{part}.data"))
              for part in ("train", "valid", "test")],
            # ALBERT (shared layers, factorised embeddings) is not an architecture
            # kerasformer provides: the BERT fixture stands in for albert_small_zh.
            ("model='albert',\n", "model='bert',\n"),
            ("model.save_weights('best_model.weights')",
             "model.save_weights('best_model.weights.h5')"),
            ("        epochs=10,\n", "        epochs=1,\n"),
            ("model.load_weights('best_model.weights')\n    print(",
             "model.load_weights('best_model.weights.h5')\n    print("),
            ("else:\n\n    model.load_weights('best_model.weights')\n",
             "else:\n\n    model.load_weights('best_model.weights.h5')\n"),
        ],
    ),
    Port(
        name="seq2seq_autotitle",
        source="bert4keras",
        path="examples/task_seq2seq_autotitle.py",
        sha256="94c51a9f733123bb341860203742efb67d4349b735e6124d878ad0a0e96030c7",
        substitutions=[
            ("import glob\n", "import glob\nimport os\n"),
            *imports("""
from bert4keras.backend import keras, K
from bert4keras.layers import Loss
from bert4keras.models import build_transformer_model
from bert4keras.tokenizers import Tokenizer, load_vocab
from bert4keras.optimizers import Adam
from bert4keras.snippets import sequence_padding, open
from bert4keras.snippets import DataGenerator, AutoRegressiveDecoder
"""),
            # source + title within the fixture's 64 positions
            ("maxlen = 256\n", "maxlen = 48\n"),
            ("batch_size = 16\n", "batch_size = 4\n"),
            ("steps_per_epoch = 1000\n", "steps_per_epoch = 2\n"),
            ("epochs = 10000\n", "epochs = 1\n"),
            *fixture_paths("chinese_wwm_L-12_H-768_A-12", "bert"),
            ("'/root/thuctc/THUCNews/*/*.txt'", here("data/THUCNews/*/*.txt")),
            ("end_id=tokenizer._token_end_id, maxlen=32)",
             "end_id=tokenizer._token_end_id, maxlen=8)"),
            ("model.save_weights('./best_model.weights')",
             "model.save_weights('./best_model.weights.h5')"),
            ("model.load_weights('./best_model.weights')",
             "model.load_weights('./best_model.weights.h5')"),
        ],
    ),
    Port(
        name="ner_crf",
        source="bert4keras",
        path="examples/task_sequence_labeling_ner_crf.py",
        sha256="efa178ee1785d98467513d2f67ca8d1294b44621b24c58f651cb1f683843ef63",
        substitutions=[
            ("import numpy as np\n", "import os\nimport numpy as np\n"),
            *imports("""
from bert4keras.backend import keras, K
from bert4keras.models import build_transformer_model
from bert4keras.tokenizers import Tokenizer
from bert4keras.optimizers import Adam
from bert4keras.snippets import sequence_padding, DataGenerator
from bert4keras.snippets import open, ViterbiDecoder, to_array
from bert4keras.layers import ConditionalRandomField
"""),
            ("maxlen = 256\n", "maxlen = 32\n"),
            ("epochs = 10\n", "epochs = 1\n"),
            ("batch_size = 32\n", "batch_size = 4\n"),
            # the fixture has 2 layers, not 12 (the CRF reads the last one's output)
            ("bert_layers = 12\n", "bert_layers = 2\n"),
            *fixture_paths("chinese_L-12_H-768_A-12", "bert"),
            *[(f"'/root/ner/china-people-daily-ner-corpus/example.{part}'",
               here(f"data/china-people-daily-ner-corpus/example.{part}"))
              for part in ("train", "dev", "test")],
            ("model.save_weights('./best_model.weights')",
             "model.save_weights('./best_model.weights.h5')"),
            ("model.load_weights('./best_model.weights')",
             "model.load_weights('./best_model.weights.h5')"),
        ],
    ),
    Port(
        name="relation_extraction_gplinker",
        source="bert4keras",
        path="examples/task_relation_extraction_gplinker.py",
        sha256="a9ea629855289b49118623086b51bed8e6f4476a775e860c663b5340b49683ae",
        substitutions=[
            ("import json\n", "import json\nimport os\n"),
            *imports("""
from bert4keras.backend import keras, K
from bert4keras.backend import sparse_multilabel_categorical_crossentropy
from bert4keras.tokenizers import Tokenizer
from bert4keras.layers import EfficientGlobalPointer as GlobalPointer
from bert4keras.models import build_transformer_model
from bert4keras.optimizers import Adam, extend_with_exponential_moving_average
from bert4keras.snippets import sequence_padding, DataGenerator
from bert4keras.snippets import open, to_array
"""),
            ("maxlen = 128\n", "maxlen = 32\n"),
            ("batch_size = 64\n", "batch_size = 4\n"),
            *fixture_paths("chinese_L-12_H-768_A-12", "bert"),
            *[(f"'/root/kg/datasets/{name}'", here(f"data/duie/{name}"))
              for name in ("train_data.json", "dev_data.json", "all_50_schemas")],
            ("model.save_weights('best_model.weights')",
             "model.save_weights('best_model.weights.h5')"),
            ("        epochs=20,\n", "        epochs=1,\n"),
            ("model.load_weights('best_model.weights')",
             "model.load_weights('best_model.weights.h5')"),
        ],
    ),
    Port(
        name="simbert",
        source="simbert",
        path="simbert.py",
        sha256="65e6ed78915b7d0adde55c949cc249057e3eaa4766f6ed9fe08e6f8ea7d7469e",
        substitutions=[
            ("import json\n", "import json\nimport os\n"),
            *imports("""
from bert4keras.backend import keras, K
from bert4keras.layers import Loss
from bert4keras.models import build_transformer_model
from bert4keras.tokenizers import Tokenizer, load_vocab
from bert4keras.optimizers import Adam, extend_with_weight_decay
from bert4keras.snippets import DataGenerator
from bert4keras.snippets import sequence_padding
from bert4keras.snippets import text_segmentate
from bert4keras.snippets import AutoRegressiveDecoder
from bert4keras.snippets import uniout
"""),
            ("maxlen = 32\n", "maxlen = 8\n"),
            # even: a batch is complete after a whole number of (text, synonym) pairs
            ("batch_size = 128\n", "batch_size = 8\n"),
            ("steps_per_epoch = 1000\n", "steps_per_epoch = 2\n"),
            ("epochs = 10000\n", "epochs = 1\n"),
            ("corpus_path = 'data_sample.json'\n",
             f"corpus_path = {here('data/data_sample.json')}\n"),
            *fixture_paths("chinese_L-12_H-768_A-12", "bert"),
            # The script was written for bert4keras 0.7.7 (its header says so);
            # kerasformer offers the API of bert4keras 0.11.5: bert4keras 0.7.9 renamed
            # encode's `max_length` to `maxlen` and `set_rtype` to `wraps(default_rtype=...)`.
            ("text, synonym, max_length=maxlen * 2", "text, synonym, maxlen=maxlen * 2"),
            ("synonym, text, max_length=maxlen * 2", "synonym, text, maxlen=maxlen * 2"),
            ("tokenizer.encode(text, max_length=maxlen)", "tokenizer.encode(text, maxlen=maxlen)"),
            ("@AutoRegressiveDecoder.set_rtype('probas')",
             "@AutoRegressiveDecoder.wraps(default_rtype='probas')"),
            # Keras 3 layers have no add_metric (it raises NotImplementedError, and a
            # metric updated inside call cannot work under JAX's stateless training
            # step): the two lines only logged the parts of the loss; the loss itself
            # is unchanged.
            ("        self.add_metric(loss1, name='seq2seq_loss')\n", ""),
            ("        self.add_metric(loss2, name='similarity_loss')\n", ""),
            ("model.save_weights('./latest_model.weights')",
             "model.save_weights('./latest_model.weights.h5')"),
            ("model.save_weights('./best_model.weights')",
             "model.save_weights('./best_model.weights.h5')"),
            # Keras 3 has no fit_generator (deprecated since Keras 2.4): fit takes
            # generators.
            ("model.fit_generator(\n", "model.fit(\n"),
            ("model.load_weights('./latest_model.weights')",
             "model.load_weights('./latest_model.weights.h5')"),
        ],
    ),
    Port(
        name="conditional_language_model",
        source="bert4keras",
        path="examples/task_conditional_language_model.py",
        sha256="47e5d4153245a1ff66a44924b70a9f29989d55455ddd022320ae269fbd2b6e8c",
        substitutions=[
            ("import re\n", "import os\nimport re\n"),
            *imports("""
from bert4keras.backend import keras, K
from bert4keras.layers import Loss
from bert4keras.models import build_transformer_model
from bert4keras.tokenizers import Tokenizer, load_vocab
from bert4keras.optimizers import Adam
from bert4keras.snippets import sequence_padding, open
from bert4keras.snippets import text_segmentate
from bert4keras.snippets import DataGenerator, AutoRegressiveDecoder
from bert4keras.snippets import uniout  # 打印中文
"""),
            # maxlen is also the generated length, each step an eager call
            ("maxlen = 128\n", "maxlen = 8\n"),
            ("batch_size = 32\n", "batch_size = 16\n"),
            ("epochs = 20\n", "epochs = 1\n"),
            *fixture_paths("chinese_L-12_H-768_A-12", "bert"),
            *[(f"'datasets/sentiment/sentiment.{part}.data'",
               here(f"data/sentiment/sentiment.{part}.data"))
              for part in ("train", "valid", "test")],
            ("model.save_weights('./best_model.weights')",
             "model.save_weights('./best_model.weights.h5')"),
            ("model.load_weights('./best_model.weights')",
             "model.load_weights('./best_model.weights.h5')"),
        ],
    ),
    Port(
        name="cpm_lm",
        source="bert4keras",
        path="examples/basic_language_model_cpm_lm.py",
        sha256="344c707460ae402ff1ddfda6543f096c190c263a5a06b1a10b57df9727f63657",
        substitutions=[
            ("import numpy as np\n", "import os\nimport numpy as np\n"),
            *imports("""
from bert4keras.models import build_transformer_model
from bert4keras.tokenizers import SpTokenizer
from bert4keras.snippets import AutoRegressiveDecoder
from bert4keras.snippets import uniout
"""),
            # CPM-LM's 2.6B checkpoint cannot come here: the GPT-2 fixture (bert4keras'
            # gpt/ names, 2 layers) and the SentencePiece fixture (321 pieces, <cls> = 3
            # as in CPM's vocabulary) stand in for it
            ("config_path = '/root/kg/bert/CPM_LM_2.6B_TF/config.json'\n",
             f"config_path = {here('../fixtures/models/gpt2/bert_config.json')}\n"),
            ("checkpoint_path = '/root/kg/bert/CPM_LM_2.6B_TF/model.ckpt'\n",
             f"checkpoint_path = {here('../fixtures/models/gpt2/bert_model.ckpt')}\n"),
            ("spm_path = '/root/kg/bert/CPM_LM_2.6B_TF/chinese_vocab.model'\n",
             f"spm_path = {here('../fixtures/tokenizers/sp/tiny.model')}\n"),
            # the fixture learned 64 positions, CPM 1,024: the few-shot prompts are
            # longer than 64 tokens, so hierarchical positions stretch the table
            ("checkpoint_path=checkpoint_path, model='gpt2'\n",
             "checkpoint_path=checkpoint_path, model='gpt2',\n"
             "    hierarchical_position=True\n"),
        ],
    ),
    Port(
        name="masked_language_model",
        source="bert4keras",
        path="examples/basic_masked_language_model.py",
        sha256="a0377072c740c258485ab8b6c623e8cbb9ce987693a3d66eba1b151beadd025b",
        substitutions=[
            ("import numpy as np\n", "import os\nimport numpy as np\n"),
            *imports("""
from bert4keras.models import build_transformer_model
from bert4keras.tokenizers import Tokenizer
from bert4keras.snippets import to_array
"""),
            *fixture_paths("chinese_L-12_H-768_A-12", "bert"),
        ],
    ),
]


class PortError(Exception):
    """A substitution that does not match exactly once, or an original that changed."""


def header(port):
    source = SOURCES[port.source]
    return (f"# kerasformer port of {source['repo']}@{source['commit'][:7]} {port.path} "
            f"({source['licence']}); tools/port_bert4keras_examples.py, {port.name}.diff\n")


def make_port(port, original):
    """The port's text: the original with the header after its first line, then the
    substitutions applied in order."""
    first_line, rest = original.split("\n", 1)
    text = first_line + "\n" + header(port) + rest
    for index, (old, new) in enumerate(port.substitutions):
        count = text.count(old)
        if count != 1:
            raise PortError(
                f"{port.name}: substitution {index} {old!r} -> {new!r} matches {count} times, "
                "not exactly once")
        text = text.replace(old, new)
    return text


def make_diff(port, original, ported):
    source = SOURCES[port.source]
    return "".join(difflib.unified_diff(
        original.splitlines(keepends=True), ported.splitlines(keepends=True),
        fromfile=f"a/{source['repo']}/{port.path}",
        tofile=f"b/tests/bert4keras_examples/{port.name}.py",
    ))


_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def reverse_patch(new_text, diff_text):
    """The old text of a unified diff (as `make_diff` writes it: whole lines, each ending
    in a newline), recovered from its new text; every context and added line is checked.

    Raises:
        PortError: if the diff does not apply to `new_text`.
    """
    new_lines = new_text.splitlines(keepends=True)
    diff_lines = diff_text.splitlines(keepends=True)
    if len(diff_lines) < 2 or not (diff_lines[0].startswith("--- ")
                                   and diff_lines[1].startswith("+++ ")):
        raise PortError("not a unified diff: no ---/+++ header")
    old_lines, position, i = [], 0, 2  # position: the next new line not yet copied
    while i < len(diff_lines):
        match = _HUNK.match(diff_lines[i])
        if match is None:
            raise PortError(f"diff line {i + 1}: expected a hunk header, got {diff_lines[i]!r}")
        # start and length of the hunk in the old and the new text (a start is 1-based,
        # or the line before an empty hunk)
        old_start, old_count, new_start, new_count = (
            int(n) if n is not None else 1 for n in match.groups())
        old_start, new_start = old_start - (old_count > 0), new_start - (new_count > 0)
        if new_start < position:
            raise PortError(f"diff line {i + 1}: hunks overlap or are out of order")
        old_lines.extend(new_lines[position:new_start])
        if len(old_lines) != old_start:
            raise PortError(f"diff line {i + 1}: the hunk starts at old line {old_start + 1}, "
                            f"not {len(old_lines) + 1}")
        position, hunk_end = new_start, len(old_lines) + old_count
        i += 1
        while i < len(diff_lines) and not diff_lines[i].startswith("@@"):
            kind, line = diff_lines[i][0], diff_lines[i][1:]
            if kind in " +":
                if position >= len(new_lines) or new_lines[position] != line:
                    raise PortError(f"diff line {i + 1} does not match new line {position + 1}")
                position += 1
            if kind in " -":
                old_lines.append(line)
            elif kind != "+":
                raise PortError(f"diff line {i + 1}: unexpected {diff_lines[i]!r}")
            i += 1
        if (len(old_lines), position) != (hunk_end, new_start + new_count):
            raise PortError(f"diff line {i}: the hunk before has other lengths than its header")
    old_lines.extend(new_lines[position:])
    return "".join(old_lines)


def sha256(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_original(port, directory):
    """The original text at the pinned commit, from a git directory or checkout."""
    commit = SOURCES[port.source]["commit"]
    result = subprocess.run(["git", "-C", os.fspath(directory), "show", f"{commit}:{port.path}"],
                            capture_output=True)
    if result.returncode == 0:
        text = result.stdout.decode("utf-8")
    else:  # a copy without git history: the file as it is
        file = pathlib.Path(directory) / port.path
        if not file.is_file():
            raise PortError(f"{port.name}: cannot read {commit}:{port.path} from {directory}: "
                            f"{result.stderr.decode(errors='replace').strip()}")
        text = file.read_text(encoding="utf-8")
    if sha256(text) != port.sha256:
        raise PortError(f"{port.name}: {port.path} from {directory} has sha256 {sha256(text)}, "
                        f"not the pinned {port.sha256}")
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name in SOURCES:
        parser.add_argument(f"--{name}", required=True, metavar="DIR",
                            help=f"git directory or checkout of {SOURCES[name]['repo']}")
    args = parser.parse_args(argv)
    files = {}  # every port is made before any is written: an error leaves none half done
    for port in PORTS:
        original = read_original(port, getattr(args, port.source))
        ported = make_port(port, original)
        files[f"{port.name}.py"] = ported
        files[f"{port.name}.diff"] = make_diff(port, original, ported)
    for name, text in files.items():
        (PORTS_DIR / name).write_text(text, encoding="utf-8")
        print(f"wrote tests/bert4keras_examples/{name}")


if __name__ == "__main__":
    try:
        main()
    except PortError as error:
        sys.exit(f"error: {error}")
