"""Assembles the training data of `roformer-sim-mini` from ../shared/data (DATASETS.md),
with the senteval_cn test sets kept out.

    python tools/make_mini_data.py --data ../shared/data --out runs/mini/data

Writes, under --out:

- `corpus.txt` — plain modern-Chinese sentences for masked-LM pre-training (one per
  line, deduplicated, 5–128 characters): MSRA news (SophonPlus dh_msra), e-commerce
  reviews (online_shopping_10_cats, FewCLUE eprstmt), news titles (FewCLUE tnews,
  THUCNews dev/test titles), SimCLUE corpus_1w, the modern side of Classical-Modern.
- `positives-{questions,entailment,paraphrases,captions,classical}.jsonl` — paraphrase
  pairs and groups for stage-1 training (`{"text_a","text_b"}` / `{"text","synonyms"}`),
  one file per domain.
- `labelled.tsv` — `a<TAB>b<TAB>0|1` pairs for the supervised head; `nli.jsonl` —
  `{"sentence1","sentence2","label"}` NLI pairs; `scored.tsv` — STS-B train scores.
- `sources.json` — every source file used, its licence note from DATASETS.md, and the
  records taken from it and dropped for overlapping a test pair.

Never used: any senteval_cn `*.test.data`; SimCLUE `test_public.json` (it contains the
LCQMC, ATEC and STS-B tests); CSTS AFQMC (drawn from ATEC, shares 7,541 pairs with its
test); OCNLI (CC BY-NC). Every other pair whose two texts (either order, after
whitespace removal) are a test pair is dropped, and counted.
"""
import argparse
import collections
import csv
import io
import json
import os
import pathlib
import random
import re
import sys
import zipfile

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kerasformer.data import read_pairs, read_texts  # noqa: E402

TESTS = ("ATEC", "BQ", "LCQMC", "PAWSX", "STS-B")
LICENCES = {
    "SophonPlus": "no licence file (SophonPlus/ChineseNlpCorpus)",
    "FewCLUE": "licence still being added (CLUEbenchmark/FewCLUE)",
    "THUCNews-titles": "MIT (the hosting repository)",
    "SimCLUE": "no licence file (CLUEbenchmark/SimCLUE)",
    "Classical-Modern": "MIT (NiuTrans/Classical-Modern; texts collected from the internet)",
    "CSTS": "no licence file (zejunwang1/CSTS)",
    "ChineseSTS": "no licence; cite Tang, Bai & Ma 2016",
    "Chinese-Idiom-Paraphrasing": "no licence file (jpqiang/Chinese-Idiom-Paraphrasing)",
    "Flickr8k-CN": "no licence; cite Li et al., ICMR 2016; images under the Flickr8k terms",
    "senteval_cn": "per dataset: ATEC (Ant Financial), BQ / LCQMC (HIT-SZ, research use), "
                   "PAWS-X (Google), STS-B (CNSD)",
}
SENTENCE_END = re.compile(r"(?<=[。！？!?])")


def key(a, b):
    """A pair's identity regardless of order and whitespace."""
    a, b = re.sub(r"\s+", "", a), re.sub(r"\s+", "", b)
    return (a, b) if a <= b else (b, a)


class Collector:
    """Records kept per source, with the test-overlap filter and the tallies."""

    def __init__(self, test_pairs):
        self.test_pairs = test_pairs
        self.sources = collections.OrderedDict()

    def keep(self, source, a, b):
        entry = self.sources.setdefault(source, {"kept": 0, "test_overlap": 0})
        if key(a, b) in self.test_pairs:
            entry["test_overlap"] += 1
            return False
        entry["kept"] += 1
        return True


def test_pairs(data):
    pairs = set()
    for task in TESTS:
        for record in read_pairs(data / "senteval_cn" / task / f"{task}.test.data"):
            pairs.add(key(record.text_a, record.text_b))
    return pairs


def sentences(text):
    return [piece.strip() for piece in SENTENCE_END.split(text) if piece.strip()]


