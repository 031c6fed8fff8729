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

import multiprocessing
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from docshift.generate.arguments import check_bad_rate, check_scale
from docshift.generate.crm import Pools, can_fork, default_workers
from docshift.generate.draw import (
    EDGE_VARIANTS,
    INT32_MAX,
    INT64_MAX,
    MISSING,
    TEXT_VARIANTS,
    Draws,
    epoch_ms,
    iso,
    iso_ms,
    megabyte_text,
    mix64,
    set_field,
    sound_index,
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

LOCALES = ["en-US", "en-GB", "de-DE", "cs-CZ", "fr-FR"]
CURRENCIES = ["USD", "EUR", "GBP", "CZK"]
SHIPPING_COUNTRIES = ["US", "CA", "GB", "DE", "CZ", "FR"]
VENDOR_COUNTRIES = ["US", "DE", "CZ", "GB"]
AUDIT_ACTIONS = ["order.created", "order.shipped", "site.updated", "catalog.published",
                 "employee.imported", "client.suspended"]

DATE_FROM = datetime(2021, 1, 1, tzinfo=UTC)
DATE_SPAN_MS = 3 * 365 * 86_400_000
_FROM_MS = epoch_ms(DATE_FROM)
_KEY_TIME_US = epoch_ms(datetime(2024, 1, 1, tzinfo=UTC)) * 1000
"""Keys' ``created_at``: this instant (microseconds since 1970) plus one second per key."""


def entity_counts(scale: float) -> dict[str, int]:
    """Entities per kind at ``scale``."""
    check_scale(scale)
    return {name: max(1, round(n * scale)) for name, n in BASE_COUNTS.items()}


class KvContext(Draws):
    """Settings, random draws and derived helpers shared by every entity builder."""

    NULL_SHARE = 0.06
    ENUM_MAX = ENUM_MAX

    def __init__(self, seed: int, edge: bool, bad_rate: float, counts: dict[str, int],
                 pools: Pools, sink: KvSink | None = None, family: str = "",
                 written: int = 0) -> None:
        super().__init__(edge)
        self.seed = seed
        self.bad_rate = bad_rate
        self.counts = counts
        self.pools = pools
        self.sink = sink
        self.family = family
        self.tally = Tally()
        self.written = written  # keys before the next one, all families: its time stamps
        self.dangling_n = 0
        self.plans = {kind: DefectPlan(seed, kind, bad_rate, kinds,
                                       EDGE_RESERVED if edge else 1)
                      for kind, kinds in DEFECT_KINDS.items()}
        # one width per kind, so that ids sort like their numbers
        self._width = {kind: max(least, len(str(counts[kind])))
                       for kind, least in (("client", 3), ("site", 4), ("catalog", 4),
                                           ("gift", 5), ("employee", 6), ("order", 8))}
        self._order_key = int_hash(seed, "ord", bits=16)
        self.domain_key = int_hash(seed, "domain")
        # per kind: None when no entity of it is bad (the usual case: no check)
        self._bad = {kind: plan.is_bad if plan.rate else None for kind, plan in self.plans.items()}
        # what ref() needs per kind: size, badness, id prefix and width
        self._refs = {kind: (counts[kind], self._bad.get(kind), prefix, self._width[kind])
                      for kind, prefix in (("client", "client-"), ("site", "site-"),
                                           ("gift", "gift-"), ("employee", "emp-"))}

    # ids ------------------------------------------------------------------------

    def client_id(self, k: int) -> str:
        return "client-" + str(k + 1).zfill(self._width["client"])

    def site_id(self, k: int) -> str:
        return "site-" + str(k + 1).zfill(self._width["site"])

    def catalog_id(self, k: int) -> str:
        return "cat-" + str(k + 1).zfill(self._width["catalog"])

    def gift_id(self, k: int) -> str:
        return "gift-" + str(k + 1).zfill(self._width["gift"])

    def employee_id(self, k: int) -> str:
        return "emp-" + str(k + 1).zfill(self._width["employee"])

    def order_id(self, k: int) -> str:
        # a multiplicative hash is enough for a cosmetic suffix, and cheaper than mix64
        suffix = ((k ^ self._order_key) * 2654435761 >> 16) & 0xFFFF
        return f"ORD-{str(k + 1).zfill(self._width['order'])}-{suffix:04x}"

    def dangling(self, kind: str) -> str:
        """An id of ``kind`` that no record has (each family numbers its own)."""
        self.dangling_n += 1
        return f"{kind}-deleted-{self.family}-{self.dangling_n:04d}"

    # soundness ------------------------------------------------------------------

    def plan(self, kind: str) -> DefectPlan:
        return self.plans[kind]

    def good(self, kind: str, k: int) -> bool:
        bad = self._bad.get(kind)
        return bad is None or not bad(k)

    def ref(self, kind: str) -> str:
        """The id of a random sound ``kind`` (client, site, gift or employee)."""
        n, bad, prefix, width = self._refs[kind]
        return prefix + str(sound_index(self.rnd(), n, bad) + 1).zfill(width)

    def pick_index(self, kind: str, below: int | None = None) -> int:
        """A random sound index of ``kind`` (below ``below`` if given)."""
        n = below if below is not None else self.counts[kind]
        return sound_index(self.rnd(), n, self._bad.get(kind))

    # values ---------------------------------------------------------------------

    def date(self) -> str:
        """An ISO-8601 instant in 2021-2023 (other spellings for the edge cases)."""
        ms = _FROM_MS + int(self.rnd() * DATE_SPAN_MS)
        v = self.v
        if v is not None:
            if v == "min_date":
                return "1900-01-01T00:00:00Z"
            if v == "max_date":
                return "9999-12-31T23:59:59.999Z"
            if v == "iso_dates":
                # other ISO-8601 spellings: offset instead of Z, space separator, no fraction
                return iso_ms(ms)[:19].replace("T", " ") + "+00:00"
        return iso_ms(ms)

    def day(self) -> str:
        """A date (``YYYY-MM-DD``) in 2021-2023."""
        v = self.v
        if v == "min_date":
            return "1900-01-01"
        if v == "max_date":
            return "9999-12-31"
        return iso_ms(_FROM_MS + 86_400_000 * int(self.rnd() * 3 * 365))[:10]

    # output ---------------------------------------------------------------------

    def put(self, family: str, key: str, value: Any) -> None:
        """Write one key; ``family`` counts it in the manifest."""
        n = self.written
        created = _KEY_TIME_US + n * 1_000_000
        assert self.sink is not None
        self.sink.put(key, value, created, created + (n % 30) * 86_400_000_000)
        self.written = n + 1
        self.tally.documents[family] += 1


# --------------------------------------------------------------------------- builders

def client_domain(c: KvContext, k: int) -> str:
    """Client ``k``'s domain (pure, so an alias key can repeat it)."""
    word = c.pools.word[mix64(c.domain_key ^ k) % len(c.pools.word)]
    return f"{word}-{k + 1}.example.com"


def site_domain(c: KvContext, j: int) -> str:
    """Site ``j``'s domain (pure, so a duplicate can copy it)."""
    word = c.pools.word[mix64(c.domain_key ^ (1 << 40) ^ j) % len(c.pools.word)]
    return f"{word}-{j + 1}.gifting.example"


def _client_keys(c: KvContext, k: int) -> tuple[bool, bool, bool, bool]:
    """Which keys client ``k`` has: current, legacy, staging copy, domain alias."""
    h = unit_hash(c.seed, "client-legacy", k)
    legacy_only = k > 0 and c.variant(k) is None and h < LEGACY_ONLY_SHARE
    legacy_too = not legacy_only and h < LEGACY_ONLY_SHARE + LEGACY_TOO_SHARE
    return (not legacy_only, legacy_only or legacy_too,
            unit_hash(c.seed, "client-staging", k) < STAGING_SHARE,
            unit_hash(c.seed, "client-alias", k) < ALIAS_SHARE)


def _site_staging(c: KvContext, k: int) -> bool:
    """Whether site ``k`` has a staging copy."""
    return unit_hash(c.seed, "site-staging", k) < STAGING_SHARE


def _clients(c: KvContext) -> None:
    c.stream(f"{c.seed}:client")
    p = c.pools
    for k in range(c.counts["client"]):
        c.start(k)
        cid = c.client_id(k)
        name = c.text(c.pick(p.company))
        status = c.enum(k, CLIENT_STATUS)
        created = c.date()
        domain = client_domain(c, k)
        value = c.strip({
            "id": cid,
            "name": name,
            "domain": domain,
            "status": status,
            "contactEmail": c.opt(f"contact@{domain}"),
            "billingPlan": c.opt(c.pick(PLANS)),
            "createdAt": created,
            "updatedAt": c.opt(c.date()),
            "settings": c.opt({"sso": c.chance(0.3),
                               "giftLimitCents": c.num(1000, 50_000, 500),
                               "brand": {"color": c.pick(p.color)}}),
        })
        current, legacy, staging, alias = _client_keys(c, k)
        if current:
            c.put("client", f"client:production:{cid}", value)
        if legacy:
            c.put("clients (legacy)", f"clients:{cid}", {
                "clientId": cid,
                "clientName": name,
                "domain": domain,
                "state": "INACTIVE" if status in ("inactive", "suspended") else "ACTIVE",
                "created": created,
            })
        if staging:
            c.put("client (staging)", f"client:staging:{cid}",
                  {**value, "name": f"{name} (staging)", "status": "trial"})
        if alias:
            c.put("client_by_domain", f"client_by_domain:{domain}", {"clientId": cid})
        c.tally.rows["clients"] += 1
    if c.edge:
        # alias keys with unicode and special characters in the key itself
        c.put("client_by_domain", "client_by_domain:bücher-🎁.example", {"clientId":
                                                                         c.client_id(0)})
        c.put("client_by_domain", "client_by_domain:o'brien & co.example",
              {"clientId": c.client_id(0)})


def _sites(c: KvContext) -> None:
    c.stream(f"{c.seed}:site")
    plan = c.plan("site")
    for k in range(c.counts["site"]):
        v = c.start(k)
        sid = c.site_id(k)
        value = {
            "id": sid,
            "clientId": c.ref("client"),
            "name": c.text(f"{c.pick(c.pools.catch)} gifts"),
            "domain": site_domain(c, k),
            "status": c.enum(k, SITE_STATUS),
            "theme": c.opt({"primaryColor": f"#{c.below(1 << 24):06x}",
                            "logoUrl": f"https://cdn.example.com/logo/{sid}.svg"}),
            "createdAt": c.date(),
            "launchedAt": c.opt(c.date()),
        }
        value = _emit(c, "site", k, plan, f"site:production:{sid}", value,
                      {"sites": 1, "site_configs": 1})
        if _site_staging(c, k):
            c.put("site (staging)", f"site:staging:{sid}", {**value, "status": "draft"})
        if plan.is_bad(k):
            continue  # a config of a site that is not loaded would be an orphan
        budget = INT32_MAX if v == "big_numbers" else c.num(2_000, 20_000, 500)
        c.put("site_config", f"site_config:{sid}", c.strip({
            "locale": c.pick(LOCALES),
            "currency": c.pick(CURRENCIES),
            "giftBudgetCents": budget,
            "shippingCountries": c.array(c.sample(SHIPPING_COUNTRIES, c.num(1, 4))),
            "features": {"personalNote": c.chance(0.5), "wrapping": c.chance(0.5)},
            "updatedAt": c.date(),
        }))


def _catalogs(c: KvContext) -> None:
    c.stream(f"{c.seed}:catalog")
    plan = c.plan("catalog_gifts")
    n = c.counts["gift"]
    for k in range(c.counts["catalog"]):
        c.start(k)
        cat = c.catalog_id(k)
        c.put("catalog", f"catalog:{cat}", {
            "id": cat,
            "siteId": c.ref("site"),
            "name": c.text(f"{c.pick(c.pools.word).title()} collection"),
            "active": c.chance(0.8),
            "createdAt": c.date(),
        })
        c.tally.rows["catalogs"] += 1
        start, step = c.below(n), (c.num(1, 7) if n % 7 else 1)
        gifts: list[str] = []
        for i in range(min(n, c.num(3, 16))):
            j = (start + i * step) % n
            if c.good("gift", j):
                gifts.append(c.gift_id(j))
        gifts = list(dict.fromkeys(gifts))
        stored = c.array(gifts)
        key = f"catalog_gifts:{cat}"
        if plan.defect(k) == "orphan":
            # one id in the index points at a gift that was deleted: only that row goes
            # (``on_orphan: drop``); the index key itself is not quarantined
            stored = [*gifts, c.dangling("gift")]
            c.tally.dropped["catalog_gifts.gift_id"] += 1
        c.put("catalog_gifts", key, stored if stored is not MISSING else [])
        c.tally.rows["catalog_gifts"] += len(stored) if isinstance(stored, list) else 0
        if plan.defect(k) == "orphan":
            c.tally.rows["catalog_gifts"] -= 1


def _gift_value(c: KvContext, k: int, v: str | None) -> dict[str, Any]:
    p = c.pools
    gid = c.gift_id(k)
    tags = c.sample(p.word, c.below(4))
    if v in TEXT_VARIANTS:
        tags.append(c.text(""))
    return {
        "id": gid,
        "sku": f"SKU-{k + 1:06d}",
        "name": c.text(f"{c.pick(p.color).title()} {c.pick(p.word)}"),
        "description": (megabyte_text() if v == "long_text"
                        else c.opt(c.pick(p.paragraph))),
        "priceCents": INT32_MAX if v == "big_numbers" else c.num(500, 30_000, 5),
        "currency": "USD",
        "category": c.enum(k, GIFT_CATEGORIES),
        "inStock": c.chance(0.9),
        "tags": c.array(tags),
        "images": c.opt([f"https://cdn.example.com/gifts/{gid}/{i}.jpg"
                         for i in range(c.num(1, 4))]),
        "vendor": c.opt({"name": c.pick(p.company), "country": c.pick(VENDOR_COUNTRIES)}),
        "createdAt": c.date(),
    }


def _gifts(c: KvContext) -> None:
    c.stream(f"{c.seed}:gift")
    plan = c.plan("gift")
    listed: list[dict[str, Any]] = []
    for k in range(c.counts["gift"]):
        v = c.start(k)
        value = _emit(c, "gift", k, plan, f"gift:{c.gift_id(k)}", _gift_value(c, k, v),
                      {"gifts": 1})
        # the "all gifts" cache repeats sound records verbatim; it adds no rows
        if (k % GIFTS_ALL_EVERY == 0 and v is None and not plan.is_bad(k)
                and len(listed) < GIFTS_ALL_MAX):
            listed.append(value)
    c.put("gifts:all", "gifts:all", listed)


def _employees(c: KvContext) -> None:
    c.stream(f"{c.seed}:employee")
    plan = c.plan("employee")
    p = c.pools
    for k in range(c.counts["employee"]):
        v = c.start(k)
        eid = c.employee_id(k)
        client = c.ref("client")
        first, last = c.pick(p.first), c.pick(p.last)
        manager: Any = None
        if k and c.chance(0.7):
            manager = c.employee_id(c.pick_index("employee", below=k))
        dangling = c.chance(DANGLING_MANAGER_SHARE) and k > 0 and v is None
        if dangling:
            manager = c.dangling("emp")
        value = {
            "id": eid,
            "clientId": client,
            "firstName": c.opt(c.text(first)),
            "lastName": c.text(last),
            "email": f"{first}.{last}.{k}@{client}.example".lower(),
            "department": c.opt(c.pick(DEPARTMENTS)),
            "title": c.opt(c.pick(p.job)),
            "startDate": c.day(),
            "active": c.chance(0.9),
            "managerId": manager if v not in ("nulls", "missing") else c.opt(None),
            "address": c.opt({"street": c.pick(p.street), "city": c.pick(p.city),
                              "zip": c.pick(p.postcode)}),
        }
        _emit(c, "employee", k, plan, f"employee:{client}:{eid}", value, {"employees": 1})
        if dangling and not plan.is_bad(k):
            c.tally.nulled["employees.manager_id"] += 1


def _orders(c: KvContext) -> None:
    c.stream(f"{c.seed}:order")
    plan = c.plan("order")
    p = c.pools
    for k in range(c.counts["order"]):
        v = c.start(k)
        oid = c.order_id(k)
        items = [{"giftId": c.ref("gift"),
                  "quantity": c.num(1, 4),
                  "unitPriceCents": c.num(500, 30_000, 5)} for _ in range(c.num(1, 5))]
        r = c.rnd()
        employee: Any = c.ref("employee")
        dangling = v is None and r < DANGLING_EMPLOYEE_SHARE
        if dangling:
            employee = c.dangling("emp")
        elif r < DANGLING_EMPLOYEE_SHARE + 0.05:
            employee = None
        total = sum(i["quantity"] * i["unitPriceCents"] for i in items)
        stored = c.array(items)
        value = {
            "id": oid,
            "siteId": c.ref("site"),
            "employeeId": employee if v not in ("nulls", "missing") else c.opt(None),
            "status": c.enum(k, ORDER_STATUS),
            "createdAt": c.date(),
            "shippedAt": c.opt(c.date()),
            "shippingAddress": c.opt({"name": c.text(c.pick(p.first)),
                                      "street": c.pick(p.street), "city": c.pick(p.city),
                                      "country": "US"}),
            "items": stored,
            "totalCents": INT64_MAX if v == "big_numbers" else total,
            "notes": c.opt(c.text(c.pick(p.sentence))),
        }
        rows = {"orders": 1, "order_items": len(stored) if isinstance(stored, list) else 0}
        _emit(c, "order", k, plan, f"order:{oid}", value, rows)
        if dangling and not plan.is_bad(k):
            c.tally.nulled["orders.employee_id"] += 1


def _admins(c: KvContext) -> None:
    c.stream(f"{c.seed}:admin_user")
    plan = c.plan("admin_user")
    p = c.pools
    for k in range(c.counts["admin_user"]):
        v = c.start(k)
        first, last = c.pick(p.first), c.pick(p.last)
        email = f"{first}.{last}.{k}@admin.example".lower()
        if v == "special_chars":
            email = f"o'{last}+ops.{k}@admin.example".lower()
        value = {
            "email": email,
            "name": c.text(f"{first} {last}"),
            "role": c.enum(k, ADMIN_ROLES),
            "clientIds": c.array(sorted({c.ref("client")
                                         for _ in range(c.num(1, 4))})),
            "lastLoginAt": c.opt(c.date()),
            "mfaEnabled": c.chance(0.6),
        }
        _emit(c, "admin_user", k, plan, f"admin_user:{email}", value, {"admin_users": 1})


def _audit(c: KvContext) -> None:
    c.stream(f"{c.seed}:audit")
    admins, orders = c.counts["admin_user"], c.counts["order"]
    for k in range(c.counts["audit"]):
        c.start(k)
        at = c.date()
        day = at[:10] if at[:4].isdigit() else "2023-01-01"
        action = c.pick(AUDIT_ACTIONS)
        value = c.strip({
            "actor": f"admin{c.below(admins)}@admin.example",
            "action": action,
            "entity": action.split(".")[0],
            "entityId": c.order_id(c.below(orders)),
            "at": at,
            "details": c.opt({"ip": f"10.0.{c.below(256)}.{c.below(256)}",
                              "userAgent": "Mozilla/5.0",
                              "note": c.text("")}),
        })
        c.put("audit", f"audit:{day}:{k + 1:06d}", value)
        c.tally.rows["audit_log"] += 1


def _noise(c: KvContext) -> None:
    c.stream(f"{c.seed}:noise")
    c.start(0)
    for k in range(c.counts["cache"]):
        c.put("cache (unmatched)", f"cache:stats:{k + 1:04d}",
              {"hits": c.below(10_000), "misses": c.below(1_000)})
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
    change = set_field(path, value)

    def apply(c: KvContext, k: int, doc: dict[str, Any]) -> tuple[str, str, str]:
        change(doc)
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
          rows: dict[str, int]) -> dict[str, Any]:
    """Write one entity, damaged if the plan says so; return it as built (undamaged)."""
    value = c.strip(value)
    defect = plan.defect(k) if plan.rate else None
    if defect is None:
        for t, n in rows.items():
            c.tally.rows[t] += n
        c.put(kind, key, value)
    else:
        damaged = dict(value)
        table, fld, error_class = DEFECTS[kind][defect](c, k, damaged)
        c.tally.reject(kind, key, table, fld, error_class, defect)
        c.put(kind, key, damaged)
    return value


