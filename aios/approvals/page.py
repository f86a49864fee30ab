"""The confirmation page behind a decision link: what is asked, the context, one button."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from aios.inbox.items import approval_item
from aios.models.run import RunState

STYLE = """
body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.3rem} dt{font-weight:600;margin-top:.5rem} dd{margin:0 0 0 1rem;white-space:pre-wrap}
button{font-size:1.1rem;padding:.6rem 1.4rem;border:0;border-radius:.3rem;color:#fff;cursor:pointer}
.approve{background:#1a7f37} .reject{background:#b42318} .refused{color:#b42318}
textarea{width:100%;min-height:3rem}
"""


def layout(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


def confirm_page(state: RunState, verdict: str, approver: str, action_path: str) -> str:
    """What is being decided, with the inbox's context, and the confirming form (a POST)."""
    pending = state.pending_approval
    assert pending is not None
    item = approval_item(state, pending.since)
    assert item is not None
    rows = "".join(
        f"<dt>{escape(name)}</dt><dd>{escape(_shown(value))}</dd>"
        for name, value in item.context.items()
        if value not in (None, "", [], {})
    )
    word = "Approve" if verdict == "approve" else "Reject"
    body = (
        f"<h1>{escape(word)} step {pending.step} of run {escape(state.run_id)}?</h1>"
        f"<p>{escape(item.title)}. You are deciding as <b>{escape(approver)}</b>.</p>"
        f"<dl>{rows}</dl>"
        f'<form method=post action="{escape(action_path)}">'
        "<p><label>Note (optional)<br><textarea name=note maxlength=2000></textarea></label></p>"
        f"<button type=submit class={escape(verdict)} id=confirm>{escape(word)}</button>"
        "</form><p><small>This link works once and only for this step.</small></p>"
    )
    return layout(f"{word} step {pending.step}", body)


def done_page(verdict: str, run_id: str, reason: str) -> str:
    body = (
        f"<h1 id=done>Done: {escape(reason)}</h1>"
        f"<p>Run {escape(run_id)} was told ({escape(verdict)}), and the decision is in its audit trail "
        "as verified.</p>"
    )
    return layout("Decision recorded", body)


def refused_page(reason: str, message: str) -> str:
    body = (
        f"<h1 class=refused id=refused>This link cannot be used ({escape(reason.replace('_', ' '))})</h1>"
        f"<p>{escape(message)}</p><p>Nothing was decided. Everything that waits for a person: "
        "<code>aios inbox</code>.</p>"
    )
    return layout("Link refused", body)


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str, indent=1)
