"""Every message that crosses a process or HTTP boundary (the LLM traffic: ``core.chat_schemas``).

All models forbid extra fields; unions carry a ``kind`` tag. Timestamps are Unix seconds (float).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from core.llm_schemas import EndpointsText, LLMEndpointView

TaskStatus = Literal["pending", "ready", "running", "failed", "done", "dead", "blocked", "waiting", "cancelled"]
TERMINAL_TASK_STATUSES: frozenset[str] = frozenset({"done", "dead", "blocked", "cancelled"})
RunStatus = Literal["planning", "running", "summarizing", "done", "failed", "cancelled"]
FINAL_RUN_STATUSES: frozenset[str] = frozenset({"done", "failed", "cancelled"})
Provider = Literal["ollama", "lmstudio", "openai", "embedded"]
ProviderSetting = Literal["auto", "ollama", "lmstudio", "openai", "embedded"]  # auto: the first that answers
# How a model wrote its tool calls: the API's own field, or text (Hermes/Qwen <tool_call>, Llama 3 JSON,
# Mistral [TOOL_CALLS], a bare JSON object, JSON in a fenced block); see integrations/llm/toolcalls.py.
ToolCallFormat = Literal["native", "hermes", "llama", "mistral", "json", "fenced"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- the plan -------------------------------------------------------------------------------


class PlanStep(_Model):
    id: str = Field(description="Short step id, unique in the plan, e.g. 's1'.", min_length=1, max_length=40)
    agent: str = Field(description="Sub-agent type that carries out the step.")
    instruction: str = Field(description="What the sub-agent must do, self-contained.", min_length=1)
    depends_on: list[str] = Field(default_factory=list, description="Ids of steps that must finish first.")


class Plan(_Model):
    goal: str = Field(description="The user's goal in one sentence.")
    steps: list[PlanStep] = Field(description="Steps to carry out; independent steps run in parallel.")


# --- queue ----------------------------------------------------------------------------------


class TaskRecord(_Model):
    id: str = Field(description="Task id: '<run_id>:<step_id>'.")
    run_id: str = Field(description="Run the task belongs to.")
    step_id: str = Field(description="Step id in the plan.")
    agent: str = Field(description="Sub-agent type.")
    instruction: str = Field(description="What the sub-agent must do.")
    depends_on: list[str] = Field(default_factory=list, description="Step ids that must finish first.")
    status: TaskStatus = Field(description="Queue state.")
    attempts: int = Field(0, description="Attempts started so far.")
    max_attempts: int = Field(3, description="Attempt limit before the task goes dead.")
    error: str | None = Field(None, description="Last error.")
    result: str | None = Field(None, description="Final output of the sub-agent.")
    idempotency_key: str = Field(description="Key side effects of this task are recorded under.")
    created_at: float = Field(description="When the task was queued.")
    updated_at: float = Field(description="Last state change.")
    ready_at: float | None = Field(None, description="When it last became ready.")
    started_at: float | None = Field(None, description="When the last attempt started.")
    finished_at: float | None = Field(None, description="When it reached a final state.")
    next_attempt_at: float | None = Field(None, description="For failed tasks: when it retries.")
    node: str | None = Field(None, description="Where the last attempt ran: the Ray node of its pool (the "
                                              "first 8 hex digits of the node id, as `maos cluster status` shows it).")


class Assignment(_Model):
    """A claimed task handed to a pool: the attempt number fences late completions."""

    kind: Literal["assignment"] = "assignment"
    task: TaskRecord = Field(description="The task, as claimed.")
    attempt: int = Field(description="Attempt number this assignment runs.")
    lease_owner: str = Field(description="Pool actor holding the lease.")
    context: str = Field("", description="Results of the steps it depends on.")


class StepOutcome(_Model):
    kind: Literal["step_outcome"] = "step_outcome"
    task_id: str = Field(description="Task id.")
    attempt: int = Field(description="Attempt that produced it.")
    ok: bool = Field(description="True when the sub-agent gave a final answer.")
    result: str | None = Field(None, description="Final answer when ok.")
    error: str | None = Field(None, description="Why it failed when not ok.")
    retryable: bool = Field(True, description="False: go dead at once.")
    wait: bool = Field(False, description="True: the LLM is unavailable; retry without spending an attempt.")
    wait_on: str | None = Field(None, description="An integration a person must reconnect (e.g. 'google'): the "
                                                  "task waits, unclaimed, until it is.")
    tokens_in: int = Field(0, description="Tokens in over the whole run.")
    tokens_out: int = Field(0, description="Tokens out over the whole run.")
    turns: int = Field(0, description="LLM turns taken.")


class Run(_Model):
    id: str = Field(description="Run id.")
    conversation_id: str = Field(description="Conversation the message belongs to.")
    user_id: str = Field(description="Who asked.")
    message: str = Field(description="The request.")
    status: RunStatus = Field(description="Run state.")
    plan: Plan | None = Field(None, description="The validated plan.")
    summary: str | None = Field(None, description="Final summary written to the conversation.")
    error: str | None = Field(None, description="Why the run failed.")
    created_at: float = Field(description="When it was asked.")
    updated_at: float = Field(description="Last change.")
    finished_at: float | None = Field(None, description="When it ended.")


class RunView(_Model):
    """A run with its tasks: what `maos ask --json` prints."""

    kind: Literal["run_view"] = "run_view"
    run: Run = Field(description="The run.")
    tasks: list[TaskRecord] = Field(default_factory=list, description="Its tasks in plan order.")
    sources: list[MemorySource] = Field(default_factory=list,
                                        description="Memories its planning and steps were given, best first.")


class RunCancel(_Model):
    """What cancelling a run did (``POST /api/runs/ID/cancel``, ``maos cancel``); asking again changes nothing."""

    kind: Literal["run_cancel"] = "run_cancel"
    run_id: str = Field(description="The run.")
    status: RunStatus = Field(description="Its status now: cancelled, or how it had ended before.")
    cancelled: bool = Field(description="Whether this request stopped it (false: it had ended or was stopped before).")
    stopped_steps: list[str] = Field(default_factory=list, description="Ids of its steps that were running and "
                                     "are being stopped at their next await.")
    withdrawn: list[str] = Field(default_factory=list, description="Ids of its proposals no one had decided, withdrawn.")


class Draft(_Model):
    """An outbound action drafted by a sub-agent, waiting for the integrations (never sent here)."""

    id: str = Field(description="Draft id.")
    task_id: str = Field(description="Task that drafted it.")
    channel: Literal["email", "calendar", "text", "call"] = Field(description="Kind of action.")
    target: str = Field(description="Recipient, attendee list or number.")
    subject: str = Field("", description="Subject or title.")
    body: str = Field("", description="Body, agenda or script.")
    status: Literal["draft"] = Field("draft", description="Always 'draft' until an integration sends it.")
    created_at: float = Field(description="When drafted.")


# --- events ---------------------------------------------------------------------------------

TaskEventKind = Literal["planned", "ready", "running", "retried", "done", "failed", "dead", "blocked", "requeued",
                        "cancelled"]


class PoolStatus(_Model):
    agent: str = Field(description="Agent type.")
    actors: int = Field(description="Pool actors alive.")
    in_flight: int = Field(description="Sub-agents running now.")
    ready: int = Field(description="Tasks waiting in the queue for this type.")


REAUTH_HEADER = "X-Maos-Reauth"  # the login token again, for a change that widens what the app may do


class ToolSupport(_Model):
    """Whether the worker model calls tools, as a one-request check at start-up found."""

    kind: Literal["tool_support"] = "tool_support"
    model: str = Field(description="The model checked (the sub-agents' model).")
    state: Literal["checking", "native", "text", "none", "unknown"] = Field(
        description="native: through the API's field; text: written in its reply (read back); none: it does not "
                    "call tools; unknown: the check failed (it is asked again).")
    format: ToolCallFormat | None = Field(None, description="The form its calls were in.")
    meaning: str = Field(description="What this means for the user, in a sentence.")
    checked_at: float | None = Field(None, description="When the check answered (None while checking).")


class SystemStatus(_Model):
    kind: Literal["system_status"] = "system_status"
    ray_nodes: int = Field(description="Alive Ray nodes.")
    llm_provider: str = Field(description="Backend answering.")
    llm_base_url: str = Field(description="Its base URL.")
    llm_models: dict[str, str] = Field(description="Model per role.")
    llm_reachable: bool = Field(description="Whether it answered just now.")
    llm_in_flight: int = Field(description="Requests at the LLM server now.")
    llm_waiting: int = Field(description="Requests queued for a slot.")
    llm_tools: ToolSupport | None = Field(None, description="Whether the model can call tools (checked at start-up).")
    llm_slots: int | None = Field(None, description="Requests all LLM endpoints run at once.")
    llm_endpoints: list[LLMEndpointView] = Field(default_factory=list, description="Each LLM endpoint's state.")
    llm_wait_reason: str | None = Field(None, description="Why LLM work waits now (endpoints down, slots busy).")
    pools: list[PoolStatus] = Field(description="One per agent type.")
    queue: dict[str, int] = Field(description="Task count per status.")


# --- memory ---------------------------------------------------------------------------------

MemoryCollection = Literal["conversations", "documents", "sops", "learnings"]
MEMORY_COLLECTIONS: tuple[MemoryCollection, ...] = ("conversations", "documents", "sops", "learnings")


class MemorySource(_Model):
    """One memory given to the model, with where it came from."""

    collection: MemoryCollection = Field(description="Which memory it is from.")
    source_id: str = Field(description="Document, conversation or run it comes from.")
    title: str = Field(description="Title of the source.")
    heading: str = Field("", description="Section within it, if any.")
    snippet: str = Field(description="The text given to the model (may be shortened here).")
    score: float = Field(description="Similarity to the request (cosine, -1..1).")
    link: str = Field(description="API path of the source.")


# --- run events (the SSE stream) ------------------------------------------------------------

RunEventKind = Literal["status", "token", "plan", "task", "summary", "end", "memory"]


class RunEvent(_Model):
    """One entry of a run's event log; ``seq`` is the SSE id (a reconnect resumes after it)."""

    kind: RunEventKind = Field(description="status: run state; token: reply text; plan; task: a step's "
                                            "state; summary: the final answer; end: nothing more follows; "
                                            "memory: memories given to the planner or a step.")
    run_id: str = Field(description="Run id.")
    seq: int = Field(0, description="Position in the run's log, from 1; set when stored.")
    at: float = Field(description="When it happened.")
    status: str | None = Field(None, description="Run state (status/end) or task state (task).")
    text: str | None = Field(None, description="Token text, summary, or a finished step's result.")
    phase: Literal["plan", "summary"] | None = Field(None, description="For tokens: which reply they belong to.")
    plan: Plan | None = Field(None, description="For plan events: the validated plan.")
    task_id: str | None = Field(None, description="For task events: the task.")
    step_id: str | None = Field(None, description="For task events: the plan step.")
    agent: str | None = Field(None, description="For task events: the agent type.")
    attempt: int | None = Field(None, description="For task events: the attempt number.")
    node: str | None = Field(None, description="For a step that starts running: the Ray node it runs on "
                                              "(the first 8 hex digits of the node id).")
    error: str | None = Field(None, description="Why a step or run failed, or why it waits.")
    sources: list[MemorySource] | None = Field(None, description="For memory events: what was retrieved.")