# --------------------------------------------------------------------------- driver


FAMILIES: list[tuple[str, Callable[[KvContext], None]]] = [
    ("client", _clients), ("site", _sites), ("catalog", _catalogs), ("gift", _gifts),
    ("employee", _employees), ("order", _orders), ("admin_user", _admins), ("audit", _audit),
    ("noise", _noise),
]
"""Key families, written in this order."""

COST_US: dict[str, float] = {"order": 18, "gift": 14, "client": 14, "employee": 11,
                             "site": 10, "catalog": 8, "admin_user": 8, "audit": 8}
"""Rough microseconds per key: the costliest family is handed out first."""


def family_keys(c: KvContext, family: str) -> int:
    """How many keys ``family`` writes: each family knows where its time stamps start
    without waiting for the ones before it."""
    n = c.counts
    if family == "client":
        return sum(sum(_client_keys(c, k)) for k in range(n["client"])) + 2 * c.edge
    if family == "site":
        bad = c.plan("site").is_bad
        return sum(2 + _site_staging(c, k) - bad(k) for k in range(n["site"]))
    if family == "catalog":
        return 2 * n["catalog"]
    if family == "gift":
        return n["gift"] + 1  # and gifts:all
    if family == "noise":
        return n["cache"] + 6
    return n[family]


