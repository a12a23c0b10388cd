"""Dataset resources: upload (JSON and JSONL), validation, reading, paging, deleting; shipped data."""

from __future__ import annotations

import base64
import json
import uuid
from collections import Counter
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.state import AppState
from app.datasets import repository
from app.datasets.builtin import BUILTIN_NAMES, SPLITS, builtin_split
from app.datasets.schemas import DatasetIn
from app.datasets.service import create_dataset
from app.datasets.upload import Upload
from tests.api.helpers import assert_error

URL = "/v1/datasets"
ROWS: list[dict[str, Any]] = [
    {"text": "Great kettle.", "label": "positive"},
    {"text": "Broke in a week.", "label": "negative"},
    {"text": "Does the job.", "label": "positive"},
]


def _create(client: TestClient, name: str = "reviews", rows: list[dict[str, Any]] | None = None) -> str:
    response = client.post(URL, json={"name": name, "rows": ROWS if rows is None else rows})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _jsonl(rows: list[Any]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def _post_jsonl(
    client: TestClient, body: bytes, content_type: str = "application/x-ndjson", **params: Any
) -> Any:
    params.setdefault("name", "liar")
    return client.post(URL, content=body, params=params, headers={"content-type": content_type})


# Creating --------------------------------------------------------------------------------------


def test_create_from_json_reports_fields_and_label_counts(client: TestClient) -> None:
    response = client.post(URL, json={"name": "reviews", "description": "tiny", "rows": ROWS})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "reviews"
    assert body["description"] == "tiny"
    assert body["row_count"] == 3
    assert body["fields"] == ["text"]
    assert body["label_counts"] == {"negative": 1, "positive": 2}
    assert client.get(f"{URL}/{body['id']}").json() == body


@pytest.mark.parametrize("content_type", ["application/x-ndjson", "application/jsonl"])
def test_create_from_jsonl_stores_integer_labels_as_text(client: TestClient, content_type: str) -> None:
    rows = [{"statement": "The moon is cheese.", "label": 0}, {"statement": "Water is wet.", "label": 1}]
    body = _jsonl(rows).replace(b"\n", b"\n\n", 1)  # a blank line is skipped
    response = _post_jsonl(client, body, content_type, description="LIAR-style")
    assert response.status_code == 201, response.text
    dataset = response.json()
    assert dataset["name"] == "liar" and dataset["description"] == "LIAR-style"
    assert dataset["label_counts"] == {"0": 1, "1": 1}
    page = client.get(f"{URL}/{dataset['id']}/rows").json()
    assert page["rows"] == [
        {"index": 0, "inputs": {"statement": "The moon is cheese."}, "label": "0"},
        {"index": 1, "inputs": {"statement": "Water is wet."}, "label": "1"},
    ]


def test_pairwise_rows_keep_every_input_field(client: TestClient) -> None:
    row = {"question": "2+2?", "answer_a": "4", "answer_b": "5", "label": "A"}
    dataset_id = _create(client, rows=[row, {**row, "label": "tie"}])
    dataset = client.get(f"{URL}/{dataset_id}").json()
    assert dataset["fields"] == ["question", "answer_a", "answer_b"]
    assert dataset["label_counts"] == {"A": 1, "tie": 1}


# Validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"text": "no label"}, "rows[1].label"),
        ({"text": "bool label", "label": True}, "rows[1].label"),
        ({"text": "empty label", "label": ""}, "rows[1].label"),
        ({"text": 3, "label": "positive"}, "rows[1].text"),
        ({"label": "positive"}, "rows[1]"),
        ({"text": "x", "2nd": "y", "label": "positive"}, "rows[1].2nd"),
    ],
    ids=["missing-label", "bool-label", "empty-label", "non-string-field", "no-inputs", "bad-field-name"],
)
def test_bad_json_row_names_its_field(client: TestClient, row: dict[str, Any], field: str) -> None:
    response = client.post(URL, json={"name": "d", "rows": [ROWS[0], row]})
    assert_error(response, 422, "validation_error", field)


def test_rows_must_share_input_fields(client: TestClient) -> None:
    rows = [ROWS[0], ROWS[1], {"text": "x", "title": "y", "label": "positive"}]
    error = assert_error(
        client.post(URL, json={"name": "d", "rows": rows}), 422, "validation_error", "rows[2]"
    )
    assert "title" in error["message"]


