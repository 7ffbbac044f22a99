"""Put a run's report into S3-compatible object storage: the opt-in second way results leave the cluster.

The aggregate Job runs this file's text in the evaluator image (`python -c <text>`, stdlib only: the image has no
AWS SDK), after `evaluator aggregate` and before the gate, when the stack sets `results.upload`. One PUT Object,
path-style (`<endpoint>/<bucket>/<key>`, which S3, MinIO and Ceph RGW accept), signed with AWS Signature Version 4
(the payload's SHA-256 signed too). Environment: EVAL_UPLOAD_FILE (the report), EVAL_UPLOAD_ENDPOINT,
EVAL_UPLOAD_BUCKET, EVAL_UPLOAD_KEY, EVAL_UPLOAD_REGION, and the credentials AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY from the Secret `results.upload.secret`. Exit 0 once stored (the object's ETag printed),
4 otherwise (the server's answer printed; the credentials never are): the aggregate Job then fails, so a report
that did not leave the cluster is never taken for one that did.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import posixpath
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

EXIT_INFRASTRUCTURE = 4
ALGORITHM = "AWS4-HMAC-SHA256"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sign(
    method: str, url: str, payload: bytes, access_key: str, secret_key: str, region: str, now: datetime.datetime
) -> dict[str, str]:
    """The headers of a SigV4-signed S3 request (host, x-amz-content-sha256, x-amz-date, Authorization)."""
    parts = urllib.parse.urlsplit(url)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    payload_hash = hashlib.sha256(payload).hexdigest()
    headers = {"host": parts.netloc, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        [
            method,
            urllib.parse.quote(parts.path or "/", safe="/-_.~"),
            parts.query,
            "".join(f"{k}:{headers[k].strip()}\n" for k in sorted(headers)),
            signed,
            payload_hash,
        ]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret_key}".encode(), day), region), "s3"), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (
        f"{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )
    return headers


def object_url(endpoint: str, bucket: str, key: str) -> str:
    return f"{endpoint.rstrip('/')}/{bucket}/{key.lstrip('/')}"


def put(
    path: str, endpoint: str, bucket: str, key: str, region: str, access_key: str, secret_key: str,
    content_type: str = "application/json",
) -> str:  # fmt: skip
    """PUT the file; returns the object's ETag, or raises OSError with the server's answer."""
    with open(path, "rb") as handle:
        payload = handle.read()
    url = object_url(endpoint, bucket, key)
    now = datetime.datetime.now(datetime.UTC)
    headers = sign("PUT", url, payload, access_key, secret_key, region, now)
    headers["Content-Type"] = content_type
    request = urllib.request.Request(url, data=payload, method="PUT", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return str(response.headers.get("ETag", ""))
    except urllib.error.HTTPError as exc:
        raise OSError(f"{url}: HTTP {exc.code}: {exc.read()[:500].decode(errors='replace')}") from None


def cases_file_of(report_path: str) -> str | None:
    """The cases file a report v5 names (`cases_file.path`, beside it), or None for a report with inline cases."""
    with open(report_path, encoding="utf-8") as handle:
        named = (json.load(handle).get("cases_file") or {}).get("path")
    return str(named) if named else None


def main() -> int:
    env = os.environ
    try:
        report, key = env["EVAL_UPLOAD_FILE"], env["EVAL_UPLOAD_KEY"]
        where = (env["EVAL_UPLOAD_ENDPOINT"], env["EVAL_UPLOAD_BUCKET"])
        region = env.get("EVAL_UPLOAD_REGION", "us-east-1")
        credentials = (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])
        # The cases first, then the report that names them: a reader never finds a report without its cases.
        cases = cases_file_of(report)
        if cases is not None:
            cases_key = posixpath.join(posixpath.dirname(key), cases)
            put(str(Path(report).parent / cases), *where, cases_key, region, *credentials,
                content_type="application/gzip")  # fmt: skip
            print(f"upload: {where[1]}/{cases_key} stored", flush=True)
        etag = put(report, *where, key, region, *credentials)
    except KeyError as exc:
        print(f"upload: {exc.args[0]} is not set (results.upload and its Secret)", file=sys.stderr)
        return EXIT_INFRASTRUCTURE
    except (OSError, ValueError) as exc:
        print(f"upload: the report did not reach object storage: {exc}", file=sys.stderr)
        return EXIT_INFRASTRUCTURE
    print(f"upload: {where[1]}/{key} stored (ETag {etag})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
