"""Launcher: the settings' `launch` section picks where a DAG's training runs; a bad value is one clear error.
(The local path: test_launch.py; the Kubernetes path: test_launch_k8s.py and the sr_train DAG test.)"""

from __future__ import annotations

import pytest

from crisp.settings import ConfigError, load_settings


def test_launch_settings_from_the_environment():
    settings = load_settings(
        environ={"CRISP_LAUNCH__KIND": "kubernetes", "CRISP_LAUNCH__KUBERNETES__NAMESPACE": "ml"}
    )
    assert (settings.launch.kind, settings.launch.kubernetes.namespace) == ("kubernetes", "ml")
    assert load_settings(environ={}).launch.kind == "local"


def test_a_bad_launch_kind_names_the_key():
    with pytest.raises(ConfigError, match=r"launch\.kind"):
        load_settings(environ={"CRISP_LAUNCH__KIND": "slurm"})
