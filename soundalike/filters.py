"""A small filter language over the catalogue, compiled to parameterised SQL.

    bpm between 90 and 110 and genre = 'jazz' and duration < 180
    not (artist contains 'live') or key in ('C major', 'A minor')
    mood is not null and licence like 'CC-%'

Grammar (keywords are case-insensitive)::

    expr       := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" expr ")" | predicate
    predicate  := field op value
                | field ["not"] "between" value "and" value
                | field ["not"] "in" "(" value ("," value)* ")"
                | field ["not"] ("like" | "contains") string
                | field "is" ["not"] "null"
    op         := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    value      := number | 'string' | "string" | true | false

Fields are the catalogue's track fields (``FIELDS``) and any user metadata
column imported with ``soundalike labels import``. When user metadata has a
column named like a catalogue field (``genre``, ``bpm``), the plain name means
the user's value where a track has one and the catalogue's otherwise;
``label.NAME`` is only the user's and ``track.NAME`` only the catalogue's.
``tag.NAME`` is a track's mean probability of a model tag (``tag.piano > 0.3``,
``tag.no_vocals >= 0.5``; a tag both musicnn taggers have is their mean).
Text comparisons with ``=``, ``!=`` and ``in`` ignore case; ``like`` takes
SQL wildcards (``%``, ``_``); ``contains`` matches a substring. A negated
test (``!=``, ``not ...``) includes the tracks where the field is missing.

Values are never pasted into the SQL: every literal becomes a ``?``
parameter, and field names are looked up in a fixed table (labels become a
subquery on their name, also a parameter). A syntax error raises
``FilterError`` whose one-line message quotes the offending token and its
position.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import FilterError

__all__ = ["FIELDS", "Compiled", "compile_filter", "compile_order", "parse"]

# name -> (SQL expression over ``tracks t JOIN files f``, kind, help)
FIELDS: dict[str, tuple[str, str, str]] = {
    "id": ("t.id", "number", "track id"),
    "path": ("f.path", "text", "absolute file path"),
    "size": ("f.size", "number", "file size in bytes"),
    "mtime": ("f.mtime", "number", "file modification time (Unix seconds)"),
    "indexed_at": ("f.indexed_at", "number", "when the file was indexed (Unix seconds)"),
    "duration": ("t.duration", "number", "seconds of decoded audio"),
    "sample_rate": ("t.sample_rate", "number", "the file's sample rate (Hz)"),
    "channels": ("t.channels", "number", "the file's channel count"),
    "codec": ("t.codec", "text", "audio codec (mp3, flac, vorbis, ...)"),
    "format": ("t.format", "text", "container format"),
    "title": ("t.title", "text", "title tag"),
    # what the web app and the CLI show as a track's name; sorts without regard to case
    "name": ("coalesce(t.title, replace(f.path, rtrim(f.path, replace(f.path, '/', '')), '')) COLLATE NOCASE", "text",
             "the title tag, or the file name where there is none"),
    "artist": ("t.artist", "text", "artist tag"),
    "album": ("t.album", "text", "album tag"),
    "genre": ("t.genre", "text", "genre tag"),
    "year": ("t.year", "number", "year from the date tag"),
    "comment": ("t.comment", "text", "comment tag"),
    "tag_bpm": ("t.tag_bpm", "number", "BPM written in the file's tags"),
    "tag_key": ("t.tag_key", "text", "key written in the file's tags"),
    "bpm": ("t.bpm", "number", "measured tempo (beats per minute)"),
    "bpm_confidence": ("t.bpm_confidence", "number", "confidence of the measured tempo, 0-1"),
    "key": ("t.key", "text", "measured key, e.g. 'C major', 'F# minor'"),
    "key_confidence": ("t.key_confidence", "number", "confidence of the measured key, 0-1"),
    "loudness": ("t.loudness", "number", "integrated loudness (LUFS)"),
    "lufs": ("t.loudness", "number", "same as loudness"),
    "true_peak": ("t.true_peak", "number", "true peak (dBTP)"),
    "model_id": ("t.model_id", "text", "embedding model"),
}

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
  | (?P<op><=|>=|!=|<>|==|=|<|>)
  | (?P<punct>[(),])
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?|`[^`]+`)
    """,
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "between", "in", "like", "contains", "is", "null", "true", "false"}


@dataclass(frozen=True)
class Token:
    kind: str  # number, string, op, punct, name, keyword, end
    text: str
    pos: int  # 0-based character offset
    value: object = None


