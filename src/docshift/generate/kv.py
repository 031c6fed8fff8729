"""The key-value dataset: a gifting platform kept in one ``kv_store_<hash>`` table.

Keys are messy on purpose, as real ones are: an environment segment
(``client:production:client-001``; staging copies are ignored), legacy variants of the same
entity (``clients:client-001``), lookup aliases (``client_by_domain:…``), index keys holding
arrays of ids (``catalog_gifts:cat-0001``) or whole objects (``gifts:all``), camelCase
values, human-readable string ids, statuses outside the target's list (mapped), references
to records that do not exist (nulled by the mapping), and a few keys that belong to nothing
(reported as unmatched).

Like the CRM generator, everything derives from the seed, documents are written one at a
time, and a bad document is never referenced by another, so the manifest is exact.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from docshift.generate.crm import (
    EDGE_VARIANTS,
    MISSING,
    TEXT_VARIANTS,
    Pools,
    iso,
    megabyte_text,
    strip_missing,
)
from docshift.generate.manifest import DefectPlan, Manifest, Tally, int_hash, unit_hash
from docshift.generate.writers import KV_TABLE_DEFAULT, KvSink, kv_sink

MAPPING = "examples/kv/docshift.yaml"

BASE_COUNTS: dict[str, int] = {
    "client": 20,
    "site": 40,
    "catalog": 60,
    "gift": 300,
    "employee": 600,
    "order": 1000,
    "admin_user": 30,
    "audit": 400,
    "cache": 5,
}
"""Entities per kind at ``scale=1`` (site configs and catalog indexes follow sites and
catalogs)."""

CLIENT_STATUS = ["active", "inactive", "trial", "suspended"]
LEGACY_CLIENT_STATE = ["ACTIVE", "INACTIVE"]
SITE_STATUS = ["live", "draft", "archived"]
GIFT_CATEGORIES = ["electronics", "home", "food", "experiences", "apparel", "wellness",
                   "charity"]
ORDER_STATUS = ["pending", "processing", "shipped", "delivered", "cancelled", "complete",
                "canceled"]
"""The last two are legacy spellings the mapping maps onto ``delivered``/``cancelled``."""
ADMIN_ROLES = ["owner", "admin", "viewer", "superadmin"]
DEPARTMENTS = ["Engineering", "Sales", "Marketing", "Finance", "HR", "Operations", "Support"]
PLANS = ["basic", "pro", "enterprise"]
ENUM_MAX = 8
EDGE_RESERVED = 1 + len(EDGE_VARIANTS) + ENUM_MAX

TABLES = ["clients", "sites", "site_configs", "catalogs", "gifts", "catalog_gifts",
          "employees", "orders", "order_items", "admin_users", "audit_log"]
"""Every table of ``examples/kv/docshift.yaml`` (and of ``examples/kv-existing``)."""

LEGACY_ONLY_SHARE = 0.05
"""Clients stored only under the legacy ``clients:{id}`` key."""
LEGACY_TOO_SHARE = 0.10
"""Clients stored under both the current and the legacy key."""
STAGING_SHARE = 0.20
"""Clients and sites with a (filtered out) staging copy."""
ALIAS_SHARE = 0.5
"""Clients with a ``client_by_domain:{domain}`` alias key."""
DANGLING_MANAGER_SHARE = 0.02
DANGLING_EMPLOYEE_SHARE = 0.03
"""Orders whose employee no longer exists (nulled by ``on_orphan: null``)."""
GIFTS_ALL_EVERY = 3
GIFTS_ALL_MAX = 500

DATE_FROM = datetime(2021, 1, 1, tzinfo=UTC)
DATE_SPAN_MS = 3 * 365 * 86_400_000
_KEY_TIME = datetime(2024, 1, 1, tzinfo=UTC)
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1


def entity_counts(scale: float) -> dict[str, int]:
    """Entities per kind at ``scale``."""
    if scale <= 0:
        raise ValueError(f"scale must be positive, not {scale}")
    return {name: max(1, round(n * scale)) for name, n in BASE_COUNTS.items()}


@dataclass
class KvContext:
    """Settings and derived helpers shared by every entity builder."""

    seed: int
    edge: bool
    bad_rate: float
    counts: dict[str, int]
    pools: Pools
    sink: KvSink
    tally: Tally = field(default_factory=Tally)
    plans: dict[str, DefectPlan] = field(default_factory=dict)
    written: int = 0
    dangling_n: int = 0

    # ids ------------------------------------------------------------------------

    def width(self, kind: str, least: int) -> int:
        # one width per kind, so that ids sort like their numbers
        return max(least, len(str(self.counts[kind])))

    def client_id(self, k: int) -> str:
        return f"client-{k + 1:0{self.width('client', 3)}d}"

    def site_id(self, k: int) -> str:
        return f"site-{k + 1:0{self.width('site', 4)}d}"

    def catalog_id(self, k: int) -> str:
        return f"cat-{k + 1:0{self.width('catalog', 4)}d}"

    def gift_id(self, k: int) -> str:
        return f"gift-{k + 1:0{self.width('gift', 5)}d}"

    def employee_id(self, k: int) -> str:
        return f"emp-{k + 1:0{self.width('employee', 6)}d}"

    def order_id(self, k: int) -> str:
        suffix = int_hash(self.seed, "ord", k, bits=16)
        return f"ORD-{k + 1:0{self.width('order', 8)}d}-{suffix:04x}"

    def dangling(self, kind: str) -> str:
        """An id of ``kind`` that no record has."""
        self.dangling_n += 1
        return f"{kind}-deleted-{self.dangling_n:04d}"

    # soundness ------------------------------------------------------------------

    def plan(self, kind: str) -> DefectPlan:
        plan = self.plans.get(kind)
        if plan is None:
            plan = DefectPlan(self.seed, kind, self.bad_rate, DEFECT_KINDS.get(kind, []),
                              EDGE_RESERVED if self.edge else 1)
            self.plans[kind] = plan
        return plan

    def good(self, kind: str, k: int) -> bool:
        return not self.plan(kind).is_bad(k)

    def variant(self, k: int) -> str | None:
        if self.edge and 1 <= k <= len(EDGE_VARIANTS):
            return EDGE_VARIANTS[k - 1]
        return None

    def pick(self, kind: str, rng: random.Random, below: int | None = None) -> int:
        """A random sound index of ``kind`` (below ``below`` if given)."""
        n = below if below is not None else self.counts[kind]
        k = rng.randrange(n)
        while not self.good(kind, k):
            k = (k + 1) % n
        return k

    # values ---------------------------------------------------------------------

    def date(self, rng: random.Random, v: str | None) -> str:
        d = DATE_FROM + timedelta(milliseconds=rng.randrange(DATE_SPAN_MS))
        if v == "min_date":
            return "1900-01-01T00:00:00Z"
        if v == "max_date":
            return "9999-12-31T23:59:59.999Z"
        if v == "iso_dates":
            # other ISO-8601 spellings: offset instead of Z, space separator, no fraction
            return d.strftime("%Y-%m-%d %H:%M:%S+00:00")
        return iso(d)

    def day(self, rng: random.Random, v: str | None) -> str:
        if v == "min_date":
            return "1900-01-01"
        if v == "max_date":
            return "9999-12-31"
        d = DATE_FROM + timedelta(days=rng.randrange(3 * 365))
        return d.strftime("%Y-%m-%d")

    def opt(self, rng: random.Random, value: Any, v: str | None) -> Any:
        r = rng.random()
        if v == "nulls":
            return None
        if v == "missing":
            return MISSING
        if r < 0.06:
            return None
        if r < 0.12:
            return MISSING
        return value

    def text(self, v: str | None, normal: str) -> str:
        return TEXT_VARIANTS.get(v or "", normal)

    def enum(self, rng: random.Random, k: int, values: list[str]) -> str:
        first = 1 + len(EDGE_VARIANTS)
        if self.edge and first <= k < first + ENUM_MAX:
            return values[(k - first) % len(values)]
        return rng.choice(values)

    def array(self, v: str | None, items: list[Any]) -> Any:
        if v == "nulls":
            return None
        if v == "missing":
            return MISSING
        if v == "empty_arrays":
            return []
        return items

    # output ---------------------------------------------------------------------

    def put(self, family: str, key: str, value: Any) -> None:
        """Write one key; ``family`` counts it in the manifest."""
        if isinstance(value, dict):
            value = strip_missing(value)
        created = _KEY_TIME + timedelta(seconds=self.written)
        self.sink.put(key, value, created, created + timedelta(days=self.written % 30))
        self.written += 1
        self.tally.documents[family] += 1


# --------------------------------------------------------------------------- builders

def client_domain(c: KvContext, k: int) -> str:
    """Client ``k``'s domain (pure, so an alias key can repeat it)."""
    word = c.pools.word[int_hash(c.seed, "client-domain", k) % len(c.pools.word)]
    return f"{word}-{k + 1}.example.com"


