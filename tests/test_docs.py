"""The docs say what the code does: every command and every option typer
knows is in the CLI reference (docs/cli.md, a section per command) and in
the man page's synopsis; every wg-quick key of wgquick.KEYS is in
docs/cli.md's table, as read or as ignored with its reason; the README
stays a page a newcomer reads (200 lines at most), links every page of
docs/ and gives the test command that .ci/run runs; and every relative
link between the pages resolves, anchors included."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from wgns.cli import app
from wgns.core.wgquick import KEYS

from .conftest import REPO

CLI_DOC = (REPO / "docs/cli.md").read_text()
MAN = (REPO / "man/wgns.8").read_text().replace("\\-", "-")
README = (REPO / "README.md").read_text()
PAGES = sorted((REPO / "docs").glob("*.md"))
GLOBAL = "(global)"


def commands() -> dict[str, set[str]]:
    """{command: its --options} as the CLI parses them; GLOBAL: the app's own."""
    group = typer.main.get_command(app)

    def options(params) -> set[str]:   # type: ignore[no-untyped-def]
        return {o for p in params for o in p.opts if o.startswith("--")} - {"--help"}

    out = {name: options(cmd.params)
           for name, cmd in group.commands.items()}   # type: ignore[attr-defined]
    out[GLOBAL] = options(group.params)
    return out


def sections(text: str, level: str = "## ") -> dict[str, str]:
    """{heading: its text up to the next heading of the same level}."""
    out, current = {}, None
    for line in outside_code(text):
        if line.startswith(level):
            current = line[len(level):].strip()
            out[current] = ""
        elif current is not None:
            out[current] += line + "\n"
    return out


