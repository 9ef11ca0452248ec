"""English route instructions generated from a path through a scene, and the fixed VLN tokenizer.

:func:`describe_route` turns a reference path (a polyline on the floor), the scene and the start heading into
1-6 sentences such as "Leave the bedroom and turn left. Walk past the red sofa into the kitchen. Stop next to
the white fridge." Events are read from the geometry: the initial turn (relative to the start heading), rooms
left, crossed and entered (``SceneSpec.room_at``), turns at the path's corners, landmarks passed (objects near the
path, named by colour and category) and the stop landmark. Each event type has several phrasings, drawn with the
episode's generator, so the language varies while staying grounded.

The vocabulary is fixed and ships with the package (``assets/vln/vocab.txt``): it is built from the templates
below plus the catalogue's colours, categories and room types (:func:`build_vocabulary`), so every generated
instruction tokenizes without ``<unk>``. Token ids: 0 ``<pad>``, 1 ``<unk>``, then the words in file order.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from chronotope.envs.scene import catalogue as cat

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
MAX_SENTENCES = 6

# Phrasings per event type; {room}, {obj} and {dir} are filled in, everything else is literal vocabulary.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "turn_around": ("turn around", "turn around to face the other way", "turn back"),
    "start_turn": ("turn {dir}", "turn to your {dir}", "face {dir}"),
    "leave": ("leave the {room}", "exit the {room}", "walk out of the {room}", "go out of the {room}"),
    "through": ("walk through the {room}", "go through the {room}", "cross the {room}", "pass through the {room}"),
    "enter": ("enter the {room}", "walk into the {room}", "go into the {room}", "continue into the {room}"),
    "stay": ("walk across the {room}", "cross the {room}", "go forward in the {room}"),
    "turn": ("turn {dir}", "take a {dir}", "make a {dir} turn", "go {dir}"),
    "veer": ("bear {dir}", "veer {dir}", "turn slightly {dir}"),
    "pass": ("walk past the {obj}", "go past the {obj}", "pass the {obj}", "continue past the {obj}"),
    "stop": (
        "stop next to the {obj}",
        "stop by the {obj}",
        "wait near the {obj}",
        "stop in front of the {obj}",
        "stop when you reach the {obj}",
    ),
    "stop_room": ("stop next to the {obj} in the {room}", "wait by the {obj} in the {room}"),
}
CONNECTORS = ("{a} and {b}", "{a}, then {b}", "{a}, and {b}")

_TOKEN_RE = re.compile(r"[a-z]+|[.,]")
VOCAB_PATH = Path(__file__).resolve().parents[2] / "assets" / "vln" / "vocab.txt"


# ------------------------------------------------------------------------------------------------ tokenizer
def tokenize(text: str) -> list[str]:
    """Lower-cased words and the punctuation marks ``.`` and ``,`` (everything else is dropped)."""
    return _TOKEN_RE.findall(text.lower())


def build_vocabulary() -> list[str]:
    """The vocabulary: ``<pad>``, ``<unk>``, then the sorted words of templates, connectors and the catalogue."""
    words: set[str] = {".", ","}
    for phrasings in TEMPLATES.values():
        for t in phrasings:
            words.update(tokenize(re.sub(r"\{\w+\}", " ", t)))
    for c in CONNECTORS:
        words.update(tokenize(re.sub(r"\{\w+\}", " ", c)))
    words.update(("left", "right"))
    for name in (*cat.COLORS, *(c.name for c in cat.CATEGORIES), *cat.ROOM_TYPES):
        words.update(tokenize(name))
    return [PAD, UNK, *sorted(words)]


def write_vocabulary(path: str | Path = VOCAB_PATH) -> Path:
    """Writes :func:`build_vocabulary` one token per line (how ``assets/vln/vocab.txt`` was made)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(build_vocabulary()) + "\n")
    return path


@dataclass(frozen=True)
class Tokenizer:
    """Word-level tokenizer over a fixed vocabulary; unknown words map to ``<unk>`` (id 1), padding is id 0.

    Attributes:
        words: the vocabulary; index = token id (``words[0] == "<pad>"``, ``words[1] == "<unk>"``).
    """

    words: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.words[:2] != (PAD, UNK):
            raise ValueError(f"a vocabulary must start with {PAD!r}, {UNK!r}; got {self.words[:2]!r}")
        if len(set(self.words)) != len(self.words):
            raise ValueError("the vocabulary has duplicate words")
        object.__setattr__(self, "_index", {w: i for i, w in enumerate(self.words)})

    @classmethod
    def from_file(cls, path: str | Path = VOCAB_PATH) -> Tokenizer:
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"vocabulary file {str(p)!r} does not exist")
        return cls(tuple(w for w in p.read_text().splitlines() if w))

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, text: str, max_length: int | None = None) -> np.ndarray:
        """Token ids int64 [max_length] (padded with 0, truncated) or [num_tokens] when ``max_length`` is None."""
        ids = [self._index.get(w, UNK_ID) for w in tokenize(text)]  # type: ignore[attr-defined]
        if max_length is None:
            return np.asarray(ids, np.int64)
        if max_length <= 0:
            raise ValueError(f"max_length must be positive, got {max_length!r}")
        out = np.zeros(max_length, np.int64)
        ids = ids[:max_length]
        out[: len(ids)] = ids
        return out

    def decode(self, ids) -> str:
        """Words of non-padding ids joined by spaces (punctuation attached to the previous word)."""
        words = [self.words[int(i)] if 0 <= int(i) < len(self.words) else UNK for i in ids if int(i) != PAD_ID]
        return re.sub(r" ([.,])", r"\1", " ".join(words))