def generate_kv(out: str, *, scale: float = 1.0, seed: int = 0, edge_cases: bool = False,
                bad_rate: float = 0.0, table: str | None = None,
                manifest_path: str | None = None, replace: bool = False,
                workers: int | None = None) -> Manifest:
    """Write the key-value dataset to ``out`` and its manifest.

    ``out`` is a PostgreSQL DSN (the table ``table``, default ``kv_store_demo``, is created
    and loaded; ``replace=True`` drops an existing one first) or a path ending in ``.jsonl``.
    The manifest goes to ``manifest_path``, else next to a ``.jsonl`` file as
    ``manifest.json``, else ``./manifest-kv.json``. Families of keys are generated by up to
    ``workers`` processes at once (default: one per CPU for a big dataset) and written in
    their fixed order: same arguments, same bytes, whatever the number of workers.
    """
    check_bad_rate(bad_rate)
    counts = entity_counts(scale)
    jsonl = out.endswith(".jsonl")
    base = KvContext(seed=seed, edge=edge_cases, bad_rate=bad_rate, counts=counts,
                     pools=Pools(seed))
    sink = kv_sink(out, table, replace=replace)
    try:
        tallies = _write_families(base, sink, workers)
    except BaseException:
        sink.abort()
        raise
    sink.close()
    tally = Tally()
    for part in tallies:  # in family order: the manifest does not depend on timing
        tally.documents.update(part.documents)
        tally.rows.update(part.rows)
        tally.rejects.extend(part.rejects)
        tally.nulled.update(part.nulled)
        tally.dropped.update(part.dropped)
        tally.unmatched += part.unmatched
    manifest = Manifest(
        dataset="kv", seed=seed, scale=scale,
        options={"edge_cases": edge_cases, "bad_rate": bad_rate,
                 "format": "jsonl" if jsonl else "postgres",
                 "table": None if jsonl else (table or KV_TABLE_DEFAULT)},
        mapping=MAPPING,
        documents=dict(tally.documents),
        expected_rows=tally.expected_rows(TABLES),
        expected_quarantined=tally.rejects,
        expected_unmatched_keys=tally.unmatched,
        expected_nulled=dict(tally.nulled),
        expected_dropped=dict(tally.dropped),
    )
    target = manifest_path or (str(Path(out).parent / "manifest.json") if jsonl
                               else "manifest-kv.json")
    manifest.write(target)
    return manifest


