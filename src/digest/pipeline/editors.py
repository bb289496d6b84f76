"""Mail to the editors (and only to them): the desk's one-time sign-in links, the daemon's "the
draft is ready" message and its one reminder at the send time. Command-line commands never call
this; only the daemon's draft and deadline jobs and the desk's sign-in page do.
"""

from __future__ import annotations

import html
import logging
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from digest.config import Settings
from digest.errors import DeliveryError
from digest.pipeline.onemail import one_message, send_one
from digest.store import Store, schema
from digest.store import drafts as dstore
from digest.store.items import as_utc, to_db
from digest.tokens import make_token, read_token

log = logging.getLogger(__name__)

#: A sign-in link asked for on the desk's page lives this long.
SIGN_IN_TTL = timedelta(minutes=15)


# --------------------------------------------------------------------------- sign-in links


def sign_in_token(
    store: Store, secret: bytes, editor: str, *, now: datetime, ttl: timedelta
) -> str:
    """A signed, expiring, single-use token that signs ``editor`` in to the desk."""
    nonce = secrets.token_urlsafe(24)
    with store.begin() as conn:
        conn.execute(
            schema.desk_logins.insert().values(nonce=nonce, editor=editor, created=to_db(now))
        )
    return make_token(secret, "desk", nonce, now + ttl)


def check_sign_in(store: Store, secret: bytes, token: str, *, now: datetime) -> str:
    """The editor a sign-in token is for, if it is valid and unused (InvalidToken, ExpiredToken
    or LookupError otherwise). Does not use it up: see ``use_sign_in``."""
    nonce = read_token(secret, token, "desk", now)
    t = schema.desk_logins.c
    with store.connect() as conn:
        row = conn.execute(select(t.editor, t.used_at).where(t.nonce == nonce)).first()
    if row is None or row.used_at is not None:
        raise LookupError("sign-in link already used")
    return str(row.editor)


def use_sign_in(store: Store, secret: bytes, token: str, *, now: datetime) -> str:
    """Use a sign-in token up (once, whatever happens at the same time); returns the editor."""
    nonce = read_token(secret, token, "desk", now)
    t = schema.desk_logins.c
    with store.begin() as conn:
        done = conn.execute(
            update(schema.desk_logins)
            .where(t.nonce == nonce, t.used_at.is_(None))
            .values(used_at=to_db(now))
        )
        if not done.rowcount:
            raise LookupError("sign-in link already used")
        editor = conn.execute(select(t.editor).where(t.nonce == nonce)).scalar_one()
        # Links a week old are of no use to anyone: keep the table small.
        conn.execute(schema.desk_logins.delete().where(t.created < to_db(now - timedelta(days=7))))
    return str(editor)


# --------------------------------------------------------------------------- mail

#: The editors' mail in the digest's language ([digest] language), like the rest of the site.
_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "sign_in_subject": "Sign in to the desk of {title}",
        "sign_in": (
            "Hello,\n\nHere is your link to the editor's desk of {title}. It works once, "
            "within 15 minutes.\n\nIf you did not ask for it, ignore this message."
        ),
        "ready_subject": "Issue #{number} of {title} is ready for review",
        "ready": (
            "Hello,\n\nThe draft of issue #{number} of {title} is ready: drop, add or pin "
            "stories, write the note, send yourself a test, and approve it on the desk. "
            "The link below signs you in once."
        ),
        "reminder_subject": "Reminder: issue #{number} of {title} is waiting for approval",
        "reminder": (
            "Hello,\n\nIt is the send time and issue #{number} of {title} has not been "
            "approved: nothing has been sent to the subscribers. Review and approve it on the "
            "desk (or with `digest draft approve`); it goes out at the next send."
        ),
    },
    "fr": {
        "sign_in_subject": "Connexion au bureau de {title}",
        "sign_in": (
            "Bonjour,\n\nVoici votre lien vers le bureau de la rédaction de {title}. Il ne "
            "sert qu'une fois, dans les 15 minutes.\n\nSi vous ne l'avez pas demandé, "
            "ignorez ce message."
        ),
        "ready_subject": "Le numéro {number} de {title} est prêt à relire",
        "ready": (
            "Bonjour,\n\nLe brouillon du numéro {number} de {title} est prêt : retirez, "
            "ajoutez ou mettez à la une des articles, écrivez le mot de la rédaction, "
            "envoyez-vous un test et approuvez-le sur le bureau. Le lien ci-dessous vous "
            "connecte une fois."
        ),
        "reminder_subject": "Rappel : le numéro {number} de {title} attend votre approbation",
        "reminder": (
            "Bonjour,\n\nC'est l'heure d'envoi et le numéro {number} de {title} n'a pas été "
            "approuvé : rien n'a été envoyé aux abonnés. Relisez-le et approuvez-le sur le "
            "bureau (ou avec `digest draft approve`) ; il partira au prochain envoi."
        ),
    },
}


