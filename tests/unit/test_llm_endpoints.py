"""Several LLM endpoints: the MAOS_LLM_ENDPOINTS forms, the split of slots among gateways, which endpoint
a request goes to, and a failing endpoint left for another with no retry spent (no Ray)."""

from __future__ import annotations

import asyncio
import os
import pickle
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # before litellm is imported

from actors.gateway import LLMGateway  # noqa: E402
from core.chat_schemas import ChatMessage, ChatRequest  # noqa: E402
from core.errors import LLMError, LLMUnavailable  # noqa: E402
from core.llm_schemas import LLMEndpoint, LLMEndpointView, format_endpoints, parse_endpoints  # noqa: E402
from core.schemas import SystemStatus  # noqa: E402
from core.settings import Settings  # noqa: E402
from integrations.llm.backend import Backend  # noqa: E402
from integrations.llm.endpoints import Endpoints, merge_views, share_slots, wait_reason  # noqa: E402
from integrations.llm.routing import Lease, Router  # noqa: E402
from maos_testing.llm.sim_thread import SimConfig, SimHandle, sim_llm_in_thread  # noqa: E402
from serve_app.cli import llm_lines  # noqa: E402
from ui.views import integrations_html, sidebar_llm  # noqa: E402

A, B = "http://gpu1:11434", "http://gpu2:11434"


def test_both_forms_of_the_endpoint_list_read_the_same() -> None:
    compact = parse_endpoints(f" {A}=4, {B}/=2 ", default_slots=3)
    as_json = parse_endpoints(f'[{{"url": "{A}", "slots": 4}}, {{"url": "{B}/", "slots": 2}}]', default_slots=3)
    assert compact == as_json == [LLMEndpoint(url=A, slots=4), LLMEndpoint(url=B, slots=2)]
    assert parse_endpoints(A, default_slots=3) == [LLMEndpoint(url=A, slots=3)]  # no =N: llm_slots
    assert parse_endpoints("", 4) == parse_endpoints("none", 4) == []
    assert parse_endpoints(format_endpoints(compact), 1) == compact


@pytest.mark.parametrize(("text", "says"), [
    (f"{A}=0", "slots"), (f"{A}=x", "url=slots"), ("gpu1:11434=2", "url"), (f"{A}=2,{A}/=1", "twice"),
    ("[{\"url\": 1", "JSON"), (f'[{{"url": "{A}", "slots": 2, "key": "k"}}]', "key"),
])
def test_a_wrong_endpoint_list_is_refused_saying_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_endpoints(text, 4)
    with pytest.raises(ValidationError, match="llm_endpoints"):
        Settings(llm_endpoints=text)


def test_the_in_flight_bound_follows_the_total_slots() -> None:
    assert Settings(llm_slots=4).total_llm_slots == 4  # no list: today's one server
    s = Settings(llm_slots=4, llm_endpoints=f"{A}=4,{B}=2")
    assert s.total_llm_slots == 6 and [e.url for e in s.endpoint_list] == [A, B]


@pytest.mark.parametrize(("slots", "replicas"), [((4, 2), 2), ((3, 3), 2), ((1, 1), 3), ((5, 2, 7), 4), ((1,), 2)])
def test_each_endpoints_slots_are_split_among_the_gateways(slots: tuple[int, ...], replicas: int) -> None:
    eps = [LLMEndpoint(url=f"http://h{i}:1", slots=s) for i, s in enumerate(slots)]
    shares = [share_slots(eps, replicas, r) for r in range(replicas)]
    totals = [sum(s for _, s in sh) for sh in shares]
    assert all(t >= 1 for t in totals)  # every gateway can send something
    if sum(slots) >= replicas:  # exact: an endpoint never gets more than its slots from all of them
        assert [sum(sh[i][1] for sh in shares) for i in range(len(eps))] == list(slots)
        assert max(totals) - min(totals) <= 1


async def test_requests_go_to_the_endpoint_with_the_largest_share_free_then_wait_by_priority() -> None:
    eps = Endpoints([(A, 4), (B, 2)])
    taken = [await eps.acquire("background") for _ in range(6)]
    assert sorted(e.url for e in taken) == [A] * 4 + [B] * 2  # 4 and 2 fill evenly: both full together
    assert [e.url for e in taken[:3]] == [A, B, A]
    assert eps.choose() is None and eps.in_flight == 6
    background = asyncio.ensure_future(eps.acquire("background"))
    interactive = asyncio.ensure_future(eps.acquire("interactive"))
    await asyncio.sleep(0)
    assert eps.waiting == 2
    eps.release(taken[1])  # a B slot frees: the interactive request, though it came second
    await asyncio.sleep(0)
    assert interactive.done() and interactive.result().url == B and not background.done()
    background.cancel()
    await asyncio.sleep(0)
    assert eps.waiting == 0


