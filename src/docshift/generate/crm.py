"""The CRM dataset: 23 MongoDB collections shaped like a Prisma-on-MongoDB CRM.

Everything is derived from the seed: ObjectIds come from (seed, collection, index) and a fixed
base time, never from the clock; each collection has its own ``random.Random``; text comes
from pools drawn once from a seeded Faker. References to other collections are computed from
their indexes (the ObjectId of account #k is a formula), and many-to-many links are a pure
predicate over (left index, right index), so a document is generated, written and forgotten:
memory stays bounded at any scale.

Expected rows are counted as documents are produced. A bad document (``bad_rate``) carries
exactly one defect, loses all of its rows, is never referenced by any other document and
links to nothing, so its quarantine is the only effect it has. See ``docs/datasets.md``.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from bson import ObjectId
from bson.datetime_ms import DatetimeMS

from docshift.generate.arguments import check_bad_rate, check_scale
from docshift.generate.draw import (
    EDGE_VARIANTS,
    INT64_MAX,
    MISSING,
    TEXT_VARIANTS,
    Draws,
    epoch_ms,
    iso_ms,
    megabyte_text,
    mix64,
    set_field,
    sound_index,
    strip_missing,
)
from docshift.generate.manifest import (
    DefectPlan,
    ExpectedReject,
    Manifest,
    Tally,
    int_hash,
)
from docshift.generate.writers import DatasetSink, dataset_sink

LARGE_SCALE = 50.0
"""``--scale large``: about 1k users, 10k accounts, 25k contacts, 5k leads, 15k
opportunities, 10k documents and 20k tasks."""

DATABASE = "crm"
MAPPING = "examples/crm/docshift.yaml"

BASE_COUNTS: dict[str, int] = {
    "Users": 20,
    "Employees": 10,
    "crm_campaigns": 10,
    "crm_Accounts": 200,
    "crm_Contacts": 500,
    "crm_Leads": 100,
    "crm_Opportunities": 300,
    "crm_Contracts": 60,
    "Documents": 200,
    "Boards": 4,
    "Tasks": 400,
    "tasksComments": 600,
    "crm_Accounts_Tasks": 160,
    "Invoices": 100,
    "TodoList": 40,
}
"""Documents per scaled collection at ``scale=1`` (Sections: five per board)."""
SECTIONS_PER_BOARD = 5

INDUSTRIES = ["Accounting", "Agriculture", "Automotive", "Banking", "Biotechnology",
              "Chemicals", "Communications", "Construction", "Consulting", "Education",
              "Electronics", "Energy", "Engineering", "Entertainment", "Finance",
              "Food & Beverage", "Government", "Healthcare", "Hospitality", "Insurance",
              "Manufacturing", "Media", "Retail", "Technology", "Transportation"]
SALES_STAGES = [("Introduction", 10), ("Qualification", 20), ("Needs Analysis", 30),
                ("Value Proposition", 40), ("Proposal", 60), ("Negotiation", 80),
                ("Closed Won", 100), ("Closed Lost", 0)]
OPPORTUNITY_TYPES = ["New Business", "Existing Business", "Renewal", "Upsell"]
DOCUMENT_TYPES = ["Invoice", "Receipt", "Contract", "Offer", "Presentation", "Other"]
INVOICE_STATES = ["New", "Sent", "Approved", "Paid", "Rejected"]
MODULES = ["crm", "projects", "documents", "invoice", "employees", "emails", "reports",
           "secondBrain", "openai", "databox"]

USER_STATUS = ["ACTIVE", "INACTIVE", "PENDING"]
LANGUAGES = ["en", "cz", "de", "uk"]
ACCOUNT_TYPES = ["Customer", "Partner", "Vendor", "Prospect"]
ACCOUNT_STATUS = ["Active", "Inactive"]
CONTACT_TYPES = ["Customer", "Partner", "Vendor", "Prospect"]
LEAD_STATUS = ["NEW", "CONTACTED", "QUALIFIED", "LOST"]
LEAD_TYPES = ["DEMO"]
OPPORTUNITY_STATUS = ["ACTIVE", "INACTIVE", "PENDING", "CLOSED"]
CURRENCIES = ["USD", "EUR", "CZK", "GBP"]
CONTRACT_STATUS = ["NOTSTARTED", "INPROGRESS", "SIGNED"]
CAMPAIGN_STATUS = ["ACTIVE", "PAUSED", "FINISHED"]
VISIBILITY = ["public", "private"]
TASK_PRIORITY = ["low", "normal", "high"]
TASK_STATUS = ["ACTIVE", "PENDING", "COMPLETE"]
PAYMENT_STATUS = ["UNPAID", "PAID", "OVERDUE"]
EMPLOYEE_STATUS = ["ACTIVE", "INACTIVE"]
MIME_TYPES = ["application/pdf", "image/png", "image/jpeg", "text/plain",
              "application/vnd.openxmlformats-officedocument.wordprocessingml.document"]
INSURANCE = ["basic", "extended", None]
LEAD_SOURCES = ["web", "referral", "event", "cold call", "ads"]
SECTION_TITLES = ["Backlog", "To do", "In progress", "Review", "Done"]
VAT_RATES = [0, 10, 15, 21]
ENUM_MAX = 4
"""The most values any enum of the dataset has (edge cases give each value a document)."""

TABLES = [
    "users", "employees", "industry_types", "sales_stages", "opportunity_types",
    "document_types", "invoice_states", "system_modules", "my_account", "campaigns",
    "accounts", "account_watchers", "document_accounts", "contacts", "leads", "opportunities",
    "opportunity_tags", "opportunity_contacts", "contracts", "documents", "boards", "sections",
    "tasks", "task_comments", "account_tasks", "invoices", "invoice_items", "todo_items",
]
"""Every table of ``examples/crm/docshift.yaml``."""

# Collection numbers inside generated ObjectIds; DANGLING never names a real document.
_CODES = {name: i + 1 for i, name in enumerate([
    "Users", "Employees", "crm_Industry_Type", "crm_Opportunities_Sales_Stages",
    "crm_Opportunities_Type", "Documents_Types", "invoice_States", "system_Modules_Enabled",
    "MyAccount", "crm_campaigns", "crm_Accounts", "crm_Contacts", "crm_Leads",
    "crm_Opportunities", "crm_Contracts", "Documents", "Boards", "Sections", "Tasks",
    "tasksComments", "crm_Accounts_Tasks", "Invoices", "TodoList"])}
_DANGLING = 0xFFFF
_BASE_SECONDS = int(datetime(2022, 1, 3, tzinfo=UTC).timestamp())
DATE_FROM = datetime(2021, 1, 1, tzinfo=UTC)
DATE_SPAN_MS = 3 * 365 * 86_400_000
# BSON dates are held as DatetimeMS (milliseconds since 1970): cheaper to make than a datetime
# (no timedelta arithmetic) and to encode than an aware one (no utcoffset() call), and they
# decode to the same value.
_FROM_MS = epoch_ms(DATE_FROM)
MIN_DATE = DatetimeMS(datetime(1900, 1, 1, tzinfo=UTC))
MAX_DATE = DatetimeMS(datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC))
ISO_DATE_SHARE = 0.05
"""Share of dates written as ISO-8601 strings instead of BSON dates."""
ONE_SIDED_SHARE = 0.10
"""Share of many-to-many pairs stored on one side only."""
SMALL_COLLECTION = 4096
"""Collections up to this size keep their ids in memory (bounded: ~100 bytes each)."""

# --------------------------------------------------------------------------- edge cases

EDGE_RESERVED = 1 + len(EDGE_VARIANTS) + ENUM_MAX
_ISOLATED = frozenset({"nulls", "missing", "empty_arrays"})


# --------------------------------------------------------------------------- text pools


class Pools:
    """Names, companies, sentences… drawn once from a Faker seeded with the dataset seed."""

    SIZE = 200

    def __init__(self, seed: int) -> None:
        from faker import Faker

        fake = Faker("en_US")
        fake.seed_instance(seed)
        n = self.SIZE
        self.first = [fake.first_name() for _ in range(n)]
        self.last = [fake.last_name() for _ in range(n)]
        self.company = [fake.company() for _ in range(n)]
        self.street = [fake.street_address() for _ in range(n)]
        self.city = [fake.city() for _ in range(n)]
        self.state = [fake.state_abbr() for _ in range(n)]
        self.postcode = [fake.postcode() for _ in range(n)]
        self.country = [fake.country() for _ in range(n)]
        self.job = [fake.job() for _ in range(n)]
        self.sentence = [fake.sentence(nb_words=8) for _ in range(n)]
        self.paragraph = [fake.paragraph(nb_sentences=3) for _ in range(n)]
        self.word = sorted({fake.word() for _ in range(n)})
        self.domain = [fake.domain_name() for _ in range(n)]
        self.phone = [fake.phone_number() for _ in range(n)]
        self.catch = [fake.catch_phrase() for _ in range(n)]
        self.color = [fake.color_name() for _ in range(n)]


# --------------------------------------------------------------------------- shared state


@dataclass
class Link:
    """A many-to-many link between two collections, stored on both sides.

    Left ``i`` and right ``j`` are linked when they fall in the same group (``i % groups ==
    j % groups``), both may link, and a hash of (seed, name, i, j) falls in the lowest share
    ``p`` of its range. A linked pair is stored on both sides, except a ``ONE_SIDED_SHARE``
    that only one side holds: the lowest hashes of the linked range, so one hash decides both.
    """

    name: str
    left: str
    right: str
    groups: int
    p: float
    key: int = 0
    """Mixed into every pair's hash; derived from (seed, name)."""
    cut: int = field(init=False)
    left_only: int = field(init=False)
    right_only: int = field(init=False)

    def __post_init__(self) -> None:
        # thresholds on the 64-bit pair hash
        self.cut = int(self.p * 2.0**64)
        self.left_only = int(self.p * ONE_SIDED_SHARE / 2 * 2.0**64)
        self.right_only = int(self.p * ONE_SIDED_SHARE * 2.0**64)