def site_domain(c: KvContext, j: int) -> str:
    """Site ``j``'s domain (pure, so a duplicate can copy it)."""
    word = c.pools.word[int_hash(c.seed, "site-domain", j) % len(c.pools.word)]
    return f"{word}-{j + 1}.gifting.example"


def _clients(c: KvContext) -> None:
    rng = random.Random(f"{c.seed}:client")
    p = c.pools
    for k in range(c.counts["client"]):
        v = c.variant(k)
        cid = c.client_id(k)
        name = c.text(v, rng.choice(p.company))
        status = c.enum(rng, k, CLIENT_STATUS)
        created = c.date(rng, v)
        value = {
            "id": cid,
            "name": name,
            "domain": client_domain(c, k),
            "status": status,
            "contactEmail": c.opt(rng, f"contact@{client_domain(c, k)}", v),
            "billingPlan": c.opt(rng, rng.choice(PLANS), v),
            "createdAt": created,
            "updatedAt": c.opt(rng, c.date(rng, v), v),
            "settings": c.opt(rng, {"sso": rng.random() < 0.3,
                                    "giftLimitCents": rng.randrange(1000, 50_000, 500),
                                    "brand": {"color": rng.choice(p.color)}}, v),
        }
        h = unit_hash(c.seed, "client-legacy", k)
        legacy_only = k > 0 and v is None and h < LEGACY_ONLY_SHARE
        legacy_too = not legacy_only and h < LEGACY_ONLY_SHARE + LEGACY_TOO_SHARE
        if not legacy_only:
            c.put("client", f"client:production:{cid}", value)
        if legacy_only or legacy_too:
            c.put("clients (legacy)", f"clients:{cid}", {
                "clientId": cid,
                "clientName": name,
                "domain": value["domain"],
                "state": "INACTIVE" if status in ("inactive", "suspended") else "ACTIVE",
                "created": created,
            })
        if unit_hash(c.seed, "client-staging", k) < STAGING_SHARE:
            c.put("client (staging)", f"client:staging:{cid}",
                  {**value, "name": f"{name} (staging)", "status": "trial"})
        if unit_hash(c.seed, "client-alias", k) < ALIAS_SHARE:
            c.put("client_by_domain", f"client_by_domain:{client_domain(c, k)}",
                  {"clientId": cid})
        c.tally.rows["clients"] += 1
    if c.edge:
        # alias keys with unicode and special characters in the key itself
        c.put("client_by_domain", "client_by_domain:bücher-🎁.example", {"clientId":
                                                                         c.client_id(0)})
        c.put("client_by_domain", "client_by_domain:o'brien & co.example",
              {"clientId": c.client_id(0)})


