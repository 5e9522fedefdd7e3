"""Memory over HTTP: upload (with progress), list, read, search, delete; bad files; feedback; and
the same through the `maos` command line (add, ask, export finetune, rebuild)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
from docx import Document

from maos_testing.llm.sim_thread import SimHandle, sim_llm_in_thread
from tests.e2e.conftest import Served
from tests.e2e.test_cli import maos

TRAVEL = """# Travel policy

## Booking
Book flights through the Skyline portal at least 14 days ahead. Economy class for flights under six hours.

## Expenses
Hotel nights are reimbursed up to 180 dollars in most cities and 260 dollars in London, New York and Tokyo.
Submit receipts in the Ledgerly app within 30 days of the trip.
"""


def docx_bytes(tmp_path: Path) -> bytes:
    doc = Document()
    doc.add_heading("Escalation ladder", level=1)
    doc.add_paragraph("A ticket open longer than 48 hours goes to the on-call lead, Marcus Webb.")
    doc.add_heading("Severity one", level=2)
    doc.add_paragraph("Outages affecting every customer page the CTO immediately by phone.")
    path = tmp_path / "escalation.docx"
    doc.save(str(path))
    return path.read_bytes()


def wait_ready(api: httpx.Client, doc_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    seen: list[int] = []
    while time.monotonic() < deadline:
        doc = api.get(f"/api/documents/{doc_id}").json()["document"]
        seen.append(doc["chunks_done"])
        if doc["status"] != "indexing":
            assert doc["status"] == "ready", doc
            assert seen == sorted(seen)  # progress only goes forward
            return dict(doc)
        time.sleep(0.05)
    raise AssertionError(f"document {doc_id} was not indexed in time")


def test_documents_upload_list_search_delete_and_bad_files(served: Served, tmp_path: Path) -> None:
    with served.client(60) as api:
        r = api.post("/api/documents", files={"file": ("travel.md", TRAVEL.encode(), "text/markdown")},
                     data={"kind": "sop", "tags": "Finance, travel"})
        assert r.status_code == 202, r.text
        travel = r.json()["document"]
        assert travel["status"] == "indexing" and travel["kind"] == "sop" and travel["chunks"] >= 1
        assert wait_ready(api, travel["id"])["tags"] == ["finance", "sop", "travel"]

        r = api.post("/api/documents", files={"file": ("escalation.docx", docx_bytes(tmp_path),
                                                       "application/octet-stream")})
        assert r.status_code == 202, r.text
        escalation = wait_ready(api, r.json()["document"]["id"])
        assert escalation["title"] == "Escalation ladder"

        again = api.post("/api/documents", files={"file": ("copy.md", TRAVEL.encode(), "text/markdown")},
                         data={"kind": "sop"})
        assert again.status_code == 200 and again.json()["duplicate"] is True
        assert again.json()["document"]["id"] == travel["id"]

        listed = api.get("/api/documents").json()
        assert [d["id"] for d in listed if d["id"] in (travel["id"], escalation["id"])] == [
            escalation["id"], travel["id"]]
        assert [d["id"] for d in api.get("/api/documents", params={"kind": "sop"}).json()] == [travel["id"]]
        view = api.get(f"/api/documents/{travel['id']}").json()
        assert "Ledgerly" in view["content"]

        hits = api.get("/api/memory/search", params={"q": "how much can I spend on a hotel in London?"}).json()
        assert hits[0]["source_id"] == travel["id"] and "260 dollars" in hits[0]["snippet"]
        assert hits[0]["link"] == f"/api/documents/{travel['id']}" and hits[0]["collection"] == "sops"
        hits = api.get("/api/memory/search", params={"q": "who handles tickets older than two days",
                                                     "collection": "documents"}).json()
        assert hits and hits[0]["source_id"] == escalation["id"] and "Marcus Webb" in hits[0]["snippet"]
        stats = api.get("/api/memory/stats").json()
        assert stats["collections"]["sops"] >= 1 and stats["embedder"]

        for name, data, why in [("empty.md", b"", "empty"), ("scan.pdf", b"%PDF-1.4 broken", "pdf"),
                                ("tool.exe", b"MZ", "supported")]:
            bad = api.post("/api/documents", files={"file": (name, data, "application/octet-stream")})
            assert bad.status_code == 422, bad.text
            assert name in bad.json()["detail"] and why in bad.json()["detail"].lower()
        assert len(api.get("/api/documents").json()) == len(listed)  # nothing half-stored
        bad_kind = api.post("/api/documents", files={"file": ("a.md", b"# A\ntext", "text/markdown")},
                            data={"kind": "secret"})
        assert bad_kind.status_code == 422 and "kind" in bad_kind.json()["detail"]

        assert api.delete(f"/api/documents/{travel['id']}").status_code == 204
        assert api.get(f"/api/documents/{travel['id']}").status_code == 404
        assert api.delete(f"/api/documents/{travel['id']}").status_code == 404
        hits = api.get("/api/memory/search", params={"q": "hotel in London", "limit": 10}).json()
        assert travel["id"] not in {h["source_id"] for h in hits}


def test_feedback_over_http(served: Served) -> None:
    with served.client(60) as api:
        run_id = api.post("/api/runs", json={"message": "research the otter market"}).json()["run_id"]
        early = api.post(f"/api/runs/{run_id}/feedback", json={"rating": "up"})
        deadline = time.monotonic() + 120
        while api.get(f"/api/runs/{run_id}").json()["run"]["status"] not in ("done", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert early.status_code in (200, 409)  # 409 while it runs
        bad = api.post(f"/api/runs/{run_id}/feedback", json={"correction": {
            "goal": "x", "steps": [{"id": "s1", "agent": "emial", "instruction": "do it"}]}})
        assert bad.status_code == 422 and "emial" in bad.json()["detail"]
        good = api.post(f"/api/runs/{run_id}/feedback", json={"rating": "down", "comment": "too thin"})
        assert good.status_code == 200, good.text
        assert good.json()["rating"] == "down" and good.json()["usable"] is False
        learning = api.get(f"/api/runs/{run_id}/learning").json()
        assert learning["comment"] == "too thin" and learning["outcome"] == "done"
        assert api.post("/api/runs/nope/feedback", json={"rating": "up"}).status_code == 404


def test_memory_and_finetune_export_from_the_command_line(tmp_path: Path) -> None:
    sop = tmp_path / "travel.md"
    sop.write_text(TRAVEL)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    out = tmp_path / "examples.jsonl"
    with sim_llm_in_thread() as sim:
        env = _env(tmp_path, sim)
        added = maos(["memory", "add", str(sop), "--sop"], env)
        assert added.returncode == 0, added.stderr[-3000:]
        assert "stored" in added.stdout
        refused = maos(["memory", "add", str(empty)], env)
        assert refused.returncode == 2 and "empty.txt" in refused.stderr
        done = maos(["ask", "--json", "what is the procedure for hotel expenses in London?"], env)
        assert done.returncode == 0, done.stderr[-3000:]
        sources = json.loads(done.stdout)["sources"]  # the answer names the memories it was given
        assert any(s["collection"] == "sops" and s["heading"] == "Travel policy > Expenses"
                   and s["link"].startswith("/api/documents/") for s in sources), sources
        assert "Sources (" in done.stderr and "[sops] Travel policy › Travel policy > Expenses" in done.stderr
        exported = maos(["export", "finetune", "--out", str(out)], env)
        assert exported.returncode == 0, exported.stderr[-3000:]
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert rows and all([m["role"] for m in r["messages"]] == ["system", "user", "assistant"] for r in rows)
        assert "master: 1" in exported.stdout and "sops: " in exported.stdout
        # one person's at a time: another account's (none rated), an unknown one refused
        assert maos(["users", "add", "bea"], env).returncode == 0
        theirs = maos(["export", "finetune", "--out", str(tmp_path / "bea.jsonl"), "--user", "bea"], env)
        assert theirs.returncode == 0 and "wrote 0 examples" in theirs.stdout, theirs.stderr[-3000:]
        nobody = maos(["export", "finetune", "--out", str(tmp_path / "x.jsonl"), "--user", "nobody"], env)
        assert nobody.returncode == 2 and "no account 'nobody'" in nobody.stderr
        rebuilt = maos(["memory", "rebuild"], env)
        assert rebuilt.returncode == 0 and "sops" in rebuilt.stdout, rebuilt.stderr[-3000:]


def _env(tmp_path: Path, sim: SimHandle) -> dict[str, str]:
    env = {**os.environ, "MAOS_DATA_DIR": str(tmp_path / "data"), "MAOS_LLM_PROVIDER": "ollama",
           "MAOS_LLM_BASE_URL": sim.base_url, "MAOS_LLM_MODEL": "sim-model", "OLLAMA_API_BASE": sim.base_url,
           "MAOS_RAY_NUM_CPUS": "2"}
    env.pop("RAY_ADDRESS", None)
    return env
