"""moto's S3 server (`python3 -m moto.server`) with one fix, for the tests.

When asked to check signatures (INITIAL_NO_AUTH_ACTION_COUNT), moto 5.2 recomputes each
request's SigV4 signature from the query string as its web server decoded it, so any signed
request whose query holds an escaped character (a listing with `prefix=a%2Fb`, as every S3
client sends it) fails with SignatureDoesNotMatch, boto3's included. Escaping the query again,
as SigV4's canonical request does, makes moto accept exactly what S3 accepts. Nothing else
changes.
"""

import sys
from urllib.parse import quote

from moto.iam import access_control
from moto.server import main

_create_aws_request = access_control.IAMRequestBase._create_aws_request


def _escaped_query(self):
    path, sep, query = self._path.partition("?")
    if sep:
        pairs = []
        for pair in query.split("&"):
            key, eq, value = pair.partition("=")
            pairs.append(quote(key, safe="-_.~") + eq + quote(value, safe="-_.~"))
        self._path = path + "?" + "&".join(pairs)
    return _create_aws_request(self)


access_control.IAMRequestBase._create_aws_request = _escaped_query

if __name__ == "__main__":
    main(sys.argv[1:])