def _sites(c: KvContext) -> None:
    rng = random.Random(f"{c.seed}:site")
    plan = c.plan("site")
    for k in range(c.counts["site"]):
        v = c.variant(k)
        sid = c.site_id(k)
        value = {
            "id": sid,
            "clientId": c.client_id(c.pick("client", rng)),
            "name": c.text(v, f"{rng.choice(c.pools.catch)} gifts"),
            "domain": site_domain(c, k),
            "status": c.enum(rng, k, SITE_STATUS),
            "theme": c.opt(rng, {"primaryColor": f"#{rng.randrange(1 << 24):06x}",
                                 "logoUrl": f"https://cdn.example.com/logo/{sid}.svg"}, v),
            "createdAt": c.date(rng, v),
            "launchedAt": c.opt(rng, c.date(rng, v), v),
        }
        _emit(c, "site", k, plan, f"site:production:{sid}", value,
              {"sites": 1, "site_configs": 1})
        if unit_hash(c.seed, "site-staging", k) < STAGING_SHARE:
            c.put("site (staging)", f"site:staging:{sid}", {**value, "status": "draft"})
        if plan.is_bad(k):
            continue  # a config of a site that is not loaded would be an orphan
        budget = INT32_MAX if v == "big_numbers" else rng.randrange(2_000, 20_000, 500)
        c.put("site_config", f"site_config:{sid}", {
            "locale": rng.choice(["en-US", "en-GB", "de-DE", "cs-CZ", "fr-FR"]),
            "currency": rng.choice(["USD", "EUR", "GBP", "CZK"]),
            "giftBudgetCents": budget,
            "shippingCountries": c.array(v, rng.sample(["US", "CA", "GB", "DE", "CZ", "FR"],
                                                       rng.randrange(1, 4))),
            "features": {"personalNote": rng.random() < 0.5, "wrapping": rng.random() < 0.5},
            "updatedAt": c.date(rng, v),
        })


