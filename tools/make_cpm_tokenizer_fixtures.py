"""Writes tests/fixtures/tokenizers/cpm/: CPM-LM's SentencePiece model and what the
original CPM tokenizer, and Hugging Face's two CPM tokenizers, make of a set of texts.

`chinese_vocab.model` is TsinghuaAI/CPM-Generate's `bpe_3w_new/chinese_vocab.model`
(MIT, THU-PLM: LICENSE beside it), CPM-LM's real 30,000-piece vocabulary. The
expected ids and decoded texts (`expected.json`) come from running CPM-Generate's own
`data_utils/tokenization_gpt2.py` `GPT2Tokenizer` (jieba words, spaces and newlines
inside words as ▂ and ▃, pieces joined with spaces; decoding undoes it), read from a
checkout at run time; nothing here imports kerasformer, and none of that code is
committed.

`hf.json` holds what transformers' `CpmTokenizerFast` and `CpmTokenizer` (slow) make
of the same texts with the same model, so that the tests can say which of them
kerasformer matches without importing transformers. It is written by this file run
again under HF_PYTHON (an interpreter with transformers, tokenizers, rjieba and
sentencepiece), which imports no kerasformer either. What they do, and why they
disagree with CPM-Generate where they do:

- The fast tokenizer cuts words as CPM-Generate does and spells spaces and newlines
  the same way (its normaliser's collapsing of repeated spaces finds none: they are
  ▂ by then), but calls `rjieba.cut(text, False)`: rjieba's second argument is
  `hmm`, not jieba's `cut_all`, so jieba's HMM is off and characters the HMM would
  join into a word not in jieba's dictionary (混在, 杭研) stay apart: other pieces.
  Its backend (XLNet's, with XLNet's normaliser) also decomposes the text and drops
  accents before SentencePiece sees it (é becomes e), where CPM-Generate keeps them.
  Its ids are recorded without special tokens (`add_special_tokens=False`): with
  them it appends XLNet's `<sep> <cls>`, and `<cls>` is not a piece of CPM's model
  (transformers adds it as id 30,000, past the model's embeddings). It decodes an
  unknown piece as `<unk>` where SentencePiece writes ⁇.
- The slow tokenizer (transformers 4.57) never calls jieba, so its ids differ on
  every text; and XLNet's preprocessing turns each run of whitespace into one space,
  a SentencePiece word boundary that CPM's decoding drops: no space or newline comes
  back.

CpmTokenizerFast names no slow class to convert from (it once inherited XLNet's), so
its backend is built here with XLNet's converter from the slow tokenizer, as
XLNetTokenizerFast builds its own.

    git clone https://github.com/TsinghuaAI/CPM-Generate /tmp/CPM-Generate
    python tools/make_cpm_tokenizer_fixtures.py /tmp/CPM-Generate [HF_PYTHON]
    (needs sentencepiece, jieba and regex; HF_PYTHON defaults to this interpreter)
"""
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "tokenizers" / "cpm"
COMMIT = "df9bac2"
TEXTS = [
    "今天天气不错",
    "美国的首都是华盛顿\n法国的首都是巴黎\n中国的首都是",
    "狗 dog\n猫 cat\n鸟 ",
    "姚明的身高是211cm，是很多人心目中的偶像。 ->姚明，身高，211cm",
    "Hello  World!  两个空格，  和中文混在一起。",
    "《青花瓷》是周杰伦最得意的一首歌。",
    "第一行\n\n第三行（前面一行是空的）",
    "𠀀罕见字和emoji🙂也要能编码",
    # jieba's own example of a word found by its HMM (杭研)
    "他来到了网易杭研大厦",
    "咖啡馆叫Café，很naïve。",
]
# decoding what a model generates: pieces with <eod> (7) and the newline piece ▃ (3)
GENERATED = [16, 3, 11, 7, 15]


def original_tokenizer(checkout):
    source = subprocess.run(
        ["git", "-C", str(checkout), "show", f"{COMMIT}:data_utils/tokenization_gpt2.py"],
        capture_output=True, text=True, check=True).stdout
    source = source.replace("from .file_utils import cached_path\n", "")
    namespace = {"__name__": "tokenization_gpt2"}
    exec(compile(source, "tokenization_gpt2.py", "exec"), namespace)
    vocab = OUT / "vocab.json.tmp"
    vocab.write_text(subprocess.run(
        ["git", "-C", str(checkout), "show", f"{COMMIT}:bpe_3w_new/vocab.json"],
        capture_output=True, text=True, check=True).stdout, encoding="utf-8")
    try:
        return namespace["GPT2Tokenizer"](str(vocab), str(OUT / "chinese_vocab.model"))
    finally:
        vocab.unlink()


def write_hf():
    """Writes hf.json; run under HF_PYTHON (`--hf`)."""
    from importlib.metadata import version

    from transformers import CpmTokenizer, CpmTokenizerFast
    from transformers.convert_slow_tokenizer import XLNetConverter

    model = str(OUT / "chinese_vocab.model")
    slow = CpmTokenizer(model)
    fast = CpmTokenizerFast(vocab_file=model, tokenizer_object=XLNetConverter(slow).converted())
    cases = []
    for text in TEXTS:
        fast_ids = fast(text, add_special_tokens=False)["input_ids"]
        slow_ids = slow(text, add_special_tokens=False)["input_ids"]
        cases.append({"text": text, "fast_ids": fast_ids, "fast_decoded": fast.decode(fast_ids),
                      "slow_ids": slow_ids, "slow_decoded": slow.decode(slow_ids)})
    cases.append({"ids_only": True, "ids": GENERATED, "fast_decoded": fast.decode(GENERATED),
                  "slow_decoded": slow.decode(GENERATED)})
    suffix = fast.build_inputs_with_special_tokens([])
    versions = ", ".join(f"{name} {version(name)}"
                         for name in ("transformers", "tokenizers", "rjieba", "sentencepiece"))
    (OUT / "hf.json").write_text(json.dumps({
        "source": f"CpmTokenizerFast and CpmTokenizer ({versions}) on chinese_vocab.model",
        "special_suffix": suffix, "special_suffix_tokens": fast.convert_ids_to_tokens(suffix),
        "cases": cases}, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT / 'hf.json'} ({len(cases)} cases)")


def main():
    if sys.argv[1:] == ["--hf"]:
        write_hf()
        return
    import jieba

    jieba.setLogLevel(60)
    tokenizer = original_tokenizer(pathlib.Path(sys.argv[1]))
    cases = []
    for text in TEXTS:
        ids = [int(i) for i in tokenizer.encode(text)]
        cases.append({"text": text, "ids": ids, "decoded": tokenizer.decode(ids)})
    cases.append({"ids_only": True, "ids": GENERATED, "decoded": tokenizer.decode(GENERATED)})
    (OUT / "expected.json").write_text(json.dumps({
        "source": f"TsinghuaAI/CPM-Generate@{COMMIT} data_utils/tokenization_gpt2.py",
        "eod_id": tokenizer.eod_id, "cases": cases}, ensure_ascii=False, indent=1) + "\n",
        encoding="utf-8")
    print(f"wrote {OUT / 'expected.json'} ({len(cases)} cases)")
    hf_python = sys.argv[2] if len(sys.argv) > 2 else sys.executable
    subprocess.run([hf_python, __file__, "--hf"], check=True)


if __name__ == "__main__":
    main()