@lru_cache(maxsize=1)
def default_tokenizer() -> Tokenizer:
    """The tokenizer of the shipped vocabulary file."""
    return Tokenizer.from_file(VOCAB_PATH)


# ------------------------------------------------------------------------------------------------ geometry
def polyline_corners(path: np.ndarray, min_turn_deg: float = 35.0, merge: float = 0.75) -> list[tuple[float, float]]:
    """Turns of a polyline: (arc length, signed angle in radians, positive = left) of every corner.

    Corners closer than ``merge`` metres are summed into one (a door passage is often two small bends); turns
    smaller than ``min_turn_deg`` after merging are dropped.
    """
    p = np.asarray(path, float)
    seg = np.diff(p, axis=0)
    length = np.linalg.norm(seg, axis=1)
    keep = length > 1e-9
    seg, length = seg[keep], length[keep]
    if len(seg) < 2:
        return []
    s = np.concatenate([[0.0], np.cumsum(length)])
    heading = np.arctan2(seg[:, 1], seg[:, 0])
    turns = _wrap(np.diff(heading))
    raw = [(float(s[k + 1]), float(a)) for k, a in enumerate(turns) if abs(a) > 1e-3]
    merged: list[list[float]] = []
    for at, a in raw:
        if merged and at - merged[-1][0] < merge:
            merged[-1][1] += a
        else:
            merged.append([at, a])
    limit = math.radians(min_turn_deg)
    return [(at, a) for at, a in merged if abs(a) >= limit]


def _wrap(a):
    return np.pi - np.mod(np.pi - np.asarray(a, float), 2 * np.pi)


def object_phrase(obj) -> str:
    return f"{obj.color} {obj.category}"


# ------------------------------------------------------------------------------------------------ generator
@dataclass(frozen=True)
class RouteEvent:
    """One describable event along a route.

    Attributes:
        kind: template key ("leave", "enter", "turn", "pass", ...).
        at: arc length (m) where it happens.
        slots: template fields ({room}, {obj}, {dir}).
    """

    kind: str
    at: float
    slots: tuple[tuple[str, str], ...] = ()


_ORDER = {"turn_around": 0, "start_turn": 0, "stay": 1, "leave": 1, "turn": 2, "veer": 2, "through": 3, "enter": 3}
_ORDER |= {"pass": 4, "stop": 5, "stop_room": 5}


