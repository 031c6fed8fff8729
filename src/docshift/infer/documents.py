"""Tables from collections: columns, child tables and junctions from a profiled sample."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from docshift.infer.fields import FieldStats, column_type, enum_suggestion, profile
from docshift.infer.model import ColumnProposal, FeedProposal, TableProposal
from docshift.infer.references import KeySpace, Match, find_reference
from docshift.infer.sample import StreamSample, snake_case
from docshift.spec.check import camel_case

IGNORED_FIELDS = ("__v", "_class", "__version")
"""Version and class markers that ORMs (Mongoose, Spring Data) add to every document."""
UNIQUE_NAME = re.compile(r"(^|_)(email|code|slug|sku|username|number|domain)$")
REFERENCE_NAME = re.compile(r"(^|_)(id|ids|by|to|code|key|ref|uuid|email)$")
"""Reference columns named otherwise get ``_id`` appended (``user`` → ``user_id``)."""
REF_KINDS = {"objectId", "string", "int", "long", "uuid"}


def singular(name: str) -> str:
    """``opportunities`` → ``opportunity``, ``accounts`` → ``account``."""
    if name.endswith("ies") and len(name) > 4:
        return name[:-3] + "y"
    if name.endswith(("sses", "xes")):
        return name[:-2]
    if name.endswith("s") and not name.endswith("ss") and len(name) > 2:
        return name[:-1]
    return name


def plural(name: str) -> str:
    """``client`` → ``clients``, ``category`` → ``categories``; plurals stay."""
    if name.endswith("s"):
        return name
    if name.endswith("y") and len(name) > 2 and name[-2] not in "aeiou":
        return name[:-1] + "ies"
    return name + "s"


def unique_name(base: str, taken: set[str]) -> str:
    """``base``, or ``base_2``, ``base_3``… whichever is not taken yet (and take it)."""
    base = base[:60]
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def table_names(streams: list[str]) -> dict[str, str]:
    """A table name per stream: snake_case, without a prefix most of them share (``crm_``)."""
    snake = {s: snake_case(s) for s in streams}
    heads = Counter(v.split("_", 1)[0] for v in snake.values() if "_" in v)
    strip = {h for h, n in heads.items() if n >= 3 and n >= len(streams) / 4}
    out: dict[str, str] = {}
    taken: set[str] = set()
    for s in streams:
        name = snake[s]
        head, _, rest = name.partition("_")
        if head in strip and rest and rest not in snake.values():
            name = rest
        out[s] = unique_name(name, taken)
    return out


def choose_naming(samples: list[dict[str, FieldStats]]) -> str:
    """``camelCase`` when most multi-word field names are camelCase, else ``as_is``."""
    camel = snake = 0
    for prof in samples:
        for name in prof:
            s = snake_case(name)
            if "_" in name.lstrip("_"):
                snake += 1
            elif s != name and camel_case(s) == name:
                camel += 1
    return "camelCase" if camel > snake else "as_is"


@dataclass
class Link:
    """An array of references: a junction table, maybe one side of a two-sided link."""

    stream: str
    table: str
    field: str
    match: Match
    pairs: set[tuple[str, str]]
    """(this document's id, referenced id) pairs seen in the sample."""
    sampled_ids: set[str]
    complete: bool
    """The whole stream was sampled."""
    parent_from: str = "_id"
    feed: FeedProposal | None = None
    """The feed of the table holding the array (its stream or key pattern)."""


@dataclass
class Context:
    """What every table builder needs: key spaces, naming, and where to put extra tables."""

    spaces: list[KeySpace]
    naming: str
    arrays: str = "child"
    tables: list[TableProposal] = field(default_factory=list)
    taken: set[str] = field(default_factory=set)
    links: list[Link] = field(default_factory=list)
    needs_unique: set[tuple[str, str]] = field(default_factory=set)

    def default_path(self, column: str, item: bool) -> str:
        name = camel_case(column) if self.naming == "camelCase" else column
        return f"$item.{name}" if item else name


class TableBuilder:
    """Columns of one table from the profile of its documents (or of unnested elements)."""

    def __init__(self, ctx: Context, table: TableProposal, stream: str,
                 sample: StreamSample | None, total: int, item: bool = False) -> None:
        self.ctx, self.table, self.stream, self.sample = ctx, table, stream, sample
        self.total, self.item = total, item
        self.names: set[str] = {c.name for c in table.columns}

    def column(self, base: str, path: str, type_: str | None, **kw: Any) -> ColumnProposal:
        name = unique_name(snake_case(base), self.names)
        src = path if path != self.ctx.default_path(name, self.item) else None
        col = ColumnProposal(name, type_, src, **kw)
        self.table.columns.append(col)
        return col

    def add_fields(self, stats: dict[str, FieldStats], prefix: str = "",
                   parent: str | None = None) -> None:
        """Columns (and child tables) for every field of ``stats``."""
        for name, fs in stats.items():
            if not prefix and name in IGNORED_FIELDS and not self.item:
                self.table.ignore.append(name)
                continue
            self.add_field(name, fs, prefix, parent)

    def path(self, name: str, prefix: str) -> str:
        full = prefix + name
        return f"$item.{full}" if self.item else full

    def add_field(self, name: str, fs: FieldStats, prefix: str, parent: str | None) -> None:
        kinds = fs.kinds()
        col_base = f"{parent}_{snake_case(name)}" if parent else name
        path = self.path(name, prefix)
        ev = fs.evidence(self.total)
        odd = fs.non_null - fs.types["array"]
        if "array" in kinds and not prefix and odd <= 0.1 * fs.non_null and \
                not kinds & {"object"}:
            self.add_array(name, fs, col_base, path, ev)
            if odd:
                # the few documents holding something else are quarantined (wrong_type)
                note = (f"{odd} document(s) hold {', '.join(sorted(kinds - {'array'}))} "
                        "instead of an array: they will be quarantined (wrong_type)")
                target = self.ctx.tables[-1] if self.ctx.tables[-1].feeds[0].unnest == path \
                    else None
                if target is not None:
                    target.notes.append("CHECK: " + note)
                elif self.table.columns:
                    self.table.columns[-1].check = note
            return
        if kinds == {"object"}:
            if not prefix and fs.is_map() and self.can_have_children():
                self.add_map(name, fs, path, ev)
                return
            if not prefix and fs.is_flat_record():
                for child, cfs in fs.children.items():
                    self.add_field(child, cfs, f"{name}.", snake_case(col_base))
                return
            self.column(col_base, path, "jsonb", evidence=[ev])
            return
        if kinds & {"object", "array"}:
            self.column(col_base, path, "jsonb", evidence=[ev],
                        check=f"mixed types ({', '.join(sorted(kinds))}); kept as jsonb")
            return
        self.add_scalar(name, fs, col_base, path, ev, top=not prefix)

    def add_scalar(self, name: str, fs: FieldStats, col_base: str, path: str, ev: str,
                   top: bool) -> None:
        type_, check = column_type(fs, snake_case(name))
        match = self.reference(name, fs, snake_case(col_base))
        if match is not None and not REFERENCE_NAME.search(snake_case(col_base)):
            col_base = f"{snake_case(col_base)}_id"
        col = self.column(col_base, path, type_, evidence=[ev], check=check)
        if match is not None:
            col.type, col.check = None, None
            col.references = match.space.target()
            col.evidence.append("reference: " + match.evidence())
            if match.orphan_policy() != "reject":
                col.on_orphan = "null"
                col.evidence.append(f"{match.dangling} sampled value(s) match nothing: "
                                    "on_orphan null")
            if match.space.natural:
                self.ctx.needs_unique.add((match.space.table, match.space.column))
        full = self.sample
        if top and full is not None and not self.item and fs.non_null > 0:
            if full.non_null.get(name, 0) == full.count and full.count > 0:
                col.nullable = False
            kv = full.fields.get(name)
            if (kv is not None and UNIQUE_NAME.search(col.name) and kv.duplicates == 0
                    and kv.present >= 2 and match is None):
                col.unique = True
                col.evidence.append(f"no duplicate among {kv.present} values")
        if col.nullable is False and col.on_orphan == "null":
            # a required reference cannot be cleared: a dangling one quarantines its document
            col.on_orphan = None
            col.evidence[-1] = (f"{match.dangling if match else 0} sampled value(s) match "
                                "nothing: their documents are quarantined (the column is "
                                "never null, so on_orphan null cannot apply)")
        if match is None:
            col.enum = enum_suggestion(fs, self.total)

    def reference(self, name: str, fs: FieldStats, column: str) -> Match | None:
        if not fs.kinds() or not fs.kinds() <= REF_KINDS:
            return None
        return find_reference(name, fs.values, self.ctx.spaces,
                              exclude=(self.table.name, column))

    # -- arrays and maps ------------------------------------------------------------------

    def can_have_children(self) -> bool:
        return bool(self.table.primary_key) and not self.item and len(
            self.table.primary_key or []) == 1

    def parent_column(self, child: TableProposal) -> str:
        """Add the column referring to this table's row to ``child``; return its name."""
        pk = (self.table.primary_key or ["id"])[0]
        pk_col = self.table.column(pk)
        src = pk_col.from_ if pk_col and pk_col.from_ else self.ctx.default_path(pk, False)
        name = f"{singular(self.table.name)}_{pk}" if pk == "id" else pk
        name = name[:63]
        child.columns.append(ColumnProposal(name, None, src, references=self.table.name,
                                            evidence=[f"the {self.table.name} row"]))
        return name

    def add_array(self, name: str, fs: FieldStats, col_base: str, path: str, ev: str) -> None:
        es = fs.elements
        if es is None or es.present == 0:
            self.column(col_base, path, "jsonb", evidence=[ev],
                        check="always empty in the sample: give it a type (e.g. text[]) "
                              "or a child table")
            return
        ek = es.kinds()
        eev = "elements: " + es.evidence(es.present)
        if ek and ek <= REF_KINDS and self.can_have_children():
            pk = self.table.column((self.table.primary_key or ["id"])[0])
            match = find_reference(name, es.values, self.ctx.spaces)
            if match is not None and self.sample is not None and pk is not None:
                self.add_link(name, match, pk.from_ or self.ctx.default_path(pk.name, False))
                self.table.notes.append(f"{name}: an array of references to "
                                        f"{match.space.target()} (a junction table)")
                return
        if ek and not ek & {"object", "array", "null"}:
            type_, check = column_type(es, snake_case(name))
            if self.ctx.arrays == "inline" or not self.can_have_children() or type_ == "jsonb":
                arr = "jsonb" if type_ == "jsonb" else f"{type_}[]"
                self.column(col_base, path, arr, evidence=[ev, eev], check=check)
                return
            child = self.child_table(name, path, [ev])
            b = TableBuilder(self.ctx, child, self.stream, None, es.present, item=True)
            b.names.update(c.name for c in child.columns)
            b.column("position", "$index", "integer")
            value = singular(snake_case(name))
            b.column(value if value not in b.names else "value", "$item", type_,
                     evidence=[eev], check=check)
            child.primary_key = [child.columns[0].name, "position"]
            return
        if ek == {"object"} and self.can_have_children():
            child = self.child_table(name, path, [ev])
            b = TableBuilder(self.ctx, child, self.stream, None, es.present, item=True)
            b.names.update(c.name for c in child.columns)
            b.column("position", "$index", "integer")
            child.primary_key = [child.columns[0].name, "position"]
            b.add_fields(profile_children(es))
            return
        self.column(col_base, path, "jsonb", evidence=[ev, eev],
                    check=None if ek == {"object"} else
                    f"elements of mixed types ({', '.join(sorted(ek))}); kept as jsonb")

    def child_name(self, name: str) -> str:
        head, field_ = singular(self.table.name), snake_case(name)
        base = field_ if field_.startswith(head + "_") else f"{head}_{field_}"
        return unique_name(base, self.ctx.taken)

    def child_feed(self, path: str) -> FeedProposal:
        f = self.table.feeds[0]
        return FeedProposal(from_=f.from_, keys=f.keys, where=f.where, unnest=path)

    def child_table(self, name: str, path: str, evidence: list[str]) -> TableProposal:
        tname = self.child_name(name)
        feed = self.child_feed(path)
        child = TableProposal(tname, [feed], kind="child",
                              notes=[f"one row per element of {self.stream}.{name}: "
                                     + "; ".join(evidence)])
        self.parent_column(child)
        self.ctx.tables.append(child)
        return child

    def add_map(self, name: str, fs: FieldStats, path: str, ev: str) -> None:
        tname = self.child_name(name)
        keys = list(fs.children)
        feed = self.child_feed(path)
        child = TableProposal(tname, [feed], kind="child", notes=[
            f"{self.stream}.{name} is a map: {len(keys)} distinct keys (e.g. "
            + ", ".join(keys[:3]) + ") with one value shape; one row per entry: " + ev])
        self.parent_column(child)
        self.ctx.tables.append(child)
        b = TableBuilder(self.ctx, child, self.stream, None, sum(fs.key_counts), item=True)
        b.names.update(c.name for c in child.columns)
        b.column("key", "$key", "text", evidence=["the entry's key"])
        child.primary_key = [child.columns[0].name, "key"]
        merged = FieldStats()
        for cfs in fs.children.values():
            _merge(merged, cfs)
        if merged.kinds() == {"object"}:
            b.add_fields(profile_children(merged))
        else:
            b.add_scalar("value", merged, "value", "$item", merged.evidence(merged.present),
                         top=False)

    def add_link(self, name: str, match: Match, parent_from: str) -> None:
        sample = self.sample
        assert sample is not None
        pairs: set[tuple[str, str]] = set()
        ids: set[str] = set()
        from docshift.infer.sample import canonical

        for doc in sample.docs:
            a = canonical(doc.get(parent_from))
            if a is None:
                continue
            ids.add(a)
            for b in doc.get(name) or []:
                bt = canonical(b)
                if bt is not None:
                    pairs.add((a, bt))
        self.ctx.links.append(Link(self.stream, self.table.name, name, match, pairs, ids,
                                   complete=len(sample.docs) == sample.count,
                                   parent_from=parent_from, feed=self.table.feeds[0]))


def _merge(into: FieldStats, other: FieldStats) -> None:
    """Fold the stats of one map entry's values into ``into`` (for a map's value shape)."""
    into.present += other.present
    into.nulls += other.nulls
    into.types.update(other.types)
    into.values.update(other.values)
    into.strings.update(other.strings)
    into.examples = (into.examples + other.examples)[:3]
    into.max_chars = max(into.max_chars, other.max_chars)
    for lo in (other.int_min, other.int_max):
        if lo is not None:
            into.int_min = lo if into.int_min is None else min(into.int_min, lo)
            into.int_max = lo if into.int_max is None else max(into.int_max, lo)
    into.objects += other.objects
    into.key_counts += other.key_counts
    for k, c in other.children.items():
        _merge(into.children.setdefault(k, FieldStats()), c)


def profile_children(fs: FieldStats) -> dict[str, FieldStats]:
    """The field stats of the objects summarized by ``fs`` (array elements, map values)."""
    return fs.children


# -- collections → proposal -------------------------------------------------------------------


def primary_key(builder: TableBuilder, sample: StreamSample, prof: dict[str, FieldStats]
                ) -> None:
    """``id`` from ``_id`` (uuid, or the natural integer), else a unique key-like field."""
    table = builder.table
    if sample.count and sample.with_id == sample.count and "_id" in prof:
        fs = prof["_id"]
        type_, _ = column_type(fs, "_id")
        if type_ not in ("integer", "bigint"):
            type_ = "uuid"
        kinds = " ".join(f"{t}×{n}" for t, n in fs.types.most_common())
        col = builder.column("id", "_id", type_,
                             evidence=[f"_id: {kinds}, unique in the stream"])
        if col.name != "id":
            col.name = "id"
        table.primary_key = ["id"]
        return
    for name, kv in sorted(sample.fields.items(), key=lambda kv: snake_case(kv[0]) != "id"):
        if kv.duplicates == 0 and kv.present == sample.count and sample.count > 0 and \
                len(kv.kinds) == 1 and name in prof:
            fs = prof[name]
            type_, _ = column_type(fs, snake_case(name))
            col = builder.column(name, name, type_, evidence=[
                fs.evidence(len(sample.docs)),
                f"no _id; unique and present in all {sample.count} documents"])
            table.primary_key = [col.name]
            return
    table.notes.append("CHECK: no _id and no unique field present in every document: no "
                       "primary key, so no child tables")


def key_spaces(samples: dict[str, StreamSample], names: dict[str, str]) -> list[KeySpace]:
    """Every table's primary-key values, and the values of unique key-like fields."""
    spaces: list[KeySpace] = []
    for stream, s in samples.items():
        if s.count and s.with_id == s.count:
            spaces.append(KeySpace(names[stream], "id", s.ids.values))
        for fname, kv in s.fields.items():
            if fname == "_id" or kv.duplicates or kv.present < 2 or len(kv.kinds) != 1 \
                    or "other" in kv.kinds:
                continue
            spaces.append(KeySpace(names[stream], snake_case(fname), kv.values, natural=True))
    return spaces


def propose_collections(samples: dict[str, StreamSample], arrays: str = "child"
                        ) -> tuple[list[TableProposal], str]:
    """Tables for every sampled collection, and the ``naming`` option they assume."""
    names = table_names(list(samples))
    profiles = {s: profile(samples[s].docs) for s in samples}
    ctx = Context(key_spaces(samples, names), choose_naming(list(profiles.values())), arrays)
    ctx.taken.update(names.values())
    mains: dict[str, TableProposal] = {}
    for stream, sample in samples.items():
        if not sample.docs:
            continue
        table = TableProposal(names[stream], [FeedProposal(from_=stream)])
        table.notes.append(f"{stream}: {sample.count} documents, {len(sample.docs)} sampled"
                           + (f", {sample.unreadable} unreadable" if sample.unreadable else ""))
        ctx.tables.append(table)
        mains[stream] = table
        b = TableBuilder(ctx, table, stream, sample, len(sample.docs))
        prof = profiles[stream]
        primary_key(b, sample, prof)
        pk_field = "_id" if table.primary_key == ["id"] and "_id" in prof else None
        rest = {k: v for k, v in prof.items() if k != pk_field}
        if table.primary_key and pk_field is None:
            pk = table.column(table.primary_key[0])
            rest = {k: v for k, v in rest.items() if pk is None or
                    (pk.from_ or ctx.default_path(pk.name, False)) != k}
        b.add_fields(rest)
    add_junctions(ctx, mains)
    mark_unique_targets(ctx.tables)
    return order_tables(ctx.tables), ctx.naming


def mark_unique_targets(tables: list[TableProposal]) -> None:
    """A natural key another table references (``table.column``) must be unique."""
    by_name = {t.name: t for t in tables}
    for t in tables:
        for c in t.columns:
            if c.references and "." in c.references:
                tname, cname = c.references.split(".", 1)
                target = by_name.get(tname)
                col = target.column(cname) if target else None
                if target and col and target.primary_key != [cname]:
                    col.unique = True


def order_tables(tables: list[TableProposal]) -> list[TableProposal]:
    """Main tables in source order, each followed by its child tables; junctions last."""
    mains = [t for t in tables if t.kind == "table"]
    out: list[TableProposal] = []
    for m in mains:
        out.append(m)
        out += [t for t in tables if t.kind == "child" and t.feeds[0].from_ == m.feeds[0].from_
                and t.feeds[0].keys == m.feeds[0].keys]
    out += [t for t in tables if t not in out]
    return out


def add_junctions(ctx: Context, mains: dict[str, TableProposal]) -> None:
    """One junction per array of references; two-sided links share one, fed twice."""
    used: set[int] = set()
    links = ctx.links
    for i, a in enumerate(links):
        if i in used:
            continue
        partner = None
        best = -1.0
        for j, b in enumerate(links):
            if j <= i or j in used or b.table != a.match.space.table or \
                    a.table != b.match.space.table or a.table == b.table:
                continue
            score = _agreement(a, b)[0]
            if score > best:
                partner, best = j, score
        if partner is not None:
            used.update((i, partner))
            two_sided(ctx, a, links[partner])
        else:
            used.add(i)
            one_sided(ctx, a)


def _agreement(a: Link, b: Link) -> tuple[float, int, int]:
    """Share of pairs both sides hold (among documents both samples contain), and counts."""
    pa = a.pairs
    pb = {(x, y) for (y, x) in b.pairs}
    if not (a.complete and b.complete):
        pa = {p for p in pa if p[1] in b.sampled_ids}
        pb = {p for p in pb if p[0] in a.sampled_ids}
    union = pa | pb
    if not union:
        return 0.0, 0, 0
    return len(pa & pb) / len(union), len(union), len(union) - len(pa & pb)


def _id_name(table: str, taken: set[str]) -> str:
    return unique_name(f"{singular(table)}_id", taken)


def one_sided(ctx: Context, a: Link) -> None:
    tname = unique_name(f"{singular(a.table)}_{snake_case(a.field)}", ctx.taken)
    cols: set[str] = set()
    left, right = _id_name(a.table, cols), _id_name(a.match.space.table, cols)
    feed = _feed_of(a)
    t = TableProposal(tname, [feed], primary_key=[left, right], on_duplicate="keep_first",
                      kind="junction",
                      notes=[f"{a.stream}.{a.field}: an array of references, one row per "
                             "link (a link listed twice in one array is one row)"])
    t.columns.append(ColumnProposal(left, None, a.parent_from, references=a.table))
    t.columns.append(_link_column(right, a.match))
    t.columns[-1].from_ = "$item"
    ctx.tables.append(t)


def two_sided(ctx: Context, a: Link, b: Link) -> None:
    share, total, one_side = _agreement(a, b)
    tname = unique_name(f"{singular(a.table)}_{b.table}", ctx.taken)
    cols: set[str] = set()
    left, right = _id_name(a.table, cols), _id_name(b.table, cols)
    fa, fb = _feed_of(a), _feed_of(b)
    fa.columns, fb.columns = {left: a.parent_from, right: "$item"}, {left: "$item",
                                                                      right: b.parent_from}
    feeds = [fa, fb]
    t = TableProposal(tname, feeds, primary_key=[left, right], on_duplicate="keep_first",
                      kind="link", notes=[
                          f"a two-sided link: {a.stream}.{a.field} and {b.stream}.{b.field} "
                          "hold the same pairs; a pair stored on both sides becomes one row",
                          f"{one_side} of {total} sampled pairs ({100 * (1 - share):.0f}%) "
                          "are stored on one side only" if total else
                          "no pair could be compared between the two samples"])
    t.columns.append(_link_column(left, b.match))
    t.columns.append(_link_column(right, a.match))
    ctx.tables.append(t)


def _feed_of(link: Link) -> FeedProposal:
    base = link.feed or FeedProposal(from_=link.stream)
    return FeedProposal(from_=base.from_, keys=base.keys, where=base.where, unnest=link.field)


def _link_column(name: str, match: Match) -> ColumnProposal:
    col = ColumnProposal(name, None, references=match.space.target(),
                         evidence=["reference: " + match.evidence()])
    if match.matched != match.distinct:
        # a link to a deleted record is dropped; the document holding it is still loaded
        col.on_orphan = "drop"
        col.evidence.append(f"{match.dangling} sampled link(s) match nothing: on_orphan drop")
    return col
