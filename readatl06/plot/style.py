"""Shared pieces of the figures: styles, the matplotlib figure (object-oriented API, Agg) and saving.

matplotlib is imported inside the drawing functions only (no pyplot, no global backend switch, no
display needed on a compute node)."""
import os

KINDS = ("map", "profile", "summary", "xover")
MAX_POINTS = 250_000            # points drawn per map; more are thinned evenly along the tracks
MARKERS = {"ascending": "^", "descending": "v"}
STRENGTH_STYLE = {"strong": {"linewidth": 1.6, "linestyle": "-"},
                  "weak": {"linewidth": 0.8, "linestyle": (0, (4, 2))},
                  "unknown": {"linewidth": 1.1, "linestyle": "-."}}
STATUS_COLOURS = {"done": "tab:blue", "empty": "0.6", "failed": "tab:red"}
REMOVED_COLOURS = {"fill": "0.55", "quality": "tab:orange", "subset": "tab:purple", "invalid": "tab:red"}
OUTLINE_COLOUR = "red"
SEGMENT_LENGTH_KM = 0.02        # ATL06 segments are 40 m long, centred every 20 m (x_atc ~ 20 m * segment_id)


def new_figure(**kw):
    """A matplotlib Figure (constrained layout) without pyplot."""
    from matplotlib.figure import Figure
    return Figure(layout="constrained", **kw)


def save_png(fig, out_png, dpi):
    """Write ``fig`` to ``out_png``, making its folder."""
    d = os.path.dirname(os.path.abspath(out_png))
    os.makedirs(d, exist_ok=True)
    fig.savefig(out_png, dpi=dpi)