def _catalogs(c: KvContext) -> None:
    rng = random.Random(f"{c.seed}:catalog")
    plan = c.plan("catalog_gifts")
    for k in range(c.counts["catalog"]):
        v = c.variant(k)
        cat = c.catalog_id(k)
        c.put("catalog", f"catalog:{cat}", {
            "id": cat,
            "siteId": c.site_id(c.pick("site", rng)),
            "name": c.text(v, f"{rng.choice(c.pools.word).title()} collection"),
            "active": rng.random() < 0.8,
            "createdAt": c.date(rng, v),
        })
        c.tally.rows["catalogs"] += 1
        n = c.counts["gift"]
        start, step = rng.randrange(n), (rng.randrange(1, 7) if n % 7 else 1)
        gifts: list[str] = []
        for i in range(min(n, rng.randrange(3, 16))):
            j = (start + i * step) % n
            if c.good("gift", j):
                gifts.append(c.gift_id(j))
        gifts = list(dict.fromkeys(gifts))
        stored = c.array(v, gifts)
        key = f"catalog_gifts:{cat}"
        if plan.defect(k) == "orphan":
            # one id in the index points at a gift that was deleted: only that row goes
            stored = [*gifts, c.dangling("gift")]
            c.tally.reject("catalog_gifts", key, "catalog_gifts", "gift_id", "orphan",
                           "orphan")
        c.put("catalog_gifts", key, stored if stored is not MISSING else [])
        c.tally.rows["catalog_gifts"] += len(stored) if isinstance(stored, list) else 0
        if plan.defect(k) == "orphan":
            c.tally.rows["catalog_gifts"] -= 1


def _gift_value(c: KvContext, k: int, rng: random.Random, v: str | None) -> dict[str, Any]:
    p = c.pools
    gid = c.gift_id(k)
    return strip_missing({
        "id": gid,
        "sku": f"SKU-{k + 1:06d}",
        "name": c.text(v, f"{rng.choice(p.color).title()} {rng.choice(p.word)}"),
        "description": (megabyte_text() if v == "long_text"
                        else c.opt(rng, rng.choice(p.paragraph), v)),
        "priceCents": INT32_MAX if v == "big_numbers" else rng.randrange(500, 30_000, 5),
        "currency": "USD",
        "category": c.enum(rng, k, GIFT_CATEGORIES),
        "inStock": rng.random() < 0.9,
        "tags": c.array(v, rng.sample(p.word, rng.randrange(4))
                        + ([c.text(v, "")] if v in TEXT_VARIANTS else [])),
        "images": c.opt(rng, [f"https://cdn.example.com/gifts/{gid}/{i}.jpg"
                              for i in range(rng.randrange(1, 4))], v),
        "vendor": c.opt(rng, {"name": rng.choice(p.company),
                              "country": rng.choice(["US", "DE", "CZ", "GB"])}, v),
        "createdAt": c.date(rng, v),
    })


def _gifts(c: KvContext) -> None:
    rng = random.Random(f"{c.seed}:gift")
    plan = c.plan("gift")
    listed: list[dict[str, Any]] = []
    for k in range(c.counts["gift"]):
        v = c.variant(k)
        value = _gift_value(c, k, rng, v)
        _emit(c, "gift", k, plan, f"gift:{c.gift_id(k)}", value, {"gifts": 1})
        # the "all gifts" cache repeats sound records verbatim; it adds no rows
        if (k % GIFTS_ALL_EVERY == 0 and v is None and not plan.is_bad(k)
                and len(listed) < GIFTS_ALL_MAX):
            listed.append(value)
    c.put("gifts:all", "gifts:all", listed)