def corpus_sources(data):
    """(source name, iterable of sentences) of the pre-training corpus."""
    with zipfile.ZipFile(data / "SophonPlus" / "dh_msra.zip") as archive:
        lines = io.TextIOWrapper(archive.open("dh_msra.txt"), encoding="utf-8").read()
    msra, current = [], []
    for line in lines.splitlines():
        if not line.strip():
            if current:
                msra.append("".join(current))
            current = []
        else:
            current.append(line.split("\t")[0])
    yield "SophonPlus/dh_msra.zip", msra
    with zipfile.ZipFile(data / "SophonPlus" / "online_shopping_10_cats.zip") as archive:
        name = next(n for n in archive.namelist() if n.endswith(".csv"))
        rows = csv.DictReader(io.TextIOWrapper(archive.open(name), encoding="utf-8"))
        yield "SophonPlus/online_shopping_10_cats.zip", [
            s for row in rows for s in sentences(row.get("review") or "")]
    for name in ("FewCLUE/tnews/unlabeled.json", "FewCLUE/eprstmt/unlabeled.json",
                 "SimCLUE/corpus_1w.txt"):
        yield name, read_texts(data / name)
    for name in ("THUCNews-titles/dev.txt", "THUCNews-titles/test.txt"):
        yield name, [line.split("\t")[0] for line in read_texts(data / name)]
    yield "Classical-Modern (现代文)", [modern for _, modern in classical_modern(data)]


def classical_modern(data):
    with zipfile.ZipFile(data / "Classical-Modern" / "Classical-Modern-bitext-subset.zip") as archive:
        for name in sorted(n for n in archive.namelist() if n.endswith("bitext.txt")):
            classical = None
            for line in archive.read(name).decode("utf-8").splitlines():
                if line.startswith("古文："):
                    classical = line[3:].strip()
                elif line.startswith("现代文：") and classical:
                    yield classical, line[4:].strip()
                    classical = None


