"""The meters catalogue: every ``api=`` value voxmeter answers, as data.

Adding a meter means adding a row here; nothing else in the server, the
store or the client branches on a meter's name.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date


class Family(enum.StrEnum):
    """The endpoint a meter is served from."""

    BILLING = "billing"
    INFORMATION = "information"


class Kind(enum.StrEnum):
    """How a meter's figure is derived from the ledger."""

    COUNTER = "counter"  # whole units summed since the start of the month
    MINUTES = "minutes"  # exact decimal minutes summed since the start of the month
    GAUGE = "gauge"  # the latest value set on or before the query date
    RECORD = "record"  # an information record, not a ledger figure

    @property
    def scale(self) -> int:
        """Decimal places a quantity of this kind may carry (stored as an integer)."""
        return 3 if self is Kind.MINUTES else 0

    @property
    def is_summed(self) -> bool:
        return self in (Kind.COUNTER, Kind.MINUTES)


class CodeType(enum.StrEnum):
    """JSON type of the envelope's ``code`` on success, as each page documents it."""

    NUMBER = "number"
    STRING = "string"


class DateFormat(enum.StrEnum):
    """What the billing row's ``date`` field holds."""

    DAY = "%Y-%m-%d"  # the query date
    MONTH = "%Y-%m"  # the month and year of the report

    def render(self, day: date) -> str:
        """``day`` in this format (as ``strftime`` would, at a tenth of its cost)."""
        text = day.isoformat()
        return text if self is DateFormat.DAY else text[:7]


@dataclass(frozen=True, slots=True)
class Meter:
    api: str
    family: Family
    number: int  # position in the vendor's documentation
    description: str  # the product's human name, returned in ``description``
    kind: Kind
    unit: str
    code_type: CodeType = CodeType.NUMBER
    date_format: DateFormat = DateFormat.DAY
    seed: bool = False  # documented by one of the seed pages


_B, _I = Family.BILLING, Family.INFORMATION
_C, _M, _G, _R = Kind.COUNTER, Kind.MINUTES, Kind.GAUGE, Kind.RECORD

METERS: tuple[Meter, ...] = (
    Meter("agent_script", _B, 1, "Agent Script licenses", _G, "licenses"),
    Meter("intelligent_dial", _B, 2, "Intelligent dial licenses", _G, "licenses"),
    Meter("gamification", _B, 3, "Gamification licenses", _G, "licenses"),
    Meter("ivr_minutes", _B, 4, "IVR minutes", _M, "minutes"),
    Meter("rec_minutes", _B, 5, "IVR recording minutes", _M, "minutes"),
    Meter("amazon_s3", _B, 6, "Amazon S3 storage licenses", _G, "licenses"),
    Meter("rsync", _B, 7, "Rsync storage licenses", _G, "licenses"),
    Meter("rsync_s3_mp3", _B, 8, "Audio files copied to S3", _C, "files"),
    Meter("rec_screen", _B, 9, "Screen recording minutes", _M, "minutes"),
    Meter("interactions", _B, 10, "Omnibox interactions", _C, "interactions", seed=True),
    Meter("rec_screen_on_demand", _B, 11, "On-demand screen recording minutes", _M, "minutes"),
    Meter("speech_analytics", _B, 12, "Speech analytics minutes", _M, "minutes"),
    Meter("wp_connectors", _B, 13, "WhatsApp connectors", _G, "connectors"),
    Meter("sentiment_analysis", _B, 14, "Sentiment analyses", _C, "analyses"),
    Meter("chat_licenses", _B, 15, "Chat licenses", _G, "licenses", seed=True),
    Meter("interaction_licenses", _B, 16, "Interaction licenses", _G, "licenses"),
    Meter("video_call", _B, 17, "Video call licenses", _G, "licenses"),
    Meter("pbx_licenses", _B, 18, "PBX licenses", _G, "licenses"),
    Meter("ivr_calls", _B, 19, "IVR calls", _C, "calls", seed=True),
    Meter("asr_calls", _B, 20, "Speech recognition (ASR) uses", _C, "uses"),
    Meter("vision", _B, 21, "Image analysis uses", _C, "uses"),
    Meter("tts_chars", _B, 22, "Text-to-speech characters", _C, "characters"),
    Meter("wp_connectors_official", _B, 23, "WhatsApp Business connectors", _G, "connectors"),
    Meter("contact_center_licenses", _B, 24, "Contact center licenses", _G, "licenses"),
    Meter("amd_ai", _B, 25, "AI answering machine detections", _C, "detections"),
    Meter(
        "stereo_rec", _B, 26, "Stereo recording minutes", _M, "minutes",
        code_type=CodeType.STRING, seed=True,
    ),
    Meter(
        "nlp_ai", _B, 27, "NLP AI uses", _C, "uses",
        code_type=CodeType.STRING, date_format=DateFormat.MONTH,
    ),
    Meter(
        "services", _I, 7, "Service information", _R, "record",
        code_type=CodeType.STRING, seed=True,
    ),
    Meter("token_info", _I, 0, "Token information", _R, "record", code_type=CodeType.STRING),
)  # fmt: skip

_BY_FAMILY: dict[Family, dict[str, Meter]] = {
    family: {m.api: m for m in METERS if m.family is family} for family in Family
}

BILLING_METERS: tuple[Meter, ...] = tuple(_BY_FAMILY[Family.BILLING].values())
"""Every meter backed by the usage ledger, in documentation order."""


def lookup(family: Family, api: str) -> Meter | None:
    """The meter that ``family``'s endpoint serves for ``api``, if any."""
    return _BY_FAMILY[family].get(api)


def billing_meter(api: str) -> Meter | None:
    return _BY_FAMILY[Family.BILLING].get(api)


GAUGE_METERS: frozenset[str] = frozenset(m.api for m in BILLING_METERS if m.kind is Kind.GAUGE)
