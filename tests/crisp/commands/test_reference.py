"""`crisp reference push|list` through the CLI entry point, on a settings root."""

from __future__ import annotations

import json

from crisp.cli import main


def test_push_and_list(tmp_path, shared_data, monkeypatch, capsys):
    monkeypatch.setenv("CRISP_ROOT", f"file://{tmp_path}/root")
    assert main(["reference", "push", str(shared_data / "sr_benchmarks" / "Set14")]) == 0
    assert "Set14: 14 images ->" in capsys.readouterr().out
    assert (tmp_path / "root" / "reference" / "Set14" / "_manifest.json").is_file()
    assert main(["reference", "list", "--json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["name"] == "Set14" and len(listed["files"]) == 14
    assert main(["reference", "push", str(tmp_path / "none"), "--name", "Set5"]) == 2
    assert "holds no images" in capsys.readouterr().err
