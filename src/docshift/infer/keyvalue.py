"""Key-pattern clustering: the keys of a key-value table as patterns, tables and feeds.

Keys are split at ``:`` and grouped by their first segment and their number of segments.
In a group, a segment with one value is literal; a middle segment with a few word-like
values (``production``, ``staging``) is an environment, turned into a ``where`` on its
most common value; the last varying segment is the record's id; any other varying segment is
a capture named after the value field that repeats it (``employee:{clientId}:{id}``).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from docshift.infer.documents import (
    Context,
    TableBuilder,
    add_junctions,
    choose_naming,
    mark_unique_targets,
    order_tables,
    plural,
    singular,
    unique_name,
)
from docshift.infer.fields import profile
from docshift.infer.model import ColumnProposal, FeedProposal, Proposal, TableProposal
from docshift.infer.references import KeySpace, find_reference
from docshift.infer.sample import (
    SEED,
    Progress,
    Reservoir,
    StreamSample,
    canonical,
    documents,
    observe,
    snake_case,
)
from docshift.sources.base import Stream, UnreadableDocument

NOISE_PREFIXES = ("session", "sessions", "cache", "tmp", "temp", "lock", "locks")
"""Key spaces that hold transient state, proposed for ``ignore_keys``."""
MAX_ENV_VALUES = 4
_WORD = re.compile(r"^[A-Za-z]+$")
_SYNONYMS = {"status": ("state",), "name": ("title", "label"), "created_at": ("created",),
             "updated_at": ("updated", "modified")}


@dataclass
class Group:
    """The keys sharing a first segment and a number of segments."""

    prefix: str
    size: int
    count: int = 0
    positions: list[Counter[str]] = field(default_factory=list)
    sample: StreamSample = field(default_factory=lambda: StreamSample(""))
    reservoir: Reservoir | None = None
    kinds: Counter[str] = field(default_factory=Counter)
    keys: list[str] = field(default_factory=list)
    """Every key of the group (ids are checked for uniqueness among the migrated ones)."""
    pattern: str = ""
    env: tuple[int, str, list[str]] | None = None
    id_pos: int | None = None
    captures: dict[int, str] = field(default_factory=dict)

    def key_example(self) -> str:
        return self.sample.keys[0] if self.sample.keys else self.prefix

    def ids(self) -> Counter[str]:
        """The id segment of every key the table takes (in the main environment only)."""
        out: Counter[str] = Counter()
        if self.id_pos is None:
            return out
        for k in self.keys:
            parts = k.split(":")
            if self.env is None or parts[self.env[0]] == self.env[1]:
                v = parts[self.id_pos]
                out[canonical(v) or v] += 1
        return out


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        if value and all(isinstance(x, dict) for x in value):
            return "objects"
        return "scalars" if all(not isinstance(x, (dict, list)) for x in value) else "mixed"
    return "scalar"


def read_groups(stream: Stream, size: int, progress: Progress | None) -> list[Group]:
    """One read of the table: key groups with a sample of values each and every key segment."""
    groups: dict[tuple[str, int], Group] = {}
    rng = random.Random(SEED)
    for sdoc in documents(stream, progress):
        if isinstance(sdoc.doc, UnreadableDocument):
            continue
        parts = sdoc.key.split(":")
        g = groups.get((parts[0], len(parts)))
        if g is None:
            g = groups[(parts[0], len(parts))] = Group(parts[0], len(parts))
            g.positions = [Counter() for _ in parts]
            g.sample = StreamSample(sdoc.key)
            g.reservoir = Reservoir(size, rng)
        g.count += 1
        g.keys.append(sdoc.key)
        for i, p in enumerate(parts):
            g.positions[i][p] += 1
        g.kinds[_kind(sdoc.doc)] += 1
        if isinstance(sdoc.doc, dict):
            observe(g.sample, sdoc.doc)
        else:
            g.sample.count += 1
        assert g.reservoir is not None
        g.reservoir.add((sdoc.key, sdoc.doc))
    for g in groups.values():
        assert g.reservoir is not None
        g.sample.keys = [k for k, _ in g.reservoir.items]
        g.sample.docs = [d for _, d in g.reservoir.items]
    return sorted(groups.values(), key=lambda g: -g.count)


def shape(g: Group) -> None:
    """Decide ``g``'s pattern: literal segments, the environment, the id, other captures."""
    if g.count == 1:
        g.pattern = g.key_example()
        return
    varying = [i for i in range(1, g.size) if len(g.positions[i]) > 1]
    if not varying:
        g.pattern = g.key_example()
        return
    g.id_pos = varying[-1]
    for i in varying[:-1]:
        values = g.positions[i]
        if len(values) <= MAX_ENV_VALUES and all(_WORD.match(v) for v in values) and \
                g.count >= 3 * len(values):
            top = values.most_common(1)[0][0]
            g.env = (i, top, sorted(values))
            g.captures[i] = "env"
        else:
            g.captures[i] = _capture_name(g, i)
    g.captures[g.id_pos] = "id"
    parts = []
    for i in range(g.size):
        parts.append("{" + g.captures[i] + "}" if i in g.captures else
                     next(iter(g.positions[i])))
    g.pattern = ":".join(parts)


