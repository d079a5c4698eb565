"""Issue 24, item 8, against the servers of tests/servers.py: an S3 ETag of an SSE-KMS object is no
MD5; READATL06_REMOTE_BLOCK and READATL06_RETRY_DELAY out of range; sshd's MaxStartups exceeded by
8 ranks at once; two fetch runs into one folder."""
import os
import subprocess
import sys

import pytest

import servers
from conftest import DATA, REAL, run_cli
from test_remote import (BUCKET, TOKEN, assert_one_line_error, cli, env, http, moto, s3_args,  # noqa: F401
                         same_bytes, url_list)

KMS = "kms"


def _put(moto, files, prefix, **extra):
    import boto3
    s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1", aws_access_key_id=moto.key_id,
                      aws_secret_access_key=moto.secret)
    for f in files:
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{f.name}", Body=f.read_bytes(), **extra)


def test_s3_etag_of_an_sse_kms_object_is_no_md5(capsys, env, moto, tmp_path, monkeypatch):  # noqa: F811
    """AWS gives SSE-KMS objects an ETag that is not their MD5 (moto gives the MD5): the listing's
    ETags are replaced by 32 other hex digits, as AWS would list them. The encrypted object is
    fetched (size checked, the ETag not taken as its MD5); a plain object whose ETag differs from its
    MD5 still fails."""
    import s3fs
    files = REAL[:1]
    _put(moto, files, KMS, ServerSideEncryption="aws:kms")
    _put(moto, files, "plain")
    find = s3fs.S3FileSystem.find

    def not_md5(self, path, *a, **k):
        found = find(self, path, *a, **k)
        if isinstance(found, dict):
            found = {p: dict(i, ETag='"' + "0123456789abcdef" * 2 + '"') for p, i in found.items()}
        return found
    monkeypatch.setattr(s3fs.S3FileSystem, "find", not_md5)
    rc, _, err = cli(capsys, "fetch", "--all-releases", f"s3://{BUCKET}/{KMS}", "-o", tmp_path / "k",
                     *s3_args(moto))
    assert rc == 0, err
    assert same_bytes(files[0], tmp_path / "k" / files[0].name) and not any("retries" in ln for ln in err), err
    rc, _, err = cli(capsys, "fetch", "--all-releases", f"s3://{BUCKET}/plain", "-o", tmp_path / "p",
                     *s3_args(moto))
    assert rc == 1 and any("differs from the store's 0123456789abcdef" in ln for ln in err), err


@pytest.mark.parametrize("value", ["-64K", "0", "nan", "inf"])
def test_remote_block_must_be_positive(capsys, env, moto, tmp_path, monkeypatch, value):  # noqa: F811
    monkeypatch.setenv("READATL06_REMOTE_BLOCK", value)
    rc, _, err = cli(capsys, "reduce", f"s3://{BUCKET}/data", "-o", tmp_path / "o", *s3_args(moto), "--no-progress")
    assert_one_line_error(rc, err, f"READATL06_REMOTE_BLOCK={value!r}: expected a positive number of bytes")


def test_negative_retry_delay_is_the_default(capsys, env, http, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("EARTHDATA_TOKEN", TOKEN)
    monkeypatch.setenv("READATL06_RETRY_DELAY", "-1")
    rc, _, err = cli(capsys, "fetch", "--all-releases", url_list(tmp_path, f"{http.flaky.url}/flaky", REAL[:1]),
                     "-o", tmp_path / "f")
    assert rc == 0, err                                      # two 503s, then served
    assert sum("fetched after 2 retries" in ln for ln in err) == 1, err


def test_eight_ranks_and_max_startups_2(tmp_path, real_dir):
    """sshd drops every unauthenticated connection beyond 1: 8 ranks fetching at once all connect
    (READATL06_RETRY_DELAY 0.01: before, 4 tries within 0.07 s, and ranks failed)."""
    pub = servers.keygen(str(tmp_path / "id_ed25519"))
    server = servers.start_sshd(str(tmp_path), [pub], extra="MaxStartups 1\n")
    try:
        (tmp_path / "known_hosts").write_text(server.known_hosts_line())
        r = run_cli("fetch", "--all-releases", f"ssh://root@127.0.0.1:{server.port}{real_dir}", "-o", tmp_path / "f",
                    "--ssh-key", tmp_path / "id_ed25519", "--known-hosts", tmp_path / "known_hosts",
                    ranks=8, env={"HOME": str(tmp_path), "READATL06_RETRY_DELAY": "0.01"}, timeout=240)
    finally:
        server.stop()
    assert r.returncode == 0, r.stderr
    assert f"{len(REAL)} fetched" in r.stdout and "FAILED" not in r.stderr
    for p in REAL:
        assert same_bytes(p, tmp_path / "f" / p.name)


def test_two_fetch_runs_into_one_folder(tmp_path):
    out = tmp_path / "f"
    cmd = [sys.executable, "-m", "readatl06", "fetch", "--all-releases", str(DATA / "atl06"), "-o", str(out)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_COMM_WORLD", "PMIX_", "PMI_"))}
    for _ in range(3):
        runs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                for _ in range(2)]
        results = [(p.communicate(timeout=120)[1], p.returncode)[::-1] for p in runs]
        assert all(rc == 0 and "FAILED" not in e for rc, e in results), results
        assert sorted(os.listdir(out)) == sorted(p.name for p in REAL)
        for p in REAL:
            assert same_bytes(p, out / p.name)
        for p in out.iterdir():
            p.unlink()
