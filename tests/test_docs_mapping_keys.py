"""Every mapping key the docs show exists in the mapping model.

Three places name keys: YAML examples (```yaml blocks, whole files or fragments of one),
inline code in prose (`on_orphan: "null"`), and the reference tables whose first column is
headed Key or Option. Each key is checked against the field names and aliases of
:mod:`docshift.spec.model`, at its level where the docs show the level.
"""

from __future__ import annotations

import ast
import re
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel

from docshift.spec.model import (
    ColumnSpec,
    FeedSpec,
    IndexSpec,
    Mapping,
    OptionsSpec,
    SourceSpec,
    TableSpec,
    TargetSpec,
)

ROOT = Path(__file__).parents[1]
# docs/bench.md documents the queries file, a model of its own; docs/datasets.md shows
# source documents and key-value keys, not mapping keys
NOT_ABOUT_THE_MAPPING = {"bench.md", "datasets.md"}
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.S | re.M)
SPAN = re.compile(r"`([^`\n]+)`")
PROSE_KEY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*):(?:\s|$)")
IDENT = re.compile(r"[a-z_][a-z0-9_]*")


# --- the model as a tree of levels ---------------------------------------------------------

@dataclass
class Level:
    """A place in a mapping file: the keys a model accepts (``model``), or names the user
    chooses (``names``: tables, columns), or items of a list, or any value (``leaf``)."""

    name: str
    keys: dict[str, Level] = field(default_factory=dict)
    kind: str = "model"  # model | names | items | leaf
    child: Level | None = None


LEAF = Level("value", kind="leaf")


def _level(annotation: Any, name: str, seen: dict[type, Level]) -> Level:
    origin = get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation not in seen:
            seen[annotation] = level = Level(annotation.__name__)
            for fname, f in annotation.model_fields.items():
                if f.exclude:
                    continue
                child = _level(f.annotation, fname, seen)
                for key in {fname, f.alias or fname}:
                    level.keys[key] = child
        return seen[annotation]
    if origin in (Union, types.UnionType):
        options = [_level(a, name, seen) for a in get_args(annotation) if a is not type(None)]
        return next((o for o in options if o.kind != "leaf"), LEAF)
    if origin is dict:
        return Level(f"{name} (names)", kind="names", child=_level(get_args(annotation)[1],
                                                                     name, seen))
    if origin is list:
        return Level(f"{name} (items)", kind="items", child=_level(get_args(annotation)[0],
                                                                     name, seen))
    return LEAF


MODELS: dict[type, Level] = {}
TOP = _level(Mapping, "mapping", MODELS)
MODEL_LEVELS = [MODELS[c] for c in (Mapping, SourceSpec, TargetSpec, OptionsSpec, TableSpec,
                                    FeedSpec, IndexSpec, ColumnSpec)]
NAME_LEVELS = [TOP.keys["tables"], MODELS[TableSpec].keys["columns"]]
EVERY_KEY = {k for level in MODEL_LEVELS for k in level.keys}


# --- checking YAML against it --------------------------------------------------------------

def _wrong_keys(node: yaml.Node, level: Level, first_line: int) -> list[tuple[int, str, str]]:
    """``(line, key, level)`` of every key under ``node`` that ``level`` does not accept.
    A scalar or a list where the model has a block is a shorthand: its keys are not
    checked (the loader's own tests check its values)."""
    if level.kind == "leaf":
        return []
    if level.kind == "items":
        items = node.value if isinstance(node, yaml.SequenceNode) else []
        return [w for item in items for w in _wrong_keys(item, level.child, first_line)]
    if not isinstance(node, yaml.MappingNode):
        return []
    wrong = []
    for key, value in node.value:
        if level.kind == "names":
            wrong += _wrong_keys(value, level.child, first_line)
        elif key.value not in level.keys:
            wrong.append((first_line + key.start_mark.line, str(key.value), level.name))
        else:
            wrong += _wrong_keys(value, level.keys[key.value], first_line)
    return wrong


