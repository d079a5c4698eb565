"""Real servers on 127.0.0.1 for the remote-source tests (see ../shared/INFRA.md): OpenSSH's sshd,
moto's S3 server, and an HTTP server with authentication, redirects and Range requests (this file
run as a program: ``python tests/servers.py http ...``). Each runs as a child process on a free port
and is stopped by its own process id."""
import argparse
import base64
import hashlib
import hmac
import http.server
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

SSHD_BIN = "/usr/sbin/sshd"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port():
    """A port on 127.0.0.1 where nothing listens (connection refused)."""
    return free_port()


class Server:
    """A child process serving on ``port``; ``stop()`` ends it (by its pid); its output in ``log_path``."""

    def __init__(self, proc, port, log):
        self.proc, self.port, self.log = proc, port, log
        self.log_path = log.name

    def log_text(self):
        self.log.flush()
        with open(self.log_path, encoding="utf-8", errors="replace") as fh:
            return fh.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def _wait(proc, ready, what, log_path, timeout=20):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {open(log_path).read()[-2000:]}")
        if ready():
            return
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{what} did not answer within {timeout} s: {open(log_path).read()[-2000:]}")


def _answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _start(cmd, port, what, run_dir, ready=None, env=None):
    log_path = os.path.join(run_dir, f"{what}.log")
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)
    _wait(proc, ready or (lambda: _answers(port)), what, log_path)
    return Server(proc, port, log)


# ------------------------------------------------------------------------------------------ sshd
def keygen(path, kind="ed25519"):
    """A key pair without passphrase; returns the public key line ``ssh-ed25519 AAAA... comment``."""
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "readatl06-test", "-f", path],
                   check=True, capture_output=True)
    with open(path + ".pub") as fh:
        return fh.read().strip()


class SSHD(Server):
    host_key_line = ""      # "ssh-ed25519 AAAA..." of the server

    def known_hosts_line(self):
        kind, b64 = self.host_key_line.split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {b64}\n"


def start_sshd(run_dir, authorized, extra=""):
    """sshd -D on 127.0.0.1 with a fresh host key; ``authorized``: public key lines it accepts (root);
    ``extra``: more sshd_config lines (``MaxStartups 2``)."""
    if not os.access(SSHD_BIN, os.X_OK):
        raise RuntimeError(f"{SSHD_BIN} missing: Debian package openssh-server (scripts/setup.sh installs it)")
    os.makedirs("/run/sshd", exist_ok=True)          # privilege separation folder
    host_key = os.path.join(run_dir, "ssh_host_ed25519_key")
    host_line = keygen(host_key)
    auth = os.path.join(run_dir, "authorized_keys")
    with open(auth, "w") as fh:
        fh.write("".join(k + "\n" for k in authorized))
    os.chmod(auth, 0o600)
    port = free_port()
    conf = os.path.join(run_dir, "sshd_config")
    with open(conf, "w") as fh:
        fh.write(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {run_dir}/sshd.pid
AuthorizedKeysFile {auth}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
{extra}""")
    server = _start([SSHD_BIN, "-D", "-e", "-f", conf], port, "sshd", run_dir)
    server.__class__ = SSHD
    server.host_key_line = host_line
    return server


# ------------------------------------------------------------------------------------------- moto
S3_SETUP_ACTIONS = 3     # create_user, create_access_key, put_user_policy: unauthenticated, then IAM is enforced


class Moto(Server):
    url = ""
    key_id = secret = ""


def _moto_server(run_dir, what, env):
    """A moto S3 server on a free port, started with ``env`` and waited for."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def ready():
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            return True
        except OSError:
            return False
    server = _start([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], port, what,
                    run_dir, ready, env)
    server.__class__ = Moto
    server.url = url
    return server


def start_moto(run_dir):
    """moto's S3 server with IAM authentication enforced after the set-up of one user (its key pair
    in ``key_id``/``secret``, allowed everything)."""
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(S3_SETUP_ACTIONS), PYTHONWARNINGS="ignore")
    server = _moto_server(run_dir, "moto", env)
    import boto3
    iam = boto3.client("iam", endpoint_url=server.url, region_name="us-east-1", aws_access_key_id="setup",
                       aws_secret_access_key="setup")
    iam.create_user(UserName="readatl06")
    key = iam.create_access_key(UserName="readatl06")["AccessKey"]
    iam.put_user_policy(UserName="readatl06", PolicyName="all", PolicyDocument='{"Version": "2012-10-17", '
                        '"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}')
    server.key_id, server.secret = key["AccessKeyId"], key["SecretAccessKey"]
    return server


