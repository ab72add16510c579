"""Random sampling draws from the distribution it promises (chi-square goodness of fit).

A one-layer model whose weights are all zero except the MLM output bias predicts that
bias as its logits at every position, whatever the input. With those logits fixed,
`random_sample(..., maxlen=1)` draws N independent single tokens, whose counts must fit
the distribution that temperature, top-k and top-p (bert4keras' rules) make of them:
tokens outside the kept set never appear, and the kept ones follow the renormalised
probabilities. Seeds are fixed, so each check is deterministic; N is large enough
that ignoring the temperature, not renormalising, or keeping one token too many or
too few under top-p gives a statistic far above the critical value.
"""
import numpy as np
import pytest

import kerasformer as kf
from kerasformer.generation import AutoRegressiveDecoder

VOCAB_SIZE = 8
# Token probabilities, in an order that is not sorted so that the ranking matters.
# Sorted: .28 .21 .16 .12 .09 .07 .04 .03, cumulative .28 .49 .65 .77 .86 .93 .97 1.
PROBABILITIES = np.array([0.09, 0.28, 0.03, 0.16, 0.21, 0.04, 0.12, 0.07])
LOGITS = np.log(PROBABILITIES).astype(np.float32)
SAMPLES = 8000
# With maxlen=1 every row holds exactly one token, end token or not: the end token
# (probability .03) is sampled like any other.
END_ID = 2

# The 0.999 quantiles of the chi-square distribution for 1..7 degrees of freedom
# (scipy.stats.chi2.ppf(0.999, df), rounded up in the last digit; see
# test_critical_values_are_the_chi_square_quantiles).
CHI2_999 = {1: 10.828, 2: 13.816, 3: 16.267, 4: 18.468, 5: 20.516, 6: 22.458, 7: 24.322}


def constant_logits_model():
    """A tiny causal LM whose logits are `LOGITS` at every step."""
    transformer = kf.build_transformer_model(
        None, model="bert", application="lm", with_mlm="linear", return_keras_model=False,
        vocab_size=VOCAB_SIZE, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
        intermediate_size=8, hidden_act="gelu", max_position=32,
    )
    model = transformer.build()
    for variable in model.weights:
        variable.assign(np.zeros(variable.shape, variable.dtype))
    model.get_layer("MLM-Bias").beta.assign(LOGITS)
    return transformer


@pytest.fixture(scope="module")
def decoder():
    transformer = constant_logits_model()
    # The claim the test rests on: the output is the bias whatever the input.
    rng = np.random.default_rng(0)
    token_ids = rng.integers(0, VOCAB_SIZE, (3, 11)).astype("int32")
    segment_ids = rng.integers(0, 2, (3, 11)).astype("int32")
    logits = np.asarray(transformer.model.predict([token_ids, segment_ids], verbose=0))
    assert logits.shape == (3, 11, VOCAB_SIZE)
    np.testing.assert_allclose(logits, np.broadcast_to(LOGITS, logits.shape), atol=1e-6)
    return AutoRegressiveDecoder(transformer, end_id=END_ID)


def expected_distribution(temperature=1.0, topk=None, topp=None):
    """What sampling must draw from, computed here in float64: softmax of
    logits / temperature; top-k keeps the k most probable and renormalises; top-p
    then keeps, most probable first, the tokens up to and including the first at
    which the cumulative probability reaches topp, and renormalises."""
    probabilities = np.exp(LOGITS.astype(np.float64) / temperature)
    probabilities /= probabilities.sum()
    order = np.argsort(-probabilities, kind="stable")
    if topk is not None:
        kept = np.zeros_like(probabilities)
        kept[order[:topk]] = probabilities[order[:topk]]
        probabilities = kept / kept.sum()
    if topp is not None:
        ranked = probabilities[order]
        before = np.cumsum(ranked) - ranked  # mass of the more probable tokens
        keep = order[(before < topp) & (ranked > 0)]
        kept = np.zeros_like(probabilities)
        kept[keep] = probabilities[keep]
        probabilities = kept / kept.sum()
    return probabilities


