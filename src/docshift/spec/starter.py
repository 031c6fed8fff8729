"""The commented starter mapping file that ``docshift init`` writes."""

STARTER = """\
# docshift mapping file. Reference: `docshift --help` (commands, the mapping file's
# sections, exit codes); `docshift plan` checks this file and says what to fix.
version: 1

source:
  kind: mongodump            # mongodb | mongodump | json | postgres_kv
  path: ./dump/mydb          # mongodump: the dump folder (or the dump root with one database)
  # kind: mongodb
  # uri: ${MONGO_URI}        # ${VAR} reads the environment; ${VAR:-default} has a fallback
  # database: mydb
  # kind: postgres_kv
  # table: kv_store_abc123   # key/value columns: key_column, value_column

target:
  # dsn: ${DATABASE_URL}     # omitted: the embedded PostgreSQL under ./.docshift/
  schema: public
  mode: create               # create: docshift creates the tables; existing: load into yours

options:
  naming: as_is              # camelCase: column created_at reads field createdAt
  unmapped: report           # report fields no column reads; or ignore
  on_orphan: reject          # default for references: reject | null | keep

tables:
  users:
    from: Users              # a collection (or keys: ["user:{id}"] for a key-value source)
    primary_key: id
    ignore: [__v]
    columns:
      id: {type: uuid, from: _id}          # ObjectIds become order-preserving UUIDs
      email: {type: text, nullable: false, unique: true}
      name: text
      status: {type: text, map: {suspended: inactive}, enum: [active, inactive]}
      created_at: {type: timestamptz, from: createdAt}

  user_tags:                 # a child table from an array of scalars
    from: Users
    unnest: tags
    primary_key: [user_id, tag]
    on_duplicate: keep_first
    columns:
      user_id: {type: uuid, from: _id, references: users}
      tag: {type: text, from: $item}
"""
