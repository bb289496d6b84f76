"""The operator's own look: the top-level templates/ ship in the wheel and load with the
package loader; `[render] templates` overrides any of them (looked up first); `[brand]` covers
the common cases; `digest check` reports a broken override with file and line, and a send falls
back to the shipped template (and says so) instead of stopping."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import run_cli
from digest.models import Brand
from digest.render import TEMPLATE_NAMES, check_templates, personalize, render_issue, render_page
from digest.render.sample import sample_issue

REPO = Path(__file__).resolve().parent.parent


def test_the_shipped_templates_live_at_the_top_of_the_repository() -> None:
    for name in TEMPLATE_NAMES:
        assert (REPO / "templates" / name).is_file(), name
    assert not (REPO / "src" / "digest" / "templates").exists()


@pytest.mark.slow
def test_the_wheel_carries_the_templates_inside_the_package(tmp_path: Path) -> None:
    uv = REPO / ".tools" / "bin" / "uv"
    if not uv.exists():
        pytest.skip("no .tools/bin/uv (make install puts it there)")
    done = subprocess.run(
        [str(uv), "build", "--wheel", "--out-dir", str(tmp_path), "--offline", "-q"],
        cwd=REPO,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    [wheel] = tmp_path.glob("digest-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in TEMPLATE_NAMES:
        assert f"digest/templates/{name}" in names
    # Installed from the wheel, the package loader finds them (not the repository's folder).
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import digest.render.templating as c; "
        "print(type(c._shipped_loader()).__name__, c.__file__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(target)], capture_output=True, timeout=60, check=True
    )
    kind, where = out.stdout.decode().split()
    assert kind == "PackageLoader"
    assert where.startswith(str(target))


def override(tmp_path: Path, name: str, text: str) -> str:
    folder = tmp_path / "look"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return str(folder)


def test_an_override_replaces_only_the_template_it_holds(tmp_path: Path) -> None:
    shipped = (REPO / "templates" / "digest.txt.j2").read_text()
    folder = override(tmp_path, "digest.txt.j2", "OUR OWN LOOK\n" + shipped)
    rendered = render_issue(sample_issue(), templates=folder)
    assert rendered.text.startswith("OUR OWN LOOK")
    assert "Sample digest" in rendered.html  # the HTML is still the shipped one
    assert check_templates(folder) == []


def test_a_page_override_of_the_blocks_applies_to_the_email_and_the_page(tmp_path: Path) -> None:
    shipped = (REPO / "templates" / "_blocks.html.j2").read_text()
    folder = override(
        tmp_path, "_blocks.html.j2", shipped.replace("{{ e.source }}", "FROM {{ e.source }}")
    )
    assert "FROM Example News" in render_issue(sample_issue(), templates=folder).html
    assert "FROM Example News" in render_page(sample_issue(), templates=folder)


def test_a_broken_override_is_reported_with_file_and_line_and_a_send_falls_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = override(
        tmp_path, "digest.mjml.j2", "<mjml>\n<mj-body>\n{% if %}\n</mj-body></mjml>\n"
    )
    problems = check_templates(folder)
    assert len(problems) == 1
    assert problems[0].startswith(f"{folder}/digest.mjml.j2:3: ")
    with caplog.at_level(logging.WARNING):
        rendered = render_issue(sample_issue(), templates=folder)
    assert "Sample digest" in rendered.html  # the shipped template did the work
    assert "template override in" in caplog.text
    assert "digest.mjml.j2:3" in caplog.text


def test_a_runtime_fault_in_an_override_points_at_its_line(tmp_path: Path) -> None:
    shipped = (REPO / "templates" / "digest.txt.j2").read_text()
    folder = override(
        tmp_path, "digest.txt.j2", "{{ ph.greeting }}\n{{ no_such_thing.x }}\n" + shipped
    )
    [problem] = check_templates(folder)
    assert problem.startswith(f"{folder}/digest.txt.j2:2: ")
    assert "no_such_thing" in problem
    text = render_issue(sample_issue(), templates=folder).text
    assert "Sample digest" in text


def test_mjml_an_override_cannot_compile_falls_back_too(tmp_path: Path) -> None:
    folder = override(tmp_path, "digest.mjml.j2", "<mjml><mj-body><mj-section>unclosed")
    assert any("MJML" in p or "digest.mjml.j2" in p for p in check_templates(folder))
    assert "Sample digest" in render_issue(sample_issue(), templates=folder).html


def test_brand_name_logo_accent_footer_and_address(tmp_path: Path) -> None:
    brand = Brand(
        name="Acme Media",
        logo_url="https://cdn.example.org/logo.png",
        logo_alt="Acme Media logo",
        logo_width=140,
        logo_height=36,
        accent="#aa3300",
        footer="Acme Media writes this digest each Monday.",
        postal_address="10 Main St, Springfield",
    )
    rendered = render_issue(sample_issue(), brand=brand)
    html, text = personalize(
        rendered, name=None, unsubscribe_url="https://x.example/u", preferences_url=None
    )
    assert 'src="https://cdn.example.org/logo.png"' in html
    assert 'alt="Acme Media logo"' in html
    assert "color:#aa3300" in html
    assert "Acme Media writes this digest each Monday." in html
    assert "Sent by Acme Media, 10 Main St, Springfield." in html
    assert "Sent by Acme Media, 10 Main St, Springfield." in text


def test_check_reports_a_broken_override_and_exits_2(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = workdir / "look"
    folder.mkdir()
    (folder / "digest.txt.j2").write_text("{% for %}\n")
    config = workdir / "digest.toml"
    config.write_text('[render]\ntemplates = "look"\n')
    result = run_cli(capsys, "--config", str(config), "check")
    assert result.code == 2
    assert f"error: render.templates: {folder}/digest.txt.j2:1: " in result.err
    shutil.copy(REPO / "templates" / "digest.txt.j2", folder / "digest.txt.j2")
    assert run_cli(capsys, "--config", str(config), "check").code == 0


def test_a_templates_folder_that_does_not_exist_is_a_config_error(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = workdir / "digest.toml"
    config.write_text('[render]\ntemplates = "nowhere"\n')
    result = run_cli(capsys, "--config", str(config), "check")
    assert result.code == 2
    assert "render.templates" in result.err
    assert "is not a folder" in result.err


def test_an_edited_page_stylesheet_is_read_again_and_its_csp_hash_follows(tmp_path: Path) -> None:
    from digest.render import page_style_csp_source
    from digest.render.templating import page_css

    css = tmp_path / "page.css"
    css.write_text("body { color: #111; }", encoding="utf-8")
    first = (page_css(str(tmp_path)), page_style_csp_source(str(tmp_path)))
    assert first[0] == "body { color: #111; }"
    css.write_text("body { color: #222; }", encoding="utf-8")
    os.utime(css, (css.stat().st_atime, css.stat().st_mtime + 5))
    second = (page_css(str(tmp_path)), page_style_csp_source(str(tmp_path)))
    assert second[0] == "body { color: #222; }"
    assert second[1] != first[1]
