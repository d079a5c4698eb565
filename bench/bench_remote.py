"""Listing and fetch times for N granules from each remote server (sshd/SFTP, moto's S3 server, the
test HTTP server), all on 127.0.0.1 (tests/servers.py), and the bytes a boxed S3 reduce fetches.

The N granules are copies of the shared real granules under N distinct names (RGT 1000 + k).
    . scripts/mpienv.sh && python bench/bench_remote.py [--granules 100] [--ranks 2]
"""
import argparse
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import servers  # noqa: E402

DATA = pathlib.Path(os.environ.get("READATL06_DATA", ROOT.parent / "shared" / "data")) / "atl06"
TOKEN = "bench-token"
BOX = ["--bbox", "-134.5", "-134.0", "58.6", "58.9"]


def copies(n, dest):
    real = sorted(DATA.glob("*.h5"))
    dest.mkdir(parents=True)
    for k in range(n):
        src = real[k % len(real)]
        name = re.sub(r"_(\d{4})(\d{4})_", lambda m: f"_{1000 + k:04d}{m.group(2)}_", src.name, count=1)
        shutil.copy(src, dest / name)
    return sorted(dest.glob("*.h5"))


def run(cmd, env):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr[-2000:]}")
    return wall, r


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--granules", type=int, default=100)
    p.add_argument("--ranks", type=int, default=2)
    args = p.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-remote-"))
    files = copies(args.granules, work / "data")
    total = sum(f.stat().st_size for f in files)
    started = []
    try:
        pub = servers.keygen(str(work / "id_ed25519"))
        sshd = servers.start_sshd(str(work), [pub])
        started.append(sshd)
        (work / "known_hosts").write_text(sshd.known_hosts_line())
        moto = servers.start_moto(str(work))
        started.append(moto)
        http = servers.start_http(str(work), work / "data", token=TOKEN)
        started.append(http)
        import boto3
        s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1", aws_access_key_id=moto.key_id,
                          aws_secret_access_key=moto.secret)
        s3.create_bucket(Bucket="atl06")
        for f in files:
            s3.upload_file(str(f), "atl06", f"data/{f.name}")
        (work / "urls.txt").write_text("".join(f"{http.url}/data/{f.name}\n" for f in files))
        env = dict(os.environ, HOME=str(work), AWS_ACCESS_KEY_ID=moto.key_id, AWS_SECRET_ACCESS_KEY=moto.secret,
                   AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true", EARTHDATA_TOKEN=TOKEN)
        sources = {
            "ssh": [f"ssh://root@127.0.0.1:{sshd.port}{work / 'data'}", "--ssh-key", str(work / "id_ed25519"),
                    "--known-hosts", str(work / "known_hosts")],
            "s3": ["s3://atl06/data", "--s3-endpoint", moto.url],
            "https": [f"@{work / 'urls.txt'}"],
        }
        py = [sys.executable, "-m", "readatl06"]
        wall, _ = run(py + ["list", str(work / "data")], env)
        print(f"{args.granules} granules, {total / 1e6:.1f} MB; `readatl06 list` of the local folder: {wall:.2f} s "
              f"(Python start-up included)")
        print("| server | list (s) | fetch 1 rank (s) | MB/s | fetch %d ranks (s) | MB/s | re-run, all complete (s) |"
              % args.ranks)
        print("|---|---|---|---|---|---|---|")
        for name, src in sources.items():
            t_list, r = run(py + ["list", *src], env)
            assert len(r.stdout.split()) == args.granules, r.stderr
            out1 = work / f"fetch-{name}-1"
            t1, _ = run(py + ["fetch", *src, "-o", str(out1)], env)
            outn = work / f"fetch-{name}-n"
            tn, _ = run(["mpirun", "-n", str(args.ranks), *py, "fetch", *src, "-o", str(outn)], env)
            again, r = run(py + ["fetch", *src, "-o", str(out1)], env)
            assert f"{args.granules} already complete" in r.stdout, r.stdout
            for f in files[:3]:
                assert (out1 / f.name).read_bytes() == f.read_bytes()
            print(f"| {name} | {t_list:.2f} | {t1:.2f} | {total / 1e6 / t1:.0f} | {tn:.2f} | {total / 1e6 / tn:.0f} "
                  f"| {again:.2f} |")
            shutil.rmtree(out1)
            shutil.rmtree(outn)
        real = sorted(DATA.glob("*.h5"))
        real_total = sum(f.stat().st_size for f in real)
        s3.create_bucket(Bucket="real")
        for f in real:
            s3.upload_file(str(f), "real", f.name)
        print(f"\nboxed S3 reduce of the {len(real)} real granules ({real_total / 1e6:.2f} MB), box {' '.join(BOX[1:])}:")
        code = ("import sys; from readatl06.cli import main; from readatl06.sources import remote; "
                "rc = main(sys.argv[1:]); s = remote.stats(); "
                "print('BYTES', s['bytes'], s['requests']); sys.exit(rc)")
        for block in ("", "256K", "64K", "16K", "8K", "4K"):
            out = work / f"reduce-{block or 'default'}"
            e = dict(env, READATL06_REMOTE_BLOCK=block) if block else env
            t, r = run([sys.executable, "-c", code, "reduce", "s3://real", "-o", str(out), "--no-progress",
                        "--s3-endpoint", moto.url, *BOX], e)
            nbytes, nreq = map(int, re.search(r"BYTES (\d+) (\d+)", r.stdout).groups())
            print(f"  block {block or 'default (1/32 of the granule, 64 KiB-8 MiB)'}: {nbytes / 1e6:.2f} MB in "
                  f"{nreq} requests = {nbytes / real_total:.1%} of the granules; {t:.2f} s")
    finally:
        for s in started:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
