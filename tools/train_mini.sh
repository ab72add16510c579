#!/usr/bin/env bash
# Trains roformer-sim-mini end to end with this project's own tools (issue: a small
# Chinese RoFormer-Sim shipped in the package). Fixed seeds; about 5 hours on 2 CPU cores.
#
#   bash tools/train_mini.sh [RUNS_DIR]        (default runs/mini; data from ../shared/data)
#
# A. data: tools/make_mini_data.py (senteval tests and their overlaps kept out)
# B. vocabulary: 6,000 characters of the corpus and the pairs (kerasformer vocab)
# C. masked-LM pre-training of a 4 x 256 RoFormer (4.8 M parameters, 19 MB float32)
# D. RoFormer-Sim stage 1 (seq2seq + contrastive, corrupted sources) from C, the five
#    positive domains drawn in turn; then twice as long again on the domains nearest to
#    paraphrasing (the question pairs twice, no caption groups: describing one picture
#    in two ways taught the generator to describe pictures), and 1,800 steps more at a
#    lower learning rate (the seq2seq loss was still falling)
# E. CoSENT on the labelled pairs (binary sets, 0-5 scored sets, NLI) from D, each
#    batch from one file so that its scores compare, with the seq2seq loss kept on the
#    positive pairs (cosent_seq2seq: CoSENT alone moved the weights the generator
#    shares and spoilt it); the binary sets, closest to the evaluation's domains, drawn
#    twice as often
# F. evaluation: the five senteval_cn test sets next to Jaccard / BM25 (scores.json)
# Each stage writes a preset; a stage whose preset exists is skipped, so an interrupted
# run resumes at the stage it was in.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-runs/mini}
DATA=${KERASFORMER_DATA:-../shared/data}
CONFIG=$RUNS/mini.json
mkdir -p "$RUNS"
export KERAS_BACKEND=${KERAS_BACKEND:-jax}

[ -f "$RUNS/data/sources.json" ] || python tools/make_mini_data.py --data "$DATA" --out "$RUNS/data"

cat > "$CONFIG" <<'JSON'
{"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 1024,
 "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
 "max_position_embeddings": 512, "type_vocab_size": 2, "vocab_size": 0}
JSON

if [ ! -f "$RUNS/vocab.txt" ]; then
    python - "$RUNS" <<'PY' > "$RUNS/vocab-corpus.txt"
import glob, json, sys
runs = sys.argv[1]
for line in open(f"{runs}/data/corpus.txt", encoding="utf-8"):
    sys.stdout.write(line)
for path in sorted(glob.glob(f"{runs}/data/positives-*.jsonl")):
    for line in open(path, encoding="utf-8"):
        record = json.loads(line)
        texts = [record["text_a"], record["text_b"]] if "text_a" in record \
            else [record["text"], *record["synonyms"]]
        print("\n".join(texts))
PY
    kerasformer vocab "$RUNS/vocab-corpus.txt" --out "$RUNS/vocab.txt" --max-size 6000
fi

[ -f "$RUNS/mlm/config.json" ] || python examples/pretrain_mlm.py \
    --corpus "$RUNS/data/corpus.txt" --architecture roformer --config "$CONFIG" \
    --vocab "$RUNS/vocab.txt" --maxlen 64 --batch-size 64 --steps 1600 --lr 1e-3 \
    --log-every 100 --seed 0 --out "$RUNS/mlm"

[ -f "$RUNS/stage1/config.json" ] || python examples/train_roformer_sim.py \
    --init "$RUNS/mlm" --objective stage1 \
    $(for f in "$RUNS"/data/positives-*.jsonl; do echo --pairs "$f"; done) \
    --steps 1200 --batch-size 64 --maxlen 32 --lr 3e-4 --warmup 100 --log-every 100 \
    --eval "$DATA/senteval_cn/STS-B/STS-B.valid.data" --eval-every 400 --seed 0 \
    --out "$RUNS/stage1"

[ -f "$RUNS/stage1b/config.json" ] || python examples/train_roformer_sim.py \
    --init "$RUNS/stage1" --objective stage1 \
    --pairs "$RUNS/data/positives-questions.jsonl" --pairs "$RUNS/data/positives-paraphrases.jsonl" \
    --pairs "$RUNS/data/positives-questions.jsonl" --pairs "$RUNS/data/positives-entailment.jsonl" \
    --pairs "$RUNS/data/positives-classical.jsonl" \
    --steps 2400 --batch-size 64 --maxlen 32 --lr 3e-4 --warmup 100 --log-every 100 \
    --eval "$DATA/senteval_cn/STS-B/STS-B.valid.data" --eval-every 800 --seed 1 \
    --out "$RUNS/stage1b"

[ -f "$RUNS/stage1c/config.json" ] || python examples/train_roformer_sim.py \
    --init "$RUNS/stage1b" --objective stage1 \
    --pairs "$RUNS/data/positives-questions.jsonl" --pairs "$RUNS/data/positives-paraphrases.jsonl" \
    --pairs "$RUNS/data/positives-questions.jsonl" --pairs "$RUNS/data/positives-entailment.jsonl" \
    --pairs "$RUNS/data/positives-classical.jsonl" \
    --steps 1800 --batch-size 64 --maxlen 32 --lr 2e-4 --warmup 50 --log-every 100 \
    --eval "$DATA/senteval_cn/STS-B/STS-B.valid.data" --eval-every 900 --seed 2 \
    --out "$RUNS/stage1c"

[ -f "$RUNS/final/config.json" ] || python examples/train_roformer_sim.py \
    --init "$RUNS/stage1c" --objective cosent_seq2seq \
    --pairs "$RUNS/data/labelled.tsv" --pairs "$RUNS/data/scored.tsv" \
    --pairs "$RUNS/data/labelled.tsv" --pairs "$RUNS/data/nli.jsonl" \
    --pairs "$RUNS/data/positives-questions.jsonl" \
    --steps 1000 --batch-size 64 --maxlen 32 --lr 1e-4 --warmup 100 --log-every 100 \
    --eval "$DATA/senteval_cn/STS-B/STS-B.valid.data" --eval-every 500 --seed 0 \
    --out "$RUNS/final"

[ -f "$RUNS/scores.json" ] || { kerasformer eval "$RUNS/final" --sts "$DATA/senteval_cn" --json \
    > "$RUNS/scores.json.partial" && mv "$RUNS/scores.json.partial" "$RUNS/scores.json"; }
