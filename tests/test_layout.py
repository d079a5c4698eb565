"""The README's layout tree is the package, one line per module, and the documentation the code
cites exists: so neither can go stale unnoticed."""
import re

from conftest import ROOT

PACKAGE = ROOT / "readatl06"
CITING = ("readatl06", "tests", "bench", "scripts", "jobs")


def layout_block():
    """The fenced block of the README's "## Layout" section, as lines."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    m = re.search(r"^```\n(.*?)^```$", section, re.S | re.M)
    assert m, "README: no ``` block under ## Layout"
    return m.group(1).splitlines()


def listed_modules():
    """{path relative to the repository: description} of every line under ``readatl06/``; a
    package's line (``name/``) stands for its ``__init__.py``. Two spaces per level."""
    out, stack, inside = {}, [], False
    for line in layout_block():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        assert indent % 2 == 0, f"README layout: odd indentation: {line!r}"
        depth = indent // 2
        name, _, description = line.strip().partition(" ")
        if depth == 0:
            inside = name == "readatl06/"
            assert (ROOT / name).exists(), f"README layout: {name} does not exist"
        if not inside:
            continue
        assert description.strip(), f"README layout: {name} has no description"
        del stack[depth:]
        assert len(stack) == depth, f"README layout: {line!r} is indented below no package"
        path = "/".join(stack + [name])
        key = path + "__init__.py" if name.endswith("/") else path
        assert name.endswith(("/", ".py")), f"README layout: {name} is neither a package nor a module"
        assert key not in out, f"README layout: {key} listed twice"
        out[key] = description.strip()
        if name.endswith("/"):
            stack.append(name.rstrip("/"))
    return out


def test_readme_layout_lists_exactly_the_modules_of_the_package():
    listed = set(listed_modules())
    actual = {p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    assert not actual - listed, f"modules missing from the README's layout: {sorted(actual - listed)}"
    assert not listed - actual, f"README's layout lists modules that do not exist: {sorted(listed - actual)}"


def test_top_level_stays_small():
    """At most 8 modules directly in readatl06/ (the rest live in a subpackage per layer or command)."""
    assert len(list(PACKAGE.glob("*.py"))) <= 8


def test_code_cites_the_documentation_in_the_repository():
    """Code, tests, benchmarks, scripts and job scripts cite README sections or docs/*.md pages that
    exist, never the design notes outside the repository."""
    outside = re.compile("DES" + r"IGN\b|" + "STA" + r"CK\.md")   # spelt apart: this file must not match
    cited = {}
    files = [p for d in CITING for p in (ROOT / d).rglob("*") if p.is_file() and "__pycache__" not in p.parts
             and p.suffix in (".py", ".sh", ".slurm", ".pbs", ".md", "")]
    files += [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]
    for p in files:
        text = p.read_text(errors="replace")
        for m in outside.finditer(text):
            raise AssertionError(f"{p.relative_to(ROOT)}: cites {m.group(0)}, which is not in the repository")
        for page in re.findall(r"\bdocs/[\w.-]+\.(?:md|png)", text):
            cited.setdefault(page, p.relative_to(ROOT).as_posix())
    missing = {page: where for page, where in cited.items() if not (ROOT / page).is_file()}
    assert not missing, f"cited pages that do not exist: {missing}"
    assert "docs/command-line.md" in cited and "docs/output.md" in cited