def test_empty_dataset_is_422(client: TestClient) -> None:
    assert_error(client.post(URL, json={"name": "d", "rows": []}), 422, "validation_error", "rows")
    error = assert_error(_post_jsonl(client, b"\n\n"), 422, "validation_error", None)
    assert "no rows" in error["message"]


def test_malformed_json_body_is_422(client: TestClient) -> None:
    response = client.post(
        URL, content=b'{"name": "d", "rows": [', headers={"content-type": "application/json"}
    )
    assert_error(response, 422, "validation_error", None)


def test_jsonl_errors_name_the_line(client: TestClient) -> None:
    body = _jsonl(ROWS) + b'{"text": "unclosed", "label": \n'
    error = assert_error(_post_jsonl(client, body), 422, "validation_error", None)
    assert error["message"].startswith("line 4: invalid JSON")

    error = assert_error(_post_jsonl(client, _jsonl([ROWS[0], {"text": "x"}])), 422, "validation_error", None)
    assert error["message"].startswith("line 2: label")

    error = assert_error(_post_jsonl(client, _jsonl([ROWS[0], ["a", "list"]])), 422, "validation_error", None)
    assert error["message"].startswith("line 2: expected a JSON object")

    rows = [ROWS[0], {"title": "x", "label": "positive"}]
    error = assert_error(_post_jsonl(client, _jsonl(rows)), 422, "validation_error", None)
    assert error["message"].startswith("line 2: ")


def test_jsonl_needs_a_name_in_the_query(client: TestClient) -> None:
    response = client.post(URL, content=_jsonl(ROWS), headers={"content-type": "application/x-ndjson"})
    assert_error(response, 422, "validation_error", "name")


def test_json_body_rejects_the_query_name(client: TestClient) -> None:
    response = client.post(URL, params={"name": "q"}, json={"name": "d", "rows": ROWS})
    assert_error(response, 422, "validation_error", "name")


def test_unsupported_content_type_is_415(client: TestClient) -> None:
    response = client.post(URL, content=b"text,label", headers={"content-type": "text/csv"})
    assert_error(response, 415, "unsupported_media_type", None)


def test_too_many_rows_names_the_limit(client: TestClient, state: AppState) -> None:
    state.settings = state.settings.model_copy(update={"max_dataset_rows": 2})
    error = assert_error(client.post(URL, json={"name": "d", "rows": ROWS}), 422, "validation_error", "rows")
    assert "at most 2" in error["message"]
    error = assert_error(_post_jsonl(client, _jsonl(ROWS)), 422, "validation_error", None)
    assert "at most 2" in error["message"]
    assert client.get(URL).json()["datasets"] == []


# Reading, paging, deleting ---------------------------------------------------------------------