# --- conversations --------------------------------------------------------------------------


class Message(_Model):
    id: str = Field(description="Message id.")
    role: Literal["user", "assistant"] = Field(description="Who wrote it.")
    content: str = Field(description="Text.")
    run_id: str | None = Field(None, description="Run the message started or ended.")
    created_at: float = Field(description="When written.")


class ConversationSummary(_Model):
    id: str = Field(description="Conversation id.")
    title: str = Field(description="Title (the first request, shortened).")
    created_at: float = Field(description="When started.")
    updated_at: float = Field(description="Last activity.")
    runs: int = Field(0, description="Requests made in it.")
    last_status: RunStatus | None = Field(None, description="State of its latest run.")
    agents: list[str] = Field(default_factory=list, description="Agent types its plans used.")


class ConversationView(_Model):
    kind: Literal["conversation"] = "conversation"
    conversation: ConversationSummary = Field(description="The conversation.")
    messages: list[Message] = Field(default_factory=list, description="Messages, oldest first.")
    runs: list[Run] = Field(default_factory=list, description="Its runs, oldest first.")


class NewConversation(_Model):
    title: str | None = Field(None, max_length=200, description="Title; default: the first message.")


class PostMessage(_Model):
    message: str = Field(min_length=1, max_length=20_000, description="What the user wants done.")
    max_tokens: int | None = Field(None, ge=1, description="This run's token budget (its LLM calls' tokens); "
                                   "the user's setting when left out.")
    deadline_s: float | None = Field(None, gt=0, description="This run's wall-clock budget in seconds; the user's "
                                     "setting when left out.")


