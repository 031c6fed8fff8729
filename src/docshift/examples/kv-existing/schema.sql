-- A hand-written target for the key-value example: the schema a team would write itself
-- (or an ORM would generate) before moving data out of kv_store_<hash>.
--
--   psql "$DOCSHIFT_DSN" -f examples/kv-existing/schema.sql
--   docshift run -c examples/kv-existing/docshift.yaml
--
-- It has what docshift must respect in existing mode: CHECK constraints, a generated
-- column, defaults, an identity column, a trigger, a partial index and a trigram index.
-- docshift drops the primary, unique and foreign keys while it loads and re-creates them
-- afterwards; everything else stays in force during the load.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE SCHEMA IF NOT EXISTS gifting;

CREATE TABLE gifting.clients (
    id            uuid PRIMARY KEY,
    name          text NOT NULL,
    domain        text,
    status        text NOT NULL DEFAULT 'active'
                  CHECK (status IN ('active', 'inactive', 'trial')),
    contact_email text,
    billing_plan  text,
    settings      jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz,
    updated_at    timestamptz,
    imported_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE gifting.sites (
    id          uuid PRIMARY KEY,
    client_id   uuid NOT NULL REFERENCES gifting.clients (id),
    name        varchar(120) NOT NULL,
    domain      text NOT NULL UNIQUE,
    status      text NOT NULL CHECK (status IN ('live', 'draft', 'archived')),
    theme       jsonb,
    created_at  timestamptz NOT NULL,
    launched_at timestamptz
);

CREATE TABLE gifting.site_configs (
    site_id            uuid PRIMARY KEY REFERENCES gifting.sites (id) ON DELETE CASCADE,
    locale             text NOT NULL DEFAULT 'en-US',
    currency           varchar(3) NOT NULL DEFAULT 'USD',
    gift_budget_cents  integer CHECK (gift_budget_cents >= 0),
    shipping_countries text[] NOT NULL DEFAULT '{}',
    features           jsonb,
    updated_at         timestamptz
);

CREATE TABLE gifting.catalogs (
    id         uuid PRIMARY KEY,
    site_id    uuid NOT NULL REFERENCES gifting.sites (id),
    name       text NOT NULL,
    active     boolean NOT NULL DEFAULT true,
    created_at timestamptz
);

CREATE TABLE gifting.gifts (
    id          uuid PRIMARY KEY,
    sku         text NOT NULL UNIQUE,
    name        varchar(200) NOT NULL,
    description text,
    price_cents integer NOT NULL CHECK (price_cents >= 0),
    price       numeric(12, 2) GENERATED ALWAYS AS (price_cents / 100.0) STORED,
    currency    varchar(3),
    category    text CHECK (category IN ('electronics', 'home', 'food', 'experiences',
                                         'apparel', 'wellness', 'charity')),
    in_stock    boolean NOT NULL DEFAULT true,
    tags        text[],
    images      jsonb,
    vendor      jsonb,
    created_at  timestamptz
);

CREATE TABLE gifting.catalog_gifts (
    catalog_id uuid NOT NULL REFERENCES gifting.catalogs (id) ON DELETE CASCADE,
    gift_id    uuid NOT NULL REFERENCES gifting.gifts (id),
    position   integer NOT NULL DEFAULT 0,
    PRIMARY KEY (catalog_id, gift_id)
);

CREATE TABLE gifting.employees (
    id          uuid PRIMARY KEY,
    client_id   uuid NOT NULL REFERENCES gifting.clients (id),
    first_name  text,
    last_name   varchar(100) NOT NULL,
    full_name   text GENERATED ALWAYS AS (coalesce(first_name || ' ', '') || last_name) STORED,
    email       text NOT NULL,
    department  text,
    title       text,
    start_date  date,
    active      boolean NOT NULL DEFAULT true,
    manager_id  uuid REFERENCES gifting.employees (id) ON DELETE SET NULL,
    address     jsonb,
    updated_at  timestamptz
);

CREATE TABLE gifting.orders (
    id               uuid PRIMARY KEY,
    site_id          uuid NOT NULL REFERENCES gifting.sites (id),
    employee_id      uuid REFERENCES gifting.employees (id) ON DELETE SET NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'processing', 'shipped', 'delivered',
                                       'cancelled')),
    created_at       timestamptz NOT NULL,
    shipped_at       timestamptz,
    shipping_address jsonb,
    total_cents      bigint CHECK (total_cents >= 0),
    notes            text
);

CREATE TABLE gifting.order_items (
    order_id         uuid NOT NULL REFERENCES gifting.orders (id) ON DELETE CASCADE,
    line             integer NOT NULL,
    gift_id          uuid NOT NULL REFERENCES gifting.gifts (id),
    quantity         integer NOT NULL CHECK (quantity > 0),
    unit_price_cents integer NOT NULL CHECK (unit_price_cents >= 0),
    line_total_cents bigint GENERATED ALWAYS AS (quantity::bigint * unit_price_cents) STORED,
    PRIMARY KEY (order_id, line)
);

CREATE TABLE gifting.admin_users (
    email         text PRIMARY KEY,
    name          text,
    role          text NOT NULL CHECK (role IN ('owner', 'admin', 'viewer')),
    client_ids    uuid[] NOT NULL DEFAULT '{}',
    last_login_at timestamptz,
    mfa_enabled   boolean NOT NULL DEFAULT false
);

CREATE TABLE gifting.audit_log (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_key text NOT NULL UNIQUE,
    actor      text,
    action     text NOT NULL,
    entity     text,
    entity_id  text,
    at         timestamptz NOT NULL,
    details    jsonb
);

-- Keep e-mail addresses in one spelling and stamp each change, whoever writes the row.
CREATE FUNCTION gifting.employees_normalize() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.email := lower(NEW.email);
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TRIGGER employees_normalize
    BEFORE INSERT OR UPDATE ON gifting.employees
    FOR EACH ROW EXECUTE FUNCTION gifting.employees_normalize();

-- Open orders are what the support screens list; a partial index keeps that fast.
CREATE INDEX orders_open_idx ON gifting.orders (site_id, created_at)
    WHERE status IN ('pending', 'processing');

-- Gift search by any part of the name.
CREATE INDEX gifts_name_trgm_idx ON gifting.gifts USING gin (name gin_trgm_ops);

CREATE INDEX employees_client_idx ON gifting.employees (client_id, last_name);
CREATE INDEX orders_employee_idx ON gifting.orders (employee_id);
CREATE INDEX order_items_gift_idx ON gifting.order_items (gift_id);
