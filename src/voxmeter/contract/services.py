"""The services record of ``information.php?api=services``, field by field."""

from __future__ import annotations

SERVICE_FLAGS: tuple[str, ...] = (
    "screen_recording",
    "video_call",
    "stereo_recording",
    "gamification",
    "text_analytics",
    "speech_analytics",
    "rsync",
)
"""The seven yes/no flags, in the order the seed's record lists them."""


def services_record(licenses: int, pbx: int, services: frozenset[str]) -> dict[str, str]:
    """The record in the seed's key order; every value a string."""
    record = {"licenses": str(licenses), "pbx": str(pbx)}
    for flag in SERVICE_FLAGS:
        record[flag] = "yes" if flag in services else "no"
    return record
