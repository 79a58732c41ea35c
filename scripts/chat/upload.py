"""Attaching a file: the browser-style ``multipart/form-data`` POST to the presigned S3 URL the server grants."""

from __future__ import annotations

from collections.abc import Mapping


def post_upload(url: str, fields: Mapping[str, str], file_name: str, content_type: str, data: bytes) -> tuple[int, str]:
    """POST ``fields`` and then the file as ``multipart/form-data`` (S3 wants the file last); status and body."""
    import urllib.error
    import urllib.request
    import uuid

    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    safe_name = file_name.replace('"', "_").replace("\r", "_").replace("\n", "_")
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{safe_name}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    request = urllib.request.Request(  # noqa: S310 - the presigned URL the server gave
        url, data=b"".join(parts), method="POST", headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:  # noqa: S310
            return int(answer.status), answer.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode(errors="replace")
