"""Editors' topic tools: ``topics eval`` (precision/recall on labeled items), ``topics test`` (what
the topics keep from stored items, or what a config change would change) and ``explain``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.markup import escape

from digest import config
from digest.cli.app import STATE, app, err, out
from digest.config import Settings, parse_duration
from digest.errors import UsageError
from digest.models import FeedSpec, StoredItem, TopicDef, TopicMatch

if TYPE_CHECKING:
    from digest.pipeline.relevance import Decider
    from digest.topics import EvalReport, EvalRow, TopicMatcher
    from digest.topics.learned import Example, TextModel
    from digest.topics.suggest import Effect, Suggestion

# The matcher, the parser's text function and the store are imported inside the commands,
# so that the other commands (`digest fetch` first) start without what they do not use.


def _matcher(settings: Settings) -> TopicMatcher:
    from digest.pipeline.wiring import make_matcher

    if not settings.topics:
        raise UsageError(f"{settings.source}: no [topics.<id>] configured")
    return make_matcher(settings)


def _decider(settings: Settings) -> Decider:
    """The matcher with the rules read before it, as the fetch decides."""
    from digest.pipeline.wiring import make_decider

    if not settings.topics:
        raise UsageError(f"{settings.source}: no [topics.<id>] configured")
    return make_decider(settings)


def item_text(stored: StoredItem) -> str:
    """What the pipeline matches an item's topics on (besides its title): the same function."""
    from digest.pipeline.relevance import item_text as text_of

    return text_of(stored.item)


def _feed_specs(settings: Settings) -> dict[str, FeedSpec]:
    return {f.url: f for f in settings.feed_specs()}


def _match_stored(
    decider: Decider,
    specs: dict[str, FeedSpec],
    stored: StoredItem,
    *,
    explain: bool = False,
    text: str | None = None,
) -> tuple[TopicMatch, ...]:
    """The decisions the fetch would take now (``text``: the article page it decided on)."""
    spec = specs.get(stored.item.feed_url)
    return decider.decide(stored.item, spec, stored.source, text=text, explain=explain)


@app.group("topics", epilog="Example: digest topics eval tests/data/topics/tuning.jsonl --json")
def topics_group() -> None:
    """Measure, preview and explain the editors' topic filters ([topics.<id>] in the config)."""


# --------------------------------------------------------------------------- topics eval


@topics_group.command(
    "eval",
    epilog="Example: digest -c config/digest.toml topics eval tests/data/topics/tuning.jsonl",
)
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object with the figures per topic."
)
def eval_cmd(file: Path, as_json: bool) -> None:
    """Precision, recall, F1 and confusion counts of each topic on labeled items.

    Per scorer: the rules, the learned scorer (when a model is installed) and their combination;
    then the items this config's actual decisions got wrong. FILE is JSON Lines:
    {"title", "summary", "lang", "labels": [topic ids]} per line. --json prints
    {"topics": {...}} for the actual decisions and "scorers": {"rules", "learned", "combined"}.
    """
    from digest.topics import evaluate, parse_eval_lines

    settings = STATE.settings()
    matcher = _matcher(settings)
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UsageError(f"{file}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{file}: cannot read: {exc}") from None
    rows = parse_eval_lines(lines, str(file))
    known = {t.id for t in matcher.topics}
    for row in rows:
        for label in sorted(row.labels - known):
            err.print(f"warning: {file}: line {row.line}: unknown topic {label!r}", markup=False)
    from digest.pipeline.learning import load_model

    report = evaluate(matcher, rows, learned=load_model(settings, strict=True))
    if as_json:
        sys.stdout.write(json.dumps(report.as_json()) + "\n")
        return
    _print_report(report, file)


