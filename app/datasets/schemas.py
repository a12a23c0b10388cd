"""Request and response schemas of the dataset resources (the API contract)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictStr, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_FIELDS = 32
MAX_LABEL_LENGTH = 200


def _label_text(value: object) -> object:
    # Integer labels (LIAR's 0/1) are stored as text; bool is an int subclass and never a label.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PydanticCustomError("label_type", "must be a string or an integer")
    return str(value)


Label = Annotated[
    str,
    BeforeValidator(_label_text),
    Field(min_length=1, max_length=MAX_LABEL_LENGTH),
    WithJsonSchema(
        {"anyOf": [{"type": "string", "minLength": 1, "maxLength": MAX_LABEL_LENGTH}, {"type": "integer"}]}
    ),
]


class DatasetRowIn(BaseModel):
    """One labelled example: `label` plus input fields whose values are strings."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {"text": "Arrived broken and support never answered.", "label": "negative"},
                {"question": "What is 2+2?", "answer_a": "4", "answer_b": "5", "label": "A"},
            ]
        },
    )
    __pydantic_extra__: dict[str, StrictStr] = Field(init=False)

    label: Label = Field(
        description="The example's label; an integer (e.g. LIAR's 0/1) is stored as its decimal text."
    )

    @model_validator(mode="after")
    def _input_fields(self) -> Self:
        names = list(self.inputs)
        if not names:
            raise PydanticCustomError("no_inputs", "a row needs at least one input field besides `label`")
        if len(names) > MAX_FIELDS:
            raise PydanticCustomError("too_many_fields", f"a row has at most {MAX_FIELDS} input fields")
        for name in names:
            if not FIELD_NAME.match(name):
                raise PydanticCustomError(
                    "invalid_field_name",
                    "input field names must be identifiers (letters, digits, _; not starting with a digit; "
                    "at most 64 characters)",
                    {"field": name},
                )
        return self

    @property
    def inputs(self) -> dict[str, str]:
        return dict(self.model_extra or {})


class DatasetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1, max_length=200, description="A name for the dataset (need not be unique)."
    )
    description: str = Field(default="", max_length=2000, description="What the dataset holds.")
    rows: list[DatasetRowIn] = Field(
        min_length=1,
        description="The examples, in order. Every row has the same input fields (e.g. `text`, or "
        "`question`, `answer_a`, `answer_b`) and a `label`.",
    )


class DatasetOut(BaseModel):
    id: uuid.UUID = Field(description="The dataset's id (pass it to prompt-optimization jobs).")
    name: str = Field(min_length=1, max_length=200, description="The dataset's name.")
    description: str = Field(max_length=2000, description="What the dataset holds.")
    row_count: int = Field(ge=0, description="How many rows it holds.")
    fields: list[str] = Field(description="The input fields every row has, in the first row's order.")
    label_counts: dict[str, int] = Field(description="Each distinct label with its number of rows.")
    created_at: datetime = Field(description="When the dataset was uploaded (UTC).")


class DatasetPage(BaseModel):
    datasets: list[DatasetOut] = Field(description="Datasets, newest first.")
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; null at the end."
    )


class DatasetRowOut(BaseModel):
    index: int = Field(ge=0, description="Position of the row in the upload, from 0.")
    inputs: dict[str, str] = Field(description="The row's input fields and their values.")
    label: str = Field(min_length=1, description="The row's label (integers uploaded become their text).")


class DatasetRowPage(BaseModel):
    dataset_id: uuid.UUID = Field(description="The dataset the rows belong to.")
    rows: list[DatasetRowOut] = Field(description="Rows in index order.")
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; null at the end."
    )
