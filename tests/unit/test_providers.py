"""The provider seam (``integrations.registry``): a texting provider defined and registered here,
in the test, with no product file edited for it, is listed by the registry, the Workspace, the
integrations routes, the CLI and the Integrations page; its action is proposed (checked by its
own model, summarised by it), approved and carried out once by the executor, and looked up, not
redone, on a later attempt; its status shows. Without it, texting fails clearly. (No Ray.)"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import gradio as gr
import httpx
import pytest
from fastapi import FastAPI
from pydantic import Field, SecretStr, field_validator

from actors.runtime.apis import WorkspaceApi
from actors.runtime.handles import LocalHandle
from actors.runtime.typed import typed
from actors.store import Store
from actors.workspace import Workspace
from core.action_args import ActionArgs
from core.action_schemas import ActionType, ActionView, ConnectStart, FeatureInfo, IntegrationView
from core.crypto import new_key_text
from core.errors import ToolError
from core.settings import Settings
from integrations import registry
from integrations.actions.executor import carry_out
from integrations.registry import ActionSpec, Host, NoProvider, Record
from serve_app import cli_google
from serve_app.google_routes import build_google_routes
from serve_app.user_limits import UserLimits
from ui import integration_views as iv
from ui.client import ApiClient
from ui.integrations import IntegrationHandlers, provider_sections


class Text(ActionArgs):
    """This provider's own argument model: numbers in E.164 only (core's texting model takes any)."""

    to: str = Field(min_length=8, max_length=16)
    body: str = Field(min_length=1, max_length=160)

    @field_validator("to")
    @classmethod
    def e164(cls, v: str) -> str:
        if not (v.startswith("+") and v[1:].isdigit()):
            raise ValueError("not an E.164 number (+ and digits)")
        return v


class FakeTexting:
    """A texting provider as a newcomer would write one: a module, its registration, its settings."""

    name: ClassVar[str] = "texting"
    label: ClassVar[str] = "Texting"
    description: ClassVar[str] = "SMS through a fake gateway"
    features: ClassVar[Mapping[str, str]] = {"sms_send": "Send texts you approve"}
    actions: ClassVar[Sequence[ActionSpec]] = (
        ActionSpec("send_text", Text, lambda a: f"SMS to {a['to']} ({len(a['body'])} characters)"),)
    gateway: ClassVar[dict[str, dict[str, Any]]] = {}  # action id → what the fake gateway sent

    def __init__(self, host: Host) -> None:
        self._host = host

    async def status(self, user_id: str) -> IntegrationView:
        stored = await self._host.credentials.load(user_id)
        features = [FeatureInfo(name="sms_send", label=self.features["sms_send"], scopes=["sms"],
                                enabled=stored is not None)]
        return IntegrationView(provider=self.name, label=self.label, status="connected" if stored else "disconnected",
                               account=stored.account if stored else None, features=features,
                               waiting_tasks=await self._host.waiting_tasks(user_id))

    async def connect_start(self, user_id: str, features: list[str] | None) -> ConnectStart:
        state = await self._host.credentials.put_state(user_id, features or ["sms_send"], "http://app/cb", "verifier")
        return ConnectStart(authorization_url=f"https://texting.example/consent?state={state}")

    async def connect_finish(self, state: str, code: str) -> str:
        user_id, _, _, _ = await self._host.credentials.take_state(state)
        row = await self._host.credentials.save(user_id, {"access_token": code, "refresh_token": None,
                                                          "expiry": None, "scopes": ["sms"]}, "+15550000001")
        await self._host.connected(user_id, subject_id=row, detail={})
        return user_id

    async def disconnect(self, user_id: str) -> None:
        await self._host.credentials.forget(user_id)

    async def account(self, user_id: str) -> str | None:
        return "+15550000001"

    async def ground(self, user_id: str, action: ActionType, args: dict[str, Any], by_person: bool) -> dict[str, Any]:
        return args

    async def perform(self, user_id: str, action: ActionType, args: dict[str, Any], action_id: str,
                      staged: dict[str, Any] | None, record: Record) -> dict[str, Any]:
        self.gateway[action_id] = {"to": args["to"], "body": args["body"]}
        return {"sid": f"SM{action_id[:8]}"}

    async def already_done(self, user_id: str, action: ActionType, args: dict[str, Any], action_id: str,
                           staged: dict[str, Any] | None) -> dict[str, Any] | None:
        return {"sid": f"SM{action_id[:8]}"} if action_id in self.gateway else None


@pytest.fixture
def texting() -> Iterator[type[FakeTexting]]:
    registry.register(FakeTexting)
    FakeTexting.gateway.clear()
    yield FakeTexting
    registry.unregister(FakeTexting.name)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = Store(str(tmp_path / "maos.duckdb"))
    yield s
    s.close()


def settings(tmp_path: Path) -> Settings:
    return Settings(encryption_key=SecretStr(new_key_text()), data_dir=tmp_path)  # type: ignore[call-arg]


def routes_app(ws: Workspace, user: str = "alice") -> FastAPI:
    """The integrations routes over this Workspace, as the served app mounts them."""
    rt: Any = SimpleNamespace(live=SimpleNamespace(settings=SimpleNamespace(user_id=user)),
                              workspace=typed(LocalHandle(ws, "workspace"), WorkspaceApi))
    api = FastAPI()
    api.state.default_user_id = user  # the caller and the per-user limits, as build_api sets them
    api.state.user_limits = UserLimits(Settings.model_construct)
    api.include_router(build_google_routes(rt, with_ui=False))
    return api


def test_without_a_provider_texting_is_unknown_to_the_registry() -> None:
    assert [p.name for p in registry.registered()] == ["google"]
    with pytest.raises(NoProvider, match="no provider registered for send_text"):
        registry.provider_for("send_text")
    assert registry.provider_for("reply_email").name == "google"
    assert registry.action_spec("send_text").label == "Send text message"  # core still knows the type
    with pytest.raises(ToolError, match="unknown action 'fly'"):
        registry.action_spec("fly")
    with pytest.raises(ValueError, match="already performed by 'google'"):
        registry.register(type("Rival", (FakeTexting,), {"name": "rival", "actions": registry.get("google").actions}))


async def test_texting_without_a_provider_fails_clearly_when_carried_out(store: Store, tmp_path: Path) -> None:
    ws = Workspace(settings(tmp_path), LocalHandle(store, "store"), sweep=False)
    proposed = await ws.propose("alice", "r", "r:s1", "r:s1:k", "send_text", {"to": "+1 555 0100", "body": "hi"})
    assert proposed.status == "pending" and proposed.summary == "Text +1 555 0100: hi"
    await ws.approve("alice", proposed.id, proposed.args_hash, "alice")
    await ws._execute(proposed.id)
    failed = await ws.get_action("alice", proposed.id)
    assert failed.status == "failed" and failed.error == "no provider registered for send_text"


async def test_a_registered_texting_provider_is_listed_connected_and_carries_out_its_action(
        texting: type[FakeTexting], store: Store, tmp_path: Path) -> None:
    assert [p.name for p in registry.registered()] == ["google", "texting"]
    ws = Workspace(settings(tmp_path), LocalHandle(store, "store"), sweep=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(routes_app(ws)), base_url="http://app") as http:
        listed = {v["provider"]: v for v in (await http.get("/api/integrations")).json()}
        assert listed["google"]["status"] == "not_configured" and listed["texting"]["status"] == "disconnected"
        assert (await http.get("/api/integrations/nope")).status_code == 404
        start = (await http.post("/api/integrations/texting/connect", json={"features": ["sms_send"]})).json()
        state = start["authorization_url"].split("state=")[1]
        back = await http.get("/api/integrations/texting/callback", params={"state": state, "code": "c0de"})
        assert back.status_code == 200 and "Texting is connected." in back.text
        shown = (await http.get("/api/integrations/texting")).json()
        assert shown["status"] == "connected" and shown["account"] == "+15550000001"
        assert [f["name"] for f in shown["features"] if f["enabled"]] == ["sms_send"]
    audit = [e.action for e in await ws.audit("alice")]
    assert "texting.connected" in audit

    with pytest.raises(ToolError, match="not an E.164 number"):  # its own model checks the arguments
        await ws.propose("alice", "r", "r:s0", "r:s0:k", "send_text", {"to": "555 0100 99", "body": "hi"})
    proposed = await ws.propose("alice", "r", "r:s1", "r:s1:k", "send_text", {"to": "+15550100199", "body": "hi"})
    assert proposed.status == "pending" and proposed.summary == "SMS to +15550100199 (2 characters)"
    (pending,) = await ws.list_actions("alice", "pending")
    assert pending.review is not None and [r.address for r in pending.review.recipients] == ["+15550100199"]
    await ws.approve("alice", proposed.id, proposed.args_hash, "alice")
    await ws._execute(proposed.id)
    done = await ws.get_action("alice", proposed.id)
    assert done.status == "done" and done.result == {"sid": f"SM{proposed.id[:8]}"}, done.error
    assert texting.gateway == {proposed.id: {"to": "+15550100199", "body": "hi"}}
    await ws._execute(proposed.id)  # done: not claimed again, not sent again
    assert len(texting.gateway) == 1


async def test_a_later_attempt_asks_the_provider_whether_it_already_happened(texting: type[FakeTexting]) -> None:
    view = ActionView(id="act-1", action="send_text", status="executing", summary="", arguments={"to": "+15550100199",
                      "body": "hi"}, args_hash="h", user_id="alice", group="g", created_at=0.0, expires_at=1.0)
    provider = texting(SimpleNamespace())  # type: ignore[arg-type]  # perform and already_done need no host
    texting.gateway["act-1"] = {"to": "+15550100199", "body": "hi"}  # a crash after the gateway sent it

    async def record(what: dict[str, Any]) -> None:
        raise AssertionError("nothing is staged")

    again = await carry_out(lambda action: provider, view, 2, None, record)
    assert again.status == "done" and again.result == {"sid": "SMact-1"} and len(texting.gateway) == 1
    first = await carry_out(lambda action: provider, view.model_copy(update={"id": "act-2"}), 1, None, record)
    assert first.status == "done" and set(texting.gateway) == {"act-1", "act-2"}


def test_the_cli_and_the_integrations_page_list_it(texting: type[FakeTexting], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_google._integrations(settings(tmp_path), argparse.Namespace()) == 0
    out = capsys.readouterr().out
    assert "Google: not_configured" in out and "Texting: disconnected" in out

    with gr.Blocks():
        sections = provider_sections(ApiClient("http://api.test"))
    assert [s.name for s in sections] == ["google", "texting"]

    connected = {"provider": "texting", "label": "Texting", "status": "connected", "account": "+15550000001",
                 "features": [{"name": "sms_send", "label": "Send texts", "scopes": ["sms"], "enabled": True}]}
    posted: list[tuple[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        posted.append((request.url.path, request.content))
        if request.url.path.endswith("/connect"):
            return httpx.Response(200, json={"authorization_url": "https://texting.example/consent?state=s"})
        return httpx.Response(200, json=[{"provider": "google", "status": "not_configured"}, connected])

    async def flow() -> list[Any]:
        client = ApiClient("http://api.test", transport=httpx.MockTransport(handler))
        try:
            h = IntegrationHandlers(client, "texting")
            return [await h.load(), await h.connect(["sms_send"])]
        finally:
            await client.aclose()

    loaded, started = asyncio.run(flow())
    assert 'id="texting-status" data-status="connected"' in loaded[0] and "+15550000001" in loaded[0]
    assert loaded[2].value == "Update access" and loaded[3].visible
    assert posted[-1][0] == "/api/integrations/texting/connect" and 'id="texting-continue"' in started[0]
    assert "Continue to Texting" in iv.continue_html(started[1], "texting")
