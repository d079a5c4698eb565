"""The one reader of an OUTDIR: its per-beam files (``<granule stem>_<beam>_<A|D>.h5``) listed,
grouped by granule and by parameter set."""
import glob
import os

import h5py

BEAM_FILE_GLOB = "_gt[123][lr]_[AD].h5"        # appended to a granule stem: that granule's per-beam files


def granule_files(outdir, stem):
    """The per-beam files of one granule that are in OUTDIR now (names only, sorted)."""
    pattern = os.path.join(glob.escape(outdir), glob.escape(stem) + BEAM_FILE_GLOB)
    return sorted(os.path.basename(p) for p in glob.glob(pattern))


def plan_outdir(outdir, output, overwrite, params):
    """Rank 0, under the folder's lock: (files, granules, sizes) to merge; UsageError when the target
    is not allowed or the folder mixes parameter sets and ``params`` does not say which."""
    import glob

    from readatl06.outputs import manifest
    from readatl06.outputs import folder as outdir_mod
    from readatl06.errors import UsageError
    from readatl06.atl06.names import parse_name
    files = sorted(glob.glob(os.path.join(glob.escape(outdir), "*" + BEAM_FILE_GLOB)))
    outdir_mod.check_file_target("-o", output, files, overwrite)
    outdir_mod.remove_leftovers(os.path.dirname(os.path.abspath(output)), [os.path.basename(output)])
    by_key, granule_of = {}, {}
    for p in files:
        with h5py.File(p, "r") as f:
            g, par = f.attrs["granule"], f.attrs.get("parameters", "{}")
        g, par = (v.decode() if isinstance(v, bytes) else str(v) for v in (g, par))
        granule_of[p] = g
        by_key.setdefault(manifest.params_key(par), []).append(p)
    if params is None and len(by_key) > 1:
        sets = "; ".join(f"{k}: {len(v)} files" for k, v in sorted(by_key.items()))
        raise UsageError(f"{outdir} mixes per-beam files of {len(by_key)} parameter sets ({sets}); "
                         "choose one with --parameters KEY")
    if params is not None and params not in by_key:
        raise UsageError(f"--parameters {params}: no per-beam file in {outdir} has it "
                         f"(found: {', '.join(sorted(by_key)) or 'none'})")
    key = params if params is not None else next(iter(by_key), None)
    files = by_key.get(key, [])
    names = {granule_of[p] for p in files}
    for r in manifest.latest(manifest.read_records(outdir)).values():   # reduced granules without points
        if r.get("status") == "empty" and r.get("params") == key:
            names.add(r["granule"])
    return files, sorted(parse_name(n) for n in names), [os.path.getsize(p) for p in files]