def _print_report(report: EvalReport, file: Path) -> None:
    from rich.table import Table

    table = Table(title=f"{file}: {report.rows} items", title_justify="left")
    width = max((len(tid) for tid in report.topics), default=5)
    for col in ("scorer", "topic", "precision", "recall", "F1", "tp", "fp", "fn", "tn"):
        if col in ("scorer", "topic"):
            table.add_column(col, no_wrap=True, min_width=width if col == "topic" else 8)
        else:
            table.add_column(col, justify="right")
    for name, figures in report.scorers.items():
        if figures is None:
            continue
        for tid, s in figures.items():
            table.add_row(
                name,
                tid,
                f"{s.precision:.3f}",
                f"{s.recall:.3f}",
                f"{s.f1:.3f}",
                str(s.tp),
                str(s.fp),
                str(s.fn),
                str(s.tn),
            )
    out.print(table)
    out.print(f"learned scorer: {escape(report.learned_status)}")
    deciding = ", ".join(f"{tid} by {how}" for tid, how in report.deciding.items())
    out.print(f"this config decides: {deciding}")
    if not report.misclassified:
        out.print("No misclassified item.")
        return
    out.print(f"Misclassified by this config's decisions ({len(report.misclassified)}):")
    for w in report.misclassified:
        kind = "missed" if w.expected else "wrongly kept"
        m = w.match
        why = f"score {m.score:g}"
        if m.vetoes:
            why += ", vetoed"
        if m.unmet_groups:
            why += f", {len(m.unmet_groups)} require group(s) unmet"
        if m.learned is not None:
            why += f", kept by the learned scorer at {m.learned:.2f}"
        out.print(
            f"  line {w.row.line}: {w.topic_id} {kind} ({why}): {escape(w.row.title)}",
        )


# --------------------------------------------------------------------------- topics learn


@topics_group.command(
    "learn",
    epilog="Example: digest topics learn tests/data/topics/tuning.jsonl  |  "
    "digest topics learn tests/data/topics/tuning.jsonl --cv",
)
@click.argument("files", nargs=-1, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--decisions/--no-decisions",
    default=True,
    show_default=True,
    help="Also learn from the editors' decisions stored on the desk.",
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the model here instead of [storage] topic_model.",
)
@click.option(
    "--cv",
    is_flag=True,
    help="Write nothing: cross-validate on FILES and show, per topic and floor, what the "
    "model alone and the rules + model would score (to choose learned and learned_floor).",
)
def learn_cmd(files: tuple[Path, ...], decisions: bool, out_path: Path | None, cv: bool) -> None:
    """Train the learned topic scorer on labeled FILES (JSON Lines, as for `topics eval`) and
    the editors' decisions; say what it was trained on.

    Never give it the held-out file you measure with: figures on items a model was trained on
    mean nothing.
    """
    from digest.pipeline.learning import editor_examples, learn

    settings = STATE.settings()
    files_rows = [(str(f), _read_rows(f)) for f in files]
    if cv:
        if not files_rows:
            raise UsageError("topics learn --cv: give the labeled FILES to cross-validate on")
        _cross_validate(settings, [r for _, rows in files_rows for r in rows])
        return
    stored = []
    if decisions:
        from digest.store import open_store

        store = open_store(settings.storage.url)
        try:
            stored = editor_examples(store)
        finally:
            store.close()
    if not files_rows and not stored:
        raise UsageError("topics learn: nothing to learn from (give labeled FILES)")
    model, path = learn(settings, files_rows, stored, out=out_path)
    info = model.trained_on
    said = ", ".join(f"{escape(name)} ({n} items)" for name, n in info["files"].items())
    out.print(f"trained on {info['items']} items: {said or 'no file'}")
    out.print(f"  + {info['editor_decisions']} editor decision(s) from the store")
    for tid, c in info["per_topic"].items():
        out.print(f"  {tid}: {c['in']} in, {c['out']} out")
    for tid in info.get("skipped_topics", []):
        out.print(f"  {tid}: not learned (no labeled items both in and out of it)")
    out.print(f"{len(model.features)} features; data sha256 {model.data_hash}")
    out.print(f"model written to {escape(str(path))}")


