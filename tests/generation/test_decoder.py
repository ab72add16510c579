"""The decode loop: cache correctness, parity with bert4keras' decoder, sampling."""
import collections
import functools
import json

import keras
import numpy as np
import pytest

import kerasformer as kf
from kerasformer.generation import AutoRegressiveDecoder
from tests.conftest import FIXTURES
from tests.helpers import to_numpy

MODELS = FIXTURES / "models"
SIMILARITY_FIXTURES = ["bert", "bert_factorized", "roformer", "roformer_factorized"]


@functools.lru_cache(maxsize=None)
def load(fixture, application="unilm", **kwargs):
    """A fixture model, built once per arguments and shared (with its compiled
    functions) by every test that only reads it; `build` makes a private one."""
    return build(fixture, application, **kwargs)


def build(fixture, application="unilm", **kwargs):
    family = json.loads((MODELS / fixture / "cases.json").read_text())["model"]
    if family == "roformer":
        kwargs.setdefault("layer_norm_epsilon", 1e-7)  # bert4keras 0.11.5, as the fixtures
    kwargs.setdefault("with_pool", family != "gau_alpha" and "linear")  # GAU-α has none
    return kf.build_transformer_model(
        MODELS / fixture / "bert_config.json", MODELS / fixture / "bert_model.ckpt",
        model=family, application=application, return_keras_model=False, **kwargs,
    )


def mlm_logits(transformer, ids, segments=None):
    """The MLM head's output of a model built by `build`."""
    outputs = transformer.model([ids, np.zeros_like(ids) if segments is None else segments])
    return to_numpy(outputs[1] if isinstance(outputs, (list, tuple)) else outputs)


@pytest.mark.backends
@pytest.mark.parametrize("application", ["unilm", "lm"])
def test_cached_logits_equal_a_full_forward_pass(application):
    """Every step's next-token logits equal those of the uncached model on the
    whole sequence, for prefixes of different lengths padded into one batch."""
    assert_cached_equals_full(load("roformer", application, with_mlm="linear"), application)


@pytest.mark.parametrize("scaling", [{"type": "linear", "factor": 4}, {"type": "ntk", "factor": 4},
                                     {"type": "ntk_mixed", "factor": 12}],
                         ids=lambda scaling: scaling["type"])
def test_cached_decoding_keeps_a_rope_scaling(scaling):
    """A RoPE scaling reaches the cached pass as it does the model's: the same logits
    at every step (and other logits than plain RoPE's)."""
    transformer = build("roformer", "lm", with_mlm="linear", rope_scaling=scaling)
    assert_cached_equals_full(transformer, "lm")
    ids = np.array([[2, 40, 41, 42, 43, 3, 50, 51]])
    plain = load("roformer", "lm", with_mlm="linear").model([ids, np.zeros_like(ids)])[1]
    scaled = transformer.model([ids, np.zeros_like(ids)])[1]
    assert np.abs(to_numpy(plain) - to_numpy(scaled)).max() > 1e-3


@pytest.mark.backends
@pytest.mark.parametrize("fixture, application, scaling", [
    ("roformer", "lm", {"type": "rerope", "window": 2}),
    ("roformer", "unilm", {"type": "leaky_rerope", "window": 2, "factor": 4}),
    ("gau_alpha", "unilm", {"type": "rerope", "window": 3}),
], ids=["rerope-lm", "leaky-unilm", "gau-rerope-unilm"])
def test_cached_rerope_decoding_equals_the_full_pass(fixture, application, scaling):
    """ReRoPE's cache holds unrotated keys and their positions; each step rotates them
    by the clipped distance — the logits of the full pass (bidirectional UniLM
    sources included) at every step, in one compiled loop."""
    transformer = build(fixture, application, with_mlm="linear", rope_scaling=scaling)
    assert len(transformer.init_caches(1, 4)[0]) == 3  # keys, values, key positions
    # a causal LM never scores keys after a query: the mirrored product is skipped
    assert transformer.attention_layers[0].rerope["causal"] == (application == "lm")
    assert_cached_equals_full(transformer, application)
    ids = np.array([[2, 40, 41, 42, 43, 3, 50, 51]])
    plain = mlm_logits(load(fixture, application, with_mlm="linear"), ids)
    assert np.abs(plain - mlm_logits(transformer, ids)).max() > 1e-3
    wide = build(fixture, application, with_mlm="linear",
                 rope_scaling={**scaling, "window": 8})  # no pair is 8 apart: plain RoPE
    np.testing.assert_allclose(mlm_logits(wide, ids), plain, atol=1e-5)
    decoder = AutoRegressiveDecoder(transformer, end_id=3)
    decoder.greedy([[2, 40, 41]], maxlen=5)
    decoder.greedy([[2, 40, 41, 42, 43, 44]], maxlen=5)
    assert len([key for key in transformer.compiled_functions if key[0] == "decode"]) == 1