def tokenize(text: str) -> list[Token]:
    out, i = [], 0
    while i < len(text):
        m = _TOKEN.match(text, i)
        if m is None:
            bad = text[i]
            if bad in "'\"":
                raise _error(text, i, f"unterminated string starting with {bad}")
            raise _error(text, i, f"unexpected character {bad!r}")
        kind = m.lastgroup
        tok = m.group()
        if kind == "number":
            # "-" glued to a previous value reads as a minus sign we do not support
            value = float(tok) if any(c in tok for c in ".eE") else int(tok)
            if isinstance(value, int) and not -(2**63) <= value < 2**63:
                value = float(value)  # beyond SQLite's 64-bit integers: compared as a real
            out.append(Token("number", tok, i, value))
        elif kind == "string":
            q = tok[0]
            out.append(Token("string", tok, i, tok[1:-1].replace(q + q, q)))
        elif kind == "name":
            low = tok.lower()
            if low in _KEYWORDS:
                out.append(Token("keyword", tok, i, low))
            else:
                out.append(Token("name", tok, i, tok.strip("`")))
        elif kind != "ws":
            out.append(Token(kind, tok, i, tok))
        i = m.end()
    out.append(Token("end", "", len(text)))
    return out


def _error(text: str, pos: int, message: str) -> FilterError:
    snippet = text[:pos] + "»" + text[pos:]
    if len(snippet) > 100:
        lo = max(0, pos - 50)
        snippet = ("…" if lo else "") + snippet[lo : pos + 50] + ("…" if pos + 50 < len(text) else "")
    return FilterError(f"filter error at position {pos + 1}: {message}: {snippet}", position=pos + 1)


# -- syntax tree ----------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    name: str
    pos: int


@dataclass(frozen=True)
class Compare:
    field: Field
    op: str  # = != < <= > >= between in like contains null
    values: tuple = ()
    negate: bool = False


@dataclass(frozen=True)
class BoolOp:
    op: str  # and | or
    parts: tuple


@dataclass(frozen=True)
class Not:
    part: object


#: Bounds on a filter, far above any hand-written one: nesting depth (parentheses and 'not'), comparisons,
#: values in one 'in' list and characters. Without them a 1,000-deep filter hit Python's recursion limit and
#: 5,000 'or' terms SQLite's expression depth limit (1,000). SQLite's parser stack is the tighter bound:
#: parentheses alternating 'and' and 'or' overflowed it at 28 levels (tests/test_faults.py runs the worst
#: shapes at these limits against SQLite).
MAX_DEPTH = 24
MAX_COMPARISONS = 256
MAX_IN_VALUES = 1_000
MAX_CHARS = 20_000


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        if len(text) > MAX_CHARS:
            raise FilterError(f"filter error: the filter is {len(text)} characters long; at most {MAX_CHARS} are accepted")
        self.toks = tokenize(text)
        self.i = 0
        self.depth = 0
        self.comparisons = 0

    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def take(self) -> Token:
        t = self.toks[self.i]
        self.i += 1
        return t

    def is_kw(self, *words: str) -> bool:
        return self.tok.kind == "keyword" and self.tok.value in words

    def fail(self, expected: str, tok: Token | None = None) -> FilterError:
        tok = tok or self.tok
        found = "the end of the filter" if tok.kind == "end" else repr(tok.text)
        return _error(self.text, tok.pos, f"expected {expected}, found {found}")

    def parse(self):
        if self.tok.kind == "end":
            raise _error(self.text, 0, "the filter is empty")
        node = self.or_expr()
        if self.tok.kind != "end":
            raise self.fail("'and', 'or' or the end of the filter")
        return node

    def or_expr(self):
        parts = [self.and_expr()]
        while self.is_kw("or"):
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else BoolOp("or", tuple(parts))

    def and_expr(self):
        parts = [self.not_expr()]
        while self.is_kw("and"):
            self.take()
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else BoolOp("and", tuple(parts))

    def not_expr(self):
        if self.is_kw("not") or (self.tok.kind == "punct" and self.tok.text == "("):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise _error(self.text, self.tok.pos, f"nested too deeply (at most {MAX_DEPTH} levels of "
                                                      "parentheses and 'not')")
            try:
                if self.take().text.lower() == "not":
                    return Not(self.not_expr())
                node = self.or_expr()
                if not (self.tok.kind == "punct" and self.tok.text == ")"):
                    raise self.fail("')'")
                self.take()
                return node
            finally:
                self.depth -= 1
        return self.predicate()

    def value(self, what: str = "a number or a quoted string"):
        t = self.tok
        if t.kind in ("number", "string"):
            self.take()
            return t.value
        if t.kind == "keyword" and t.value in ("true", "false"):
            self.take()
            return 1 if t.value == "true" else 0
        if t.kind == "name":
            raise _error(self.text, t.pos, f"expected {what}, found {t.text!r} (quote text values: '{t.text}')")
        raise self.fail(what)

    def predicate(self):
        t = self.tok
        if t.kind != "name":
            raise self.fail("a field name")
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise _error(self.text, t.pos, f"too many comparisons (at most {MAX_COMPARISONS}; "
                                           "use 'in (...)' for a list of values)")
        self.take()
        field = Field(t.value, t.pos)
        if self.tok.kind == "op":
            op = {"==": "=", "<>": "!="}.get(self.tok.text, self.tok.text)
            self.take()
            return Compare(field, op, (self.value(),))
        if self.is_kw("is"):
            self.take()
            negate = False
            if self.is_kw("not"):
                self.take()
                negate = True
            if not self.is_kw("null"):
                raise self.fail("'null'")
            self.take()
            return Compare(field, "null", (), negate)
        negate = False
        if self.is_kw("not"):
            self.take()
            negate = True
        if self.is_kw("between"):
            self.take()
            lo = self.value()
            if not self.is_kw("and"):
                raise self.fail("'and' (between X and Y)")
            self.take()
            return Compare(field, "between", (lo, self.value()), negate)
        if self.is_kw("in"):
            self.take()
            if not (self.tok.kind == "punct" and self.tok.text == "("):
                raise self.fail("'(' after in")
            self.take()
            values = [self.value()]
            while self.tok.kind == "punct" and self.tok.text == ",":
                self.take()
                if len(values) == MAX_IN_VALUES:
                    raise _error(self.text, self.tok.pos, f"too many values in one 'in' list (at most {MAX_IN_VALUES})")
                values.append(self.value())
            if not (self.tok.kind == "punct" and self.tok.text == ")"):
                raise self.fail("',' or ')'")
            self.take()
            return Compare(field, "in", tuple(values), negate)
        if self.is_kw("like", "contains"):
            op = self.take().value
            v = self.tok
            if v.kind != "string":
                raise self.fail(f"a quoted string after {op}")
            self.take()
            return Compare(field, op, (v.value,), negate)
        raise self.fail(
            "an operator (=, !=, <, <=, >, >=, between, in, like, contains, is null)"
            + (" after 'not'" if negate else f" after {t.text!r}")
        )


