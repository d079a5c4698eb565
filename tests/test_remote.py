"""Remote SOURCEs against real servers started here on 127.0.0.1 (issue 13): OpenSSH's sshd (SFTP),
moto's S3 server (IAM authentication enforced, and an open one for anonymous access), and an HTTP
server that demands a bearer token or basic auth, redirects and serves Range requests.

Remote selection equals local selection; fetched files are byte-identical; reduce from S3, HTTPS and
SFTP equals reduce from the local files; errors are one line with exit status 1 or 2."""
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess

import h5py
import numpy as np
import pytest

import servers
from conftest import REAL, run_cli
from readatl06.cli import main
from readatl06.sources import base, remote

TOKEN = "tok-5f3a"
BASIC = "alice:wonderland"
BUCKET = "atl06"


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    d = tmp_path_factory.mktemp("sshd")
    pub = servers.keygen(str(d / "id_ed25519"))
    server = servers.start_sshd(str(d), [pub])
    (d / "known_hosts").write_text(server.known_hosts_line())
    server.key, server.known, server.dir = str(d / "id_ed25519"), str(d / "known_hosts"), d
    server.url = f"ssh://root@127.0.0.1:{server.port}"
    yield server
    remote.close_all()
    server.stop()


def _fill_bucket(server, files, public=False):
    import boto3
    s3 = boto3.client("s3", endpoint_url=server.url, region_name="us-east-1",
                      aws_access_key_id=server.key_id or "open", aws_secret_access_key=server.secret or "open")
    s3.create_bucket(Bucket=BUCKET, **({"ACL": "public-read"} if public else {}))
    for f in files:
        s3.upload_file(str(f), BUCKET, f"data/{f.name}", ExtraArgs={"ACL": "public-read"} if public else None)


@pytest.fixture(scope="module")
def moto(tmp_path_factory, real_dir):
    """IAM authentication enforced: only the created user's key pair is accepted."""
    server = servers.start_moto(str(tmp_path_factory.mktemp("moto")))
    _fill_bucket(server, sorted(real_dir.glob("*.h5")))
    yield server
    remote.close_all()
    server.stop()


@pytest.fixture(scope="module")
def http(tmp_path_factory, real_dir):
    run = str(tmp_path_factory.mktemp("http"))
    main_server = servers.start_http(run, real_dir, token=TOKEN, basic=BASIC)
    plain = servers.start_http(run, real_dir, token=TOKEN, no_range=True)
    flaky = servers.start_http(run, real_dir, token=TOKEN, flaky=2)
    main_server.no_range, main_server.flaky = plain, flaky
    yield main_server
    remote.close_all()
    for s in (main_server, plain, flaky):
        s.stop()


