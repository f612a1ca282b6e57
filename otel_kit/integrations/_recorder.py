"""A stand-in for a recording span, to collect the attributes contrib's code would set on one."""

from __future__ import annotations

from typing import Any


class Recorder:
    """Collects what contrib's code sets on a span, so that later spans can start with it at
    once instead of setting each attribute on the live span (a lock and a value check each)."""

    def __init__(self) -> None:
        self.attributes: dict[str, Any] = {}

    def is_recording(self) -> bool:
        return True

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value

    def set_attributes(self, attributes: dict[str, Any]) -> None:
        self.attributes.update(attributes)
