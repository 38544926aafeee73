"""The hooks: bad answers are refused cleanly, odd text is written safely, pruning follows its table."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
import tomllib
from email.errors import HeaderParseError
from email.headerregistry import Address, HeaderRegistry
from pathlib import Path
from types import ModuleType

import pytest
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter
from packaging.requirements import Requirement

from .baking import CHOICES, COMBINATIONS, PYTHONS, ROOT, bake, run
from .dependency_names import frozenset_literal, project_requirements, taken_names

TEMPLATE = ROOT / "{{folder(cookiecutter.project_slug)}}"


def load(path: str) -> ModuleType:
    """Import a file of the template as a module (hooks run as scripts; their logic sits in functions)."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pre_gen = load("hooks/pre_gen_project.py")
post_gen = load("hooks/post_gen_project.py")
local_extensions = load("local_extensions.py")

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
    # Dependencies of dependencies, build and install tools: each would shadow a module the project imports.
    "idna": "dependency",
    "aiohappyeyeballs": "dependency",
    "typing_extensions": "dependency",
    "packaging": "dependency",
    "pluggy": "dependency",
    "pygments": "dependency",
    "_pytest": "dependency",
    "pip": "dependency",
    "gunicorn": "dependency",
    "hatchling": "dependency",
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
    # Distributions in the project's dependency tree, however their separators are spelled.
    "aiohttp": "dependency 'aiohttp'",
    "typing_extensions": "dependency 'typing-extensions'",
    "pytest.asyncio": "dependency 'pytest-asyncio'",
    "trove-classifiers": "dependency 'trove-classifiers'",
}


@pytest.mark.parametrize(("name", "rule"), BAD_PACKAGES.items(), ids=lambda value: repr(value)[:20])
def test_bad_package_name_is_refused_with_its_rule(name: str, rule: str) -> None:
    with pytest.raises(pre_gen.AnswerError, match=rule) as caught:
        pre_gen.check_package_name(name)

    assert "e.g." in str(caught.value) or "like 'order_service'" in str(caught.value)


@pytest.mark.parametrize("name", ["orders", "order_service", "svc2", "_private"])
def test_good_package_names_pass(name: str) -> None:
    pre_gen.check_package_name(name)


# Installed with a baked project although no pyproject.toml lists them: pip and setuptools come with every virtual
# environment the README has users make, and the README has users `pip install gunicorn` to serve on every core.
TOOLS = ["pip", "setuptools", "gunicorn"]


