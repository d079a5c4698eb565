"""``s3://bucket/prefix`` SOURCEs through s3fs (botocore underneath).

Credentials come from the standard AWS chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
``AWS_PROFILE`` and ``~/.aws/credentials``/``config``, instance roles); ``--s3-anon`` sends unsigned
requests (public buckets), ``--s3-endpoint URL`` names an S3-compatible store (MinIO, Ceph, a
provider's endpoint). A prefix is a folder (``s3://b/atl06`` lists ``atl06/**/*.h5``), an object, or
a glob (``s3://b/atl06/ATL06_2019*.h5``). The ETag of an object uploaded in one part is its MD5:
``fetch`` verifies it.
"""
import glob as globmod
import os

from readatl06.sources.base import Entry, Reader, RemoteError, known

EXTENSIONS = (".h5", ".hdf5", ".he5")
CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                  "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "HOME")
_filesystems = {}


def parse(url):
    """(bucket, key) of ``s3://bucket/key`` (the key verbatim: ``?`` is a glob character here)."""
    rest = url[len("s3://"):]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise RemoteError(url, "no bucket: expected s3://bucket/prefix", permanent=True)
    return bucket, key


def filesystem(opts):
    """One S3FileSystem per endpoint, anon and credential settings in this process; few retries,
    short connect timeout."""
    ident = (opts.s3_endpoint, opts.s3_anon) + tuple(os.environ.get(v) for v in CREDENTIAL_ENV)
    if ident not in _filesystems:
        import s3fs
        _filesystems[ident] = s3fs.S3FileSystem(
            anon=opts.s3_anon, endpoint_url=opts.s3_endpoint, use_listings_cache=False,
            skip_instance_cache=True,
            config_kwargs={"connect_timeout": 5, "read_timeout": 60,
                           "retries": {"max_attempts": 2, "mode": "standard"}})
    return _filesystems[ident]


def close_all():
    _filesystems.clear()


def _error(url, exc, opts):
    """A RemoteError for what s3fs/botocore raised (permanent: missing bucket/key, denied, no credentials)."""
    name = type(exc).__name__
    text = str(exc).splitlines()[0] if str(exc) else name
    bucket = url[5:].partition("/")[0]
    if isinstance(exc, FileNotFoundError):
        if "bucket" in text.lower():
            return RemoteError(url, f"no such bucket {bucket!r}"
                               f"{' at ' + opts.s3_endpoint if opts.s3_endpoint else ''}", permanent=True)
        return RemoteError(url, "no such object", permanent=True)
    if isinstance(exc, PermissionError) or "NoCredentials" in name or "InvalidAccessKeyId" in text:
        if "NoCredentials" in name or "credentials" in text.lower() and "unable to locate" in text.lower():
            return RemoteError(url, "no AWS credentials found (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                               "AWS_PROFILE, ~/.aws/credentials); use --s3-anon for a public bucket", permanent=True)
        how = "unsigned requests (--s3-anon)" if opts.s3_anon else "the AWS credential chain"
        return RemoteError(url, f"access denied with {how}: {text}", permanent=True)
    if "EndpointConnectionError" in name or "ConnectTimeout" in name or "ClientConnector" in name \
            or isinstance(exc, (ConnectionError, TimeoutError)):
        where = opts.s3_endpoint or "the S3 endpoint"
        return RemoteError(url, f"cannot connect to {where} ({text})")
    if "InvalidEndpoint" in name or isinstance(exc, ValueError):
        return RemoteError(url, f"bad S3 endpoint {opts.s3_endpoint!r} ({text})", permanent=True)
    return RemoteError(url, f"S3 error: {text}")


def _errors():
    import botocore.exceptions
    return (OSError, ValueError, botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)


def _checksum(info):
    etag = str(info.get("ETag") or info.get("etag") or "").strip('"')
    if len(etag) == 32 and all(c in "0123456789abcdef" for c in etag.lower()):
        return ("md5", etag.lower())
    return None                  # multipart upload ("...-N") or no ETag: size only
    # (an ETag of 32 hex digits is no MD5 either for SSE-KMS and SSE-C objects, which a listing does
    # not tell: S3Reader.checksum_applies asks when a download's MD5 differs)


def _entry(path, info):
    return Entry(f"s3://{path}", int(info.get("size") or info.get("Size") or 0), _checksum(info))


def list_source(url, opts):
    bucket, key = parse(url)
    fs = filesystem(opts)
    path = f"{bucket}/{key}".rstrip("/")
    try:
        if globmod.has_magic(key):
            found = fs.glob(path, detail=True)
            files = {p: i for p, i in found.items() if i.get("type") != "directory"}
            for p, i in found.items():
                if i.get("type") == "directory":
                    files.update(_granules(fs.find(p, detail=True)))
            if not files:
                raise RemoteError(url, "matches nothing", permanent=True)
        else:
            found = fs.find(path, detail=True) if key else fs.find(bucket, detail=True)
            files = found if key and path in found else _granules(found)
            if not found:
                fs.ls(bucket)            # a missing bucket raises here (an empty one lists nothing)
                raise RemoteError(url, "no objects under this prefix", permanent=True)
    except RemoteError:
        raise
    except _errors() as exc:
        raise _error(url, exc, opts) from exc
    return [_entry(p, i) for p, i in sorted(files.items())]


def _granules(found):
    return {p: i for p, i in found.items() if p.lower().endswith(EXTENSIONS) and i.get("type") != "directory"}


class S3Reader(Reader):
    """Ranged GETs of one object (``cat_file`` with start/end)."""

    def __init__(self, url, opts):
        self.url, self.opts = url, opts
        bucket, key = parse(url)
        self.path = f"{bucket}/{key}"
        self.fs = filesystem(opts)
        entry = known(url)
        if entry is not None and entry.size is not None:
            self.size, self.checksum = entry.size, entry.checksum
        else:
            try:
                info = self.fs.info(self.path)
            except _errors() as exc:
                raise _error(url, exc, opts) from exc
            if info.get("type") == "directory":
                raise RemoteError(url, "is a prefix (folder), not an object", permanent=True)
            self.size, self.checksum = int(info["size"]), _checksum(info)

    def checksum_applies(self):
        """The ETag is the MD5 only of an object not encrypted with SSE-KMS or SSE-C (a HEAD says)."""
        bucket, key = parse(self.url)
        try:
            head = self.fs.call_s3("head_object", Bucket=bucket, Key=key)
        except _errors() as exc:
            raise _error(self.url, exc, self.opts) from exc
        return not (head.get("SSECustomerAlgorithm") or str(head.get("ServerSideEncryption", "")).startswith("aws:kms"))

    def read(self, start, end):
        try:
            return self.fs.cat_file(self.path, start=start, end=end)
        except _errors() as exc:
            raise _error(self.url, exc, self.opts) from exc


def open_reader(url, opts):
    return S3Reader(url, opts)
