"""What ``maos cluster status`` reports (and prints with ``--json``): the nodes, the app's actors on
each, and the LLM endpoints with their health."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from core.llm_schemas import LLMEndpointView


class NodeView(BaseModel):
    """One Ray node of the cluster."""

    model_config = ConfigDict(extra="forbid")

    node_id: str = Field(description="Ray's node id (hex).")
    address: str = Field(description="The node's IP address as Ray knows it.")
    alive: bool = Field(description="Whether Ray counts the node alive.")
    head: bool = Field(description="Whether this is the head node (the data lives there).")
    cpus: float = Field(description="CPUs the node offers to Ray.")
    gpus: float = Field(description="GPUs the node offers to Ray.")
    memory_gb: float = Field(description="Memory the node offers to Ray's tasks and actors, in GB.")
    actors: list[str] = Field(default_factory=list, description="Names of the app's live actors on the node.")


class ClusterView(BaseModel):
    """A cluster as ``maos cluster status`` sees it."""

    model_config = ConfigDict(extra="forbid")

    address: str = Field(description="The head's Ray (GCS) address.")
    head_version: str | None = Field(None, description="The code version the head published at start.")
    nodes: list[NodeView] = Field(default_factory=list, description="Every node Ray knows, alive or not.")
    app_running: bool = Field(False, description="Whether the app's actors run in this cluster.")
    endpoints: list[LLMEndpointView] = Field(default_factory=list, description="LLM endpoints and their health, "
                                                                        "over every gateway.")
    wait_reason: str | None = Field(None, description="Why LLM work waits now (endpoints down, every slot busy).")
    actors_note: str | None = Field(None, description="Why actors are not listed per node, when they are not.")