def flickr_groups(data):
    captions = collections.defaultdict(list)
    path = data / "Flickr8k-CN" / "flickr8kzhc.caption.txt"
    for line in path.read_text(encoding="utf-8").splitlines():
        name, _, text = line.strip().partition(" ")
        if text:
            captions[name.split(".jpg")[0]].append(text)
    return [texts for texts in captions.values() if len(texts) >= 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data, out = pathlib.Path(args.data), pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    collector = Collector(test_pairs(data))
    print(f"{len(collector.test_pairs)} senteval test pairs kept out", file=sys.stderr)

    # --- pre-training corpus
    seen, corpus = set(), []
    for source, texts in corpus_sources(data):
        taken = 0
        for text in texts:
            text = text.strip()
            if 5 <= len(text) <= 128 and text not in seen:
                seen.add(text)
                corpus.append(text)
                taken += 1
        collector.sources[source] = {"sentences": taken}
    random.Random(args.seed).shuffle(corpus)
    write_lines(out / "corpus.txt", corpus)

    # --- positives for stage 1, one file per domain (training draws from the files in
    # turn, so the 336k Classical-Modern pairs do not drown the questions)
    domains = collections.defaultdict(list)
    domain = "questions"

    def positive(source, a, b):
        if a.strip() and b.strip() and a != b and collector.keep(source, a, b):
            domains[domain].append({"text_a": a, "text_b": b})

    for name in ("SimCLUE/train_pair_postive_1w.json", "SimCLUE/train_rank_1w.json"):
        for record in read_pairs(data / name):
            positive(name, record.text_a, record.text_b)
    for name in ("SimCLUE/train_pair_1w.json", "CSTS/OPPO-xiaobu/dev.txt",
                 "ChineseSTS/simtrain_to05sts.txt",
                 *(f"senteval_cn/{t}/{t}.valid.data" for t in TESTS),
                 "senteval_cn/STS-B/STS-B.train.data"):
        limit = 2.5 if name.startswith(("ChineseSTS", "senteval_cn/STS-B")) else 0.5
        for record in read_pairs(data / name):
            if isinstance(record.label, float) and record.label > limit:
                positive(name, record.text_a, record.text_b)
    domain = "entailment"
    for name in ("CSTS/CINLID/Idiom_NLI.txt", "CSTS/Chinese-SNLI/dev.txt",
                 "CSTS/Chinese-SNLI/test.txt", "CSTS/Chinese-MNLI/dev.txt"):
        for record in read_pairs(data / name):
            if record.label == "entailment":
                positive(name, record.text_a, record.text_b)
    domain = "paraphrases"
    for split in ("in_domain/valid.in.csv", "in_domain/test.in.csv",
                  "out_domain/valid.out.csv", "out_domain/test.out.csv"):
        name = f"Chinese-Idiom-Paraphrasing/{split}"
        for record in read_pairs(data / name):
            positive(name, record.text_a, record.text_b)
    groups = flickr_groups(data)
    domains["captions"] = [{"text": texts[0], "synonyms": texts[1:]} for texts in groups]
    collector.sources["Flickr8k-CN/flickr8kzhc.caption.txt"] = {"groups": len(groups)}
    domain = "classical"
    for classical, modern in classical_modern(data):
        positive("Classical-Modern (古文 ↔ 现代文)", classical, modern)
    for index, (name, records) in enumerate(sorted(domains.items())):
        random.Random(args.seed + 1 + index).shuffle(records)
        write_lines(out / f"positives-{name}.jsonl",
                    [json.dumps(record, ensure_ascii=False) for record in records])

    # --- labelled pairs for the supervised head and CoSENT
    labelled, nli, scored = [], [], []
    for name in (*(f"senteval_cn/{t}/{t}.valid.data" for t in TESTS if t != "STS-B"),
                 "SimCLUE/train_pair_1w.json", "CSTS/OPPO-xiaobu/dev.txt"):
        for record in read_pairs(data / name):
            if isinstance(record.label, float) and collector.keep(f"{name} (labelled)",
                                                                  record.text_a, record.text_b):
                labelled.append(f"{record.text_a}\t{record.text_b}\t{int(record.label > 0.5)}")
    for name in ("senteval_cn/STS-B/STS-B.train.data", "senteval_cn/STS-B/STS-B.valid.data"):
        for record in read_pairs(data / name):
            if collector.keep(f"{name} (scored)", record.text_a, record.text_b):
                scored.append(f"{record.text_a}\t{record.text_b}\t{record.label:g}")
    for name in ("CSTS/Chinese-SNLI/dev.txt", "CSTS/Chinese-SNLI/test.txt",
                 "CSTS/Chinese-MNLI/dev.txt", "CSTS/CINLID/Idiom_NLI.txt"):
        for record in read_pairs(data / name):
            if isinstance(record.label, str) and collector.keep(f"{name} (NLI)",
                                                                record.text_a, record.text_b):
                nli.append(json.dumps({"sentence1": record.text_a, "sentence2": record.text_b,
                                       "label": record.label}, ensure_ascii=False))
    for name, rows in (("labelled.tsv", labelled), ("scored.tsv", scored), ("nli.jsonl", nli)):
        random.Random(args.seed + 2).shuffle(rows)
        write_lines(out / name, rows)

    summary = {"corpus_sentences": len(corpus),
               "positives": {name: len(records) for name, records in sorted(domains.items())},
               "labelled": len(labelled), "scored": len(scored), "nli": len(nli),
               "test_pairs_kept_out": len(collector.test_pairs),
               "sources": {name: {**tally, "licence": LICENCES.get(name.split("/")[0].split(" ")[0])}
                           for name, tally in collector.sources.items()}}
    (out / "sources.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1) + "\n",
                                      encoding="utf-8")
    print(json.dumps({k: v for k, v in summary.items() if k != "sources"}), file=sys.stderr)


def write_lines(path, lines):
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(temporary, path)


if __name__ == "__main__":
    main()