def test_hybrid_window_attention_decodes_what_its_full_pass_computes():
    """HWFA: window attention in every block but the last; the cache keeps the keys'
    positions for the window, and a window past the sequence is full attention."""
    transformer = build("roformer", "lm", with_mlm="linear", attention_window=2)
    layers = transformer.attention_layers
    assert [layers[i].window for i in sorted(layers)] == [2] * (len(layers) - 1) + [None]
    assert_cached_equals_full(transformer, "lm")
    ids = np.array([[2, 40, 41, 42, 43, 3, 50, 51]])
    plain = mlm_logits(load("roformer", "lm", with_mlm="linear"), ids)
    assert np.abs(plain - mlm_logits(transformer, ids)).max() > 1e-3
    wide = build("roformer", "lm", with_mlm="linear", attention_window=8, full_attention_layers=0)
    np.testing.assert_allclose(mlm_logits(wide, ids), plain, atol=1e-5)
    with pytest.raises(ValueError, match="full_attention_layers must be an integer"):
        build("roformer", "lm", attention_window=2, full_attention_layers=99)


@pytest.mark.parametrize("options", [{"key_norm": "key", "log_scale_length": 4},
                                     {"key_norm": "cosine"},
                                     {"attention_normalization": "softmax_plus"}],
                         ids=["keynorm-logn", "cosa", "softmax_plus"])
def test_cached_decoding_keeps_the_attention_options(options):
    """KeyNorm (keys normalised before they are cached), CosA, log-n and softmax_plus
    read the visible keys of each step as the full pass does."""
    assert_cached_equals_full(build("roformer", "lm", with_mlm="linear", **options), "lm")


def test_grouped_query_attention_decodes_from_a_smaller_cache():
    """A multi-query RoFormer (one key/value head) caches one head per block and
    decodes what its full pass computes."""
    transformer = kf.build_transformer_model(
        MODELS / "roformer" / "bert_config.json", model="roformer", application="lm",
        with_pool="linear", with_mlm="linear", num_key_value_heads=1, return_keras_model=False)
    rng = np.random.default_rng(0)
    for weight in transformer.model.weights:
        weight.assign(rng.normal(0, 0.2, weight.shape).astype("float32"))
    key_cache, _ = transformer.init_caches(2, 8)[0]
    assert key_cache.shape[1] == 1
    assert_cached_equals_full(transformer, "lm")


def test_dynamic_ntk_decodes_without_recompiling():
    """Dynamic NTK's base follows the current length inside the compiled loop: prompts
    of other lengths (within a shape bucket) reuse its one compilation; a sequence
    within the training length is plain RoPE's, a longer one is not."""
    scaling = {"type": "dynamic_ntk", "factor": 2, "original_max_position": 4}
    transformer = build("roformer", "lm", with_mlm="linear", rope_scaling=scaling)
    decoder = AutoRegressiveDecoder(transformer, end_id=3)
    decoder.greedy([[2, 40, 41]], maxlen=6)
    decoder.greedy([[2, 40, 41, 42, 43, 44, 45]], maxlen=6)
    assert len([key for key in transformer.compiled_functions if key[0] == "decode"]) == 1
    ids = np.array([[2, 40, 41, 42, 43, 3, 50, 51]])
    plain = load("roformer", "lm", with_mlm="linear").model([ids, np.zeros_like(ids)])[1]
    scaled = transformer.model([ids, np.zeros_like(ids)])[1]
    assert np.abs(to_numpy(plain) - to_numpy(scaled)).max() > 1e-3
    short = ids[:, :4]  # within the training length: plain RoPE
    np.testing.assert_allclose(
        to_numpy(transformer.model([short, np.zeros_like(short)])[1]),
        to_numpy(load("roformer", "lm", with_mlm="linear").model([short, np.zeros_like(short)])[1]),
        atol=1e-5)


