"""Undo a migration's effect on the target (the source is never touched).

Create mode drops the tables docshift created, and refuses, naming them, when other objects
depend on them. Existing mode removes exactly the rows this migration loaded and re-creates
the keys and indexes it dropped; rows that were there before and every table definition are
left as they were before the run. The quarantine lives in the state schema, which is dropped
too: rollback says how many quarantined documents and recorded removals it discards.
"""

from __future__ import annotations

from docshift.run.migrate import lock_run
from docshift.spec.model import Mapping
from docshift.target.connect import connect
from docshift.target.prepare import empty_target
from docshift.target.state import state_exists


def rollback(m: Mapping, dsn: str) -> list[str]:
    """Roll the migration described by ``m`` back in ``dsn``; returns what was done.

    Takes the run lock: refuses while a run is in progress against the database.
    """
    with connect(dsn) as conn:
        lock_run(conn)
        if not state_exists(conn):
            return ["Nothing to roll back: docshift has no state in this database."]
        rejects, removals = conn.execute(
            "SELECT (SELECT count(*) FROM docshift.rejects), "
            "(SELECT count(*) FROM docshift.removals)").fetchone()  # type: ignore[misc]
        lines = empty_target(conn, m)
        if rejects:
            lines.append(f"discarded {rejects:,} quarantined document(s) with docshift's state "
                         "(export them first with `docshift rejects --export` to keep them)")
        if removals:
            lines.append(f"discarded {removals:,} record(s) of rows removed or changed by a "
                         "policy (docshift.removals)")
        return lines