def draw(decoder, seed, **options):
    (samples,) = decoder.random_sample([[1, 2]], n=SAMPLES, maxlen=1, seed=seed, **options)
    assert len(samples) == SAMPLES and all(len(row) == 1 for row in samples)
    tokens = np.array([int(row[0]) for row in samples])
    return np.bincount(tokens, minlength=VOCAB_SIZE)


def chi_square(counts, probabilities):
    """Pearson's statistic over the tokens of non-zero probability, and its degrees
    of freedom."""
    support = probabilities > 0
    expected = counts.sum() * probabilities[support]
    statistic = float((((counts[support] - expected) ** 2) / expected).sum())
    return statistic, int(support.sum()) - 1


CASES = {
    # name: (options, tokens the rule keeps, in order of probability)
    "plain": ({}, [1, 4, 3, 6, 0, 7, 5, 2]),
    "temperature 0.5": ({"temperature": 0.5}, [1, 4, 3, 6, 0, 7, 5, 2]),
    "temperature 2": ({"temperature": 2.0}, [1, 4, 3, 6, 0, 7, 5, 2]),
    "topk 3": ({"topk": 3}, [1, 4, 3]),
    # cumulative .28 .49 .65 .77: the 4th token reaches .7 and is kept
    "topp 0.7": ({"topp": 0.7}, [1, 4, 3, 6]),
    # top 5 renormalised: .326 .244 .186 .140 .105, cumulative .326 .570 .756: 3 kept
    # (top-p on the probabilities before top-k would keep 4)
    "topk 5 then topp 0.7": ({"topk": 5, "topp": 0.7}, [1, 4, 3]),
    # temperature first: .198 .172 .150 .130 ..., cumulative .198 .370 .520 .650: 4 kept
    # (top-p before the temperature would keep 3)
    "temperature 2 then topp 0.6": ({"temperature": 2.0, "topp": 0.6}, [1, 4, 3, 6]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_samples_follow_the_promised_distribution(decoder, case):
    options, kept = CASES[case]
    probabilities = expected_distribution(**options)
    assert np.flatnonzero(probabilities).tolist() == sorted(kept)  # the rule, worked by hand
    counts = draw(decoder, seed=list(CASES).index(case), **options)
    outside = [token for token in range(VOCAB_SIZE) if token not in kept]
    assert counts[outside].sum() == 0, f"sampled tokens outside {kept}: {counts}"
    statistic, df = chi_square(counts, probabilities)
    assert statistic < CHI2_999[df], (
        f"{case}: chi-square {statistic:.1f} >= {CHI2_999[df]} (df={df}); counts {counts}, "
        f"expected {np.round(SAMPLES * probabilities, 1)}"
    )


def test_the_test_tells_the_options_apart(decoder):
    """Each option changes the distribution enough for the statistic to notice: the
    counts of one setting fail against the expectation of another."""
    wrong = [
        ({"temperature": 0.5}, {}),  # temperature ignored
        ({"temperature": 2.0}, {}),
        ({"topp": 0.7}, {"topp": 0.6}),  # the token reaching topp dropped
        ({"topp": 0.6}, {"topp": 0.7}),  # one token past it kept
        ({"topk": 3}, {}),  # top-k ignored
        ({"topk": 5, "topp": 0.7}, {"topp": 0.7}),  # top-p before top-k's renormalising
        ({"temperature": 2.0, "topp": 0.6}, {"topp": 0.6}),  # top-p before the temperature
    ]
    for drawn, claimed in wrong:
        counts = draw(decoder, seed=1, **drawn)
        probabilities = expected_distribution(**claimed)
        outside = counts[probabilities == 0].sum()  # drawn where the claim allows none
        statistic, df = chi_square(counts, probabilities)
        assert outside > SAMPLES // 50 or statistic > 5 * CHI2_999[df], (drawn, claimed)


def test_critical_values_are_the_chi_square_quantiles():
    stats = pytest.importorskip("scipy.stats")
    for df, value in CHI2_999.items():
        assert abs(stats.chi2.ppf(0.999, df) - value) < 2e-3, df
