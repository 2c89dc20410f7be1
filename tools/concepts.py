"""The concept table: icons of the ``@iconify/json`` sets matched to concepts by name.

Development time only; the result is committed as ``tools/data/concepts.json``::

    python -m tools.concepts        # rewrites data/concepts.json and data/icon_sets.json, prints counts

How concepts are formed (``tools/README.md`` "The data" has the numbers):

* Emoji are the anchor: the emoji sets share CLDR-derived icon names
  (``cat-face``) and three carry code points (``chars``). Skin-tone variants,
  flags, keycaps and letter buttons are left out.
* An emoji name is reduced to a shorter concept name when the shorter one is
  itself an emoji or an outline icon: a trailing ``face`` (``cat face`` ->
  ``cat``), a leading gender (``woman cook`` -> ``cook``) or colour/size word
  (``red apple`` -> ``apple``). Emoji with one reduced name form one concept.
* Outline icons join a concept when their name (style suffix and a trailing
  number cut off, see :data:`~tools.iconify.ROLES`) normalises to the
  concept name or to one of its member emoji names.
* Non-emoji colour icons (``flat-color-icons``, ``fluent-color``, Streamline colour) form
  concepts of their own when outline icons share their name.
* A concept needs at least :data:`MIN_PHOTOS` colour icons and at least
  :data:`MIN_DRAWINGS` drawing.
* Anything that matches a reserved hash (:mod:`tools.reserved`) is
  dropped: whole concepts by name or member, single emoji by code point,
  single icons by name; :data:`WRONG_MATCHES` lists matches found wrong by eye.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zse_infer.errors import ConfigError, require

from . import DATA
from .fetch import DEFAULT_CACHE
from .iconify import DRAWING_SETS, PHOTO_SETS, ROLES, family, icon_names, icon_set_table, load_set
from .reserved import Reserved, load_reserved, normalise_name

_log = logging.getLogger(__name__)

MIN_PHOTOS = 2  # colour icons, from any photo sets
# One drawing is enough: ~300 emoji newer than Emoji One have only their Fluent line art,
# and they are good concepts (badger, bagel, flamingo); they just give validation nothing.
MIN_DRAWINGS = 1
# An icon-only (non-emoji) concept's name must be drawn by this many drawing families (not
# Streamline): a name only one artist uses is no common name of a thing.
MIN_ICON_FAMILIES = 3
# Emoji sets carrying code points (``chars``); the others are matched by name.
CHAR_SETS = ("fluent-emoji-flat", "twemoji", "noto", "fluent-emoji-high-contrast")
CATEGORY_SET = "fluent-emoji-flat"  # its categories (emoji groups) stratify the split
NON_EMOJI_GROUP = "Icons"
LEFT_OUT_GROUPS = ("Flags",)
SKIN_TONE = re.compile(r"-(light|medium-light|medium|medium-dark|dark)(-skin-tone)?$")
SKIN_TONE_CODES = {"1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF"}
# Brand logos and trademarks among the non-emoji icon names (not concepts to sketch) and
# names found ambiguous on the contact sheets.
LEFT_OUT_ICON_CONCEPTS = frozenset(
    {
        "android",
        "bluetooth",
        "bluetooth disabled",
        "bluetooth searching",
        "creative commons",
        "dropbox",
        "earpods",
        "facebook",
        "gameboy",
        "google",
        "google drive",
        "ipod player",
        "pacman",
        "safari",
        "slack",
        "spotify",
        "tiktok",
        "tinder",
        "pin",  # map pins and push pins under one name; the emoji "pushpin" is the concept
        "drum stick",  # a chicken leg: the emoji "poultry leg" is that concept
    }
)
# Icon names that mean an emoji concept under another name (found reading the icon-only
# concepts against the emoji ones): they join it, so one thing never sits on both sides
# of the seen/unseen split under two names.
SAME_AS: dict[str, str] = {
    "home": "house",
    "burger": "hamburger",
    "controller": "video game",
    "donut": "doughnut",
    "dice": "game die",
    "tag": "label",
    "target": "bullseye",
    "cog": "gear",
    "satellite dish": "satellite antenna",
    "sprout": "seedling",
    "headset": "headphone",
    "toilet paper": "roll of paper",
    "tea cup": "teacup without handle",
    "calendar date": "calendar",
    "battery charging": "battery",
    "battery empty": "battery",
    "battery low": "battery",
    "battery medium": "battery",
    "location pin": "round pushpin",
    "beach": "beach with umbrella",
    "shop": "convenience store",
    "store": "convenience store",
    "film": "film frames",
    "phone vibrate": "vibration mode",
    "music note": "musical note",
}
# Emoji that are letters, words or kanji in a box (nothing to sketch) and flags.
LEFT_OUT_NAMES = re.compile(
    r"^(keycap|regional indicator|flag|[a-z]{1,2} button|.* button blood type)\b"
    r"|^(japanese .*button|input .*"
    r"|(cool|free|new|ng|ok|sos|up|vs|id|cl|soon|on|end|back|top|atm) (button|arrow|sign))$"
)
LEADING = (
    "man",
    "woman",
    "person",
    "men",
    "women",
    "people",
    "red",
    "green",
    "blue",
    "yellow",
    "orange",
    "purple",
    "brown",
    "black",
    "white",
    "pink",
    "small",
    "large",
    "big",
    "little",
)
TRAILING = ("face",)
# Names that outline icon sets use for something else than the emoji means
# (``mouse`` is a computer mouse there, not the animal): not matched by name.
HOMONYMS: frozenset[str] = frozenset(
    {
        "notes",
        "station",
        "mirror",
        "landscape",
        "shell",
        "bat",
        "crane",
        "seal",
        "mole",
        "fan",
        "bow",
        "tie",
        "ring",
        "computer",
        "speaker",
        "sound",
        "moon",
        "dash",
        "loop",
        "chart",
        "flags",
        "mask",
        "diamond",
        "school",  # a mortarboard in many sets; the emoji is the building
    }
)
# Short names of the ``emoji`` package that are slang or too vague to match icons by.
ALIAS_STOP: frozenset[str] = frozenset(
    {
        "new",
        "free",
        "top",
        "end",
        "back",
        "cool",
        "secret",
        "accept",
        "date",
        "art",
        "shopping",
        "symbols",
        "repeat",
        "metal",
        "stars",
        "compression",
        "flipper",
        "harambe",
        "dart",
        "wave",
        "gun",
        "mega",
        "adult",
        "satellite",
        "hand",
        "fist",
        "feet",
        "leaves",
        "beginner",
        "congratulations",
        "koko",
        "triumph",
        "joy",
        "shrug",
        "relaxed",
        "innocent",
        "blush",
        "grin",
        "smile",
        "smiley",
        "scream",
        "cry",
        "sob",
        "pray",
        "muscle",
        "clap",
        "boom",
        "zap",
        "sweat",
        "cold sweat",
        "open mouth",
        "mute",
        "lock",
        "unlock",
        "office",
        "calling",
        "dolls",
        "bamboo",
        "lips",
        "hugs",
        "wink",
        "rage",
        "pout",
        "kiss",
        "tada",
        "facepalm",
    }
)
# Non-emoji (icon-only) concepts that are interface actions or states rather than things one sketches.
UI_WORDS = re.compile(
    r"\b(add|align|arrow|check|cursor|dashboard|database|delete|download|upload|expand|folder|layout|"
    r"pathfinder|signal|text|wifi|zoom|rotate|select|shuffle|undo|login|logout|maximize|next|return|share|"
    r"settings|filter|network|hierarchy|command|circle|square|off|warning|information|notification|vpn|"
    r"widget|voice|volume|play|search|receipt|lte|code|row|edit|list|brightness|flash|snooze|sigma|script|"
    r"steps|stock|block|layers|invisible|incognito|like|fragile|attribution|signature|half|division|"
    r"subtract|fahrenheit|web|gallery|screen|module|qr|rss|auto|cloud|data|transfer|loading|missed|"
    r"incoming|hang|customer|support|presentation|document|new|library|news|board|cyborg|galaxy|gold|"
    r"happy|sad|smiley|chat|bill|business|button|asterisk)\b"
)
# Icon -> concept matches found wrong on the contact sheets ("set:icon": reason).
WRONG_MATCHES: dict[str, str] = {
    "clarity:squid-line": "a crosshair-like glyph, not the animal",
    "mingcute:chicken-line": "a drumstick: chicken as food, the emoji is the bird",
    "tdesign:chicken": "a roast chicken: food, the emoji is the bird",
    "icon-park-outline:pie": "a pie chart, the emoji is the baked pie",
    "reicon:pie": "a pie chart, the emoji is the baked pie",
    "system-uicons:thread": "a chat thread, the emoji is sewing thread",
    "hugeicons:thread": "a text thread, the emoji is sewing thread",
}


@dataclass
class Concept:
    name: str
    group: str
    members: list[str] = field(default_factory=list)  # emoji names (CLDR slugs, normalised)
    aliases: list[str] = field(default_factory=list)  # their short names, used to match icons
    hex: list[str] = field(default_factory=list)  # their code points
    photos: dict[str, list[str]] = field(default_factory=dict)  # set -> icon names
    drawings: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "group": self.group,
            "members": self.members,
            "aliases": self.aliases,
            "hex": self.hex,
            "photos": {k: sorted(v) for k, v in sorted(self.photos.items())},
            "drawings": {k: sorted(v) for k, v in sorted(self.drawings.items())},
        }

    @property
    def n_drawings(self) -> int:
        return sum(len(v) for v in self.drawings.values())


def _squash(name: str) -> str:
    return name.replace(" ", "")


def _key(icon_base: str) -> str:
    """Concept-side key of an icon: normalised, a trailing number (``pin-02``) cut off."""
    return re.sub(r"( \d+)+$", "", normalise_name(icon_base)) or normalise_name(icon_base)


def emoji_table(cache: Path) -> dict[str, dict[str, str]]:
    """{icon name: {"hex", "group"}} of the emoji kept, from the sets with code points."""
    table: dict[str, dict[str, str]] = {}
    for prefix in CHAR_SETS:
        for code, name in load_set(str(cache), prefix).get("chars", {}).items():
            table.setdefault(name, {"hex": code.upper()})
    groups = {}
    for cat, names in load_set(str(cache), CATEGORY_SET).get("categories", {}).items():
        for n in names:
            groups[n] = cat
    out = {}
    for name, rec in table.items():
        parts = set(rec["hex"].split("-"))
        group = groups.get(name)
        if group is None or group in LEFT_OUT_GROUPS or parts & SKIN_TONE_CODES or SKIN_TONE.search(name):
            continue
        if LEFT_OUT_NAMES.match(normalise_name(name)):
            continue
        out[name] = {"hex": rec["hex"], "group": group}
    return out


def emoji_aliases(hex_: str) -> list[str]:
    """Short names of an emoji from the ``emoji`` package (``automobile`` -> ``car``, ``red car``)."""
    emoji = require("emoji", "demo-build", "matching icons to emoji names")
    codes = [int(p, 16) for p in hex_.split("-")]
    data = emoji.EMOJI_DATA
    for chars in ("".join(map(chr, codes)), "".join(chr(c) for c in codes if c != 0xFE0F)):
        for candidate in (chars, chars + "\ufe0f"):
            if candidate in data:
                return [normalise_name(a.strip(":")) for a in data[candidate].get("alias", [])]
    return []


def drawing_index(cache: Path) -> dict[str, list[tuple[str, str]]]:
    """{concept key: [(set, icon)]} over the drawing sets (not the emoji-named one)."""
    index: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for prefix in DRAWING_SETS:
        role = ROLES[prefix]
        if role.emoji:
            continue
        data = load_set(str(cache), prefix)
        seen_icons: set[str] = set()
        for icon, base in icon_names(data, role).items():
            target = data.get("aliases", {}).get(icon, {}).get("parent", icon)
            if target in seen_icons:
                continue  # an alias of an icon already filed under another name
            if f"{prefix}:{icon}" in WRONG_MATCHES:
                continue
            seen_icons.add(target)
            index[_key(base)].append((prefix, target))
    return index


def _reduce(name: str, known: set[str]) -> str:
    """The shortest reduction of an emoji name that is a known emoji or icon name."""
    words = name.split(" ")
    best = name
    changed = True
    while changed and len(words) > 1:
        changed = False
        for cut in (words[1:] if words[0] in LEADING else None, words[:-1] if words[-1] in TRAILING else None):
            if cut and " ".join(cut) in known:
                words, best, changed = cut, " ".join(cut), True
                break
    return best


def _common_families(c: Concept) -> set[str]:
    """Drawing families outside Streamline that draw the concept (Streamline's long compound
    names, shared by its outline and colour sets, are no common name of a thing)."""
    return {family(p) for p in c.drawings} - {f for f in map(family, c.drawings) if f.startswith("streamline")}


def _reason(reserved: Reserved, *names: str) -> str | None:
    """The strongest reason any of ``names`` is dropped (reserved > form > synonym)."""
    reasons = {reserved.name_reason(n) for n in names} - {None}
    return next((r for r in ("reserved", "form", "synonym") if r in reasons), None)


def build(cache: Path, reserved: Reserved) -> tuple[list[Concept], dict[str, Any]]:
    """The concept table and a report of what was dropped and why."""
    emoji = emoji_table(cache)
    index = drawing_index(cache)
    report: dict[str, Any] = {"dropped_thin_concepts": 0, "dropped_rare_icon_names": 0}
    drops: Counter[str] = Counter()
    emoji_names = {normalise_name(n) for n in emoji}
    known = emoji_names | set(index)
    concepts: dict[str, Concept] = {}
    for icon, rec in emoji.items():
        member = normalise_name(icon)
        aliases = emoji_aliases(rec["hex"])
        reason = "code point" if reserved.code_point_match(rec["hex"]) else _reason(reserved, member, *aliases)
        if reason:
            drops[f"emoji ({reason})"] += 1
            continue
        key = _reduce(member, known)
        c = concepts.setdefault(key, Concept(key, rec["group"]))
        c.members.append(member)
        c.hex.append(rec["hex"])
        for alias in aliases:
            # Not another emoji's name (``egg`` is a short name of "cooking" and the name of "egg").
            usable = len(alias) >= 3 and alias.replace(" ", "").isalpha() and alias not in ALIAS_STOP
            usable = usable and alias not in emoji_names
            if usable and alias not in c.aliases and alias != key:
                c.aliases.append(alias)
    # Photos and emoji-named drawings: the emoji sets by icon name.
    by_member = {m: c for c in concepts.values() for m in c.members}
    # A colour icon named like an emoji's short name joins that emoji's concept (``gift`` ->
    # ``wrapped gift``), never a concept of its own: one thing must not be two concepts. Names
    # are compared without spaces (``lightbulb`` is ``light bulb``).
    for other, name in SAME_AS.items():
        if name in concepts and other not in concepts[name].aliases:
            concepts[name].aliases.append(other)
    by_name: dict[str, Concept] = {}
    for c in concepts.values():
        for n in (*c.aliases, *c.members, c.name):
            by_name[_squash(n)] = c
    squashed_index: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for k, entries in index.items():
        squashed_index[_squash(k)] += entries
    for prefix in (*PHOTO_SETS, *DRAWING_SETS):
        role = ROLES[prefix]
        data = load_set(str(cache), prefix)
        target = "photos" if role.role == "photo" else "drawings"
        for icon, base in icon_names(data, role).items():
            if icon in data.get("aliases", {}):
                continue
            key = normalise_name(base)
            if role.emoji:
                c = by_member.get(key)
            elif role.role == "photo":
                new = _key(base)
                c = by_name.get(_squash(new))
                if c is None and new in index and new not in LEFT_OUT_ICON_CONCEPTS and not UI_WORDS.search(new):
                    c = concepts.setdefault(new, Concept(new, NON_EMOJI_GROUP))
                    by_name[_squash(new)] = c
            else:
                continue  # outline sets: below, through the index
            if c is None:
                continue
            getattr(c, target).setdefault(prefix, []).append(icon)
    for c in concepts.values():
        for key in dict.fromkeys([c.name, *c.members, *c.aliases]):
            if key in HOMONYMS:
                continue
            for prefix, icon in squashed_index.get(_squash(key), []):
                if icon not in c.drawings.get(prefix, []):
                    c.drawings.setdefault(prefix, []).append(icon)
    kept = []
    claimed: set[tuple[str, str]] = set()
    for c in sorted(concepts.values(), key=lambda c: c.name):
        reason = _reason(reserved, c.name)
        if reason:
            drops[f"concept ({reason})"] += 1
            continue
        for field_name in ("photos", "drawings"):
            groups = getattr(c, field_name)
            for prefix in list(groups):
                keep = []
                for icon in groups[prefix]:
                    if (prefix, icon) in claimed:
                        continue
                    reason = _reason(reserved, icon)
                    if reason:
                        drops[f"{field_name[:-1]} icon ({reason})"] += 1
                        continue
                    keep.append(icon)
                if keep:
                    groups[prefix] = keep
                else:
                    del groups[prefix]
        if sum(map(len, c.photos.values())) < MIN_PHOTOS or c.n_drawings < MIN_DRAWINGS:
            report["dropped_thin_concepts"] += 1
            continue
        if c.group == NON_EMOJI_GROUP and len(_common_families(c)) < MIN_ICON_FAMILIES:
            report["dropped_rare_icon_names"] += 1
            continue
        for field_name in ("photos", "drawings"):
            for prefix, icons in getattr(c, field_name).items():
                claimed.update((prefix, i) for i in icons)
        kept.append(c)
    report["dropped"] = dict(sorted(drops.items()))
    report["concepts"] = len(kept)
    report["groups"] = dict(Counter(c.group for c in kept))
    report["drawing_icons"] = sum(c.n_drawings for c in kept)
    report["photo_icons"] = sum(len(v) for c in kept for v in c.photos.values())
    report["drawings_per_set"] = dict(Counter(p for c in kept for p, v in c.drawings.items() for _ in v))
    report["photos_per_set"] = dict(Counter(p for c in kept for p, v in c.photos.items() for _ in v))
    return kept, report


def reserved_hits(concepts: list[Concept], reserved: Reserved) -> list[str]:
    """Every name (concept, member emoji, short name, icon of each set) and code point of the table
    that the reserved check drops, as ``'concept: what (reason)'``; empty for a clean table."""
    hits = []
    for c in concepts:
        icons = [f"{p}:{i}" for groups in (c.photos, c.drawings) for p, v in groups.items() for i in v]
        names = [c.name, *c.members, *c.aliases]
        for what in names + icons:
            reason = reserved.name_reason(what.split(":", 1)[-1])
            if reason:
                hits.append(f"{c.name}: {what} ({reason})")
        hits += [f"{c.name}: {h} (code point)" for h in c.hex if reserved.code_point_match(h)]
    return hits


def concepts_path() -> Path:
    return DATA / "concepts.json"


def load_concepts(path: str | Path | None = None) -> list[Concept]:
    path = Path(path) if path is not None else concepts_path()
    try:
        raw = json.loads(path.read_text())
        concepts = [Concept(**entry) for entry in raw["concepts"]]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: cannot read the concept table ({exc})") from exc
    names = [c.name for c in concepts]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: duplicate concept names")
    return concepts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--reserved", type=Path, default=None, help="reserved.json (default ../shared/demo-data)")
    parser.add_argument("--out", type=Path, default=None, help="default: tools/data/concepts.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cache = args.cache.expanduser()
    concepts, report = build(cache, load_reserved(str(args.reserved) if args.reserved else None))
    out = args.out or concepts_path()
    sets = icon_set_table(cache)
    out.with_name("icon_sets.json").write_text(json.dumps(sets, indent=1) + "\n")
    report["icon_sets"] = {k: len(sets[k]) for k in ("kept", "excluded_by_licence", "allowed_but_not_used")}
    payload = {
        "about": "demo concepts; see tools/concepts.py and tools/README.md 'The data'",
        "report": report,
        "concepts": [c.as_dict() for c in concepts],
    }
    out.write_text(json.dumps(payload, indent=None, separators=(",", ":")).replace('},{"name"', '},\n{"name"') + "\n")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