class RunAccepted(_Model):
    kind: Literal["run_accepted"] = "run_accepted"
    run_id: str = Field(description="Run started for the message.")
    conversation_id: str = Field(description="Conversation it belongs to.")
    status: RunStatus = Field(description="Run state (planning at first).")
    events_url: str = Field(description="Server-Sent Events stream of the run.")


# --- agents ---------------------------------------------------------------------------------


class AgentPoolView(_Model):
    agent: str = Field(description="Agent type.")
    description: str = Field(description="What the type does (what the planner reads).")
    actors: list[str] = Field(description="Pool actors (names) serving the type.")
    in_flight: int = Field(description="Sub-agents running now.")
    queued: int = Field(description="Tasks waiting (ready or retrying).")
    done_last_minute: int = Field(description="Tasks finished in the last 60 s.")
    dead: int = Field(description="Dead letters of this type.")


class MachineView(_Model):
    """One machine (Ray node) of the install, and the steps running on it."""

    node: str = Field(description="The Ray node id's first 8 hex digits (as a step's `node` and `maos cluster "
                                  "status` give it).")
    address: str = Field(description="Its IP address as Ray knows it.")
    head: bool = Field(description="Whether it is the head (the data, the Store and the gateways are there).")
    alive: bool = Field(description="Whether Ray counts it alive.")
    steps_running: int = Field(description="Steps running on it now, everyone's.")


