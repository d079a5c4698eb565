"""A real single-node SLURM cluster on localhost for the job-script tests (see INFRA.md).

``SlurmCluster(folder).start()`` writes a slurm.conf under ``folder`` (free ports, state and spool
folders there, ``auth/none`` so munge is not needed, the PBS spank plugin so ``PBS_*`` variables
appear), starts ``slurmctld -D`` and ``slurmd -D`` as child processes, and waits until the node is
idle. Clients find it through ``SLURM_CONF`` (``cluster.env``). ``stop()`` cancels what is left,
shuts the controller down and ends both daemons by their own process ids.
"""
import os
import pwd
import re
import shutil
import socket
import subprocess
import time

DAEMONS = ("slurmctld", "slurmd")
CLIENTS = ("sbatch", "scontrol", "sinfo", "squeue", "scancel", "srun", "qsub")
SPANK_PBS = "/usr/lib/x86_64-linux-gnu/slurm-wlm/spank_pbs.so"
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
         "DEADLINE", "PREEMPTED"}


def missing():
    """The SLURM programs this machine lacks (scripts/setup.sh installs them)."""
    return [p for p in DAEMONS + CLIENTS if shutil.which(p) is None]


def _free_ports(n):
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class SlurmCluster:
    def __init__(self, folder, cpus=2):
        """``cpus``: what the node declares (config_overrides: it may exceed the machine's cores, so
        that several small jobs run at once)."""
        self.dir = os.path.abspath(folder)
        self.cpus = cpus
        self.conf = os.path.join(self.dir, "slurm.conf")
        self.procs = {}
        self.env = dict(os.environ, SLURM_CONF=self.conf)
        for var in [v for v in self.env if v.startswith(("SLURM_", "PBS_")) and v != "SLURM_CONF"]:
            self.env.pop(var)       # the tests' own job (if any) is not the one the clients talk to

    def write_conf(self):
        for sub in ("state", "spool"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        ctld_port, d_port = _free_ports(2)
        plugstack = os.path.join(self.dir, "plugstack.conf")
        with open(plugstack, "w") as f:
            f.write(f"optional {SPANK_PBS}\n")
        d = self.dir
        user = pwd.getpwuid(os.getuid()).pw_name
        lines = [
            "ClusterName=readatl06test",
            "SlurmctldHost=localhost",
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={d_port}",
            f"SlurmUser={user}",
            f"SlurmdUser={user}",
            "AuthType=auth/none",
            "CredType=cred/none",
            f"StateSaveLocation={d}/state",
            f"SlurmdSpoolDir={d}/spool",
            f"SlurmctldPidFile={d}/slurmctld.pid",
            f"SlurmdPidFile={d}/slurmd.pid",
            f"SlurmctldLogFile={d}/slurmctld.log",
            f"SlurmdLogFile={d}/slurmd.log",
            f"PlugStackConfig={plugstack}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "ReturnToService=2",
            "MinJobAge=3600",
            "MailProg=/bin/true",
            "EnforcePartLimits=ALL",
            "SlurmdParameters=config_overrides",      # CPUs as declared, more than the machine has
            f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={self.cpus} State=UNKNOWN",
            "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
        ]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def _run(self, *cmd, check=True, timeout=30, env=None):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env or self.env)
        if check and r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: {r.stdout}{r.stderr}\n{self.logs()}")
        return r

    def start(self, timeout=30):
        self.write_conf()
        for name, extra in (("slurmctld", []), ("slurmd", ["-N", "localhost"])):
            log = open(os.path.join(self.dir, f"{name}.stderr"), "w")
            self.procs[name] = subprocess.Popen([shutil.which(name), "-D", "-f", self.conf, *extra],
                                                stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                                start_new_session=True)
            log.close()
        deadline = time.monotonic() + timeout
        while True:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited with {p.returncode}\n{self.logs()}")
            r = self._run("sinfo", "-h", "-o", "%T", check=False, timeout=10)
            if r.returncode == 0 and r.stdout.split() == ["idle"]:
                return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"the SLURM node is not idle after {timeout} s: {r.stdout}{r.stderr}\n"
                                   f"{self.logs()}")
            time.sleep(0.2)

    def logs(self, tail=30):
        out = []
        for name in ("slurmctld.log", "slurmd.log", "slurmctld.stderr", "slurmd.stderr"):
            p = os.path.join(self.dir, name)
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    lines = f.read().splitlines()[-tail:]
                out.append(f"--- {name}\n" + "\n".join(lines))
        return "\n".join(out)

    def submit(self, cmd, cwd, env=None, drop=()):
        """Run a submitting command (``sbatch --parsable ...`` or ``qsub ...``) in ``cwd`` with the
        clients' environment plus ``env`` less ``drop``; returns the job id."""
        env = {k: v for k, v in dict(self.env, **(env or {})).items() if k not in drop}
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd=cwd, env=env)
        m = re.search(r"^(\d+)", r.stdout.strip().splitlines()[-1] if r.stdout.strip() else "")
        if r.returncode != 0 or not m:
            raise RuntimeError(f"{' '.join(map(str, cmd))}: exit {r.returncode}: {r.stdout}{r.stderr}")
        return m.group(1)

    def job(self, jobid):
        """``scontrol show job -o`` as a dict (JobState, ExitCode, StdOut, NumTasks, ...)."""
        r = self._run("scontrol", "show", "job", "-o", str(jobid))
        fields = {}
        for tok in r.stdout.split():
            k, sep, v = tok.partition("=")
            if sep:
                fields[k] = v
        return fields

    def wait(self, jobid, timeout=120):
        """Poll until the job reaches a final state (or waits for a job that failed); returns its
        scontrol fields."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.job(jobid)
            if info.get("JobState") in FINAL or info.get("Reason") == "DependencyNeverSatisfied":
                return info
            if time.monotonic() > deadline:
                self._run("scancel", str(jobid), check=False)
                raise RuntimeError(f"job {jobid} not finished after {timeout} s: {info}\n{self.logs()}")
            time.sleep(0.2)

    def stop(self, timeout=20):
        if not self.procs:
            return
        try:
            self._run("scancel", "--full", "-p", "debug", check=False, timeout=10)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                r = self._run("squeue", "-h", check=False, timeout=10)
                if r.returncode != 0 or not r.stdout.strip():
                    break
                time.sleep(0.2)
            self._run("scontrol", "shutdown", check=False, timeout=10)
        except (OSError, subprocess.SubprocessError):
            pass
        for name in ("slurmd", "slurmctld"):
            p = self.procs.get(name)
            if p is None:
                continue
            if p.poll() is None:
                p.terminate()
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout)
        self.procs = {}
