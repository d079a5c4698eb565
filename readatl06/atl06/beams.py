"""Beam facts: strong/weak and spot number from ``orbit_info/sc_orient`` (one table, no nested ifs)."""

from readatl06.hdf5.attrs import text

# sc_orient: 0 = backward, 1 = forward (2 = transition: strength unknown). ATL06 data dictionary.
SPOTS = {
    1: {"gt1l": 6, "gt1r": 5, "gt2l": 4, "gt2r": 3, "gt3l": 2, "gt3r": 1},
    0: {"gt1l": 1, "gt1r": 2, "gt2l": 3, "gt2r": 4, "gt3l": 5, "gt3r": 6},
}
STRONG_SIDE = {1: "r", 0: "l"}   # forward: right beams strong; backward: left beams strong
BEAM_INDEX = {"gt1l": 1, "gt1r": 2, "gt2l": 3, "gt2r": 4, "gt3l": 5, "gt3r": 6}


def beam_info(beam, sc_orient=None, group_attrs=None):
    """``(spot, strength)`` for a beam: from sc_orient, else from the beam group's own attributes.

    NSIDC subsets drop ``orbit_info`` but keep the group attributes ``atlas_spot_number`` and
    ``atlas_beam_type``; with neither, spot is 0 and strength ``"unknown"``.
    """
    if sc_orient in SPOTS:
        strength = "strong" if beam.endswith(STRONG_SIDE[sc_orient]) else "weak"
        return SPOTS[sc_orient][beam], strength
    attrs = group_attrs or {}
    spot = text(attrs.get("atlas_spot_number"))
    strength = text(attrs.get("atlas_beam_type"))
    spot = int(spot) if spot and spot.isdigit() else 0
    strength = strength if strength in ("strong", "weak") else "unknown"
    return spot, strength
