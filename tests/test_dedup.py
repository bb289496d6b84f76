"""One story, one entry: the same news from several feeds is grouped, distinct news never is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.dedup import StoryCandidate, fold, group_stories

T0 = datetime(2026, 11, 2, 8, tzinfo=UTC)


def story(
    key: int,
    title: str,
    source: str,
    *,
    text: str = "",
    url: str | None = None,
    hours: float = 0,
) -> StoryCandidate:
    return StoryCandidate(
        key=key,
        title=title,
        text=text,
        url=url if url is not None else f"https://{source.lower().replace(' ', '')}.example/{key}",
        source=source,
        published=T0 + timedelta(hours=hours),
    )


def test_one_article_with_tracking_parameters_and_http_is_one_story() -> None:
    a = story(1, "Cloud souverain : S3NS qualifié", "Feed A", url="https://news.example/s3ns/")
    b = story(
        2,
        "S3NS obtient enfin SecNumCloud",  # the same page, listed under another title
        "Feed B",
        url="http://NEWS.example:80/s3ns?utm_source=rss&utm_medium=feed&fbclid=abc#top",
    )
    assert group_stories([a, b]) == [(1, 2)]


def test_title_variants_of_one_story_from_two_feeds_are_grouped() -> None:
    a = story(
        1,
        "CNIL fines Google €150 million over cookies",
        "Reuters",
        text="France's privacy regulator CNIL fined Google 150 million euros on Thursday.",
    )
    b = story(
        2,
        "CNIL fines Google €150m over cookies - TechWire",
        "TechWire",
        text="The French data protection authority fined Google for its cookie banners.",
        hours=3,
    )
    assert group_stories([a, b]) == [(1, 2)]


def test_a_french_title_rewritten_by_another_outlet_is_grouped() -> None:
    a = story(
        1,
        "La Cnil inflige 150 millions d'euros d'amende à Google pour ses cookies",
        "Le Monde",
        text="La Cnil a sanctionné Google de 150 millions d'euros pour ses cookies.",
    )
    b = story(
        2,
        "Cookies : Google sanctionné de 150 millions d'euros par la Cnil",
        "Les Echos",
        text="La Cnil a infligé une amende de 150 millions d'euros à Google.",
    )
    assert group_stories([a, b]) == [(1, 2)]


def test_the_representative_is_the_first_candidate_and_order_is_kept() -> None:
    cands = [
        story(7, "Gaia-X names a new chief executive", "Source A"),
        story(3, "Microsoft completes EU Data Boundary", "Source A"),
        story(5, "Gaia-X names new chief executive", "Source B", hours=1),
        story(9, "Gaia-X names a new chief executive", "Source C", hours=2),
    ]
    assert group_stories(cands) == [(7, 5, 9), (3,)]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("CNIL fines Google €150m over cookies", "CNIL fines Microsoft €60m over cookies"),
        (
            "ANSSI grants SecNumCloud qualification to OVHcloud's Hosted Private Cloud",
            "ANSSI grants SecNumCloud qualification to Outscale's IaaS platform",
        ),
        (
            "La Cnil sanctionne Free pour une fuite de données",
            "La Cnil sanctionne Orange pour une fuite de données",
        ),
        (
            "Irish regulator fines TikTok €345 million over children's data",
            "Irish regulator fines Meta €1.2 billion over data transfers",
        ),
    ],
)
def test_distinct_events_sharing_topic_and_words_are_kept_apart(first: str, second: str) -> None:
    a = story(1, first, "Source A")
    b = story(2, second, "Source B", hours=2)
    assert group_stories([a, b]) == [(1,), (2,)]


def test_near_duplicates_from_the_same_source_are_not_merged() -> None:
    a = story(1, "CNIL fines Google €150m over cookies", "Reuters")
    b = story(2, "CNIL fines Google €150m over cookies", "Reuters", hours=1)
    assert group_stories([a, b]) == [(1,), (2,)]


def test_near_duplicates_outside_the_window_are_separate_stories() -> None:
    a = story(1, "Gaia-X names a new chief executive", "Source A")
    b = story(2, "Gaia-X names a new chief executive", "Source B", hours=24 * 30)
    assert group_stories([a, b], window=timedelta(days=7)) == [(1,), (2,)]


def test_unrelated_stories_stay_apart() -> None:
    cands = [
        story(1, "Health Data Hub to leave Microsoft Azure", "A"),
        story(2, "EDPB adopts guidelines on consent or pay", "B"),
        story(3, "Cloudy skies expected this weekend", "C"),
    ]
    assert group_stories(cands) == [(1,), (2,), (3,)]


def test_every_candidate_lands_in_exactly_one_group() -> None:
    cands = [
        story(i, f"Story number {i % 5} about sovereign cloud", f"S{i % 3}") for i in range(30)
    ]
    groups = group_stories(cands)
    flat = [k for g in groups for k in g]
    assert sorted(flat) == list(range(30))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=60), st.text(max_size=80)), max_size=8))
def test_grouping_never_raises_and_partitions_the_keys(rows: list[tuple[str, str]]) -> None:
    cands = [story(i, t, f"S{i % 2}", text=x, url="") for i, (t, x) in enumerate(rows)]
    flat = [k for g in group_stories(cands) for k in g]
    assert sorted(flat) == list(range(len(rows)))


@settings(max_examples=200)
@given(st.text(max_size=100))
def test_title_folding_is_idempotent(text: str) -> None:
    assert fold(fold(text)) == fold(text)
