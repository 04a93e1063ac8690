"""The unmodified published JS client (``@textile/threads-client`` 2.3.4) against the daemon.

``tests/js/daemon_client.cjs`` runs issue 6's scenario through the client's default
websocket transport on the daemon's proxy port, and again with improbable-eng's
``NodeHttpTransport`` (HTTP grpc-web) for every call but the bidirectional streams
(GetToken and the transactions, which only websockets carry): getToken with a new identity,
newDB, newCollection with a JSON schema and a unique index, create (with and without ``_id``),
find with ``{}``/eq/or/sort/skip/limit, findByID, save, delete, has, listen, write and read
transactions, verify, a schema and a unique violation, updateCollection, getCollectionInfo,
getCollectionIndexes, listCollections, deleteCollection, getDBInfo, listDBs, deleteDB, and
go-threads' error texts. Like tests/interop, this needs node and ``npm ci --prefix tests/js``;
without them it fails and says so.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from api_procs import Daemon

pytestmark = [pytest.mark.slow, pytest.mark.js]

JS_DIR = Path(__file__).resolve().parent.parent / "js"
INSTALL_HINT = "run `npm ci --prefix tests/js` (needs node >= 18 on PATH)"


def _run_client(proxy: str, transport: str) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"node is not on PATH; {INSTALL_HINT}", pytrace=False)
    if not (JS_DIR / "node_modules" / "@textile" / "threads-client" / "package.json").is_file():
        pytest.fail(f"@textile/threads-client is not installed; {INSTALL_HINT}", pytrace=False)
    proc = subprocess.run(
        [node, str(JS_DIR / "daemon_client.cjs"), f"http://{proxy}", transport],
        capture_output=True,
        text=True,
        cwd=JS_DIR,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


@pytest.mark.parametrize("transport", ["ws", "http"])
def test_published_js_client_scenario(daemon: Daemon, transport: str) -> None:
    out = _run_client(daemon.proxy, transport)
    assert out["token"].count(".") == 2  # a JWT
    assert out["dbAgain"] == "db already exists"
    assert out["collectionAgain"] == "collection already registered"
    created, given = out["ids"]
    assert given == "given-id" and created
    assert out["all"] == ["ada", "bob"]
    assert out["older"] == ["ada"]
    assert out["eq"] == ["given-id"]
    assert out["or"] == ["ada", "bob"]
    assert out["sorted"] == ["bob", "ada"] and out["sortedDesc"] == ["ada", "bob"]
    assert out["skip"] == ["ada"] and out["limit"] == ["ada"]
    assert out["verifyBad"].startswith("instance doesn't correspond to schema")
    assert out["verifyGood"] is None
    assert out["createBad"].startswith("instance doesn't correspond to schema")
    assert out["uniqueBad"].startswith("unique constraint violation")
    assert out["afterBad"] == ["ada", "bob"]  # neither rejected write left anything behind
    assert out["bob"]["name"] == "bob"
    assert out["bobSaved"] == 21
    assert out["hasDeleted"] is False and out["hasBob"] is True
    assert out["txUncommitted"] is False and out["txCommitted"] is True
    assert out["readHas"] is True and out["readFind"] == ["bob", "cy"]
    events = out["events"]
    assert events[:4] == [
        f"CREATE {created}",
        "CREATE given-id",
        "SAVE given-id",
        f"DELETE {created}",
    ]
    assert len(events) == 5 and events[4].startswith("CREATE ")
    assert {"id": out["dbID"], "name": "jsdb"} in out["dbs"]

    info = out["info"]
    assert info["name"] == "Person"
    assert set(info["schema"]["properties"]) == {"_id", "name", "age", "email", "team"}
    expected_indexes = [{"path": "email", "unique": True}, {"path": "team", "unique": False}]
    assert info["indexes"] == expected_indexes == out["indexes"]
    assert info["writeValidator"] == "" and info["readFilter"] == ""
    assert out["collections"] == ["Person", "Scratch"]
    assert out["collectionsAfter"] == ["Person"]
    assert out["findDeleted"].startswith("collection not found")
    db_info = out["dbInfo"]
    assert db_info["key"] and db_info["addrs"]
    assert all(a.endswith(f"/thread/{out['dbID']}") for a in db_info["addrs"])
    assert out["dbID"] not in out["dbsAfter"]
    assert out["findAfterDelete"].startswith("db not found")
