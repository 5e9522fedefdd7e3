"""The simulated model in a conversation: the request among earlier turns, "the second one", and the
master's answer-or-plan decision — with the master's own messages (pure: no server)."""

from __future__ import annotations

import json

from actors import agents
from actors.agents.planning import plan_messages
from core.plan import decision_schema, plan_schema
from core.schemas import Message, Plan, PlanStep, Run, RunView, TaskRecord
from maos_testing.llm._sim_replies import reply_for
from maos_testing.llm._sim_request import SimRequest
from memory.conversation_context import fit_context

NAMES = agents.names()


def _last_run() -> RunView:
    plan = Plan(goal="notes", steps=[PlanStep(id=f"s{i}", agent="writing", instruction=f"note {i}")
                                     for i in (1, 2, 3)])
    tasks = [TaskRecord(id=f"r0:s{i}", run_id="r0", step_id=f"s{i}", agent="writing", instruction=f"note {i}",
                        status="done", result=f"Saved draft '{name}'", idempotency_key=f"k{i}", created_at=0.0,
                        updated_at=0.0) for i, name in ((1, "alpha"), (2, "beta"), (3, "gamma"))]
    run = Run(id="r0", conversation_id="c1", user_id="u1", message="[fanout 3 writing] notes title=alpha|beta|gamma",
              status="done", plan=plan, summary="Saved three drafts.", created_at=0.0, updated_at=1.0)
    return RunView(run=run, tasks=tasks)


def _turns() -> list[Message]:
    run = _last_run().run
    return [Message(id="m1", role="user", content=run.message, run_id="r0", created_at=0.0),
            Message(id="m2", role="assistant", content="Saved three drafts.", run_id="r0", created_at=1.0)]


def _ask(message: str, decide: bool = True, memory: str = "") -> str:
    ctx = fit_context(_turns(), _last_run(), 1500)
    messages = plan_messages(agents.all_specs(), message, memory, (), ctx, decide=decide)
    schema = decision_schema(NAMES, 50) if decide else plan_schema(NAMES, 50)
    req = SimRequest(protocol="ollama", model="m", messages=[(m.role, m.content) for m in messages], schema=schema,
                     schema_name="Decision" if decide else "Plan")
    reply = reply_for(req, 10)
    assert reply.kind == "plan"
    return reply.text


def test_greetings_and_questions_about_the_conversation_are_answered() -> None:
    hello = json.loads(_ask("hello"))
    assert hello["mode"] == "answer" and hello["steps"] == [] and hello["reply"]
    done = json.loads(_ask("what did you just do?"))
    assert done["mode"] == "answer" and "notes title=alpha" in done["reply"] and "Saved three drafts." in done["reply"]
    able = json.loads(_ask("What can you do?"))
    assert able["mode"] == "answer" and all(n in able["reply"] for n in NAMES)
    ask = json.loads(_ask("email them [ask]"))
    assert ask["mode"] == "ask" and ask["reply"].endswith("?")


def test_work_is_planned_from_the_request_alone_and_the_second_one_resolves() -> None:
    decision = json.loads(_ask("make the second one shorter"))
    assert decision["mode"] == "plan" and decision["reply"] == ""
    (step,) = Plan.model_validate({"goal": decision["goal"], "steps": decision["steps"]}).steps
    assert "Saved draft 'beta'" in step.instruction and "alpha" not in step.instruction
    # The earlier turn's markers ([fanout 3 writing]) stay in the earlier turn and in the last run's listing.
    assert len(Plan.model_validate_json(_ask("write a summary", decide=False)).steps) == 1
    last = Plan.model_validate_json(_ask("shorten the last one", decide=False)).steps[0].instruction
    assert "the last one: note 3 → Saved draft 'gamma'" in last


def test_markers_in_the_request_still_steer() -> None:
    assert len(Plan.model_validate_json(_ask("[fanout 4] call them", decide=False)).steps) == 4
    assert not _ask("write it [broken-json 1]").endswith("}")
