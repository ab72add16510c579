"""Argument checks shared across the package, so that bad input gets one clear message."""
import numbers


def check_integer(value, name, minimum=1, optional=False):
    """`value` as an int of at least `minimum` (None too when `optional`), or a
    ValueError naming `name`: "must be a positive integer, got ..." (or "an integer
    >= minimum"). Booleans are refused; numpy integers accepted."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        if optional:
            wanted += " or None"
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return int(value)
