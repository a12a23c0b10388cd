"""HTTP routes of datasets. Thin: parse, call one service function, return a schema."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from app.auth.dependencies import get_tenant, require
from app.core import idempotency
from app.core.errors import ERROR_RESPONSES, ErrorResponse
from app.core.state import AppState, get_state
from app.datasets import service
from app.datasets.schemas import DatasetIn, DatasetOut, DatasetPage, DatasetRowIn, DatasetRowPage
from app.datasets.upload import JSONL_TYPES, Upload, parse_upload

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], dependencies=[Depends(require("jobs"))])

LIMIT = Query(default=100, ge=1, le=1000, description="Page size.")
CURSOR = Query(default=None, max_length=500, description="`next_cursor` of the previous page.")


def _request_body() -> dict[str, Any]:
    """The two accepted bodies, for the OpenAPI document (the route reads the body itself)."""
    row = DatasetRowIn.model_json_schema()
    dataset = DatasetIn.model_json_schema()
    dataset.pop("$defs", None)
    dataset["properties"]["rows"]["items"] = row
    jsonl = {
        "schema": {
            "type": "string",
            "description": "One JSON object per line, each a row as in the JSON body's `rows` "
            "(blank lines are skipped); the dataset's `name` and `description` go in the query.",
        },
        "example": '{"text": "Works as promised.", "label": "positive"}\n'
        '{"text": "Stopped charging after a week.", "label": "negative"}\n',
    }
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": dataset}, **{t: jsonl for t in JSONL_TYPES}},
        }
    }


async def read_upload(
    request: Request,
    name: str | None = Query(
        default=None, min_length=1, max_length=200, description="JSONL uploads: the dataset's name."
    ),
    description: str | None = Query(
        default=None, max_length=2000, description="JSONL uploads: what the dataset holds."
    ),
) -> Upload:
    body = await request.body()
    # Parsing up to max_body_bytes of rows is CPU work: keep it off the event loop.
    return await run_in_threadpool(parse_upload, request.headers.get("content-type"), body, name, description)


@router.post(
    "",
    operation_id="create_dataset",
    summary="Upload a labelled dataset (a JSON body, or JSONL rows)",
    status_code=201,
    response_model=DatasetOut,
    responses={415: {"model": ErrorResponse, "description": "Unsupported content type"}, **ERROR_RESPONSES},
    openapi_extra=_request_body(),
)
def create_dataset(
    upload: Upload = Depends(read_upload),
    idempotency_key: str | None = idempotency.HEADER,
    state: AppState = Depends(get_state),
    tenant: str = Depends(get_tenant),
) -> DatasetOut:
    idem = idempotency.of(idempotency_key, "POST /v1/datasets", upload.dataset)
    with state.db.unit_of_work() as session:
        return service.dataset_out(
            service.create_dataset(session, tenant, upload, state.settings.max_dataset_rows, idem)
        )


@router.get(
    "",
    operation_id="list_datasets",
    summary="List datasets, newest first",
    response_model=DatasetPage,
    responses=ERROR_RESPONSES,
)
def list_datasets(
    limit: int = LIMIT,
    cursor: str | None = CURSOR,
    state: AppState = Depends(get_state),
    tenant: str = Depends(get_tenant),
) -> DatasetPage:
    with state.db.unit_of_work() as session:
        return service.list_datasets(session, tenant, limit, cursor)


@router.get(
    "/{dataset_id}",
    operation_id="get_dataset",
    summary="A dataset's name, size, input fields and label counts",
    response_model=DatasetOut,
    responses=ERROR_RESPONSES,
)
def get_dataset(
    dataset_id: uuid.UUID, state: AppState = Depends(get_state), tenant: str = Depends(get_tenant)
) -> DatasetOut:
    with state.db.unit_of_work() as session:
        return service.dataset_out(service.get_dataset(session, dataset_id, tenant))


@router.get(
    "/{dataset_id}/rows",
    operation_id="get_dataset_rows",
    summary="A dataset's rows, in upload order",
    response_model=DatasetRowPage,
    responses=ERROR_RESPONSES,
)
def get_dataset_rows(
    dataset_id: uuid.UUID,
    limit: int = LIMIT,
    cursor: str | None = CURSOR,
    state: AppState = Depends(get_state),
    tenant: str = Depends(get_tenant),
) -> DatasetRowPage:
    with state.db.unit_of_work() as session:
        return service.rows_page(session, dataset_id, tenant, limit, cursor)


@router.delete(
    "/{dataset_id}",
    operation_id="delete_dataset",
    summary="Delete a dataset and its rows",
    status_code=204,
    response_class=Response,
    responses=ERROR_RESPONSES,
)
def delete_dataset(
    dataset_id: uuid.UUID, state: AppState = Depends(get_state), tenant: str = Depends(get_tenant)
) -> Response:
    with state.db.unit_of_work() as session:
        service.delete_dataset(session, dataset_id, tenant)
    return Response(status_code=204)
