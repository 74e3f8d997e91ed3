"""``pipeline.configwatch``: project.toml edited on disk is applied, refused with its key, or held for a restart.

The watch is asked to look once per step (``check()``), as its poll does every second; the
edits are real files, the events go to the real store.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gangline.pipeline.configwatch import ConfigWatch
from gangline.project.config import ProjectConfig
from kits.pipeline_kit import Project


@pytest.fixture
def project(tmp_path: Path) -> Project:
    project = Project(tmp_path)
    project.agent("coder", [])
    project.configure(gates=[("tests", "true")], max_retries=2)
    return project


def watch_of(project: Project) -> tuple[ConfigWatch, list[ProjectConfig]]:
    applied: list[ProjectConfig] = []
    assert project.config is not None
    return ConfigWatch(project.paths, project.config, {}, project.store, applied.append, lambda: 1000.0), applied


def edit(project: Project, old: str, new: str) -> None:
    path = project.paths.config_file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def kinds(project: Project) -> list[str]:
    return [event.kind for event in project.store.events_after() if event.kind.startswith("config_")]


def test_an_edit_that_loads_is_applied_once_and_an_untouched_file_is_not_read_again(project: Project) -> None:
    watch, applied = watch_of(project)
    assert watch.check() is False  # nothing changed since it started
    edit(project, "max_retries = 2", "max_retries = 5")
    assert watch.check() is True
    assert [config.max_retries for config in applied] == [5]
    assert watch.check() is False
    assert kinds(project) == ["config_applied"]
    assert watch.state.error is None and watch.state.restart_needed == ()


def test_a_broken_edit_is_refused_with_its_key_and_the_last_good_one_stays(project: Project) -> None:
    watch, applied = watch_of(project)
    edit(project, "max_retries = 2", "max_retries = -1")
    assert watch.check() is False
    assert applied == []
    assert watch.state.error is not None
    assert watch.state.error.endswith("project.toml: max_retries: expected an integer of at least 0, got -1")
    refused = project.store.events_after()[-1]
    assert (refused.kind, refused.reason) == ("config_refused", watch.state.error)

    edit(project, "max_retries = -1", "max_retries = 4")  # mended: applied, and the refusal is forgotten
    assert watch.check() is True
    assert applied[-1].max_retries == 4 and watch.state.error is None


@pytest.mark.parametrize(
    ("broken", "said"),
    [
        (b"max_retries = \n", "invalid TOML"),
        (b'base_branch = "main"\n\xff\n', "expected UTF-8 text, got an invalid byte at offset 21"),
        (b'[[gate]]\nname = "x"\n', "gate[1].command"),
    ],
)
def test_each_kind_of_broken_file_is_refused_and_said(project: Project, broken: bytes, said: str) -> None:
    watch, applied = watch_of(project)
    project.paths.config_file.write_bytes(broken)
    watch.check()
    assert applied == [] and watch.state.error is not None and said in watch.state.error, watch.state.error


def test_settings_read_once_at_start_are_kept_and_reported_as_waiting_for_a_restart(project: Project) -> None:
    watch, applied = watch_of(project)
    project.paths.config_file.write_text(
        project.paths.config_file.read_text().replace("max_retries = 2", 'max_retries = 1\nbase_branch = "trunk"')
    )
    assert watch.check() is True
    assert applied[-1].base_branch == "main" and applied[-1].max_retries == 1  # the rest is in force now
    assert watch.state.restart_needed == ("base_branch",)
    assert project.store.events_after()[-1].data == {"restart_needed": ["base_branch"]}


def test_a_file_gone_for_a_moment_changes_nothing(project: Project) -> None:
    watch, applied = watch_of(project)
    text = project.paths.config_file.read_text()
    project.paths.config_file.unlink()  # an editor saving by rename
    assert watch.check() is False
    project.paths.config_file.write_text(text)
    assert watch.check() is False  # the same text again: nothing to apply
    assert applied == [] and kinds(project) == []
