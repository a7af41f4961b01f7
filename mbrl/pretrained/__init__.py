"""Agents shipped with the package (``agent:<name>``), each with its command and log."""

from __future__ import annotations

from pathlib import Path

__all__ = ["SHIPPED_AGENTS", "resolve_agent_path", "shipped_agents"]

SHIPPED_AGENTS = Path(__file__).parent


def shipped_agents() -> list[str]:
    """Names of the agents that come with the package (``agent:<name>``)."""
    return sorted(p.stem for p in SHIPPED_AGENTS.glob("*.safetensors"))


def resolve_agent_path(path: str | Path) -> Path:
    """A run folder or file as it is, or the file of a shipped agent's name."""
    path = Path(path)
    if path.exists():
        return path
    if (SHIPPED_AGENTS / f"{path}.safetensors").exists():
        return SHIPPED_AGENTS / f"{path}.safetensors"
    raise FileNotFoundError(
        f"no agent at {path}: give a run folder, a checkpoint file, or one of the shipped "
        f"agents: {', '.join(shipped_agents()) or 'none'}"
    )
