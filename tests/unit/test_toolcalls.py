"""Tool calls written as text: every form local models use, read back; prose and data left alone."""

from __future__ import annotations

import json
import time

import pytest

from core.chat_schemas import ToolSpec
from integrations.llm.toolcalls import (
    INVALID_CALL_NAME,
    assistant_reply,
    native_calls,
    parse_text_calls,
)

TOOLS = {"search_documents", "save_document", "get_time"}


def calls(text: str) -> list[tuple[str, dict[str, object]]]:
    return [(c.name, c.arguments) for c in parse_text_calls(text, TOOLS).calls]


@pytest.mark.parametrize(("text", "form"), [
    ('<tool_call>\n{"name": "search_documents", "arguments": {"query": "pricing"}}\n</tool_call>', "hermes"),
    ('<|python_tag|>{"name": "search_documents", "parameters": {"query": "pricing"}}<|eom_id|>', "llama"),
    ('{"name": "search_documents", "parameters": {"query": "pricing"}}', "llama"),
    ('[TOOL_CALLS][{"name": "search_documents", "arguments": {"query": "pricing"}, "id": "a1B2c3D4e"}]</s>', "mistral"),
    ('[TOOL_CALLS]search_documents[ARGS]{"query": "pricing"}', "mistral"),
    ('[TOOL_CALLS]search_documents[CALL_ID]a1B2c3D4e[ARGS]{"query": "pricing"}', "mistral"),
    ('{"name": "search_documents", "arguments": {"query": "pricing"}}', "json"),
    ('[{"name": "search_documents", "arguments": {"query": "pricing"}}]', "json"),
    ('{"type": "function", "function": {"name": "search_documents", "arguments": {"query": "pricing"}}}', "json"),
    ('```json\n{"name": "search_documents", "arguments": {"query": "pricing"}}\n```', "fenced"),
    ('```tool_code\nsearch_documents(query="pricing")\n```', "fenced"),
])
def test_every_form_is_read_with_its_name_and_arguments(text: str, form: str) -> None:
    found = parse_text_calls(text, TOOLS)
    assert found.format == form
    assert [(c.name, c.arguments, c.parse_error) for c in found.calls] == [("search_documents", {"query": "pricing"}, None)]
    assert found.content == ""


def test_several_calls_in_one_reply_get_distinct_ids() -> None:
    hermes = ('<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>\n'
              '<tool_call>\n{"name": "search_documents", "arguments": {"query": "a"}}\n</tool_call>')
    llama = '<|python_tag|>{"name": "get_time", "parameters": {}}; {"name": "search_documents", "parameters": {"query": "a"}}'
    mistral_new = '[TOOL_CALLS]get_time[ARGS]{}[TOOL_CALLS]search_documents[ARGS]{"query": "a"}'
    mistral_old = '[TOOL_CALLS][{"name": "get_time", "arguments": {}}, {"name": "search_documents", "arguments": {"query": "a"}}]'
    bare = '[{"name": "get_time", "arguments": {}}, {"name": "search_documents", "arguments": {"query": "a"}}]'
    fenced = ('```json\n{"name": "get_time", "arguments": {}}\n```\nand\n'
              '```json\n{"name": "search_documents", "arguments": {"query": "a"}}\n```')
    for text in (hermes, llama, mistral_new, mistral_old, bare, fenced):
        found = parse_text_calls(text, TOOLS)
        assert [(c.name, c.arguments) for c in found.calls] == [("get_time", {}), ("search_documents", {"query": "a"})]
        assert len({c.id for c in found.calls}) == 2, text


def test_text_around_the_calls_is_kept_as_content() -> None:
    found = parse_text_calls('Let me look that up.\n<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>\n'
                             'One moment.', TOOLS)
    assert found.content == "Let me look that up.\n\nOne moment."
    found = parse_text_calls('I will search first.\n{"name": "search_documents", "arguments": {"query": "x"}}', TOOLS)
    assert found.content == "I will search first." and found.format == "json"
    found = parse_text_calls('Checking.[TOOL_CALLS][{"name": "get_time", "arguments": {}}] done', TOOLS)
    assert found.content == "Checking.\ndone" and found.format == "mistral"
    found = parse_text_calls('Sure:\n```json\n{"name": "get_time", "arguments": {}}\n```\nThen I answer.', TOOLS)
    assert found.content == "Sure:\n\nThen I answer."
    found = parse_text_calls('Thinking aloud. <|python_tag|>{"name": "get_time", "parameters": {}}<|eot_id|>', TOOLS)
    assert found.content == "Thinking aloud." and calls('<tool_call>{"name": "get_time"}') == [("get_time", {})]


def test_arguments_as_a_json_string_or_an_object() -> None:
    as_string = json.dumps({"name": "save_document", "arguments": json.dumps({"title": "Q3"})})
    assert calls(as_string) == [("save_document", {"title": "Q3"})]
    assert calls(f"<tool_call>{as_string}</tool_call>") == [("save_document", {"title": "Q3"})]
    assert calls('<tool_call>{"name": "save_document", "arguments": {"title": "Q3"}}</tool_call>') == [
        ("save_document", {"title": "Q3"})]
    assert calls('<tool_call>{"name": "get_time", "arguments": ""}</tool_call>') == [("get_time", {})]
    # a Python-style dict (single quotes), as some fine-tunes write inside the tags
    assert calls("<tool_call>{'name': 'save_document', 'arguments': {'title': 'Q3'}}</tool_call>") == [
        ("save_document", {"title": "Q3"})]
    # Llama's built-in tool form after the tag
    assert calls('<|python_tag|>search_documents.call(query="pricing")') == [("search_documents", {"query": "pricing"})]


