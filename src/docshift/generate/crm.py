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

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from bson import ObjectId

from docshift.generate.manifest import DefectPlan, Manifest, Tally, int_hash, unit_hash
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
MIN_DATE = datetime(1900, 1, 1, tzinfo=UTC)
MAX_DATE = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
ISO_DATE_SHARE = 0.05
"""Share of dates written as ISO-8601 strings instead of BSON dates."""
ONE_SIDED_SHARE = 0.10
"""Share of many-to-many pairs stored on one side only."""

# --------------------------------------------------------------------------- edge cases

EMOJI_TEXT = "Party 🎉 rocket 🚀 family 👨‍👩‍👧‍👦 flag 🇨🇿 ok 👍🏽"
RTL_TEXT = "שלום עולם — مرحبا بالعالم"
COMBINING_TEXT = "Cafe\u0301 n\u0303o Z\u0335\u0321a\u0334l\u0338g\u0336o A\u030a"
MIXED_TEXT = "Ünïcödé ✓ 漢字 かな 한국어 Ελληνικά Ωμέγα"
SPECIAL_TEXT = ("O'Reilly & \"Sons\" <b>bold</b> \\back\\slash\ttab\nnew line %s {0} "
                "$where; DROP TABLE users;-- \u200bzero\u2028sep")
MEGABYTE = 1 << 20
EDGE_VARIANTS = ("nulls", "missing", "empty_arrays", "unicode_emoji", "unicode_rtl",
                 "unicode_combining", "unicode_mixed", "special_chars", "min_date", "max_date",
                 "iso_dates", "big_numbers", "long_text")
"""Edge-case documents 1..13 of every collection, one variant each; the next ENUM_MAX
documents take every enum value in turn."""
EDGE_RESERVED = 1 + len(EDGE_VARIANTS) + ENUM_MAX
_ISOLATED = frozenset({"nulls", "missing", "empty_arrays"})
TEXT_VARIANTS = {"unicode_emoji": EMOJI_TEXT, "unicode_rtl": RTL_TEXT,
                  "unicode_combining": COMBINING_TEXT, "unicode_mixed": MIXED_TEXT,
                  "special_chars": SPECIAL_TEXT}
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