def _employees(c: KvContext) -> None:
    rng = random.Random(f"{c.seed}:employee")
    plan = c.plan("employee")
    p = c.pools
    for k in range(c.counts["employee"]):
        v = c.variant(k)
        eid = c.employee_id(k)
        client = c.client_id(c.pick("client", rng))
        first, last = rng.choice(p.first), rng.choice(p.last)
        manager: Any = None
        if k and rng.random() < 0.7:
            manager = c.employee_id(c.pick("employee", rng, below=k))
        dangling = k > 0 and v is None and rng.random() < DANGLING_MANAGER_SHARE
        if dangling:
            manager = c.dangling("emp")
        value = {
            "id": eid,
            "clientId": client,
            "firstName": c.opt(rng, c.text(v, first), v),
            "lastName": c.text(v, last),
            "email": f"{first}.{last}.{k}@{client}.example".lower(),
            "department": c.opt(rng, rng.choice(DEPARTMENTS), v),
            "title": c.opt(rng, rng.choice(p.job), v),
            "startDate": c.day(rng, v),
            "active": rng.random() < 0.9,
            "managerId": manager if v not in ("nulls", "missing") else c.opt(rng, None, v),
            "address": c.opt(rng, {"street": rng.choice(p.street), "city": rng.choice(p.city),
                                   "zip": rng.choice(p.postcode)}, v),
        }
        sound = _emit(c, "employee", k, plan, f"employee:{client}:{eid}", value,
                      {"employees": 1})
        if sound and dangling:
            c.tally.nulled["employees.manager_id"] += 1


def _orders(c: KvContext) -> None:
    rng = random.Random(f"{c.seed}:order")
    plan = c.plan("order")
    for k in range(c.counts["order"]):
        v = c.variant(k)
        oid = c.order_id(k)
        items = []
        for _ in range(rng.randrange(1, 5)):
            items.append({"giftId": c.gift_id(c.pick("gift", rng)),
                          "quantity": rng.randrange(1, 4),
                          "unitPriceCents": rng.randrange(500, 30_000, 5)})
        r = rng.random()
        employee: Any = c.employee_id(c.pick("employee", rng))
        dangling = v is None and r < DANGLING_EMPLOYEE_SHARE
        if dangling:
            employee = c.dangling("emp")
        elif r < DANGLING_EMPLOYEE_SHARE + 0.05:
            employee = None
        total = sum(i["quantity"] * i["unitPriceCents"] for i in items)
        stored = c.array(v, items)
        value = {
            "id": oid,
            "siteId": c.site_id(c.pick("site", rng)),
            "employeeId": employee if v not in ("nulls", "missing") else c.opt(rng, None, v),
            "status": c.enum(rng, k, ORDER_STATUS),
            "createdAt": c.date(rng, v),
            "shippedAt": c.opt(rng, c.date(rng, v), v),
            "shippingAddress": c.opt(rng, {"name": c.text(v, rng.choice(c.pools.first)),
                                           "street": rng.choice(c.pools.street),
                                           "city": rng.choice(c.pools.city),
                                           "country": "US"}, v),
            "items": stored,
            "totalCents": INT64_MAX if v == "big_numbers" else total,
            "notes": c.opt(rng, c.text(v, rng.choice(c.pools.sentence)), v),
        }
        rows = {"orders": 1, "order_items": len(stored) if isinstance(stored, list) else 0}
        if _emit(c, "order", k, plan, f"order:{oid}", value, rows) and dangling:
            c.tally.nulled["orders.employee_id"] += 1


def _admins(c: KvContext) -> None:
    rng = random.Random(f"{c.seed}:admin_user")
    plan = c.plan("admin_user")
    p = c.pools
    for k in range(c.counts["admin_user"]):
        v = c.variant(k)
        first, last = rng.choice(p.first), rng.choice(p.last)
        email = f"{first}.{last}.{k}@admin.example".lower()
        if v == "special_chars":
            email = f"o'{last}+ops.{k}@admin.example".lower()
        value = {
            "email": email,
            "name": c.text(v, f"{first} {last}"),
            "role": c.enum(rng, k, ADMIN_ROLES),
            "clientIds": c.array(v, sorted({c.client_id(c.pick("client", rng))
                                            for _ in range(rng.randrange(1, 4))})),
            "lastLoginAt": c.opt(rng, c.date(rng, v), v),
            "mfaEnabled": rng.random() < 0.6,
        }
        _emit(c, "admin_user", k, plan, f"admin_user:{email}", value, {"admin_users": 1})