class Context(Draws):
    """Settings, random draws and derived helpers shared by every collection builder."""

    ENUM_MAX = ENUM_MAX

    def __init__(self, seed: int, scale: float, edge: bool, bad_rate: float,
                 counts: dict[str, int], pools: Pools) -> None:
        super().__init__(edge)
        self.seed = seed
        self.scale = scale
        self.bad_rate = bad_rate
        self.counts = counts
        self.pools = pools
        self.tally = Tally()
        self.links: dict[str, Link] = {}
        self.dangling_n = 0
        self._dangling_base = 0
        salt = int_hash(seed, "objectid-salt", bits=24)
        # an ObjectId as a 96-bit number: time (4 bytes), salt (3), collection (2), index (3)
        self._oid_base = {coll: _BASE_SECONDS << 64 | salt << 40 | code << 24
                          for coll, code in _CODES.items()}
        self._oid_base[""] = _BASE_SECONDS << 64 | salt << 40 | _DANGLING << 24
        self.plans = {coll: DefectPlan(seed, coll, bad_rate, DEFECT_KINDS.get(coll, []),
                                       EDGE_RESERVED if edge else 1) for coll in counts}
        # per collection: None when no document of it is bad (the usual case: no check)
        self._bad: dict[str, Callable[[int], bool] | None] = {
            coll: plan.is_bad if plan.rate else None for coll, plan in self.plans.items()}
        # what ref() needs per collection: size, badness, id base, and for a small collection
        # (users, lookups…: the most referenced) room to keep each id once it is made
        self._targets: dict[str, tuple[int, Callable[[int], bool] | None, int,
                                       list[ObjectId | None] | None]] = {
            coll: (n, self._bad[coll], self._oid_base[coll],
                   [None] * n if n <= SMALL_COLLECTION else None)
            for coll, n in counts.items()}

    # ids --------------------------------------------------------------------

    def oid(self, coll: str, k: int) -> ObjectId:
        """The ObjectId of document ``k`` of ``coll``: sorts like ``k``, unique per collection."""
        return ObjectId(((k << 64) + (k & 0xFFFFFF) + self._oid_base[coll]).to_bytes(12, "big"))

    def begin(self, coll: str) -> None:
        """Start on collection ``coll``: its random stream, its own dangling ids."""
        self.stream(f"{self.seed}:{coll}")
        self._dangling_base = _CODES[coll] << 24
        self.dangling_n = 0

    def dangling(self) -> ObjectId:
        """An ObjectId that no generated document has (distinct across collections)."""
        self.dangling_n += 1
        return self.oid("", self._dangling_base + self.dangling_n)

    # which documents are sound, and which are edge cases ------------------------

    def plan(self, coll: str) -> DefectPlan:
        return self.plans[coll]

    def good(self, coll: str, k: int) -> bool:
        bad = self._bad[coll]
        return bad is None or not bad(k)

    def linkable(self, coll: str, k: int) -> bool:
        if self.edge and self.variant(k) in _ISOLATED:
            return False
        bad = self._bad[coll]
        return bad is None or not bad(k)

    def ref(self, coll: str) -> ObjectId:
        """The id of a random sound document of ``coll``."""
        n, bad, base, ids = self._targets[coll]
        k = sound_index(self.rnd(), n, bad)
        if ids is None:
            return ObjectId(((k << 64) + (k & 0xFFFFFF) + base).to_bytes(12, "big"))
        oid = ids[k]
        if oid is None:
            oid = ids[k] = ObjectId(((k << 64) + (k & 0xFFFFFF) + base).to_bytes(12, "big"))
        return oid

    def refs(self, coll: str, most: int) -> list[ObjectId]:
        """Up to ``most`` distinct ids of sound documents of ``coll``."""
        n = self.counts[coll]
        want = min(self.below(most + 1), n)
        start = self.below(n)
        step = 7 if n % 7 else 1
        out = []
        for i in range(n):
            if len(out) == want:
                break
            k = (start + i * step) % n
            if self.good(coll, k):
                out.append(self.oid(coll, k))
        return list(dict.fromkeys(out))

    # links ----------------------------------------------------------------------

    def link_left(self, link: Link, i: int) -> tuple[int, list[ObjectId]]:
        """Left ``i``'s pairs: how many, and the ids of the right documents it stores."""
        if not self.linkable(link.left, i):
            return 0, []
        pairs, stored = 0, []
        key, right = link.key ^ (i << 32), link.right
        for j in range(i % link.groups, self.counts[right], link.groups):
            h = mix64(key ^ j)
            if h < link.cut and self.linkable(right, j):
                pairs += 1
                if not link.left_only <= h < link.right_only:
                    stored.append(self.oid(right, j))
        return pairs, stored

    def link_right(self, link: Link, j: int) -> tuple[int, list[ObjectId]]:
        """Right ``j``'s pairs: how many, and the ids of the left documents it stores."""
        if not self.linkable(link.right, j):
            return 0, []
        pairs, stored = 0, []
        left = link.left
        for i in range(j % link.groups, self.counts[left], link.groups):
            h = mix64(link.key ^ (i << 32) ^ j)
            if h < link.cut and self.linkable(left, i):
                pairs += 1
                if h >= link.left_only:
                    stored.append(self.oid(left, i))
        return pairs, stored

    # values ---------------------------------------------------------------------

    def date(self) -> DatetimeMS | str:
        """A BSON date (or, 5% of the time, an ISO string) in 2021-2023."""
        ms = _FROM_MS + int(self.rnd() * DATE_SPAN_MS)
        v = self.v
        if v is not None:
            if v == "min_date":
                return MIN_DATE
            if v == "max_date":
                return MAX_DATE
            if v == "iso_dates":
                return iso_ms(ms)
        if self.rnd() < ISO_DATE_SHARE:
            return iso_ms(ms)
        return DatetimeMS(ms)

    def prose(self, normal: str) -> Any:
        """Optional free text: ``normal`` (or null, or missing), the edge-case text of the
        variant, or 1 MiB of text for the ``long_text`` variant."""
        if self.v == "long_text":
            return megabyte_text()
        return self.opt(self.text(normal))