def _write_family(base: KvContext, i: int, offset: int, sink: KvSink) -> Tally:
    """Generate family ``i`` (its first key being the ``offset``-th) into ``sink``."""
    family, build = FAMILIES[i]
    c = KvContext(seed=base.seed, edge=base.edge, bad_rate=base.bad_rate,
                  counts=base.counts, pools=base.pools, sink=sink, family=family,
                  written=offset)
    build(c)
    if c.written != offset + family_keys(c, family):
        raise AssertionError(f"family {family} wrote {c.written - offset} keys, "
                             f"not the {family_keys(c, family)} its time stamps assume")
    return c.tally


def _write_families(base: KvContext, sink: KvSink, workers: int | None) -> list[Tally]:
    sizes = [family_keys(base, family) for family, _ in FAMILIES]
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    if workers is None:
        workers = default_workers(sum(sizes))
    if workers > 1 and can_fork():
        costs = [n * COST_US.get(family, 5) for n, (family, _) in zip(sizes, FAMILIES,
                                                                       strict=True)]
        return _in_processes(base, sink, offsets, costs, workers)
    return [_write_family(base, i, offsets[i], sink) for i in range(len(FAMILIES))]


# --------------------------------------------------------------------------- processes

_FORKED: tuple[KvContext, KvSink, list[int], Path] | None = None
"""What forked workers inherit (set only while they run)."""


