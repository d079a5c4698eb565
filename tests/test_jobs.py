"""jobs/reduce.slurm and jobs/reduce.pbs really run (issue 12.1, docs/jobs.md).

A single-node SLURM cluster is started on localhost for this module (tests/slurm_cluster.py:
slurmctld and slurmd as child processes, auth/none, free ports, stopped by their pids at the end).
Each script is submitted as a user would — reduce.slurm with ``sbatch --export=ALL,...``,
reduce.pbs with ``qsub -V -v ...`` (slurm-wlm-torque's PBS front end) and with ``sbatch`` — and
polled with ``scontrol`` until it reaches a final state. Its per-beam files and merged file must
equal a direct ``readatl06 reduce`` of the same real granules. Each is resubmitted with the same
OUTDIR, chained after the first (``--dependency=afterok`` / ``-W depend=afterok``, how a user
chains a job killed by its time limit): the second job must finish with every granule skipped by
--resume. The node declares 8 CPUs, so the 2-rank jobs of this module run side by side.
"""
import json
import os
import re
import shutil
import sys
import tempfile

import h5py
import numpy as np
import pytest

import slurm_cluster
from conftest import DATA, ROOT, run_cli

JOBS = ROOT / "jobs"
GRANULES = ["ATL06_20230816161508_08782002_006_02.h5", "processed_ATL06_20181115223845_07380102_001_01.h5",
            "processed_ATL06_20181214211434_11800102_001_01.h5"]
MANIFEST = "readatl06-manifest.jsonl"
VENV = sys.prefix          # the virtual environment running the tests is the project's
RANKS = 2


def _export(variables):
    return "--export=ALL," + ",".join(f"{k}={v}" for k, v in variables.items())


# how -> (script, submitting command). The job size on the command line overrides the script's
# directives, as it does for a user; ``after``: the job id to wait for (afterok) or None.
SUBMIT = {
    "slurm-sbatch": ("reduce.slurm", lambda variables, out, after: [
        "sbatch", "--parsable", f"--ntasks-per-node={RANKS}", f"--output={out}", _export(variables),
        *([f"--dependency=afterok:{after}"] if after else [])]),
    "pbs-qsub": ("reduce.pbs", lambda variables, out, after: [
        "qsub", "-V", "-l", f"select=1:ncpus={RANKS}:mpiprocs={RANKS}", "-j", "oe", "-o", str(out),
        "-v", ",".join(f"{k}={v}" for k, v in variables.items()),
        *(["-W", f"depend=afterok:{after}"] if after else [])]),
    "pbs-sbatch": ("reduce.pbs", lambda variables, out, after: [
        "sbatch", "--parsable", f"--ntasks-per-node={RANKS}", f"--mincpus={RANKS}", f"--output={out}",
        _export(variables), *([f"--dependency=afterok:{after}"] if after else [])]),
}


def job_env():
    """What the submitting shell holds (--export=ALL / qsub -V pass it on): Open MPI's settings for
    root and oversubscribed cores, as scripts/mpienv.sh and conftest.run_cli set them; nothing of an
    enclosing MPI job (the test process may itself run under mpirun)."""
    env = dict(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_btl_vader_single_copy_mechanism="none",
               PYTHONWARNINGS="error")
    drop = [v for v in os.environ if v.startswith(("OMPI_COMM_WORLD", "OMPI_MCA_orte", "OMPI_MCA_ess",
                                                   "OMPI_MCA_pmix", "PMIX_", "PMI_"))]
    return env, drop


class Job:
    def __init__(self, cluster, how, cwd, name, after=None, **variables):
        script, command = SUBMIT[how]
        self.cluster, self.name, self.out = cluster, name, cwd / f"{name}.out"
        env, drop = job_env()
        self.id = cluster.submit(command(variables, self.out, after) + [str(JOBS / script)], cwd=cwd,
                                 env=env, drop=drop)
        self.info = None

    def wait(self):
        if self.info is None:
            self.info = self.cluster.wait(self.id, timeout=180)
        return self.info

    @property
    def text(self):
        return self.out.read_text() if self.out.exists() else ""

    def assert_completed(self):
        info = self.wait()
        assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", \
            f"{self.name}: {info}\n{self.text}\n{self.cluster.logs()}"


