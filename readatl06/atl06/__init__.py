"""ATL06 facts and numpy-only science: file names and selection, the variable table, beams, GPS/UTC
time, masks, track direction and ids, subsets and their lon/lat envelopes. No files, no MPI."""