async def test_a_down_endpoint_gets_nothing_until_it_is_back_and_with_all_down_they_are_tried_anyway() -> None:
    eps = Endpoints([(A, 2), (B, 2)])
    a, b = eps.all
    assert eps.mark_down(a, "refused") and not eps.mark_down(a, "refused again")
    got = [await eps.acquire("background") for _ in range(2)]
    assert {e.url for e in got} == {B} and eps.choose() is None  # A's free slots are not used
    waiter = asyncio.ensure_future(eps.acquire("background"))
    await asyncio.sleep(0)
    assert not waiter.done()
    assert eps.mark_up(a, model="m")  # back: the waiter goes there
    await asyncio.sleep(0)
    assert waiter.result() is a and a.model == "m"
    eps.mark_down(a, "x")
    eps.mark_down(b, "y")
    eps.release(got[0])
    assert eps.choose() is a  # every endpoint down: they are tried anyway (a single server behaves as before)
    assert not eps.others_up(a)


def _view(url: str, slots: int, in_flight: int, up: bool = True) -> LLMEndpointView:
    return LLMEndpointView(url=url, slots=slots, in_flight=in_flight, up=up, last_error=None if up else "refused")


def test_why_work_waits_is_said_in_words() -> None:
    assert wait_reason([_view(A, 4, 1), _view(B, 2, 0)], waiting=0) is None
    assert wait_reason([_view(A, 4, 4), _view(B, 2, 2)], waiting=7) == "all 6 LLM slots busy, 7 requests waiting"
    assert wait_reason([_view(A, 4, 4, up=False), _view(B, 2, 2)], waiting=0) == (
        "1 of 2 LLM endpoints down; all 2 LLM slots busy")
    merged = merge_views([[_view(A, 2, 2), _view(B, 1, 0, up=False)], [_view(A, 2, 1), _view(B, 1, 1)]])
    assert [(v.url, v.slots, v.in_flight, v.up) for v in merged] == [(A, 4, 3, True), (B, 2, 1, True)]


async def test_a_failing_endpoint_is_left_for_another_without_a_retry() -> None:
    backend = Backend(provider="ollama", base_url=A, planner_model="m", worker_model="m")
    router = Router([(A, 1), (B, 1)], backend, interval_s=60)
    calls: list[str] = []

    async def call(b: Backend) -> str:
        calls.append(b.base_url)
        if b.base_url == A:
            raise LLMUnavailable(f"LLM server at {A} is unreachable or busy (APIConnectionError): refused")
        return "ok"

    lease = await router.acquire("background")
    assert lease.ep is not None and lease.ep.url == A
    out = await router.run("background", lease, call)
    assert out == "ok" and calls == [A, B]
    a, b = router.endpoints.all
    assert not a.up and "refused" in (a.last_error or "") and a.in_flight == 0 and b.in_flight == 1

    async def wrong(b: Backend) -> str:
        raise LLMError("the request is malformed")  # not the endpoint's fault: raised, nothing marked

    with pytest.raises(LLMError, match="malformed"):
        await router.run("background", Lease(b), wrong)
    assert b.up
    router.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def sim() -> Iterator[SimHandle]:
    with sim_llm_in_thread(SimConfig()) as handle:
        yield handle