def _cross_validate(settings: Settings, rows: Sequence[EvalRow]) -> None:
    from digest.topics import fold
    from digest.topics.learned import cross_val_probabilities, learned_keeps

    matcher = _matcher(settings)
    examples = [_example(r) for r in rows]
    topics = [t.id for t in matcher.topics if any(t.id in r.labels for r in rows)]
    # Items of one story (the same folded title) stay in one fold.
    ids: dict[str, int] = {}
    groups = [ids.setdefault(fold(r.title), len(ids)) for r in rows]
    probs = cross_val_probabilities(examples, topics, groups=groups)
    matches = [matcher.match(r.title, r.text) for r in rows]
    out.print(f"5-fold cross-validation (twice) on {len(rows)} items")
    for ti, tdef in enumerate(matcher.topics):
        if tdef.id not in probs:
            continue
        p = probs[tdef.id]
        want = [tdef.id in r.labels for r in rows]
        rules = [ms[ti].kept for ms in matches]
        out.print(
            f"[bold]{tdef.id}[/bold] (learned = {tdef.learned!r}, floor {tdef.learned_floor:g})"
        )
        out.print(f"  rules              {_figures(rules, want)}")
        for floor in (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9):
            t = replace(tdef, learned_floor=floor)
            alone = [float(x) >= floor for x in p]
            both = [
                ms[ti].kept or learned_keeps(t, ms[ti], float(x))
                for ms, x in zip(matches, p, strict=True)
            ]
            out.print(f"  floor {floor:.1f} learned  {_figures(alone, want)}")
            out.print(f"            combined {_figures(both, want)}")


def _example(r: EvalRow) -> Example:
    from digest.topics.learned import Example

    return Example(r.title, r.text, r.labels)


def _figures(kept: Sequence[bool], want: Sequence[bool]) -> str:
    """As ``topics eval`` counts them (``topics.scores``)."""
    from digest.topics import scores

    s = scores(kept, want)
    return f"P {s.precision:.3f} R {s.recall:.3f} F1 {s.f1:.3f} (tp {s.tp} fp {s.fp} fn {s.fn})"


# --------------------------------------------------------------------------- topics suggest


def _read_rows(file: Path) -> list[EvalRow]:
    from digest.topics import parse_eval_lines

    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UsageError(f"{file}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{file}: cannot read: {exc}") from None
    return parse_eval_lines(lines, str(file))