def parse(text: str):
    """Parse a filter into its syntax tree; raises FilterError."""
    if not isinstance(text, str):
        raise FilterError(f"filter must be a string, not {type(text).__name__}")
    return _Parser(text).parse()


# -- SQL --------------------------------------------------------------------------

LABEL_SQL = "(SELECT l.value FROM labels l WHERE l.path = f.path AND l.name = ?)"


@dataclass(frozen=True)
class Compiled:
    """A WHERE clause over ``tracks t JOIN files f`` and its parameters."""

    sql: str
    params: tuple


def _tag_columns(tags: Iterable[str]) -> dict[str, str]:
    """Tag concept -> its columns in the track tag vector ("3,53"); "msd:rock" and "mtt:rock" are one concept."""
    from .tags import tag_concepts

    c = tag_concepts(list(tags))
    return {name: ",".join(map(str, cols)) for name, cols in zip(c.names, c.columns)}


def _field_sql(field: Field, text: str, labels: set[str], tags: dict[str, str] | None = None) -> tuple[str, tuple, str]:
    """(SQL expression, its parameters, kind) of a field; labels become a subquery, tags a function call."""
    name = field.name
    low = name.lower()
    if low.startswith("tag.") or low.startswith("tags."):
        tag = low.split(".", 1)[1].replace("_", " ")
        if not tags or tag not in tags:
            known = f" (tags: {', '.join(sorted(tags))})" if tags else " (this library has no tags)"
            raise _error(text, field.pos, f"unknown tag {name.split('.', 1)[1]!r}{known}")
        return "tag_prob(t.tags, ?)", (tags[tag],), "number"
    if low.startswith("label.") or low.startswith("labels."):
        label = name.split(".", 1)[1]
        match = _label_named(label, labels)
        if match is None:
            raise _error(text, field.pos, f"no user metadata column {label!r}{_known(labels)}")
        return LABEL_SQL, (match,), "any"
    if low.startswith("track."):
        base = low.split(".", 1)[1]
        if base not in FIELDS:
            raise _error(text, field.pos, f"unknown field {name!r}{_known(labels)}")
        sql, kind, _ = FIELDS[base]
        return sql, (), kind
    if "." not in name and low in FIELDS:
        sql, kind, _ = FIELDS[low]
        match = _label_named(name, labels)
        if match is not None and low not in ("id", "path"):  # user metadata overrides the file's
            return f"coalesce({LABEL_SQL}, {sql})", (match,), "any"
        return sql, (), kind
    match = _label_named(name, labels) if "." not in name else None
    if match is None:
        raise _error(text, field.pos, f"unknown field {name!r}{_known(labels)}")
    return LABEL_SQL, (match,), "any"