@functools.cache
def megabyte_text() -> str:
    """A 1 MiB string (ASCII, so also 1 MiB of UTF-8)."""
    unit = "docshift edge case: one megabyte of text. "
    return (unit * (MEGABYTE // len(unit) + 1))[:MEGABYTE]


class _Missing:
    """Marks a field to leave out of the document."""


MISSING: Any = _Missing()


def strip_missing(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` without the fields marked MISSING."""
    return {k: v for k, v in doc.items() if v is not MISSING}


def iso(d: datetime) -> str:
    """``d`` as JavaScript's ``toISOString`` writes it (milliseconds, ``Z``)."""
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


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
    j % groups``), both may link, and a hash of (seed, name, i, j) is below ``p``. A linked
    pair is stored on both sides, except a ``ONE_SIDED_SHARE`` that only one side holds.
    """

    name: str
    left: str
    right: str
    groups: int
    p: float


@dataclass
class Context:
    """Settings and derived helpers shared by every collection builder."""

    seed: int
    scale: float
    edge: bool
    bad_rate: float
    counts: dict[str, int]
    pools: Pools
    tally: Tally = field(default_factory=Tally)
    plans: dict[str, DefectPlan] = field(default_factory=dict)
    links: dict[str, Link] = field(default_factory=dict)
    salt: bytes = b""
    dangling_n: int = 0

    def __post_init__(self) -> None:
        self.salt = int_hash(self.seed, "objectid-salt", bits=24).to_bytes(3, "big")

    # ids --------------------------------------------------------------------

    def oid(self, coll: str, k: int) -> ObjectId:
        """The ObjectId of document ``k`` of ``coll``: sorts like ``k``, unique per collection."""
        return ObjectId((_BASE_SECONDS + k).to_bytes(4, "big") + self.salt
                        + _CODES[coll].to_bytes(2, "big") + (k & 0xFFFFFF).to_bytes(3, "big"))

    def dangling(self) -> ObjectId:
        """An ObjectId that no generated document has."""
        self.dangling_n += 1
        k = self.dangling_n
        return ObjectId((_BASE_SECONDS + k).to_bytes(4, "big") + self.salt
                        + _DANGLING.to_bytes(2, "big") + (k & 0xFFFFFF).to_bytes(3, "big"))

    # which documents are sound, and which are edge cases ------------------------

    def plan(self, coll: str) -> DefectPlan:
        plan = self.plans.get(coll)
        if plan is None:
            plan = DefectPlan(self.seed, coll, self.bad_rate, DEFECT_KINDS.get(coll, []),
                              EDGE_RESERVED if self.edge else 1)
            self.plans[coll] = plan
        return plan

    def good(self, coll: str, k: int) -> bool:
        return not self.plan(coll).is_bad(k)

    def variant(self, k: int) -> str | None:
        if self.edge and 1 <= k <= len(EDGE_VARIANTS):
            return EDGE_VARIANTS[k - 1]
        return None

    def linkable(self, coll: str, k: int) -> bool:
        return self.good(coll, k) and self.variant(k) not in _ISOLATED

    def ref(self, coll: str, rng: random.Random) -> ObjectId:
        """The id of a random sound document of ``coll``."""
        n = self.counts[coll]
        k = rng.randrange(n)
        while not self.good(coll, k):
            k = (k + 1) % n
        return self.oid(coll, k)

    def refs(self, coll: str, rng: random.Random, most: int) -> list[ObjectId]:
        """Up to ``most`` distinct ids of sound documents of ``coll``."""
        n = self.counts[coll]
        want = min(rng.randrange(most + 1), n)
        start = rng.randrange(n)
        out = []
        for i in range(n):
            if len(out) == want:
                break
            k = (start + i * 7) % n if n % 7 else (start + i) % n
            if self.good(coll, k):
                out.append(self.oid(coll, k))
        return list(dict.fromkeys(out))

    # links ----------------------------------------------------------------------

    def linked(self, link: Link, i: int, j: int) -> bool:
        return (self.linkable(link.left, i) and self.linkable(link.right, j)
                and unit_hash(self.seed, link.name, i, j) < link.p)

    def side(self, link: Link, i: int, j: int) -> str:
        """Which side stores pair (i, j): ``both``, ``left`` or ``right``."""
        h = unit_hash(self.seed, link.name, "side", i, j)
        if h < ONE_SIDED_SHARE / 2:
            return "left"
        if h < ONE_SIDED_SHARE:
            return "right"
        return "both"

    def partners_of_left(self, link: Link, i: int) -> list[int]:
        """Right indexes linked to left ``i``, ascending."""
        if not self.linkable(link.left, i):
            return []
        return [j for j in range(i % link.groups, self.counts[link.right], link.groups)
                if self.linked(link, i, j)]

    def partners_of_right(self, link: Link, j: int) -> list[int]:
        """Left indexes linked to right ``j``, ascending."""
        if not self.linkable(link.right, j):
            return []
        return [i for i in range(j % link.groups, self.counts[link.left], link.groups)
                if self.linked(link, i, j)]

    def stored_on_left(self, link: Link, i: int, partners: list[int]) -> list[ObjectId]:
        return [self.oid(link.right, j) for j in partners if self.side(link, i, j) != "right"]

    def stored_on_right(self, link: Link, j: int, partners: list[int]) -> list[ObjectId]:
        return [self.oid(link.left, i) for i in partners if self.side(link, i, j) != "left"]

    # values ---------------------------------------------------------------------

    def date(self, rng: random.Random, variant: str | None) -> datetime | str:
        """A BSON date (or, 5% of the time, an ISO string) in 2021-2023."""
        d = DATE_FROM + timedelta(milliseconds=rng.randrange(DATE_SPAN_MS))
        if variant == "min_date":
            return MIN_DATE
        if variant == "max_date":
            return MAX_DATE
        if variant == "iso_dates" or rng.random() < ISO_DATE_SHARE:
            return iso(d)
        return d

    def opt(self, rng: random.Random, value: Any, variant: str | None) -> Any:
        """``value``, or sometimes null, or sometimes a missing field."""
        r = rng.random()
        if variant == "nulls":
            return None
        if variant == "missing":
            return MISSING
        if r < 0.07:
            return None
        if r < 0.14:
            return MISSING
        return value

    def text(self, variant: str | None, normal: str) -> str:
        """``normal``, or the edge-case text of ``variant``."""
        return TEXT_VARIANTS.get(variant or "", normal)

    def prose(self, rng: random.Random, variant: str | None, normal: str) -> Any:
        """Optional free text: ``normal`` (or null, or missing), the edge-case text of
        ``variant``, or 1 MiB of text for the ``long_text`` variant."""
        if variant == "long_text":
            return megabyte_text()
        return self.opt(rng, self.text(variant, normal), variant)

    def enum(self, rng: random.Random, k: int, values: list[str]) -> str:
        """A value of ``values``; edge-case documents take every value in turn."""
        first = 1 + len(EDGE_VARIANTS)
        if self.edge and first <= k < first + ENUM_MAX:
            return values[(k - first) % len(values)]
        return rng.choice(values)

    def array(self, variant: str | None, items: list[Any]) -> Any:
        """An array field: null, missing or empty for the matching edge cases."""
        if variant == "nulls":
            return None
        if variant == "missing":
            return MISSING
        if variant == "empty_arrays":
            return []
        return items

    def count(self, n: int, variant: str | None) -> int:
        return INT32_MAX if variant == "big_numbers" else n


Rows = dict[str, int]
Builder = Callable[[Context, int, random.Random, "str | None"], tuple[dict[str, Any], Rows]]
DefectFn = Callable[[Context, int, dict[str, Any]], tuple[str, str, str]]
"""Damages a document in place; returns (table, field, error_class) docshift reports."""


# --------------------------------------------------------------------------- links

def _links(c: Context) -> dict[str, Link]:
    n = c.counts
    return {
        "watchers": Link("account_watchers", "Users", "crm_Accounts",
                         max(1, n["Users"] // 2), 0.12),
        "documents": Link("document_accounts", "Documents", "crm_Accounts",
                          max(1, n["Documents"] // 3), 0.5),
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


def user_email(c: Context, j: int) -> str:
    """User ``j``'s e-mail address: a pure function, so a duplicate can copy it."""
    r = random.Random(f"{c.seed}:Users:identity:{j}")
    first, last, domain = r.choice(c.pools.first), r.choice(c.pools.last), r.choice(
        c.pools.domain)
    if c.variant(j) == "special_chars":
        return f"{first}.o'{last}+crm.{j}@{domain}".lower()
    return f"{first}.{last}.{j}@{domain}".lower()


def _users(c: Context, k: int, rng: random.Random, v: str | None) -> tuple[dict, Rows]:
    p = c.pools
    link = c.links["watchers"]
    partners = c.partners_of_left(link, k)
    first, last = rng.choice(p.first), rng.choice(p.last)
    doc = {
        "_id": c.oid("Users", k),
        "__v": 0,
        "account_name": c.opt(rng, rng.choice(p.company), v),
        "avatar": c.opt(rng, f"https://avatars.example.com/{k}.png", v),
        "email": user_email(c, k),
        "is_account_admin": rng.random() < 0.1,
        "is_admin": k == 0 or rng.random() < 0.05,
        "created_on": c.date(rng, v),
        "lastLoginAt": c.opt(rng, c.date(rng, v), v),
        "name": c.text(v, f"{first} {last}"),
        "password": f"$2b$10${int_hash(c.seed, 'pw', k, bits=128):032x}",
        "username": f"{first.lower()}{k}",
        "userStatus": c.enum(rng, k, USER_STATUS),
        "userLanguage": c.enum(rng, k, LANGUAGES),
        "watching_accountsIDs": c.array(v, c.stored_on_left(link, k, partners)),
    }
    return doc, {"users": 1, "account_watchers": len(partners)}


def _employees(c: Context, k: int, rng: random.Random, v: str | None) -> tuple[dict, Rows]:
    p = c.pools
    first, last = rng.choice(p.first), rng.choice(p.last)
    doc = {
        "_id": c.oid("Employees", k),
        "__v": 0,
        "avatar": c.opt(rng, f"https://avatars.example.com/e{k}.png", v),
        "email": f"{first}.{last}.e{k}@example.com".lower(),
        "name": c.text(v, f"{first} {last}"),
        "salary": c.count(rng.randrange(30_000, 180_000, 500), v),
        "phone": c.opt(rng, rng.choice(p.phone), v),
        "position": c.opt(rng, rng.choice(p.job), v),
        "onBoarding": c.date(rng, v),
        "IDNumber": c.opt(rng, f"ID{int_hash(c.seed, 'emp', k, bits=32):010d}", v),
        "taxid": c.opt(rng, f"TX-{k:06d}", v),
        "address": c.opt(rng, f"{rng.choice(p.street)}, {rng.choice(p.city)}", v),
        "insurance": c.opt(rng, rng.choice(["basic", "extended", None]), v),
        "status": c.enum(rng, k, EMPLOYEE_STATUS),
        "manager": c.opt(rng, c.oid("Employees", rng.randrange(k)) if k else None, v),
    }
    return doc, {"employees": 1}


def _campaigns(c: Context, k: int, rng: random.Random, v: str | None) -> tuple[dict, Rows]:
    start = c.date(rng, v)
    doc = {
        "_id": c.oid("crm_campaigns", k),
        "__v": 0,
        "v": 0,
        "name": c.text(v, f"{rng.choice(c.pools.catch)} {k}"),
        "description": c.opt(rng, rng.choice(c.pools.sentence), v),
        "status": c.enum(rng, k, CAMPAIGN_STATUS),
        "budget": c.count(rng.randrange(1_000, 100_000, 100), v),
        "startDate": start,
        "endDate": c.opt(rng, c.date(rng, v), v),
    }
    return doc, {"campaigns": 1}


def _accounts(c: Context, k: int, rng: random.Random, v: str | None) -> tuple[dict, Rows]:
    p = c.pools
    watchers = c.partners_of_right(c.links["watchers"], k)
    documents = c.partners_of_right(c.links["documents"], k)
    company = rng.choice(p.company)
    revenue = ("999999999999.99" if v == "big_numbers"
               else str(rng.randrange(50_000, 50_000_000, 1000)))
    doc = {
        "_id": c.oid("crm_Accounts", k),
        "__v": 0,
        "createdAt": c.date(rng, v),
        "createdBy": c.ref("Users", rng),
        "updatedAt": c.opt(rng, c.date(rng, v), v),
        "updatedBy": c.opt(rng, c.ref("Users", rng), v),
        "annual_revenue": c.opt(rng, revenue, v),
        "assigned_to": c.opt(rng, c.ref("Users", rng), v),
        "billing_city": c.opt(rng, rng.choice(p.city), v),
        "billing_country": c.opt(rng, rng.choice(p.country), v),
        "billing_postal_code": c.opt(rng, rng.choice(p.postcode), v),
        "billing_state": c.opt(rng, rng.choice(p.state), v),
        "billing_street": c.opt(rng, rng.choice(p.street), v),
        "shipping": c.opt(rng, {"street": rng.choice(p.street), "city": rng.choice(p.city),
                                "postal_code": rng.choice(p.postcode),
                                "country": rng.choice(p.country)}, v),
        "company_id": c.opt(rng, f"{int_hash(c.seed, 'ico', k, bits=27):08d}", v),
        "description": c.prose(rng, v, rng.choice(p.paragraph)),
        "email": c.opt(rng, f"info@{rng.choice(p.domain)}", v),
        "fax": c.opt(rng, rng.choice(p.phone), v),
        "industry": c.opt(rng, c.ref("crm_Industry_Type", rng), v),
        "member_of": c.opt(rng, rng.choice(p.company), v),
        "name": c.text(v, company),
        "office_phone": c.opt(rng, rng.choice(p.phone), v),
        "status": c.enum(rng, k, ACCOUNT_STATUS),
        "type": c.enum(rng, k, ACCOUNT_TYPES),
        "vat": c.opt(rng, f"CZ{int_hash(c.seed, 'vat', k, bits=30):09d}", v),
        "website": c.opt(rng, f"https://www.{rng.choice(p.domain)}", v),
        "employees": c.opt(rng, c.count(rng.randrange(1, 5000), v), v),
        "social": c.opt(rng, _free_json(c, rng, v), v),
        "documentsIDs": c.array(v, c.stored_on_right(c.links["documents"], k, documents)),
        "watchers": c.array(v, c.stored_on_right(c.links["watchers"], k, watchers)),
    }
    return doc, {"accounts": 1, "document_accounts": len(documents)}


def _free_json(c: Context, rng: random.Random, v: str | None) -> dict[str, Any]:
    """A free-form object (JSONB in the target)."""
    out: dict[str, Any] = {"linkedin": f"https://linkedin.com/company/{rng.randrange(10**6)}",
                           "followers": rng.randrange(10_000)}
    if rng.random() < 0.5:
        out["twitter"] = "@" + rng.choice(c.pools.word)
    if rng.random() < 0.3:
        out["extra"] = {"verified": rng.random() < 0.5, "scores": [rng.randrange(100)
                                                                   for _ in range(3)]}
    if v in TEXT_VARIANTS:
        out["clé spéciale"] = c.text(v, "")
        out["key.with.dots"] = True
    return out


def _contacts(c: Context, k: int, rng: random.Random, v: str | None) -> tuple[dict, Rows]:
    p = c.pools
    first, last = rng.choice(p.first), rng.choice(p.last)
    birthday = f"{rng.randrange(1950, 2002)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
    if v == "min_date":
        birthday = "1900-01-01"
    elif v == "max_date":
        birthday = "9999-12-31"
    doc = {
        "_id": c.oid("crm_Contacts", k),
        "__v": 0,
        "v": 0,
        "account": c.opt(rng, c.ref("crm_Accounts", rng), v),
        "assigned_to": c.opt(rng, c.ref("Users", rng), v),
        "createdBy": c.ref("Users", rng),
        "created_on": c.date(rng, v),
        "updatedAt": c.opt(rng, c.date(rng, v), v),
        "first_name": c.opt(rng, c.text(v, first), v) if v not in TEXT_VARIANTS
        else c.text(v, first),
        "last_name": c.text(v, last) if v != "special_chars" else "O'Brien-\"Smith\"",
        "email": c.opt(rng, f"{first}.{last}.c{k}@{rng.choice(p.domain)}".lower(), v),
        "personal_email": c.opt(rng, f"{first}{k}@mail.example".lower(), v),
        "office_phone": c.opt(rng, rng.choice(p.phone), v),
        "mobile_phone": c.opt(rng, rng.choice(p.phone), v),
        "website": c.opt(rng, f"https://{rng.choice(p.domain)}", v),
        "position": c.opt(rng, rng.choice(p.job), v),
        "status": rng.random() < 0.85,
        "type": c.enum(rng, k, CONTACT_TYPES),
        "birthday": c.opt(rng, birthday, v) if v not in ("min_date", "max_date") else birthday,
        "tags": c.array(v, rng.sample(p.word, rng.randrange(5))
                        + ([c.text(v, "")] if v in TEXT_VARIANTS else [])),
        "notes": c.array(v, [rng.choice(p.sentence) for _ in range(rng.randrange(4))]),
        "social": c.opt(rng, _free_json(c, rng, v), v),
        "description": c.prose(rng, v, rng.choice(p.paragraph)),
    }
    return doc, {"contacts": 1}


def _leads(c: Context, k: int, rng: random.Random, v: str | None) -> tuple[dict, Rows]:
    p = c.pools
    first, last = rng.choice(p.first), rng.choice(p.last)
    doc = {
        "_id": c.oid("crm_Leads", k),
        "__v": 0,
        "v": 0,
        "createdAt": c.date(rng, v),
        "createdBy": c.ref("Users", rng),
        "updatedAt": c.opt(rng, c.date(rng, v), v),
        "updatedBy": c.opt(rng, c.ref("Users", rng), v),
        "firstName": c.opt(rng, first, v),
        "lastName": c.text(v, last),
        "company": c.opt(rng, c.text(v, rng.choice(p.company)), v),
        "jobTitle": c.opt(rng, rng.choice(p.job), v),
        "email": c.opt(rng, f"{first}.{last}.l{k}@{rng.choice(p.domain)}".lower(), v),
        "phone": c.opt(rng, rng.choice(p.phone), v),
        "description": c.prose(rng, v, rng.choice(p.paragraph)),
        "lead_source": c.opt(rng, rng.choice(["web", "referral", "event", "cold call", "ads"]),
                             v),
        "refered_by": c.opt(rng, f"{rng.choice(p.first)} {rng.choice(p.last)}", v),
        "campaign": c.opt(rng, c.ref("crm_campaigns", rng), v),
        "status": c.enum(rng, k, LEAD_STATUS),
        "type": c.enum(rng, k, LEAD_TYPES),
        "assigned_to": c.opt(rng, c.ref("Users", rng), v),
        "accountsIDs": c.opt(rng, c.ref("crm_Accounts", rng), v),
    }
    return doc, {"leads": 1}


def _opportunities(c: Context, k: int, rng: random.Random,
                   v: str | None) -> tuple[dict, Rows]:
    p = c.pools
    tags = rng.sample(p.word, rng.randrange(5))
    if v in TEXT_VARIANTS:
        tags.append(c.text(v, ""))
    contacts = c.refs("crm_Contacts", rng, 3)
    stored_tags = c.array(v, tags)
    stored_contacts = c.array(v, contacts)
    budget = INT64_MAX if v == "big_numbers" else rng.randrange(1_000, 2_000_000, 100)
    doc = {
        "_id": c.oid("crm_Opportunities", k),
        "__v": 0,
        "account": c.opt(rng, c.ref("crm_Accounts", rng), v),
        "assigned_to": c.opt(rng, c.ref("Users", rng), v),
        "budget": budget,
        "campaign": c.opt(rng, c.ref("crm_campaigns", rng), v),
        "close_date": c.opt(rng, c.date(rng, v), v),
        "contact": c.opt(rng, c.ref("crm_Contacts", rng), v),
        "createdBy": c.ref("Users", rng),
        "created_on": c.date(rng, v),
        "last_activity": c.opt(rng, c.date(rng, v), v),
        "currency": c.enum(rng, k, CURRENCIES),
        "description": c.prose(rng, v, rng.choice(p.paragraph)),
        "expected_revenue": c.opt(rng, budget // 2, v),
        "name": c.text(v, f"{rng.choice(p.catch)} deal"),
        "next_step": c.opt(rng, rng.choice(p.sentence), v),
        "sales_stage": c.ref("crm_Opportunities_Sales_Stages", rng),
        "type": c.opt(rng, c.ref("crm_Opportunities_Type", rng), v),
        "status": c.enum(rng, k, OPPORTUNITY_STATUS),
        "connected_contacts": stored_contacts,
        "tags": stored_tags,
    }
    rows = {"opportunities": 1,
            "opportunity_tags": len(stored_tags) if isinstance(stored_tags, list) else 0,
            "opportunity_contacts": (len(stored_contacts)
                                     if isinstance(stored_contacts, list) else 0)}
    return doc, rows


def _contracts(c: Context, k: int, rng: random.Random, v: str | None) -> tuple[dict, Rows]:
    p = c.pools
    doc = {
        "_id": c.oid("crm_Contracts", k),
        "__v": 0,
        "v": 0,
        "title": c.text(v, f"{rng.choice(p.catch)} agreement"),
        "value": c.opt(rng, c.count(rng.randrange(1_000, 500_000, 50), v), v),
        "startDate": c.date(rng, v),
        "endDate": c.opt(rng, c.date(rng, v), v),
        "renewalReminderDate": c.opt(rng, c.date(rng, v), v),
        "customerSignedDate": c.opt(rng, c.date(rng, v), v),
        "companySignedDate": c.opt(rng, c.date(rng, v), v),
        "description": c.prose(rng, v, rng.choice(p.paragraph)),
        "account": c.ref("crm_Accounts", rng),
        "assigned_to": c.opt(rng, c.ref("Users", rng), v),
        "createdAt": c.date(rng, v),
        "createdBy": c.ref("Users", rng),
        "updatedAt": c.opt(rng, c.date(rng, v), v),
        "updatedBy": c.opt(rng, c.ref("Users", rng), v),
        "status": c.enum(rng, k, CONTRACT_STATUS),
    }
    return doc, {"contracts": 1}


def _documents(c: Context, k: int, rng: random.Random, v: str | None) -> tuple[dict, Rows]:
    p = c.pools
    link = c.links["documents"]
    partners = c.partners_of_left(link, k)
    tags = rng.sample(p.word, rng.randrange(4))
    doc = {
        "_id": c.oid("Documents", k),
        "__v": 0,
        "v": 0,
        "date_created": c.date(rng, v),
        "last_updated": c.opt(rng, c.date(rng, v), v),
        "document_name": c.text(v, f"{rng.choice(p.word)}-{k}.pdf"),
        "created_by_user": c.ref("Users", rng),
        "description": c.prose(rng, v, rng.choice(p.paragraph)),
        "document_type": c.opt(rng, c.ref("Documents_Types", rng), v),
        "document_file_mimeType": rng.choice(MIME_TYPES),
        "document_file_url": f"https://files.example.com/{c.oid('Documents', k)}",
        "size": c.opt(rng, c.count(rng.randrange(1_000, 20_000_000), v), v),
        "visibility": c.enum(rng, k, VISIBILITY),
        "favourite": c.opt(rng, rng.random() < 0.2, v),
        "tags": c.array(v, tags),
        "assigned_user": c.opt(rng, c.ref("Users", rng), v),
        "accountsIDs": c.array(v, c.stored_on_left(link, k, partners)),
    }
    return doc, {"documents": 1}


def _boards(c: Context, k: int, rng: random.Random, v: str | None) -> tuple[dict, Rows]:
    doc = {
        "_id": c.oid("Boards", k),
        "__v": 0,
        "title": c.text(v, f"{rng.choice(c.pools.catch)} board"),
        "description": c.opt(rng, rng.choice(c.pools.sentence), v),
        "favourite": c.opt(rng, rng.random() < 0.3, v),
        "position": k,
        "user": c.ref("Users", rng),
        "visibility": c.enum(rng, k, VISIBILITY),
        "sharedWith": c.array(v, c.refs("Users", rng, 3)),
        "createdAt": c.date(rng, v),
        "updatedAt": c.opt(rng, c.date(rng, v), v),
    }
    return doc, {"boards": 1}


def _sections(c: Context, k: int, rng: random.Random, v: str | None) -> tuple[dict, Rows]:
    doc = {
        "_id": c.oid("Sections", k),
        "__v": 0,
        "board": c.oid("Boards", k // SECTIONS_PER_BOARD),
        "title": ["Backlog", "To do", "In progress", "Review", "Done"][k % SECTIONS_PER_BOARD],
        "position": k % SECTIONS_PER_BOARD,
    }
    return doc, {"sections": 1}


def _tasks(c: Context, k: int, rng: random.Random, v: str | None) -> tuple[dict, Rows]:
    p = c.pools
    tags: list[Any] = [{"name": rng.choice(p.word), "color": rng.choice(p.color)}
                       for _ in range(rng.randrange(3))]
    if rng.random() < 0.2:
        tags = [rng.choice(p.word)]  # older documents hold plain strings
    doc = {
        "_id": c.oid("Tasks", k),
        "__v": 0,
        "v": 0,
        "content": c.prose(rng, v, rng.choice(p.paragraph)),
        "createdAt": c.date(rng, v),
        "createdBy": c.opt(rng, c.ref("Users", rng), v),
        "updatedAt": c.opt(rng, c.date(rng, v), v),
        "dueDateAt": c.opt(rng, c.date(rng, v), v),
        "lastEditedAt": c.opt(rng, c.date(rng, v), v),
        "position": c.count(rng.randrange(100), v),
        "priority": c.enum(rng, k, TASK_PRIORITY),
        "section": c.opt(rng, c.ref("Sections", rng), v),
        "tags": c.array(v, tags),
        "title": c.text(v, rng.choice(p.sentence)),
        "user": c.opt(rng, c.ref("Users", rng), v),
        "taskStatus": c.enum(rng, k, TASK_STATUS),
    }
    return doc, {"tasks": 1}


def _task_comments(c: Context, k: int, rng: random.Random,
                   v: str | None) -> tuple[dict, Rows]:
    doc = {
        "_id": c.oid("tasksComments", k),
        "__v": 0,
        "v": 0,
        "comment": c.text(v, rng.choice(c.pools.sentence)),
        "createdAt": c.date(rng, v),
        "task": c.ref("Tasks", rng),
        "user": c.ref("Users", rng),
    }
    return doc, {"task_comments": 1}


def _account_tasks(c: Context, k: int, rng: random.Random,
                   v: str | None) -> tuple[dict, Rows]:
    p = c.pools
    doc = {
        "_id": c.oid("crm_Accounts_Tasks", k),
        "__v": 0,
        "v": 0,
        "account": c.ref("crm_Accounts", rng),
        "title": c.text(v, rng.choice(p.sentence)),
        "content": c.opt(rng, rng.choice(p.paragraph), v),
        "priority": c.enum(rng, k, TASK_PRIORITY),
        "taskStatus": c.enum(rng, k, TASK_STATUS),
        "dueDateAt": c.opt(rng, c.date(rng, v), v),
        "createdAt": c.date(rng, v),
        "createdBy": c.ref("Users", rng),
        "user": c.opt(rng, c.ref("Users", rng), v),
    }
    return doc, {"account_tasks": 1}


def invoice_number(c: Context, j: int) -> str:
    """Invoice ``j``'s number: a pure function, so a duplicate can copy it."""
    return f"INV-{2021 + j % 3}-{j + 1:06d}"


def _invoices(c: Context, k: int, rng: random.Random, v: str | None) -> tuple[dict, Rows]:
    p = c.pools
    items = [{
        "description": c.text(v, rng.choice(p.catch)),
        "quantity": c.count(rng.randrange(1, 20), v),
        "unit_price": round(rng.randrange(100, 500_000) / 100, 2),
        "vat_rate": rng.choice([0, 10, 15, 21]),
        "sku": f"SKU-{rng.randrange(10**6):06d}",
    } for _ in range(rng.randrange(1, 7))]
    stored = c.array(v, items)
    amount = sum(i["quantity"] * i["unit_price"] for i in items)
    doc = {
        "_id": c.oid("Invoices", k),
        "__v": 0,
        "v": 0,
        "date_created": c.date(rng, v),
        "last_updated": c.opt(rng, c.date(rng, v), v),
        "date_due": c.opt(rng, c.date(rng, v), v),
        "description": c.prose(rng, v, rng.choice(p.sentence)),
        "favorite": c.opt(rng, rng.random() < 0.1, v),
        "invoice_number": invoice_number(c, k),
        "invoice_amount": f"{amount:.2f}" if v != "big_numbers" else "999999999999.99",
        "invoice_currency": c.enum(rng, k, CURRENCIES),
        "invoice_state": c.ref("invoice_States", rng),
        "assigned_user_id": c.ref("Users", rng),
        "assigned_account_id": c.opt(rng, c.ref("crm_Accounts", rng), v),
        "partner": c.opt(rng, rng.choice(p.company), v),
        "partner_VAT": c.opt(rng, f"DE{rng.randrange(10**9):09d}", v),
        "payment_status": c.enum(rng, k, PAYMENT_STATUS),
        "variable_symbol": c.opt(rng, f"{k + 1:010d}", v),
        "invoice_items": stored,
    }
    return doc, {"invoices": 1,
                 "invoice_items": len(stored) if isinstance(stored, list) else 0}


def _todo(c: Context, k: int, rng: random.Random, v: str | None) -> tuple[dict, Rows]:
    doc = {
        "_id": c.oid("TodoList", k),
        "__v": 0,
        "createdAt": c.date(rng, v),
        "description": c.opt(rng, rng.choice(c.pools.sentence), v),
        "title": c.text(v, rng.choice(c.pools.catch)),
        "url": c.opt(rng, f"https://{rng.choice(c.pools.domain)}/todo/{k}", v),
        "user": c.ref("Users", rng),
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
    def apply(c: Context, k: int, doc: dict[str, Any]) -> tuple[str, str, str]:
        if value is MISSING:
            doc.pop(path, None)
        else:
            doc[path] = value
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
    if scale <= 0:
        raise ValueError(f"scale must be positive, not {scale}")
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
                 manifest_path: str | None = None) -> Manifest:
    """Write the CRM dataset to ``out`` (a folder, or a ``mongodb://`` URI) and its manifest.

    The manifest goes to ``manifest_path``, else ``<out>/manifest.json`` for a folder and
    ``./manifest-crm.json`` for a live MongoDB. Same arguments, same bytes.
    """
    if not 0.0 <= bad_rate <= 1.0:
        raise ValueError(f"bad_rate must be between 0 and 1, not {bad_rate}")
    c = Context(seed=seed, scale=scale, edge=edge_cases, bad_rate=bad_rate,
                counts=collection_counts(scale), pools=Pools(seed))
    c.links = _links(c)
    sink = dataset_sink(out, fmt, DATABASE)
    try:
        _write_all(c, sink)
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


def _write_all(c: Context, sink: DatasetSink) -> None:
    tally = c.tally
    for coll, table in LOOKUP_TABLES.items():
        with sink.collection(coll, []) as w:
            for doc in _lookup_docs(c, coll):
                w.write(doc)
                tally.documents[coll] += 1
                tally.rows[table] += 1
    for coll, build in BUILDERS:
        plan = c.plan(coll)
        defects = DEFECTS.get(coll, {})
        rng = random.Random(f"{c.seed}:{coll}")
        with sink.collection(coll, INDEXES.get(coll, [])) as w:
            for k in range(c.counts[coll]):
                doc, rows = build(c, k, rng, c.variant(k))
                doc = strip_missing(doc)
                kind = plan.defect(k)
                if kind is None:
                    for t, n in rows.items():
                        tally.rows[t] += n
                else:
                    table, fld, error_class = defects[kind](c, k, doc)
                    tally.reject(coll, str(doc["_id"]), table, fld, error_class, kind)
                w.write(doc)
                tally.documents[coll] += 1
    with sink.collection("MyAccount", []) as w:
        w.write(_my_account(c))
        tally.documents["MyAccount"] += 1
        tally.rows["my_account"] += 1