@topics_group.command(
    "suggest",
    epilog="Example: digest topics suggest sovereign_cloud tests/data/topics/tuning.jsonl "
    "--heldout tests/data/topics/heldout.jsonl",
)
@click.argument("topic")
@click.argument("tuning", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--heldout",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Labeled items never tuned on: each edit's effect on them is shown, not used to rank.",
)
@click.option(
    "--decisions/--no-decisions",
    default=True,
    show_default=True,
    help="Also mine the editors' decisions stored on the desk (an added item the rules "
    "dropped is a miss, a dropped item they kept is wrongly kept).",
)
@click.option("--limit", default=10, show_default=True, help="Edits listed at most (per source).")
@click.option("--json", "as_json", is_flag=True, help="Print the edits as one JSON object.")
def suggest_cmd(
    topic: str, tuning: Path, heldout: Path | None, decisions: bool, limit: int, as_json: bool
) -> None:
    """Concrete edits to TOPIC (a term to add, a require group to relax, a weight to lower).

    Mined from the items of TUNING (JSON Lines, as for `topics eval`) that TOPIC misses or wrongly
    keeps, ranked by F1 gained on TUNING; then, shown separately, from the editors' decisions
    on TOPIC, ranked by the decisions they set right. Each is shown with its effect on
    --heldout: recall gained, precision lost, and the items it would flip. Nothing is written:
    paste what you accept into config/topics.toml.
    """
    from digest.topics.suggest import suggest, suggest_from_decisions

    settings = STATE.settings()
    matcher = _matcher(settings)
    tdef = matcher.topic(topic)
    if tdef is None:
        known = ", ".join(t.id for t in matcher.topics)
        raise UsageError(f"topics suggest: no topic {topic!r} (configured: {known})")
    if limit < 1:
        raise UsageError("--limit must be at least 1")
    from digest.pipeline.wiring import make_matcher

    tuning_rows = _read_rows(tuning)
    heldout_rows = _read_rows(heldout) if heldout else []
    found = suggest(tdef, tuning_rows, heldout_rows, compile=make_matcher, limit=limit)
    decided = _decision_rows(settings, topic) if decisions else []
    by_editors = (
        suggest_from_decisions(
            tdef, decided, tuning_rows, heldout_rows, compile=make_matcher, limit=limit
        )
        if decided
        else []
    )
    if as_json:
        data: dict[str, object] = {
            "topic": topic,
            "suggestions": [_as_dict(s) for s in found],
        }
        if decisions:
            data["editors"] = {
                "items": len(decided),
                "added": sum(topic in r.labels for r in decided),
                "dropped": sum(topic not in r.labels for r in decided),
                "suggestions": [_as_dict(s) for s in by_editors],
            }
        sys.stdout.write(json.dumps(data) + "\n")
        return
    out.print(f"from the tuning set ({escape(str(tuning))}): {len(tuning_rows)} items")
    if not found:
        out.print(f"  no edit improves {topic}'s F1 on it")
    _print_suggestions(found, "tuning")
    if decisions:
        kept = sum(topic in r.labels for r in decided)
        out.print(
            f"from editors' decisions: {len(decided)} items "
            f"({kept} kept, added or pinned; {len(decided) - kept} dropped)"
        )
        if decided and not by_editors:
            out.print("  no edit sets right more of them than it breaks")
        _print_suggestions(by_editors, "decisions")


def _decision_rows(settings: Settings, topic: str) -> list[EvalRow]:
    from digest.pipeline.learning import editor_rows
    from digest.store import open_store

    store = open_store(settings.storage.url)
    try:
        return editor_rows(store, topic)
    finally:
        store.close()


def _print_suggestions(found: Sequence[Suggestion], ranked_on: str) -> None:
    for i, s in enumerate(found, start=1):
        out.print(f"[bold]{i}. {escape(s.summary)}[/bold]")
        out.print(f"   {escape(s.toml)}", markup=False, highlight=False)
        if s.decisions is not None:
            d = s.decisions
            out.print(f"   decisions: sets right {len(d.gained)}, breaks {len(d.lost)}")
            for title in d.gained[:5]:
                out.print(f"     + {title}", markup=False, highlight=False)
            for title in d.lost[:5]:
                out.print(f"     - {title}", markup=False, highlight=False)
        t = s.tuning
        out.print(
            f"   tuning: F1 {t.before.f1:.3f} -> {t.after.f1:.3f} "
            f"(recall {t.recall_gain:+.3f}, precision {t.precision_change:+.3f})"
        )
        if ranked_on == "decisions":  # the tuning rows did not choose it: show what it flips
            for title in t.lost[:3]:
                out.print(f"     - {title}", markup=False, highlight=False)
        if s.heldout is not None:
            h = s.heldout
            out.print(
                f"   held-out: F1 {h.before.f1:.3f} -> {h.after.f1:.3f} "
                f"(recall {h.recall_gain:+.3f}, precision {h.precision_change:+.3f})"
            )
            for title in h.gained[:5]:
                out.print(f"     + {title}", markup=False, highlight=False)
            for title in h.lost[:5]:
                out.print(f"     - {title}", markup=False, highlight=False)