@pytest.fixture
def env(tmp_path, monkeypatch, moto):
    """A HOME of our own (no ~/.netrc, no ~/.ssh), the test user's AWS keys, fast retries."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("EARTHDATA_TOKEN", "NETRC", "READATL06_SSH_PASSWORD", "SSH_AUTH_SOCK", "AWS_PROFILE",
                "AWS_SESSION_TOKEN", "READATL06_REMOTE_BLOCK", "READATL06_CRASH_AT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto.key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto.secret)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("READATL06_RETRY_DELAY", "0.02")
    yield home
    remote.close_all()


def cli(capsys, *args):
    """``main(args)`` in this process: (exit status, stdout lines, stderr lines)."""
    capsys.readouterr()
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out.splitlines(), err.splitlines()


def names(lines):
    return [remote.url_name(p) for p in lines]


def ssh_args(sshd):
    return ["--ssh-key", sshd.key, "--known-hosts", sshd.known]


def s3_args(moto):
    return ["--s3-endpoint", moto.url]


def url_list(tmp_path, base, files, extra=()):
    path = tmp_path / "urls.txt"
    path.write_text("# granule URLs\n" + "".join(f"{base}/{f.name}\n" for f in files) + "".join(e + "\n" for e in extra))
    return f"@{path}"


SELECTIONS = [[], ["--segments", "2"], ["--releases", "003", "006"], ["--start", "2018-10-15", "--end", "2018-12-31"]]


def assert_one_line_error(rc, err, *words):
    assert rc in (1, 2), err
    text = "\n".join(err)
    assert "Traceback" not in text
    errors = [ln for ln in err if "error:" in ln or "FAILED" in ln]
    assert len(errors) == 1, err
    for w in words:
        assert w in errors[0], errors[0]


def same_bytes(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return hashlib.md5(fa.read()).digest() == hashlib.md5(fb.read()).digest()


def assert_same_outputs(a, b):
    """Per-beam files of two OUTDIRs: same names, datasets, values, attributes."""
    fa, fb = sorted(p.name for p in a.glob("*_gt*.h5")), sorted(p.name for p in b.glob("*_gt*.h5"))
    assert fa and fa == fb
    for name in fa:
        with h5py.File(a / name, "r") as x, h5py.File(b / name, "r") as y:
            assert sorted(x) == sorted(y), name
            assert {k: str(v) for k, v in x.attrs.items()} == {k: str(v) for k, v in y.attrs.items()}, name
            for k in x:
                assert x[k].dtype == y[k].dtype, (name, k)
                np.testing.assert_array_equal(x[k][()], y[k][()], err_msg=f"{name} {k}")


# --------------------------------------------------------------------------------------- listing
@pytest.mark.parametrize("selection", SELECTIONS)
def test_remote_selection_equals_local(capsys, env, real_dir, sshd, moto, http, tmp_path, selection):
    rc, local, _ = cli(capsys, "list", "--all-releases", real_dir, *selection)
    assert rc == 0 and local
    want = names(local)
    rc, out, err = cli(capsys, "list", "--all-releases", f"{sshd.url}{real_dir}", *ssh_args(sshd), *selection)
    assert rc == 0, err
    assert names(out) == want and all(p.startswith(sshd.url) for p in out)
    rc, out, err = cli(capsys, "list", "--all-releases", f"s3://{BUCKET}/data", *s3_args(moto), *selection)
    assert rc == 0, err
    assert names(out) == want and all(p.startswith(f"s3://{BUCKET}/data/") for p in out)
    rc, out, err = cli(capsys, "list", "--all-releases", url_list(tmp_path, f"{http.url}/data", REAL), *selection)
    assert rc == 0, err
    assert names(out) == want and all(p.startswith(http.url) for p in out)   # nothing contacted: names only


def test_remote_globs_and_list_files(capsys, env, real_dir, sshd, moto, tmp_path):
    rc, local, _ = cli(capsys, "list", "--all-releases", str(real_dir / "processed_*.h5"))
    want = names(local)
    assert len(want) == 4
    rc, out, err = cli(capsys, "list", "--all-releases", f"{sshd.url}{real_dir}/processed_*.h5", *ssh_args(sshd))
    assert rc == 0 and names(out) == want, err
    tree = tmp_path / "tree"                                 # ** at any depth, ? as a glob character
    for i, p in enumerate(REAL):
        (tree / "a" / "b"[:i % 2]).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, tree / "a" / "b"[:i % 2] / p.name)
    pattern = "**/processed_ATL06_2018?1*.h5"
    rc, local, _ = cli(capsys, "list", "--all-releases", f"{tree}/{pattern}")
    assert rc == 0 and 0 < len(local) < 4
    rc, out, err = cli(capsys, "list", "--all-releases", f"{sshd.url}{tree}/{pattern}", *ssh_args(sshd))
    assert rc == 0 and names(out) == names(local), err
    rc, out, err = cli(capsys, "list", "--all-releases", f"s3://{BUCKET}/data/processed_*", *s3_args(moto))
    assert rc == 0 and names(out) == want, err
    listing = tmp_path / "mixed.txt"                         # a list file mixing both remote forms
    listing.write_text(f"{sshd.url}{real_dir}/processed_*.h5\ns3://{BUCKET}/data/ATL06_2023*\n")
    rc, out, err = cli(capsys, "list", "--all-releases", f"@{listing}", *ssh_args(sshd), *s3_args(moto))
    assert rc == 0 and sorted(names(out)) == sorted(want + ["ATL06_20230816161508_08782002_006_02.h5"]), err


# ------------------------------------------------------------------------------------------ ssh
def test_ssh_host_keys_never_accepted_silently(capsys, env, real_dir, sshd, tmp_path):
    source = f"{sshd.url}{real_dir}"
    unknown = tmp_path / "known_hosts"
    rc, _, err = cli(capsys, "list", "--all-releases", source, "--ssh-key", sshd.key, "--known-hosts", unknown)
    assert_one_line_error(rc, err, "is not in", "--ssh-accept-new", "SHA256:")
    assert not unknown.exists()
    rc, out, err = cli(capsys, "list", "--all-releases", source, "--ssh-key", sshd.key, "--known-hosts", unknown, "--ssh-accept-new")
    assert rc == 0 and len(out) == len(REAL), err
    assert unknown.read_text() == sshd.known_hosts_line()    # the first-seen key, recorded
    assert any("new host key" in ln for ln in err)
    rc, out, err = cli(capsys, "list", "--all-releases", source, "--ssh-key", sshd.key, "--known-hosts", unknown)
    assert rc == 0 and len(out) == len(REAL), err
    wrong = tmp_path / "wrong_hosts"                         # another key recorded for this host
    other = servers.keygen(str(tmp_path / "other_host_key")).split()
    wrong.write_text(f"[127.0.0.1]:{sshd.port} {other[0]} {other[1]}\n")
    for extra in ([], ["--ssh-accept-new"]):                 # a changed key is refused even with accept-new
        rc, _, err = cli(capsys, "list", "--all-releases", source, "--ssh-key", sshd.key, "--known-hosts", wrong, *extra)
        assert_one_line_error(rc, err, "does not match", "ssh-keygen -R")


def test_ssh_agent_key_and_password_rules(capsys, env, real_dir, sshd, tmp_path, monkeypatch):
    source = f"{sshd.url}{real_dir}"
    sock = str(tmp_path / "agent.sock")
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            subprocess.run(["sleep", "0.02"])
        subprocess.run(["ssh-add", sshd.key], env=dict(os.environ, SSH_AUTH_SOCK=sock), check=True,
                       capture_output=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", sock)
        rc, out, err = cli(capsys, "list", "--all-releases", source, "--known-hosts", sshd.known)   # the agent's key
        assert rc == 0 and len(out) == len(REAL), err
    finally:
        agent.terminate()
        agent.wait()
    monkeypatch.delenv("SSH_AUTH_SOCK")
    stranger = str(tmp_path / "stranger")
    servers.keygen(stranger)
    rc, _, err = cli(capsys, "list", "--all-releases", source, "--ssh-key", stranger, "--known-hosts", sshd.known)
    assert_one_line_error(rc, err, "authentication failed", "root@127.0.0.1")
    monkeypatch.setenv("READATL06_SSH_PASSWORD", "not-the-password")   # tried, refused, never prompted
    rc, _, err = cli(capsys, "list", "--all-releases", source, "--ssh-key", stranger, "--known-hosts", sshd.known)
    assert_one_line_error(rc, err, "authentication failed", "READATL06_SSH_PASSWORD")
    with pytest.raises(SystemExit):                          # no password option on the command line
        main(["list", "--all-releases", source, "--ssh-password", "x"])
    rc, _, err = cli(capsys, "list", "--all-releases", f"ssh://root@127.0.0.1:{servers.closed_port()}{real_dir}", *ssh_args(sshd))
    assert_one_line_error(rc, err, "cannot connect", "Connection refused")
    rc, _, err = cli(capsys, "list", "--all-releases", f"{sshd.url}{real_dir}/missing", *ssh_args(sshd))
    assert_one_line_error(rc, err, "no such file or folder")


# ------------------------------------------------------------------------------------------- s3
def test_s3_errors_are_one_line(capsys, env, moto, tmp_path, monkeypatch):
    rc, _, err = cli(capsys, "list", "--all-releases", "s3://no-such-bucket/data", *s3_args(moto))
    assert_one_line_error(rc, err, "no such bucket")
    rc, _, err = cli(capsys, "list", "--all-releases", f"s3://{BUCKET}/nothing-here", *s3_args(moto))
    assert_one_line_error(rc, err, "no objects under this prefix")
    rc, _, err = cli(capsys, "reduce", "--all-releases", "s3://no-such-bucket/data", "-o", tmp_path / "o", *s3_args(moto))
    assert_one_line_error(rc, err, "no such bucket")
    rc, _, err = cli(capsys, "list", "--all-releases", f"s3://{BUCKET}/data", "--s3-endpoint", f"http://127.0.0.1:{servers.closed_port()}")
    assert_one_line_error(rc, err, "cannot connect")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    rc, _, err = cli(capsys, "list", "--all-releases", f"s3://{BUCKET}/data", *s3_args(moto))
    assert_one_line_error(rc, err, "access denied")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    rc, _, err = cli(capsys, "fetch", "--all-releases", f"s3://{BUCKET}/data", "-o", tmp_path / "f", *s3_args(moto))
    assert_one_line_error(rc, err, "no AWS credentials", "--s3-anon")


def test_s3_anonymous_public_bucket(capsys, env, tmp_path_factory, real_dir, tmp_path):
    """An open store (moto without IAM): unsigned requests list and read a public-read bucket."""
    server = servers.start_moto_open(str(tmp_path_factory.mktemp("moto_open")))
    try:
        _fill_bucket(server, sorted(real_dir.glob("processed_*.h5")), public=True)
        rc, out, err = cli(capsys, "fetch", "--all-releases", f"s3://{BUCKET}/data", "-o", tmp_path / "f", "--s3-anon",
                           "--s3-endpoint", server.url)
        assert rc == 0, err
        for p in sorted(real_dir.glob("processed_*.h5")):
            assert same_bytes(p, tmp_path / "f" / p.name)
    finally:
        remote.close_all()
        server.stop()


# ---------------------------------------------------------------------------------------- fetch
def _fetch_cases(sshd, moto, http, real_dir, tmp_path, home):
    yield "local", [str(real_dir)], {}
    yield "ssh", [f"{sshd.url}{real_dir}", *ssh_args(sshd)], {}
    yield "s3", [f"s3://{BUCKET}/data", *s3_args(moto)], {}
    yield "https-token", [url_list(tmp_path, f"{http.url}/data", REAL)], {"EARTHDATA_TOKEN": TOKEN}
    (home / ".netrc").write_text(f"machine 127.0.0.1 login {BASIC.split(':')[0]} password {BASIC.split(':')[1]}\n")
    (home / ".netrc").chmod(0o600)
    yield "https-netrc-redirect", [url_list(tmp_path, f"{http.url}/redirect", REAL)], {}
    yield "https-signed-url", [url_list(tmp_path, f"{http.url}/protected", REAL)], {}


def test_fetch_is_byte_identical_and_skips_complete(capsys, env, real_dir, sshd, moto, http, tmp_path, monkeypatch):
    for case, args, extra_env in _fetch_cases(sshd, moto, http, real_dir, tmp_path, env):
        for k, v in extra_env.items():
            monkeypatch.setenv(k, v)
        out = tmp_path / case
        rc, lines, err = cli(capsys, "fetch", "--all-releases", *args, "-o", out, "--releases", "001", "003")
        assert rc == 0, (case, err)
        want = sorted(p.name for p in real_dir.glob("*.h5") if "_001_" in p.name or "_003_" in p.name)
        assert sorted(os.listdir(out)) == want, case            # no .part left, nothing else
        for name in want:
            assert same_bytes(real_dir / name, out / name), (case, name)
        assert f"{len(want)} fetched" in lines[-1], lines
        rc, lines, err = cli(capsys, "fetch", "--all-releases", *args, "-o", out, "--releases", "001", "003")
        assert rc == 0 and f"0 fetched, {len(want)} already complete" in lines[-1], (case, lines)
        for k in extra_env:
            monkeypatch.delenv(k)


def test_fetch_http_errors_reported_others_complete(capsys, env, real_dir, http, tmp_path, monkeypatch):
    good = REAL[:2]
    extra = [f"{http.url}/data/ATL06_20190101000000_00010110_006_01.h5",             # 404
             f"{http.url}/forbidden/ATL06_20190102000000_00010110_006_01.h5",        # 403
             f"http://127.0.0.1:{servers.closed_port()}/data/ATL06_20190103000000_00010110_006_01.h5"]
    monkeypatch.setenv("EARTHDATA_TOKEN", TOKEN)
    rc, lines, err = cli(capsys, "fetch", "--all-releases", url_list(tmp_path, f"{http.url}/data", good, extra), "-o", tmp_path / "f")
    assert rc == 1
    assert "Traceback" not in "\n".join(err)
    failed = [ln for ln in err if "FAILED" in ln]
    assert len(failed) == 3, err
    assert "404 Not Found" in failed[0] and "403 Forbidden" in failed[1]
    assert "cannot connect" in failed[2] and "after 3 retries" in failed[2]
    assert "2 fetched" in lines[-1] and "3 failed" in lines[-1]
    assert sorted(os.listdir(tmp_path / "f")) == sorted(p.name for p in good)
    monkeypatch.setenv("EARTHDATA_TOKEN", "wrong-token")
    rc, _, err = cli(capsys, "fetch", "--all-releases", url_list(tmp_path, f"{http.url}/data", good[:1]), "-o", tmp_path / "g")
    assert_one_line_error(rc, err, "401 Unauthorized", "EARTHDATA_TOKEN")
    monkeypatch.delenv("EARTHDATA_TOKEN")
    rc, _, err = cli(capsys, "fetch", "--all-releases", url_list(tmp_path, f"{http.url}/data", good[:1]), "-o", tmp_path / "g")
    assert_one_line_error(rc, err, "401 Unauthorized", "no credentials")


def test_fetch_retries_transient_failures(capsys, env, real_dir, http, tmp_path, monkeypatch):
    monkeypatch.setenv("EARTHDATA_TOKEN", TOKEN)
    rc, lines, err = cli(capsys, "fetch", "--all-releases", url_list(tmp_path, f"{http.flaky.url}/flaky", REAL[:2]), "-o", tmp_path / "f")
    assert rc == 0, err                                      # two 503s per file, then served
    assert sum("fetched after 2 retries" in ln for ln in err) == 2, err
    for p in REAL[:2]:
        assert same_bytes(p, tmp_path / "f" / p.name)


def test_interrupted_fetch_resumes(env, real_dir, moto, tmp_path):
    """Killed (SIGKILL) in the middle of the largest granule: a .part is left, no final name; the
    next fetch continues it from its last byte and the result is byte-identical."""
    out = tmp_path / "f"
    biggest = max(REAL, key=os.path.getsize)
    run_env = {"HOME": str(env), "READATL06_CRASH_AT": "fetch-piece:2"}
    r = run_cli("fetch", "--all-releases", f"s3://{BUCKET}/data", "-o", out, *s3_args(moto), env=run_env)
    assert r.returncode == -signal.SIGKILL, r.stderr
    part = out / f".{biggest.name}.part"
    done = part.stat().st_size
    assert 0 < done < biggest.stat().st_size and not (out / biggest.name).exists()
    r = run_cli("fetch", "--all-releases", f"s3://{BUCKET}/data", "-o", out, *s3_args(moto), env={"HOME": str(env)})
    assert r.returncode == 0, r.stderr
    assert f"{biggest.name}: resumed at byte {done}" in r.stderr
    assert "Traceback" not in r.stderr
    assert sorted(os.listdir(out)) == sorted(p.name for p in REAL)
    for p in REAL:
        assert same_bytes(p, out / p.name)


def test_fetch_over_two_ranks(env, real_dir, moto, tmp_path):
    out = tmp_path / "f"
    r = run_cli("fetch", "--all-releases", f"s3://{BUCKET}/data", "-o", out, *s3_args(moto), ranks=2, env={"HOME": str(env)})
    assert r.returncode == 0, r.stderr
    assert "on 2 ranks" in r.stdout and f"{len(REAL)} fetched" in r.stdout
    for p in REAL:
        assert same_bytes(p, out / p.name)


# --------------------------------------------------------------------------------------- reduce
def test_reduce_in_place_equals_local(capsys, env, real_dir, real_reduced, sshd, moto, http, tmp_path, monkeypatch):
    monkeypatch.setenv("EARTHDATA_TOKEN", TOKEN)
    for case, args in (("s3", [f"s3://{BUCKET}/data", *s3_args(moto)]),
                       ("https", [url_list(tmp_path, f"{http.url}/protected", REAL)]),
                       ("ssh", [f"{sshd.url}{real_dir}", *ssh_args(sshd)])):
        before = base.stats()
        rc, _, err = cli(capsys, "reduce", "--all-releases", *args, "-o", tmp_path / case, "--no-progress")
        assert rc == 0, (case, err)
        assert_same_outputs(real_reduced, tmp_path / case)
        after = base.stats()
        assert after["granules"] - before["granules"] == len(REAL) and after["staged"] == before["staged"], case


def test_reduce_staged_when_no_ranges(capsys, env, real_dir, real_reduced, http, tmp_path, monkeypatch):
    """A server that answers ranges with the whole file: granules staged under --scratch, then deleted."""
    monkeypatch.setenv("EARTHDATA_TOKEN", TOKEN)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    before = base.stats()["staged"]
    rc, _, err = cli(capsys, "reduce", "--all-releases", url_list(tmp_path, f"{http.no_range.url}/data", REAL), "-o", tmp_path / "o",
                     "--scratch", scratch, "--no-progress")
    assert rc == 0, err
    assert base.stats()["staged"] - before == len(REAL)
    assert os.listdir(scratch) == []
    assert_same_outputs(real_reduced, tmp_path / "o")


def test_boxed_s3_reduce_fetches_a_fraction(capsys, env, real_dir, moto, tmp_path, monkeypatch):
    box = ["--bbox", "-134.5", "-134.0", "58.6", "58.9"]     # 3 granules, 3778 points
    rc, _, err = cli(capsys, "reduce", "--all-releases", real_dir, "-o", tmp_path / "local", "--no-progress", *box)
    assert rc == 0, err
    monkeypatch.setenv("READATL06_REMOTE_BLOCK", "8K")       # these granules are small (0.2-3.8 MB)
    before = base.stats()["bytes"]
    rc, out, err = cli(capsys, "reduce", "--all-releases", f"s3://{BUCKET}/data", "-o", tmp_path / "s3", "--no-progress", *box,
                       *s3_args(moto), "--timings")
    assert rc == 0, err
    fetched = base.stats()["bytes"] - before
    total = sum(os.path.getsize(p) for p in REAL)
    print(f"boxed S3 reduce: {fetched} bytes fetched of {total} ({fetched / total:.1%})")
    assert fetched < 0.5 * total                              # 40 % with 8 KiB blocks (64 KiB: 75 %)
    shown = re.search(r"([\d.]+) MB read", "\n".join(out + err))            # --timings: the bytes fetched
    assert shown and abs(float(shown.group(1)) - fetched / 1e6) < 0.06, out + err
    assert_same_outputs(tmp_path / "local", tmp_path / "s3")


def test_reduce_unreachable_granules_fail_alone(capsys, env, real_dir, http, tmp_path, monkeypatch):
    monkeypatch.setenv("EARTHDATA_TOKEN", TOKEN)
    missing = f"{http.url}/data/ATL06_20190101000000_00010110_006_01.h5"
    down = f"http://127.0.0.1:{servers.closed_port()}/data/ATL06_20190102000000_00010110_006_01.h5"
    rc, out, err = cli(capsys, "reduce", "--all-releases", url_list(tmp_path, f"{http.url}/data", REAL[:2], [missing, down]),
                       "-o", tmp_path / "o", "--no-progress")
    assert rc == 1 and "Traceback" not in "\n".join(err)
    failed = [ln for ln in err if "FAILED" in ln]
    assert len(failed) == 2, err
    assert "ATL06_20190101000000_00010110_006_01.h5: 404 Not Found" in failed[0]
    assert "ATL06_20190102000000_00010110_006_01.h5: cannot connect to 127.0.0.1" in failed[1]
    assert "2 done" in out[-1] and "2 failed" in out[-1]


# ------------------------------------------------------------------------------ the real command
@pytest.mark.parametrize("case", ["ssh-host-key", "s3-bucket", "https-401"])
def test_command_line_errors_one_line_no_traceback(env, real_dir, sshd, moto, http, tmp_path, case):
    if case == "ssh-host-key":
        args = ["list", f"{sshd.url}{real_dir}", "--ssh-key", sshd.key, "--known-hosts", tmp_path / "none"]
    elif case == "s3-bucket":
        args = ["reduce", "s3://no-such-bucket/x", "-o", tmp_path / "o", *s3_args(moto)]
    else:
        args = ["fetch", url_list(tmp_path, f"{http.url}/data", REAL[:1]), "-o", tmp_path / "o"]
    r = run_cli(*args, env={"HOME": str(env)})
    assert r.returncode in (1, 2)
    assert "Traceback" not in r.stderr and "Exception" not in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if "error:" in ln or "FAILED" in ln]) == 1, r.stderr



# ------------------------------------------------------------- credentials only to their host (issue 22, 1)
@pytest.fixture(scope="module")
def away(tmp_path_factory, real_dir):
    """A data host on 127.0.0.1 that demands the token (or basic auth) and answers /away/NAME with a
    302 to another host, ``localhost``, which serves the file to anyone (like a pre-signed URL) — once
    with byte ranges, once without (staged). Every server logs each request's Authorization header."""
    run = str(tmp_path_factory.mktemp("away"))
    other = servers.start_http(run, real_dir, open_data=True)
    other_plain = servers.start_http(run, real_dir, open_data=True, no_range=True)
    home = servers.start_http(run, real_dir, token=TOKEN, basic=BASIC, away=f"http://localhost:{other.port}")
    home_plain = servers.start_http(run, real_dir, token=TOKEN, basic=BASIC,
                                    away=f"http://localhost:{other_plain.port}")
    proxy = servers.start_http(run, real_dir, token=TOKEN, basic=BASIC)
    home.other, home.plain, home.other_plain, home.proxy = other, home_plain, other_plain, proxy
    yield home
    remote.close_all()
    for s in (other, other_plain, home, home_plain, proxy):
        s.stop()


