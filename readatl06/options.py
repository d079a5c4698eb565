"""Argument groups that several commands share (selection by file name, remote access, merge
memory). argparse only: building the parser imports nothing heavy."""
import argparse

EPILOG = ("SOURCE: file, folder (recursive *.h5), quoted glob, @list.txt (paths or URLs), "
          "ssh://[user@]host[:port]/path/glob, s3://bucket/prefix, https://host/path/granule.h5")


def add_inputs(p, outdir=None):
    """SOURCE... (with the SOURCE forms as the epilog), ``-o/--outdir`` named ``outdir`` when the
    command writes a folder, and the selection by file name."""
    p.epilog = EPILOG
    p.add_argument("sources", nargs="+", metavar="SOURCE")
    if outdir:
        p.add_argument("-o", "--outdir", required=True, metavar=outdir)
    add_selection(p)


def add_selection(p):
    g = p.add_argument_group("selection (file names only)")
    g.add_argument("--start", metavar="T", help="ISO-8601 date or date-time (UTC), inclusive")
    g.add_argument("--end", metavar="T", help="ISO-8601 date or date-time (UTC), inclusive")
    g.add_argument("--segments", nargs="+", metavar="S", help="latitude regions 1-14, e.g. 10 11 12 or 10-12")
    g.add_argument("--rgts", nargs="+", metavar="N", help="reference ground tracks (lists or ranges)")
    g.add_argument("--cycles", nargs="+", metavar="N", help="cycles (lists or ranges)")
    g.add_argument("--releases", nargs="+", metavar="VVV", help="releases, e.g. 006")
    g.add_argument("--all-releases", action="store_true",
                   help="keep every release and revision of a granule (default: only the newest of each "
                        "RGT, cycle and region; the others are named in one line)")


def add_remote(p, scratch=False):
    g = p.add_argument_group("remote sources (ssh://, s3://, https://)")
    g.add_argument("--ssh-key", metavar="FILE", help="private key (default: the ssh agent and ~/.ssh keys); "
                   "a password only from READATL06_SSH_PASSWORD or a prompt")
    g.add_argument("--known-hosts", metavar="FILE", help="host keys to trust (default ~/.ssh/known_hosts)")
    g.add_argument("--ssh-accept-new", action="store_true",
                   help="trust and record the key of a host seen for the first time (a changed key is always refused)")
    g.add_argument("--s3-endpoint", metavar="URL", help="an S3-compatible store (credentials: the AWS chain)")
    g.add_argument("--s3-anon", action="store_true", help="unsigned S3 requests (public buckets)")
    if scratch:
        g.add_argument("--scratch", metavar="DIR", help="stage remote granules here when they cannot be read "
                       "in place (deleted after reduction; default: the system's temporary folder)")


MAX_MB = 1e9                     # a petabyte: more is a typo (and inf overflows the buffer sizes)


def megabytes(text):
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= MAX_MB:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive number of MB, at most {MAX_MB:.0e}")
    return value


def jobs(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of processes (0: all cores)")
    return value


def add_jobs(g):
    g.add_argument("-j", "--jobs", type=jobs, metavar="N",
                   help="without mpirun: N local worker processes with the same schedule and outputs "
                        "as N MPI ranks (0: all cores); refused under mpirun, whose ranks are the workers")


def add_merge_memory(g):
    g.add_argument("--merge-memory", type=megabytes, default=512, metavar="MB",
                   help="memory per rank for the merge's buffers (default 512): beyond it the merge writes "
                        "in rounds and reads tracks back from the per-beam files")


def configure_remote(args):
    """The process-wide remote options from the command line, on every rank (imports no protocol)."""
    from readatl06.sources import remote
    remote.configure(args)
