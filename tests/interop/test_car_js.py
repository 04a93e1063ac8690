"""threadkit's database exports are standard CARv1 archives: IPLD's ``@ipld/car`` reads them.

One node process reads an export with ``CarReader`` and reports its roots and every block's
CID; each must be the CID threadkit wrote (CIDv1, dag-cbor, sha2-256) and hash its bytes.
Required like the other JS cross-checks: without node or ``tests/js/node_modules`` it fails
and says to run ``npm ci --prefix tests/js``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import threadkit as tk
from threadkit.core.cid import cid_to_string
from threadkit.store import car

pytestmark = pytest.mark.js

JS_DIR = Path(__file__).resolve().parent.parent / "js"
INSTALL_HINT = "run `npm ci --prefix tests/js` (needs node >= 18 on PATH)"


def test_ipld_car_reads_every_block_of_an_export(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"node is not on PATH; {INSTALL_HINT}", pytrace=False)
    if not (JS_DIR / "node_modules" / "@ipld" / "car" / "package.json").is_file():
        pytest.fail(f"@ipld/car is not installed; {INSTALL_HINT}", pytrace=False)
    with tk.Peer(memory=True) as peer:
        db = peer.new_db("cars")
        coll = db.new_collection("things")
        for i in range(6):
            coll.create({"_id": f"t{i}", "n": i, "s": "x" * i})
        coll.delete("t3")
        path = tmp_path / "db.car"
        summary = db.export(path, keys="service")
    with path.open("rb") as handle:
        roots, blocks = car.read_car(handle)
    proc = subprocess.run(
        [node, str(JS_DIR / "car_read.mjs"), str(path)],
        capture_output=True,
        text=True,
        cwd=JS_DIR,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"node car_read.mjs failed ({INSTALL_HINT}):\n{proc.stderr}", pytrace=False)
    seen = json.loads(proc.stdout)
    assert seen["version"] == 1
    assert seen["roots"] == [cid_to_string(r) for r in roots]
    assert len(seen["blocks"]) == summary.blocks == len(blocks)
    assert [b["cid"] for b in seen["blocks"]] == [cid_to_string(cid) for cid, _ in blocks]
    assert all(b["digestMatches"] for b in seen["blocks"])
    assert {(b["version"], b["codec"], b["hash"]) for b in seen["blocks"]} == {(1, 0x71, 0x12)}
    assert [b["size"] for b in seen["blocks"]] == [len(block) for _, block in blocks]
