"""The one error table (threadkit.api.wire): what the daemon sends, tk.Client reads back."""

from __future__ import annotations

import grpc
import pytest

from threadkit import errors
from threadkit.api import client, server, wire


@pytest.mark.parametrize("row", wire.ERROR_TABLE, ids=lambda r: r.kind.__name__)
def test_each_row_round_trips_without_the_class_trailer(row: wire.ErrorRow) -> None:
    code, message = wire.status_for(row.kind("detail"))
    assert code is row.code
    assert message == row.text if row.exact else message == f"{row.text}: detail"
    back = wire.error_from_text(message, code)
    if row.client_kind is not None:
        assert type(back) is row.client_kind
    else:  # by the status code: the row's class or one of its bases
        assert isinstance(row.kind("x"), type(back))
        assert type(back) is not errors.ThreadkitError or code in (
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            grpc.StatusCode.DATA_LOSS,
        )


def test_both_sides_use_the_wire_module() -> None:
    assert server.status_for is wire.status_for
    assert client.error_from_text is wire.error_from_text
    assert server.ERROR_CLASS_KEY == wire.ERROR_CLASS_KEY == "x-threadkit-error"
    assert server.DEFAULT_MAX_MESSAGE == client.DEFAULT_MAX_MESSAGE == wire.MAX_MESSAGE
    assert wire.MAX_MESSAGE == 16 * 1024 * 1024


def test_exact_texts_come_first() -> None:
    # DBNotFound is a ThreadNotFound; ThreadExists is matched whole, before AlreadyExists
    assert wire.status_for(errors.DBNotFound("x"))[1] == "db not found: x"
    assert wire.status_for(errors.ThreadExists("x")) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "db already exists",
    )
    assert wire.status_for(ValueError("v"))[0] is grpc.StatusCode.INTERNAL
    assert wire.status_for(errors.FeedClosed("f")) == (grpc.StatusCode.UNKNOWN, "f")
