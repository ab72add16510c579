"""Readers for the sentence-pair and corpus files used to train and evaluate
SimBERT-style models.

Chinese similarity data comes in a handful of layouts: tab-separated pairs with
or without a label (LCQMC, BQ, ATEC, PAWS-X and STS-B as "senteval_cn", CSTS),
ChineseSTS' five columns, JSON lines under several key names (SimCLUE, OCNLI,
CNSD, RoFormer-Sim's own files), SimBERT's similar-sentence groups, and CSV with
a header (Chinese-Idiom-Paraphrasing). `read_pairs` turns all of them into
`Pair` and `Group` records, so training and evaluation code never looks at a
file layout; `read_texts` reads plain-sentence corpora.

Files are read as bytes and split at "\\n" only: a stray "\\r" or a Unicode line
separator inside a text does not start a new record, and the line numbers in
error messages are the ones an editor shows. Every malformed line raises
`DataFormatError` naming the file and the line; nothing is skipped silently
except blank lines and NLI rows without a gold label ("-"). With
`streaming=True` the file is read one line at a time as the records are
consumed, so corpora larger than memory can be read.
"""
import csv
import errno
import json
import math
import os
import typing

__all__ = ["DataFormatError", "FORMATS", "Group", "Pair", "read_pairs", "read_texts"]

# Pair formats, the values of `read_pairs`' `format` argument.
FORMATS = ("tsv", "jsonl", "simbert", "csv")

# The format of a file extension, used when the first record has the shape of
# none: reading it that way then reports what is wrong with the record.
_FORMAT_OF_EXTENSION = {
    ".tsv": "tsv", ".txt": "tsv", ".data": "tsv",
    ".csv": "csv",
    ".json": "jsonl", ".jsonl": "jsonl",
}

# Tab-separated layouts by column count: the columns of text_a, text_b and the
# label (None: no label). Five columns are ChineseSTS' id1, s1, id2, s2, score.
_TSV_LAYOUTS = {2: (0, 1, None), 3: (0, 1, 2), 5: (1, 3, 4)}

# Names of the two text fields of a pair (JSON keys or CSV header names), in
# the order they are looked for.
_TEXT_KEYS = (("text_a", "text_b"), ("sentence1", "sentence2"), ("query", "title"), ("src", "dst"))
_TEXT_KEY_CHOICES = ", ".join(f"{a}/{b}" for a, b in _TEXT_KEYS)
_LABEL_KEYS = ("label", "gold_label")
_CSV_LABEL_COLUMNS = ("label", "score")
_CORPUS_KEYS = ("sentence", "text")

_NLI_LABELS = ("entailment", "neutral", "contradiction")
# The label of NLI rows whose annotators did not agree (OCNLI, SNLI): such rows
# have no gold label and are left out, as every NLI training script does.
_NO_GOLD_LABEL = "-"

# Some published JSON-lines files have records wrapped over several lines by a
# raw line break inside a string (SimBERT's data_sample.json); the pieces are
# joined again. A record still open after this many lines is reported as
# invalid instead: it means a stray quote, and joining further would re-parse
# an ever longer text.
_MAX_WRAPPED_LINES = 8

# Longest repr of the offending text shown in an error message.
_SHOWN_CHARACTERS = 80


class Pair(typing.NamedTuple):
    """Two texts and how they relate.

    `label` is a float for numeric labels (0/1 for paraphrase pairs, 0-5 for
    STS scores), a str for NLI labels ("entailment", "neutral",
    "contradiction"), or None when the file has no labels.
    """

    text_a: str
    text_b: str
    label: float | str | None


class Group(typing.NamedTuple):
    """A SimBERT group of similar sentences: its text, then its synonyms."""

    texts: tuple[str, ...]


class DataFormatError(ValueError):
    """A data file does not have the expected format; the message names the
    file and the 1-based line number."""


def read_pairs(path, format=None, streaming=False):
    """Reads a file of sentence pairs or SimBERT similar-sentence groups.

    Formats:

    - "tsv": `text_a<TAB>text_b`, `text_a<TAB>text_b<TAB>label`, or
      ChineseSTS' `id1<TAB>text_a<TAB>id2<TAB>text_b<TAB>score`; no header,
      and every line has the column count of the first.
    - "jsonl": one JSON object per line with the texts under `text_a` and
      `text_b`, `sentence1` and `sentence2`, `query` and `title`, or `src` and
      `dst`, and optionally a label under `label` or `gold_label`.
    - "simbert": one JSON object per line, `{"text": ..., "synonyms": [...]}`,
      read as a `Group`.
    - "csv": a header naming the two text columns (the same names as for
      "jsonl") and optionally a `label` or `score` column.

    A label is read as a float when it is a number or a numeric string, and
    as a str when it is an NLI label. Rows labelled "-" (NLI rows without a
    gold label) are skipped. Texts are stripped of surrounding whitespace.

    Args:
        path: The file to read (str or path-like).
        format: One of `FORMATS`, or None to detect it from the extension and
            the first record. Detection reads the first record at once, even
            when streaming.
        streaming: If true, return an iterator that reads the file line by
            line as it is consumed; errors are raised when the bad line is
            reached.

    Returns:
        A list of `Pair` records (`Group` records for "simbert"), or an
        iterator over them when `streaming` is true.

    Raises:
        FileNotFoundError: If `path` does not exist.
        ValueError: If `format` is not one of `FORMATS` or None.
        DataFormatError: If a line does not match the format, or the format
            cannot be detected.
    """
    path = _checked_path(path)
    if format is None:
        format = _detect_format(path)
    elif format not in _PAIR_READERS:
        raise ValueError(
            f"unknown format {format!r}; expected one of {', '.join(map(repr, FORMATS))} or None"
        )
    records = _PAIR_READERS[format](path)
    return records if streaming else list(records)