def _as_dict(s: Suggestion) -> dict[str, object]:
    def eff(e: Effect | None) -> dict[str, object] | None:
        if e is None:
            return None
        return {
            "before": e.before.as_dict(tn=True),
            "after": e.after.as_dict(tn=True),
            "recall_gain": e.recall_gain,
            "precision_change": e.precision_change,
            "gained": list(e.gained),
            "lost": list(e.lost),
        }

    return {
        "kind": s.kind,
        "summary": s.summary,
        "toml": s.toml,
        "tuning": eff(s.tuning),
        "heldout": eff(s.heldout),
        **({"decisions": eff(s.decisions)} if s.decisions is not None else {}),
    }


# --------------------------------------------------------------------------- explain


@app.command(
    epilog="Example: digest explain 42  |  digest explain --title 'La CNIL sanctionne' --text '...'"
)
@click.argument("item", required=False, metavar="[ITEM_ID|URL]")
@click.option("--title", help="Explain this title (with --text) instead of a stored item.")
@click.option("--text", default="", help="The text going with --title.")
def explain(item: str | None, title: str | None, text: str) -> None:
    """Why an item is kept or dropped by each topic: score, matched terms, vetoes, unmet groups.

    Give a stored item's id or URL, or any text with --title/--text.
    """
    from digest.store import open_store
    from digest.store.articles import load_full_texts
    from digest.store.items import get_item, load_topic_matches
    from digest.store.sightings import load_sightings

    settings = STATE.settings()
    decider = _decider(settings)
    matcher = decider.matcher
    if item and title is not None:
        raise UsageError("explain: give a stored item (ITEM_ID or URL) or --title, not both")
    if not item and title is None:
        raise UsageError("explain: give a stored item (ITEM_ID or URL) or --title/--text")
    recorded: dict[str, TopicMatch] = {}
    article: str | None = None
    others: list[tuple[str, str]] = []
    if item:
        store = open_store(settings.storage.url)
        try:
            with store.connect() as conn:
                stored = get_item(conn, item)
                if stored is not None:
                    recorded = {m.topic_id: m for m in load_topic_matches(conn, stored.id)}
                    article = load_full_texts(conn, [stored.id]).get(stored.id)
                    others = load_sightings(conn, [stored.id]).get(stored.id, [])
        finally:
            store.close()
        if stored is None:
            raise UsageError(f"explain: no stored item with id or URL {item!r}")
        out.print(f"[bold]{escape(stored.item.title)}[/bold]")
        out.print(f"item {stored.id} · {escape(stored.source)} · {escape(stored.item.url)}")
        for name, link in others:
            out.print(f"also carried by {name}: {link}", markup=False, highlight=False)
        if article is not None:
            out.print(
                f"decided on the article ({len(article.split())} words), fetched for this teaser",
                markup=False,
            )
        matches = _match_stored(decider, _feed_specs(settings), stored, explain=True, text=article)
        title, text = stored.item.title, article if article is not None else item_text(stored)
    else:
        assert title is not None
        out.print(f"[bold]{escape(title)}[/bold]")
        matches = matcher.match(title, text)
        if decider.learned is not None:  # the learned scorer's keeps, as the fetch decides
            matches = decider.learned([(title, text)], [matches])[0]
        # No feed, no link: of the rules, only the block words and the language can decide.
        from dataclasses import replace

        from digest.models import Item

        why = decider.rule(Item("", "", "", "", title, datetime.now(UTC)), "", text)
        if why is not None:
            matches = tuple(replace(m, kept=False, rule=why) for m in matches)
    rules = {m.rule for m in matches if m.rule}
    for why in sorted(rules):
        out.print(f"decided by a rule before the topics: {why}", markup=False, highlight=False)
    from digest.pipeline.learning import load_model

    model = load_model(settings, strict=True)
    for tdef, m in zip(matcher.topics, matches, strict=True):
        lines = explain_lines(tdef, m)
        if model is not None and tdef.id in model.topics and tdef.learned != "off":
            lines.extend(learned_lines(model, tdef, m, title, text))
        before = recorded.get(tdef.id)
        if before is not None and before.kept != m.kept:
            # The decision the issue builder uses was taken at fetch time, with the config then.
            was = "kept" if before.kept else "dropped"
            lines.append(
                f"  at fetch time: {was} (score {before.score:g}); the topic changed since"
            )
        for line in lines:
            out.print(line, markup=False, highlight=False)