def _forked_family(i: int) -> tuple[int, Tally, Path]:
    assert _FORKED is not None
    base, sink, offsets, scratch = _FORKED
    part = sink.part(scratch / f"{i}-{FAMILIES[i][0]}.part")
    try:
        tally = _write_family(base, i, offsets[i], part)
    except BaseException:
        part.abort()
        raise
    part.close()
    return i, tally, part.path


def _in_processes(base: KvContext, sink: KvSink, offsets: list[int], costs: list[float],
                  workers: int) -> list[Tally]:
    """Generate the families in ``workers`` forked processes, each into a part file, and
    append the parts to ``sink`` in family order as soon as each is ready (parts wait on
    disk, so memory stays bounded)."""
    global _FORKED
    # the costliest family (orders) first, the others in their order: while one worker is
    # on the big one, the parts before it are made, and appended, by the others
    big = max(range(len(FAMILIES)), key=lambda i: costs[i])
    order = [big] + [i for i in range(len(FAMILIES)) if i != big]
    tallies: dict[int, Tally] = {}
    ready: dict[int, Path] = {}
    nxt = 0
    with tempfile.TemporaryDirectory(prefix=".docshift-kv-", dir=sink.scratch) as tmp:
        _FORKED = (base, sink, offsets, Path(tmp))
        try:
            # fork: the workers share the settings and text pools without pickling them
            with multiprocessing.get_context("fork").Pool(min(workers, len(FAMILIES))) as pool:
                for i, tally, path in pool.imap_unordered(_forked_family, order):
                    tallies[i] = tally
                    ready[i] = path
                    while nxt in ready:
                        sink.append(ready.pop(nxt))
                        nxt += 1
        finally:
            _FORKED = None
    return [tallies[i] for i in range(len(FAMILIES))]
