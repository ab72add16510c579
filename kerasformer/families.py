"""Families: how a kind of checkpoint becomes a ready task — data, not code.

A family (RoFormer-Sim, SimBERT, word-level RoFormer, RoFormerV2, GAU-α, BERT, CPM-LM)
is an architecture (`kerasformer.architectures`) plus the builder arguments of its
heads, the task it serves, that task's options and a tokenizer recipe. The table is
`families.json` beside this module; a manifest in checkpoints/ names its family and
may refine the tokenizer, the task options and the config. Every source — a named
checkpoint, an `hf://` repo, an original release directory, a Hugging Face directory —
takes its recipe from this one table, by `family=` or by what its files say.

"Family" means this and only this in kerasformer's names, docs and errors; the graph
is an *architecture* (bert4keras' `model=`).
"""
import dataclasses
import difflib
import functools
import json
import pathlib

from kerasformer import architectures
from kerasformer.tokenizers import recipes

TASKS = ("similarity", "masked_lm", "causal_lm")


@dataclasses.dataclass(frozen=True)
class Family:
    """One row of the family table.

    Attributes:
        name: canonical name ("roformer-sim").
        aliases: other accepted names.
        description: one line for listings.
        architecture: `build_transformer_model`'s `model=`.
        build: builder arguments of its heads (`application`, `with_pool`, ...).
        task: "similarity", "masked_lm" or "causal_lm".
        task_options: keyword arguments of the task (`text_maxlen`, `sampling`).
        tokenizer: the tokenizer recipe (`type`, `do_lower_case`, `pre_tokenize`:
            None, "jieba", or "auto" for jieba when the vocabulary holds words).
        recognise: Hugging Face config values that identify the family among those
            of its architecture (`{}` matches any config of the architecture, the
            most specific match wins); None if configs never say it.
    """

    name: str
    aliases: tuple
    description: str
    architecture: str
    build: dict
    task: str
    task_options: dict
    tokenizer: dict
    recognise: dict | None

    def unbuildable_reason(self):
        """None if kerasformer can build this family, else why not."""
        from kerasformer.models import TASK_CLASSES

        try:
            architectures.get(self.architecture)
        except ValueError:
            return f"kerasformer does not build the {self.architecture} architecture yet"
        if self.task not in TASK_CLASSES:
            return f"kerasformer has no {self.task} task yet"
        if self.tokenizer.get("type", "wordpiece") not in recipes.TYPES:
            return f"kerasformer cannot make its {self.tokenizer['type']} tokenizer from a recipe yet"
        return None


def _path():
    return pathlib.Path(__file__).with_name("families.json")


@functools.lru_cache(maxsize=1)
def _table():
    raw = json.loads(_path().read_text(encoding="utf-8"))
    table, names = {}, {}
    for name, row in raw.items():
        family = Family(name=name, aliases=tuple(row.pop("aliases", ())), **row)
        if family.task not in TASKS:
            raise ValueError(f"{_path()}: family {name!r} has unknown task {family.task!r}")
        table[name] = family
        for key in (name, *family.aliases):
            key = _normalise(key)
            if names.get(key, name) != name:
                raise ValueError(f"{_path()}: {key!r} names both {names[key]!r} and {name!r}")
            names[key] = name
    return table, names


def _normalise(name):
    return name.strip().lower().replace("_", "-")


def register(family):
    """Adds a `Family` to the table for this process (a plug-in's own checkpoints;
    the shipped families are families.json)."""
    table, keys = _table()
    for key in (family.name, *family.aliases):
        key = _normalise(key)
        if keys.get(key, family.name) != family.name:
            raise ValueError(f"family name {key!r} is taken by {keys[key]!r}")
    table[family.name] = family
    for key in (family.name, *family.aliases):
        keys[_normalise(key)] = family.name
    return family


def families():
    """Every family, by name."""
    return dict(_table()[0])


def of_task(task):
    """`{architecture: family name}` of the families of `task` ("masked_lm",
    "similarity", ...): what a model of an architecture trained for that task is
    saved as. Two families of one task on one architecture are an error."""
    found = {}
    for family in families().values():
        if family.task != task:
            continue
        if family.architecture in found:
            raise ValueError(f"families {found[family.architecture]!r} and {family.name!r} are "
                             f"both {task} families of architecture {family.architecture!r}")
        found[family.architecture] = family.name
    return found


def names():
    """Canonical family names, in table order."""
    return list(_table()[0])


def get(name, buildable=True):
    """The `Family` called `name` (or an alias).

    Raises:
        ValueError: unknown name (listing the known ones), or — with `buildable` —
            a family kerasformer cannot build yet, saying why.
    """
    if isinstance(name, Family):
        family = name
    else:
        if not isinstance(name, str):
            raise TypeError(f"family must be a string, got {name!r}")
        table, keys = _table()
        key = keys.get(_normalise(name))
        if key is None:
            close = difflib.get_close_matches(_normalise(name), keys, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown family {name!r}{hint}; available: {', '.join(table)}")
        family = table[key]
    if buildable:
        reason = family.unbuildable_reason()
        if reason:
            raise ValueError(f"{family.name} checkpoints can be listed and downloaded, but {reason}")
    return family


def from_config(config):
    """The family a Hugging Face config.json says it is, or None."""
    architecture = architectures.recognise_config(config)
    if architecture is None:
        return None
    candidates = [
        family for family in families().values()
        if family.architecture == architecture and family.recognise is not None
        and all(config.get(key) == value for key, value in family.recognise.items())
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda family: len(family.recognise))