async def test_the_gateway_sends_around_a_dead_server_with_no_retry_and_reports_it(sim: SimHandle,
                                                                                  tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{_free_port()}"
    settings = Settings(data_dir=tmp_path, llm_retries=0, llm_endpoints=f"{dead}=2,{sim.base_url}=2",
                        llm_health_interval_s=60)
    backend = Backend(provider="ollama", base_url=dead, planner_model="sim-model", worker_model="sim-model")
    gateway = LLMGateway(settings, backend, None)
    reqs = [ChatRequest(messages=[ChatMessage(role="user", content=f"hello {i}")], role="worker",
                        priority="background") for i in range(8)]
    replies = await asyncio.gather(*(gateway.chat(r) for r in reqs))  # llm_retries=0: any retry would fail one
    assert all(r.message.content for r in replies)
    assert sim.stats()["requests"] >= 8
    health = await gateway.health()
    by_url = {e["url"]: e for e in health["endpoints"]}
    assert not by_url[dead]["up"] and by_url[dead]["last_error"]
    assert by_url[sim.base_url]["up"] and by_url[sim.base_url]["model"] == "sim-model"
    assert health["slots"] == 4 and health["wait_reason"] == "1 of 2 LLM endpoints down"
    assert health["reachable"]
    emb = await gateway.embed(["a b", "c"], "sim-embed")  # embeddings are routed the same way
    assert len(emb) == 2


def _system_status(endpoints: list[LLMEndpointView], waiting: int) -> SystemStatus:
    return SystemStatus(ray_nodes=1, llm_provider="ollama", llm_base_url=A, llm_models={"planner": "m", "worker": "m"},
                        llm_reachable=True, llm_in_flight=sum(e.in_flight for e in endpoints), llm_waiting=waiting,
                        pools=[], queue={}, llm_slots=sum(e.slots for e in endpoints), llm_endpoints=endpoints,
                        llm_wait_reason=wait_reason(endpoints, waiting))


def test_the_ui_says_why_llm_work_waits_and_lists_the_endpoints() -> None:
    busy = _system_status([_view(A, 4, 4), _view(B, 2, 2)], waiting=3)
    assert "all 6 LLM slots busy, 3 requests waiting" in sidebar_llm(busy)
    down = integrations_html(_system_status([_view(A, 4, 1), _view(B, 2, 0, up=False)], waiting=0))
    assert "1 of 2 LLM endpoints down" in down and f"Endpoint {B}" in down and "down ✖" in down and "refused" in down
    idle = _system_status([_view(A, 4, 0)], waiting=0)
    assert "llm-waits" not in sidebar_llm(idle) and "Endpoint" not in integrations_html(idle)


@pytest.mark.parametrize("model", [
    LLMEndpoint(url=A, slots=2), _view(B, 2, 1, up=False), _system_status([_view(A, 4, 4)], waiting=1),
], ids=lambda m: type(m).__name__)
def test_the_endpoint_models_round_trip_through_json_and_pickle(model: BaseModel) -> None:
    assert type(model).model_validate_json(model.model_dump_json()) == model
    assert pickle.loads(pickle.dumps(model)) == model
    with pytest.raises(ValidationError):
        type(model).model_validate({**model.model_dump(), "unexpected": 1})


def test_maos_status_lists_the_endpoints_and_says_why_work_waits() -> None:
    one = {"waiting": 2, "endpoints": [_view(A, 2, 2).model_dump(), _view(B, 1, 0, up=False).model_dump()]}
    two = {"waiting": 1, "endpoints": [_view(A, 2, 2).model_dump(), _view(B, 1, 0, up=False).model_dump()]}
    assert llm_lines([one, two]) == [
        f"llm endpoint {A} · up · 4 of 4 slots busy",
        f"llm endpoint {B} · DOWN · 0 of 2 slots busy · refused",
        "llm: work waits: 1 of 2 LLM endpoints down; all 4 LLM slots busy, 3 requests waiting",
    ]
    assert llm_lines([{"waiting": 0, "endpoints": [_view(A, 4, 1).model_dump()]}]) == []  # one server, room


def test_each_gateway_replica_takes_its_share_and_a_new_list_applies_live(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, llm_endpoints=f"{A}=3,{B}=2", gateway_replicas=2)
    backend = Backend(provider="ollama", base_url=A, planner_model="m", worker_model="m")
    shares = [[(e.url, e.slots) for e in LLMGateway(settings, backend, None, replica=r)._router.endpoints.all]
              for r in range(2)]
    assert shares == [[(A, 2), (B, 1)], [(A, 1), (B, 1)]]  # 5 slots: every endpoint's exactly, split
    gateway = LLMGateway(Settings(data_dir=tmp_path), backend, None, slots=4)
    assert [(e.url, e.slots) for e in gateway._router.endpoints.all] == [(A, 4)]  # no list: today's one server
    asyncio.run(gateway.configure(settings.model_copy(update={"gateway_replicas": 1}), backend, 4))
    assert [(e.url, e.slots) for e in gateway._router.endpoints.all] == [(A, 3), (B, 2)]
