"""Which points of a beam are kept: fill values and the quality summary. Pure numpy."""
import numpy as np

from readatl06.atl06.schema import H_LI_LIMIT


def fill_mask(h, fill_value):
    """True where ``h`` holds a real value (not the fill value, not NaN)."""
    h = np.asarray(h)
    ok = ~np.isnan(h) if h.dtype.kind == "f" else np.ones(h.shape, bool)
    if fill_value is not None:
        ok &= h != np.asarray(fill_value, dtype=h.dtype)
    return ok


def quality_mask(h, quality_summary, mode):
    """``summary``: atl06_quality_summary == 0 and |h_li| < 1e4 m; ``none``: everything."""
    if mode == "none":
        return np.ones(np.shape(h), bool)
    if mode != "summary":
        raise ValueError(f"quality mode {mode!r}: expected 'summary' or 'none'")
    return (np.asarray(quality_summary) == 0) & (np.abs(np.asarray(h, dtype=np.float64)) < H_LI_LIMIT)