def assert_cached_equals_full(transformer, application):
    decoder = AutoRegressiveDecoder(transformer, end_id=3)
    prefixes = [[2, 40, 41, 42, 43, 3], [2, 77, 3]]
    targets = np.array([[50, 51, 52, 53], [60, 61, 62, 63]], np.int32)
    token_ids, lengths = decoder._pad_prefixes(prefixes, maxlen=4)
    width = token_ids.shape[1]
    logits, caches, key_valid = decoder._encode_prefix(token_ids, lengths, 4, {})
    steps = [to_numpy(logits)]
    for step in range(1, 4):
        logits, key_valid, caches = decoder._decode_step(
            targets, step, lengths, key_valid, caches, width, {}
        )
        steps.append(to_numpy(logits))
    segment = 1 if application == "unilm" else 0
    for row, prefix in enumerate(prefixes):
        ids = np.array([prefix + list(targets[row])])
        segments = np.array([[0] * len(prefix) + [segment] * 4])
        full = mlm_logits(transformer, ids, segments)[0]
        for step in range(4):
            np.testing.assert_allclose(steps[step][row], full[len(prefix) - 1 + step], atol=1e-4)


def grouped_cases(fixture):
    """bert4keras' beam-search results, grouped into batches sharing settings."""
    data = json.loads((MODELS / fixture / "generation.json").read_text(encoding="utf-8"))
    groups = collections.defaultdict(list)
    for case in data["beam_search"]:
        key = (case["beam"], case["end_id"], case["maxlen"], case["minlen"], case["min_ends"])
        groups[key].append(case)
    return groups


# The factorized-embedding fixtures differ from their plain ones only in the embedding
# projection, which the encode parity tests cover on every backend: jax only here.
@pytest.mark.parametrize("fixture", [
    pytest.param(name, marks=[] if "factorized" in name else [pytest.mark.backends])
    for name in SIMILARITY_FIXTURES])
def test_greedy_and_beam_search_match_bert4keras(fixture):
    transformer = load(fixture)
    for (beam, end_id, maxlen, minlen, min_ends), cases in grouped_cases(fixture).items():
        decoder = AutoRegressiveDecoder(transformer, end_id=end_id, min_ends=min_ends)
        prefixes = [case["token_ids"] for case in cases]
        if beam == 1:
            outputs = decoder.greedy(prefixes, maxlen=maxlen, minlen=minlen)
        else:
            outputs = decoder.beam_search(prefixes, beam=beam, maxlen=maxlen, minlen=minlen)
        for case, output in zip(cases, outputs):
            assert output.tolist() == case["output_ids"], (beam, end_id, minlen, min_ends, case["text"])


def test_sampling_with_topk_1_is_greedy():
    decoder = AutoRegressiveDecoder(load("bert"), end_id=3)
    prefixes = [[2, 10, 11, 12, 3], [2, 13, 3]]
    greedy = decoder.greedy(prefixes, maxlen=10)
    samples = decoder.random_sample(prefixes, n=4, maxlen=10, topk=1, seed=7)
    for expected, rows in zip(greedy, samples):
        assert all(row.tolist() == expected.tolist() for row in rows)


def flat_model():
    """A fresh model with BERT's small initial weights: nearly uniform predictions."""
    return kf.build_transformer_model(
        vocab_size=60, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, hidden_act="gelu", application="unilm",
        return_keras_model=False,
    )


def test_samples_differ_and_seeds_reproduce():
    decoder = AutoRegressiveDecoder(flat_model(), end_id=3)
    prefix = [[2, 20, 21, 3]]
    first = decoder.random_sample(prefix, n=8, maxlen=6, seed=1)[0]
    assert len({tuple(row) for row in first}) > 1
    again = decoder.random_sample(prefix, n=8, maxlen=6, seed=1)[0]
    assert [r.tolist() for r in first] == [r.tolist() for r in again]
    other = decoder.random_sample(prefix, n=8, maxlen=6, seed=2)[0]
    assert [r.tolist() for r in first] != [r.tolist() for r in other]
    for options in ({"topk": 3}, {"topp": 0.2}, {"topk": 10, "topp": 0.5, "temperature": 0.7}):
        rows = decoder.random_sample(prefix, n=8, maxlen=6, seed=3, **options)[0]
        for row in rows:  # cut right after the first end token, else all 6 tokens
            assert row.tolist() == expected_cut(row.tolist() + [0] * (6 - len(row)), 3)


