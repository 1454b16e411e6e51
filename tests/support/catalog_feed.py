"""Catalog feeds for tests: the real product photos' catalog.csv turned into a feed served over loopback.

In: the product photo folder (with catalog.csv), a base URL (the loopback server) and which catalog rows
to use. Out: `catalog_rows` (the catalog as dicts, in file order) and `write_feed`, which writes a CSV feed
whose columns are the catalog's own (`sku` -> product_id, `product_name` -> title, `category`, ...) plus
`url` = base URL + "/" + file, so the feed exercises the column aliases and carries the extra columns.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from pathlib import Path


def catalog_rows(product_photos: Path) -> list[dict[str, str]]:
    with open(product_photos / "catalog.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def write_feed(path: Path, rows: Iterable[Mapping[str, str]], base_url: str, query: str = "") -> Path:
    """Write a CSV feed of `rows` (catalog dicts) with url = base_url/file[?query]; returns the path."""
    rows = list(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = ["url", *(rows[0].keys() if rows else ["sku"])]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "url": f"{base_url}/{row['file']}{('?' + query) if query else ''}"})
    return path