def read_texts(path, streaming=False):
    """Reads a plain-text corpus: one sentence or document per line.

    Lines are stripped and blank ones skipped. In a `.json` or `.jsonl` file
    every line is a JSON object and its text is the `sentence` or `text`
    field (as in FewCLUE's unlabeled files); rows whose text is blank are
    skipped too.

    Args:
        path: The file to read (str or path-like).
        streaming: If true, return an iterator that reads the file line by
            line as it is consumed.

    Returns:
        A list of non-empty strings, or an iterator over them.

    Raises:
        FileNotFoundError: If `path` does not exist.
        DataFormatError: If a line is not UTF-8, or, in a JSON file, not a
            JSON object with a string under `sentence` or `text`.
    """
    path = _checked_path(path)
    extension = os.path.splitext(path)[1].lower()
    texts = _json_texts(path) if extension in (".json", ".jsonl") else _plain_texts(path)
    return texts if streaming else list(texts)


def _checked_path(path):
    """`path` as a str, once it is known to name an existing file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    return path


def _error(path, number, expected, found):
    """The DataFormatError for line `number` of `path`."""
    shown = repr(found)
    if len(shown) > _SHOWN_CHARACTERS:
        shown = shown[:_SHOWN_CHARACTERS - 3] + "..."
    return DataFormatError(f"{path}:{number}: expected {expected}, got {shown}")


def _detect_format(path):
    """The format whose shape the first record of `path` has: a JSON object
    with SimBERT's or a pair's keys, 2, 3 or 5 tab-separated columns, or a
    CSV header naming two text columns. Failing that, the format of the file
    extension; failing that too, DataFormatError."""
    first = next(((number, line) for number, line in _lines(path) if line.strip()), None)
    fallback = _FORMAT_OF_EXTENSION.get(os.path.splitext(path)[1].lower())
    if first is None:
        return fallback or FORMATS[0]
    number, line = first

    if line.lstrip().startswith("{"):
        try:
            _, row = next(_json_objects(path))
        except DataFormatError:
            row = {}
        if "text" in row and "synonyms" in row:
            return "simbert"
        if _text_keys(row):
            return "jsonl"
    if len(line.split("\t")) in _TSV_LAYOUTS:
        return "tsv"
    header = [name.strip().lower() for name in next(csv.reader([line]))]
    if _text_keys(header):
        return "csv"

    if fallback is None:
        raise _error(
            path, number,
            f"a first record in one of the formats {', '.join(FORMATS)} "
            f"(pass format= to see why one does not fit)",
            line,
        )
    return fallback


def _lines(path):
    """Yields (line number, line) for every line of `path`, decoded as UTF-8
    and without its line ending ("\\n" or "\\r\\n") or byte-order mark."""
    with open(path, "rb") as file:
        for number, raw in enumerate(file, 1):
            raw = raw.removesuffix(b"\n").removesuffix(b"\r")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise _error(
                    path, number, f"UTF-8 text (byte {error.start + 1} is invalid)", raw
                ) from None
            if number == 1:
                line = line.removeprefix("\ufeff")
            yield number, line


def _json_objects(path):
    """Yields (line number, object) for every non-blank line of a JSON-lines
    file; a record wrapped over several lines gets the number of its first."""
    lines = _lines(path)
    for number, line in lines:
        if not line.strip():
            continue
        record = line
        for wrapped in range(_MAX_WRAPPED_LINES):
            try:
                value = json.loads(record)
                break
            except json.JSONDecodeError as error:
                continuation = None
                if error.msg.startswith("Unterminated string") and wrapped + 1 < _MAX_WRAPPED_LINES:
                    continuation = next(lines, None)
                if continuation is None:
                    raise _error(
                        path, number, f"a JSON object ({error.msg}: column {error.colno})", record
                    ) from None
                # The line break is an artefact of the wrapping (it falls
                # inside words), so the pieces are joined without it.
                record += continuation[1]
        if not isinstance(value, dict):
            raise _error(path, number, "a JSON object", value)
        yield number, value


def _text(value, path, number, where):
    """`value` stripped, once it is known to be a non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise _error(path, number, f"a non-empty text {where}", value)
    return value.strip()