Rows = dict[str, int]
Builder = Callable[[Context, int, "str | None"], tuple[dict[str, Any], Rows]]
DefectFn = Callable[[Context, int, dict[str, Any]], tuple[str, str, str]]
"""Damages a document in place; returns (table, field, error_class) docshift reports."""


# --------------------------------------------------------------------------- links

def _links(c: Context) -> dict[str, Link]:
    n = c.counts
    return {
        "watchers": Link("account_watchers", "Users", "crm_Accounts",
                         max(1, n["Users"] // 2), 0.12,
                         key=int_hash(c.seed, "account_watchers")),
        "documents": Link("document_accounts", "Documents", "crm_Accounts",
                          max(1, n["Documents"] // 3), 0.5,
                          key=int_hash(c.seed, "document_accounts")),
    }


# --------------------------------------------------------------------------- lookups


def _lookup_docs(c: Context, coll: str) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    if coll == "crm_Industry_Type":
        docs = [{"name": name} for name in INDUSTRIES]
    elif coll == "crm_Opportunities_Sales_Stages":
        docs = [{"name": name, "probability": p, "order": i}
                for i, (name, p) in enumerate(SALES_STAGES)]
    elif coll == "crm_Opportunities_Type":
        docs = [{"name": name, "order": i} for i, name in enumerate(OPPORTUNITY_TYPES)]
    elif coll == "Documents_Types":
        docs = [{"name": name} for name in DOCUMENT_TYPES]
    elif coll == "invoice_States":
        docs = [{"name": name} for name in INVOICE_STATES]
    elif coll == "system_Modules_Enabled":
        docs = [{"name": name, "enabled": i % 4 != 3, "position": i}
                for i, name in enumerate(MODULES)]
    return [{"_id": c.oid(coll, k), "__v": 0, **d} for k, d in enumerate(docs)]


LOOKUP_TABLES = {
    "crm_Industry_Type": "industry_types",
    "crm_Opportunities_Sales_Stages": "sales_stages",
    "crm_Opportunities_Type": "opportunity_types",
    "Documents_Types": "document_types",
    "invoice_States": "invoice_states",
    "system_Modules_Enabled": "system_modules",
}


# --------------------------------------------------------------------------- builders
# Each builder takes the context, the document's index and its edge-case variant, and
# returns the document with the rows it adds to each table when it is sound. Fields are
# drawn in the order they are written, so the output depends on nothing but the seed.


def user_email(c: Context, j: int) -> str:
    """User ``j``'s e-mail address: a pure function, so a duplicate can copy it."""
    p = c.pools
    h = int_hash(c.seed, "Users:identity", j)
    first, last = p.first[h % len(p.first)], p.last[(h >> 16) % len(p.last)]
    domain = p.domain[(h >> 32) % len(p.domain)]
    if c.variant(j) == "special_chars":
        return f"{first}.o'{last}+crm.{j}@{domain}".lower()
    return f"{first}.{last}.{j}@{domain}".lower()


def _users(c: Context, k: int, v: str | None) -> tuple[dict, Rows]:
    p = c.pools
    pairs, watching = c.link_left(c.links["watchers"], k)
    first, last = c.pick(p.first), c.pick(p.last)
    doc = {
        "_id": c.oid("Users", k),
        "__v": 0,
        "account_name": c.opt(c.pick(p.company)),
        "avatar": c.opt(f"https://avatars.example.com/{k}.png"),
        "email": user_email(c, k),
        "is_account_admin": c.chance(0.1),
        "is_admin": c.chance(0.05) or k == 0,
        "created_on": c.date(),
        "lastLoginAt": c.opt(c.date()),
        "name": c.text(f"{first} {last}"),
        "password": f"$2b$10${int_hash(c.seed, 'pw', k, bits=128):032x}",
        "username": f"{first.lower()}{k}",
        "userStatus": c.enum(k, USER_STATUS),
        "userLanguage": c.enum(k, LANGUAGES),
        "watching_accountsIDs": c.array(watching),
    }
    return doc, {"users": 1, "account_watchers": pairs}


def _employees(c: Context, k: int, v: str | None) -> tuple[dict, Rows]:
    p = c.pools
    first, last = c.pick(p.first), c.pick(p.last)
    doc = {
        "_id": c.oid("Employees", k),
        "__v": 0,
        "avatar": c.opt(f"https://avatars.example.com/e{k}.png"),
        "email": f"{first}.{last}.e{k}@example.com".lower(),
        "name": c.text(f"{first} {last}"),
        "salary": c.count(c.num(30_000, 180_000, 500)),
        "phone": c.opt(c.pick(p.phone)),
        "position": c.opt(c.pick(p.job)),
        "onBoarding": c.date(),
        "IDNumber": c.opt(f"ID{c.below(1 << 32):010d}"),
        "taxid": c.opt(f"TX-{k:06d}"),
        "address": c.opt(f"{c.pick(p.street)}, {c.pick(p.city)}"),
        "insurance": c.opt(c.pick(INSURANCE)),
        "status": c.enum(k, EMPLOYEE_STATUS),
        "manager": c.opt(c.oid("Employees", c.below(k)) if k else None),
    }
    return doc, {"employees": 1}


def _campaigns(c: Context, k: int, v: str | None) -> tuple[dict, Rows]:
    start = c.date()
    doc = {
        "_id": c.oid("crm_campaigns", k),
        "__v": 0,
        "v": 0,
        "name": c.text(f"{c.pick(c.pools.catch)} {k}"),
        "description": c.opt(c.pick(c.pools.sentence)),
        "status": c.enum(k, CAMPAIGN_STATUS),
        "budget": c.count(c.num(1_000, 100_000, 100)),
        "startDate": start,
        "endDate": c.opt(c.date()),
    }
    return doc, {"campaigns": 1}


def _accounts(c: Context, k: int, v: str | None) -> tuple[dict, Rows]:
    p = c.pools
    _, watchers = c.link_right(c.links["watchers"], k)
    pairs, documents = c.link_right(c.links["documents"], k)
    company = c.pick(p.company)
    revenue = ("999999999999.99" if v == "big_numbers"
               else str(c.num(50_000, 50_000_000, 1000)))
    doc = {
        "_id": c.oid("crm_Accounts", k),
        "__v": 0,
        "createdAt": c.date(),
        "createdBy": c.ref("Users"),
        "updatedAt": c.opt(c.date()),
        "updatedBy": c.opt(c.ref("Users")),
        "annual_revenue": c.opt(revenue),
        "assigned_to": c.opt(c.ref("Users")),
        "billing_city": c.opt(c.pick(p.city)),
        "billing_country": c.opt(c.pick(p.country)),
        "billing_postal_code": c.opt(c.pick(p.postcode)),
        "billing_state": c.opt(c.pick(p.state)),
        "billing_street": c.opt(c.pick(p.street)),
        "shipping": c.opt({"street": c.pick(p.street), "city": c.pick(p.city),
                           "postal_code": c.pick(p.postcode), "country": c.pick(p.country)}),
        "company_id": c.opt(f"{c.below(1 << 27):08d}"),
        "description": c.prose(c.pick(p.paragraph)),
        "email": c.opt(f"info@{c.pick(p.domain)}"),
        "fax": c.opt(c.pick(p.phone)),
        "industry": c.opt(c.ref("crm_Industry_Type")),
        "member_of": c.opt(c.pick(p.company)),
        "name": c.text(company),
        "office_phone": c.opt(c.pick(p.phone)),
        "status": c.enum(k, ACCOUNT_STATUS),
        "type": c.enum(k, ACCOUNT_TYPES),
        "vat": c.opt(f"CZ{c.below(1 << 30):09d}"),
        "website": c.opt(f"https://www.{c.pick(p.domain)}"),
        "employees": c.opt(c.count(c.num(1, 5000))),
        "social": c.opt(_free_json(c, v)),
        "documentsIDs": c.array(documents),
        "watchers": c.array(watchers),
    }
    return doc, {"accounts": 1, "document_accounts": pairs}


def _free_json(c: Context, v: str | None) -> dict[str, Any]:
    """A free-form object (JSONB in the target)."""
    out: dict[str, Any] = {"linkedin": f"https://linkedin.com/company/{c.below(10**6)}",
                           "followers": c.below(10_000)}
    if c.chance(0.5):
        out["twitter"] = "@" + c.pick(c.pools.word)
    if c.chance(0.3):
        out["extra"] = {"verified": c.chance(0.5),
                        "scores": [c.below(100), c.below(100), c.below(100)]}
    if v in TEXT_VARIANTS:
        out["clé spéciale"] = c.text("")
        out["key.with.dots"] = True
    return out


def _contacts(c: Context, k: int, v: str | None) -> tuple[dict, Rows]:
    p = c.pools
    first, last = c.pick(p.first), c.pick(p.last)
    birthday = f"{c.num(1950, 2002)}-{c.num(1, 13):02d}-{c.num(1, 29):02d}"
    if v == "min_date":
        birthday = "1900-01-01"
    elif v == "max_date":
        birthday = "9999-12-31"
    tags = c.sample(p.word, c.below(5))
    if v in TEXT_VARIANTS:
        tags.append(c.text(""))
    doc = {
        "_id": c.oid("crm_Contacts", k),
        "__v": 0,
        "v": 0,
        "account": c.opt(c.ref("crm_Accounts")),
        "assigned_to": c.opt(c.ref("Users")),
        "createdBy": c.ref("Users"),
        "created_on": c.date(),
        "updatedAt": c.opt(c.date()),
        "first_name": c.opt(first) if v not in TEXT_VARIANTS else c.text(first),
        "last_name": c.text(last) if v != "special_chars" else "O'Brien-\"Smith\"",
        "email": c.opt(f"{first}.{last}.c{k}@{c.pick(p.domain)}".lower()),
        "personal_email": c.opt(f"{first}{k}@mail.example".lower()),
        "office_phone": c.opt(c.pick(p.phone)),
        "mobile_phone": c.opt(c.pick(p.phone)),
        "website": c.opt(f"https://{c.pick(p.domain)}"),
        "position": c.opt(c.pick(p.job)),
        "status": c.chance(0.85),
        "type": c.enum(k, CONTACT_TYPES),
        "birthday": c.opt(birthday) if v not in ("min_date", "max_date") else birthday,
        "tags": c.array(tags),
        "notes": c.array([c.pick(p.sentence) for _ in range(c.below(4))]),
        "social": c.opt(_free_json(c, v)),
        "description": c.prose(c.pick(p.paragraph)),
    }
    return doc, {"contacts": 1}


def _leads(c: Context, k: int, v: str | None) -> tuple[dict, Rows]:
    p = c.pools
    first, last = c.pick(p.first), c.pick(p.last)
    doc = {
        "_id": c.oid("crm_Leads", k),
        "__v": 0,
        "v": 0,
        "createdAt": c.date(),
        "createdBy": c.ref("Users"),
        "updatedAt": c.opt(c.date()),
        "updatedBy": c.opt(c.ref("Users")),
        "firstName": c.opt(first),
        "lastName": c.text(last),
        "company": c.opt(c.text(c.pick(p.company))),
        "jobTitle": c.opt(c.pick(p.job)),
        "email": c.opt(f"{first}.{last}.l{k}@{c.pick(p.domain)}".lower()),
        "phone": c.opt(c.pick(p.phone)),
        "description": c.prose(c.pick(p.paragraph)),
        "lead_source": c.opt(c.pick(LEAD_SOURCES)),
        "refered_by": c.opt(f"{c.pick(p.first)} {c.pick(p.last)}"),
        "campaign": c.opt(c.ref("crm_campaigns")),
        "status": c.enum(k, LEAD_STATUS),
        "type": c.enum(k, LEAD_TYPES),
        "assigned_to": c.opt(c.ref("Users")),
        "accountsIDs": c.opt(c.ref("crm_Accounts")),
    }
    return doc, {"leads": 1}


def _opportunities(c: Context, k: int, v: str | None) -> tuple[dict, Rows]:
    p = c.pools
    tags = c.sample(p.word, c.below(5))
    if v in TEXT_VARIANTS:
        tags.append(c.text(""))
    contacts = c.refs("crm_Contacts", 3)
    stored_tags = c.array(tags)
    stored_contacts = c.array(contacts)
    budget = INT64_MAX if v == "big_numbers" else c.num(1_000, 2_000_000, 100)
    doc = {
        "_id": c.oid("crm_Opportunities", k),
        "__v": 0,
        "account": c.opt(c.ref("crm_Accounts")),
        "assigned_to": c.opt(c.ref("Users")),
        "budget": budget,
        "campaign": c.opt(c.ref("crm_campaigns")),
        "close_date": c.opt(c.date()),
        "contact": c.opt(c.ref("crm_Contacts")),
        "createdBy": c.ref("Users"),
        "created_on": c.date(),
        "last_activity": c.opt(c.date()),
        "currency": c.enum(k, CURRENCIES),
        "description": c.prose(c.pick(p.paragraph)),
        "expected_revenue": c.opt(budget // 2),
        "name": c.text(f"{c.pick(p.catch)} deal"),
        "next_step": c.opt(c.pick(p.sentence)),
        "sales_stage": c.ref("crm_Opportunities_Sales_Stages"),
        "type": c.opt(c.ref("crm_Opportunities_Type")),
        "status": c.enum(k, OPPORTUNITY_STATUS),
        "connected_contacts": stored_contacts,
        "tags": stored_tags,
    }
    rows = {"opportunities": 1,
            "opportunity_tags": len(stored_tags) if isinstance(stored_tags, list) else 0,
            "opportunity_contacts": (len(stored_contacts)
                                     if isinstance(stored_contacts, list) else 0)}
    return doc, rows


def _contracts(c: Context, k: int, v: str | None) -> tuple[dict, Rows]:
    p = c.pools
    doc = {
        "_id": c.oid("crm_Contracts", k),
        "__v": 0,
        "v": 0,
        "title": c.text(f"{c.pick(p.catch)} agreement"),
        "value": c.opt(c.count(c.num(1_000, 500_000, 50))),
        "startDate": c.date(),
        "endDate": c.opt(c.date()),
        "renewalReminderDate": c.opt(c.date()),
        "customerSignedDate": c.opt(c.date()),
        "companySignedDate": c.opt(c.date()),
        "description": c.prose(c.pick(p.paragraph)),
        "account": c.ref("crm_Accounts"),
        "assigned_to": c.opt(c.ref("Users")),
        "createdAt": c.date(),
        "createdBy": c.ref("Users"),
        "updatedAt": c.opt(c.date()),
        "updatedBy": c.opt(c.ref("Users")),
        "status": c.enum(k, CONTRACT_STATUS),
    }
    return doc, {"contracts": 1}


def _documents(c: Context, k: int, v: str | None) -> tuple[dict, Rows]:
    p = c.pools
    _, accounts = c.link_left(c.links["documents"], k)
    tags = c.sample(p.word, c.below(4))
    oid = c.oid("Documents", k)
    doc = {
        "_id": oid,
        "__v": 0,
        "v": 0,
        "date_created": c.date(),
        "last_updated": c.opt(c.date()),
        "document_name": c.text(f"{c.pick(p.word)}-{k}.pdf"),
        "created_by_user": c.ref("Users"),
        "description": c.prose(c.pick(p.paragraph)),
        "document_type": c.opt(c.ref("Documents_Types")),
        "document_file_mimeType": c.pick(MIME_TYPES),
        "document_file_url": f"https://files.example.com/{oid}",
        "size": c.opt(c.count(c.num(1_000, 20_000_000))),
        "visibility": c.enum(k, VISIBILITY),
        "favourite": c.opt(c.chance(0.2)),
        "tags": c.array(tags),
        "assigned_user": c.opt(c.ref("Users")),
        "accountsIDs": c.array(accounts),
    }
    return doc, {"documents": 1}


def _boards(c: Context, k: int, v: str | None) -> tuple[dict, Rows]:
    doc = {
        "_id": c.oid("Boards", k),
        "__v": 0,
        "title": c.text(f"{c.pick(c.pools.catch)} board"),
        "description": c.opt(c.pick(c.pools.sentence)),
        "favourite": c.opt(c.chance(0.3)),
        "position": k,
        "user": c.ref("Users"),
        "visibility": c.enum(k, VISIBILITY),
        "sharedWith": c.array(c.refs("Users", 3)),
        "createdAt": c.date(),
        "updatedAt": c.opt(c.date()),
    }
    return doc, {"boards": 1}


def _sections(c: Context, k: int, v: str | None) -> tuple[dict, Rows]:
    doc = {
        "_id": c.oid("Sections", k),
        "__v": 0,
        "board": c.oid("Boards", k // SECTIONS_PER_BOARD),
        "title": SECTION_TITLES[k % SECTIONS_PER_BOARD],
        "position": k % SECTIONS_PER_BOARD,
    }
    return doc, {"sections": 1}


def _tasks(c: Context, k: int, v: str | None) -> tuple[dict, Rows]:
    p = c.pools
    tags: list[Any] = [{"name": c.pick(p.word), "color": c.pick(p.color)}
                       for _ in range(c.below(3))]
    if c.chance(0.2):
        tags = [c.pick(p.word)]  # older documents hold plain strings
    doc = {
        "_id": c.oid("Tasks", k),
        "__v": 0,
        "v": 0,
        "content": c.prose(c.pick(p.paragraph)),
        "createdAt": c.date(),
        "createdBy": c.opt(c.ref("Users")),
        "updatedAt": c.opt(c.date()),
        "dueDateAt": c.opt(c.date()),
        "lastEditedAt": c.opt(c.date()),
        "position": c.count(c.below(100)),
        "priority": c.enum(k, TASK_PRIORITY),
        "section": c.opt(c.ref("Sections")),
        "tags": c.array(tags),
        "title": c.text(c.pick(p.sentence)),
        "user": c.opt(c.ref("Users")),
        "taskStatus": c.enum(k, TASK_STATUS),
    }
    return doc, {"tasks": 1}


def _task_comments(c: Context, k: int, v: str | None) -> tuple[dict, Rows]:
    doc = {
        "_id": c.oid("tasksComments", k),
        "__v": 0,
        "v": 0,
        "comment": c.text(c.pick(c.pools.sentence)),
        "createdAt": c.date(),
        "task": c.ref("Tasks"),
        "user": c.ref("Users"),
    }
    return doc, {"task_comments": 1}


def _account_tasks(c: Context, k: int, v: str | None) -> tuple[dict, Rows]:
    p = c.pools
    doc = {
        "_id": c.oid("crm_Accounts_Tasks", k),
        "__v": 0,
        "v": 0,
        "account": c.ref("crm_Accounts"),
        "title": c.text(c.pick(p.sentence)),
        "content": c.opt(c.pick(p.paragraph)),
        "priority": c.enum(k, TASK_PRIORITY),
        "taskStatus": c.enum(k, TASK_STATUS),
        "dueDateAt": c.opt(c.date()),
        "createdAt": c.date(),
        "createdBy": c.ref("Users"),
        "user": c.opt(c.ref("Users")),
    }
    return doc, {"account_tasks": 1}


def invoice_number(c: Context, j: int) -> str:
    """Invoice ``j``'s number: a pure function, so a duplicate can copy it."""
    return f"INV-{2021 + j % 3}-{j + 1:06d}"


def _invoices(c: Context, k: int, v: str | None) -> tuple[dict, Rows]:
    p = c.pools
    items = [{
        "description": c.text(c.pick(p.catch)),
        "quantity": c.count(c.num(1, 20)),
        "unit_price": round(c.num(100, 500_000) / 100, 2),
        "vat_rate": c.pick(VAT_RATES),
        "sku": f"SKU-{c.below(10**6):06d}",
    } for _ in range(c.num(1, 7))]
    stored = c.array(items)
    amount = sum(i["quantity"] * i["unit_price"] for i in items)
    doc = {
        "_id": c.oid("Invoices", k),
        "__v": 0,
        "v": 0,
        "date_created": c.date(),
        "last_updated": c.opt(c.date()),
        "date_due": c.opt(c.date()),
        "description": c.prose(c.pick(p.sentence)),
        "favorite": c.opt(c.chance(0.1)),
        "invoice_number": invoice_number(c, k),
        "invoice_amount": f"{amount:.2f}" if v != "big_numbers" else "999999999999.99",
        "invoice_currency": c.enum(k, CURRENCIES),
        "invoice_state": c.ref("invoice_States"),
        "assigned_user_id": c.ref("Users"),
        "assigned_account_id": c.opt(c.ref("crm_Accounts")),
        "partner": c.opt(c.pick(p.company)),
        "partner_VAT": c.opt(f"DE{c.below(10**9):09d}"),
        "payment_status": c.enum(k, PAYMENT_STATUS),
        "variable_symbol": c.opt(f"{k + 1:010d}"),
        "invoice_items": stored,
    }
    return doc, {"invoices": 1,
                 "invoice_items": len(stored) if isinstance(stored, list) else 0}


def _todo(c: Context, k: int, v: str | None) -> tuple[dict, Rows]:
    doc = {
        "_id": c.oid("TodoList", k),
        "__v": 0,
        "createdAt": c.date(),
        "description": c.opt(c.pick(c.pools.sentence)),
        "title": c.text(c.pick(c.pools.catch)),
        "url": c.opt(f"https://{c.pick(c.pools.domain)}/todo/{k}"),
        "user": c.ref("Users"),
    }
    return doc, {"todo_items": 1}


def _my_account(c: Context) -> dict[str, Any]:
    p = c.pools
    return {
        "_id": c.oid("MyAccount", 0), "__v": 0, "v": 0,
        "company_name": p.company[0], "is_person": False,
        "email": f"office@{p.domain[0]}", "email_accountant": f"accounting@{p.domain[0]}",
        "phone_prefix": "+1", "phone": p.phone[0], "mobile_prefix": "+1", "mobile": p.phone[1],
        "fax_prefix": None, "fax": None, "website": f"https://www.{p.domain[0]}",
        "street": p.street[0], "city": p.city[0], "state": p.state[0], "zip": p.postcode[0],
        "country": p.country[0], "country_code": "US",
        "billing_street": p.street[1], "billing_city": p.city[1], "billing_state": p.state[1],
        "billing_zip": p.postcode[1], "billing_country": p.country[1],
        "billing_country_code": "US", "currency": "USD", "currency_symbol": "$",
        "VAT_number": "US123456789", "TAX_number": "98-7654321", "bank_name": "First Bank",
        "bank_account": "000123456789", "bank_code": "0100", "bank_IBAN": None,
        "bank_SWIFT": "FBNKUS33",
    }


# --------------------------------------------------------------------------- defects


def _conversion(table: str, path: str, value: Any, error_class: str) -> DefectFn:
    """A value the converter refuses (MISSING: the field is left out)."""
    change = set_field(path, value)

    def apply(c: Context, k: int, doc: dict[str, Any]) -> tuple[str, str, str]:
        change(doc)
        return table, path, error_class
    return apply


def _orphan(table: str, path: str, column: str, clear: tuple[str, ...] = ()) -> DefectFn:
    """A reference to a document that does not exist."""
    def apply(c: Context, k: int, doc: dict[str, Any]) -> tuple[str, str, str]:
        doc[path] = c.dangling()
        for name in clear:  # child rows would become orphans of the removed row
            doc[name] = []
        return table, column, "orphan"
    return apply


def _duplicate(coll: str, table: str, path: str, column: str,
               value_of: Callable[[Context, int], str],
               clear: tuple[str, ...] = ()) -> DefectFn:
    """The unique value of the closest earlier sound document, whose row is kept (its id
    sorts first)."""
    def apply(c: Context, k: int, doc: dict[str, Any]) -> tuple[str, str, str]:
        j = k - 1
        while not c.good(coll, j):
            j -= 1
        doc[path] = value_of(c, j)
        for name in clear:
            doc[name] = []
        return table, column, "duplicate_key"
    return apply


_LONG = "Z" * 1000
_NUL = "before\x00after"

DEFECTS: dict[str, dict[str, DefectFn]] = {
    "Users": {
        "duplicate_key": _duplicate("Users", "users", "email", "email", user_email),
        "missing_required": _conversion("users", "email", MISSING, "missing_required"),
        "not_in_enum": _conversion("users", "userStatus", "BANNED", "not_in_enum"),
        "bad_date": _conversion("users", "created_on", "31/12/2021", "bad_date"),
        "nul_byte": _conversion("users", "name", "Ann\x00Smith", "nul_byte"),
        "too_long": _conversion("users", "name", _LONG, "too_long"),
        "wrong_type": _conversion("users", "name", ["Ann", "Smith"], "wrong_type"),
    },
    "crm_Accounts": {
        "orphan": _orphan("accounts", "createdBy", "created_by"),
        "bad_date": _conversion("accounts", "createdAt", "2022-13-45", "bad_date"),
        "not_in_enum": _conversion("accounts", "type", "Competitor", "not_in_enum"),
        "too_long": _conversion("accounts", "name", _LONG, "too_long"),
        "wrong_type": _conversion("accounts", "employees", "fifty", "bad_number"),
        "missing_required": _conversion("accounts", "name", MISSING, "missing_required"),
        "nul_byte": _conversion("accounts", "description", _NUL, "nul_byte"),
    },
    "crm_Contacts": {
        "orphan": _orphan("contacts", "assigned_to", "assigned_to"),
        "missing_required": _conversion("contacts", "last_name", MISSING, "missing_required"),
        "too_long": _conversion("contacts", "last_name", _LONG, "too_long"),
        "not_in_enum": _conversion("contacts", "type", "Friend", "not_in_enum"),
        "bad_date": _conversion("contacts", "created_on", "yesterday", "bad_date"),
        "nul_byte": _conversion("contacts", "first_name", "Jo\x00hn", "nul_byte"),
        "wrong_type": _conversion("contacts", "tags", ["vip", {"label": "x"}], "wrong_type"),
    },
    "crm_Leads": {
        "orphan": _orphan("leads", "assigned_to", "assigned_to"),
        "bad_date": _conversion("leads", "createdAt", "Mon, 5 Jun 2023", "bad_date"),
        "not_in_enum": _conversion("leads", "status", "WON", "not_in_enum"),
        "missing_required": _conversion("leads", "lastName", None, "missing_required"),
        "nul_byte": _conversion("leads", "description", _NUL, "nul_byte"),
        "too_long": _conversion("leads", "company", _LONG, "too_long"),
        "wrong_type": _conversion("leads", "email", {"work": "a@example.com"}, "wrong_type"),
    },
    "crm_Opportunities": {
        "orphan": _orphan("opportunities", "assigned_to", "assigned_to",
                          clear=("tags", "connected_contacts")),
        "wrong_type": _conversion("opportunities", "budget", "a lot", "bad_number"),
        "bad_date": _conversion("opportunities", "close_date", "next quarter", "bad_date"),
        "not_in_enum": _conversion("opportunities", "status", "WON", "not_in_enum"),
        "too_long": _conversion("opportunities", "name", _LONG, "too_long"),
        "missing_required": _conversion("opportunities", "name", MISSING, "missing_required"),
        "nul_byte": _conversion("opportunities", "next_step", _NUL, "nul_byte"),
    },
    "crm_Contracts": {
        "orphan": _orphan("contracts", "account", "account_id"),
        "bad_date": _conversion("contracts", "startDate", "2023-02-30", "bad_date"),
        "not_in_enum": _conversion("contracts", "status", "EXPIRED", "not_in_enum"),
        "missing_required": _conversion("contracts", "title", MISSING, "missing_required"),
        "wrong_type": _conversion("contracts", "value", "TBD", "bad_number"),
    },
    "Documents": {
        "orphan": _orphan("documents", "created_by_user", "created_by"),
        "bad_date": _conversion("documents", "date_created", "01.02.2023", "bad_date"),
        "not_in_enum": _conversion("documents", "visibility", "secret", "not_in_enum"),
        "too_long": _conversion("documents", "document_name", _LONG, "too_long"),
        "missing_required": _conversion("documents", "document_name", MISSING,
                                        "missing_required"),
        "wrong_type": _conversion("documents", "size", "12 MB", "bad_number"),
        "nul_byte": _conversion("documents", "document_file_url", _NUL, "nul_byte"),
    },
    "Tasks": {
        "orphan": _orphan("tasks", "user", "user_id"),
        "bad_date": _conversion("tasks", "dueDateAt", "tomorrow", "bad_date"),
        "not_in_enum": _conversion("tasks", "priority", "urgent", "not_in_enum"),
        "too_long": _conversion("tasks", "title", _LONG, "too_long"),
        "missing_required": _conversion("tasks", "title", MISSING, "missing_required"),
        "wrong_type": _conversion("tasks", "position", "first", "bad_number"),
        "nul_byte": _conversion("tasks", "content", _NUL, "nul_byte"),
    },
    "Invoices": {
        "duplicate_key": _duplicate("Invoices", "invoices", "invoice_number",
                                    "invoice_number", invoice_number,
                                    clear=("invoice_items",)),
        "bad_date": _conversion("invoices", "date_due", "end of month", "bad_date"),
        "not_in_enum": _conversion("invoices", "invoice_currency", "BTC", "not_in_enum"),
        "missing_required": _conversion("invoices", "invoice_number", MISSING,
                                        "missing_required"),
        "nul_byte": _conversion("invoices", "description", _NUL, "nul_byte"),
        "wrong_type": _conversion("invoice_items", "invoice_items", "see attached PDF",
                                  "wrong_type"),
        "bad_number": lambda c, k, doc: _bad_quantity(doc),
    },
}
DEFECT_KINDS = {coll: list(d) for coll, d in DEFECTS.items()}
"""The defect kinds each main collection can carry, in turn."""


def _bad_quantity(doc: dict[str, Any]) -> tuple[str, str, str]:
    items = doc.get("invoice_items")
    if not isinstance(items, list) or not items:
        items = [{"description": "Service", "quantity": 1, "unit_price": 10.0, "vat_rate": 21,
                  "sku": "SKU-000000"}]
        doc["invoice_items"] = items
    items[-1]["quantity"] = "two"
    return "invoice_items", "$item.quantity", "bad_number"


# --------------------------------------------------------------------------- driver

BUILDERS: list[tuple[str, Builder]] = [
    ("Users", _users),
    ("Employees", _employees),
    ("crm_campaigns", _campaigns),
    ("crm_Accounts", _accounts),
    ("crm_Contacts", _contacts),
    ("crm_Leads", _leads),
    ("crm_Opportunities", _opportunities),
    ("crm_Contracts", _contracts),
    ("Documents", _documents),
    ("Boards", _boards),
    ("Sections", _sections),
    ("Tasks", _tasks),
    ("tasksComments", _task_comments),
    ("crm_Accounts_Tasks", _account_tasks),
    ("Invoices", _invoices),
    ("TodoList", _todo),
]
_BUILDER = dict(BUILDERS)

INDEXES: dict[str, list[dict[str, Any]]] = {
    # not unique: the source holds duplicates (bad_rate) that the migration must catch
    "Users": [{"key": {"email": 1}}],
    "crm_Accounts": [{"key": {"name": 1}}],
    "crm_Contacts": [{"key": {"account": 1}}],
    "crm_Opportunities": [{"key": {"account": 1}}, {"key": {"sales_stage": 1}}],
    "Tasks": [{"key": {"user": 1}}, {"key": {"section": 1}}],
    "Invoices": [{"key": {"invoice_number": 1}}],
}

def collection_counts(scale: float) -> dict[str, int]:
    """Documents per collection at ``scale``."""
    check_scale(scale)
    counts = {name: max(1, round(n * scale)) for name, n in BASE_COUNTS.items()}
    counts["Sections"] = counts["Boards"] * SECTIONS_PER_BOARD
    counts.update({"crm_Industry_Type": len(INDUSTRIES),
                   "crm_Opportunities_Sales_Stages": len(SALES_STAGES),
                   "crm_Opportunities_Type": len(OPPORTUNITY_TYPES),
                   "Documents_Types": len(DOCUMENT_TYPES),
                   "invoice_States": len(INVOICE_STATES),
                   "system_Modules_Enabled": len(MODULES),
                   "MyAccount": 1})
    return counts


CrmFormat = Literal["mongodump", "mongodump-gz", "mongoexport"]


def generate_crm(out: str, *, scale: float = 1.0, seed: int = 0, edge_cases: bool = False,
                 bad_rate: float = 0.0, fmt: CrmFormat = "mongodump",
                 manifest_path: str | None = None, workers: int | None = None) -> Manifest:
    """Write the CRM dataset to ``out`` (a folder, or a ``mongodb://`` URI) and its manifest.

    The manifest goes to ``manifest_path``, else ``<out>/manifest.json`` for a folder and
    ``./manifest-crm.json`` for a live MongoDB. Collections are written by up to ``workers``
    processes at once (default: one per CPU for a big dataset; a live MongoDB is written by
    this process). Same arguments, same bytes, whatever the number of workers.
    """
    check_bad_rate(bad_rate)
    counts = collection_counts(scale)
    if workers is None:
        workers = default_workers(sum(counts.values()))
    c = Context(seed=seed, scale=scale, edge=edge_cases, bad_rate=bad_rate, counts=counts,
                pools=Pools(seed))
    c.links = _links(c)
    sink = dataset_sink(out, fmt, DATABASE)
    try:
        _write_all(c, sink, workers)
    finally:
        sink.close()
    live = out.startswith(("mongodb://", "mongodb+srv://"))
    manifest = Manifest(
        dataset="crm", seed=seed, scale=scale,
        options={"edge_cases": edge_cases, "bad_rate": bad_rate,
                 "format": "mongodb" if live else fmt, "database": DATABASE},
        mapping=MAPPING,
        documents=dict(c.tally.documents),
        expected_rows=c.tally.expected_rows(TABLES),
        expected_quarantined=c.tally.rejects,
    )
    target = manifest_path or ("manifest-crm.json" if live else str(Path(out) / "manifest.json"))
    manifest.write(target)
    return manifest


PARALLEL_FROM = 20_000
"""Documents from which worker processes pay off (below, starting them costs more)."""


def default_workers(documents: int) -> int:
    """Processes to generate ``documents`` documents with: one per CPU this process may use
    (at most 8), or just this one for a small dataset."""
    if documents < PARALLEL_FROM:
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 8))


Part = tuple[int, dict[str, int], list[ExpectedReject]]
"""What one collection adds to the manifest: documents, rows per table, rejects."""

COST_US: dict[str, float] = {
    "crm_Accounts": 20, "Invoices": 16, "crm_Contacts": 15, "crm_Opportunities": 14,
    "Documents": 13, "crm_Contracts": 12, "crm_Leads": 11, "Tasks": 9, "Users": 25,
    "crm_Accounts_Tasks": 6, "tasksComments": 4,
}
"""Rough microseconds per document (5 when not listed): the biggest collections are handed
out first, so that the workers finish together."""


def _write_all(c: Context, sink: DatasetSink, workers: int) -> None:
    tally = c.tally
    for coll, table in LOOKUP_TABLES.items():
        with sink.collection(coll, []) as w:
            for doc in _lookup_docs(c, coll):
                w.write(doc)
                tally.documents[coll] += 1
                tally.rows[table] += 1
    names = [coll for coll, _ in BUILDERS]
    if workers > 1 and sink.parallel and can_fork():
        parts = _in_processes(c, sink, names, workers)
    else:
        parts = {coll: _write_collection(c, sink, coll) for coll in names}
    for coll in names:  # merged in a fixed order: the manifest does not depend on timing
        documents, rows, rejects = parts[coll]
        tally.documents[coll] += documents
        tally.rows.update(rows)
        tally.rejects.extend(rejects)
    with sink.collection("MyAccount", []) as w:
        w.write(_my_account(c))
        tally.documents["MyAccount"] += 1
        tally.rows["my_account"] += 1


def _write_collection(c: Context, sink: DatasetSink, coll: str) -> Part:
    """Generate collection ``coll`` into ``sink``; return what it adds to the manifest."""
    build = _BUILDER[coll]
    plan = c.plan(coll)
    defect = plan.defect if plan.rate else None
    defects = DEFECTS.get(coll, {})
    rows_total: dict[str, int] = {}
    rejects: list[ExpectedReject] = []
    c.begin(coll)
    start = c.start
    with sink.collection(coll, INDEXES.get(coll, [])) as w:
        write = w.write
        for k in range(c.counts[coll]):
            v = start(k)
            doc, rows = build(c, k, v)
            if c.missing or v is not None:
                doc = strip_missing(doc)
            kind = defect(k) if defect is not None else None
            if kind is None:
                for t, n in rows.items():
                    rows_total[t] = rows_total.get(t, 0) + n
            else:
                table, fld, error_class = defects[kind](c, k, doc)
                rejects.append(ExpectedReject(coll, str(doc["_id"]), table, fld, error_class,
                                              kind))
            write(doc)
    return c.counts[coll], rows_total, rejects


# --------------------------------------------------------------------------- processes

_FORKED: tuple[Context, DatasetSink] | None = None
"""The context and sink that forked workers inherit (set only while they run)."""


def can_fork() -> bool:
    """Whether this process may fork workers (not on platforms without fork, and not from
    a daemonic process, which may have no children)."""
    return ("fork" in multiprocessing.get_all_start_methods()
            and not multiprocessing.current_process().daemon)


def _forked_collection(coll: str) -> tuple[str, Part]:
    assert _FORKED is not None
    c, sink = _FORKED
    return coll, _write_collection(c, sink, coll)


def _in_processes(c: Context, sink: DatasetSink, names: list[str],
                  workers: int) -> dict[str, Part]:
    """Write the collections ``names`` from ``workers`` forked processes, one collection
    each at a time (every collection is its own file and its own random stream)."""
    global _FORKED
    order = sorted(names, key=lambda n: -c.counts[n] * COST_US.get(n, 5))
    _FORKED = (c, sink)
    try:
        # fork: the workers share the context and text pools without pickling them
        with multiprocessing.get_context("fork").Pool(min(workers, len(names))) as pool:
            return dict(pool.imap_unordered(_forked_collection, order))
    finally:
        _FORKED = None
