"""Records of a key epoch: the header names the epoch, epoch 0 keeps its exact old form."""

from __future__ import annotations

import cbor2
import pytest

from threadkit.core.identity import Identity
from threadkit.core.keys import ThreadKey
from threadkit.core.records import create_record, open_record
from threadkit.core.symmetric import SymmetricKey
from threadkit.errors import DecryptionError, InvalidKey, MalformedRecord

LOG = Identity.generate()
KEY = ThreadKey.new()
EPOCH_KEY = ThreadKey(KEY.service_key, SymmetricKey.new())


def test_epoch_0_headers_are_the_bare_byte_string_of_before() -> None:
    record = create_record(b"\xa0", log_key=LOG, key=KEY)
    assert isinstance(cbor2.loads(record.blocks.header), bytes)
    assert record.epoch == 0 and record.read_body(KEY) == b"\xa0"


def test_a_later_epoch_is_named_in_the_header_and_read_with_its_key() -> None:
    record = create_record(b"\xa0", log_key=LOG, key=EPOCH_KEY, epoch=3)
    epoch, ciphertext = cbor2.loads(record.blocks.header)
    assert (epoch, type(ciphertext)) == (3, bytes)
    opened = open_record(record.blocks, service_key=KEY, log_key=LOG.public, cid=record.cid)
    assert opened.epoch == 3  # a replicator (service key only) checks and keeps it
    assert opened.read_body(EPOCH_KEY) == b"\xa0"
    with pytest.raises(DecryptionError):
        opened.read_body(KEY)  # the key of epoch 0 does not open it


@pytest.mark.parametrize("epoch", [-1, 2**63, "1", 1.0])
def test_an_epoch_out_of_range_is_refused(epoch: object) -> None:
    with pytest.raises(InvalidKey):
        create_record(b"\xa0", log_key=LOG, key=KEY, epoch=epoch)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "header", [[0, b"x" * 40], [1], [1, "text"], {"epoch": 1}, [True, b"x" * 40], 7]
)
def test_a_header_in_neither_form_is_malformed(header: object) -> None:
    record = create_record(b"\xa0", log_key=LOG, key=KEY)
    bad = record._replace(blocks=record.blocks._replace(header=cbor2.dumps(header)))
    with pytest.raises(MalformedRecord):
        _ = bad.epoch
    with pytest.raises(MalformedRecord):
        bad.read_body(KEY)
