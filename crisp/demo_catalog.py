"""The demo's catalog: real photographs from an installed package, served on a loopback HTTP server.

In: a work folder. Out: a running `StaticServer` on 127.0.0.1 and a CSV feed (product_id, image_url, category,
title) whose rows point at it. The photographs ship inside scikit-image's wheel, so the demo needs no
internet and no files copied into the repo. The feed deliberately contains what real feeds contain: the
same picture under two URLs (an exact duplicate), a broken link (404), a thumbnail below the minimum size,
images with alpha and grayscale images, so a demo run shows every outcome: accepted, duplicate, rejected.
"""

from __future__ import annotations

import csv
import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# (file in skimage/data, product id, category, title)
DEMO_PHOTOS = [
    ("astronaut.png", "P-1001", "Posters", "Astronaut portrait print"),
    ("chelsea.png", "P-1002", "Pets", "Tabby cat photo"),
    ("coffee.png", "P-1003", "Kitchen", "Espresso cup"),
    ("rocket.jpg", "P-1004", "Toys", "Rocket launch print"),
    ("motorcycle_left.png", "P-1005", "Vehicles", "Motorcycle, left view"),
    ("motorcycle_right.png", "P-1005", "Vehicles", "Motorcycle, right view"),
    ("retina.jpg", "P-1006", "Medical", "Retina scan poster"),
    ("hubble_deep_field.jpg", "P-1007", "Posters", "Hubble deep field print"),
    ("ihc.png", "P-1008", "Science", "Tissue stain print"),
    ("color.png", "P-1009", "Art", "Colour wheel"),
    ("camera.png", "P-1010", "Photography", "Cameraman (grayscale)"),
    ("brick.png", "P-1011", "Home", "Brick wall texture"),
    ("grass.png", "P-1012", "Garden", "Grass texture"),
    ("gravel.png", "P-1013", "Garden", "Gravel texture"),
    ("moon.png", "P-1014", "Posters", "Moon surface"),
    ("coins.png", "P-1015", "Collectibles", "Coin set"),
    ("logo.png", "P-1016", "Brand", "Logo with transparency"),
    ("horse.png", "P-1017", "Art", "Horse silhouette"),
    ("phantom.png", "P-1018", "Science", "Phantom test image"),
    ("cell.png", "P-1019", "Science", "Cell micrograph"),
    ("microaneurysms.png", "P-1020", "Medical", "Thumbnail (too small)"),
]


def photo_folder() -> Path:
    """The folder of real photographs inside the installed scikit-image package."""
    import skimage

    folder = Path(skimage.__file__).resolve().parent / "data"
    if not (folder / "astronaut.png").is_file():
        raise FileNotFoundError(f"scikit-image's bundled photographs are missing from {folder}")
    return folder


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        pass


class StaticServer:
    """A threaded static file server on 127.0.0.1 (random port); use as a context manager."""

    def __init__(self, folder: Path):
        handler = functools.partial(_QuietHandler, directory=str(folder))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> StaticServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def write_feed(path: Path, base_url: str) -> int:
    """Write the demo feed CSV; return its number of rows."""
    rows = [
        {"product_id": pid, "image_url": f"{base_url}/{name}", "category": cat, "title": title}
        for name, pid, cat, title in DEMO_PHOTOS
    ]
    # the same picture listed again under another URL, and a link that went stale
    rows.append(
        {
            "product_id": "P-1001",
            "image_url": f"{base_url}/astronaut.png?variant=hero",
            "category": "Posters",
            "title": "Astronaut portrait print (hero)",
        }
    )
    rows.append(
        {
            "product_id": "P-1099",
            "image_url": f"{base_url}/discontinued.jpg",
            "category": "Posters",
            "title": "Discontinued item",
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["product_id", "image_url", "category", "title"])
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)