def route_events(
    spec,
    path: np.ndarray,
    start_yaw: float,
    goal_object,
    landmark_radius: float = 1.2,
    max_landmarks: int = 2,
) -> list[RouteEvent]:
    """Events along ``path`` [K, 2] (start first, goal last) in the order they happen, ending with the stop."""
    p = np.asarray(path, float)
    seg = np.linalg.norm(np.diff(p, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    total = float(s[-1])
    events: list[RouteEvent] = []
    # initial heading: the first direction of travel at least 0.5 m ahead, relative to where the agent faces
    ahead = int(np.searchsorted(s, min(0.5, total)))
    ahead = min(max(ahead, 1), len(p) - 1)
    d = p[ahead] - p[0]
    if np.linalg.norm(d) > 1e-6:
        rel = float(_wrap(math.atan2(d[1], d[0]) - start_yaw))
        if abs(rel) > math.radians(135):
            events.append(RouteEvent("turn_around", 0.0))
        elif abs(rel) > math.radians(50):
            events.append(RouteEvent("start_turn", 0.0, (("dir", "left" if rel > 0 else "right"),)))
    # rooms along a dense resampling of the path (points in no room, e.g. inside a door's wall, are skipped)
    dense_s = np.linspace(0.0, total, max(2, int(total / 0.1) + 1))
    dense = np.stack([np.interp(dense_s, s, p[:, 0]), np.interp(dense_s, s, p[:, 1])], -1)
    visits: list[tuple[object, float]] = []
    for at, (x, y) in zip(dense_s, dense):
        room = spec.room_at(float(x), float(y))
        if room is not None and (not visits or visits[-1][0].id != room.id):
            visits.append((room, float(at)))
    if len(visits) == 1:
        events.append(RouteEvent("stay", 0.0, (("room", visits[0][0].type),)))
    elif visits:
        events.append(RouteEvent("leave", visits[1][1] - 0.01, (("room", visits[0][0].type),)))
        for k, (room, at) in enumerate(visits[1:], start=1):
            kind = "enter" if k == len(visits) - 1 else "through"
            events.append(RouteEvent(kind, at, (("room", room.type),)))
    for at, a in polyline_corners(p):
        if at > total - 0.75:
            continue  # the final approach to the landmark is covered by the stop sentence
        direction = "left" if a > 0 else "right"
        if abs(a) > math.radians(150):
            events.append(RouteEvent("turn_around", at))
        elif abs(a) < math.radians(60):
            events.append(RouteEvent("veer", at, (("dir", direction),)))
        else:
            events.append(RouteEvent("turn", at, (("dir", direction),)))
    # landmarks: objects close to the path (the goal's own landmark excluded), the nearest ones kept
    goal_id = goal_object.instance_id
    near = []
    for o in spec.objects:
        if o.instance_id == goal_id:
            continue
        dist = np.linalg.norm(dense - np.asarray(o.center), axis=1)
        k = int(np.argmin(dist))
        here = spec.room_at(float(dense[k, 0]), float(dense[k, 1]))
        # seen from the path: the same room, not behind a wall
        same_room = o.room_id < 0 or (here is not None and here.id == o.room_id)
        if dist[k] <= landmark_radius and same_room and 0.5 < dense_s[k] < total - 1.5:
            near.append((float(dist[k]), float(dense_s[k]), o))
    near.sort(key=lambda t: t[0])
    for _, at, o in near[:max_landmarks]:
        events.append(RouteEvent("pass", at, (("obj", object_phrase(o)),)))
    events.sort(key=lambda e: (e.at, _ORDER[e.kind]))
    start_room = spec.room_at(*p[0])
    goal_room = spec.room_at(*np.asarray(goal_object.center, float))
    if goal_room is not None and start_room is not None and goal_room.id == start_room.id and len(visits) > 1:
        # came back to the start room: name it so the stop sentence stays unambiguous
        events.append(RouteEvent("stop_room", total, (("obj", object_phrase(goal_object)), ("room", goal_room.type))))
    else:
        events.append(RouteEvent("stop", total, (("obj", object_phrase(goal_object)),)))
    return events


def describe_route(
    spec,
    path: np.ndarray,
    start_yaw: float,
    goal_object,
    rng: np.random.Generator,
    max_tokens: int = 80,
    landmark_radius: float = 1.2,
    max_landmarks: int = 2,
) -> str:
    """An English instruction of 1-6 sentences for ``path`` [K, 2] ending at ``goal_object``.

    Clauses are drawn from :data:`TEMPLATES` with ``rng`` and joined in pairs; when the route has more events
    than fit in 6 sentences or ``max_tokens`` tokens, landmarks and then slight turns are dropped first.
    """
    events = route_events(spec, path, start_yaw, goal_object, landmark_radius, max_landmarks)
    stop = events[-1]
    body = events[:-1]
    cap = 2 * (MAX_SENTENCES - 1)  # two clauses per sentence, the last sentence is the stop
    for drop in ("pass", "veer", "through", "turn"):
        if len(body) <= cap:
            break
        body = [e for e in body if e.kind != drop]
    body = body[:cap]
    while True:
        text = _render(body, stop, rng)
        if len(tokenize(text)) <= max_tokens or not body:
            return text
        # too long for the token budget: drop the least informative clause and draw again
        for kind in ("pass", "veer", "through", "turn", "turn_around", "start_turn", "enter", "leave", "stay"):
            idx = [i for i, e in enumerate(body) if e.kind == kind]
            if idx:
                body.pop(idx[-1])
                break


def _clause(e: RouteEvent, rng: np.random.Generator) -> str:
    phrasings = TEMPLATES[e.kind]
    return phrasings[int(rng.integers(len(phrasings)))].format(**dict(e.slots))


def _render(body: list[RouteEvent], stop: RouteEvent, rng: np.random.Generator) -> str:
    clauses = [_clause(e, rng) for e in body]
    sentences = []
    i = 0
    while i < len(clauses):
        # pair clauses when there are more than the sentence budget allows, otherwise by chance
        remaining = len(clauses) - i
        must_pair = remaining > (MAX_SENTENCES - 1 - len(sentences))
        if remaining >= 2 and (must_pair or rng.random() < 0.5):
            conn = CONNECTORS[int(rng.integers(len(CONNECTORS)))]
            sentences.append(conn.format(a=clauses[i], b=clauses[i + 1]))
            i += 2
        else:
            sentences.append(clauses[i])
            i += 1
    sentences.append(_clause(stop, rng))
    return " ".join(s[0].upper() + s[1:] + "." for s in sentences)
