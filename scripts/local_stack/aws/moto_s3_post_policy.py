"""moto's S3, made to check a browser-based upload's POST policy as S3 does (:func:`enforce_s3_post_policy`).

Part of :mod:`scripts.local_stack.aws.moto_patches`, which applies it when moto starts.
"""

from __future__ import annotations

from typing import Any


def enforce_s3_post_policy() -> None:
    """Make moto's S3 check a browser-based upload's POST policy as S3 does (process-wide, idempotent).

    moto 5.2.5 stores whatever a ``multipart/form-data`` POST to a bucket carries: it reads neither the ``policy``
    nor its signature, so an upload of another type, another size or under another key than the server signed would
    pass locally and fail in AWS. S3's rules ("Creating a POST policy", Amazon S3 API Reference,
    https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html, and "Authenticating requests:
    browser-based uploads using POST",
    https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-UsingHTTPPOST.html), enforced here:

    - the policy is base64 JSON with an ``expiration`` (ISO 8601) after which the form is refused;
    - ``x-amz-signature`` is the SigV4 HMAC of the base64 policy with the key derived from the secret key (moto's
      fixed ``testing``), the date, region and service of ``x-amz-credential``: a policy the client edits fails;
    - every condition must hold: exact matches (``{"field": value}`` or ``["eq", "$field", value]``),
      ``["starts-with", "$field", prefix]`` and ``["content-length-range", min, max]`` on the file's size
      (``EntityTooSmall`` / ``EntityTooLarge`` otherwise);
    - "Each form field that you specify in a form (except x-amz-signature, file, policy, and field names that have
      an x-ignore- prefix) must appear in the list of conditions": a field the policy does not name is refused.

    Refusals are 403 ``AccessDenied`` ("Invalid according to Policy: ...") or 400 for the size, with S3's XML error.
    Anonymous form posts without a policy are refused too (the local bucket, like ours in AWS, is private).
    """
    from moto.s3.responses import S3Response

    original = S3Response._bucket_response_post
    if getattr(original, "_post_policy", False):
        return

    def checked(self: Any, request: Any, bucket_name: str) -> Any:
        form = getattr(self, "form_data", None)
        if (request.method == "POST" and form is not None and "policy" in form) or (form and "key" in form):
            refusal = _post_policy_refusal(dict(form.items()), bucket_name, len(self.body or b""))
            if refusal is not None:
                status, code, message = refusal
                body = (
                    '<?xml version="1.0" encoding="UTF-8"?>\n'
                    f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
                )
                return status, {"Content-Type": "application/xml"}, body
        return original(self, request, bucket_name)

    checked._post_policy = True  # type: ignore[attr-defined]
    S3Response._bucket_response_post = checked  # type: ignore[method-assign]


#: The secret key of moto's fake credentials (``scripts.local_stack.aws.moto_server.FAKE_CREDENTIALS``).
_MOTO_SECRET_KEY = "testing"  # noqa: S105 - moto's fixed fake credential, not a secret


def _post_policy_refusal(form: dict[str, str], bucket: str, size: int) -> tuple[int, str, str] | None:
    import base64
    import datetime
    import hashlib
    import hmac
    import json

    def denied(why: str) -> tuple[int, str, str]:
        return 403, "AccessDenied", f"Invalid according to Policy: {why}"

    encoded = form.get("policy") or form.get("Policy")
    if not encoded:
        return 403, "AccessDenied", "Anonymous access is forbidden for this operation"
    credential = form.get("x-amz-credential", "")
    parts = credential.split("/")
    if form.get("x-amz-algorithm") != "AWS4-HMAC-SHA256" or len(parts) != 5:
        return 403, "AccessDenied", "Only SigV4 (AWS4-HMAC-SHA256) POST policies are accepted"
    _, day, region, service, terminal = parts
    signing_key = f"AWS4{_MOTO_SECRET_KEY}".encode()
    for piece in (day, region, service, terminal):
        signing_key = hmac.new(signing_key, piece.encode(), hashlib.sha256).digest()
    expected = hmac.new(signing_key, encoded.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, form.get("x-amz-signature", "")):
        return (
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )
    try:
        policy = json.loads(base64.b64decode(encoded))
        expiration = datetime.datetime.fromisoformat(str(policy["expiration"]).replace("Z", "+00:00"))
    except (ValueError, KeyError, TypeError):
        return 400, "InvalidPolicyDocument", "Invalid Policy: the policy is not valid base64 JSON with an expiration."
    if expiration < datetime.datetime.now(datetime.UTC):
        return denied("Policy expired.")
    values = {name.lower(): value for name, value in form.items()}
    values["bucket"] = bucket
    covered = {"x-amz-signature", "file", "policy"}
    for condition in policy.get("conditions", []):
        if isinstance(condition, dict):
            for name, value in condition.items():
                covered.add(name.lower())
                if values.get(name.lower()) != value:
                    return denied(f'Policy Condition failed: ["eq", "${name}", "{value}"]')
        elif isinstance(condition, list) and condition and condition[0] == "content-length-range":
            low, high = int(condition[1]), int(condition[2])
            if size < low:
                return 400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size"
            if size > high:
                return 400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size"
        elif isinstance(condition, list) and len(condition) == 3 and condition[0] in ("eq", "starts-with"):
            name = str(condition[1]).lstrip("$").lower()
            covered.add(name)
            actual = values.get(name, "")
            ok = actual == condition[2] if condition[0] == "eq" else actual.startswith(str(condition[2]))
            if not ok:
                return denied(f'Policy Condition failed: ["{condition[0]}", "{condition[1]}", "{condition[2]}"]')
    uncovered = sorted(
        name for name in values if name not in covered and name != "bucket" and not name.startswith("x-ignore-")
    )
    if uncovered:
        return denied(f"Extra input fields: {', '.join(uncovered)}")
    return None