def start_moto_open(run_dir):
    """moto's S3 server without authentication (any key pair, and unsigned requests, are accepted)."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
    return _moto_server(run_dir, "moto-open", env)


# ------------------------------------------------------------------------------------------- http
class Handler(http.server.BaseHTTPRequestHandler):
    """GET/HEAD under /data/NAME (authenticated, unless ``--open``), /redirect/NAME (302 to /data/NAME),
    /protected/NAME (authenticated, 302 to a signed /signed/NAME?sig=... that needs no credentials,
    like a data centre's redirect to a pre-signed S3 URL), /away/NAME (authenticated, 302 to
    ``--away``/data/NAME on another host), /forbidden/NAME (403), /flaky/NAME (503 for the first
    ``--flaky`` requests of each file). Range: one ``bytes=a-b``/``a-``/``-n``. Every request's
    Authorization header (or ``-``) is logged: ``auth PATH HEADER``. A request for an absolute URL
    (as a client sends to a proxy) is answered for its path."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True      # headers and body in separate writes: no 40 ms delayed-ACK stall
    opts = None
    flaky = {}

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def _authorized(self):
        got = self.headers.get("Authorization", "")
        o = self.opts
        if o.token and got == f"Bearer {o.token}":
            return True
        if o.basic and got == "Basic " + base64.b64encode(o.basic.encode()).decode():
            return True
        return False

    def _send(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _sig(self, name):
        return hmac.new(b"secret", name.encode(), hashlib.sha256).hexdigest()[:16]

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        sys.stderr.write(f"auth {self.path} {self.headers.get('Authorization', '-')}\n")
        sys.stderr.flush()
        url = urllib.parse.urlsplit(self.path)
        m = re.fullmatch(r"/(data|redirect|protected|signed|forbidden|flaky|away)/([^/]+)", url.path)
        if not m:
            return self._send(404, b"not found\n")
        kind, name = m.groups()
        if kind == "signed":
            if urllib.parse.parse_qs(url.query).get("sig") != [self._sig(name)]:
                return self._send(403, b"bad signature\n")
            return self._file(name)
        if kind == "data" and self.opts.open:
            return self._file(name)
        if not self._authorized():
            return self._send(401, b"credentials needed\n", [("WWW-Authenticate", 'Basic realm="test"')])
        if kind == "away":
            return self._send(302, headers=[("Location", f"{self.opts.away}/data/{name}")])
        if kind == "forbidden":
            return self._send(403, b"forbidden\n")
        if kind == "redirect":
            return self._send(302, headers=[("Location", f"/data/{name}")])
        if kind == "protected":
            if not os.path.isfile(os.path.join(self.opts.root, name)):
                return self._send(404, b"not found\n")
            return self._send(303, headers=[("Location", f"/signed/{name}?sig={self._sig(name)}")])
        if kind == "flaky":
            n = self.flaky.get(name, 0)
            self.flaky[name] = n + 1
            if n < self.opts.flaky:
                return self._send(503, b"try again\n")
        return self._file(name)

    def _file(self, name):
        path = os.path.join(self.opts.root, name)
        if "/" in name or not os.path.isfile(path):
            return self._send(404, b"not found\n")
        size = os.path.getsize(path)
        start, end, code = 0, size, 200
        rng = self.headers.get("Range")
        if rng and not self.opts.no_range:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if not m or m.groups() == ("", ""):
                return self._send(416, headers=[("Content-Range", f"bytes */{size}")])
            a, b = m.groups()
            if a == "":
                start, end = max(0, size - int(b)), size
            else:
                start, end = int(a), min(size, int(b) + 1) if b else size
            if start >= size or start >= end:
                return self._send(416, headers=[("Content-Range", f"bytes */{size}")])
            code = 206
        self.send_response(code)
        self.send_header("Content-Length", str(end - start))
        self.send_header("Content-Type", "application/x-hdf5")
        if not self.opts.no_range:
            self.send_header("Accept-Ranges", "bytes")
        if code == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        self.end_headers()
        if self.command == "HEAD":
            return
        with open(path, "rb") as fh:
            fh.seek(start)
            left = end - start
            while left:
                piece = fh.read(min(left, 1 << 20))
                self.wfile.write(piece)
                left -= len(piece)


class HTTP(Server):
    url = ""


def start_http(run_dir, root, token=None, basic=None, no_range=False, flaky=0, open_data=False, away=None):
    """This file's HTTP server as a child process, serving ``root``; ``basic``: "user:password";
    ``open_data``: /data/NAME without credentials; ``away``: where /away/NAME redirects (a base URL)."""
    port = free_port()
    cmd = [sys.executable, os.path.abspath(__file__), "http", "--root", str(root), "--port", str(port),
           "--flaky", str(flaky)]
    if open_data:
        cmd.append("--open")
    if away:
        cmd += ["--away", away]
    if token:
        cmd += ["--token", token]
    if basic:
        cmd += ["--basic", basic]
    if no_range:
        cmd.append("--no-range")
    server = _start(cmd, port, f"http-{port}", run_dir)
    server.__class__ = HTTP
    server.url = f"http://127.0.0.1:{port}"
    return server


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=["http"])
    p.add_argument("--root", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--token")
    p.add_argument("--basic")
    p.add_argument("--no-range", action="store_true")
    p.add_argument("--flaky", type=int, default=0)
    p.add_argument("--open", action="store_true")
    p.add_argument("--away")
    opts = p.parse_args(argv)
    Handler.opts = opts
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", opts.port), Handler)
    httpd.daemon_threads = True
    httpd.serve_forever()


if __name__ == "__main__":
    main()