def _label(value, path, number):
    """A label as a float (numbers, numeric strings) or an NLI label str."""
    if isinstance(value, str) and value.strip() in (*_NLI_LABELS, _NO_GOLD_LABEL):
        return value.strip()
    number_value = math.nan
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        try:
            number_value = float(value)
        except (ValueError, OverflowError):
            pass
    if not math.isfinite(number_value):
        raise _error(
            path, number,
            f"a numeric label or one of {', '.join(_NLI_LABELS)}, {_NO_GOLD_LABEL}",
            value,
        )
    return number_value


def _text_keys(names):
    """The first pair of `_TEXT_KEYS` that `names` contains, or None."""
    return next(((a, b) for a, b in _TEXT_KEYS if a in names and b in names), None)


def _pair(record, a, b, label_at, path, number, where):
    """The `Pair` of `record[a]`, `record[b]` and the label at `label_at` (None: no
    label), or None for an NLI row without a gold label; `where(a)` says where a text
    is, for errors."""
    label = None if label_at is None else _label(record[label_at], path, number)
    if label == _NO_GOLD_LABEL:
        return None
    return Pair(_text(record[a], path, number, where(a)),
                _text(record[b], path, number, where(b)), label)


def _read_tsv(path):
    """Pairs of a tab-separated file (see `read_pairs`)."""
    columns = first_number = None
    for number, line in _lines(path):
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split("\t")]
        if columns is None:
            if len(fields) not in _TSV_LAYOUTS:
                raise _error(path, number, "2, 3 or 5 tab-separated columns", line)
            columns, first_number = len(fields), number
        elif len(fields) != columns:
            raise _error(
                path, number, f"{columns} tab-separated columns, as on line {first_number}", line
            )
        a, b, label_column = _TSV_LAYOUTS[columns]
        pair = _pair(fields, a, b, label_column, path, number,
                     lambda column: f"in column {column + 1}")
        if pair is not None:
            yield pair


def _read_jsonl(path):
    """Pairs of a JSON-lines file (see `read_pairs`)."""
    for number, row in _json_objects(path):
        keys = _text_keys(row)
        if keys is None:
            raise _error(path, number, f"one of the key pairs {_TEXT_KEY_CHOICES}", sorted(row))
        label_key = next((key for key in _LABEL_KEYS if row.get(key) is not None), None)
        pair = _pair(row, keys[0], keys[1], label_key, path, number,
                     lambda key: f"under {key!r}")
        if pair is not None:
            yield pair


def _read_simbert(path):
    """Groups of a SimBERT file (see `read_pairs`)."""
    for number, row in _json_objects(path):
        if "text" not in row or "synonyms" not in row:
            raise _error(path, number, "the keys text and synonyms", sorted(row))
        synonyms = row["synonyms"]
        if not isinstance(synonyms, list):
            raise _error(path, number, "a list under 'synonyms'", synonyms)
        texts = (
            _text(row["text"], path, number, "under 'text'"),
            *(_text(synonym, path, number, "in 'synonyms'") for synonym in synonyms),
        )
        if len(texts) < 2:
            raise _error(path, number, "a text with at least one synonym", row)
        yield Group(texts)


def _read_csv(path):
    """Pairs of a CSV file with a header (see `read_pairs`)."""
    # csv joins the physical lines of a quoted field that spans several; it
    # needs their line breaks back for that.
    reader = csv.reader(line + "\n" for _, line in _lines(path))
    header = None
    while True:
        number = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise _error(path, number, "a well-formed CSV record", str(error)) from None
        if not any(field.strip() for field in row):
            continue
        if header is None:
            header = [name.strip().lower() for name in row]
            keys = _text_keys(header)
            if keys is None:
                raise _error(
                    path, number, f"a header naming one of the column pairs {_TEXT_KEY_CHOICES}", row
                )
            a, b = header.index(keys[0]), header.index(keys[1])
            label_name = next((name for name in _CSV_LABEL_COLUMNS if name in header), None)
            label_column = None if label_name is None else header.index(label_name)
            header_number = number
            continue
        if len(row) != len(header):
            raise _error(
                path, number,
                f"{len(header)} comma-separated fields, as in the header on line {header_number}",
                row,
            )
        pair = _pair(row, a, b, label_column, path, number,
                     lambda column: f"in column {header[column]!r}")
        if pair is not None:
            yield pair


_PAIR_READERS = {"tsv": _read_tsv, "jsonl": _read_jsonl, "simbert": _read_simbert, "csv": _read_csv}


def _plain_texts(path):
    """Stripped non-blank lines of a text file."""
    for _, line in _lines(path):
        if line.strip():
            yield line.strip()


def _json_texts(path):
    """The `sentence` or `text` field of every row of a JSON-lines file."""
    for number, row in _json_objects(path):
        key = next((key for key in _CORPUS_KEYS if key in row), None)
        if key is None:
            raise _error(path, number, "the key sentence or text", sorted(row))
        text = row[key]
        if not isinstance(text, str):
            raise _error(path, number, f"a string under {key!r}", text)
        if text.strip():
            yield text.strip()