def test_taken_names_are_those_of_the_baked_dependency_tree(cookies) -> None:  # type: ignore[no-untyped-def]
    roots = [Requirement(tool) for tool in TOOLS]
    for answers in COMBINATIONS:
        project = bake(cookies, answers)
        roots += project_requirements(tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8")))

    names, missing = taken_names(roots, PYTHONS)

    assert not missing, (
        f"{sorted(missing)} are in a baked project's dependency tree but not installed here, so their import "
        "names are unknown: add them to requirements-test.txt and install it"
    )
    # New names must be refused; a name the installed versions no longer ship (setuptools dropping pkg_resources,
    # say) may stay: another machine may have the older version, and refusing it costs nothing.
    for kind, variable in [("import", "DEPENDENCY_NAMES"), ("distribution", "DISTRIBUTION_NAMES")]:
        known = getattr(pre_gen, variable)
        if new := names[kind] - known:
            literal = frozenset_literal(variable, names[kind] | known)
            message = f"the dependency tree has new {kind} names {sorted(new)}; in hooks/pre_gen_project.py, make it"
            pytest.fail(f"{message}\n\n{literal}\n", pytrace=False)
    assert pre_gen.TAKEN_NAMES == pre_gen.DEPENDENCY_NAMES | pre_gen.PROJECT_NAMES


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
        ({"author_email": "a,b@example.com"}, "author_email"),
        ({"author_name": "Ada\nLovelace"}, "author_name"),
        ({"description": "two\nlines"}, "description"),
        ({"package_name": ""}, "package_name"),
    ],
    ids=["package", "slug", "name", "email", "email-comma", "author-newline", "description-newline", "empty-package"],
)
def test_bad_answer_stops_the_bake_with_one_line_and_leaves_nothing(
    cookies, tmp_path: Path, capfd: pytest.CaptureFixture[str], answers: dict[str, str], key: str
) -> None:  # type: ignore[no-untyped-def]
    result = cookies.bake(extra_context=answers)

    assert isinstance(result.exception, FailedHookException)
    errors = [line for line in capfd.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith(f"error: {key} ")
    assert [path for bake in (tmp_path / "cookies").iterdir() for path in bake.iterdir()] == []  # nor folders


def test_the_command_line_shows_the_refusal_as_the_readme_says(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    cli = Path(sys.executable).with_name("cookiecutter")

    done = run(tmp_path, cli, "--no-input", ROOT, "project_slug=My Project", check=False, env={"NO_COLOR": "1"})

    [ours] = done.stderr.splitlines()
    theirs = done.stdout.splitlines()
    assert done.returncode == 1
    assert f"```text\n{ours}\n```" in readme
    assert theirs[0] == "ERROR: Stopping generation because pre_gen_project hook script didn't exit successfully"
    assert theirs[1] == "Traceback (most recent call last):"
    assert theirs[-1] == "Hook script failed (exit status: 1)"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("project_name", "package"),
    [
        ("Customer Relationship Management Service", "customer_relationship_management"),
        ("Supercalifragilisticexpialidociousness Unlimited Ltd", "supercalifragilisticexpialidocio"),
        (" ".join(["Order"] * 30), "order_order_order_order_order"),
    ],
)
def test_a_long_project_name_bakes_with_a_slug_and_package_derived_to_fit(  # type: ignore[no-untyped-def]
    cookies, project_name: str, package: str
) -> None:
    """Names derived from the user's own answer are never refused: cut at a word, within the hook's limits."""
    result = cookies.bake(extra_context={"project_name": project_name})

    assert result.exception is None
    assert len(result.project_path.name) <= pre_gen.SLUG_MAX
    assert [folder.name for folder in (result.project_path / "src").iterdir()] == [package]
    assert len(package) <= pre_gen.PACKAGE_MAX == local_extensions.PACKAGE_MAX


def test_the_readmes_first_command_leaves_the_checkout_clean(cookies) -> None:  # type: ignore[no-untyped-def]
    """It bakes the default project into the checkout, where git ignores it: `git status` shows nothing new."""
    default = bake(cookies, {}).name

    done = run(ROOT, "git", "check-ignore", "--no-index", f"{default}/", check=False)

    assert done.returncode == 0, f"{default}/ is not in .gitignore"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_refusal_is_bold_red_on_a_terminal_unless_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert pre_gen.label(Terminal()) == "\033[1;31merror:\033[0m"
    assert pre_gen.label(io.StringIO()) == "error:"
    monkeypatch.setenv("NO_COLOR", "1")
    assert pre_gen.label(Terminal()) == "error:"


def test_command_line_answers_are_jinja_templates_as_the_readme_says(cookies) -> None:  # type: ignore[no-untyped-def]
    project = bake(cookies, {"project_name": "{{ 7*7 }}", "project_slug": "forty-nine", "package_name": "forty_nine"})

    assert "`project_name='{{ 7*7 }}'` bakes a project\nnamed `49`" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert (project / "README.md").read_text(encoding="utf-8").startswith("# 49\n")


CONTROL_CHARACTERS = ["\n", "\r", "\t", "\x00", "\x1b", "\x7f", "\x85", "\u2028", "\u2029", "\ud800"]
FREE_TEXT = ["project_name", "description", "author_name"]
GOOD_ANSWERS = {
    "project_name": "Order Service",
    "project_slug": "order-service",
    "package_name": "order_service",
    "description": "Orders.",
    "author_name": "Ada",
    "author_email": "ada@example.com",
}


@pytest.mark.parametrize("key", FREE_TEXT)
@pytest.mark.parametrize("character", CONTROL_CHARACTERS, ids=lambda character: f"U+{ord(character):04X}")
def test_control_character_in_free_text_is_refused_naming_it(key: str, character: str) -> None:
    answers = GOOD_ANSWERS | {key: f"Order{character}Service"}

    with pytest.raises(pre_gen.AnswerError, match=rf"^{key} .* contains U\+{ord(character):04X}, .* at character 6;"):
        pre_gen.validate(answers)


def test_a_newline_in_the_author_is_what_the_package_metadata_refuses() -> None:
    # hatchling writes `Author-email` with email.headerregistry.Address, which refuses CR and LF.
    with pytest.raises(ValueError, match="cannot contain CR or LF"):
        Address(display_name="Ada\nLovelace", addr_spec="ada@example.com")


def author_email_header(name: str, email: str) -> list[tuple[str, str]]:
    """What the build backend makes of pyproject's authors, read back as an installer reads the metadata.

    hatchling writes `Author-email: {str(Address(display_name=name, addr_spec=email))}` and reads the header
    back with email.headerregistry; the same two steps here, so an address they refuse fails as a build would.
    """
    header = str(Address(display_name=name, addr_spec=email))
    parsed = HeaderRegistry()("resent-from", header)
    return [(address.display_name, address.addr_spec) for address in parsed.addresses]


GOOD_EMAILS = [
    "o'brien+tag@mail.example.org",
    "first.last@example.co.uk",
    "x@a-b.example",
    "!#$%&'*+/=?^_`{|}~-@example.com",
    "UPPER@EXAMPLE.COM",
    "digits123@123.example",
]
# Each of these makes the project unbuildable (the metadata refuses it) or is not an address at all.
UNBUILDABLE_EMAILS = ["a,b@x.y", "a<b>@x.y", 'a"b@x.y', "a b@x.y", "a..b@x.y", ".a@x.y", "a.@x.y", "a@b@x.y"]
BAD_EMAILS = [
    *UNBUILDABLE_EMAILS,
    "not-an-email",
    "a@localhost",
    "a@-x.y",
    "a@x-.y",
    "a@x_y.z",
    "a@x..y",
    "a@.x.y",
    "a@x.y.",
    "a@[127.0.0.1]",
    '"quoted"@x.y',
    "ü@x.y",
    "a@x.y\n",
    "",
]


@pytest.mark.parametrize("email", GOOD_EMAILS)
def test_unusual_valid_email_passes_and_the_package_metadata_takes_it(email: str) -> None:
    pre_gen.check_email(email)

    assert author_email_header("Zoë O'Brien, Jr.", email) == [("Zoë O'Brien, Jr.", email)]


@pytest.mark.parametrize("email", BAD_EMAILS)
def test_bad_email_is_refused(email: str) -> None:
    with pytest.raises(pre_gen.AnswerError, match=r"^author_email .* is not an address the package metadata accepts"):
        pre_gen.check_email(email)


@pytest.mark.parametrize("email", UNBUILDABLE_EMAILS)
def test_the_refused_emails_are_ones_the_package_metadata_refuses(email: str) -> None:
    with pytest.raises((ValueError, HeaderParseError)):  # the parser's words vary with the fault
        author_email_header("Ada", email)


def test_baked_pyproject_carries_an_unusual_email_into_valid_metadata(cookies) -> None:  # type: ignore[no-untyped-def]
    email = "o'brien+tag@mail.example.org"
    project = bake(cookies, {"author_name": "Zoë O'Brien", "author_email": email})

    [author] = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]["authors"]

    assert author_email_header(author["name"], author["email"]) == [("Zoë O'Brien", email)]


