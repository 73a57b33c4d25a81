"""Knobs that inject the seeds' data failures into synthetic datasets."""

from __future__ import annotations

from dataclasses import dataclass, fields

from medsight_ray.errors import ConfigError


@dataclass(frozen=True)
class Knobs:
    """Pathology knobs. The defaults give a clean, learnable dataset.

    Attributes:
        signal: contrast of the class/concept signal, 1.0 = default, 0.0 = none
            (labels then carry no information and any run sits at chance).
        label_noise: probability of flipping each label (concepts, targets) or of
            replacing a class index by a random one (grading).
        zero_label_column: a concept name that is never present (seed 000's
            all-zero label column check).
        broken_box_fraction: share of boxes written with min > max (seed 000's
            bbox validity check).
        empty_mask_fraction: share of segmentation rows with no object and an
            empty mask (seed 004).
        unlabelled_fraction: share of segmentation rows whose objects are drawn
            but whose mask is missing (``has_segmentation`` False, mask empty):
            seed 004's root cause.
        class_priors: grading class frequencies; default is the cataract data's
            roughly 41/13/33/13 %.
    """

    signal: float = 1.0
    label_noise: float = 0.0
    zero_label_column: str | None = None
    broken_box_fraction: float = 0.0
    empty_mask_fraction: float = 0.0
    unlabelled_fraction: float = 0.0
    class_priors: tuple[float, ...] = (0.41, 0.13, 0.33, 0.13)

    def __post_init__(self) -> None:
        for name in ("label_noise", "broken_box_fraction", "empty_mask_fraction", "unlabelled_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(
                    "synthetic-data knob out of range", where=f"knob '{name}'",
                    expected="a fraction in [0, 1]", got=str(value),
                )
        if self.signal < 0:
            raise ConfigError("synthetic-data knob out of range", where="knob 'signal'",
                              expected="a value >= 0", got=str(self.signal))
        if len(self.class_priors) < 2 or any(p < 0 for p in self.class_priors) or sum(self.class_priors) <= 0:
            raise ConfigError("invalid class priors", where="knob 'class_priors'",
                              expected="at least two non-negative numbers with a positive sum",
                              got=str(self.class_priors))

    @classmethod
    def from_pairs(cls, pairs: list[str]) -> Knobs:
        """Build from ``name=value`` strings; an unknown name lists the known ones."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, object] = {}
        for pair in pairs:
            name, sep, raw = pair.partition("=")
            if not sep or name not in known:
                raise ConfigError(
                    "unknown synthetic-data knob", where=f"--knob {pair}",
                    expected=f"name=value with name among {sorted(known)}", got=repr(pair),
                )
            if name == "zero_label_column":
                values[name] = raw
            elif name == "class_priors":
                values[name] = tuple(float(x) for x in raw.split(","))
            else:
                try:
                    values[name] = float(raw)
                except ValueError:
                    raise ConfigError("knob value is not a number", where=f"--knob {pair}",
                                      expected="a float", got=repr(raw)) from None
        return cls(**values)  # type: ignore[arg-type]
