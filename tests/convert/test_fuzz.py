"""Every reader, fed damaged copies of the fixtures, fails only with errors that say where.

Each fixture is truncated at several points and has bytes flipped at offsets drawn with
a fixed seed (more of them in the first and last kilobytes, where headers, pickles, zip
directories and SSTable footers live). The damaged copy is opened and every tensor read:
the only exceptions allowed are ValueError and FileNotFoundError whose message names the
file. A harmless corruption (a flipped bit in float data, where the format has no
checksum) may also read successfully.

Checksums catch most flipped bytes in zip members and TF index blocks before any parsing,
so two more tests damage what lies behind them (a zip's data.pkl, the entries of a TF
index) and write the file again with right checksums.
"""
import pathlib
import shutil
import zipfile

import numpy as np
import pytest

from kerasformer.convert.safetensors_checkpoint import SafetensorsCheckpoint
from kerasformer.convert.tf_checkpoint import TFCheckpoint, _read_table
from kerasformer.convert.torch_pickle import TorchCheckpoint
from tests.conftest import FIXTURES
from tests.convert.hostile import bounded
from tests.convert.test_tf_checkpoint import _sstable

MODELS = FIXTURES / "models"


def corruptions(data, seed):
    """(description, damaged bytes) pairs, deterministic for `seed`."""
    rng = np.random.default_rng(seed)
    size = len(data)
    for keep in sorted({0, 1, 7, 8, 9, 47, size // 10, size // 3, size // 2, size - 48, size - 5,
                        size - 1} - {size}):
        if 0 <= keep < size:
            yield f"cut to {keep} bytes", data[:keep]
    head, tail = min(size, 1024), min(size, 1024)
    offsets = [*rng.integers(0, head, 12), *rng.integers(0, size, 6),
               *rng.integers(size - tail, size, 8)]
    for offset in offsets:
        damaged = bytearray(data)
        damaged[offset] ^= int(rng.integers(1, 256))
        yield f"byte {offset} flipped", bytes(damaged)
    for offset in rng.integers(0, head - 16, 2):
        damaged = bytearray(data)
        damaged[offset:offset + 16] = rng.bytes(16)
        yield f"16 random bytes at {offset}", bytes(damaged)