def learned_lines(
    model: TextModel, tdef: TopicDef, m: TopicMatch, title: str, text: str
) -> list[str]:
    """The learned scorer's opinion on one item for ``tdef``: probability, what it decides
    under the topic's ``learned`` mode, and the item's words that pushed it either way."""
    from digest.topics.learned import MIN_KNOWN_WORDS, learned_keeps

    known = model.known_share(title, text)
    if known < MIN_KNOWN_WORDS:
        return [
            f"  learned scorer: no opinion: it knows {known:.0%} of the item's words "
            f"(it judges items of which it knows {MIN_KNOWN_WORDS:.0%} or more)"
        ]
    prob, drivers = model.drivers(title, text, tdef.id)
    floor = tdef.learned_floor
    if m.rule:
        verdict = "a rule before the topics drops it"
    elif m.learned is not None:
        verdict = f"KEPT by the learned scorer (at or above the floor {floor:g})"
    elif m.kept:
        verdict = "the rules keep it"
    elif not learned_keeps(tdef, m, prob, outright=False):
        verdict = "an exclude term vetoes it" if m.vetoes else f"below the floor {floor:g}"
    elif tdef.learned == "keep" and learned_keeps(tdef, m, prob):
        verdict = f"KEPT by the learned scorer (at or above the floor {floor:g})"
    else:
        why = "learned = suggest" if tdef.learned != "keep" else "none of the topic's terms"
        verdict = f"a near miss for the editors (at or above the floor {floor:g}; {why})"
    lines = [f"  learned scorer: probability {prob:.2f}: {verdict}"]
    pos = [d for d in drivers if d.weight > 0]
    neg = [d for d in drivers if d.weight < 0]
    if pos:
        lines.append("    for: " + ", ".join(f"{d.word!r} {d.weight:+.2f}" for d in pos))
    if neg:
        lines.append("    against: " + ", ".join(f"{d.word!r} {d.weight:+.2f}" for d in neg))
    return lines


def explain_lines(tdef: TopicDef, m: TopicMatch) -> list[str]:
    """The explanation of one topic decision, as plain lines."""
    decision = "KEPT" if m.kept else "dropped"
    lines = [
        f"{tdef.id} ({tdef.title}): {decision}, score {m.score:g} / threshold {tdef.threshold:g}"
    ]
    for h in m.hits:
        factor = tdef.title_weight if h.where == "title" else min(h.count, 3)
        lines.append(
            f"  + {h.term!r} in {h.where} x{h.count} (matched {h.matched!r}): "
            f"weight {h.weight:g} x {factor:g} = {h.weight * factor:+g}"
        )
    if not m.hits:
        lines.append("  no include term found")
    lines.extend(f"  veto: exclude term {v!r} found" for v in m.vetoes)
    for g in m.unmet_groups:
        shown = ", ".join(repr(t) for t in g[:6]) + (", ..." if len(g) > 6 else "")
        lines.append(f"  unmet require group: none of {shown}")
    if m.forced:
        lines.append("  forced: the feed is marked always on this topic")
    if m.out_of_scope:
        lines.append("  out of scope: the feed is limited to other topics")
    if m.rule:
        lines.append(f"  dropped by a rule before the topics: {m.rule}")
    return lines


# --------------------------------------------------------------------------- topics test


Kept = dict[str, dict[int, tuple[float, str]]]


