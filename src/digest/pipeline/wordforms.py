"""The topics' word forms kept on disk between runs (``[storage] cache_dir``): a matcher whose
words were all seen before compiles without loading simplemma's dictionaries.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from digest.topics.text import computed_forms, forms_version, remember_forms

log = logging.getLogger(__name__)

FILE = "word-forms.json"
#: Words kept at most: editors' terms are a few hundred words; a file grown past this (terms
#: edited for years) starts again from the words this process computed.
MAX_WORDS = 20_000
#: A file larger than this is not a cache this module wrote.
MAX_BYTES = 8 * 1024 * 1024


def load(folder: Path) -> None:
    """Hand the word forms cached in ``folder`` to the matcher's term expansion. A missing,
    unreadable, foreign or outdated file is ignored: the forms are computed again."""
    forms = _read(folder / FILE)
    if forms:
        remember_forms(forms)


def save(folder: Path) -> None:
    """Add the word forms this process computed to the cache in ``folder``; a cache that
    cannot be written costs time on the next run, nothing else (said at debug level)."""
    new = computed_forms()
    if not new:
        return
    path = folder / FILE
    computed = {w: list(f) for w, f in new.items()}
    cached = _read(path)
    if all(cached.get(w) == f for w, f in computed.items()):
        return  # the daemon compiles the topics every cycle: write only what is new
    forms = {**cached, **computed}
    if len(forms) > MAX_WORDS:
        forms = computed
    body = json.dumps({"version": forms_version(), "forms": forms}, ensure_ascii=False)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Written aside then renamed: a reader (another digest process) never sees half a file.
        fd, tmp = tempfile.mkstemp(prefix=".word-forms-", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(body)
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide it from a web process's user
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        log.debug("word-form cache not written to %s: %s", path, exc)


def _read(path: Path) -> dict[str, list[str]]:
    try:
        if path.stat().st_size > MAX_BYTES:
            return {}
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.debug("word-form cache %s not read: %s", path, exc)
        return {}
    if not isinstance(data, dict) or data.get("version") != forms_version():
        return {}
    forms = data.get("forms")
    if not isinstance(forms, dict):
        return {}
    return {
        word: values
        for word, values in forms.items()
        if isinstance(word, str)
        and isinstance(values, list)
        and values
        and all(isinstance(v, str) for v in values)
    }
