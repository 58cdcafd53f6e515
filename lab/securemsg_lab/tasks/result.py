"""What a check says: PASS or FAIL, why, and a hint that points without giving away."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Result:
    task: int
    title: str
    passed: bool
    why: str
    hint: str = ""
    details: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [f"Task {self.task} ({self.title}): {'PASS' if self.passed else 'FAIL'}"]
        lines.append(f"  {self.why}")
        lines += [f"  {line}" for line in self.details]
        if self.hint and not self.passed:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


class Fail(Exception):
    """Raised inside a check: the task fails with this reason and hint."""

    def __init__(self, why: str, hint: str = "", details: list[str] | None = None) -> None:
        super().__init__(why)
        self.why = why
        self.hint = hint
        self.details = details or []
