"""One ATL06 granule file to beam arrays: the open granule and its read plans, the checks of what
it holds, the latitude slice search."""
