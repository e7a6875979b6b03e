"""Results: persisted as JSON or files, returned by State.result(), across processes."""
from __future__ import annotations

import pytest

from sdk import flow, task
from sdk.exceptions import MissingResult
from sdk.filesystems import LocalFileSystem
from sdk.results import is_plain_json, load_value, persist_value
from sdk.states import Completed, Failed, State


def test_plain_json_values_are_stored_inline_and_others_in_files(tmp_path):
    storage = LocalFileSystem(tmp_path)
    assert persist_value({"a": [1, 2.5, None]}, storage) == {"type": "json", "value": {"a": [1, 2.5, None]}}
    ref = persist_value((1, 2), storage)
    assert ref["type"] == "file" and ref["serializer"] == "pickle"
    assert load_value(ref) == (1, 2)
    assert (tmp_path / ref["key"]).stat().st_mode & 0o777 == 0o600


def test_json_round_trip_is_only_used_when_it_gives_back_the_same_value():
    assert is_plain_json([1, "a", {"b": True}])
    assert not is_plain_json((1, 2))
    assert not is_plain_json({1: "int key"})
    assert not is_plain_json(float("nan"))


def test_storage_refuses_paths_outside_its_directory(tmp_path):
    with pytest.raises(ValueError, match="outside"):
        LocalFileSystem(tmp_path).read_path("../secret")


def test_a_result_is_readable_from_its_reference_alone():
    @task
    def make():
        return {"rows": 3}

    @flow
    def pipeline():
        return make(return_state=True).result_ref

    ref = pipeline()
    assert State(type="COMPLETED", result_ref=ref).result() == {"rows": 3}


def test_an_unpersisted_result_says_how_to_keep_it():
    @task(persist_result=False)
    def make():
        return 1

    @flow
    def pipeline():
        return make(return_state=True).result_ref

    with pytest.raises(MissingResult, match="persist_result=True"):
        State(type="COMPLETED", result_ref=pipeline()).result()


def test_state_reprs_follow_prefect():
    assert repr(Completed()) == "Completed()"
    assert repr(Failed(message="boom")) == "Failed('boom')"
    assert repr(Completed(name="Cached")) == "Cached(type=COMPLETED)"