def _authorizations(server, since=0):
    """The Authorization headers a server received (``-``: none), from its log; ``since``: after
    that many (what an earlier call returned)."""
    return [ln.split(" ", 2)[2] for ln in server.log_text().splitlines() if ln.startswith("auth ")][since:]


def _netrc(home, host="127.0.0.1"):
    user, password = BASIC.split(":")
    (home / ".netrc").write_text(f"machine {host} login {user} password {password}\n")
    (home / ".netrc").chmod(0o600)


@pytest.mark.parametrize("how", ["token", "netrc"])
def test_credentials_never_sent_to_the_host_a_redirect_names(capsys, env, real_dir, real_reduced, away, tmp_path,
                                                             monkeypatch, how):
    """``reduce`` in place (range reads), staged (a server without ranges) and ``fetch`` from
    http://127.0.0.1:PA/away/G.h5 -> 302 -> http://localhost:PB/data/G.h5: PA gets the credentials,
    PB never does — not on the probe, not on a range read, not on the download."""
    if how == "token":
        monkeypatch.setenv("EARTHDATA_TOKEN", TOKEN)
        sent = f"Bearer {TOKEN}"
    else:
        _netrc(env)
        sent = "Basic "
    granules = REAL[:3]
    servers_ = (away, away.plain, away.other, away.other_plain)
    seen = {s.port: len(_authorizations(s)) for s in servers_}
    for case, server, extra in (("in-place", away, []), ("staged", away.plain, ["--scratch", tmp_path])):
        before = base.stats()
        rc, _, err = cli(capsys, "reduce", "--all-releases", url_list(tmp_path, f"{server.url}/away", granules), "-o", tmp_path / case,
                         "--no-progress", *extra)
        assert rc == 0, (case, err)
        key = "granules" if case == "in-place" else "staged"
        assert base.stats()[key] - before[key] == len(granules), case
    rc, lines, err = cli(capsys, "fetch", "--all-releases", url_list(tmp_path, f"{away.url}/away", granules), "-o", tmp_path / "f")
    assert rc == 0, err
    for p in granules:
        assert same_bytes(p, tmp_path / "f" / p.name)
    for case in ("in-place", "staged"):
        got = sorted(p.name for p in (tmp_path / case).glob("*_gt*.h5"))
        assert got and got == sorted(p.name for p in real_reduced.glob("*_gt*.h5")
                                     if any(p.name.startswith(g.stem) for g in granules))
    for origin in (away, away.plain):
        auths = _authorizations(origin, seen[origin.port])
        assert auths and all(a.startswith(sent) for a in auths), auths      # the host named gets them
    for other in (away.other, away.other_plain):
        auths = _authorizations(other, seen[other.port])
        assert len(auths) >= len(granules) and set(auths) == {"-"}, auths   # the other host never