def _audit(c: KvContext) -> None:
    rng = random.Random(f"{c.seed}:audit")
    actions = ["order.created", "order.shipped", "site.updated", "catalog.published",
               "employee.imported", "client.suspended"]
    for k in range(c.counts["audit"]):
        v = c.variant(k)
        at = c.date(rng, v)
        day = at[:10] if at[:4].isdigit() else "2023-01-01"
        action = rng.choice(actions)
        c.put("audit", f"audit:{day}:{k + 1:06d}", {
            "actor": f"admin{rng.randrange(c.counts['admin_user'])}@admin.example",
            "action": action,
            "entity": action.split(".")[0],
            "entityId": c.order_id(rng.randrange(c.counts["order"])),
            "at": at,
            "details": c.opt(rng, {"ip": f"10.0.{rng.randrange(256)}.{rng.randrange(256)}",
                                   "userAgent": "Mozilla/5.0",
                                   "note": c.text(v, "")}, v),
        })
        c.tally.rows["audit_log"] += 1


def _noise(c: KvContext) -> None:
    rng = random.Random(f"{c.seed}:noise")
    for k in range(c.counts["cache"]):
        c.put("cache (unmatched)", f"cache:stats:{k + 1:04d}",
              {"hits": rng.randrange(10_000), "misses": rng.randrange(1_000)})
        c.tally.unmatched += 1
    for key, value in (("tmp:import-lock", {"holder": "worker-3", "since": iso(DATE_FROM)}),
                       ("migration:v2:done", True),
                       ("feature_flags", {"newCheckout": True, "betaCatalog": False})):
        c.put("misc (unmatched)", key, value)
        c.tally.unmatched += 1
    for k in range(3):
        c.put("session (ignored)", f"session:{int_hash(c.seed, 'session', k, bits=64):016x}",
              {"user": f"admin{k}@admin.example", "expiresAt": iso(DATE_FROM)})


# --------------------------------------------------------------------------- defects

KvDefect = Callable[[KvContext, int, dict[str, Any]], tuple[str, str, str]]


def _conversion(table: str, path: str, value: Any, error_class: str) -> KvDefect:
    def apply(c: KvContext, k: int, doc: dict[str, Any]) -> tuple[str, str, str]:
        if value is MISSING:
            doc.pop(path, None)
        else:
            doc[path] = value
        return table, path, error_class
    return apply


def _duplicate_site_domain(c: KvContext, k: int, doc: dict[str, Any]) -> tuple[str, str, str]:
    j = k - 1
    while not c.good("site", j):
        j -= 1
    doc["domain"] = site_domain(c, j)
    return "sites", "domain", "duplicate_key"


def _orphan_order(c: KvContext, k: int, doc: dict[str, Any]) -> tuple[str, str, str]:
    doc["siteId"] = c.dangling("site")
    doc["items"] = []  # its items would be orphans of the removed order
    return "orders", "site_id", "orphan"


def _bad_quantity(c: KvContext, k: int, doc: dict[str, Any]) -> tuple[str, str, str]:
    doc["items"][-1]["quantity"] = "two"
    return "order_items", "$item.quantity", "bad_number"


_LONG = "Z" * 1000