def _capture_name(g: Group, pos: int) -> str:
    """The value field that repeats segment ``pos`` of every sampled key, else ``partN``."""
    docs = [(k, d) for k, d in zip(g.sample.keys, g.sample.docs, strict=True)
            if isinstance(d, dict)]
    if docs:
        for name in docs[0][1]:
            if re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name) and all(
                    str(d.get(name)) == k.split(":")[pos] for k, d in docs):
                return name
    return f"part{pos}"


def propose_key_value(stream: Stream, size: int, arrays: str = "child",
                      progress: Progress | None = None) -> Proposal:
    """A proposal for a key-value table: tables per key pattern, feeds, junctions, ignores."""
    groups = read_groups(stream, size, progress)
    for g in groups:
        shape(g)
    p = Proposal(source={})
    entities: list[Group] = []
    indexes: list[Group] = []
    arrays_of_objects: list[Group] = []
    legacy: dict[int, Group] = {}
    for g in groups:
        main = g.kinds.most_common(1)[0][0]
        if g.prefix.lower() in NOISE_PREFIXES:
            p.ignore_keys.append((f"{g.prefix}:*", f"{g.count} key(s) of transient state"))
        elif "_by_" in g.prefix:
            p.ignore_keys.append((f"{g.prefix}:*", f"{g.count} lookup alias(es) of records "
                                  "stored under another key"))
        elif g.id_pos is None and main != "objects":
            p.ignore_keys.append((g.pattern, "a single key that fits no pattern: review it"))
        elif main == "object":
            entities.append(g)
        elif main == "scalars" and g.id_pos is not None:
            indexes.append(g)
        elif main == "objects":
            arrays_of_objects.append(g)
        else:
            p.ignore_keys.append((g.pattern if g.id_pos is None else f"{g.prefix}:*",
                                  f"{g.count} key(s) holding {main} values: review them"))
    # a legacy variant: the same entity under a plural/singular prefix of a larger group
    for g in list(entities):
        for other in entities:
            if other is g or other.count < g.count or id(other) in legacy:
                continue
            if singular(snake_case(other.prefix)) == singular(snake_case(g.prefix)):
                legacy[id(g)] = other
                entities.remove(g)
                break
    names: dict[int, str] = {}
    taken: set[str] = set()
    for g in entities:
        names[id(g)] = unique_name(plural(snake_case(g.prefix)), taken)
    for g in indexes:
        names[id(g)] = unique_name(snake_case(g.prefix), taken)
    variants: dict[int, list[Group]] = {}
    for g in groups:
        if id(g) in legacy:
            variants.setdefault(id(legacy[id(g)]), []).append(g)
    spaces = _spaces(entities, variants, names)
    profiles = {id(g): profile(g.sample.docs) for g in entities}
    ctx = Context(spaces, choose_naming(list(profiles.values())), arrays)
    ctx.taken |= taken
    for g in entities:
        _entity_table(ctx, g, names[id(g)], profiles[id(g)], variants.get(id(g), []))
    for g in arrays_of_objects:
        _array_of_records(ctx, p, g)
    for g in indexes:
        _index_table(ctx, g, names[id(g)])
    add_junctions(ctx, {})
    mark_unique_targets(ctx.tables)
    p.tables, p.naming = order_tables(ctx.tables), ctx.naming
    return p