def mutations(data, seed, count):
    """`count` (description, damaged bytes) pairs: a few flipped bytes, a byte set to
    0x00 / 0x7f / 0x80 / 0xff, bytes deleted, random bytes inserted."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        damaged, offset = bytearray(data), int(rng.integers(0, len(data)))
        kind = int(rng.integers(0, 4))
        if kind == 0:
            for offset in rng.integers(0, len(data), int(rng.integers(1, 4))):
                damaged[offset] ^= int(rng.integers(1, 256))
            yield "bytes flipped", bytes(damaged)
        elif kind == 1:
            damaged[offset] = int(rng.choice([0x00, 0x7F, 0x80, 0xFF]))
            yield f"byte {offset} set to {damaged[offset]:#04x}", bytes(damaged)
        elif kind == 2:
            yield f"bytes deleted at {offset}", bytes(damaged[:offset] + damaged[offset + int(
                rng.integers(1, 8)):])
        else:
            yield f"bytes inserted at {offset}", bytes(damaged[:offset] + rng.bytes(int(
                rng.integers(1, 8))) + damaged[offset:])


def read_everything(open_checkpoint, where, what, allowed=(ValueError, FileNotFoundError)):
    """Open, then read every tensor; allow only `allowed` errors, naming `where`."""
    try:
        checkpoint = open_checkpoint()
    except allowed as error:
        assert str(where) in str(error), f"{what}: {error!r} does not name {where}"
        return
    for name in list(checkpoint):
        try:
            checkpoint.shape(name)
            checkpoint.dtype(name)
            checkpoint[name]
        except allowed as error:
            assert str(where) in str(error), f"{what}: {error!r} does not name {where}"


def _fuzz(tmp_path, fixture, seed, open_checkpoint, where=None):
    """Damage a copy of `fixture` in every way and read it; returns how many ways.

    Errors must name `where` (default: the damaged copy)."""
    data = fixture.read_bytes()
    count = 0
    for what, damaged in corruptions(data, seed):
        path = tmp_path / fixture.name
        path.write_bytes(damaged)
        try:
            read_everything(lambda: open_checkpoint(path), where or path,
                            f"{fixture.name}, {what}")
        except Exception as error:  # anything else: say which corruption
            raise AssertionError(f"{fixture}, {what}: {type(error).__name__}: {error}") from error
        count += 1
    return count


@pytest.mark.parametrize("fixture", [
    FIXTURES / "torch" / "zip.bin", FIXTURES / "torch" / "legacy.bin",
    MODELS / "bert_factorized" / "hf" / "pytorch_model.bin",
    MODELS / "roformer_v2" / "hf" / "pytorch_model_legacy.bin",
], ids=lambda path: f"{path.parent.name}/{path.name}")
def test_torch_reader(tmp_path, fixture):
    with bounded(seconds=4):
        assert _fuzz(tmp_path, fixture, 1, TorchCheckpoint) > 30


@pytest.mark.parametrize("fixture", [
    FIXTURES / "torch" / "tensors.safetensors", MODELS / "bert" / "hf" / "model.safetensors",
], ids=lambda path: f"{path.parent.name}/{path.name}")
def test_safetensors_reader(tmp_path, fixture):
    with bounded(seconds=4):
        assert _fuzz(tmp_path, fixture, 2, SafetensorsCheckpoint) > 30


@pytest.mark.parametrize("prefix", [
    MODELS / "bert" / "bert_model.ckpt", FIXTURES / "tf_checkpoint" / "sharded.ckpt",
], ids=lambda path: f"{path.parent.name}/{path.name}")
def test_tf_reader(tmp_path, prefix):
    """The index and each data file damaged in turn, the others intact."""
    files = sorted(prefix.parent.glob(prefix.name + ".*"))
    count = 0
    with bounded(seconds=4):
        for seed, damaged in enumerate(files):
            directory = tmp_path / str(seed)
            directory.mkdir()
            for path in files:
                if path != damaged:
                    shutil.copy(path, directory / path.name)
            copy = directory / prefix.name
            count += _fuzz(directory, damaged, seed + 3, lambda path: TFCheckpoint(copy),
                           where=copy)
    assert count > 30 * len(files)


@pytest.mark.parametrize("fixture", [
    FIXTURES / "torch" / "zip.bin", MODELS / "bert_factorized" / "hf" / "pytorch_model.bin",
], ids=lambda path: f"{path.parent.name}/{path.name}")
def test_torch_pickle_behind_its_checksum(tmp_path, fixture):
    """The pickle of a zip checkpoint damaged, then zipped again with a right CRC-32."""
    with zipfile.ZipFile(fixture) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    (pickle_name,) = [name for name in members if name.endswith("/data.pkl")]
    path = tmp_path / fixture.name
    with bounded(seconds=4):
        for what, damaged in mutations(members[pickle_name], 5, 200):
            with zipfile.ZipFile(path, "w") as archive:
                for name, data in members.items():
                    archive.writestr(name, damaged if name == pickle_name else data)
            try:
                read_everything(lambda: TorchCheckpoint(path), path, what)
            except Exception as error:
                raise AssertionError(f"{fixture}, data.pkl {what}: {type(error).__name__}: "
                                     f"{error}") from error


@pytest.mark.parametrize("prefix", [
    MODELS / "bert" / "bert_model.ckpt", FIXTURES / "tf_checkpoint" / "sharded.ckpt",
], ids=lambda path: f"{path.parent.name}/{path.name}")
def test_tf_index_entries_behind_their_checksums(tmp_path, prefix):
    """One entry of the index damaged, the index written again with right CRC-32Cs.

    A damaged dtype may name a type TensorFlow has and this reader does not read
    (quantized, float8, ...): a NotImplementedError naming the file, as for a sound
    checkpoint holding one."""
    records = list(_read_table(pathlib.Path(f"{prefix}.index").read_bytes()))
    for path in prefix.parent.glob(prefix.name + ".*"):
        shutil.copy(path, tmp_path / path.name)
    copy = tmp_path / prefix.name
    rng = np.random.default_rng(6)
    with bounded(seconds=4):
        for seed in range(200):
            damaged = list(records)
            index = int(rng.integers(0, len(damaged)))
            key, value = damaged[index]
            ((what, value),) = mutations(value or b"\0", seed, 1)
            damaged[index] = (key, value)
            pathlib.Path(f"{copy}.index").write_bytes(_sstable(damaged, 1000, 16, 0))
            what = f"entry {key[:60]!r}: {what}"
            try:
                read_everything(lambda: TFCheckpoint(copy), copy, what,
                                (ValueError, FileNotFoundError, NotImplementedError))
            except Exception as error:
                raise AssertionError(f"{prefix}, {what}: {type(error).__name__}: "
                                     f"{error}") from error