class AgentsView(_Model):
    kind: Literal["agents"] = "agents"
    pools: list[AgentPoolView] = Field(description="One per agent type.")
    machines: list[MachineView] = Field(default_factory=list, description="The machines (Ray nodes), head first.")
    in_flight: int = Field(description="Sub-agents running now, all types.")
    queued: int = Field(description="Tasks waiting, all types.")
    dead: list[TaskRecord] = Field(description="Dead letters, newest first.")
    dashboard_url: str | None = Field(None, description="The Ray dashboard.")


# --- settings -------------------------------------------------------------------------------


class EditableSettings(_Model):
    """The settings a person may change from the UI or API; every field optional on update."""

    llm_provider: ProviderSetting | None = Field(
        None, description="auto: Ollama, else LM Studio, else embedded.")
    llm_base_url: str | None = Field(None, max_length=500, pattern=r"^https?://\S+$", description="Server base URL.")
    llm_model: str | None = Field(None, min_length=1, max_length=200, description="Planner model.")
    llm_worker_model: str | None = Field(None, min_length=1, max_length=200, description="Sub-agent model.")
    llm_slots: int | None = Field(None, ge=1, le=100_000, description="Requests the LLM server runs at once.")
    llm_endpoints: EndpointsText | None = Field(None, max_length=5000, description=(
        "Several LLM servers and their slots: url=slots,url=slots (none: just the server above)."))
    max_in_flight: int | None = Field(None, ge=1, le=100_000, description="Sub-agents at once, all types.")
    per_type_in_flight: int | None = Field(None, ge=1, le=100_000, description="Sub-agents at once per type.")
    queue_bound: int | None = Field(None, ge=1, le=10_000_000, description="Open tasks past which runs are refused.")
    max_attempts: int | None = Field(None, ge=1, le=20, description="Attempts before a task goes dead.")
    max_plan_steps: int | None = Field(None, ge=1, le=100_000, description="Most steps in one plan.")
    max_turns: int | None = Field(None, ge=1, le=100, description="Most LLM turns per sub-agent.")
    max_run_tokens: int | None = Field(None, ge=1, description="Most tokens per run.")
    run_deadline_s: float | None = Field(None, gt=0, le=7 * 86400, description="Wall-clock limit of a run.")
    stream_replies: bool | None = Field(None, description="Stream the master's replies token by token.")
    write_summaries: bool | None = Field(None, description="Have the model summarize each finished run.")
    answer_directly: bool | None = Field(None, description="Let the master answer a greeting or a question, or ask "
                                                           "one back, without planning work.")
    context_token_budget: int | None = Field(None, ge=0, le=32_000, description="Most tokens of the conversation "
                                             "(recent turns, the last run's results) the master reads; 0: none.")
    user_messages_per_minute: int | None = Field(None, ge=1, le=100_000, description="Chat messages per person a minute.")
    user_runs_per_minute: int | None = Field(None, ge=1, le=100_000, description="Runs a person may start a minute.")
    user_uploads_per_minute: int | None = Field(None, ge=1, le=100_000, description="Uploads per person a minute.")
    user_approvals_per_minute: int | None = Field(None, ge=1, le=100_000, description="Approval decisions per person "
                                                                                       "a minute.")


class SettingsView(_Model):
    kind: Literal["settings"] = "settings"
    values: EditableSettings = Field(description="Current values (all set).")
    applied: list[str] = Field(default_factory=list, description="Fields just changed and in effect now.")
    restart_required: list[str] = Field(default_factory=list, description="Fields saved, in effect at next start.")


class ConnectionTest(_Model):
    provider: Provider = Field(description="Server kind.")
    base_url: str = Field(max_length=500, pattern=r"^https?://\S+$", description="Server base URL.")
    model: str | None = Field(None, max_length=200, description="Model that must be there (optional).")


class ConnectionResult(_Model):
    ok: bool = Field(description="The server answered (and has the model, when one was named).")
    models: list[str] = Field(default_factory=list, description="Models the server lists.")
    latency_ms: float = Field(0.0, description="Time to answer.")
    error: str | None = Field(None, description="Why not, when not ok.")
