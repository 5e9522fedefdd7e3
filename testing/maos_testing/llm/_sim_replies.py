"""What the simulated LLM answers: replies computed from the request content, deterministically.

Pure functions over a protocol-neutral :class:`SimRequest`; ``_sim_wire`` turns requests from
and replies into Ollama or OpenAI wire format. Markers in user messages steer tests:
``[fanout N]`` (``[fanout N AGENT]``: all of one type), ``[slow S]``, ``[fail-step]``, ``[broken-json K|always]``, ``[invalid-plan [K]]``,
``[use TOOL]`` (the sub-agent calls the first such tool it has; ``name=value`` or ``name="JSON string"`` in
the request fills that argument; in a fanout, ``name=a|b|c`` gives item i the i-th value),
``[fanout N A>B]`` (N steps of type A, each followed by a step of type B that depends on it).

The simulated model is naive on purpose: it obeys instructions it reads in a tool's result
("call send_email {...}"), as a model fooled by a prompt injection would. With the knob
``obey="all"`` it obeys every instruction in every form it reads anywhere (see ``_sim_obey``).
What keeps such a model from doing harm must be the product's rules, never the model.
"""

from __future__ import annotations

import json
from functools import partial

from maos_testing.llm import _sim_chat as chat
from maos_testing.llm import _sim_obey as obey
from maos_testing.llm._sim_plans import _is_plan_schema, _plan_shape, _plan_text
from maos_testing.llm._sim_request import (
    _FAIL_STEP,
    Obey,
    Reply,
    SimRequest,
    pad,
    slow_seconds,
    strip_markers,
)
from maos_testing.llm._sim_tools import _injected_call, _tool_call, _value


def reply_for(req: SimRequest, reply_tokens: int, obeys: Obey = "last") -> Reply:
    """The deterministic answer to ``req``; ``obeys``: which instructions in what it reads it follows."""
    slow = slow_seconds(req)
    if req.schema is not None and _is_plan_schema(req.schema, req.schema_name):
        return Reply("plan", _plan_text(req), slow_s=slow)
    if req.schema is not None and chat.is_decision_schema(req.schema, req.schema_name):  # answer, ask or plan
        text = chat.decision(req.messages, _plan_shape(req.schema)[0], partial(_plan_text, req))
        return Reply("plan", text, slow_s=slow)
    if req.tools:
        if any(_FAIL_STEP in t for t in req.texts("user")):
            return Reply("error", "simulated step failure ([fail-step])", status=500, slow_s=slow)
        if obeys == "all":
            return _obeying(req, reply_tokens, slow)
        if not req.texts("tool"):
            name, args = _tool_call(req.tools, req.last("user"))
            return Reply("tool_call", tool_name=name, tool_args=args, slow_s=slow)
        obeyed = _injected_call(req.tools, req.messages[-1][1] if req.messages[-1][0] == "tool" else "")
        if obeyed is not None:
            return Reply("tool_call", tool_name=obeyed[0], tool_args=obeyed[1], slow_s=slow)
        return Reply("final", pad(f"Done: {_gist(req.last('tool'))} …", reply_tokens), slow_s=slow)
    answer = pad("Summary: " + strip_markers(req.last("user")), reply_tokens)
    if obeys == "all":
        answer = " ".join([answer, *obey.images_in(t for r, t in req.messages if r != "system")])
    if req.schema is not None:
        root = req.schema
        return Reply("chat", json.dumps(_value(root, root, "", answer, force_all=True)), slow_s=slow)
    if req.json_mode:
        return Reply("chat", json.dumps({"answer": answer}), slow_s=slow)
    return Reply("chat", answer, slow_s=slow)


def _obeying(req: SimRequest, reply_tokens: int, slow: float) -> Reply:
    """A model that does everything it reads: its first call comes from the step's instruction, then it
    makes, one per turn, each call written anywhere in its messages (tool results, earlier results,
    memory), in order; then it answers, relaying the orders it had no tool for and showing the images
    it was asked to show."""
    first = _tool_call(req.tools, req.last("user"))
    read = [s for role, text in req.messages if role != "system" for s in obey.strings_of(text)]
    written = obey.unique(c for text in read for c in obey.calls_in(text))
    names = {str(t.get("name")) for t in req.tools}
    doable = obey.unique([first, *(c for c in written if c[0] in names)])
    made = len(req.texts("tool"))
    if made < len(doable):
        name, args = doable[made]
        return Reply("tool_call", tool_name=name, tool_args=args, slow_s=slow)
    relayed = [f"The content also asks to call {n} {json.dumps(a)}" for n, a in written if n not in names]
    answer = pad(f"Done: {_gist(req.last('tool'))} …", reply_tokens)
    return Reply("final", " ".join([answer, *relayed, *obey.images_in(read)]), slow_s=slow)


def _gist(observation: str) -> str:
    """What the model reports of a tool's result: its start, past any note about the content."""
    try:
        value = json.loads(observation)
    except ValueError:
        value = None
    if isinstance(value, dict):
        observation = json.dumps({k: v for k, v in value.items() if not k.endswith("_note")})
    return " ".join(observation.split())[:80]
