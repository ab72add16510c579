"""Tests for kerasformer.data's pair and corpus readers.

Every file is written into a temporary directory; only the last test reads the
real files under ../shared/data, and it is skipped where they are absent.
"""
import json
import pathlib
import re

import pytest

from kerasformer.data import DataFormatError, Group, Pair, read_pairs, read_texts

SHARED_DATA = pathlib.Path(__file__).resolve().parents[3] / "shared" / "data"


def write(directory, name, content):
    """Writes `content` (str as UTF-8, or bytes) to directory/name; returns the path."""
    path = directory / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def jsonl(*rows):
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def raises_at(path, line, match):
    """pytest.raises for a DataFormatError about line `line` of `path`."""
    return pytest.raises(DataFormatError, match=re.escape(f"{path}:{line}: ") + match)


# ------------------------------------------------------------------ tsv


def test_tsv_layouts_and_labels(tmp_path):
    unlabelled = write(tmp_path, "a.tsv", "今天天气好\t天气不错\n\n明天呢\t后天呢\n")
    assert read_pairs(unlabelled) == [Pair("今天天气好", "天气不错", None), Pair("明天呢", "后天呢", None)]

    senteval = write(tmp_path, "STS-B.test.data", "一个人在弹吉他。\t一个男人在弹吉他。\t4\r\n句子\t另一句\t0\r\n")
    assert read_pairs(senteval) == [Pair("一个人在弹吉他。", "一个男人在弹吉他。", 4.0), Pair("句子", "另一句", 0.0)]
    assert all(type(pair.label) is float for pair in read_pairs(senteval))

    chinese_sts = write(tmp_path, "simtrain_to05sts.txt", "1\t我们走吧。\t5\t咱们走吧。\t5.0\r\n7\t甲\t14\t乙\t0.0\r\n")
    assert read_pairs(chinese_sts) == [Pair("我们走吧。", "咱们走吧。", 5.0), Pair("甲", "乙", 0.0)]


def test_tsv_nli_labels_odd_whitespace_and_missing_gold_label(tmp_path):
    path = write(
        tmp_path, "Idiom_NLI.txt",
        "卖头卖脚\u3000\t隐姓埋名\tcontradiction\n"
        "你好\t 这个是号码吗 \tentailment\n"
        "没有\t金标\t-\n"
        "中间\r有回车\t还有\u2028分隔符\tneutral\n",
    )
    assert read_pairs(path) == [
        Pair("卖头卖脚", "隐姓埋名", "contradiction"),
        Pair("你好", "这个是号码吗", "entailment"),
        Pair("中间\r有回车", "还有\u2028分隔符", "neutral"),  # only "\n" ends a line
    ]


def test_tsv_column_count_must_fit_and_stay_the_same(tmp_path):
    four = write(tmp_path, "four.tsv", "a\tb\tc\td\n")
    with raises_at(four, 1, "expected 2, 3 or 5 tab-separated columns, got 'a\\\\tb"):
        read_pairs(four, format="tsv")

    changing = write(tmp_path, "changing.tsv", "a\tb\t1\n\nc\td\t0\te\n")
    with raises_at(changing, 3, "expected 3 tab-separated columns, as on line 1"):
        read_pairs(changing)


@pytest.mark.parametrize("line, expected", [
    ("句子\t句子\tyes\n", "a numeric label or one of entailment, neutral, contradiction, -, got 'yes'"),
    ("句子\t句子\tnan\n", "a numeric label"),
    ("句子\t  \t1\n", "a non-empty text in column 2, got ''"),
])
def test_tsv_bad_fields(tmp_path, line, expected):
    path = write(tmp_path, "bad.tsv", "好\t好\t1\n" + line)
    with raises_at(path, 2, "expected " + re.escape(expected)):
        read_pairs(path)


def test_non_utf8_bytes_name_the_line(tmp_path):
    path = write(tmp_path, "gbk.tsv", "好\t好\t1\n".encode() + "坏\t坏\t0\n".encode("gbk"))
    with raises_at(path, 2, "expected UTF-8 text"):
        read_pairs(path, format="tsv")
    with raises_at(path, 2, "expected UTF-8 text"):
        read_texts(path)


# ------------------------------------------------------------------ jsonl and simbert


def test_jsonl_key_pairs_and_labels(tmp_path):
    path = write(tmp_path, "pairs.jsonl", jsonl(
        {"text_a": "甲", "text_b": "乙"},
        {"sentence1": "甲", "sentence2": "乙", "label": "1"},
        {"query": " 甲 ", "title": "乙", "neg_title": "丙"},
        {"src": "甲", "dst": "乙", "label": 3.5},
        {"sentence1": "甲", "sentence2": "乙", "label": "entailment", "genre": "news"},
        {"sentence1": "甲", "sentence2": "乙", "label": "-"},
        {"sentence1": "甲", "sentence2": "乙", "gold_label": "neutral"},
    ) + "\n")
    assert read_pairs(path) == [
        Pair("甲", "乙", None), Pair("甲", "乙", 1.0), Pair("甲", "乙", None), Pair("甲", "乙", 3.5),
        Pair("甲", "乙", "entailment"), Pair("甲", "乙", "neutral"),
    ]


