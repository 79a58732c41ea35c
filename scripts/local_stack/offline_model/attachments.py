"""What the offline model makes of a message's ``input_image`` and ``input_file`` parts: it really decodes them, so
a test can tell that the file itself reached the model (not just its name).

An image's pixel size comes from Pillow (which reads each format's header: PNG's IHDR, JPEG's SOF marker, GIF's
logical screen, WebP's VP8/VP8L/VP8X chunk), deliberately not from the product's own sniffer
(``assistant.attachments``), so the two sides of the test are written independently. A PDF's pages are its page
objects (``/Type /Page``, not ``/Pages``), counted in the file as sent, or in its object streams when the file
compresses them.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import urllib.request
import zlib
from collections.abc import Mapping
from typing import Any

from PIL import Image, UnidentifiedImageError

__all__ = ["describe_files", "file_parts", "file_tokens"]

#: What a server counts for one image (OpenAI: 85 + 170 per 512-px tile; a small image is one tile).
_IMAGE_BASE_TOKENS = 85
_IMAGE_TILE_TOKENS = 170
_PDF_PAGE_TOKENS = 1_000
_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")
_STREAM = re.compile(rb"stream\r?\n(.*?)\r?\nendstream", re.S)
#: A file fetched by URL (a provider that fetches): a bound on what the demo model downloads.
_MAX_FETCH_BYTES = 50 * 1024 * 1024


def file_parts(item: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    content = item.get("content")
    if not isinstance(content, list):
        return []
    return [p for p in content if isinstance(p, Mapping) and p.get("type") in ("input_image", "input_file")]


def _data(part: Mapping[str, Any]) -> bytes | None:
    url = str(part.get("image_url") or part.get("file_data") or part.get("file_url") or "")
    if url.startswith("data:") and "," in url:
        try:
            return base64.b64decode(url.split(",", 1)[1], validate=True)
        except (binascii.Error, ValueError):
            return None
    if url.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - a URL the client chose to send
                return bytes(answer.read(_MAX_FETCH_BYTES))
        except OSError:
            return None
    return None


def _image_size(data: bytes) -> tuple[int, int, str] | None:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.width, image.height, str(image.format)
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def pdf_pages(data: bytes) -> int | None:
    if not data.startswith(b"%PDF-"):
        return None
    pages = len(_PAGE.findall(data))
    for stream in _STREAM.findall(data):
        try:
            pages += len(_PAGE.findall(zlib.decompress(stream)))
        except zlib.error:
            continue
    return pages


def _describe(part: Mapping[str, Any]) -> str:
    name = part.get("filename")
    named = f" ({name})" if name else ""
    data = _data(part)
    if data is None:
        return f"a file I could not fetch or decode{named}"
    if part.get("type") == "input_image":
        size = _image_size(data)
        if size is None:
            return f"an image I could not decode{named}"
        width, height, kind = size
        return f"an image of {width}×{height} pixels ({kind}){named}"  # noqa: RUF001 - the contract writes WxH with U+00D7
    pages = pdf_pages(data)
    if pages is None:
        return f"a file that is not a PDF{named}"
    return f"a PDF of {pages} page{'s' if pages != 1 else ''}{named}"


def describe_files(item: Mapping[str, Any]) -> str | None:
    """The answer to a user message with files: what each file is (``None``: the message has none)."""
    parts = file_parts(item)
    if not parts:
        return None
    described = [_describe(part) for part in parts]
    if len(described) == 1:
        return f"I received {described[0]}."
    return f"I received {len(described)} files: " + "; ".join(described) + "."


def file_tokens(item: Mapping[str, Any]) -> int:
    """What the files of an input message cost as input, the way a server counts them (OpenAI's tiles for an
    image, a flat amount per PDF page)."""
    total = 0
    for part in file_parts(item):
        data = _data(part) or b""
        if part.get("type") == "input_image":
            size = _image_size(data)
            tiles = 1 if size is None else max(1, -(-min(size[0], 2048) // 512) * -(-min(size[1], 2048) // 512))
            total += _IMAGE_BASE_TOKENS + _IMAGE_TILE_TOKENS * tiles
        else:
            total += _PDF_PAGE_TOKENS * max(1, pdf_pages(data) or 1)
    return total