def test_list_is_newest_first_and_pages_by_cursor(client: TestClient) -> None:
    assert client.get(URL).json() == {"datasets": [], "next_cursor": None}
    created = [_create(client, name=f"d{i}") for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get(URL, params=params).json()
        seen += [d["id"] for d in page["datasets"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == created[::-1]


def test_rows_page_in_index_order(client: TestClient) -> None:
    rows = [{"text": f"row {i}", "label": "positive" if i % 2 else "negative"} for i in range(5)]
    dataset_id = _create(client, rows=rows)
    first = client.get(f"{URL}/{dataset_id}/rows", params={"limit": 3}).json()
    assert [r["index"] for r in first["rows"]] == [0, 1, 2]
    rest = client.get(f"{URL}/{dataset_id}/rows", params={"limit": 3, "cursor": first["next_cursor"]}).json()
    assert [r["inputs"]["text"] for r in rest["rows"]] == ["row 3", "row 4"]
    assert rest["next_cursor"] is None


@pytest.mark.parametrize(
    "cursor",
    ["%%%", base64.urlsafe_b64encode(b"[true]").decode(), base64.urlsafe_b64encode(b'{"a": 1}').decode()],
    ids=["not-base64", "bool-index", "not-a-list"],
)
def test_malformed_rows_cursor_is_422(client: TestClient, cursor: str) -> None:
    dataset_id = _create(client)
    response = client.get(f"{URL}/{dataset_id}/rows", params={"cursor": cursor})
    assert_error(response, 422, "validation_error", "cursor")


def test_malformed_list_cursor_is_422(client: TestClient) -> None:
    cursor = base64.urlsafe_b64encode(b'["yesterday", "x"]').decode()
    assert_error(client.get(URL, params={"cursor": cursor}), 422, "validation_error", "cursor")


def test_delete_removes_the_dataset_and_its_rows(client: TestClient, state: AppState) -> None:
    dataset_id = _create(client)
    response = client.delete(f"{URL}/{dataset_id}")
    assert response.status_code == 204 and response.content == b""
    assert_error(client.get(f"{URL}/{dataset_id}"), 404, "not_found", None)
    with state.db.unit_of_work() as session:
        assert repository.rows(session, uuid.UUID(dataset_id)) == []


@pytest.mark.parametrize(
    ("method", "suffix"), [("GET", ""), ("GET", "/rows"), ("DELETE", "")], ids=["get", "rows", "delete"]
)
def test_unknown_dataset_is_404(client: TestClient, method: str, suffix: str) -> None:
    dataset_id = uuid.uuid4()
    error = assert_error(client.request(method, f"{URL}/{dataset_id}{suffix}"), 404, "not_found", None)
    assert str(dataset_id) in error["message"]


def test_another_tenants_dataset_is_invisible(client: TestClient, state: AppState) -> None:
    with state.db.unit_of_work() as session:
        theirs = create_dataset(
            session, "other", Upload(DatasetIn.model_validate({"name": "x", "rows": ROWS})), 10
        )
        theirs_id = theirs.id
    for method, suffix in [("GET", ""), ("GET", "/rows"), ("DELETE", "")]:
        assert_error(client.request(method, f"{URL}/{theirs_id}{suffix}"), 404, "not_found", None)
    assert client.get(URL).json()["datasets"] == []


def test_worker_reads_rows_in_order_across_tenants(client: TestClient, state: AppState) -> None:
    dataset_id = uuid.UUID(_create(client))
    with state.db.unit_of_work() as session:
        dataset = repository.get_dataset(session, dataset_id)
        assert dataset is not None and dataset.row_count == 3
        assert repository.get_dataset(session, dataset_id, tenant="other") is None
        rows = repository.rows(session, dataset_id)
    assert [(r.index, r.inputs, r.label) for r in rows] == [
        (i, {"text": r["text"]}, r["label"]) for i, r in enumerate(ROWS)
    ]


# Shipped datasets ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fields", "labels", "sizes"),
    [
        ("reviews", {"text"}, {"positive", "negative"}, {"train": 60, "dev": 24, "test": 40}),
        (
            "judge_agreement",
            {"question", "answer_a", "answer_b"},
            {"A", "B", "tie"},
            {"train": 24, "dev": 12, "test": 12},
        ),
    ],
)
def test_shipped_datasets_are_sized_balanced_and_disjoint(
    name: str, fields: set[str], labels: set[str], sizes: dict[str, int]
) -> None:
    splits = {split: builtin_split(name, split) for split in SPLITS}
    key = "text" if name == "reviews" else "question"
    seen: set[str] = set()
    for split, rows in splits.items():
        assert len(rows) == sizes[split]
        assert all(set(r) == fields | {"label"} and all(isinstance(v, str) for v in r.values()) for r in rows)
        counts = Counter(r["label"] for r in rows)
        assert set(counts) == labels
        if name == "reviews":
            assert counts["positive"] == counts["negative"]
        else:
            assert counts["A"] == counts["B"] and 0 < counts["tie"] < counts["A"]
        keys = {r[key] for r in rows}
        assert len(keys) == len(rows), f"duplicate within {name}/{split}"
        assert not keys & seen, f"{name}/{split} overlaps another split"
        seen |= keys


def test_shipped_splits_upload_as_datasets(client: TestClient) -> None:
    for name in BUILTIN_NAMES:
        body = _jsonl(builtin_split(name, "dev"))
        response = _post_jsonl(client, body, name=name)
        assert response.status_code == 201, response.text
        assert response.json()["row_count"] == len(builtin_split(name, "dev"))


def test_unknown_shipped_dataset_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown"):
        builtin_split("../reviews", "train")
    with pytest.raises(ValueError, match="unknown"):
        builtin_split("reviews", "validation")