def expected_cut(tokens, end_id, min_ends=1, minlen=1):
    """bert4keras' rule: a sequence ends with the end token that makes `min_ends` of
    them, once it holds at least `minlen` tokens; otherwise it runs to maxlen."""
    ends = 0
    for index, token in enumerate(tokens):
        ends += token == end_id
        if token == end_id and ends >= min_ends and index + 1 >= minlen:
            return tokens[: index + 1]
    return tokens


def test_rows_are_cut_right_after_their_end_token():
    """Each returned row is its uncut sample up to the end token that finished it."""
    transformer = flat_model()
    prefix, maxlen = [[2, 20, 21, 3]], 8
    options = {"n": 16, "maxlen": maxlen, "topk": 2, "seed": 5}
    # No row can hold maxlen + 1 end tokens: every sample runs all maxlen steps, with
    # the same draws as below (finishing only stops a row, it changes no earlier token).
    uncut = AutoRegressiveDecoder(transformer, end_id=3, min_ends=maxlen + 1).random_sample(
        prefix, **options
    )[0]
    assert [len(row) for row in uncut] == [maxlen] * 16
    # the token drawn most often before the last step: some rows must stop early
    counts = collections.Counter(int(t) for row in uncut for t in row[:-1])
    end_id = counts.most_common(1)[0][0]
    cut = 0
    for min_ends, minlen in [(1, 1), (2, 1), (1, 4)]:
        decoder = AutoRegressiveDecoder(transformer, end_id=end_id, min_ends=min_ends)
        rows = decoder.random_sample(prefix, minlen=minlen, **options)[0]
        for row, whole in zip(rows, uncut):
            assert row.dtype == np.int32
            expected = expected_cut(whole.tolist(), end_id, min_ends, minlen)
            assert row.tolist() == expected, (min_ends, minlen)
            cut += len(row) < maxlen
    assert cut > 0


def test_topp_and_topk_restrict_the_candidates():
    decoder = AutoRegressiveDecoder(flat_model(), end_id=3)
    prefix = [[2, 20, 21, 3]]
    logits, _, _ = decoder._encode_prefix(*decoder._pad_prefixes(prefix, 1), 1, {})
    order = np.argsort(-to_numpy(logits)[0])
    samples = decoder.random_sample(prefix, n=64, maxlen=1, topk=2, seed=0)[0]
    assert {int(row[0]) for row in samples} <= set(order[:2].tolist())
    samples = decoder.random_sample(prefix, n=64, maxlen=1, topp=1e-6, seed=0)[0]
    assert {int(row[0]) for row in samples} == {int(order[0])}


def test_minlen_and_finished_rows():
    decoder = AutoRegressiveDecoder(load("roformer"), end_id=48)
    greedy = decoder.greedy([[2, 10, 11, 3]], maxlen=12, minlen=1)[0]
    assert greedy[-1] == 48 and len(greedy) < 12
    longer = decoder.greedy([[2, 10, 11, 3]], maxlen=12, minlen=len(greedy) + 1)[0]
    assert len(longer) > len(greedy)


def test_compiled_once_per_shape_bucket():
    if keras.config.backend() == "torch":
        pytest.skip("torch runs eagerly")
    transformer = build("bert")  # its own: the test counts its compilations
    decoder = AutoRegressiveDecoder(transformer, end_id=3)
    traces = []
    original = transformer.call_with_cache

    def counting(*args, **kwargs):
        traces.append(1)
        return original(*args, **kwargs)

    transformer.call_with_cache = counting
    decoder.random_sample([[2, 5, 6, 3]], n=2, maxlen=5, topk=3, seed=0)
    first = len(traces)
    decoder.random_sample([[2, 7, 8, 9, 3]], n=2, maxlen=5, topk=3, seed=1)  # same bucket
    assert len(traces) == first
    AutoRegressiveDecoder(transformer, end_id=9).random_sample([[2, 5, 3]], n=2, maxlen=5, topk=3)
    assert len(traces) == first  # a new end token is an input, not a recompilation
    assert len(transformer.compiled_functions) == 1