def outside_code(text: str) -> list[str]:
    """TEXT's lines, those of fenced code blocks left out."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def table_options(section: str) -> set[str]:
    """The options a section's tables list: `--x ...` as a row's first cell."""
    return set(re.findall(r"^\| `(--[a-z-]+)", section, flags=re.M))


def documented_options(doc: str) -> dict[str, set[str]]:
    """{command: options} of docs/cli.md: a `## wgns CMD` section each, and
    `## Global options`."""
    out = {}
    for heading, text in sections(doc).items():
        m = re.fullmatch(r"wgns ([a-z-]+)", heading)
        if m:
            out[m.group(1)] = table_options(text)
        elif heading == "Global options":
            out[GLOBAL] = table_options(text)
    return out


def synopsis_options(man: str) -> dict[str, set[str]]:
    """{command: options} of the man page's SYNOPSIS: an entry per `.br`,
    starting `.B wgns CMD`; the entry of `.B wgns` alone is the global one."""
    syn = man.split(".SH SYNOPSIS\n", 1)[1].split("\n.SH ", 1)[0]
    out: dict[str, set[str]] = {}
    for entry in syn.split("\n.br\n"):
        m = re.match(r"\.B wgns(?: ([a-z-]+))?", entry)
        assert m, f"a synopsis entry that is not a wgns command: {entry[:60]!r}"
        name = m.group(1) or GLOBAL
        out.setdefault(name, set()).update(re.findall(r"--[a-z][a-z-]*", entry))
    return out


def differences(found: dict[str, set[str]], where: str) -> list[str]:
    """What FOUND (in WHERE) misses of the CLI, and what it has that the CLI has not."""
    want = commands()
    out = [f"{where}: no wgns {c}" for c in sorted(set(want) - set(found))]
    out += [f"{where}: wgns {c} is no command" for c in sorted(set(found) - set(want))]
    for c in sorted(set(want) & set(found)):
        out += [f"{where}: wgns {c}: {o} missing" for o in sorted(want[c] - found[c])]
        out += [f"{where}: wgns {c}: {o} is no option" for o in sorted(found[c] - want[c])]
    return out


def test_every_command_and_option_is_in_the_cli_reference():
    assert not differences(documented_options(CLI_DOC), "docs/cli.md")


def test_every_command_and_option_is_in_the_man_page_synopsis():
    assert not differences(synopsis_options(MAN), "man/wgns.8")


def test_the_parsers_see_a_missing_or_stale_option():
    doc = CLI_DOC.replace("| `--force` |", "| force |").replace(
        "| `--at ADDR:PORT` |", "| `--at ADDR:PORT` |\n| `--stale` | gone |")
    found = documented_options(doc)
    assert "--force" not in found["confine"] and "--stale" in found["reach"]
    man = MAN.replace(".RB [ --no-restart ]\n", "", 1)   # confine's
    assert "--no-restart" not in synopsis_options(man)["confine"]
    assert "--no-restart" in synopsis_options(man)["unconfine"]
    assert synopsis_options(MAN.replace("\n.B wgns check\n", "\n.B wgns chek\n")).get(
        "check") is None


def key_rows(doc: str) -> dict[str, list[str]]:
    """{key: its row's cells} of docs/cli.md's table of wg-quick keys."""
    text = sections(doc)["The wg-quick keys wgns reads"]
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\| `([A-Za-z]+)` \|", line)
        if m:
            rows[m.group(1)] = [c.strip() for c in line.strip().strip("|").split("|")]
    return rows


def key_problems(rows: dict[str, list[str]]) -> list[str]:
    keys = {k.title: k for k in KEYS}
    out = [f"{t}: not in docs/cli.md" for t in keys if t not in rows]
    out += [f"{t}: in docs/cli.md, not in wgquick.KEYS" for t in rows if t not in keys]
    for title, key in keys.items():
        if title not in rows:
            continue
        _, section, option, what = rows[title]
        want_section = key.section.capitalize() + (" (many)" if key.many else "")
        if section != want_section:
            out.append(f"{title}: section {section!r}, KEYS says {want_section!r}")
        if option != (f"`{key.option}`" if key.option else ""):
            out.append(f"{title}: option {option!r}, KEYS says {key.option!r}")
        want = f"ignored: {key.ignored}" if key.ignored else key.doc
        if what != want:
            out.append(f"{title}: {what!r}, KEYS says {want!r}")
    return out


def test_every_wgquick_key_is_in_the_cli_reference_with_what_wgns_does():
    assert not key_problems(key_rows(CLI_DOC))


def test_a_wrong_key_row_is_seen():
    rows = key_rows(CLI_DOC)
    table = dict(rows)
    del table["FwMark"]
    assert key_problems(table) == ["FwMark: not in docs/cli.md"]
    table = dict(rows, Table=rows["Table"][:3] + ["ignored: no reason"])
    assert key_problems(table)[0].startswith("Table: 'ignored: no reason'")


def test_the_readme_is_short_and_points_at_every_page():
    assert len(README.splitlines()) <= 200
    assert PAGES
    assert not [p.name for p in PAGES if f"](docs/{p.name})" not in README]


def test_the_readme_gives_the_test_command_that_ci_runs():
    assert re.search(r"^sudo \./run-tests +#", README, flags=re.M)
    ci = (REPO / ".ci/run").read_text()
    assert re.search(r"^exec \./run-tests ", ci, flags=re.M), ci


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(ln.lstrip("#")) for ln in outside_code(path.read_text())
            if re.match(r"#{1,6} ", ln)}


def broken_links(path: Path) -> list[str]:
    out = []
    for line in outside_code(path.read_text()):
        for target in re.findall(r"\]\(([^)\s]+)\)", line):
            if re.match(r"[a-z]+:", target):
                continue   # https:, mailto:
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            if not dest.exists():
                out.append(f"{path.name}: {target}: no such file")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                out.append(f"{path.name}: {target}: no such heading")
    return out


def test_every_relative_link_resolves():
    assert not [b for p in [REPO / "README.md", *PAGES] for b in broken_links(p)]


def test_a_broken_link_is_seen(tmp_path):
    (tmp_path / "a.md").write_text("# A page\n\n## Its part\n\n[ok](a.md#its-part) "
                                   "[web](https://x.org) [gone](b.md) [no](a.md#nothing)\n"
                                   "```\n[in code](c.md)\n```\n")
    assert broken_links(tmp_path / "a.md") == ["a.md: b.md: no such file",
                                               "a.md: a.md#nothing: no such heading"]
    assert slug("Anything else: --exec") == "anything-else---exec"
