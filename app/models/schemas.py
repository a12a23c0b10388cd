"""Response schemas of the model registry."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class ModelOut(BaseModel):
    id: uuid.UUID
    name: str = Field(description="The name to pass as `model` in judging requests.")
    backend: str = Field(description="The inference backend that serves it (transformers, vllm, openai).")
    parent_id: uuid.UUID | None = Field(default=None, description="The model it was trained from, if any.")
    job_id: uuid.UUID | None = Field(default=None, description="The job that produced it, if any.")
    iteration: int | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    default: bool = Field(description="Whether requests without `model` use it.")
    dtype: str | None = Field(
        default=None,
        max_length=32,
        description="The number format its workers serve it in (`bfloat16`, `float32`, `float16`), as the "
        "latest worker to load it reported (`JUDGE_DTYPE=auto` picks bfloat16 on CPUs with native bf16); "
        "null until a worker has loaded it, and for a remote (openai) backend.",
    )
    created_at: datetime


class ModelList(BaseModel):
    models: list[ModelOut]


class ModelRef(BaseModel):
    id: uuid.UUID
    name: str
    iteration: int | None = None
    job_id: uuid.UUID | None = None


class ModelDetail(ModelOut):
    artifact_path: str | None = Field(
        default=None,
        description="Where the weights are (a local folder on the workers' storage); shown to keys with "
        "the `admin` scope only, null for the others.",
    )
    lineage: list[ModelRef] = Field(
        default_factory=list, description="Parent, grandparent, ... up to the model nothing was trained from."
    )
    children: list[ModelRef] = Field(default_factory=list, description="Models trained from this one.")
