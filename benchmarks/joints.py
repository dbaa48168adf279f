"""The 21 hand keypoints in FreiHAND's order, and the skeleton that joins them.

One definition for the synthetic hand model and the report's per-joint labels.
"""
from __future__ import annotations

JOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "little_mcp", "little_pip", "little_dip", "little_tip",
)
PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19)


def joint_label(name: str) -> str:
    """A joint's name as tables print it: ``thumb_cmc`` -> ``thumb CMC``, ``index_tip`` -> ``index tip``."""
    digit, _, part = name.partition("_")
    if not part:
        return digit
    return f"{digit} {part if part == 'tip' else part.upper()}"