def check_yaml(text: str, first_line: int) -> list[tuple[int, str, str]]:
    """The wrong keys of a YAML example, a whole mapping file or a fragment of one.

    A fragment is read at the first level where every key fits; failing that, at the level
    that takes most of its top-level keys. It may start with names (a table, a column) only
    when none of its top-level keys is a key of the model: so a table with a misspelled key
    is not taken for a list of columns."""
    node = yaml.compose(text)
    if not isinstance(node, yaml.MappingNode):
        return []
    top = {k.value for k, _ in node.value}
    levels = MODEL_LEVELS + ([] if top & EVERY_KEY else NAME_LEVELS)
    found = [_wrong_keys(node, level, first_line) for level in levels]
    if any(not w for w in found):
        return []

    def taken(level: Level) -> int:
        return len(top) if level.kind == "names" else len(top & set(level.keys))

    return min(zip(levels, found, strict=True), key=lambda lw: (-taken(lw[0]), len(lw[1])))[1]


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def yaml_examples(path: Path) -> list[tuple[str, int, str]]:
    """``(where, line, problem)`` for each key of the file's ```yaml blocks the model lacks."""
    text = path.read_text()
    out = []
    for block in FENCE.finditer(text):
        if block.group(1).strip() not in ("yaml", "yml"):
            continue
        first = _line(text, block.start(2))
        try:
            wrong = check_yaml(block.group(2), first)
        except yaml.YAMLError as exc:
            out.append((str(path.relative_to(ROOT)), first, f"not valid YAML: {exc}"))
            continue
        out += [(str(path.relative_to(ROOT)), line, f"{level} has no key {key!r}")
                for line, key, level in wrong]
    return out


def _names(node: yaml.Node, level: Level, into: set[str]) -> None:
    """Add to ``into`` the names (of tables, columns) a YAML example defines."""
    if level.kind == "items" and isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _names(item, level.child, into)
    elif level.kind in ("model", "names") and isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if level.kind == "names":
                into.add(str(key.value))
                _names(value, level.child, into)
            elif key.value in level.keys:
                _names(value, level.keys[key.value], into)


def example_names() -> set[str]:
    """The table and column names of the docs' whole-file YAML examples and of the shipped
    example mappings: in prose, `email:` is a column of those, not a key."""
    names: set[str] = set()
    texts = [b.group(2) for p in mapping_docs() for b in FENCE.finditer(p.read_text())
             if b.group(1).strip() in ("yaml", "yml")]
    texts += [p.read_text() for p in (ROOT / "src" / "docshift" / "examples").rglob("*.yaml")
              if p.name == "docshift.yaml"]
    for text in texts:
        try:
            node = yaml.compose(text)
        except yaml.YAMLError:
            continue  # reported by yaml_examples
        if node is not None and {k.value for k, _ in node.value} >= {"source", "tables"}:
            _names(node, TOP, names)
    return names


def prose_keys(path: Path, names: set[str] | None = None) -> list[tuple[str, int, str]]:
    """``(where, line, problem)`` of inline code outside code blocks that starts with a key:
    `unmapped: report`, `on_orphan:` (not `client:{env}` or `mongodb://`). A span that
    starts with the name of an example's table or column (`email: text`) is YAML of one,
    and a value-map key (`true:`) is no key of the model."""
    names = example_names() if names is None else names
    text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), path.read_text())
    out = []
    for span in SPAN.finditer(text):
        if not PROSE_KEY.match(span.group(1)):
            continue
        line = _line(text, span.start())
        try:
            node = yaml.compose(span.group(1))
        except yaml.YAMLError:
            out.append((str(path.relative_to(ROOT)), line,
                        f"`{span.group(1)}` is not valid YAML"))
            continue
        key = node.value[0][0]
        if key.tag != "tag:yaml.org,2002:str":
            continue  # true:, 1: — keys of a value map
        if key.value in EVERY_KEY or key.value in names:
            wrong = [f"{lv} has no key {k!r}" for _, k, lv in check_yaml(span.group(1), line)]
        else:
            wrong = [f"`{key.value}:` is not a key of the mapping file"]
        out += [(str(path.relative_to(ROOT)), line, w) for w in wrong]
    return out


