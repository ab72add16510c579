"""Writes tests/fixtures/tokenizers/cpm/: CPM-LM's SentencePiece model and what the
original CPM tokenizer makes of a set of texts.

`chinese_vocab.model` is TsinghuaAI/CPM-Generate's `bpe_3w_new/chinese_vocab.model`
(MIT, THU-PLM: LICENSE beside it), CPM-LM's real 30,000-piece vocabulary. The
expected ids and decoded texts come from running CPM-Generate's own
`data_utils/tokenization_gpt2.py` `GPT2Tokenizer` (jieba words, spaces and newlines
inside words as ▂ and ▃, pieces joined with spaces; decoding undoes it), read from a
checkout at run time; nothing here imports kerasformer, and none of that code is
committed.

    git clone https://github.com/TsinghuaAI/CPM-Generate /tmp/CPM-Generate
    python tools/make_cpm_tokenizer_fixtures.py /tmp/CPM-Generate
    (needs sentencepiece, jieba and regex)
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
]


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


def main():
    import jieba

    jieba.setLogLevel(60)
    tokenizer = original_tokenizer(pathlib.Path(sys.argv[1]))
    cases = []
    for text in TEXTS:
        ids = [int(i) for i in tokenizer.encode(text)]
        cases.append({"text": text, "ids": ids, "decoded": tokenizer.decode(ids)})
    # decoding what a model generates: pieces with <eod> (7) and the newline piece ▃ (3)
    generated = [16, 3, 11, 7, 15]
    cases.append({"ids_only": True, "ids": generated, "decoded": tokenizer.decode(generated)})
    (OUT / "expected.json").write_text(json.dumps({
        "source": f"TsinghuaAI/CPM-Generate@{COMMIT} data_utils/tokenization_gpt2.py",
        "eod_id": tokenizer.eod_id, "cases": cases}, ensure_ascii=False, indent=1) + "\n",
        encoding="utf-8")
    print(f"wrote {OUT / 'expected.json'} ({len(cases)} cases)")


if __name__ == "__main__":
    main()