def test_jsonl_errors(tmp_path):
    invalid = write(tmp_path, "invalid.json", jsonl({"text_a": "甲", "text_b": "乙"}) + '{"text_a": "甲",}\n')
    with raises_at(invalid, 2, r"expected a JSON object \(Expecting property name"):
        read_pairs(invalid)

    keys = write(tmp_path, "keys.json", jsonl({"sentence": "甲", "id": 1}))
    with raises_at(keys, 1, "expected one of the key pairs text_a/text_b, sentence1/sentence2, query/title, "
                            r"src/dst, got \['id', 'sentence'\]"):
        read_pairs(keys, format="jsonl")

    empty = write(tmp_path, "empty.json", jsonl({"src": "甲", "dst": " "}))
    with raises_at(empty, 1, "expected a non-empty text under 'dst'"):
        read_pairs(empty)

    bad_label = write(tmp_path, "label.json", jsonl({"src": "甲", "dst": "乙", "label": True}))
    with raises_at(bad_label, 1, "expected a numeric label"):
        read_pairs(bad_label)

    not_object = write(tmp_path, "list.jsonl", '["甲", "乙"]\n')
    with raises_at(not_object, 1, "expected a JSON object, got"):
        read_pairs(not_object, format="jsonl")


def test_simbert_groups_are_detected_and_checked(tmp_path):
    path = write(tmp_path, "data_sample.json", jsonl(
        {"text": "有现金.住房公积金", "synonyms": ["用住房公积金贷款", "公积金可以取吗"]},
        {"text": "女方提出离婚", "synonyms": ["女方先提出离婚"]},
    ))
    assert read_pairs(path) == [
        Group(("有现金.住房公积金", "用住房公积金贷款", "公积金可以取吗")), Group(("女方提出离婚", "女方先提出离婚")),
    ]

    lonely = write(tmp_path, "lonely.json", jsonl({"text": "一句", "synonyms": [" "]}))
    with raises_at(lonely, 1, "expected a non-empty text in 'synonyms'"):
        read_pairs(lonely, format="simbert")
    not_list = write(tmp_path, "not_list.json", jsonl({"text": "一句", "synonyms": "另一句"}))
    with raises_at(not_list, 1, "expected a list under 'synonyms'"):
        read_pairs(not_list, format="simbert")
    pairs = write(tmp_path, "pairs.json", jsonl({"text_a": "甲", "text_b": "乙"}))
    with raises_at(pairs, 1, "expected the keys text and synonyms"):
        read_pairs(pairs, format="simbert")


def test_json_record_wrapped_by_a_raw_line_break_is_joined(tmp_path):
    # As in SimBERT's published data_sample.json: a line break inside a word.
    path = write(
        tmp_path, "wrapped.json",
        '{"text": "谁先提出离\r\n婚谁吃亏", "synonyms": ["离婚谁\n吃\n亏"]}\n'
        + jsonl({"text": "下一条", "synonyms": ["第四行"]}) + '{"text": "没有结尾\n',
    )
    records = read_pairs(path, streaming=True)
    assert next(records) == Group(("谁先提出离婚谁吃亏", "离婚谁吃亏"))
    assert next(records) == Group(("下一条", "第四行"))
    with raises_at(path, 6, r"expected a JSON object \(Unterminated string starting at: column 10\)"):
        next(records)


# ------------------------------------------------------------------ csv


def test_csv_headers_and_quoted_fields(tmp_path):
    idioms = write(tmp_path, "test.in.csv", 'src,dst\n他一言不发,"他没有说话，一句也没有"\n\n"甲,乙",丙\n')
    assert read_pairs(idioms) == [Pair("他一言不发", "他没有说话，一句也没有", None), Pair("甲,乙", "丙", None)]

    labelled = write(tmp_path, "scored.csv", 'id,Sentence1,sentence2,score\r\n7,甲,"乙\n续",4.2\r\n')
    assert read_pairs(labelled) == [Pair("甲", "乙\n续", 4.2)]


def test_csv_errors(tmp_path):
    header = write(tmp_path, "header.csv", "first,second\n甲,乙\n")
    with raises_at(header, 1, "expected a header naming one of the column pairs text_a/text_b"):
        read_pairs(header, format="csv")

    fields = write(tmp_path, "fields.csv", "text_a,text_b,label\n甲,乙,1\n甲,乙\n")
    expected = r"expected 3 comma-separated fields, as in the header on line 1, got \['甲', '乙'\]"
    with raises_at(fields, 3, expected):
        read_pairs(fields)


# ------------------------------------------------------------------ detection and arguments


