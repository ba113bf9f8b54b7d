"""The conda plugin. No conda can be installed here (PyPI's `conda` is 4.3, without the plugin
API, and conda-forge is not reachable), so its hook is called directly, through a stand-in for
`conda.plugins` with the two names the hook uses; and the entry point is checked in the
installed wheel's metadata, where conda looks for it."""

import importlib
import importlib.metadata
import sys
import types


def test_the_wheel_declares_the_conda_entry_point():
    points = importlib.metadata.entry_points(group="conda")
    mine = [p for p in points if p.value == "conda_docker.plugin"]
    assert mine, list(points)


def test_the_hook_yields_a_docker_subcommand_that_runs_the_cli(monkeypatch, capfd):
    plugins = types.ModuleType("conda.plugins")

    class CondaSubcommand:
        def __init__(self, name, summary, action):
            self.name, self.summary, self.action = name, summary, action

    plugins.hookimpl = lambda f: f
    plugins.CondaSubcommand = CondaSubcommand
    conda = types.ModuleType("conda")
    conda.plugins = plugins
    monkeypatch.setitem(sys.modules, "conda", conda)
    monkeypatch.setitem(sys.modules, "conda.plugins", plugins)
    sys.modules.pop("conda_docker.plugin", None)
    plugin = importlib.import_module("conda_docker.plugin")
    try:
        (sub,) = list(plugin.conda_subcommands())
        assert sub.name == "docker" and "Docker" in sub.summary
        assert sub.action(["--version"]) == 0
        assert "conda-docker" in capfd.readouterr().out
        assert sub.action(["build", "--no-such-flag"]) != 0
    finally:
        sys.modules.pop("conda_docker.plugin", None)
