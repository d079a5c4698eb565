"""Reading one file of an ``ssh://`` SOURCE over SFTP (connections and listing: :mod:`.ssh`)."""
from readatl06.sources.base import PIECE, Reader, RemoteError
from readatl06.sources.ssh import close_all, connect, parse, sftp_error


def open_reader(url, opts):
    return SFTPReader(url, opts)


class SFTPReader(Reader):
    """Random access to one remote file. Small ranges: plain SFTP reads on one unbuffered handle;
    larger ones and downloads: paramiko's pipelined prefetch on a fresh handle each time (its
    prefetch buffers are not safe to reuse across calls on one handle: leftovers stall ``readv``)."""

    def __init__(self, url, opts):
        self.url, self.opts = url, opts
        self.path = parse(url)[3]
        self.fh = None
        self._open()

    def _handle(self):
        try:
            return connect(self.url, self.opts).open(self.path, "rb", bufsize=0)
        except OSError as exc:
            raise sftp_error(self.url, exc) from exc

    def _open(self):
        self.fh = self._handle()
        try:
            self.size = self.fh.stat().st_size
        except OSError as exc:
            raise sftp_error(self.url, exc) from exc

    def _failed(self, exc):
        self.close()                   # the next try reconnects
        close_all()
        return sftp_error(self.url, exc)

    def read(self, start, end):
        import paramiko
        try:
            if self.fh is None:
                self._open()
            if end - start <= 2 * self.fh.MAX_REQUEST_SIZE:
                self.fh.seek(start)
                return self.fh.read(end - start)
            with self._handle() as fh:
                return b"".join(fh.readv([(start, end - start)]))
        except RemoteError:
            raise
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise self._failed(exc) from exc

    def stream(self, offset=0):
        import paramiko
        try:
            with self._handle() as fh:
                fh.seek(offset)
                fh.prefetch(self.size)
                pos = offset
                while pos < self.size:
                    piece = fh.read(min(PIECE, self.size - pos))
                    if not piece:
                        raise RemoteError(self.url, f"ended at byte {pos} of {self.size}")
                    pos += len(piece)
                    yield piece
        except RemoteError:
            raise
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise self._failed(exc) from exc

    def close(self):
        if self.fh is not None:
            try:
                self.fh.close()
            except (OSError, EOFError):
                pass
            self.fh = None
