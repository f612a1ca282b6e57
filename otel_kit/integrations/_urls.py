"""The query parameters whose values `url.full` must not carry, as the conventions list them now.

opentelemetry-util-http's `PARAMS_TO_REDACT` predates the AWS SigV4 entries the semantic
conventions added (semantic-conventions#3779): a presigned S3 URL fetched with requests or
httpx exported its signature and session token. `redact_url` reads the list at call time,
so extending it in place covers every HTTP client instrumentation, ours and contrib's.
"""

from opentelemetry.util import http as util_http

_SIGV4 = ("X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token")


def redact_sigv4_parameters() -> None:
    for parameter in _SIGV4:
        if parameter not in util_http.PARAMS_TO_REDACT:
            util_http.PARAMS_TO_REDACT.append(parameter)
