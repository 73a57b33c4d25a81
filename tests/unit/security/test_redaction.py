"""One redaction function: keys and endpoint options leave every URI that is printed,
logged or saved, however deep it sits."""

from __future__ import annotations

import logging
from pathlib import Path

from medsight_ray import console
from medsight_ray.data.store import child, uri_of
from medsight_ray.errors import redact_all

KEYED = "s3://AKID:SECRET@bucket/runs/x?endpoint_override=10.0.0.1:9000&scheme=http"


def test_every_uri_in_nested_values_is_redacted_and_nothing_else_changes() -> None:
    value = {"storage": KEYED, "note": f"copied to {KEYED}, then gs://user:pw@b2/y.", "n": 3,
             "runs": [{"checkpoint": KEYED + "/ckpt"}], "pair": ("plain/path", KEYED)}
    clean = redact_all(value)
    assert "SECRET" not in repr(clean) and "AKID" not in repr(clean) and "10.0.0.1" not in repr(clean)
    assert clean["storage"] == "s3://bucket/runs/x" and clean["note"] == "copied to s3://bucket/runs/x, then gs://b2/y."
    assert clean["n"] == 3 and clean["pair"] == ("plain/path", "s3://bucket/runs/x")


def test_a_checkpoint_uri_keeps_the_keys_to_open_it_and_shows_none(tmp_path: Path) -> None:
    opened = uri_of(KEYED, "bucket/runs/x/train/checkpoint_1")
    assert opened == ("s3://AKID:SECRET@bucket/runs/x/train/checkpoint_1"
                      "?endpoint_override=10.0.0.1:9000&scheme=http")
    assert redact_all(opened) == "s3://bucket/runs/x/train/checkpoint_1"
    assert uri_of(str(tmp_path), f"{tmp_path}/c") == f"{tmp_path}/c"


def test_a_file_under_a_uri_keeps_its_keys_and_options_after_the_longer_path(tmp_path: Path) -> None:
    # Appending to the text would put the file name inside the options.
    assert child(KEYED, "train-a", "ended.json") == ("s3://AKID:SECRET@bucket/runs/x/train-a/ended.json"
                                                     "?endpoint_override=10.0.0.1:9000&scheme=http")
    assert child(str(tmp_path) + "/", "a", "b.json") == str(tmp_path / "a" / "b.json")


def test_console_lines_and_log_records_are_redacted(tmp_path: Path, capsys) -> None:
    with console.session(tmp_path) as log:
        console.say(f"storage: {KEYED}")
        logging.getLogger("some.library").warning("uploading to %s", KEYED)
    printed = capsys.readouterr().out
    assert "storage: s3://bucket/runs/x" in printed and "SECRET" not in printed
    text = Path(log).read_text()
    assert "uploading to s3://bucket/runs/x" in text and "SECRET" not in text
