"""readatl06's own files: a per-beam track file (write, open), the one reader of an OUTDIR, the
folder lock and target checks, the run manifest, GeoParquet."""
