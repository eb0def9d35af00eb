"""PII key rotation benchmark: how long the profile service must stay down to rotate PII_KEY.

    python bench/pii_rotation.py [--customers 20000] [--batch-size 500] [--external-every 2]

(a) seed a fresh profile database with C customers written the way the service writes them
    (ProfileRepository.write_identities and set_external_ids under the old key: e-mail, phone, name with
    its prefix indexes, address; one ERP id for every --external-every customer);
(b) ``rotate_pii_key`` (crm_profile/usecases/pii_rotation.py) to a new key, as crm-profile-rotate-pii-key
    runs it: the read-only check, the rewriting in batches of --batch-size customers (one
    transaction each), the read-only verification → seconds of each and customers per second
    over the whole run (the downtime), with the row counts.

Uses an embedded PostgreSQL (or DATABASE_URL's server); no broker and no service process (the
rotation runs with the service stopped). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from crm_profile.domain.pii import PiiVault  # noqa: E402
from crm_profile.pii_rotation import rotate_pii_key, units  # noqa: E402
from crm_profile.repository import IdentityChange, ProfileRepository  # noqa: E402
from crm_shared.devstack import drop_database, ensure_database, with_database  # noqa: E402
from crm_shared.logging import configure_logging  # noqa: E402
from crm_shared.migrations import upgrade  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

from bench.backbone import postgres_server  # noqa: E402

OLD_KEY = b"bench-old-pii-key-0123456789abcdef"
NEW_KEY = os.urandom(32)
GIVEN = ("Mei", "Wei", "Li", "Anna", "Jun", "Xiu Ying", "Hao", "Lena")
FAMILY = ("Chen", "Wang", "Zhang", "Liu", "Schmidt", "Huang", "Zhao", "Nguyen")


async def seed(engine, customers: int, external_every: int) -> None:
    vault = PiiVault(OLD_KEY)
    at = datetime.now(UTC)
    for start in range(0, customers, 1000):
        changes = [IdentityChange(
            customer_id=f"r-{i:07d}", changed_at=at, source="bench",
            email=f"customer.{i}@example.com", phone=f"+86139{i:08d}",
            name=f"{GIVEN[i % len(GIVEN)]} {FAMILY[(i // 8) % len(FAMILY)]}{i % 97}",
            address=f"{i % 400} Nanjing Road, Shanghai", consents={"email": i % 3 == 0})
            for i in range(start, min(start + 1000, customers))]
        async with engine.connect() as tx:
            repo = ProfileRepository(tx)
            await repo.write_identities(vault, changes)
            for change in changes[::external_every]:
                await repo.set_external_ids(vault, change.customer_id, {"erp": f"E-{change.customer_id}"}, "bench")
            await tx.commit()
    async with engine.connect() as db:
        await db.exec_driver_sql("ANALYZE")
        await db.commit()


async def main(args: argparse.Namespace) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="crm-bench-pii-rotation-"))
    server_url, postgres = postgres_server(workdir)
    name = f"bench_{uuid.uuid4().hex[:8]}"
    url = with_database(server_url, name).replace("postgresql://", "postgresql+asyncpg://", 1)
    result: dict = {"bench": "pii_rotation", "customers": args.customers, "batch_size": args.batch_size}
    try:
        await ensure_database(server_url, name)
        await asyncio.to_thread(upgrade, "crm_profile:migrations", url)
        engine = create_async_engine(url)
        try:
            started = time.perf_counter()
            await seed(engine, args.customers, args.external_every)
            result["seed_seconds"] = round(time.perf_counter() - started, 1)
            async with engine.connect() as db:
                result["name_index_rows"] = await db.scalar(_count("customer_name_index"))
                result["external_ids"] = await db.scalar(_count("customer_external_ids"))
            report = await rotate_pii_key(units(engine), OLD_KEY, NEW_KEY, args.batch_size)
        finally:
            await engine.dispose()
        result.update({
            "complete": report.complete, "ciphertexts": report.preflight.ciphertexts,
            "ciphertexts_resealed": report.ciphertexts_resealed, "name_index_rows_written": report.name_index_rows,
            "seconds": report.seconds, "preflight_seconds": report.preflight_seconds,
            "rewrite_seconds": report.rewrite_seconds, "verify_seconds": report.verify_seconds,
            "customers_per_s": report.customers_per_s,
            "rewrite_customers_per_s": round(report.customers / report.rewrite_seconds),
        })
    finally:
        await drop_database(server_url, name)
        if postgres is not None:
            postgres.stop()
    result["targets"] = {"20,000 customers in under a minute": result["seconds"] < 60 * args.customers / 20_000}
    return result


def _count(table: str):
    return text(f"SELECT count(*) FROM {table}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--external-every", type=int, default=2)
    configure_logging("bench", "WARNING")  # the rotation's progress lines stay off stdout
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
