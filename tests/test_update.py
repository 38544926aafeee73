"""The update path: a project baked with cruft records the template and its answers, and `cruft update`
brings later template changes into it, keeping the user's own edits and the files the hooks pruned out.

The template is copied into a throwaway git repository (the files git tracks or would track here),
so the test bakes from a git URL as `cruft create gh:<org>/<repo>` does, never from this checkout.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from .baking import ROOT, run

pytestmark = pytest.mark.slow

# database=none prunes the most (both SQL stores, their migrations and tests).
ANSWERS = {"event_loop": "asyncio", "database": "none"}
PROJECT = "{{folder(cookiecutter.project_slug)}}"


# A fixed identity for the commits: none is configured on CI machines.
GIT = ["git", "-c", "user.name=Template Tests", "-c", "user.email=tests@example.invalid", "-c", "commit.gpgsign=false"]
CRUFT = [sys.executable, "-m", "cruft"]


def commit_all(folder: Path, message: str) -> str:
    run(folder, *GIT, "add", "--all")
    run(folder, *GIT, "commit", "--quiet", "--message", message)
    return run(folder, *GIT, "rev-parse", "HEAD").stdout.strip()


def template_copy(destination: Path) -> None:
    """Copy the template's files (tracked and untracked-but-not-ignored) into `destination`, without git history."""
    listed = run(ROOT, *GIT, "ls-files", "--cached", "--others", "--exclude-standard", "-z").stdout.split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the work tree is listed too
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def template_repository(destination: Path) -> str:
    """Copy the template into a new git repository; commit it."""
    template_copy(destination)
    run(destination, *GIT, "init", "--quiet", "--initial-branch=main")
    return commit_all(destination, "template")


def cruft_create(template: Path, output: Path) -> Path:
    """`cruft create` the ANSWERS from the template repository; return the project folder."""
    context = json.dumps(ANSWERS)
    run(template.parent, *CRUFT, "create", "--no-input", "--output-dir", output, "--extra-context", context, template)
    [project] = output.iterdir()
    return project


def tree(project: Path) -> dict[str, bytes]:
    """Every file of a project (its .git excluded) and its content."""
    return {
        str(path.relative_to(project)): path.read_bytes()
        for path in sorted(project.rglob("*"))
        if path.is_file() and ".git" not in path.relative_to(project).parts
    }