def test_a_name_without_letters_or_digits_gets_a_fallback_slug(cookies) -> None:  # type: ignore[no-untyped-def]
    # slugify("🚀") is "": the project folder would be the output folder itself.
    result = cookies.bake(extra_context={"project_name": "🚀"})

    assert result.exception is None, result.exception
    assert (result.context["project_slug"], result.context["package_name"]) == ("service", "service")
    assert Path(result.project_path).name == "service"


@pytest.mark.parametrize(
    ("slug", "said"),
    [
        ("", "project_slug is empty"),
        ("a/b", "project_slug 'a/b' is not a valid distribution name"),
        ("../outside/deeper", "project_slug '../outside/deeper' is not a valid distribution name"),
        ("..", "project_slug '..' is not a valid distribution name"),
        ("a\\b", "project_slug 'a\\\\b' is not a valid distribution name"),
    ],
    ids=["empty", "nested", "outside", "parent", "backslash"],
)
@pytest.mark.parametrize("overwrite", [False, True], ids=["new", "overwrite"])
def test_a_slug_that_is_not_one_folder_is_refused_by_the_hook_leaving_nothing_anywhere(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], slug: str, said: str, overwrite: bool
) -> None:
    # Cookiecutter makes the project folder, named by rendering the slug, before the hook runs; then `a/b` made
    # `a/`, `../outside/deeper` made `outside/` next to the output folder, and "" named the output folder itself.
    output = tmp_path / "out"
    output.mkdir()

    with pytest.raises(FailedHookException):
        cookiecutter(
            str(ROOT),
            no_input=True,
            extra_context={"project_slug": slug},
            output_dir=output,
            overwrite_if_exists=overwrite,
        )

    errors = [line for line in capfd.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith(f"error: {said}")
    assert sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*")) == [Path("out")]


@pytest.mark.parametrize(
    "text",
    [
        'Zoë\'s "quoted" shop',
        "back\\slash \\n and \\u0041",
        "braces {{ cookiecutter.project_slug }} and {% raw %}",
        "a family 👨\u200d👩\u200d👧 joined by zero-width joiners",
        "emoji 😀 and ümlauts, 日本語",
    ],
    ids=["quotes", "backslashes", "jinja", "zwj", "unicode"],
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