def _label_named(name: str, labels: set[str]) -> str | None:
    if name in labels:
        return name
    low = {lab.lower(): lab for lab in labels}
    return low.get(name.lower())


def _known(labels: set[str]) -> str:
    extra = f"; user metadata columns: {', '.join(sorted(labels))}" if labels else ""
    return f" (fields: {', '.join(FIELDS)}{extra})"


def _text_ci(expr: str) -> str:
    return f"{expr} COLLATE NOCASE"


def _like_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _compile(node, text: str, labels: set[str], tags: dict[str, str] | None = None) -> tuple[str, list]:
    if isinstance(node, BoolOp):
        sqls, params = [], []
        for part in node.parts:
            s, p = _compile(part, text, labels, tags)
            sqls.append(f"({s})")
            params += p
        return f" {node.op.upper()} ".join(sqls), params
    if isinstance(node, Not):
        s, p = _compile(node.part, text, labels, tags)
        # a comparison with NULL is unknown, and NOT unknown is unknown: make "not" total
        # (true unless the test is true; shallower for SQLite's parser than NOT coalesce(..., 0))
        return f"({s}) IS NOT 1", p
    assert isinstance(node, Compare)
    expr, fparams, kind = _field_sql(node.field, text, labels, tags)
    params = list(fparams)
    op, values = node.op, node.values
    if op == "null":
        return f"{expr} IS {'NOT ' if node.negate else ''}NULL", params
    if op in ("<", "<=", ">", ">="):
        return f"{expr} {op} ?", params + [values[0]]
    if op in ("=", "!="):
        sql, params = f"{_text_ci(expr) if isinstance(values[0], str) else expr} = ?", params + [values[0]]
    elif op == "between":
        sql, params = f"{expr} BETWEEN ? AND ?", params + list(values)
    elif op == "in":
        ci = any(isinstance(v, str) for v in values)
        sql, params = f"{_text_ci(expr) if ci else expr} IN ({', '.join('?' * len(values))})", params + list(values)
    elif op == "like":
        sql, params = f"{expr} LIKE ? ESCAPE '\\'", params + [values[0]]
    elif op == "contains":
        sql, params = f"{expr} LIKE ? ESCAPE '\\'", params + ["%" + _like_escape(str(values[0])) + "%"]
    else:
        raise AssertionError(op)
    if op == "!=" or node.negate:
        # the negation of a test includes the tracks where the field is missing
        return f"({sql}) IS NOT 1", params
    return sql, params


def compile_filter(text: str, labels: Iterable[str] = (), tags: Iterable[str] = ()) -> Compiled:
    """Compile ``text`` to a WHERE clause over ``tracks t JOIN files f``.

    ``labels``: the user metadata column names the catalogue holds; ``tags``: the model's tag
    names (``tag.piano > 0.3`` tests a track's mean probability, through the catalogue's
    ``tag_prob`` SQL function).
    """
    labels = set(labels)
    sql, params = _compile(parse(text), text, labels, _tag_columns(tags))
    return Compiled(sql, tuple(params))


_ORDER = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.]*|`[^`]+`)(?:\s+(asc|desc))?\s*$", re.IGNORECASE)


def compile_order(text: str, labels: Iterable[str] = (), tags: Iterable[str] = ()) -> Compiled:
    """``"bpm desc, title"`` -> an ORDER BY clause (without the keywords) and its parameters."""
    labels = set(labels)
    tag_columns = _tag_columns(tags)
    parts, params = [], []
    pos = 0
    for chunk in text.split(","):
        m = _ORDER.match(chunk)
        if not m or not chunk.strip():
            raise FilterError(f"order_by: expected FIELD [asc|desc] at position {pos + 1}: {chunk.strip()!r}",
                              position=pos + 1)
        name = m.group(1).strip("`")
        sql, p, _ = _field_sql(Field(name, pos + m.start(1)), text, labels, tag_columns)
        direction = (m.group(2) or "asc").upper()
        parts.append(f"{sql} IS NULL, {sql} {direction}")  # nulls last either way
        params += list(p) * 2
        pos += len(chunk) + 1
    return Compiled(", ".join(parts), tuple(params))