DEFECTS: dict[str, dict[str, KvDefect]] = {
    "site": {
        "duplicate_key": _duplicate_site_domain,
        "missing_required": _conversion("sites", "name", MISSING, "missing_required"),
        "not_in_enum": _conversion("sites", "status", "deleted", "not_in_enum"),
        "bad_date": _conversion("sites", "createdAt", "last week", "bad_date"),
        "too_long": _conversion("sites", "name", _LONG, "too_long"),
    },
    "gift": {
        "too_long": _conversion("gifts", "name", _LONG, "too_long"),
        "bad_number": _conversion("gifts", "priceCents", "free", "bad_number"),
        "not_in_enum": _conversion("gifts", "category", "weapons", "not_in_enum"),
        "missing_required": _conversion("gifts", "priceCents", MISSING, "missing_required"),
        "wrong_type": _conversion("gifts", "tags", "red,blue,green", "wrong_type"),
    },
    "employee": {
        "missing_required": _conversion("employees", "email", MISSING, "missing_required"),
        "wrong_type": _conversion("employees", "active", "yes", "not_boolean"),
        "bad_date": _conversion("employees", "startDate", "yesterday", "bad_date"),
        "too_long": _conversion("employees", "lastName", _LONG, "too_long"),
    },
    "order": {
        "orphan": _orphan_order,
        "bad_date": _conversion("orders", "createdAt", "31/12/2023 10:00", "bad_date"),
        "not_in_enum": _conversion("orders", "status", "lost", "not_in_enum"),
        "bad_number": _bad_quantity,
        "missing_required": _conversion("orders", "createdAt", MISSING, "missing_required"),
    },
    "admin_user": {
        "not_in_enum": _conversion("admin_users", "role", "root", "not_in_enum"),
        "wrong_type": _conversion("admin_users", "mfaEnabled", "yes", "not_boolean"),
    },
}
"""How each defect damages an entity. (A NUL character has no kind here: jsonb cannot
store one.)"""
DEFECT_KINDS = {**{kind: list(d) for kind, d in DEFECTS.items()}, "catalog_gifts": ["orphan"]}
"""The defect kinds each entity can carry, in turn; the catalog builder adds a dangling id
to a ``catalog_gifts`` index itself."""


def _emit(c: KvContext, kind: str, k: int, plan: DefectPlan, key: str, value: dict[str, Any],
          rows: dict[str, int]) -> bool:
    """Write one entity, damaged if the plan says so; True when it is sound."""
    value = strip_missing(value)
    defect = plan.defect(k)
    if defect is None:
        for t, n in rows.items():
            c.tally.rows[t] += n
    else:
        table, fld, error_class = DEFECTS[kind][defect](c, k, value)
        c.tally.reject(kind, key, table, fld, error_class, defect)
    c.put(kind, key, value)
    return defect is None


# --------------------------------------------------------------------------- driver


def generate_kv(out: str, *, scale: float = 1.0, seed: int = 0, edge_cases: bool = False,
                bad_rate: float = 0.0, table: str | None = None,
                manifest_path: str | None = None, replace: bool = False) -> Manifest:
    """Write the key-value dataset to ``out`` and its manifest.

    ``out`` is a PostgreSQL DSN (the table ``table``, default ``kv_store_demo``, is created
    and loaded; ``replace=True`` drops an existing one first) or a path ending in ``.jsonl``.
    The manifest goes to ``manifest_path``, else next to a ``.jsonl`` file as
    ``manifest.json``, else ``./manifest-kv.json``.
    """
    if not 0.0 <= bad_rate <= 1.0:
        raise ValueError(f"bad_rate must be between 0 and 1, not {bad_rate}")
    counts = entity_counts(scale)
    jsonl = out.endswith(".jsonl")
    sink = kv_sink(out, table, replace=replace)
    c = KvContext(seed=seed, edge=edge_cases, bad_rate=bad_rate, counts=counts,
                  pools=Pools(seed), sink=sink)
    try:
        for build in (_clients, _sites, _catalogs, _gifts, _employees, _orders, _admins,
                      _audit, _noise):
            build(c)
    except BaseException:
        sink.abort()
        raise
    sink.close()
    manifest = Manifest(
        dataset="kv", seed=seed, scale=scale,
        options={"edge_cases": edge_cases, "bad_rate": bad_rate,
                 "format": "jsonl" if jsonl else "postgres",
                 "table": None if jsonl else (table or KV_TABLE_DEFAULT)},
        mapping=MAPPING,
        documents=dict(c.tally.documents),
        expected_rows=c.tally.expected_rows(TABLES),
        expected_quarantined=c.tally.rejects,
        expected_unmatched_keys=c.tally.unmatched,
        expected_nulled=dict(c.tally.nulled),
    )
    target = manifest_path or (str(Path(out).parent / "manifest.json") if jsonl
                               else "manifest-kv.json")
    manifest.write(target)
    return manifest
