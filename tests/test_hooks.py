"""The hooks: bad answers are refused cleanly, odd text is written safely, pruning follows its table."""

from __future__ import annotations

import importlib.util
import json
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter

from .baking import CHOICES, ROOT, run

TEMPLATE = ROOT / "{{cookiecutter.project_slug}}"


def load_hook(name: str) -> ModuleType:
    """Import a hook file as a module (hooks run as scripts; their logic sits in functions)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "hooks" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pre_gen = load_hook("pre_gen_project")
post_gen = load_hook("post_gen_project")

BAD_PACKAGES = {
    "my-project!": "not a lowercase Python identifier",
    "123abc": "not a lowercase Python identifier",
    "has space": "not a lowercase Python identifier",
    "MyPackage": "not a lowercase Python identifier",
    "": "empty",
    "class": "keyword",
    "async": "keyword",
    "match": "keyword",
    "list": "builtin",
    "asyncio": "standard-library module",
    "json": "standard-library module",
    "test": "standard-library module",
    "email": "standard-library module",
    "aiohttp": "dependency",
    "uvloop": "dependency",
    "pytest": "dependency",
    "asyncpg": "dependency",
    "aiosqlite": "dependency",
    "tests": "dependency or folder",
    "a" * 33: "longer than 32",
}
BAD_SLUGS = {
    "My Project": "not a valid distribution name",
    "-leading-dash": "not a valid distribution name",
    "trailing-": "not a valid distribution name",
    "a/b": "not a valid distribution name",
    "..": "not a valid distribution name",
    "x" * 65: "longer than 64",
}


@pytest.mark.parametrize(("name", "rule"), BAD_PACKAGES.items(), ids=lambda value: repr(value)[:20])
def test_bad_package_name_is_refused_with_its_rule(name: str, rule: str) -> None:
    with pytest.raises(pre_gen.AnswerError, match=rule) as caught:
        pre_gen.check_package_name(name)

    assert "e.g." in str(caught.value) or "like 'order_service'" in str(caught.value)


@pytest.mark.parametrize("name", ["orders", "order_service", "svc2", "_private"])
def test_good_package_names_pass(name: str) -> None:
    pre_gen.check_package_name(name)


@pytest.mark.parametrize(("slug", "rule"), BAD_SLUGS.items(), ids=lambda value: repr(value)[:20])
def test_bad_slug_is_refused_with_its_rule(slug: str, rule: str) -> None:
    with pytest.raises(pre_gen.AnswerError, match=rule):
        pre_gen.check_project_slug(slug)


@pytest.mark.parametrize(
    ("answers", "key"),
    [
        ({"package_name": "class"}, "package_name"),
        ({"project_slug": "Bad Slug", "package_name": "ok"}, "project_slug"),
        ({"project_name": "   ", "project_slug": "blank-name"}, "project_name"),
        ({"author_email": "not-an-email"}, "author_email"),
    ],
    ids=["package", "slug", "name", "email"],
)
def test_bad_answer_stops_the_bake_with_one_line_and_leaves_nothing(
    cookies, tmp_path: Path, capfd: pytest.CaptureFixture[str], answers: dict[str, str], key: str
) -> None:  # type: ignore[no-untyped-def]
    result = cookies.bake(extra_context=answers)

    assert isinstance(result.exception, FailedHookException)
    errors = [line for line in capfd.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith(f"error: {key} ")
    assert [path for path in (tmp_path / "cookies").rglob("*") if path.is_file()] == []


@pytest.mark.parametrize(
    "text",
    [
        'Zoë\'s "quoted" shop',
        "back\\slash \\n and \\u0041",
        "braces {{ cookiecutter.project_slug }} and {% raw %}",
        "two\nlines\tand a tab",
        "emoji 😀 and ümlauts, 日本語",
    ],
    ids=["quotes", "backslashes", "jinja", "newline", "unicode"],
)
def test_odd_free_text_bakes_a_valid_project(tmp_path: Path, text: str) -> None:
    # A replay file passes answers verbatim, as a user typing them at the prompt would.
    replay = tmp_path / "replay.json"
    context = json.loads((ROOT / "cookiecutter.json").read_text(encoding="utf-8"))
    answers = {key: value[0] if key in CHOICES else value for key, value in context.items()}
    answers |= {"project_name": text, "description": text, "author_name": text}
    answers |= {"project_slug": "odd-text", "package_name": "odd_text", "_template": str(ROOT)}
    replay.write_text(json.dumps({"cookiecutter": answers}), encoding="utf-8")

    project = Path(cookiecutter(str(ROOT), replay=str(replay), output_dir=str(tmp_path / "out")))

    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert pyproject["description"] == text
    assert pyproject["authors"] == [{"name": text, "email": "you@example.com"}]
    package = project / "src" / "odd_text"
    assert compile((package / "__init__.py").read_text(encoding="utf-8"), "__init__.py", "exec")
    run(project, sys.executable, "-c", "import odd_text; print(odd_text.__doc__)")
    run(project, sys.executable, "-m", "ruff", "check", "--no-cache", ".")
    assert text.split("\n")[0] in (project / "README.md").read_text(encoding="utf-8")


def test_every_path_in_the_prune_table_exists_in_the_template() -> None:
    listed = {path for paths in post_gen.REMOVE.values() for path in paths}

    missing = [
        path for path in listed if not (TEMPLATE / path.format(package="{{cookiecutter.package_name}}")).exists()
    ]

    assert missing == []


def test_prune_table_covers_every_database_choice() -> None:
    choices = json.loads((ROOT / "cookiecutter.json").read_text(encoding="utf-8"))["database"]

    assert sorted(value for key, value in post_gen.REMOVE if key == "database") == sorted(choices)


def test_remover_deletes_files_and_folders(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "inside.txt").write_text("x")
    (tmp_path / "file.txt").write_text("x")

    post_gen.remove(tmp_path, ["folder", "file.txt"])

    assert list(tmp_path.iterdir()) == []


def test_remover_fails_loudly_on_a_missing_path(tmp_path: Path) -> None:
    (tmp_path / "present.txt").write_text("x")

    with pytest.raises(post_gen.PruneError, match=r"absent\.txt"):
        post_gen.remove(tmp_path, ["present.txt", "absent.txt"])

    assert (tmp_path / "present.txt").exists()


def test_paths_to_remove_fills_in_the_package() -> None:
    paths = post_gen.paths_to_remove({"database": "none", "event_loop": "asyncio", "package_name": "shop"})

    assert "src/shop/store_sqlite.py" in paths
    assert all("{package}" not in path for path in paths)
