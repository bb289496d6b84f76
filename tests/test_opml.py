"""OPML: feeds are read from outlines (entities refused), written back, and appended as TOML."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest import config
from digest.errors import UsageError
from digest.models import FeedSpec
from digest.reader.opml import (
    Outline,
    append_text,
    feeds_file,
    feeds_toml,
    parse_opml,
    same_feed,
    sort_categories,
    to_opml,
)

NESTED = b"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>My feeds</title></head>
  <body>
    <outline text="Privacy">
      <outline type="rss" text="CNIL" title="CNIL - Actualit\xc3\xa9s"
               xmlUrl="https://www.cnil.fr/fr/rss.xml" htmlUrl="https://www.cnil.fr"/>
      <outline text="EU">
        <outline type="rss" text="EDPB" xmlUrl="https://edpb.europa.eu/feed/news_en"/>
      </outline>
    </outline>
    <outline type="rss" text="Top level" xmlUrl="https://example.org/feed.xml"/>
    <outline type="rss" text="Again" xmlUrl="https://example.org/feed.xml"/>
    <outline text="Just a link" htmlUrl="https://example.org/"/>
  </body>
</opml>
"""


def test_feeds_are_read_from_nested_outlines_with_their_folders() -> None:
    assert parse_opml(NESTED) == [
        Outline("https://www.cnil.fr/fr/rss.xml", "CNIL - Actualités", ("Privacy",)),
        Outline("https://edpb.europa.eu/feed/news_en", "EDPB", ("Privacy", "EU")),
        Outline("https://example.org/feed.xml", "Top level", ()),
    ]


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<opml version="2.0"><body><outline text="&lol2;" xmlUrl="https://x/"/></body></opml>
"""

EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE opml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<opml version="2.0"><body><outline text="&xxe;" xmlUrl="https://x/"/></body></opml>
"""


@pytest.mark.parametrize("doc", [BILLION_LAUGHS, EXTERNAL], ids=["expansion", "external"])
def test_entity_declarations_are_refused(doc: bytes) -> None:
    with pytest.raises(UsageError, match=r"^subs\.opml: entity declarations are not allowed$"):
        parse_opml(doc, source="subs.opml")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (b"<rss version='2.0'><channel/></rss>", "not an OPML file (root element is <rss>)"),
        (b"<opml><body><outline", "not valid XML"),
        (b"", "not valid XML"),
    ],
)
def test_a_file_that_is_not_opml_is_a_usage_error_naming_it(doc: bytes, message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_opml(doc, source="subs.opml")
    assert str(info.value).startswith("subs.opml: ")
    assert message in str(info.value)


names = st.text(
    alphabet=st.characters(blacklist_categories=["Cs", "Cc", "Cn"]), min_size=1, max_size=40
).filter(lambda s: s.strip() == s and s.strip())
urls = st.builds(
    lambda host, path: f"https://{host}.example/{path}",
    st.from_regex(r"[a-z0-9]{1,12}", fullmatch=True),
    st.text(alphabet="abc/?=&%._-~é", max_size=30),
)


@given(st.lists(st.tuples(urls, names), max_size=8, unique_by=lambda t: t[0]))
def test_exported_opml_reads_back_as_the_same_feeds(feeds: list[tuple[str, str]]) -> None:
    specs = [FeedSpec(url=u, name=n) for u, n in feeds]
    assert parse_opml(to_opml(specs)) == [Outline(u, n) for u, n in feeds]


def test_characters_xml_cannot_carry_are_left_out_of_the_export() -> None:
    specs = [FeedSpec(url="https://a.example/feed", name="News\ufffe\x01 feed")]
    assert parse_opml(to_opml(specs)) == [Outline("https://a.example/feed", "News feed")]


@given(st.lists(st.tuples(urls, st.text(max_size=40)), max_size=5))
def test_generated_feed_tables_are_valid_toml_with_the_same_values(
    feeds: list[tuple[str, str]],
) -> None:
    text = feeds_toml([Outline(u, n or None) for u, n in feeds], note="Imported\nfrom x")
    data = tomllib.loads(text)
    got = [(f["url"], f.get("name", "")) for f in data.get("feeds", [])]
    assert got == [(u, n) for u, n in feeds]


def test_appending_keeps_every_byte_of_the_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "digest.toml"
    original = '# editors: keep this comment\n[digest]\ntitle = "Veille"  # trailing\n'
    path.write_text(original, encoding="utf-8")
    path.chmod(0o640)
    append_text(path, feeds_toml([Outline("https://a.example/feed", "A")], note="Imported"))
    text = path.read_text(encoding="utf-8")
    assert text.startswith(original)
    assert config.load(path).feeds[0].url == "https://a.example/feed"
    assert path.stat().st_mode & 0o777 == 0o640


def test_feeds_are_appended_to_the_included_file_that_holds_them(tmp_path: Path) -> None:
    main = tmp_path / "digest.toml"
    main.write_text('include = ["feeds.toml"]\n[digest]\ntitle = "T"\n', encoding="utf-8")
    (tmp_path / "feeds.toml").write_text('[[feeds]]\nurl = "https://a/"\n', encoding="utf-8")
    assert feeds_file(main) == tmp_path / "feeds.toml"
    (tmp_path / "feeds.toml").write_text("[digest]\nlanguage = 'fr'\n", encoding="utf-8")
    assert feeds_file(main) == main


def test_same_feed_ignores_scheme_and_host_case_and_a_final_slash() -> None:
    assert same_feed("HTTPS://Example.org/feed/", "https://example.org/feed")
    assert not same_feed("https://example.org/Feed", "https://example.org/feed")


def test_the_category_attribute_adds_its_path_parts_after_the_folders() -> None:
    doc = b"""<opml version="2.0"><body><outline text="Tech">
      <outline text="A" xmlUrl="https://a.example/f" category="/Cloud/EU,News, Tech"/>
    </outline></body></opml>"""
    assert parse_opml(doc) == [Outline("https://a.example/f", "A", ("Tech", "Cloud", "EU", "News"))]


def test_categories_naming_a_topic_become_topics_the_rest_labels() -> None:
    topics = {"sovereign_cloud": "sovereign_cloud", "data protection": "privacy"}
    assert sort_categories(["Data Protection", "Misc", "sovereign_cloud", "misc"], topics) == (
        ("privacy", "sovereign_cloud"),
        ("Misc", "misc"),
    )
    text = feeds_toml(
        [Outline("https://a.example/f", "A", ("Data protection", "Weekend"))],
        note="x",
        topics=topics,
    )
    entry = tomllib.loads(text)["feeds"][0]
    assert (entry["topics"], entry["labels"]) == (["privacy"], ["Weekend"])
