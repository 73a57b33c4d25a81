"""The registry of stages: (task, stage name) -> :class:`~medsight_ray.fit.stage.Stage`.

Stage modules register themselves at import; looking a stage up imports them all.
The fit loop never imports this package: a worker finds its stage by the dotted path
:meth:`Stage.ref` gives (see :func:`medsight_ray.fit.stage.resolve_stage`).
"""

from __future__ import annotations

from medsight_ray.errors import ConfigError
from medsight_ray.fit.stage import Stage

REGISTRY: dict[tuple[str, str], Stage] = {}


def register(stage: Stage) -> Stage:
    """Add a stage to the registry (at import of its module)."""
    REGISTRY[(stage.task, stage.name)] = stage
    return stage


def _load_all() -> None:
    from medsight_ray.stages import concepts, diagnosis, grading, prototypes, segmentation  # noqa: F401


def _check_task(task: str) -> None:
    _load_all()
    tasks = sorted({t for t, _ in REGISTRY})
    if task not in tasks:
        raise ConfigError("unknown task", where="--task", expected=f"one of {tasks}", got=repr(task))


def get_stage(task: str, name: str | None = None) -> Stage:
    """Look a stage up; ``name`` may be omitted for single-stage tasks. Unknown
    names list the known ones."""
    _check_task(task)
    names = [n for t, n in REGISTRY if t == task]
    if name is None:
        if len(names) != 1:
            raise ConfigError("task has several stages; name one", where="--stage",
                              expected=f"one of {names}, or --pipeline", got="nothing")
        name = names[0]
    if (task, name) not in REGISTRY:
        raise ConfigError("unknown stage", where="--stage", expected=f"one of {names} for task {task!r}",
                          got=repr(name))
    return REGISTRY[(task, name)]


def pipeline(task: str) -> list[Stage]:
    """The stages of ``task`` in training order."""
    _check_task(task)
    return sorted((s for (t, _), s in REGISTRY.items() if t == task), key=lambda s: s.order)
