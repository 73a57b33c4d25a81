"""Named parts of a model, and freezing that really freezes.

Frozen means: ``requires_grad=False``, no optimizer entry (the fit loop builds groups
only from trainable parts), and normalisation layers in eval mode, so that running
statistics do not drift either. :class:`PartsModule` keeps frozen parts in eval mode
whatever ``train()`` is called with.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from torch import nn

from medsight_ray.errors import ConfigError


class PartsModule(nn.Module):
    """A model made of named parts (attributes listed in ``PARTS``) that can be frozen."""

    PARTS: tuple[str, ...] = ()

    def part(self, name: str) -> nn.Module | nn.Parameter:
        """The module (or parameter) called ``name``."""
        if name not in self.PARTS:
            raise ConfigError("unknown model part", where="trainable parts",
                              expected=f"one of {list(self.PARTS)}", got=repr(name))
        return getattr(self, name)

    def part_parameters(self, name: str) -> list[nn.Parameter]:
        """Parameters of one part."""
        part = self.part(name)
        return [part] if isinstance(part, nn.Parameter) else list(part.parameters())

    def set_trainable(self, names: Iterable[str]) -> None:
        """Train exactly the parts in ``names``; freeze every other part."""
        chosen = set(names)
        for name in chosen:
            self.part(name)  # rejects unknown names, listing the known ones
        for name in self.PARTS:
            for p in self.part_parameters(name):
                p.requires_grad_(name in chosen)
        self.train(self.training)

    def trainable_parts(self) -> list[str]:
        """Parts with at least one trainable parameter."""
        return [n for n in self.PARTS if any(p.requires_grad for p in self.part_parameters(n))]

    def frozen_modules(self) -> Iterator[nn.Module]:
        """Module parts whose parameters are all frozen."""
        for name in self.PARTS:
            part = self.part(name)
            if isinstance(part, nn.Module) and not any(p.requires_grad for p in part.parameters()):
                yield part

    def train(self, mode: bool = True) -> PartsModule:
        """Set train/eval mode; frozen parts always stay in eval mode."""
        super().train(mode)
        for module in self.frozen_modules():
            module.eval()
        return self