def test_cruft_update_applies_template_changes_and_keeps_local_edits(tmp_path: Path) -> None:
    template = tmp_path / "template"
    template.mkdir()
    first = template_repository(template)
    project = cruft_create(template, tmp_path / "projects")
    state = json.loads((project / ".cruft.json").read_text(encoding="utf-8"))
    assert state["template"] == str(template)
    assert state["commit"] == first
    assert state["context"]["cookiecutter"].items() >= ANSWERS.items()
    answers = [f"{key}={value}" for key, value in ANSWERS.items()]
    run(tmp_path, sys.executable, "-m", "cookiecutter", "--no-input", "--output-dir", "plain", template, *answers)
    plain = tree(tmp_path / "plain" / project.name)
    assert sorted(set(tree(project)) ^ set(plain)) == []  # a cruft bake is a plain bake: the hooks ran
    assert json.loads(plain[".cruft.json"]) == state  # and a plain bake records what cruft does
    store = f"src/{state['context']['cookiecutter']['package_name']}/store_sqlite.py"
    assert not (project / store).exists()

    # The user commits the project and edits it.
    run(project, *GIT, "init", "--quiet", "--initial-branch=main")
    with (project / "README.md").open("a", encoding="utf-8") as readme:
        readme.write("\nA note the team added after baking.\n")
    commit_all(project, "baked, then edited")
    # The template moves on: a changelog line, a new rendered file, and a change to a file this project pruned.
    with (template / PROJECT / "CHANGELOG.md").open("a", encoding="utf-8") as changelog:
        changelog.write("- A change the template made after this project was baked.\n")
    (template / PROJECT / "UPGRADED.md").write_text("Package: {{ cookiecutter.package_name }}\n", encoding="utf-8")
    with (template / PROJECT / "src/{{cookiecutter.package_name}}/store_sqlite.py").open(
        "a", encoding="utf-8"
    ) as pruned_file:
        pruned_file.write("# changed in the template\n")
    second = commit_all(template, "template change")
    assert run(project, *CRUFT, "check", check=False).returncode != 0  # cruft sees the project is behind

    done = run(project, *CRUFT, "update", "--skip-apply-ask")

    assert "has been updated" in done.stdout, done.stdout
    run(project, *CRUFT, "check")  # and now up to date
    assert json.loads((project / ".cruft.json").read_text(encoding="utf-8"))["commit"] == second
    assert "- A change the template made after this project was baked.\n" in (project / "CHANGELOG.md").read_text()
    assert "A note the team added after baking." in (project / "README.md").read_text(encoding="utf-8")
    assert not (project / store).exists()  # the hooks pruned it again in both renders: no diff to apply
    fresh = tree(cruft_create(template, tmp_path / "fresh"))
    updated = tree(project)
    assert sorted(set(updated) ^ set(fresh)) == []  # same files as a new bake of the new template
    assert [name for name in fresh if fresh[name] != updated[name]] == ["README.md"]  # only the local edit differs
    assert updated["UPGRADED.md"] == f"Package: {state['context']['cookiecutter']['package_name']}\n".encode()
    status = run(project, *GIT, "status", "--porcelain", "--untracked-files=all").stdout.splitlines()
    assert sorted(line[3:] for line in status) == [
        ".cruft.json",
        "CHANGELOG.md",
        "UPGRADED.md",
    ]  # nothing else, no .rej


def test_a_plain_cookiecutter_bake_takes_template_updates_with_cruft(tmp_path: Path) -> None:
    """No `cruft link` needed: the bake names the template commit it came from, so cruft sees what it lacks."""
    template = tmp_path / "template"
    template.mkdir()
    first = template_repository(template)
    answers = [f"{key}={value}" for key, value in ANSWERS.items()]
    run(tmp_path, sys.executable, "-m", "cookiecutter", "--no-input", "--output-dir", "plain", template, *answers)
    [project] = (tmp_path / "plain").iterdir()
    assert json.loads((project / ".cruft.json").read_text(encoding="utf-8"))["commit"] == first
    run(project, *GIT, "init", "--quiet", "--initial-branch=main")
    commit_all(project, "baked")
    with (template / PROJECT / "CHANGELOG.md").open("a", encoding="utf-8") as changelog:
        changelog.write("- A change the template made after this project was baked.\n")
    second = commit_all(template, "template change")
    assert run(project, *CRUFT, "check", check=False).returncode != 0  # behind, and cruft knows it

    done = run(project, *CRUFT, "update", "--skip-apply-ask")

    assert "has been updated" in done.stdout, done.stdout
    assert json.loads((project / ".cruft.json").read_text(encoding="utf-8"))["commit"] == second
    assert "- A change the template made after this project was baked.\n" in (project / "CHANGELOG.md").read_text()


@pytest.mark.parametrize("git", ["installed", "absent"])
def test_a_template_without_git_history_bakes_with_no_cruft_record(tmp_path: Path, git: str) -> None:
    """A template from a zip file or a plain folder, on a machine with or without git: no commit to record."""
    template = tmp_path / "template"
    template_copy(template)
    env = {"PATH": str(Path(sys.executable).parent)} if git == "absent" else {}
    answers = [f"{key}={value}" for key, value in ANSWERS.items()]

    run(
        tmp_path, sys.executable, "-m", "cookiecutter", "--no-input", "--output-dir", "out", template, *answers, env=env
    )

    [project] = (tmp_path / "out").iterdir()
    assert (project / "pyproject.toml").is_file()
    assert not (project / ".cruft.json").exists()