class _Tally:
    """What one config's topics keep, filled one stored item at a time."""

    def __init__(self, decider: Decider, specs: dict[str, FeedSpec]) -> None:
        self.decider = decider
        self.specs = specs
        self.kept: Kept = {t.id: {} for t in decider.matcher.topics}

    def add(self, stored: StoredItem, article: str | None = None) -> None:
        for m in _match_stored(self.decider, self.specs, stored, text=article):
            if m.kept:
                self.kept[m.topic_id][stored.id] = (m.score, stored.item.title)


@topics_group.command(
    "test",
    epilog="Example: digest -c draft.toml topics test --since 30d --against config/digest.toml",
)
@click.option(
    "--since", default="30d", show_default=True, help="Stored items first seen within this period."
)
@click.option(
    "--against",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Another config: list the items that enter or leave each topic compared with it.",
)
@click.option("--show", default=20, show_default=True, help="Items listed per topic and change.")
def test_cmd(since: str, against: Path | None, show: int) -> None:
    """What each topic keeps from the stored items; with --against, what a change would change.

    With --against OTHER.toml, "+" items are kept by this config and not by OTHER (they enter),
    "-" items are kept by OTHER and dropped by this config (they leave).
    """
    from digest.store import open_store
    from digest.store.articles import load_full_texts
    from digest.store.items import iter_items

    settings = STATE.settings()
    decider = _decider(settings)
    try:
        period = parse_duration(since)
    except ValueError as exc:
        raise UsageError(f"--since: {exc}") from None
    other: Settings | None = config.load(against) if against is not None else None
    other_decider = _decider(other) if other is not None else None
    start = datetime.now(UTC) - period

    tally = _Tally(decider, _feed_specs(settings))
    tallies = [tally]
    if other is not None and other_decider is not None:
        tallies.append(_Tally(other_decider, _feed_specs(other)))
    count = 0
    teaser_feeds = {f.url for t in tallies for f in t.specs.values() if f.full_text}
    store = open_store(settings.storage.url)
    try:
        with store.connect() as conn, store.connect() as lookup:
            # Streamed: only the kept items' ids, scores and titles stay in memory.
            for stored in iter_items(conn, since=start):
                count += 1
                # A teaser whose article was read at fetch time is decided on it, as then.
                article = (
                    load_full_texts(lookup, [stored.id]).get(stored.id)
                    if stored.item.feed_url in teaser_feeds
                    else None
                )
                for t in tallies:
                    t.add(stored, article)
    finally:
        store.close()
    kept = tally.kept
    out.print(f"{count} stored items since {start:%Y-%m-%d %H:%M} UTC")
    if len(tallies) == 1:
        for tid, got in kept.items():
            out.print(f"[bold]{tid}[/bold]: keeps {len(got)}")
            _list(got, show, "  ")
        return
    before = tallies[1].kept
    for tid in dict.fromkeys([*kept, *before]):
        now_kept, was_kept = kept.get(tid, {}), before.get(tid, {})
        enter = {k: v for k, v in now_kept.items() if k not in was_kept}
        leave = {k: v for k, v in was_kept.items() if k not in now_kept}
        was = f"was {len(was_kept)} with {escape(str(against))}"
        out.print(
            f"[bold]{tid}[/bold]: keeps {len(now_kept)} ({was}): "
            f"{len(enter)} enter, {len(leave)} leave"
        )
        _list(enter, show, "  + ")
        _list(leave, show, "  - ")


def _list(items: dict[int, tuple[float, str]], show: int, prefix: str) -> None:
    ranked: Sequence[tuple[int, tuple[float, str]]] = sorted(
        items.items(), key=lambda kv: (-kv[1][0], kv[0])
    )
    for item_id, (score, title) in ranked[:show]:
        out.print(f"{prefix}{item_id}  {score:5.1f}  {title}", markup=False, highlight=False)
    if len(ranked) > show:
        out.print(f"{prefix}... and {len(ranked) - show} more", markup=False)
