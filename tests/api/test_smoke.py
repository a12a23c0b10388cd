from fastapi.testclient import TestClient


def test_pairwise_accepted(client: TestClient) -> None:
    r = client.post("/v1/judgments/pairwise", json={"items": [{"question": "q", "answer_a": "a", "answer_b": "b"}]})
    assert r.status_code == 202, r.text
    job = r.json()
    r = client.get(f"/v1/jobs/{job['id']}")
    assert r.status_code == 200
    r = client.get(f"/v1/jobs/{job['id']}/results")
    assert r.status_code == 200, r.text
    print(r.json())
    r = client.get("/v1/templates")
    assert r.status_code == 200
    r = client.get("/readyz")
    assert r.status_code == 200, r.text
    r = client.post("/v1/judgments/pairwise?wait=0.5", json={"items": [{"question": "q", "answer_a": "a", "answer_b": "b"}]})
    assert r.status_code == 202, r.text
