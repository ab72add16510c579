"""The one progress facility: huggingface_hub's tqdm, for downloads and everything else.

It follows the same switches as the downloads' bars (`HF_HUB_DISABLE_PROGRESS_BARS`,
`huggingface_hub.utils.disable_progress_bars()`), and draws nothing when its output is
not a terminal, so logs and pipes stay clean.
"""


def progress(iterable, description, total=None, unit="it", minimum=1):
    """`iterable`, with a progress bar when there are at least `minimum` items.

    Args:
        iterable: what to iterate over.
        description: the bar's label.
        total: number of items (default `len(iterable)` when it has one).
        unit: what an item is called.
        minimum: fewer items than this get no bar.
    """
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if total is not None and total < minimum:
        return iterable
    try:
        from huggingface_hub.utils import tqdm
    except ImportError:
        return iterable
    # disable=None: tqdm switches itself off when stderr is not a terminal.
    return tqdm(iterable, desc=description, total=total, unit=unit, disable=None, leave=False)