def test_bad_arguments_are_named():
    decoder = AutoRegressiveDecoder(load("bert"), end_id=3)
    with pytest.raises(ValueError, match="prefix 1 is empty"):
        decoder.greedy([[2, 3], []], maxlen=4)
    with pytest.raises(ValueError, match="outside"):
        decoder.greedy([[2, 100000]], maxlen=4)
    with pytest.raises(ValueError, match="topp"):
        decoder.random_sample([[2, 3]], n=1, maxlen=4, topp=1.5)
    with pytest.raises(ValueError, match="maxlen"):
        decoder.greedy([[2, 3]], maxlen=0)
    with pytest.raises(ValueError, match="exceeds the 64 positions"):
        decoder.greedy([[2] + [5] * 60], maxlen=10)
    with pytest.raises(ValueError, match="application"):
        AutoRegressiveDecoder(load("bert", "encoder"), end_id=3)


@pytest.mark.backends
def test_nucleus_threshold_matches_the_sorted_rule():
    from kerasformer.generation.sampling import nucleus_threshold as _nucleus_threshold

    rng = np.random.default_rng(0)
    scales = np.array([[0.1], [1], [3], [5], [8], [20]], "float32")
    logits = rng.normal(size=(6, 300)).astype("float32") * scales
    probabilities = to_numpy(keras.ops.softmax(logits, axis=-1))
    for topp in (1e-6, 0.3, 0.9, 0.999, 1.0):
        threshold = to_numpy(_nucleus_threshold(probabilities, np.float32(topp)))
        for row, t in zip(probabilities, threshold):
            ordered = np.sort(row.astype(np.float64))[::-1]
            before = np.cumsum(ordered) - ordered
            # bert4keras: up to the first token reaching topp; float32 sums may
            # disagree only for tokens whose preceding mass is within rounding of it
            fewest, most = (before < topp - 1e-5).sum(), (before < topp + 1e-5).sum()
            assert fewest <= (row >= t).sum() <= most


def test_hierarchical_positions_decode_past_the_learned_table():
    """The decoder asks the model how far it reaches: 64 learned positions extend
    hierarchically to 64², so 61 + 10 tokens decode, as the full pass would."""
    transformer = load("bert", with_mlm="linear", hierarchical_position=True)
    assert transformer.max_positions() == 64**2
    decoder = AutoRegressiveDecoder(transformer, end_id=3)
    prefix = [2] + [5 + i % 50 for i in range(60)]
    (ids,) = decoder.greedy([prefix], maxlen=10, minlen=10)
    # one full forward pass over prefix + generated ids: each generated id is the
    # argmax after the tokens before it (positions 61..70, past the 64-row table)
    tokens = np.array([prefix + ids.tolist()])
    segments = np.array([[0] * len(prefix) + [1] * len(ids)])
    probabilities = to_numpy(transformer.model([tokens, segments]))[1][0]
    np.testing.assert_array_equal(ids, probabilities[len(prefix) - 1:-1].argmax(-1))


def test_restrictions_compose_and_keep_one_compilation_per_program():
    from kerasformer.generation import sampling

    transformer = build("roformer", with_mlm="linear")  # its own: compilations are counted
    decoder = AutoRegressiveDecoder(transformer, end_id=3)
    greedy = decoder.greedy([[2, 40, 41, 3]], maxlen=6)[0]
    # top_k(1) leaves one candidate whatever the temperature: greedy again
    for t in (0.5, 3.0):
        (samples,) = decoder.random_sample(
            [[2, 40, 41, 3]], n=2, maxlen=6, seed=1,
            restrictions=[sampling.temperature(t), sampling.top_k(1)],
        )
        for sample in samples:
            np.testing.assert_array_equal(sample, greedy)
    programs = [key for key in transformer.compiled_functions if key[1] == "sample"]
    assert len(programs) == 1  # the temperature is an input, not part of the program
    with pytest.raises(ValueError, match="not both"):
        decoder.random_sample([[2, 3]], n=1, maxlen=2, topk=2, restrictions=[sampling.top_k(1)])
