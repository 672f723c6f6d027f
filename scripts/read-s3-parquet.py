#!/usr/bin/env python3
"""Reads every Parquet object under s3://BUCKET/PREFIX with pyarrow, an engine that is not
KalamDB's, and prints one JSON line: {"files": N, "rows": M, "columns": [...]}.

Usage: read-s3-parquet.py ENDPOINT BUCKET PREFIX
(credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, region us-east-1). The object
storage tests run it against their loopback server to show that the cold tier is plain
Parquet on S3.
"""
import json
import sys
from urllib.parse import urlparse

import pyarrow.dataset as ds
import pyarrow.fs as pafs


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    endpoint, bucket, prefix = sys.argv[1:]
    url = urlparse(endpoint)
    fs = pafs.S3FileSystem(
        endpoint_override=url.netloc,
        scheme=url.scheme or "https",
        region="us-east-1",
    )
    selector = pafs.FileSelector(f"{bucket}/{prefix.strip('/')}", recursive=True)
    files = sorted(
        info.path for info in fs.get_file_info(selector) if info.path.endswith(".parquet")
    )
    dataset = ds.dataset(files, filesystem=fs, format="parquet")
    table = dataset.to_table()
    print(json.dumps({"files": len(files), "rows": table.num_rows, "columns": table.column_names}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
