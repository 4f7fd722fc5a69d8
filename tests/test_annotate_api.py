"""The annotation API in-process: assignment rules, idempotence, the 401/403 rules, isolation between annotators,
the body limit, gold accuracy, and the CLI's add-annotator and export."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from importlib import resources
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from jpo.annotate import Settings, Store, create_app
from jpo.cli import main
from jpo.data import read_jsonl, write_jsonl

ADMIN = "the-admin-token-0123456789"


def make_items(n: int, *, conditional: bool = False) -> list[dict]:
    return [{"id": f"item-{k}", "prompt_a": f"Instruction {k}", "response_a": f"good {k}",
             "prompt_b": f"Instruction {k}" if conditional else f"Other instruction {k}", "response_b": f"bad {k}"}
            for k in range(n)]


class Setup:
    def __init__(self, tmp_path: Path, items: list[dict], gold: list[dict] = (), **settings) -> None:
        self.store = Store(tmp_path / "a.db")
        self.store.add_items(items)
        self.store.add_items(list(gold), gold=True)
        self.client = TestClient(create_app(self.store, Settings(admin_token=ADMIN, **settings)))

    def annotator(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.store.add_annotator(name)}"}

    def next(self, auth: dict) -> dict | None:
        response = self.client.get("/api/next", headers=auth)
        if response.status_code == 204:
            return None
        assert response.status_code == 200, response.text
        return response.json()

    def answer(self, auth: dict, job: dict, choice: str = "a", explanation: str = "") -> int:
        body = {"item_id": job["item_id"], "assignment_id": job["assignment_id"], "choice": choice,
                "explanation": explanation}
        return self.client.post("/api/answer", headers=auth, json=body).status_code

    def export(self) -> list[dict]:
        response = self.client.get("/api/export", headers={"Authorization": f"Bearer {ADMIN}"})
        assert response.status_code == 200
        return [json.loads(line) for line in response.text.splitlines()]


def test_each_item_goes_to_per_item_distinct_annotators_then_204(tmp_path):
    s = Setup(tmp_path, make_items(4), per_item=2)
    people = {name: s.annotator(name) for name in ("ann", "bob", "cy")}
    seen: dict[str, list[str]] = {name: [] for name in people}
    for _ in range(10):  # bounded: at most 8 answers exist
        for name, auth in people.items():
            job = s.next(auth)
            if job is not None:
                seen[name].append(job["item_id"])
                assert s.answer(auth, job) == 201
    for name, items in seen.items():
        assert len(items) == len(set(items)), f"{name} saw an item twice"
    counts = {f"item-{k}": sum(f"item-{k}" in items for items in seen.values()) for k in range(4)}
    assert counts == {f"item-{k}": 2 for k in range(4)}
    assert all(s.next(auth) is None for auth in people.values())
    assert len(s.export()) == 8


def test_open_assignment_is_served_again_until_answered(tmp_path):
    s = Setup(tmp_path, make_items(3))
    auth = s.annotator("ann")
    first = s.next(auth)
    assert s.next(auth)["assignment_id"] == first["assignment_id"]  # a reload shows the same item, same sides
    assert s.answer(auth, first) == 201
    assert s.next(auth)["assignment_id"] != first["assignment_id"]


def test_sides_are_randomised_per_assignment_and_mapped_back_to_the_items_terms(tmp_path):
    items = make_items(60)
    s = Setup(tmp_path, items, per_item=1)
    auth = s.annotator("ann")
    by_id = {item["id"]: item for item in items}
    for _ in range(60):
        job = s.next(auth)
        item = by_id[job["item_id"]]
        shown_a_is_items_a = job["item"]["response_a"] == item["response_a"]
        assert job["item"]["response_a"] == (item["response_a"] if shown_a_is_items_a else item["response_b"])
        assert s.answer(auth, job, "a") == 201  # always click the left (A) side
    rows = s.export()
    swapped = [row["swapped"] for row in rows]
    assert 10 < sum(swapped) < 50  # both orders occur (p of failing ~ 1e-7)
    for row in rows:
        assert row["shown_choice"] == "a"
        assert row["choice"] == ("b" if row["swapped"] else "a")


def test_conditional_items_say_so(tmp_path):
    s = Setup(tmp_path, make_items(1, conditional=True))
    job = s.next(s.annotator("ann"))
    assert job["protocol"] == "conditional" and job["item"]["prompt_a"] == job["item"]["prompt_b"]


def test_retried_answer_is_idempotent_and_a_different_one_conflicts(tmp_path):
    s = Setup(tmp_path, make_items(2))
    auth = s.annotator("ann")
    job = s.next(auth)
    assert s.answer(auth, job, "b", "why") == 201
    assert s.answer(auth, job, "b", "why") == 200
    assert s.answer(auth, job, "a", "why") == 409
    assert len(s.export()) == 1


@pytest.mark.parametrize("path, method", [("/api/next", "GET"), ("/api/answer", "POST"), ("/api/progress", "GET"),
                                          ("/api/export", "GET"), ("/api/annotators", "POST")])
def test_401_without_a_valid_token(tmp_path, path, method):
    s = Setup(tmp_path, make_items(1))
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": f"Basic {ADMIN}"}):
        assert s.client.request(method, path, headers=headers, json={}).status_code == 401


def test_403_for_annotators_on_admin_endpoints_and_for_the_admin_as_annotator(tmp_path):
    s = Setup(tmp_path, make_items(1))
    auth = s.annotator("ann")
    assert s.client.get("/api/export", headers=auth).status_code == 403
    assert s.client.post("/api/annotators", headers=auth, json={"name": "eve"}).status_code == 403
    admin = {"Authorization": f"Bearer {ADMIN}"}
    assert s.client.get("/api/next", headers=admin).status_code == 403
    created = s.client.post("/api/annotators", headers=admin, json={"name": "dan"})
    assert created.status_code == 201 and created.json()["url"].endswith("#token=" + created.json()["token"])


def test_a_bad_annotator_name_is_400_and_only_a_taken_one_409(tmp_path):
    s = Setup(tmp_path, make_items(1))
    admin = {"Authorization": f"Bearer {ADMIN}"}
    for bad in ("", "   ", "x" * 101, "tab\there"):
        answer = s.client.post("/api/annotators", headers=admin, json={"name": bad})
        assert answer.status_code == 400 and "1-100 printable characters" in answer.text, (bad, answer.text)
    assert s.client.post("/api/annotators", headers=admin, json={"name": "dan"}).status_code == 201
    taken = s.client.post("/api/annotators", headers=admin, json={"name": " dan "})
    assert taken.status_code == 409 and "already exists" in taken.text


def test_an_annotator_cannot_answer_or_see_anothers_assignment(tmp_path):
    s = Setup(tmp_path, make_items(2), per_item=1)
    ann, bob = s.annotator("ann"), s.annotator("bob")
    job = s.next(ann)
    assert s.answer(bob, job, "b") == 404  # same answer as for a made-up id: nothing leaks
    assert s.answer(bob, {**job, "assignment_id": "made-up"}) == 404
    bobs = s.next(bob)
    assert bobs["item_id"] != job["item_id"]  # per_item=1: ann's item is not bob's
    assert s.answer(ann, {**job, "item_id": bobs["item_id"]}) == 404  # an unassigned item via own assignment
    assert s.answer(ann, job, "a") == 201
    progress = s.client.get("/api/progress", headers=bob).json()
    assert progress == {"answered": 0, "remaining": 1}  # only bob's own counts, no one else's answers
    assert "ann" not in s.client.get("/api/progress", headers=bob).text


def test_request_body_limit(tmp_path):
    s = Setup(tmp_path, make_items(1), max_body_bytes=2048)
    auth = s.annotator("ann")
    job = s.next(auth)
    big = {"item_id": job["item_id"], "assignment_id": job["assignment_id"], "choice": "a", "explanation": "x" * 4096}
    assert s.client.post("/api/answer", headers=auth, json=big).status_code == 413

    def chunks():  # no Content-Length: the limit holds for a streamed body too
        for _ in range(10):
            yield b"x" * 1024

    assert s.client.post("/api/answer", headers=auth, content=chunks()).status_code == 413
    assert s.export() == []


@pytest.mark.parametrize("body", [[], {"choice": "a"}, {"item_id": "x", "assignment_id": "y", "choice": "maybe"},
                                  {"item_id": "x", "assignment_id": "y", "choice": "a", "explanation": 3}])
def test_malformed_answers_get_400(tmp_path, body):
    s = Setup(tmp_path, make_items(1))
    assert s.client.post("/api/answer", headers=s.annotator("ann"), json=body).status_code == 400
    assert s.client.post("/api/answer", headers=s.annotator("bob"), content=b"{not json").status_code == 400


def test_required_explanation(tmp_path):
    s = Setup(tmp_path, make_items(1), require_explanation=True)
    auth = s.annotator("ann")
    job = s.next(auth)
    assert job["require_explanation"] is True
    assert s.answer(auth, job, "a", "   ") == 400
    assert s.answer(auth, job, "a", "A follows the instruction") == 201


def test_gold_items_are_mixed_in_and_scored_per_annotator(tmp_path, capsys):
    gold = [{**item, "id": f"gold-{k}", "label": label}
            for k, (item, label) in enumerate(zip(make_items(3), ["a", "b", "tie"], strict=True))]
    s = Setup(tmp_path, make_items(4), gold=gold, per_item=1, gold_every=2)
    auth = s.annotator("ann")
    order = []
    for _ in range(10):
        job = s.next(auth)
        if job is None:
            break
        order.append(job["item_id"])
        # answer every gold item "a" in the item's terms: right on gold-0 only
        shown_a_is_a = job["item"]["response_a"].startswith("good")
        assert s.answer(auth, job, "a" if shown_a_is_a else "b") == 201
    assert [i.startswith("gold") for i in order] == [True, False, False, True, False, False, True]
    admin = s.client.get("/api/progress", headers={"Authorization": f"Bearer {ADMIN}"}).json()
    assert admin["gold_items"] == 3 and admin["items"] == 4 and admin["complete_items"] == 4
    (person,) = admin["annotators"]
    assert (person["gold_answered"], person["gold_correct"]) == (3, 1)
    assert person["gold_accuracy"] == pytest.approx(1 / 3)
    rows = s.export()
    assert sum(r["gold"] for r in rows) == 3 and {r.get("correct") for r in rows if r["gold"]} == {True, False}
    assert main(["annotate", "export", "--db", str(tmp_path / "a.db"), "--output", str(tmp_path / "o.jsonl")]) == 0
    printed = capsys.readouterr().out
    assert "3 gold answers" in printed and "gold accuracy: ann 1/3 (33%)" in printed


def test_an_expired_lease_frees_the_slot_and_a_late_answer_is_kept(tmp_path):
    s = Setup(tmp_path, make_items(1), per_item=1, lease=timedelta(0))
    ann, bob = s.annotator("ann"), s.annotator("bob")
    late = s.next(ann)
    assert s.next(bob)["item_id"] == late["item_id"]
    assert s.answer(ann, late) == 201
    assert len(s.export()) == 1


def test_hostile_names_and_ids_are_plain_data(tmp_path):
    nasty = "x'); DROP TABLE answers; --"
    items = [{**make_items(1)[0], "id": nasty}]
    s = Setup(tmp_path, items)
    auth = s.annotator(nasty)
    assert s.answer(auth, s.next(auth), "equal") == 201
    (row,) = s.export()
    assert row["annotator"] == nasty and row["item_id"] == nasty and row["choice"] == "equal"


def test_sql_is_only_ever_built_with_parameters():
    source = resources.files("jpo.annotate").joinpath("store.py").read_text()
    assert not re.search(r"execute\(\s*f[\"']", source)
    assert ".format(" not in source and "% (" not in source


def test_page_is_static_with_a_strict_csp_and_no_html_sinks(tmp_path):
    s = Setup(tmp_path, make_items(1))
    page = s.client.get("/")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe" not in csp
    assert re.findall(r"<script[^>]*>([^<]*)</script>", page.text) == [""]  # no inline script
    script = "\n".join(line for line in s.client.get("/page.js").text.splitlines()
                       if not line.lstrip().startswith("//"))
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(", script)
    assert s.client.get("/api/next").headers["content-security-policy"] == csp


# --- CLI ------------------------------------------------------------------------------------------------------------

def test_add_annotator_json_prints_a_working_link(tmp_path, capsys):
    db = tmp_path / "a.db"
    assert main(["annotate", "add-annotator", "Ada", "--db", str(db), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["name"] == "Ada" and printed["url"] == f"http://127.0.0.1:8000/#token={printed['token']}"
    assert Store(db).annotator(printed["token"]).name == "Ada"
    assert printed["token"] not in db.read_bytes().decode("latin-1")  # only its digest is stored
    assert main(["annotate", "add-annotator", "Ada", "--db", str(db)]) == 2  # names are unique
    assert "already exists" in capsys.readouterr().err


def test_export_majority_and_none(tmp_path, capsys):
    s = Setup(tmp_path, make_items(3), per_item=3)
    people = [s.annotator(name) for name in ("ann", "bob", "cy")]
    votes = {"item-0": ["a", "a", "b"], "item-1": ["a", "b", "equal"], "item-2": ["equal", "equal", "b"]}
    for auth_index, auth in enumerate(people):
        for _ in range(3):
            job = s.next(auth)
            swapped = not job["item"]["response_a"].startswith("good")
            wanted = votes[job["item_id"]][auth_index]
            shown = {"a": "b", "b": "a"}.get(wanted, wanted) if swapped else wanted
            assert s.answer(auth, job, shown, f"{auth_index}") == 201
    db = str(tmp_path / "a.db")
    out = tmp_path / "majority.jsonl"
    assert main(["annotate", "export", "--db", db, "--output", str(out)]) == 0
    (row,) = read_jsonl(out)
    assert (row["id"], row["chosen"], row["rejected"], row["votes"]) == \
        ("item-0", "good 0", "bad 0", {"a": 2, "b": 1, "equal": 0})
    summary = capsys.readouterr().out
    assert "1 items judged equal" in summary and "1 items without a majority" in summary
    assert main(["annotate", "export", "--db", db, "--output", str(out), "--aggregate", "none"]) == 0
    rows = read_jsonl(out)
    assert len(rows) == 6 and "3 equal answers" in capsys.readouterr().out
    assert sum(r["chosen"].startswith("bad") for r in rows) == 3
    assert main(["annotate", "export", "--db", db, "--output", str(out), "--format", "items"]) == 0
    labels = {r["id"]: r["label"] for r in read_jsonl(out)}
    assert labels == {"item-0": "a", "item-2": "tie"}


def test_serve_reports_bad_items_file_with_location(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("JPO_ANNOTATE_ADMIN_TOKEN", ADMIN)
    bad = tmp_path / "items.jsonl"
    write_jsonl(bad, [{"id": "1", "prompt_a": "p", "response_a": "r", "prompt_b": "q", "response_b": 5}])
    assert main(["annotate", "serve", "--items", str(bad), "--db", str(tmp_path / "a.db"), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "items.jsonl:1" in err and "response_b" in err
    monkeypatch.setenv("JPO_ANNOTATE_ADMIN_TOKEN", "short")
    assert main(["annotate", "serve", "--items", str(bad), "--db", str(tmp_path / "a.db")]) == 2
    assert "at least 16 characters" in capsys.readouterr().err


def test_real_preference_files_are_served_as_items_without_leaking_the_original_label(tmp_path, shared_data):
    from jpo.annotate.export import load_annotation_items

    hh = load_annotation_items(shared_data("hh-rlhf", "harmless-base", "test.jsonl.gz"))
    authors = load_annotation_items(shared_data("jpo-authors", "anthropic_helpful", "val_conditional_pref.jsonl"))
    assert (len(hh), len(authors)) == (2312, 363)
    s = Setup(tmp_path, hh[:5] + authors[:5], per_item=1)
    by_id = {item["id"]: item for item in hh[:5] + authors[:5]}
    auth = s.annotator("ann")
    for _ in range(10):
        job = s.next(auth)
        item = by_id[job["item_id"]]
        assert set(job["item"]) == {"prompt_a", "response_a", "prompt_b", "response_b"}  # no "preference": "a"
        assert job["protocol"] == "conditional"
        assert {json_text(job["item"]["response_a"]), json_text(job["item"]["response_b"])} == \
            {json_text(item["response_a"]), json_text(item["response_b"])}
        assert s.answer(auth, job, "b") == 201
    assert s.next(auth) is None


def json_text(value) -> str:
    return json.dumps(value, sort_keys=True)


def readme_api_rows() -> dict[str, str]:
    """The README's annotation API table: call (e.g. "GET /api/next") -> the rest of its row."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    rows = {}
    for line in readme.splitlines():
        found = re.match(r"\| `((?:GET|POST) /api/\w+)`[^|]*\|(.*)$", line)
        if found:
            rows[found.group(1)] = found.group(2)
    return rows