def _spaces(entities: list[Group], legacy: dict[int, list[Group]], names: dict[int, str]
            ) -> list[KeySpace]:
    spaces: list[KeySpace] = []
    for g in entities:
        assert g.id_pos is not None
        ids = set(g.ids())
        for variant in legacy.get(id(g), []):
            ids |= set(variant.ids())
        spaces.append(KeySpace(names[id(g)], "id", ids))
        for fname, kv in g.sample.fields.items():
            if kv.duplicates or kv.present < 2 or len(kv.kinds) != 1 or "other" in kv.kinds:
                continue
            if kv.values == ids:
                continue
            spaces.append(KeySpace(names[id(g)], snake_case(fname), kv.values, natural=True))
    return spaces


def _entity_table(ctx: Context, g: Group, name: str, prof: dict[str, Any],
                  variants: list[Group]) -> None:
    feed = FeedProposal(keys=g.pattern)
    notes = [f"keys {g.pattern}: {g.count} keys, {len(g.sample.docs)} sampled, "
             f"e.g. {g.key_example()}"]
    if g.env is not None:
        pos, top, values = g.env
        feed.where = {"env": top}
        n = g.positions[pos][top]
        notes.append(f"segment {pos + 1} takes {len(values)} values ({', '.join(values)}): "
                     f"an environment; only {top} ({n} of {g.count} keys) is migrated")
    t = TableProposal(name, [feed], notes=notes)
    ctx.tables.append(t)
    b = TableBuilder(ctx, t, name, g.sample, len(g.sample.docs))
    assert g.id_pos is not None
    ids = g.ids()
    pk = b.column("id", "$key.id", "uuid", evidence=[
        f"the key's id segment: {len(ids)} distinct in {ids.total()} keys"])
    t.primary_key = ["id"]
    if len(ids) != ids.total():
        pk.from_ = "$key"
        pk.evidence.append("the id segment repeats under other captures: the whole key is "
                           "the id")
    else:
        match = find_reference("id", ids, ctx.spaces, exclude=(name, "id"))
        # one record per record of another table (site_config:{id} → sites): the key names it
        if match is not None and match.rate == 1.0 and not match.space.natural and \
                snake_case(g.prefix).startswith(singular(match.space.table) + "_"):
            # the type stays explicit: columns referencing this one take it from here
            pk.references = match.space.target()
            pk.evidence.append("reference: " + match.evidence())
    rest = dict(prof)
    for fname in list(rest):
        if all(isinstance(d, dict) and str(d.get(fname)) == k.split(":")[g.id_pos]
               for k, d in zip(g.sample.keys, g.sample.docs, strict=True)):
            t.ignore.append(fname)
            t.notes.append(f"{fname}: the same as the key's id in every sampled value")
            del rest[fname]
    b.add_fields(rest)
    for v in variants:
        _legacy_feed(ctx, t, g, v, prof)


