"""The documentation: the site builds with --strict (a broken link or a page
missing from the navigation fails), and its home page is the README."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_the_site_builds_strict(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                        str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True,
                       timeout=120, env=os.environ | {"NO_MKDOCS_2_WARNING": "1"})
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "site" / "architecture" / "index.html").exists()


def test_the_home_page_is_the_readme():
    readme = (ROOT / "README.md").read_text()
    assert (ROOT / "docs" / "index.md").read_text() == readme.replace("](docs/", "](")
    assert len(readme.encode()) <= 12 * 1024
    for link in ("docs/operator-guide.md", "docs/configuration.md", "docs/api.md",
                 "docs/architecture.md", "docs/benchmarks.md", "docs/testing.md"):
        assert f"]({link})" in readme and (ROOT / link).exists()