def test_format_is_detected_from_the_first_record(tmp_path):
    json_in_txt = write(tmp_path, "pairs.txt", "\n" + jsonl({"query": "甲", "title": "乙"}))
    assert read_pairs(json_in_txt) == [Pair("甲", "乙", None)]
    csv_without_extension = write(tmp_path, "pairs", "src,dst\n甲,乙\n")
    assert read_pairs(csv_without_extension) == [Pair("甲", "乙", None)]
    assert read_pairs(write(tmp_path, "empty.tsv", "\n\n")) == []

    unknown = write(tmp_path, "notes.md", "\n# 标题\n甲\t乙\n")
    with raises_at(unknown, 2, "expected a first record in one of the formats tsv, jsonl, simbert, csv"):
        read_pairs(unknown)


def test_first_record_of_no_known_shape_is_read_as_the_extension_says(tmp_path):
    # The reader of the extension's format then says what is wrong.
    header = write(tmp_path, "with_header.tsv", "sentence1\tsentence2\tlabel\n甲\t乙\t1\n")
    with raises_at(header, 1, "expected a numeric label"):
        read_pairs(header)
    lonely = write(tmp_path, "lonely.json", jsonl({"text": "一句", "synonyms": []}))
    with raises_at(lonely, 1, "expected a text with at least one synonym"):
        read_pairs(lonely)
    corpus = write(tmp_path, "corpus.jsonl", jsonl({"sentence": "甲"}))
    with raises_at(corpus, 1, "expected one of the key pairs text_a/text_b"):
        read_pairs(corpus)


def test_bad_arguments(tmp_path):
    missing = tmp_path / "missing.tsv"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        read_pairs(missing)
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        read_texts(missing, streaming=True)

    path = write(tmp_path, "a.tsv", "甲\t乙\n")
    with pytest.raises(ValueError, match="unknown format 'json'.*'tsv', 'jsonl', 'simbert', 'csv'"):
        read_pairs(path, format="json")


def test_streaming_is_lazy(tmp_path):
    path = write(tmp_path, "lazy.tsv", "甲\t乙\t1\n丙\t丁\t0\n坏\t行\n")
    records = read_pairs(path, streaming=True)
    assert iter(records) is records  # an iterator, not a list
    assert next(records) == Pair("甲", "乙", 1.0)
    assert next(records) == Pair("丙", "丁", 0.0)
    with raises_at(path, 3, "expected 3 tab-separated columns"):
        next(records)


# ------------------------------------------------------------------ read_texts


def test_read_texts(tmp_path):
    plain = write(tmp_path, "corpus_1w.txt", "\ufeff我还有几天过生日\r\n\n  不就是这么回事吗？ \n")
    assert read_texts(plain) == ["我还有几天过生日", "不就是这么回事吗？"]

    fewclue = write(tmp_path, "unlabeled.json", jsonl(
        {"sentence": "老公病重", "keywords": "", "id": 0}, {"text": "好评", "synonyms": []}, {"sentence": " "},
    ))
    texts = read_texts(fewclue, streaming=True)
    assert not isinstance(texts, list)
    assert list(texts) == ["老公病重", "好评"]

    keys = write(tmp_path, "keys.jsonl", jsonl({"sentence": "甲"}, {"content": "乙"}))
    with raises_at(keys, 2, r"expected the key sentence or text, got \['content'\]"):
        read_texts(keys)
    number = write(tmp_path, "number.jsonl", jsonl({"text": 3}))
    with raises_at(number, 1, "expected a string under 'text', got 3"):
        read_texts(number)


# ------------------------------------------------------------------ the real files


# Records and positives per file, as DATASETS.md counts them (positive: label 1,
# entailment, or an STS score above 2.5; ChineseSTS adds its 21 scores of 3.0,
# which DATASETS.md does not list). OCNLI's rows labelled "-" are left out, and
# SimBERT's sample has 14 records on 18 lines (4 are wrapped).
SHARED_COUNTS = {
    "senteval_cn/STS-B/STS-B.test.data": (1361, 666),
    "CSTS/Chinese-MNLI/dev.txt": (12241, 4277),
    "OCNLI/dev.json": (3000 - 50, 947),
    "SimCLUE/train_pair_1w.json": (10000, 3999),
    "SimCLUE/train_rank_1w.json": (10000, 0),
    "ChineseSTS/simtrain_to05sts.txt": (12747, 2526 + 90 + 21),
    "Chinese-Idiom-Paraphrasing/in_domain/test.in.csv": (4999, 0),
    "simbert-sample/data_sample.json": (14, 0),
}


def is_positive(record, name):
    if not isinstance(record, Pair) or record.label is None:
        return False
    if isinstance(record.label, str):
        return record.label == "entailment"
    return record.label > (2.5 if "STS" in name else 0.5)


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is not here")
def test_shared_data_files_read_completely():
    for name, (count, positives) in SHARED_COUNTS.items():
        records = read_pairs(SHARED_DATA / name)
        assert (len(records), sum(is_positive(record, name) for record in records)) == (count, positives), name
    assert all(isinstance(group, Group) and len(group.texts) >= 2
               for group in read_pairs(SHARED_DATA / "simbert-sample/data_sample.json"))