def _legacy_feed(ctx: Context, t: TableProposal, g: Group, v: Group,
                 prof: dict[str, Any]) -> None:
    """A second feed from a legacy key layout, its fields matched to the table's columns."""
    vprof = profile(v.sample.docs)
    entity = singular(snake_case(g.prefix))
    columns: dict[str, str] = {}
    for col in t.columns:
        if col.from_ and col.from_.startswith("$"):
            continue
        src = col.from_ or ctx.default_path(col.name, False)
        if src in vprof:
            continue
        for fname in vprof:
            s = snake_case(fname)
            stripped = s.removeprefix(entity + "_")
            if stripped == col.name or s in _SYNONYMS.get(col.name, ()) or \
                    stripped in _SYNONYMS.get(col.name, ()):
                columns[col.name] = fname
                break
    for col in t.columns:
        src = columns.get(col.name) or col.from_ or ctx.default_path(col.name, False)
        held = vprof.get(src)
        if col.nullable is False and (held is None or held.non_null < len(v.sample.docs)):
            # the legacy records lack it: required only where every layout has it
            col.nullable = None
            col.evidence.append(f"missing in some legacy {v.prefix} records: nullable")
    ignored = [f for f in vprof if snake_case(f).removeprefix(entity + "_") == "id"]
    feed = FeedProposal(keys=v.pattern, columns=columns, note=(
        f"a legacy layout of the same records: {v.count} keys like {v.key_example()}"))
    if v.env is not None:
        feed.where = {"env": v.env[1]}
    t.feeds.append(feed)
    t.on_duplicate = "keep_first"
    t.ignore += [f for f in ignored if f not in t.ignore]
    shared = len(set(v.positions[v.id_pos or 0]) & set(g.positions[g.id_pos or 0]))
    t.notes.append(f"{shared} of {v.count} legacy keys repeat a record of the current layout: "
                   "on_duplicate keep_first keeps the current one")


def _array_of_records(ctx: Context, p: Proposal, g: Group) -> None:
    """A key holding whole records: ignored when they all repeat a table, else a feed."""
    elements = [x for d in g.sample.docs if isinstance(d, list) for x in d]
    ids = Counter(canonical(x.get("id")) for x in elements if isinstance(x, dict)
                  and canonical(x.get("id")) is not None)
    match = find_reference("id", ids, ctx.spaces) if ids else None
    if match is None or match.space.natural:
        p.ignore_keys.append((g.pattern, f"{len(elements)} objects matching no table: "
                              "review them"))
        return
    table = next(t for t in ctx.tables if t.name == match.space.table)
    if match.matched == match.distinct:
        p.ignore_keys.append((g.pattern, f"{len(elements)} whole records, every one also "
                              f"stored as a {table.name} record (100% overlap)"))
        return
    table.feeds.append(FeedProposal(keys=g.pattern, unnest="$", columns={"id": "$item.id"},
                                    note=f"whole records: {match.evidence()}; the others "
                                    "exist only here"))
    table.on_duplicate = "keep_first"


def _index_table(ctx: Context, g: Group, name: str) -> None:
    """A key holding an array of ids: a junction from the key's id to each element."""
    assert g.id_pos is not None
    elements: Counter[str] = Counter()
    for d in g.sample.docs:
        for x in d if isinstance(d, list) else []:
            c = canonical(x)
            if c is not None:
                elements[c] += 1
    owner = g.ids()
    left = find_reference("id", owner, ctx.spaces)
    right = find_reference(name, elements, ctx.spaces)
    feed = FeedProposal(keys=g.pattern, where={"env": g.env[1]} if g.env else None,
                        unnest="$")
    t = TableProposal(name, [feed], kind="junction", on_duplicate="keep_first", notes=[
        f"keys {g.pattern}: {g.count} index keys, each an array of ids: one row per id"])
    cols: set[str] = set()
    lname = unique_name(f"{singular(left.space.table)}_id" if left else "owner_id", cols)
    rname = unique_name(f"{singular(right.space.table)}_id" if right else "item", cols)
    lcol = ColumnProposal(lname, None if left else "text", "$key.id")
    if left:
        lcol.references = left.space.target()
        lcol.evidence.append("reference: " + left.evidence())
        if left.matched != left.distinct:
            lcol.on_orphan = "drop"
    rcol = ColumnProposal(rname, None if right else "text", "$item")
    if right:
        rcol.references = right.space.target()
        rcol.evidence.append("reference: " + right.evidence())
        if right.matched != right.distinct:
            rcol.on_orphan = "drop"
    t.columns += [lcol, rcol, ColumnProposal("position", "integer", "$index")]
    t.primary_key = [lname, rname]
    ctx.tables.append(t)