@pytest.fixture(scope="module")
def cluster():
    gone = slurm_cluster.missing()
    if gone:
        pytest.fail(f"SLURM is not installed (missing {' '.join(gone)}): run scripts/setup.sh")
    folder = tempfile.mkdtemp(prefix="readatl06-slurm-")   # short: slurmd's unix sockets live under it
    c = slurm_cluster.SlurmCluster(folder, cpus=4 * RANKS)
    try:
        c.start()
        yield c
    finally:
        c.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The submit folder, with copies of a few real granules under in/."""
    d = tmp_path_factory.mktemp("jobs")
    (d / "in").mkdir()
    for n in GRANULES:
        shutil.copy(DATA / "atl06" / n, d / "in" / n)
    return d


@pytest.fixture(scope="module")
def jobs(cluster, workdir):
    """Every job of the module, submitted at once: for each way of submitting, a first job and its
    resubmission chained after it; and one job with a source that does not exist."""
    out = {}
    for how in SUBMIT:
        variables = dict(SOURCES="in", OUTDIR=f"out-{how}", MERGED=f"merged-{how}/tracks.h5", VENV=VENV)
        first = Job(cluster, how, workdir, f"{how}-1", **variables)
        again = Job(cluster, how, workdir, f"{how}-2", after=first.id, **variables)
        out[how] = (first, again)
    out["bad"] = Job(cluster, "slurm-sbatch", workdir, "bad-source", SOURCES="no-such-folder",
                     OUTDIR="out-bad", MERGED="", VENV=VENV)
    yield out
    done = [j for pair in out.values() for j in (pair if isinstance(pair, tuple) else [pair])
            if j.info is not None]
    print("\njob run times (submitted together; scontrol RunTime): " +
          ", ".join(f"{j.name} {j.info.get('RunTime')}" for j in done))


@pytest.fixture(scope="module")
def direct(workdir, jobs):
    """The same granules reduced directly (serial, no scheduler) while the jobs run."""
    r = run_cli("reduce", workdir / "in", "-o", workdir / "direct", "--merge",
                workdir / "direct-merged.h5", "--no-progress")
    assert r.returncode == 0, r.stderr
    return workdir / "direct", workdir / "direct-merged.h5"


def h5_contents(path):
    """{object path: (dtype, values or None, attributes)} of every group and dataset, root included."""
    out = {}

    def attrs(obj):
        a = {k: np.asarray(obj.attrs[k]).tolist() for k in obj.attrs}
        if "DIMENSION_LIST" in a:       # object references (dimension scales): the names they point to
            a["DIMENSION_LIST"] = [obj.file[r].name for refs in obj.attrs["DIMENSION_LIST"] for r in refs]
        if "REFERENCE_LIST" in a:
            a["REFERENCE_LIST"] = sorted((obj.file[r].name, int(i)) for r, i in obj.attrs["REFERENCE_LIST"])
        return a

    with h5py.File(path, "r") as f:
        out["/"] = (None, None, attrs(f))

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = (obj.dtype.str, obj[()], attrs(obj))
            else:
                out[name] = (None, None, attrs(obj))
        f.visititems(visit)
    return out


def assert_same_h5(a, b):
    ca, cb = h5_contents(a), h5_contents(b)
    assert sorted(ca) == sorted(cb), f"{a} and {b} hold different objects"
    for k in ca:
        (da, va, aa), (db, vb, ab) = ca[k], cb[k]
        assert da == db, f"{a} {k}: dtype {da} != {db}"
        assert aa == ab, f"{a} {k}: attributes differ"
        if va is not None:
            assert va.shape == vb.shape, f"{a} {k}: shape {va.shape} != {vb.shape}"
            assert np.array_equal(va, vb, equal_nan=va.dtype.kind == "f"), f"{a} {k}: values differ"


def per_beam(folder):
    return sorted(p.name for p in folder.glob("*_gt??_[AD].h5"))


def assert_same_as_direct(direct, outdir, merged):
    ref, ref_merged = direct
    names = per_beam(ref)
    assert names, "the direct run wrote no per-beam files"
    assert per_beam(outdir) == names
    for n in names:
        assert_same_h5(outdir / n, ref / n)
    assert_same_h5(merged, ref_merged)


def records(outdir):
    with open(outdir / MANIFEST) as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.mark.parametrize("how", list(SUBMIT))
def test_job_equals_direct_run_and_resubmission_resumes(jobs, direct, workdir, how):
    first, again = jobs[how]
    outdir, merged = workdir / f"out-{how}", workdir / f"merged-{how}" / "tracks.h5"

    first.assert_completed()
    assert first.info["NumTasks"] == str(RANKS), first.info
    assert f": {RANKS} ranks on localhost" in first.text, first.text
    after_first = records(outdir)
    assert sorted(r["granule"] for r in after_first) == sorted(GRANULES)
    assert {r["status"] for r in after_first} == {"done"}

    # the resubmission (as after a wall-time kill): --resume skips every granule, no granule is
    # attempted again, and the merged file is rebuilt from the per-beam files
    again.assert_completed()
    assert f"{len(GRANULES)} granules already done, skipped" in again.text, again.text
    after = records(outdir)
    assert after == after_first, "a granule was attempted again"
    assert len({r["run"] for r in after}) == 1
    assert_same_as_direct(direct, outdir, merged)


def test_job_fails_with_readatl06s_exit_status(jobs):
    """A bad run (a source that does not exist) ends the job FAILED with readatl06's status 2."""
    bad = jobs["bad"]
    info = bad.wait()
    assert info["JobState"] == "FAILED" and info["ExitCode"] == "2:0", f"{info}\n{bad.text}"
    assert "no-such-folder" in bad.text


def test_scripts_mark_site_lines_and_hold_the_contract():
    """docs/jobs.md on the page: directives, # SITE: lines, the overridable variables, the launchers."""
    for script, launcher, directive in (("reduce.slurm", 'srun --mpi="$SRUN_MPI"', "#SBATCH"),
                                        ("reduce.pbs", '"$MPIEXEC" -n "$NP"', "#PBS")):
        text = (JOBS / script).read_text()
        assert text.startswith("#!/bin/bash\n")
        assert "# SITE:" in text
        for var in ("SOURCES", "OUTDIR", "MERGED", "EXTRA", "VENV"):
            assert re.search(rf"^{var}=\${{{var}:?-", text, re.M), f"{script}: {var} is not overridable"
        assert launcher in text
        assert "export HDF5_USE_FILE_LOCKING=" in text
        assert "ARGS+=(--resume)" in text
        assert "OMPI_ALLOW_RUN_AS_ROOT=" not in text           # from the submitting environment only
        assert len(re.findall(rf"^{directive} ", text, re.M)) >= 4, f"{script}: name, size, time, output"