def key_tables(path: Path) -> list[tuple[str, int, list[str]]]:
    """``(where, line, keys)`` of each Markdown table whose first column is headed Key or
    Option: the keys are its first cells' backticked names (`from` / `keys`, `unique: true`)."""
    lines = path.read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        head = [c.strip().lower() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or head[0] not in ("key", "option"):
            continue
        if i + 1 >= len(lines) or not re.fullmatch(r"\|[-:| ]+\|", lines[i + 1].strip()):
            continue
        keys = []
        for row in lines[i + 2:]:
            if not row.startswith("|"):
                break
            cell = row.strip().strip("|").split("|")[0]
            keys += [k for s in SPAN.findall(cell)
                     if IDENT.fullmatch(k := s.split(":")[0].strip())]
        if keys:
            out.append((str(path.relative_to(ROOT)), i + 1, keys))
    return out


def check_key_table(keys: list[str]) -> tuple[Level | None, list[str]]:
    """The model level a table of keys documents, and the table's keys that level lacks.

    The level is the one that shares most keys with the table (on a tie, the one whose keys
    the table covers best); a table most of whose keys no level has is about something else
    (a report's JSON, key-value keys): ``None``."""
    def fit(level: Level) -> tuple[int, float]:
        shared = len(set(keys) & set(level.keys))
        return shared, shared / len(level.keys)

    level = max(MODEL_LEVELS, key=fit)
    if fit(level)[0] * 2 <= len(set(keys)):
        return None, []
    return level, [k for k in keys if k not in level.keys]


def literal_values(key: str) -> set[str] | None:
    """The values a key of a fixed set of choices takes (``on_orphan``: reject, null, keep,
    drop), over every level that has it; ``None`` for a key of any value."""
    found: set[str] = set()
    for model in MODELS:
        f = model.model_fields.get(key) or next(
            (f for f in model.model_fields.values() if f.alias == key), None)
        if f is None:
            continue
        options = get_args(f.annotation) if get_origin(f.annotation) in (
            Union, types.UnionType) else (f.annotation,)
        for option in options:
            if get_origin(option) is Literal:
                found.update(str(v) for v in get_args(option))
    return found or None


# --- keys named in the package's messages and hints ----------------------------------------

# 'unique: true', `on_orphan: keep`: a mapping fragment in a message, backticked or quoted
CODE_SPAN = re.compile(r"`([^`\n]+)`|(?<![\w'])'([^'\n]+)'")
# `{type: ..., ...}`, `[...]`: the elided parts of a fragment, entries and values
ELIDED_ENTRY = re.compile(r",\s*\.\.\.(?=\s*[}\]])|(?<=[\[{])\s*\.\.\.(?=\s*[}\]])")
ELIDED_VALUE = re.compile(r"(?<=:\s)\.\.\.(?=\s*[,}\]]|$)")


def _unelided(fragment: str) -> str:
    """``fragment`` as YAML: elided entries left out, an elided value a placeholder."""
    return ELIDED_VALUE.sub("<value>", ELIDED_ENTRY.sub("", fragment))

# the queries file of `docshift bench` has keys of its own (docs/bench.md)
NOT_ABOUT_THE_MAPPING_CODE = ("bench",)
# a message that explains YAML itself ("write each setting as 'name: value'")
PLACEHOLDER_KEYS = {"name", "field"}


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of the docstrings (and attribute docstrings) of a module: they speak to the
    reader of the code, not to the user."""
    found = set()
    for node in ast.walk(tree):
        for stmt in getattr(node, "body", []) if isinstance(getattr(node, "body", None),
                                                            list) else []:
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                found.add(id(stmt.value))
    return found


def code_strings(package: Path) -> list[tuple[str, int, str]]:
    """``(file, line, text)`` of every string the package can show a user: its string
    constants (hints, messages, help), f-strings' literal parts included, docstrings not."""
    out = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        if rel.parts[0] in NOT_ABOUT_THE_MAPPING_CODE:
            continue
        tree = ast.parse(path.read_text())
        skip = _docstrings(tree)
        out += [(str(rel), node.lineno, node.value) for node in ast.walk(tree)
                if isinstance(node, ast.Constant) and isinstance(node.value, str)
                and id(node) not in skip]
    return out


def span_keys(text: str, names: set[str]) -> list[str]:
    """What is wrong with each mapping fragment ``text`` quotes: a key the model lacks (at
    the fragment's level), or a value outside a key's fixed choices."""
    wrong = []
    for span in CODE_SPAN.finditer(text):
        fragment = span.group(1) or span.group(2)
        if not PROSE_KEY.match(fragment):
            continue
        try:
            node = yaml.compose(_unelided(fragment))
        except yaml.YAMLError:
            wrong.append(f"'{fragment}' is not valid YAML")
            continue
        key, value = node.value[0]
        if key.tag != "tag:yaml.org,2002:str" or key.value in PLACEHOLDER_KEYS | names:
            continue  # a value map's true:, YAML's own name: value, an example's column
        if key.value not in EVERY_KEY:
            wrong.append(f"'{fragment}': `{key.value}:` is not a key of the mapping file")
            continue
        wrong += [f"'{fragment}': {lv} has no key {k!r}" for _, k, lv in check_yaml(
            _unelided(fragment), 1)]
        choices = literal_values(key.value)
        if not choices or not isinstance(value, yaml.ScalarNode) or not value.value:
            continue
        # 'kind: mongodb | json' offers alternatives; '<column>' stands for a value
        given = [v.strip() for v in value.value.split(" | ")]
        wrong += [f"'{fragment}': {key.value} takes {', '.join(sorted(choices))}, not {v!r}"
                  for v in given if not v.startswith("<") and v not in choices]
    return wrong


def code_problems(package: Path, names: set[str] | None = None) -> list[str]:
    """``file:line: problem`` for every wrong mapping fragment in the package's strings."""
    names = example_names() if names is None else names
    return [f"{where}:{line}: {w}" for where, line, text in code_strings(package)
            for w in span_keys(text, names)]


def mapping_docs() -> list[Path]:
    return [ROOT / "README.md",
            *(p for p in sorted((ROOT / "docs").glob("*.md"))
              if p.name not in NOT_ABOUT_THE_MAPPING)]


# --- the tests -----------------------------------------------------------------------------

def test_the_check_finds_a_key_that_does_not_exist(tmp_path: Path) -> None:
    doc = tmp_path / "docs.md"
    doc.write_text("""\
A whole file:

```yaml
source: {kind: json, path: ./x, colection: a}
tables:
  users:
    from: Users
    primary_keys: id
    columns:
      id: {type: uuid, from: _id, refrences: users}
      email: text
    indexes:
      - {columns: [email], uniq: true}
```

A fragment of a table, and one of columns:

```yaml
from: Users
ignored: [__v]
```

```yaml
email: {type: text, nulable: false}
```

Set `on_orphan: "null"` (a key), `email: text` (a column), `max_chars: 10` and `skip:`;
not `tags: {type: text[]}`.

| Key | Meaning |
|---|---|
| `naming` | |
| `strip_nul` | |
| `max_chars` | |
""")
    import tests.test_docs_mapping_keys as me

    old = me.ROOT
    me.ROOT = tmp_path
    try:
        problems = [f"{w}:{n}: {p}" for w, n, p in yaml_examples(doc)]
        prose = [f"{w}:{n}: {k}" for w, n, k in prose_keys(doc, {"email"})]
        [(_, _, keys)] = key_tables(doc)
    finally:
        me.ROOT = old
    assert problems == [
        "docs.md:4: SourceSpec has no key 'colection'",
        "docs.md:8: TableSpec has no key 'primary_keys'",
        "docs.md:10: ColumnSpec has no key 'refrences'",
        "docs.md:13: IndexSpec has no key 'uniq'",
        "docs.md:20: TableSpec has no key 'ignored'",
        "docs.md:24: ColumnSpec has no key 'nulable'",
    ]
    assert prose == ["docs.md:27: `max_chars:` is not a key of the mapping file",
                     "docs.md:27: `skip:` is not a key of the mapping file",
                     "docs.md:28: `tags: {type: text[]}` is not valid YAML"]
    level, wrong = check_key_table(keys)
    assert level is not None and (level.name, wrong) == ("OptionsSpec", ["max_chars"])


def test_every_mapping_key_in_the_docs_exists() -> None:
    """The README's and docs' YAML examples, prose and key tables name only keys the
    mapping model accepts (docs/bench.md: the queries file, not the mapping)."""
    problems = []
    for path in mapping_docs():
        problems += [f"{w}:{n}: {p}" for w, n, p in yaml_examples(path)]
        problems += [f"{w}:{n}: {p}" for w, n, p in prose_keys(path)]
        for where, line, keys in key_tables(path):
            level, wrong = check_key_table(keys)
            problems += [f"{where}:{line}: the table of {level.name} keys lists {k!r}, which "
                         f"{level.name} does not have" for k in wrong if level]
    assert not problems, "\n".join(problems)


def test_every_mapping_level_has_its_key_table() -> None:
    """docs/mapping.md has a table of keys for every level of the mapping file, and each
    lists every key of its level."""
    tables = key_tables(ROOT / "docs" / "mapping.md")
    documented: dict[str, set[str]] = {}
    for _, _, keys in tables:
        level, _ = check_key_table(keys)
        if level is not None:
            documented.setdefault(level.name, set()).update(keys)
    missing = {lv.name: sorted(k for k in lv.keys if k not in documented.get(lv.name, set())
                               and k.rstrip("_") not in documented.get(lv.name, set()))
               for lv in MODEL_LEVELS}
    assert not {n: ks for n, ks in missing.items() if ks}, missing


def test_the_check_finds_a_wrong_key_in_a_hint(tmp_path: Path) -> None:
    pkg = tmp_path / "docshift"
    (pkg / "run").mkdir(parents=True)
    (pkg / "bench").mkdir()
    (pkg / "run" / "a.py").write_text('''"""A module: `ignored:` in a docstring is not shown."""
hint = "add the field to `ignored: [...]`, or set \'on_orphan: keep\'"
HINT = ("set \'on_orphan: skip\' or \'unique: true\', or write "
        "\'indexes: [{columns: [...], uniq: ...}]\' or \'email: text\'")
def f(col):
    raise ValueError("a message", hint=f"{col}: set \'on_duplicates: reject\'")
''')
    (pkg / "bench" / "q.py").write_text("hint = \"\'params: {sql: ...}\' names them\"\n")
    assert code_problems(pkg, {"email"}) == [
        "run/a.py:2: \'ignored: [...]\': `ignored:` is not a key of the mapping file",
        "run/a.py:3: \'on_orphan: skip\': on_orphan takes drop, keep, null, reject, not \'skip\'",
        "run/a.py:3: \'indexes: [{columns: [...], uniq: ...}]\': IndexSpec has no key \'uniq\'",
        "run/a.py:6: \'on_duplicates: reject\': `on_duplicates:` is not a key of the mapping "
        "file",
    ]


def test_every_mapping_key_in_a_hint_or_message_exists() -> None:
    """The package's hints and messages ('unique: true', `on_orphan: keep`) name only keys
    the mapping model accepts, with one of their values (bench/: the queries file)."""
    package = ROOT / "src" / "docshift"
    fragments = [m for _, _, text in code_strings(package) for m in CODE_SPAN.finditer(text)
                 if PROSE_KEY.match(m.group(1) or m.group(2))]
    assert len(fragments) > 40  # the extraction finds the messages' fragments
    problems = code_problems(package)
    assert not problems, "\n".join(problems)
