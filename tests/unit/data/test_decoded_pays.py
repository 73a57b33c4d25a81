"""A sweep decodes once only where it saves work: images stored larger than the trials' size."""

from __future__ import annotations

from pathlib import Path

from medsight_ray.data.decoded import pays, stored_side
from medsight_ray.data.synth import synthesize


def test_the_mirror_is_written_only_for_images_stored_larger_than_the_trials_size(tmp_path: Path) -> None:
    synthesize("grading", tmp_path / "d", rows=20, image_size=40, seed=0)
    assert stored_side(str(tmp_path / "d")) == 40  # read from the headers
    assert pays(str(tmp_path / "d"), 32)  # decode and resize every epoch: the mirror saves both
    assert not pays(str(tmp_path / "d"), 40) and not pays(str(tmp_path / "d"), 64)
