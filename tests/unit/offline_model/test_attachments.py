"""The offline model decodes the files it is sent: each image format's pixel size, a PDF's pages (plain or in
compressed object streams), and what it cannot read; and counts them as input the way a server does."""

from __future__ import annotations

import base64
import zlib

import pytest

from scripts.local_stack.offline_model.attachments import describe_files, file_tokens, pdf_pages
from tests.attachment_files import image_bytes, pdf_bytes

TIMES = "\u00d7"


def _message(*parts: dict[str, object]) -> dict[str, object]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "what"}, *parts]}


def _image(data: bytes, content_type: str = "image/png") -> dict[str, object]:
    return {"type": "input_image", "image_url": f"data:{content_type};base64,{base64.b64encode(data).decode()}"}


@pytest.mark.parametrize("kind", ["PNG", "JPEG", "GIF", "WEBP"])
def test_every_image_format_is_answered_with_its_pixel_size(kind: str) -> None:
    answer = describe_files(_message(_image(image_bytes(17, 9, kind))))
    assert answer == f"I received an image of 17{TIMES}9 pixels ({kind})."


def test_pdf_pages_are_counted_plain_and_in_compressed_object_streams() -> None:
    assert pdf_pages(pdf_bytes(4)) == 4
    hidden = b"%PDF-1.5\n1 0 obj\n<< /Length 0 /Filter /FlateDecode >>\nstream\n"
    hidden += zlib.compress(b"<< /Type /Page >> << /Type /Page >> << /Type /Pages >>") + b"\nendstream\n"
    assert pdf_pages(hidden) == 2
    assert pdf_pages(b"not a pdf") is None
    part = {"type": "input_file", "filename": "r.pdf", "file_data": "data:application/pdf;base64,"}
    part["file_data"] = str(part["file_data"]) + base64.b64encode(pdf_bytes(1)).decode()
    assert describe_files(_message(part)) == "I received a PDF of 1 page (r.pdf)."


def test_several_files_and_what_cannot_be_read() -> None:
    answer = describe_files(
        _message(_image(image_bytes(2, 2)), _image(b"<html>", "image/png"), {"type": "input_file", "file_data": "x"})
    )
    assert answer == (
        f"I received 3 files: an image of 2{TIMES}2 pixels (PNG); an image I could not decode; "
        "a file I could not fetch or decode."
    )
    assert describe_files({"type": "message", "role": "user", "content": "just text"}) is None


def test_files_count_as_input_like_a_servers_tiles_and_pages() -> None:
    assert file_tokens(_message(_image(image_bytes(3, 2)))) == 85 + 170
    assert file_tokens(_message(_image(image_bytes(1024, 600)))) == 85 + 170 * 2 * 2
    pdf = {"type": "input_file", "file_data": "data:application/pdf;base64," + base64.b64encode(pdf_bytes(3)).decode()}
    assert file_tokens(_message(pdf)) == 3 * 1000