def test_a_call_that_cannot_be_read_says_why_and_is_not_dropped() -> None:
    broken = parse_text_calls('<tool_call>{"name": "search_documents", "arguments": {"query": "x"</tool_call>', TOOLS)
    (call,) = broken.calls
    assert call.name == "search_documents" and call.arguments == {}
    assert call.parse_error is not None and "not valid JSON" in call.parse_error and "<tool_call>" in call.parse_error
    (nameless,) = parse_text_calls("<tool_call>search the docs please</tool_call>", TOOLS).calls
    assert nameless.name == INVALID_CALL_NAME and nameless.parse_error
    (no_name,) = parse_text_calls('<tool_call>{"arguments": {}}</tool_call>', TOOLS).calls
    assert no_name.parse_error and '"name"' in no_name.parse_error
    (bad_args,) = parse_text_calls('<tool_call>{"name": "save_document", "arguments": "{title: Q3"}</tool_call>',
                                   TOOLS).calls
    assert bad_args.name == "save_document" and bad_args.parse_error and "arguments" in bad_args.parse_error
    (listed,) = parse_text_calls('<tool_call>{"name": "save_document", "arguments": ["Q3"]}</tool_call>', TOOLS).calls
    assert listed.parse_error and "JSON object" in listed.parse_error
    for text in ('[TOOL_CALLS] not json at all', '<|python_tag|>this is not a call', '[TOOL_CALLS]save_document[ARGS]{"a'):
        found = parse_text_calls(text, TOOLS)
        assert len(found.calls) == 1 and found.calls[0].parse_error, text
    # a bare JSON call to an offered tool whose arguments are broken is a call too, with the reason
    (bare,) = parse_text_calls('{"name": "save_document", "arguments": "{oops"}', TOOLS).calls
    assert bare.name == "save_document" and bare.parse_error


def test_unknown_names_are_calls_when_marked_and_text_when_not() -> None:
    # marked: the model meant a call; the sub-agent loop answers "unknown tool" with the list
    assert calls('<tool_call>{"name": "send_fax", "arguments": {}}</tool_call>') == [("send_fax", {})]
    assert calls('[TOOL_CALLS]send_fax[ARGS]{}') == [("send_fax", {})]
    # unmarked: a JSON answer that looks like a call to something not offered stays the answer
    for text in ('{"name": "Acme Corp", "arguments": {"city": "Lyon"}}', '{"name": "send_fax", "parameters": {}}',
                 '```json\n{"name": "send_fax", "arguments": {}}\n```'):
        found = parse_text_calls(text, TOOLS)
        assert found.calls == [] and found.format is None and found.content == text
    # an array naming an offered tool is a list of calls: its unknown names are answered as unknown
    assert calls('[{"name": "get_time", "arguments": {}}, {"name": "get_tiem", "arguments": {}}]') == [
        ("get_time", {}), ("get_tiem", {})]


@pytest.mark.parametrize("text", [
    "Use {name} and {date} as placeholders in the template.",
    'The config is {"retries": 3, "name": "search_documents"} for the worker.',  # a key besides name/arguments
    '{"result": {"name": "search_documents", "arguments": {}}}',  # a call inside an answer's data is data
    'Here is the lead: {"name": "get_time", "email": "a@b.test", "arguments": {}}',
    "A set like {1, 2, 3} or a dict {'a': 1} in prose, and a stray } brace {",
    "```python\nprint({'name': 'x'})\n```",
    "```json\n{\"leads\": [{\"name\": \"Ann\"}]}\n```",
    "",
])
def test_prose_and_data_with_braces_stay_text(text: str) -> None:
    found = parse_text_calls(text, TOOLS)
    assert found.calls == [] and found.format is None and found.content == text


def test_hostile_text_is_read_in_linear_time() -> None:
    for text in ('{"a": ' * 20_000, '{"name": "get_time", "arguments": {' * 5_000, "<tool_call>" + "[" * 50_000,
                 "```json\n" * 5_000, "[TOOL_CALLS]" * 5_000, "{" * 100_000):
        started = time.perf_counter()
        parse_text_calls(text, TOOLS)
        assert time.perf_counter() - started < 1.0, text[:30]


def test_the_reply_prefers_the_native_field_and_reads_text_only_when_tools_were_offered() -> None:
    offered = [ToolSpec(name="get_time", description="Now.", parameters={"type": "object", "properties": {}})]
    native = [{"id": "c9", "function": {"name": "get_time", "arguments": "{}"}}]
    text = '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>'
    message, form = assistant_reply(text, native, offered)
    assert form == "native" and [c.id for c in message.tool_calls] == ["c9"] and message.content == text
    message, form = assistant_reply(text, [], offered)
    assert form == "hermes" and [c.name for c in message.tool_calls] == ["get_time"] and message.content == ""
    message, form = assistant_reply(text, None, [])  # no tools offered (a plan, a summary): text stays text
    assert form is None and message.tool_calls == [] and message.content == text
    message, form = assistant_reply("It is noon.", None, offered)
    assert form is None and message.content == "It is noon."


def test_native_arguments_that_are_not_an_object_say_why() -> None:
    (broken,) = native_calls([{"function": {"name": "save_document", "arguments": '{"title": '}}])
    assert broken.id == "call_0" and broken.arguments == {} and broken.parse_error and "not valid JSON" in broken.parse_error
    (empty,) = native_calls([{"id": "x", "function": {"name": "get_time", "arguments": ""}}])
    assert empty.arguments == {} and empty.parse_error is None
    (given,) = native_calls([{"id": "y", "function": {"name": "save_document", "arguments": {"title": "Q3"}}}])
    assert given.arguments == {"title": "Q3"}