def test_the_readme_documents_the_api_exactly(tmp_path):
    """Every key, status and body the README's table names is what the server does (and the reverse)."""
    documented = readme_api_rows()
    assert set(documented) == {"GET /api/next", "POST /api/answer", "GET /api/progress", "GET /api/export",
                               "POST /api/annotators"}

    def says(call: str, *words: str) -> None:
        for word in words:
            assert word in documented[call], (call, word)

    s = Setup(tmp_path, make_items(1, conditional=True), per_item=1)
    assert s.client.get("/api/next").status_code == 401  # "Authorization: Bearer TOKEN" on every call
    ann = s.annotator("ann")
    admin = {"Authorization": f"Bearer {ADMIN}"}
    job = s.next(ann)
    assert set(job) == {"item_id", "assignment_id", "protocol", "item", "require_explanation"}
    assert set(job["item"]) == {"prompt_a", "response_a", "prompt_b", "response_b"} and job["protocol"] == "conditional"
    says("GET /api/next", *(f'"{k}"' for k in (*job, *job["item"])), '"conditional"', "204")
    assert s.next(ann) == job  # the same open assignment until it is answered
    body = {"item_id": job["item_id"], "assignment_id": job["assignment_id"], "choice": "a", "explanation": "x"}
    says("POST /api/answer", *(f'"{k}"' for k in body), '"equal"', "201", "200", "409", "404", "400", "413")
    first = s.client.post("/api/answer", headers=ann, json=body)
    again = s.client.post("/api/answer", headers=ann, json=body)
    other = s.client.post("/api/answer", headers=ann, json={**body, "choice": "b"})
    assert (first.status_code, first.json()) == (201, {"status": "recorded"})
    assert (again.status_code, again.json()) == (200, {"status": "already recorded"})
    assert other.status_code == 409 and set(other.json()) == {"error"}
    says("POST /api/answer", '{"status": "recorded"}', '{"status": "already recorded"}')
    done = s.client.get("/api/next", headers=ann)
    assert done.status_code == 204 and done.content == b""
    mine, everyone = (s.client.get("/api/progress", headers=h).json() for h in (ann, admin))
    says("GET /api/progress", *(f'"{k}"' for k in (*mine, *everyone, *everyone["annotators"][0])))
    assert set(mine) == {"answered", "remaining"}
    assert s.client.get("/api/export", headers=ann).status_code == 403
    (row,) = s.export()
    says("GET /api/export", *(f'"{k}"' for k in row), '"gold_label"', '"correct"')
    made = s.client.post("/api/annotators", headers=admin, json={"name": "bob"})
    assert made.status_code == 201 and set(made.json()) == {"name", "token", "url"}
    assert s.client.post("/api/annotators", headers=admin, json={"name": "bob"}).status_code == 409
    says("POST /api/annotators", '{"name"}', '"token"', '"url"', "201", "409")