def test_no_credentials_over_plain_http_to_another_machine(capsys, env, real_dir, away, tmp_path, monkeypatch):
    """http:// to a host that is not this machine (here reached through an HTTP proxy on 127.0.0.1):
    neither the token nor netrc's password is sent; the 401 says why."""
    monkeypatch.setenv("EARTHDATA_TOKEN", TOKEN)
    _netrc(env, "granules.example.org")
    for var in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, away.proxy.url)
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(var, "")
    seen = len(_authorizations(away.proxy))
    rc, _, err = cli(capsys, "reduce", "--all-releases", url_list(tmp_path, "http://granules.example.org/data", REAL[:1]),
                     "-o", tmp_path / "o", "--no-progress")
    assert rc == 1
    failed = [ln for ln in err if "FAILED" in ln]
    assert len(failed) == 1 and "401 Unauthorized" in failed[0] and "never sent over plain http://" in failed[0], err
    auths = _authorizations(away.proxy, seen)
    assert auths and set(auths) == {"-"}, auths                              # the request went there, bare


def test_user_information_in_urls_is_never_shown(capsys, env, real_dir, http, tmp_path, monkeypatch):
    """A password in a URL is used for that URL's host only and shown nowhere: not in the manifest's
    ``path``, not in ``list`` output, not in error lines."""
    user, password = BASIC.split(":")
    base = http.url.replace("http://", f"http://{user}:{password}@") + "/data"
    missing = f"{base}/ATL06_20190101000000_00010110_006_01.h5"
    rc, lines, err = cli(capsys, "reduce", "--all-releases", url_list(tmp_path, base, REAL[:2], [missing]), "-o", tmp_path / "o",
                         "--no-progress")
    assert rc == 1, err
    text = (tmp_path / "o" / "readatl06-manifest.jsonl").read_text()
    records = [json.loads(x) for x in text.splitlines()]
    assert [r["status"] for r in sorted(records, key=lambda r: r["granule"])].count("done") == 2
    masked = http.url.replace("http://", "http://***@")
    assert all(r["path"].startswith(masked) for r in records), [r["path"] for r in records]
    failed = [ln for ln in err if "FAILED" in ln]
    assert len(failed) == 1 and "404 Not Found" in failed[0]
    rc, out, err2 = cli(capsys, "list", "--all-releases", url_list(tmp_path, base, REAL[:2], [missing]))
    assert rc == 0 and out and all(p.startswith(masked) for p in out)
    rc, _, err3 = cli(capsys, "fetch", "--all-releases", url_list(tmp_path, base, [], [missing]), "-o", tmp_path / "f")
    assert rc == 1 and any(masked in ln for ln in err3), err3
    for shown in (text, "\n".join(lines + err + out + err2 + err3)):
        assert password not in shown