def _say(settings: Settings, key: str, **values: object) -> str:
    words = _WORDS.get(settings.digest.language, _WORDS["en"])
    return words[key].format(title=settings.digest.title, **values)


def _send(
    settings: Settings, address: str, subject: str, text: str, link: str, now: datetime
) -> None:
    body = "".join(f"<p>{html.escape(p)}</p>" for p in text.split("\n\n") if p.strip())
    page = (
        f'<!doctype html><html><body style="font-family:Helvetica,Arial,sans-serif;">{body}'
        f'<p><a href="{html.escape(link)}">{html.escape(link)}</a></p></body></html>'
    )
    data, message_id = one_message(
        settings,
        to=address,
        subject=subject,
        html=page,
        text=f"{text}\n\n{link}\n",
        kind="desk",
        reply_to=None,
        now=now,
    )
    send_one(settings, data, message_id, to=address, folder="desk", what="message to the editor")


def send_sign_in(
    settings: Settings, store: Store, secret: bytes, editor: str, *, root_url: str, now: datetime
) -> None:
    """Mail ``editor`` a one-time sign-in link (15 minutes) to ``root_url``/desk."""
    token = sign_in_token(store, secret, editor, now=now, ttl=SIGN_IN_TTL)
    link = f"{root_url}/desk/login/{token}"
    subject = _say(settings, "sign_in_subject")
    _send(settings, editor, subject, _say(settings, "sign_in"), link, now)
    log.info("desk sign-in link mailed", extra={"editor": editor})


def notify_editors(
    settings: Settings,
    store: Store,
    secret: bytes,
    *,
    reminder: bool | None,
    now: datetime | None = None,
) -> int:
    """Mail each editor a link to the open draft ("ready for review", or the one reminder at the
    send time; ``reminder=None``: the reminder if they were told already, else the first
    message); returns how many were mailed. Each link signs its editor in once, and lasts
    ``[review] alert_after`` (the editor may read it hours later)."""
    now = now or datetime.now(UTC)
    review = settings.review
    with store.connect() as conn:
        draft = dstore.open_draft(conn)
    if draft is None or draft.approved:
        return 0
    if reminder is None:
        reminder = draft.notified_at is not None
    stamp = "reminded_at" if reminder else "notified_at"
    if getattr(draft, stamp) is not None:
        return 0  # one message of each kind per draft
    base = settings.digest.base_url
    if not review.editors or not base:
        log.warning(
            "issue #%d is waiting for approval; no editor can be mailed a link "
            "(set [review] editors and [digest] base_url)",
            draft.number,
        )
        return 0
    ttl = timedelta(seconds=review.alert_after_seconds)
    kind = "reminder" if reminder else "ready"
    subject = _say(settings, f"{kind}_subject", number=draft.number)
    text = _say(settings, kind, number=draft.number)
    sent = 0
    for editor in review.editors:
        token = sign_in_token(store, secret, editor, now=now, ttl=ttl)
        try:
            _send(settings, editor, subject, text, f"{base}/desk/login/{token}", now)
            sent += 1
        except DeliveryError as exc:  # one bad address never keeps the others from hearing
            log.error("%s", exc)
    with store.begin() as conn:
        dstore.set_draft(conn, draft.id, **{stamp: now})
    log.info(
        "editors mailed about issue #%d",
        draft.number,
        extra={"issue": draft.number, "reminder": reminder, "mailed": sent},
    )
    return sent


def waiting_since(store: Store) -> tuple[int, datetime] | None:
    """(issue number, since when) of a draft waiting for approval, or None."""
    with store.connect() as conn:
        draft = dstore.open_draft(conn)
    if draft is None or draft.approved:
        return None
    return draft.number, as_utc(draft.created)
